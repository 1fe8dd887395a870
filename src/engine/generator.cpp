// generator.cpp — see generator.h.
#include "engine/generator.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "util/error.h"

namespace seek {

std::string StopMatcher::push(std::string_view text) {
  if (stopped_) return {};
  pending_.append(text);
  // The earliest complete stop string ends the text.
  size_t cut = std::string::npos;
  for (const std::string& s : stops_)
    if (!s.empty()) cut = std::min(cut, pending_.find(s));
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    return out;
  }
  // Hold back the longest tail that is the start of some stop string.
  size_t hold = 0;
  for (const std::string& s : stops_)
    for (size_t k = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size()); k > hold; --k)
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopMatcher::finish() {
  std::string out;
  if (!stopped_) out.swap(pending_);
  return out;
}

namespace {
// dst's first src.len positions become src's (the caches may differ in capacity, not in layout).
void copy_prefix(const KVCache& src, KVCache& dst) {
  SEEK_ASSERT(src.layers.size() == dst.layers.size() && src.len <= dst.capacity);
  for (size_t l = 0; l < src.layers.size(); ++l) {
    const LayerCache& a = src.layers[l];
    LayerCache& b = dst.layers[l];
    const size_t k_row = a.k.size() / size_t(src.capacity), v_row = a.v.size() / size_t(src.capacity);
    std::copy_n(a.k.begin(), size_t(src.len) * k_row, b.k.begin());
    std::copy_n(a.v.begin(), size_t(src.len) * v_row, b.v.begin());
  }
  dst.len = src.len;
}
}  // namespace

Generator::Generator(Model& model, const Tokenizer* tokenizer, MlaForm form)
    : model_(model), tok_(tokenizer), form_(form) {}

