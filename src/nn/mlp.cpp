// mlp.cpp — see mlp.h.
#include "nn/mlp.h"

#include "nn/linear.h"
#include "tensor/kernels.h"

namespace seek {

void mlp_forward(const Pass& p, const MlpWeights& w, const float* x, float* y, int64_t n, float* gu, float* act) {
  const int64_t F = w.gate_proj.rows;
  linear(p, gu, x, {Proj{w.gate_proj}, Proj{w.up_proj}}, n);
  swiglu(act, gu, n, F);
  linear(p, y, act, w.down_proj, n);
}

void mlp_forward(const Pass& p, const MlpWeights& w, const float* x, float* y, int64_t n, MlpActs* acts) {
  const int64_t F = w.gate_proj.rows;
  if (acts) {
    if (acts->gu.size() < size_t(n * 2 * F)) acts->gu.resize(size_t(n * 2 * F));
    if (acts->act.size() < size_t(n * F)) acts->act.resize(size_t(n * F));
    return mlp_forward(p, w, x, y, n, acts->gu.data(), acts->act.data());
  }
  Workspace::Frame frame(p.ws);
  mlp_forward(p, w, x, y, n, p.ws.alloc<float>(n * 2 * F), p.ws.alloc<float>(n * F));
}

// y = down(a), a = silu(g)·u  ⇒  da = dy · down;  d[g|u] = swiglu'(da);  dx = d[g|u] · [gate; up].
void mlp_backward(const Pass& p, const MlpWeights& w, MlpGrads& g, const float* x, const float* dy, float* dx,
                  bool add_dx, int64_t n, const float* gu, const float* act) {
  Workspace::Frame frame(p.ws);
  const int64_t F = w.gate_proj.rows;
  float* dact = p.ws.alloc<float>(n * F);
  linear_backward(p, dact, false, ProjGrad{g.down_proj}, dy, act, w.down_proj, n);
  float* dgu = p.ws.alloc<float>(n * 2 * F);
  swiglu_backward(dgu, dact, gu, n, F);
  linear_backward(p, dx, add_dx, {ProjGrad{g.gate_proj}, ProjGrad{g.up_proj}}, dgu, x,
                  {Proj{w.gate_proj}, Proj{w.up_proj}}, n);
}

}  // namespace seek
