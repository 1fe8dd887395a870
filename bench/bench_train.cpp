// bench_train.cpp — training throughput of seek's trainer and its model FLOPs utilization against this
// machine's f32 GEMM peak, both measured in the same run.
//
// One step = forward + backward (main loss, MTP loss, sequence-wise balance loss) + global-norm
// clipping + AdamW, on a batch of random token ids, for a model made from a config (default
// configs/train-bench.json: hidden 256, 4 layers 1 dense + 3 MoE, 8 heads, MLA q_lora 128 / kv_lora 64,
// 16 routed experts top-4 + 1 shared, MTP) with random weights. Model FLOPs per token come from
// train/flops.h (3 × forward GEMM and attention multiply-adds × 2; see there), so MFU = FLOPs/s of
// that count / the sgemm peak measured by the same binary right before and after the timed steps.
//
// Its peer is scripts/reference/train_bench.py, the same step in PyTorch; scripts/bench_train.sh runs
// the two side by side. Threads: OMP_NUM_THREADS (default: all cores). Like seek, it first asks OpenBLAS
// for its AVX-512 kernels (re-executing itself if needed).
//
// Usage: bench_train [--config FILE] [--batch 8] [--seq 256] [--steps 5] [--fp8] [--json]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>


#include "model/random_checkpoint.h"
#include "tensor/backend.h"
#include "tensor/blas.h"
#include "tensor/roofline.h"
#include "train/flops.h"
#
#include "train/optimizer.h"
#include "train/train_model.h"
#include "util/rng.h"

using namespace seek;
using namespace seek::train;

int main(int argc, char** argv) {
  blas_prefer_avx512(argv);
  std::string config = "configs/train-bench.json";
  int64_t B = 8, T = 256, steps = 5;
  bool fp8 = false, json_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_train: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--config") config = next();
    else if (a == "--batch") B = std::stoll(next());
    else if (a == "--seq") T = std::stoll(next());
    else if (a == "--steps") steps = std::stoll(next());
    else if (a == "--fp8") fp8 = true;
    else if (a == "--json") json_only = true;
    else {
      std::fprintf(stderr, "usage: bench_train [--config FILE] [--batch B] [--seq T] [--steps N] [--fp8] [--json]\n");
      return 2;
    }
  }
  std::ifstream in(config);
  if (!in) {
    std::fprintf(stderr, "bench_train: cannot read %s\n", config.c_str());
    return 2;
  }
  const nlohmann::json cj = nlohmann::json::parse(in);
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("seek-bench-train-" + std::to_string(::getpid()));
  write_random_checkpoint(dir.string(), cj, {DType::F32, 1, 1});
  TrainModel m = TrainModel::from_checkpoint(dir.string());
  std::filesystem::remove_all(dir);
  m.set_fp8(fp8);

  const int64_t n = int64_t(m.data().size()), V = m.config().vocab_size;
  std::vector<float> mom(size_t(n), 0.f), var(size_t(n), 0.f);
  std::vector<uint8_t> decay(size_t(n), 0);
  for (const auto& p : m.params())
    if (p.decay) std::fill(decay.begin() + p.offset, decay.begin() + p.offset + p.numel, 1);
  SplitMix64 rng(7);
  std::vector<int32_t> ids(size_t(B * (T + 1)));
  for (auto& id : ids) id = int32_t(rng.below(uint64_t(V)));
  const LossWeights lw{0.3, 1e-4};
  AdamWOptions opt;
  int64_t t = 0;
  double loss = 0;
  auto step = [&] {
    loss = m.forward_backward(ids.data(), B, T, lw).total;
    // As the training loop does (train/trainer.cpp): the clipping factor applied inside AdamW.
    const double norm = grad_norm(m.grad().data(), n);
    adamw_step(m.data().data(), m.grad().data(), mom.data(), var.data(), decay.data(), n, ++t, 1e-3, opt,
               clip_factor(norm, 1.0));
  };

  const double peak_before = measure_sgemm_peak(2048, 5);
  step();  // warm-up: first-touch of every buffer
  std::vector<double> secs;
  for (int64_t s = 0; s < steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (!json_only) std::fprintf(stderr, "bench_train: step %lld  %.3f s  loss %.4f\n", (long long)s + 1, secs.back(), loss);
  }
  const double peak_after = measure_sgemm_peak(2048, 5);
  const double peak = std::max(peak_before, peak_after);
  std::sort(secs.begin(), secs.end());
  const double med = secs[secs.size() / 2];
  const double fpt = train_flops_per_token(m.config(), T);
  const double tps = double(B * T) / med;
  const double mfu = tps * fpt / peak;
  nlohmann::json j = {{"impl", "seek"},        {"tokens_per_s", tps},      {"step_seconds_median", med},
                      {"flops_per_token", fpt}, {"gemm_peak_gflops", peak / 1e9}, {"mfu", mfu},
                      {"threads", max_threads()}, {"blas", blas_core_name()}, {"batch", B},
                      {"seq", T},              {"fp8", fp8},               {"params", n},
                      {"config", config}};
  if (!json_only)
    std::fprintf(stderr,
                 "bench_train: %lld params, batch %lld x %lld, %.1f MFLOP/token: %.0f tokens/s, %.1f GFLOP/s = %.1f%% "
                 "of the sgemm peak %.0f GFLOP/s (%s, %d threads)\n",
                 (long long)n, (long long)B, (long long)T, fpt / 1e6, tps, tps * fpt / 1e9, 100 * mfu, peak / 1e9,
                 blas_core_name(), max_threads());
  std::printf("%s\n", j.dump().c_str());
  return 0;
}
