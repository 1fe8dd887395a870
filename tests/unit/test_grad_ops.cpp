// One harness for every training op (style.md §3): an op is a struct with its inputs, a forward and a
// backward; the harness checks the backward against central finite differences of L = Σ r ⊙ f(x) for a
// random r, element by element, in f32 with a tolerance made for f32 (h = 1e-2 relative to the input's
// scale; |numeric − analytic| ≤ 2e-3·max|analytic| + 2e-2·|analytic|).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "model/layers.h"
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
