// trainer.h — `seek pretrain`: the training loop. AdamW with warmup + cosine/WSD, global-norm
// clipping, gradient accumulation, MTP loss weight λ with DeepSeek-V3's step schedule (§4.2: 0.3 for
// the first 10T tokens, 0.1 for the last 4.8T), expert balancing (DeepSeek-V3's aux-loss-free bias
// with the sequence-wise loss, a V2-style auxiliary loss, or none), periodic validation loss, metrics
// as JSON lines, charts of them, and checkpoints that resume exactly.
//
// Metrics (OUT/metrics.jsonl, one JSON object per logged step): loss parts, lr, grad_norm, mtp_lambda;
// tokens_per_s (training compute only, since the previous line), mfu = tokens_per_s ×
// train_flops_per_token (train/flops.h) / gemm_peak_gflops (cblas_sgemm measured at the start of the
// run, tensor/roofline.h); expert balance accumulated over every micro-batch since the previous line
// (not one batch's noise): "expert_load": {"<layer>": {"max_over_mean", "dead", "routed"}} per MoE
// layer (routed: the token-expert assignments counted), with max_over_mean_load (the worst layer) and
// dead_experts (the sum) at the top. The progress line shows the worst layer, the dead total, MFU and
// the ETA. OUT/loss.svg (main, MTP and validation loss) and OUT/balance.svg (max/mean load and dead
// experts per MoE layer) are redrawn from metrics.jsonl at every checkpoint, so a killed run keeps them.
//
// Checkpoints: OUT/ckpt-<step>/ holds config.json + model.safetensors (loadable by seek generate),
// optim.safetensors (AdamW moments) and state.json (step, data position, options). Each is written in a
// temporary directory that is renamed into place, then OUT/latest names it (written atomically), so a
// run killed at any moment resumes from the last complete checkpoint. A run resumed at step k produces
// the same parameters at step 2k as one that never stopped (same thread count).
//
// Does not (yet): train on more than one process, exclude the validation and checkpoint time from the
// ETA's rate (it includes them, so the ETA is honest), or plot the learning rate and gradient norm.
#pragma once
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <string>

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
