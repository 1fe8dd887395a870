// backend.cpp — the CPU backend: OpenMP threads, OpenBLAS GEMM, and matmul over the weight formats.
//
// matmul, by weight format and T:
//   F32, T <= 16 with AVX-512 the direct kernel below (sgemm would pack the whole weight matrix for a
//                            few rows: a speculative step's 2 rows on an f32 model cost 2.2x one row).
//   F32 otherwise            cblas_sgemm (cblas_sgemv at T = 1), BLAS threads.
//   other formats, T <= 64   "direct": the format's kernel streams each weight row once and dots it with
//                            the activation rows (groups of 4 tokens, blocks of 16 rows kept in cache
//                            across the groups); weights converted exactly in registers, f32 FMAs. Rows
//                            are split across threads. At T = 1 this is decode: memory bound, it reads
//                            the weights at the machine's streaming bandwidth.
//   Q4_K/Q5_K/Q6_K, T > 16   "int8 GEMM" where the CPU has AVX-512 VNNI (and SEEK_QUANT_EXACT is unset):
//                            activations rounded to 8 bits per 256 (llama.cpp's Q8_K), integer dot
//                            products with 16 tokens in the lanes (kernels_quant_avx512.cpp); panels of
//                            32 rows taken by the threads from a shared counter. ~2.1-2.5x the f32
//                            panels at T = 512 (bench_kernels --quant-prefill).
//   other formats, T > 64    "panels": each thread converts a panel of up to 256 weight rows to f32 in
//                            its own scratch and calls single-threaded cblas_sgemm on it (OpenBLAS runs
//                            one thread inside an OpenMP parallel region).
//   matmul_many runs the direct products of several matrices in one parallel region (the rows of all of
//   them dealt out to the threads), so that small matrices pay one fork/join between them.
//   The threshold: on a 2-core Zen 5 the direct kernel runs at ~330 GFLOP/s at any T, the panel path
//   only overtakes it from T ≈ 64–96 with OpenBLAS's AVX-512 (SkylakeX) sgemm at ~480 GFLOP/s, and
//   never with its Haswell kernels (~260 GFLOP/s). Measured with bench/bench_kernels.cpp. Without
//   AVX-512 the portable direct kernel (compiled for baseline x86-64; ~25 GB/s at T = 1 on Zen 5)
//   serves only T <= 4.
//
// Scratch buffers are thread_local and grow once, so decode allocates nothing after warm-up.
#include "tensor/backend.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "tensor/cpu.h"
#include "tensor/detail.h"
#include "tensor/kernels_avx512.h"
#include "util/error.h"

