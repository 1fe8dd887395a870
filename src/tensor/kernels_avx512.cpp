// kernels_avx512.cpp — the AVX-512 code paths of kernels.cpp: the small-T matmul kernel (bf16 / f16 /
// f8 e4m3 weights × f32 activations), its AVX512-BF16 twin (vdpbf16ps, activations in bf16), weight
// rows → f32 conversion, and a vectorised exp for softmax and SwiGLU.
//
// Every function carries its own target attribute (SEEK_AVX512*, function-level rather than a file-wide
// `#pragma GCC target`, so that inline functions and templates from headers are never compiled for
// AVX-512 and merged into portable code by the linker); the file builds with the project's baseline
// flags and nothing here runs unless kernels.cpp saw the feature in cpu_features().
//
// Does not: thread (kernels.cpp splits rows across OpenMP threads and calls these per range), check
// shapes (kernels.cpp does), or allocate.
//
// Weight conversions are exact: bf16 is zero-extended and shifted into the top half of an f32; f16 uses
// vcvtph2ps; f8 e4m3fn is rebuilt as the f16 with the same sign, exponent and mantissa bits
// (S.EEEE.MMM -> S.0EEEE.MMM0000000, which is the f8 value × 2^-8, subnormals included; the two NaN
// codes are patched to an f16 NaN), converted with vcvtph2ps, and multiplied by scale_inv × 2^8 — the
// same single rounding as f8 × scale_inv.
// GCC 12's avx512fintrin.h trips -Wuninitialized on its own "undefined" vectors when inlined (GCC bug
// 105593, fixed in 13); the warnings are about the header, not this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include <cmath>
#include <cstdint>

#include "tensor/kernels_avx512.h"

#define SEEK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define SEEK_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))

