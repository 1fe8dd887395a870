// bench_kernels.cpp — how close seek's matmul comes to this machine's limits.
//
//   decode  (T = 1):   GB/s of weights read by matmul (bf16, f16, f8 weights; and the AVX512-BF16
//                      variant matmul_bf16_dpbf16) vs the memory-read bandwidth of a plain streaming
//                      sum (the better of two software-prefetch settings) over a 1 GiB buffer. The two are measured in
//                      alternating rounds and the ratio is taken per round (median reported), because
//                      a VM's memory bandwidth drifts with its neighbours.
//   small T:           time per token of bf16 matmul from T = 1 to 128, across the direct/panel switch;
//                      and the bench model's lm head [129280, 1024] at T = 1 to 16 (a server step).
//   prefill (T = 512): GFLOP/s of matmul on bf16 (and f8) weights vs cblas_sgemm on f32 weights of the
//                      same shape — the peak seek's panel path can reach, since it ends in that sgemm.
// Threads: OMP_NUM_THREADS (default: all cores).
//
// Like seek itself, it first asks OpenBLAS for its AVX-512 kernels (blas_prefer_avx512, which may
// re-execute the program); the core in use is printed. Buffers hold non-repeating pseudo-random data, so
// that nothing (a compressing or page-merging memory system) can serve them faster than real weights.
//
// Does not: check results (tests/unit/test_kernels.cpp does).
//   quant (--quant):   decode GB/s of weight bytes of the GGUF block formats (Q8_0, Q5_0, Q4_K, Q5_K, Q6_K; int8 and
//                      exact paths) at T = 1, 2, 4, 8, 16 on [8192, 4096], against bf16 in alternating rounds;
//                      enough copies of each matrix are cycled through that they never sit in the L3; and
//                      prefill GFLOP/s at T = 512 of Q4_K/Q6_K (int8 GEMM, exact panels) against f32 sgemm.
// Usage: bench_kernels [--quick] [--portable] [--quant] [--quant-prefill]   (--portable: the kernels' portable
// paths, as on a CPU without AVX-512; --quant: only the quant section; --quant-prefill: only its prefill part)
// GCC 12's avx512fintrin.h trips -Wuninitialized when its reductions are inlined (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "tensor/backend.h"
#include "tensor/blas.h"
#include "tensor/cpu.h"
#include "tensor/kernels.h"
#include "tensor/kernels_avx512.h"
#include "tensor/quant.h"

using namespace seek;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best of `reps` runs after one warm-up, in seconds.
double best_time(int reps, const std::function<void()>& fn) {
  fn();
  double best = 1e30;
  for (int i = 0; i < reps; i++) {
    double t0 = now_s();
    fn();
    best = std::min(best, now_s() - t0);
  }
  return best;
}

uint64_t mix(uint64_t z) {  // splitmix64's finaliser
  z *= 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A uniform float in [-1, 1) from an index.
float rand_at(uint64_t i) { return float(int64_t(mix(i) >> 40) - (1 << 23)) / float(1 << 23); }

// Sums with software prefetch, `ahead` bytes ahead into L1 (HINT = T0) or L2 (T1).
template <int ahead, int hint>
__attribute__((target("avx512f"))) float sum_avx512(const float* p, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const char* c = reinterpret_cast<const char*>(p + i);
    for (int l = 0; l < 4; l++) _mm_prefetch(c + ahead + 64 * l, _mm_hint(hint));
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  for (; i < n; i++) s += p[i];
  return s;
}

float sum_portable(const float* p, int64_t n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++) s += p[i];
  return s;
}

// Memory-read bandwidth: every thread sums its share of a buffer far larger than the caches.
struct Bandwidth {
  int64_t n;
  float* buf;
  explicit Bandwidth(size_t bytes) : n(int64_t(bytes / 4)) {
    buf = static_cast<float*>(std::aligned_alloc(64, size_t(n) * 4));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) buf[i] = rand_at(uint64_t(i));  // first touch by the reading thread
  }
  ~Bandwidth() { std::free(buf); }
  // The better of two prefetch distances (the read pattern matmul uses at T = 1 and a shorter one).
  double measure_gbs(int reps) const {
    const bool avx = cpu_features().avx512f;
    volatile float sink = 0;
    double best = 0;
    for (int variant = 0; variant < (avx ? 2 : 1); variant++) {
      double t = best_time(reps, [&] {
        float total = 0;
#pragma omp parallel reduction(+ : total)
        {
          int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
          int64_t a = n * id / nt / 64 * 64, b = id + 1 == nt ? n : n * (id + 1) / nt / 64 * 64;
          if (!avx)
            total += sum_portable(buf + a, b - a);
          else if (variant == 0)
            total += sum_avx512<2048, _MM_HINT_T0>(buf + a, b - a);
          else
            total += sum_avx512<4096, _MM_HINT_T1>(buf + a, b - a);
        }
        sink = total;
      });
      best = std::max(best, double(n) * 4 / t / 1e9);
    }
    (void)sink;
    return best;
  }
};

