// test_kernels.cpp — every fast kernel of kernels.h against its `_ref` on random inputs of awkward
// shapes, once on the AVX-512 paths (where the CPU has them) and once forced portable
// (use_portable_kernels), plus hand-computed checks of the rope frequency tables and edge cases of
// topk and softmax.
//
// Tolerances: the error of a whole output, max |fast − ref| / max |ref|, must be ≤ 1e-5 for every f32
// path (the references accumulate in double), ≤ 1e-2 for matmul_bf16_dpbf16 (activations rounded to
// bf16). Conversions (mat_rows_to_f32, embedding) and topk must match exactly.
//
// Does not: time anything (bench/bench_kernels.cpp does), or test model code.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "model/rope_scaling.h"
#include "tensor/backend.h"
#include "tensor/cpu.h"
#include "tensor/kernels.h"

using namespace seek;

namespace {

constexpr double kTolF32 = 1e-5;
constexpr double kTolDpbf16 = 1e-2;
const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> random_floats(std::mt19937& rng, size_t n, float lo = -1, float hi = 1) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = d(rng);
  return v;
}

// The worst error seen by the current test, printed at its end.
double g_worst = 0;

// max |a - b| / max |b| (b is the reference); NaN anywhere fails.
double rel_err(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    if (std::isnan(a[i]) != std::isnan(b[i])) return std::numeric_limits<double>::infinity();
    if (std::isnan(a[i])) continue;
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  double e = den == 0 ? num : num / den;
  g_worst = std::max(g_worst, e);
  return e;
}

bool same_bits_or_nan(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  uint32_t ua, ub;
  std::memcpy(&ua, &a, 4);
  std::memcpy(&ub, &b, 4);
  return ua == ub;
}

// A weight matrix with storage.
struct Weight {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  Mat mat;
};

// Random [N, K] weights of `dtype`. F8: random codes (NaN codes only when allow_nan) and random
// positive block scales.
Weight make_weight(std::mt19937& rng, DType dtype, int64_t N, int64_t K, int64_t block = 128,
                   bool allow_nan = false) {
  Weight w;
  w.bytes.resize(size_t(N * K) * dtype_size(dtype) + 1);
  std::vector<float> v = random_floats(rng, size_t(N * K));
  for (int64_t i = 0; i < N * K; i++) {
    switch (dtype) {
      case DType::F32: std::memcpy(&w.bytes[4 * i], &v[i], 4); break;
      case DType::BF16: {
        uint16_t h = f32_to_bf16(v[i]);
        std::memcpy(&w.bytes[2 * i], &h, 2);
        break;
      }
      case DType::F16: {
        uint16_t h = f32_to_f16(v[i]);
        std::memcpy(&w.bytes[2 * i], &h, 2);
        break;
      }
      case DType::F8_E4M3: {
        uint8_t b;
        do b = uint8_t(rng()); while (!allow_nan && (b & 0x7F) == 0x7F);
        w.bytes[i] = b;
        break;
      }
      default: break;
    }
  }
  w.mat.dtype = dtype;
  w.mat.data = w.bytes.data();
  w.mat.rows = N;
  w.mat.cols = K;
  if (dtype == DType::F8_E4M3) {
    int64_t nb = (N + block - 1) / block, kb = (K + block - 1) / block;
    w.scales = random_floats(rng, size_t(nb * kb), 1e-3f, 4e-3f);
    w.mat.scale_inv = w.scales.data();
    w.mat.block = block;
  }
  return w;
}

const DType kWeightTypes[] = {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3};

// Runs each test twice: native (AVX-512 where present) and forced portable.
class Kernels : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    use_portable_kernels(GetParam());
    g_worst = 0;
  }
  void TearDown() override {
    use_portable_kernels(false);
    if (g_worst > 0) std::printf("  worst relative error %.3g\n", g_worst);
  }
};

INSTANTIATE_TEST_SUITE_P(Paths, Kernels, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "Portable" : "Native"; });

}  // namespace

TEST(Cpu, FeaturesAndForcePortable) {
  std::string native = cpu_features_string();
  use_portable_kernels(true);
  EXPECT_FALSE(cpu_features().avx512f);
  EXPECT_FALSE(cpu_features().avx512bf16);
  EXPECT_EQ(std::string(cpu_features_string()).find("avx512"), std::string::npos);
  use_portable_kernels(false);
  EXPECT_EQ(native, cpu_features_string());
  std::printf("cpu features: %s\n", cpu_features_string());
}

TEST_P(Kernels, MatRowsToF32Exact) {
  std::mt19937 rng(10);
  for (DType dt : kWeightTypes) {
    for (int64_t block : {128, 32, 50}) {
      if (dt != DType::F8_E4M3 && block != 128) continue;
      const int64_t N = 300, K = 257;
      Weight w = make_weight(rng, dt, N, K, block, /*allow_nan=*/true);
      for (auto [r0, nr] : {std::pair<int64_t, int64_t>{0, N}, {129, 7}, {299, 1}, {5, 0}}) {
        std::vector<float> a(size_t(nr * K) + 1), b(size_t(nr * K) + 1);
        mat_rows_to_f32(w.mat, r0, nr, a.data());
        mat_rows_to_f32_ref(w.mat, r0, nr, b.data());
        for (int64_t i = 0; i < nr * K; i++)
          ASSERT_TRUE(same_bits_or_nan(a[i], b[i])) << dtype_name(dt) << " block " << block << " i " << i;
      }
    }
  }
}

