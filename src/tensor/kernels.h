// kernels.h — the element and row kernels of seek, forward and backward side by side. Where a kernel
// has a fast path (AVX-512, or a loop order chosen for speed) it keeps a naive `_ref` twin forever:
// the specification, the test oracle and the fallback. GEMM and matmul are in backend.h.
//
// Dimension letters (used in shape comments throughout seek):
//   B batch   T tokens   D model dim   N output features   K input features (reduction)
//   H heads   G kv heads   E experts   k experts per token   C latent rank (kv_lora_rank)
//   R rope dim   V vocabulary   F feed-forward width
// All activations are f32, row-major, contiguous unless a stride is given (ld* = row stride in
// elements; 0 means contiguous). A weight matrix is a Mat (format.h), [N, K] as nn.Linear stores it.
// Backward kernels ACCUMULATE into the gradients they are given (+=) unless they say "writes".
//
// Kernels know nothing about models: no layer, config or tensor names appear here.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/format.h"

namespace seek {

// ---- normalization ------------------------------------------------------------------------------

// RMSNorm over each row of D: y[t] = x[t] · r[t] · w, r[t] = 1/sqrt(mean(x[t]²) + eps) (the sum of
// squares in double). y may alias x. rstd[T] receives r when given (training keeps it for backward).
void rmsnorm(float* y, const float* x, const float* w, int64_t T, int64_t D, float eps, float* rstd = nullptr,
             int64_t ldx = 0, int64_t ldy = 0);
void rmsnorm_ref(float* y, const float* x, const float* w, int64_t T, int64_t D, float eps, float* rstd = nullptr,
                 int64_t ldx = 0, int64_t ldy = 0);
// y = x r w  ⇒  dw += Σ_t dy·x·r;  dx += r (dy ∘ w) − (r³/D) x Σ_d dy_d w_d x_d (dx = ... when not
// add_dx). dx, x share ldx; dy is contiguous [T, D]. dx or dw may be null.
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                      int64_t T, int64_t D, int64_t ldx = 0, bool add_dx = true);

// h = a + b (the residual), then xn = rmsnorm(h) with r into rstd (may be null): one pass over the rows.
// h may alias a or b.
void add_rmsnorm(float* h, float* xn, float* rstd, const float* a, const float* b, const float* w, int64_t T, int64_t D,
                 float eps);

// ---- softmax, activations -------------------------------------------------------------------------

// Numerically stable softmax in place over each of T rows of length n (row stride `stride`).
void softmax(float* x, int64_t T, int64_t n, int64_t stride);
void softmax_ref(float* x, int64_t T, int64_t n, int64_t stride);
// y = exp((x − shift) · scale) for n values (y may be x); returns Σ y, summed in double. The sampler's
// unnormalized probabilities over a vocabulary. AVX-512: softmax's polynomial exp (~2 ulp).
double exp_sum(float* y, const float* x, int64_t n, float shift, float scale);
// Causal rows: row r keeps its first `first + r` entries (softmax over them) and zeros the rest of its n.
void softmax_causal(float* x, int64_t rows, int64_t n, int64_t stride, int64_t first);
// The softmax's backward in place: d ← scale · p ∘ (d − rowsum(p ∘ d)) for rows of n.
void softmax_backward(float* d, const float* p, int64_t rows, int64_t n, int64_t ldd, int64_t ldp, float scale);

// SwiGLU on the gate and up projections side by side: gu [T, 2F] holds gate in columns [0, F) and up in
// [F, 2F); out [T, F] = silu(gate) · up, silu(z) = z / (1 + exp(-z)).
void swiglu(float* out, const float* gu, int64_t T, int64_t F);
void swiglu_ref(float* out, const float* gu, int64_t T, int64_t F);
// Writes dgu [T, 2F]: d gate = dout · up · σ(g)(1 + g(1 − σ(g))), d up = dout · silu(g).
void swiglu_backward(float* dgu, const float* dout, const float* gu, int64_t T, int64_t F);
void swiglu_backward_ref(float* dgu, const float* dout, const float* gu, int64_t T, int64_t F);

// ---- element-wise ----------------------------------------------------------------------------------

void add(float* y, const float* a, const float* b, int64_t n);  // y = a + b (y may alias either)
void add_to(float* y, const float* x, int64_t n);               // y += x
double sum_squares(const float* x, int64_t n);                  // Σ x², in double
void scale(float* x, float s, int64_t n);                       // x *= s
void fill(float* x, float v, int64_t n);                        // x = v

