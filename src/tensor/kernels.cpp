// kernels.cpp — the fast kernels of kernels.h: dispatch between AVX-512 (kernels_avx512.cpp) and
// portable code, OpenMP threading, BLAS calls, and the rotary-embedding frequency tables.
//
// Shapes use the letters of kernels.h: T tokens, N output features, K input features, R rope dim.
//
// matmul, by weight dtype and T:
//   F32                      cblas_sgemm (cblas_sgemv at T = 1), BLAS threads.
//   BF16/F16/F8, T <= 64     "direct": each output row is a dot product of one streamed weight row
//                            with the activation rows (groups of 4 tokens, blocks of 16 rows kept in
//                            cache across the groups); weights converted exactly in registers, f32
//                            FMAs. Rows are split across OpenMP threads. At T = 1 this is decode: memory
//                            bound, it reads the weights at the machine's streaming bandwidth.
//   BF16/F16/F8, T > 64      "panels": each thread converts a panel of up to 256 weight rows to f32 in
//                            its own scratch and calls single-threaded cblas_sgemm on it (OpenBLAS runs
//                            one thread inside an OpenMP parallel region).
//   The threshold: on a 2-core Zen 5 the direct kernel runs at ~330 GFLOP/s at any T, the panel path
//   only overtakes it from T ≈ 64–96 with OpenBLAS's AVX-512 (SkylakeX) sgemm at ~480 GFLOP/s, and
//   never with its Haswell kernels (~260 GFLOP/s). Measured with bench/bench_kernels.cpp. Without
//   AVX-512 the portable direct kernel (compiled for baseline x86-64; ~25 GB/s at T = 1 on Zen 5)
//   serves only T <= 4.
//
// Scratch buffers are thread_local and grow once, so decode allocates nothing after warm-up.
//
// Does not: define the numerics (kernels_ref.cpp does; every kernel here is tested against it), or
// know about models. Softmax and SwiGLU on AVX-512 use a polynomial exp (~2 ulp); the portable path
// uses std::exp.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

#include "tensor/cpu.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace seek {

// Defined in kernels_avx512.cpp; called only when cpu_features() reports AVX-512 F/BW/VL (and BF16
// for matmul_dpbf16_rows).
namespace avx512 {
int64_t padded_k(int64_t K);
void matmul_direct_rows(float* y, const float* x, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                        const float* bias);
void matmul_dpbf16_rows(float* y, const uint16_t* xb, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                        const float* bias);
void rows_to_f32(const Mat& w, int64_t r0, int64_t nr, float* dst);
void softmax_rows(float* x, int64_t T, int64_t n, int64_t stride);
void silu_mul(float* out, const float* gate, const float* up, int64_t n);
}  // namespace avx512