TEST_P(Kernels, Fp8BlockDequantExact) {
  std::mt19937 rng(11);
  for (auto [N, K, block] : {std::tuple<int64_t, int64_t, int64_t>{300, 1000, 128}, {129, 127, 128}, {5, 17, 16},
                             {1, 1, 128}, {40, 70, 24}}) {
    Weight w = make_weight(rng, DType::F8_E4M3, N, K, block, true);
    std::vector<float> a(size_t(N * K)), b(size_t(N * K));
    const Mat m{DType::F8_E4M3, w.bytes.data(), N, K, w.scales.data(), block};
    mat_rows_to_f32(m, 0, N, a.data());
    mat_rows_to_f32_ref(m, 0, N, b.data());
    for (int64_t i = 0; i < N * K; i++) ASSERT_TRUE(same_bits_or_nan(a[i], b[i])) << i;
  }
}

TEST_P(Kernels, MatmulAllDtypesAndShapes) {
  std::mt19937 rng(12);
  // 64 / 65 straddle the switch from the direct kernel to the BLAS panels, 16 / 17 f32's from the direct
  // kernel to sgemm (backend.cpp).
  const int64_t Ts[] = {1, 2, 3, 7, 8, 9, 16, 17, 33, 64, 65, 100};
  const std::pair<int64_t, int64_t> NKs[] = {{1, 1},    {5, 17},   {17, 5},    {127, 129}, {129, 127},
                                             {300, 1000}, {1000, 300}, {33, 257}, {16, 64}};
  for (DType dt : kWeightTypes) {
    for (auto [N, K] : NKs) {
      Weight w = make_weight(rng, dt, N, K);
      std::vector<float> bias = random_floats(rng, size_t(N));
      for (int64_t T : Ts) {
        if (T >= 64 && N * K > 100000 && dt != DType::BF16 && dt != DType::F8_E4M3) continue;  // time
        std::vector<float> x = random_floats(rng, size_t(T * K));
        for (bool with_bias : {false, true}) {
          if (T > 3 && with_bias != (T % 2 == 1)) continue;  // both for small T, then alternate (time)
          const float* b = with_bias ? bias.data() : nullptr;
          std::vector<float> y(size_t(T * N), kNaN), ref(size_t(T * N));
          matmul(y.data(), x.data(), w.mat, T, b);
          matmul_ref(ref.data(), x.data(), w.mat, T, b);
          double e = rel_err(y.data(), ref.data(), y.size());
          EXPECT_LE(e, kTolF32) << dtype_name(dt) << " T " << T << " N " << N << " K " << K << " bias "
                                << with_bias;
        }
      }
    }
  }
}

// Outputs into a wider row (ldy > N, as two projections side by side): the padding is untouched.
TEST_P(Kernels, MatmulRowStride) {
  std::mt19937 rng(23);
  for (DType dt : kWeightTypes) {
    const int64_t N = 37, K = 70, ldy = 50;
    Weight w = make_weight(rng, dt, N, K);
    for (int64_t T : {1, 3, 65, 100}) {
      std::vector<float> x = random_floats(rng, size_t(T * K));
      std::vector<float> y(size_t(T * ldy), 7.f), ref(size_t(T * ldy), 7.f);
      matmul(y.data(), x.data(), w.mat, T, nullptr, ldy);
      matmul_ref(ref.data(), x.data(), w.mat, T, nullptr, ldy);
      EXPECT_LE(rel_err(y.data(), ref.data(), y.size()), kTolF32) << dtype_name(dt) << " T " << T;
      for (int64_t t = 0; t < T; t++)
        for (int64_t n = N; n < ldy; n++) ASSERT_EQ(y[size_t(t * ldy + n)], 7.f);
    }
  }
}

// Several products in one region (matmul_many): each job's output is bit for bit what matmul gives it
// alone — whichever thread took which rows, the kernel per row is the same — and the columns beside
// a job's block (ldy) are untouched. Mixed dtypes and T, an F32 job and a T > 64 job (which run
// through matmul one by one), empty jobs, and a job big enough (9 MB of bf16) to be cut into many
// pieces that the threads take from each other's ends.
TEST_P(Kernels, MatmulManyEqualsOneByOne) {
  std::mt19937 rng(31);
  struct Shape { DType dt; int64_t N, K, T, ldy; bool bias; };
  const Shape shapes[] = {{DType::BF16, 1024, 512, 1, 0, false},  {DType::BF16, 1024, 512, 1, 2048, false},
                          {DType::F16, 37, 70, 3, 50, true},      {DType::F8_E4M3, 129, 300, 5, 0, false},
                          {DType::F32, 40, 33, 2, 0, true},       {DType::BF16, 300, 1000, 65, 0, false},
                          {DType::BF16, 0, 16, 1, 0, false},      {DType::BF16, 4608, 1024, 1, 0, true},
                          {DType::BF16, 17, 5, 16, 0, false},     {DType::F8_E4M3, 33, 257, 1, 40, false}};
  std::vector<Weight> ws;
  std::vector<std::vector<float>> xs, biases, ys, refs;
  std::vector<MatmulJob> jobs;
  for (const Shape& s : shapes) {
    ws.push_back(make_weight(rng, s.dt, s.N, s.K));
    xs.push_back(random_floats(rng, size_t(s.T * s.K)));
    biases.push_back(random_floats(rng, size_t(s.N)));
    const int64_t ldy = s.ldy ? s.ldy : s.N;
    ys.emplace_back(size_t(s.T * ldy), 7.f);
    refs.emplace_back(size_t(s.T * ldy), 7.f);
  }
  for (size_t i = 0; i < std::size(shapes); i++) {
    const Shape& s = shapes[i];
    const float* b = s.bias ? biases[i].data() : nullptr;
    jobs.push_back(MatmulJob{ys[i].data(), xs[i].data(), ws[i].mat, s.T, b, s.ldy});
    matmul(refs[i].data(), xs[i].data(), ws[i].mat, s.T, b, s.ldy);
  }
  matmul_many(jobs.data(), int64_t(jobs.size()));
  for (size_t i = 0; i < std::size(shapes); i++) {
    ASSERT_EQ(ys[i].size(), refs[i].size());
    for (size_t j = 0; j < ys[i].size(); j++)
      ASSERT_TRUE(same_bits_or_nan(ys[i][j], refs[i][j])) << "job " << i << " value " << j;
  }
}

