// One harness for every training op (style.md §3): an op is a struct with its inputs, a forward and a
// backward; the harness checks the backward against central finite differences of L = Σ r ⊙ f(x) for a
// random r, element by element, in f32 with a tolerance made for f32 (h = 1e-2 relative to the input's
// scale; |numeric − analytic| ≤ 2e-3·max|analytic| + 2e-2·|analytic|).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include <nlohmann/json.hpp>

#include "model/layers.h"
#include "model/model.h"
#include "test_util.h"
#include "train/mla_train.h"
#include "util/compare.h"
#include "train/grad_ops.h"

using namespace seek;
using namespace seek::train;

namespace {

using Tensors = std::vector<std::vector<float>>;

struct OpCase {
  std::string name;
  Tensors inputs;
  std::function<std::vector<float>(const Tensors&)> forward;
  std::function<Tensors(const Tensors&, const std::vector<float>& dout)> backward;  // zero-initialised grads
};

std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.f) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void check_gradients(const OpCase& op, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::vector<float> out = op.forward(op.inputs);
  std::vector<float> r = randn(out.size(), rng);
  auto loss = [&](const Tensors& in) {
    std::vector<float> y = op.forward(in);
    double L = 0;
    for (size_t i = 0; i < y.size(); ++i) L += double(r[i]) * y[i];
    return L;
  };
  Tensors grads = op.backward(op.inputs, r);
  ASSERT_EQ(grads.size(), op.inputs.size()) << op.name;
  for (size_t a = 0; a < op.inputs.size(); ++a) {
    const std::vector<float>& g = grads[a];
    ASSERT_EQ(g.size(), op.inputs[a].size()) << op.name << " input " << a;
    float gmax = 0, xmax = 0;
    for (float x : g) gmax = std::max(gmax, std::fabs(x));
    for (float x : op.inputs[a]) xmax = std::max(xmax, std::fabs(x));
    ASSERT_GT(gmax, 0.f) << op.name << " input " << a << ": the gradient is all zero";
    const float h = 1e-2f * std::max(xmax, 1e-3f);
    int worst_i = -1;
    double worst = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      Tensors p = op.inputs, m = op.inputs;
      p[a][i] += h;
      m[a][i] -= h;
      const double numeric = (loss(p) - loss(m)) / (double(p[a][i]) - double(m[a][i]));
      const double err = std::fabs(numeric - g[i]) / (2e-3 * gmax + 2e-2 * std::fabs(g[i]));
      if (err > worst) worst = err, worst_i = int(i);
    }
    EXPECT_LE(worst, 1.0) << op.name << " input " << a << ": element " << worst_i << " analytic " << g[size_t(worst_i)]
                          << " (error " << worst << " of the tolerance)";
  }
}

}  // namespace

TEST(GradOps, Linear) {
  std::mt19937 rng(2);
  const int64_t T = 5, K = 7, N = 3;
  OpCase op{"linear", {randn(T * K, rng), randn(N * K, rng, 0.5f), randn(N, rng)},
            [&](const Tensors& in) {
              std::vector<float> y(static_cast<size_t>(T * N));
              linear_forward(y.data(), in[0].data(), in[1].data(), in[2].data(), T, K, N);
              return y;
            },
            [&](const Tensors& in, const std::vector<float>& dy) {
              Tensors g = {std::vector<float>(in[0].size()), std::vector<float>(in[1].size()), std::vector<float>(in[2].size())};
              linear_backward(g[0].data(), g[1].data(), g[2].data(), dy.data(), in[0].data(), in[1].data(), T, K, N);
              return g;
            }};
  check_gradients(op);
}

