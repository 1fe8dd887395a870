// test_dtype.cpp — dtype names and the exact f32 <-> bf16 / f16 / f8 e4m3fn conversions, against known
// bit patterns and against tables computed here independently (from sign, exponent and mantissa with
// std::ldexp, and by brute-force nearest-value search).
//
// Does not: test the vectorised conversions inside the kernels (test_kernels.cpp compares those with
// the references, which use the functions tested here).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "tensor/dtype.h"

using namespace seek;

namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

// f8 e4m3fn decoded from its fields, independently of dtype.cpp. NaN for S.1111.111.
double f8_formula(int b) {
  int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
  if (e == 15 && m == 7) return std::nan("");
  double mag = e == 0 ? std::ldexp(m, -9) : std::ldexp(1.0 + m / 8.0, e - 7);
  return s ? -mag : mag;
}

// Brute-force f32 -> e4m3fn: nearest finite code, ties to the even mantissa, saturating at ±448.
uint8_t f8_nearest(float f) {
  if (std::isnan(f)) return std::signbit(f) ? 0xFF : 0x7F;
  double a = std::fabs(double(f));
  int best = 0;
  double best_d = std::numeric_limits<double>::infinity();
  for (int b = 0; b <= 0x7E; b++) {
    double d = std::fabs(f8_formula(b) - a);
    if (d < best_d || (d == best_d && (b & 1) == 0)) {
      best = b;
      best_d = d;
    }
  }
  if (a > 448) best = 0x7E;
  return uint8_t((std::signbit(f) ? 0x80 : 0) | best);
}

double f16_formula(int h) {
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double mag;
  if (e == 31) mag = m ? std::nan("") : std::numeric_limits<double>::infinity();
  else if (e == 0) mag = std::ldexp(m, -24);
  else mag = std::ldexp(1.0 + m / 1024.0, e - 15);
  return s ? -mag : mag;
}

bool same_float(float a, float b) { return (std::isnan(a) && std::isnan(b)) || bits(a) == bits(b); }

}  // namespace

TEST(DType, NamesAndSizes) {
  const DType all[] = {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3, DType::I32, DType::I64};
  const size_t sizes[] = {4, 2, 2, 1, 4, 8};
  for (int i = 0; i < 6; i++) {
    DType back;
    ASSERT_TRUE(dtype_from_name(dtype_name(all[i]), &back));
    EXPECT_EQ(back, all[i]);
    EXPECT_EQ(dtype_size(all[i]), sizes[i]);
  }
  EXPECT_EQ(dtype_name(DType::F8_E4M3), "F8_E4M3");
  DType t;
  EXPECT_FALSE(dtype_from_name("F8_E5M2", &t));
  EXPECT_FALSE(dtype_from_name("bf16", &t));
  EXPECT_FALSE(dtype_from_name("", &t));
}

TEST(DType, Bf16KnownPatterns) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_bf16(kInf), 0x7F80);
  EXPECT_EQ(f32_to_bf16(-kInf), 0xFF80);
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xC000), -2.0f);
  EXPECT_EQ(bf16_to_f32(0x7F80), kInf);
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7FC0)));
  // Round to nearest even: 1 + 2^-8 is halfway between 0x3F80 and 0x3F81 -> even 0x3F80;
  // 1 + 3·2^-8 is halfway between 0x3F81 and 0x3F82 -> 0x3F82; a hair above halfway rounds up.
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3F82);
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f - 0x1p-20f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(-(1.0f + 3 * 0x1p-8f)), 0xBF82);
  // The largest float rounds up to inf; the largest bf16 is exact.
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(f32_to_bf16(bf16_to_f32(0x7F7F)), 0x7F7F);
  // NaN stays NaN (quiet), whatever its payload and sign.
  for (uint32_t u : {0x7FC00000u, 0x7F800001u, 0xFF800001u, 0x7F80FFFFu, 0x7F810000u}) {
    uint16_t h = f32_to_bf16(from_bits(u));
    EXPECT_EQ(h & 0x7F80, 0x7F80) << std::hex << u;
    EXPECT_NE(h & 0x007F, 0) << std::hex << u;
    EXPECT_TRUE(std::isnan(bf16_to_f32(h)));
    EXPECT_EQ(h >> 15, u >> 31);
  }
}

TEST(DType, Bf16AllCodesRoundTrip) {
  for (int h = 0; h < 65536; h++) {
    float f = bf16_to_f32(uint16_t(h));
    EXPECT_EQ(bits(f), uint32_t(h) << 16);
    if (!std::isnan(f)) {
      EXPECT_EQ(f32_to_bf16(f), h) << std::hex << h;
    }
  }
}

