// kernels_quant_avx512.cpp — AVX-512 kernels of the GGUF block formats Q8_0, Q4_0, Q4_K and Q6_K
// (tensor/quant.h): rows → f32 (prefill's panels) and the small-T matmul against f32 activations
// (decode), the weight-format table's `rows_to_f32_avx512` and `direct_rows_avx512` (format.h).
//
// Both decode the blocks exactly as dequantize_row_ref does (quant.h: the same f32 products, in the same
// order: q · d for Q8_0/Q4_0, (d · sc) · q - dmin · m for Q4_K, (d · sc) · q for Q6_K, the per-block
// scalars computed once per block in scalar code), so rows_to_f32 equals the reference bit for bit and the
// direct kernel multiplies the same f32 weights as matmul_ref, summing in f32 with FMAs. Values are
// decoded 32 at a time (two 16-lane vectors: int8/nibbles widened to i32, converted, scaled). This file is
// compiled with fp-contract off: GCC would otherwise fuse a decode's multiply and subtract (vector
// intrinsics are plain vector arithmetic to it) and the weights would no longer be exact; the explicit
// FMAs of the dot products stay FMAs.
//
// Decode (T = 1..16) is memory bound: a weight is read once per token group, 1.06 bytes (Q8_0), 0.56
// (Q4_0, Q4_K) or 0.82 (Q6_K) instead of bf16's 2. The kernel streams tiles of 4 rows side by side (4
// independent accumulator chains, two per row at T = 1), token groups of up to 4 against each tile,
// rows outermost in blocks of 16 so that a block stays in cache across the token groups (as
// kernels_avx512.cpp's direct kernel does), and prefetches each row ahead.
//
// Does not: quantize activations (no VNNI int8 dot products: results would no longer be the f32 product
// of the exact weights), thread (backend.cpp splits rows), or check shapes (format.cpp does: K is a
// multiple of the block).
#pragma GCC optimize("fp-contract=off")
// GCC 12's avx512fintrin.h trips -Wuninitialized on its own "undefined" vectors (see kernels_avx512.cpp).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "tensor/kernels_avx512.h"

#define SEEK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

namespace seek::avx512 {

namespace {

enum class QKind { Q8_0, Q4_0, Q4_K, Q6_K };

template <QKind q>
constexpr int kBlockValues = q == QKind::Q8_0 || q == QKind::Q4_0 ? 32 : 256;
template <QKind q>
constexpr int kBlockBytes = q == QKind::Q8_0 ? 34 : q == QKind::Q4_0 ? 18 : q == QKind::Q4_K ? 144 : 210;
template <QKind q>
constexpr int kChunks = kBlockValues<q> / 32;  // 32-value chunks per block
// Per-block scalars: Q8_0/Q4_0 d; Q4_K d · sc[8] then dmin · m[8]; Q6_K d · sc[16].
template <QKind q>
constexpr int kScalars = q == QKind::Q8_0 || q == QKind::Q4_0 ? 1 : 16;

inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

SEEK_AVX512 inline float f16_at(const uint8_t* p) {
  return _cvtsh_ss(static_cast<unsigned short>(p[0] | p[1] << 8));
}

// The block's scalars, exactly as the reference computes them.
template <QKind q>
SEEK_AVX512 inline void block_scalars(const uint8_t* b, float* s) {
  if constexpr (q == QKind::Q8_0 || q == QKind::Q4_0) {
    s[0] = f16_at(b);
  } else if constexpr (q == QKind::Q4_K) {
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t* p = b + 4;
    for (int j = 0; j < 8; j++) {
      const int sc = j < 4 ? p[j] & 63 : (p[j + 4] & 15) | ((p[j - 4] >> 6) << 4);
      const int m = j < 4 ? p[j + 4] & 63 : (p[j + 4] >> 4) | ((p[j] >> 6) << 4);
      s[j] = d * float(sc);
      s[8 + j] = dmin * float(m);
    }
  } else {
    const float d = f16_at(b + 208);
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    for (int g = 0; g < 16; g++) s[g] = d * float(sc[g]);
  }
}

SEEK_AVX512 inline __m512i widen_u8(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Values [32 c, 32 c + 32) of block b as f32 (out[0] the first 16), with the block's scalars s.
template <QKind q>
SEEK_AVX512 inline void decode_chunk(const uint8_t* b, int c, const float* s, __m512* out) {
  if constexpr (q == QKind::Q8_0) {
    const __m512 d = _mm512_set1_ps(s[0]);
    for (int v = 0; v < 2; v++) {
      const __m512i i = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2 + 16 * v)));
      out[v] = _mm512_mul_ps(_mm512_cvtepi32_ps(i), d);
    }
  } else if constexpr (q == QKind::Q4_0) {
    const __m512 d = _mm512_set1_ps(s[0]);
    const __m512i bytes = widen_u8(b + 2), eight = _mm512_set1_epi32(8);
    const __m512i lo = _mm512_sub_epi32(_mm512_and_si512(bytes, _mm512_set1_epi32(15)), eight);
    const __m512i hi = _mm512_sub_epi32(_mm512_srli_epi32(bytes, 4), eight);
    out[0] = _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d);
    out[1] = _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d);
  } else if constexpr (q == QKind::Q4_K) {
    // Chunk c: sub-block c, the low (even c) or high (odd c) nibbles of qs[32 (c / 2), +32).
    const uint8_t* qs = b + 16 + 32 * (c / 2);
    const __m512 d = _mm512_set1_ps(s[c]), m = _mm512_set1_ps(s[8 + c]);
    for (int v = 0; v < 2; v++) {
      __m512i i = widen_u8(qs + 16 * v);
      i = (c & 1) ? _mm512_srli_epi32(i, 4) : _mm512_and_si512(i, _mm512_set1_epi32(15));
      out[v] = _mm512_sub_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(i)), m);
    }
  } else {
    // Chunk c = 4 h + i: values 128 h + 32 i + l; low 4 bits in ql[64 h + 32 (i & 1) + l] (high nibble
    // for i >= 2), high 2 bits in qh[32 h + l] >> 2 i; lanes l < 16 and l >= 16 have scales 8 h + 2 i
    // and 8 h + 2 i + 1.
    const int h = c / 4, i = c % 4;
    const uint8_t* ql = b + 64 * h + 32 * (i & 1);
    const uint8_t* qh = b + 128 + 32 * h;
    for (int v = 0; v < 2; v++) {
      __m512i lo = widen_u8(ql + 16 * v);
      lo = i >= 2 ? _mm512_srli_epi32(lo, 4) : _mm512_and_si512(lo, _mm512_set1_epi32(15));
      __m512i hi = _mm512_and_si512(_mm512_srl_epi32(widen_u8(qh + 16 * v), _mm_cvtsi32_si128(2 * i)),
                                    _mm512_set1_epi32(3));
      const __m512i lv = _mm512_sub_epi32(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4)), _mm512_set1_epi32(32));
      out[v] = _mm512_mul_ps(_mm512_set1_ps(s[8 * h + 2 * i + v]), _mm512_cvtepi32_ps(lv));
    }
  }
}

