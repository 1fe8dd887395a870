// cpu.h — what this CPU can do, asked once at run time, so one binary runs everywhere and uses
// AVX-512 (and its BF16 dot products) only where present. SEEK_NO_AVX512=1 forces the portable paths.
#pragma once

namespace seek {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512bf16 = false;
  bool avx512fp16 = false;
};

const CpuFeatures& cpu_features();
// One line such as "avx2 fma avx512f avx512bw avx512vl avx512bf16" for logs and `seek info`.
const char* cpu_features_string();

// For tests: while set, cpu_features() reports no AVX-512 (as if SEEK_NO_AVX512=1), so the kernels
// take their portable paths in-process. Not thread-safe against kernels running concurrently.
void set_force_portable(bool on);

}  // namespace seek
