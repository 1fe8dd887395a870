// decode.cpp — see decode.h.
#include "engine/decode.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/kernels.h"
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
  const SpeculativeParams& sp = r.speculative;
  if (sp.draft_tokens < 0 || sp.draft_tokens > SpeculativeParams::kMaxDraft)
    throw Error(strfmt("draft_tokens = %lld is out of range (0 to %lld; 0 is off)", (long long)sp.draft_tokens,
                       (long long)SpeculativeParams::kMaxDraft));
  if (sp.draft_tokens > 0 && c.num_nextn_predict_layers < 1)
    throw Error(strfmt("draft_tokens = %lld: drafting needs a model with an MTP module, and this one has none "
                       "(num_nextn_predict_layers = 0); use 0",
                       (long long)sp.draft_tokens));
  if (!(sp.min_draft_prob >= 0 && sp.min_draft_prob <= 1))
    throw Error(strfmt("min_draft_prob = %g is out of range [0, 1]", double(sp.min_draft_prob)));
}

SpeculativeParams default_speculative(const Config& c) {
  SpeculativeParams s;
  if (c.num_nextn_predict_layers > 0) {
    // One draft a step: on the 64M teacher (configs/teacher-64m.json) 1.22x at batch 1 against 1.15x
    // for two and 1.19x for three (docs/results.md, issue 14); further drafts are accepted half as often.
    s.draft_tokens = 1;
    s.min_draft_prob = 0.f;
  }
  return s;
}

// ---- drafting statistics ------------------------------------------------------------------------------

void DraftStats::add(const DraftStats& o) {
  steps += o.steps;
  tokens += o.tokens;
  for (int64_t i = 0; i < SpeculativeParams::kMaxDraft; ++i) {
    drafted[i] += o.drafted[i];
    accepted[i] += o.accepted[i];
  }
}

int64_t DraftStats::total_drafted() const {
  int64_t n = 0;
  for (int64_t d : drafted) n += d;
  return n;
}

