// kernels_quant_avx512.cpp — AVX-512 kernels of the GGUF block formats Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K
// (tensor/quant.h): rows → f32 (prefill's panels) and the small-T matmul (decode), the weight-format
// table's `rows_to_f32_avx512` and `direct_rows_avx512` (format.h). The direct kernel has two paths:
//
// Exact path (every T without AVX-512 VNNI, T > 16, or SEEK_QUANT_EXACT=1 / set_quant_int8_activations
// (false)): blocks decoded exactly as dequantize_row_ref does (quant.h: the same f32 products, in the same
// order: q · d for Q8_0/Q4_0/Q5_0, q · d + m for Q5_1, (d · sc) · q - dmin · m for Q4_K/Q5_K, (d · sc) · q for Q6_K, the per-block
// scalars computed once per block in scalar code), so rows_to_f32 equals the reference bit for bit and the
// direct kernel multiplies the same f32 weights as matmul_ref, summing in f32 with FMAs. Values are
// decoded 32 at a time (two 16-lane vectors: int8/nibbles widened to i32, converted, scaled). This file is
// compiled with fp-contract off: GCC would otherwise fuse a decode's multiply and subtract (vector
// intrinsics are plain vector arithmetic to it) and the weights would no longer be exact; the explicit
// FMAs of the dot products stay FMAs.
//
// Int8 path (T <= 16 on a CPU with avx512vnni; the default there): llama.cpp-like numerics. The exact path
// is compute bound at decode: ~8 vector operations per 32 weights (widen, convert, scale, FMA, twice) ran
// Q8_0 at ~11 GB/s and Q4_K at ~5 GB/s of weight bytes on 2 Zen 5 cores, where bf16 streams at ~20 in the
// same run (a cheaper f32 decode cannot reach memory bandwidth for the 4-bit formats: widen + convert +
// FMA is already 3 operations per 16 weights). So the activations are rounded to 8 bits and the weights
// kept as their unsigned codes u (Q8_0: q + 128; Q4_0/Q4_K: the nibble; Q5_0/Q5_K: the nibble and the
// fifth bit; Q6_K: the 6 bits), 64 per vector:
// - Q8_0, Q4_0 and Q5_0: activations per block of 32 (scale sx = amax / 127, an f32, as llama.cpp's Q8_0
//   activations but with an f32 rather than f16 scale), dotted with vpdpbusd (4 products per i32 lane,
//   exact in i32); value = d · (u - offset) is applied as d · sx · (Σ u x - offset · Σ x), the offset term
//   by starting vpdpbusd's accumulator at -offset · (sum of the 4 x). Each lane is then converted and
//   scaled in f32.
// - the K-quants: activations per super-block of 256 (llama.cpp's Q8_K), so that a super-block's sums stay
//   in integers: vpmaddubsw, vpdpwssd with the integer sub-block scales, one convert and FMA per super-block
//   (see "int8 decode for the K-quants" below). With per-32 activation scales (as this file had them
//   before), the per-lane convert and scale made Q4_K compute bound at ~37 GB/s where bf16 streamed at
//   ~47; now it streams at bf16's rate (~52 against ~46-50, `bench_kernels --quant`, [8192, 4096], T = 1).
// The activations of a call are quantized once per thread (kept with their address and an epoch the
// backend starts per matmul, so the row pieces of one matmul reuse them). Error: each activation moves by
// at most amax / 254 of its block (32 or 256 values), so output n moves by at most
// Σ_k |w[n, k]| · amax(block of k) / 254 (plus f32 rounding), which tests/unit/test_quant.cpp checks output
// by output; typically ~0.4% of an activation, as llama.cpp. Measured before the K-quants' change on 2 Zen 5
// cores shared with other builds (`bench_kernels --quant`: [8192, 4096], > 256 MB of copies, alternating
// rounds against the bf16 direct kernel, best of 5 rounds; the machine's load made bf16 reach only
// ~20 GB/s, so read the columns against each other, not against a bandwidth):
//
//     GB/s of weight bytes    T = 1          T = 2          T = 4         T = 8         T = 16
//     bf16 (direct kernel)    21.0           20.3           19.6          11.1          6.1
//     Q8_0 int8 / exact       19.5 / 15.1    17.0 / 11.8    12.1 / 11.2   6.3 / 8.1     3.4 / 3.6
//
// From cache ([512, 4096], one thread, T = 1) Q8_0's int8 ceiling is ~50 GB/s per core against ~39 for
// the exact path: at T = 1..2 decode is no longer the limit. At T >= 4 both paths are bound by the
// per-token work (dpbusd, convert, scale, FMA per 64 weights and token, the same count as the exact path's
// and bf16's 4 FMAs), so there the int8 path only matches the exact one.
//
// Both paths stream tiles of 4 rows side by side, token groups of up to 4 (the K-quants' int8 path: 2, its
// Q4_K accumulators filling the registers) against each tile, rows outermost
// in blocks of 16 so that a block stays in cache across the token groups (as kernels_avx512.cpp's direct
// kernel does). The exact path prefetches each row 1 KiB ahead; the int8 path prefetches the same place
// in a later tile, at least 8 KiB ahead (prefetch_offset), which measured better (as issue 12 found for
// bf16, and short rows need the distance).
//
// Int8 GEMM (prefill: Q8_0, Q4_0, Q5_0 and the K-quants at T > 16 where the CPU has VNNI; backend.cpp
// chooses it): see the section's comment below. On the R1-Distill-Qwen-1.5B MLP shapes at T = 512 the
// K-quants ran at 650-900 GFLOP/s on 2 Zen 5 cores against 330-370 for the f32 panels (OpenBLAS's sgemm
// on exactly decoded weights), in alternating rounds of `bench_kernels --quant-prefill`; the machine's
// speed moved by ±15% between runs. On a Zen 4 host (half-rate 512-bit FMAs; 2026-12-06) the same bench
// gave Q8_0 557-613, Q4_K 528-571, Q6_K 497 GFLOP/s against 183-198 for sgemm and 148-180 for Q8_0's
// f32 panels. (Before Q8_0 had the GEMM, its T in (16, 64] went to the exact direct kernel: a quarter of
// the bench model's prefill time on that host, per perf.)
//
// Does not: thread (backend.cpp splits rows), or check shapes (format.cpp does: K is a multiple of the
// block).
#pragma GCC optimize("fp-contract=off")
// GCC 12's avx512fintrin.h trips -Wuninitialized on its own "undefined" vectors (see kernels_avx512.cpp).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tensor/cpu.h"
#include "tensor/kernels_avx512.h"
#include "tensor/quant.h"
#include "util/error.h"

#define SEEK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

