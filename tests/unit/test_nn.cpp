// The nn/ modules and the kernels under them, forward beside backward, in one harness (style.md §3): an
// op is a struct with its inputs, a forward and a backward; the harness checks the backward against
// central finite differences of L = Σ r ⊙ f(x) for a random r, element by element, in f32 with a
// tolerance made for f32 (h = 1e-2 relative to the input's scale; |numeric − analytic| ≤
// 2e-3·max|analytic| + 2e-2·|analytic|).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "model/spec.h"
#include "nn/attention.h"
#include "nn/head.h"
#include "nn/linear.h"
#include "nn/mla.h"
#include "nn/moe.h"
#include "ranks.h"
#include "tensor/kernels.h"
#include "test_util.h"
#include "util/compare.h"

using namespace seek;

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

Tensors zeros_like(const Tensors& in) {
  Tensors g;
  for (const auto& x : in) g.emplace_back(x.size(), 0.f);
  return g;
}

Mat f32_mat(const std::vector<float>& v, int64_t rows, int64_t cols) { return Mat{DType::F32, v.data(), rows, cols}; }

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

// Two projections of one input with biases, separate (two GEMMs) and stacked in one arena (one GEMM).
TEST(Modules, LinearSeparateAndStacked) {
  std::mt19937 rng(2);
  const int64_t T = 5, K = 7, Na = 3, Nb = 4;
  for (bool stack : {false, true}) {
    OpCase op{stack ? "linear (stacked)" : "linear (separate)",
              {randn(T * K, rng), randn((Na + Nb) * K, rng, 0.5f), randn(Na, rng), randn(Nb, rng)},
              nullptr, nullptr};
    // W holds a's rows then b's: as views of one vector they are adjacent; copied apart they are not.
    auto views = [&](const Tensors& in, std::vector<float>& wa, std::vector<float>& wb) {
      if (stack) return std::pair{f32_mat(in[1], Na, K), Mat{DType::F32, in[1].data() + Na * K, Nb, K}};
      wa.assign(in[1].begin(), in[1].begin() + Na * K);
      wb.assign(in[1].begin() + Na * K, in[1].end());
      return std::pair{f32_mat(wa, Na, K), f32_mat(wb, Nb, K)};
    };
    op.forward = [&](const Tensors& in) {
      Workspace ws;
      std::vector<float> wa, wb, y(size_t(T * (Na + Nb)));
      auto [a, b] = views(in, wa, wb);
      linear(Pass{ws}, y.data(), in[0].data(), {Proj{a, in[2].data()}, Proj{b, in[3].data()}}, T);
      return y;
    };
    op.backward = [&](const Tensors& in, const std::vector<float>& dy) {
      Workspace ws;
      std::vector<float> wa, wb;
      auto [a, b] = views(in, wa, wb);
      Tensors g = zeros_like(in);
      linear_backward(Pass{ws}, g[0].data(), false, {ProjGrad{g[1].data(), g[2].data()},
                                                     ProjGrad{g[1].data() + Na * K, g[3].data()}},
                      dy.data(), in[0].data(), {Proj{a, in[2].data()}, Proj{b, in[3].data()}}, T);
      return g;
    };
    check_gradients(op);
  }
}

TEST(Modules, RmsNormStrided) {
  std::mt19937 rng(3);
  const int64_t T = 4, D = 9, ld = 13;  // rows 13 apart, the norm over their first 9
  OpCase op{"rmsnorm", {randn(T * ld, rng), randn(D, rng, 0.3f)},
            [&](const Tensors& in) {
              std::vector<float> y(static_cast<size_t>(T * D)), r(static_cast<size_t>(T));
              rmsnorm(y.data(), in[0].data(), in[1].data(), T, D, 1e-5f, r.data(), ld, D);
              return y;
            },
            [&](const Tensors& in, const std::vector<float>& dy) {
              std::vector<float> y(static_cast<size_t>(T * D)), r(static_cast<size_t>(T));
              rmsnorm(y.data(), in[0].data(), in[1].data(), T, D, 1e-5f, r.data(), ld, D);
              Tensors g = zeros_like(in);
              rmsnorm_backward(g[0].data(), g[1].data(), dy.data(), in[0].data(), in[1].data(), r.data(), T, D, ld);
              // Columns past D are not the norm's: they get nothing.
              for (int64_t t = 0; t < T; ++t)
                for (int64_t d = D; d < ld; ++d) EXPECT_EQ(g[0][size_t(t * ld + d)], 0.f);
              return g;
            }};
  for (float& w : op.inputs[1]) w += 1.f;
  // The columns past D do not change the output, so their numeric gradient is 0 as well.
  check_gradients(op);
}