namespace seek::avx512 {

namespace {

enum class WKind { F32, BF16, F16, F8 };

SEEK_AVX512 inline __mmask16 tail_mask16(int64_t n) { return __mmask16((1u << n) - 1u); }
inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

// Weights are read in chunks of 16 (f32: one 64-byte load; bf16, f16: one 32-byte load) or 32 (f8:
// one 32-byte load), in natural order, as kVecs<kind> f32 vectors.
template <WKind kind>
constexpr int kVecs = kind == WKind::F8 ? 2 : 1;
template <WKind kind>
constexpr int64_t kChunkElems = 16 * kVecs<kind>;
template <WKind kind>
constexpr int64_t kElemBytes = kind == WKind::F8 ? 1 : kind == WKind::F32 ? 4 : 2;

// Loads the chunk of weights at element i (only the elements set in m when masked; the others read as
// 0) as f32 vectors, natural order. f8 values come out × 2^-8; the caller folds 2^8 into the scale.
template <WKind kind, bool masked>
SEEK_AVX512 inline void load_chunk(const void* base, int64_t i, __mmask32 m, __m512* out) {
  if constexpr (kind == WKind::F32) {
    const float* p = static_cast<const float*>(base) + i;
    out[0] = masked ? _mm512_maskz_loadu_ps(__mmask16(m), p) : _mm512_loadu_ps(p);
  } else if constexpr (kind == WKind::F8) {
    const uint8_t* p = static_cast<const uint8_t*>(base) + i;
    __m256i bytes = masked ? _mm256_maskz_loadu_epi8(m, p) : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    __m512i v = _mm512_cvtepu8_epi16(bytes);
    // S.EEEE.MMM -> S.0EEEE.MMM0000000: shift into the top byte, arithmetic shift right by one (the sign
    // lands in bit 14 too), clear bit 14.
    __m512i h = _mm512_and_si512(_mm512_srai_epi16(_mm512_slli_epi16(v, 8), 1), _mm512_set1_epi16(short(0xBFFF)));
    __mmask32 nan = _mm512_cmpeq_epi16_mask(_mm512_and_si512(v, _mm512_set1_epi16(0x7F)), _mm512_set1_epi16(0x7F));
    h = _mm512_mask_mov_epi16(h, nan, _mm512_set1_epi16(0x7E00));
    out[0] = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
    out[1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
  } else {
    const uint16_t* p = static_cast<const uint16_t*>(base) + i;
    __m256i v = masked ? _mm256_maskz_loadu_epi16(__mmask16(m), p) : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    if constexpr (kind == WKind::BF16)
      out[0] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
    else
      out[0] = _mm512_cvtph_ps(v);
  }
}

// ---- small-T matmul ---------------------------------------------------------------------------
// y[t, n + r] for r < NR, t < TT. NR weight rows are streamed once, U chunks per step into independent
// accumulators; each activation vector loaded serves NR rows. K is cut into segments of one FP8 block
// (one scale per row per segment) or, for bf16/f16, one segment of all of K. Weights are prefetched
// ahead, one line per 64 bytes: with T > 1 the loop body is long and the out-of-order window alone does
// not keep enough cache misses in flight to reach memory bandwidth. At T > 1 (NR rows side by side)
// each row prefetches the same place in the row NR below, which the next tile reads: a fixed distance
// of 2 KiB landed, for NR = 4 rows of 2 KiB, on rows this tile was already reading, and the bench
// model's head ran at ~25 GB/s at T = 2–4 instead of ~45 (issue 12). At T = 1 prefetching 4 KiB
// ahead into L2 (leaving L1 to the activations) gained 5-10% over none on Zen 5. At T > 1 the next
// tile goes into L2 too: into L1 it held L1's few miss buffers for a whole memory latency, and with
// memory slow (~26 GB/s) bf16 at T = 2, 4, 16 ran 7-28% slower (bench_kernels --quant, alternating).
constexpr int64_t kPrefetch = 2048;     // matmul_dpbf16_rows of one row, into L1
constexpr int64_t kPrefetchT1 = 4096;  // T = 1, into L2

template <WKind kind, int TT, int NR, int U>
SEEK_AVX512 void direct_tile(float* y, int64_t ldy, const float* x, const Mat& w, int64_t n, const float* bias) {
  constexpr int V = kVecs<kind>;
  constexpr int64_t C = kChunkElems<kind>, esize = kElemBytes<kind>;
  const int64_t K = w.cols;
  const char* wrow[NR];
  for (int r = 0; r < NR; r++) wrow[r] = static_cast<const char*>(w.data) + (n + r) * K * esize;
  __m512 acc[NR][TT][U];
#pragma GCC unroll 8
  for (int r = 0; r < NR; r++)
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++)
#pragma GCC unroll 4
      for (int u = 0; u < U; u++) acc[r][t][u] = _mm512_setzero_ps();
  __m512 sc[NR];
  // f8 with few accumulators: sum each block unscaled into `part`, then fold the block's scale in with
  // one FMA, instead of scaling every weight vector (one multiply per 16 weights saved; the products
  // round differently from the reference's f8 × scale, well within f32 accuracy).
  constexpr bool defer = kind == WKind::F8 && NR * TT * U <= 8;
  __m512 part[NR][TT][U];
  if constexpr (defer) {
    for (int r = 0; r < NR; r++)
      for (int t = 0; t < TT; t++)
        for (int u = 0; u < U; u++) part[r][t][u] = _mm512_setzero_ps();
  }

  // One chunk at element k into accumulator set u; `masked`: the last, partial chunk of a segment.
  auto step = [&](int64_t k, int u, bool masked, __mmask32 m) SEEK_AVX512 {
    __m512 wv[NR][V];
#pragma GCC unroll 8
    for (int r = 0; r < NR; r++) {
      if (masked) {
        load_chunk<kind, true>(wrow[r], k, m, wv[r]);
      } else {
        if (((k * esize) & 63) == 0) {
          if constexpr (TT == 1)
            _mm_prefetch(wrow[r] + k * esize + kPrefetchT1, _MM_HINT_T1);
          else
            _mm_prefetch(wrow[r] + (NR * K + k) * esize, _MM_HINT_T1);
        }
        load_chunk<kind, false>(wrow[r], k, m, wv[r]);
      }
      if constexpr (kind == WKind::F8 && !defer)
        for (int v = 0; v < V; v++) wv[r][v] = _mm512_mul_ps(wv[r][v], sc[r]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) {
#pragma GCC unroll 2
      for (int v = 0; v < V; v++) {
        const float* xs = x + t * K + k + 16 * v;
        const __m512 xv = masked ? _mm512_maskz_loadu_ps(__mmask16(m >> (16 * v)), xs) : _mm512_loadu_ps(xs);
#pragma GCC unroll 8
        for (int r = 0; r < NR; r++) {
          if constexpr (defer)
            part[r][t][u] = _mm512_fmadd_ps(wv[r][v], xv, part[r][t][u]);
          else
            acc[r][t][u] = _mm512_fmadd_ps(wv[r][v], xv, acc[r][t][u]);
        }
      }
    }
  };

  const int64_t seg = kind == WKind::F8 ? w.block : K;
  const int64_t kblocks = kind == WKind::F8 ? (K + w.block - 1) / w.block : 0;
  for (int64_t k0 = 0; k0 < K; k0 += seg) {
    const int64_t k1 = min_i64(K, k0 + seg);
    if constexpr (kind == WKind::F8) {
      for (int r = 0; r < NR; r++)
        sc[r] = _mm512_set1_ps(w.scale_inv[((n + r) / w.block) * kblocks + k0 / w.block] * 256.0f);
    }
    int64_t k = k0;
    for (; k + U * C <= k1; k += U * C)
#pragma GCC unroll 4
      for (int u = 0; u < U; u++) step(k + u * C, u, false, 0);
    for (; k + C <= k1; k += C) step(k, 0, false, 0);
    if (k < k1) step(k, 0, true, __mmask32((1ull << (k1 - k)) - 1));
    if constexpr (defer) {
      for (int r = 0; r < NR; r++)
        for (int t = 0; t < TT; t++)
          for (int u = 0; u < U; u++) {
            acc[r][t][u] = _mm512_fmadd_ps(part[r][t][u], sc[r], acc[r][t][u]);
            part[r][t][u] = _mm512_setzero_ps();
          }
    }
  }
  for (int r = 0; r < NR; r++) {
    for (int t = 0; t < TT; t++) {
      __m512 s = acc[r][t][0];
      for (int u = 1; u < U; u++) s = _mm512_add_ps(s, acc[r][t][u]);
      y[t * ldy + n + r] = _mm512_reduce_add_ps(s) + (bias ? bias[n + r] : 0.0f);
    }
  }
}

// Rows [n0, n1) for TT tokens: NR rows at a time, then single rows. Shapes measured on Zen 5
// (2 cores): at T = 1 one row with 4 accumulators (streams at memory bandwidth); at T = 2..4 four rows
// (T = 4: ~320 GFLOP/s with the weights in L3; groups of 8 tokens, two rows, reached only ~215).
template <WKind kind, int TT>
SEEK_AVX512 void direct_rows_tt(float* y, int64_t ldy, const float* x, const Mat& w, int64_t n0, int64_t n1,
                                const float* bias) {
  constexpr int NR = TT == 1 ? 1 : 4;
  constexpr int U = TT == 1 ? 4 : 1;
  int64_t n = n0;
  for (; n + NR <= n1; n += NR) direct_tile<kind, TT, NR, U>(y, ldy, x, w, n, bias);
  for (; n < n1; n++) direct_tile<kind, TT, 1, U>(y, ldy, x, w, n, bias);
}

template <WKind kind>
SEEK_AVX512 void direct_rows_kind(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0,
                                  int64_t n1, const float* bias) {
  const int64_t K = w.cols;
  // Rows outermost in blocks, so that a block of weight rows stays in cache across token groups.
  const int64_t rows_per_block = 16;
  for (int64_t b0 = n0; b0 < n1; b0 += rows_per_block) {
    const int64_t b1 = min_i64(n1, b0 + rows_per_block);
    for (int64_t t0 = 0; t0 < T; t0 += 4) {  // token groups of at most 4
      const int64_t tt = min_i64(4, T - t0);
      float* yt = y + t0 * ldy;
      const float* xt = x + t0 * K;
      switch (tt) {
        case 1: direct_rows_tt<kind, 1>(yt, ldy, xt, w, b0, b1, bias); break;
        case 2: direct_rows_tt<kind, 2>(yt, ldy, xt, w, b0, b1, bias); break;
        case 3: direct_rows_tt<kind, 3>(yt, ldy, xt, w, b0, b1, bias); break;
        default: direct_rows_tt<kind, 4>(yt, ldy, xt, w, b0, b1, bias); break;
      }
    }
  }
}

// ---- AVX512-BF16 matmul -----------------------------------------------------------------------
// xb is [T, Kp] bf16, zero-padded to a multiple of 32. One vdpbf16ps does 32 multiply-adds (pairs
// summed in f32).
constexpr int64_t kBf16Chunk = 32;

template <int TT, int NR>
SEEK_AVX512_BF16 void dpbf16_tile(float* y, int64_t ldy, const uint16_t* xb, int64_t Kp, const Mat& w, int64_t n,
                                  const float* bias) {
  const int64_t K = w.cols;
  const uint16_t* wrow[NR];
  for (int r = 0; r < NR; r++) wrow[r] = static_cast<const uint16_t*>(w.data) + (n + r) * K;
  __m512 acc[NR][TT];
#pragma GCC unroll 8
  for (int r = 0; r < NR; r++)
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) acc[r][t] = _mm512_setzero_ps();
  auto step = [&](int64_t k, bool masked, __mmask32 m) SEEK_AVX512_BF16 {
    __m512i wv[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; r++) {
      if (masked) {
        wv[r] = _mm512_maskz_loadu_epi16(m, wrow[r] + k);
      } else {
        // As direct_tile: NR > 1 rows prefetch the next tile's rows; one row prefetches along itself.
        _mm_prefetch(reinterpret_cast<const char*>(wrow[r] + (NR > 1 ? NR * K + k : k)) + (NR > 1 ? 0 : kPrefetch),
                     _MM_HINT_T0);
        wv[r] = _mm512_loadu_si512(wrow[r] + k);
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) {
      __m512i xv = _mm512_loadu_si512(xb + t * Kp + k);
#pragma GCC unroll 8
      for (int r = 0; r < NR; r++) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], (__m512bh)xv, (__m512bh)wv[r]);
    }
  };
  int64_t k = 0;
  for (; k + kBf16Chunk <= K; k += kBf16Chunk) step(k, false, 0);
  if (k < K) step(k, true, __mmask32((1ull << (K - k)) - 1));
  for (int r = 0; r < NR; r++)
    for (int t = 0; t < TT; t++)
      y[t * ldy + n + r] = _mm512_reduce_add_ps(acc[r][t]) + (bias ? bias[n + r] : 0.0f);
}

template <int TT>
SEEK_AVX512_BF16 void dpbf16_rows_tt(float* y, int64_t ldy, const uint16_t* xb, int64_t Kp, const Mat& w,
                                     int64_t n0, int64_t n1, const float* bias) {
  constexpr int NR = TT == 1 ? 1 : TT <= 4 ? 4 : 2;  // T = 1: one row streams fastest (as above)
  int64_t n = n0;
  for (; n + NR <= n1; n += NR) dpbf16_tile<TT, NR>(y, ldy, xb, Kp, w, n, bias);
  for (; n < n1; n++) dpbf16_tile<TT, 1>(y, ldy, xb, Kp, w, n, bias);
}

// ---- exp ----------------------------------------------------------------------------------------
// e^x for 16 floats: x = n·ln2 + r, |r| <= ln2/2, e^r by Cephes' degree-7 polynomial, times 2^n with
// vscalefps (exact, handles underflow to 0 and overflow to inf). Max relative error ~2 ulp.
// NaN stays NaN, -inf gives 0, +inf gives inf.
SEEK_AVX512 inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(128.0f), _mm512_max_ps(_mm512_set1_ps(-128.0f), x));  // NaN passes
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
  p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

}  // namespace

