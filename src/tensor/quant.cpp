// quant.cpp — reference quantization and dequantization of Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K. See quant.h.
//
// Written from the algorithms of ggml's reference quantizers; each float expression below keeps the
// operand order and the f32 intermediates of the original, because the results must be bit-exact
// (quant.h). Contraction to FMA would change roundings: it is turned off for this file (and the project
// builds portable code for baseline x86-64, which has no FMA). Checked: built with -O3 -march=native and
// without the pragma, GCC fuses multiply-adds here and Q4_K's outlier row of the goldens no longer
// matches ggml's bytes; with it there are none and every golden matches.
#pragma GCC optimize("fp-contract=off")
#include "tensor/quant.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>

#include "tensor/backend.h"
#include "util/error.h"

namespace seek {

namespace {

constexpr int kQ8Bytes = 34, kQ4_0Bytes = 18, kQ5_0Bytes = 22, kQ5_1Bytes = 24, kQ4KBytes = 144, kQ5KBytes = 176, kQ6KBytes = 210;
constexpr float kGroupMaxEps = 1e-15f;  // below this a group's largest magnitude counts as zero

uint16_t load_u16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
void store_u16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}
float load_f16(const uint8_t* p) { return f16_to_f32(load_u16(p)); }
void store_f16(uint8_t* p, float f) { store_u16(p, f32_to_f16(f)); }

// Round to nearest (ties to even) for |v| < 2^22: adding 1.5 · 2^23 leaves the integer in the low
// mantissa bits. Larger magnitudes give the same (meaningless) bits as ggml's, and are clamped by callers.
int nearest_int(float v) {
  const float shifted = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

// ---- Q8_0 ------------------------------------------------------------------------------------------

void quantize_q8_0(const float* x, uint8_t* out, int64_t nb) {
  for (int64_t b = 0; b < nb; b++, x += 32, out += kQ8Bytes) {
    float amax = 0.0f;
    for (int i = 0; i < 32; i++) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(out, d);
    for (int i = 0; i < 32; i++) out[2 + i] = uint8_t(int8_t(std::round(x[i] * id)));
  }
}

void dequantize_q8_0(const uint8_t* in, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; b++, in += kQ8Bytes, y += 32) {
    const float d = load_f16(in);
    for (int i = 0; i < 32; i++) y[i] = float(int8_t(in[2 + i])) * d;
  }
}

// ---- Q4_0 ------------------------------------------------------------------------------------------

// The value of largest magnitude among x[0, 32) (the first of equals), which Q4_0 and Q5_0 map to -8 / -16.
float largest_magnitude_value(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < 32; i++) {
    if (amax < std::fabs(x[i])) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  return max;
}

void quantize_q4_0(const float* x, uint8_t* out, int64_t nb) {
  for (int64_t b = 0; b < nb; b++, x += 32, out += kQ4_0Bytes) {
    const float d = largest_magnitude_value(x) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(out, d);
    for (int i = 0; i < 16; i++) {
      const float x0 = x[i] * id, x1 = x[16 + i] * id;
      // Truncation of x · id + 8.5 (in [0.5, 16.5]) toward zero: round to nearest, ties up, then + 8.
      const int q0 = std::min(15, int(int8_t(int(x0 + 8.5f))));
      const int q1 = std::min(15, int(int8_t(int(x1 + 8.5f))));
      out[2 + i] = uint8_t(uint8_t(q0) | uint8_t(q1) << 4);
    }
  }
}

void dequantize_q4_0(const uint8_t* in, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; b++, in += kQ4_0Bytes, y += 32) {
    const float d = load_f16(in);
    for (int i = 0; i < 16; i++) {
      y[i] = float((in[2 + i] & 15) - 8) * d;
      y[16 + i] = float((in[2 + i] >> 4) - 8) * d;
    }
  }
}

// ---- Q5_0 ------------------------------------------------------------------------------------------

// The 5-bit code (0..31) of value i < 32 of a Q5_0 block: its nibble and bit i of the 32-bit qh. (A Q5_1
// block from its byte 2 on has the same layout.)
int q5_0_code(const uint8_t* block, int i) {
  const uint32_t qh = uint32_t(block[2]) | uint32_t(block[3]) << 8 | uint32_t(block[4]) << 16 | uint32_t(block[5]) << 24;
  const uint8_t q = block[6 + i % 16];
  return (i < 16 ? q & 15 : q >> 4) | int((qh >> i) & 1) << 4;
}