// ---- small-T matmul ---------------------------------------------------------------------------
constexpr int64_t kPrefetch = 1024;  // bytes ahead in each row

// y[t, n + r] for r < NR, t < TT: NR rows streamed side by side, block by block; A accumulators per
// (row, token) (the two halves of a chunk into separate chains when A = 2).
template <QKind q, int TT, int NR>
SEEK_AVX512 void direct_tile(float* y, int64_t ldy, const float* x, const Mat& w, int64_t n, const float* bias) {
  constexpr int A = TT == 1 ? 2 : 1;
  constexpr int BV = kBlockValues<q>, BB = kBlockBytes<q>;
  const int64_t K = w.cols, nb = K / BV, rb = nb * BB;
  const uint8_t* wrow[NR];
  for (int r = 0; r < NR; r++) wrow[r] = static_cast<const uint8_t*>(w.data) + (n + r) * rb;
  __m512 acc[NR][TT][A];
#pragma GCC unroll 8
  for (int r = 0; r < NR; r++)
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++)
      for (int a = 0; a < A; a++) acc[r][t][a] = _mm512_setzero_ps();
  float s[NR][kScalars<q>];
  for (int64_t ib = 0; ib < nb; ib++) {
    const uint8_t* blk[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; r++) {
      blk[r] = wrow[r] + ib * BB;
      _mm_prefetch(reinterpret_cast<const char*>(blk[r]) + kPrefetch, _MM_HINT_T0);
      if constexpr (BB > 64) _mm_prefetch(reinterpret_cast<const char*>(blk[r]) + kPrefetch + 64, _MM_HINT_T0);
      if constexpr (BB > 128) _mm_prefetch(reinterpret_cast<const char*>(blk[r]) + kPrefetch + 128, _MM_HINT_T0);
      if constexpr (BB > 192) _mm_prefetch(reinterpret_cast<const char*>(blk[r]) + kPrefetch + 192, _MM_HINT_T0);
      block_scalars<q>(blk[r], s[r]);
    }
#pragma GCC unroll 8
    for (int c = 0; c < kChunks<q>; c++) {
      __m512 wv[NR][2];
#pragma GCC unroll 8
      for (int r = 0; r < NR; r++) decode_chunk<q>(blk[r], c, s[r], wv[r]);
      const float* xc = x + ib * BV + 32 * c;
#pragma GCC unroll 8
      for (int t = 0; t < TT; t++) {
        for (int v = 0; v < 2; v++) {
          const __m512 xv = _mm512_loadu_ps(xc + t * K + 16 * v);
#pragma GCC unroll 8
          for (int r = 0; r < NR; r++) acc[r][t][v % A] = _mm512_fmadd_ps(wv[r][v], xv, acc[r][t][v % A]);
        }
      }
    }
  }
  for (int r = 0; r < NR; r++)
    for (int t = 0; t < TT; t++) {
      __m512 sum = acc[r][t][0];
      if constexpr (A == 2) sum = _mm512_add_ps(sum, acc[r][t][1]);
      y[t * ldy + n + r] = _mm512_reduce_add_ps(sum) + (bias ? bias[n + r] : 0.0f);
    }
}

