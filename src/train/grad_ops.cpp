// grad_ops.cpp — see grad_ops.h. Each backward follows from its forward by the chain rule; the
// derivation is in the comment above it. Every one is checked against central finite differences in
// tests/unit/test_grad_ops.cpp.
#include "train/grad_ops.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include <cblas.h>

#include "util/error.h"

namespace seek::train {

namespace {
std::atomic<bool> g_fp8{false};
// E4M3 round trip of one value already scaled into [-448, 448] (round to nearest even, like
// f32_to_f8e4m3 followed by f8e4m3_to_f32; tested bit for bit against them). Normals keep 3 mantissa
// bits; below 2^-6 the spacing is the subnormal step 2^-9. Branch-free, so the loop vectorizes.
inline float e4m3_round(float v) {
  const float a = std::fabs(v);
  uint32_t bits;
  std::memcpy(&bits, &a, 4);
  bits = (bits + 0x7FFFFu + ((bits >> 20) & 1u)) & ~0xFFFFFu;
  float normal;
  std::memcpy(&normal, &bits, 4);
  const float sub = ((a * 512.f + 8388608.f) - 8388608.f) * (1.f / 512.f);  // round half even to 2^-9
  const float r = std::fmin(a < 0.015625f ? sub : normal, 448.f);
  return std::copysign(r, v);
}

// Scale = amax/448 over the tile (strided), then each value through E4M3 and back.
void fp8_round_tile(float* x, int64_t rows, int64_t cols, int64_t stride) {
  float amax = 0.f;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(x[r * stride + c]));
  if (amax == 0.f) return;
  const float scale = amax / 448.f;
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * stride;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) row[c] = e4m3_round(row[c] / scale) * scale;
  }
}
}  // namespace

void set_fp8_simulation(bool on) { g_fp8 = on; }
bool fp8_simulation() { return g_fp8; }

float fp8_round_value(float v) { return e4m3_round(v); }

void fp8_round_rows(float* x, int64_t rows, int64_t K, int64_t tile) {
#pragma omp parallel for if (rows * K >= (1 << 16)) schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k0 = 0; k0 < K; k0 += tile) fp8_round_tile(x + r * K + k0, 1, std::min(tile, K - k0), K);
}

void fp8_round_blocks(float* w, int64_t N, int64_t K, int64_t block) {
#pragma omp parallel for if (N * K >= (1 << 16)) schedule(static)
  for (int64_t n0 = 0; n0 < N; n0 += block)
    for (int64_t k0 = 0; k0 < K; k0 += block)
      fp8_round_tile(w + n0 * K + k0, std::min(block, N - n0), std::min(block, K - k0), K);
}

void linear_forward(float* y, const float* x, const float* W, const float* b, int64_t T, int64_t K, int64_t N) {
  if (g_fp8) {
    std::vector<float> xq(x, x + T * K), wq(W, W + N * K);
    fp8_round_rows(xq.data(), T, K);
    fp8_round_blocks(wq.data(), N, K);
    gemm_f32(T, N, K, 1.f, xq.data(), K, wq.data(), K, true, 0.f, y, N);
  } else {
    gemm_f32(T, N, K, 1.f, x, K, W, K, true, 0.f, y, N);
  }
  if (b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = 0; n < N; ++n) y[t * N + n] += b[n];
}

// y = x Wᵀ + b  ⇒  dx = dy W,  dW = dyᵀ x,  db = Σ_t dy.
void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x, const float* W, int64_t T,
                     int64_t K, int64_t N) {
  const float* dy_exact = dy;  // the bias gradient is a sum, not a GEMM: it stays exact
  std::vector<float> dyq, xq, wq;
  if (g_fp8) {  // the GEMM inputs in E4M3: dy in 1×128 tiles along N, x along K, W in 128×128 blocks
    dyq.assign(dy, dy + T * N);
    fp8_round_rows(dyq.data(), T, N);
    dy = dyq.data();
    if (dW) {
      xq.assign(x, x + T * K);
      fp8_round_rows(xq.data(), T, K);
      x = xq.data();
    }
    if (dx) {
      wq.assign(W, W + N * K);
      fp8_round_blocks(wq.data(), N, K);
      W = wq.data();
    }
  }
  if (dx) gemm_f32(T, K, N, 1.f, dy, N, W, K, false, 1.f, dx, K);
  if (dW)  // dW[N, K] += dyᵀ[N, T] · x[T, K]
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(N), int(K), int(T), 1.f, dy, int(N), x, int(K), 1.f, dW,
                int(K));
  if (db)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = 0; n < N; ++n) db[n] += dy_exact[t * N + n];
}