// ---- small matrix products for attention ------------------------------------------------------------
// C[RB, 16·CB] (=, or += when add) = scale · Σ_j A(r, j) · B[j, c], with A(r, j) = a[r·ars + j·acs]: a
// row-major block (ars = its stride, acs = 1) or a transposed one (ars = 1, acs = its stride). B rows are
// ldb apart; the last chunk's columns are masked by `tail`. The A values are broadcast, the B rows
// streamed: no packing, for the small shapes of one attention head.
template <int RB, int CB>
SEEK_AVX512 inline void mm_tile(const float* a, int64_t ars, int64_t acs, const float* b, int64_t ldb, int64_t J,
                                float* c, int64_t ldc, __mmask16 tail, float scale, bool add) {
  __m512 acc[RB][CB];
#pragma GCC unroll 8
  for (int r = 0; r < RB; r++)
#pragma GCC unroll 4
    for (int cb = 0; cb < CB; cb++) acc[r][cb] = _mm512_setzero_ps();
  for (int64_t j = 0; j < J; j++) {
    __m512 bv[CB];
#pragma GCC unroll 4
    for (int cb = 0; cb < CB; cb++)
      bv[cb] = cb == CB - 1 ? _mm512_maskz_loadu_ps(tail, b + j * ldb + 16 * cb) : _mm512_loadu_ps(b + j * ldb + 16 * cb);
#pragma GCC unroll 8
    for (int r = 0; r < RB; r++) {
      const __m512 av = _mm512_set1_ps(a[r * ars + j * acs]);
#pragma GCC unroll 4
      for (int cb = 0; cb < CB; cb++) acc[r][cb] = _mm512_fmadd_ps(av, bv[cb], acc[r][cb]);
    }
  }
  const __m512 sc = _mm512_set1_ps(scale);
#pragma GCC unroll 8
  for (int r = 0; r < RB; r++)
#pragma GCC unroll 4
    for (int cb = 0; cb < CB; cb++) {  // unrolled, like the loops above, so that acc lives in registers
      const __mmask16 m = cb == CB - 1 ? tail : __mmask16(0xFFFF);
      float* dst = c + r * ldc + 16 * cb;
      __m512 v = _mm512_mul_ps(acc[r][cb], sc);
      if (add) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst), v);
      _mm512_mask_storeu_ps(dst, m, v);
    }
}