struct Weights {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  Mat mat;
};

Weights make_weights(DType dt, int64_t N, int64_t K) {
  Weights w;
  const int64_t n = N * K;
  w.bytes.resize(size_t(n) * dtype_size(dt));
  uint8_t* b = w.bytes.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float v = rand_at(uint64_t(i) + 12345);
    if (dt == DType::BF16) { uint16_t h = f32_to_bf16(v); std::memcpy(b + 2 * i, &h, 2); }
    if (dt == DType::F16) { uint16_t h = f32_to_f16(v); std::memcpy(b + 2 * i, &h, 2); }
    if (dt == DType::F8_E4M3) b[i] = f32_to_f8e4m3(v * 400);
    if (dt == DType::F32) std::memcpy(b + 4 * i, &v, 4);
  }
  w.mat = Mat{dt, w.bytes.data(), N, K};
  if (dt == DType::F8_E4M3) {
    w.scales.assign(size_t(((N + 127) / 128) * ((K + 127) / 128)), 1.0f / 400);
    w.mat.scale_inv = w.scales.data();
  }
  return w;
}

std::vector<float> random_vec(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; i++) v[i] = rand_at(i + 999);
  return v;
}

const char* dtype_label(DType t) {
  switch (t) {
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
    case DType::F8_E4M3: return "f8";
    default: return "f32";
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}


// The quant section: GB/s of weight bytes read by matmul at small T, bf16 and the block formats (each with
// the int8 path where the CPU has it, and forced exact) measured in alternating rounds (the machine's
// bandwidth drifts); best time per variant, median over rounds of the per-round ratio to bf16.
// in_cache: [512, 4096] (4 MiB of bf16, about the L2s), one copy, read from cache: the kernels' compute
// ceilings rather than memory bandwidth.
void bench_quant(bool quick, bool in_cache) {
  const int64_t N = in_cache ? 512 : 8192, K = 4096;
  const DType types[] = {DType::BF16, DType::Q8_0, DType::Q5_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};
  constexpr int nt = int(std::size(types));
  std::vector<float> f(size_t(N * K));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N * K; i++) f[size_t(i)] = rand_at(uint64_t(i) + 12345);
  std::vector<std::vector<uint8_t>> copies[nt];  // each format's matrix, copied to > 256 MB in all
  size_t bytes[nt];
  for (int i = 0; i < nt; i++) {
    std::vector<uint8_t> one;
    if (types[i] == DType::BF16) {
      one.resize(size_t(N * K) * 2);
      for (int64_t j = 0; j < N * K; j++) {
        const uint16_t h = f32_to_bf16(f[size_t(j)]);
        std::memcpy(&one[size_t(2 * j)], &h, 2);
      }
    } else {
      one.resize(dtype_nbytes(types[i], K) * size_t(N));
      quantize_rows(types[i], f.data(), N, K, one.data());
    }
    bytes[i] = one.size();
    const size_t n = in_cache ? 1 : std::max<size_t>(2, (size_t(256) << 20) / one.size() + 1);
    copies[i].assign(n, one);
  }
  const bool int8 = avx512::quant_int8_activations();
  struct Variant { int type; bool exact; };
  std::vector<Variant> vs = {{0, false}};
  for (int i = 1; i < nt; i++) {
    if (int8) vs.push_back({i, false});
    vs.push_back({i, true});
  }
  std::printf("\nquant decode%s, [%lld, %lld]: GB/s of weight bytes (best of rounds), ratio to bf16 (median per round);"
              " int8 = activations rounded to 8 bits (VNNI), exact = f32 activations\n",
              in_cache ? " from cache" : "", (long long)N, (long long)K);
  std::printf("  %-12s %4s %9s %9s %7s\n", "format", "T", "ms", "GB/s", "vs bf16");
  for (int64_t T : {1, 2, 4, 8, 16}) {
    std::vector<float> x = random_vec(size_t(T * K)), y(size_t(T * N));
    const size_t nv = vs.size();
    std::vector<double> best(nv, 1e30), last(nv);
    std::vector<std::vector<double>> ratios(nv);
    for (int round = 0; round < (quick ? 3 : 5); round++) {
      for (size_t v = 0; v < nv; v++) {
        const int i = vs[v].type;
        const bool was = avx512::set_quant_int8_activations(!vs[v].exact);
        auto& c = copies[i];
        const double t = best_time(in_cache ? 20 : 1, [&] {
          for (auto& b : c) matmul(y.data(), x.data(), Mat{types[i], b.data(), N, K}, T);
        }) / double(c.size());
        avx512::set_quant_int8_activations(was);
        best[v] = std::min(best[v], t);
        last[v] = t;
      }
      for (size_t v = 0; v < nv; v++) ratios[v].push_back((double(bytes[vs[v].type]) / last[v]) / (double(bytes[0]) / last[0]));
    }
    for (size_t v = 0; v < nv; v++) {
      const int i = vs[v].type;
      const std::string label = std::string(dtype_name(types[i])) + (i == 0 ? "" : vs[v].exact ? " exact" : " int8");
      std::printf("  %-12s %4lld %9.3f %9.1f %7.2f\n", label.c_str(), (long long)T, best[v] * 1e3,
                  double(bytes[i]) / best[v] / 1e9, median(ratios[v]));
    }
  }
}