TEST(Modules, SwiGLU) {
  std::mt19937 rng(4);
  const int64_t T = 3, F = 23;
  OpCase op{"swiglu", {randn(T * 2 * F, rng, 2.f)},
            [&](const Tensors& in) {
              std::vector<float> y(static_cast<size_t>(T * F));
              swiglu(y.data(), in[0].data(), T, F);
              return y;
            },
            [&](const Tensors& in, const std::vector<float>& dy) {
              Tensors g = zeros_like(in);
              swiglu_backward(g[0].data(), dy.data(), in[0].data(), T, F);
              return g;
            }};
  check_gradients(op);
}

TEST(Modules, RopeBothLayoutsWithYarn) {
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
                rope(g[0].data(), T, H, stride, 12, pos.data(), inv.data(), R, cs, layout, true);
                return g;
              }};
    check_gradients(op);
  }
}

TEST(Modules, EmbeddingWithRepeatedIds) {
  std::mt19937 rng(6);
  const int64_t V = 7, D = 5, T = 6;
  const std::vector<int32_t> ids = {3, 1, 3, 6, 0, 3};
  OpCase op{"embedding", {randn(V * D, rng)},
            [&](const Tensors& in) {
              std::vector<float> y(static_cast<size_t>(T * D));
              embed(f32_mat(in[0], V, D), ids.data(), T, y.data());
              return y;
            },
            [&](const Tensors& in, const std::vector<float>& dy) {
              Tensors g = zeros_like(in);
              embed_backward(g[0].data(), dy.data(), ids.data(), T, D);
              return g;
            }};
  check_gradients(op);
}

TEST(Modules, CrossEntropyWithIgnoredTargets) {
  std::mt19937 rng(7);
  const int64_t T = 5, V = 11;
  const std::vector<int32_t> targets = {2, -1, 10, 0, 2};
  OpCase op{"cross_entropy", {randn(T * V, rng, 2.f)},
            [&](const Tensors& in) {
              std::vector<float> p(static_cast<size_t>(T * V));
              return std::vector<float>{float(cross_entropy(in[0].data(), targets.data(), T, V, p.data()))};
            },
            [&](const Tensors& in, const std::vector<float>& dy) {
              std::vector<float> p(static_cast<size_t>(T * V));
              cross_entropy(in[0].data(), targets.data(), T, V, p.data());
              Tensors g = zeros_like(in);
              cross_entropy_backward(g[0].data(), p.data(), targets.data(), T, V, dy[0]);
              return g;
            }};
  check_gradients(op);
  // The ignored row gets no gradient.
  std::vector<float> p(static_cast<size_t>(T * V)), g(size_t(T * V), 0.f);
  cross_entropy(op.inputs[0].data(), targets.data(), T, V, p.data());
  cross_entropy_backward(g.data(), p.data(), targets.data(), T, V, 1.f);
  for (int64_t v = 0; v < V; ++v) EXPECT_EQ(g[size_t(V + v)], 0.f);
}

TEST(Modules, TokenLogprobsAndTheirGradient) {
  std::mt19937 rng(17);
  const int64_t T = 4, V = 9;
  const std::vector<int32_t> targets = {1, 8, -1, 0};
  const std::vector<float> coef = {0.5f, -1.5f, 3.f, 2.f};
  OpCase op{"token_logprobs", {randn(T * V, rng, 2.f)},
            [&](const Tensors& in) {
              std::vector<float> lp(static_cast<size_t>(T));
              token_logprobs(in[0].data(), targets.data(), T, V, lp.data(), nullptr);
              float L = 0;
              for (int64_t t = 0; t < T; ++t) L += coef[size_t(t)] * lp[size_t(t)];
              return std::vector<float>{L};
            },
            [&](const Tensors& in, const std::vector<float>& dy) {
              Workspace ws;
              std::vector<float> p(static_cast<size_t>(T * V)), dlogp(static_cast<size_t>(T));
              cross_entropy(in[0].data(), targets.data(), T, V, p.data());
              for (int64_t t = 0; t < T; ++t) dlogp[size_t(t)] = dy[0] * coef[size_t(t)];
              Tensors g = zeros_like(in);
              token_logprobs_backward(Pass{ws}, g[0].data(), p.data(), targets.data(), dlogp.data(), T, V);
              return g;
            }};
  check_gradients(op);
}