// AdamW (decoupled weight decay, bias correction; Loshchilov & Hutter) over n values, step t ≥ 1, with
// g · grad_scale as the gradient:
//   m = β1 m + (1−β1) g;  v = β2 v + (1−β2) g²;  p −= lr (m/(1−β1^t) / (sqrt(v/(1−β2^t)) + eps) + wd p)
// wd · decay[i] (each 0 or 1: weight decay off or on; everywhere when decay is null); f32 arithmetic.
struct AdamWStep {
  float lr, beta1, beta2, eps, weight_decay;
  int64_t t;
  float grad_scale = 1.f;  // g is used as g · grad_scale (gradient clipping's factor)
};
void adamw_update(float* p, const float* g, float* m, float* v, const uint8_t* decay, int64_t n, const AdamWStep& s);

// ---- rows: gather, scatter, top-k ----------------------------------------------------------------

// dst[r] = src[index[r]] for R rows of D.
void gather_rows(float* dst, const float* src, const int32_t* index, int64_t R, int64_t D);
// y[t] += Σ_j w[t·k + j] · src[index[t·k + j]] for T rows of D (a weighted combine of k rows each;
// w null: weights 1).
void gather_weighted_sum(float* y, const float* src, const int32_t* index, const float* w, int64_t T, int64_t k,
                         int64_t D);
// The combine's backward: dsrc[index[t·k + j]] = w[t·k + j] · dy[t] (writes), and, when dw is given,
// dw[t·k + j] = dy[t] · src[index[t·k + j]].
void gather_weighted_sum_backward(float* dsrc, float* dw, const float* dy, const float* src, const int32_t* index,
                                  const float* w, int64_t T, int64_t k, int64_t D);
// dst[index[r]] += src[r] for R rows of D (several r may name the same row).
void scatter_add_rows(float* dst, const float* src, const int32_t* index, int64_t R, int64_t D);

// Indices of the k largest of x[0..n), largest first; ties go to the lower index. NaN is never chosen
// over a number. k <= n.
void topk(const float* x, int64_t n, int64_t k, int32_t* idx);
void topk_ref(const float* x, int64_t n, int64_t k, int32_t* idx);
// The index of the largest of x[0..n), n >= 1: topk(x, n, 1), in two vector passes (the maximum, then
// its first index), for the greedy step over a vocabulary.
int64_t argmax(const float* x, int64_t n);

// ---- embedding ------------------------------------------------------------------------------------

// out[t] = table[ids[t]] for T ids; table is a [V, D] weight of any format. ids are checked against V
// by the caller.
void embedding(float* out, const Mat& table, const int32_t* ids, int64_t T);
void embedding_ref(float* out, const Mat& table, const int32_t* ids, int64_t T);

// ---- losses over logits -----------------------------------------------------------------------------

// probs[T, V] = softmax(logits); returns Σ −log probs[t][targets[t]] over the rows with target ≥ 0 and
// writes how many into *counted. (Mean cross-entropy = the sum / counted.)
double softmax_cross_entropy(float* probs, const float* logits, const int32_t* targets, int64_t T, int64_t V,
                             int64_t* counted);
// Writes dlogits[t] = coef[t] · (probs[t] − onehot(targets[t])) for rows with target ≥ 0 (coef =
// ∂L/∂CE_t), 0 for the others. With coef null every counted row has coefficient `scale`.
void softmax_cross_entropy_backward(float* dlogits, const float* probs, const int32_t* targets, const float* coef,
                                    float scale, int64_t T, int64_t V);
// logp[t] = log softmax(logits[t])[targets[t]] (0 where target < 0) and, if entropy is given, the
// entropy of row t; log-sum-exp in double.
void log_softmax_pick(float* logp, float* entropy, const float* logits, const int32_t* targets, int64_t T, int64_t V);

// ---- multi-query attention of one new token (absorbed MLA's decode) ---------------------------------

// H heads, one query row each, over L shared keys whose first dv values are also the values:
//   p_h = softmax_l(scale · q_h·k_l), out_h = Σ_l p_h[l] · k_l[0, dv).
// q [H, dk], k [L, dk] (dv <= dk), out [H, dv]; each with its own row stride. Threads split the keys
// (each part's softmax is merged by its maximum and sum); AVX-512 takes 16 heads at a time in the lanes.
// scratch holds mqa_decode_scratch(H, L, dk, dv) floats (the same for any fewer keys), so that a decode
// step allocates nothing.
int64_t mqa_decode_scratch(int64_t H, int64_t L, int64_t dk, int64_t dv);
void mqa_decode(const float* q, int64_t ldq, const float* k, int64_t ldk, int64_t H, int64_t L, int64_t dk, int64_t dv,
                float scale, float* out, int64_t ldo, float* scratch);
