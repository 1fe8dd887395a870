// moe.cpp — see moe.h.
#include "nn/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "nn/linear.h"
#include "tensor/backend.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace seek {

namespace {

// Scores s = σ(z) or softmax(z) over E, in double (the router's backward and the balance loss).
void scores(const RouterSpec& r, const float* z, int64_t E, double* s) {
  if (r.scoring == ScoringFunc::Sigmoid) {
    for (int64_t e = 0; e < E; ++e) s[e] = 1.0 / (1.0 + std::exp(-double(z[e])));
  } else {
    double mx = z[0], sum = 0;
    for (int64_t e = 1; e < E; ++e) mx = std::max(mx, double(z[e]));
    for (int64_t e = 0; e < E; ++e) sum += (s[e] = std::exp(double(z[e]) - mx));
    for (int64_t e = 0; e < E; ++e) s[e] /= sum;
  }
}

// The one sequence's balance loss Σ_e f_e·P_e (see moe.h) and, with dz, coef × its gradient.
double balance_one(const RouterSpec& r, const float* z, const int32_t* idx, int64_t n, double coef, float* dz,
                   Workspace& ws) {
  Workspace::Frame frame(ws);
  const int64_t E = r.experts, k = r.experts_per_token;
  float* s = ws.alloc<float>(n * E);
  for (int64_t t = 0; t < n; ++t) {
    const float* zt = z + t * E;
    float* st = s + t * E;
    if (r.scoring == ScoringFunc::Sigmoid) {
      for (int64_t e = 0; e < E; ++e) st[e] = 1.f / (1.f + std::exp(-zt[e]));
    } else {
      std::memcpy(st, zt, sizeof(float) * size_t(E));
      softmax(st, 1, E, E);
    }
  }
  double* f = ws.alloc<double>(E);
  double* P = ws.alloc<double>(E);
  double* S = ws.alloc<double>(n);
  std::fill(f, f + E, 0.0);
  std::fill(P, P + E, 0.0);
  std::fill(S, S + n, 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) f[idx[t * k + j]] += double(E) / double(k * n);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t e = 0; e < E; ++e) S[t] += s[t * E + e];
    for (int64_t e = 0; e < E; ++e) P[e] += s[t * E + e] / S[t] / double(n);
  }
  double value = 0;
  for (int64_t e = 0; e < E; ++e) value += f[e] * P[e];
  if (dz) {
    // ∂/∂s'_{t,e} = coef·f_e/n; s' = s/S_t; then through sigmoid or softmax.
    double* ds = ws.alloc<double>(E);
    for (int64_t t = 0; t < n; ++t) {
      const double St = S[t];
      double dot = 0;  // Σ_e ds'_e s'_e
      for (int64_t e = 0; e < E; ++e) dot += coef * f[e] / double(n) * s[t * E + e] / St;
      for (int64_t e = 0; e < E; ++e) ds[e] = (coef * f[e] / double(n) - dot) / St;
      if (r.scoring == ScoringFunc::Sigmoid) {
        for (int64_t e = 0; e < E; ++e) {
          const double se = s[t * E + e];
          dz[t * E + e] += float(ds[e] * se * (1 - se));
        }
      } else {
        double d2 = 0;
        for (int64_t e = 0; e < E; ++e) d2 += ds[e] * s[t * E + e];
        for (int64_t e = 0; e < E; ++e) dz[t * E + e] += float(s[t * E + e] * (ds[e] - d2));
      }
    }
  }
  return value;
}

}  // namespace

// ---- routing -----------------------------------------------------------------------------------------

