// mlp.h — the SwiGLU MLP, forward and backward: y = down(silu(gate(x)) · up(x)). gate and up read the
// same input and run as one GEMM into gu [n, 2F] (gate columns, then up columns). Dense layers, the
// shared experts and every routed expert of DeepSeekMoE are this module.
#pragma once
#include <cstdint>
#include <vector>

#include "nn/pass.h"

namespace seek {

template <class V>
struct MlpParams {
  typename V::Matrix gate_proj{}, up_proj{};  // [F, D]
  typename V::Matrix down_proj{};             // [D, F]
};
using MlpWeights = MlpParams<WeightView>;
using MlpGrads = MlpParams<GradView>;

struct MlpActs {
  std::vector<float> gu;   // [n, 2F]
  std::vector<float> act;  // [n, F]
};

// y [n, D] = MLP(x [n, D]), F = gate_proj.rows. gu [n, 2F] and act [n, F] are where the intermediate
// values go (kept for the backward in training; workspace at inference).
void mlp_forward(const Pass& p, const MlpWeights& w, const float* x, float* y, int64_t n, float* gu, float* act);
// The same keeping the activations in acts (training), or in scratch when acts is null.
void mlp_forward(const Pass& p, const MlpWeights& w, const float* x, float* y, int64_t n, MlpActs* acts);
// dx [n, D] (+= when add_dx, else =), g += ∂L/∂parameters, given dy [n, D] and the forward's gu, act.
void mlp_backward(const Pass& p, const MlpWeights& w, MlpGrads& g, const float* x, const float* dy, float* dx,
                  bool add_dx, int64_t n, const float* gu, const float* act);

}  // namespace seek
