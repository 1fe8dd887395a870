// mtp.cpp — see mtp.h.
#include "nn/mtp.h"

#include <algorithm>
#include <cstring>

#include "nn/linear.h"
#include "tensor/kernels.h"

namespace seek {

void mtp_forward(const Pass& p, const BlockSpec& s, const MtpWeights& w, const float* e, const float* h, float* out,
                 const Rows& rows, MtpActs* acts, ExpertExecutor& ex, const std::string* name) {
  Workspace::Frame frame(p.ws);
  const int64_t M = rows.n, D = s.hidden;
  ActivationTrace* trace = name ? p.trace : nullptr;
  float* cat = kept_or_scratch(acts ? &acts->cat : nullptr, p.ws, M * 2 * D);  // [M, 2D]
  rmsnorm(cat, e, w.enorm, M, D, s.eps, acts ? kept_or_scratch(&acts->e_rstd, p.ws, M) : nullptr, D, 2 * D);
  rmsnorm(cat + D, h, w.hnorm, M, D, s.eps, acts ? kept_or_scratch(&acts->h_rstd, p.ws, M) : nullptr, D, 2 * D);
  float* x = acts ? kept_or_scratch(&acts->x, p.ws, M * D) : out;
  linear(p, x, cat, w.eh_proj, M);
  if (trace) trace->put(*name + ".eh", x, M * D);
  if (acts) {
    float* kept = kept_or_scratch(&acts->out, p.ws, M * D);
    block_forward(p, s, w.block, x, kept, rows, &acts->block, ex, name);
    std::memcpy(out, kept, sizeof(float) * size_t(M * D));
  } else {
    block_forward(p, s, w.block, x, out, rows, nullptr, ex, name);
  }
  if (trace) {
    trace->values[*name + ".hidden"] = std::move(trace->values[*name]);
    trace->values.erase(*name);
  }
}

void mtp_backward(const Pass& p, const BlockSpec& s, const MtpWeights& w, MtpGrads& g, const float* e, const float* h,
                  float* d, float* de, float* dh, const Rows& rows, const MtpActs& a, ExpertExecutor& ex) {
  Workspace::Frame frame(p.ws);
  const int64_t M = rows.n, D = s.hidden;
  block_backward(p, s, w.block, g.block, a.x.data(), d, rows, a.block, ex, 0.0, 1);
  float* dcat = p.ws.alloc<float>(M * 2 * D);
  linear_backward(p, dcat, false, ProjGrad{g.eh_proj}, d, a.cat.data(), w.eh_proj, M);
  // The two norms wrote cat's halves: their input gradients come from dcat's halves.
  float* dhalf = p.ws.alloc<float>(M * D);
  for (int64_t t = 0; t < M; ++t) std::memcpy(dhalf + t * D, dcat + t * 2 * D, sizeof(float) * size_t(D));
  rmsnorm_backward(de, g.enorm, dhalf, e, w.enorm, a.e_rstd.data(), M, D, D, false);
  for (int64_t t = 0; t < M; ++t) std::memcpy(dhalf + t * D, dcat + t * 2 * D + D, sizeof(float) * size_t(D));
  rmsnorm_backward(dh, g.hnorm, dhalf, h, w.hnorm, a.h_rstd.data(), M, D, D, false);
}

}  // namespace seek