TEST(GradOps, RmsNorm) {
  std::mt19937 rng(3);
  const int64_t T = 4, D = 9;
  OpCase op{"rmsnorm", {randn(T * D, rng), randn(D, rng, 0.3f)},
            [&](const Tensors& in) {
              std::vector<float> y(static_cast<size_t>(T * D)), r(static_cast<size_t>(T));
              rmsnorm_forward(y.data(), r.data(), in[0].data(), in[1].data(), T, D, 1e-5f);
              return y;
            },
            [&](const Tensors& in, const std::vector<float>& dy) {
              std::vector<float> y(static_cast<size_t>(T * D)), r(static_cast<size_t>(T));
              rmsnorm_forward(y.data(), r.data(), in[0].data(), in[1].data(), T, D, 1e-5f);
              Tensors g = {std::vector<float>(in[0].size()), std::vector<float>(in[1].size())};
              rmsnorm_backward(g[0].data(), g[1].data(), dy.data(), in[0].data(), in[1].data(), r.data(), T, D);
              return g;
            }};
  for (float& w : op.inputs[1]) w += 1.f;
  check_gradients(op);
}

TEST(GradOps, SwiGLU) {
  std::mt19937 rng(4);
  const int64_t n = 23;
  OpCase op{"swiglu", {randn(n, rng, 2.f), randn(n, rng)},
            [&](const Tensors& in) {
              std::vector<float> y(static_cast<size_t>(n));
              swiglu_forward(y.data(), in[0].data(), in[1].data(), n);
              return y;
            },
            [&](const Tensors& in, const std::vector<float>& dy) {
              Tensors g = {std::vector<float>(size_t(n)), std::vector<float>(size_t(n))};
              swiglu_backward(g[0].data(), g[1].data(), dy.data(), in[0].data(), in[1].data(), n);
              return g;
            }};
  check_gradients(op);
}

TEST(GradOps, RopeBothLayoutsWithYarn) {
  std::mt19937 rng(5);
  const int64_t T = 6, H = 2, R = 8, stride = H * 12;  // head stride 12: rope covers the first 8 of 12
  RopeParams p;
  p.dim = R;
  p.type = "yarn";
  p.factor = 4;
  p.original_max_position = 4;
  p.mscale = 0.9;
  p.mscale_all_dim = 0.7;
  const std::vector<float> inv = rope_inv_freq(p);
  const float cs = rope_cos_sin_scale(p);
  ASSERT_NE(cs, 1.f);
  std::vector<int32_t> pos = {3, 4, 5, 6, 7, 8};
  for (RopeLayout layout : {RopeLayout::Interleaved, RopeLayout::HalfSplit}) {
    OpCase op{"rope", {randn(size_t(T * stride), rng)},
              [&](const Tensors& in) {
                std::vector<float> y = in[0];
                rope(y.data(), T, H, stride, 12, pos.data(), inv.data(), R, cs, layout);
                return y;
              },
              [&](const Tensors&, const std::vector<float>& dy) {
                Tensors g = {dy};
                rope_backward(g[0].data(), T, H, stride, 12, pos.data(), inv.data(), R, cs, layout);
                return g;
              }};
    check_gradients(op);
  }
}

TEST(GradOps, EmbeddingWithRepeatedIds) {
  std::mt19937 rng(6);
  const int64_t V = 7, D = 5, T = 6;
  const std::vector<int32_t> ids = {3, 1, 3, 6, 0, 3};
  OpCase op{"embedding", {randn(V * D, rng)},
            [&](const Tensors& in) {
              std::vector<float> y(static_cast<size_t>(T * D));
              embedding_forward(y.data(), in[0].data(), ids.data(), T, D);
              return y;
            },
            [&](const Tensors& in, const std::vector<float>& dy) {
              Tensors g = {std::vector<float>(in[0].size())};
              embedding_backward(g[0].data(), dy.data(), ids.data(), T, D);
              return g;
            }};
  check_gradients(op);
}

