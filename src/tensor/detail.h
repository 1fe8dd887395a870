// detail.h — helpers shared by tensor/'s own files (not part of its interface).
#pragma once
#include <cstdint>

#include "tensor/format.h"

namespace seek {

// Rows [r0, r0 + nr) of w to f32 dst [nr, K] on this thread (the format's AVX-512 kernel when it has one).
void rows_to_f32_serial(const Mat& w, int64_t r0, int64_t nr, float* dst);
// Asserts that w is a weight in a known format, with data and, where the format needs them, scales.
void check_weight_format(const char* op, const Mat& w);

}  // namespace seek
