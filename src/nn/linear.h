// linear.h — projections, forward and backward: y = x · Wᵀ (+ b), with W a Mat of any weight format at
// inference and an f32 arena matrix in training. Several projections of the same input run as one GEMM
// when their weights lie one after another in memory (a training arena is laid out so: gate|up,
// q_a|kv_a, q|k|v), their outputs side by side in one row; elsewhere (mmapped checkpoints) one product
// each into the same rows, all in one parallel region (matmul_many).
//
// FP8 simulation (Pass::fp8) rounds each weight in its own 128×128 blocks and the input and output
// gradients in 1×128 tiles of each projection's own columns, so a stacked GEMM rounds exactly as the
// separate ones would.
#pragma once
#include <cstdint>
#include <initializer_list>

#include "nn/pass.h"

namespace seek {

struct Proj {
  Mat w;                        // [N, K]
  const float* bias = nullptr;  // [N] or null
};
struct ProjGrad {
  float* dw = nullptr;  // [N, K] (+=), or null
  float* db = nullptr;  // [N] (+=), or null
};

// y[T, ΣN] = x[T, K] · [w_0; w_1; ...]ᵀ (+ biases): each projection's outputs in its own columns, in
// order. ldy: y's row stride (0 = ΣN).
void linear(const Pass& p, float* y, const float* x, std::initializer_list<Proj> projs, int64_t T, int64_t ldy = 0);
inline void linear(const Pass& p, float* y, const float* x, const Mat& w, int64_t T, const float* bias = nullptr) {
  linear(p, y, x, {Proj{w, bias}}, T);
}

// The backward of linear for the same projections: dy [T, ΣN] (row stride lddy, 0 = ΣN);
// dx [T, K] = dy · W (overwritten, or added to when add_dx; skipped when null); each projection's dW and
// db accumulate. The weights must be F32.
void linear_backward(const Pass& p, float* dx, bool add_dx, std::initializer_list<ProjGrad> grads, const float* dy,
                     const float* x, std::initializer_list<Proj> projs, int64_t T, int64_t lddy = 0);
inline void linear_backward(const Pass& p, float* dx, bool add_dx, ProjGrad g, const float* dy, const float* x,
                            const Mat& w, int64_t T) {
  linear_backward(p, dx, add_dx, {g}, dy, x, {Proj{w}}, T);
}

}  // namespace seek
