// test_quant.cpp — GGUF's block formats Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K (tensor/quant.h) and their kernels.
//
// Against llama.cpp itself (tests/data/quant/, made by scripts/peer/make_quant_golden.sh from ggml's
// quantize_row_*_ref and dequantize_row_*): seek's quantization gives the same bytes and its
// dequantization the same floats, bit for bit, on rows of normal, outlier-heavy, zero, tiny (1e-8),
// one-huge-value, negative-only, constant and mixed-scale values. Then, native (AVX-512 where present)
// and forced portable: the conversions to f32 (mat_rows_to_f32, to_f32, matmul_ref's weight_at) equal the
// reference bit for bit, and matmul with quantized weights agrees with matmul_ref on the same weights
// (max |y - ref| / max |ref| <= 1e-5, as the other formats in test_kernels.cpp) at T = 1..200 (direct
// kernel and f32 panels) for K = 256, 512, 2048 and odd N.
//
// Round-trip bounds on normal(0, 1) data, relative RMS error ||dequant(quant(x)) - x|| / ||x||:
// Q8_0 < 0.6%, Q6_K < 2.5%, Q5_K < 4%, Q5_0 and Q5_1 < 5%, Q4_K < 8%, Q4_0 < 10% (measured 0.54%, 1.78%,
// 3.64%, 4.30%, 3.80%, 7.2%, 8.7%). Q8_0's is
// its step amax / 127 over sqrt(12) with amax ~2.3 for 32 normal values: 0.5% cannot be had.
//
// Does not: time anything, or read GGUF files.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tensor/backend.h"
#include "tensor/cpu.h"
#include "tensor/kernels_avx512.h"
#include "tensor/quant.h"

using namespace seek;

namespace {

constexpr double kTolF32 = 1e-5;
const DType kQuantTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::string lower_name(DType t) {
  std::string s(dtype_name(t));
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::vector<uint8_t> v;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return v;
  uint8_t buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) v.insert(v.end(), buf, buf + n);
  std::fclose(f);
  return v;
}

uint32_t u32_at(const std::vector<uint8_t>& v, size_t off) {
  uint32_t u;
  std::memcpy(&u, v.data() + off, 4);
  return u;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// One format's fixture: the inputs, ggml's blocks and ggml's dequantized floats (README.md there).
struct Golden {
  int64_t rows = 0, cols = 0, row_bytes = 0;
  std::vector<float> input;      // [rows, cols]
  std::vector<uint8_t> blocks;   // [rows, row_bytes]
  std::vector<float> dequant;    // [rows, cols]
};

Golden load_golden(DType t) {
  const std::string dir = std::string(SEEK_TEST_DATA) + "/data/quant/";
  const std::vector<uint8_t> in = read_bytes(dir + "input.bin"), g = read_bytes(dir + lower_name(t) + ".bin");
  Golden out;
  if (in.size() < 24 || g.size() < 24 || std::memcmp(in.data(), "SEEKQIN1", 8) || std::memcmp(g.data(), "SEEKQGG1", 8))
    return out;
  out.rows = u32_at(g, 8);
  out.cols = u32_at(g, 12);
  out.row_bytes = u32_at(g, 16);
  const size_t nv = size_t(out.rows * out.cols);
  if (u32_at(in, 8) != out.rows || u32_at(in, 12) != out.cols || in.size() != 24 + 4 * nv ||
      g.size() != 24 + size_t(out.rows * out.row_bytes) + 4 * nv)
    return Golden{};
  out.input.resize(nv);
  std::memcpy(out.input.data(), in.data() + 24, 4 * nv);
  out.blocks.assign(g.begin() + 24, g.begin() + 24 + out.rows * out.row_bytes);
  out.dequant.resize(nv);
  std::memcpy(out.dequant.data(), g.data() + 24 + out.rows * out.row_bytes, 4 * nv);
  return out;
}

// Index of the first float that differs in bits, or -1.
int64_t first_bit_diff(const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (bits(a[i]) != bits(b[i])) return i;
  return -1;
}

// max |a - b| / max |b|.
double rel_err(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return den == 0 ? num : num / den;
}

// A random [N, K] matrix quantized to t.
struct QuantMat {
  std::vector<uint8_t> bytes;
  Mat mat;
};
QuantMat random_quant(std::mt19937& rng, DType t, int64_t N, int64_t K) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> w(size_t(N * K));
  for (float& f : w) f = d(rng);
  QuantMat q;
  q.bytes.resize(size_t(N) * dtype_nbytes(t, K));
  quantize_rows(t, w.data(), N, K, q.bytes.data());
  q.mat = Mat{t, q.bytes.data(), N, K};
  return q;
}

