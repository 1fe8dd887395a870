// attention.cpp — MLA (naive and absorbed) and GQA attention over a KV cache.
//
// Shapes follow the legend in tensor/kernels.h; qk = qk_nope + R. Scores are laid out head-major,
// [H·T, L] with row h·T + t, so one GEMM covers all heads where the key is shared (absorbed MLA is
// MQA with key dim C + R and value dim C).
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

// Positions pos0 .. pos0+T-1 as int32 for the rope kernel.
const int32_t* positions(Workspace& ws, int64_t T, int64_t pos0) {
  int32_t* p = ws.i(kPos, T);
  for (int64_t t = 0; t < T; ++t) p[t] = int32_t(pos0 + t);
  return p;
}

}  // namespace

void mla_forward(const Config& c, const Rope& rope_tab, const MlaWeights& w, LayerCache& cache, MlaForm form,
                 const float* x, float* out, int64_t T, int64_t pos0, Workspace& ws) {
  const int64_t H = c.num_attention_heads, C = c.kv_lora_rank, R = c.qk_rope_head_dim;
  const int64_t nope = c.qk_nope_head_dim, qk = c.qk_head_dim(), vd = c.v_head_dim, D = c.hidden_size;
  const int64_t L = pos0 + T;
  const float eps = float(c.rms_norm_eps);
  const float scale = c.softmax_scale();
  const float* inv_freq = rope_tab.inv_freq.data();
  const float cs = rope_tab.cos_sin_scale;
  const int32_t* pos = positions(ws, T, pos0);

  // Query: q [T, H, qk].
  float* q = ws.f(kQ, T * H * qk);
  if (c.q_lora_rank == 0) {
    matmul(q, x, w.q_proj, T);
  } else {
    float* qa = ws.f(kQA, T * c.q_lora_rank);
    matmul(qa, x, w.q_a_proj, T);                                    // [T, q_lora_rank]
    rmsnorm(qa, qa, w.q_a_layernorm.data(), T, c.q_lora_rank, eps);
    matmul(q, qa, w.q_b_proj, T);                                    // [T, H·qk]
  }
  rope(q + nope, T, H, H * qk, qk, pos, inv_freq, R, cs, RopeLayout::Interleaved);

  // Compressed KV: kva [T, C + R] = [c_kv ; k_pe].
  float* kva = ws.f(kKVA, T * (C + R));
  matmul(kva, x, w.kv_a_proj_with_mqa, T);
  for (int64_t t = 0; t < T; ++t) rmsnorm(kva + t * (C + R), kva + t * (C + R), w.kv_a_layernorm.data(), 1, C, eps);
  rope(kva + C, T, 1, C + R, C + R, pos, inv_freq, R, cs, RopeLayout::Interleaved);

  float* attn = ws.f(kAttnOut, T * H * vd);  // [T, H·v]
  // Scores [H·T, L], sized for the cache's capacity so a growing context never reallocates.
  const int64_t cap = int64_t(cache.k.size()) / (form == MlaForm::Absorbed ? C + R : H * qk);
  float* S = ws.f(kScores, H * T * cap);
  const float* Wkvb = w.kv_b_f32.data();      // [H·(nope+v), C]

  if (form == MlaForm::Absorbed) {
    float* latent = cache.k.data();  // [cap, C + R]
    std::memcpy(latent + pos0 * (C + R), kva, sizeof(float) * size_t(T * (C + R)));
    // q̃_h = q_nope_h · W_UK_h, with q_pe beside it: qcat [H, T, C + R].
    float* qcat = ws.f(kQCat, H * T * (C + R));
    for (int64_t h = 0; h < H; ++h) {
      const float* Wuk = Wkvb + h * (nope + vd) * C;  // [nope, C]
      gemm_f32(T, C, nope, 1.f, q + h * qk, H * qk, Wuk, C, false, 0.f, qcat + h * T * (C + R), C + R);
      for (int64_t t = 0; t < T; ++t)
        std::memcpy(qcat + (h * T + t) * (C + R) + C, q + t * H * qk + h * qk + nope, sizeof(float) * size_t(R));
    }
    gemm_f32(H * T, L, C + R, scale, qcat, C + R, latent, C + R, true, 0.f, S, L);  // [H·T, L]
    causal_softmax(S, H * T, T, L, pos0);
    float* ctx = ws.f(kCtx, H * T * C);
    gemm_f32(H * T, C, L, 1.f, S, L, latent, C + R, false, 0.f, ctx, C);  // [H·T, C]
    for (int64_t h = 0; h < H; ++h) {
      const float* Wuv = Wkvb + (h * (nope + vd) + nope) * C;  // [v, C]
      gemm_f32(T, vd, C, 1.f, ctx + h * T * C, C, Wuv, C, true, 0.f, attn + h * vd, H * vd);
    }
  } else {
    // Decompress the new tokens' keys and values once: kv [T, H·(nope + v)].
    float* ckv = ws.f(kCkv, T * C);
    for (int64_t t = 0; t < T; ++t) std::memcpy(ckv + t * C, kva + t * (C + R), sizeof(float) * size_t(C));
    float* kv = ws.f(kKV, T * H * (nope + vd));
    matmul(kv, ckv, w.kv_b_proj, T);
    float* K = cache.k.data();  // [cap, H, qk]
    float* V = cache.v.data();  // [cap, H, v]
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        float* kd = K + ((pos0 + t) * H + h) * qk;
        const float* src = kv + t * H * (nope + vd) + h * (nope + vd);
        std::memcpy(kd, src, sizeof(float) * size_t(nope));
        std::memcpy(kd + nope, kva + t * (C + R) + C, sizeof(float) * size_t(R));
        std::memcpy(V + ((pos0 + t) * H + h) * vd, src + nope, sizeof(float) * size_t(vd));
      }
    for (int64_t h = 0; h < H; ++h)
      gemm_f32(T, L, qk, scale, q + h * qk, H * qk, K + h * qk, H * qk, true, 0.f, S + h * T * L, L);
    causal_softmax(S, H * T, T, L, pos0);
    for (int64_t h = 0; h < H; ++h)
      gemm_f32(T, vd, L, 1.f, S + h * T * L, L, V + h * vd, H * vd, false, 0.f, attn + h * vd, H * vd);
  }
  matmul(out, attn, w.o_proj, T);  // [T, D]
  (void)D;
}

