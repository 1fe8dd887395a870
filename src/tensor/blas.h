// blas.h — making the system BLAS use this CPU's best kernels.
//
// Debian's OpenBLAS 0.3.21 does not recognise AMD Zen 4/5 and falls back to its Haswell (AVX2) kernels,
// half the f32 GEMM throughput of its SkylakeX (AVX-512) kernels on the same core (measured: 257 vs
// 483 GFLOP/s on 2 cores). OpenBLAS reads OPENBLAS_CORETYPE only when it is loaded, so the fix is to set
// it and re-execute the program once, before any work. This also overrides an OPENBLAS_CORETYPE that
// names a pre-AVX-512 core (some machine images set OPENBLAS_CORETYPE=Haswell globally); set
// SEEK_KEEP_BLAS_CORETYPE=1 to keep yours. Nothing happens when the CPU lacks AVX-512, when
// SEEK_NO_AVX512 is set, or when OpenBLAS already runs an AVX-512 core.
#pragma once

namespace seek {

// Call first thing in main(). May not return (it re-executes the program with the same arguments).
void blas_prefer_avx512(char** argv);
// The core OpenBLAS runs ("SkylakeX", "Haswell", ...).
const char* blas_core_name();

}  // namespace seek
