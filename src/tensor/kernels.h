// kernels.h — the numeric kernels of seek, each with a naive `_ref` twin that is kept forever as the
// specification, the test oracle and the fallback.
//
// Dimension letters (used in shape comments throughout seek):
//   B batch   T tokens   D model dim   N output features   K input features (reduction)
//   H heads   G kv heads   E experts   k experts per token   C latent rank (kv_lora_rank)
//   R rope dim   V vocabulary
// All activations are f32, row-major, contiguous unless a stride is given. A weight matrix is stored
// as in a Hugging Face nn.Linear: [N, K] row-major (out × in), in any DType of dtype.h.
//
// Kernels know nothing about models: no layer, config or tensor names appear here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace seek {

// A read-only view of a 2-D weight [rows = N, cols = K] (usually inside an mmapped file).
// For F8_E4M3, `scale_inv` points at f32 block scales of shape [ceil(N/block), ceil(K/block)]
// (DeepSeek-V3's `weight_scale_inv`): the real value of w[n][k] is
//   f8(w[n][k]) * scale_inv[(n/block) * ceil(K/block) + k/block].
struct Mat {
  DType dtype = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;  // N
  int64_t cols = 0;  // K
  const float* scale_inv = nullptr;  // F8_E4M3 only
  int64_t block = 128;               // F8_E4M3 block edge
};

// Dequantizes (converts) rows [r0, r0 + nr) of w into f32 dst [nr, K].
void mat_rows_to_f32(const Mat& w, int64_t r0, int64_t nr, float* dst);
void mat_rows_to_f32_ref(const Mat& w, int64_t r0, int64_t nr, float* dst);

// y[T, N] = x[T, K] · w[N, K]^T  (+ bias[N] when bias != nullptr). y is overwritten.
// F32 weights go through BLAS sgemm. Other dtypes: small T uses a direct dot-product kernel
// (AVX-512 where the CPU has it, portable otherwise) with exact weight conversion and f32 accumulation;
// large T dequantizes row panels into a per-thread scratch and calls sgemm.
void matmul(float* y, const float* x, const Mat& w, int64_t T, const float* bias = nullptr);
void matmul_ref(float* y, const float* x, const Mat& w, int64_t T, const float* bias = nullptr);

// The same product for BF16 weights through AVX512-BF16 dot products (vdpbf16ps): activations are
// rounded to bf16 (nearest even) first, products are summed in f32. Fewer instructions per weight than
// matmul (faster where matmul is compute bound, 1 < T, cached weights; at T = 1 both run at memory
// bandwidth) but not exact in x (relative error ~1e-3), so it is never the default; benchmarks and
// experiments call it by name. Without AVX512-BF16 it runs a portable emulation (same rounding of x).
void matmul_bf16_dpbf16(float* y, const float* x, const Mat& w, int64_t T, const float* bias = nullptr);

// Plain f32 GEMM with explicit strides, for attention: C[M, N] = alpha · A[M, K] · op(B) + beta · C,
// op(B) = B^T when trans_b (B is [N, K]) else B (B is [K, N]). lda/ldb/ldc are row strides in elements.
void gemm_f32(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, bool trans_b, float beta, float* C, int64_t ldc);
void gemm_f32_ref(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, bool trans_b, float beta, float* C, int64_t ldc);

// RMSNorm over the last dimension: y[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w. y may alias x.
void rmsnorm(float* y, const float* x, const float* w, int64_t T, int64_t D, float eps);
void rmsnorm_ref(float* y, const float* x, const float* w, int64_t T, int64_t D, float eps);

// Numerically stable softmax in place over each of T rows of length n (row stride `stride`).
void softmax(float* x, int64_t T, int64_t n, int64_t stride);
void softmax_ref(float* x, int64_t T, int64_t n, int64_t stride);

// SwiGLU: out[i] = silu(gate[i]) * up[i] for n elements, silu(z) = z / (1 + exp(-z)). out may alias gate.
void silu_mul(float* out, const float* gate, const float* up, int64_t n);
void silu_mul_ref(float* out, const float* gate, const float* up, int64_t n);

// Indices of the k largest of x[0..n), largest first; ties go to the lower index. NaN is never chosen
// over a number. k <= n.
void topk(const float* x, int64_t n, int64_t k, int32_t* idx);
void topk_ref(const float* x, int64_t n, int64_t k, int32_t* idx);

// out[t] = table[ids[t]] for T ids; table is a [V, D] weight of any dtype. ids are checked against V
// by the caller.
void embedding(float* out, const Mat& table, const int32_t* ids, int64_t T);
void embedding_ref(float* out, const Mat& table, const int32_t* ids, int64_t T);

// Dequantizes a whole FP8 e4m3 block-scaled matrix into f32 dst [N, K].
void fp8_block_dequant(float* dst, const uint8_t* w, const float* scale_inv, int64_t N, int64_t K,
                       int64_t block);
void fp8_block_dequant_ref(float* dst, const uint8_t* w, const float* scale_inv, int64_t N, int64_t K,
                           int64_t block);

// ---- Rotary position embedding ----------------------------------------------------------------

enum class RopeLayout {
  Interleaved,  // rotate adjacent pairs (x[2i], x[2i+1]) — DeepSeek V2/V3 checkpoints
  HalfSplit,    // rotate (x[i], x[i + R/2]) — Qwen2, Llama
};

// Frequencies and the cos/sin multiplier for one rotary embedding of dimension R (even).
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
};

// inv_freq[R/2] after any scaling (YaRN correction ramp, llama3 wavelength bands, linear).
std::vector<float> rope_inv_freq(const RopeParams& p);
// The factor YaRN multiplies cos and sin by: yarn_mscale(factor, mscale) / yarn_mscale(factor,
// mscale_all_dim), with yarn_mscale(s, m) = 0.1·m·ln(s) + 1 for s > 1, else 1. 1 when not yarn.
float rope_cos_sin_scale(const RopeParams& p);
// The YaRN attention-scale multiplier yarn_mscale(factor, mscale_all_dim) (squared by the caller).
float yarn_attention_mscale(const RopeParams& p);

// Rotates, in place, the first R values of each of n_heads vectors of every token:
// x is [T, n_heads, *] with token stride `token_stride` and head stride `head_stride` (elements);
// token t is at position pos[t]. angle = pos · inv_freq[i]; cos/sin are multiplied by `cs_scale`.
void rope(float* x, int64_t T, int64_t n_heads, int64_t token_stride, int64_t head_stride,
          const int32_t* pos, const float* inv_freq, int64_t R, float cs_scale, RopeLayout layout);
void rope_ref(float* x, int64_t T, int64_t n_heads, int64_t token_stride, int64_t head_stride,
              const int32_t* pos, const float* inv_freq, int64_t R, float cs_scale, RopeLayout layout);

}  // namespace seek
