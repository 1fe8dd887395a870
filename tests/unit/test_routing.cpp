// DeepSeekMoE routing edge cases, computed by hand: ties, group limits, the correction bias that flips
// a selection but leaves the weights alone, softmax greedy, normalization and scaling.
#include <gtest/gtest.h>

#include <cmath>

#include "nn/moe.h"

using namespace seek;

namespace {

RouterSpec router(int64_t E, int64_t k, int64_t groups, int64_t keep, TopkMethod method, ScoringFunc score, bool norm,
                  double scale) {
  return RouterSpec{E, k, groups, keep, score, method, norm, float(scale)};
}

float logit(float p) { return std::log(p / (1 - p)); }  // sigmoid⁻¹

struct Routed {
  std::vector<int32_t> idx;
  std::vector<float> w;
};

Routed route(const RouterSpec& c, const std::vector<float>& logits, const std::vector<float>* bias = nullptr) {
  Workspace ws;
  const int64_t T = int64_t(logits.size()) / c.experts;
  Routed r{std::vector<int32_t>(size_t(T * c.experts_per_token)), std::vector<float>(size_t(T * c.experts_per_token))};
  moe_route(Pass{ws}, c, logits.data(), bias ? bias->data() : nullptr, T, r.idx.data(), r.w.data());
  return r;
}

}  // namespace

TEST(Routing, TiesGoToTheLowerIndex) {
  RouterSpec c = router(6, 2, 1, 1, TopkMethod::Greedy, ScoringFunc::Sigmoid, false, 1.0);
  Routed r = route(c, {0.5f, 2.f, 0.5f, 2.f, 2.f, -1.f});
  EXPECT_EQ(r.idx, (std::vector<int32_t>{1, 3}));
}

TEST(Routing, SigmoidNoauxTcGroupLimit) {
  // 8 experts in 4 groups of 2, keep 2 groups, choose 2 experts.
  // Group scores (sum of the two): g0 = .9+.2 = 1.1, g1 = .6+.6 = 1.2, g2 = .95+.001 ≈ .95, g3 = .5+.5 = 1.0.
  // g1 and g0 are kept. Expert 4 (.95, the best single score) sits in dropped group 2 and must not be
  // chosen; experts 2 and 3 tie at .6 and the lower index wins.
  RouterSpec c = router(8, 2, 4, 2, TopkMethod::NoauxTc, ScoringFunc::Sigmoid, true, 2.5);
  std::vector<float> p = {0.9f, 0.2f, 0.6f, 0.6f, 0.95f, 0.001f, 0.5f, 0.5f};
  std::vector<float> z;
  for (float x : p) z.push_back(logit(x));
  std::vector<float> zero(8, 0.f);
  Routed r = route(c, z, &zero);
  EXPECT_EQ(r.idx, (std::vector<int32_t>{0, 2}));
  // Weights: the unbiased scores, normalized over the chosen two, times 2.5.
  EXPECT_NEAR(r.w[0], 2.5 * 0.9 / 1.5, 1e-5);
  EXPECT_NEAR(r.w[1], 2.5 * 0.6 / 1.5, 1e-5);
}

TEST(Routing, BiasFlipsSelectionNotWeights) {
  RouterSpec c = router(4, 2, 1, 1, TopkMethod::NoauxTc, ScoringFunc::Sigmoid, true, 1.0);
  std::vector<float> p = {0.8f, 0.7f, 0.6f, 0.2f};
  std::vector<float> z;
  for (float x : p) z.push_back(logit(x));
  std::vector<float> none(4, 0.f);
  Routed plain = route(c, z, &none);
  EXPECT_EQ(plain.idx, (std::vector<int32_t>{0, 1}));
  // +0.15 on expert 2 lifts it above expert 1 (0.75 > 0.7) for selection only.
  std::vector<float> bias = {0.f, 0.f, 0.15f, 0.f};
  Routed b = route(c, z, &bias);
  EXPECT_EQ(b.idx, (std::vector<int32_t>{0, 2}));
  EXPECT_NEAR(b.w[0], 0.8 / 1.4, 1e-6);  // 0.8 / (0.8 + 0.6): unbiased scores
  EXPECT_NEAR(b.w[1], 0.6 / 1.4, 1e-6);
  // A bias that moves the ranking of the chosen experts only reorders them; the weight of each expert
  // is unchanged.
  std::vector<float> reorder = {0.f, 0.2f, 0.f, 0.f};
  Routed o = route(c, z, &reorder);
  EXPECT_EQ(o.idx, (std::vector<int32_t>{1, 0}));
  EXPECT_NEAR(o.w[0], 0.7 / 1.5, 1e-6);
  EXPECT_NEAR(o.w[1], 0.8 / 1.5, 1e-6);
}

TEST(Routing, SoftmaxGreedyWithoutNormalization) {
  RouterSpec c = router(4, 2, 1, 1, TopkMethod::Greedy, ScoringFunc::Softmax, false, 16.0);
  std::vector<float> z = {1.f, 3.f, 2.f, 0.f};
  Routed r = route(c, z);
  double s = std::exp(1.0) + std::exp(3.0) + std::exp(2.0) + 1.0;
  EXPECT_EQ(r.idx, (std::vector<int32_t>{1, 2}));
  EXPECT_NEAR(r.w[0], 16 * std::exp(3.0) / s, 1e-5);
  EXPECT_NEAR(r.w[1], 16 * std::exp(2.0) / s, 1e-5);
}

TEST(Routing, GroupLimitedGreedyUsesGroupMax) {
  // Group max: g0 = max(.30, .29) = .30 vs g1 = max(.31, .10) = .31 → keep g1 only; k = 2 inside it.
  // A sum rule would keep g0 (.59 > .32): this checks the V2 rule is the max.
  RouterSpec c = router(4, 2, 2, 1, TopkMethod::GroupLimitedGreedy, ScoringFunc::Softmax, false, 1.0);
  std::vector<float> p = {0.30f, 0.29f, 0.31f, 0.10f};
  std::vector<float> z;
  for (float x : p) z.push_back(std::log(x));  // softmax recovers p / sum(p)
  Routed r = route(c, z);
  EXPECT_EQ(r.idx, (std::vector<int32_t>{2, 3}));
}

TEST(Routing, SeveralTokensIndependently) {
  RouterSpec c = router(4, 1, 1, 1, TopkMethod::Greedy, ScoringFunc::Sigmoid, true, 1.0);
  Routed r = route(c, {0, 1, 0, 0, /**/ 5, 0, 0, 0, /**/ 0, 0, 0, 9});
  EXPECT_EQ(r.idx, (std::vector<int32_t>{1, 0, 3}));
  // k = 1: norm_topk_prob does not apply (DeepSeek normalizes only when k > 1).
  EXPECT_NEAR(r.w[2], 1 / (1 + std::exp(-9.0)), 1e-6);
}