namespace seek::avx512 {

namespace {

enum class QKind { Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K };

// Blocks of 32 (Q8_0, Q4_0, Q5_0, Q5_1); the K-quants with a min per sub-block (Q4_K, Q5_K).
template <QKind q>
constexpr bool kSmallBlock = q == QKind::Q8_0 || q == QKind::Q4_0 || q == QKind::Q5_0 || q == QKind::Q5_1;
// Q5_1 (a fallback for a few narrow matrices in Q5_K_M files) has no int8 path: its per-block f32 min
// would need a term of its own; it takes the exact path at every T.
template <QKind q>
constexpr bool kHasInt8 = q != QKind::Q5_1;
template <QKind q>
constexpr bool kHasMins = q == QKind::Q4_K || q == QKind::Q5_K;

template <QKind q>
constexpr int kBlockValues = kSmallBlock<q> ? 32 : 256;
template <QKind q>
constexpr int kBlockBytes = q == QKind::Q8_0   ? 34
                            : q == QKind::Q4_0 ? 18
                            : q == QKind::Q5_0 ? 22
                            : q == QKind::Q5_1 ? 24
                            : q == QKind::Q4_K ? 144
                            : q == QKind::Q5_K ? 176
                                               : 210;
// Where a K-quant with mins keeps its nibbles (Q5_K's 32 bytes of fifth bits come first, at 16).
template <QKind q>
constexpr int kNibbles = q == QKind::Q5_K ? 48 : 16;
template <QKind q>
constexpr int kChunks = kBlockValues<q> / 32;  // 32-value chunks per block
// Per-block scalars: Q8_0/Q4_0/Q5_0 d; Q5_1 d, m; Q4_K/Q5_K d · sc[8] then dmin · m[8]; Q6_K d · sc[16].
template <QKind q>
constexpr int kScalars = q == QKind::Q5_1 ? 2 : kSmallBlock<q> ? 1 : 16;

inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

SEEK_AVX512 inline float f16_at(const uint8_t* p) {
  return _cvtsh_ss(static_cast<unsigned short>(p[0] | p[1] << 8));
}

// The block's scalars, exactly as the reference computes them.
template <QKind q>
SEEK_AVX512 inline void block_scalars(const uint8_t* b, float* s) {
  if constexpr (q == QKind::Q5_1) {
    s[0] = f16_at(b);
    s[1] = f16_at(b + 2);
  } else if constexpr (kSmallBlock<q>) {
    s[0] = f16_at(b);
  } else if constexpr (kHasMins<q>) {
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t* p = b + 4;
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      q4k_scale_min(j, p, &sc, &m);
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
  } else if constexpr (q == QKind::Q5_0 || q == QKind::Q5_1) {
    // Value i: the nibble as Q4_0's, plus 16 · bit i of qh; Q5_0 minus 16, times d; Q5_1 times d plus m.
    constexpr int h = q == QKind::Q5_0 ? 2 : 4;  // qh, then the nibbles
    const __m512 d = _mm512_set1_ps(s[0]);
    uint32_t qh;
    std::memcpy(&qh, b + h, 4);
    const __m512i bytes = widen_u8(b + h + 4), lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i hv = _mm512_set1_epi32(int(qh)), one = _mm512_set1_epi32(1);
    for (int v = 0; v < 2; v++) {
      const __m512i nib = v ? _mm512_srli_epi32(bytes, 4) : _mm512_and_si512(bytes, _mm512_set1_epi32(15));
      const __m512i hb = _mm512_and_si512(_mm512_srlv_epi32(hv, _mm512_add_epi32(lane, _mm512_set1_epi32(16 * v))), one);
      const __m512i code = _mm512_or_si512(nib, _mm512_slli_epi32(hb, 4));
      if constexpr (q == QKind::Q5_0) {
        out[v] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(code, _mm512_set1_epi32(16))), d);
      } else {
        out[v] = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(code), d), _mm512_set1_ps(s[1]));
      }
    }
  } else if constexpr (kHasMins<q>) {
    // Chunk c: sub-block c, the low (even c) or high (odd c) nibbles of qs[32 (c / 2), +32); Q5_K adds
    // 16 · bit c of qh[l].
    const uint8_t* qs = b + kNibbles<q> + 32 * (c / 2);
    const __m512 d = _mm512_set1_ps(s[c]), m = _mm512_set1_ps(s[8 + c]);
    for (int v = 0; v < 2; v++) {
      __m512i i = widen_u8(qs + 16 * v);
      i = (c & 1) ? _mm512_srli_epi32(i, 4) : _mm512_and_si512(i, _mm512_set1_epi32(15));
      if constexpr (q == QKind::Q5_K) {
        const __m512i hb = _mm512_and_si512(_mm512_srl_epi32(widen_u8(b + 16 + 16 * v), _mm_cvtsi32_si128(c)), _mm512_set1_epi32(1));
        i = _mm512_or_si512(i, _mm512_slli_epi32(hb, 4));
      }
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

// ---- int8 path: activations rounded to 8 bits, VNNI dot products ---------------------------------
// Q8_0/Q4_0: the activations of one call, per token: q [Kp] int8 (Kp = K rounded up to 64, zero-padded),
// per 64-value pair the chunk scales spread over the 16 dot-product lanes (sxv [Kp / 64, 16]: lanes 0-7
// the first chunk's, 8-15 the second's) and the sums of each 4 consecutive q (sum4 [Kp / 4], the lanes
// vpdpbusd adds into). (The K-quants' activations are KActs, below.) A thread keeps the last x it quantized,
// by its address and the activation epoch (next_activations: the backend starts one per matmul), so the
// row pieces one matmul hands a thread quantize x once. (Comparing a copy of x instead cost ~5% of the
// 1.5B's decode in memcmp, once per piece.)
std::atomic<uint64_t> g_acts_epoch{1};

#define SEEK_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

// One super-block of 256 activations rounded to 8 bits as llama.cpp's Q8_K (scale d = amax / 127, the
// codes rounded to nearest): the codes in order, the sum of each 16 of them; returns d.
SEEK_VNNI inline float q8k_round(const float* xs, int8_t* codes, int32_t* sums) {
  __m512 amax = _mm512_setzero_ps();
  for (int v = 0; v < 16; v++) amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_loadu_ps(xs + 16 * v)));
  const float m = _mm512_reduce_max_ps(amax);
  const __m512 id = _mm512_set1_ps(m > 0 ? 127.0f / m : 0.0f);
  for (int v = 0; v < 16; v++) {
    const __m512i c = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xs + 16 * v), id));
    sums[v] = _mm512_reduce_add_epi32(c);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + 16 * v), _mm512_cvtepi32_epi8(c));
  }
  return m / 127.0f;
}

// One block of 32 activations rounded to 8 bits as llama.cpp's Q8_0 rounds them (scale sx = amax / 127,
// kept in f32 rather than f16; the codes rounded to nearest): the codes in order; returns sx.
SEEK_VNNI inline float q8_0_round(const float* xs, int8_t* codes) {
  const __m512 v0 = _mm512_loadu_ps(xs), v1 = _mm512_loadu_ps(xs + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
  const __m512 id = _mm512_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(codes), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, id))));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + 16),
                   _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, id))));
  return amax / 127.0f;
}

struct QuantActs {
  const float* x = nullptr;  // the f32 activations these were made from, [T, K]...
  uint64_t epoch = 0;        // ...in this activation epoch
  int64_t T = 0, K = 0, Kp = 0;
  std::vector<int8_t> q;
  std::vector<float> sxv;
  std::vector<int32_t> sum4;
};

SEEK_VNNI const QuantActs& quantize_acts(const float* x, int64_t T, int64_t K) {
  thread_local QuantActs a;
  const uint64_t epoch = g_acts_epoch.load(std::memory_order_relaxed);
  if (a.x == x && a.epoch == epoch && a.T == T && a.K == K) return a;
  a.x = x, a.epoch = epoch;
  a.T = T, a.K = K, a.Kp = (K + 63) / 64 * 64;
  const int64_t Kp = a.Kp;
  a.q.assign(size_t(T * Kp), 0);
  a.sxv.assign(size_t(T * Kp / 4), 0.0f);
  a.sum4.assign(size_t(T * Kp / 4), 0);
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t t = 0; t < T; t++) {
    int8_t* q = a.q.data() + t * Kp;
    float* sxv = a.sxv.data() + t * Kp / 4;
    for (int64_t c = 0; c < K / 32; c++) {
      const float sx = q8_0_round(x + t * K + 32 * c, q + 32 * c);
      for (int l = 0; l < 8; l++) sxv[16 * (c / 2) + 8 * (c % 2) + l] = sx;
    }
    for (int64_t p = 0; p < Kp / 64; p++) {
      const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_loadu_si512(q + 64 * p));
      _mm512_storeu_si512(a.sum4.data() + t * Kp / 4 + 16 * p, s);
    }
  }
  return a;
}

// The int8 kernels prefetch each block the same place in a later tile of NR rows, whole tiles ahead and
// at least kPrefetchAhead bytes. One tile ahead (as kernels_avx512.cpp's direct kernel does) is only
// 3.4 KiB for the short rows of a 1024-wide head ([129280, 1024] Q6_K: 4 rows of 840 bytes), too near to
// hide memory latency: the bench model's head took 2.2 ms a token that way and 1.45-1.8 ms 8 KiB ahead
// (`seek bench` on bench-1b Q4_K_M, alternating runs; 4 KiB gained less, 12-16 KiB no more; the whole
// decode step's rate moved within this machine's noise). Tiles of 8 KiB or more keep the one-tile distance.
// Into L2, not L1: when memory is slow (26 GB/s by seek bench's probe on 2026-12-06) prefetches into L1
// held its few miss buffers for a whole memory latency and the kernels streamed at 0.72-0.86x the bf16
// kernel (which prefetches into L2); into L2 they stream at 1.05-1.38x of it (bench_kernels --quant,
// [8192, 4096], T = 1), the bench model's Q8_0 head took 3.2-4.6 ms a token instead of 7.5-8.0, and its
// decode ran at 89-94 tokens/s instead of 57-61 (seek bench, alternating runs). From cache, no change.
constexpr int64_t kPrefetchAhead = 8192;
constexpr auto kPrefetchHint = _MM_HINT_T1;  // into L2
inline int64_t prefetch_offset(int64_t tile_bytes) {
  return (kPrefetchAhead + tile_bytes - 1) / tile_bytes * tile_bytes;
}