TEST(DType, Bf16RoundingMatchesNearest) {
  // Random floats: the result must be one of the two neighbours, the nearer one, ties to even.
  std::mt19937 rng(1);
  for (int i = 0; i < 200000; i++) {
    float f = from_bits(rng());
    if (std::isnan(f) || std::isinf(f)) continue;
    uint32_t u = bits(f);
    uint16_t lo = uint16_t(u >> 16), hi = uint16_t(lo + 1);  // neighbours toward zero / away
    double a = std::fabs(double(f));
    double dlo = std::fabs(double(std::fabs(bf16_to_f32(lo))) - a);
    // The code past the largest finite one stands for 2^128 when deciding (it is inf).
    double vhi = (hi & 0x7FFF) == 0x7F80 ? std::ldexp(1.0, 128) : double(std::fabs(bf16_to_f32(hi)));
    double dhi = std::fabs(vhi - a);
    uint16_t want = dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1) ? hi : lo);
    ASSERT_EQ(f32_to_bf16(f), want) << std::hex << u;
  }
}

TEST(DType, F16KnownPatterns) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(f16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7BFF);      // below halfway to 65536
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);      // halfway, ties to even: 65536 = overflow -> inf
  EXPECT_EQ(f32_to_f16(1e6f), 0x7C00);
  EXPECT_EQ(f32_to_f16(-1e6f), 0xFC00);
  EXPECT_EQ(f32_to_f16(kInf), 0x7C00);
  EXPECT_EQ(f16_to_f32(0x7C00), kInf);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
  EXPECT_EQ(f32_to_f16(kNaN) & 0x7C00, 0x7C00);
  EXPECT_NE(f32_to_f16(kNaN) & 0x03FF, 0);
  // Subnormals: 0x0001 = 2^-24, 0x03FF = 1023·2^-24, 0x0400 = 2^-14 (smallest normal).
  EXPECT_EQ(f16_to_f32(0x0001), 0x1p-24f);
  EXPECT_EQ(f16_to_f32(0x03FF), 1023 * 0x1p-24f);
  EXPECT_EQ(f16_to_f32(0x0400), 0x1p-14f);
  EXPECT_EQ(f32_to_f16(0x1p-24f), 0x0001);
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);        // halfway to 2^-24: even is 0
  EXPECT_EQ(f32_to_f16(3 * 0x1p-26f), 0x0001);    // 0.75 of the way: up
  EXPECT_EQ(f32_to_f16(1.5f * 0x1p-24f), 0x0002);  // halfway between 1 and 2: even is 2
  EXPECT_EQ(f32_to_f16(2.5f * 0x1p-24f), 0x0002);  // halfway between 2 and 3: even is 2
  EXPECT_EQ(f32_to_f16(1023.5f * 0x1p-24f), 0x0400);  // rounds up into the normals
  EXPECT_EQ(f32_to_f16(-0x1p-24f), 0x8001);
  EXPECT_EQ(f32_to_f16(1e-10f), 0x0000);
  // Normal ties: 1 + 2^-11 is halfway between 0x3C00 and 0x3C01.
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3C00);
  EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3C02);
}

TEST(DType, F16AllCodes) {
  for (int h = 0; h < 65536; h++) {
    float f = f16_to_f32(uint16_t(h));
    double want = f16_formula(h);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(f)) << std::hex << h;
      EXPECT_EQ(f32_to_f16(f) & 0x7C00, 0x7C00);
      continue;
    }
    EXPECT_EQ(double(f), want) << std::hex << h;
    EXPECT_EQ(std::signbit(f), bool(h & 0x8000));
    EXPECT_EQ(f32_to_f16(f), h) << std::hex << h;
  }
}

TEST(DType, F8AllCodesDecode) {
  for (int b = 0; b < 256; b++) {
    float f = f8e4m3_to_f32(uint8_t(b));
    double want = f8_formula(b);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(f)) << std::hex << b;
    } else {
      EXPECT_EQ(double(f), want) << std::hex << b;
      EXPECT_EQ(std::signbit(f), bool(b & 0x80)) << std::hex << b;
    }
  }
  EXPECT_TRUE(std::isnan(f8e4m3_to_f32(0x7F)));
  EXPECT_TRUE(std::isnan(f8e4m3_to_f32(0xFF)));
  EXPECT_EQ(f8e4m3_to_f32(0x7E), 448.0f);
  EXPECT_EQ(f8e4m3_to_f32(0xFE), -448.0f);
  EXPECT_EQ(f8e4m3_to_f32(0x01), 0x1p-9f);  // smallest subnormal
  EXPECT_EQ(f8e4m3_to_f32(0x07), 7 * 0x1p-9f);
  EXPECT_EQ(f8e4m3_to_f32(0x08), 0x1p-6f);  // smallest normal
  EXPECT_EQ(f8e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(f8e4m3_to_f32(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(f8e4m3_to_f32(0x80)));
  // Exactly two NaN codes.
  int nans = 0;
  for (int b = 0; b < 256; b++) nans += std::isnan(f8e4m3_to_f32(uint8_t(b)));
  EXPECT_EQ(nans, 2);
}

TEST(DType, F8EncodeRoundTripsEveryCode) {
  for (int b = 0; b < 256; b++) {
    float f = f8e4m3_to_f32(uint8_t(b));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f8e4m3(f), b) << std::hex << b;  // includes 0x00 (+0) and 0x80 (-0)
  }
}