namespace {
constexpr int64_t kParallelMin = 1 << 14;  // elements of work below which a loop stays on one thread
}

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t T, int64_t D, float eps) {
#pragma omp parallel for if (T * D >= kParallelMin) schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * D;
    double ss = 0;
    for (int64_t d = 0; d < D; ++d) ss += double(xr[d]) * xr[d];
    const float r = float(1.0 / std::sqrt(ss / double(D) + double(eps)));
    rstd[t] = r;
    for (int64_t d = 0; d < D; ++d) y[t * D + d] = xr[d] * r * w[d];
  }
}

// y_d = x_d r w_d, r = (mean(x²) + eps)^(-1/2), ∂r/∂x_j = −r³ x_j / D
//   ⇒ dw_d = Σ_t dy_d x_d r;  dx_j = r (dy_j w_j) − (r³ / D) x_j Σ_d dy_d w_d x_d.
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                      int64_t T, int64_t D) {
  if (dx) {
#pragma omp parallel for if (T * D >= kParallelMin) schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      const float* xr = x + t * D;
      const float* g = dy + t * D;
      const double r = rstd[t];
      double dot = 0;
      for (int64_t d = 0; d < D; ++d) dot += double(g[d]) * w[d] * xr[d];
      const double c = r * r * r * dot / double(D);
      for (int64_t d = 0; d < D; ++d) dx[t * D + d] += float(r * g[d] * w[d] - c * xr[d]);
    }
  }
  if (dw)
    for (int64_t t = 0; t < T; ++t) {
      const float* xr = x + t * D;
      const float* g = dy + t * D;
      const float r = rstd[t];
      for (int64_t d = 0; d < D; ++d) dw[d] += g[d] * xr[d] * r;
    }
}

void swiglu_forward(float* out, const float* g, const float* u, int64_t n) {
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = g[i] / (1.f + std::exp(-g[i])) * u[i];
}

// out = g σ(g) u  ⇒  ∂out/∂u = g σ(g);  ∂out/∂g = u σ(g) (1 + g (1 − σ(g))).
void swiglu_backward(float* dg, float* du, const float* dout, const float* g, const float* u, int64_t n) {
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float s = 1.f / (1.f + std::exp(-g[i]));
    if (du) du[i] += dout[i] * g[i] * s;
    if (dg) dg[i] += dout[i] * u[i] * s * (1.f + g[i] * (1.f - s));
  }
}

std::vector<int32_t> batch_positions(int64_t B, int64_t S) {
  std::vector<int32_t> p(static_cast<size_t>(B * S));
  for (int64_t i = 0; i < B * S; ++i) p[size_t(i)] = int32_t(i % S);
  return p;
}

// y = c · R(θ) x with R a rotation  ⇒  dx = c · R(θ)ᵀ dy = c · R(−θ) dy: the forward kernel at −pos.
void rope_backward(float* dx, int64_t T, int64_t n_heads, int64_t token_stride, int64_t head_stride,
                   const int32_t* pos, const float* inv_freq, int64_t R, float cs_scale, RopeLayout layout) {
  std::vector<int32_t> neg(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) neg[size_t(t)] = -pos[t];
  rope(dx, T, n_heads, token_stride, head_stride, neg.data(), inv_freq, R, cs_scale, layout);
}

void embedding_forward(float* out, const float* table, const int32_t* ids, int64_t T, int64_t D) {
#pragma omp parallel for if (T * D >= kParallelMin) schedule(static)
  for (int64_t t = 0; t < T; ++t) std::memcpy(out + t * D, table + int64_t(ids[t]) * D, sizeof(float) * size_t(D));
}

void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t T, int64_t D) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t d = 0; d < D; ++d) dtable[int64_t(ids[t]) * D + d] += dout[t * D + d];
}

double cross_entropy_forward(float* probs, const float* logits, const int32_t* targets, int64_t T, int64_t V) {
  for (int64_t t = 0; t < T; ++t)
    if (targets[t] >= V) throw Error(strfmt("cross_entropy: target %d is outside the vocabulary [0, %lld)", targets[t], (long long)V));
  double loss = 0;
  int64_t counted = 0;
#pragma omp parallel for if (T * V >= kParallelMin) schedule(static) reduction(+ : loss, counted)
  for (int64_t t = 0; t < T; ++t) {
    float* p = probs + t * V;
    std::memcpy(p, logits + t * V, sizeof(float) * size_t(V));
    softmax(p, 1, V, V);
    if (targets[t] < 0) continue;
    loss -= std::log(std::max(double(p[targets[t]]), 1e-30));
    ++counted;
  }
  return counted ? loss / double(counted) : 0.0;
}