namespace {

constexpr int64_t kDirectMaxT = 64;          // matmul: T up to this uses the AVX-512 direct kernel
constexpr int64_t kPanelMaxRows = 256;        // matmul: rows of f32 weights per panel for T > kDirectMaxT...
constexpr int64_t kPanelMaxBytes = 8 << 20;   // ...and at most this many bytes of them per thread
constexpr int64_t kPortableTokens = 8;        // portable direct kernel: tokens per pass over a weight row
constexpr int64_t kPortableMaxT = 4;          // matmul: T up to this uses the portable direct kernel
constexpr int64_t kParallelMin = 1 << 15;     // below this much work (elements), stay on one thread

bool has_avx512() {
  const CpuFeatures& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512vl;
}

bool has_avx512_bf16() { return has_avx512() && cpu_features().avx512bf16; }

// A thread's scratch buffer of at least n elements; grows, never shrinks.
template <class E>
E* grow(std::vector<E>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// This thread's share [begin, end) of `count` items split evenly into `align`-sized pieces.
void thread_range(int64_t count, int64_t align, int64_t* begin, int64_t* end) {
  int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
  int64_t units = (count + align - 1) / align;
  *begin = std::min(count, units * id / nt * align);
  *end = std::min(count, units * (id + 1) / nt * align);
}

void check_weight(const char* op, const Mat& w) {
  bool ok_dtype = w.dtype == DType::F32 || w.dtype == DType::BF16 || w.dtype == DType::F16 ||
                  w.dtype == DType::F8_E4M3;
  if (!ok_dtype)
    SEEK_ASSERT_MSG(false, strfmt("[%s] weight [%lld, %lld] has dtype %s; expected F32, BF16, F16 or F8_E4M3",
                                  op, (long long)w.rows, (long long)w.cols, std::string(dtype_name(w.dtype)).c_str())
                               .c_str());
  if (w.rows > 0 && w.cols > 0) SEEK_ASSERT_MSG(w.data != nullptr, op);
  if (w.dtype == DType::F8_E4M3 && w.rows > 0 && w.cols > 0)
    SEEK_ASSERT_MSG(w.scale_inv != nullptr && w.block > 0,
                    strfmt("[%s] F8_E4M3 weight [%lld, %lld] needs scale_inv and a block > 0", op,
                           (long long)w.rows, (long long)w.cols)
                        .c_str());
}

// ---- portable conversions (inline, so loops over them vectorise) ---------------------------------

inline float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

struct F8Table {
  float v[256];
  F8Table() {
    for (int b = 0; b < 256; b++) v[b] = f8e4m3_to_f32(uint8_t(b));
  }
};
const F8Table& f8_table() {
  static const F8Table t;
  return t;
}

// w[n][k0 .. k0 + len) -> out[0 .. len), exact.
void row_to_f32_portable(const Mat& w, int64_t n, int64_t k0, int64_t len, float* out) {
  const int64_t K = w.cols;
  switch (w.dtype) {
    case DType::F32:
      std::memcpy(out, static_cast<const float*>(w.data) + n * K + k0, size_t(len) * 4);
      return;
    case DType::BF16: {
      const uint16_t* src = static_cast<const uint16_t*>(w.data) + n * K + k0;
      for (int64_t i = 0; i < len; i++) out[i] = bits_to_f32(uint32_t(src[i]) << 16);
      return;
    }
    case DType::F16: {
      const uint16_t* src = static_cast<const uint16_t*>(w.data) + n * K + k0;
      for (int64_t i = 0; i < len; i++) out[i] = f16_to_f32(src[i]);
      return;
    }
    case DType::F8_E4M3: {
      const uint8_t* src = static_cast<const uint8_t*>(w.data) + n * K + k0;
      const float* lut = f8_table().v;
      const int64_t kblocks = (K + w.block - 1) / w.block;
      const float* srow = w.scale_inv + (n / w.block) * kblocks;
      for (int64_t i = 0; i < len;) {
        int64_t k = k0 + i;
        int64_t stop = std::min(len, (k / w.block + 1) * w.block - k0);
        float s = srow[k / w.block];
        for (; i < stop; i++) out[i] = lut[src[i]] * s;
      }
      return;
    }
    default:
      SEEK_ASSERT_MSG(false, "weights must be F32, BF16, F16 or F8_E4M3");
  }
}

// Rows [r0, r0 + nr) -> dst [nr, K] on this thread.
void rows_to_f32_serial(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  if (w.dtype != DType::F32 && has_avx512()) return avx512::rows_to_f32(w, r0, nr, dst);
  for (int64_t r = 0; r < nr; r++) row_to_f32_portable(w, r0 + r, 0, w.cols, dst + r * w.cols);
}

// Portable direct kernel for rows [n0, n1): converts a chunk of one weight row at a time and dots it
// with every activation row (f32 accumulation, vectorised by the compiler).
void direct_rows_portable(float* y, const float* x, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                          const float* bias) {
  const int64_t N = w.rows, K = w.cols;
  constexpr int64_t chunk = 512;
  float wbuf[chunk];
  for (int64_t t0 = 0; t0 < T; t0 += kPortableTokens) {
    const int64_t tt = std::min(kPortableTokens, T - t0);
    for (int64_t n = n0; n < n1; n++) {
      float acc[kPortableTokens] = {};
      for (int64_t k0 = 0; k0 < K; k0 += chunk) {
        const int64_t len = std::min(chunk, K - k0);
        row_to_f32_portable(w, n, k0, len, wbuf);
        for (int64_t t = 0; t < tt; t++) {
          const float* xr = x + (t0 + t) * K + k0;
          float s = 0;
#pragma omp simd reduction(+ : s)
          for (int64_t k = 0; k < len; k++) s += wbuf[k] * xr[k];
          acc[t] += s;
        }
      }
      for (int64_t t = 0; t < tt; t++) y[(t0 + t) * N + n] = acc[t] + (bias ? bias[n] : 0.0f);
    }
  }
}

void add_bias(float* y, const float* bias, int64_t T, int64_t N, int64_t n0, int64_t n1) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t n = n0; n < n1; n++) y[t * N + n] += bias[n];
}