// Runs each test twice: native (AVX-512 where present) and forced portable.
class QuantKernels : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { use_portable_kernels(GetParam()); }
  void TearDown() override { use_portable_kernels(false); }
};

INSTANTIATE_TEST_SUITE_P(Quant, QuantKernels, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "Portable" : "Native"; });

}  // namespace

TEST(QuantGolden, QuantizeAndDequantizeAreBitExactWithGgml) {
  for (DType t : kQuantTypes) {
    SCOPED_TRACE(std::string(dtype_name(t)));
    const Golden g = load_golden(t);
    ASSERT_GT(g.rows, 0) << "missing or malformed fixture in tests/data/quant/ (see README.md there)";
    ASSERT_EQ(g.row_bytes, int64_t(dtype_nbytes(t, g.cols)));
    std::vector<uint8_t> q(size_t(g.row_bytes));
    std::vector<float> y(size_t(g.cols));
    for (int64_t r = 0; r < g.rows; r++) {
      SCOPED_TRACE("row " + std::to_string(r));
      const uint8_t* want = g.blocks.data() + r * g.row_bytes;
      quantize_row_ref(t, g.input.data() + r * g.cols, q.data(), g.cols);
      for (int64_t i = 0; i < g.row_bytes; i++) ASSERT_EQ(q[size_t(i)], want[i]) << "byte " << i;
      dequantize_row_ref(t, want, y.data(), g.cols);
      const float* ref = g.dequant.data() + r * g.cols;
      EXPECT_EQ(first_bit_diff(y.data(), ref, g.cols), -1);
      for (int64_t k = 0; k < g.cols; k++) {
        const float v = dequantize_value_ref(t, want, k);
        ASSERT_EQ(bits(v), bits(ref[k])) << "dequantize_value_ref, value " << k;
      }
      to_f32(t, want, y.data(), size_t(g.cols));
      EXPECT_EQ(first_bit_diff(y.data(), ref, g.cols), -1) << "to_f32";
    }
    // The same rows quantized as one matrix (in parallel).
    std::vector<uint8_t> all(g.blocks.size());
    quantize_rows(t, g.input.data(), g.rows, g.cols, all.data());
    EXPECT_EQ(all, g.blocks);
  }
}

// Relative RMS error of the round trip on 64 Ki normal(0, 1) values, per format (measured at the time of
// writing: Q8_0 0.54%, Q6_K 1.78%, Q5_K 3.64%, Q5_0 4.30%, Q5_1 3.80%, Q4_K 7.2%, Q4_0 8.7%; bounds a little
// above).
TEST(QuantRoundTrip, ErrorBoundOnNormalData) {
  const struct {
    DType t;
    double bound;
  } kRoundTrip[] = {{DType::Q8_0, 0.006}, {DType::Q6_K, 0.025}, {DType::Q5_K, 0.04},
                    {DType::Q5_0, 0.05},  {DType::Q5_1, 0.05},  {DType::Q4_K, 0.08},  {DType::Q4_0, 0.10}};
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 1.0f);
  const int64_t n = 64 * 1024;
  std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
  for (float& f : x) f = d(rng);
  for (const auto& c : kRoundTrip) {
    std::vector<uint8_t> q(dtype_nbytes(c.t, n));
    quantize_row_ref(c.t, x.data(), q.data(), n);
    dequantize_row_ref(c.t, q.data(), y.data(), n);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
      num += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
      den += double(x[i]) * x[i];
    }
    const double e = std::sqrt(num / den);
    std::printf("  %s: relative RMS error %.4f\n", std::string(dtype_name(c.t)).c_str(), e);
    EXPECT_LT(e, c.bound) << dtype_name(c.t);
  }
}