TEST_P(Kernels, MatmulFp8OddBlocks) {
  std::mt19937 rng(13);
  for (int64_t block : {32, 50, 16, 1000}) {
    const int64_t N = 129, K = 300;
    Weight w = make_weight(rng, DType::F8_E4M3, N, K, block);
    for (int64_t T : {1, 5, 20}) {
      std::vector<float> x = random_floats(rng, size_t(T * K));
      std::vector<float> y(size_t(T * N)), ref(size_t(T * N));
      matmul(y.data(), x.data(), w.mat, T, nullptr);
      matmul_ref(ref.data(), x.data(), w.mat, T, nullptr);
      EXPECT_LE(rel_err(y.data(), ref.data(), y.size()), kTolF32) << "block " << block << " T " << T;
    }
  }
}

TEST_P(Kernels, MatmulDpbf16) {
  std::mt19937 rng(14);
  for (auto [N, K] : {std::pair<int64_t, int64_t>{1, 1}, {5, 17}, {127, 129}, {300, 1000}, {33, 64}}) {
    Weight w = make_weight(rng, DType::BF16, N, K);
    std::vector<float> bias = random_floats(rng, size_t(N));
    for (int64_t T : {1, 2, 3, 7, 9, 33}) {
      std::vector<float> x = random_floats(rng, size_t(T * K));
      for (bool with_bias : {false, true}) {
        const float* b = with_bias ? bias.data() : nullptr;
        std::vector<float> y(size_t(T * N)), ref(size_t(T * N));
        matmul_bf16_dpbf16(y.data(), x.data(), w.mat, T, b);
        matmul_ref(ref.data(), x.data(), w.mat, T, b);
        EXPECT_LE(rel_err(y.data(), ref.data(), y.size()), kTolDpbf16) << "T " << T << " N " << N << " K " << K;
      }
    }
  }
}

TEST_P(Kernels, GemmF32Strided) {
  std::mt19937 rng(15);
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {3, 5, 17}, {33, 129, 127}, {100, 7, 300},
                         {9, 64, 0}}) {
    for (bool trans_b : {false, true}) {
      for (auto [alpha, beta] : {std::pair<float, float>{1, 0}, {0.5f, 1}, {-2, 0.25f}}) {
        const int64_t lda = K + 3, ldb = (trans_b ? K : N) + 5, ldc = N + 2;
        std::vector<float> A = random_floats(rng, size_t(M * lda));
        std::vector<float> B = random_floats(rng, size_t((trans_b ? N : K) * ldb));
        std::vector<float> C0 = random_floats(rng, size_t(M * ldc));
        if (beta == 0)
          for (int64_t m = 0; m < M; m++) C0[m * ldc] = kNaN;  // beta = 0 must not read C
        std::vector<float> C = C0, R = C0;
        gemm(false, trans_b, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
        gemm_ref(false, trans_b, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, R.data(), ldc);
        EXPECT_LE(rel_err(C.data(), R.data(), C.size()), kTolF32) << M << " " << N << " " << K << " " << trans_b;
        for (int64_t m = 0; m < M; m++)  // the padding between rows is untouched
          for (int64_t n = N; n < ldc; n++) ASSERT_EQ(C[m * ldc + n], C0[m * ldc + n]);
      }
    }
  }
}

TEST_P(Kernels, Rmsnorm) {
  std::mt19937 rng(16);
  for (auto [T, D] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {7, 1000}, {33, 7168}, {100, 129}}) {
    std::vector<float> x = random_floats(rng, size_t(T * D), -3, 3), w = random_floats(rng, size_t(D));
    std::vector<float> y(x.size()), ref(x.size());
    rmsnorm(y.data(), x.data(), w.data(), T, D, 1e-6f);
    rmsnorm_ref(ref.data(), x.data(), w.data(), T, D, 1e-6f);
    EXPECT_LE(rel_err(y.data(), ref.data(), y.size()), kTolF32) << T << " " << D;
    rmsnorm(x.data(), x.data(), w.data(), T, D, 1e-6f);  // in place
    EXPECT_LE(rel_err(x.data(), ref.data(), y.size()), kTolF32);
  }
}