// Two sequences of 5 and 3 tokens in one pass, GQA groups, dv ≠ dk (as in MLA): the kept probabilities
// and the backward through them.
TEST(Modules, CausalAttentionGqa) {
  std::mt19937 rng(8);
  const int64_t N = 8, H = 4, G = 2, dk = 3, dv = 2;
  const std::vector<std::pair<int64_t, int64_t>> seqs = {{0, 5}, {5, 3}};  // (row0, T)
  const float scale = 0.7f;
  auto jobs = [&](const Tensors& in, std::vector<float>& out, std::vector<float>& probs) {
    std::vector<AttentionJob> j;
    probs.assign(size_t(H * (25 + 9)), 0.f);
    int64_t at = 0;
    for (auto [r0, T] : seqs) {
      AttentionJob a;
      a.T = T;
      a.q = {in[0].data() + r0 * H * dk, dk, H * dk, dk};
      a.k = {in[1].data() + r0 * G * dk, dk, G * dk, dk, H / G};
      a.v = {in[2].data() + r0 * G * dv, dv, G * dv, dv, H / G};
      a.out = out.data() + r0 * H * dv;
      a.ldo = H * dv;
      a.probs = probs.data() + at;
      at += H * T * T;
      j.push_back(a);
    }
    return j;
  };
  OpCase op{"attention", {randn(N * H * dk, rng), randn(N * G * dk, rng), randn(N * G * dv, rng)},
            [&](const Tensors& in) {
              Workspace ws;
              std::vector<float> o(static_cast<size_t>(N * H * dv)), probs;
              causal_attention(Pass{ws}, jobs(in, o, probs), H, scale);
              return o;
            },
            [&](const Tensors& in, const std::vector<float>& dy) {
              Workspace ws;
              std::vector<float> o(static_cast<size_t>(N * H * dv)), probs;
              std::vector<AttentionJob> fwd = jobs(in, o, probs);
              causal_attention(Pass{ws}, fwd, H, scale);
              Tensors g = zeros_like(in);
              std::vector<AttentionGradJob> bwd;
              for (size_t i = 0; i < seqs.size(); ++i) {
                const auto [r0, T] = seqs[i];
                AttentionGradJob b;
                b.T = T;
                b.q = fwd[i].q;
                b.k = fwd[i].k;
                b.v = fwd[i].v;
                b.dq = {g[0].data() + r0 * H * dk, dk, H * dk};
                b.dk = {g[1].data() + r0 * G * dk, dk, G * dk, H / G};
                b.dv = {g[2].data() + r0 * G * dv, dv, G * dv, H / G};
                b.dout = dy.data() + r0 * H * dv;
                b.lddo = H * dv;
                b.probs = fwd[i].probs;
                bwd.push_back(b);
              }
              causal_attention_backward(Pass{ws}, bwd, H, G, scale);
              return g;
            }};
  check_gradients(op);
}

// The router's backward against finite differences of the production router (nn/moe.h moe_route):
// V3-style sigmoid + noaux_tc with a bias and groups, and V2-style softmax greedy without normalization.
// Logits are spread apart so that no perturbation changes which experts are chosen.
TEST(Modules, MoeGateThroughTheProductionRouter) {
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
    const int64_t T = 3, E = 8, k = 3;
    const RouterSpec r{E, k, var.groups, var.keep, var.sigmoid ? ScoringFunc::Sigmoid : ScoringFunc::Softmax,
                       var.method, var.norm, var.scale};
    std::vector<float> z(static_cast<size_t>(T * E)), bias(static_cast<size_t>(E));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t e = 0; e < E; ++e) z[size_t(t * E + e)] = 0.4f * float((e * 5 + t * 3) % E) - 1.2f;
    for (int64_t e = 0; e < E; ++e) bias[size_t(e)] = 0.05f * float(e % 3);
    Workspace ws;
    auto route = [&](const std::vector<float>& logits, std::vector<int32_t>& idx, std::vector<float>& w) {
      idx.assign(size_t(T * k), 0);
      w.assign(size_t(T * k), 0.f);
      moe_route(Pass{ws}, r, logits.data(), var.sigmoid ? bias.data() : nullptr, T, idx.data(), w.data());
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
                Tensors g = zeros_like(in);
                moe_route_backward(r, in[0].data(), idx0.data(), dw.data(), T, g[0].data());
                return g;
              }};
    check_gradients(op);
  }
}

