// trainer.h — `seek pretrain`: the training loop. AdamW with warmup + cosine/WSD, global-norm
// clipping, gradient accumulation, MTP loss weight λ, expert balancing (DeepSeek-V3's aux-loss-free
// bias with the sequence-wise loss, a V2-style auxiliary loss, or none), periodic validation loss,
// metrics as JSON lines, and checkpoints that resume exactly.
//
// Checkpoints: OUT/ckpt-<step>/ holds config.json + model.safetensors (loadable by seek generate),
// optim.safetensors (AdamW moments) and state.json (step, data position, options). Each is written in a
// temporary directory that is renamed into place, then OUT/latest names it (written atomically), so a
// run killed at any moment resumes from the last complete checkpoint. A run resumed at step k produces
// the same parameters at step 2k as one that never stopped (same thread count).
//
// Does not (yet): plots, or MFU (the bench measures throughput).
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
  double mtp_lambda = 0.3;
  std::string balance = "aux-free";  // aux-free | aux | none
  double gamma = 0.001;      // aux-free bias step
  double seq_alpha = 1e-4;   // sequence-wise balance loss weight (aux-free mode)
  double aux_alpha = 1e-3;   // the auxiliary loss weight (aux mode)
  bool fp8 = false;          // simulate FP8 GEMM inputs (DeepSeek-V3 §3.3; train/grad_ops.h)
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

}  // namespace seek::train
