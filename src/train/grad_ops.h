// grad_ops.h — the training ops of seek, each forward beside its backward (llm.c style), over f32
// row-major activations. Backward functions ACCUMULATE into the gradients they are given (+=), so a
// parameter used twice (a tied head) or a residual branch sums naturally; zero them before a step.
//
// Shapes use the letters of tensor/kernels.h: T tokens, K in features, N out features, D model dim,
// H heads, G kv heads, hd head dim, V vocabulary.
//
// Does not (yet): MLA, MoE and MTP layer backward, the optimizer — those build on these ops.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/kernels.h"

namespace seek::train {

// FP8 training simulation (DeepSeek-V3 §3.3): while on, every GEMM input of linear_forward and
// linear_backward is rounded through E4M3 and back — activations and gradients per 1×128 tile along
// their feature dimension, weights per 128×128 block, each tile scaled by amax/448 — and the product is
// accumulated in f32. What stays high precision: everything else (embedding, norms, attention core,
// gating softmax/sigmoid, master weights, optimizer). A simplification of DeepSeek's recipe: Wgrad's
// inputs use the same 1×128 feature tiles rather than 128×1 tiles along tokens.
void set_fp8_simulation(bool on);
bool fp8_simulation();
// One value (already scaled into [-448, 448]) through E4M3 and back, round half to even.
float fp8_round_value(float v);
// Rounds rows of length K through E4M3 in tiles of `tile` columns (tile = K for none): x ← dq(q(x)).
void fp8_round_rows(float* x, int64_t rows, int64_t K, int64_t tile = 128);
// Rounds a [N, K] matrix through E4M3 in 128×128 blocks.
void fp8_round_blocks(float* w, int64_t N, int64_t K, int64_t block = 128);

// y[T, N] = x[T, K] · W[N, K]ᵀ (+ b[N]).
void linear_forward(float* y, const float* x, const float* W, const float* b, int64_t T, int64_t K, int64_t N);
// dx[T, K] += dy · W;  dW[N, K] += dyᵀ · x;  db[N] += Σ_t dy (any of dx, dW, db may be null).
void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x, const float* W, int64_t T,
                     int64_t K, int64_t N);

// y = x · r · w with r = 1/sqrt(mean(x²) + eps), per row of D. rstd[T] keeps r for the backward.
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t T, int64_t D, float eps);
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                      int64_t T, int64_t D);

// out = silu(g) · u over n elements.
void swiglu_forward(float* out, const float* g, const float* u, int64_t n);
void swiglu_backward(float* dg, float* du, const float* dout, const float* g, const float* u, int64_t n);

// Positions of B sequences of S tokens laid out one after another (row b·S + t): 0 .. S-1, B times.
std::vector<int32_t> batch_positions(int64_t B, int64_t S);

// RoPE is a rotation: its backward is the inverse rotation of the gradient (same layout, in place).
void rope_backward(float* dx, int64_t T, int64_t n_heads, int64_t token_stride, int64_t head_stride,
                   const int32_t* pos, const float* inv_freq, int64_t R, float cs_scale, RopeLayout layout);

// out[t] = table[ids[t]] (f32 table [V, D]); backward scatters: dtable[ids[t]] += dout[t].
void embedding_forward(float* out, const float* table, const int32_t* ids, int64_t T, int64_t D);
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t T, int64_t D);

// Mean cross-entropy over the rows whose target >= 0 (negative targets are ignored, e.g. prompt tokens
// in SFT). probs[T, V] receives the softmax; returns the loss. Backward: dlogits += scale · (p − onehot)
// / n_counted (scale = the loss weight, e.g. λ for MTP).
double cross_entropy_forward(float* probs, const float* logits, const int32_t* targets, int64_t T, int64_t V);
void cross_entropy_backward(float* dlogits, const float* probs, const int32_t* targets, int64_t T, int64_t V,
                            float scale = 1.f);

// Per-row log-probability of the target (0 where target < 0) and, if entropy is non-null, the entropy
// of the row's softmax, from logits [T, V] (log-sum-exp in double).
void token_logprobs(float* logp, float* entropy, const float* logits, const int32_t* targets, int64_t T, int64_t V);
// Given dlogp[t] = ∂L/∂log p_t[y_t] and probs = softmax(logits): dlogits += dlogp · (onehot(y) − p).
void logprob_backward(float* dlogits, const float* probs, const int32_t* targets, const float* dlogp, int64_t T,
                      int64_t V);

// Causal self-attention of one sequence, per head: q [T, H, dk], k [T, G, dk], v [T, G, dv] (query head
// h reads kv head h / (H / G)), scale applied to q·k. att [H, T, T] keeps the probabilities for the
// backward; out [T, H, dv]. (MLA's naive form has dk = qk_nope + qk_rope and dv = v_head_dim.)
void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int64_t T, int64_t H,
                       int64_t G, int64_t dk, int64_t dv, float scale);
void attention_backward(float* dq, float* dk_, float* dv_, const float* dout, const float* att, const float* q,
                        const float* k, const float* v, int64_t T, int64_t H, int64_t G, int64_t dk, int64_t dv,
                        float scale);
// The same over B sequences of T tokens each: q [B·T, H, dk], att [B, H, T, T], and so on.
void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t H, int64_t G, int64_t dk, int64_t dv, float scale);
void attention_backward(float* dq, float* dk_, float* dv_, const float* dout, const float* att, const float* q,
                        const float* k, const float* v, int64_t B, int64_t T, int64_t H, int64_t G, int64_t dk,
                        int64_t dv, float scale);

// The router's gradient through the gating values (DeepSeekMoE): given router logits z [T, E], the
// experts chosen by moe_route (idx [T, k], treated as constants — selection has no gradient, nor has
// e_score_correction_bias) and dweight [T, k] = ∂L/∂(gate weight), accumulates dz [T, E].
//   sigmoid: w_j = c·s_j / (Σ_sel s + 1e-20) (or c·s_j without norm_topk_prob), s = σ(z)
//   softmax: w_j = c·p_j (normalized over the chosen k when norm_topk_prob), p = softmax(z) over all E
struct RouterSpec {
  bool sigmoid = true;
  bool norm_topk_prob = true;
  float routed_scaling_factor = 1.f;
};
void moe_gate_backward(float* dz, const float* z, const int32_t* idx, const float* dweight, int64_t T, int64_t E,
                       int64_t k, const RouterSpec& r);

}  // namespace seek::train