namespace seek {

namespace {

constexpr int64_t kDirectMaxT = 64;          // matmul: T up to this uses the AVX-512 direct kernel
constexpr int64_t kF32DirectMaxT = 16;       // the same for f32 weights (above it, sgemm)
constexpr int64_t kPanelMaxRows = 256;        // matmul: rows of f32 weights per panel for T > kDirectMaxT...
constexpr int64_t kPanelMaxBytes = 8 << 20;   // ...and at most this many bytes of them per thread
constexpr int64_t kPortableTokens = 8;        // portable direct kernel: tokens per pass over a weight row
constexpr int64_t kPortableMaxT = 4;          // matmul: T up to this uses the portable direct kernel
constexpr int64_t kWeightedRowsMaxT = 4;      // weighted_rows: T up to this decodes once per token
constexpr int64_t kParallelMin = 1 << 15;     // below this much work (elements), stay on one thread
constexpr int64_t kDirectCostBase = 4;        // matmul_many: a row's cost is K · (this + T)
constexpr int64_t kPieceCost = (1 << 17) * (kDirectCostBase + 1);  // matmul_direct: 256 KiB of bf16 at T = 1
constexpr int kMaxThreads = 256;              // matmul_direct: threads it uses at most

bool has_avx512() {
  const CpuFeatures& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512vl;
}

bool has_avx512_bf16() { return has_avx512() && cpu_features().avx512bf16; }

// This thread's share [begin, end) of `count` items split evenly into `align`-sized pieces.
void thread_range(int64_t count, int64_t align, int64_t* begin, int64_t* end) {
  int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
  int64_t units = (count + align - 1) / align;
  *begin = std::min(count, units * id / nt * align);
  *end = std::min(count, units * (id + 1) / nt * align);
}

// Portable direct kernel for rows [n0, n1): converts a chunk of one weight row at a time and dots it
// with every activation row (f32 accumulation, vectorised by the compiler).
void direct_rows_portable(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                          const float* bias) {
  const int64_t K = w.cols;
  const WeightFormat& f = weight_format(w.dtype);
  constexpr int64_t chunk = 512;
  float wbuf[chunk];
  for (int64_t t0 = 0; t0 < T; t0 += kPortableTokens) {
    const int64_t tt = std::min(kPortableTokens, T - t0);
    for (int64_t n = n0; n < n1; n++) {
      float acc[kPortableTokens] = {};
      for (int64_t k0 = 0; k0 < K; k0 += chunk) {
        const int64_t len = std::min(chunk, K - k0);
        f.row_to_f32(w, n, k0, len, wbuf);
        for (int64_t t = 0; t < tt; t++) {
          const float* xr = x + (t0 + t) * K + k0;
          float s = 0;
#pragma omp simd reduction(+ : s)
          for (int64_t k = 0; k < len; k++) s += wbuf[k] * xr[k];
          acc[t] += s;
        }
      }
      for (int64_t t = 0; t < tt; t++) y[(t0 + t) * ldy + n] = acc[t] + (bias ? bias[n] : 0.0f);
    }
  }
}

void add_bias(float* y, int64_t ldy, const float* bias, int64_t T, int64_t n0, int64_t n1) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t n = n0; n < n1; n++) y[t * ldy + n] += bias[n];
}

void matmul_f32(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, const float* bias) {
  const int64_t N = w.rows, K = w.cols;
  const float* W = static_cast<const float*>(w.data);
  if (T == 1)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, int(N), int(K), 1.0f, W, int(K), x, 1, 0.0f, y, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(T), int(N), int(K), 1.0f, x, int(K), W, int(K), 0.0f,
                y, int(ldy));
  if (bias) add_bias(y, ldy, bias, T, 0, N);
}

// Whether matmul runs w at T tokens with the int8 GEMM.
bool int8_gemm_path(const Mat& w, int64_t T) {
  return T > avx512::kInt8MaxT && has_avx512() && avx512::int8_gemm_supported(w.dtype) &&
         avx512::quant_int8_activations();  // K is a multiple of the block (check_weight_format)
}

// Whether matmul runs w at T tokens with a direct kernel.
bool direct_path(const Mat& w, int64_t T) {
  if (w.dtype == DType::F32) return has_avx512() && T <= kF32DirectMaxT;
  if (int8_gemm_path(w, T)) return false;
  return T <= (has_avx512() && weight_format(w.dtype).direct_rows_avx512 ? kDirectMaxT : kPortableMaxT);
}

// Rough work of a direct job's row, in weight elements: the weights are read once for every token
// group, which stays in cache while each group's multiply-adds run.
int64_t direct_cost(const MatmulJob& j) { return j.w.cols * (kDirectCostBase + j.T); }

// Pieces of work that threads take from each other's ends (matmul_direct). Piece indices [front, back)
// packed in one atomic word: the owner takes from the front, a thread that ran out of its own takes
// from the back.
class alignas(64) PieceRange {
 public:
  void reset(uint32_t front, uint32_t back) { v_.store(pack(front, back), std::memory_order_relaxed); }
  int64_t take_front() { return take(true); }
  int64_t take_back() { return take(false); }

