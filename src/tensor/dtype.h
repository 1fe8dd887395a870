// dtype.h — the element types seek stores weights in, and exact conversions between them and f32.
//
// f32, bf16, f16 and f8 e4m3 (the `e4m3fn` variant used by DeepSeek-V3: no infinities, one NaN
// pattern per sign (S.1111.111), max finite ±448). Conversions to f32 are exact. Conversions from
// f32 round to nearest, ties to even; f8 e4m3fn saturates finite overflow to ±448 and keeps NaN.
// I32/I64 exist so that safetensors files of token ids (goldens, datasets) can be read; no kernel
// computes in them.
//
// Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K are GGUF's block-quantized formats (ggml's `block_q8_0` etc.): a row of K
// values is K / block_values blocks of block_bytes each, every block carrying its own scales. They are
// weight formats only (tensor/format.h, tensor/quant.h); GGUF is their container (model/gguf.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace seek {

enum class DType : uint8_t { F32, BF16, F16, F8_E4M3, I32, I64, Q8_0, Q4_0, Q4_K, Q6_K, Q5_0, Q5_K, Q5_1 };

// Block formats store a run of block_values values in block_bytes; the scalar types are blocks of one.
bool dtype_is_block(DType t);
int64_t dtype_block_values(DType t);  // 32 (Q8_0, Q4_0, Q5_0, Q5_1), 256 (Q4_K, Q5_K, Q6_K), 1 otherwise
int64_t dtype_block_bytes(DType t);   // 34, 18, 22, 24, 144, 176, 210; dtype_size otherwise
// Bytes of n values (n a multiple of the block; asserts otherwise).
size_t dtype_nbytes(DType t, int64_t n);

// Bytes per element (asserts for block formats: see dtype_nbytes).
size_t dtype_size(DType t);
// The safetensors spelling: "F32", "BF16", "F16", "F8_E4M3", "I32", "I64"; ggml's for the block formats
// ("Q8_0", "Q4_0", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K").
std::string_view dtype_name(DType t);
// Parses a safetensors dtype string (never a block format: safetensors has none); returns false for
// anything seek cannot compute with.
bool dtype_from_name(std::string_view name, DType* out);

float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);  // round to nearest even; NaN stays NaN (quiet)
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);   // round to nearest even; overflow to ±inf; NaN stays NaN
float f8e4m3_to_f32(uint8_t b);
uint8_t f32_to_f8e4m3(float f);  // round to nearest even; saturate to ±448; NaN -> 0x7f / 0xff

// Converts n elements of type t at src to f32 (dst may not alias src).
void to_f32(DType t, const void* src, float* dst, size_t n);

}  // namespace seek