// 32 five-bit codes into a Q5_0 / Q5_1 block's qh (4 bytes, bit i the fifth bit of code i) and the nibbles
// after it (16 bytes: code i's low 4 bits in byte i % 16, low nibble for i < 16).
void pack_q5(const uint8_t* codes, uint8_t* qh_then_qs) {
  uint32_t qh = 0;
  for (int i = 0; i < 16; i++) {
    qh_then_qs[4 + i] = uint8_t((codes[i] & 15) | (codes[16 + i] & 15) << 4);
    qh |= uint32_t(codes[i] >> 4 & 1) << i | uint32_t(codes[16 + i] >> 4 & 1) << (16 + i);
  }
  for (int i = 0; i < 4; i++) qh_then_qs[i] = uint8_t(qh >> (8 * i));
}

void quantize_q5_0(const float* x, uint8_t* out, int64_t nb) {
  for (int64_t b = 0; b < nb; b++, x += 32, out += kQ5_0Bytes) {
    const float d = largest_magnitude_value(x) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(out, d);
    // As Q4_0: truncation of x · id + 16.5 (in [0.5, 32.5]) toward zero, at most 31.
    uint8_t codes[32];
    for (int i = 0; i < 32; i++) codes[i] = uint8_t(std::min(31, int(int8_t(int(x[i] * id + 16.5f)))));
    pack_q5(codes, out + 2);
  }
}

void dequantize_q5_0(const uint8_t* in, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; b++, in += kQ5_0Bytes, y += 32) {
    const float d = load_f16(in);
    for (int i = 0; i < 32; i++) y[i] = float(q5_0_code(in, i) - 16) * d;
  }
}

// ---- Q5_1 ------------------------------------------------------------------------------------------

void quantize_q5_1(const float* x, uint8_t* out, int64_t nb) {
  for (int64_t b = 0; b < nb; b++, x += 32, out += kQ5_1Bytes) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int i = 0; i < 32; i++) {
      if (x[i] < min) min = x[i];
      if (x[i] > max) max = x[i];
    }
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(out, d);
    store_f16(out + 2, min);
    // Truncation of (x - min) · id + 0.5 (in [0.5, 31.5]) toward zero, as a byte.
    uint8_t codes[32];
    for (int i = 0; i < 32; i++) codes[i] = uint8_t((x[i] - min) * id + 0.5f);
    pack_q5(codes, out + 4);
  }
}

void dequantize_q5_1(const uint8_t* in, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; b++, in += kQ5_1Bytes, y += 32) {
    const float d = load_f16(in), m = load_f16(in + 2);
    for (int i = 0; i < 32; i++) y[i] = float(q5_0_code(in + 2, i)) * d + m;
  }
}

// ---- Q4_K ------------------------------------------------------------------------------------------

// Best scale and min for n values quantized to [0, nmax] with weights: the plain max-min grid first,
// then nstep + 1 candidate grids (iscale (rmin + rdelta · is + nmax) / (max - min)), each refined by a
// weighted least-squares fit of scale and min, keeping the lowest weighted squared error. Writes the
// levels to L and -min to *neg_min; returns the scale.
float fit_scale_min(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* neg_min,
                    uint8_t* Laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; i++) L[i] = 0;
    *neg_min = -min;
    return 0.0f;
  }
  float iscale = float(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; i++) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(std::max(0, std::min(nmax, l)));
    float diff = scale * float(L[i]) + min - x[i];
    diff = diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *neg_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; is++) {
    iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; i++) {
      const int l = std::max(0, std::min(nmax, nearest_int(iscale * (x[i] - min))));
      Laux[i] = uint8_t(l);
      const float w = weights[i], fl = float(l);
      sum_l += w * fl;
      sum_l2 += w * fl * fl;
      sum_xl += w * fl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; i++) {
        float diff = this_scale * float(Laux[i]) + this_min - x[i];
        diff = diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; i++) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *neg_min = -min;
  return scale;
}

