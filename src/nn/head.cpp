// head.cpp — see head.h.
#include "nn/head.h"

#include <algorithm>

#include "nn/linear.h"
#include "tensor/kernels.h"

namespace seek {

void embed(const Mat& table, const int32_t* ids, int64_t T, float* out) { embedding(out, table, ids, T); }

void embed_backward(float* dtable, const float* dout, const int32_t* ids, int64_t T, int64_t D) {
  scatter_add_rows(dtable, dout, ids, T, D);
}

// The output head stays in f32 under FP8 simulation (DeepSeek-V3 §3.3 keeps it in higher precision).
void head_forward(const Pass& p, const float* norm_w, const Mat& head, float eps, const float* x, int64_t T, float* hn,
                  float* rstd, float* logits, int64_t n_logits) {
  if (n_logits < 0) n_logits = T;
  rmsnorm(hn, x, norm_w, T, head.cols, eps, rstd);
  linear(Pass{p.ws, false, nullptr}, logits, hn + (T - n_logits) * head.cols, head, n_logits);
}

void head_backward(const Pass& p, const float* norm_w, const Mat& head, float* dnorm_w, float* dhead, const float* x,
                   const float* hn, const float* rstd, const float* dlogits, const float* dhn_in, int64_t T, float* dx) {
  Workspace::Frame frame(p.ws);
  const int64_t D = head.cols;
  float* dhn = p.ws.alloc<float>(T * D);
  if (dhn_in) std::copy(dhn_in, dhn_in + T * D, dhn);
  linear_backward(Pass{p.ws, false, nullptr}, dhn, dhn_in != nullptr, ProjGrad{dhead}, dlogits, hn, head, T);
  rmsnorm_backward(dx, dnorm_w, dhn, x, norm_w, rstd, T, D, D, false);
}

double cross_entropy(const float* logits, const int32_t* targets, int64_t T, int64_t V, float* probs) {
  int64_t counted = 0;
  const double sum = softmax_cross_entropy(probs, logits, targets, T, V, &counted);
  return counted ? sum / double(counted) : 0.0;
}

// L = −(1/n) Σ_t log p_t[y_t], p = softmax(z)  ⇒  ∂L/∂z_t = (p_t − onehot(y_t)) / n.
void cross_entropy_backward(float* dlogits, const float* probs, const int32_t* targets, int64_t T, int64_t V,
                            float weight) {
  int64_t counted = 0;
  for (int64_t t = 0; t < T; ++t) counted += targets[t] >= 0;
  softmax_cross_entropy_backward(dlogits, probs, targets, nullptr, counted ? weight / float(counted) : 0.f, T, V);
}

void token_logprobs(const float* logits, const int32_t* targets, int64_t T, int64_t V, float* logp, float* entropy) {
  log_softmax_pick(logp, entropy, logits, targets, T, V);
}

// log p_y = z_y − logsumexp(z)  ⇒  ∂/∂z_v = δ_vy − p_v: the cross-entropy's gradient with coefficient −dlogp.
void token_logprobs_backward(const Pass& p, float* dlogits, const float* probs, const int32_t* targets,
                             const float* dlogp, int64_t T, int64_t V) {
  Workspace::Frame frame(p.ws);
  float* coef = p.ws.alloc<float>(T);
  for (int64_t t = 0; t < T; ++t) coef[t] = -dlogp[t];
  softmax_cross_entropy_backward(dlogits, probs, targets, coef, 0.f, T, V);
}

}  // namespace seek