TEST(GradOps, CrossEntropyWithIgnoredTargets) {
  std::mt19937 rng(7);
  const int64_t T = 5, V = 11;
  const std::vector<int32_t> targets = {2, -1, 10, 0, 2};
  OpCase op{"cross_entropy", {randn(T * V, rng, 2.f)},
            [&](const Tensors& in) {
              std::vector<float> p(static_cast<size_t>(T * V));
              return std::vector<float>{float(cross_entropy_forward(p.data(), in[0].data(), targets.data(), T, V))};
            },
            [&](const Tensors& in, const std::vector<float>& dy) {
              std::vector<float> p(static_cast<size_t>(T * V));
              cross_entropy_forward(p.data(), in[0].data(), targets.data(), T, V);
              Tensors g = {std::vector<float>(in[0].size())};
              cross_entropy_backward(g[0].data(), p.data(), targets.data(), T, V, dy[0]);
              return g;
            }};
  check_gradients(op);
  // The ignored row gets no gradient.
  std::vector<float> p(static_cast<size_t>(T * V)), g(size_t(T * V), 0.f);
  cross_entropy_forward(p.data(), op.inputs[0].data(), targets.data(), T, V);
  cross_entropy_backward(g.data(), p.data(), targets.data(), T, V);
  for (int64_t v = 0; v < V; ++v) EXPECT_EQ(g[size_t(V + v)], 0.f);
}

TEST(GradOps, CausalAttentionGqa) {
  std::mt19937 rng(8);
  const int64_t T = 5, H = 4, G = 2, dk = 3, dv = 2;  // dv != dk, as in MLA
  const float scale = 0.7f;
  OpCase op{"attention", {randn(T * H * dk, rng), randn(T * G * dk, rng), randn(T * G * dv, rng)},
            [&](const Tensors& in) {
              std::vector<float> o(static_cast<size_t>(T * H * dv)), att(static_cast<size_t>(H * T * T));
              attention_forward(o.data(), att.data(), in[0].data(), in[1].data(), in[2].data(), T, H, G, dk, dv, scale);
              return o;
            },
            [&](const Tensors& in, const std::vector<float>& dy) {
              std::vector<float> o(static_cast<size_t>(T * H * dv)), att(static_cast<size_t>(H * T * T));
              attention_forward(o.data(), att.data(), in[0].data(), in[1].data(), in[2].data(), T, H, G, dk, dv, scale);
              Tensors g = {std::vector<float>(in[0].size()), std::vector<float>(in[1].size()), std::vector<float>(in[2].size())};
              attention_backward(g[0].data(), g[1].data(), g[2].data(), dy.data(), att.data(), in[0].data(), in[1].data(),
                                 in[2].data(), T, H, G, dk, dv, scale);
              return g;
            }};
  check_gradients(op);
}

// The gate backward against finite differences of the production router (model/layers.h moe_route):
// V3-style sigmoid + noaux_tc with a bias and groups, and V2-style softmax greedy without normalization.
// Logits are spread apart so that no perturbation changes which experts are chosen.
TEST(GradOps, MoeGateThroughTheProductionRouter) {
  struct Variant {
    const char* name;
    bool sigmoid, norm;
    float scale;
    TopkMethod method;
    int64_t groups, keep;
  };
  for (const Variant& var : {Variant{"sigmoid noaux_tc norm", true, true, 2.5f, TopkMethod::NoauxTc, 4, 2},
                             Variant{"softmax greedy", false, false, 16.f, TopkMethod::Greedy, 1, 1},
                             Variant{"softmax greedy norm", false, true, 1.f, TopkMethod::Greedy, 1, 1}}) {
    Config c;
    c.n_routed_experts = 8;
    c.num_experts_per_tok = 3;
    c.n_group = var.groups;
    c.topk_group = var.keep;
    c.topk_method = var.method;
    c.scoring_func = var.sigmoid ? ScoringFunc::Sigmoid : ScoringFunc::Softmax;
    c.norm_topk_prob = var.norm;
    c.routed_scaling_factor = var.scale;
    const int64_t T = 3, E = 8, k = 3;
    std::vector<float> z(static_cast<size_t>(T * E)), bias(static_cast<size_t>(E));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t e = 0; e < E; ++e) z[size_t(t * E + e)] = 0.4f * float((e * 5 + t * 3) % E) - 1.2f;
    for (int64_t e = 0; e < E; ++e) bias[size_t(e)] = 0.05f * float(e % 3);
    Workspace ws;
    auto route = [&](const std::vector<float>& logits, std::vector<int32_t>& idx, std::vector<float>& w) {
      idx.assign(size_t(T * k), 0);
      w.assign(size_t(T * k), 0.f);
      moe_route(c, logits.data(), var.sigmoid ? bias.data() : nullptr, T, idx.data(), w.data(), ws);
    };
    std::vector<int32_t> idx0;
    std::vector<float> w0;
    route(z, idx0, w0);
    OpCase op{var.name, {z},
              [&](const Tensors& in) {
                std::vector<int32_t> idx;
                std::vector<float> w;
                route(in[0], idx, w);
                EXPECT_EQ(idx, idx0) << "a perturbation changed the selection";
                return w;
              },
              [&](const Tensors& in, const std::vector<float>& dw) {
                Tensors g = {std::vector<float>(in[0].size())};
                moe_gate_backward(g[0].data(), in[0].data(), idx0.data(), dw.data(), T, E, k,
                                  RouterSpec{var.sigmoid, var.norm, var.scale});
                return g;
              }};
    check_gradients(op);
  }
}

