// cpu.cpp — asks the CPU once what it can do (GCC's __builtin_cpu_supports, which also checks that
// the OS saves the AVX-512 register state), and lets SEEK_NO_AVX512=1 or use_portable_kernels() hide
// AVX-512 so that the portable kernels run.
//
// Does not: detect anything but x86 features (other architectures report nothing and run portable
// code), or choose kernels — kernels.cpp does that by reading cpu_features().
#include "tensor/cpu.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace seek {

namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
  f.avx512fp16 = __builtin_cpu_supports("avx512fp16");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
#endif
  return f;
}

CpuFeatures without_avx512(CpuFeatures f) {
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512bf16 = f.avx512fp16 = f.avx512vnni = false;
  return f;
}

std::string describe(const CpuFeatures& f) {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.avx512f, "avx512f");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vl, "avx512vl");
  add(f.avx512bf16, "avx512bf16");
  add(f.avx512fp16, "avx512fp16");
  add(f.avx512vnni, "avx512vnni");
  if (s.empty()) s = "baseline";
  return s;
}

struct Detected {
  CpuFeatures native;    // what the CPU has, less AVX-512 when SEEK_NO_AVX512=1
  CpuFeatures portable;  // native without AVX-512
  std::string native_text, portable_text;
  Detected() {
    native = detect();
    const char* env = std::getenv("SEEK_NO_AVX512");
    if (env && *env && std::strcmp(env, "0") != 0) native = without_avx512(native);
    portable = without_avx512(native);
    native_text = describe(native);
    portable_text = describe(portable);
  }
};

const Detected& detected() {
  static const Detected d;
  return d;
}

std::atomic<bool> g_force_portable{false};

}  // namespace

const CpuFeatures& cpu_features() {
  const Detected& d = detected();
  return g_force_portable.load(std::memory_order_relaxed) ? d.portable : d.native;
}

const char* cpu_features_string() {
  const Detected& d = detected();
  return g_force_portable.load(std::memory_order_relaxed) ? d.portable_text.c_str() : d.native_text.c_str();
}

void use_portable_kernels(bool on) { g_force_portable.store(on, std::memory_order_relaxed); }

}  // namespace seek
