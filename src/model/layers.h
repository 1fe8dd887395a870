// layers.h — the pieces of a transformer block, as free functions over f32 activations.
// Each takes the new tokens x [T, D] at positions pos0 .. pos0+T-1 and writes its output to out [T, D].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/kv_cache.h"
#include "model/weights.h"
#include "model/workspace.h"

namespace seek {

struct Trace;

// Rotary tables a model computes once at load: frequencies after scaling and YaRN's cos/sin factor.
struct Rope {
  std::vector<float> inv_freq;  // [R/2]
  float cos_sin_scale = 1.f;
  explicit Rope(const RopeParams& p) : inv_freq(rope_inv_freq(p)), cos_sin_scale(rope_cos_sin_scale(p)) {}
  Rope() = default;
};

// The new tokens of one sequence inside a batch: rows row0 .. row0+T-1 of the activations, at
// positions pos0 .. pos0+T-1 of `cache`. A single-sequence forward is one segment.
struct Segment {
  LayerCache* cache = nullptr;
  int64_t row0 = 0;
  int64_t T = 0;
  int64_t pos0 = 0;
};

// Multi-head Latent Attention (deepseek-facts.md, MLA; DeepSeek-V2 §2.1) for all segments: projections
// run once over every row, attention per segment against its own cache. The cache layout decides the
// form: naive (per-head K/V) or absorbed (latent c_kv + k_pe, W_UK folded into the query and W_UV
// applied after the softmax). x, out: [rows, D]; pos [rows] holds each row's position.
void mla_forward(const Config& c, const Rope& rope, const MlaWeights& w, const std::vector<Segment>& segs,
                 MlaForm form, const float* x, float* out, int64_t rows, const int32_t* pos, Workspace& ws);

// Grouped-query attention with optional q/k/v bias (Qwen2, Llama), same conventions.
void gqa_forward(const Config& c, const Rope& rope, const GqaWeights& w, const std::vector<Segment>& segs,
                 const float* x, float* out, int64_t rows, const int32_t* pos, Workspace& ws);

// SwiGLU MLP: out = down(silu(gate(x)) * up(x)); x [T, D] -> out [T, D].
void mlp_forward(const MlpWeights& w, const float* x, float* out, int64_t T, int64_t D, Workspace& ws);

// DeepSeekMoE routing for T tokens (deepseek-facts.md, DeepSeekMoE routing): from router logits [T, E]
// to the chosen experts idx [T, k] (descending selection score; ties to the lower index) and their
// gate weights w [T, k]. `bias` is e_score_correction_bias (or nullptr): it changes the selection only.
void moe_route(const Config& c, const float* router_logits, const float* bias, int64_t T, int32_t* idx,
               float* weight, Workspace& ws);

// Shared experts + Σ g_i expert_i(x), the tokens grouped per expert so each expert runs one matmul
// over all its tokens. Writes the routing to idx/weight [T, k] when they are not null.
void moe_forward(const Config& c, const MoeWeights& w, const float* x, float* out, int64_t T, Workspace& ws,
                 int32_t* idx_out = nullptr, float* weight_out = nullptr);

// Softmax over each causal row of scores [rows, L] where row r belongs to query t = r % T at position
// pos0 + t: keys after it get probability 0.
void causal_softmax(float* scores, int64_t rows, int64_t T, int64_t L, int64_t pos0);

}  // namespace seek