void moe_route(const Pass& p, const RouterSpec& r, const float* logits, const float* bias, int64_t T, int32_t* idx,
               float* weight) {
  Workspace::Frame frame(p.ws);
  const int64_t E = r.experts, k = r.experts_per_token;
  const int64_t n_group = r.n_group, per_group = E / n_group;
  const bool grouped = r.method != TopkMethod::Greedy && n_group > 1;
  // Per thread: scores s, selection scores, group scores and kept groups (tokens are independent).
  const int threads = max_threads();
  const int64_t per_thread = 2 * E + n_group;
  float* scratch = p.ws.alloc<float>(threads * per_thread);
  int32_t* gscratch = p.ws.alloc<int32_t>(threads * n_group);
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  parallel_for(threads, T * E * 8 / threads, [&](int64_t th0, int64_t th1) {
    for (int64_t th = th0; th < th1; ++th) {
      float* s = scratch + th * per_thread;  // scores s_i
      float* sel = s + E;                    // selection scores
      float* gscore = sel + E;
      int32_t* gidx = gscratch + th * n_group;
      for (int64_t t = T * th / threads; t < T * (th + 1) / threads; ++t) {
        const float* z = logits + t * E;
        if (r.scoring == ScoringFunc::Sigmoid) {
          for (int64_t e = 0; e < E; ++e) s[e] = 1.f / (1.f + std::exp(-z[e]));
        } else {
          std::memcpy(s, z, sizeof(float) * size_t(E));
          softmax(s, 1, E, E);
        }
        for (int64_t e = 0; e < E; ++e) sel[e] = bias ? s[e] + bias[e] : s[e];
        if (grouped) {
          // A group's score: the sum of its two best (noaux_tc) or its best (group_limited_greedy).
          for (int64_t g = 0; g < n_group; ++g) {
            const float* m = sel + g * per_group;
            if (r.method == TopkMethod::NoauxTc) {
              int32_t top2[2];
              const int64_t n2 = std::min<int64_t>(2, per_group);
              topk(m, per_group, n2, top2);
              gscore[g] = 0.f;
              for (int64_t j = 0; j < n2; ++j) gscore[g] += m[top2[j]];
            } else {
              gscore[g] = *std::max_element(m, m + per_group);
            }
          }
          topk(gscore, n_group, r.topk_group, gidx);
          // Experts outside the kept groups cannot be chosen.
          for (int64_t g = 0; g < n_group; ++g) {
            const bool kept = std::find(gidx, gidx + r.topk_group, int32_t(g)) != gidx + r.topk_group;
            if (!kept) std::fill(sel + g * per_group, sel + (g + 1) * per_group, kNegInf);
          }
        }
        int32_t* ti = idx + t * k;
        float* tw = weight + t * k;
        topk(sel, E, k, ti);
        // Gate weights from the unbiased scores.
        float sum = 0.f;
        for (int64_t j = 0; j < k; ++j) sum += (tw[j] = s[ti[j]]);
        const float norm = (r.norm_topk_prob && k > 1) ? 1.f / (sum + 1e-20f) : 1.f;
        for (int64_t j = 0; j < k; ++j) tw[j] *= norm * r.routed_scaling_factor;
      }
    }
  });
}

// s_j the score of chosen expert j (σ or softmax), S = Σ_sel s, c the scale.
//   normalized: w_j = c s_j / S  ⇒  ∂L/∂s_j = c (dw_j / S − Σ_l dw_l s_l / S²)   (chosen j only)
//   plain:      w_j = c s_j      ⇒  ∂L/∂s_j = c dw_j
//   sigmoid: dz_j = ds_j s_j (1 − s_j);  softmax: dz_e = p_e (ds_e − Σ_j ds_j p_j) over all E.
void moe_route_backward(const RouterSpec& r, const float* logits, const int32_t* idx, const float* dweight, int64_t T,
                        float* dz) {
  const int64_t E = r.experts, k = r.experts_per_token;
  parallel_for(T, 8 * E, [&](int64_t t0, int64_t t1) {
    std::vector<double> s(static_cast<size_t>(E)), ds(static_cast<size_t>(E));
    for (int64_t t = t0; t < t1; ++t) {
      scores(r, logits + t * E, E, s.data());
      std::fill(ds.begin(), ds.end(), 0.0);
      const int32_t* it = idx + t * k;
      const float* dw = dweight + t * k;
      const double c = r.routed_scaling_factor;
      if (r.norm_topk_prob && k > 1) {
        double S = 1e-20, cross = 0;
        for (int64_t j = 0; j < k; ++j) S += s[size_t(it[j])];
        for (int64_t j = 0; j < k; ++j) cross += dw[j] * s[size_t(it[j])];
        for (int64_t j = 0; j < k; ++j) ds[size_t(it[j])] += c * (dw[j] / S - cross / (S * S));
      } else {
        for (int64_t j = 0; j < k; ++j) ds[size_t(it[j])] += c * dw[j];
      }
      if (r.scoring == ScoringFunc::Sigmoid) {
        for (int64_t e = 0; e < E; ++e) dz[t * E + e] += float(ds[size_t(e)] * s[size_t(e)] * (1.0 - s[size_t(e)]));
      } else {
        double dot = 0;
        for (int64_t e = 0; e < E; ++e) dot += ds[size_t(e)] * s[size_t(e)];
        for (int64_t e = 0; e < E; ++e) dz[t * E + e] += float(s[size_t(e)] * (ds[size_t(e)] - dot));
      }
    }
  });
}

