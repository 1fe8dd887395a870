// attention.cpp — see attention.h.
#include "nn/attention.h"

#include <algorithm>

#include "tensor/backend.h"
#include "tensor/kernels.h"
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
  for (const AttentionJob& j : jobs) {
    if (!j.probs) longest = std::max(longest, j.pos0 + j.T);
    SEEK_ASSERT_MSG(!j.probs || (j.pos0 == 0 && !j.q2.base), "a training job has pos0 0 and one score term");
  }
  const int threads = max_threads();
  float* scratch = longest ? p.ws.alloc<float>(int64_t(threads) * kQueryBlock * longest) : nullptr;
  parallel_tasks(int64_t(jobs.size()) * H, [&](int64_t task, int thread) {
    const AttentionJob& j = jobs[size_t(task / H)];
    const int64_t h = task % H;
    if (j.probs) {  // training: kernels.h's one-head form keeps [T, T] per head
      attention_head(j.q.at(h), j.q.row, j.k.at(h), j.k.row, j.v.at(h), j.v.row, j.T, j.q.dim, j.v.dim, scale,
                     j.probs + h * j.T * j.T, j.T, j.out + h * j.v.dim, j.ldo);
      return;
    }
    float* S = scratch + int64_t(thread) * kQueryBlock * longest;
    for (int64_t q0 = 0; q0 < j.T; q0 += kQueryBlock) {
      const int64_t Tb = std::min(kQueryBlock, j.T - q0), Lb = j.pos0 + q0 + Tb;
      gemm(false, true, Tb, Lb, j.q.dim, scale, j.q.at(h) + q0 * j.q.row, j.q.row, j.k.at(h), j.k.row, 0.f, S, Lb);
      if (j.q2.base)
        gemm(false, true, Tb, Lb, j.q2.dim, scale, j.q2.at(h) + q0 * j.q2.row, j.q2.row, j.k2.at(h), j.k2.row, 1.f, S,
             Lb);
      softmax_causal(S, Tb, Lb, Lb, j.pos0 + q0 + 1);
      gemm(false, false, Tb, j.v.dim, Lb, 1.f, S, Lb, j.v.at(h), j.v.row, 0.f, j.out + q0 * j.ldo + h * j.v.dim,
           j.ldo);
    }
  });
}

// The backward of each head is kernels.h's attention_head_backward; the heads of a GQA group run in one
// task, the first writing the group's dk and dv and the others adding.
void causal_attention_backward(const Pass&, std::span<const AttentionGradJob> jobs, int64_t H, int64_t G,
                               float scale) {
  const int64_t group = H / G;
  parallel_tasks(int64_t(jobs.size()) * G, [&](int64_t task, int) {
    const AttentionGradJob& j = jobs[size_t(task / G)];
    const int64_t g = task % G, T = j.T;
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      const AttentionHeadGrads grads{j.dq.at(h), j.dq.row, j.dk.at(h), j.dk.row, j.dv.at(h), j.dv.row, h != g * group};
      attention_head_backward(j.q.at(h), j.q.row, j.k.at(h), j.k.row, j.v.at(h), j.v.row, T, j.q.dim, j.v.dim, scale,
                              j.probs + h * T * T, T, j.dout + h * j.v.dim, j.lddo, grads);
    }
  });
}

}  // namespace seek
