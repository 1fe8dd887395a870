// rng.cpp — see rng.h.
#include "util/rng.h"

#include "util/error.h"

namespace seek {

uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::below(uint64_t n) {
  SEEK_ASSERT(n > 0);
  // Reject the top partial block of 2^64 so every residue is equally likely.
  const uint64_t limit = uint64_t(0) - (uint64_t(0) - n) % n;  // largest multiple of n, modulo 2^64 (0 = 2^64)
  for (;;) {
    const uint64_t x = next();
    if (limit == 0 || x < limit) return x % n;
  }
}

uint64_t SplitMix64::uniform(uint64_t n) {
  SEEK_ASSERT(n >= 1);
  return uint64_t((unsigned __int128)next() * n >> 64);
}

int64_t SplitMix64::range(int64_t lo, int64_t hi) {
  SEEK_ASSERT(lo <= hi);
  return lo + int64_t(uniform(uint64_t(hi - lo) + 1));
}

double SplitMix64::real() { return double(next() >> 11) * 0x1.0p-53; }

uint64_t mix64(uint64_t a, uint64_t b) { return splitmix64_mix(a ^ splitmix64_mix(b + 0x9e3779b97f4a7c15ull)); }

}  // namespace seek
