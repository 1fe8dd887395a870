// roofline.cpp — see roofline.h.
//
// The bandwidth probe must not be the bottleneck itself: one scalar-dependency chain or a loop the
// compiler leaves unvectorized reads ~25% below what the memory system gives (measured here: 63 vs
// 84 GB/s). It sums 64-byte vectors into four independent accumulators per thread (AVX-512 where the
// CPU has it; otherwise four 8-lane integer accumulators the compiler vectorizes).
#include "tensor/roofline.h"

#include <cblas.h>
// GCC 12's avx512fintrin.h trips -Wuninitialized on its own "undefined" vectors (see kernels_avx512.cpp).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <vector>

#include "tensor/cpu.h"

namespace seek {

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Sum of n 64-byte blocks (n a multiple of 4), one OpenMP team.
__attribute__((target("avx512f"))) uint64_t sum_avx512(const uint64_t* p, int64_t n) {
  uint64_t total = 0;
#pragma omp parallel reduction(+ : total)
  {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; i += 4) {
      const uint64_t* q = p + i * 8;
      a0 = _mm512_add_epi64(a0, _mm512_load_si512(q));
      a1 = _mm512_add_epi64(a1, _mm512_load_si512(q + 8));
      a2 = _mm512_add_epi64(a2, _mm512_load_si512(q + 16));
      a3 = _mm512_add_epi64(a3, _mm512_load_si512(q + 24));
    }
    total += uint64_t(_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3))));
  }
  return total;
}

uint64_t sum_portable(const uint64_t* p, int64_t n) {
  uint64_t total = 0;
#pragma omp parallel reduction(+ : total)
  {
    uint64_t acc[32] = {};
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; i += 4)
      for (int j = 0; j < 32; ++j) acc[j] += p[i * 8 + j];
    for (uint64_t a : acc) total += a;
  }
  return total;
}

}  // namespace

double measure_read_bandwidth(int64_t bytes, int reps) {
  const int64_t blocks = bytes / 256 * 4;  // 64-byte blocks, a multiple of 4
  const int64_t n = blocks * 8;             // uint64 values
  auto* buf = static_cast<uint64_t*>(std::aligned_alloc(64, size_t(n) * 8));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) buf[i] = uint64_t(i & 7);  // touch every page from the thread that reads it
  const bool avx512 = cpu_features().avx512f;
  double best = 0;
  volatile uint64_t sink = 0;
  for (int r = 0; r < reps; ++r) {
    double t0 = now();
    uint64_t s = avx512 ? sum_avx512(buf, blocks) : sum_portable(buf, blocks);
    double dt = now() - t0;
    sink = sink + s;
    best = std::max(best, double(n) * 8 / dt);
  }
  std::free(buf);
  return best;
}

double measure_sgemm_peak(int64_t n, int reps) {
  std::vector<float> a(size_t(n * n), 0.5f), b(size_t(n * n), 0.25f), c(size_t(n * n), 0.f);
  double best = 0;
  for (int r = 0; r < reps + 1; ++r) {  // the first run warms up
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(n), int(n), 1.f, a.data(), int(n), b.data(),
                int(n), 0.f, c.data(), int(n));
    double dt = now() - t0;
    if (r > 0) best = std::max(best, 2.0 * double(n) * double(n) * double(n) / dt);
  }
  return best;
}

}  // namespace seek
