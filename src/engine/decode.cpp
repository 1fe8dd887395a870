// decode.cpp — see decode.h.
#include "engine/decode.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "util/error.h"

namespace seek {

void validate_request(const GenerationRequest& r, const Config& c, const Tokenizer* tok) {
  if (tok && tok->vocab_size() > c.vocab_size)
    throw Error(strfmt("the tokenizer has %lld tokens but the model's vocabulary is %lld", (long long)tok->vocab_size(),
                       (long long)c.vocab_size));
  if (r.prompt.empty()) throw Error("empty prompt");
  for (int32_t id : r.prompt)
    if (id < 0 || id >= c.vocab_size)
      throw Error(strfmt("prompt token id %d is outside the vocabulary [0, %lld)", id, (long long)c.vocab_size));
  if (r.stop.max_new_tokens < 1) throw Error("max_new_tokens must be at least 1");
  if (!tok && !r.stop.stop_strings.empty()) throw Error("stop strings need a tokenizer");
  const int64_t positions = int64_t(r.prompt.size()) + r.stop.max_new_tokens;
  if (positions > c.max_position_embeddings)
    throw Error(strfmt("%zu prompt + %lld new tokens exceed the model's context of %lld tokens", r.prompt.size(),
                       (long long)r.stop.max_new_tokens, (long long)c.max_position_embeddings));
  r.sampling.validate(c.vocab_size);
}

// ---- stop strings --------------------------------------------------------------------------------------

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

// ---- a sequence -------------------------------------------------------------------------------------------

Sequence::Sequence(const Model& model, const Tokenizer* tok, GenerationRequest r, MlaForm form)
    : cache(model.new_cache(int64_t(r.prompt.size()) + r.stop.max_new_tokens, form)),
      req_(std::move(r)),
      sampler_(req_.sampling, model.config().vocab_size),
      text_(tok ? std::make_unique<StreamDecoder>(*tok, true) : nullptr),
      stops_(req_.stop.stop_strings) {
  sampler_.add_prompt(req_.prompt.data(), int64_t(req_.prompt.size()));
}

void Sequence::finish(const std::string& reason) {
  if (done_) return;
  done_ = true;
  finish_reason_ = reason;
}

std::string Sequence::flush() {
  if (!text_ || (finish_reason_ != "stop" && finish_reason_ != "length")) return {};
  std::string rest = stops_.stopped() ? std::string() : stops_.push(text_->flush());
  if (!stops_.stopped()) rest += stops_.finish();
  return rest;
}

bool Sequence::accept(int32_t tok, TokenEvent& ev) {
  const StopCriteria& stop = req_.stop;
  if (std::find(stop.stop_ids.begin(), stop.stop_ids.end(), tok) != stop.stop_ids.end()) {
    finish("stop");
    return false;
  }
  generated.push_back(tok);
  last_ = tok;
  ev.token = tok;
  if (text_) {
    ev.text = stops_.push(text_->push(tok));
    if (stops_.stopped()) finish("stop");
  }
  if (!done_ && int64_t(generated.size()) >= stop.max_new_tokens) finish("length");
  return !done_;
}

// ---- the step -------------------------------------------------------------------------------------------

Decoder::Decoder(Model& model, const Tokenizer* tok)
    : model_(model), tok_(tok), usable_vocab_(tok ? tok->vocab_size() : model.config().vocab_size) {
  if (tok && tok->vocab_size() > model.config().vocab_size)
    throw Error(strfmt("the tokenizer has %lld tokens but the model's vocabulary is %lld", (long long)tok->vocab_size(),
                       (long long)model.config().vocab_size));
}

int64_t Decoder::step(std::span<Sequence* const> seqs, int64_t prefill_budget,
                      std::vector<std::vector<TokenEvent>>& events) {
  const int64_t V = model_.config().vocab_size;
  events.resize(seqs.size());
  for (auto& e : events) e.clear();
  // The inputs: decoding sequences first (their last token, then the draft), then prompt chunks.
  items_.clear();
  item_of_.clear();
  inputs_.clear();
  for (size_t i = 0; i < seqs.size(); ++i) {
    Sequence& s = *seqs[i];
    SEEK_ASSERT(!s.done());
    if (s.prefilling()) continue;
    inputs_.push_back(s.last_);
    inputs_.insert(inputs_.end(), s.draft.begin(), s.draft.end());
  }
  int64_t at = 0, rows = 0, budget = prefill_budget < 0 ? INT64_MAX : prefill_budget;
  for (size_t i = 0; i < seqs.size(); ++i) {
    Sequence& s = *seqs[i];
    if (s.prefilling()) continue;
    const int64_t n = 1 + int64_t(s.draft.size());
    items_.push_back({&s.cache, inputs_.data() + at, n, n});
    item_of_.push_back(int64_t(i));
    at += n;
    rows += n;
  }
  for (size_t i = 0; i < seqs.size() && budget > 0; ++i) {
    Sequence& s = *seqs[i];
    if (!s.prefilling() || s.leader_) continue;
    const int64_t left = int64_t(s.req_.prompt.size()) - s.prefilled, take = std::min(left, budget);
    items_.push_back({&s.cache, s.req_.prompt.data() + s.prefilled, take, take == left ? 1 : 0});
    item_of_.push_back(int64_t(i));
    budget -= take;
    rows += take;
  }
  if (items_.empty()) return 0;
  int64_t n_logits = 0;
  logit_row_.assign(items_.size(), 0);
  for (size_t j = 0; j < items_.size(); ++j) {
    logit_row_[j] = n_logits;
    n_logits += items_[j].n_logits;
  }
  logits_.resize(size_t(n_logits * V));
  model_.forward_batch(items_, logits_.data());

  // One token sampled from logits row `row` for sequence s (the row is copied: others may read it too).
  auto sample = [&](Sequence& s, int64_t row, TokenEvent& ev) {
    z_.assign(logits_.begin() + row * V, logits_.begin() + (row + 1) * V);
    // Models pad their vocabulary past the tokenizer's (DeepSeek-V3: 129280 rows, 128815 tokens): ids
    // with no text are never sampled.
    for (int64_t v = usable_vocab_; v < V; ++v) z_[size_t(v)] = -INFINITY;
    const int k = s.req_.top_logprobs;
    if (k < 0) return s.sampler_.sample(z_.data());
    // Log-probabilities from the raw logits (before penalties and temperature), over the usable vocabulary.
    raw_.assign(z_.begin(), z_.begin() + usable_vocab_);
    const float mx = *std::max_element(raw_.begin(), raw_.end());
    double sum = 0;
    for (float x : raw_) sum += std::exp(double(x - mx));
    const float lse = mx + float(std::log(sum));
    const int32_t tok = s.sampler_.sample(z_.data());
    ev.logprob = raw_[size_t(tok)] - lse;
    const int64_t kk = std::min<int64_t>(k, usable_vocab_);
    if (kk > 0) {
      std::vector<std::pair<float, int32_t>> best;
      best.reserve(size_t(usable_vocab_));
      for (int64_t v = 0; v < usable_vocab_; ++v) best.push_back({raw_[size_t(v)], int32_t(v)});
      std::partial_sort(best.begin(), best.begin() + kk, best.end(),
                        [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
      for (int64_t i = 0; i < kk; ++i) ev.top.push_back({best[size_t(i)].second, best[size_t(i)].first - lse});
    }
    return tok;
  };
  // Samples and accepts tokens for s from its rows row0 .. row0 + n - 1 (n > 1: the draft is verified).
  auto decode = [&](Sequence& s, size_t i, int64_t row0, int64_t n) {
    const int64_t kept_before = s.cache.len - n;
    int64_t accepted = 0;
    for (int64_t r = 0; r < n; ++r) {
      TokenEvent ev;
      const int32_t tok = sample(s, row0 + r, ev);
      const bool more = s.accept(tok, ev);
      if (ev.token >= 0) events[i].push_back(std::move(ev));
      if (!more || r >= int64_t(s.draft.size()) || tok != s.draft[size_t(r)]) break;
      ++accepted;
    }
    if (n > 1) s.cache.truncate(kept_before + 1 + accepted);
    s.draft.clear();
  };
  for (size_t j = 0; j < items_.size(); ++j) {
    const size_t i = size_t(item_of_[j]);
    Sequence& s = *seqs[i];
    if (!s.prefilling()) {
      decode(s, i, logit_row_[j], items_[j].n);
      continue;
    }
    s.prefilled += items_[j].n;
    if (s.prefilling()) continue;
    decode(s, i, logit_row_[j], 1);
    // Followers of this prompt: its cache, and their own first token from its logits.
    for (size_t f = 0; f < seqs.size(); ++f) {
      Sequence& o = *seqs[f];
      if (o.leader_ != &s || !o.prefilling()) continue;
      for (size_t l = 0; l < s.cache.layers.size(); ++l) {
        const size_t k_row = s.cache.layers[l].k.size() / size_t(s.cache.capacity);
        const size_t v_row = s.cache.layers[l].v.size() / size_t(s.cache.capacity);
        const size_t positions = size_t(o.req_.prompt.size());
        std::copy_n(s.cache.layers[l].k.begin(), positions * k_row, o.cache.layers[l].k.begin());
        std::copy_n(s.cache.layers[l].v.begin(), positions * v_row, o.cache.layers[l].v.begin());
      }
      o.cache.len = int64_t(o.req_.prompt.size());
      o.prefilled = o.cache.len;
      decode(o, f, logit_row_[j], 1);
    }
  }
  return rows;
}

}  // namespace seek
