// GRPO goldens: seek's group_advantages, keep_group and grpo_token_loss (rl/grpo_loss.h) against PyTorch
// autograd in float64 (scripts/reference/grpo_reference.py → tests/golden/grpo/*.json) for GRPO, Dr. GRPO
// and DAPO on random batches with ratios clipped on both sides and advantages of both signs. Bounds:
// advantages, loss and dlogp ≤ 1e-5 (max |a−b| / max |b|); stats to 1e-9 (counts exactly).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "rl/grpo_loss.h"
#include "test_util.h"

using namespace seek;
using namespace seek::rl;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::vector<std::string> grpo_cases() {
  std::vector<std::string> out;
  fs::path root = test::data_path("golden/grpo");
  if (!fs::exists(root)) return out;
  for (const auto& e : fs::directory_iterator(root))
    if (e.path().extension() == ".json") out.push_back(e.path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<float> floats(const json& j) {
  std::vector<float> v;
  if (j.is_null()) return v;
  for (const json& x : j) v.push_back(float(x.get<double>()));
  return v;
}

GrpoOptions options_of(const json& g) {
  const json& o = g.at("options");
  GrpoOptions opt;
  const std::string v = g.at("variant");
  opt.variant = v == "grpo" ? GrpoOptions::Grpo : v == "drgrpo" ? GrpoOptions::DrGrpo : GrpoOptions::Dapo;
  EXPECT_STREQ(variant_name(opt.variant), v.c_str());
  opt.eps_low = o.at("eps_low");
  opt.eps_high = o.at("eps_high");
  opt.beta = o.at("beta");
  opt.scale_std = o.at("scale_std");
  opt.std_unbiased = o.at("std_unbiased");
  opt.std_eps = o.at("std_eps");
  opt.drgrpo_max_tokens = o.at("drgrpo_max_tokens");
  return opt;
}

double rel(double a, double b) { return std::fabs(a - b) / std::max(std::fabs(b), 1e-300); }

// max |a − b| / max |b| against the reference's float64 values (not rounded to float first).
double max_rel_diff_f64(const std::vector<float>& a, const std::vector<double>& ref) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    worst = std::max(worst, std::fabs(double(a[i]) - ref[i]));
    scale = std::max(scale, std::fabs(ref[i]));
  }
  return std::isnan(worst) ? INFINITY : scale > 0 ? worst / scale : worst;
}

class GrpoGolden : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST(GrpoGoldenFiles, Present) { EXPECT_GE(grpo_cases().size(), 6u); }

TEST_P(GrpoGolden, MatchesPyTorch) {
  std::ifstream f(test::data_path("golden/grpo/" + GetParam() + ".json"));
  ASSERT_TRUE(f) << GetParam();
  const json g = json::parse(f);
  const GrpoOptions opt = options_of(g);
  const int64_t B = g.at("B"), T = g.at("T"), G = g.at("G");

  // Advantages from the rewards, and dynamic sampling's verdict per group.
  const std::vector<double> rewards = g.at("rewards").get<std::vector<double>>();
  const std::vector<float> adv = group_advantages(rewards, G, opt);
  const std::vector<float> adv_ref = floats(g.at("advantage"));
  ASSERT_EQ(adv.size(), size_t(B));
  const double adv_err = max_rel_diff_f64(adv, g.at("advantage").get<std::vector<double>>());
  EXPECT_LE(adv_err, 1e-5);
  const std::vector<bool> keep = g.at("keep").get<std::vector<bool>>();
  for (int64_t k = 0; k < B / G; ++k) EXPECT_EQ(keep_group(rewards.data() + k * G, G), keep[size_t(k)]) << k;

  // The loss on the reference's float inputs (its advantages, rounded to float as a trainer holds them).
  const std::vector<float> logp = floats(g.at("logp")), old_logp = floats(g.at("old_logp")),
                           ref_logp = floats(g.at("ref_logp"));
  std::vector<float> mask = floats(g.at("mask"));
  if (g.at("dynamic_sampling").get<bool>())  // dropped groups: their rows leave the batch
    for (int64_t k = 0; k < B / G; ++k)
      if (!keep_group(rewards.data() + k * G, G)) std::fill_n(mask.begin() + k * G * T, G * T, 0.f);
  ASSERT_EQ(logp.size(), size_t(B * T));
  const GrpoBatch in{B, T, logp.data(), old_logp.empty() ? nullptr : old_logp.data(),
                     ref_logp.empty() ? nullptr : ref_logp.data(), mask.data(), adv_ref.data()};
  std::vector<float> dlogp(size_t(B * T), 123.f);
  const GrpoStats st = grpo_token_loss(in, opt, dlogp.data());

  const double loss_ref = g.at("loss");
  const double loss_err = rel(st.loss, loss_ref);
  EXPECT_LE(loss_err, 1e-5) << st.loss << " vs " << loss_ref;
  const std::vector<double> dlogp_ref = g.at("dlogp").get<std::vector<double>>();
  ASSERT_EQ(dlogp_ref.size(), size_t(B * T));
  const double grad_err = max_rel_diff_f64(dlogp, dlogp_ref);
  EXPECT_LE(grad_err, 1e-5);
  for (int64_t i = 0; i < B * T; ++i)
    if (dlogp_ref[size_t(i)] == 0.0) {
      EXPECT_EQ(dlogp[size_t(i)], 0.f) << i;  // masked and clipped: exactly 0
    }

  const json& s = g.at("stats");
  EXPECT_NEAR(st.mean_kl, s.at("mean_kl").get<double>(), 1e-9);
  EXPECT_NEAR(st.mean_ratio, s.at("mean_ratio").get<double>(), 1e-9);
  EXPECT_NEAR(st.clip_fraction, s.at("clip_fraction").get<double>(), 1e-12);
  EXPECT_NEAR(st.clip_low_fraction, s.at("clip_low_fraction").get<double>(), 1e-12);
  EXPECT_NEAR(st.clip_high_fraction, s.at("clip_high_fraction").get<double>(), 1e-12);
  EXPECT_EQ(st.n_tokens, s.at("n_tokens").get<int64_t>());
  EXPECT_EQ(st.n_sequences, s.at("n_sequences").get<int64_t>());
  std::printf("[grpo-golden] %-17s loss %+.6f (ref %+.6f) rel %.1e, dlogp %.1e, advantages %.1e, clip %.3f\n",
              GetParam().c_str(), st.loss, loss_ref, loss_err, grad_err, adv_err, st.clip_fraction);
}

INSTANTIATE_TEST_SUITE_P(Cases, GrpoGolden, ::testing::ValuesIn(grpo_cases()),
                         [](const auto& info) { return info.param; });