TEST_P(Kernels, Softmax) {
  std::mt19937 rng(17);
  for (auto [T, n] : {std::pair<int64_t, int64_t>{1, 1}, {3, 5}, {7, 17}, {9, 129}, {33, 1000}, {2, 70000}}) {
    const int64_t stride = n + 3;
    std::vector<float> x = random_floats(rng, size_t(T * stride), -20, 20), ref = x;
    softmax(x.data(), T, n, stride);
    softmax_ref(ref.data(), T, n, stride);
    for (int64_t t = 0; t < T; t++) {
      EXPECT_LE(rel_err(x.data() + t * stride, ref.data() + t * stride, size_t(n)), kTolF32) << T << " " << n;
      double sum = 0;
      for (int64_t i = 0; i < n; i++) sum += x[t * stride + i];
      EXPECT_NEAR(sum, 1.0, 1e-5);
      for (int64_t i = n; i < stride; i++) EXPECT_EQ(x[t * stride + i], ref[t * stride + i]);  // untouched
    }
  }
}

TEST_P(Kernels, SoftmaxLargeValuesAndMasks) {
  // Values near 1e4 overflow exp without the max subtraction; -inf entries (masked) become 0.
  std::vector<float> x = {1e4f, 1e4f - 1, 1e4f - 2, -1e4f, -INFINITY, 1e4f, 3e4f, 3e4f};
  std::vector<float> ref = x;
  softmax(x.data(), 2, 4, 4);
  softmax_ref(ref.data(), 2, 4, 4);
  for (int i = 0; i < 8; i++) {
    EXPECT_FALSE(std::isnan(x[i])) << i;
    EXPECT_NEAR(x[i], ref[i], 1e-6) << i;
  }
  EXPECT_NEAR(x[0] + x[1] + x[2] + x[3], 1.0, 1e-6);
  EXPECT_NEAR(x[0], 1.0 / (1.0 + std::exp(-1.0) + std::exp(-2.0)), 1e-6);
  EXPECT_EQ(x[3], 0.0f);
  EXPECT_EQ(x[4], 0.0f);
  EXPECT_EQ(x[5], 0.0f);
  EXPECT_FLOAT_EQ(x[6], 0.5f);
}

TEST_P(Kernels, SwiGLUForwardAndBackward) {
  std::mt19937 rng(18);
  for (auto [T, F] : {std::pair<int64_t, int64_t>{1, 1}, {1, 5}, {3, 17}, {2, 129}, {5, 1000}, {3, 100000}}) {
    std::vector<float> gu(size_t(T * 2 * F));
    for (int64_t t = 0; t < T; t++) {
      std::vector<float> g = random_floats(rng, size_t(F), -30, 30), u = random_floats(rng, size_t(F), -2, 2);
      std::copy(g.begin(), g.end(), gu.begin() + t * 2 * F);
      std::copy(u.begin(), u.end(), gu.begin() + t * 2 * F + F);
    }
    std::vector<float> y(size_t(T * F)), ref(size_t(T * F));
    swiglu(y.data(), gu.data(), T, F);
    swiglu_ref(ref.data(), gu.data(), T, F);
    EXPECT_LE(rel_err(y.data(), ref.data(), y.size()), kTolF32) << T << " " << F;
    std::vector<float> dout = random_floats(rng, size_t(T * F)), d(size_t(T * 2 * F)), dref(size_t(T * 2 * F));
    swiglu_backward(d.data(), dout.data(), gu.data(), T, F);
    swiglu_backward_ref(dref.data(), dout.data(), gu.data(), T, F);
    EXPECT_LE(rel_err(d.data(), dref.data(), d.size()), kTolF32) << T << " " << F;
  }
}

// One attention head, forward and backward, against the double-precision references: shapes around the
// 16-row and 64-row blocks and the 64-column chunks, strided rows, p beyond each row's block untouched.
TEST_P(Kernels, AttentionHeadForwardAndBackward) {
  std::mt19937 rng(23);
  for (auto [T, dk, dv] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {5, 3, 7}, {17, 48, 32}, {64, 16, 16},
                           {65, 48, 32}, {130, 40, 33}, {200, 70, 80}}) {
    const int64_t ldq = dk + 3, ldk = dk + 1, ldv = dv + 2, ldo = dv + 5, ldp = T + 1;
    const float scale = 1.f / std::sqrt(float(dk));
    std::vector<float> q = random_floats(rng, size_t(T * ldq), -2, 2), k = random_floats(rng, size_t(T * ldk), -2, 2);
    std::vector<float> v = random_floats(rng, size_t(T * ldv));
    std::vector<float> p(size_t(T * ldp), 7.f), pr = p, o(size_t(T * ldo), 7.f), orf = o;
    attention_head(q.data(), ldq, k.data(), ldk, v.data(), ldv, T, dk, dv, scale, p.data(), ldp, o.data(), ldo);
    attention_head_ref(q.data(), ldq, k.data(), ldk, v.data(), ldv, T, dk, dv, scale, pr.data(), ldp, orf.data(), ldo);
    EXPECT_LE(rel_err(p.data(), pr.data(), p.size()), kTolF32) << T << " " << dk << " " << dv;
    EXPECT_LE(rel_err(o.data(), orf.data(), o.size()), kTolF32) << T << " " << dk << " " << dv;
    for (bool add_kv : {false, true}) {
      const int64_t lddq = dk + 2, lddk = dk + 4, lddv = dv + 1, lddo = dv + 3;
      std::vector<float> dout = random_floats(rng, size_t(T * lddo));
      std::vector<float> dq = random_floats(rng, size_t(T * lddq)), dkk = random_floats(rng, size_t(T * lddk));
      std::vector<float> dvv = random_floats(rng, size_t(T * lddv)), dqr = dq, dkr = dkk, dvr = dvv;
      attention_head_backward(q.data(), ldq, k.data(), ldk, v.data(), ldv, T, dk, dv, scale, pr.data(), ldp,
                              dout.data(), lddo, {dq.data(), lddq, dkk.data(), lddk, dvv.data(), lddv, add_kv});
      attention_head_backward_ref(q.data(), ldq, k.data(), ldk, v.data(), ldv, T, dk, dv, scale, pr.data(), ldp,
                                  dout.data(), lddo, {dqr.data(), lddq, dkr.data(), lddk, dvr.data(), lddv, add_kv});
      EXPECT_LE(rel_err(dq.data(), dqr.data(), dq.size()), kTolF32) << T << " " << dk << " " << dv << " " << add_kv;
      EXPECT_LE(rel_err(dkk.data(), dkr.data(), dkk.size()), kTolF32) << T << " " << dk << " " << dv << " " << add_kv;
      EXPECT_LE(rel_err(dvv.data(), dvr.data(), dvv.size()), kTolF32) << T << " " << dk << " " << dv << " " << add_kv;
    }
  }
}

