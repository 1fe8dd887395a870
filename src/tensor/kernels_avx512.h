// kernels_avx512.h — entry points of kernels_avx512.cpp, for tensor/'s own files only. Each is called
// only after cpu_features() reported AVX-512 F/BW/VL (and BF16 for matmul_dpbf16_rows).
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/format.h"

namespace seek::avx512 {

// The weight-format table's kernels (format.h).
void direct_rows_f32(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                     const float* bias);
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
int64_t argmax(const float* x, int64_t n);
double exp_sum(float* y, const float* x, int64_t n, float shift, float scale);
// mqa_decode's part over keys [0, L) for up to 16 heads in the lanes (kernels_avx512.cpp).
void mqa_decode_part(const float* qt, const float* k, int64_t ldk, int64_t L, int64_t dk, int64_t dv, int heads,
                     float scale, float* scores, float* m, float* s, float* ctx);
void silu_mul(float* out, const float* gate, const float* up, int64_t n);
// dgate, dup (written) for out = silu(gate) · up.
void silu_mul_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);

// The training form of one attention head (kernels.h), with floats of scratch as the _scratch functions say.
int64_t attention_head_scratch(int64_t T, int64_t dk, int64_t dv);
int64_t attention_head_backward_scratch(int64_t T, int64_t dk, int64_t dv);
void attention_head(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                    int64_t dk, int64_t dv, float scale, float* p, int64_t ldp, float* o, int64_t ldo, float* scratch);
void attention_head_backward(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv,
                             int64_t T, int64_t dk, int64_t dv, float scale, const float* p, int64_t ldp,
                             const float* dout, int64_t lddo, float* dq, int64_t lddq, float* dkk, int64_t lddk,
                             float* dvv, int64_t lddv, bool add_kv, float* scratch);

// GGUF block formats Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K (kernels_quant_avx512.cpp): the weight-format table's kernels
// (format.h), weights decoded exactly as quant.h's dequantize_row_ref.
void direct_rows_q8_0(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                      const float* bias);
void direct_rows_q4_0(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                      const float* bias);
void direct_rows_q4_k(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                      const float* bias);
void direct_rows_q6_k(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                      const float* bias);
void direct_rows_q5_0(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                      const float* bias);
void direct_rows_q5_1(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                      const float* bias);
void direct_rows_q5_k(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                      const float* bias);
void rows_to_f32_q8_0(const Mat& w, int64_t r0, int64_t nr, float* dst);
void rows_to_f32_q4_0(const Mat& w, int64_t r0, int64_t nr, float* dst);
void rows_to_f32_q4_k(const Mat& w, int64_t r0, int64_t nr, float* dst);
void rows_to_f32_q6_k(const Mat& w, int64_t r0, int64_t nr, float* dst);
void rows_to_f32_q5_0(const Mat& w, int64_t r0, int64_t nr, float* dst);
void rows_to_f32_q5_1(const Mat& w, int64_t r0, int64_t nr, float* dst);
void rows_to_f32_q5_k(const Mat& w, int64_t r0, int64_t nr, float* dst);
// y[K] = Σ_{i < nr} a[i] · w[r0 + i] for a block format (any of the above): weighted_rows' fused kernel.
void quant_rows_weighted(float* y, const float* a, const Mat& w, int64_t r0, int64_t nr);

// The block formats' int8 decode path (kernels_quant_avx512.cpp): for T <= 16 on a CPU with AVX-512 VNNI,
// the direct kernels round the activations to 8 bits (Q8_0/Q4_0/Q5_0 weights (Q5_1 has only the exact path): per block of 32, an f32 scale each,
// as llama.cpp's Q8_0 activations; the K-quants: per 256, as its Q8_K) and take integer dot products; otherwise they multiply the exact f32 weights by the f32
// activations. On by default where the CPU has avx512vnni; SEEK_QUANT_EXACT=1 or
// set_quant_int8_activations(false) forces the exact path (it returns the previous setting). Not
// thread-safe against running kernels.
bool set_quant_int8_activations(bool on);
// Whether the int8 path is in use now (enabled and the CPU, as cpu_features() reports it, has VNNI).
bool quant_int8_activations();
// Starts an activation epoch: until the next call, the int8 path takes activations at the same address,
// T and K to be the same values and quantizes them once per thread. The backend calls it before each
// matmul's direct kernels run (their caller must, if not the backend).
void next_activations();

// The int8 GEMM (prefill, kernels_quant_avx512.cpp): Q8_0, Q4_0 and Q5_0 weights against activations
// rounded to 8 bits per block of 32 (as the decode path rounds them: llama.cpp's Q8_0 with an f32 scale),
// Q4_K, Q5_K and Q6_K weights against activations rounded per block of 256 (f32 scale amax / 127, as
// llama.cpp's Q8_K); integer dot products in the lanes of 16 tokens. The activations are quantized once
// per matmul by groups of 16 tokens (int8_acts_alloc for the weights' format, then int8_acts_groups from
// any threads over disjoint groups), then int8_gemm_rows computes rows [n0, n1) for all T tokens. Needs
// avx512vnni; K a multiple of the weights' block.
struct Int8Acts {
  int64_t T = 0, K = 0, groups = 0;  // groups of 16 tokens, padded with zero tokens
  int64_t block = 256;               // activations per scale: 32 or 256
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int32_t> bs;
};
bool int8_gemm_supported(DType t);
// Rows int8_gemm_rows decodes at a time: callers hand out row ranges in multiples of this.
constexpr int64_t kInt8GemmPanelRows = 32;
// The direct kernels' int8 path serves T up to this; above it the formats int8_gemm_supported names go to
// the int8 GEMM (backend.cpp) and the others (Q5_1) to the exact path.
constexpr int64_t kInt8MaxT = 16;
void int8_acts_alloc(DType t, int64_t T, int64_t K, Int8Acts* a);
void int8_acts_groups(const float* x, int64_t g0, int64_t g1, Int8Acts* a);
void int8_gemm_rows(float* y, int64_t ldy, const Int8Acts& a, const Mat& w, int64_t n0, int64_t n1,
                    const float* bias);

}  // namespace seek::avx512
