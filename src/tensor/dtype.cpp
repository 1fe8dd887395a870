// dtype.cpp — element-type names and exact scalar conversions between f32 and bf16 / f16 / f8 e4m3fn.
//
// Does: names and sizes of DType; bit-exact conversions (to f32 exact; from f32 round to nearest,
// ties to even, on the integer bits so that the result never depends on the FPU rounding mode);
// to_f32 for whole arrays (scalar loops; the vectorised versions live in kernels.cpp; block formats
// through quant.h's exact dequantization).
// Does not: convert I32/I64 to floats (no kernel computes in them), or pick SIMD paths.
//
// f8 e4m3fn (OCP FP8 "E4M3", the variant DeepSeek-V3 stores weights in): 1 sign, 4 exponent bits
// (bias 7), 3 mantissa bits; no infinities; S.1111.111 is NaN; max finite ±448 (S.1111.110);
// subnormals m·2^-9. Encoding is a *saturating* conversion: any finite value beyond ±448 and ±inf
// become ±448 (as torch's float8_e4m3fn cast does for finite values); NaN becomes 0x7f / 0xff.
#include "tensor/dtype.h"

#include <cmath>
#include <cstring>

#include "tensor/quant.h"
#include "util/error.h"

namespace seek {

namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Rounds the magnitude bits `a` (f32 bits without sign) right by `shift` bits, ties to even.
uint32_t round_shift(uint32_t a, int shift) {
  uint32_t half = (1u << (shift - 1)) - 1;
  uint32_t odd = (a >> shift) & 1u;
  return (a + half + odd) >> shift;
}

}  // namespace

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::F8_E4M3: return 1;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      SEEK_ASSERT_MSG(false, "dtype_size of a block format: use dtype_nbytes");
  }
  SEEK_ASSERT_MSG(false, "unknown DType");
}

bool dtype_is_block(DType t) { return dtype_block_values(t) > 1; }

int64_t dtype_block_values(DType t) {
  switch (t) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q5_1: return 32;
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return 256;
    default: return 1;
  }
}

int64_t dtype_block_bytes(DType t) {
  switch (t) {
    case DType::Q8_0: return 34;   // f16 scale + 32 int8
    case DType::Q4_0: return 18;   // f16 scale + 32 nibbles
    case DType::Q5_0: return 22;   // f16 scale + 32 high bits + 32 nibbles
    case DType::Q5_1: return 24;   // f16 scale, f16 min + 32 high bits + 32 nibbles
    case DType::Q4_K: return 144;  // f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
    case DType::Q5_K: return 176;  // Q4_K's fields, then 32 bytes of high bits before the nibbles
    case DType::Q6_K: return 210;  // 128 bytes low nibbles, 64 bytes high 2 bits, 16 int8 scales, f16 d
    default: return int64_t(dtype_size(t));
  }
}

size_t dtype_nbytes(DType t, int64_t n) {
  const int64_t b = dtype_block_values(t);
  SEEK_ASSERT_MSG(n % b == 0, "a block-format tensor's size must be a multiple of its block");
  return size_t(n / b) * size_t(dtype_block_bytes(t));
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::F8_E4M3: return "F8_E4M3";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::Q8_0: return "Q8_0";
    case DType::Q4_0: return "Q4_0";
    case DType::Q4_K: return "Q4_K";
    case DType::Q6_K: return "Q6_K";
    case DType::Q5_0: return "Q5_0";
    case DType::Q5_K: return "Q5_K";
    case DType::Q5_1: return "Q5_1";
  }
  SEEK_ASSERT_MSG(false, "unknown DType");
}

bool dtype_from_name(std::string_view name, DType* out) {
  static constexpr DType all[] = {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3, DType::I32, DType::I64};
  for (DType t : all) {
    if (dtype_name(t) == name) {
      *out = t;
      return true;
    }
  }
  return false;
}

// ---- bf16: the top half of an f32 ------------------------------------------------------------

float bf16_to_f32(uint16_t h) { return float_of(uint32_t(h) << 16); }

