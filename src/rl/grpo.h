// grpo.h — R1-Zero-style reinforcement learning of a model directory: `seek grpo`.
//
// Each step: draw `questions` training-split problems, sample `group` completions of each with the
// current policy (rl/rollout.h: temperature 1, one shared prompt prefill per question), score them by
// rule (rl/reward.h), turn the rewards into group-normalized advantages, and take `inner` AdamW steps
// on the GRPO objective (rl/grpo_loss.h: clipped ratio against the sampling policy, k3 KL to a frozen
// reference with coefficient β; Dr. GRPO and DAPO variants; DAPO's dynamic sampling drops groups whose
// rewards are all equal). The reference is the starting policy, reset to the current one every
// `ref_reset` steps when that is set. No SFT happens first: the model learns from rewards alone.
//
// The policy trains in f32 in the training loop (train/trainer.h; one loop step per optimizer step,
// `inner` of them per batch of rollouts). Rollouts run on the inference engine over the live policy
// (TrainModel::inference: no copy, no file). MoE balancing stays as pretraining left it (no balance
// loss, no bias updates), and the MTP module is not trained (λ = 0).
//
// Output: OUT/metrics.jsonl (the loop's fields and, per step: grpo_step, reward, accuracy, format rate,
// response length, KL, clip fraction, entropy, rollout and training tokens/s, groups kept), OUT/grpo.svg
// (curves), checkpoints (OUT/ckpt-<step>/, with the reference beside the policy once it has been reset):
// a stopped or killed run resumes exactly; and the final policy in OUT/model (HF layout +
// tokenizer.json, written in a temporary directory and renamed into place, so OUT/model exists only
// when the run finished).
//
// Data parallel on a group of N ranks (`mpiexec -n N seek grpo`, train/trainer.h): rank r samples and
// trains on questions [Q r / N, Q (r + 1) / N) of every step (the same seeds as in one process, so the
// rollouts are the same up to the order of floating-point sums); a group's advantages stay on its rank;
// the normalizers and statistics are the whole batch's. Rank 0 writes OUT.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "rl/grpo_loss.h"
#include "rl/reward.h"
#include "data/tasks.h"
#include "util/comm.h"

namespace seek::rl {

struct GrpoRunOptions {
  std::string policy;  // model directory to start from (config.json, *.safetensors, tokenizer.json)
  std::string out;
  int64_t steps = 50;
  int64_t questions = 8;       // problems per step
  int64_t group = 8;           // G: completions per problem
  int64_t max_new_tokens = 192;
  float temperature = 1.0f;
  int64_t draft_tokens = 0;    // MTP drafts per rollout step (speculative decoding; the same samples' law)
  int64_t inner = 1;           // optimizer steps per batch of rollouts (μ); > 1 uses the clipped ratio
  int64_t micro = 16;          // sequences per forward/backward (gradients accumulate over the batch)
  double lr = 1e-4, weight_decay = 0.0, clip = 1.0;
  int64_t warmup = 5;
  GrpoOptions loss;            // variant, ε, β, std normalization
  bool dynamic_sampling = false;  // drop groups with equal rewards (DAPO)
  int64_t ref_reset = 0;       // copy the policy into the reference every this many steps (0 = never)
  RewardWeights weights;
  std::vector<TaskKind> kinds = {TaskKind::Arithmetic, TaskKind::Countdown};
  int min_difficulty = 1, max_difficulty = kMaxDifficulty;
  double heldout_fraction = kDefaultHeldOutFraction;
  uint64_t seed = 1;
  double max_seconds = 0;      // stop after this much wall time (0 = no limit): equal-time comparisons
  int64_t log_every = 1;
  int64_t save_every = 10;     // checkpoint interval in steps (resume after a kill)
  int64_t stop_after = 0;      // stop, with a checkpoint, after this many steps of this run (tests of resume)
  Communicator* comm = nullptr;  // the data-parallel group (train/trainer.h); null: world()
};

struct GrpoResult {
  int64_t steps = 0;
  double seconds = 0;
  double first_reward = 0, last_reward = 0;      // mean over the first / last 5 steps
  double first_accuracy = 0, last_accuracy = 0;
};

GrpoResult grpo(const GrpoRunOptions& o, std::FILE* progress = stderr);

}  // namespace seek::rl