// The golden blocks as a matrix: mat_rows_to_f32 (AVX-512 or portable) and mat_rows_to_f32_ref give
// ggml's floats bit for bit.
TEST_P(QuantKernels, RowsToF32MatchGgml) {
  for (DType t : kQuantTypes) {
    SCOPED_TRACE(std::string(dtype_name(t)));
    const Golden g = load_golden(t);
    ASSERT_GT(g.rows, 0);
    const Mat w{t, g.blocks.data(), g.rows, g.cols};
    std::vector<float> y(g.dequant.size(), 0.0f), yr(g.dequant.size(), 0.0f);
    mat_rows_to_f32(w, 0, g.rows, y.data());
    mat_rows_to_f32_ref(w, 0, g.rows, yr.data());
    EXPECT_EQ(first_bit_diff(y.data(), g.dequant.data(), int64_t(y.size())), -1);
    EXPECT_EQ(first_bit_diff(yr.data(), g.dequant.data(), int64_t(y.size())), -1);
    // A sub-range of rows lands at the start of dst.
    mat_rows_to_f32(w, 3, 2, y.data());
    EXPECT_EQ(first_bit_diff(y.data(), g.dequant.data() + 3 * g.cols, 2 * g.cols), -1);
  }
}

// Random matrices: conversions exact, matmul (direct kernel at small T, f32 panels at large T) within
// f32 accuracy of matmul_ref, with and without bias, and with a row stride.
// With the int8 path off: this is the exact-weight path (the int8 path has its own test below).
TEST_P(QuantKernels, MatmulAgreesWithRef) {
  struct Restore {
    bool was = avx512::set_quant_int8_activations(false);
    ~Restore() { avx512::set_quant_int8_activations(was); }
  } restore;
  std::mt19937 rng(11);
  const int64_t kTs[] = {1, 2, 3, 5, 16, 64, 200};
  const int64_t kKs[] = {256, 512, 2048};
  double worst = 0;
  for (DType t : kQuantTypes) {
    for (int64_t K : kKs) {
      const int64_t N = K == 2048 ? 21 : 37;
      SCOPED_TRACE(std::string(dtype_name(t)) + " K=" + std::to_string(K));
      const QuantMat w = random_quant(rng, t, N, K);
      std::vector<float> f(size_t(N * K)), fr(size_t(N * K));
      mat_rows_to_f32(w.mat, 0, N, f.data());
      mat_rows_to_f32_ref(w.mat, 0, N, fr.data());
      ASSERT_EQ(first_bit_diff(f.data(), fr.data(), N * K), -1);
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      std::vector<float> bias(static_cast<size_t>(N));
      for (float& b : bias) b = u(rng);
      for (int64_t T : kTs) {
        SCOPED_TRACE("T=" + std::to_string(T));
        std::vector<float> x(size_t(T * K));
        for (float& v : x) v = u(rng);
        const float* b = T % 2 ? bias.data() : nullptr;
        std::vector<float> y(size_t(T * N)), ref(size_t(T * N));
        matmul(y.data(), x.data(), w.mat, T, b);
        matmul_ref(ref.data(), x.data(), w.mat, T, b);
        const double e = rel_err(y.data(), ref.data(), y.size());
        worst = std::max(worst, e);
        EXPECT_LE(e, kTolF32);
      }
      // A row stride wider than N (y is a slice of a wider buffer).
      const int64_t T = 3, ldy = N + 5;
      std::vector<float> x(size_t(T * K));
      for (float& v : x) v = u(rng);
      std::vector<float> y(size_t(T * ldy), -7.0f), ref(size_t(T * ldy), -7.0f);
      matmul(y.data(), x.data(), w.mat, T, nullptr, ldy);
      matmul_ref(ref.data(), x.data(), w.mat, T, nullptr, ldy);
      for (int64_t r = 0; r < T; r++) {
        EXPECT_LE(rel_err(y.data() + r * ldy, ref.data() + r * ldy, size_t(N)), kTolF32);
        for (int64_t n = N; n < ldy; n++) EXPECT_EQ(y[size_t(r * ldy + n)], -7.0f);
      }
    }
  }
  std::printf("  worst relative error %.3g\n", worst);
}