namespace {

// A tiny MLA layer: dims from the test configs, with YaRN on (cos/sin scaled, softmax scale ≠ 1/sqrt(qk)).
seek::Config mla_config(bool q_lora) {
  nlohmann::json j = seek::test::tiny_config("deepseek_v3");
  if (!q_lora) j["q_lora_rank"] = nullptr;
  return seek::parse_config(j, "test");
}

// Parameter tensors in the order: [q_proj] or [q_a_proj, q_a_norm, q_b_proj], kv_a_proj, kv_a_norm,
// kv_b_proj, o_proj.
std::vector<std::vector<int64_t>> mla_param_sizes(const seek::Config& c) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, qk = c.qk_head_dim(), C = c.kv_lora_rank;
  const int64_t R = c.qk_rope_head_dim, nv = c.qk_nope_head_dim + c.v_head_dim, ql = c.q_lora_rank;
  std::vector<std::vector<int64_t>> s;
  if (ql == 0) s.push_back({H * qk, D});
  else s.insert(s.end(), {{ql, D}, {ql}, {H * qk, ql}});
  s.insert(s.end(), {{C + R, D}, {C}, {H * nv, C}, {D, H * c.v_head_dim}});
  return s;
}

MlaParams mla_views(const seek::Config& c, std::vector<float>* t) {  // t[0] is x
  MlaParams p;
  size_t i = 1;
  if (c.q_lora_rank == 0) p.q_proj = t[i++].data();
  else {
    p.q_a_proj = t[i++].data();
    p.q_a_norm = t[i++].data();
    p.q_b_proj = t[i++].data();
  }
  p.kv_a_proj = t[i++].data();
  p.kv_a_norm = t[i++].data();
  p.kv_b_proj = t[i++].data();
  p.o_proj = t[i++].data();
  return p;
}

}  // namespace

