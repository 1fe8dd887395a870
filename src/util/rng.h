// rng.h — seek's one pseudo-random generator: SplitMix64 (Steele, Lea & Flood), the same sequence on
// every platform and standard library (std:: distributions differ between libraries, so seek never
// uses them where results must be reproducible: data order, synthetic problems, initialization).
#pragma once
#include <cstdint>

namespace seek {

// The SplitMix64 output finalizer: a well-mixed 64-bit function of z.
uint64_t splitmix64_mix(uint64_t z);

struct SplitMix64 {
  uint64_t state;
  explicit SplitMix64(uint64_t seed) : state(seed) {}
  uint64_t next() {
    state += 0x9e3779b97f4a7c15ull;
    return splitmix64_mix(state);
  }
  // Two bounded draws, kept both because recorded data depends on each:
  uint64_t below(uint64_t n);    // [0, n) by rejection: exactly uniform (the data loader's shuffle)
  uint64_t uniform(uint64_t n);  // [0, n) by multiply-shift: bias < n / 2^64 (the task generators)
  int64_t range(int64_t lo, int64_t hi);  // [lo, hi] inclusive, via uniform
  double real();                          // [0, 1), 53 bits
};

// Combines two words into a well-mixed seed.
uint64_t mix64(uint64_t a, uint64_t b);

}  // namespace seek
