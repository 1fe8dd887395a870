// Whole-model training gradients: central finite differences of the total loss (main + λ·MTP +
// α·balance) on sampled parameters of every type of tiny model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "model/random_checkpoint.h"
#include "test_util.h"
#include "model/model.h"
#include "train/train_model.h"
#include "util/compare.h"
#include "ranks.h"
#include "util/error.h"

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
  if (m.config().num_nextn_predict_layers > 0) {
    EXPECT_GT(base.mtp, 0.0);
  }
  if (m.config().n_routed_experts > 0) {
    EXPECT_GT(base.balance, 0.0);
  }
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

TEST(TrainModel, AuxLossFreeBiasFollowsTheLoads) {
  test::TempDir dir;
  write_random_checkpoint(dir.path.string(), test::tiny_config("deepseek_v3"), {DType::F32, 23, 1});
  TrainModel m = TrainModel::from_checkpoint(dir.path.string());
  const int64_t B = 2, T = 7, V = m.config().vocab_size, E = m.config().n_routed_experts;
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < B * (T + 1); ++i) ids.push_back(int32_t((i * 13 + 1) % V));
  m.loss(ids.data(), B, T, LossWeights{});
  const auto load = m.expert_load();  // layer 0 dense, 1 and 2 MoE
  ASSERT_TRUE(load[0].empty());
  ASSERT_EQ(int64_t(load[1].size()), E);
  int64_t total = 0;
  for (int64_t n : load[1]) total += n;
  EXPECT_EQ(total, B * T * m.config().num_experts_per_tok);
  const float* bias = m.weights().layers[1].moe.e_score_correction_bias;  // a view into the live arena
  std::vector<float> before(bias, bias + E);
  const double gamma = 0.001;
  m.update_routing_bias(gamma);
  const double mean = double(total) / double(E);
  for (int64_t e = 0; e < E; ++e) {
    const double want = double(before[size_t(e)]) + gamma * ((mean > double(load[1][size_t(e)])) - (mean < double(load[1][size_t(e)])));
    EXPECT_NEAR(bias[e], want, 1e-7) << "expert " << e << " load " << load[1][size_t(e)] << " mean " << mean;
  }
  const auto st = m.balance_stats();
  EXPECT_GE(st.max_over_mean, 1.0);
}

TEST(TrainModel, SavedModelLoadsForInference) {
  test::TempDir dir;
  write_random_checkpoint(dir / "in", test::tiny_config("deepseek_v3"), {DType::BF16, 29, 1});
  TrainModel m = TrainModel::from_checkpoint(dir / "in");
  for (const auto& p : m.params())
    if (p.name == "model.norm.weight") m.data()[size_t(p.offset)] = 2.5f;  // a change that must survive the round trip
  m.save(dir / "out");
  TrainModel back = TrainModel::from_checkpoint(dir / "out");
  EXPECT_EQ(back.data(), m.data());
  auto inf = Model::load(dir / "out");
  EXPECT_EQ(inf->weights().norm[0], 2.5f);
}

// Expert parallelism's memory split: a model holding experts [2, 4) of the tiny V3 config's 8 has the
// shared part and those two experts in its arena, no views of the others' data, no inference of its
// own; four such ranks together write the very bytes one model holding every expert writes.
TEST(TrainModel, RankHoldsItsExpertsAndRanksTogetherWriteTheWholeModel) {
  test::TempDir dir;
  write_random_checkpoint(dir / "in", test::tiny_config("deepseek_v3"), {DType::F32, 31, 1});
  const TrainModel all = TrainModel::from_checkpoint(dir / "in");
  const int64_t E = all.config().n_routed_experts;
  ASSERT_EQ(E, 8);
  int64_t expert_values = 0, mine = 0;
  for (const auto& p : all.params())
    if (p.name.find(".mlp.experts.") != std::string::npos) {
      expert_values += p.numel;
      const int64_t e = std::stoll(p.name.substr(p.name.find(".mlp.experts.") + 13));
      if (e >= 2 && e < 4) mine += p.numel;
    }
  ASSERT_GT(expert_values, 0);
  TrainModel part = TrainModel::from_checkpoint(dir / "in", {2, 4});
  EXPECT_EQ(int64_t(part.data().size()), int64_t(all.data().size()) - expert_values + mine);
  EXPECT_EQ(part.replicated(), int64_t(all.data().size()) - expert_values);
  EXPECT_EQ(int64_t(part.grad().size()), int64_t(part.data().size()));
  for (int64_t i = 0; i < all.config().num_hidden_layers; ++i) {
    if (!all.config().is_moe_layer(i)) continue;
    const auto& experts = part.weights().layers[size_t(i)].moe.experts;
    for (int64_t e = 0; e < E; ++e) {
      EXPECT_EQ(experts[size_t(e)].down_proj.data != nullptr, e >= 2 && e < 4) << "layer " << i << " expert " << e;
      EXPECT_EQ(experts[size_t(e)].down_proj.rows, all.config().hidden_size);  // shapes stay
    }
  }
  // The values it holds are the checkpoint's.
  for (const auto& p : part.params()) {
    const auto q = std::find_if(all.params().begin(), all.params().end(), [&](const auto& x) { return x.name == p.name; });
    ASSERT_NE(q, all.params().end());
    EXPECT_TRUE(std::equal(part.data().begin() + p.offset, part.data().begin() + p.offset + p.numel,
                           all.data().begin() + q->offset))
        << p.name;
  }
  EXPECT_THROW(part.inference(), Error);
  try {
    part.save(dir / "alone");
    ADD_FAILURE() << "a model holding 2 of 8 experts saved itself alone";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mlp.experts.0."), std::string::npos) << e.what();
  }
  all.save(dir / "whole");
  for (const std::string& e : test::on_ranks(4, [&](Communicator& c) {
         TrainModel m = TrainModel::from_checkpoint(dir / "in", {2 * c.rank(), 2 * c.rank() + 2});
         m.save(dir / "gathered", c);
       }))
    EXPECT_EQ(e, "");
  EXPECT_TRUE(test::file_bytes(dir / "gathered/model.safetensors") == test::file_bytes(dir / "whole/model.safetensors"));
}