// Rows of C in tiles of RB, the remainder one row at a time.
template <int RB, int CB>
SEEK_AVX512 void mm_rows(int64_t M, const float* a, int64_t ars, int64_t acs, const float* b, int64_t ldb, int64_t J,
                         float* c, int64_t ldc, __mmask16 tail, float scale, bool add) {
  int64_t r = 0;
  for (; r + RB <= M; r += RB) mm_tile<RB, CB>(a + r * ars, ars, acs, b, ldb, J, c + r * ldc, ldc, tail, scale, add);
  for (; r < M; r++) mm_tile<1, CB>(a + r * ars, ars, acs, b, ldb, J, c + r * ldc, ldc, tail, scale, add);
}

// C[M, N] (+)= scale · A[M, J] · B[J, N], A strided as in mm_tile, in column blocks of up to 64; the row
// tile keeps RB·CB ≤ 16 accumulators.
SEEK_AVX512 void mm(int64_t M, int64_t N, int64_t J, const float* a, int64_t ars, int64_t acs, const float* b,
                    int64_t ldb, float* c, int64_t ldc, float scale, bool add) {
  for (int64_t n0 = 0; n0 < N; n0 += 64) {
    const int64_t nn = min_i64(64, N - n0);
    const int cb = int((nn + 15) / 16);
    const __mmask16 t = tail_mask16(nn - 16 * (cb - 1));  // the last chunk's 1 .. 16 columns
    switch (cb) {
      case 1: mm_rows<8, 1>(M, a, ars, acs, b + n0, ldb, J, c + n0, ldc, t, scale, add); break;
      case 2: mm_rows<8, 2>(M, a, ars, acs, b + n0, ldb, J, c + n0, ldc, t, scale, add); break;
      case 3: mm_rows<4, 3>(M, a, ars, acs, b + n0, ldb, J, c + n0, ldc, t, scale, add); break;
      default: mm_rows<4, 4>(M, a, ars, acs, b + n0, ldb, J, c + n0, ldc, t, scale, add); break;
    }
  }
}

// src [rows, cols] (row stride lds) → dst [cols, rows] (row stride ldd).
SEEK_AVX512 void transpose(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
}

// ---- entry points (declared in kernels.cpp) ------------------------------------------------------

// Row length of the bf16 activation buffer matmul_dpbf16_rows reads (K rounded up to 32).
int64_t padded_k(int64_t K) { return (K + kBf16Chunk - 1) / kBf16Chunk * kBf16Chunk; }

