// mla_train.cpp — see mla_train.h. Steps are numbered so the backward can be read against the forward.
#include "train/mla_train.h"

#include <cstring>

#include "train/grad_ops.h"

namespace seek::train {

namespace {
std::vector<float>& sized(std::vector<float>& v, int64_t n) {
  v.assign(static_cast<size_t>(n), 0.f);
  return v;
}
}  // namespace

void mla_train_forward(const Config& c, const Rope& rope_tab, const MlaParams& p, const float* x, float* out,
                       int64_t B, int64_t S, MlaActivations& a) {
  const int64_t T = B * S;  // rows; S tokens per sequence
  const int64_t D = c.hidden_size, H = c.num_attention_heads, C = c.kv_lora_rank, R = c.qk_rope_head_dim;
  const int64_t nope = c.qk_nope_head_dim, qk = c.qk_head_dim(), vd = c.v_head_dim, ql = c.q_lora_rank;
  const float eps = float(c.rms_norm_eps);
  const std::vector<int32_t> pos = batch_positions(B, S);
  // 1. query
  sized(a.q, T * H * qk);
  if (ql == 0) {
    linear_forward(a.q.data(), x, p.q_proj, nullptr, T, D, H * qk);
  } else {
    linear_forward(sized(a.qa, T * ql).data(), x, p.q_a_proj, nullptr, T, D, ql);
    rmsnorm_forward(sized(a.qa_n, T * ql).data(), sized(a.qa_rstd, T).data(), a.qa.data(), p.q_a_norm, T, ql, eps);
    linear_forward(a.q.data(), a.qa_n.data(), p.q_b_proj, nullptr, T, ql, H * qk);
  }
  // 2. rope on the query's decoupled part
  rope(a.q.data() + nope, T, H, H * qk, qk, pos.data(), rope_tab.inv_freq.data(), R, rope_tab.cos_sin_scale,
       RopeLayout::Interleaved);
  // 3. compressed kv: [c_kv ; k_pe]
  std::vector<float> kva(static_cast<size_t>(T * (C + R)));
  linear_forward(kva.data(), x, p.kv_a_proj, nullptr, T, D, C + R);
  sized(a.ckv, T * C);
  sized(a.kpe, T * R);
  for (int64_t t = 0; t < T; ++t) {
    std::memcpy(&a.ckv[size_t(t * C)], &kva[size_t(t * (C + R))], sizeof(float) * size_t(C));
    std::memcpy(&a.kpe[size_t(t * R)], &kva[size_t(t * (C + R) + C)], sizeof(float) * size_t(R));
  }
  rmsnorm_forward(sized(a.ckv_n, T * C).data(), sized(a.ckv_rstd, T).data(), a.ckv.data(), p.kv_a_norm, T, C, eps);
  rope(a.kpe.data(), T, 1, R, R, pos.data(), rope_tab.inv_freq.data(), R, rope_tab.cos_sin_scale, RopeLayout::Interleaved);
  // 4. decompress: kv [T, H·(nope + v)]
  std::vector<float> kv(static_cast<size_t>(T * H * (nope + vd)));
  linear_forward(kv.data(), a.ckv_n.data(), p.kv_b_proj, nullptr, T, C, H * (nope + vd));
  // 5. per-head keys [k_nope ; k_pe] and values
  sized(a.K, T * H * qk);
  sized(a.V, T * H * vd);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      const float* src = &kv[size_t((t * H + h) * (nope + vd))];
      std::memcpy(&a.K[size_t((t * H + h) * qk)], src, sizeof(float) * size_t(nope));
      std::memcpy(&a.K[size_t((t * H + h) * qk + nope)], &a.kpe[size_t(t * R)], sizeof(float) * size_t(R));
      std::memcpy(&a.V[size_t((t * H + h) * vd)], src + nope, sizeof(float) * size_t(vd));
    }
  // 6. attention
  attention_forward(sized(a.attn, T * H * vd).data(), sized(a.att, B * H * S * S).data(), a.q.data(), a.K.data(),
                    a.V.data(), B, S, H, H, qk, vd, c.softmax_scale());
  // 7. output projection
  linear_forward(out, a.attn.data(), p.o_proj, nullptr, T, H * vd, D);
}