 private:
  static uint64_t pack(uint32_t f, uint32_t b) { return uint64_t(b) << 32 | f; }
  int64_t take(bool front) {
    uint64_t v = v_.load(std::memory_order_relaxed);
    for (;;) {
      const uint32_t f = uint32_t(v), b = uint32_t(v >> 32);
      if (f >= b) return -1;
      const uint64_t next = front ? pack(f + 1, b) : pack(f, b - 1);
      if (v_.compare_exchange_weak(v, next, std::memory_order_relaxed)) return front ? f : b - 1;
    }
  }
  std::atomic<uint64_t> v_{0};
};

// Direct jobs (non-empty, ldy resolved) in one parallel region. The jobs' summed cost is cut into
// pieces (at multiples of 16 rows of each job; the same cuts whichever thread computes them, so the
// pieces tile every job's rows exactly) and each thread owns a contiguous run of them: it streams its
// run front to back, then takes the last pieces of the others' runs. With a static split one thread
// waited for the other ~18% of a decode step's matmul time on this 2-core VM (the cores' share of the
// memory bandwidth varies from moment to moment); taking pieces decoded 3–5% faster in alternating
// steps of one process, and taking from the back keeps the owners' streams unbroken. Which thread
// computes a row does not change its value.
void matmul_direct(const MatmulJob* jobs, int64_t n) {
  int64_t total = 0, elements = 0;
  for (int64_t j = 0; j < n; j++) {
    total += jobs[j].w.rows * direct_cost(jobs[j]);
    elements += jobs[j].w.rows * jobs[j].w.cols;
  }
  const bool simd = has_avx512();
  if (simd) avx512::next_activations();  // the jobs' activations are new values
  auto run = [&](int64_t lo, int64_t hi) {  // the rows of cost [lo, hi)
    int64_t at = 0;  // cost before job j
    for (int64_t j = 0; j < n && at < hi; j++) {
      const MatmulJob& jb = jobs[j];
      const int64_t per_row = direct_cost(jb), rows = jb.w.rows;
      auto cut = [&](int64_t c) {  // the first row at or after cost c, on a multiple of 16
        const int64_t r = c <= at ? 0 : ((c - at) + 16 * per_row - 1) / (16 * per_row) * 16;
        return std::min(rows, r);
      };
      const int64_t n0 = cut(lo), n1 = cut(hi);
      if (n0 < n1) {
        if (simd)
          weight_format(jb.w.dtype).direct_rows_avx512(jb.y, jb.ldy, jb.x, jb.w, jb.T, n0, n1, jb.bias);
        else
          direct_rows_portable(jb.y, jb.ldy, jb.x, jb.w, jb.T, n0, n1, jb.bias);
      }
      at += rows * per_row;
    }
  };
  const int nt = elements >= kParallelMin ? std::min(max_threads(), kMaxThreads) : 1;
  if (nt == 1) return run(0, total);

  const int64_t pieces = std::clamp<int64_t>(total / kPieceCost, nt, int64_t(1) << 30);
  PieceRange ranges[kMaxThreads];
  for (int i = 0; i < nt; i++) ranges[i].reset(uint32_t(pieces * i / nt), uint32_t(pieces * (i + 1) / nt));
  auto piece = [&](int64_t p) { run(total * p / pieces, total * (p + 1) / pieces); };
#pragma omp parallel num_threads(nt)
  {
    const int id = omp_get_thread_num();
    for (int64_t p; (p = ranges[id].take_front()) >= 0;) piece(p);
    for (int k = 1; k < nt; k++)
      for (int64_t p; (p = ranges[(id + k) % nt].take_back()) >= 0;) piece(p);
  }
}