// What vpdpbusd's unsigned weights u are offset by: value = d · (u - offset), offset = 2^shift.
template <QKind q>
constexpr int kOffsetShift = q == QKind::Q8_0 ? 7 : q == QKind::Q5_0 ? 4 : 3;

SEEK_VNNI inline __m512 halves_ps(float a, float b) {
  return _mm512_castpd_ps(
      _mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(a)), _mm256_castps_pd(_mm256_set1_ps(b)), 1));
}

// Q8_0/Q4_0/Q5_0 blocks b0, b1 (b1 = b0 for a row's odd last block, whose activations are zero): the 64
// weights as unsigned codes u (byte i = value i of the pair) and the weight scale of each dot-product lane.
template <QKind q>
SEEK_VNNI inline void decode_pair(const uint8_t* b0, const uint8_t* b1, __m512i* u, __m512* ws) {
  if constexpr (q == QKind::Q8_0) {
    const __m512i v = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0 + 2))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b1 + 2)), 1);
    *u = _mm512_xor_si512(v, _mm512_set1_epi8(char(0x80)));
  } else {
    constexpr int nib = q == QKind::Q5_0 ? 6 : 2;  // Q5_0: after its 4 bytes of fifth bits
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + nib));
    const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b1 + nib));
    __m512i v = _mm512_castsi128_si512(q0);
    v = _mm512_inserti32x4(v, q0, 1);
    v = _mm512_inserti32x4(v, q1, 2);
    v = _mm512_inserti32x4(v, q1, 3);
    v = _mm512_mask_blend_epi64(0xCC, v, _mm512_srli_epi16(v, 4));  // 128-bit lanes 1, 3: high nibbles
    *u = _mm512_and_si512(v, _mm512_set1_epi8(15));
    if constexpr (q == QKind::Q5_0) {  // bit i of the pair's 64 fifth bits is value i's
      uint32_t h0, h1;
      std::memcpy(&h0, b0 + 2, 4);
      std::memcpy(&h1, b1 + 2, 4);
      *u = _mm512_mask_add_epi8(*u, __mmask64(h0 | uint64_t(h1) << 32), *u, _mm512_set1_epi8(16));
    }
  }
  *ws = halves_ps(f16_at(b0), f16_at(b1));
}

// y[t, n + r] for r < NR, t < TT, with the activations a (tokens t0.. of the call): Q8_0/Q4_0/Q5_0.
template <QKind q, int TT, int NR>
SEEK_VNNI void int8_tile(float* y, int64_t ldy, const QuantActs& a, int64_t t0, const Mat& w, int64_t n,
                         const float* bias) {
  constexpr int BB = kBlockBytes<q>;
  const int64_t K = w.cols, nb = K / kBlockValues<q>, rb = nb * BB, Kp = a.Kp;
  const uint8_t* wrow[NR];
  for (int r = 0; r < NR; r++) wrow[r] = static_cast<const uint8_t*>(w.data) + (n + r) * rb;
  const int64_t pf_off = prefetch_offset(NR * rb);
  __m512 acc[NR][TT];
#pragma GCC unroll 8
  for (int r = 0; r < NR; r++)
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) acc[r][t] = _mm512_setzero_ps();
  for (int64_t pi = 0; pi < (nb + 1) / 2; pi++) {  // pairs of blocks
    __m512i u[NR];
    __m512 ws[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; r++) {
      const uint8_t* b0 = wrow[r] + 2 * pi * BB;
      decode_pair<q>(b0, 2 * pi + 1 < nb ? b0 + BB : b0, &u[r], &ws[r]);
      // The same place in a later tile (prefetch_offset).
      const char* pf = reinterpret_cast<const char*>(b0) + pf_off;
      _mm_prefetch(pf, kPrefetchHint);
      if constexpr (BB > 32) _mm_prefetch(pf + 64, kPrefetchHint);
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) {
      const int64_t tk = t0 + t;
      const __m512i xq = _mm512_loadu_si512(a.q.data() + tk * Kp + 64 * pi);
      const __m512 sx = _mm512_loadu_ps(a.sxv.data() + tk * Kp / 4 + 16 * pi);
      const __m512i init = _mm512_sub_epi32(
          _mm512_setzero_si512(),
          _mm512_slli_epi32(_mm512_loadu_si512(a.sum4.data() + tk * Kp / 4 + 16 * pi), kOffsetShift<q>));
#pragma GCC unroll 8
      for (int r = 0; r < NR; r++) {
        const __m512i d = _mm512_dpbusd_epi32(init, u[r], xq);
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(ws[r], sx), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < NR; r++)
    for (int t = 0; t < TT; t++) y[(t0 + t) * ldy + n + r] = _mm512_reduce_add_ps(acc[r][t]) + (bias ? bias[n + r] : 0.0f);
}

template <QKind q, int TT>
SEEK_VNNI void int8_rows_tt(float* y, int64_t ldy, const QuantActs& a, int64_t t0, const Mat& w, int64_t n0,
                            int64_t n1, const float* bias) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) int8_tile<q, TT, 4>(y, ldy, a, t0, w, n, bias);
  for (; n < n1; n++) int8_tile<q, TT, 1>(y, ldy, a, t0, w, n, bias);
}

// ---- int8 decode (T <= 16) for the K-quants: one activation scale per 256, sums in integers ----------
// The activations are rounded as the GEMM's (llama.cpp's Q8_K: d = amax / 127 per super-block of 256,
// int8 codes, the sums of each 16 codes), one token after another, so a row's dot product with a token
// over a super-block is, as in the GEMM's comment below,
//   dx · (d · Σ_j sc_j · Σ u·q  -  dm · Σ_j mn_j · Σ q)
// with everything inside the brackets' sums in integers: the codes u (nibbles or 6 bits) meet 64 codes q
// in vpmaddubsw (pairs of products in i16: at most 2 · 63 · 127), whose i16 lanes meet the sub-block
// scales in vpdpwssd; a super-block ends in one convert and one FMA. Per 64 weights that is 2 multiplies
// and ~2 decode operations, where per-32 activation scales need a convert, a scale product and an FMA
// more. Q4_K's nibbles are loaded 128 at a time (qs[0, 64): low nibbles are values [0, 32) and
// [64, 96), high ones [32, 64) and [96, 128)), so each 128 activations are stored in that order.

struct KActs {
  const float* x = nullptr;  // the f32 activations these were made from, [T, K]...
  uint64_t epoch = 0;        // ...in this activation epoch
  int64_t T = 0, K = 0;
  std::vector<int8_t> q;     // [T][K], Q4_K/Q5_K: each 128 in the nibbles' order
  std::vector<float> d;      // [T][K / 256]
  std::vector<int16_t> bs;   // [T][K / 256][16] sums of 16 codes
};

template <QKind q>
SEEK_VNNI const KActs& k_acts(const float* x, int64_t T, int64_t K) {
  thread_local KActs a;  // one per format: their layouts differ
  const uint64_t epoch = g_acts_epoch.load(std::memory_order_relaxed);
  if (a.x == x && a.epoch == epoch && a.T == T && a.K == K) return a;
  a.x = x, a.epoch = epoch, a.T = T, a.K = K;
  const int64_t nsb = K / 256;
  a.q.resize(size_t(T * K));
  a.d.resize(size_t(T * nsb));
  a.bs.resize(size_t(T * nsb * 16));
  for (int64_t t = 0; t < T; t++)
    for (int64_t sb = 0; sb < nsb; sb++) {
      alignas(64) int8_t c[256];
      int32_t sums[16];
      a.d[size_t(t * nsb + sb)] = q8k_round(x + t * K + 256 * sb, c, sums);
      for (int v = 0; v < 16; v++) a.bs[size_t((t * nsb + sb) * 16 + v)] = int16_t(sums[v]);
      int8_t* dst = a.q.data() + t * K + 256 * sb;
      if constexpr (kHasMins<q>) {
        for (int h = 0; h < 256; h += 128) {
          std::memcpy(dst + h, c + h, 32);
          std::memcpy(dst + h + 32, c + h + 64, 32);
          std::memcpy(dst + h + 64, c + h + 32, 32);
          std::memcpy(dst + h + 96, c + h + 96, 32);
        }
      } else {
        std::memcpy(dst, c, 256);
      }
    }
  return a;
}