void mla_train_backward(const Config& c, const Rope& rope_tab, const MlaParams& p, MlaParams& g, const float* x,
                        const float* dout, float* dx, int64_t B, int64_t S, const MlaActivations& a) {
  const int64_t T = B * S;
  const int64_t D = c.hidden_size, H = c.num_attention_heads, C = c.kv_lora_rank, R = c.qk_rope_head_dim;
  const int64_t nope = c.qk_nope_head_dim, qk = c.qk_head_dim(), vd = c.v_head_dim, ql = c.q_lora_rank;
  const std::vector<int32_t> pos = batch_positions(B, S);
  auto zeros = [](int64_t n) { return std::vector<float>(static_cast<size_t>(n), 0.f); };
  // 7'. output projection
  std::vector<float> dattn = zeros(T * H * vd);
  linear_backward(dattn.data(), g.o_proj, nullptr, dout, a.attn.data(), p.o_proj, T, H * vd, D);
  // 6'. attention
  std::vector<float> dq = zeros(T * H * qk), dK = zeros(T * H * qk), dV = zeros(T * H * vd);
  attention_backward(dq.data(), dK.data(), dV.data(), dattn.data(), a.att.data(), a.q.data(), a.K.data(), a.V.data(), B,
                     S, H, H, qk, vd, c.softmax_scale());
  // 5'. back to kv and the shared k_pe (summed over heads)
  std::vector<float> dkv = zeros(T * H * (nope + vd)), dkpe = zeros(T * R);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      float* dst = &dkv[size_t((t * H + h) * (nope + vd))];
      const float* dk = &dK[size_t((t * H + h) * qk)];
      std::memcpy(dst, dk, sizeof(float) * size_t(nope));
      std::memcpy(dst + nope, &dV[size_t((t * H + h) * vd)], sizeof(float) * size_t(vd));
      for (int64_t r = 0; r < R; ++r) dkpe[size_t(t * R + r)] += dk[nope + r];
    }
  // 4'. decompression
  std::vector<float> dckv_n = zeros(T * C);
  linear_backward(dckv_n.data(), g.kv_b_proj, nullptr, dkv.data(), a.ckv_n.data(), p.kv_b_proj, T, C, H * (nope + vd));
  // 3'. k_pe rope, c_kv norm, the compressing projection
  rope_backward(dkpe.data(), T, 1, R, R, pos.data(), rope_tab.inv_freq.data(), R, rope_tab.cos_sin_scale,
                RopeLayout::Interleaved);
  std::vector<float> dckv = zeros(T * C);
  rmsnorm_backward(dckv.data(), g.kv_a_norm, dckv_n.data(), a.ckv.data(), p.kv_a_norm, a.ckv_rstd.data(), T, C);
  std::vector<float> dkva = zeros(T * (C + R));
  for (int64_t t = 0; t < T; ++t) {
    std::memcpy(&dkva[size_t(t * (C + R))], &dckv[size_t(t * C)], sizeof(float) * size_t(C));
    std::memcpy(&dkva[size_t(t * (C + R) + C)], &dkpe[size_t(t * R)], sizeof(float) * size_t(R));
  }
  linear_backward(dx, g.kv_a_proj, nullptr, dkva.data(), x, p.kv_a_proj, T, D, C + R);
  // 2'. query rope
  rope_backward(dq.data() + nope, T, H, H * qk, qk, pos.data(), rope_tab.inv_freq.data(), R, rope_tab.cos_sin_scale,
                RopeLayout::Interleaved);
  // 1'. query projections
  if (ql == 0) {
    linear_backward(dx, g.q_proj, nullptr, dq.data(), x, p.q_proj, T, D, H * qk);
  } else {
    std::vector<float> dqa_n = zeros(T * ql), dqa = zeros(T * ql);
    linear_backward(dqa_n.data(), g.q_b_proj, nullptr, dq.data(), a.qa_n.data(), p.q_b_proj, T, ql, H * qk);
    rmsnorm_backward(dqa.data(), g.q_a_norm, dqa_n.data(), a.qa.data(), p.q_a_norm, a.qa_rstd.data(), T, ql);
    linear_backward(dx, g.q_a_proj, nullptr, dqa.data(), x, p.q_a_proj, T, D, ql);
  }
}

}  // namespace seek::train