// The experts of a MoE layer at inference, both ways LocalExperts runs them: few tokens (≤ 16) stream
// every expert's products through matmul_many; more run one expert per thread. Over bf16 weights the
// two agree with each other and with the same experts in f32 through BLAS to f32 accuracy, token by
// token, whether the tokens come one at a time, in batches of 5, or all 40 at once — with a shared
// expert and without, and with experts that no token chose.
TEST(Modules, MoeExpertsStreamedEqualsOnePerThread) {
  std::mt19937 rng(9);
  const int64_t E = 6, k = 2, D = 48, F = 40, n = 40;
  for (bool shared : {true, false}) {
    std::vector<std::vector<uint16_t>> bf(3 * (E + 1));
    std::vector<std::vector<float>> f32(3 * (E + 1));
    auto mlp = [&](int64_t i, int64_t f, MlpWeights& wb, MlpWeights& wf) {
      const int64_t rows[3] = {f, f, D}, cols[3] = {D, D, f};
      Mat* mb[3] = {&wb.gate_proj, &wb.up_proj, &wb.down_proj};
      Mat* mf[3] = {&wf.gate_proj, &wf.up_proj, &wf.down_proj};
      for (int m = 0; m < 3; ++m) {
        std::vector<float> v = randn(size_t(rows[m] * cols[m]), rng, 0.2f);
        std::vector<uint16_t>& b = bf[size_t(3 * i + m)];
        std::vector<float>& f = f32[size_t(3 * i + m)];
        for (float x : v) b.push_back(f32_to_bf16(x)), f.push_back(bf16_to_f32(f32_to_bf16(x)));
        *mb[m] = Mat{DType::BF16, b.data(), rows[m], cols[m]};
        *mf[m] = Mat{DType::F32, f.data(), rows[m], cols[m]};
      }
    };
    MoeWeights wb, wf;
    wb.experts.resize(size_t(E));
    wf.experts.resize(size_t(E));
    for (int64_t e = 0; e < E; ++e) mlp(e, F, wb.experts[size_t(e)], wf.experts[size_t(e)]);
    wb.has_shared = wf.has_shared = shared;
    if (shared) mlp(E, 2 * F, wb.shared_experts, wf.shared_experts);
    std::vector<float> x = randn(size_t(n * D), rng), weight = randn(size_t(n * k), rng);
    std::vector<int32_t> idx(size_t(n * k));
    for (int64_t t = 0; t < n; ++t)  // experts 0..3 only: 4 and 5 get no rows
      for (int64_t j = 0; j < k; ++j) idx[size_t(t * k + j)] = int32_t((t + 2 * j) % 4);
    auto run = [&](const MoeWeights& w, int64_t chunk) {
      Workspace ws;
      std::vector<float> y(size_t(n * D), 1e30f);  // a row left unwritten fails the comparison
      for (int64_t t0 = 0; t0 < n; t0 += chunk) {
        const int64_t c = std::min(chunk, n - t0);
        local_experts().forward(Pass{ws}, w, x.data() + t0 * D, c, k, idx.data() + t0 * k, weight.data() + t0 * k,
                                y.data() + t0 * D, nullptr);
      }
      return y;
    };
    const std::vector<float> ref = run(wf, n);
    for (int64_t chunk : {int64_t(1), int64_t(5), n}) {
      const std::vector<float> y = run(wb, chunk);
      EXPECT_LE(max_rel_diff(y.data(), ref.data(), n * D), 1e-5) << "shared " << shared << ", " << chunk << " tokens at a time";
    }
  }
}