TEST(DType, F8EncodeRounding) {
  // Halfway points round to the even mantissa.
  EXPECT_EQ(f32_to_f8e4m3(1.0625f), 0x38);   // between 1 (0x38) and 1.125 (0x39)
  EXPECT_EQ(f32_to_f8e4m3(1.1875f), 0x3A);   // between 1.125 (0x39) and 1.25 (0x3A)
  EXPECT_EQ(f32_to_f8e4m3(-1.0625f), 0xB8);
  EXPECT_EQ(f32_to_f8e4m3(1.0625f + 1e-6f), 0x39);
  EXPECT_EQ(f32_to_f8e4m3(1.875f + 0.0625f), 0x40);  // between 1.875 (0x3F) and 2 (0x40): even 0x40
  EXPECT_EQ(f32_to_f8e4m3(432.0f), 0x7E);   // between 416 (0x7D) and 448 (0x7E): even 0x7E
  EXPECT_EQ(f32_to_f8e4m3(424.0f), 0x7D);
  // Subnormals: multiples of 2^-9.
  EXPECT_EQ(f32_to_f8e4m3(0x1p-10f), 0x00);        // half of the smallest: even is 0
  EXPECT_EQ(f32_to_f8e4m3(0x1p-10f + 0x1p-20f), 0x01);
  EXPECT_EQ(f32_to_f8e4m3(3 * 0x1p-10f), 0x02);    // 1.5 · 2^-9 -> 2
  EXPECT_EQ(f32_to_f8e4m3(5 * 0x1p-10f), 0x02);    // 2.5 · 2^-9 -> 2
  EXPECT_EQ(f32_to_f8e4m3(15 * 0x1p-10f), 0x08);   // 7.5 · 2^-9 -> 8 = 2^-6, the smallest normal
  EXPECT_EQ(f32_to_f8e4m3(-0x1p-9f), 0x81);
  EXPECT_EQ(f32_to_f8e4m3(1e-30f), 0x00);
  EXPECT_EQ(f32_to_f8e4m3(-1e-30f), 0x80);
  // Saturation: every finite value above 448 and ±inf become ±448 (a saturating cast).
  for (float f : {448.0f, 448.5f, 449.0f, 463.9f, 464.0f, 464.1f, 479.0f, 480.0f, 1000.0f, 1e30f,
                  std::numeric_limits<float>::max(), kInf}) {
    EXPECT_EQ(f32_to_f8e4m3(f), 0x7E) << f;
    EXPECT_EQ(f32_to_f8e4m3(-f), 0xFE) << -f;
  }
  EXPECT_EQ(f32_to_f8e4m3(kNaN), 0x7F);
  EXPECT_EQ(f32_to_f8e4m3(-kNaN), 0xFF);
}

TEST(DType, F8EncodeMatchesBruteForce) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> mag(-12.0f, 9.5f);  // log2 range around e4m3's
  for (int i = 0; i < 20000; i++) {
    float f = std::exp2(mag(rng)) * ((rng() & 1) ? -1.0f : 1.0f);
    ASSERT_EQ(f32_to_f8e4m3(f), f8_nearest(f)) << f;
  }
  // Every halfway point between adjacent codes, and a hair either side.
  for (int b = 0; b < 0x7E; b++) {
    double mid = (f8_formula(b) + f8_formula(b + 1)) / 2;
    for (float f : {float(mid), std::nextafter(float(mid), 0.0f), std::nextafter(float(mid), 1e9f)})
      ASSERT_EQ(f32_to_f8e4m3(f), f8_nearest(f)) << f;
  }
}

TEST(DType, ToF32Arrays) {
  const uint16_t bf[] = {0x3F80, 0xC000, 0x0000};
  const uint16_t hf[] = {0x3C00, 0x0001, 0xFBFF};
  const uint8_t f8[] = {0x38, 0x01, 0xFE};
  const float f[] = {1.5f, -0.25f, 3.0f};
  float out[3];
  to_f32(DType::BF16, bf, out, 3);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], 0.0f);
  to_f32(DType::F16, hf, out, 3);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 0x1p-24f);
  EXPECT_EQ(out[2], -65504.0f);
  to_f32(DType::F8_E4M3, f8, out, 3);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 0x1p-9f);
  EXPECT_EQ(out[2], -448.0f);
  to_f32(DType::F32, f, out, 3);
  for (int i = 0; i < 3; i++) EXPECT_TRUE(same_float(out[i], f[i]));
}
