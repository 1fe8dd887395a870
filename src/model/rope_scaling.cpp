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

// llama3: what frequency f is divided by. Wavelengths shorter than the original context over
// high_freq_factor keep f, longer than it over low_freq_factor take f / factor, and those between blend
// the two: f · ((1 - smooth) / factor + smooth).
double llama3_divisor(const RopeParams& p, double f) {
  const double wavelen = 2 * std::numbers::pi / f;
  if (wavelen < p.original_max_position / p.high_freq_factor) return 1.0;
  if (wavelen > p.original_max_position / p.low_freq_factor) return p.factor;
  const double smooth =
      (p.original_max_position / wavelen - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
  return 1.0 / ((1 - smooth) / p.factor + smooth);
}
}  // namespace

std::vector<float> rope_inv_freq(const RopeParams& p) {
  SEEK_ASSERT_MSG(p.dim > 0 && p.dim % 2 == 0, "[rope_inv_freq] dim must be even and positive");
  const int64_t R = p.dim, half = R / 2;
  std::vector<double> base(half);
  for (int64_t i = 0; i < half; i++) base[i] = 1.0 / std::pow(p.theta, double(2 * i) / double(R));
  std::vector<float> out(half);
  if (!p.freq_factors.empty()) {
    SEEK_ASSERT_MSG(p.type.empty() && int64_t(p.freq_factors.size()) == half,
                    "[rope_inv_freq] freq_factors need no other scaling and one factor per frequency");
    for (int64_t i = 0; i < half; i++) out[i] = float(base[i] / double(p.freq_factors[size_t(i)]));
  } else if (p.type.empty() || p.type == "default") {
    for (int64_t i = 0; i < half; i++) out[i] = float(base[i]);
  } else if (p.type == "linear") {
    for (int64_t i = 0; i < half; i++) out[i] = float(base[i] / p.factor);
  } else if (p.type == "llama3") {
    for (int64_t i = 0; i < half; i++) out[i] = float(base[i] / llama3_divisor(p, base[i]));
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

std::vector<float> rope_freq_factors(const RopeParams& p) {
  if (!p.freq_factors.empty()) return p.freq_factors;
  if (p.type != "llama3") return {};
  std::vector<float> out(size_t(p.dim / 2));
  for (size_t i = 0; i < out.size(); i++)
    out[i] = float(llama3_divisor(p, 1.0 / std::pow(p.theta, double(2 * i) / double(p.dim))));
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
