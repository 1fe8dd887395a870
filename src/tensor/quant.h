// quant.h — GGUF's block-quantized weight formats Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K: quantization of f32 rows
// and exact dequantization, bit-exact with ggml's reference functions (quantize_row_*_ref and
// dequantize_row_* in llama.cpp's ggml/src/ggml-quants.c).
//
// Block layouts (ggml-common.h; all little-endian, f16 = IEEE binary16):
//   Q8_0  32 values, 34 bytes:  f16 d | int8 q[32]                     value i = q[i] · d
//   Q4_0  32 values, 18 bytes:  f16 d | u8 qs[16]                      value i = (nibble(i) - 8) · d, where
//         nibble(i) is qs[i] & 15 for i < 16 and qs[i - 16] >> 4 for i >= 16
//   Q5_0  32 values, 22 bytes:  f16 d | u8 qh[4] | u8 qs[16]           value i = (nibble(i) + 16 · bit i of the
//         little-endian u32 qh - 16) · d, nibble(i) as Q4_0's
//   Q5_1  32 values, 24 bytes:  f16 d | f16 m | u8 qh[4] | u8 qs[16]   value i = q · d + m, q Q5_0's code
//         (nibble and fifth bit, no offset)
//   Q4_K  256 values, 144 bytes: f16 d | f16 dmin | u8 scales[12] | u8 qs[128]. Eight sub-blocks of 32
//         values, each with a 6-bit scale sc and a 6-bit min m packed in `scales` (sub-block j < 4: sc =
//         scales[j] & 63, m = scales[j + 4] & 63; j >= 4: the low 4 bits of scales[j + 4] / its high 4 bits,
//         the top 2 bits from the top of scales[j - 4] / scales[j]). qs holds 4 groups of 32 bytes: group
//         g's low nibbles are sub-block 2g, its high nibbles sub-block 2g + 1.
//         value = (d · sc) · q - (dmin · m).
//   Q5_K  256 values, 176 bytes: f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]. Q4_K's scales,
//         mins and nibbles, and a fifth bit per value: value 64 g + 32 e + l (e = 0 low nibbles, 1 high) has
//         q = nibble + 16 · ((qh[l] >> (2 g + e)) & 1). value = (d · sc) · q - (dmin · m).
//   Q6_K  256 values, 210 bytes: u8 ql[128] | u8 qh[64] | int8 scales[16] | f16 d. Two halves of 128
//         values, each with 64 bytes of ql and 32 of qh; within a half, value l + 32 i (l < 32, i < 4)
//         has low 4 bits from ql[l + 32 (i & 1)] (low nibble for i < 2, high for i >= 2) and high 2 bits
//         from qh[l] >> 2i; q is those 6 bits - 32, and its scale is scales[16-value group].
//         value = (d · scale) · q.
//
// Bit-exact means: the same float operations in the same order as ggml's scalar C (no contraction to
// FMA: this file is compiled with fp-contract off, as ggml-base is built for baseline x86-64 without
// FMA), the same rounding tricks (ggml's nearest_int: add 1.5 · 2^23 and read the mantissa bits; roundf
// for Q8_0; truncation of x + 8.5 for Q4_0, x + 16.5 for Q5_0, x + 0.5 for Q5_1) and the same f32 -> f16 rounding (nearest even). Checked by
// tests/unit/test_quant.cpp against llama.cpp's own output on the fixtures in tests/data/quant/ (normal,
// outliers, zeros, tiny, one huge value, negative-only and constant rows): quantized bytes identical and
// dequantized floats identical bit for bit. The K-quants are the `_ref` quantizers (no importance
// matrix), the ones llama-quantize uses when it is given none.
//
// Does not: read GGUF files (model/), quantize with an importance matrix, or run fast kernels (the
// AVX-512 dot products and conversions are in kernels_quant_avx512.cpp).
#pragma once
#include <cstdint>

#include "tensor/dtype.h"

namespace seek {

// x[k] -> k / block_values(t) blocks at `blocks` (k a multiple of the block). t is one of the formats above.
void quantize_row_ref(DType t, const float* x, void* blocks, int64_t k);
// blocks -> y[k], exactly as ggml's dequantize_row_* (k a multiple of the block).
void dequantize_row_ref(DType t, const void* blocks, float* y, int64_t k);

// The 6-bit scale and min of sub-block j (0..7) from a Q4_K or Q5_K block's 12 packed `scales` bytes
// (layout above); shared by the reference and the AVX-512 kernels.
inline void q4k_scale_min(int j, const uint8_t* s, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = uint8_t((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4));
    *m = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}
// Value k of a row stored at `row` (blocks from the row's start), the same float as dequantize_row_ref
// gives for it, computed from its own block alone (the reference matmul reads weights one at a time).
float dequantize_value_ref(DType t, const void* row, int64_t k);

// x [rows, cols] f32 -> out, rows one after another (row_bytes = dtype_nbytes(t, cols)); rows in
// parallel. cols a multiple of the block.
void quantize_rows(DType t, const float* x, int64_t rows, int64_t cols, void* out);

}  // namespace seek
