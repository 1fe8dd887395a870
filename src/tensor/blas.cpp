// blas.cpp — see blas.h.
#include "tensor/blas.h"

#include <cblas.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "tensor/cpu.h"

namespace seek {

const char* blas_core_name() { return openblas_get_corename(); }

void blas_prefer_avx512(char** argv) {
  if (std::getenv("SEEK_KEEP_BLAS_CORETYPE") || std::getenv("SEEK_NO_AVX512")) return;
  if (std::getenv("SEEK_BLAS_REEXEC")) return;  // we already tried once: never loop
  const CpuFeatures& f = cpu_features();
  if (!(f.avx512f && f.avx512bw && f.avx512vl)) return;
  const char* core = openblas_get_corename();
  if (core && (std::strstr(core, "Skylake") || std::strstr(core, "Cooper") || std::strstr(core, "Sapphire"))) return;
  setenv("OPENBLAS_CORETYPE", "SKYLAKEX", 1);
  setenv("SEEK_BLAS_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);
  // execv failed: carry on with the kernels we have.
}

}  // namespace seek
