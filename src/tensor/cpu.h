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
  bool avx512vnni = false;  // vpdpbusd: the quantized formats' int8 decode path (kernels_quant_avx512.cpp)
};

const CpuFeatures& cpu_features();
// One line such as "avx2 fma avx512f avx512bw avx512vl avx512bf16" for logs and `seek info`.
const char* cpu_features_string();

// The in-process twin of SEEK_NO_AVX512=1: while set, cpu_features() reports no AVX-512 and the kernels
// take their portable paths (to compare the two: the kernel tests run every case both ways,
// bench_kernels --portable measures what a machine without AVX-512 gets). Not thread-safe against
// kernels running concurrently.
void use_portable_kernels(bool on);

}  // namespace seek
