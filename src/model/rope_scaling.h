// rope_scaling.h — the rotary embedding's frequencies from a config's rope_theta and rope_scaling, by
// Hugging Face's rules (none, linear, llama3, yarn). The rotation itself is a kernel (tensor/kernels.h);
// what `rope_scaling`'s fields mean is model policy and lives here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace seek {

// rope_theta and rope_scaling, as config.json gives them, and the rotary dimension R.
struct RopeParams {
  int64_t dim = 0;       // R
  double theta = 10000;  // rope_theta
  // rope_scaling; type "" means none.
  std::string type;  // "", "yarn", "llama3", "linear"
  double factor = 1;
  double original_max_position = 4096;  // original_max_position_embeddings
  double beta_fast = 32, beta_slow = 1;  // yarn
  double mscale = 1, mscale_all_dim = 0;  // yarn
  double low_freq_factor = 1, high_freq_factor = 4;  // llama3
  // Per-frequency divisors of the unscaled inv_freq (GGUF's rope_freqs tensor, which llama.cpp's converter
  // writes for Llama 3.1's scaling instead of its parameters); with type "" only.
  std::vector<float> freq_factors;
};

// inv_freq[R/2] after any scaling (YaRN correction ramp, llama3 wavelength bands, linear, freq_factors).
std::vector<float> rope_inv_freq(const RopeParams& p);
// The divisors a GGUF file's rope_freqs tensor holds: freq_factors as given, or for llama3 scaling the
// unscaled inv_freq over the scaled one (1, factor, or between); empty when neither.
std::vector<float> rope_freq_factors(const RopeParams& p);
// The factor YaRN multiplies cos and sin by: yarn_mscale(factor, mscale) / yarn_mscale(factor,
// mscale_all_dim), with yarn_mscale(s, m) = 0.1·m·ln(s) + 1 for s > 1, else 1. 1 when not yarn.
float rope_cos_sin_scale(const RopeParams& p);
// The YaRN attention-scale multiplier yarn_mscale(factor, mscale_all_dim) (squared by the caller).
float yarn_attention_mscale(const RopeParams& p);

}  // namespace seek