template <QKind q, int TT>
SEEK_AVX512 void direct_rows_tt(float* y, int64_t ldy, const float* x, const Mat& w, int64_t n0, int64_t n1,
                                const float* bias) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) direct_tile<q, TT, 4>(y, ldy, x, w, n, bias);
  for (; n < n1; n++) direct_tile<q, TT, 1>(y, ldy, x, w, n, bias);
}

template <QKind q>
SEEK_AVX512 void direct_rows_kind(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0,
                                  int64_t n1, const float* bias) {
  const int64_t K = w.cols;
  for (int64_t b0 = n0; b0 < n1; b0 += 16) {  // a block of rows stays in cache across token groups
    const int64_t b1 = min_i64(n1, b0 + 16);
    for (int64_t t0 = 0; t0 < T; t0 += 4) {
      const int64_t tt = min_i64(4, T - t0);
      float* yt = y + t0 * ldy;
      const float* xt = x + t0 * K;
      switch (tt) {
        case 1: direct_rows_tt<q, 1>(yt, ldy, xt, w, b0, b1, bias); break;
        case 2: direct_rows_tt<q, 2>(yt, ldy, xt, w, b0, b1, bias); break;
        case 3: direct_rows_tt<q, 3>(yt, ldy, xt, w, b0, b1, bias); break;
        default: direct_rows_tt<q, 4>(yt, ldy, xt, w, b0, b1, bias); break;
      }
    }
  }
}

// Rows [r0, r0 + nr) -> f32 dst [nr, K], exactly as dequantize_row_ref.
template <QKind q>
SEEK_AVX512 void rows_to_f32_kind(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  constexpr int BV = kBlockValues<q>, BB = kBlockBytes<q>;
  const int64_t K = w.cols, nb = K / BV;
  for (int64_t r = 0; r < nr; r++) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + (r0 + r) * nb * BB;
    float* out = dst + r * K;
    float s[kScalars<q>];
    for (int64_t ib = 0; ib < nb; ib++) {
      const uint8_t* b = row + ib * BB;
      block_scalars<q>(b, s);
      for (int c = 0; c < kChunks<q>; c++) {
        __m512 v[2];
        decode_chunk<q>(b, c, s, v);
        _mm512_storeu_ps(out + ib * BV + 32 * c, v[0]);
        _mm512_storeu_ps(out + ib * BV + 32 * c + 16, v[1]);
      }
    }
  }
}

}  // namespace

SEEK_AVX512 void direct_rows_q8_0(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0,
                                  int64_t n1, const float* bias) {
  direct_rows_kind<QKind::Q8_0>(y, ldy, x, w, T, n0, n1, bias);
}
SEEK_AVX512 void direct_rows_q4_0(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0,
                                  int64_t n1, const float* bias) {
  direct_rows_kind<QKind::Q4_0>(y, ldy, x, w, T, n0, n1, bias);
}
SEEK_AVX512 void direct_rows_q4_k(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0,
                                  int64_t n1, const float* bias) {
  direct_rows_kind<QKind::Q4_K>(y, ldy, x, w, T, n0, n1, bias);
}
SEEK_AVX512 void direct_rows_q6_k(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0,
                                  int64_t n1, const float* bias) {
  direct_rows_kind<QKind::Q6_K>(y, ldy, x, w, T, n0, n1, bias);
}

SEEK_AVX512 void rows_to_f32_q8_0(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  rows_to_f32_kind<QKind::Q8_0>(w, r0, nr, dst);
}
SEEK_AVX512 void rows_to_f32_q4_0(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  rows_to_f32_kind<QKind::Q4_0>(w, r0, nr, dst);
}
SEEK_AVX512 void rows_to_f32_q4_k(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  rows_to_f32_kind<QKind::Q4_K>(w, r0, nr, dst);
}
SEEK_AVX512 void rows_to_f32_q6_k(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  rows_to_f32_kind<QKind::Q6_K>(w, r0, nr, dst);
}

}  // namespace seek::avx512