uint16_t f32_to_bf16(float f) {
  uint32_t u = bits_of(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);  // NaN: keep sign, quiet
  // Round the low 16 bits away, ties to even; a carry into the exponent is the correct result
  // (including overflow of the largest values to inf).
  uint32_t sign = u & 0x80000000u;
  return uint16_t((sign | round_shift(u & 0x7fffffffu, 16) << 16) >> 16);
}

// ---- f16: IEEE binary16 ---------------------------------------------------------------------

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu;
  if (e == 0) {  // zero or subnormal: m · 2^-24 (exact in f32)
    float v = float(m) * 0x1p-24f;
    return float_of(bits_of(v) | sign);
  }
  if (e == 31) return float_of(sign | 0x7f800000u | (m << 13));  // inf / NaN (payload kept)
  return float_of(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t f32_to_f16(float f) {
  uint32_t u = bits_of(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x1ffu));  // NaN, quiet
  if (a >= 0x38800000u) {  // |f| >= 2^-14: normal range (or overflow)
    // Rebias the exponent (127 -> 15) and round 13 mantissa bits away; a carry may overflow to inf.
    uint32_t r = round_shift(a - (112u << 23), 13);
    if (r >= 0x7c00u) r = 0x7c00u;  // overflow (incl. f32 inf) -> inf
    return uint16_t(sign | r);
  }
  // Subnormal range: value = m · 2^-24 with m = round(|f| · 2^24) ties to even; m = 1024 is the
  // smallest normal, whose encoding is also 1024. |f| · 2^24 < 2^10 is exact in f32.
  float s = float_of(a) * 0x1p24f;
  uint32_t m = uint32_t(s);
  float frac = s - float(m);
  if (frac > 0.5f || (frac == 0.5f && (m & 1u))) m++;
  return uint16_t(sign | m);
}

// ---- f8 e4m3fn ------------------------------------------------------------------------------

float f8e4m3_to_f32(uint8_t b) {
  uint32_t sign = uint32_t(b & 0x80u) << 24;
  uint32_t e = (b >> 3) & 0xfu;
  uint32_t m = b & 0x7u;
  if (e == 15 && m == 7) return float_of(sign | 0x7fc00000u);  // NaN
  if (e == 0) {  // subnormal: m · 2^-9
    float v = float(m) * 0x1p-9f;
    return float_of(bits_of(v) | sign);
  }
  return float_of(sign | ((e + 120) << 23) | (m << 20));
}

uint8_t f32_to_f8e4m3(float f) {
  uint32_t u = bits_of(f);
  uint8_t sign = uint8_t((u >> 24) & 0x80u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint8_t(sign | 0x7fu);  // NaN
  if (a >= 0x43e00000u) return uint8_t(sign | 0x7eu);  // >= 448 (and inf): saturate
  if (a >= 0x3c800000u) {  // |f| >= 2^-6: normal; rebias 127 -> 7, round 20 mantissa bits away
    uint32_t r = round_shift(a - (120u << 23), 20);
    // Values in (448, 480) cannot reach here; 448 < |f| < 464 rounds to 448 and 464 ties to even
    // (448) — all handled by the saturation above. r <= 0x7e here.
    return uint8_t(sign | r);
  }
  // Subnormal: m = round(|f| · 2^9), ties to even; m = 8 is 2^-6, the smallest normal (code 0x08).
  float s = float_of(a) * 0x1p9f;
  uint32_t m = uint32_t(s);
  float frac = s - float(m);
  if (frac > 0.5f || (frac == 0.5f && (m & 1u))) m++;
  return uint8_t(sign | m);
}

void to_f32(DType t, const void* src, float* dst, size_t n) {
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::BF16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::F8_E4M3: {
      auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = f8e4m3_to_f32(s[i]);
      return;
    }
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:  // n values = n / block_values blocks, exactly as ggml dequantizes them
      dequantize_row_ref(t, src, dst, int64_t(n));
      return;
    case DType::I32:
    case DType::I64:
      break;
  }
  SEEK_ASSERT_MSG(false, "to_f32: integer dtypes do not convert to f32");
}

}  // namespace seek
