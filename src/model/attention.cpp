// attention.cpp — MLA (naive and absorbed) and GQA attention over a KV cache.
//
// Shapes follow the legend in tensor/kernels.h; qk = qk_nope + R.
//
// Three ways to compute MLA, one result (tests assert equal logits):
//   - naive cache: per-head K/V stored; causal attention per head (the "MHA" form).
//   - absorbed cache, few new tokens (decode): W_UK folded into the query, attention is MQA over the
//     latent rows with key dim C + R and value dim C, then W_UV per head. Scores are laid out head-major,
//     [H·T, L] with row h·T + t, so one GEMM covers all heads.
//   - absorbed cache, many new tokens (prefill, T ≥ kPrefillDecompress): K/V of the whole context are
//     decompressed from the latent rows once and attention runs in the per-head form, which costs
//     160 instead of 544 multiply-adds per head and query-key pair for V3's dimensions — DeepSeek's own
//     prefill/decode split. The cache keeps only the latent rows either way.
// Per-head attention runs in causal query blocks, so keys after a block's last query are never scored.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/layers.h"
#include "util/error.h"

namespace seek {

void causal_softmax(float* s, int64_t rows, int64_t T, int64_t L, int64_t pos0) {
#pragma omp parallel for schedule(static) if (rows * L > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t valid = pos0 + r % T + 1;  // keys 0 .. pos0 + t
    float* row = s + r * L;
    softmax(row, 1, valid, L);
    std::fill(row + valid, row + L, 0.f);
  }
}

namespace {

constexpr int64_t kPrefillDecompress = 64;  // new tokens from which absorbed MLA decompresses K/V
constexpr int64_t kQueryBlock = 128;        // causal query block of the per-head form

// Where head h's vectors live: row t of head h is at base + (h / group) * head + t * row.
struct Heads {
  const float* base = nullptr;
  int64_t head = 0;   // stride between heads (0: shared by all heads)
  int64_t row = 0;    // stride between tokens
  int64_t dim = 0;    // vector length
  int64_t group = 1;  // query heads per kv head (GQA)
  const float* at(int64_t h) const { return base + (h / group) * head; }
};

// Causal attention of T queries (positions pos0 ..) over the first pos0 + T keys, per head:
// out_h = softmax(scale · (q_h·k_hᵀ + q2_h·k2_hᵀ)) · v_h, where the optional (q2, k2) pair adds a second
// score term (MLA's decoupled rope part). out is [T, H·v] with row stride out_row.
void attend_per_head(int64_t H, int64_t T, int64_t pos0, float scale, const Heads& q, const Heads& k,
                     const Heads* q2, const Heads* k2, const Heads& v, float* out, int64_t out_row, float* S) {
  for (int64_t q0 = 0; q0 < T; q0 += kQueryBlock) {
    const int64_t Tb = std::min(kQueryBlock, T - q0), Lb = pos0 + q0 + Tb;
#pragma omp parallel for schedule(dynamic)
    for (int64_t h = 0; h < H; ++h) {
      float* Sh = S + h * Tb * Lb;  // [Tb, Lb]
      gemm_f32(Tb, Lb, q.dim, scale, q.at(h) + q0 * q.row, q.row, k.at(h), k.row, true, 0.f, Sh, Lb);
      if (q2) gemm_f32(Tb, Lb, q2->dim, scale, q2->at(h) + q0 * q2->row, q2->row, k2->at(h), k2->row, true, 1.f, Sh, Lb);
      causal_softmax(Sh, Tb, Tb, Lb, pos0 + q0);
      gemm_f32(Tb, v.dim, Lb, 1.f, Sh, Lb, v.at(h), v.row, false, 0.f, out + q0 * out_row + h * v.dim, out_row);
    }
  }
}

}  // namespace