// The weight-format table's direct kernels (format.h): rows [n0, n1), y [T, ldy], x [T, K].
SEEK_AVX512 void direct_rows_f32(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0,
                                 int64_t n1, const float* bias) {
  direct_rows_kind<WKind::F32>(y, ldy, x, w, T, n0, n1, bias);
}
SEEK_AVX512 void direct_rows_bf16(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0,
                                  int64_t n1, const float* bias) {
  direct_rows_kind<WKind::BF16>(y, ldy, x, w, T, n0, n1, bias);
}
SEEK_AVX512 void direct_rows_f16(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0,
                                 int64_t n1, const float* bias) {
  direct_rows_kind<WKind::F16>(y, ldy, x, w, T, n0, n1, bias);
}
SEEK_AVX512 void direct_rows_f8(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0,
                                int64_t n1, const float* bias) {
  direct_rows_kind<WKind::F8>(y, ldy, x, w, T, n0, n1, bias);
}

// matmul_bf16_dpbf16 for rows [n0, n1); xb is x rounded to bf16, [T, padded_k(K)], zero-padded.
SEEK_AVX512_BF16 void matmul_dpbf16_rows(float* y, const uint16_t* xb, const Mat& w, int64_t T, int64_t n0,
                                         int64_t n1, const float* bias) {
  const int64_t N = w.rows, Kp = padded_k(w.cols);
  const int64_t rows_per_block = 16;
  for (int64_t b0 = n0; b0 < n1; b0 += rows_per_block) {
    const int64_t b1 = min_i64(n1, b0 + rows_per_block);
    for (int64_t t0 = 0; t0 < T; t0 += 8) {
      const int64_t tt = min_i64(8, T - t0);
      float* yt = y + t0 * N;
      const uint16_t* xt = xb + t0 * Kp;
      switch (tt) {
        case 1: dpbf16_rows_tt<1>(yt, N, xt, Kp, w, b0, b1, bias); break;
        case 2: dpbf16_rows_tt<2>(yt, N, xt, Kp, w, b0, b1, bias); break;
        case 3: dpbf16_rows_tt<3>(yt, N, xt, Kp, w, b0, b1, bias); break;
        case 4: dpbf16_rows_tt<4>(yt, N, xt, Kp, w, b0, b1, bias); break;
        case 5: dpbf16_rows_tt<5>(yt, N, xt, Kp, w, b0, b1, bias); break;
        case 6: dpbf16_rows_tt<6>(yt, N, xt, Kp, w, b0, b1, bias); break;
        case 7: dpbf16_rows_tt<7>(yt, N, xt, Kp, w, b0, b1, bias); break;
        default: dpbf16_rows_tt<8>(yt, N, xt, Kp, w, b0, b1, bias); break;
      }
    }
  }
}

// Rows [r0, r0 + nr) of a BF16/F16/F8_E4M3 weight -> f32 dst [nr, K] (exact, as mat_rows_to_f32_ref).
template <WKind kind>
SEEK_AVX512 static void rows_to_f32_kind(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  constexpr int V = kVecs<kind>;
  constexpr int64_t C = kChunkElems<kind>, esize = kElemBytes<kind>;
  const int64_t K = w.cols;
  const int64_t seg = kind == WKind::F8 ? w.block : K;
  const int64_t kblocks = kind == WKind::F8 ? (K + w.block - 1) / w.block : 0;
  for (int64_t r = 0; r < nr; r++) {
    const int64_t n = r0 + r;
    const char* src = static_cast<const char*>(w.data) + n * K * esize;
    float* out = dst + r * K;
    for (int64_t k0 = 0; k0 < K; k0 += seg) {
      const int64_t k1 = min_i64(K, k0 + seg);
      const __m512 sc = kind == WKind::F8
                            ? _mm512_set1_ps(w.scale_inv[(n / w.block) * kblocks + k0 / w.block] * 256.0f)
                            : _mm512_set1_ps(1.0f);
      __m512 v[V];
      int64_t k = k0;
      for (; k + C <= k1; k += C) {
        load_chunk<kind, false>(src, k, 0, v);
        for (int i = 0; i < V; i++)
          _mm512_storeu_ps(out + k + 16 * i, kind == WKind::F8 ? _mm512_mul_ps(v[i], sc) : v[i]);
      }
      if (k < k1) {
        const __mmask32 m = __mmask32((1ull << (k1 - k)) - 1);
        load_chunk<kind, true>(src, k, m, v);
        for (int i = 0; i < V; i++)
          _mm512_mask_storeu_ps(out + k + 16 * i, __mmask16(m >> (16 * i)),
                                kind == WKind::F8 ? _mm512_mul_ps(v[i], sc) : v[i]);
      }
    }
  }
}

SEEK_AVX512 void rows_to_f32_bf16(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  rows_to_f32_kind<WKind::BF16>(w, r0, nr, dst);
}
SEEK_AVX512 void rows_to_f32_f16(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  rows_to_f32_kind<WKind::F16>(w, r0, nr, dst);
}
SEEK_AVX512 void rows_to_f32_f8(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  rows_to_f32_kind<WKind::F8>(w, r0, nr, dst);
}