std::vector<GenerationOutput> Generator::run(const std::vector<GenerationRequest>& reqs, const OnText& on_text) {
  const int64_t B = int64_t(reqs.size()), V = model_.config().vocab_size;
  if (B == 0) return {};
  if (tok_ && tok_->vocab_size() > V)
    throw Error(strfmt("the tokenizer has %lld tokens but the model's vocabulary is %lld", (long long)tok_->vocab_size(),
                       (long long)V));
  struct Seq {
    KVCache cache;
    std::unique_ptr<Sampler> sampler;
    std::unique_ptr<StreamDecoder> text;
    StopMatcher stop;
    int32_t last = -1;
    bool done = false;
  };
  std::vector<Seq> seqs;
  std::vector<GenerationOutput> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const GenerationRequest& r = reqs[size_t(b)];
    if (r.prompt.empty()) throw Error(strfmt("request %lld: empty prompt", (long long)b));
    if (r.stop.max_new_tokens < 1) throw Error(strfmt("request %lld: max_new_tokens must be at least 1", (long long)b));
    if (!tok_ && !r.stop.stop_strings.empty()) throw Error("stop strings need a tokenizer");
    const int64_t cap = int64_t(r.prompt.size()) + r.stop.max_new_tokens;
    if (cap > model_.config().max_position_embeddings)
      throw Error(strfmt("request %lld: %zu prompt + %lld new tokens exceed max_position_embeddings = %lld", (long long)b,
                         r.prompt.size(), (long long)r.stop.max_new_tokens, (long long)model_.config().max_position_embeddings));
    Seq s{model_.new_cache(cap, form_), std::make_unique<Sampler>(r.sampling, V),
          tok_ ? std::make_unique<StreamDecoder>(*tok_, true) : nullptr, StopMatcher(r.stop.stop_strings)};
    s.sampler->add_prompt(r.prompt.data(), int64_t(r.prompt.size()));
    seqs.push_back(std::move(s));
    out[size_t(b)].prompt_tokens = int64_t(r.prompt.size());
  }

  auto emit = [&](int64_t b, const std::string& text) {
    if (text.empty()) return;
    out[size_t(b)].text += text;
    if (on_text && !on_text(size_t(b), text)) {
      seqs[size_t(b)].done = true;
      out[size_t(b)].finish_reason = "cancelled";
    }
  };
  // One sampled token for sequence b: stop checks, text.
  auto accept = [&](int64_t b, int32_t tok) {
    Seq& s = seqs[size_t(b)];
    GenerationOutput& o = out[size_t(b)];
    const StopCriteria& stop = reqs[size_t(b)].stop;
    if (std::find(stop.stop_ids.begin(), stop.stop_ids.end(), tok) != stop.stop_ids.end()) {
      s.done = true;
      o.finish_reason = "stop";
      return;
    }
    o.tokens.push_back(tok);
    s.last = tok;
    if (s.text) {
      std::string shown = s.stop.push(s.text->push(tok));
      emit(b, shown);
      if (s.stop.stopped()) {
        s.done = true;
        o.finish_reason = "stop";
        return;
      }
    }
    if (!s.done && int64_t(o.tokens.size()) >= stop.max_new_tokens) {
      s.done = true;
      o.finish_reason = "length";
    }
  };

  std::vector<float> logits(static_cast<size_t>(B * V));
  // Models pad their vocabulary past the tokenizer's (DeepSeek-V3: 129280 rows, 128815 tokens): ids with
  // no text are never sampled.
  const int64_t usable = tok_ ? tok_->vocab_size() : V;
  auto sample = [&](int64_t b, float* z) {
    for (int64_t i = usable; i < V; ++i) z[i] = -INFINITY;
    return seqs[size_t(b)].sampler->sample(z);
  };
  std::vector<Model::BatchItem> items;
  std::vector<int64_t> which;
  auto t0 = std::chrono::steady_clock::now();
  // Prefill every distinct prompt in one pass. A request whose prompt equals an earlier one (GRPO's G
  // samples of a question) is not computed again: it copies that sequence's cache and logits.
  std::vector<int64_t> source(static_cast<size_t>(B), -1), row(static_cast<size_t>(B), 0);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t a = 0; a < b && source[size_t(b)] < 0; ++a)
      if (source[size_t(a)] < 0 && reqs[size_t(a)].prompt == reqs[size_t(b)].prompt) source[size_t(b)] = a;
    if (source[size_t(b)] >= 0) continue;
    row[size_t(b)] = int64_t(items.size());
    items.push_back({&seqs[size_t(b)].cache, reqs[size_t(b)].prompt.data(), int64_t(reqs[size_t(b)].prompt.size())});
  }
  model_.forward_batch(items, logits.data());
  for (int64_t b = 0; b < B; ++b)
    if (source[size_t(b)] >= 0) {
      const int64_t a = source[size_t(b)];
      copy_prefix(seqs[size_t(a)].cache, seqs[size_t(b)].cache);
      row[size_t(b)] = row[size_t(a)];
    }
  std::vector<float> z(static_cast<size_t>(V));
  for (int64_t b = 0; b < B; ++b) {
    std::copy_n(&logits[size_t(row[size_t(b)] * V)], V, z.data());  // sampling masks ids in place
    accept(b, sample(b, z.data()));
  }
  const double prefill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t0 = std::chrono::steady_clock::now();
  // Decode: the running sequences, one token each, until none is left.
  for (;;) {
    items.clear();
    which.clear();
    for (int64_t b = 0; b < B; ++b)
      if (!seqs[size_t(b)].done) {
        items.push_back({&seqs[size_t(b)].cache, &seqs[size_t(b)].last, 1});
        which.push_back(b);
      }
    if (items.empty()) break;
    model_.forward_batch(items, logits.data());
    for (size_t j = 0; j < which.size(); ++j) accept(which[j], sample(which[j], &logits[j * size_t(V)]));
  }
  const double decode_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int64_t b = 0; b < B; ++b) {
    Seq& s = seqs[size_t(b)];
    if (s.text && out[size_t(b)].finish_reason != "cancelled") {
      std::string rest = s.stop.stopped() ? std::string() : s.stop.push(s.text->flush());
      if (!s.stop.stopped()) rest += s.stop.finish();
      emit(b, rest);
    }
    out[size_t(b)].prefill_seconds = prefill_s;
    out[size_t(b)].decode_seconds = decode_s;
  }
  return out;
}

}  // namespace seek
