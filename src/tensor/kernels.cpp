// kernels.cpp — the fast kernels of kernels.h: dispatch between AVX-512 (kernels_avx512.cpp) and
// portable code, and threads through parallel_for (backend.h).
//
// Does not: define the numerics (kernels_ref.cpp does; every kernel with a fast path is tested against
// it), or know about models. Softmax and SwiGLU on AVX-512 use a polynomial exp (~2 ulp); the portable
// paths use std::exp.
#include "tensor/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "tensor/backend.h"
#include "tensor/cpu.h"
#include "tensor/detail.h"
#include "tensor/kernels_avx512.h"
#include "util/error.h"

namespace seek {

namespace {

bool has_avx512() {
  const CpuFeatures& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512vl;
}

// topk order: a before b. NaN ranks below every number; equal values go to the lower index.
inline bool ranks_before(const float* x, int64_t a, int64_t b) {
  bool na = std::isnan(x[a]), nb = std::isnan(x[b]);
  if (na != nb) return nb;
  if (!na && x[a] != x[b]) return x[a] > x[b];
  return a < b;
}

// One RMSNorm row: y = x · r · w with r from the sum of squares in double; returns r.
inline float rmsnorm_row(float* y, const float* x, const float* w, int64_t D, float eps) {
  double ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int64_t d = 0; d < D; d++) ss += double(x[d]) * double(x[d]);
  const float r = float(1.0 / std::sqrt(ss / double(D) + double(eps)));
#pragma omp simd
  for (int64_t d = 0; d < D; d++) y[d] = x[d] * r * w[d];
  return r;
}

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

// ---- normalization ------------------------------------------------------------------------------

void rmsnorm(float* y, const float* x, const float* w, int64_t T, int64_t D, float eps, float* rstd, int64_t ldx,
             int64_t ldy) {
  if (ldx == 0) ldx = D;
  if (ldy == 0) ldy = D;
  parallel_for(T, D, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const float r = rmsnorm_row(y + t * ldy, x + t * ldx, w, D, eps);
      if (rstd) rstd[t] = r;
    }
  });
}

void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                      int64_t T, int64_t D, int64_t ldx, bool add_dx) {
  if (ldx == 0) ldx = D;
  if (dx)
    parallel_for(T, 3 * D, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; t++) {
        const float* xr = x + t * ldx;
        const float* g = dy + t * D;
        float* out = dx + t * ldx;
        const double r = rstd[t];
        double dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t d = 0; d < D; d++) dot += double(g[d]) * w[d] * xr[d];
        const double c = r * r * r * dot / double(D);
        const float rf = float(r), cf = float(c);
        if (add_dx) {
#pragma omp simd
          for (int64_t d = 0; d < D; d++) out[d] += rf * g[d] * w[d] - cf * xr[d];
        } else {
#pragma omp simd
          for (int64_t d = 0; d < D; d++) out[d] = rf * g[d] * w[d] - cf * xr[d];
        }
      }
    });
  if (dw)  // split over features, every thread summing its features over all rows in order
    parallel_for(D, 2 * T, [&](int64_t d0, int64_t d1) {
      for (int64_t t = 0; t < T; t++) {
        const float* xr = x + t * ldx;
        const float* g = dy + t * D;
        const float r = rstd[t];
#pragma omp simd
        for (int64_t d = d0; d < d1; d++) dw[d] += g[d] * xr[d] * r;
      }
    });
}

void add_rmsnorm(float* h, float* xn, float* rstd, const float* a, const float* b, const float* w, int64_t T, int64_t D,
                 float eps) {
  parallel_for(T, 2 * D, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      float* hr = h + t * D;
      const float* ar = a + t * D;
      const float* br = b + t * D;
#pragma omp simd
      for (int64_t d = 0; d < D; d++) hr[d] = ar[d] + br[d];
      const float r = rmsnorm_row(xn + t * D, hr, w, D, eps);
      if (rstd) rstd[t] = r;
    }
  });
}

// ---- softmax, activations -------------------------------------------------------------------------

void softmax(float* x, int64_t T, int64_t n, int64_t stride) {
  if (n <= 0) return;
  const bool simd = has_avx512();
  parallel_for(T, n, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      float* row = x + t * stride;
      if (simd) {
        avx512::softmax_rows(row, 1, n, stride);
        continue;
      }
      float mx = row[0];
      for (int64_t i = 1; i < n; i++) mx = std::fmax(mx, row[i]);
      double sum = 0;
      for (int64_t i = 0; i < n; i++) {
        row[i] = std::exp(row[i] - mx);
        sum += row[i];
      }
      const float inv = float(1.0 / sum);
      for (int64_t i = 0; i < n; i++) row[i] *= inv;
    }
  });
}

