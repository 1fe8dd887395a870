// roofline.h — this machine's own limits, measured in the same run as whatever is compared to them:
// memory read bandwidth (the decode roofline) and f32 GEMM throughput through BLAS (the prefill
// roofline). Both use every thread OpenMP gives us.
#pragma once
#include <cstdint>

namespace seek {

// Best-of-`reps` read bandwidth in bytes/s over a buffer of `bytes` (much larger than the caches).
double measure_read_bandwidth(int64_t bytes = int64_t(1) << 30, int reps = 5);
// Best-of-`reps` cblas_sgemm throughput in FLOP/s on n×n×n.
double measure_sgemm_peak(int64_t n = 2048, int reps = 5);

}  // namespace seek