void matmul_f32(float* y, const float* x, const Mat& w, int64_t T, const float* bias) {
  const int64_t N = w.rows, K = w.cols;
  const float* W = static_cast<const float*>(w.data);
  if (T == 1)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, int(N), int(K), 1.0f, W, int(K), x, 1, 0.0f, y, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(T), int(N), int(K), 1.0f, x, int(K), W, int(K),
                0.0f, y, int(N));
  if (bias) add_bias(y, bias, T, N, 0, N);
}

void matmul_direct(float* y, const float* x, const Mat& w, int64_t T, const float* bias) {
  const int64_t N = w.rows;
  const bool simd = has_avx512();
#pragma omp parallel if (N * w.cols >= kParallelMin)
  {
    int64_t n0, n1;
    thread_range(N, 16, &n0, &n1);
    if (n0 < n1) {
      if (simd)
        avx512::matmul_direct_rows(y, x, w, T, n0, n1, bias);
      else
        direct_rows_portable(y, x, w, T, n0, n1, bias);
    }
  }
}

void matmul_panels(float* y, const float* x, const Mat& w, int64_t T, const float* bias) {
  const int64_t N = w.rows, K = w.cols;
  // Panel height: at most kPanelMaxRows and kPanelMaxBytes, and small enough that every thread gets one.
  const int64_t per_thread = (N + omp_get_max_threads() - 1) / omp_get_max_threads();
  int64_t rows = std::min({kPanelMaxRows, kPanelMaxBytes / (4 * K), (per_thread + 15) / 16 * 16});
  rows = std::max<int64_t>(rows, 16);
  const int64_t npanels = (N + rows - 1) / rows;
#pragma omp parallel
  {
    static thread_local std::vector<float> panel_buf;
    float* panel = grow(panel_buf, size_t(rows * K));
#pragma omp for schedule(static)
    for (int64_t p = 0; p < npanels; p++) {
      const int64_t n0 = p * rows, nr = std::min(rows, N - n0);
      rows_to_f32_serial(w, n0, nr, panel);
      // [T, nr] block of y = x [T, K] · panel [nr, K]^T
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(T), int(nr), int(K), 1.0f, x, int(K), panel,
                  int(K), 0.0f, y + n0, int(N));
      if (bias) add_bias(y, bias, T, N, n0, n0 + nr);
    }
  }
}

// topk order: a before b. NaN ranks below every number; equal values go to the lower index.
inline bool ranks_before(const float* x, int64_t a, int64_t b) {
  bool na = std::isnan(x[a]), nb = std::isnan(x[b]);
  if (na != nb) return nb;
  if (!na && x[a] != x[b]) return x[a] > x[b];
  return a < b;
}

double yarn_mscale(double s, double m) { return s <= 1 ? 1.0 : 0.1 * m * std::log(s) + 1.0; }

}  // namespace