TEST_P(Kernels, GemmTransposedA) {
  std::mt19937 rng(21);
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {5, 7, 3}, {33, 17, 65}, {130, 9, 40}}) {
    for (bool trans_b : {false, true}) {
      const int64_t lda = M + 2, ldb = (trans_b ? K : N) + 1, ldc = N + 3;
      std::vector<float> A = random_floats(rng, size_t(K * lda)), B = random_floats(rng, size_t((trans_b ? N : K) * ldb));
      std::vector<float> C = random_floats(rng, size_t(M * ldc)), R = C;
      gemm(true, trans_b, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 1.f, C.data(), ldc);
      gemm_ref(true, trans_b, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 1.f, R.data(), ldc);
      EXPECT_LE(rel_err(C.data(), R.data(), C.size()), kTolF32) << M << " " << N << " " << K;
    }
  }
}

TEST_P(Kernels, RmsnormKeepsRstdAndStrides) {
  std::mt19937 rng(22);
  const int64_t T = 9, D = 37, ldx = 41, ldy = 39;
  std::vector<float> x = random_floats(rng, size_t(T * ldx), -3, 3), w = random_floats(rng, size_t(D));
  std::vector<float> y(size_t(T * ldy), 7.f), ref = y, r(static_cast<size_t>(T)), rref(static_cast<size_t>(T));
  rmsnorm(y.data(), x.data(), w.data(), T, D, 1e-6f, r.data(), ldx, ldy);
  rmsnorm_ref(ref.data(), x.data(), w.data(), T, D, 1e-6f, rref.data(), ldx, ldy);
  EXPECT_LE(rel_err(y.data(), ref.data(), y.size()), kTolF32);
  EXPECT_LE(rel_err(r.data(), rref.data(), r.size()), kTolF32);
  for (int64_t t = 0; t < T; t++)
    for (int64_t d = D; d < ldy; d++) EXPECT_EQ(y[size_t(t * ldy + d)], 7.f);  // the padding is untouched
}

TEST_P(Kernels, TopkMatchesRef) {
  std::mt19937 rng(19);
  for (int64_t n : {1, 5, 17, 127, 300, 1000}) {
    for (int64_t k : {int64_t(1), int64_t(2), int64_t(8), int64_t(33), n}) {
      if (k > n) continue;
      std::vector<float> x = random_floats(rng, size_t(n));
      for (int64_t i = 0; i < n; i += 7) x[i] = x[(i * 3) % n];  // some ties
      if (n > 10) x[3] = kNaN;
      std::vector<int32_t> a(static_cast<size_t>(k)), b(static_cast<size_t>(k));
      topk(x.data(), n, k, a.data());
      topk_ref(x.data(), n, k, b.data());
      EXPECT_EQ(a, b) << n << " " << k;
    }
  }
}

TEST_P(Kernels, TopkTiesAndNaN) {
  for (int64_t k : {3}) {
    const float x[] = {1, 3, 3, 2, 3};
    std::vector<int32_t> idx(static_cast<size_t>(k)), ref(static_cast<size_t>(k));
    topk(x, 5, k, idx.data());
    EXPECT_EQ(idx, (std::vector<int32_t>{1, 2, 4}));
  }
  {
    const float x[] = {kNaN, 1, kNaN, -INFINITY, 0};
    std::vector<int32_t> idx(4);
    topk(x, 5, 4, idx.data());
    EXPECT_EQ(idx, (std::vector<int32_t>{1, 4, 3, 0}));  // NaN last, the first NaN first
    topk_ref(x, 5, 4, idx.data());
    EXPECT_EQ(idx, (std::vector<int32_t>{1, 4, 3, 0}));
  }
  {
    const float x[] = {kNaN, kNaN, kNaN};
    std::vector<int32_t> idx(3);
    topk(x, 3, 3, idx.data());
    EXPECT_EQ(idx, (std::vector<int32_t>{0, 1, 2}));
  }
  {
    const float x[] = {-0.0f, 0.0f, -0.0f};  // equal values: index order
    std::vector<int32_t> idx(2);
    topk(x, 3, 2, idx.data());
    EXPECT_EQ(idx, (std::vector<int32_t>{0, 1}));
  }
  {  // the partial_sort path (k > 32) with ties everywhere
    std::vector<float> x(100);
    for (int i = 0; i < 100; i++) x[i] = float(i % 4);
    x[50] = kNaN;
    std::vector<int32_t> a(60), b(60);
    topk(x.data(), 100, 60, a.data());
    topk_ref(x.data(), 100, 60, b.data());
    EXPECT_EQ(a, b);
    EXPECT_EQ(a[0], 3);
    EXPECT_EQ(a[1], 7);
  }
}