// L = −(1/n) Σ_t log p_t[y_t], p = softmax(z)  ⇒  ∂L/∂z_t = (p_t − onehot(y_t)) / n.
void cross_entropy_backward(float* dlogits, const float* probs, const int32_t* targets, int64_t T, int64_t V,
                            float scale) {
  int64_t counted = 0;
  for (int64_t t = 0; t < T; ++t) counted += targets[t] >= 0;
  if (!counted) return;
  const float f = scale / float(counted);
#pragma omp parallel for if (T * V >= kParallelMin) schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    if (targets[t] < 0) continue;
    for (int64_t v = 0; v < V; ++v) dlogits[t * V + v] += f * probs[t * V + v];
    dlogits[t * V + targets[t]] -= f;
  }
}

// Causal attention in query blocks of kBlock rows: block [i0, i1) attends to keys [0, i1), so the GEMMs
// skip most of the masked upper triangle. One task per (sequence, kv head) — the heads of a GQA group
// share their key/value gradients — each calling single-threaded sgemm (OpenBLAS's OpenMP build runs
// one thread inside a parallel region).
namespace {
constexpr int64_t kBlock = 64;
}

void token_logprobs(float* logp, float* entropy, const float* logits, const int32_t* targets, int64_t T, int64_t V) {
#pragma omp parallel for if (T * V >= kParallelMin) schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    const float* z = logits + t * V;
    float mx = z[0];
    for (int64_t v = 1; v < V; ++v) mx = std::max(mx, z[v]);
    double sum = 0, ez = 0;
    for (int64_t v = 0; v < V; ++v) {
      const double e = std::exp(double(z[v] - mx));
      sum += e;
      ez += e * double(z[v] - mx);
    }
    const double lse = std::log(sum);
    logp[t] = targets[t] >= 0 ? float(double(z[targets[t]] - mx) - lse) : 0.f;
    if (entropy) entropy[t] = float(lse - ez / sum);  // −Σ p log p = lse − E_p[z − mx]
  }
}

// log p_y = z_y − logsumexp(z)  ⇒  ∂/∂z_v = δ_vy − p_v.
void logprob_backward(float* dlogits, const float* probs, const int32_t* targets, const float* dlogp, int64_t T,
                      int64_t V) {
#pragma omp parallel for if (T * V >= kParallelMin) schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    if (targets[t] < 0 || dlogp[t] == 0.f) continue;
    for (int64_t v = 0; v < V; ++v) dlogits[t * V + v] -= dlogp[t] * probs[t * V + v];
    dlogits[t * V + targets[t]] += dlogp[t];
  }
}

void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t H, int64_t G, int64_t dk, int64_t dv, float scale) {
  const int64_t group = H / G;
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < G; ++g)
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        const float* qb = q + (b * T * H + h) * dk;
        const float* kb = k + (b * T * G + g) * dk;
        const float* vb = v + (b * T * G + g) * dv;
        float* ob = out + (b * T * H + h) * dv;
        float* ab = att + (b * H + h) * T * T;
        for (int64_t i0 = 0; i0 < T; i0 += kBlock) {
          const int64_t i1 = std::min(T, i0 + kBlock), m = i1 - i0;
          float* s = ab + i0 * T;
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(i1), int(dk), scale, qb + i0 * H * dk,
                      int(H * dk), kb, int(G * dk), 0.f, s, int(T));
          for (int64_t r = 0; r < m; ++r) {
            float* row = s + r * T;
            softmax(row, 1, i0 + r + 1, T);
            std::fill(row + i0 + r + 1, row + T, 0.f);
          }
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(dv), int(i1), 1.f, s, int(T), vb,
                      int(G * dv), 0.f, ob + i0 * H * dv, int(H * dv));
        }
      }
}

void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int64_t T, int64_t H,
                       int64_t G, int64_t dk, int64_t dv, float scale) {
  attention_forward(out, att, q, k, v, 1, T, H, G, dk, dv, scale);
}