double moe_balance_loss(const Pass& p, const RouterSpec& r, const float* logits, const int32_t* idx, int64_t B, int64_t S,
                        double coef, float* dlogits) {
  double sum = 0;
  for (int64_t b = 0; b < B; ++b)
    sum += balance_one(r, logits + b * S * r.experts, idx + b * S * r.experts_per_token, S, coef,
                       dlogits ? dlogits + b * S * r.experts : nullptr, p.ws);
  return sum;
}

// ---- the experts in this process ------------------------------------------------------------------------

namespace {

constexpr int64_t kStreamedMaxTokens = 16;  // LocalExperts: up to this many tokens, streamed_forward

// Which experts a process runs: the routed experts [e0, e1) and, if shared, the shared experts.
struct Owned {
  int64_t e0, e1;
  bool shared;
};

// The experts' tasks, largest first: owned routed experts with rows (by their row count), then the
// shared experts (every token) where they stand in that order. A task is an expert index, E for the shared.
int64_t expert_tasks(const int64_t* begin, int64_t E, int64_t n, Owned own, int32_t* tasks, int64_t* most) {
  int64_t count = 0;
  *most = 0;
  const bool shared = own.shared;
  for (int64_t e = own.e0; e < own.e1; ++e)
    if (begin[e + 1] > begin[e]) {
      tasks[count++] = int32_t(e);
      *most = std::max(*most, begin[e + 1] - begin[e]);
    }
  if (shared) tasks[count++] = int32_t(E);
  // Insertion sort, stable and without the allocation std::stable_sort makes (a decode step allocates
  // nothing); E + 1 tasks at most.
  auto rows = [&](int32_t e) { return e == E ? n : begin[e + 1] - begin[e]; };
  for (int64_t i = 1; i < count; ++i)
    for (int64_t j = i; j > 0 && rows(tasks[j]) > rows(tasks[j - 1]); --j) std::swap(tasks[j], tasks[j - 1]);
  return count;
}

// Few tokens (decode, small batches): the products are matrix-vector shaped and memory bound, and a
// step's experts are small (1–3 MiB each on the bench model): one expert per thread would leave each
// core streaming alone, and an odd count idles one. Instead every expert's gate and up products run in
// one parallel region, their rows dealt out evenly to the threads (matmul_many), then SwiGLU, then
// every down product in a second region.
void streamed_forward(const Pass& p, const MoeWeights& w, const float* x, const float* xs, const int64_t* begin,
                      int64_t n, float* ys, float* y, Owned own) {
  Workspace::Frame frame(p.ws);
  const std::vector<MlpWeights>& experts = w.experts;
  const int64_t E = int64_t(experts.size()), R = begin[E];
  const int64_t D = experts[0].gate_proj.cols, F = experts[0].gate_proj.rows;
  const int64_t Fs = w.has_shared ? w.shared_experts.gate_proj.rows : 0;
  float* gu = p.ws.alloc<float>(R * 2 * F + n * 2 * Fs);  // routed rows [R, 2F], then the shared [n, 2Fs]
  float* act = p.ws.alloc<float>(R * F + n * Fs);
  float* shared_gu = gu + R * 2 * F;
  float* shared_act = act + R * F;
  MatmulJob* jobs = make_n<MatmulJob>(p.ws, 2 * (E + 1));
  int64_t count = 0;
  auto gate_up = [&](const MlpWeights& e, const float* in, int64_t rows, float* out, int64_t f) {
    jobs[count++] = MatmulJob{out, in, e.gate_proj, rows, nullptr, 2 * f};
    jobs[count++] = MatmulJob{out + f, in, e.up_proj, rows, nullptr, 2 * f};
  };
  const bool shared = w.has_shared && own.shared;
  for (int64_t e = own.e0; e < own.e1; ++e)
    if (begin[e + 1] > begin[e])
      gate_up(experts[size_t(e)], xs + begin[e] * D, begin[e + 1] - begin[e], gu + begin[e] * 2 * F, F);
  if (shared) gate_up(w.shared_experts, x, n, shared_gu, Fs);
  matmul_many(jobs, count);
  swiglu(act + begin[own.e0] * F, gu + begin[own.e0] * 2 * F, begin[own.e1] - begin[own.e0], F);
  if (shared) swiglu(shared_act, shared_gu, n, Fs);
  count = 0;
  for (int64_t e = own.e0; e < own.e1; ++e)
    if (begin[e + 1] > begin[e])
      jobs[count++] = MatmulJob{ys + begin[e] * D, act + begin[e] * F, experts[size_t(e)].down_proj,
                                begin[e + 1] - begin[e]};
  if (shared) jobs[count++] = MatmulJob{y, shared_act, w.shared_experts.down_proj, n};
  matmul_many(jobs, count);
}

// Many tokens (prefill, training): each expert's GEMMs are compute bound; one expert per thread, the
// largest first.
void tasks_forward(const Pass& p, const MoeWeights& w, const float* x, const float* xs, const int64_t* begin, int64_t n,
                   float* ys, float* y, MoeActs* acts, Owned own) {
  Workspace::Frame frame(p.ws);
  const std::vector<MlpWeights>& experts = w.experts;
  const int64_t E = int64_t(experts.size()), R = begin[E];
  const int64_t D = experts[0].gate_proj.cols, F = experts[0].gate_proj.rows;
  const int64_t Fs = w.has_shared ? w.shared_experts.gate_proj.rows : 0;
  RoutedActs* ra = acts ? &acts->routed : nullptr;
  int32_t* tasks = p.ws.alloc<int32_t>(E + 1);
  int64_t most = 0;
  const int64_t n_tasks = expert_tasks(begin, E, n, {own.e0, own.e1, w.has_shared && own.shared}, tasks, &most);
  // The SwiGLU activations: kept for every row in training; at inference one routed expert's worth per
  // thread, sized for the largest before the region (a decode step must not allocate).
  const int threads = max_threads();
  float* gu_all = ra ? kept_or_scratch(&ra->gu, p.ws, R * 2 * F) : p.ws.alloc<float>(int64_t(threads) * most * 2 * F);
  float* act_all = ra ? kept_or_scratch(&ra->act, p.ws, R * F) : p.ws.alloc<float>(int64_t(threads) * most * F);
  float* shared_gu = nullptr;
  float* shared_act = nullptr;
  if (w.has_shared && own.shared) {
    shared_gu = acts ? kept_or_scratch(&acts->shared.gu, p.ws, n * 2 * Fs) : p.ws.alloc<float>(n * 2 * Fs);
    shared_act = acts ? kept_or_scratch(&acts->shared.act, p.ws, n * Fs) : p.ws.alloc<float>(n * Fs);
  }
  p.ws.reserve_threads(threads);
  parallel_tasks(n_tasks, [&](int64_t t, int thread) {
    const Pass tp{p.ws.thread(thread), p.fp8, nullptr};
    Workspace::Frame task_frame(tp.ws);
    const int64_t e = tasks[t];
    if (e == E) return mlp_forward(tp, w.shared_experts, x, y, n, shared_gu, shared_act);
    const int64_t r0 = begin[e], ne = begin[e + 1] - r0;
    float* gu = ra ? gu_all + r0 * 2 * F : gu_all + int64_t(thread) * most * 2 * F;
    float* act = ra ? act_all + r0 * F : act_all + int64_t(thread) * most * F;
    mlp_forward(tp, experts[size_t(e)], xs + r0 * D, ys + r0 * D, ne, gu, act);
  });
}

// y = the owned experts' part of the layer: the shared experts' output if owned (else 0) plus the
// gate-weighted outputs of the owned routed experts (the others' rows count 0).
void experts_forward(const Pass& p, const MoeWeights& w, const float* x, int64_t n, int64_t k, const int32_t* idx,
                     const float* weight, float* y, MoeActs* acts, Owned own) {
  Workspace::Frame frame(p.ws);
  const std::vector<MlpWeights>& experts = w.experts;
  const int64_t E = int64_t(experts.size()), R = n * k;
  const int64_t D = experts[0].gate_proj.cols;
  RoutedActs* ra = acts ? &acts->routed : nullptr;
  // Group the n·k (token, choice) pairs by expert: a counting sort, stable in token order.
  int64_t* begin = kept_or_scratch(ra ? &ra->begin : nullptr, p.ws, E + 1);
  int32_t* token = kept_or_scratch(ra ? &ra->token : nullptr, p.ws, R);
  int32_t* row_of = kept_or_scratch(ra ? &ra->row_of : nullptr, p.ws, R);
  int64_t* cursor = p.ws.alloc<int64_t>(E);
  std::fill(begin, begin + E + 1, 0);
  for (int64_t i = 0; i < R; ++i) begin[idx[i] + 1]++;
  for (int64_t e = 0; e < E; ++e) begin[e + 1] += begin[e];
  std::copy(begin, begin + E, cursor);
  for (int64_t i = 0; i < R; ++i) {
    const int64_t row = cursor[idx[i]]++;
    row_of[i] = int32_t(row);
    token[row] = int32_t(i / k);
  }
  float* xs = kept_or_scratch(ra ? &ra->xs : nullptr, p.ws, R * D);  // [R, D] rows grouped by expert
  float* ys = kept_or_scratch(ra ? &ra->ys : nullptr, p.ws, R * D);
  const int64_t r0 = begin[own.e0], r1 = begin[own.e1];  // the owned experts' rows
  gather_rows(xs + r0 * D, x, token + r0, r1 - r0, D);
  // F32 weights (a training arena) go through BLAS, whose small products run best one expert per thread.
  const bool streamed = !acts && !p.fp8 && n <= kStreamedMaxTokens && experts[0].gate_proj.dtype != DType::F32;
  if (streamed)
    streamed_forward(p, w, x, xs, begin, n, ys, y, own);
  else
    tasks_forward(p, w, x, xs, begin, n, ys, y, acts, own);
  // Rows of experts another process runs: it adds their part.
  std::fill(ys, ys + r0 * D, 0.f);
  std::fill(ys + r1 * D, ys + R * D, 0.f);
  if (!w.has_shared || !own.shared) std::fill(y, y + n * D, 0.f);
  gather_weighted_sum(y, ys, row_of, weight, n, k, D);
}

}  // namespace