double exp_sum(float* y, const float* x, int64_t n, float shift, float scale) {
  if (has_avx512()) return avx512::exp_sum(y, x, n, shift, scale);
  double total = 0;
  for (int64_t i = 0; i < n; i++) total += (y[i] = std::exp((x[i] - shift) * scale));
  return total;
}

namespace {

// mqa_decode's parts: at least kMqaPartKeys keys each, one per thread.
constexpr int64_t kMqaPartKeys = 32;
int64_t mqa_parts(int64_t L) { return std::clamp<int64_t>(L / kMqaPartKeys, 1, max_threads()); }

// avx512::mqa_decode_part's three passes, one head at a time.
void mqa_decode_part_portable(const float* qt, const float* k, int64_t ldk, int64_t L, int64_t dk, int64_t dv, int heads,
                              float scale, float* scores, float* m, float* s, float* ctx) {
  for (int h = 0; h < heads; h++) {
    float mx = -INFINITY, sum = 0;
    for (int64_t l = 0; l < L; l++) {
      float d = 0;
      for (int64_t j = 0; j < dk; j++) d += qt[j * 16 + h] * k[l * ldk + j];
      mx = std::max(mx, scores[l] = scale * d);
    }
    for (int64_t l = 0; l < L; l++) sum += (scores[l] = std::exp(scores[l] - mx));
    float* c = ctx + h * dv;
    std::fill(c, c + dv, 0.f);
    for (int64_t l = 0; l < L; l++)
      for (int64_t v = 0; v < dv; v++) c[v] += scores[l] * k[l * ldk + v];
    m[h] = mx;
    s[h] = sum;
  }
}

}  // namespace

int64_t mqa_decode_scratch(int64_t H, int64_t L, int64_t dk, int64_t dv) {
  const int64_t chunks = (H + 15) / 16, parts = mqa_parts(L);
  // The heads' queries transposed, 16 to a chunk; per part, its results per chunk (maximum, sum,
  // unnormalized context) and its keys' scores. Every part of a call with fewer keys fits too.
  return chunks * dk * 16 + max_threads() * (chunks * 16 * (2 + dv) + 16 * ((L + parts - 1) / parts + kMqaPartKeys));
}

void mqa_decode(const float* q, int64_t ldq, const float* k, int64_t ldk, int64_t H, int64_t L, int64_t dk, int64_t dv,
                float scale, float* out, int64_t ldo, float* scratch) {
  SEEK_ASSERT(L >= 1 && dv <= dk);
  const int64_t chunks = (H + 15) / 16, parts = mqa_parts(L);
  const int64_t per_part = chunks * 16 * (2 + dv), part_keys = (L + parts - 1) / parts;
  float* const qt = scratch;
  float* const merged = qt + chunks * dk * 16;
  float* const all_scores = merged + parts * per_part;
  std::fill(qt, qt + chunks * dk * 16, 0.f);
  for (int64_t h = 0; h < H; h++)
    for (int64_t j = 0; j < dk; j++) qt[((h / 16) * dk + j) * 16 + h % 16] = q[h * ldq + j];
  const bool simd = has_avx512();
  parallel_for(parts, L * dk * H, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; p++) {
      const int64_t l0 = L * p / parts, n = L * (p + 1) / parts - l0;
      float* scores = all_scores + p * 16 * part_keys;
      for (int64_t c = 0; c < chunks; c++) {
        float* m = merged + p * per_part + c * 16 * (2 + dv);
        const int heads = int(std::min<int64_t>(16, H - 16 * c));
        (simd ? avx512::mqa_decode_part : mqa_decode_part_portable)(qt + c * dk * 16, k + l0 * ldk, ldk, n, dk, dv,
                                                                    heads, scale, scores, m, m + 16, m + 32);
      }
    }
  });
  // out_h = Σ_p e^(m_p − m) ctx_p / Σ_p e^(m_p − m) s_p, m the largest of the parts' maxima.
  for (int64_t h = 0; h < H; h++) {
    const int64_t at = (h / 16) * 16 * (2 + dv), lane = h % 16;
    float mx = -INFINITY;
    for (int64_t p = 0; p < parts; p++) mx = std::max(mx, merged[p * per_part + at + lane]);
    float denom = 0;
    float* o = out + h * ldo;
    std::fill(o, o + dv, 0.f);
    for (int64_t p = 0; p < parts; p++) {
      const float* m = merged + p * per_part + at;
      const float w = std::exp(m[lane] - mx);
      denom += w * m[16 + lane];
      for (int64_t v = 0; v < dv; v++) o[v] += w * m[32 + lane * dv + v];
    }
    for (int64_t v = 0; v < dv; v++) o[v] /= denom;
  }
}