// ---- matmul ---------------------------------------------------------------------------------------

void mat_rows_to_f32(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  check_weight("mat_rows_to_f32", w);
  SEEK_ASSERT(r0 >= 0 && nr >= 0 && r0 + nr <= w.rows);
#pragma omp parallel if (nr * w.cols >= 8 * kParallelMin)
  {
    int64_t a, b;
    thread_range(nr, 1, &a, &b);
    if (a < b) rows_to_f32_serial(w, r0 + a, b - a, dst + a * w.cols);
  }
}

void matmul(float* y, const float* x, const Mat& w, int64_t T, const float* bias) {
  check_weight("matmul", w);
  const int64_t N = w.rows, K = w.cols;
  if (T <= 0 || N <= 0) return;
  if (K == 0) {
    for (int64_t t = 0; t < T; t++)
      for (int64_t n = 0; n < N; n++) y[t * N + n] = bias ? bias[n] : 0.0f;
    return;
  }
  if (w.dtype == DType::F32) return matmul_f32(y, x, w, T, bias);
  if (T <= (has_avx512() ? kDirectMaxT : kPortableMaxT)) return matmul_direct(y, x, w, T, bias);
  matmul_panels(y, x, w, T, bias);
}

void matmul_bf16_dpbf16(float* y, const float* x, const Mat& w, int64_t T, const float* bias) {
  check_weight("matmul_bf16_dpbf16", w);
  SEEK_ASSERT_MSG(w.dtype == DType::BF16, "[matmul_bf16_dpbf16] weights must be BF16");
  const int64_t N = w.rows, K = w.cols;
  if (T <= 0 || N <= 0) return;
  static thread_local std::vector<uint16_t> xb_buf;
  static thread_local std::vector<float> xr_buf;
  const bool simd = has_avx512_bf16();
  float* xr = nullptr;
  uint16_t* xb = nullptr;
  if (simd) {  // x in bf16, rows zero-padded to the kernel's chunk
    const int64_t Kp = avx512::padded_k(K);
    xb = grow(xb_buf, size_t(T * Kp));
    for (int64_t t = 0; t < T; t++)
      for (int64_t k = 0; k < Kp; k++) xb[t * Kp + k] = k < K ? f32_to_bf16(x[t * K + k]) : 0;
  } else {  // emulation: x rounded to bf16, exact products, f32 sums
    xr = grow(xr_buf, size_t(T * K));
    for (int64_t i = 0; i < T * K; i++) xr[i] = bf16_to_f32(f32_to_bf16(x[i]));
  }
#pragma omp parallel if (N * K >= kParallelMin)
  {
    int64_t n0, n1;
    thread_range(N, 16, &n0, &n1);
    if (n0 < n1) {
      if (simd)
        avx512::matmul_dpbf16_rows(y, xb, w, T, n0, n1, bias);
      else
        direct_rows_portable(y, xr, w, T, n0, n1, bias);
    }
  }
}

void gemm_f32(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
              int64_t ldb, bool trans_b, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // C = beta · C (beta == 0 overwrites, as in BLAS)
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) C[m * ldc + n] = beta == 0.0f ? 0.0f : beta * C[m * ldc + n];
    return;
  }
  SEEK_ASSERT_MSG(lda >= K && ldb >= (trans_b ? K : N) && ldc >= N,
                  strfmt("[gemm_f32] A [%lld, %lld] lda %lld, B %s ldb %lld, C ldc %lld: a stride is too short",
                         (long long)M, (long long)K, (long long)lda, trans_b ? "[N, K]" : "[K, N]",
                         (long long)ldb, (long long)ldc)
                      .c_str());
  cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(M), int(N), int(K), alpha,
              A, int(lda), B, int(ldb), beta, C, int(ldc));
}

// ---- elementwise and row kernels -------------------------------------------------------------------