// Q5_K's fifth bits added to 64 codes u: byte i of u gets 16 where bit `lo` (i < 32) or bit `hi` (i >= 32)
// of qh[i % 32] is set.
SEEK_VNNI inline __m512i q5k_add_fifth_bits(__m512i u, const uint8_t* qh, int lo, int hi) {
  const __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh)));
  const __m512i bit = _mm512_inserti64x4(_mm512_set1_epi8(char(1 << lo)), _mm256_set1_epi8(char(1 << hi)), 1);
  return _mm512_mask_add_epi8(u, _mm512_test_epi8_mask(h, bit), u, _mm512_set1_epi8(16));
}

// Values [64 p, 64 p + 64) of a K-quant super-block b as their unsigned codes, in order.
template <QKind q>
SEEK_VNNI inline __m512i kquant_codes(const uint8_t* b, int p) {
  const __m512i m15 = _mm512_set1_epi8(15);
  if constexpr (kHasMins<q>) {  // qs[32 p + l]: value 64 p + l in the low nibble, 64 p + 32 + l high
    const __m512i v =
        _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + kNibbles<q> + 32 * p)));
    const __m512i u = _mm512_and_si512(_mm512_mask_blend_epi64(0xF0, v, _mm512_srli_epi16(v, 4)), m15);
    if constexpr (q == QKind::Q5_K) return q5k_add_fifth_bits(u, b + 16, 2 * p, 2 * p + 1);
    return u;
  } else {
    // As dequantize_row_q6_K: value 128 h + 64 pp + i takes its low 4 bits from ql[64 h + i] (the low
    // nibble for pp = 0, the high one for pp = 1) and its 2 high bits from qh[32 h + i % 32], bits
    // 4 pp + 2 (i / 32), +1. One shift per 16-bit lane brings those to bits 4, 5 (16-bit shifts move no
    // wanted bit across bytes), and one ternary op merges: (ql bits & 15) | (qh bits & 48).
    const int h = p / 2, pp = p % 2;
    __m512i lo = _mm512_loadu_si512(b + 64 * h);
    if (pp) lo = _mm512_srli_epi16(lo, 4);
    __m512i hi = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * h)));
    // shifts for values i < 32 | i >= 32: pp = 0 bits 0, 1 | 2, 3 up; pp = 1 bits 4, 5 | 6, 7 down
    const __m512i up = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i down = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    hi = pp ? _mm512_srlv_epi16(hi, down) : _mm512_sllv_epi16(hi, up);
    return _mm512_ternarylogic_epi32(lo, _mm512_and_si512(hi, _mm512_set1_epi8(48)), m15, 0xEC);  // (a & c) | b
  }
}

// Super-block b of a row: its codes as 4 vectors of 64 (in the activations' order), the i16 sub-block
// scales that meet each vector's vpmaddubsw lanes, the i16 vector that meets the 16-code sums (Q4_K its
// mins, each twice: m_j for both 16s of sub-block j; Q6_K its scales, the offset's 32 applied later), and
// d, dm in lanes 0, 1. Vector code throughout: scalar unpacking of Q4_K's 6-bit fields, as the reference
// does it, was half of the kernel's instructions.
template <QKind q>
SEEK_VNNI inline void k_block(const uint8_t* b, __m512i* u, __m512i* s, __m256i* mn, __m128* dd) {
  const __m512i m15 = _mm512_set1_epi8(15);
  if constexpr (kHasMins<q>) {
    // q4k_scale_min four fields at a time: 32-bit words w0, w1, w2 of the 12 bytes give
    // sc0..3 = w0 & 63, m0..3 = w1 & 63, sc4..7 = (w2 & 15) | (w0 >> 6) << 4, m4..7 = (w2 >> 4) | (w1 >> 6) << 4
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 4));
    const __m128i v = _mm_shuffle_epi32(raw, _MM_SHUFFLE(2, 1, 2, 0));  // w0, w2, w1, w2
    const __m128i lo = _mm_and_si128(_mm_srlv_epi32(v, _mm_set_epi32(4, 0, 0, 0)),
                                     _mm_set_epi32(0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f));
    const __m128i hi = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(raw, _MM_SHUFFLE(1, 1, 0, 0)), 2),
                                     _mm_set_epi32(0x30303030, 0, 0x30303030, 0));
    const __m128i packed = _mm_or_si128(lo, hi);  // bytes sc0..7, m0..7
    // Each 16-bit scale is one byte of `packed`, zero-extended: a byte shuffle (its index, then 0x80 for
    // the zero high byte) of `packed` in every 128-bit lane, no widening and no cross-lane permute.
    const __m512i pk = _mm512_broadcast_i32x4(packed);
    // vector 2h + e (e = 0 low nibbles, 1 high) of half h: sub-blocks 4h + e (lanes 0-15) and 4h + e + 2
    for (int k = 0; k < 4; k++) {
      const short lo_j = short(4 * (k / 2) + k % 2), z = short(0x8000);
      s[k] = _mm512_shuffle_epi8(pk, _mm512_inserti64x4(_mm512_set1_epi16(short(z | lo_j)),
                                                        _mm256_set1_epi16(short(z | (lo_j + 2))), 1));
    }
    // the mins, each twice (i16 lane i: m_{i/2}, byte 8 + i/2 of `packed`)
    *mn = _mm256_shuffle_epi8(_mm512_castsi512_si256(pk),
                              _mm256_set_epi16(short(0x800F), short(0x800F), short(0x800E), short(0x800E),
                                               short(0x800D), short(0x800D), short(0x800C), short(0x800C),
                                               short(0x800B), short(0x800B), short(0x800A), short(0x800A),
                                               short(0x8009), short(0x8009), short(0x8008), short(0x8008)));
    for (int h = 0; h < 2; h++) {
      const __m512i w = _mm512_loadu_si512(b + kNibbles<q> + 64 * h);
      u[2 * h] = _mm512_and_si512(w, m15);
      u[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(w, 4), m15);
      if constexpr (q == QKind::Q5_K) {  // vector 2h + e holds groups 2h, 2h + 1 of nibble e: bits 4h + e, 4h + e + 2
        for (int e = 0; e < 2; e++) u[2 * h + e] = q5k_add_fifth_bits(u[2 * h + e], b + 16, 4 * h + e, 4 * h + e + 2);
      }
    }
    int32_t d2;
    std::memcpy(&d2, b, 4);
    *dd = _mm_cvtph_ps(_mm_cvtsi32_si128(d2));
  } else {
    const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192)));
    const __m512i sc16 = _mm512_castsi256_si512(sc);
    for (int k = 0; k < 4; k++) u[k] = kquant_codes<q>(b, k);  // in order, as the activations
    for (int h = 0; h < 2; h++) {
      // vector 2h + e: values 128h + 64e + [0, 64), sub-blocks 8h + 4e + [0, 4), 8 i16 lanes each
      for (int e = 0; e < 2; e++) {
        const short j = short(8 * h + 4 * e);
        s[2 * h + e] = _mm512_permutexvar_epi16(
            _mm512_set_epi16(j + 3, j + 3, j + 3, j + 3, j + 3, j + 3, j + 3, j + 3, j + 2, j + 2, j + 2, j + 2,
                             j + 2, j + 2, j + 2, j + 2, j + 1, j + 1, j + 1, j + 1, j + 1, j + 1, j + 1, j + 1, j, j,
                             j, j, j, j, j, j),
            sc16);
      }
    }
    *mn = sc;
    *dd = _mm_set1_ps(f16_at(b + 208));
  }
}