void softmax_causal(float* x, int64_t rows, int64_t n, int64_t stride, int64_t first) {
  for (int64_t r = 0; r < rows; r++) {
    float* row = x + r * stride;
    const int64_t valid = std::min(n, first + r);
    softmax(row, 1, valid, stride);
    std::fill(row + valid, row + n, 0.f);
  }
}

void softmax_backward(float* d, const float* p, int64_t rows, int64_t n, int64_t ldd, int64_t ldp, float scale) {
  for (int64_t r = 0; r < rows; r++) {
    const float* pr = p + r * ldp;
    float* dr = d + r * ldd;
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; i++) sum += pr[i] * dr[i];
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dr[i] = pr[i] * (dr[i] - sum) * scale;
  }
}

// ---- causal attention of one head ------------------------------------------------------------------

namespace {
constexpr int64_t kAttentionBlock = 64;  // the portable form's query block (kernels.h zeroes p to its end)

// Scratch of this thread for the AVX-512 attention kernels, grown as needed.
float* attention_scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (int64_t(buf.size()) < n) buf.resize(size_t(n));
  return buf.data();
}
}  // namespace

void attention_head(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                    int64_t dk, int64_t dv, float scale, float* p, int64_t ldp, float* o, int64_t ldo) {
  if (has_avx512()) {
    float* scratch = attention_scratch(avx512::attention_head_scratch(T, dk, dv));
    avx512::attention_head(q, ldq, k, ldk, v, ldv, T, dk, dv, scale, p, ldp, o, ldo, scratch);
    return;
  }
  // Portable: per 64-row query block, scores over the keys up to the block's end as GEMMs.
  for (int64_t i0 = 0; i0 < T; i0 += kAttentionBlock) {
    const int64_t i1 = std::min(T, i0 + kAttentionBlock), m = i1 - i0;
    float* s = p + i0 * ldp;
    gemm(false, true, m, i1, dk, scale, q + i0 * ldq, ldq, k, ldk, 0.f, s, ldp);
    softmax_causal(s, m, i1, ldp, i0 + 1);
    gemm(false, false, m, dv, i1, 1.f, s, ldp, v, ldv, 0.f, o + i0 * ldo, ldo);
  }
}

void attention_head_backward(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv,
                             int64_t T, int64_t dk, int64_t dv, float scale, const float* p, int64_t ldp,
                             const float* dout, int64_t lddo, const AttentionHeadGrads& g) {
  if (has_avx512()) {
    float* scratch = attention_scratch(avx512::attention_head_backward_scratch(T, dk, dv));
    avx512::attention_head_backward(q, ldq, k, ldk, v, ldv, T, dk, dv, scale, p, ldp, dout, lddo, g.dq, g.lddq, g.dk,
                                    g.lddk, g.dv, g.lddv, g.add_kv, scratch);
    return;
  }
  // Portable: per 64-row query block as GEMMs, last block first: it reaches every key, so it writes dk and
  // dv (unless add_kv) and every earlier block adds.
  float* dz = attention_scratch(kAttentionBlock * T);
  const int64_t last = (T - 1) / kAttentionBlock * kAttentionBlock;
  for (int64_t i0 = last; i0 >= 0; i0 -= kAttentionBlock) {
    const int64_t i1 = std::min(T, i0 + kAttentionBlock), m = i1 - i0;
    const float kv_beta = g.add_kv || i0 != last ? 1.f : 0.f;
    const float* pb = p + i0 * ldp;
    const float* db = dout + i0 * lddo;
    gemm(false, true, m, i1, dv, 1.f, db, lddo, v, ldv, 0.f, dz, i1);
    softmax_backward(dz, pb, m, i1, i1, ldp, scale);
    gemm(false, false, m, dk, i1, 1.f, dz, i1, k, ldk, 0.f, g.dq + i0 * g.lddq, g.lddq);
    gemm(true, false, i1, dk, m, 1.f, dz, i1, q + i0 * ldq, ldq, kv_beta, g.dk, g.lddk);
    gemm(true, false, i1, dv, m, 1.f, pb, ldp, db, lddo, kv_beta, g.dv, g.lddv);
  }
}