int64_t DraftStats::total_accepted() const {
  int64_t n = 0;
  for (int64_t a : accepted) n += a;
  return n;
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
  if (const int64_t k = req_.speculative.draft_tokens; k > 0) {
    drafting_ = true;
    // Positions: as many as the main cache's, and the chained drafts beyond them for a while.
    mtp_cache_ = model.new_mtp_cache(int64_t(req_.prompt.size()) + req_.stop.max_new_tokens + k, form);
    draft_q_.resize(size_t(k));
  }
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

namespace {

// The first n positions of `from` into `to` (same model and form), which then holds exactly those.
void copy_positions(const KVCache& from, KVCache& to, int64_t n) {
  for (size_t l = 0; l < from.layers.size(); ++l) {
    const size_t k_row = from.layers[l].k.size() / size_t(from.capacity);
    const size_t v_row = from.layers[l].v.size() / size_t(from.capacity);
    std::copy_n(from.layers[l].k.begin(), size_t(n) * k_row, to.layers[l].k.begin());
    std::copy_n(from.layers[l].v.begin(), size_t(n) * v_row, to.layers[l].v.begin());
  }
  to.len = n;
}

}  // namespace

Decoder::Decoder(Model& model, const Tokenizer* tok)
    : model_(model), tok_(tok), usable_vocab_(tok ? tok->vocab_size() : model.config().vocab_size) {
  if (tok && tok->vocab_size() > model.config().vocab_size)
    throw Error(strfmt("the tokenizer has %lld tokens but the model's vocabulary is %lld", (long long)tok->vocab_size(),
                       (long long)model.config().vocab_size));
}

int64_t Decoder::step(std::span<Sequence* const> seqs, int64_t prefill_budget,
                      std::vector<std::vector<TokenEvent>>& events) {
  const int64_t V = model_.config().vocab_size, D = model_.config().hidden_size;
  events.resize(seqs.size());
  for (auto& e : events) e.clear();
  // Drafting switched off: these sequences decode without drafts from now on (the drafts they hold are
  // still verified). Keeping the module's input for later would cost a catch-up over every position
  // decoded meanwhile.
  if (!drafting_on_)
    for (Sequence* s : seqs)
      if (s->drafting_) {
        s->drafting_ = false;
        s->pending_h_ = {};
        s->pending_ids_ = {};
      }
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
  bool any_drafting = false;
  for (size_t i = 0; i < seqs.size(); ++i) {
    Sequence& s = *seqs[i];
    if (s.prefilling()) continue;
    const int64_t n = 1 + int64_t(s.draft.size());
    items_.push_back({&s.cache, inputs_.data() + at, n, n});
    item_of_.push_back(int64_t(i));
    any_drafting |= s.drafting_;
    at += n;
    rows += n;
  }
  for (size_t i = 0; i < seqs.size() && budget > 0; ++i) {
    Sequence& s = *seqs[i];
    if (!s.prefilling() || s.leader_) continue;
    const int64_t left = int64_t(s.req_.prompt.size()) - s.prefilled, take = std::min(left, budget);
    items_.push_back({&s.cache, s.req_.prompt.data() + s.prefilled, take, take == left ? 1 : 0});
    item_of_.push_back(int64_t(i));
    any_drafting |= s.drafting_;
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
  if (any_drafting) hidden_.resize(size_t(rows * D));
  model_.forward_batch(items_, logits_.data(), any_drafting ? hidden_.data() : nullptr);

  // One token for sequence s from logits row `row` (copied: others may read it too): sampled, or, for
  // draft position r >= 0, the draft verified (*accepted).
  auto sample = [&](Sequence& s, int64_t row, TokenEvent& ev, int64_t r, bool* accepted) {
    usable_row(logits_.data() + row * V);
    // Drafts with the drafter's distribution are verified by speculative sampling; drafts without one
    // (set by the caller) by sampling as usual and comparing, which also keeps the model's distribution.
    auto pick = [&] {
      if (r >= 0 && r < s.q_drafts_) return s.sampler_.verify(z_.data(), s.draft[size_t(r)], s.draft_q_[size_t(r)], accepted);
      const int32_t tok = s.sampler_.sample(z_.data());
      if (r >= 0) *accepted = tok == s.draft[size_t(r)];
      return tok;
    };
    const int k = s.req_.top_logprobs;
    if (k < 0) return pick();
    // Log-probabilities from the raw logits (before penalties and temperature; pick() changes z_ in
    // place) over the usable vocabulary: the chosen token's and the k largest, less the log-sum-exp,
    // which takes the sampler's two vector passes (the largest, then exp_sum, here in place over raw_).
    raw_.assign(z_.begin(), z_.begin() + usable_vocab_);
    const int32_t tok = pick();
    top_ids_.resize(size_t(std::min<int64_t>(k, usable_vocab_)));
    topk(raw_.data(), usable_vocab_, int64_t(top_ids_.size()), top_ids_.data());
    const float mx = raw_[size_t(top_ids_.empty() ? argmax(raw_.data(), usable_vocab_) : top_ids_[0])];
    ev.logprob = raw_[size_t(tok)];
    for (int32_t id : top_ids_) ev.top.push_back({id, raw_[size_t(id)]});
    const float lse = mx + float(std::log(exp_sum(raw_.data(), raw_.data(), usable_vocab_, mx, 1.0f)));
    ev.logprob -= lse;
    for (auto& [id, lp] : ev.top) lp -= lse;
    return tok;
  };
  // The main model's hidden states at the rows [row0, row0 + n) of this step, which its cache kept, and
  // the token after each (ids[0, n)), become the MTP module's next input.
  auto keep_hidden = [&](Sequence& s, int64_t row0, int64_t n, const int32_t* ids) {
    if (!s.drafting_ || n <= 0) return;
    s.pending_h_.insert(s.pending_h_.end(), hidden_.begin() + row0 * D, hidden_.begin() + (row0 + n) * D);
    s.pending_ids_.insert(s.pending_ids_.end(), ids, ids + n);
  };
  // Samples and accepts tokens for s from its rows row0 .. row0 + n - 1 (n > 1: the draft is verified);
  // h_row0: the first row's index among all the step's rows.
  auto decode = [&](Sequence& s, size_t i, int64_t row0, int64_t n, int64_t h_row0) {
    const int64_t kept_before = s.cache.len - n;
    const int64_t drafted = int64_t(s.draft.size());
    int64_t accepted = 0;
    toks_.clear();
    for (int64_t r = 0; r < n; ++r) {
      TokenEvent ev;
      bool ok = false;
      const int32_t tok = sample(s, row0 + r, ev, r < drafted ? r : -1, &ok);
      toks_.push_back(tok);
      const bool more = s.accept(tok, ev);
      if (ev.token >= 0) events[i].push_back(std::move(ev));
      if (r < drafted) {
        s.draft_stats.drafted[r] += 1;
        s.draft_stats.accepted[r] += ok;
      }
      if (!more || r >= drafted || !ok) break;
      ++accepted;
    }
    s.draft_stats.steps += 1;
    s.draft_stats.tokens += int64_t(toks_.size());
    if (n > 1) s.cache.truncate(kept_before + 1 + accepted);
    s.draft.clear();
    s.q_drafts_ = 0;
    if (!s.done()) keep_hidden(s, h_row0, accepted + 1, toks_.data());
  };
  int64_t h_row = 0;  // the first row of item j among the step's rows
  for (size_t j = 0; j < items_.size(); h_row += items_[j].n, ++j) {
    const size_t i = size_t(item_of_[j]);
    Sequence& s = *seqs[i];
    if (!s.prefilling()) {
      decode(s, i, logit_row_[j], items_[j].n, h_row);
      continue;
    }
    const int64_t from = s.prefilled, n = items_[j].n;
    s.prefilled += n;
    if (s.prefilling()) {
      keep_hidden(s, h_row, n, s.req_.prompt.data() + from + 1);
      continue;
    }
    // The prompt's last chunk: its rows but the last are followed by prompt tokens; the last by the
    // first output token (decode).
    keep_hidden(s, h_row, n - 1, s.req_.prompt.data() + from + 1);
    const size_t pending_prompt = s.pending_h_.size();
    decode(s, i, logit_row_[j], 1, h_row + n - 1);
    // Followers of this prompt: its cache, and their own first token from its logits.
    for (size_t f = 0; f < seqs.size(); ++f) {
      Sequence& o = *seqs[f];
      if (o.leader_ != &s || !o.prefilling()) continue;
      copy_positions(s.cache, o.cache, int64_t(o.req_.prompt.size()));
      o.prefilled = o.cache.len;
      // The leader's module cache (earlier chunks) and hidden states of the prompt, when it kept them;
      // a follower of a leader that does not draft does not draft either (the module would miss the
      // prompt).
      if (o.drafting_ && s.drafting_) {
        copy_positions(s.mtp_cache_, o.mtp_cache_, s.mtp_cache_.len);
        o.mtp_skipped_ = s.mtp_skipped_;
        o.pending_h_.assign(s.pending_h_.begin(), s.pending_h_.begin() + long(pending_prompt));
        o.pending_ids_.assign(s.pending_ids_.begin(), s.pending_ids_.begin() + long(pending_prompt / size_t(D)));
      } else {
        o.drafting_ = false;
      }
      decode(o, f, logit_row_[j], 1, h_row + n - 1);
    }
  }
  draft(seqs);
  return rows;
}

float* Decoder::usable_row(const float* row) {
  const int64_t V = model_.config().vocab_size;
  z_.assign(row, row + V);
  // Models pad their vocabulary past the tokenizer's (DeepSeek-V3: 129280 rows, 128815 tokens): ids with
  // no text are never sampled.
  for (int64_t v = usable_vocab_; v < V; ++v) z_[size_t(v)] = -INFINITY;
  return z_.data();
}

void Decoder::draft(std::span<Sequence* const> seqs) {
  const int64_t V = model_.config().vocab_size, D = model_.config().hidden_size;
  // The module catches up on each drafting sequence's new positions; its last one gives the first draft.
  // A prompt still being prefilled catches up chunk by chunk (no draft yet), so that the hidden states
  // kept for it never exceed one chunk's.
  mtp_items_.clear();
  drafters_.clear();
  for (Sequence* s : seqs) {
    if (!s->drafting_ || s->done() || s->pending_ids_.empty()) continue;
    // Positions the main model did not compute here (a prompt prefix restored from the prefix cache)
    // have no hidden states: the module's cache starts after them. Its positions are then shifted by
    // that many, which rotary attention does not see (it depends on distances only).
    if (s->mtp_cache_.len == 0) s->mtp_skipped_ = s->cache.len - int64_t(s->pending_ids_.size());
    SEEK_ASSERT(s->mtp_skipped_ + s->mtp_cache_.len + int64_t(s->pending_ids_.size()) == s->cache.len);
    mtp_items_.push_back({&s->mtp_cache_, s->pending_h_.data(), s->pending_ids_.data(), int64_t(s->pending_ids_.size()),
                          s->prefilling() ? 0 : 1});
    drafters_.push_back(s);
  }
  if (mtp_items_.empty()) return;
  // Drafts for s, at most the tokens it may still give after the next one.
  auto wanted = [](const Sequence& s) {
    return std::min(s.req_.speculative.draft_tokens, s.req_.stop.max_new_tokens - int64_t(s.generated.size()) - 1);
  };
  // Draft r of s from MTP logits row `row`; false when the drafter's confidence ends drafting.
  auto propose = [&](Sequence& s, int64_t row) {
    float confidence = 1;
    const size_t r = s.draft.size();
    const float gate = s.req_.speculative.min_draft_prob;
    const int32_t d = s.sampler_.draft(usable_row(mtp_logits_.data() + row * V), s.draft_q_[r], gate > 0 ? &confidence : nullptr);
    if (confidence < gate) return false;
    s.draft.push_back(d);
    s.q_drafts_ = int64_t(s.draft.size());
    return true;
  };
  for (int64_t depth = 0; !mtp_items_.empty(); ++depth) {
    int64_t M = 0;  // logit rows: one per item but the prompts' catch-ups
    for (const Model::MtpItem& it : mtp_items_) M += it.n_logits;
    mtp_logits_.resize(size_t(M * V));
    mtp_hidden_.resize(size_t(M * D));
    model_.forward_mtp_batch(0, mtp_items_, mtp_logits_.data(), mtp_hidden_.data());
    if (depth == 0)
      for (Sequence* s : drafters_) {
        s->pending_h_.clear();
        s->pending_ids_.clear();
      }
    // The next depth chains the module on its own output state and the draft just made.
    chain_h_.swap(mtp_hidden_);
    size_t kept = 0;
    int64_t row = 0;  // item j's logit row
    for (size_t j = 0; j < mtp_items_.size(); ++j) {
      const int64_t m = row;
      row += mtp_items_[j].n_logits;
      Sequence& s = *drafters_[j];
      if (mtp_items_[j].n_logits == 0) continue;  // a prompt's chunk: caught up, no draft
      if (int64_t(s.draft.size()) >= wanted(s) || !propose(s, m) || int64_t(s.draft.size()) >= wanted(s)) continue;
      mtp_items_[kept] = {&s.mtp_cache_, chain_h_.data() + m * D, &s.draft.back(), 1, 1};
      drafters_[kept] = &s;
      ++kept;
    }
    mtp_items_.resize(kept);
    drafters_.resize(kept);
  }
  // The chained positions leave the module's cache: the next step's catch-up writes them from the main
  // model's own hidden states.
  for (Sequence* s : seqs)
    if (s->drafting_ && !s->prefilling())
      s->mtp_cache_.truncate(std::min(s->mtp_cache_.len, s->cache.len - s->mtp_skipped_));
}

}  // namespace seek