// weighted_rows (the fused decode at T <= 4 on AVX-512, decode + gemm above it or portable) within f32
// accuracy of weighted_rows_ref: a block of rows in the middle of the matrix, widths with a partial
// group of 256 columns, x and y rows wider than the product.
TEST_P(QuantKernels, WeightedRowsAgreesWithRef) {
  std::mt19937 rng(29);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (DType t : kQuantTypes) {
    const int64_t bv = dtype_block_values(t);
    for (int64_t K : {bv == 32 ? int64_t(96) : int64_t(256), int64_t(512), int64_t(1280)}) {
      const int64_t N = 70, r0 = 5, nr = 64;
      const QuantMat w = random_quant(rng, t, N, K);
      for (int64_t T : {1, 2, 4, 5, 9}) {
        SCOPED_TRACE(std::string(dtype_name(t)) + " K=" + std::to_string(K) + " T=" + std::to_string(T));
        const int64_t ldx = nr + 3, ldy = K + 7;
        std::vector<float> x(size_t(T * ldx));
        for (float& v : x) v = u(rng);
        std::vector<float> y(size_t(T * ldy), -7.0f), ref(size_t(T * ldy), -7.0f);
        weighted_rows(y.data(), ldy, x.data(), ldx, w.mat, r0, nr, T);
        weighted_rows_ref(ref.data(), ldy, x.data(), ldx, w.mat, r0, nr, T);
        for (int64_t r = 0; r < T; r++) {
          EXPECT_LE(rel_err(y.data() + r * ldy, ref.data() + r * ldy, size_t(K)), kTolF32);
          for (int64_t k = K; k < ldy; k++) EXPECT_EQ(y[size_t(r * ldy + k)], -7.0f);
        }
      }
    }
  }
}

// Several quantized products in one parallel region give what matmul gives each, bit for bit.
TEST_P(QuantKernels, MatmulManyMatchesMatmul) {
  std::mt19937 rng(5);
  std::vector<QuantMat> ws;
  std::vector<std::vector<float>> xs, ys, refs;
  std::vector<MatmulJob> jobs;
  const int64_t K = 512, T = 2;
  for (DType t : kQuantTypes) {
    ws.push_back(random_quant(rng, t, 45, K));
  }
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (size_t i = 0; i < ws.size(); i++) {
    xs.emplace_back(size_t(T * K));
    for (float& v : xs.back()) v = u(rng);
    ys.emplace_back(size_t(T * 45));
    refs.emplace_back(size_t(T * 45));
    matmul(refs[i].data(), xs[i].data(), ws[i].mat, T);
  }
  for (size_t i = 0; i < ws.size(); i++) jobs.push_back(MatmulJob{ys[i].data(), xs[i].data(), ws[i].mat, T});
  matmul_many(jobs.data(), int64_t(jobs.size()));
  for (size_t i = 0; i < ws.size(); i++) EXPECT_EQ(ys[i], refs[i]) << dtype_name(ws[i].mat.dtype);
}