// The int8 GEMM, in one parallel region: the activations quantized by groups of 16 tokens, then panels
// of rows taken from a shared counter (on this VM a core's speed varies from moment to moment, and a
// static split left one thread waiting for the other).
void matmul_int8_gemm(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, const float* bias) {
  static thread_local avx512::Int8Acts mine;
  avx512::Int8Acts* acts = &mine;  // the calling thread's, shared with the region's threads
  avx512::int8_acts_alloc(w.dtype, T, w.cols, acts);
  const int64_t rows = avx512::kInt8GemmPanelRows, panels = (w.rows + rows - 1) / rows;
  const int nt = int(std::min<int64_t>(max_threads(), panels));
  std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(nt)
  {
    int64_t g0, g1;
    thread_range(acts->groups, 1, &g0, &g1);
    avx512::int8_acts_groups(x, g0, g1, acts);
#pragma omp barrier
    for (int64_t p; (p = next.fetch_add(1, std::memory_order_relaxed)) < panels;)
      avx512::int8_gemm_rows(y, ldy, *acts, w, p * rows, std::min(w.rows, (p + 1) * rows), bias);
  }
}

void matmul_panels(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, const float* bias) {
  const int64_t N = w.rows, K = w.cols;
  // Panel height: at most kPanelMaxRows and kPanelMaxBytes, and small enough that every thread gets one.
  const int64_t per_thread = (N + omp_get_max_threads() - 1) / omp_get_max_threads();
  int64_t rows = std::min({kPanelMaxRows, kPanelMaxBytes / (4 * K), (per_thread + 15) / 16 * 16});
  rows = std::max<int64_t>(rows, 16);
  const int64_t npanels = (N + rows - 1) / rows;
#pragma omp parallel
  {
    static thread_local std::vector<float> panel_buf;
    if (panel_buf.size() < size_t(rows * K)) panel_buf.resize(size_t(rows * K));
    float* panel = panel_buf.data();
#pragma omp for schedule(static)
    for (int64_t p = 0; p < npanels; p++) {
      const int64_t n0 = p * rows, nr = std::min(rows, N - n0);
      rows_to_f32_serial(w, n0, nr, panel);
      // [T, nr] block of y = x [T, K] · panel [nr, K]^T
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(T), int(nr), int(K), 1.0f, x, int(K), panel, int(K),
                  0.0f, y + n0, int(ldy));
      if (bias) add_bias(y, ldy, bias, T, n0, n0 + nr);
    }
  }
}

}  // namespace

// ---- threads --------------------------------------------------------------------------------------

int max_threads() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

void parallel_for(int64_t n, int64_t cost, FunctionRef<void(int64_t, int64_t)> fn) {
  if (n <= 0) return;
  const int nt = int(std::min<int64_t>(max_threads(), n));
  if (nt <= 1 || n * std::max<int64_t>(cost, 1) < kParallelMin) return fn(0, n);
#pragma omp parallel num_threads(nt)
  {
    int64_t a, b;
    thread_range(n, 1, &a, &b);
    if (a < b) fn(a, b);
  }
}

void set_max_threads(int n) { omp_set_num_threads(std::max(1, n)); }

void parallel_tasks(int64_t n, FunctionRef<void(int64_t, int)> fn) {
  if (n <= 0) return;
  if (n == 1 || max_threads() == 1) {
    for (int64_t i = 0; i < n; i++) fn(i, 0);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; i++) fn(i, omp_get_thread_num());
}

// ---- GEMM -----------------------------------------------------------------------------------------

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // C = beta · C (beta == 0 overwrites, as in BLAS)
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) C[m * ldc + n] = beta == 0.0f ? 0.0f : beta * C[m * ldc + n];
    return;
  }
  SEEK_ASSERT_MSG(lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N) && ldc >= N,
                  strfmt("[gemm] A %s lda %lld, B %s ldb %lld, C [%lld, %lld] ldc %lld: a stride is too short",
                         trans_a ? "[K, M]" : "[M, K]", (long long)lda, trans_b ? "[N, K]" : "[K, N]", (long long)ldb,
                         (long long)M, (long long)N, (long long)ldc)
                      .c_str());
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(M), int(N),
              int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

// ---- matmul ---------------------------------------------------------------------------------------