// A per-token objective (the path GRPO and SFT take): loss = Σ_t c_t · log p(target_t) with uneven
// weights c (zero on some positions, as a loss mask would be). On dense models its parameter gradients
// must match finite differences (an MoE model's routing flips under finite steps, so there the check is
// that c_t = −1/(B·T) gives exactly the mean cross-entropy's gradient); on both, target_logprobs must
// equal the log-softmax of the inference model's logits.
TEST(TrainModel, TokenObjectiveGradientsAndLogprobs) {
  for (const char* type : {"qwen2", "llama", "deepseek_v3"}) {
    test::TempDir dir;
    write_random_checkpoint(dir.path.string(), test::tiny_config(type), {DType::F32, 41, 1});
    TrainModel m = TrainModel::from_checkpoint(dir.path.string());
    const bool moe = m.config().n_routed_experts > 0;
    const int64_t B = 2, T = 6, V = m.config().vocab_size;
    std::vector<int32_t> ids;
    for (int64_t i = 0; i < B * (T + 1); ++i) ids.push_back(int32_t((i * 17 + 3) % V));
    std::vector<float> c(size_t(B * T));
    for (int64_t i = 0; i < B * T; ++i)
      c[size_t(i)] = moe ? -1.f / float(B * T) : (i % 4 == 1) ? 0.f : float((i * 7) % 5 - 2) * 0.3f;
    const TokenObjective obj{[&](const float* logp, float* dlogp) {
                               double s = 0;
                               for (int64_t i = 0; i < B * T; ++i) {
                                 s += double(c[size_t(i)]) * logp[i];
                                 dlogp[i] = c[size_t(i)];
                               }
                               return s;
                             },
                             nullptr};
    LossWeights none;
    none.mtp_lambda = 0;
    none.balance_alpha = 0;
    const double value = m.forward_backward(ids.data(), B, T, none, &obj).main;
    const std::vector<float> grad = m.grad();
    if (moe) {
      const double ce = m.forward_backward(ids.data(), B, T, none).main;
      EXPECT_NEAR(value, ce, 1e-5 * std::fabs(ce)) << type;
      EXPECT_LT(max_rel_diff(grad.data(), m.grad().data(), grad.size()), 1e-5) << type;
    } else {
      double gmax = 0;
      for (float x : grad) gmax = std::max(gmax, double(std::fabs(x)));
      std::mt19937 rng(9);
      int checked = 0, bad = 0;
      for (const auto& p : m.params())
        for (int s = 0; s < 3; ++s) {
          const int64_t i = p.offset + int64_t(rng() % uint64_t(p.numel));
          float& w = m.data()[size_t(i)];
          const float w0 = w, h = 1e-2f * std::max(0.1f, std::fabs(w0));
          w = w0 + h;
          const double lp = m.loss(ids.data(), B, T, none, &obj).main;
          w = w0 - h;
          const double lm = m.loss(ids.data(), B, T, none, &obj).main;
          w = w0;
          const double numeric = (lp - lm) / (2.0 * double(h));
          if (std::fabs(numeric - grad[size_t(i)]) > 1e-3 * gmax + 3e-2 * std::fabs(grad[size_t(i)])) {
            ++bad;
            ADD_FAILURE() << type << " " << p.name << ": analytic " << grad[size_t(i)] << " numeric " << numeric;
          }
          ++checked;
        }
      EXPECT_GT(checked, 20);
      EXPECT_EQ(bad, 0);
    }
    auto inf = Model::load(dir.path.string());
    const std::vector<float> lp = m.target_logprobs(ids.data(), B, T);
    for (int64_t b = 0; b < B; ++b) {
      KVCache cache = inf->new_cache(T, MlaForm::Naive);
      std::vector<float> logits(size_t(T * V));
      inf->forward(cache, &ids[size_t(b * (T + 1))], T, logits.data());
      for (int64_t t = 0; t < T; ++t) {
        const float* z = &logits[size_t(t * V)];
        double mx = z[0], s = 0;
        for (int64_t v = 1; v < V; ++v) mx = std::max(mx, double(z[v]));
        for (int64_t v = 0; v < V; ++v) s += std::exp(double(z[v]) - mx);
        const double want = double(z[ids[size_t(b * (T + 1) + t + 1)]]) - mx - std::log(s);
        EXPECT_NEAR(lp[size_t(b * T + t)], want, 1e-4) << type << " b " << b << " t " << t;
      }
    }
  }
}