// Softmax of T rows of length n (row stride `stride`), in place; sums in f32 over 16 lanes.
SEEK_AVX512 void softmax_rows(float* x, int64_t T, int64_t n, int64_t stride) {
  for (int64_t t = 0; t < T; t++) {
    float* row = x + t * stride;
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(row + i));
    if (i < n) mx = _mm512_mask_max_ps(mx, tail_mask16(n - i), mx, _mm512_maskz_loadu_ps(tail_mask16(n - i), row + i));
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
      __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + i), m));
      _mm512_storeu_ps(row + i, e);
      sum = _mm512_add_ps(sum, e);
    }
    if (i < n) {
      __mmask16 tm = tail_mask16(n - i);
      __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tm, row + i), m));
      _mm512_mask_storeu_ps(row + i, tm, e);
      sum = _mm512_mask_add_ps(sum, tm, sum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(row + i, _mm512_mul_ps(_mm512_loadu_ps(row + i), inv));
    if (i < n) {
      __mmask16 tm = tail_mask16(n - i);
      _mm512_mask_storeu_ps(row + i, tm, _mm512_mul_ps(_mm512_maskz_loadu_ps(tm, row + i), inv));
    }
  }
}

// y = exp((x - shift) · scale) for n values; returns their sum, accumulated in double.
SEEK_AVX512 double exp_sum(float* y, const float* x, int64_t n, float shift, float scale) {
  const __m512 s = _mm512_set1_ps(shift), k = _mm512_set1_ps(scale);
  __m512d lo = _mm512_setzero_pd(), hi = lo;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : tail_mask16(n - i);
    const __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s), k)));
    _mm512_mask_storeu_ps(y + i, m, e);
    lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
}

// ---- multi-query decode over shared keys (kernels.h's mqa_decode) ---------------------------------------
// One part: keys [0, L) of k (rows ldk apart) against up to 16 heads at once, the heads in the lanes:
// qt [dk][16] is their queries transposed (unused lanes 0). Writes the heads' largest score m[16], the
// sum of exp(score - m) s[16], and ctx [16][dv] = Σ_l exp(score_l - m) k[l][0, dv) (unnormalized);
// scores [L][16] is scratch.
template <int RB>
SEEK_AVX512 inline void mqa_scores(const float* qt, const float* k, int64_t ldk, int64_t dk, __m512 scale, float* out,
                                   __m512* mx) {
  __m512 acc[RB];
  for (int r = 0; r < RB; r++) acc[r] = _mm512_setzero_ps();
  for (int64_t j = 0; j < dk; j++) {
    const __m512 qv = _mm512_loadu_ps(qt + 16 * j);
    for (int r = 0; r < RB; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(k[r * ldk + j]), qv, acc[r]);
  }
  for (int r = 0; r < RB; r++) {
    const __m512 s = _mm512_mul_ps(acc[r], scale);
    _mm512_storeu_ps(out + 16 * r, s);
    *mx = _mm512_max_ps(*mx, s);
  }
}

// ctx rows c0 (head h) and c1 (head h + 1, when `two`) over the columns [16 v0, 16 (v0 + NV)) of
// Σ_l scores[l][h] · k[l]: NV vectors per key row in 2·NV accumulators (a constant count, so that they
// stay in registers), the row's vectors shared by both heads. `last` masks the block's last vector.
template <int NV>
SEEK_AVX512 inline void mqa_ctx(const float* scores, int h, bool two, const float* k, int64_t ldk, int64_t L,
                                int64_t v0, __mmask16 last, float* c0, float* c1) {
  __m512 a0[NV], a1[NV];
#pragma GCC unroll 8
  for (int j = 0; j < NV; j++) a0[j] = a1[j] = _mm512_setzero_ps();
  for (int64_t l = 0; l < L; l++) {
    const __m512 b0 = _mm512_set1_ps(scores[16 * l + h]), b1 = _mm512_set1_ps(two ? scores[16 * l + h + 1] : 0.f);
    const float* row = k + l * ldk + 16 * v0;
#pragma GCC unroll 8
    for (int j = 0; j < NV; j++) {
      const __m512 kv = _mm512_maskz_loadu_ps(j == NV - 1 ? last : __mmask16(0xFFFF), row + 16 * j);
      a0[j] = _mm512_fmadd_ps(b0, kv, a0[j]);
      a1[j] = _mm512_fmadd_ps(b1, kv, a1[j]);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < NV; j++) {
    const __mmask16 mk = j == NV - 1 ? last : __mmask16(0xFFFF);
    _mm512_mask_storeu_ps(c0 + 16 * (v0 + j), mk, a0[j]);
    if (two) _mm512_mask_storeu_ps(c1 + 16 * (v0 + j), mk, a1[j]);
  }
}

SEEK_AVX512 void mqa_decode_part(const float* qt, const float* k, int64_t ldk, int64_t L, int64_t dk, int64_t dv,
                                 int heads, float scale, float* scores, float* m, float* s, float* ctx) {
  const __m512 sc = _mm512_set1_ps(scale);
  __m512 mx = _mm512_set1_ps(-INFINITY);
  int64_t l = 0;
  for (; l + 8 <= L; l += 8) mqa_scores<8>(qt, k + l * ldk, ldk, dk, sc, scores + 16 * l, &mx);
  for (; l < L; l++) mqa_scores<1>(qt, k + l * ldk, ldk, dk, sc, scores + 16 * l, &mx);
  __m512 sum = _mm512_setzero_ps();
  for (l = 0; l < L; l++) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(scores + 16 * l), mx));
    _mm512_storeu_ps(scores + 16 * l, e);
    sum = _mm512_add_ps(sum, e);
  }
  _mm512_storeu_ps(m, mx);
  _mm512_storeu_ps(s, sum);
  // ctx: two heads at a time, by 8 vectors (128 columns) and then one at a time; the row's last vector masked.
  const int64_t nv = (dv + 15) / 16;  // vectors per row
  const __mmask16 tail = dv % 16 ? tail_mask16(dv % 16) : __mmask16(0xFFFF);
  for (int h = 0; h < heads; h += 2) {
    const bool two = h + 1 < heads;
    float* c0 = ctx + h * dv;
    float* c1 = ctx + (h + 1) * dv;
    int64_t v0 = 0;
    for (; v0 + 8 <= nv; v0 += 8)
      mqa_ctx<8>(scores, h, two, k, ldk, L, v0, v0 + 8 == nv ? tail : __mmask16(0xFFFF), c0, c1);
    for (; v0 < nv; v0++) mqa_ctx<1>(scores, h, two, k, ldk, L, v0, v0 + 1 == nv ? tail : __mmask16(0xFFFF), c0, c1);
  }
}

