// decode.h — the one decoding step of seek, under every generation loop: batch generation
// (engine/generator.h: generate, chat, eval, rollouts, the demo) and the server's scheduler
// (engine/scheduler.h). Request validation, sampling, vocabulary masking, stops and streamed text are
// written here once.
//
// A Sequence is one request being decoded. A step is one Model::forward_batch over the pending tokens
// of several sequences — a chunk of a prompt still being prefilled, or the last sampled token followed
// by the sequence's draft (tokens a drafter proposes: speculative decoding) — and then, for every
// sequence whose input reached the end of its prompt or was a decode: the next token sampled from the
// model's logits (ids past the tokenizer's vocabulary masked) — at a drafted position, the draft
// verified: kept when it is the token greedy decoding (or sampling, for a draft the caller set) picks
// there, or by speculative sampling for the MTP module's drafts (engine/sampler.h) — up to the first
// draft not kept, whose position gets the verifier's own token; each output token checked against the
// stops and its text streamed, and the KV cache truncated to the tokens kept. Every output token has the
// model's distribution given the tokens before it, so a draft changes how many tokens a step yields,
// never their law: greedy decoding gives the same tokens with and without drafts.
//
// Drafts come from DeepSeek-V3's MTP module (speculative decoding, GenerationRequest::speculative):
// module 0 at position i reads the main model's normed hidden state h_i and the token t_{i+1} and
// predicts t_{i+2}. After each step the module catches up on the positions the main cache kept (its own
// cache stays as long as the main one), its prediction at the last position is the first draft, and
// further drafts chain the module through its own output state and the previous draft (as SGLang does
// for models with one MTP layer); those chained positions leave its cache again. Drafting stops at a
// draft the drafter gives less than min_draft_prob.
//
// Requests with identical prompts (G samples of one question) can share one prefill
// (Sequence::share_prefill): the first computes the prompt, the others copy its cache and sample their
// first token from its logits. Give them different sampling seeds, or they sample alike.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/sampler.h"
#include "model/model.h"
#include "model/tokenizer.h"

namespace seek {

struct StopCriteria {
  int64_t max_new_tokens = 256;
  std::vector<int32_t> stop_ids;         // generating one of these ends the sequence (it is not output)
  std::vector<std::string> stop_strings; // the text ends before the first occurrence (may span tokens)
  // Adds ids to stop_ids, leaving out negative ones (a token the tokenizer lacks) and those already there
  // (the tokenizer's end of text named again by generation_config.json or a chat format).
  void add_stop_ids(const std::vector<int32_t>& ids) {
    for (int32_t id : ids)
      if (id >= 0 && std::find(stop_ids.begin(), stop_ids.end(), id) == stop_ids.end()) stop_ids.push_back(id);
  }
};

struct SpeculativeParams {
  static constexpr int64_t kMaxDraft = 8;
  int64_t draft_tokens = 0;    // drafted per step, 0 (off) to kMaxDraft; needs a model with MTP
  float min_draft_prob = 0.f;  // stop drafting at a draft whose drafter probability is below this
};

// Drafting where it pays: on for a model with an MTP module (measured in docs/results.md, issue 14),
// off for the others.
SpeculativeParams default_speculative(const Config& c);

struct GenerationRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  StopCriteria stop;
  SpeculativeParams speculative;
  int top_logprobs = -1;  // -1: no logprobs; k >= 0: the chosen token's logprob and the k most likely
};

// Throws Error naming what is wrong: an empty prompt, a prompt id outside the vocabulary,
// max_new_tokens < 1, prompt + max_new_tokens beyond the model's context, sampling parameters out of
// range, drafts asked of a model without MTP or out of range, stop strings without a tokenizer, or a
// tokenizer with more tokens than the model.
void validate_request(const GenerationRequest& r, const Config& c, const Tokenizer* tok);

// Text that may begin a stop string is held back until it cannot (or does) match.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Adds text; returns what can be shown now. `stopped()` turns true at the first stop string.
  std::string push(std::string_view text);
  std::string finish();  // the held-back tail (no stop string completed)
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

// One output token of a step: its id, the text that became final with it, and (when the request asks
// for them) its log-probability and the most likely alternatives, from the model's raw logits.
struct TokenEvent {
  int32_t token = -1;
  std::string text;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;
};

// How speculative decoding went: decode steps, output tokens they gave, and per draft position how many
// drafts were verified and accepted.
struct DraftStats {
  int64_t steps = 0, tokens = 0;
  int64_t drafted[SpeculativeParams::kMaxDraft] = {}, accepted[SpeculativeParams::kMaxDraft] = {};
  void add(const DraftStats& o);
  int64_t total_drafted() const;
  int64_t total_accepted() const;
};

