// rope_scaling.cpp — see rope_scaling.h. Frequencies in double, stored as f32. Sources: HF
// DeepseekV3YarnRotaryEmbedding (yarn, YaRN paper §3.2 "NTK-by-parts" and §3.4 mscale), HF
// _compute_llama3_parameters (llama3), HF linear scaling.
#include "model/rope_scaling.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "util/error.h"

namespace seek {

namespace {
double yarn_mscale(double s, double m) { return s <= 1 ? 1.0 : 0.1 * m * std::log(s) + 1.0; }
}  // namespace

std::vector<float> rope_inv_freq(const RopeParams& p) {
  SEEK_ASSERT_MSG(p.dim > 0 && p.dim % 2 == 0, "[rope_inv_freq] dim must be even and positive");
  const int64_t R = p.dim, half = R / 2;
  std::vector<double> base(half);
  for (int64_t i = 0; i < half; i++) base[i] = 1.0 / std::pow(p.theta, double(2 * i) / double(R));
  std::vector<float> out(half);
  if (p.type.empty() || p.type == "default") {
    for (int64_t i = 0; i < half; i++) out[i] = float(base[i]);
  } else if (p.type == "linear") {
    for (int64_t i = 0; i < half; i++) out[i] = float(base[i] / p.factor);
  } else if (p.type == "llama3") {
    const double low_wavelen = p.original_max_position / p.low_freq_factor;
    const double high_wavelen = p.original_max_position / p.high_freq_factor;
    for (int64_t i = 0; i < half; i++) {
      const double f = base[i], wavelen = 2 * std::numbers::pi / f;
      double g;
      if (wavelen < high_wavelen) {
        g = f;
      } else if (wavelen > low_wavelen) {
        g = f / p.factor;
      } else {
        double smooth = (p.original_max_position / wavelen - p.low_freq_factor) /
                        (p.high_freq_factor - p.low_freq_factor);
        g = (1 - smooth) * f / p.factor + smooth * f;
      }
      out[i] = float(g);
    }
  } else if (p.type == "yarn") {
    // Dimension index whose wavelength makes n full turns over the original context.
    auto corr = [&](double n) {
      return double(R) * std::log(p.original_max_position / (n * 2 * std::numbers::pi)) / (2 * std::log(p.theta));
    };
    double low = std::max(std::floor(corr(p.beta_fast)), 0.0);
    double high = std::min(std::ceil(corr(p.beta_slow)), double(R - 1));
    if (low == high) high += 0.001;
    for (int64_t i = 0; i < half; i++) {
      double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
      double mask = 1 - ramp;  // 1: keep the original (extrapolated) frequency
      double extra = base[i], inter = base[i] / p.factor;
      out[i] = float(inter * (1 - mask) + extra * mask);
    }
  } else {
    throw Error(strfmt("[rope_inv_freq] unknown rope_scaling type '%s'; expected none, linear, llama3 or yarn",
                       p.type.c_str()));
  }
  return out;
}

float rope_cos_sin_scale(const RopeParams& p) {
  if (p.type != "yarn") return 1.0f;
  return float(yarn_mscale(p.factor, p.mscale) / yarn_mscale(p.factor, p.mscale_all_dim));
}

float yarn_attention_mscale(const RopeParams& p) {
  if (p.type != "yarn") return 1.0f;
  return float(yarn_mscale(p.factor, p.mscale_all_dim));
}

}  // namespace seek