// Expert parallelism with an all-to-all (ExpertDispatch): the tokens split over 1, 2 and 3 in-process
// ranks, the 6 routed experts over the same ranks. Every token's output, input gradient and gate
// weights' gradient equal LocalExperts' on all the tokens at once, and the experts' gradients summed
// over the ranks equal its; on one rank, bit for bit.
TEST(Modules, MoeExpertDispatchEqualsLocalExperts) {
  std::mt19937 rng(11);
  const int64_t E = 6, k = 2, D = 24, F = 16, n = 14;
  std::vector<std::vector<float>> mats;  // routed experts' [gate, up, down] then the shared expert's
  for (int64_t i = 0; i <= E; ++i) {
    const int64_t f = i == E ? 2 * F : F;
    for (int64_t m = 0; m < 3; ++m) mats.push_back(randn(size_t(f * D), rng, 0.2f));
  }
  MoeWeights w;
  w.experts.resize(size_t(E));
  auto views = [&](MlpWeights& v, int64_t i) {
    const int64_t f = i == E ? 2 * F : F;
    v.gate_proj = Mat{DType::F32, mats[size_t(3 * i)].data(), f, D};
    v.up_proj = Mat{DType::F32, mats[size_t(3 * i + 1)].data(), f, D};
    v.down_proj = Mat{DType::F32, mats[size_t(3 * i + 2)].data(), D, f};
  };
  for (int64_t e = 0; e < E; ++e) views(w.experts[size_t(e)], e);
  views(w.shared_experts, E);
  w.has_shared = true;
  const std::vector<float> x = randn(size_t(n * D), rng), dy = randn(size_t(n * D), rng), weight = randn(size_t(n * k), rng);
  std::vector<int32_t> idx(size_t(n * k));
  for (int64_t t = 0; t < n; ++t)  // expert 5 gets no row
    for (int64_t j = 0; j < k; ++j) idx[size_t(t * k + j)] = int32_t((3 * t + j) % 5);
  // The gradient buffers of one MoE layer, and views of them.
  struct Grads {
    std::vector<std::vector<float>> g;
    MoeGrads v;
    explicit Grads(const std::vector<std::vector<float>>& like) {
      for (const auto& m : like) g.emplace_back(m.size(), 0.f);
      v.experts.resize(size_t(E));
      auto view = [&](MlpGrads& m, int64_t i) {
        m.gate_proj = g[size_t(3 * i)].data(), m.up_proj = g[size_t(3 * i + 1)].data(), m.down_proj = g[size_t(3 * i + 2)].data();
      };
      for (int64_t e = 0; e < E; ++e) view(v.experts[size_t(e)], e);
      view(v.shared_experts, E);
      v.has_shared = true;
    }
  };
  // Tokens [t0, t1) through `ex`: y, dx and dweight rows into the whole arrays, gradients into g.
  std::vector<float> y_ref(size_t(n * D)), dx_ref(size_t(n * D)), dw_ref(size_t(n * k));
  auto run = [&](ExpertExecutor& ex, int64_t t0, int64_t t1, std::vector<float>& y, std::vector<float>& dx,
                 std::vector<float>& dw, Grads& g) {
    Workspace ws;
    MoeActs acts;
    const int64_t m = t1 - t0;
    ex.forward(Pass{ws}, w, x.data() + t0 * D, m, k, idx.data() + t0 * k, weight.data() + t0 * k, y.data() + t0 * D, &acts);
    ex.backward(Pass{ws}, w, g.v, x.data() + t0 * D, dy.data() + t0 * D, m, k, weight.data() + t0 * k, dx.data() + t0 * D,
                dw.data() + t0 * k, acts);
  };
  Grads g_ref(mats);
  run(local_experts(), 0, n, y_ref, dx_ref, dw_ref, g_ref);
  for (int N : {1, 2, 3}) {
    std::vector<float> y(size_t(n * D), 1e30f), dx(size_t(n * D), 1e30f), dw(size_t(n * k), 1e30f);
    std::vector<Grads> g;  // one each, built in place: a copy's views would name the original's buffers
    g.reserve(static_cast<size_t>(N));
    for (int r = 0; r < N; ++r) g.emplace_back(mats);
    std::vector<int64_t> rows_out(static_cast<size_t>(N));
    for (const std::string& e : test::on_ranks(N, [&](Communicator& c) {
           ExpertDispatch ex(c, E);
           const int64_t t0 = n * c.rank() / N, t1 = n * (c.rank() + 1) / N;
           run(ex, t0, t1, y, dx, dw, g[size_t(c.rank())]);
           rows_out[size_t(c.rank())] = ex.rows_out();
         }))
      EXPECT_EQ(e, "");
    const double tol = N == 1 ? 0.0 : 1e-5;
    EXPECT_LE(max_rel_diff(y.data(), y_ref.data(), n * D), tol) << N << " ranks";
    EXPECT_LE(max_rel_diff(dx.data(), dx_ref.data(), n * D), tol) << N << " ranks";
    EXPECT_LE(max_rel_diff(dw.data(), dw_ref.data(), n * k), tol) << N << " ranks";
    for (size_t m = 0; m < mats.size(); ++m) {
      std::vector<float> sum(mats[m].size(), 0.f);
      for (const Grads& r : g)
        for (size_t i = 0; i < sum.size(); ++i) sum[i] += r.g[m][i];
      if (m >= size_t(3 * E)) {  // the shared expert: every rank's own tokens, summed as data parallelism does
        EXPECT_LE(max_rel_diff(sum.data(), g_ref.g[m].data(), int64_t(sum.size())), N == 1 ? 0.0 : 1e-5) << m;
        continue;
      }
      const int64_t e = int64_t(m / 3);
      for (int r = 0; r < N; ++r) {  // an expert's gradient lives on its owner alone
        if (e >= E * r / N && e < E * (r + 1) / N) continue;
        for (float v : g[size_t(r)].g[m]) {
          ASSERT_EQ(v, 0.f) << "expert " << e << " on rank " << r;
        }
      }
      EXPECT_LE(max_rel_diff(sum.data(), g_ref.g[m].data(), int64_t(sum.size())), tol) << "expert " << e << ", " << N << " ranks";
    }
    if (N > 1) {
      EXPECT_GT(rows_out[0], 0);
    }
  }
}

