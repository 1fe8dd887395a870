// moe.cpp — SwiGLU MLP and DeepSeekMoE: routing (softmax/sigmoid scores; greedy, group-limited and
// noaux_tc selection; the correction bias that moves selection but not weights) and the expert
// computation with tokens grouped per expert. DeepSeek-V3 §2.1.2, DeepSeek-V2 §2.2.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <omp.h>

#include "model/layers.h"
#include "util/error.h"

namespace seek {

void mlp_forward(const MlpWeights& w, const float* x, float* out, int64_t T, int64_t D, Workspace& ws) {
  const int64_t F = w.gate_proj.rows;
  float* g = ws.f(kGate, T * F);  // [T, F]
  float* u = ws.f(kUp, T * F);    // [T, F]
  matmul(g, x, w.gate_proj, T);
  matmul(u, x, w.up_proj, T);
  silu_mul(g, g, u, T * F);
  matmul(out, g, w.down_proj, T);  // [T, D]
  (void)D;
}

void moe_route(const Config& c, const float* logits, const float* bias, int64_t T, int32_t* idx, float* weight,
               Workspace& ws) {
  const int64_t E = c.n_routed_experts, k = c.num_experts_per_tok;
  const int64_t n_group = c.n_group, per_group = E / n_group;
  const bool grouped = c.topk_method != TopkMethod::Greedy && n_group > 1;
  float* s = ws.f(kScores2, E);    // scores s_i
  float* sel = ws.f(kSel, E + 2 * n_group);  // selection scores, then group scores
  float* gscore = sel + E;
  int32_t* gidx = reinterpret_cast<int32_t*>(sel + E + n_group);
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < T; ++t) {
    const float* z = logits + t * E;
    if (c.scoring_func == ScoringFunc::Sigmoid) {
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
        if (c.topk_method == TopkMethod::NoauxTc) {
          int32_t top2[2];
          int64_t n2 = std::min<int64_t>(2, per_group);
          topk(m, per_group, n2, top2);
          gscore[g] = 0.f;
          for (int64_t j = 0; j < n2; ++j) gscore[g] += m[top2[j]];
        } else {
          gscore[g] = *std::max_element(m, m + per_group);
        }
      }
      topk(gscore, n_group, c.topk_group, gidx);
      // Experts outside the kept groups cannot be chosen.
      for (int64_t g = 0; g < n_group; ++g) {
        bool kept = std::find(gidx, gidx + c.topk_group, int32_t(g)) != gidx + c.topk_group;
        if (!kept) std::fill(sel + g * per_group, sel + (g + 1) * per_group, kNegInf);
      }
    }
    int32_t* ti = idx + t * k;
    float* tw = weight + t * k;
    topk(sel, E, k, ti);
    // Gate weights from the unbiased scores.
    float sum = 0.f;
    for (int64_t j = 0; j < k; ++j) sum += (tw[j] = s[ti[j]]);
    const float norm = (c.norm_topk_prob && k > 1) ? 1.f / (sum + 1e-20f) : 1.f;
    for (int64_t j = 0; j < k; ++j) tw[j] *= norm * float(c.routed_scaling_factor);
  }
}

void moe_forward(const Config& c, const MoeWeights& w, const float* x, float* out, int64_t T, Workspace& ws,
                 int32_t* idx_out, float* weight_out) {
  const int64_t E = c.n_routed_experts, k = c.num_experts_per_tok, D = c.hidden_size;
  float* logits = ws.f(kRouterLogits, T * E);  // [T, E]
  matmul(logits, x, w.gate, T);
  int32_t* idx = ws.i(kTopkIdx, T * k);  // [T, k]
  float* wt = ws.f(kTopkW, T * k);       // [T, k]
  moe_route(c, logits, w.e_score_correction_bias.empty() ? nullptr : w.e_score_correction_bias.data(), T, idx, wt, ws);
  if (idx_out) std::memcpy(idx_out, idx, sizeof(int32_t) * size_t(T * k));
  if (weight_out) std::memcpy(weight_out, wt, sizeof(float) * size_t(T * k));

  // Group the T·k (token, slot) pairs by expert: counting sort, stable in token order.
  // order[r] = pair at grouped row r; row_of[p] = its row; start[e] .. start[e+1] = expert e's rows.
  int32_t* order = ws.i(kOrder, 2 * T * k + 2 * E + 1);
  int32_t* row_of = order + T * k;
  int32_t* start = row_of + T * k;
  int32_t* cursor = start + E + 1;
  std::fill(start, start + E + 1, 0);
  for (int64_t p = 0; p < T * k; ++p) start[idx[p] + 1]++;
  for (int64_t e = 0; e < E; ++e) start[e + 1] += start[e];
  std::memcpy(cursor, start, sizeof(int32_t) * size_t(E));
  for (int64_t p = 0; p < T * k; ++p) {
    row_of[p] = cursor[idx[p]]++;
    order[row_of[p]] = int32_t(p);
  }
  float* xg = ws.f(kGather, T * k * D);     // [T·k, D] rows grouped by expert
  float* yg = ws.f(kExpertOut, T * k * D);  // [T·k, D]
#pragma omp parallel for schedule(static) if (T * k * D > 65536)
  for (int64_t r = 0; r < T * k; ++r) std::memcpy(xg + r * D, x + (order[r] / k) * D, sizeof(float) * size_t(D));

  // One expert per thread: each expert's matmuls run whole on one core (nested regions are serial),
  // which beats splitting a ~T·k/E-row matmul over both cores with a barrier after each.
  int32_t* active = ws.i(kActive, E);  // the experts with tokens
  int64_t n_active = 0;
  for (int64_t e = 0; e < E; ++e)
    if (start[e + 1] > start[e]) active[n_active++] = int32_t(e);
  // Every thread's scratch is sized for the largest expert before the loop: which thread runs which
  // expert varies from call to call, and a decode step must not allocate.
  int64_t most = 0;
  for (int64_t a = 0; a < n_active; ++a) most = std::max<int64_t>(most, start[active[a] + 1] - start[active[a]]);
  const int n_threads = omp_get_max_threads();
  ws.threads(n_threads);
  for (int i = 0; i < n_threads; ++i) {
    ws.thread(i).f(kGate, most * c.moe_intermediate_size);
    ws.thread(i).f(kUp, most * c.moe_intermediate_size);
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t a = 0; a < n_active; ++a) {
    const int64_t e = active[a], n = start[e + 1] - start[e];
    mlp_forward(w.experts[size_t(e)], xg + start[e] * D, yg + start[e] * D, n, D, ws.thread(omp_get_thread_num()));
  }
  if (w.has_shared) {
    mlp_forward(w.shared, x, out, T, D, ws);
  } else {
    std::fill(out, out + T * D, 0.f);
  }
  // Weighted sum per token (no two threads touch the same row).
#pragma omp parallel for schedule(static) if (T * k * D > 65536)
  for (int64_t t = 0; t < T; ++t) {
    float* o = out + t * D;
    for (int64_t j = 0; j < k; ++j) {
      const float g = wt[t * k + j];
      const float* y = yg + int64_t(row_of[t * k + j]) * D;
      for (int64_t d = 0; d < D; ++d) o[d] += g * y[d];
    }
  }
}

}  // namespace seek