// o_t = Σ_s a_ts v_s, a_t = softmax_s≤t(c q_t·k_s)
//   ⇒ dv_s += Σ_t a_ts do_t;  da_ts = do_t·v_s;  dz_ts = a_ts (da_ts − Σ_s' a_ts' da_ts');
//     dq_t += c Σ_s dz_ts k_s;  dk_s += c Σ_t dz_ts q_t.
// Per query block, as GEMMs: dA = dO Vᵀ, dZ = A ∘ (dA − rowsum(A ∘ dA)), dQ += c dZ K, dK += c dZᵀ Q,
// dV += Aᵀ dO (masked entries of A are 0, so they add nothing).
void attention_backward(float* dq, float* dk_, float* dv_, const float* dout, const float* att, const float* q,
                        const float* k, const float* v, int64_t B, int64_t T, int64_t H, int64_t G, int64_t dk,
                        int64_t dv, float scale) {
  const int64_t group = H / G;
#pragma omp parallel
  {
    std::vector<float> da(static_cast<size_t>(kBlock * T));
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t g = 0; g < G; ++g)
        for (int64_t h = g * group; h < (g + 1) * group; ++h) {
          const float* qb = q + (b * T * H + h) * dk;
          const float* kb = k + (b * T * G + g) * dk;
          const float* vb = v + (b * T * G + g) * dv;
          const float* gob = dout + (b * T * H + h) * dv;
          const float* ab = att + (b * H + h) * T * T;
          float* dqb = dq + (b * T * H + h) * dk;
          float* dkb = dk_ + (b * T * G + g) * dk;
          float* dvb = dv_ + (b * T * G + g) * dv;
          for (int64_t i0 = 0; i0 < T; i0 += kBlock) {
            const int64_t i1 = std::min(T, i0 + kBlock), m = i1 - i0;
            const float* a = ab + i0 * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(i1), int(dv), 1.f, gob + i0 * H * dv,
                        int(H * dv), vb, int(G * dv), 0.f, da.data(), int(i1));
            for (int64_t r = 0; r < m; ++r) {
              const float* ar = a + r * T;
              float* dr = da.data() + r * i1;
              float sum = 0.f;
              for (int64_t s2 = 0; s2 < i1; ++s2) sum += ar[s2] * dr[s2];
              for (int64_t s2 = 0; s2 < i1; ++s2) dr[s2] = ar[s2] * (dr[s2] - sum) * scale;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(dk), int(i1), 1.f, da.data(), int(i1),
                        kb, int(G * dk), 1.f, dqb + i0 * H * dk, int(H * dk));
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(i1), int(dk), int(m), 1.f, da.data(), int(i1),
                        qb + i0 * H * dk, int(H * dk), 1.f, dkb, int(G * dk));
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(i1), int(dv), int(m), 1.f, a, int(T),
                        gob + i0 * H * dv, int(H * dv), 1.f, dvb, int(G * dv));
          }
        }
  }
}

void attention_backward(float* dq, float* dk_, float* dv_, const float* dout, const float* att, const float* q,
                        const float* k, const float* v, int64_t T, int64_t H, int64_t G, int64_t dk, int64_t dv,
                        float scale) {
  attention_backward(dq, dk_, dv_, dout, att, q, k, v, 1, T, H, G, dk, dv, scale);
}

// s_j the score of chosen expert j (σ or softmax), S = Σ_sel s, c the scale.
//   normalized: w_j = c s_j / S  ⇒  ∂L/∂s_j = c (dw_j / S − Σ_l dw_l s_l / S²)   (chosen j only)
//   plain:      w_j = c s_j      ⇒  ∂L/∂s_j = c dw_j
//   sigmoid: dz_j = ds_j s_j (1 − s_j);  softmax: dz_e = p_e (ds_e − Σ_j ds_j p_j) over all E.
void moe_gate_backward(float* dz, const float* z, const int32_t* idx, const float* dweight, int64_t T, int64_t E,
                       int64_t k, const RouterSpec& r) {
  std::vector<double> s(static_cast<size_t>(E)), ds(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t) {
    const float* zt = z + t * E;
    if (r.sigmoid) {
      for (int64_t e = 0; e < E; ++e) s[size_t(e)] = 1.0 / (1.0 + std::exp(-double(zt[e])));
    } else {
      double mx = zt[0], sum = 0;
      for (int64_t e = 1; e < E; ++e) mx = std::max(mx, double(zt[e]));
      for (int64_t e = 0; e < E; ++e) sum += (s[size_t(e)] = std::exp(double(zt[e]) - mx));
      for (double& x : s) x /= sum;
    }
    std::fill(ds.begin(), ds.end(), 0.0);
    const int32_t* it = idx + t * k;
    const float* dw = dweight + t * k;
    const double c = r.routed_scaling_factor;
    if (r.norm_topk_prob && k > 1) {
      double S = 1e-20, cross = 0;
      for (int64_t j = 0; j < k; ++j) S += s[size_t(it[j])];
      for (int64_t j = 0; j < k; ++j) cross += dw[j] * s[size_t(it[j])];
      for (int64_t j = 0; j < k; ++j) ds[size_t(it[j])] += c * (dw[j] / S - cross / (S * S));
    } else {
      for (int64_t j = 0; j < k; ++j) ds[size_t(it[j])] += c * dw[j];
    }
    if (r.sigmoid) {
      for (int64_t e = 0; e < E; ++e) dz[t * E + e] += float(ds[size_t(e)] * s[size_t(e)] * (1.0 - s[size_t(e)]));
    } else {
      double dot = 0;
      for (int64_t e = 0; e < E; ++e) dot += ds[size_t(e)] * s[size_t(e)];
      for (int64_t e = 0; e < E; ++e) dz[t * E + e] += float(s[size_t(e)] * (ds[size_t(e)] - dot));
    }
  }
}

}  // namespace seek::train