namespace {

// A tiny MLA layer: dims from the test configs, with YaRN on (cos/sin scaled, softmax scale ≠ 1/sqrt(qk)).
Config mla_config(bool q_lora) {
  nlohmann::json j = test::tiny_config("deepseek_v3");
  if (!q_lora) j["q_lora_rank"] = nullptr;
  return parse_config(j, "test");
}

// The layer's tensors in the name table's order (weights.cpp), x first: [q_proj | q_a_proj], kv_a_proj,
// [q_a_norm, q_b_proj], kv_a_norm, kv_b_proj, o_proj.
std::vector<std::vector<int64_t>> mla_param_sizes(const Config& c) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, qk = c.qk_head_dim(), C = c.kv_lora_rank;
  const int64_t R = c.qk_rope_head_dim, nv = c.qk_nope_head_dim + c.v_head_dim, ql = c.q_lora_rank;
  std::vector<std::vector<int64_t>> s;
  s.push_back(ql ? std::vector<int64_t>{ql, D} : std::vector<int64_t>{H * qk, D});
  s.push_back({C + R, D});
  if (ql) s.insert(s.end(), {{ql}, {H * qk, ql}});
  s.insert(s.end(), {{C}, {H * nv, C}, {D, H * c.v_head_dim}});
  return s;
}

template <class V, class T>
MlaParams<V> mla_views(const Config& c, T* t) {  // t[0] is x
  const int64_t D = c.hidden_size, H = c.num_attention_heads, qk = c.qk_head_dim(), C = c.kv_lora_rank;
  const int64_t R = c.qk_rope_head_dim, nv = c.qk_nope_head_dim + c.v_head_dim, ql = c.q_lora_rank;
  MlaParams<V> p;
  auto mat = [&](size_t i, int64_t rows, int64_t cols) {
    if constexpr (std::is_same_v<V, WeightView>) return Mat{DType::F32, t[i].data(), rows, cols};
    else return t[i].data();
  };
  size_t i = 1;
  if (ql) p.q_a_proj = mat(i++, ql, D);
  else p.q_proj = mat(i++, H * qk, D);
  p.kv_a_proj_with_mqa = mat(i++, C + R, D);
  if (ql) {
    p.q_a_layernorm = t[i++].data();
    p.q_b_proj = mat(i++, H * qk, ql);
  }
  p.kv_a_layernorm = t[i++].data();
  p.kv_b_proj = mat(i, H * nv, C);
  if constexpr (std::is_same_v<V, WeightView>) p.kv_b_f32 = t[i].data();
  ++i;
  p.o_proj = mat(i++, D, H * c.v_head_dim);
  return p;
}

}  // namespace