// Prefill on block-format weights: GFLOP/s (2 N K T / time) of matmul at T = 512 on the shapes of the
// R1-Distill-Qwen-1.5B MLP ([8960, 1536] gate/up, [1536, 8960] down): Q8_0, Q4_K and Q6_K through the int8 GEMM
// (where the CPU has VNNI) and through the exact f32 panels, and cblas_sgemm on f32 weights (the panels'
// ceiling), in alternating rounds; best time per variant, median per-round ratio to sgemm.
void bench_quant_prefill(bool quick) {
  const int64_t T = 512;
  const bool int8 = avx512::quant_int8_activations();
  for (auto [N, K] : {std::pair<int64_t, int64_t>{8960, 1536}, {1536, 8960}}) {
    std::vector<float> f(size_t(N * K));
    for (int64_t i = 0; i < N * K; i++) f[size_t(i)] = rand_at(uint64_t(i) + 777);
    std::vector<uint8_t> q8(dtype_nbytes(DType::Q8_0, K) * size_t(N)), q4(dtype_nbytes(DType::Q4_K, K) * size_t(N)),
        q6(dtype_nbytes(DType::Q6_K, K) * size_t(N));
    quantize_rows(DType::Q8_0, f.data(), N, K, q8.data());
    quantize_rows(DType::Q4_K, f.data(), N, K, q4.data());
    quantize_rows(DType::Q6_K, f.data(), N, K, q6.data());
    std::vector<float> x = random_vec(size_t(T * K)), y(size_t(T * N));
    struct Variant { const char* name; std::function<void()> fn; };
    auto quant = [&](DType t, std::vector<uint8_t>& b, bool exact) {
      return [&, t, exact] {
        const bool was = avx512::set_quant_int8_activations(!exact);
        matmul(y.data(), x.data(), Mat{t, b.data(), N, K}, T);
        avx512::set_quant_int8_activations(was);
      };
    };
    std::vector<Variant> vs = {{"f32 sgemm", [&] { matmul(y.data(), x.data(), Mat{DType::F32, f.data(), N, K}, T); }}};
    if (int8) vs.push_back({"Q8_0 int8", quant(DType::Q8_0, q8, false)});
    vs.push_back({"Q8_0 exact", quant(DType::Q8_0, q8, true)});
    if (int8) vs.push_back({"Q4_K int8", quant(DType::Q4_K, q4, false)});
    vs.push_back({"Q4_K exact", quant(DType::Q4_K, q4, true)});
    if (int8) vs.push_back({"Q6_K int8", quant(DType::Q6_K, q6, false)});
    vs.push_back({"Q6_K exact", quant(DType::Q6_K, q6, true)});
    const size_t nv = vs.size();
    std::vector<double> best(nv, 1e30), last(nv);
    std::vector<std::vector<double>> ratios(nv);
    for (int round = 0; round < (quick ? 2 : 5); round++) {
      for (size_t v = 0; v < nv; v++) {
        last[v] = best_time(1, vs[v].fn);
        best[v] = std::min(best[v], last[v]);
      }
      for (size_t v = 0; v < nv; v++) ratios[v].push_back(last[0] / last[v]);
    }
    std::printf("\nquant prefill, T = %lld, [%lld, %lld]: GFLOP/s (best of rounds), ratio to f32 sgemm (median per round)\n",
                (long long)T, (long long)N, (long long)K);
    for (size_t v = 0; v < nv; v++)
      std::printf("  %-12s %9.3f ms %8.1f GFLOP/s %6.2f\n", vs[v].name, best[v] * 1e3,
                  2.0 * double(N * K * T) / best[v] / 1e9, median(ratios[v]));
  }
}
}  // namespace

