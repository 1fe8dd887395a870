// gqa.cpp — see gqa.h.
#include "nn/gqa.h"

#include <algorithm>
#include <cstring>

#include "nn/linear.h"
#include "util/error.h"

namespace seek {

void gqa_forward(const Pass& p, const GqaSpec& s, const GqaWeights& w, const float* x, float* out, const Rows& rows,
                 GqaActs* acts) {
  Workspace::Frame frame(p.ws);
  const int64_t N = rows.n, H = s.heads, G = s.kv_heads, hd = s.head_dim, ld = (H + 2 * G) * hd;
  const std::vector<Segment>& segs = *rows.segs;
  // q | k | v [N, (H + 2G)·hd], roped.
  float* qkv = kept_or_scratch(acts ? &acts->qkv : nullptr, p.ws, N * ld);
  linear(p, qkv, x, {Proj{w.q_proj, w.q_bias}, Proj{w.k_proj, w.k_bias}, Proj{w.v_proj, w.v_bias}}, N);
  float *q = qkv, *k = qkv + H * hd, *v = qkv + (H + G) * hd;
  s.rope->apply(q, N, H, ld, hd, rows.pos);
  s.rope->apply(k, N, G, ld, hd, rows.pos);

  float* attn = kept_or_scratch(acts ? &acts->attn : nullptr, p.ws, N * H * hd);
  AttentionJob* jobs = make_n<AttentionJob>(p.ws, int64_t(segs.size()));
  if (acts) {
    int64_t n = 0;
    for (const Segment& sg : segs) n += H * sg.T * sg.T;
    kept_or_scratch(&acts->probs, p.ws, n);
  }
  int64_t probs_at = 0;
  const int64_t group = H / G;
  for (size_t i = 0; i < segs.size(); ++i) {
    const Segment& sg = segs[i];
    const int64_t T = sg.T, r0 = sg.row0;
    AttentionJob& job = jobs[i];
    job.T = T;
    job.pos0 = sg.pos0;
    job.q = {q + r0 * ld, hd, ld, hd};
    if (sg.cache) {  // the cache: k, v [cap, G, hd]
      for (int64_t t = 0; t < T; ++t) {
        std::memcpy(sg.cache->k.data() + (sg.pos0 + t) * G * hd, k + (r0 + t) * ld, sizeof(float) * size_t(G * hd));
        std::memcpy(sg.cache->v.data() + (sg.pos0 + t) * G * hd, v + (r0 + t) * ld, sizeof(float) * size_t(G * hd));
      }
      job.k = {sg.cache->k.data(), hd, G * hd, hd, group};
      job.v = {sg.cache->v.data(), hd, G * hd, hd, group};
    } else {
      job.k = {k + r0 * ld, hd, ld, hd, group};
      job.v = {v + r0 * ld, hd, ld, hd, group};
    }
    job.out = attn + r0 * H * hd;
    job.ldo = H * hd;
    if (acts) {
      SEEK_ASSERT(!sg.cache && sg.pos0 == 0);
      job.probs = acts->probs.data() + probs_at;
      probs_at += H * T * T;
    }
  }
  causal_attention(p, {jobs, segs.size()}, H, s.softmax_scale);
  linear(p, out, attn, w.o_proj, N);
}

void gqa_backward(const Pass& p, const GqaSpec& s, const GqaWeights& w, GqaGrads& g, const float* x, const float* dout,
                  float* dx, const Rows& rows, const GqaActs& a) {
  Workspace::Frame frame(p.ws);
  const int64_t N = rows.n, H = s.heads, G = s.kv_heads, hd = s.head_dim, ld = (H + 2 * G) * hd;
  const std::vector<Segment>& segs = *rows.segs;
  float* dattn = p.ws.alloc<float>(N * H * hd);
  linear_backward(p, dattn, false, ProjGrad{g.o_proj}, dout, a.attn.data(), w.o_proj, N);
  float* dqkv = p.ws.alloc<float>(N * ld);  // written by the attention's backward
  const float* qkv = a.qkv.data();
  AttentionGradJob* jobs = make_n<AttentionGradJob>(p.ws, int64_t(segs.size()));
  const int64_t group = H / G;
  int64_t probs_at = 0;
  for (size_t i = 0; i < segs.size(); ++i) {
    const Segment& sg = segs[i];
    const int64_t r0 = sg.row0;
    AttentionGradJob& j = jobs[i];
    j.T = sg.T;
    j.q = {qkv + r0 * ld, hd, ld, hd};
    j.k = {qkv + r0 * ld + H * hd, hd, ld, hd, group};
    j.v = {qkv + r0 * ld + (H + G) * hd, hd, ld, hd, group};
    j.dq = {dqkv + r0 * ld, hd, ld};
    j.dk = {dqkv + r0 * ld + H * hd, hd, ld, group};
    j.dv = {dqkv + r0 * ld + (H + G) * hd, hd, ld, group};
    j.dout = dattn + r0 * H * hd;
    j.lddo = H * hd;
    j.probs = a.probs.data() + probs_at;
    probs_at += H * sg.T * sg.T;
  }
  causal_attention_backward(p, {jobs, segs.size()}, H, G, s.softmax_scale);
  s.rope->apply(dqkv, N, H, ld, hd, rows.pos, true);
  s.rope->apply(dqkv + H * hd, N, G, ld, hd, rows.pos, true);
  linear_backward(p, dx, false, {ProjGrad{g.q_proj, g.q_bias}, ProjGrad{g.k_proj, g.k_bias}, ProjGrad{g.v_proj, g.v_bias}},
                  dqkv, x, {Proj{w.q_proj, w.q_bias}, Proj{w.k_proj, w.k_bias}, Proj{w.v_proj, w.v_bias}}, N);
}

}  // namespace seek