void swiglu(float* out, const float* gu, int64_t T, int64_t F) {
  const bool simd = has_avx512();
  parallel_for(T, 4 * F, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const float* g = gu + t * 2 * F;
      float* o = out + t * F;
      if (simd) {
        avx512::silu_mul(o, g, g + F, F);
        continue;
      }
      for (int64_t f = 0; f < F; f++) o[f] = g[f] / (1.0f + std::exp(-g[f])) * g[F + f];
    }
  });
}

void swiglu_backward(float* dgu, const float* dout, const float* gu, int64_t T, int64_t F) {
  const bool simd = has_avx512();
  parallel_for(T, 6 * F, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const float* g = gu + t * 2 * F;
      const float* d = dout + t * F;
      float* dg = dgu + t * 2 * F;
      if (simd) {
        avx512::silu_mul_backward(dg, dg + F, d, g, g + F, F);
        continue;
      }
      for (int64_t f = 0; f < F; f++) {
        const float s = 1.f / (1.f + std::exp(-g[f]));
        dg[F + f] = d[f] * g[f] * s;
        dg[f] = d[f] * g[F + f] * s * (1.f + g[f] * (1.f - s));
      }
    }
  });
}

// ---- element-wise ----------------------------------------------------------------------------------

void add(float* y, const float* a, const float* b, int64_t n) {
  parallel_for(n, 1, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) y[i] = a[i] + b[i];
  });
}

void add_to(float* y, const float* x, int64_t n) {
  parallel_for(n, 1, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) y[i] += x[i];
  });
}

double sum_squares(const float* x, int64_t n) {
  // A fixed split into 64 parts summed in order: the same result for any number of threads.
  constexpr int64_t kParts = 64;
  double part[kParts] = {};
  const int64_t per = (n + kParts - 1) / kParts;
  parallel_for(kParts, per, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; p++) {
      double s = 0;
      const int64_t i1 = std::min(n, (p + 1) * per);
#pragma omp simd reduction(+ : s)
      for (int64_t i = p * per; i < i1; i++) s += double(x[i]) * double(x[i]);
      part[p] = s;
    }
  });
  double total = 0;
  for (double s : part) total += s;
  return total;
}

void scale(float* x, float s, int64_t n) {
  parallel_for(n, 1, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) x[i] *= s;
  });
}

void fill(float* x, float v, int64_t n) {
  parallel_for(n, 1, [&](int64_t i0, int64_t i1) { std::fill(x + i0, x + i1, v); });
}

void adamw_update(float* p, const float* g, float* m, float* v, const uint8_t* decay, int64_t n, const AdamWStep& s) {
  const double bc1 = 1.0 - std::pow(double(s.beta1), double(s.t)), bc2 = 1.0 - std::pow(double(s.beta2), double(s.t));
  const float b1 = s.beta1, b2 = s.beta2, ib1 = float(1.0 / bc1), ib2 = float(1.0 / bc2);
  const float lr = s.lr, eps = s.eps, wdf = s.weight_decay, gs = s.grad_scale;
  // One loop per case, without branches inside, so that it vectorizes.
  auto update = [&](int64_t i, float wd) {
    const float gi = g[i] * gs;  // exact when gs = 1
    const float mi = b1 * m[i] + (1.f - b1) * gi, vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= lr * (mi * ib1 / (std::sqrt(vi * ib2) + eps) + wd * p[i]);
  };
  parallel_for(n, 4, [&](int64_t i0, int64_t i1) {
    if (decay) {
#pragma omp simd
      for (int64_t i = i0; i < i1; ++i) update(i, wdf * float(decay[i]));
    } else {
#pragma omp simd
      for (int64_t i = i0; i < i1; ++i) update(i, wdf);
    }
  });
}

// ---- rows: gather, scatter, top-k ----------------------------------------------------------------

void gather_rows(float* dst, const float* src, const int32_t* index, int64_t R, int64_t D) {
  parallel_for(R, D, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) std::memcpy(dst + r * D, src + int64_t(index[r]) * D, sizeof(float) * size_t(D));
  });
}

void gather_weighted_sum(float* y, const float* src, const int32_t* index, const float* w, int64_t T, int64_t k,
                         int64_t D) {
  parallel_for(T, k * D, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      float* o = y + t * D;
      for (int64_t j = 0; j < k; j++) {
        const float g = w ? w[t * k + j] : 1.f;
        const float* s = src + int64_t(index[t * k + j]) * D;
#pragma omp simd
        for (int64_t d = 0; d < D; d++) o[d] += g * s[d];
      }
    }
  });
}

