// sampler.h — turning one step's logits into the next token, per sequence.
//
// Order of operations (as in Hugging Face and vLLM):
//   logit bias → repetition penalty → frequency/presence penalties → temperature →
//   top-k → softmax → min-p → top-p → draw.
// - repetition_penalty (CTRL / HF): every token seen in the prompt or the output has its logit divided
//   by p when positive, multiplied by p when negative.
// - frequency_penalty / presence_penalty (OpenAI): subtract f·count and, once, p for every token in the
//   output so far (the prompt does not count, as in OpenAI's and vLLM's APIs).
// - temperature 0 means greedy: the largest logit after bias and penalties, ties to the lower id.
// - the draw uses the sampler's own generator seeded by `seed`: same seed, same tokens.
// - speculative sampling (Leviathan et al. 2023; Chen et al. 2023): a drafter proposes d from its own
//   distribution q (draft(), the same transforms over the drafter's logits); verify() accepts d with
//   probability min(1, p(d)/q(d)) under the model's distribution p, and otherwise draws from the
//   residual max(0, p − q), renormalized. The token it returns is distributed exactly as p, whatever q
//   is. Greedy: the draft is q's argmax, accepted when it is p's.
// A sampler allocates its buffers once (vocabulary-sized); sample() allocates nothing.
#pragma once
#include <array>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace seek {

struct SamplingParams {
  float temperature = 1.0f;         // 0 = greedy
  int64_t top_k = 0;                // 0 = off
  float top_p = 1.0f;               // 1 = off
  float min_p = 0.0f;               // 0 = off
  float repetition_penalty = 1.0f;  // 1 = off
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id, added to its logit
  uint64_t seed = 0;

  // Throws seek::Error naming the parameter and the allowed range.
  void validate(int64_t vocab) const;
};

// A drafter's distribution over the ids it could propose (probabilities summing to 1; greedy: its
// argmax alone).
struct TokenDist {
  std::vector<int32_t> ids;
  std::vector<float> probs;
};

class Sampler {
 public:
  Sampler(SamplingParams p, int64_t vocab);
  // Tokens of the prompt (they count for the repetition penalty only).
  void add_prompt(const int32_t* ids, int64_t n);
  // Picks the next token from logits [V] (modified in place) and records it as output.
  int32_t sample(float* logits);
  // A drafter's proposal from its logits [V] (modified in place): drawn from q, the same transforms as
  // sample() over those logits, which are written to `q`. Records nothing. confidence (may be null: not
  // computed): q(d), or for greedy the softmax probability of the argmax at temperature 1.
  int32_t draft(float* logits, TokenDist& q, float* confidence);
  // The model's token at a drafted position, from its logits [V] (modified in place): the draft d when
  // accepted (*accepted = true), else a draw from the residual of p over q. Records the returned token.
  int32_t verify(float* logits, int32_t d, const TokenDist& q, bool* accepted);
  const SamplingParams& params() const { return p_; }

 private:
  // Bias and penalties, then the candidates cand_[0, n) and their unnormalized probabilities prob_ with
  // sum *total (greedy: the argmax alone, probability 1). Returns n.
  int64_t distribution(float* logits, double* total);
  int32_t draw(int64_t n, double total);
  void record(int32_t id);
  void note_seen(int32_t id);
  float uniform();  // [0, 1)
  std::vector<std::pair<float, int32_t>>& top_p_scratch() { return pairs_; }

  SamplingParams p_;
  int64_t vocab_;
  std::mt19937_64 rng_;
  std::vector<int32_t> out_count_;   // [V] occurrences in the output
  std::vector<int32_t> out_tokens_;  // distinct output tokens
  std::vector<uint8_t> seen_;        // [V] in the prompt or the output
  std::vector<int32_t> seen_tokens_; // distinct seen tokens
  std::vector<int32_t> cand_;        // candidate ids (scratch, [V])
  std::vector<float> prob_;          // their probabilities (scratch, [V])
  std::vector<std::pair<float, int32_t>> pairs_;  // top-p scratch: the tokens of the bucket it cuts in
  std::array<double, 4096> bucket_mass_;          // top-p scratch: mass per bucket of probabilities
  std::vector<float> dense_;         // [V] zeros but while verify() holds q in it (scratch)
};

}  // namespace seek