// The naive training form over two sequences (no cache, probabilities kept), both query forms.
TEST(Modules, MlaLayerBothQueryForms) {
  for (bool q_lora : {true, false}) {
    const Config c = mla_config(q_lora);
    const MlaSpec s = block_spec(c, 0).mla_spec;
    const int64_t B = 2, S = 4, N = B * S, D = c.hidden_size;
    std::vector<int32_t> pos;
    std::vector<Segment> segs;
    for (int64_t b = 0; b < B; ++b) {
      segs.push_back(Segment{nullptr, b * S, S, 0});
      for (int64_t t = 0; t < S; ++t) pos.push_back(int32_t(t));
    }
    const Rows rows{N, pos.data(), &segs, MlaForm::Naive};
    std::mt19937 rng(q_lora ? 11 : 12);
    Tensors inputs = {randn(size_t(N * D), rng)};
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
                Workspace ws;
                MlaActs a;
                std::vector<float> out(static_cast<size_t>(N * D));
                mla_forward(Pass{ws}, s, mla_views<WeightView>(c, in.data()), in[0].data(), out.data(), rows, &a);
                return out;
              },
              [&](const Tensors& in, const std::vector<float>& dy) {
                Workspace ws;
                MlaActs a;
                const MlaWeights w = mla_views<WeightView>(c, in.data());
                std::vector<float> out(static_cast<size_t>(N * D));
                mla_forward(Pass{ws}, s, w, in[0].data(), out.data(), rows, &a);
                Tensors g = zeros_like(in);
                MlaGrads gp = mla_views<GradView>(c, g.data());
                mla_backward(Pass{ws}, s, w, gp, in[0].data(), dy.data(), g[0].data(), rows, a);
                return g;
              }};
    check_gradients(op);
  }
}

// One function, three ways: the training form (no cache) equals the naive cache and the absorbed
// cache, for the same weights, both query forms, decode-length and prefill-length inputs.
TEST(Modules, MlaTrainingFormEqualsTheCachedForms) {
  for (bool q_lora : {true, false}) {
    test::TempDir dir;
    nlohmann::json j = test::tiny_config("deepseek_v3");
    if (!q_lora) j["q_lora_rank"] = nullptr;
    write_random_checkpoint(dir.path.string(), j, {DType::F32, 3, 1});
    auto m = Model::load(dir.path.string());
    const Config& c = m->config();
    const MlaSpec s = block_spec(c, 0).mla_spec;
    const MlaWeights& w = m->weights().layers[0].mla;
    for (int64_t T : {9, 70}) {
      const int64_t D = c.hidden_size;
      std::mt19937 rng(4);
      std::vector<float> x = randn(size_t(T * D), rng), train_out(static_cast<size_t>(T * D));
      std::vector<int32_t> pos(static_cast<size_t>(T));
      for (int64_t t = 0; t < T; ++t) pos[size_t(t)] = int32_t(t);
      Workspace ws;
      std::vector<Segment> own = {Segment{nullptr, 0, T, 0}};
      MlaActs a;
      mla_forward(Pass{ws}, s, w, x.data(), train_out.data(), Rows{T, pos.data(), &own, MlaForm::Naive}, &a);
      for (MlaForm form : {MlaForm::Naive, MlaForm::Absorbed}) {
        KVCache cache = m->new_cache(T, form);
        std::vector<Segment> segs = {Segment{&cache.layers[0], 0, T, 0}};
        std::vector<float> inf_out(static_cast<size_t>(T * D));
        mla_forward(Pass{ws}, s, w, x.data(), inf_out.data(), Rows{T, pos.data(), &segs, form}, nullptr);
        EXPECT_LT(max_rel_diff(train_out.data(), inf_out.data(), T * D), 1e-5) << mla_form_name(form) << " T=" << T;
      }
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
  Workspace ws;
  Pass plain{ws};
  EXPECT_FALSE(plain.fp8);
  linear(plain, y32.data(), x.data(), f32_mat(W, N, K), T);
  linear(Pass{ws, true}, y8.data(), x.data(), f32_mat(W, N, K), T);
  const double err = max_rel_diff(y8.data(), y32.data(), T * N);
  EXPECT_GT(err, 1e-4) << "FP8 simulation changed nothing";
  EXPECT_LT(err, 0.1);
}

// The vectorized round trip must equal the exact converters bit for bit: every E4M3 code, every
// midpoint between neighbours (ties go to even), and random values across the whole range. Each value
// is rounded in a tile with 448 beside it, whose scale is then 1.
TEST(Fp8Simulation, FastRoundingEqualsTheConverters) {
  auto fast = [](float v) {
    float tile[2] = {448.f, v};
    fp8_round_rows(tile, 1, 2, 2);
    return tile[1];
  };
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
    if (fast(v) != exact(v) && bad++ < 5) ADD_FAILURE() << "v = " << v << ": " << fast(v) << " vs " << exact(v);
  EXPECT_EQ(bad, 0);
}