void gather_weighted_sum_backward(float* dsrc, float* dw, const float* dy, const float* src, const int32_t* index,
                                  const float* w, int64_t T, int64_t k, int64_t D) {
  parallel_for(T, 2 * k * D, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const float* g = dy + t * D;
      for (int64_t j = 0; j < k; j++) {
        const int64_t r = index[t * k + j];
        const float wt = w[t * k + j];
        float* ds = dsrc + r * D;
#pragma omp simd
        for (int64_t d = 0; d < D; d++) ds[d] = wt * g[d];
        if (dw) {
          const float* s = src + r * D;
          float dot = 0;
#pragma omp simd reduction(+ : dot)
          for (int64_t d = 0; d < D; d++) dot += g[d] * s[d];
          dw[t * k + j] = dot;
        }
      }
    }
  });
}

void scatter_add_rows(float* dst, const float* src, const int32_t* index, int64_t R, int64_t D) {
  // Split over features so that rows naming the same destination never race; each thread adds its
  // columns of every row in order.
  parallel_for(D, R, [&](int64_t d0, int64_t d1) {
    for (int64_t r = 0; r < R; r++) {
      float* o = dst + int64_t(index[r]) * D;
      const float* s = src + r * D;
#pragma omp simd
      for (int64_t d = d0; d < d1; d++) o[d] += s[d];
    }
  });
}

int64_t argmax(const float* x, int64_t n) {
  SEEK_ASSERT_MSG(n >= 1, "[argmax] of no values");
  if (has_avx512()) return avx512::argmax(x, n);
  float best = -INFINITY;
  for (int64_t i = 0; i < n; i++) best = x[i] > best ? x[i] : best;  // a NaN never compares greater
  for (int64_t i = 0; i < n; i++)
    if (x[i] == best) return i;
  return 0;  // every value is NaN
}

void topk(const float* x, int64_t n, int64_t k, int32_t* idx) {
  SEEK_ASSERT_MSG(k >= 0 && k <= n, strfmt("[topk] k = %lld of n = %lld", (long long)k, (long long)n).c_str());
  if (k == 0) return;
  if (k <= 32) {
    // Insertion into a sorted list of the best k so far. Indices arrive in increasing order, so an
    // equal value never displaces an earlier one.
    int64_t len = 0;
    for (int64_t i = 0; i < n; i++) {
      if (len == k && !ranks_before(x, i, idx[len - 1])) continue;
      int64_t j = len < k ? len++ : k - 1;
      while (j > 0 && ranks_before(x, i, idx[j - 1])) {
        idx[j] = idx[j - 1];
        j--;
      }
      idx[j] = int32_t(i);
    }
    return;
  }
  static thread_local std::vector<int32_t> order;
  if (order.size() < size_t(n)) order.resize(size_t(n));
  for (int64_t i = 0; i < n; i++) order[size_t(i)] = int32_t(i);
  std::partial_sort(order.begin(), order.begin() + k, order.begin() + n,
                    [x](int32_t a, int32_t b) { return ranks_before(x, a, b); });
  std::memcpy(idx, order.data(), size_t(k) * sizeof(int32_t));
}

// ---- embedding ------------------------------------------------------------------------------------

void embedding(float* out, const Mat& table, const int32_t* ids, int64_t T) {
  SEEK_ASSERT_MSG(!weight_format(table.dtype).block_scales, "[embedding] tables must not carry block scales");
  for (int64_t t = 0; t < T; t++) {
    SEEK_ASSERT(ids[t] >= 0 && ids[t] < table.rows);
    rows_to_f32_serial(table, ids[t], 1, out + t * table.cols);
  }
}

// ---- losses over logits -----------------------------------------------------------------------------

double softmax_cross_entropy(float* probs, const float* logits, const int32_t* targets, int64_t T, int64_t V,
                             int64_t* counted) {
  for (int64_t t = 0; t < T; ++t)
    if (targets[t] >= V)
      throw Error(strfmt("cross_entropy: target %d is outside the vocabulary [0, %lld)", targets[t], (long long)V));
  std::memcpy(probs, logits, sizeof(float) * size_t(T * V));
  softmax(probs, T, V, V);
  double loss = 0;
  int64_t n = 0;
  for (int64_t t = 0; t < T; ++t) {
    if (targets[t] < 0) continue;
    loss -= std::log(std::max(double(probs[t * V + targets[t]]), 1e-30));
    ++n;
  }
  *counted = n;
  return loss;
}

