// kernels_ref.cpp — the naive `_ref` kernels: the specification of every kernel in kernels.h, the
// oracle the tests compare the fast kernels against, and a fallback that is always correct.
//
// Does: plain scalar loops, in the most obvious order; dot products and reductions in double
// (matmul_ref, gemm_f32_ref, rmsnorm_ref, softmax_ref), so the fast kernels are judged against
// something more accurate than themselves.
// Does not: thread, vectorise, call BLAS or allocate on behalf of speed. Never optimise this file;
// if a reference is too slow for a test, make the test smaller.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "tensor/backend.h"
#include "tensor/kernels.h"
#include "tensor/quant.h"
#include "util/error.h"

namespace seek {

namespace {

// The real value of w[n][k] in f32, as the specification defines it (FP8: f8 value × block scale,
// rounded once to f32; GGUF block formats: the value ggml's dequantization gives, from its block alone).
float weight_at(const Mat& w, int64_t n, int64_t k) {
  int64_t i = n * w.cols + k;
  switch (w.dtype) {
    case DType::F32: return static_cast<const float*>(w.data)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    case DType::F8_E4M3: {
      SEEK_ASSERT_MSG(w.scale_inv != nullptr && w.block > 0, "F8_E4M3 weight without block scales");
      int64_t kb = (w.cols + w.block - 1) / w.block;
      float s = w.scale_inv[(n / w.block) * kb + k / w.block];
      return f8e4m3_to_f32(static_cast<const uint8_t*>(w.data)[i]) * s;
    }
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: {
      const int64_t bv = dtype_block_values(w.dtype);
      SEEK_ASSERT_MSG(w.cols % bv == 0, "a block-quantized weight's K must be a multiple of its block");
      const char* row = static_cast<const char*>(w.data) + n * (w.cols / bv) * dtype_block_bytes(w.dtype);
      return dequantize_value_ref(w.dtype, row, k);
    }
    default:
      break;
  }
  SEEK_ASSERT_MSG(false, "weights must be F32, BF16, F16, F8_E4M3, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K or Q6_K");
}

// topk order: a before b. NaN ranks below every number; equal values go to the lower index.
bool ranks_before(const float* x, int64_t a, int64_t b) {
  bool na = std::isnan(x[a]), nb = std::isnan(x[b]);
  if (na != nb) return nb;
  if (!na && x[a] != x[b]) return x[a] > x[b];
  return a < b;
}

}  // namespace

void mat_rows_to_f32_ref(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  SEEK_ASSERT(r0 >= 0 && nr >= 0 && r0 + nr <= w.rows);
  for (int64_t r = 0; r < nr; r++)
    for (int64_t k = 0; k < w.cols; k++) dst[r * w.cols + k] = weight_at(w, r0 + r, k);
}

void matmul_ref(float* y, const float* x, const Mat& w, int64_t T, const float* bias, int64_t ldy) {
  const int64_t N = w.rows, K = w.cols;
  if (ldy == 0) ldy = N;
  for (int64_t t = 0; t < T; t++) {
    for (int64_t n = 0; n < N; n++) {
      double acc = bias ? bias[n] : 0.0;
      for (int64_t k = 0; k < K; k++) acc += double(x[t * K + k]) * double(weight_at(w, n, k));
      y[t * ldy + n] = float(acc);
    }
  }
}

void weighted_rows_ref(float* y, int64_t ldy, const float* x, int64_t ldx, const Mat& w, int64_t r0, int64_t nr,
                       int64_t T) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t k = 0; k < w.cols; k++) {
      double acc = 0;
      for (int64_t i = 0; i < nr; i++) acc += double(x[t * ldx + i]) * double(weight_at(w, r0 + i, k));
      y[t * ldy + k] = float(acc);
    }
}

void gemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t m = 0; m < M; m++) {
    for (int64_t n = 0; n < N; n++) {
      double acc = 0;
      for (int64_t k = 0; k < K; k++) {
        float a = trans_a ? A[k * lda + m] : A[m * lda + k];
        float b = trans_b ? B[n * ldb + k] : B[k * ldb + n];
        acc += double(a) * double(b);
      }
      // As in BLAS, beta == 0 means C is not read (it may hold NaN).
      double c = beta == 0.0f ? 0.0 : double(beta) * double(C[m * ldc + n]);
      C[m * ldc + n] = float(double(alpha) * acc + c);
    }
  }
}