// Q4_K and Q5_K (`bits` 4 or 5): the same sub-block fit and 6-bit scale/min packing; the codes go into
// nibbles (qs), and for Q5_K their fifth bit into qh (bit 2g of qh[l] for value 64 g + l, bit 2g + 1 for
// value 64 g + 32 + l).
void quantize_k_with_mins(int bits, const float* x, uint8_t* out, int64_t nb) {
  const int nmax = (1 << bits) - 1, block_bytes = bits == 4 ? kQ4KBytes : kQ5KBytes;
  const float rmin = bits == 4 ? -1.0f : -0.5f;
  const int nstep = bits == 4 ? 20 : 15;
  uint8_t L[256], Laux[32];
  float weights[32], mins[8], scales[8];
  for (int64_t b = 0; b < nb; b++, x += 256, out += block_bytes) {
    uint8_t* packed = out + 4;
    uint8_t* qh = out + 16;
    uint8_t* qs = bits == 4 ? out + 16 : out + 48;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
      const float* xj = x + 32 * j;
      float sum_x2 = 0;
      for (int l = 0; l < 32; l++) sum_x2 += xj[l] * xj[l];
      const float av_x = std::sqrt(sum_x2 / 32.0f);
      for (int l = 0; l < 32; l++) weights[l] = av_x + std::fabs(xj[l]);
      scales[j] = fit_scale_min(32, nmax, xj, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < 8; j++) {
      const uint8_t ls = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
      const uint8_t lm = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
      if (j < 4) {
        packed[j] = ls;
        packed[j + 4] = lm;
      } else {
        packed[j + 4] = uint8_t((ls & 15) | ((lm & 15) << 4));
        packed[j - 4] |= uint8_t((ls >> 4) << 6);
        packed[j] |= uint8_t((lm >> 4) << 6);
      }
    }
    store_f16(out, max_scale / 63.0f);
    store_f16(out + 2, max_min / 63.0f);
    // Levels again against the stored (rounded) scales; sub-blocks whose scale rounds to 0 keep the fit's.
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      q4k_scale_min(j, packed, &sc, &m);
      const float d = load_f16(out) * float(sc);
      if (d == 0.0f) continue;
      const float dm = load_f16(out + 2) * float(m);
      for (int i = 0; i < 32; i++)
        L[32 * j + i] = uint8_t(std::max(0, std::min(nmax, nearest_int((x[32 * j + i] + dm) / d))));
    }
    if (bits == 5) std::memset(qh, 0, 32);
    for (int g = 0; g < 4; g++)
      for (int l = 0; l < 32; l++) {
        const uint8_t lo = L[64 * g + l], hi = L[64 * g + 32 + l];
        qs[32 * g + l] = uint8_t((lo & 15) | (hi & 15) << 4);
        if (bits == 5) qh[l] |= uint8_t((lo >> 4) << (2 * g) | (hi >> 4) << (2 * g + 1));
      }
  }
}

void dequantize_q4_k(const uint8_t* in, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; b++, in += kQ4KBytes) {
    const float d = load_f16(in), dmin = load_f16(in + 2);
    const uint8_t* packed = in + 4;
    const uint8_t* qs = in + 16;
    for (int g = 0; g < 4; g++, qs += 32) {
      uint8_t sc, m;
      q4k_scale_min(2 * g, packed, &sc, &m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      q4k_scale_min(2 * g + 1, packed, &sc, &m);
      const float d2 = d * float(sc), m2 = dmin * float(m);
      for (int l = 0; l < 32; l++) *y++ = d1 * float(qs[l] & 15) - m1;
      for (int l = 0; l < 32; l++) *y++ = d2 * float(qs[l] >> 4) - m2;
    }
  }
}

// The 5-bit code of value i < 256 of a Q5_K block: value 64 g + 32 e + l (e = 0, 1) has its nibble in
// qs[32 g + l] (low for e = 0) and its fifth bit at bit 2 g + e of qh[l].
int q5k_code(const uint8_t* block, int i) {
  const int g = i / 64, e = (i / 32) % 2, l = i % 32;
  const uint8_t q = block[48 + 32 * g + l];
  return (e == 0 ? q & 15 : q >> 4) | ((block[16 + l] >> (2 * g + e)) & 1) << 4;
}

