// head.h — the ends of the model, forward and backward: the token embedding, the final norm with the
// output head (lm_head, or the embedding when tied), and the losses over its logits (mean cross-entropy,
// and per-token log-probabilities for objectives such as SFT's masked loss and GRPO's).
#pragma once
#include <cstdint>
#include <vector>

#include "nn/pass.h"

namespace seek {

// out [T, D] = table [V, D] at ids (any weight format); the ids are checked by the caller.
void embed(const Mat& table, const int32_t* ids, int64_t T, float* out);
// dtable [V, D] += dout [T, D] at ids (repeated ids add up).
void embed_backward(float* dtable, const float* dout, const int32_t* ids, int64_t T, int64_t D);

// hn [T, D] = norm(x [T, D]) (rstd [T] its 1/rms, when given), and logits [n_logits, V] = head(hn) of
// the last n_logits rows (-1: all T). The norm is the model's final norm, or an MTP module's
// shared_head.norm.
void head_forward(const Pass& p, const float* norm_w, const Mat& head, float eps, const float* x, int64_t T, float* hn,
                  float* rstd, float* logits, int64_t n_logits = -1);
// dx [T, D] (written) and the norm's and the head's gradients (+=) from dlogits [T, V], plus dhn [T, D]
// when given: a gradient that reaches the normed states by another way (the MTP module reads them).
void head_backward(const Pass& p, const float* norm_w, const Mat& head, float* dnorm_w, float* dhead, const float* x,
                   const float* hn, const float* rstd, const float* dlogits, const float* dhn, int64_t T, float* dx);

// Mean cross-entropy of logits [T, V] against targets (negative targets are ignored); probs [T, V]
// receives the softmax for the backward. Returns 0 when no target counts.
double cross_entropy(const float* logits, const int32_t* targets, int64_t T, int64_t V, float* probs);
// dlogits [T, V] = weight · ∂(mean cross-entropy)/∂logits (written).
void cross_entropy_backward(float* dlogits, const float* probs, const int32_t* targets, int64_t T, int64_t V,
                            float weight);
// logp[t] = log p(targets[t] | logits[t]) (0 where target < 0); entropy[t] when given.
void token_logprobs(const float* logits, const int32_t* targets, int64_t T, int64_t V, float* logp, float* entropy);
// dlogits [T, V] = ∂L/∂logits given dlogp[t] = ∂L/∂logp[t]: dlogp · (onehot(target) − p) (written).
void token_logprobs_backward(const Pass& p, float* dlogits, const float* probs, const int32_t* targets,
                             const float* dlogp, int64_t T, int64_t V);

}  // namespace seek