class Sequence {
 public:
  // Allocates the KV cache for prompt + max_new_tokens positions. The request must be valid
  // (validate_request).
  Sequence(const Model& model, const Tokenizer* tok, GenerationRequest r, MlaForm form);

  const GenerationRequest& request() const { return req_; }
  KVCache cache;
  int64_t prefilled = 0;           // prompt tokens in the cache (a prefix-cache restore sets it too)
  std::vector<int32_t> draft;      // tokens proposed for the next step; cleared by the step
  std::vector<int32_t> generated;  // output tokens (stop ids excluded)
  DraftStats draft_stats;          // this sequence's decode steps and drafts

  bool prefilling() const { return prefilled < int64_t(req_.prompt.size()); }
  bool done() const { return done_; }
  const std::string& finish_reason() const { return finish_reason_; }  // "stop", "length", or what finish() set
  // Ends the sequence now (e.g. "cancelled", "error"). Held-back text is dropped.
  void finish(const std::string& reason);
  // At the end of a sequence that stopped or ran out of tokens: the text still held back (an incomplete
  // UTF-8 character, the start of a stop string that never completed). Empty otherwise.
  std::string flush();
  // This sequence's prompt is the leader's (identical): instead of computing it, it copies the
  // leader's cache after the step that finishes the leader's prompt and samples from its logits.
  void share_prefill(const Sequence* leader) { leader_ = leader; }

 private:
  friend class Decoder;
  // One sampled token: stop ids, max tokens, text and stop strings. Returns false once finished.
  bool accept(int32_t tok, TokenEvent& ev);

  GenerationRequest req_;
  Sampler sampler_;
  std::unique_ptr<StreamDecoder> text_;
  StopMatcher stops_;
  int32_t last_ = -1;
  bool done_ = false;
  std::string finish_reason_;
  const Sequence* leader_ = nullptr;
  // Speculative decoding: the MTP module's cache; the main model's hidden states [n, D] at the positions
  // the module has not read yet, with the token after each; the drafter's distribution per draft token.
  bool drafting_ = false;
  KVCache mtp_cache_;
  std::vector<float> pending_h_;
  std::vector<int32_t> pending_ids_;
  std::vector<TokenDist> draft_q_;
  int64_t mtp_skipped_ = 0;  // main-cache positions before the module's first (restored, not computed)
  int64_t q_drafts_ = 0;  // the first q_drafts_ tokens of `draft` have their distribution in draft_q_
};

class Decoder {
 public:
  // tokenizer may be null: no text, and ids are masked only past the model's vocabulary.
  Decoder(Model& model, const Tokenizer* tokenizer);
  // One step over `seqs` (none done, all made for this model, caches of one MLA form): decoding
  // sequences feed their last token and draft; prefilling ones feed prompt chunks, in the order given,
  // at most prefill_budget prompt tokens in all (< 0: whole prompts). events (resized to seqs) receives
  // each sequence's output tokens. Returns the token rows computed.
  int64_t step(std::span<Sequence* const> seqs, int64_t prefill_budget, std::vector<std::vector<TokenEvent>>& events);
  // Off (the server under load): the sequences of the next steps stop drafting for good.
  void set_drafting(bool on) { drafting_on_ = on; }

 private:
  // The next drafts of the sequences that draft (Sequence::draft), from the MTP module.
  void draft(std::span<Sequence* const> seqs);
  // Copies one row of logits [V] into z_ (the sampler modifies it; other sequences may read the row) with
  // the ids past the tokenizer's vocabulary masked out. Returns z_.data().
  float* usable_row(const float* row);

  Model& model_;
  const Tokenizer* tok_;
  int64_t usable_vocab_;
  std::vector<Model::BatchItem> items_;
  std::vector<int64_t> item_of_, logit_row_;
  std::vector<int32_t> inputs_, toks_;
  std::vector<float> logits_, z_, raw_;  // the step's logits; one row being sampled; its raw copy (logprobs)
  std::vector<int32_t> top_ids_;         // logprobs: the raw row's most likely ids
  std::vector<float> hidden_;            // the step's normed hidden states, when a sequence drafts
  bool drafting_on_ = true;
  std::vector<Model::MtpItem> mtp_items_;
  std::vector<Sequence*> drafters_;
  std::vector<float> mtp_logits_, mtp_hidden_, chain_h_;
};

}  // namespace seek
