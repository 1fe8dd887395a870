// mla_train.h — one Multi-head Latent Attention layer for training: the naive (per-head) form, which is
// what DeepSeek trains with; absorption is an inference rewrite of the same function. Forward keeps the
// activations the backward needs; backward runs the forward's steps in reverse and accumulates
// parameter gradients. Rows are B sequences of S tokens each, at positions 0 .. S-1 (no cache).
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/layers.h"

namespace seek::train {

// The layer's parameters as f32 arrays (views into a training arena); the same struct holds gradients.
struct MlaParams {
  float* q_proj = nullptr;      // [H·qk, D]        (q_lora_rank == 0)
  float* q_a_proj = nullptr;    // [q_lora, D]      (q_lora_rank > 0)
  float* q_a_norm = nullptr;    // [q_lora]
  float* q_b_proj = nullptr;    // [H·qk, q_lora]
  float* kv_a_proj = nullptr;   // [C + R, D]
  float* kv_a_norm = nullptr;   // [C]
  float* kv_b_proj = nullptr;   // [H·(nope + v), C]
  float* o_proj = nullptr;      // [D, H·v]
};

struct MlaActivations {
  std::vector<float> qa, qa_n, qa_rstd;  // [T, q_lora], [T]
  std::vector<float> q;                  // [T, H, qk] after rope
  std::vector<float> ckv, ckv_n, ckv_rstd;  // [T, C]
  std::vector<float> kpe;                // [T, R] after rope
  std::vector<float> K, V;               // [T, H, qk], [T, H, v]
  std::vector<float> att;                // [B, H, S, S]
  std::vector<float> attn;               // [T, H·v]
};

// out [B·S, D] = MLA(x [B·S, D]).
void mla_train_forward(const Config& c, const Rope& rope, const MlaParams& p, const float* x, float* out, int64_t B,
                       int64_t S, MlaActivations& a);
// dx [B·S, D] += ∂L/∂x; g += ∂L/∂parameters; dout [B·S, D] = ∂L/∂out.
void mla_train_backward(const Config& c, const Rope& rope, const MlaParams& p, MlaParams& g, const float* x,
                        const float* dout, float* dx, int64_t B, int64_t S, const MlaActivations& a);

}  // namespace seek::train
