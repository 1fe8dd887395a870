// GRPO loss (rl/grpo_loss.h): group advantages (equal rewards give 0, sample vs population std, Dr. GRPO
// without std), dynamic sampling's keep_group, dlogp against central finite differences of the loss away
// from clip boundaries for all three variants, the clip's zero-gradient regions on both sides, and how
// GRPO, Dr. GRPO and DAPO weigh the tokens of sequences of different lengths.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "rl/grpo_loss.h"
#include "util/error.h"
#include "util/rng.h"

using namespace seek;
using namespace seek::rl;

namespace {

const GrpoOptions::Variant kVariants[] = {GrpoOptions::Grpo, GrpoOptions::DrGrpo, GrpoOptions::Dapo};

// A random batch: response rows of varying lengths after a prompt, ratios spread over [0.5, 1.6].
struct Batch {
  int64_t B, T;
  std::vector<float> logp, old_logp, ref_logp, mask, adv;
  GrpoBatch view() const { return {B, T, logp.data(), old_logp.data(), ref_logp.data(), mask.data(), adv.data()}; }
};

Batch random_batch(int64_t B, int64_t T, uint64_t seed) {
  SplitMix64 rng(seed);
  Batch b{B, T, {}, {}, {}, {}, {}};
  const size_t n = size_t(B * T);
  b.logp.resize(n), b.old_logp.resize(n), b.ref_logp.resize(n), b.mask.assign(n, 0.f), b.adv.resize(size_t(B));
  for (size_t i = 0; i < n; ++i) {
    b.logp[i] = float(-0.05 - 3.0 * rng.real());
    b.old_logp[i] = float(b.logp[i] - std::log(0.5 + 1.1 * rng.real()));
    b.ref_logp[i] = float(b.logp[i] + 0.6 * (rng.real() - 0.5));
  }
  for (int64_t r = 0; r < B; ++r) {
    const int64_t prompt = int64_t(rng.uniform(3)), len = 1 + int64_t(rng.uniform(uint64_t(T - prompt)));
    for (int64_t t = prompt; t < prompt + len; ++t) b.mask[size_t(r * T + t)] = 1.f;
    b.adv[size_t(r)] = float(2.0 * rng.real() - 1.0);
  }
  return b;
}

}  // namespace

TEST(GrpoLoss, AdvantagesOfAGroup) {
  GrpoOptions o;  // sample std + 1e-4
  std::vector<float> a = group_advantages({1, 0, 0, 0, 1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1}, 4, o);
  const double sd = std::sqrt((0.75 * 0.75 + 3 * 0.25 * 0.25) / 3);
  EXPECT_NEAR(a[0], 0.75 / (sd + 1e-4), 1e-6);
  EXPECT_NEAR(a[1], -0.25 / (sd + 1e-4), 1e-6);
  for (int i = 4; i < 12; ++i) EXPECT_EQ(a[size_t(i)], 0.f) << i;  // equal rewards: exactly 0
  double sum = 0;
  for (int i = 0; i < 4; ++i) sum += a[size_t(i)];
  EXPECT_NEAR(sum, 0, 1e-6);
  o.std_unbiased = false;
  a = group_advantages({1, 0}, 2, o);
  EXPECT_NEAR(a[0], 0.5 / (0.5 + 1e-4), 1e-6);
  const GrpoOptions dr = GrpoOptions::preset(GrpoOptions::DrGrpo);
  a = group_advantages({1, 0, 0, 0}, 4, dr);  // Dr. GRPO: no std division
  EXPECT_NEAR(a[0], 0.75, 1e-7);
  EXPECT_NEAR(a[3], -0.25, 1e-7);
  EXPECT_EQ(group_advantages({3.0}, 1, o)[0], 0.f);
  EXPECT_THROW(group_advantages({1, 0, 1}, 2, o), Error);
  EXPECT_THROW(group_advantages({1, 0}, 0, o), Error);
}

TEST(GrpoLoss, KeepGroupDropsAllEqualGroups) {
  const double r[] = {1, 1, 1, 0.1, 0.1, 0.1, 1, 0};
  EXPECT_FALSE(keep_group(r, 3));
  EXPECT_FALSE(keep_group(r + 3, 3));
  EXPECT_TRUE(keep_group(r + 5, 3));
  EXPECT_FALSE(keep_group(r, 1));
}

TEST(GrpoLoss, Presets) {
  const GrpoOptions g = GrpoOptions::preset(GrpoOptions::Grpo), d = GrpoOptions::preset(GrpoOptions::DrGrpo),
                    a = GrpoOptions::preset(GrpoOptions::Dapo);
  EXPECT_TRUE(g.scale_std && g.beta == 0.04 && g.eps_low == 0.2 && g.eps_high == 0.2);
  EXPECT_TRUE(!d.scale_std && d.beta == 0 && d.variant == GrpoOptions::DrGrpo);
  EXPECT_TRUE(a.scale_std && a.beta == 0 && a.eps_low == 0.2 && a.eps_high == 0.28);
  EXPECT_STREQ(variant_name(GrpoOptions::Dapo), "dapo");
}