// y[t, n + r] for r < NR, t < TT, with the activations a (tokens t0.. of the call).
template <QKind q, int TT, int NR>
SEEK_VNNI void k_tile(float* y, int64_t ldy, const KActs& a, int64_t t0, const Mat& w, int64_t n,
                      const float* bias) {
  constexpr int BB = kBlockBytes<q>;
  const int64_t K = w.cols, nsb = K / 256, rb = nsb * BB;
  const uint8_t* wrow[NR];
  for (int r = 0; r < NR; r++) wrow[r] = static_cast<const uint8_t*>(w.data) + (n + r) * rb;
  const int64_t pf_off = prefetch_offset(NR * rb);
  __m512 acc[NR][TT];
  __m256 accm[NR][TT];  // Q4_K/Q5_K: the mins' part
#pragma GCC unroll 8
  for (int r = 0; r < NR; r++)
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) acc[r][t] = _mm512_setzero_ps(), accm[r][t] = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < nsb; sb++) {
    const int8_t* xq[TT];
    float dx[TT];
    __m256i bs[TT];
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) {
      const int64_t i = (t0 + t) * nsb + sb;
      xq[t] = a.q.data() + (t0 + t) * K + 256 * sb;
      dx[t] = a.d[size_t(i)];
      bs[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bs.data() + 16 * i));
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; r++) {
      const uint8_t* b = wrow[r] + sb * BB;
      // The same place in a later tile (prefetch_offset).
      const char* pf = reinterpret_cast<const char*>(b) + pf_off;
      for (int l = 0; l < BB; l += 64) _mm_prefetch(pf + l, kPrefetchHint);
      __m512i u[4], s[4];
      __m256i mn;
      __m128 dd;
      k_block<q>(b, u, s, &mn, &dd);
#pragma GCC unroll 8
      for (int t = 0; t < TT; t++) {
        __m512i ia = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
          ia = _mm512_dpwssd_epi32(ia, _mm512_maddubs_epi16(u[k], _mm512_loadu_si512(xq[t] + 64 * k)), s[k]);
        const __m256i m = _mm256_madd_epi16(mn, bs[t]);
        const __m128 ddx = _mm_mul_ps(dd, _mm_set1_ps(dx[t]));  // d · dx, dm · dx
        if constexpr (q == QKind::Q6_K) {
          ia = _mm512_sub_epi32(ia, _mm512_zextsi256_si512(_mm256_slli_epi32(m, 5)));
        } else {
          accm[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), _mm256_broadcastss_ps(_mm_movehdup_ps(ddx)), accm[r][t]);
        }
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia), _mm512_broadcastss_ps(ddx), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < NR; r++)
    for (int t = 0; t < TT; t++) {
      float sum = _mm512_reduce_add_ps(acc[r][t]);
      if constexpr (kHasMins<q>) {
        const __m256 m = accm[r][t];
        const __m128 h = _mm_add_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        const __m128 h2 = _mm_add_ps(h, _mm_movehl_ps(h, h));
        sum -= _mm_cvtss_f32(_mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1)));
      }
      y[(t0 + t) * ldy + n + r] = sum + (bias ? bias[n + r] : 0.0f);
    }
}

template <QKind q, int TT>
SEEK_VNNI void k_rows_tt(float* y, int64_t ldy, const KActs& a, int64_t t0, const Mat& w, int64_t n0, int64_t n1,
                         const float* bias) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) k_tile<q, TT, 4>(y, ldy, a, t0, w, n, bias);
  for (; n < n1; n++) k_tile<q, TT, 1>(y, ldy, a, t0, w, n, bias);
}

template <QKind q>
SEEK_VNNI void int8_rows_kind(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0,
                              int64_t n1, const float* bias) {
  // The kernels prefetch prefetch_offset ahead of what they read, so a range's first tiles would come in
  // by demand misses; the range is where a thread starts on a piece of a matmul_many (a decode step has
  // ~50 of them, most a few hundred KiB). Prefetched here, before the activations are quantized:
  // bench-1b Q8_0 decoded 1.05x faster (median of 8 alternating pairs of `seek generate`, 128 tokens).
  const int64_t rb = w.cols / kBlockValues<q> * kBlockBytes<q>;
  const char* start = static_cast<const char*>(w.data) + n0 * rb;
  for (int64_t off = 0, len = min_i64((n1 - n0) * rb, prefetch_offset(4 * rb)); off < len; off += 64)
    _mm_prefetch(start + off, kPrefetchHint);
  if constexpr (!kSmallBlock<q>) {
    const KActs& a = k_acts<q>(x, T, w.cols);
    for (int64_t b0 = n0; b0 < n1; b0 += 16) {  // a block of rows stays in cache across token pairs
      const int64_t b1 = min_i64(n1, b0 + 16);
      for (int64_t t0 = 0; t0 < T; t0 += 2) {
        if (T - t0 == 1) k_rows_tt<q, 1>(y, ldy, a, t0, w, b0, b1, bias);
        else k_rows_tt<q, 2>(y, ldy, a, t0, w, b0, b1, bias);
      }
    }
    return;
  }
  const QuantActs& a = quantize_acts(x, T, w.cols);
  for (int64_t b0 = n0; b0 < n1; b0 += 16) {  // a block of rows stays in cache across token groups
    const int64_t b1 = min_i64(n1, b0 + 16);
    for (int64_t t0 = 0; t0 < T; t0 += 4) {
      switch (min_i64(4, T - t0)) {
        case 1: int8_rows_tt<q, 1>(y, ldy, a, t0, w, b0, b1, bias); break;
        case 2: int8_rows_tt<q, 2>(y, ldy, a, t0, w, b0, b1, bias); break;
        case 3: int8_rows_tt<q, 3>(y, ldy, a, t0, w, b0, b1, bias); break;
        default: int8_rows_tt<q, 4>(y, ldy, a, t0, w, b0, b1, bias); break;
      }
    }
  }
}

std::atomic<int> g_int8_acts{-1};   // -1: not yet decided (SEEK_QUANT_EXACT), 0 off, 1 on

bool int8_enabled() {
  int v = g_int8_acts.load(std::memory_order_relaxed);
  if (v < 0) {
    const char* env = std::getenv("SEEK_QUANT_EXACT");
    v = env && *env && std::strcmp(env, "0") != 0 ? 0 : 1;
    int expected = -1;
    g_int8_acts.compare_exchange_strong(expected, v);
    v = g_int8_acts.load();
  }
  return v == 1 && cpu_features().avx512vnni;
}

