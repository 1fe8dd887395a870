// Whole-model training gradients: central finite differences of the total loss (main + λ·MTP +
// α·balance) on sampled parameters of every type of tiny model.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/random_checkpoint.h"
#include "test_util.h"
#include "train/train_model.h"

using namespace seek;
using namespace seek::train;

class TrainModelTypes : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainModelTypes, GradientsMatchFiniteDifferences) {
  test::TempDir dir;
  write_random_checkpoint(dir.path.string(), test::tiny_config(GetParam()), {DType::F32, 17, 1});
  TrainModel m = TrainModel::from_checkpoint(dir.path.string());
  const int64_t B = 2, T = 7, V = m.config().vocab_size;
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < B * (T + 1); ++i) ids.push_back(int32_t((i * 29 + 5) % V));
  const LossWeights lw{0.3, 0.01};
  LossParts base = m.forward_backward(ids.data(), B, T, lw);
  EXPECT_GT(base.main, 0.0);
  if (m.config().num_nextn_predict_layers > 0) EXPECT_GT(base.mtp, 0.0);
  if (m.config().n_routed_experts > 0) EXPECT_GT(base.balance, 0.0);
  const std::vector<float> grad = m.grad();
  // Sample entries from every parameter tensor (at most 4 each), skipping the routing bias.
  std::mt19937 rng(3);
  double gmax = 0;
  for (float x : grad) gmax = std::max(gmax, double(std::fabs(x)));
  int checked = 0, bad = 0;
  for (const auto& p : m.params()) {
    if (p.name.find("e_score_correction_bias") != std::string::npos) continue;
    for (int s = 0; s < 4; ++s) {
      const int64_t i = p.offset + int64_t(rng() % uint64_t(p.numel));
      float& w = m.data()[size_t(i)];
      const float w0 = w, h = 1e-2f * std::max(0.1f, std::fabs(w0));
      w = w0 + h;
      const double lp = m.loss(ids.data(), B, T, lw).total;
      w = w0 - h;
      const double lm = m.loss(ids.data(), B, T, lw).total;
      w = w0;
      const double numeric = (lp - lm) / (2.0 * double(h));
      const double err = std::fabs(numeric - grad[size_t(i)]) / (1e-3 * gmax + 3e-2 * std::fabs(grad[size_t(i)]));
      if (err > 1.0) {
        ++bad;
        ADD_FAILURE() << p.name << "[" << i - p.offset << "]: analytic " << grad[size_t(i)] << " numeric " << numeric;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 40);
  EXPECT_EQ(bad, 0);
}

INSTANTIATE_TEST_SUITE_P(All, TrainModelTypes, ::testing::Values("deepseek_v3", "deepseek_v2", "qwen2", "llama"));