// The first index of x's largest value (kernels.h's argmax): its maximum over four accumulators, then
// the first lane equal to it. _mm512_max_ps(a, b) is a > b ? a : b, so a NaN in x never replaces a number.
SEEK_AVX512 int64_t argmax(const float* x, int64_t n) {
  const __m512 lowest = _mm512_set1_ps(-INFINITY);
  __m512 m[4] = {lowest, lowest, lowest, lowest};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int a = 0; a < 4; a++) m[a] = _mm512_max_ps(_mm512_loadu_ps(x + i + 16 * a), m[a]);
  for (; i + 16 <= n; i += 16) m[0] = _mm512_max_ps(_mm512_loadu_ps(x + i), m[0]);
  if (i < n) m[0] = _mm512_max_ps(_mm512_mask_loadu_ps(lowest, tail_mask16(n - i), x + i), m[0]);
  const __m512 best = _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3]))));
  for (i = 0; i < n; i += 16) {
    const __mmask16 valid = n - i >= 16 ? __mmask16(0xFFFF) : tail_mask16(n - i);
    const __mmask16 hit = _mm512_mask_cmp_ps_mask(valid, _mm512_maskz_loadu_ps(valid, x + i), best, _CMP_EQ_OQ);
    if (hit) return i + __builtin_ctz(hit);
  }
  return 0;  // every value is NaN
}

// out = silu(gate) · up for n elements; out may alias gate.
SEEK_AVX512 void silu_mul(float* out, const float* gate, const float* up, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  int64_t i = 0;
  for (; i < n; i += 16) {
    __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : tail_mask16(n - i);
    __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    __m512 u = _mm512_maskz_loadu_ps(m, up + i);
    __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(s, u));
  }
}

// s = σ(g): dup = dout · g · s;  dgate = dout · up · s · (1 + g (1 − s)).
SEEK_AVX512 void silu_mul_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                                   int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : tail_mask16(n - i);
    __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    __m512 u = _mm512_maskz_loadu_ps(m, up + i);
    __m512 d = _mm512_maskz_loadu_ps(m, dout + i);
    __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    __m512 ds = _mm512_mul_ps(d, s);
    _mm512_mask_storeu_ps(dup + i, m, _mm512_mul_ps(ds, g));
    __m512 f = _mm512_fmadd_ps(g, _mm512_sub_ps(one, s), one);
    _mm512_mask_storeu_ps(dgate + i, m, _mm512_mul_ps(_mm512_mul_ps(ds, u), f));
  }
}

}  // namespace seek::avx512