void rmsnorm(float* y, const float* x, const float* w, int64_t T, int64_t D, float eps) {
#pragma omp parallel for if (T * D >= kParallelMin) schedule(static)
  for (int64_t t = 0; t < T; t++) {
    const float* xr = x + t * D;
    float* yr = y + t * D;
    double ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t d = 0; d < D; d++) ss += double(xr[d]) * double(xr[d]);
    const float inv = float(1.0 / std::sqrt(ss / double(D) + double(eps)));
#pragma omp simd
    for (int64_t d = 0; d < D; d++) yr[d] = xr[d] * inv * w[d];
  }
}

void softmax(float* x, int64_t T, int64_t n, int64_t stride) {
  if (n <= 0) return;
  const bool simd = has_avx512();
#pragma omp parallel for if (T * n >= kParallelMin) schedule(static)
  for (int64_t t = 0; t < T; t++) {
    float* row = x + t * stride;
    if (simd) {
      avx512::softmax_rows(row, 1, n, stride);
      continue;
    }
    float mx = row[0];
    for (int64_t i = 1; i < n; i++) mx = std::fmax(mx, row[i]);
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
      row[i] = std::exp(row[i] - mx);
      sum += row[i];
    }
    const float inv = float(1.0 / sum);
    for (int64_t i = 0; i < n; i++) row[i] *= inv;
  }
}

void silu_mul(float* out, const float* gate, const float* up, int64_t n) {
  const bool simd = has_avx512();
#pragma omp parallel if (n >= 4 * kParallelMin)
  {
    int64_t a, b;
    thread_range(n, 64, &a, &b);
    if (simd) {
      if (a < b) avx512::silu_mul(out + a, gate + a, up + a, b - a);
    } else {
      for (int64_t i = a; i < b; i++) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
    }
  }
}

void topk(const float* x, int64_t n, int64_t k, int32_t* idx) {
  SEEK_ASSERT_MSG(k >= 0 && k <= n, strfmt("[topk] k = %lld of n = %lld", (long long)k, (long long)n).c_str());
  if (k == 0) return;
  if (k <= 32) {
    // Insertion into a sorted list of the best k so far. Indices arrive in increasing order, so an
    // equal value never displaces an earlier one.
    int64_t len = 0;
    for (int64_t i = 0; i < n; i++) {
      if (len == k && !ranks_before(x, i, idx[len - 1])) continue;
      int64_t j = len < k ? len++ : k - 1;
      while (j > 0 && ranks_before(x, i, idx[j - 1])) {
        idx[j] = idx[j - 1];
        j--;
      }
      idx[j] = int32_t(i);
    }
    return;
  }
  static thread_local std::vector<int32_t> order_buf;
  int32_t* order = grow(order_buf, size_t(n));
  for (int64_t i = 0; i < n; i++) order[i] = int32_t(i);
  std::partial_sort(order, order + k, order + n, [x](int32_t a, int32_t b) { return ranks_before(x, a, b); });
  std::memcpy(idx, order, size_t(k) * sizeof(int32_t));
}

void embedding(float* out, const Mat& table, const int32_t* ids, int64_t T) {
  SEEK_ASSERT_MSG(table.dtype == DType::F32 || table.dtype == DType::BF16 || table.dtype == DType::F16,
                  "[embedding] tables must be F32, BF16 or F16");
  for (int64_t t = 0; t < T; t++) {
    SEEK_ASSERT(ids[t] >= 0 && ids[t] < table.rows);
    rows_to_f32_serial(table, ids[t], 1, out + t * table.cols);
  }
}

void fp8_block_dequant(float* dst, const uint8_t* w, const float* scale_inv, int64_t N, int64_t K, int64_t block) {
  mat_rows_to_f32(Mat{DType::F8_E4M3, w, N, K, scale_inv, block}, 0, N, dst);
}

// ---- rotary embedding ---------------------------------------------------------------------------------