int main(int argc, char** argv) {
  blas_prefer_avx512(argv);
  bool quick = false, quant_only = false, prefill_only = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    else if (std::strcmp(argv[i], "--portable") == 0) use_portable_kernels(true);
    else if (std::strcmp(argv[i], "--quant") == 0) quant_only = true;
    else if (std::strcmp(argv[i], "--quant-prefill") == 0) prefill_only = true;
    else {
      std::fprintf(stderr, "usage: bench_kernels [--quick] [--portable] [--quant] [--quant-prefill]\n");
      return 2;
    }
  }
  std::printf("seek bench_kernels: %d threads, cpu: %s, OpenBLAS core: %s\n", omp_get_max_threads(),
              cpu_features_string(), openblas_get_corename());
  if (prefill_only) {
    bench_quant_prefill(quick);
    return 0;
  }
  if (quant_only) {
    bench_quant_prefill(quick);
    bench_quant(quick, false);
    bench_quant(quick, true);
    return 0;
  }

  // ---- decode: T = 1 ------------------------------------------------------------------------------
  const Bandwidth bw(size_t(1) << 30);
  std::printf("\ndecode, T = 1: weights read per second vs streaming-read bandwidth, measured in alternation\n");
  std::printf("  %-30s %9s %9s %9s %7s\n", "weights [N, K]", "time ms", "GB/s", "bw GB/s", "ratio");
  double big_bf16_ratio = 0;
  struct Shape { int64_t N, K; };
  const Shape decode_shapes[] = {{129280, 1024}, {18432, 7168}, {512, 1024}};
  for (Shape s : decode_shapes) {
    if (quick && s.N == 18432) continue;
    for (DType dt : {DType::BF16, DType::F16, DType::F8_E4M3}) {
      Weights w = make_weights(dt, s.N, s.K);
      std::vector<float> x = random_vec(size_t(s.K)), y(size_t(s.N));
      const double bytes = double(w.bytes.size());
      const int reps = bytes > 1e8 ? 3 : 200, rounds = quick ? 3 : 5;
      auto run = [&](const char* what, const std::function<void()>& fn) {
        std::vector<double> ratios;
        double best_t = 1e30, best_bw = 0;
        for (int r = 0; r < rounds; r++) {
          const double b = bw.measure_gbs(3);
          const double t = best_time(reps, fn);
          ratios.push_back(bytes / t / 1e9 / b);
          best_t = std::min(best_t, t);
          best_bw = std::max(best_bw, b);
        }
        char label[64];
        std::snprintf(label, sizeof label, "%s [%lld, %lld] %s", dtype_label(dt), (long long)s.N, (long long)s.K,
                      what);
        std::printf("  %-30s %9.3f %9.1f %9.1f %7.2f\n", label, best_t * 1e3, bytes / best_t / 1e9, best_bw,
                    median(ratios));
        return median(ratios);
      };
      double ratio = run("", [&] { matmul(y.data(), x.data(), w.mat, 1); });
      if (dt == DType::BF16 && s.N == 129280) big_bf16_ratio = ratio;
      if (dt == DType::BF16) run("dpbf16", [&] { matmul_bf16_dpbf16(y.data(), x.data(), w.mat, 1); });
    }
  }
  std::printf("  ([512, 1024] is 1 MiB and stays in cache between calls: its ratio exceeds 1)\n");

  // ---- small T ------------------------------------------------------------------------------------
  std::printf("\nsmall T, bf16 [4096, 4096] (32 MiB, about the L3): time per token across the direct (T <= 64)"
              " / panel switch\n");
  {
    Weights w = make_weights(DType::BF16, 4096, 4096);
    for (int64_t T : {1, 2, 4, 8, 16, 32, 64, 65, 128}) {
      std::vector<float> x = random_vec(size_t(T * 4096)), y(size_t(T * 4096));
      double t = best_time(quick ? 5 : 20, [&] { matmul(y.data(), x.data(), w.mat, T); });
      std::printf("  T = %-4lld %9.3f ms %8.3f ms/token %7.1f GFLOP/s\n", (long long)T, t * 1e3, t * 1e3 / T,
                  2.0 * T * 4096 * 4096 / t / 1e9);
    }
  }

  std::printf("\nsmall T, bf16 [129280, 1024] (265 MB, the bench model's lm head: a server step with T streams)\n");
  {
    Weights w = make_weights(DType::BF16, 129280, 1024);
    const double bytes = double(w.bytes.size());
    for (int64_t T : {1, 2, 4, 8, 16}) {
      std::vector<float> x = random_vec(size_t(T * 1024)), y(size_t(T * 129280));
      double t = best_time(quick ? 2 : 5, [&] { matmul(y.data(), x.data(), w.mat, T); });
      std::printf("  T = %-4lld %9.3f ms %8.1f GB/s %7.1f GFLOP/s\n", (long long)T, t * 1e3, bytes / t / 1e9,
                  2.0 * T * 129280 * 1024 / t / 1e9);
    }
  }

  // ---- prefill: T = 512 ------------------------------------------------------------------------
  std::printf("\nprefill, T = 512: matmul on bf16 / f8 weights vs cblas_sgemm on f32 weights of the same shape\n");
  std::printf("  %-16s %12s %12s %7s %12s %7s\n", "weights [N, K]", "sgemm GF/s", "bf16 GF/s", "ratio", "f8 GF/s",
              "ratio");
  double prefill_ratio = 0;
  const Shape prefill_shapes[] = {{2048, 7168}, {4096, 1024}};
  for (Shape s : prefill_shapes) {
    const int64_t T = 512;
    const double flops = 2.0 * T * s.N * s.K;
    std::vector<float> x = random_vec(size_t(T * s.K)), y(size_t(T * s.N));
    const int reps = quick ? 2 : 5;
    Weights wf = make_weights(DType::F32, s.N, s.K);
    Weights wb = make_weights(DType::BF16, s.N, s.K);
    Weights w8 = make_weights(DType::F8_E4M3, s.N, s.K);
    const float* W = reinterpret_cast<const float*>(wf.bytes.data());
    double t_sgemm = 1e30, t_bf16 = 1e30, t_f8 = 1e30;
    for (int round = 0; round < 2; round++) {  // alternate, as for decode
      t_sgemm = std::min(t_sgemm, best_time(reps, [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(T), int(s.N), int(s.K), 1.0f, x.data(), int(s.K),
                    W, int(s.K), 0.0f, y.data(), int(s.N));
      }));
      t_bf16 = std::min(t_bf16, best_time(reps, [&] { matmul(y.data(), x.data(), wb.mat, T); }));
      t_f8 = std::min(t_f8, best_time(reps, [&] { matmul(y.data(), x.data(), w8.mat, T); }));
    }
    char label[48];
    std::snprintf(label, sizeof label, "[%lld, %lld]", (long long)s.N, (long long)s.K);
    if (prefill_ratio == 0) prefill_ratio = t_sgemm / t_bf16;
    std::printf("  %-16s %12.1f %12.1f %7.2f %12.1f %7.2f\n", label, flops / t_sgemm / 1e9, flops / t_bf16 / 1e9,
                t_sgemm / t_bf16, flops / t_f8 / 1e9, t_sgemm / t_f8);
  }

  std::printf("\nsummary: decode bf16 [129280, 1024] at %.2f of memory bandwidth; prefill bf16 [2048, 7168] at "
              "%.2f of sgemm\n",
              big_bf16_ratio, prefill_ratio);
  bench_quant_prefill(quick);
  bench_quant(quick, false);
  bench_quant(quick, true);
  return 0;
}
