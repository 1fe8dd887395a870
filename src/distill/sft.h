// sft.h — supervised fine-tuning of a student model on reasoning traces (distill/rejection.h): the
// distillation step of DeepSeek-R1 (§2.4: "we directly fine-tune open-source models ... using the 800k
// samples curated with DeepSeek-R1"), loss on the completion tokens only.
//
// Batches. Each trace is one sequence prompt + completion (EOS last). B sequences, in an order shuffled
// by the seed each epoch (SplitMix64 Fisher–Yates, the same on every machine), are right-padded with
// the EOS id into ids [B, T+1], T + 1 = the longest sequence. Target position (b, t) predicts
// ids[b, t+1]; its mask is 1 exactly when t+1 indexes a completion token of sequence b (so the EOS that
// ends the completion is learned; the prompt and the padding contribute nothing).
//
// Loss (token-level mean over the batch, as DAPO and most SFT code): L = −Σ mask·log p / Σ mask, so
// ∂L/∂log p = −mask / Σ mask. Passed to TrainModel as a TokenObjective; MTP and balance weights are 0
// (a dense student; an MoE student would train without balancing).
//
// Training: the loop of train/trainer.h with this objective — AdamW (decay on 2-D weights), linear
// warmup then cosine to min_lr_ratio, global-norm clipping. Steps: `steps` if > 0, else
// ceil(epochs · traces / batch). max_seconds > 0 stops before the first step that would start after
// that much wall time (at least one step runs; the schedule is planned for all the steps, so a run cut
// by time ends at a higher learning rate; result.stopped_by_time says it happened).
//
// Output, atomic as a whole: the run lives in OUT.partial/ — metrics.jsonl (the loop's fields and, per
// logged step, epoch, completion_tokens and completion_tokens_per_s), checkpoints every save_every
// steps — and at the end config.json + model.safetensors (f32, HF names: loadable by Model::load and
// TrainModel), tokenizer.json (+ tokenizer_config.json) copied from `tokenizer`, sft.json (the options
// and the result) and loss.svg join it, the checkpoints leave, and the directory is renamed to OUT (an
// older OUT is removed just before). A killed run leaves no OUT, only OUT.partial, from which the next
// run with the same options resumes exactly (another run's leftover is cleared). One run per OUT at a
// time.
//
// Data parallel on a group of N ranks (`mpiexec -n N seek sft`, train/trainer.h): every rank draws the
// same batch; rank r trains on rows [B r / N, B (r + 1) / N) of it, padded to its own longest row, with
// the loss divided by the whole batch's completion tokens, so the ranks' gradients sum to the batch's
// (a rank left without rows adds zero). Rank 0 alone writes OUT.
//
// Does not: accumulate gradients, pack sequences, or bucket by length (random batches pay for their
// padding).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "distill/rejection.h"
#include "train/train_model.h"

namespace seek::distill {

struct SftOptions {
  std::string model;      // student directory (config.json + model.safetensors)
  std::string tokenizer;  // directory whose tokenizer.json (+ tokenizer_config.json) is copied; empty = model
  std::string out;        // final model directory
  int64_t steps = 0;      // optimizer steps; 0 = from epochs
  double epochs = 1;
  int64_t batch = 8;
  double lr = 1e-3, min_lr_ratio = 0.1, clip = 1.0, weight_decay = 0.0, beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  int64_t warmup = 10;    // steps (capped at a tenth of the steps)
  double max_seconds = 0; // wall-clock budget of the training loop; 0 = none
  uint64_t seed = 1;
  int64_t log_every = 10;
  int64_t save_every = 50;  // checkpoint interval (resume after a kill)
  int64_t stop_after = 0;   // stop, with a checkpoint, after this many steps of this run (tests of resume)
  Communicator* comm = nullptr;  // the data-parallel group (train/trainer.h); null: world()
};

struct SftResult {
  int64_t steps = 0;                // steps done
  int64_t planned_steps = 0;
  int64_t traces = 0;               // traces trained on (those that fit max_position_embeddings)
  int64_t skipped_too_long = 0;
  int64_t completion_tokens = 0;    // masked target tokens seen, summed over steps
  double first_loss = NAN, last_loss = NAN;  // of the first and the last step's batch
  double seconds = 0;               // wall time of the training loop (model load and save excluded)
  double total_seconds = 0;         // the whole call, load and save included
  bool stopped_by_time = false;
};

// One padded batch (see above).
struct SftBatch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> ids;   // [B, T+1]
  std::vector<uint8_t> mask;  // [B, T]: 1 where the target ids[b, t+1] is a completion token
  int64_t completion_tokens = 0;  // Σ mask
};

// Builds the batch of traces[which[0..]]. Throws Error when `which` is empty or names no trace.
SftBatch make_sft_batch(const std::vector<Trace>& traces, const std::vector<size_t>& which, int32_t pad_id);

// The masked mean negative log-likelihood over batch.mask as a TokenObjective (holds a pointer to
// batch: keep it alive while the objective is used). Returns 0 with zero dlogp when the mask is empty.
// denominator > 0: divide the sum by it instead of batch.completion_tokens (a rank's rows of a batch
// shared by a data-parallel group: the global batch's completion tokens).
train::TokenObjective completion_objective(const SftBatch& batch, int64_t denominator = 0);

// Runs SFT and writes OUT as described above. Throws Error on a bad option, an unreadable model, a trace
// id outside the student's vocabulary, or no trace that fits; nothing is written to OUT then.
SftResult sft(const SftOptions& o, const std::vector<Trace>& traces, std::FILE* progress = stderr);

}  // namespace seek::distill