// The int8 path of Q8_0, Q4_0 and Q5_0 (AVX-512 VNNI, T <= 16): activations rounded to 8 bits per block of 32
// with scale sx = amax / 127, so each differs from its f32 value by at most sx / 2 = amax / 254 of its block. Output n
// then differs from matmul_ref (same dequantized weights, f32 activations) by at most
// Σ_k |w[n, k]| · amax(block of k) / 254, plus f32 summation error (bounded here by 1e-5 · Σ_k |w x|).
// Checked output by output, on odd shapes (Q8_0/Q4_0/Q5_0 with an odd count of blocks, 1-row tails), every
// T from 1 to 16; and the error must be nonzero where the path is on (it was taken) and zero where off.
TEST_P(QuantKernels, Int8ActivationsWithinRoundingBound) {
  const bool on = avx512::quant_int8_activations();
  std::printf("  int8 path %s\n", on ? "on (avx512vnni)" : "off (no avx512vnni, or portable)");
  std::mt19937 rng(23);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  double worst_rel = 0;
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q5_0}) {
    for (int64_t K : {int64_t(256), int64_t(1280), int64_t(96)}) {
      if (K % dtype_block_values(t)) continue;
      const int64_t N = 23;
      SCOPED_TRACE(std::string(dtype_name(t)) + " K=" + std::to_string(K));
      const QuantMat w = random_quant(rng, t, N, K);
      std::vector<float> wf(size_t(N * K));
      mat_rows_to_f32_ref(w.mat, 0, N, wf.data());
      for (int64_t T : {1, 2, 3, 4, 5, 8, 16}) {
        SCOPED_TRACE("T=" + std::to_string(T));
        std::vector<float> x(size_t(T * K));
        for (float& v : x) v = u(rng);
        for (int64_t i = 0; i < T * K; i += 7) x[size_t(i)] *= 20.0f;  // outliers: blocks of unlike scale
        std::vector<float> y(size_t(T * N)), ref(size_t(T * N));
        matmul(y.data(), x.data(), w.mat, T);
        matmul_ref(ref.data(), x.data(), w.mat, T);
        for (int64_t tk = 0; tk < T; tk++) {
          for (int64_t n = 0; n < N; n++) {
            double bound = 0, mag = 0;
            for (int64_t c = 0; c < K / 32; c++) {
              double amax = 0;
              for (int64_t i = 0; i < 32; i++) amax = std::max(amax, double(std::fabs(x[size_t(tk * K + 32 * c + i)])));
              for (int64_t i = 0; i < 32; i++) {
                const double wv = std::fabs(double(wf[size_t(n * K + 32 * c + i)]));
                bound += wv * amax / 254.0;
                mag += wv * std::fabs(double(x[size_t(tk * K + 32 * c + i)]));
              }
            }
            const double e = std::fabs(double(y[size_t(tk * N + n)]) - double(ref[size_t(tk * N + n)]));
            EXPECT_LE(e, (on ? bound : 0.0) + 1e-5 * mag) << "n=" << n << " t=" << tk;
            worst_rel = std::max(worst_rel, e / mag);
          }
        }
      }
    }
  }
  std::printf("  worst |y - ref| / sum |w x|: %.3g\n", worst_rel);
  if (on) {
    EXPECT_GT(worst_rel, 1e-5);
  }
}