template <QKind q>
SEEK_AVX512 void direct_rows_kind(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0,
                                  int64_t n1, const float* bias) {
  if constexpr (kHasInt8<q>) {
    if (T <= kInt8MaxT && int8_enabled()) return int8_rows_kind<q>(y, ldy, x, w, T, n0, n1, bias);
  }
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

// Columns [b0·BV, (b0 + NB)·BV) of y = Σ_i a[i] · rows[i] over i < nr (rows rb bytes apart): NB blocks,
// a constant count so that the accumulators stay in registers while the rows stream past.
template <QKind q, int NB>
SEEK_AVX512 inline void rows_weighted_blocks(float* y, const float* a, const uint8_t* rows, int64_t rb, int64_t nr,
                                             int64_t b0, int64_t ahead) {
  constexpr int BV = kBlockValues<q>, BB = kBlockBytes<q>, NA = NB * BV / 16;
  __m512 acc[NA];
#pragma GCC unroll 16
  for (int j = 0; j < NA; j++) acc[j] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nr; i++) {
    const __m512 ai = _mm512_set1_ps(a[i]);
    const uint8_t* b = rows + i * rb + b0 * BB;
    if (i + ahead < nr)
      for (int64_t l = 0; l < NB * BB; l += 64) _mm_prefetch(reinterpret_cast<const char*>(b + ahead * rb) + l, kPrefetchHint);
#pragma GCC unroll 8
    for (int j = 0; j < NB; j++) {
      float s[kScalars<q>];
      block_scalars<q>(b + j * BB, s);
#pragma GCC unroll 8
      for (int c = 0; c < kChunks<q>; c++) {
        __m512 v[2];
        decode_chunk<q>(b + j * BB, c, s, v);
        const int at = 2 * (j * kChunks<q> + c);
        acc[at] = _mm512_fmadd_ps(ai, v[0], acc[at]);
        acc[at + 1] = _mm512_fmadd_ps(ai, v[1], acc[at + 1]);
      }
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < NA; j++) _mm512_storeu_ps(y + b0 * BV + 16 * j, acc[j]);
}

// y[K] = Σ_i a[i] · w[r0 + i] over i < nr: the rows weighted, decoded exactly as rows_to_f32_kind and
// summed in f32. 256 columns at a time stay in 16 accumulators while the rows stream past, so the
// weights are read once and only y is written; a last partial group block by block.
template <QKind q>
SEEK_AVX512 void rows_weighted_kind(float* y, const float* a, const Mat& w, int64_t r0, int64_t nr) {
  constexpr int BV = kBlockValues<q>, BB = kBlockBytes<q>, kGroup = 256 / BV;  // blocks per 256 columns
  const int64_t nb = w.cols / BV, rb = nb * BB;
  const uint8_t* rows = static_cast<const uint8_t*>(w.data) + r0 * rb;
  // The rows are one short range (a head's W_UK: 17 KiB of Q8_0), read once: prefetched from the start
  // and then kPrefetchAhead ahead, as the int8 kernels do.
  const int64_t ahead = (kPrefetchAhead + rb - 1) / rb;  // rows
  for (int64_t off = 0, len = min_i64(nr * rb, kPrefetchAhead); off < len; off += 64)
    _mm_prefetch(reinterpret_cast<const char*>(rows) + off, kPrefetchHint);
  int64_t b0 = 0;
  for (; b0 + kGroup <= nb; b0 += kGroup) rows_weighted_blocks<q, kGroup>(y, a, rows, rb, nr, b0, ahead);
  for (; b0 < nb; b0++) rows_weighted_blocks<q, 1>(y, a, rows, rb, nr, b0, ahead);
}

// ---- int8 GEMM (prefill): tokens in the lanes ------------------------------------------------------
// Activations laid out for a GEMM whose 16 vector lanes are 16 tokens: per group of 16 tokens,
// q [K / 4][16 tokens][4 codes] (lane l of a vector at quad i holds token l's codes 4i..4i+3, what
// vpdpbusd multiplies against 4 bytes of a weight row broadcast to every lane), and per block of
// activations a scale per token, d [K / block][16]. The block is
// - for the K-quants 256, as llama.cpp's Q8_K: d = amax / 127 per 256 values, with the sums of each 16
//   codes in pairs, bs [K / 256][8][16] (each i32 lane two i16 sums, for vpdpwssd);
// - for Q8_0, Q4_0 and Q5_0 32, rounded as the decode path's (q8_0_round, llama.cpp's Q8_0 with an f32
//   scale), with minus the sum of the block's codes, bs [K / 32][16].
//
// Q8_0, Q4_0 and Q5_0: a weight block (32 values) is w = d · (u - 2^s) with u its unsigned code (as the
// decode path's decode_pair makes it: Q8_0's q + 128, Q4_0's nibble, Q5_0's nibble and fifth bit), so a
// row's dot with a token over the block is
//   d · da · (Σ u·q  -  2^s · Σ q)
// the bracket in exact integers: vpdpbusd's accumulator starts at -(Σ q) << s, and each block ends in a
// convert, a scale product and an FMA (llama.cpp's vec_dot_q8_0_q8_0 computes the same value, up to f32
// rounding and its f16 activation scale).
//
// The K-quants:
// A weight row's super-block (256 values) is, for Q4_K and Q6_K alike,
//   w = d · sc_j · u - dm · mn_j       (value in sub-block j; u its unsigned code)
// with integer sc_j and mn_j: Q4_K (sub-blocks of 32) sc_j, mn_j = m_j, dm = dmin; Q6_K (sub-blocks of
// 16) sc_j, mn_j = 32 · sc_j, dm = d. So a row's dot with a token over a super-block is
//   da · (d · Σ_j sc_j · Σ u·q  -  dm · Σ_j mn_j · Σ q)
// in exact integers but for the two f32 products at the end: the same value llama.cpp's K-quant dot
// products compute, up to f32 rounding.

struct GemmPanel {  // rows of weights decoded once for all token groups
  int64_t K = 0, nsb = 0;       // nsb: blocks per row (super-blocks for the K-quants)
  std::vector<uint8_t> u;       // [rows][K] unsigned codes
  std::vector<int32_t> sc;      // K-quants: [rows][nsb][S]
  std::vector<int32_t> mn;      // K-quants: [rows][nsb][8], i16 pairs of mn for the 16-code sums (2 jp, 2 jp + 1)
  std::vector<float> d, dm;     // [rows][nsb] (dm: K-quants)
};

constexpr int kGemmRows = int(kInt8GemmPanelRows);  // rows decoded per panel
constexpr int kGemmR = 4;         // rows per register tile
constexpr int kGemmG = 2;         // 16-token groups per register tile
constexpr int kGemmSlice = 512;   // values per slice of K

template <QKind q>
constexpr int kSubBlocks = kHasMins<q> ? 8 : 16;

inline int32_t i16_pair(int lo, int hi) { return int32_t(uint32_t(uint16_t(int16_t(lo))) | uint32_t(hi) << 16); }

// Row r of the panel from weight row `row` (nb blocks): Q8_0/Q4_0/Q5_0.
template <QKind q>
SEEK_VNNI void gemm_decode_small_row(const uint8_t* row, int64_t nb, GemmPanel* p, int64_t r) {
  constexpr int BB = kBlockBytes<q>;
  uint8_t* u = p->u.data() + r * p->K;
  float* d = p->d.data() + r * nb;
  for (int64_t ib = 0; ib < nb; ib += 2) {  // pairs of blocks, as decode_pair makes them
    const uint8_t* b0 = row + ib * BB;
    const bool pair = ib + 1 < nb;
    __m512i v;
    __m512 ws;
    decode_pair<q>(b0, pair ? b0 + BB : b0, &v, &ws);
    if (pair) _mm512_storeu_si512(u + 32 * ib, v);
    else _mm256_storeu_si256(reinterpret_cast<__m256i*>(u + 32 * ib), _mm512_castsi512_si256(v));
    d[ib] = f16_at(b0);
    if (pair) d[ib + 1] = f16_at(b0 + BB);
  }
}

// The K-quants.
template <QKind q>
SEEK_VNNI void gemm_decode_row(const uint8_t* row, int64_t nsb, GemmPanel* p, int64_t r) {
  constexpr int S = kSubBlocks<q>;
  uint8_t* u = p->u.data() + r * p->K;
  for (int64_t sb = 0; sb < nsb; sb++) {
    const uint8_t* b = row + sb * kBlockBytes<q>;
    for (int pp = 0; pp < 4; pp++) _mm512_storeu_si512(u + 256 * sb + 64 * pp, kquant_codes<q>(b, pp));
    int32_t* sc = p->sc.data() + (r * nsb + sb) * S;
    int32_t* mn = p->mn.data() + (r * nsb + sb) * 8;
    const float d = f16_at(kHasMins<q> ? b : b + 208);
    p->d[size_t(r * nsb + sb)] = d;
    if constexpr (kHasMins<q>) {
      const uint8_t* s = b + 4;
      for (int j = 0; j < 8; j++) {
        uint8_t scale, m;
        q4k_scale_min(j, s, &scale, &m);
        sc[j] = scale;
        mn[j] = i16_pair(m, m);
      }
      p->dm[size_t(r * nsb + sb)] = f16_at(b + 2);
    } else {
      const int8_t* s = reinterpret_cast<const int8_t*>(b + 192);
      for (int j = 0; j < 16; j++) sc[j] = s[j];
      for (int jp = 0; jp < 8; jp++) mn[jp] = i16_pair(32 * s[2 * jp], 32 * s[2 * jp + 1]);
      p->dm[size_t(r * nsb + sb)] = d;
    }
  }
}

// A register tile's operands: the panel's rows r0.. and the activations' token groups g0.., with the f32
// sums acc[r][g] (16 tokens each) loaded from and stored back to acc.
struct GemmTileRows {
  const uint8_t* u[kGemmR];
  const int8_t* aq[kGemmG];
  __m512 facc[kGemmR][kGemmG];

  SEEK_VNNI GemmTileRows(const GemmPanel& p, int64_t r0, const Int8Acts& a, int64_t g0, const float* acc) {
    for (int r = 0; r < kGemmR; r++) u[r] = p.u.data() + (r0 + r) * p.K;
    for (int g = 0; g < kGemmG; g++) aq[g] = a.q.data() + (g0 + g) * 16 * p.K;
#pragma GCC unroll 8
    for (int r = 0; r < kGemmR; r++)
#pragma GCC unroll 8
      for (int g = 0; g < kGemmG; g++) facc[r][g] = _mm512_loadu_ps(acc + 16 * (r * kGemmG + g));
  }
  SEEK_VNNI void store(float* acc) const {
    for (int r = 0; r < kGemmR; r++)
      for (int g = 0; g < kGemmG; g++) _mm512_storeu_ps(acc + 16 * (r * kGemmG + g), facc[r][g]);
  }
  // facc[r][g] += (or -= with kSubtract) f32(sums[r][g]) · ws[r · stride] · ad[g]: a block's integer sums
  // scaled by the row's weight scale (ws, rows `stride` apart) and the 16 tokens' activation scales.
  template <bool kSubtract = false>
  SEEK_VNNI inline __attribute__((always_inline)) void scale_add(const __m512i (&sums)[kGemmR][kGemmG], const float* ws,
                                                                 int64_t stride, const __m512 (&ad)[kGemmG]) {
#pragma GCC unroll 8
    for (int r = 0; r < kGemmR; r++) {
      const __m512 w = _mm512_set1_ps(ws[r * stride]);
#pragma GCC unroll 8
      for (int g = 0; g < kGemmG; g++) {
        const __m512 v = _mm512_cvtepi32_ps(sums[r][g]), sc = _mm512_mul_ps(w, ad[g]);
        facc[r][g] = kSubtract ? _mm512_fnmadd_ps(v, sc, facc[r][g]) : _mm512_fmadd_ps(v, sc, facc[r][g]);
      }
    }
  }
  // is[r][g] += Σ u·q over values [k0, k0 + 4 · N): each 4 bytes of a row broadcast against 16 tokens' 4 codes.
  template <int N>
  SEEK_VNNI inline __attribute__((always_inline)) void dot(__m512i (&is)[kGemmR][kGemmG], int64_t k0) const {
#pragma GCC unroll 16
    for (int i = 0; i < N; i++) {
      __m512i av[kGemmG];
#pragma GCC unroll 8
      for (int g = 0; g < kGemmG; g++) av[g] = _mm512_loadu_si512(aq[g] + 16 * (k0 + 4 * i));
#pragma GCC unroll 8
      for (int r = 0; r < kGemmR; r++) {
        int32_t w4;
        std::memcpy(&w4, u[r] + k0 + 4 * i, 4);
        const __m512i wb = _mm512_set1_epi32(w4);
#pragma GCC unroll 8
        for (int g = 0; g < kGemmG; g++) is[r][g] = _mm512_dpbusd_epi32(is[r][g], wb, av[g]);
      }
    }
  }
};

// Q8_0/Q4_0/Q5_0: acc[r][g] (16 tokens each, f32) += rows r0.. of the panel times token groups g0.. of
// the activations, over blocks [b0, b1). In registers: R · G block sums and f32 sums.
template <QKind q>
SEEK_VNNI void gemm_tile_small(const GemmPanel& p, int64_t r0, const Int8Acts& a, int64_t g0, int64_t b0,
                               int64_t b1, float* acc) {
  constexpr int R = kGemmR, G = kGemmG;
  const int64_t nb = p.nsb;
  GemmTileRows t(p, r0, a, g0, acc);
  for (int64_t b = b0; b < b1; b++) {
    __m512i is[R][G], init[G];
#pragma GCC unroll 8
    for (int g = 0; g < G; g++)
      init[g] = _mm512_slli_epi32(_mm512_loadu_si512(a.bs.data() + ((g0 + g) * nb + b) * 16), kOffsetShift<q>);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int g = 0; g < G; g++) is[r][g] = init[g];
    t.dot<8>(is, 32 * b);
    __m512 ad[G];
#pragma GCC unroll 8
    for (int g = 0; g < G; g++) ad[g] = _mm512_loadu_ps(a.d.data() + ((g0 + g) * nb + b) * 16);
    t.scale_add(is, p.d.data() + r0 * nb + b, nb, ad);
  }
  t.store(acc);
}