void LocalExperts::forward(const Pass& p, const MoeWeights& w, const float* x, int64_t n, int64_t k, const int32_t* idx,
                           const float* weight, float* y, MoeActs* acts) {
  experts_forward(p, w, x, n, k, idx, weight, y, acts, {0, int64_t(w.experts.size()), true});
}

namespace {

// The owned experts' part of the backward: dx from the owned experts (and the shared ones if owned),
// dweight for the choices of owned experts (0 for the others: their forward rows were 0), gradients of
// the owned experts only.
void experts_backward(const Pass& p, const MoeWeights& w, MoeGrads& g, const float* x, const float* dy, int64_t n,
                      int64_t k, const float* weight, float* dx, float* dweight, const MoeActs& acts, Owned own) {
  Workspace::Frame frame(p.ws);
  const RoutedActs& a = acts.routed;
  const int64_t E = int64_t(w.experts.size()), R = n * k;
  const int64_t D = w.experts[0].gate_proj.cols, F = w.experts[0].gate_proj.rows;
  float* dys = p.ws.alloc<float>(R * D);
  float* dxs = p.ws.alloc<float>(R * D);
  gather_weighted_sum_backward(dys, dweight, dy, a.ys.data(), a.row_of.data(), weight, n, k, D);
  int32_t* tasks = p.ws.alloc<int32_t>(E + 1);
  int64_t most = 0;
  const int64_t n_tasks = expert_tasks(a.begin.data(), E, n, {own.e0, own.e1, w.has_shared && own.shared}, tasks, &most);
  const int threads = max_threads();
  p.ws.reserve_threads(threads);
  parallel_tasks(n_tasks, [&](int64_t t, int thread) {
    const Pass tp{p.ws.thread(thread), p.fp8, nullptr};
    Workspace::Frame task_frame(tp.ws);
    const int64_t e = tasks[t];
    if (e == E)  // the shared experts write dx (no routed task touches it; their part is added after)
      return mlp_backward(tp, w.shared_experts, g.shared_experts, x, dy, dx, false, n, acts.shared.gu.data(),
                          acts.shared.act.data());
    const int64_t r0 = a.begin[size_t(e)], ne = a.begin[size_t(e + 1)] - r0;
    mlp_backward(tp, w.experts[size_t(e)], g.experts[size_t(e)], a.xs.data() + r0 * D, dys + r0 * D, dxs + r0 * D, false,
                 ne, a.gu.data() + r0 * 2 * F, a.act.data() + r0 * F);
  });
  const int64_t r0 = a.begin[size_t(own.e0)], r1 = a.begin[size_t(own.e1)];
  std::fill(dxs, dxs + r0 * D, 0.f);
  std::fill(dxs + r1 * D, dxs + R * D, 0.f);
  if (!w.has_shared || !own.shared) std::fill(dx, dx + n * D, 0.f);
  gather_weighted_sum(dx, dxs, a.row_of.data(), nullptr, n, k, D);
}

}  // namespace