TEST(GradOps, MlaLayerBothQueryForms) {
  for (bool q_lora : {true, false}) {
    const seek::Config c = mla_config(q_lora);
    const seek::Rope rope_tab(c.rope);
    const int64_t T = 5, D = c.hidden_size;
    std::mt19937 rng(q_lora ? 11 : 12);
    Tensors inputs = {randn(size_t(T * D), rng)};
    for (const auto& shape : mla_param_sizes(c)) {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      const bool norm = shape.size() == 1;
      std::vector<float> v = randn(size_t(n), rng, norm ? 0.1f : 1.f / std::sqrt(float(shape.back())));
      if (norm)
        for (float& w : v) w += 1.f;
      inputs.push_back(v);
    }
    OpCase op{q_lora ? "mla (q_lora)" : "mla (q_proj)", inputs,
              [&](const Tensors& in) {
                Tensors t = in;
                MlaParams p = mla_views(c, t.data());
                MlaActivations a;
                std::vector<float> out(static_cast<size_t>(T * D));
                mla_train_forward(c, rope_tab, p, t[0].data(), out.data(), 1, T, a);
                return out;
              },
              [&](const Tensors& in, const std::vector<float>& dy) {
                Tensors t = in;
                MlaParams p = mla_views(c, t.data());
                MlaActivations a;
                std::vector<float> out(static_cast<size_t>(T * D));
                mla_train_forward(c, rope_tab, p, t[0].data(), out.data(), 1, T, a);
                Tensors g;
                for (const auto& x : in) g.emplace_back(x.size(), 0.f);
                MlaParams gp = mla_views(c, g.data());
                mla_train_backward(c, rope_tab, p, gp, t[0].data(), dy.data(), g[0].data(), 1, T, a);
                return g;
              }};
    check_gradients(op);
  }
}

TEST(GradOps, MlaTrainingForwardEqualsInference) {
  // Same weights through the inference layer (both cache forms) and the training layer.
  for (bool q_lora : {true, false}) {
    seek::test::TempDir dir;
    nlohmann::json j = seek::test::tiny_config("deepseek_v3");
    if (!q_lora) j["q_lora_rank"] = nullptr;
    seek::write_random_checkpoint(dir.path.string(), j, {seek::DType::F32, 3, 1});
    auto m = seek::Model::load(dir.path.string());
    const seek::Config& c = m->config();
    const seek::MlaWeights& w = m->weights().layers[0].mla;
    auto f = [](const seek::Mat& x) { return const_cast<float*>(static_cast<const float*>(x.data)); };
    MlaParams p;
    if (q_lora) {
      p.q_a_proj = f(w.q_a_proj);
      p.q_a_norm = const_cast<float*>(w.q_a_layernorm.data());
      p.q_b_proj = f(w.q_b_proj);
    } else {
      p.q_proj = f(w.q_proj);
    }
    p.kv_a_proj = f(w.kv_a_proj_with_mqa);
    p.kv_a_norm = const_cast<float*>(w.kv_a_layernorm.data());
    p.kv_b_proj = f(w.kv_b_proj);
    p.o_proj = f(w.o_proj);
    const int64_t T = 9, D = c.hidden_size;
    std::mt19937 rng(4);
    std::vector<float> x = randn(size_t(T * D), rng), train_out(static_cast<size_t>(T * D));
    const seek::Rope rope_tab(c.rope);
    MlaActivations a;
    mla_train_forward(c, rope_tab, p, x.data(), train_out.data(), 1, T, a);
    for (seek::MlaForm form : {seek::MlaForm::Naive, seek::MlaForm::Absorbed}) {
      seek::KVCache cache = m->new_cache(T, form);
      seek::Workspace ws;
      std::vector<int32_t> pos(static_cast<size_t>(T));
      for (int64_t t = 0; t < T; ++t) pos[size_t(t)] = int32_t(t);
      std::vector<seek::Segment> segs = {seek::Segment{&cache.layers[0], 0, T, 0}};
      std::vector<float> inf_out(static_cast<size_t>(T * D));
      seek::mla_forward(c, rope_tab, w, segs, form, x.data(), inf_out.data(), T, pos.data(), ws);
      EXPECT_LT(seek::max_rel_diff(train_out.data(), inf_out.data(), T * D), 1e-5) << seek::mla_form_name(form);
    }
  }
}

