// roofline.cpp — see roofline.h.
#include "tensor/roofline.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <vector>

namespace seek {

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

double measure_read_bandwidth(int64_t bytes, int reps) {
  // Integer sums vectorize without reassociation flags, so the loop is bound by loads alone.
  const int64_t n = bytes / int64_t(sizeof(uint64_t));
  std::unique_ptr<uint64_t[]> buf(new uint64_t[size_t(n)]);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) buf[size_t(i)] = uint64_t(i & 7);  // touch every page, per thread
  double best = 0;
  volatile uint64_t sink = 0;
  for (int r = 0; r < reps; ++r) {
    double t0 = now();
    uint64_t total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t i = 0; i < n; ++i) total += buf[size_t(i)];
    double dt = now() - t0;
    sink = sink + total;
    best = std::max(best, double(bytes) / dt);
  }
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