namespace seek::avx512 {

// The training form of attention keeps its operands in scratch: packed rows (contiguous) and transposed
// blocks whose row stride is a multiple of 16 plus 16, so that walking down a column does not map every
// row to the same few L1 sets (a stride of 1 KiB would).
namespace {
int64_t attention_ld(int64_t T) { return (T + 15) / 16 * 16 + 16; }

SEEK_AVX512 void pack_rows(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst) {
  for (int64_t r = 0; r < rows; r++) std::memcpy(dst + r * cols, src + r * lds, size_t(cols) * sizeof(float));
}
}  // namespace

int64_t attention_head_scratch(int64_t T, int64_t dk, int64_t dv) { return dk * attention_ld(T) + T * dv; }

int64_t attention_head_backward_scratch(int64_t T, int64_t dk, int64_t dv) {
  return dv * attention_ld(T) + 2 * T * dk + T * dv + 2 * T * attention_ld(T);
}

// The training form of one attention head (kernels.h, attention_head): query rows in blocks of 16 against
// the keys up to the block's end: scores = q · kᵀ from kᵀ transposed once, softmax, o = p · v.
SEEK_AVX512 void attention_head(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv,
                                int64_t T, int64_t dk, int64_t dv, float scale, float* p, int64_t ldp, float* o,
                                int64_t ldo, float* scratch) {
  const int64_t ld = attention_ld(T);
  float* kt = scratch;  // [dk, ld]
  float* vp = kt + dk * ld;  // [T, dv]
  transpose(k, ldk, T, dk, kt, ld);
  pack_rows(v, ldv, T, dv, vp);
  for (int64_t i0 = 0; i0 < T; i0 += 16) {
    const int64_t i1 = min_i64(T, i0 + 16), m = i1 - i0;
    mm(m, i1, dk, q + i0 * ldq, ldq, 1, kt, ld, p + i0 * ldp, ldp, scale, false);
    for (int64_t r = i0; r < i1; r++) {
      float* row = p + r * ldp;
      softmax_rows(row, 1, r + 1, ldp);
      const int64_t end = min_i64(T, (r / 64 + 1) * 64);
      for (int64_t j = r + 1; j < end; j++) row[j] = 0.f;
    }
    mm(m, dv, i1, p + i0 * ldp, ldp, 1, vp, dv, o + i0 * ldo, ldo, 1.f, false);
  }
}

// Its backward (kernels.h, attention_head_backward). All of dz is formed first (dp = dout · vᵀ, then the
// softmax backward row by row, 0 after the diagonal) next to a copy of p's lower triangle, so that each
// gradient is one pass with long sums in registers: dq = dz · k by query rows; dk = dzᵀ · q and
// dv = pᵀ · dout by key rows, over the queries from the key's 16-block on (dz and the copy are 0 above
// the diagonal inside a block, which is all of the upper triangle those sums touch).
SEEK_AVX512 void attention_head_backward(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                                         int64_t ldv, int64_t T, int64_t dk, int64_t dv, float scale, const float* p,
                                         int64_t ldp, const float* dout, int64_t lddo, float* dq, int64_t lddq,
                                         float* dkk, int64_t lddk, float* dvv, int64_t lddv, bool add_kv,
                                         float* scratch) {
  const int64_t ld = attention_ld(T);
  float* vt = scratch;       // [dv, ld]
  float* qp = vt + dv * ld;  // [T, dk]
  float* kp = qp + T * dk;   // [T, dk]
  float* op = kp + T * dk;   // [T, dv]: dout
  float* dz = op + T * dv;   // [T, ld]
  float* pp = dz + T * ld;   // [T, ld]: p
  transpose(v, ldv, T, dv, vt, ld);
  pack_rows(q, ldq, T, dk, qp);
  pack_rows(k, ldk, T, dk, kp);
  pack_rows(dout, lddo, T, dv, op);
  const __m512 sc = _mm512_set1_ps(scale);
  for (int64_t i0 = 0; i0 < T; i0 += 16) {
    const int64_t i1 = min_i64(T, i0 + 16), m = i1 - i0;
    mm(m, i1, dv, op + i0 * dv, dv, 1, vt, ld, dz + i0 * ld, ld, 1.f, false);  // dp = dout · vᵀ
    for (int64_t r = i0; r < i1; r++) {  // dz = scale · p ∘ (dp − Σ p ∘ dp)
      const float* pr = p + r * ldp;
      float* d = dz + r * ld;
      float* c = pp + r * ld;
      const int64_t n = r + 1;
      __m512 sum = _mm512_setzero_ps();
      int64_t j = 0;
      for (; j + 16 <= n; j += 16) {
        const __m512 pv = _mm512_loadu_ps(pr + j);
        _mm512_storeu_ps(c + j, pv);
        sum = _mm512_fmadd_ps(pv, _mm512_loadu_ps(d + j), sum);
      }
      const __mmask16 tm = tail_mask16(n - j);
      const __m512 pv = _mm512_maskz_loadu_ps(tm, pr + j);
      _mm512_mask_storeu_ps(c + j, tm, pv);
      sum = _mm512_fmadd_ps(pv, _mm512_maskz_loadu_ps(tm, d + j), sum);
      const __m512 s = _mm512_set1_ps(_mm512_reduce_add_ps(sum));
      for (j = 0; j + 16 <= n; j += 16)
        _mm512_storeu_ps(d + j, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(c + j), sc),
                                              _mm512_sub_ps(_mm512_loadu_ps(d + j), s)));
      _mm512_mask_storeu_ps(d + j, tm, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(tm, c + j), sc),
                                                      _mm512_sub_ps(_mm512_maskz_loadu_ps(tm, d + j), s)));
      for (j = n; j < i1; j++) d[j] = c[j] = 0.f;
    }
  }
  for (int64_t b0 = 0; b0 < T; b0 += 16) {
    const int64_t b1 = min_i64(T, b0 + 16), m = b1 - b0;
    mm(m, dk, b1, dz + b0 * ld, ld, 1, kp, dk, dq + b0 * lddq, lddq, 1.f, false);  // dq = dz · k
    const int64_t n = T - b0;  // the queries b0 .. T − 1
    mm(m, dk, n, dz + b0 * ld + b0, 1, ld, qp + b0 * dk, dk, dkk + b0 * lddk, lddk, 1.f, add_kv);  // dk = dzᵀ · q
    mm(m, dv, n, pp + b0 * ld + b0, 1, ld, op + b0 * dv, dv, dvv + b0 * lddv, lddv, 1.f, add_kv);  // dv = pᵀ · dout
  }
}

}  // namespace seek::avx512