void gqa_forward(const Config& c, const Rope& rope_tab, const GqaWeights& w, LayerCache& cache, const float* x,
                 float* out, int64_t T, int64_t pos0, Workspace& ws) {
  const int64_t H = c.num_attention_heads, G = c.num_key_value_heads, hd = c.head_dim;
  const int64_t L = pos0 + T, per_group = H / G;
  const float* inv_freq = rope_tab.inv_freq.data();
  const float cs = rope_tab.cos_sin_scale;
  const int32_t* pos = positions(ws, T, pos0);
  const auto bias = [](const Vec& b) { return b.empty() ? nullptr : b.data(); };

  float* q = ws.f(kQ, T * H * hd);                    // [T, H, hd]
  float* K = cache.k.data() + pos0 * G * hd;          // new rows of [cap, G, hd]
  float* V = cache.v.data() + pos0 * G * hd;
  matmul(q, x, w.q_proj, T, bias(w.q_bias));
  matmul(K, x, w.k_proj, T, bias(w.k_bias));
  matmul(V, x, w.v_proj, T, bias(w.v_bias));
  rope(q, T, H, H * hd, hd, pos, inv_freq, hd, cs, RopeLayout::HalfSplit);
  rope(K, T, G, G * hd, hd, pos, inv_freq, hd, cs, RopeLayout::HalfSplit);

  const int64_t cap = int64_t(cache.k.size()) / (G * hd);
  float* S = ws.f(kScores, H * T * cap);  // [H·T, L], sized for the capacity
  float* attn = ws.f(kAttnOut, T * H * hd);
  const float scale = c.softmax_scale();
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / per_group;
    gemm_f32(T, L, hd, scale, q + h * hd, H * hd, cache.k.data() + g * hd, G * hd, true, 0.f, S + h * T * L, L);
  }
  causal_softmax(S, H * T, T, L, pos0);
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / per_group;
    gemm_f32(T, hd, L, 1.f, S + h * T * L, L, cache.v.data() + g * hd, G * hd, false, 0.f, attn + h * hd, H * hd);
  }
  matmul(out, attn, w.o_proj, T);
}

}  // namespace seek