void LocalExperts::backward(const Pass& p, const MoeWeights& w, MoeGrads& g, const float* x, const float* dy, int64_t n,
                            int64_t k, const float* weight, float* dx, float* dweight, const MoeActs& acts) {
  experts_backward(p, w, g, x, dy, n, k, weight, dx, dweight, acts, {0, int64_t(w.experts.size()), true});
}

SpreadExperts::SpreadExperts(Communicator& c, int64_t n_experts) : comm_(c), E_(n_experts) {
  if (n_experts < c.size())
    throw Error(strfmt("expert parallelism: %lld routed experts cannot be spread over %d ranks", (long long)n_experts,
                       c.size()));
  e0_ = n_experts * c.rank() / c.size();
  e1_ = n_experts * (c.rank() + 1) / c.size();
}

void ExpertParallel::forward(const Pass& p, const MoeWeights& w, const float* x, int64_t n, int64_t k, const int32_t* idx,
                             const float* weight, float* y, MoeActs* acts) {
  experts_forward(p, w, x, n, k, idx, weight, y, acts, {e0_, e1_, comm_.rank() == 0});
  comm_.all_reduce_sum(std::span<float>(y, size_t(n * w.experts[0].gate_proj.cols)));
  tokens_ += n;
}

void ExpertParallel::backward(const Pass&, const MoeWeights&, MoeGrads&, const float*, const float*, int64_t, int64_t,
                              const float*, float*, float*, const MoeActs&) {
  throw Error("expert parallelism with replicated tokens is for inference; training spreads the batch too (ExpertDispatch)");
}

