// pretrain.h — `seek pretrain`: next-token pretraining from scratch, one objective of the training loop
// (train/trainer.h). MTP loss weight λ with DeepSeek-V3's step schedule (§4.2: 0.3 for the first 10T
// tokens, 0.1 for the last 4.8T), expert balancing (DeepSeek-V3's aux-loss-free bias with the
// sequence-wise loss, a V2-style auxiliary loss, or none), gradient accumulation, periodic validation
// loss, and charts of it all.
//
// Metrics (OUT/metrics.jsonl, beside the loop's): loss parts (loss_main, loss_mtp, loss_balance),
// mtp_lambda, train_flops_per_token (train/flops.h), val_loss at validation steps, and expert balance
// accumulated over every micro-batch since the previous line (not one batch's noise):
// "expert_load": {"<layer>": {"max_over_mean", "dead", "routed"}} per MoE layer (routed: the token-expert
// assignments counted), with max_over_mean_load (the worst layer) and dead_experts (the sum) at the
// top. Step 0 logs the validation loss before training. OUT/loss.svg (main, MTP and validation loss)
// and OUT/balance.svg (max/mean load and dead experts per MoE layer) are redrawn at every checkpoint.
//
// A new run writes a random model from --config into OUT/init and trains it; checkpoints as the loop's
// (OUT/ckpt-<step>/, OUT/latest), the state adding the data loader's position.
//
// Data parallel on a group of N ranks (`mpiexec -n N seek pretrain`, train/trainer.h): every rank reads
// the same global batch of B rows and trains on its own B/N consecutive rows (B must be a multiple of
// N); the losses, the expert loads (for the balance statistics and the aux-free bias update) and the
// validation loss (validation batches dealt out round-robin) are summed over the ranks, so the run
// computes what one process computes with batch B, up to the order of floating-point sums. The loader's
// position is the global batch's: a checkpoint resumes under any N that divides B. The V2-style
// auxiliary loss (--balance aux) is computed per rank, over its B/N rows, as data-parallel training
// does; the aux-free bias and the sequence-wise loss are unchanged.
//
// Expert parallel as well (expert_parallel, `--expert-parallel`): the ranks still train on their own rows,
// and the routed experts spread over them (nn/moe.h ExpertDispatch: rank r runs experts
// [E r / N, E (r + 1) / N) for every rank's tokens, which reach it by an all-to-all and go back by
// another, forward and backward). Each rank's experts get the gradient of the whole batch, and each
// rank holds, updates and keeps the optimizer state of its own experts only (train/trainer.h), so a
// rank's memory is the shared part plus E/N experts; checkpoints are whole models all the same.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "util/comm.h"

namespace seek::train {

struct PretrainOptions {
  std::string config;  // config.json of the model to create (ignored when OUT holds a checkpoint)
  std::string data;    // directory written by `seek data`
  std::string out;
  int64_t steps = 100;
  int64_t batch = 8, seq_len = 64, accum = 1;
  double lr = 3e-3, min_lr_ratio = 0.1, clip = 1.0, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  int64_t warmup = 10;
  std::string schedule = "cosine";  // cosine | wsd
  double mtp_lambda = 0.3;        // MTP loss weight λ for steps 1 .. round(mtp_switch · steps)
  double mtp_lambda_final = NAN;  // λ after that; NaN = mtp_lambda (constant)
  double mtp_switch = 0.7;        // fraction of the steps after which λ becomes mtp_lambda_final
  std::string balance = "aux-free";  // aux-free | aux | none
  double gamma = 0.001;      // aux-free bias step
  double seq_alpha = 1e-4;   // sequence-wise balance loss weight (aux-free mode)
  double aux_alpha = 1e-3;   // the auxiliary loss weight (aux mode)
  bool fp8 = false;          // simulate FP8 GEMM inputs (DeepSeek-V3 §3.3; nn/pass.h)
  uint64_t seed = 1;
  int64_t eval_every = 50, eval_batches = 8, save_every = 50, log_every = 10;
  int64_t stop_after = 0;    // stop (with a checkpoint) after this many steps of this run: tests of resume
  Communicator* comm = nullptr;  // the data-parallel group; null: world()
  // Spread the routed experts over comm's ranks as well (expert parallelism with an all-to-all
  // dispatch and combine, nn/moe.h ExpertDispatch).
  bool expert_parallel = false;
};

struct PretrainResult {
  int64_t step = 0;            // the last step done
  double first_val_loss = NAN, last_val_loss = NAN;
  bool resumed = false;
};

PretrainResult pretrain(const PretrainOptions& o, std::FILE* progress = stderr);

// λ at `step` (1-based): mtp_lambda up to round(mtp_switch · steps), mtp_lambda_final after. A function
// of the step alone, so a resumed run follows the same schedule.
double mtp_lambda_at(const PretrainOptions& o, int64_t step);

// Redraws OUT/loss.svg and OUT/balance.svg (when the run has MoE layers) from OUT/metrics.jsonl.
// Throws seek::Error when the metrics cannot be read or hold nothing to draw.
void draw_pretrain_plots(const std::string& out);

}  // namespace seek::train