// argmax is topk's first: the largest, the lower index among equals, never a NaN over a number; over
// lengths around the vector passes' steps (16, 64) and a vocabulary's.
TEST_P(Kernels, ArgmaxIsTopkFirst) {
  std::mt19937 rng(23);
  auto expect_first = [](const std::vector<float>& x, const char* what) {
    int32_t ref = -1;
    topk_ref(x.data(), int64_t(x.size()), 1, &ref);
    EXPECT_EQ(argmax(x.data(), int64_t(x.size())), ref) << what << ", n = " << x.size();
  };
  for (int64_t n : {1, 2, 15, 16, 17, 63, 64, 65, 100, 129, 1000, 129280}) {
    std::vector<float> x = random_floats(rng, size_t(n));
    expect_first(x, "random");
    for (int64_t i = 0; i < n; i++) x[size_t(i)] = float(int(rng() % 3));  // ties everywhere
    expect_first(x, "ties");
    x[size_t(n - 1)] = 7;  // the largest in the tail
    expect_first(x, "largest last");
    x[0] = kNaN;
    if (n > 5) x[5] = kNaN;
    expect_first(x, "NaN");
    std::fill(x.begin(), x.end(), -INFINITY);
    x[size_t(n / 2)] = kNaN;
    expect_first(x, "-inf and NaN");
    std::fill(x.begin(), x.end(), kNaN);
    expect_first(x, "all NaN");
  }
}

// exp_sum against std::exp in double: each value within 4e-7 relative (the polynomial's ~2 ulp), the sum
// within 1e-6; lengths around the vector's 16, shifted so that the largest is exp(0) = 1, in place too.
TEST_P(Kernels, ExpSumMatchesStdExp) {
  std::mt19937 rng(31);
  for (int64_t n : {1, 15, 16, 17, 100, 4099}) {
    std::vector<float> x = random_floats(rng, size_t(n), -30.f, 5.f);
    const float shift = *std::max_element(x.begin(), x.end());
    for (float scale : {1.0f, 1.0f / 0.6f}) {
      std::vector<float> y(x.size(), -1.f);
      const double total = exp_sum(y.data(), x.data(), n, shift, scale);
      double want = 0;
      for (int64_t i = 0; i < n; i++) {
        const double e = std::exp(double((x[size_t(i)] - shift) * scale));
        want += e;
        EXPECT_NEAR(y[size_t(i)], e, 4e-7 * e + 1e-30) << "n " << n << " i " << i;
      }
      EXPECT_NEAR(total, want, 1e-6 * want) << "n " << n;
      std::vector<float> z = x;
      EXPECT_EQ(exp_sum(z.data(), z.data(), n, shift, scale), total);  // in place: the same values
      EXPECT_EQ(z, y);
    }
  }
}

// mqa_decode against the double-precision reference: head counts around the 16 lanes, key counts from
// one to several parts, value widths with a partial vector (alone, closing a block of 8 vectors, after
// one), and strides wider than the rows.
TEST_P(Kernels, MqaDecodeMatchesRef) {
  std::mt19937 rng(37);
  struct Shape { int64_t H, L, dk, dv; };
  for (const Shape& c : {Shape{16, 1, 288, 256}, Shape{16, 100, 288, 256}, Shape{20, 257, 72, 40}, Shape{4, 33, 24, 24},
                         Shape{32, 1000, 96, 64}, Shape{1, 70, 17, 9}, Shape{16, 40, 144, 120}, Shape{3, 50, 160, 136}}) {
    SCOPED_TRACE("H " + std::to_string(c.H) + " L " + std::to_string(c.L) + " dk " + std::to_string(c.dk) + " dv " +
                 std::to_string(c.dv));
    const int64_t ldq = c.dk + 3, ldk = c.dk + 5, ldo = c.dv + 2;
    std::vector<float> q = random_floats(rng, size_t(c.H * ldq)), k = random_floats(rng, size_t(c.L * ldk), -2, 2);
    std::vector<float> out(size_t(c.H * ldo), -7.f), ref(size_t(c.H * ldo), -7.f);
    const float scale = 1.0f / std::sqrt(float(c.dk)) * 3;
    // The scratch for more keys than the call's, as a decode step sizes it for the cache's capacity.
    std::vector<float> scratch(size_t(mqa_decode_scratch(c.H, c.L + 50, c.dk, c.dv)), kNaN);
    mqa_decode(q.data(), ldq, k.data(), ldk, c.H, c.L, c.dk, c.dv, scale, out.data(), ldo, scratch.data());
    mqa_decode_ref(q.data(), ldq, k.data(), ldk, c.H, c.L, c.dk, c.dv, scale, ref.data(), ldo);
    for (int64_t h = 0; h < c.H; h++) {
      for (int64_t v = 0; v < c.dv; v++)
        ASSERT_NEAR(out[size_t(h * ldo + v)], ref[size_t(h * ldo + v)], 2e-5) << "head " << h << " value " << v;
      for (int64_t v = c.dv; v < ldo; v++) EXPECT_EQ(out[size_t(h * ldo + v)], -7.f);
    }
  }
}