void rmsnorm_ref(float* y, const float* x, const float* w, int64_t T, int64_t D, float eps, float* rstd, int64_t ldx,
                 int64_t ldy) {
  if (ldx == 0) ldx = D;
  if (ldy == 0) ldy = D;
  for (int64_t t = 0; t < T; t++) {
    double ss = 0;
    for (int64_t d = 0; d < D; d++) ss += double(x[t * ldx + d]) * double(x[t * ldx + d]);
    double inv = 1.0 / std::sqrt(ss / double(D) + double(eps));
    if (rstd) rstd[t] = float(inv);
    for (int64_t d = 0; d < D; d++) y[t * ldy + d] = float(double(x[t * ldx + d]) * inv * double(w[d]));
  }
}

void softmax_ref(float* x, int64_t T, int64_t n, int64_t stride) {
  for (int64_t t = 0; t < T; t++) {
    float* row = x + t * stride;
    double mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = std::fmax(mx, double(row[i]));
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += std::exp(double(row[i]) - mx);
    for (int64_t i = 0; i < n; i++) row[i] = float(std::exp(double(row[i]) - mx) / sum);
  }
}

void swiglu_ref(float* out, const float* gu, int64_t T, int64_t F) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t f = 0; f < F; f++) {
      double g = gu[t * 2 * F + f], u = gu[t * 2 * F + F + f];
      out[t * F + f] = float(g / (1.0 + std::exp(-g)) * u);
    }
}

void swiglu_backward_ref(float* dgu, const float* dout, const float* gu, int64_t T, int64_t F) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t f = 0; f < F; f++) {
      double g = gu[t * 2 * F + f], u = gu[t * 2 * F + F + f], d = dout[t * F + f];
      double s = 1.0 / (1.0 + std::exp(-g));
      dgu[t * 2 * F + F + f] = float(d * g * s);
      dgu[t * 2 * F + f] = float(d * u * s * (1.0 + g * (1.0 - s)));
    }
}

void topk_ref(const float* x, int64_t n, int64_t k, int32_t* idx) {
  SEEK_ASSERT(k >= 0 && k <= n);
  std::vector<bool> taken(n, false);
  for (int64_t j = 0; j < k; j++) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++)
      if (!taken[i] && (best < 0 || ranks_before(x, i, best))) best = i;
    taken[best] = true;
    idx[j] = int32_t(best);
  }
}

void mqa_decode_ref(const float* q, int64_t ldq, const float* k, int64_t ldk, int64_t H, int64_t L, int64_t dk,
                    int64_t dv, float scale, float* out, int64_t ldo) {
  std::vector<double> s(static_cast<size_t>(L));
  for (int64_t h = 0; h < H; h++) {
    double mx = -INFINITY, sum = 0;
    for (int64_t l = 0; l < L; l++) {
      double d = 0;
      for (int64_t j = 0; j < dk; j++) d += double(q[h * ldq + j]) * double(k[l * ldk + j]);
      mx = std::max(mx, s[size_t(l)] = double(scale) * d);
    }
    for (int64_t l = 0; l < L; l++) sum += (s[size_t(l)] = std::exp(s[size_t(l)] - mx));
    for (int64_t c = 0; c < dv; c++) {
      double o = 0;
      for (int64_t l = 0; l < L; l++) o += s[size_t(l)] * double(k[l * ldk + c]);
      out[h * ldo + c] = float(o / sum);
    }
  }
}

void embedding_ref(float* out, const Mat& table, const int32_t* ids, int64_t T) {
  SEEK_ASSERT_MSG(table.dtype == DType::F32 || table.dtype == DType::BF16 || table.dtype == DType::F16,
                  "embedding tables must be F32, BF16 or F16");
  for (int64_t t = 0; t < T; t++)
    for (int64_t d = 0; d < table.cols; d++) out[t * table.cols + d] = weight_at(table, ids[t], d);
}

