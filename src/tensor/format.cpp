// format.cpp — the weight-format table and the exact portable conversions. See format.h.
#include "tensor/format.h"

#include <algorithm>
#include <cstring>

#include "tensor/backend.h"
#include "tensor/cpu.h"
#include "tensor/kernels_avx512.h"
#include "tensor/quant.h"
#include "util/error.h"

namespace seek {

namespace {

inline float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void f32_row(const Mat& w, int64_t n, int64_t k0, int64_t len, float* out) {
  std::memcpy(out, static_cast<const float*>(w.data) + n * w.cols + k0, size_t(len) * 4);
}

void bf16_row(const Mat& w, int64_t n, int64_t k0, int64_t len, float* out) {
  const uint16_t* src = static_cast<const uint16_t*>(w.data) + n * w.cols + k0;
  for (int64_t i = 0; i < len; i++) out[i] = bits_to_f32(uint32_t(src[i]) << 16);
}

void f16_row(const Mat& w, int64_t n, int64_t k0, int64_t len, float* out) {
  const uint16_t* src = static_cast<const uint16_t*>(w.data) + n * w.cols + k0;
  for (int64_t i = 0; i < len; i++) out[i] = f16_to_f32(src[i]);
}

struct F8Table {
  float v[256];
  F8Table() {
    for (int b = 0; b < 256; b++) v[b] = f8e4m3_to_f32(uint8_t(b));
  }
};

// f8 value × its block's scale, rounded once to f32.
void f8_row(const Mat& w, int64_t n, int64_t k0, int64_t len, float* out) {
  static const F8Table lut;
  const int64_t K = w.cols;
  const uint8_t* src = static_cast<const uint8_t*>(w.data) + n * K + k0;
  const int64_t kblocks = (K + w.block - 1) / w.block;
  const float* srow = w.scale_inv + (n / w.block) * kblocks;
  for (int64_t i = 0; i < len;) {
    const int64_t k = k0 + i;
    const int64_t stop = std::min(len, (k / w.block + 1) * w.block - k0);
    const float s = srow[k / w.block];
    for (; i < stop; i++) out[i] = lut.v[src[i]] * s;
  }
}

// GGUF block formats (quant.h): whole blocks of row n, dequantized exactly as ggml does.
void quant_row(const Mat& w, int64_t n, int64_t k0, int64_t len, float* out) {
  const int64_t bv = dtype_block_values(w.dtype), bb = dtype_block_bytes(w.dtype);
  SEEK_ASSERT(k0 % bv == 0 && len % bv == 0);
  const uint8_t* row = static_cast<const uint8_t*>(w.data) + n * (w.cols / bv) * bb;
  dequantize_row_ref(w.dtype, row + k0 / bv * bb, out, len);
}

// The table. One row per weight format; the AVX-512 kernels are in kernels_avx512.cpp (GGUF block
// formats: kernels_quant_avx512.cpp).
const WeightFormat kFormats[] = {
    {DType::F32, 1, 4, false, f32_row, nullptr, avx512::direct_rows_f32},
    {DType::BF16, 1, 2, false, bf16_row, avx512::rows_to_f32_bf16, avx512::direct_rows_bf16},
    {DType::F16, 1, 2, false, f16_row, avx512::rows_to_f32_f16, avx512::direct_rows_f16},
    {DType::F8_E4M3, 1, 1, true, f8_row, avx512::rows_to_f32_f8, avx512::direct_rows_f8},
    {DType::Q8_0, 32, 34, false, quant_row, avx512::rows_to_f32_q8_0, avx512::direct_rows_q8_0},
    {DType::Q4_0, 32, 18, false, quant_row, avx512::rows_to_f32_q4_0, avx512::direct_rows_q4_0},
    {DType::Q4_K, 256, 144, false, quant_row, avx512::rows_to_f32_q4_k, avx512::direct_rows_q4_k},
    {DType::Q6_K, 256, 210, false, quant_row, avx512::rows_to_f32_q6_k, avx512::direct_rows_q6_k},
    {DType::Q5_0, 32, 22, false, quant_row, avx512::rows_to_f32_q5_0, avx512::direct_rows_q5_0},
    {DType::Q5_1, 32, 24, false, quant_row, avx512::rows_to_f32_q5_1, avx512::direct_rows_q5_1},
    {DType::Q5_K, 256, 176, false, quant_row, avx512::rows_to_f32_q5_k, avx512::direct_rows_q5_k},
};

bool has_avx512() {
  const CpuFeatures& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512vl;
}

void check_weight(const char* op, const Mat& w) {
  if (!is_weight_dtype(w.dtype))
    SEEK_ASSERT_MSG(false, strfmt("[%s] weight [%lld, %lld] has dtype %s, which is not a weight format", op,
                                  (long long)w.rows, (long long)w.cols, std::string(dtype_name(w.dtype)).c_str())
                               .c_str());
  if (w.rows > 0 && w.cols > 0) SEEK_ASSERT_MSG(w.data != nullptr, op);
  const int64_t bv = weight_format(w.dtype).block_values;
  if (w.cols % bv != 0)
    SEEK_ASSERT_MSG(false, strfmt("[%s] %s weight [%lld, %lld]: K is not a multiple of the format's block of %lld",
                                  op, std::string(dtype_name(w.dtype)).c_str(), (long long)w.rows, (long long)w.cols,
                                  (long long)bv)
                               .c_str());
  if (weight_format(w.dtype).block_scales && w.rows > 0 && w.cols > 0)
    SEEK_ASSERT_MSG(w.scale_inv != nullptr && w.block > 0,
                    strfmt("[%s] %s weight [%lld, %lld] needs scale_inv and a block > 0", op,
                           std::string(dtype_name(w.dtype)).c_str(), (long long)w.rows, (long long)w.cols)
                        .c_str());
}

}  // namespace

const float* Mat::f32() const {
  SEEK_ASSERT_MSG(dtype == DType::F32, "an F32 matrix was expected");
  return static_cast<const float*>(data);
}

bool is_weight_dtype(DType t) {
  return std::any_of(std::begin(kFormats), std::end(kFormats), [t](const WeightFormat& f) { return f.dtype == t; });
}

const WeightFormat& weight_format(DType t) {
  for (const WeightFormat& f : kFormats)
    if (f.dtype == t) return f;
  SEEK_ASSERT_MSG(false, strfmt("dtype %s is not a weight format", std::string(dtype_name(t)).c_str()).c_str());
}

int64_t row_bytes(const Mat& w) {
  const WeightFormat& f = weight_format(w.dtype);
  return (w.cols + f.block_values - 1) / f.block_values * f.block_bytes;
}

void rows_to_f32_serial(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  const WeightFormat& f = weight_format(w.dtype);
  if (f.rows_to_f32_avx512 && has_avx512()) return f.rows_to_f32_avx512(w, r0, nr, dst);
  for (int64_t r = 0; r < nr; r++) f.row_to_f32(w, r0 + r, 0, w.cols, dst + r * w.cols);
}

void mat_rows_to_f32(const Mat& w, int64_t r0, int64_t nr, float* dst) {
  check_weight("mat_rows_to_f32", w);
  SEEK_ASSERT(r0 >= 0 && nr >= 0 && r0 + nr <= w.rows);
  parallel_for(nr, w.cols / 8, [&](int64_t a, int64_t b) { rows_to_f32_serial(w, r0 + a, b - a, dst + a * w.cols); });
}

bool stacked(const Mat& a, const Mat& b, Mat* out) {
  if (a.dtype != b.dtype || a.cols != b.cols || weight_format(a.dtype).block_scales) return false;
  if (static_cast<const char*>(a.data) + a.rows * row_bytes(a) != b.data) return false;
  *out = a;
  out->rows = a.rows + b.rows;
  return true;
}

void check_weight_format(const char* op, const Mat& w) { check_weight(op, w); }

}  // namespace seek