TEST_P(Kernels, EmbeddingExact) {
  std::mt19937 rng(20);
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    for (int64_t D : {1, 17, 1000}) {
      const int64_t V = 37;
      Weight w = make_weight(rng, dt, V, D);
      std::vector<int32_t> ids = {0, 36, 5, 5, 17, 1, 2};
      const int64_t T = int64_t(ids.size());
      std::vector<float> a(size_t(T * D)), b(size_t(T * D));
      embedding(a.data(), w.mat, ids.data(), T);
      embedding_ref(b.data(), w.mat, ids.data(), T);
      for (int64_t i = 0; i < T * D; i++) ASSERT_TRUE(same_bits_or_nan(a[i], b[i]));
    }
  }
}

// ---- rope ----------------------------------------------------------------------------------------

TEST_P(Kernels, RopeMatchesRef) {
  std::mt19937 rng(21);
  for (RopeLayout layout : {RopeLayout::Interleaved, RopeLayout::HalfSplit}) {
    for (auto [T, H, R] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 2}, {3, 5, 64}, {9, 16, 64}, {33, 3, 128},
                           {100, 2, 8}}) {
      RopeParams p;
      p.dim = R;
      p.type = "yarn";
      p.factor = 40;
      std::vector<float> inv_freq = rope_inv_freq(p);
      const int64_t head_stride = R + 128, token_stride = H * head_stride + 7;  // q_pe after q_nope
      std::vector<float> x = random_floats(rng, size_t(T * token_stride)), ref = x;
      std::vector<int32_t> pos(static_cast<size_t>(T));
      for (int64_t t = 0; t < T; t++) pos[t] = int32_t(rng() % 200000);
      pos[0] = 0;
      const float cs = 1.25f;
      const std::vector<float> x0 = x;
      rope(x.data(), T, H, token_stride, head_stride, pos.data(), inv_freq.data(), R, cs, layout);
      rope_ref(ref.data(), T, H, token_stride, head_stride, pos.data(), inv_freq.data(), R, cs, layout);
      EXPECT_LE(rel_err(x.data(), ref.data(), x.size()), kTolF32) << T << " " << H << " " << R;
      // The inverse rotation (RoPE's backward) against its reference, and back to the start (cs² scale).
      rope(x.data(), T, H, token_stride, head_stride, pos.data(), inv_freq.data(), R, cs, layout, true);
      rope_ref(ref.data(), T, H, token_stride, head_stride, pos.data(), inv_freq.data(), R, cs, layout, true);
      EXPECT_LE(rel_err(x.data(), ref.data(), x.size()), kTolF32) << "inverse " << T << " " << H << " " << R;
      for (size_t i = 0; i < x.size(); i++) {
        const int64_t within = int64_t(i) % token_stride;  // rotated: the first R of each head
        if (within < H * head_stride && within % head_stride < R) x[i] /= cs * cs;
      }
      EXPECT_LE(rel_err(x.data(), x0.data(), x.size()), kTolF32) << "round trip";
    }
  }
}

TEST_P(Kernels, RopePreservesNormAndPositionZero) {
  std::mt19937 rng(22);
  const int64_t R = 64;
  RopeParams p;
  p.dim = R;
  std::vector<float> inv_freq = rope_inv_freq(p);
  for (RopeLayout layout : {RopeLayout::Interleaved, RopeLayout::HalfSplit}) {
    for (int32_t pos : {0, 1, 17, 4095, 160000}) {
      std::vector<float> x = random_floats(rng, size_t(R)), y = x;
      rope(y.data(), 1, 1, R, R, &pos, inv_freq.data(), R, 1.0f, layout);
      double n0 = 0, n1 = 0;
      for (int64_t i = 0; i < R; i++) {
        n0 += double(x[i]) * x[i];
        n1 += double(y[i]) * y[i];
      }
      EXPECT_NEAR(std::sqrt(n1), std::sqrt(n0), 1e-5 * std::sqrt(n0)) << pos;
      if (pos == 0) {
        for (int64_t i = 0; i < R; i++) EXPECT_EQ(y[i], x[i]);
      }
    }
  }
}

TEST_P(Kernels, RopeLayoutsRelatedByPermutation) {
  // Half-split applied to P·x equals P applied to interleaved(x), with P moving x[2i] -> i and
  // x[2i + 1] -> i + R/2.
  std::mt19937 rng(23);
  const int64_t R = 16;
  RopeParams p;
  p.dim = R;
  std::vector<float> inv_freq = rope_inv_freq(p);
  std::vector<float> x = random_floats(rng, size_t(R)), px(static_cast<size_t>(R));
  for (int64_t i = 0; i < R / 2; i++) {
    px[i] = x[2 * i];
    px[i + R / 2] = x[2 * i + 1];
  }
  int32_t pos = 123;
  rope(x.data(), 1, 1, R, R, &pos, inv_freq.data(), R, 1.0f, RopeLayout::Interleaved);
  rope(px.data(), 1, 1, R, R, &pos, inv_freq.data(), R, 1.0f, RopeLayout::HalfSplit);
  for (int64_t i = 0; i < R / 2; i++) {
    EXPECT_NEAR(px[i], x[2 * i], 1e-6);
    EXPECT_NEAR(px[i + R / 2], x[2 * i + 1], 1e-6);
  }
}

