// generator.cpp — see generator.h.
#include "engine/generator.h"

#include <chrono>
#include <memory>

#include "util/error.h"

namespace seek {

Generator::Generator(Model& model, const Tokenizer* tokenizer, MlaForm form)
    : model_(model), tok_(tokenizer), form_(form) {}

std::vector<GenerationOutput> Generator::run(const std::vector<GenerationRequest>& reqs, const OnText& on_text) {
  const size_t B = reqs.size();
  if (B == 0) return {};
  for (size_t b = 0; b < B; ++b) {
    try {
      validate_request(reqs[b], model_.config(), tok_);
    } catch (const Error& e) {
      throw Error(strfmt("request %zu: %s", b, e.what()));
    }
  }
  std::vector<std::unique_ptr<Sequence>> seqs;
  std::vector<GenerationOutput> out(B);
  for (size_t b = 0; b < B; ++b) {
    seqs.push_back(std::make_unique<Sequence>(model_, tok_, reqs[b], form_));
    out[b].prompt_tokens = int64_t(reqs[b].prompt.size());
    // A prompt equal to an earlier one is not computed again.
    for (size_t a = 0; a < b; ++a)
      if (reqs[a].prompt == reqs[b].prompt) {
        seqs[b]->share_prefill(seqs[a].get());
        break;
      }
  }
  auto emit = [&](size_t b, const std::string& text) {
    if (text.empty()) return;
    out[b].text += text;
    if (on_text && !on_text(b, text)) seqs[b]->finish("cancelled");
  };
  Decoder decoder(model_, tok_);
  std::vector<Sequence*> running;
  std::vector<size_t> which;
  std::vector<std::vector<TokenEvent>> events;
  auto t0 = std::chrono::steady_clock::now();
  double prefill_s = -1;
  for (;;) {
    running.clear();
    which.clear();
    for (size_t b = 0; b < B; ++b)
      if (!seqs[b]->done()) {
        running.push_back(seqs[b].get());
        which.push_back(b);
      }
    if (running.empty()) break;
    decoder.step(running, -1, events);
    for (size_t j = 0; j < running.size(); ++j)
      for (const TokenEvent& e : events[j]) emit(which[j], e.text);
    if (prefill_s < 0) {  // the first step prefilled every prompt
      prefill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      t0 = std::chrono::steady_clock::now();
    }
  }
  const double decode_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (size_t b = 0; b < B; ++b) {
    emit(b, seqs[b]->flush());
    out[b].tokens = seqs[b]->generated;
    out[b].finish_reason = seqs[b]->finish_reason();
    out[b].drafts = seqs[b]->draft_stats;
    out[b].prefill_seconds = prefill_s;
    out[b].decode_seconds = decode_s;
  }
  return out;
}

}  // namespace seek
