// gqa.h — grouped-query attention with optional q/k/v bias (Qwen2, Llama), forward and backward. The
// q, k and v projections read the same input and run as one GEMM; rope rotates q and k; query head h
// reads kv head h / (H / G).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "nn/attention.h"

namespace seek {

struct GqaSpec {
  int64_t hidden = 0;      // D
  int64_t heads = 0;       // H
  int64_t kv_heads = 0;    // G
  int64_t head_dim = 0;    // hd
  float softmax_scale = 1.f;
  std::shared_ptr<const Rope> rope;  // shared by every block of a model
};

template <class V>
struct GqaParams {
  typename V::Matrix q_proj{}, k_proj{}, v_proj{}, o_proj{};  // [H·hd, D], [G·hd, D], [G·hd, D], [D, H·hd]
  typename V::Vector q_bias{}, k_bias{}, v_bias{};           // null without attention_bias
};
using GqaWeights = GqaParams<WeightView>;
using GqaGrads = GqaParams<GradView>;

struct GqaActs {
  std::vector<float> qkv;    // [N, (H + 2G)·hd] after rope
  std::vector<float> probs;  // [B, H, S, S]
  std::vector<float> attn;   // [N, H·hd]
};

// out [N, D] = attention(x [N, D]) over `rows`; acts (training: no caches) keeps the activations.
void gqa_forward(const Pass& p, const GqaSpec& s, const GqaWeights& w, const float* x, float* out, const Rows& rows,
                 GqaActs* acts);
// dx [N, D] = ∂L/∂x (written), g += ∂L/∂parameters, given dout [N, D].
void gqa_backward(const Pass& p, const GqaSpec& s, const GqaWeights& w, GqaGrads& g, const float* x, const float* dout,
                  float* dx, const Rows& rows, const GqaActs& acts);

}  // namespace seek