TEST(Fp8Simulation, TilesRoundToE4M3) {
  // A tile whose amax is 448 has scale 1: representable values stay, others move by at most half an
  // E4M3 step (relative 2^-4 for normal values).
  std::vector<float> t = {448.f, 224.f, -112.f, 1.5f, 3.25f, 0.f, 100.f, -0.875f};
  std::vector<float> orig = t;
  fp8_round_rows(t.data(), 1, int64_t(t.size()), 128);
  EXPECT_EQ(t[0], 448.f);
  EXPECT_EQ(t[1], 224.f);
  EXPECT_EQ(t[2], -112.f);
  EXPECT_EQ(t[3], 1.5f);
  EXPECT_EQ(t[4], 3.25f);
  EXPECT_EQ(t[5], 0.f);
  EXPECT_EQ(t[6], 96.f);  // 100 lies between 96 and 104: nearest even is 96
  std::mt19937 rng(1);
  std::vector<float> x = randn(300, rng), y = x;
  fp8_round_rows(y.data(), 1, 300, 128);  // tiles of 128, 128, 44
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t tile0 = i / 128 * 128, tile1 = std::min<size_t>(tile0 + 128, 300);
    float amax = 0;
    for (size_t j = tile0; j < tile1; ++j) amax = std::max(amax, std::fabs(x[j]));
    // Error ≤ half a step: 2^-4 relative for normals, 2^-10·scale absolute in the subnormal range.
    EXPECT_LE(std::fabs(y[i] - x[i]), std::max(std::fabs(x[i]) / 16.f, amax / 448.f * 0x1p-10f) * 1.0001f) << i;
  }
  // Blocks: each 128×128 block has its own scale (a large block does not flatten a small one).
  std::vector<float> w(256 * 130, 0.001f);
  w[0] = 1000.f;
  fp8_round_blocks(w.data(), 256, 130, 128);
  EXPECT_NEAR(w[size_t(128 * 130 + 5)], 0.001f, 0.001f / 16);  // another block keeps its precision
}

TEST(Fp8Simulation, LinearStaysCloseAndIsOffByDefault) {
  std::mt19937 rng(2);
  const int64_t T = 9, K = 200, N = 70;
  std::vector<float> x = randn(size_t(T * K), rng), W = randn(size_t(N * K), rng, 0.1f);
  std::vector<float> y32(static_cast<size_t>(T * N)), y8(static_cast<size_t>(T * N));
  EXPECT_FALSE(fp8_simulation());
  linear_forward(y32.data(), x.data(), W.data(), nullptr, T, K, N);
  set_fp8_simulation(true);
  linear_forward(y8.data(), x.data(), W.data(), nullptr, T, K, N);
  set_fp8_simulation(false);
  const double err = max_rel_diff(y8.data(), y32.data(), T * N);
  EXPECT_GT(err, 1e-4) << "FP8 simulation changed nothing";
  EXPECT_LT(err, 0.1);
}

// The vectorized round trip must equal the exact converters bit for bit: every E4M3 code, every
// midpoint between neighbours (ties go to even), and random values across the whole range.
TEST(Fp8Simulation, FastRoundingEqualsTheConverters) {
  auto exact = [](float v) { return f8e4m3_to_f32(f32_to_f8e4m3(v)); };
  std::vector<float> values;
  for (int code = 0; code < 256; ++code) {
    const float v = f8e4m3_to_f32(uint8_t(code));
    if (std::isfinite(v) && std::fabs(v) <= 448.f) values.push_back(v);
  }
  std::vector<float> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 1; i < sorted.size(); ++i) {
    const float mid = 0.5f * (sorted[i - 1] + sorted[i]);
    values.push_back(mid);
    values.push_back(std::nextafter(mid, 0.f));
    values.push_back(std::nextafter(mid, 1000.f));
  }
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-448.f, 448.f), small(-0.03f, 0.03f);
  for (int i = 0; i < 20000; ++i) values.push_back(i % 2 ? u(rng) : small(rng));
  int bad = 0;
  for (float v : values)
    if (fp8_round_value(v) != exact(v) && bad++ < 5) ADD_FAILURE() << "v = " << v << ": " << fp8_round_value(v) << " vs " << exact(v);
  EXPECT_EQ(bad, 0);
}