void dequantize_q5_k(const uint8_t* in, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; b++, in += kQ5KBytes) {
    const float d = load_f16(in), dmin = load_f16(in + 2);
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      q4k_scale_min(j, in + 4, &sc, &m);
      const float dj = d * float(sc), mj = dmin * float(m);
      for (int l = 0; l < 32; l++) *y++ = dj * float(q5k_code(in, 32 * j + l)) - mj;
    }
  }
}

// ---- Q6_K ------------------------------------------------------------------------------------------

// Symmetric levels in [-nmax, nmax - 1] (stored + nmax in L) for n values, weighted by x² : the scale
// -nmax / max first, then 18 nearby grids (-(nmax + 0.1 · is) / max), each with its least-squares
// scale, keeping the one with the largest sumlx² / suml2. Returns the scale.
float fit_scale_symmetric(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; i++) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; i++) L[i] = 0;
    return 0.0f;
  }
  float iscale = float(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    const int l = std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i])));
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i], fl = float(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; i++) {
      const int l = std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i])));
      const float w = x[i] * x[i], fl = float(l);
      sumlx += w * x[i] * fl;
      suml2 += w * fl * fl;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; i++)
        L[i] = int8_t(nmax + std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i]))));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

void quantize_q6_k(const float* x, uint8_t* out, int64_t nb) {
  int8_t L[256];
  float scales[16];
  for (int64_t b = 0; b < nb; b++, x += 256, out += kQ6KBytes) {
    uint8_t* ql = out;
    uint8_t* qh = out + 128;
    int8_t* sc = reinterpret_cast<int8_t*>(out + 192);
    float max_scale = 0, max_abs_scale = 0;
    for (int g = 0; g < 16; g++) {
      scales[g] = fit_scale_symmetric(16, 32, x + 16 * g, L + 16 * g);
      if (std::fabs(scales[g]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[g]);
        max_scale = scales[g];
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(out, 0, kQ6KBytes);
      continue;
    }
    const float iscale = -128.0f / max_scale;
    store_f16(out + 208, 1 / iscale);
    for (int g = 0; g < 16; g++) sc[g] = int8_t(std::min(127, nearest_int(iscale * scales[g])));
    // Levels again against the stored (rounded) scales; groups whose scale rounds to 0 keep the fit's.
    for (int g = 0; g < 16; g++) {
      const float d = load_f16(out + 208) * float(sc[g]);
      if (d == 0.0f) continue;
      for (int i = 0; i < 16; i++)
        L[16 * g + i] = int8_t(std::max(-32, std::min(31, nearest_int(x[16 * g + i] / d))) + 32);
    }
    for (int h = 0; h < 2; h++, ql += 64, qh += 32) {
      const int8_t* Lh = L + 128 * h;
      for (int l = 0; l < 32; l++) {
        ql[l] = uint8_t((Lh[l] & 15) | (Lh[l + 64] & 15) << 4);
        ql[l + 32] = uint8_t((Lh[l + 32] & 15) | (Lh[l + 96] & 15) << 4);
        qh[l] = uint8_t((Lh[l] >> 4) | (Lh[l + 32] >> 4) << 2 | (Lh[l + 64] >> 4) << 4 | (Lh[l + 96] >> 4) << 6);
      }
    }
  }
}

// The 6-bit level (−32..31) of value i < 256 of a Q6_K block.
int q6k_level(const uint8_t* block, int i) {
  const int h = i / 128, j = i % 128, l = j % 32, part = j / 32;
  const uint8_t lo = block[64 * h + l + 32 * (part & 1)];
  const int low = part < 2 ? lo & 15 : lo >> 4;
  const int high = (block[128 + 32 * h + l] >> (2 * part)) & 3;
  return (low | high << 4) - 32;
}

void dequantize_q6_k(const uint8_t* in, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; b++, in += kQ6KBytes, y += 256) {
    const float d = load_f16(in + 208);
    const int8_t* sc = reinterpret_cast<const int8_t*>(in + 192);
    for (int i = 0; i < 256; i++) y[i] = d * float(sc[i / 16]) * float(q6k_level(in, i));
  }
}

