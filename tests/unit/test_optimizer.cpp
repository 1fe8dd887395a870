// AdamW against PyTorch's torch.optim.AdamW (golden from scripts/reference/adamw_golden.py), the
// schedules at their corners, and gradient clipping.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "train/optimizer.h"
#include "util/error.h"

using namespace seek::train;

TEST(AdamW, MatchesPyTorch) {
  std::ifstream in(seek::test::data_path("data/train/adamw_golden.json"));
  ASSERT_TRUE(in) << "missing golden";
  nlohmann::json j = nlohmann::json::parse(in);
  std::vector<float> p = j["p0"].get<std::vector<float>>();
  const int64_t n = int64_t(p.size());
  std::vector<float> m(p.size(), 0.f), v(p.size(), 0.f);
  AdamWOptions o;
  o.beta1 = j["beta1"];
  o.beta2 = j["beta2"];
  o.eps = j["eps"];
  o.weight_decay = j["weight_decay"];
  const double lr = j["lr"];
  for (size_t step = 0; step < j["grads"].size(); ++step) {
    std::vector<float> g = j["grads"][step].get<std::vector<float>>();
    adamw_step(p.data(), g.data(), m.data(), v.data(), nullptr, n, int64_t(step) + 1, lr, o);
    std::vector<float> want = j["after"][step].get<std::vector<float>>();
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(p[size_t(i)], want[size_t(i)], 2e-6) << "step " << step + 1 << " value " << i;
  }
}

TEST(AdamW, DecayMaskAndFirstStep) {
  // Step 1 with g: m̂ = g, v̂ = g², so the update is lr·(sign(g)·|g|/(|g|+eps) + wd·p).
  std::vector<float> p = {1.f, 1.f}, g = {0.5f, 0.5f}, m(2, 0.f), v(2, 0.f);
  const uint8_t decay[2] = {1, 0};
  AdamWOptions o;
  o.weight_decay = 0.1;
  adamw_step(p.data(), g.data(), m.data(), v.data(), decay, 2, 1, 0.01, o);
  EXPECT_NEAR(p[0], 1.0 - 0.01 * (1.0 + 0.1), 1e-6);
  EXPECT_NEAR(p[1], 1.0 - 0.01, 1e-6);
}

TEST(Schedule, WarmupCosineAndWsd) {
  Schedule c{"cosine", 10, 110, 0.1, 0.2};
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 1), 0.1);
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 10), 1.0);
  EXPECT_NEAR(lr_multiplier(c, 60), 0.55, 1e-12);  // halfway through the cosine: (1 + 0.1) / 2
  EXPECT_NEAR(lr_multiplier(c, 110), 0.1, 1e-12);
  EXPECT_NEAR(lr_multiplier(c, 500), 0.1, 1e-12);
  Schedule w{"wsd", 10, 100, 0.0, 0.2};
  EXPECT_DOUBLE_EQ(lr_multiplier(w, 50), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(w, 80), 1.0);
  EXPECT_NEAR(lr_multiplier(w, 90), 0.5, 1e-12);
  EXPECT_NEAR(lr_multiplier(w, 100), 0.0, 1e-12);
  EXPECT_THROW(lr_multiplier(Schedule{"step", 0, 10, 0.1, 0.2}, 3), seek::Error);
}

TEST(ClipGradNorm, ScalesOnlyAboveTheLimit) {
  std::vector<float> g = {3.f, 4.f};
  EXPECT_DOUBLE_EQ(clip_grad_norm(g.data(), 2, 10.0), 5.0);
  EXPECT_EQ(g[0], 3.f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(g.data(), 2, 1.0), 5.0);
  EXPECT_NEAR(std::sqrt(g[0] * g[0] + g[1] * g[1]), 1.0, 1e-5);
}