int ExpertDispatch::owner(int32_t e) const {
  // The r with E r / N <= e < E (r + 1) / N: a guess from e N / E, corrected either way.
  const int64_t N = comm_.size();
  int64_t r = (int64_t(e) * N + N - 1) / E_;
  while (r > 0 && E_ * r / N > e) --r;
  while (E_ * (r + 1) / N <= e) ++r;
  return int(r);
}

void ExpertDispatch::exchange(const void* send, const std::vector<int64_t>& send_rows, void* recv,
                              const std::vector<int64_t>& recv_rows, int64_t width) {
  const size_t N = send_rows.size();
  std::vector<int64_t> sb(N), rb(N);
  for (size_t r = 0; r < N; ++r) {
    sb[r] = send_rows[r] * width, rb[r] = recv_rows[r] * width;
    if (int(r) != comm_.rank()) bytes_out_ += sb[r];
  }
  comm_.all_to_all(send, sb.data(), recv, rb.data());
}

void ExpertDispatch::forward(const Pass& p, const MoeWeights& w, const float* x, int64_t n, int64_t k, const int32_t* idx,
                             const float* weight, float* y, MoeActs* acts) {
  Workspace::Frame frame(p.ws);
  DispatchActs& d = (acts ? *acts : scratch_).dispatch;
  const int64_t D = w.experts[0].gate_proj.cols, R = n * k;
  const size_t N = size_t(comm_.size()), me = size_t(comm_.rank());
  // Each choice's place among the rows sent: grouped by rank, in (token, choice) order within a rank.
  d.sent.assign(N, 0);
  d.slot.resize(size_t(R));
  for (int64_t i = 0; i < R; ++i) d.sent[size_t(d.slot[size_t(i)] = owner(idx[i]))]++;  // the rank, for now
  std::vector<int64_t> cursor(N, 0), one(N, int64_t(sizeof(int64_t)));
  for (size_t r = 1; r < N; ++r) cursor[r] = cursor[r - 1] + d.sent[r - 1];
  for (int32_t& s : d.slot) s = int32_t(cursor[size_t(s)]++);  // the place among the rows sent
  d.received.assign(N, 0);
  comm_.all_to_all(d.sent.data(), one.data(), d.received.data(), one.data());
  bytes_out_ += int64_t(sizeof(int64_t)) * int64_t(N - 1);
  int64_t R_in = 0;
  for (int64_t m : d.received) R_in += m;
  // Dispatch: a row is its expert's index, then the token's D floats.
  const int64_t width = int64_t(sizeof(int32_t)) + D * int64_t(sizeof(float));
  uint8_t* out = p.ws.alloc<uint8_t>(R * width);
  uint8_t* in = p.ws.alloc<uint8_t>(R_in * width);
  for (int64_t i = 0; i < R; ++i) {
    uint8_t* row = out + int64_t(d.slot[size_t(i)]) * width;
    std::memcpy(row, idx + i, sizeof(int32_t));
    std::memcpy(row + sizeof(int32_t), x + (i / k) * D, sizeof(float) * size_t(D));
  }
  exchange(out, d.sent, in, d.received, width);
  d.x_in.resize(size_t(R_in * D));
  d.idx_in.resize(size_t(R_in));
  for (int64_t i = 0; i < R_in; ++i) {
    const uint8_t* row = in + i * width;
    std::memcpy(&d.idx_in[size_t(i)], row, sizeof(int32_t));
    if (d.idx_in[size_t(i)] < e0_ || d.idx_in[size_t(i)] >= e1_)
      throw Error(strfmt("expert dispatch: rank %zu received a row for expert %d, which it does not own", me,
                         d.idx_in[size_t(i)]));
    std::memcpy(d.x_in.data() + i * D, row + sizeof(int32_t), sizeof(float) * size_t(D));
  }
  for (size_t r = 0; r < N; ++r) rows_out_ += r == me ? 0 : d.sent[r];
  tokens_ += n;
  // The owned experts on every row received: one choice a row, weight 1 (exact), no shared experts.
  if (acts && !d.experts) d.experts = std::make_shared<MoeActs>();
  float* y_in = p.ws.alloc<float>(R_in * D);
  experts_forward(p, w, d.x_in.data(), R_in, 1, d.idx_in.data(), nullptr, y_in, acts ? d.experts.get() : nullptr,
                  {e0_, e1_, false});
  // Combine: the outputs go back to their tokens' ranks, in the order sent.
  d.back.resize(size_t(R * D));
  const int64_t fw = D * int64_t(sizeof(float));
  exchange(y_in, d.received, d.back.data(), d.sent, fw);
  if (w.has_shared) {
    const int64_t Fs = w.shared_experts.gate_proj.rows;
    float* gu = kept_or_scratch(acts ? &acts->shared.gu : nullptr, p.ws, n * 2 * Fs);
    float* act = kept_or_scratch(acts ? &acts->shared.act : nullptr, p.ws, n * Fs);
    mlp_forward(p, w.shared_experts, x, y, n, gu, act);
  } else {
    std::fill(y, y + n * D, 0.f);
  }
  gather_weighted_sum(y, d.back.data(), d.slot.data(), weight, n, k, D);
}