void check_block_type(const char* op, DType t, int64_t k) {
  SEEK_ASSERT_MSG(t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q5_0 || t == DType::Q5_1 || t == DType::Q4_K ||
                      t == DType::Q5_K || t == DType::Q6_K,
                  strfmt("[%s] %s is not a block-quantized format", op, std::string(dtype_name(t)).c_str()).c_str());
  SEEK_ASSERT_MSG(k % dtype_block_values(t) == 0,
                  strfmt("[%s] %lld values of %s: not a multiple of its block of %lld", op, (long long)k,
                         std::string(dtype_name(t)).c_str(), (long long)dtype_block_values(t))
                      .c_str());
}

}  // namespace

void quantize_row_ref(DType t, const float* x, void* blocks, int64_t k) {
  check_block_type("quantize_row_ref", t, k);
  auto* out = static_cast<uint8_t*>(blocks);
  const int64_t nb = k / dtype_block_values(t);
  switch (t) {
    case DType::Q8_0: return quantize_q8_0(x, out, nb);
    case DType::Q4_0: return quantize_q4_0(x, out, nb);
    case DType::Q5_0: return quantize_q5_0(x, out, nb);
    case DType::Q5_1: return quantize_q5_1(x, out, nb);
    case DType::Q4_K: return quantize_k_with_mins(4, x, out, nb);
    case DType::Q5_K: return quantize_k_with_mins(5, x, out, nb);
    default: return quantize_q6_k(x, out, nb);
  }
}

void dequantize_row_ref(DType t, const void* blocks, float* y, int64_t k) {
  check_block_type("dequantize_row_ref", t, k);
  auto* in = static_cast<const uint8_t*>(blocks);
  const int64_t nb = k / dtype_block_values(t);
  switch (t) {
    case DType::Q8_0: return dequantize_q8_0(in, y, nb);
    case DType::Q4_0: return dequantize_q4_0(in, y, nb);
    case DType::Q5_0: return dequantize_q5_0(in, y, nb);
    case DType::Q5_1: return dequantize_q5_1(in, y, nb);
    case DType::Q4_K: return dequantize_q4_k(in, y, nb);
    case DType::Q5_K: return dequantize_q5_k(in, y, nb);
    default: return dequantize_q6_k(in, y, nb);
  }
}

float dequantize_value_ref(DType t, const void* row, int64_t k) {
  const int64_t bv = dtype_block_values(t);
  const uint8_t* b = static_cast<const uint8_t*>(row) + (k / bv) * dtype_block_bytes(t);
  const int i = int(k % bv);
  switch (t) {
    case DType::Q8_0: return float(int8_t(b[2 + i])) * load_f16(b);
    case DType::Q4_0: return float((i < 16 ? b[2 + i] & 15 : b[2 + i - 16] >> 4) - 8) * load_f16(b);
    case DType::Q4_K: {
      const int g = i / 64, j = i / 32;  // 32-byte group of qs, sub-block
      uint8_t sc, m;
      q4k_scale_min(j, b + 4, &sc, &m);
      const uint8_t q = b[16 + 32 * g + i % 32];
      return load_f16(b) * float(sc) * float(j % 2 == 0 ? q & 15 : q >> 4) - load_f16(b + 2) * float(m);
    }
    case DType::Q5_0: return float(q5_0_code(b, i) - 16) * load_f16(b);
    case DType::Q5_1: return float(q5_0_code(b + 2, i)) * load_f16(b) + load_f16(b + 2);
    case DType::Q5_K: {
      uint8_t sc, m;
      q4k_scale_min(i / 32, b + 4, &sc, &m);
      return load_f16(b) * float(sc) * float(q5k_code(b, i)) - load_f16(b + 2) * float(m);
    }
    case DType::Q6_K:
      return load_f16(b + 208) * float(int8_t(b[192 + i / 16])) * float(q6k_level(b, i));
    default: break;
  }
  check_block_type("dequantize_value_ref", t, 0);
  return 0.0f;
}

void quantize_rows(DType t, const float* x, int64_t rows, int64_t cols, void* out) {
  check_block_type("quantize_rows", t, cols);
  const int64_t rb = int64_t(dtype_nbytes(t, cols));
  // Q4_K / Q6_K search ~20 grids per value: a row costs about 40 elements of work per value.
  parallel_for(rows, cols * 40, [&](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; r++) quantize_row_ref(t, x + r * cols, static_cast<uint8_t*>(out) + r * rb, cols);
  });
}

}  // namespace seek