// Frequencies in double, stored as f32. Sources: HF DeepseekV3YarnRotaryEmbedding (yarn, YaRN paper
// §3.2 "NTK-by-parts" and §3.4 mscale), HF _compute_llama3_parameters (llama3), HF linear scaling.
std::vector<float> rope_inv_freq(const RopeParams& p) {
  SEEK_ASSERT_MSG(p.dim > 0 && p.dim % 2 == 0, "[rope_inv_freq] dim must be even and positive");
  const int64_t R = p.dim, half = R / 2;
  std::vector<double> base(half);
  for (int64_t i = 0; i < half; i++) base[i] = 1.0 / std::pow(p.theta, double(2 * i) / double(R));
  std::vector<float> out(half);
  if (p.type.empty() || p.type == "default") {
    for (int64_t i = 0; i < half; i++) out[i] = float(base[i]);
  } else if (p.type == "linear") {
    for (int64_t i = 0; i < half; i++) out[i] = float(base[i] / p.factor);
  } else if (p.type == "llama3") {
    const double low_wavelen = p.original_max_position / p.low_freq_factor;
    const double high_wavelen = p.original_max_position / p.high_freq_factor;
    for (int64_t i = 0; i < half; i++) {
      const double f = base[i], wavelen = 2 * std::numbers::pi / f;
      double g;
      if (wavelen < high_wavelen) {
        g = f;
      } else if (wavelen > low_wavelen) {
        g = f / p.factor;
      } else {
        double smooth = (p.original_max_position / wavelen - p.low_freq_factor) /
                        (p.high_freq_factor - p.low_freq_factor);
        g = (1 - smooth) * f / p.factor + smooth * f;
      }
      out[i] = float(g);
    }
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

float rope_cos_sin_scale(const RopeParams& p) {
  if (p.type != "yarn") return 1.0f;
  return float(yarn_mscale(p.factor, p.mscale) / yarn_mscale(p.factor, p.mscale_all_dim));
}

float yarn_attention_mscale(const RopeParams& p) {
  if (p.type != "yarn") return 1.0f;
  return float(yarn_mscale(p.factor, p.mscale_all_dim));
}

// As rope_ref: angle = f32(pos · inv_freq); cos and sin in double, times cs_scale, rounded to f32 once
// per token and shared by all heads; the rotation itself in f32.
void rope(float* x, int64_t T, int64_t n_heads, int64_t token_stride, int64_t head_stride, const int32_t* pos,
          const float* inv_freq, int64_t R, float cs_scale, RopeLayout layout) {
  SEEK_ASSERT(R % 2 == 0);
  const int64_t half = R / 2;
#pragma omp parallel for if (T * n_heads * R >= kParallelMin) schedule(static)
  for (int64_t t = 0; t < T; t++) {
    static thread_local std::vector<float> cs_buf;
    float* c = grow(cs_buf, size_t(R));
    float* s = c + half;
    for (int64_t i = 0; i < half; i++) {
      const double angle = double(float(pos[t]) * inv_freq[i]);
      c[i] = float(std::cos(angle) * double(cs_scale));
      s[i] = float(std::sin(angle) * double(cs_scale));
    }
    for (int64_t h = 0; h < n_heads; h++) {
      float* v = x + t * token_stride + h * head_stride;
      if (layout == RopeLayout::Interleaved) {
#pragma omp simd
        for (int64_t i = 0; i < half; i++) {
          const float a = v[2 * i], b = v[2 * i + 1];
          v[2 * i] = a * c[i] - b * s[i];
          v[2 * i + 1] = a * s[i] + b * c[i];
        }
      } else {
#pragma omp simd
        for (int64_t i = 0; i < half; i++) {
          const float a = v[i], b = v[i + half];
          v[i] = a * c[i] - b * s[i];
          v[i + half] = a * s[i] + b * c[i];
        }
      }
    }
  }
}

}  // namespace seek