TEST(GrpoLoss, GradientMatchesFiniteDifferences) {
  for (GrpoOptions::Variant v : kVariants)
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      GrpoOptions o = GrpoOptions::preset(v);
      o.beta = 0.05 * double(seed);  // exercise the KL term in every variant
      if (v == GrpoOptions::DrGrpo && seed % 2) o.drgrpo_max_tokens = 32;
      Batch b = random_batch(6, 12, seed);
      std::vector<float> d(b.logp.size());
      const GrpoStats st = grpo_token_loss(b.view(), o, d.data());
      EXPECT_TRUE(std::isfinite(st.loss));
      double worst = 0, scale = 0;
      int checked = 0;
      for (size_t i = 0; i < b.logp.size(); ++i) {
        if (b.mask[i] == 0) {
          EXPECT_EQ(d[i], 0.f);
          continue;
        }
        const double rho = std::exp(double(b.logp[i]) - b.old_logp[i]);
        if (std::fabs(rho - (1 - o.eps_low)) < 4e-3 || std::fabs(rho - (1 + o.eps_high)) < 4e-3) continue;
        const float x = b.logp[i];
        const float xp = x + 1e-3f, xm = x - 1e-3f;
        b.logp[i] = xp;
        const double lp = grpo_token_loss(b.view(), o, nullptr).loss;
        b.logp[i] = xm;
        const double lm = grpo_token_loss(b.view(), o, nullptr).loss;
        b.logp[i] = x;
        const double fd = (lp - lm) / (double(xp) - double(xm));
        worst = std::max(worst, std::fabs(fd - d[i]));
        scale = std::max(scale, std::fabs(fd));
        ++checked;
      }
      EXPECT_GT(checked, 15);
      EXPECT_LE(worst / scale, 1e-5) << variant_name(v) << " seed " << seed;
    }
}

TEST(GrpoLoss, ClipZeroesTheGradientOnlyWhereActive) {
  // One sequence per case, one token each; on-policy reference (KL 0) to isolate the surrogate.
  struct Case { double rho, adv; bool zero; };
  const Case cases[] = {{1.5, 1, true},  {1.5, -1, false}, {0.5, -1, true}, {0.5, 1, false},
                        {1.1, 1, false}, {0.9, -1, false}, {1.25, 1, false} /* inside clip-higher */};
  GrpoOptions o = GrpoOptions::preset(GrpoOptions::Dapo);  // eps 0.2 / 0.28
  for (const Case& c : cases) {
    const float logp = -1.f, old = float(-1.0 - std::log(c.rho)), adv = float(c.adv), mask = 1.f;
    GrpoBatch in{1, 1, &logp, &old, &logp, &mask, &adv};
    float d = 0;
    const GrpoStats st = grpo_token_loss(in, o, &d);
    const double rho = std::exp(double(logp) - old);
    if (c.zero) {
      EXPECT_EQ(d, 0.f) << c.rho << " " << c.adv;
      EXPECT_EQ(st.clip_fraction, 1.0);
      EXPECT_NEAR(st.loss, -std::fmin(std::fmax(rho, 0.8), 1.28) * c.adv, 1e-6);
    } else {
      EXPECT_NEAR(d, -c.adv * rho, 1e-6) << c.rho << " " << c.adv;
      EXPECT_EQ(st.clip_fraction, 0.0);
      EXPECT_NEAR(st.loss, -rho * c.adv, 1e-6);
    }
    EXPECT_NEAR(st.mean_ratio, rho, 1e-12);
    EXPECT_EQ(st.mean_kl, 0.0);
  }
}

TEST(GrpoLoss, OnPolicyAndKl) {
  Batch b = random_batch(4, 7, 11);
  GrpoOptions o;
  // old_logp = nullptr means on-policy: same as passing logp itself.
  GrpoBatch on = b.view();
  on.old_logp = b.logp.data();
  std::vector<float> d1(b.logp.size()), d2(b.logp.size());
  const GrpoStats s1 = grpo_token_loss(on, o, d1.data());
  on.old_logp = nullptr;
  const GrpoStats s2 = grpo_token_loss(on, o, d2.data());
  EXPECT_EQ(s1.loss, s2.loss);
  EXPECT_EQ(d1, d2);
  EXPECT_EQ(s1.mean_ratio, 1.0);
  EXPECT_EQ(s1.clip_fraction, 0.0);
  EXPECT_GT(s1.mean_kl, 0.0);
  // β = 0 with no reference: the KL is neither needed nor reported; loss = −mean over sequences of A.
  o.beta = 0;
  on.ref_logp = nullptr;
  const GrpoStats s3 = grpo_token_loss(on, o, d1.data());
  EXPECT_EQ(s3.mean_kl, 0.0);
  double want = 0;
  for (float a : b.adv) want -= a;
  EXPECT_NEAR(s3.loss, want / 4, 1e-6);
  // KL ≥ 0 and 0 exactly when ref = logp.
  on.ref_logp = b.logp.data();
  EXPECT_EQ(grpo_token_loss(on, o, nullptr).mean_kl, 0.0);
}

