// kernels_avx512.h — entry points of kernels_avx512.cpp, for tensor/'s own files only. Each is called
// only after cpu_features() reported AVX-512 F/BW/VL (and BF16 for matmul_dpbf16_rows).
#pragma once
#include <cstdint>

#include "tensor/format.h"

namespace seek::avx512 {

// The weight-format table's kernels (format.h).
void direct_rows_bf16(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                      const float* bias);
void direct_rows_f16(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                     const float* bias);
void direct_rows_f8(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                    const float* bias);
void rows_to_f32_bf16(const Mat& w, int64_t r0, int64_t nr, float* dst);
void rows_to_f32_f16(const Mat& w, int64_t r0, int64_t nr, float* dst);
void rows_to_f32_f8(const Mat& w, int64_t r0, int64_t nr, float* dst);

// matmul_bf16_dpbf16 for rows [n0, n1); xb is x rounded to bf16, [T, padded_k(K)], zero-padded.
int64_t padded_k(int64_t K);
void matmul_dpbf16_rows(float* y, const uint16_t* xb, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                        const float* bias);

// Element kernels.
void softmax_rows(float* x, int64_t T, int64_t n, int64_t stride);
void silu_mul(float* out, const float* gate, const float* up, int64_t n);
// dgate, dup (written) for out = silu(gate) · up.
void silu_mul_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);

}  // namespace seek::avx512