void mqa_decode_ref(const float* q, int64_t ldq, const float* k, int64_t ldk, int64_t H, int64_t L, int64_t dk,
                    int64_t dv, float scale, float* out, int64_t ldo);

// ---- causal attention of one head (the training form) -----------------------------------------------------

// One head of causal self-attention over positions 0 .. T−1, keeping its probabilities:
//   p[i, j] = softmax_j≤i(scale · q_i·k_j) (0 for i < j < the end of i's 64-row block), o_i = Σ_j p[i, j] v_j.
// q [T, dk], k [T, dk], v [T, dv], o [T, dv], p [T, T]; each with its own row stride.
void attention_head(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                    int64_t dk, int64_t dv, float scale, float* p, int64_t ldp, float* o, int64_t ldo);
void attention_head_ref(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                        int64_t dk, int64_t dv, float scale, float* p, int64_t ldp, float* o, int64_t ldo);
// Its backward from dout [T, dv] and the kept p: dq [T, dk] written; dk [T, dk] and dv [T, dv] written, or
// added to when add_kv (the heads of a GQA group share them).
//   dp[i, j] = dout_i·v_j;  dz[i, j] = scale · p[i, j] (dp[i, j] − Σ_j' p[i, j'] dp[i, j']);
//   dq_i = Σ_j dz[i, j] k_j;  dk_j = Σ_i dz[i, j] q_i;  dv_j = Σ_i p[i, j] dout_i.
struct AttentionHeadGrads {
  float* dq;
  int64_t lddq;
  float* dk;
  int64_t lddk;
  float* dv;
  int64_t lddv;
  bool add_kv;
};
void attention_head_backward(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv,
                             int64_t T, int64_t dk, int64_t dv, float scale, const float* p, int64_t ldp,
                             const float* dout, int64_t lddo, const AttentionHeadGrads& g);
void attention_head_backward_ref(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                                 int64_t ldv, int64_t T, int64_t dk, int64_t dv, float scale, const float* p,
                                 int64_t ldp, const float* dout, int64_t lddo, const AttentionHeadGrads& g);

// ---- rotary position embedding -------------------------------------------------------------------------

enum class RopeLayout {
  Interleaved,  // rotate adjacent pairs (x[2i], x[2i+1]) — DeepSeek V2/V3 checkpoints
  HalfSplit,    // rotate (x[i], x[i + R/2]) — Qwen2, Llama
};

// Rotates, in place, the first R values of each of n_heads vectors of every token:
// x is [T, n_heads, *] with token stride `token_stride` and head stride `head_stride` (elements);
// token t is at position pos[t]. angle = f32(pos · inv_freq[i]); cos/sin are multiplied by `cs_scale`.
// inverse: rotate by −angle (RoPE's backward: the gradient of a rotation is the inverse rotation).
// table (optional): rope_table's cos/sin of positions 0 .. table_rows − 1, used instead of computing
// them (the same values); positions past it are computed.
void rope(float* x, int64_t T, int64_t n_heads, int64_t token_stride, int64_t head_stride, const int32_t* pos,
          const float* inv_freq, int64_t R, float cs_scale, RopeLayout layout, bool inverse = false,
          const float* table = nullptr, int64_t table_rows = 0);
// The cos and sin rope() uses at positions 0 .. rows − 1: row p is R/2 cosines then R/2 sines.
void rope_table(float* table, int64_t rows, const float* inv_freq, int64_t R, float cs_scale);
void rope_ref(float* x, int64_t T, int64_t n_heads, int64_t token_stride, int64_t head_stride, const int32_t* pos,
              const float* inv_freq, int64_t R, float cs_scale, RopeLayout layout, bool inverse = false);

// ---- FP8 E4M3 ---------------------------------------------------------------------------------------------

// Simulated FP8 GEMM inputs (DeepSeek-V3 §3.3): values through E4M3 and back (round half to even,
// equal bit for bit to f32_to_f8e4m3 then f8e4m3_to_f32), each tile scaled by amax/448 first.
// Rows of length K in tiles of `tile` columns (tile = K for none): x ← dq(q(x)). Rows are ld apart (0: K).
void fp8_round_rows(float* x, int64_t rows, int64_t K, int64_t tile = 128, int64_t ld = 0);
// A [N, K] matrix in 128×128 blocks.
void fp8_round_blocks(float* w, int64_t N, int64_t K, int64_t block = 128);

}  // namespace seek