// The K-quants: acc[r][g] (16 tokens each, f32) += rows r0.. of the panel times token groups g0.. of the
// activations, over super-blocks [sb0, sb1). In registers: R · G sub-block sums, super-block sums and f32 sums (24 of
// the 32 vector registers). Tried and slower here (bench_kernels --quant-prefill, alternating): vpdpbusd
// with its broadcast folded in ({1to16}, one instruction fewer per two products; ~20% faster in an
// L1-only loop, ~20% slower in this one), f32 sums kept in memory to free registers for 6 × 2 tiles,
// 8 × 1 and 2 × 4 tiles.
template <QKind q>
SEEK_VNNI void gemm_tile(const GemmPanel& p, int64_t r0, const Int8Acts& a, int64_t g0, int64_t sb0, int64_t sb1,
                         float* acc) {
  constexpr int S = kSubBlocks<q>, L = 256 / S, R = kGemmR, G = kGemmG;
  const int64_t nsb = p.nsb;
  GemmTileRows t(p, r0, a, g0, acc);
  for (int64_t sb = sb0; sb < sb1; sb++) {
    __m512i iacc[R][G];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int g = 0; g < G; g++) iacc[r][g] = _mm512_setzero_si512();
    for (int j = 0; j < S; j++) {
      __m512i is[R][G];
#pragma GCC unroll 8
      for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int g = 0; g < G; g++) is[r][g] = _mm512_setzero_si512();
      t.dot<L / 4>(is, 256 * sb + L * j);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) {
        const __m512i s = _mm512_set1_epi32(p.sc[size_t(((r0 + r) * nsb + sb) * S + j)]);
#pragma GCC unroll 8
        for (int g = 0; g < G; g++) iacc[r][g] = _mm512_add_epi32(iacc[r][g], _mm512_mullo_epi32(is[r][g], s));
      }
    }
    __m512 ad[G];
#pragma GCC unroll 8
    for (int g = 0; g < G; g++) ad[g] = _mm512_loadu_ps(a.d.data() + ((g0 + g) * nsb + sb) * 16);
    t.scale_add(iacc, p.d.data() + r0 * nsb + sb, nsb, ad);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int g = 0; g < G; g++) iacc[r][g] = _mm512_setzero_si512();
    // The mins (Q4_K) or the codes' offset of 32 (Q6_K): dm · Σ_j mn_j · (sum of the token's codes in j).
#pragma GCC unroll 8
    for (int jp = 0; jp < 8; jp++) {
      __m512i bs[G];
#pragma GCC unroll 8
      for (int g = 0; g < G; g++) bs[g] = _mm512_loadu_si512(a.bs.data() + (((g0 + g) * nsb + sb) * 8 + jp) * 16);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) {
        const __m512i m = _mm512_set1_epi32(p.mn[size_t(((r0 + r) * nsb + sb) * 8 + jp)]);
#pragma GCC unroll 8
        for (int g = 0; g < G; g++) iacc[r][g] = _mm512_dpwssd_epi32(iacc[r][g], m, bs[g]);
      }
    }
    t.scale_add<true>(iacc, p.dm.data() + r0 * nsb + sb, nsb, ad);
  }
  t.store(acc);
}

