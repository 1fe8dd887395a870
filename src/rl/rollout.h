// rollout.h — sampling completions of problems and scoring them by rule: what GRPO, eval and
// rejection sampling share.
//
// A rollout is one completion of one problem: the prompt is prompt_text(problem) (data/corpus.h, the
// format the model was pretrained on), generation stops at the tokenizer's EOS ("<|eos|>") or after
// max_new_tokens, and the completion's text is scored by rl/reward.h (think_in_prompt = false: the
// model itself decides whether to open <think>). Problems are generated in groups of `samples`
// consecutive rollouts; all of them run as one batch of the Generator, which prefills each distinct
// prompt once. Sample i of problem j uses seed mix(seed, first_problem + j, i), so a run is reproducible,
// and a batch split over data-parallel ranks samples what it samples whole.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/tokenizer.h"
#include "rl/reward.h"
#include "data/tasks.h"
#include "util/comm.h"

namespace seek::rl {

struct RolloutOptions {
  int64_t samples = 8;          // completions per problem
  float temperature = 1.0f;     // 0 = greedy
  float top_p = 1.0f;
  int64_t max_new_tokens = 256;
  int64_t batch = 64;           // sequences per Generator batch
  uint64_t seed = 1;
  int64_t first_problem = 0;    // the index of problems[0] in a larger batch (seeds use first_problem + j)
  RewardWeights weights;
  // MTP drafts per step (speculative decoding, engine/decode.h): the same distribution, so GRPO's
  // importance ratios, which the trainer computes from the policy's own forward, are unchanged.
  int64_t draft_tokens = 0;
};

struct Rollout {
  int64_t problem = 0;              // index into the problems given
  std::vector<int32_t> prompt;      // token ids
  std::vector<int32_t> completion;  // generated ids, EOS included when the model emitted it
  std::string text;                 // the completion's text (no EOS)
  bool finished = false;            // ended with EOS (not cut at max_new_tokens)
  RewardResult reward;
};

struct RolloutStats {
  int64_t sequences = 0, tokens = 0;  // completion tokens generated
  double seconds = 0;
};

// problems.size() × o.samples rollouts, problem-major. Throws Error when the tokenizer has no
// "<|eos|>" token.
std::vector<Rollout> sample_rollouts(Model& model, const Tokenizer& tok, const std::vector<Problem>& problems,
                                     const RolloutOptions& o, RolloutStats* stats = nullptr);

// Rollouts of many problems, o.samples each, in chunks of whole problems of about o.batch sequences:
// chunk c is sampled with seed mix64(o.seed, c) and its problems numbered from 0, so a run repeats for
// the same options (what eval and rejection sampling do). Over a group of N ranks, rank r samples
// chunks r, r + N, r + 2N, … and every rank returns every chunk's rollouts, problem-major with
// rollout.problem indexing `problems`: the same rollouts as one process, since a chunk samples the
// same whichever rank runs it. after_chunk(the chunk's rollouts, sequences this rank has sampled, of its
// total) runs after each of this rank's chunks (progress lines).
using ChunkProgress = std::function<void(const std::vector<Rollout>& chunk, int64_t done, int64_t total)>;
std::vector<Rollout> chunked_rollouts(Model& model, const Tokenizer& tok, const std::vector<Problem>& problems,
                                      const RolloutOptions& o, Communicator& comm, const ChunkProgress& after_chunk = {});

}  // namespace seek::rl
