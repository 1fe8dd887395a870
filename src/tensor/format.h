// format.h — weight matrices as seek reads them: a view (Mat) over a row-major [N, K] matrix stored in
// one of the weight formats, and the table of those formats.
//
// A format is one row of the table (format.cpp): how many values a block holds and how many bytes it
// takes, whether the matrix carries separate 2-D block scales, and its kernels — an exact row-to-f32
// conversion (portable; the specification the fast kernels are tested against), and, where written,
// AVX-512 twins of that conversion and of the small-T matmul ("direct" dot products against f32
// activations). Adding a format is one row plus its kernels; block formats (GGUF's Q8_0: 32 values in 34
// bytes, Q4_K: 256 values in 144) fit the same fields, a row being K / block blocks.
//
// Does not: know about models, or compute anything but conversions (matmul lives in backend.h).
#pragma once
#include <cstdint>

#include "tensor/dtype.h"

namespace seek {

// A read-only view of a 2-D weight [rows = N, cols = K] (usually inside an mmapped file or a training
// arena). For F8_E4M3, `scale_inv` points at f32 block scales of shape [ceil(N/block), ceil(K/block)]
// (DeepSeek-V3's `weight_scale_inv`): the real value of w[n][k] is
//   f8(w[n][k]) * scale_inv[(n/block) * ceil(K/block) + k/block].
struct Mat {
  DType dtype = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;  // N
  int64_t cols = 0;  // K
  const float* scale_inv = nullptr;  // F8_E4M3 only
  int64_t block = 128;               // F8_E4M3 block edge

  const float* f32() const;  // the data of an F32 matrix (asserts the dtype)
};

// The kernels of one format. Each takes the whole Mat, so a format may read its scales from it.
struct WeightFormat {
  DType dtype;
  int64_t block_values = 1;  // values per block along a row
  int64_t block_bytes = 4;   // bytes per block
  bool block_scales = false;  // scales in Mat::scale_inv (2-D blocks of Mat::block × Mat::block)
  // Values [k0, k0 + len) of row n as f32, exactly (k0 and len multiples of block_values, or the row's end).
  void (*row_to_f32)(const Mat& w, int64_t n, int64_t k0, int64_t len, float* out) = nullptr;
  // AVX-512 (F, BW, VL) kernels; null when the format has none, and then the portable paths serve.
  // Rows [r0, r0 + nr) to f32 dst [nr, K], exactly as row_to_f32.
  void (*rows_to_f32_avx512)(const Mat& w, int64_t r0, int64_t nr, float* dst) = nullptr;
  // y[t, n] (row stride ldy) = x[t] · w[n] (+ bias[n]) for rows n in [n0, n1) and T tokens (T small:
  // the weights are streamed once, f32 accumulation).
  void (*direct_rows_avx512)(float* y, int64_t ldy, const float* x, const Mat& w, int64_t T, int64_t n0, int64_t n1,
                             const float* bias) = nullptr;
};

// The format of a weight dtype; asserts for dtypes that are not weights (I32, I64).
const WeightFormat& weight_format(DType t);
bool is_weight_dtype(DType t);

// Bytes of one row of w (K values).
int64_t row_bytes(const Mat& w);

// Rows [r0, r0 + nr) of w as f32 dst [nr, K], exactly (threads across rows when large).
void mat_rows_to_f32(const Mat& w, int64_t r0, int64_t nr, float* dst);
void mat_rows_to_f32_ref(const Mat& w, int64_t r0, int64_t nr, float* dst);

// When b's rows follow a's in memory (same format and width, no block scales), the [a; b] matrix as one
// view — two projections of the same input then run as one matmul. Returns false otherwise.
bool stacked(const Mat& a, const Mat& b, Mat* out);

}  // namespace seek
