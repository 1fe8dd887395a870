// progress.h — what long-running commands print on their progress lines.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "util/error.h"

namespace seek {

// "42s", "3m07s", "2h05m"; "?" for a negative or non-finite time (an ETA not yet known).
inline std::string format_duration(double secs) {
  if (!std::isfinite(secs) || secs < 0) return "?";
  const auto s = int64_t(std::llround(secs));
  if (s < 60) return strfmt("%llds", (long long)s);
  if (s < 3600) return strfmt("%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  return strfmt("%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
}

}  // namespace seek