TEST(GrpoLoss, VariantsWeighTokensDifferently) {
  // Two sequences, lengths 2 and 6 of T = 8, on-policy, β 0: dlogp = −w·A per token.
  const int64_t B = 2, T = 8;
  std::vector<float> logp(B * T, -1.f), mask(B * T, 0.f), adv = {1.f, 1.f};
  for (int t = 0; t < 2; ++t) mask[size_t(t)] = 1;
  for (int t = 2; t < 8; ++t) mask[size_t(T + t)] = 1;
  const GrpoBatch in{B, T, logp.data(), nullptr, nullptr, mask.data(), adv.data()};
  std::vector<float> d(B * T);
  GrpoOptions o;
  o.beta = 0;
  // GRPO: each sequence's tokens share 1/(B·|o_i|): the short sequence's tokens weigh 3× more.
  o.variant = GrpoOptions::Grpo;
  GrpoStats st = grpo_token_loss(in, o, d.data());
  EXPECT_FLOAT_EQ(d[0], -1.f / (2 * 2));
  EXPECT_FLOAT_EQ(d[T + 2], -1.f / (2 * 6));
  EXPECT_NEAR(st.loss, -1.0, 1e-12);
  EXPECT_EQ(st.n_tokens, 8);
  EXPECT_EQ(st.n_sequences, 2);
  // Dr. GRPO: 1/(B·L) for every token, L = T or the configured budget.
  o.variant = GrpoOptions::DrGrpo;
  st = grpo_token_loss(in, o, d.data());
  EXPECT_FLOAT_EQ(d[0], -1.f / (2 * 8));
  EXPECT_FLOAT_EQ(d[T + 2], -1.f / (2 * 8));
  EXPECT_NEAR(st.loss, -8.0 / 16, 1e-12);
  o.drgrpo_max_tokens = 100;
  grpo_token_loss(in, o, d.data());
  EXPECT_FLOAT_EQ(d[0], -1.f / 200);
  // DAPO: token-level mean over all 8 response tokens.
  o.variant = GrpoOptions::Dapo;
  st = grpo_token_loss(in, o, d.data());
  EXPECT_FLOAT_EQ(d[0], -1.f / 8);
  EXPECT_FLOAT_EQ(d[T + 2], -1.f / 8);
  EXPECT_NEAR(st.loss, -1.0, 1e-12);
  // With equal lengths L = T, Dr. GRPO and GRPO agree given the same advantages.
  std::fill(mask.begin(), mask.end(), 1.f);
  std::vector<float> dg(B * T), dd(B * T);
  o.drgrpo_max_tokens = 0;
  o.variant = GrpoOptions::Grpo;
  const double lg = grpo_token_loss(in, o, dg.data()).loss;
  o.variant = GrpoOptions::DrGrpo;
  const double ld = grpo_token_loss(in, o, dd.data()).loss;
  EXPECT_DOUBLE_EQ(lg, ld);
  EXPECT_EQ(dg, dd);
}

TEST(GrpoLoss, EmptyAndPaddingRows) {
  const int64_t B = 3, T = 4;
  std::vector<float> logp(B * T, -0.5f), mask(B * T, 0.f), adv = {1.f, -1.f, 0.5f};
  std::vector<float> d(B * T, 7.f);
  const GrpoBatch in{B, T, logp.data(), nullptr, nullptr, mask.data(), adv.data()};
  GrpoOptions o;
  o.beta = 0;
  for (GrpoOptions::Variant v : kVariants) {
    o.variant = v;
    const GrpoStats st = grpo_token_loss(in, o, d.data());
    EXPECT_EQ(st.loss, 0.0);
    EXPECT_EQ(st.n_tokens, 0);
    for (float x : d) EXPECT_EQ(x, 0.f);
  }
  // A padding row does not count in B: one real row of 2 tokens with A = 1 gives loss −1.
  mask[0] = mask[1] = 1;
  o.variant = GrpoOptions::Grpo;
  EXPECT_NEAR(grpo_token_loss(in, o, d.data()).loss, -1.0, 1e-12);
}
