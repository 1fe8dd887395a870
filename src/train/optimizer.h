// optimizer.h — AdamW (decoupled weight decay, bias correction; Loshchilov & Hutter), learning-rate
// schedules (linear warmup then cosine, or warmup-stable-decay) and global-norm gradient clipping.
//
// Parameters, gradients and both moments are flat f32 arrays of the same length (the training arena).
// Does not: choose which parameters decay (the caller passes a mask), or keep moments in bf16.
#pragma once
#include <cstdint>
#include <string>

namespace seek::train {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
};

// One step t (1-based) over n values, with the gradient g · grad_scale (the clipping factor, applied
// on the fly: no pass of its own over the gradient):
//   m = β1 m + (1−β1) g;  v = β2 v + (1−β2) g²;  m̂ = m / (1−β1^t);  v̂ = v / (1−β2^t)
//   p −= lr · (m̂ / (sqrt(v̂) + eps) + wd · p)   (wd only where decay[i] is 1 (each 0 or 1), or everywhere when
//   decay is null). The decay term uses p before the update, as PyTorch's AdamW does.
void adamw_step(float* p, const float* g, float* m, float* v, const uint8_t* decay, int64_t n, int64_t t, double lr,
                const AdamWOptions& o, float grad_scale = 1.f);

// The global L2 norm of g, and the factor that brings it down to max_norm (1 when it is below, or
// when max_norm <= 0).
double grad_norm(const float* g, int64_t n);
float clip_factor(double norm, double max_norm);
// Scales g by clip_factor in place; returns the norm before clipping.
double clip_grad_norm(float* g, int64_t n, double max_norm);

struct Schedule {
  std::string kind = "cosine";  // "cosine" (warmup, then cosine to min_ratio), "wsd" (warmup, stable, decay) or
                                // "constant" (warmup, then the peak)
  int64_t warmup = 0;
  int64_t total = 1;
  double min_ratio = 0.1;       // final lr / peak lr
  double decay_fraction = 0.2;  // wsd: the last fraction of steps decays linearly to min_ratio
};
// The multiplier of the peak learning rate at step t (1-based).
double lr_multiplier(const Schedule& s, int64_t t);

}  // namespace seek::train