void mla_forward(const Config& c, const Rope& rope_tab, const MlaWeights& w, const std::vector<Segment>& segs,
                 MlaForm form, const float* x, float* out, int64_t rows, const int32_t* pos, Workspace& ws) {
  const int64_t H = c.num_attention_heads, C = c.kv_lora_rank, R = c.qk_rope_head_dim;
  const int64_t nope = c.qk_nope_head_dim, qk = c.qk_head_dim(), vd = c.v_head_dim;
  const int64_t kvw = nope + vd;  // one head's rows of kv_b_proj
  const float eps = float(c.rms_norm_eps);
  const float scale = c.softmax_scale();
  const float* inv_freq = rope_tab.inv_freq.data();
  const float cs = rope_tab.cos_sin_scale;
  const int64_t N = rows;

  // Query for every row: q [N, H, qk].
  float* q = ws.f(kQ, N * H * qk);
  if (c.q_lora_rank == 0) {
    matmul(q, x, w.q_proj, N);
  } else {
    float* qa = ws.f(kQA, N * c.q_lora_rank);
    matmul(qa, x, w.q_a_proj, N);  // [N, q_lora_rank]
    rmsnorm(qa, qa, w.q_a_layernorm.data(), N, c.q_lora_rank, eps);
    matmul(q, qa, w.q_b_proj, N);  // [N, H·qk]
  }
  rope(q + nope, N, H, H * qk, qk, pos, inv_freq, R, cs, RopeLayout::Interleaved);

  // Compressed KV: kva [N, C + R] = [c_kv ; k_pe].
  float* kva = ws.f(kKVA, N * (C + R));
  matmul(kva, x, w.kv_a_proj_with_mqa, N);
  for (int64_t t = 0; t < N; ++t) rmsnorm(kva + t * (C + R), kva + t * (C + R), w.kv_a_layernorm.data(), 1, C, eps);
  rope(kva + C, N, 1, C + R, C + R, pos, inv_freq, R, cs, RopeLayout::Interleaved);

  float* attn = ws.f(kAttnOut, N * H * vd);  // [N, H·v]
  const float* Wkvb = w.kv_b_f32.data();     // [H·(nope+v), C]
  if (form == MlaForm::Naive) {
    // Decompress the new tokens' keys and values once: kv [N, H·(nope + v)].
    float* kv = ws.f(kKV, N * H * kvw);
    gemm_f32(N, H * kvw, C, 1.f, kva, C + R, Wkvb, C, true, 0.f, kv, H * kvw);
  }

  for (const Segment& sg : segs) {
    const int64_t T = sg.T, pos0 = sg.pos0, L = pos0 + T, r0 = sg.row0;
    LayerCache& cache = *sg.cache;
    const float* qs = q + r0 * H * qk;
    const float* kvas = kva + r0 * (C + R);
    float* attn_s = attn + r0 * H * vd;
    const Heads q_nope{qs, qk, H * qk, nope}, q_pe{qs + nope, qk, H * qk, R};
    if (form == MlaForm::Absorbed) {
      const int64_t cap = int64_t(cache.k.size()) / (C + R);
      float* latent = cache.k.data();  // [cap, C + R]
      std::memcpy(latent + pos0 * (C + R), kvas, sizeof(float) * size_t(T * (C + R)));
      if (T >= kPrefillDecompress) {
        // Decompress every cached position's k_nope and v: kv [L, H·(nope + v)] = c_kv · kv_b_projᵀ.
        float* kv = ws.f(kKV, cap * H * kvw);
        gemm_f32(L, H * kvw, C, 1.f, latent, C + R, Wkvb, C, true, 0.f, kv, H * kvw);
        const Heads k_nope{kv, kvw, H * kvw, nope}, k_pe{latent + C, 0, C + R, R}, v{kv + nope, kvw, H * kvw, vd};
        float* S = ws.f(kScores, H * std::min(T, kQueryBlock) * cap);
        attend_per_head(H, T, pos0, scale, q_nope, k_nope, &q_pe, &k_pe, v, attn_s, H * vd, S);
      } else {
        // q̃_h = q_nope_h · W_UK_h, with q_pe beside it: qcat [H, T, C + R].
        float* qcat = ws.f(kQCat, H * T * (C + R));
#pragma omp parallel for schedule(static) if (H * T * C * nope > 32768)
        for (int64_t h = 0; h < H; ++h) {
          const float* Wuk = Wkvb + h * kvw * C;  // [nope, C]
          gemm_f32(T, C, nope, 1.f, qs + h * qk, H * qk, Wuk, C, false, 0.f, qcat + h * T * (C + R), C + R);
          for (int64_t t = 0; t < T; ++t)
            std::memcpy(qcat + (h * T + t) * (C + R) + C, qs + t * H * qk + h * qk + nope, sizeof(float) * size_t(R));
        }
        float* S = ws.f(kScores, H * T * cap);  // [H·T, L], sized for the capacity: never reallocates
        gemm_f32(H * T, L, C + R, scale, qcat, C + R, latent, C + R, true, 0.f, S, L);
        causal_softmax(S, H * T, T, L, pos0);
        float* ctx = ws.f(kCtx, H * T * C);
        gemm_f32(H * T, C, L, 1.f, S, L, latent, C + R, false, 0.f, ctx, C);  // [H·T, C]
#pragma omp parallel for schedule(static) if (H * T * C * vd > 32768)
        for (int64_t h = 0; h < H; ++h) {
          const float* Wuv = Wkvb + (h * kvw + nope) * C;  // [v, C]
          gemm_f32(T, vd, C, 1.f, ctx + h * T * C, C, Wuv, C, true, 0.f, attn_s + h * vd, H * vd);
        }
      }
    } else {
      // Store this segment's decompressed keys and values: K [cap, H, qk], V [cap, H, v].
      const int64_t cap = int64_t(cache.k.size()) / (H * qk);
      const float* kv = ws.f(kKV, N * H * kvw) + r0 * H * kvw;
      float* K = cache.k.data();
      float* V = cache.v.data();
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h) {
          float* kd = K + ((pos0 + t) * H + h) * qk;
          const float* src = kv + t * H * kvw + h * kvw;
          std::memcpy(kd, src, sizeof(float) * size_t(nope));
          std::memcpy(kd + nope, kvas + t * (C + R) + C, sizeof(float) * size_t(R));
          std::memcpy(V + ((pos0 + t) * H + h) * vd, src + nope, sizeof(float) * size_t(vd));
        }
      const Heads q_all{qs, qk, H * qk, qk}, k_all{K, qk, H * qk, qk}, v{V, vd, H * vd, vd};
      float* S = ws.f(kScores, H * std::min(T, kQueryBlock) * cap);
      attend_per_head(H, T, pos0, scale, q_all, k_all, nullptr, nullptr, v, attn_s, H * vd, S);
    }
  }
  matmul(out, attn, w.o_proj, N);  // [N, D]
}

