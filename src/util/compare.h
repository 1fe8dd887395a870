// compare.h — the one error measure seek reports everywhere: max |a - b| / max |b|, the worst
// absolute difference relative to the reference's largest magnitude (llm.c style). It is 0 for equal
// arrays and never divides by a single tiny reference element.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace seek {

inline double max_rel_diff(const float* a, const float* ref, int64_t n) {
  double worst = 0, scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    worst = std::max(worst, std::fabs(double(a[i]) - double(ref[i])));
    scale = std::max(scale, std::fabs(double(ref[i])));
  }
  if (std::isnan(worst)) return INFINITY;
  return scale > 0 ? worst / scale : worst;
}

}  // namespace seek