// The int8 path (AVX-512 VNNI) at every T: the decode kernel (T <= 16) and the GEMM (T > 16), both with
// activations rounded to 8 bits per block B with scale d = amax / 127: B = 256 for the K-quants
// (llama.cpp's Q8_K), 32 for Q8_0, Q4_0 and Q5_0 (its Q8_0). Two checks per output:
// - against a scalar model of the same arithmetic (the codes rounded as the kernel rounds them, the
//   dequantized weights, sums in double): equal up to f32 rounding, 1e-5 · Σ|w x|. This pins the
//   layouts: a code, scale or sum in the wrong place is far outside it;
// - against matmul_ref (f32 activations): within Σ_k |w[n, k]| · amax(B-block of k) / 254 + 1e-5 · Σ|w x|.
// On odd row counts (tiles of 4 and panels of 16 with tails), T not a multiple of 16 or 32, an odd count
// of 32-blocks (K = 96, 1312), with a bias and a row stride wider than N.
TEST_P(QuantKernels, Int8GemmMatchesModelAndBound) {
  const bool on = avx512::quant_int8_activations();
  std::mt19937 rng(29);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  double worst_model = 0, worst_rel = 0;
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    const int64_t B = dtype_block_values(t) == 32 ? 32 : 256;
    for (int64_t K : {int64_t(96), int64_t(256), int64_t(1280), int64_t(1312)}) {
      if (K % dtype_block_values(t)) continue;
      const int64_t N = K == 256 ? 37 : 23, ldy = N + 3;
      SCOPED_TRACE(std::string(dtype_name(t)) + " K=" + std::to_string(K));
      const QuantMat w = random_quant(rng, t, N, K);
      std::vector<float> wf(static_cast<size_t>(N * K)), bias(static_cast<size_t>(N));
      mat_rows_to_f32_ref(w.mat, 0, N, wf.data());
      for (float& b : bias) b = u(rng);
      for (int64_t T : {1, 2, 3, 4, 5, 8, 16, 17, 33, 50, 96}) {
        SCOPED_TRACE("T=" + std::to_string(T));
        std::vector<float> x(size_t(T * K));
        for (float& v : x) v = u(rng);
        for (int64_t i = 0; i < T * K; i += 11) x[size_t(i)] *= 30.0f;  // outliers
        std::fill(x.begin(), x.begin() + B, 0.0f);                      // a zero block: scale 0
        std::vector<float> y(size_t(T * ldy), -7.0f), ref(size_t(T * ldy), -7.0f);
        matmul(y.data(), x.data(), w.mat, T, bias.data(), ldy);
        matmul_ref(ref.data(), x.data(), w.mat, T, bias.data(), ldy);
        for (int64_t tk = 0; tk < T; tk++) {
          const float* xt = x.data() + tk * K;
          for (int64_t n = 0; n < N; n++) {
            const float* wn = wf.data() + n * K;
            double model = bias[size_t(n)], bound = 0, mag = 0;
            for (int64_t sb = 0; sb < K / B; sb++) {
              float amax = 0;
              for (int64_t i = 0; i < B; i++) amax = std::max(amax, std::fabs(xt[B * sb + i]));
              const float d = amax / 127.0f, id = amax > 0 ? 127.0f / amax : 0.0f;
              double dot = 0;
              for (int64_t i = 0; i < B; i++) {
                const int64_t k = B * sb + i;
                dot += double(wn[k]) * double(std::nearbyint(xt[k] * id));
                bound += std::fabs(double(wn[k])) * amax / 254.0;
                mag += std::fabs(double(wn[k]) * double(xt[k]));
              }
              model += double(d) * dot;
            }
            const double got = y[size_t(tk * ldy + n)];
            const double em = std::fabs(got - model), er = std::fabs(got - double(ref[size_t(tk * ldy + n)]));
            if (on) {
              EXPECT_LE(em, 1e-5 * mag) << "n=" << n << " t=" << tk;
              worst_model = std::max(worst_model, em / mag);
            }
            EXPECT_LE(er, (on ? bound : 0.0) + 1e-5 * mag) << "n=" << n << " t=" << tk;
            worst_rel = std::max(worst_rel, er / mag);
          }
          for (int64_t n = N; n < ldy; n++) EXPECT_EQ(y[size_t(tk * ldy + n)], -7.0f);
        }
      }
    }
  }
  std::printf("  int8 GEMM %s: worst |y - model| / sum |w x| %.3g, |y - ref| / sum |w x| %.3g\n",
              on ? "on" : "off", worst_model, worst_rel);
  if (on) {
    EXPECT_GT(worst_rel, 1e-5);
  }
}

// The int8 path quantizes a matmul's activations once per thread and recognises them by address within a
// matmul (next_activations): new values at the same address in the next matmul must be quantized again.
TEST_P(QuantKernels, Int8ActivationsAtTheSameAddressAreNotReused) {
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t N = 40, K = 512;
  for (DType t : kQuantTypes) {
    const QuantMat w = random_quant(rng, t, N, K);
    for (int64_t T : {1, 3}) {
      std::vector<float> x(size_t(T * K)), y(size_t(T * N)), fresh(size_t(T * N));
      for (float& v : x) v = u(rng);
      matmul(y.data(), x.data(), w.mat, T);
      for (float& v : x) v = u(rng);  // new values, same buffer
      matmul(y.data(), x.data(), w.mat, T);
      const std::vector<float> copy = x;  // the same values at another address
      matmul(fresh.data(), copy.data(), w.mat, T);
      EXPECT_EQ(y, fresh) << dtype_name(t) << " T=" << T;
    }
  }
}