template <QKind q>
SEEK_VNNI void gemm_rows_kind(float* y, int64_t ldy, const Int8Acts& a, const Mat& w, int64_t n0, int64_t n1,
                              const float* bias) {
  constexpr int S = kSubBlocks<q>, R = kGemmR, G = kGemmG, BV = kBlockValues<q>;
  const int64_t K = w.cols, nsb = K / BV, rb = nsb * kBlockBytes<q>;
  thread_local GemmPanel p;
  p.K = K, p.nsb = nsb;
  p.u.resize(size_t(kGemmRows * K));
  p.d.resize(size_t(kGemmRows * nsb));
  if constexpr (!kSmallBlock<q>) {
    p.sc.resize(size_t(kGemmRows * nsb * S));
    p.mn.resize(size_t(kGemmRows * nsb * 8));
    p.dm.resize(size_t(kGemmRows * nsb));
  }
  for (int64_t b0 = n0; b0 < n1; b0 += kGemmRows) {
    const int64_t nr = min_i64(kGemmRows, n1 - b0), padded = (nr + R - 1) / R * R;
    for (int64_t r = 0; r < padded; r++) {  // rows past the end repeat the last one; their outputs are dropped
      const uint8_t* row = static_cast<const uint8_t*>(w.data) + min_i64(b0 + r, n1 - 1) * rb;
      if constexpr (kSmallBlock<q>) gemm_decode_small_row<q>(row, nsb, &p, r);
      else gemm_decode_row<q>(row, nsb, &p, r);
    }
    for (int64_t g0 = 0; g0 < a.groups; g0 += G) {
      // Slices of kGemmSlice super-blocks across all the panel's row tiles, so that the slice of the
      // activations and of the panel stay in L1 while every row tile reads them.
      alignas(64) float acc[kGemmRows * G * 16] = {};
      for (int64_t sb0 = 0; sb0 < nsb; sb0 += kGemmSlice / BV) {
        const int64_t sb1 = min_i64(nsb, sb0 + kGemmSlice / BV);
        for (int64_t r0 = 0; r0 < padded; r0 += R) {
          if constexpr (kSmallBlock<q>) gemm_tile_small<q>(p, r0, a, g0, sb0, sb1, acc + r0 * G * 16);
          else gemm_tile<q>(p, r0, a, g0, sb0, sb1, acc + r0 * G * 16);
        }
      }
      for (int64_t r = 0; r < nr; r++) {
        const int64_t n = b0 + r;
        const float b = bias ? bias[n] : 0.0f;
        for (int g = 0; g < G; g++) {
          const int64_t t0 = (g0 + g) * 16, nt = min_i64(16, a.T - t0);
          for (int64_t l = 0; l < nt; l++) y[(t0 + l) * ldy + n] = acc[(r * G + g) * 16 + l] + b;
        }
      }
    }
  }
}

}  // namespace

bool set_quant_int8_activations(bool on) {
  int8_enabled();  // settles the default from SEEK_QUANT_EXACT first
  return g_int8_acts.exchange(on ? 1 : 0) == 1;
}
bool quant_int8_activations() { return int8_enabled(); }

void next_activations() { g_acts_epoch.fetch_add(1, std::memory_order_relaxed); }

bool int8_gemm_supported(DType t) {
  return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q5_0 || t == DType::Q4_K || t == DType::Q5_K ||
         t == DType::Q6_K;
}

void int8_acts_alloc(DType t, int64_t T, int64_t K, Int8Acts* a) {
  a->T = T, a->K = K;
  a->block = t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q5_0 ? 32 : 256;
  a->groups = (T + 16 * kGemmG - 1) / (16 * kGemmG) * kGemmG;  // whole register tiles of groups
  const int64_t nb = K / a->block;
  a->q.resize(size_t(a->groups * 16 * K));
  a->d.resize(size_t(a->groups * nb * 16));
  a->bs.resize(size_t(a->groups * nb * (a->block == 32 ? 1 : 8) * 16));
}

SEEK_VNNI void int8_acts_groups(const float* x, int64_t g0, int64_t g1, Int8Acts* a) {
  const int64_t K = a->K, B = a->block, nb = K / B;
  const int64_t pairs = B == 32 ? 1 : 8;  // bs entries per block: -Σ codes, or the 16-code sums in pairs
  for (int64_t g = g0; g < g1; g++) {
    int8_t* q = a->q.data() + g * 16 * K;
    for (int l = 0; l < 16; l++) {
      const int64_t t = 16 * g + l;
      for (int64_t b = 0; b < nb; b++) {
        // Padding tokens keep zero codes, scale and sums, so their outputs are zero.
        alignas(64) int8_t codes[256];
        std::memset(codes, 0, size_t(B));
        int32_t sums[16], bs[8] = {};
        float d = 0.0f;
        if (t < a->T && B == 32) {
          d = q8_0_round(x + t * K + 32 * b, codes);
          for (int i = 0; i < 32; i++) bs[0] -= codes[i];
        } else if (t < a->T) {
          d = q8k_round(x + t * K + 256 * b, codes, sums);
          for (int jp = 0; jp < 8; jp++) bs[jp] = i16_pair(sums[2 * jp], sums[2 * jp + 1]);
        }
        a->d[size_t((g * nb + b) * 16 + l)] = d;
        for (int64_t jp = 0; jp < pairs; jp++) a->bs[size_t(((g * nb + b) * pairs + jp) * 16 + l)] = bs[jp];
        for (int64_t i = 0; i < B / 4; i++) std::memcpy(q + 16 * (B * b + 4 * i) + 4 * l, codes + 4 * i, 4);
      }
    }
  }
}

SEEK_VNNI void int8_gemm_rows(float* y, int64_t ldy, const Int8Acts& a, const Mat& w, int64_t n0, int64_t n1,
                              const float* bias) {
  switch (w.dtype) {
    case DType::Q8_0: return gemm_rows_kind<QKind::Q8_0>(y, ldy, a, w, n0, n1, bias);
    case DType::Q4_0: return gemm_rows_kind<QKind::Q4_0>(y, ldy, a, w, n0, n1, bias);
    case DType::Q5_0: return gemm_rows_kind<QKind::Q5_0>(y, ldy, a, w, n0, n1, bias);
    case DType::Q4_K: return gemm_rows_kind<QKind::Q4_K>(y, ldy, a, w, n0, n1, bias);
    case DType::Q5_K: return gemm_rows_kind<QKind::Q5_K>(y, ldy, a, w, n0, n1, bias);
    default: return gemm_rows_kind<QKind::Q6_K>(y, ldy, a, w, n0, n1, bias);
  }
}

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

SEEK_AVX512 void direct_rows_q5_0(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0,
                                  int64_t n1, const float* bias) {
  direct_rows_kind<QKind::Q5_0>(y, ldy, x, w, T, n0, n1, bias);
}
SEEK_AVX512 void direct_rows_q5_1(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0,
                                  int64_t n1, const float* bias) {
  direct_rows_kind<QKind::Q5_1>(y, ldy, x, w, T, n0, n1, bias);
}
SEEK_AVX512 void direct_rows_q5_k(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0,
                                  int64_t n1, const float* bias) {
  direct_rows_kind<QKind::Q5_K>(y, ldy, x, w, T, n0, n1, bias);
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

SEEK_AVX512 void rows_to_f32_q5_0(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  rows_to_f32_kind<QKind::Q5_0>(w, r0, nr, dst);
}
SEEK_AVX512 void rows_to_f32_q5_1(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  rows_to_f32_kind<QKind::Q5_1>(w, r0, nr, dst);
}
SEEK_AVX512 void rows_to_f32_q5_k(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  rows_to_f32_kind<QKind::Q5_K>(w, r0, nr, dst);
}

SEEK_AVX512 void quant_rows_weighted(float* y, const float* a, const Mat& w, int64_t r0, int64_t nr) {
  switch (w.dtype) {
    case DType::Q8_0: return rows_weighted_kind<QKind::Q8_0>(y, a, w, r0, nr);
    case DType::Q4_0: return rows_weighted_kind<QKind::Q4_0>(y, a, w, r0, nr);
    case DType::Q5_0: return rows_weighted_kind<QKind::Q5_0>(y, a, w, r0, nr);
    case DType::Q5_1: return rows_weighted_kind<QKind::Q5_1>(y, a, w, r0, nr);
    case DType::Q4_K: return rows_weighted_kind<QKind::Q4_K>(y, a, w, r0, nr);
    case DType::Q5_K: return rows_weighted_kind<QKind::Q5_K>(y, a, w, r0, nr);
    case DType::Q6_K: return rows_weighted_kind<QKind::Q6_K>(y, a, w, r0, nr);
    default: SEEK_ASSERT_MSG(false, "quant_rows_weighted: not a block format");
  }
}

}  // namespace seek::avx512
