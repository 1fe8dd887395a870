// attention.h — what MLA and GQA share: the rotary table, the KV cache of one layer, the rows of a pass
// (which sequence each belongs to, at which position), and the causal attention core, forward and
// backward.
//
// The core computes, per sequence and head, out = softmax(scale · (q·kᵀ [+ q2·k2ᵀ]), causal) · v in causal
// query blocks of 64 rows, so keys after a block's last query are never scored. Each operand is a
// Heads view (a base pointer and strides), so the same core reads a KV cache, freshly projected rows, a
// decompressed latent, or MLA's rope part shared by every head (head stride 0). Training keeps the
// softmax of every (sequence, head) for the backward.
#pragma once
#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "nn/pass.h"
#include "tensor/kernels.h"

namespace seek {

// Rotary tables a model computes once at load (model/rope_scaling.h): frequencies after scaling and
// YaRN's cos/sin factor, which pairs rotate, and the cos/sin of the first positions (rope_table), so
// that the passes do not compute them again and again.
struct Rope {
  std::vector<float> inv_freq;  // [R/2]
  float cos_sin_scale = 1.f;
  RopeLayout layout = RopeLayout::Interleaved;
  std::vector<float> table;     // [rows, R]: cos then sin of positions 0 .. rows − 1
  int64_t dim() const { return 2 * int64_t(inv_freq.size()); }
  // Fills the table for positions 0 .. rows − 1.
  void tabulate(int64_t rows) {
    table.resize(size_t(rows * dim()));
    rope_table(table.data(), rows, inv_freq.data(), dim(), cos_sin_scale);
  }
  // Rotates the first R values of n_heads vectors per token (see rope() in tensor/kernels.h).
  void apply(float* x, int64_t T, int64_t n_heads, int64_t token_stride, int64_t head_stride, const int32_t* pos,
             bool inverse = false) const {
    rope(x, T, n_heads, token_stride, head_stride, pos, inv_freq.data(), dim(), cos_sin_scale, layout, inverse,
         table.data(), int64_t(table.size()) / std::max<int64_t>(dim(), 1));
  }
};

// MLA's two cache layouts (kv_cache.h); GQA has one.
enum class MlaForm { Naive, Absorbed };
const char* mla_form_name(MlaForm f);

// One layer's cache of one sequence, allocated once at its capacity (model/kv_cache.h has the layouts).
struct LayerCache {
  std::vector<float> k, v;
};

// The tokens of one sequence in a pass: rows row0 .. row0 + T - 1 of the activations, at positions
// pos0 .. pos0 + T - 1. cache: this layer's cache of the sequence, which the pass appends to and attends
// over; null when the sequence's keys are its own rows (training: pos0 = 0, nothing cached).
struct Segment {
  LayerCache* cache = nullptr;
  int64_t row0 = 0;
  int64_t T = 0;
  int64_t pos0 = 0;
};

// The rows of a pass: N rows at positions pos[N], in segments (one per sequence).
struct Rows {
  int64_t n = 0;
  const int32_t* pos = nullptr;
  const std::vector<Segment>* segs = nullptr;
  MlaForm form = MlaForm::Naive;  // MLA's cache layout (every segment's cache has it)
};

// Where head h's vectors live: row t of head h is at base + (h / group) * head + t * row.
struct Heads {
  const float* base = nullptr;
  int64_t head = 0;   // stride between heads (0: shared by all heads)
  int64_t row = 0;    // stride between tokens
  int64_t dim = 0;    // vector length
  int64_t group = 1;  // query heads per kv head (GQA)
  const float* at(int64_t h) const { return base + (h / group) * head; }
};
// A gradient destination laid out as a Heads view (written with +=).
struct GradHeads {
  float* base = nullptr;
  int64_t head = 0, row = 0, group = 1;
  float* at(int64_t h) const { return base + (h / group) * head; }
};

// One sequence's causal attention: T queries at positions pos0 .. over keys 0 .. pos0 + T - 1.
struct AttentionJob {
  int64_t T = 0, pos0 = 0;
  Heads q, k, v;
  Heads q2, k2;              // a second score term (q2.base null when there is none)
  float* out = nullptr;      // [T, H·v.dim], rows ldo apart; head h at columns h·v.dim
  int64_t ldo = 0;
  float* probs = nullptr;    // training: [H, T, T] softmax kept (pos0 = 0); null: scratch only
};
void causal_attention(const Pass& p, std::span<const AttentionJob> jobs, int64_t H, float scale);

// The backward of one training job (pos0 = 0, one score term): dq, dk, dv = the gradients through
// out = softmax(scale · q·kᵀ) · v (written: their first GEMM overwrites), given dout [T, H·v] (rows lddo
// apart) and the kept probabilities. Heads of a group share their k and v gradients and run in one task.
struct AttentionGradJob {
  int64_t T = 0;
  Heads q, k, v;
  GradHeads dq, dk, dv;
  const float* dout = nullptr;
  int64_t lddo = 0;
  const float* probs = nullptr;  // [H, T, T]
};
void causal_attention_backward(const Pass& p, std::span<const AttentionGradJob> jobs, int64_t H, int64_t G,
                               float scale);

}  // namespace seek