void ExpertDispatch::backward(const Pass& p, const MoeWeights& w, MoeGrads& g, const float* x, const float* dy, int64_t n,
                              int64_t k, const float* weight, float* dx, float* dweight, const MoeActs& acts) {
  Workspace::Frame frame(p.ws);
  const DispatchActs& d = acts.dispatch;
  const int64_t D = w.experts[0].gate_proj.cols, R = n * k, R_in = int64_t(d.idx_in.size());
  const int64_t fw = D * int64_t(sizeof(float));
  // The outputs' gradients in the order sent (weight · dy), and the gate weights' (dy · output).
  float* dback = p.ws.alloc<float>(R * D);
  gather_weighted_sum_backward(dback, dweight, dy, d.back.data(), d.slot.data(), weight, n, k, D);
  // To the experts' ranks, through the experts, and the inputs' gradients back.
  float* dy_in = p.ws.alloc<float>(R_in * D);
  exchange(dback, d.sent, dy_in, d.received, fw);
  float* ones = p.ws.alloc<float>(R_in);
  std::fill(ones, ones + R_in, 1.f);
  float* dx_in = p.ws.alloc<float>(R_in * D);
  float* dw_in = p.ws.alloc<float>(R_in);
  if (!d.experts) throw Error("expert dispatch: backward without a forward that kept its activations");
  experts_backward(p, w, g, d.x_in.data(), dy_in, R_in, 1, ones, dx_in, dw_in, *d.experts, {e0_, e1_, false});
  float* dxs = p.ws.alloc<float>(R * D);
  exchange(dx_in, d.received, dxs, d.sent, fw);
  if (w.has_shared)
    mlp_backward(p, w.shared_experts, g.shared_experts, x, dy, dx, false, n, acts.shared.gu.data(), acts.shared.act.data());
  else
    std::fill(dx, dx + n * D, 0.f);
  gather_weighted_sum(dx, dxs, d.slot.data(), nullptr, n, k, D);
}

