// attention.cpp — see attention.h.
#include "nn/attention.h"

#include <algorithm>

#include "tensor/backend.h"
#include "util/error.h"

namespace seek {

namespace {
constexpr int64_t kQueryBlock = 64;  // causal query block
}  // namespace

const char* mla_form_name(MlaForm f) { return f == MlaForm::Naive ? "naive" : "absorbed"; }

void causal_attention(const Pass& p, std::span<const AttentionJob> jobs, int64_t H, float scale) {
  Workspace::Frame frame(p.ws);
  // Scores of one query block per thread, for the jobs that keep no probabilities.
  int64_t longest = 0;
  for (const AttentionJob& j : jobs)
    if (!j.probs) longest = std::max(longest, j.pos0 + j.T);
  const int threads = max_threads();
  float* scratch = longest ? p.ws.alloc<float>(int64_t(threads) * kQueryBlock * longest) : nullptr;
  parallel_tasks(int64_t(jobs.size()) * H, [&](int64_t task, int thread) {
    const AttentionJob& j = jobs[size_t(task / H)];
    const int64_t h = task % H, L = j.pos0 + j.T;
    for (int64_t q0 = 0; q0 < j.T; q0 += kQueryBlock) {
      const int64_t Tb = std::min(kQueryBlock, j.T - q0), Lb = j.pos0 + q0 + Tb;
      float* S;
      int64_t ldS;
      if (j.probs) {
        S = j.probs + (h * j.T + q0) * L;  // [Tb, L] of the kept [T, T]
        ldS = L;
      } else {
        S = scratch + int64_t(thread) * kQueryBlock * longest;
        ldS = Lb;
      }
      gemm(false, true, Tb, Lb, j.q.dim, scale, j.q.at(h) + q0 * j.q.row, j.q.row, j.k.at(h), j.k.row, 0.f, S, ldS);
      if (j.q2.base)
        gemm(false, true, Tb, Lb, j.q2.dim, scale, j.q2.at(h) + q0 * j.q2.row, j.q2.row, j.k2.at(h), j.k2.row, 1.f, S,
             ldS);
      softmax_causal(S, Tb, Lb, ldS, j.pos0 + q0 + 1);
      gemm(false, false, Tb, j.v.dim, Lb, 1.f, S, ldS, j.v.at(h), j.v.row, 0.f, j.out + q0 * j.ldo + h * j.v.dim,
           j.ldo);
    }
  });
}

// o_t = Σ_s a_ts v_s, a_t = softmax_s≤t(c q_t·k_s)
//   ⇒ dv_s += Σ_t a_ts do_t;  da_ts = do_t·v_s;  dz_ts = a_ts (da_ts − Σ_s' a_ts' da_ts');
//     dq_t += c Σ_s dz_ts k_s;  dk_s += c Σ_t dz_ts q_t.
// Per query block, as GEMMs: dA = dO Vᵀ, dZ = c A ∘ (dA − rowsum(A ∘ dA)), dQ = dZ K, dK += dZᵀ Q,
// dV += Aᵀ dO (masked entries of A are 0, so they add nothing). The blocks run last to first: the last
// block reaches every key, so its GEMMs write dK and dV for the group's first head, and every later one
// adds — nothing needs zeroing first. Each block writes its own rows of dQ.
void causal_attention_backward(const Pass& p, std::span<const AttentionGradJob> jobs, int64_t H, int64_t G,
                               float scale) {
  Workspace::Frame frame(p.ws);
  int64_t longest = 0;
  for (const AttentionGradJob& j : jobs) longest = std::max(longest, j.T);
  const int threads = max_threads();
  float* scratch = p.ws.alloc<float>(int64_t(threads) * kQueryBlock * longest);
  const int64_t group = H / G;
  parallel_tasks(int64_t(jobs.size()) * G, [&](int64_t task, int thread) {
    const AttentionGradJob& j = jobs[size_t(task / G)];
    const int64_t g = task % G, T = j.T;
    float* da = scratch + int64_t(thread) * kQueryBlock * longest;
    const int64_t last = (T - 1) / kQueryBlock * kQueryBlock;
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      const float* a_h = j.probs + h * T * T;
      for (int64_t i0 = last; i0 >= 0; i0 -= kQueryBlock) {
        const int64_t i1 = std::min(T, i0 + kQueryBlock), m = i1 - i0;
        const float kv_beta = h == g * group && i0 == last ? 0.f : 1.f;
        const float* a = a_h + i0 * T;
        const float* dout = j.dout + i0 * j.lddo + h * j.v.dim;
        gemm(false, true, m, i1, j.v.dim, 1.f, dout, j.lddo, j.v.at(h), j.v.row, 0.f, da, i1);
        softmax_backward(da, a, m, i1, i1, T, scale);
        gemm(false, false, m, j.q.dim, i1, 1.f, da, i1, j.k.at(h), j.k.row, 0.f, j.dq.at(h) + i0 * j.dq.row, j.dq.row);
        gemm(true, false, i1, j.k.dim, m, 1.f, da, i1, j.q.at(h) + i0 * j.q.row, j.q.row, kv_beta, j.dk.at(h), j.dk.row);
        gemm(true, false, i1, j.v.dim, m, 1.f, a, T, dout, j.lddo, kv_beta, j.dv.at(h), j.dv.row);
      }
    }
  });
}

}  // namespace seek