void softmax_cross_entropy_backward(float* dlogits, const float* probs, const int32_t* targets, const float* coef,
                                    float scale, int64_t T, int64_t V) {
  parallel_for(T, V, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      float* d = dlogits + t * V;
      const float f = targets[t] < 0 ? 0.f : coef ? coef[t] : scale;
      if (f == 0.f) {
        std::fill(d, d + V, 0.f);
        continue;
      }
      const float* p = probs + t * V;
#pragma omp simd
      for (int64_t v = 0; v < V; ++v) d[v] = f * p[v];
      d[targets[t]] -= f;
    }
  });
}

void log_softmax_pick(float* logp, float* entropy, const float* logits, const int32_t* targets, int64_t T, int64_t V) {
  parallel_for(T, 4 * V, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
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
  });
}

// ---- rotary embedding -----------------------------------------------------------------------------------

namespace {
// cos and sin of one position, as rope_ref: angle = f32(pos · inv_freq); cos and sin in double, times
// cs_scale, rounded to f32 once per token and shared by all heads.
inline void rope_cos_sin(float* c, float* s, int32_t pos, const float* inv_freq, int64_t half, float cs_scale) {
  for (int64_t i = 0; i < half; i++) {
    const double angle = double(float(pos) * inv_freq[i]);
    c[i] = float(std::cos(angle) * double(cs_scale));
    s[i] = float(std::sin(angle) * double(cs_scale));
  }
}
}  // namespace

void rope_table(float* table, int64_t rows, const float* inv_freq, int64_t R, float cs_scale) {
  const int64_t half = R / 2;
  parallel_for(rows, 4 * R, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) rope_cos_sin(table + r * R, table + r * R + half, int32_t(r), inv_freq, half, cs_scale);
  });
}

// The rotation in f32, with cos/sin from the table or computed (rope_cos_sin).
void rope(float* x, int64_t T, int64_t n_heads, int64_t token_stride, int64_t head_stride, const int32_t* pos,
          const float* inv_freq, int64_t R, float cs_scale, RopeLayout layout, bool inverse, const float* table,
          int64_t table_rows) {
  SEEK_ASSERT(R % 2 == 0 && R <= 512);
  const int64_t half = R / 2;
  const float sign = inverse ? -1.f : 1.f;
  parallel_for(T, n_heads * R, [&](int64_t t0, int64_t t1) {
    float cs[512];
    for (int64_t t = t0; t < t1; t++) {
      const float* c = cs;
      if (table && pos[t] >= 0 && pos[t] < table_rows) {
        c = table + int64_t(pos[t]) * R;
      } else {
        rope_cos_sin(cs, cs + half, pos[t], inv_freq, half, cs_scale);
      }
      const float* s = c + half;
      for (int64_t h = 0; h < n_heads; h++) {
        float* v = x + t * token_stride + h * head_stride;
        if (layout == RopeLayout::Interleaved) {
#pragma omp simd
          for (int64_t i = 0; i < half; i++) {
            const float a = v[2 * i], b = v[2 * i + 1], si = sign * s[i];
            v[2 * i] = a * c[i] - b * si;
            v[2 * i + 1] = a * si + b * c[i];
          }
        } else {
#pragma omp simd
          for (int64_t i = 0; i < half; i++) {
            const float a = v[i], b = v[i + half], si = sign * s[i];
            v[i] = a * c[i] - b * si;
            v[i + half] = a * si + b * c[i];
          }
        }
      }
    }
  });
}

// ---- FP8 E4M3 ---------------------------------------------------------------------------------------------

void fp8_round_rows(float* x, int64_t rows, int64_t K, int64_t tile, int64_t ld) {
  if (ld == 0) ld = K;
  parallel_for(rows, 2 * K, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t k0 = 0; k0 < K; k0 += tile) fp8_round_tile(x + r * ld + k0, 1, std::min(tile, K - k0), ld);
  });
}

void fp8_round_blocks(float* w, int64_t N, int64_t K, int64_t block) {
  const int64_t nb = (N + block - 1) / block;
  parallel_for(nb, 2 * block * K, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t k0 = 0; k0 < K; k0 += block)
        fp8_round_tile(w + b * block * K + k0, std::min(block, N - b * block), std::min(block, K - k0), K);
  });
}

}  // namespace seek