void attention_head_ref(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                        int64_t dk, int64_t dv, float scale, float* p, int64_t ldp, float* o, int64_t ldo) {
  std::vector<double> s(static_cast<size_t>(T));
  for (int64_t i = 0; i < T; i++) {
    double mx = -INFINITY;
    for (int64_t j = 0; j <= i; j++) {
      double dot = 0;
      for (int64_t d = 0; d < dk; d++) dot += double(q[i * ldq + d]) * double(k[j * ldk + d]);
      s[size_t(j)] = double(scale) * dot;
      mx = std::max(mx, s[size_t(j)]);
    }
    double sum = 0;
    for (int64_t j = 0; j <= i; j++) sum += std::exp(s[size_t(j)] - mx);
    const int64_t end = std::min(T, (i / 64 + 1) * 64);
    for (int64_t j = 0; j < end; j++) p[i * ldp + j] = j <= i ? float(std::exp(s[size_t(j)] - mx) / sum) : 0.f;
    for (int64_t c = 0; c < dv; c++) {
      double acc = 0;
      for (int64_t j = 0; j <= i; j++) acc += double(p[i * ldp + j]) * double(v[j * ldv + c]);
      o[i * ldo + c] = float(acc);
    }
  }
}

void attention_head_backward_ref(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                                 int64_t ldv, int64_t T, int64_t dk, int64_t dv, float scale, const float* p,
                                 int64_t ldp, const float* dout, int64_t lddo, const AttentionHeadGrads& g) {
  std::vector<double> dq(size_t(T * dk), 0.0), dkk(size_t(T * dk), 0.0), dvv(size_t(T * dv), 0.0);
  std::vector<double> dp(static_cast<size_t>(T));
  for (int64_t i = 0; i < T; i++) {
    double sum = 0;
    for (int64_t j = 0; j <= i; j++) {
      double d = 0;
      for (int64_t c = 0; c < dv; c++) d += double(dout[i * lddo + c]) * double(v[j * ldv + c]);
      dp[size_t(j)] = d;
      sum += double(p[i * ldp + j]) * d;
    }
    for (int64_t j = 0; j <= i; j++) {
      const double pij = p[i * ldp + j], dz = double(scale) * pij * (dp[size_t(j)] - sum);
      for (int64_t d = 0; d < dk; d++) {
        dq[size_t(i * dk + d)] += dz * double(k[j * ldk + d]);
        dkk[size_t(j * dk + d)] += dz * double(q[i * ldq + d]);
      }
      for (int64_t c = 0; c < dv; c++) dvv[size_t(j * dv + c)] += pij * double(dout[i * lddo + c]);
    }
  }
  for (int64_t i = 0; i < T; i++) {
    for (int64_t d = 0; d < dk; d++) {
      g.dq[i * g.lddq + d] = float(dq[size_t(i * dk + d)]);
      float& x = g.dk[i * g.lddk + d];
      x = float((g.add_kv ? double(x) : 0.0) + dkk[size_t(i * dk + d)]);
    }
    for (int64_t c = 0; c < dv; c++) {
      float& x = g.dv[i * g.lddv + c];
      x = float((g.add_kv ? double(x) : 0.0) + dvv[size_t(i * dv + c)]);
    }
  }
}

// Angles are pos · inv_freq rounded to f32, as the PyTorch references compute them
// (torch.outer(t, inv_freq) in float32 in HF and DeepSeek's inference/model.py); cos and sin of that
// angle are taken in double and rounded once.
void rope_ref(float* x, int64_t T, int64_t n_heads, int64_t token_stride, int64_t head_stride, const int32_t* pos,
              const float* inv_freq, int64_t R, float cs_scale, RopeLayout layout, bool inverse) {
  SEEK_ASSERT(R % 2 == 0);
  const int64_t half = R / 2;
  for (int64_t t = 0; t < T; t++) {
    for (int64_t h = 0; h < n_heads; h++) {
      float* v = x + t * token_stride + h * head_stride;
      for (int64_t i = 0; i < half; i++) {
        float angle = float(pos[t]) * inv_freq[i];
        double c = std::cos(double(angle)) * double(cs_scale);
        double s = std::sin(double(angle)) * double(cs_scale) * (inverse ? -1.0 : 1.0);
        int64_t i0 = layout == RopeLayout::Interleaved ? 2 * i : i;
        int64_t i1 = layout == RopeLayout::Interleaved ? 2 * i + 1 : i + half;
        double a = v[i0], b = v[i1];
        v[i0] = float(a * c - b * s);
        v[i1] = float(a * s + b * c);
      }
    }
  }
}

}  // namespace seek