ExpertExecutor& local_experts() {
  static LocalExperts local;
  return local;
}

// ---- the layer ------------------------------------------------------------------------------------------

void moe_forward(const Pass& p, const RouterSpec& r, const MoeWeights& w, const float* x, float* y, int64_t n,
                 MoeActs* acts, ExpertExecutor& ex, int32_t* idx_out, float* weight_out) {
  Workspace::Frame frame(p.ws);
  const int64_t E = r.experts, k = r.experts_per_token;
  const Pass router{p.ws, false, nullptr};  // the gate GEMM stays in f32 under FP8 simulation
  float* logits = kept_or_scratch(acts ? &acts->logits : nullptr, p.ws, n * E);  // [n, E]
  linear(router, logits, x, w.gate, n);
  int32_t* idx = kept_or_scratch(acts ? &acts->idx : nullptr, p.ws, n * k);    // [n, k]
  float* weight = kept_or_scratch(acts ? &acts->weight : nullptr, p.ws, n * k);  // [n, k]
  moe_route(p, r, logits, w.e_score_correction_bias, n, idx, weight);
  if (idx_out) std::memcpy(idx_out, idx, sizeof(int32_t) * size_t(n * k));
  if (weight_out) std::memcpy(weight_out, weight, sizeof(float) * size_t(n * k));
  ex.forward(p, w, x, n, k, idx, weight, y, acts);
}

void moe_backward(const Pass& p, const RouterSpec& r, const MoeWeights& w, MoeGrads& g, const float* x, const float* dy,
                  float* dx, int64_t n, const MoeActs& a, ExpertExecutor& ex, double balance_coef, int64_t B) {
  Workspace::Frame frame(p.ws);
  const int64_t E = r.experts, k = r.experts_per_token;
  float* dweight = p.ws.alloc<float>(n * k);
  ex.backward(p, w, g, x, dy, n, k, a.weight.data(), dx, dweight, a);
  float* dlogits = p.ws.alloc<float>(n * E);
  std::fill(dlogits, dlogits + n * E, 0.f);
  moe_route_backward(r, a.logits.data(), a.idx.data(), dweight, n, dlogits);
  if (balance_coef != 0) moe_balance_loss(p, r, a.logits.data(), a.idx.data(), B, n / B, balance_coef, dlogits);
  const Pass router{p.ws, false, nullptr};
  linear_backward(router, dx, true, ProjGrad{g.gate}, dlogits, x, w.gate, n);
}

}  // namespace seek