TEST(Rope, InvFreqPlainAndLinear) {
  RopeParams p;
  p.dim = 8;
  p.theta = 10000;
  std::vector<float> f = rope_inv_freq(p);
  ASSERT_EQ(f.size(), 4u);
  const float want[] = {1.0f, 0.1f, 0.01f, 0.001f};  // 10000^(-2i/8)
  for (int i = 0; i < 4; i++) EXPECT_FLOAT_EQ(f[i], want[i]);
  p.type = "linear";
  p.factor = 4;
  f = rope_inv_freq(p);
  for (int i = 0; i < 4; i++) EXPECT_FLOAT_EQ(f[i], want[i] / 4);
  EXPECT_EQ(rope_cos_sin_scale(p), 1.0f);
  EXPECT_EQ(yarn_attention_mscale(p), 1.0f);
  p.type = "nonsense";
  EXPECT_THROW(rope_inv_freq(p), std::runtime_error);
}

TEST(Rope, InvFreqYarnHandComputed) {
  // R = 8, theta = 100, factor 4, original 64, beta_fast 4, beta_slow 1:
  //   corr(n) = 8·ln(64 / (2πn)) / (2·ln 100): corr(4) = 0.812 -> low = 0; corr(1) = 2.016 -> high = 3.
  //   ramp(i) = i/3, mask = 1 − ramp = 1, 2/3, 1/3, 0; extra = 100^(-i/4) = 1, 0.3162, 0.1, 0.03162;
  //   inv = extra·mask + extra/4·(1 − mask) = 1, 0.3162·0.75, 0.1·0.5, 0.03162·0.25.
  RopeParams p;
  p.dim = 8;
  p.theta = 100;
  p.type = "yarn";
  p.factor = 4;
  p.original_max_position = 64;
  p.beta_fast = 4;
  p.beta_slow = 1;
  std::vector<float> f = rope_inv_freq(p);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_FLOAT_EQ(f[1], 0.316227766f * 0.75f);
  EXPECT_FLOAT_EQ(f[2], 0.05f);
  EXPECT_FLOAT_EQ(f[3], 0.0316227766f * 0.25f);

  // DeepSeek-V3 (R 64, theta 1e4, factor 40, original 4096, beta 32/1): low = floor(10.47) = 10,
  // high = ceil(22.51) = 23; below 10 the frequency is kept, from 23 on it is divided by 40.
  RopeParams v3;
  v3.dim = 64;
  v3.type = "yarn";
  v3.factor = 40;
  v3.mscale = 1;
  v3.mscale_all_dim = 1;
  std::vector<float> g = rope_inv_freq(v3);
  ASSERT_EQ(g.size(), 32u);
  for (int i = 0; i < 32; i++) {
    double base = std::pow(10000.0, -2.0 * i / 64);
    double ramp = std::clamp((i - 10) / 13.0, 0.0, 1.0);
    EXPECT_FLOAT_EQ(g[i], float(base / 40 * ramp + base * (1 - ramp))) << i;
  }
  EXPECT_EQ(g[10], float(std::pow(10000.0, -20.0 / 64)));
  EXPECT_FLOAT_EQ(g[31], float(std::pow(10000.0, -62.0 / 64) / 40));
  // mscale == mscale_all_dim: cos/sin unscaled; attention scale 0.1·ln 40 + 1.
  EXPECT_FLOAT_EQ(rope_cos_sin_scale(v3), 1.0f);
  EXPECT_FLOAT_EQ(yarn_attention_mscale(v3), 1.36888794541f);
  v3.mscale_all_dim = 0;
  EXPECT_FLOAT_EQ(rope_cos_sin_scale(v3), 1.36888794541f);
  EXPECT_FLOAT_EQ(yarn_attention_mscale(v3), 1.0f);
  v3.factor = 1;  // no scaling: mscale is 1
  EXPECT_FLOAT_EQ(rope_cos_sin_scale(v3), 1.0f);
}

TEST(Rope, InvFreqLlama3HandComputed) {
  // R = 8, theta 1e4 -> f = 1, 0.1, 0.01, 0.001; wavelengths 2π/f = 6.28, 62.8, 628, 6283.
  // factor 8, low 1, high 4, original 64: high-frequency cut 64/4 = 16, low-frequency cut 64/1 = 64.
  //   i0: 6.28 < 16 keep 1.  i2, i3: > 64 -> f/8.
  //   i1: smooth = (64/62.83 − 1)/(4 − 1) = 0.0061972; f = (1 − s)·0.1/8 + s·0.1 = 0.01304226.
  RopeParams p;
  p.dim = 8;
  p.theta = 10000;
  p.type = "llama3";
  p.factor = 8;
  p.low_freq_factor = 1;
  p.high_freq_factor = 4;
  p.original_max_position = 64;
  std::vector<float> f = rope_inv_freq(p);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_NEAR(f[1], 0.01304226, 1e-8);
  EXPECT_FLOAT_EQ(f[2], 0.00125f);
  EXPECT_FLOAT_EQ(f[3], 0.000125f);
  EXPECT_EQ(rope_cos_sin_scale(p), 1.0f);
}