void gqa_forward(const Config& c, const Rope& rope_tab, const GqaWeights& w, const std::vector<Segment>& segs,
                 const float* x, float* out, int64_t rows, const int32_t* pos, Workspace& ws) {
  const int64_t H = c.num_attention_heads, G = c.num_key_value_heads, hd = c.head_dim, N = rows;
  const float* inv_freq = rope_tab.inv_freq.data();
  const float cs = rope_tab.cos_sin_scale;
  const auto bias = [](const Vec& b) { return b.empty() ? nullptr : b.data(); };

  float* q = ws.f(kQ, N * H * hd);   // [N, H, hd]
  float* k = ws.f(kK, N * G * hd);   // [N, G, hd]
  float* v = ws.f(kV, N * G * hd);
  matmul(q, x, w.q_proj, N, bias(w.q_bias));
  matmul(k, x, w.k_proj, N, bias(w.k_bias));
  matmul(v, x, w.v_proj, N, bias(w.v_bias));
  rope(q, N, H, H * hd, hd, pos, inv_freq, hd, cs, RopeLayout::HalfSplit);
  rope(k, N, G, G * hd, hd, pos, inv_freq, hd, cs, RopeLayout::HalfSplit);

  float* attn = ws.f(kAttnOut, N * H * hd);
  const int64_t group = H / G;
  for (const Segment& sg : segs) {
    LayerCache& cache = *sg.cache;
    const int64_t T = sg.T, r0 = sg.row0, cap = int64_t(cache.k.size()) / (G * hd);
    std::memcpy(cache.k.data() + sg.pos0 * G * hd, k + r0 * G * hd, sizeof(float) * size_t(T * G * hd));
    std::memcpy(cache.v.data() + sg.pos0 * G * hd, v + r0 * G * hd, sizeof(float) * size_t(T * G * hd));
    float* S = ws.f(kScores, H * std::min(T, kQueryBlock) * cap);  // sized for the capacity
    const Heads qh{q + r0 * H * hd, hd, H * hd, hd}, kh{cache.k.data(), hd, G * hd, hd, group},
        vh{cache.v.data(), hd, G * hd, hd, group};
    attend_per_head(H, T, sg.pos0, c.softmax_scale(), qh, kh, nullptr, nullptr, vh, attn + r0 * H * hd, H * hd, S);
  }
  matmul(out, attn, w.o_proj, N);
}

}  // namespace seek
