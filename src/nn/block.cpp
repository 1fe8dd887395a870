// block.cpp — see block.h.
#include "nn/block.h"

#include <algorithm>
#include <vector>

#include "nn/mlp.h"
#include "tensor/kernels.h"

namespace seek {

void block_forward(const Pass& p, const BlockSpec& s, const BlockWeights& w, const float* x, float* out,
                   const Rows& rows, BlockActs* acts, ExpertExecutor& ex, const std::string* name) {
  Workspace::Frame frame(p.ws);
  const int64_t N = rows.n, D = s.hidden;
  ActivationTrace* trace = name ? p.trace : nullptr;
  // Attention sub-block.
  float* xn1 = kept_or_scratch(acts ? &acts->xn1 : nullptr, p.ws, N * D);
  rmsnorm(xn1, x, w.input_layernorm, N, D, s.eps, acts ? kept_or_scratch(&acts->rstd1, p.ws, N) : nullptr);
  float* y = p.ws.alloc<float>(N * D);
  if (s.mla)
    mla_forward(p, s.mla_spec, w.mla, xn1, y, rows, acts ? &acts->mla : nullptr);
  else
    gqa_forward(p, s.gqa_spec, w.gqa, xn1, y, rows, acts ? &acts->gqa : nullptr);
  if (trace) trace->put(*name + ".attn", y, N * D);
  float* h = acts ? kept_or_scratch(&acts->h, p.ws, N * D) : out;
  float* xn2 = acts ? kept_or_scratch(&acts->xn2, p.ws, N * D) : xn1;
  add_rmsnorm(h, xn2, acts ? kept_or_scratch(&acts->rstd2, p.ws, N) : nullptr, x, y, w.post_attention_layernorm, N, D, s.eps);
  // Feed-forward sub-block (its output reuses y).
  if (s.moe) {
    const int64_t k = s.router.experts_per_token;
    int32_t* idx = trace ? p.ws.alloc<int32_t>(N * k) : nullptr;
    float* wt = trace ? p.ws.alloc<float>(N * k) : nullptr;
    moe_forward(p, s.router, w.moe, xn2, y, N, acts ? &acts->moe : nullptr, ex, idx, wt);
    if (trace) {
      const std::vector<float> fidx(idx, idx + N * k);
      trace->put(*name + ".topk_idx", fidx.data(), N * k);
      trace->put(*name + ".topk_weight", wt, N * k);
    }
  } else {
    mlp_forward(p, w.mlp, xn2, y, N, acts ? &acts->mlp : nullptr);
  }
  if (trace) trace->put(*name + ".ffn", y, N * D);
  add(out, h, y, N * D);
  if (trace) trace->put(*name, out, N * D);
}

void block_backward(const Pass& p, const BlockSpec& s, const BlockWeights& w, BlockGrads& g, const float* x, float* d,
                    const Rows& rows, const BlockActs& a, ExpertExecutor& ex, double balance_coef, int64_t B) {
  Workspace::Frame frame(p.ws);
  const int64_t N = rows.n, D = s.hidden;
  // Feed-forward sub-block: d is ∂L/∂out = ∂L/∂h through the residual, plus what comes back through norm2.
  float* dxn = p.ws.alloc<float>(N * D);  // written by each sub-block's backward
  if (s.moe) {
    moe_backward(p, s.router, w.moe, g.moe, a.xn2.data(), d, dxn, N, a.moe, ex, balance_coef, B);
  } else {
    mlp_backward(p, w.mlp, g.mlp, a.xn2.data(), d, dxn, false, N, a.mlp.gu.data(), a.mlp.act.data());
  }
  rmsnorm_backward(d, g.post_attention_layernorm, dxn, a.h.data(), w.post_attention_layernorm, a.rstd2.data(), N, D);
  // Attention sub-block: d is now ∂L/∂h; it becomes ∂L/∂x.
  if (s.mla)
    mla_backward(p, s.mla_spec, w.mla, g.mla, a.xn1.data(), d, dxn, rows, a.mla);
  else
    gqa_backward(p, s.gqa_spec, w.gqa, g.gqa, a.xn1.data(), d, dxn, rows, a.gqa);
  rmsnorm_backward(d, g.input_layernorm, dxn, x, w.input_layernorm, a.rstd1.data(), N, D);
}

}  // namespace seek
