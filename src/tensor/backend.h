// backend.h — the seam between seek's math and the machine: threads, GEMM, and matmul over weight
// formats. Every layer above tensor/ computes through this header and kernels.h; only tensor/ calls
// BLAS or starts threads. Today's backend is the CPU (OpenMP threads shared with OpenBLAS's OpenMP
// build, so the two never fight over the cores); a CUDA backend implements the same functions.
//
// Shapes use the letters of kernels.h. Matrices are f32, row-major, with row strides in elements.
#pragma once
#include <cstdint>
#include <type_traits>

#include "tensor/format.h"

namespace seek {

// ---- threads ------------------------------------------------------------------------------------

// A reference to a callable (a lambda at the call site), without std::function's allocation: the work
// of a decode step must not allocate. Valid while the callable lives (the call's full expression).
template <class Sig>
class FunctionRef;
template <class R, class... A>
class FunctionRef<R(A...)> {
 public:
  template <class F>
  FunctionRef(F&& f)  // NOLINT: implicit, like a std::function parameter
      : obj_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* o, A... a) -> R { return (*static_cast<std::remove_reference_t<F>*>(o))(a...); }) {}
  R operator()(A... a) const { return call_(obj_, a...); }

 private:
  void* obj_;
  R (*call_)(void*, A...);
};

// Threads a parallel region uses (1 inside one: regions do not nest).
int max_threads();
// Sets max_threads() for the calling thread. The count is per thread: a thread started later begins
// with the process's default (OMP_NUM_THREADS or the cores), not its creator's.
void set_max_threads(int n);

// fn(begin, end) over [0, n) in at most max_threads() contiguous ranges (static: the same split for
// the same n, so results never depend on scheduling). Runs as one call on this thread when n · cost
// (cost: rough work per item, in elements touched) is too small to be worth waking the others.
void parallel_for(int64_t n, int64_t cost, FunctionRef<void(int64_t begin, int64_t end)> fn);

// fn(i, thread) for every i in [0, n), handed out one at a time to the threads (tasks of uneven size:
// experts, heads). `thread` < max_threads() names the caller's scratch. Each task must compute its own
// outputs completely, so that the result does not depend on which thread ran it.
void parallel_tasks(int64_t n, FunctionRef<void(int64_t i, int thread)> fn);

// ---- GEMM ---------------------------------------------------------------------------------------

// C[M, N] = alpha · op(A)[M, K] · op(B)[K, N] + beta · C; op(A) = Aᵀ when trans_a (A is [K, M]), op(B)
// = Bᵀ when trans_b (B is [N, K]). beta == 0 overwrites C (as in BLAS: C is not read). Inside a parallel
// region it runs on the calling thread alone.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// ---- matmul over weight formats -------------------------------------------------------------------

// y[T, N] = x[T, K] · w[N, K]ᵀ (+ bias[N]); y's rows are ldy apart (0: N). y is overwritten.
// F32 weights go through BLAS. Other formats: small T uses the format's direct dot-product kernel
// (AVX-512 where the CPU has it, portable otherwise) with exact weight conversion and f32 accumulation;
// large T converts row panels to f32 into per-thread scratch and calls sgemm.
void matmul(float* y, const float* x, const Mat& w, int64_t T, const float* bias = nullptr, int64_t ldy = 0);
void matmul_ref(float* y, const float* x, const Mat& w, int64_t T, const float* bias = nullptr, int64_t ldy = 0);

// y[T, K] = x[T, nr] · w[r0 : r0 + nr, K]: w's rows weighted by x and summed, where matmul takes dot
// products with them (absorbed MLA's q_nope · W_UK, W_UK being a block of kv_b_proj's rows). x's and y's
// rows are ldx and ldy apart; y is overwritten. Runs on the calling thread (callers thread over heads).
// Block formats at T <= 4 with AVX-512 decode each weight exactly into 256 columns of f32 sums, reading
// the rows once; otherwise the rows are converted to f32 and multiplied by gemm.
void weighted_rows(float* y, int64_t ldy, const float* x, int64_t ldx, const Mat& w, int64_t r0, int64_t nr, int64_t T);
void weighted_rows_ref(float* y, int64_t ldy, const float* x, int64_t ldx, const Mat& w, int64_t r0, int64_t nr,
                       int64_t T);

// One product of matmul_many: y[T, N] = x[T, K] · w[N, K]ᵀ (+ bias), y's rows ldy apart (0: N).
struct MatmulJob {
  float* y;
  const float* x;
  Mat w;
  int64_t T = 1;
  const float* bias = nullptr;
  int64_t ldy = 0;
};

// Several independent products at once, each exactly as matmul computes it. Those matmul would run
// with its direct kernel (small T) share one parallel region: the rows of all of them are dealt out to
// the threads in equal shares of weight bytes, so that small matrices (a step's experts, projections
// of the same input) keep every core streaming and pay one fork/join between them all. The others
// run one after another through matmul.
void matmul_many(const MatmulJob* jobs, int64_t n);

// The same product for BF16 weights through AVX512-BF16 dot products (vdpbf16ps): activations are
// rounded to bf16 (nearest even) first, products are summed in f32. Fewer instructions per weight than
// matmul (faster where matmul is compute bound, 1 < T, cached weights; at T = 1 both run at memory
// bandwidth) but not exact in x (relative error ~1e-3), so it is never the default; benchmarks and
// experiments call it by name. Without AVX512-BF16 it runs a portable emulation (same rounding of x).
void matmul_bf16_dpbf16(float* y, const float* x, const Mat& w, int64_t T, const float* bias = nullptr);

}  // namespace seek
