// optimizer.cpp — see optimizer.h.
#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "tensor/kernels.h"
#include "util/error.h"

namespace seek::train {

void adamw_step(float* p, const float* g, float* m, float* v, const uint8_t* decay, int64_t n, int64_t t, double lr,
                const AdamWOptions& o, float grad_scale) {
  if (t < 1) throw Error("adamw_step: the step count starts at 1");
  adamw_update(p, g, m, v, decay, n,
               AdamWStep{float(lr), float(o.beta1), float(o.beta2), float(o.eps), float(o.weight_decay), t, grad_scale});
}

double grad_norm(const float* g, int64_t n) { return std::sqrt(sum_squares(g, n)); }

float clip_factor(double norm, double max_norm) {
  return max_norm > 0 && norm > max_norm ? float(max_norm / (norm + 1e-6)) : 1.f;
}

double clip_grad_norm(float* g, int64_t n, double max_norm) {
  const double norm = grad_norm(g, n);
  const float f = clip_factor(norm, max_norm);
  if (f != 1.f) scale(g, f, n);
  return norm;
}

double lr_multiplier(const Schedule& s, int64_t t) {
  if (s.total < 1) throw Error("schedule: total steps must be at least 1");
  if (s.warmup > 0 && t <= s.warmup) return double(t) / double(s.warmup);
  const double after = double(t - s.warmup), span = double(std::max<int64_t>(1, s.total - s.warmup));
  if (s.kind == "cosine") {
    const double frac = std::min(1.0, after / span);
    return s.min_ratio + (1.0 - s.min_ratio) * 0.5 * (1.0 + std::cos(M_PI * frac));
  }
  if (s.kind == "constant") return 1.0;
  if (s.kind == "wsd") {
    const double decay_steps = std::max(1.0, s.decay_fraction * double(s.total));
    const double decay_start = double(s.total) - decay_steps;
    if (double(t) <= decay_start) return 1.0;
    const double frac = std::min(1.0, (double(t) - decay_start) / decay_steps);
    return 1.0 - (1.0 - s.min_ratio) * frac;
  }
  throw Error("schedule: kind \"" + s.kind + "\" is not supported (expected cosine, wsd or constant)");
}

}  // namespace seek::train