void matmul(float* y, const float* x, const Mat& w, int64_t T, const float* bias, int64_t ldy) {
  check_weight_format("matmul", w);
  const int64_t N = w.rows, K = w.cols;
  if (ldy == 0) ldy = N;
  SEEK_ASSERT(ldy >= N);
  if (T <= 0 || N <= 0) return;
  if (K == 0) {
    for (int64_t t = 0; t < T; t++)
      for (int64_t n = 0; n < N; n++) y[t * ldy + n] = bias ? bias[n] : 0.0f;
    return;
  }
  if (direct_path(w, T)) {
    const MatmulJob job{y, x, w, T, bias, ldy};
    return matmul_direct(&job, 1);
  }
  if (w.dtype == DType::F32) return matmul_f32(y, ldy, x, w, T, bias);
  if (int8_gemm_path(w, T)) return matmul_int8_gemm(y, ldy, x, w, T, bias);
  matmul_panels(y, ldy, x, w, T, bias);
}

void weighted_rows(float* y, int64_t ldy, const float* x, int64_t ldx, const Mat& w, int64_t r0, int64_t nr,
                   int64_t T) {
  check_weight_format("weighted_rows", w);
  SEEK_ASSERT(r0 >= 0 && nr >= 0 && r0 + nr <= w.rows && ldy >= w.cols && ldx >= nr);
  const int64_t K = w.cols;
  if (T <= kWeightedRowsMaxT && weight_format(w.dtype).block_values > 1 && has_avx512()) {
    for (int64_t t = 0; t < T; t++) avx512::quant_rows_weighted(y + t * ldy, x + t * ldx, w, r0, nr);
    return;
  }
  const float* rows = w.dtype == DType::F32 ? w.f32() + r0 * K : nullptr;
  thread_local std::vector<float> decoded;
  if (!rows) {
    decoded.resize(size_t(nr * K));
    mat_rows_to_f32(w, r0, nr, decoded.data());
    rows = decoded.data();
  }
  gemm(false, false, T, K, nr, 1.f, x, ldx, rows, K, 0.f, y, ldy);
}

void matmul_many(const MatmulJob* jobs, int64_t n) {
  // The direct jobs gathered (with ldy resolved) into an array on the stack, no allocation: 256 jobs
  // (24 KiB) hold the gate and up products of a step's 64 routed experts and the shared one at once.
  constexpr int64_t kBatch = 256;
  MatmulJob direct[kBatch];
  int64_t count = 0;
  for (int64_t j = 0; j < n; j++) {
    MatmulJob jb = jobs[j];
    if (jb.ldy == 0) jb.ldy = jb.w.rows;
    if (jb.T <= 0 || jb.w.rows <= 0 || jb.w.cols == 0 || !direct_path(jb.w, jb.T)) {  // matmul's own cases
      matmul(jb.y, jb.x, jb.w, jb.T, jb.bias, jb.ldy);
      continue;
    }
    check_weight_format("matmul_many", jb.w);
    SEEK_ASSERT(jb.ldy >= jb.w.rows);
    direct[count++] = jb;
    if (count == kBatch) {
      matmul_direct(direct, count);
      count = 0;
    }
  }
  if (count) matmul_direct(direct, count);
}

void matmul_bf16_dpbf16(float* y, const float* x, const Mat& w, int64_t T, const float* bias) {
  check_weight_format("matmul_bf16_dpbf16", w);
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
    if (xb_buf.size() < size_t(T * Kp)) xb_buf.resize(size_t(T * Kp));
    xb = xb_buf.data();
    for (int64_t t = 0; t < T; t++)
      for (int64_t k = 0; k < Kp; k++) xb[t * Kp + k] = k < K ? f32_to_bf16(x[t * K + k]) : 0;
  } else {  // emulation: x rounded to bf16, exact products, f32 sums
    if (xr_buf.size() < size_t(T * K)) xr_buf.resize(size_t(T * K));
    xr = xr_buf.data();
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
        direct_rows_portable(y, N, xr, w, T, n0, n1, bias);
    }
  }
}

}  // namespace seek
