// weights.h — a model's parameters as typed views into its checkpoint, and the tables that map
// Hugging Face tensor names onto them.
//
// Matrices stay where they are (mmapped, in their stored dtype: F32, BF16, F16, or F8_E4M3 with its
// 128×128 block scales, dequantized inside the matmul kernel — see CONTRIBUTING.md for why). Vectors
// (norm weights, biases, the routing bias) are small and are converted to f32 copies at load.
// One exception: MLA's kv_b_proj is also kept as an f32 copy, because the absorbed form multiplies
// by it from both sides (q_nope · W_UK and ctx · W_UVᵀ) through plain f32 GEMMs; it is ~1% of a
// layer's weights.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"
#include "tensor/kernels.h"

namespace seek {

using Vec = std::vector<float>;

struct MlaWeights {
  Mat q_proj;              // [H·(nope+R), D]            (q_lora_rank == 0)
  Mat q_a_proj;            // [q_lora_rank, D]           (q_lora_rank > 0)
  Vec q_a_layernorm;       // [q_lora_rank]
  Mat q_b_proj;            // [H·(nope+R), q_lora_rank]
  Mat kv_a_proj_with_mqa;  // [C + R, D]
  Vec kv_a_layernorm;      // [C]
  Mat kv_b_proj;           // [H·(nope+v), C]: per head, k_nope rows then v rows
  Vec kv_b_f32;            // the same, f32, for the absorbed form
  Mat o_proj;              // [D, H·v]
};

struct GqaWeights {
  Mat q_proj, k_proj, v_proj, o_proj;  // [H·hd, D], [G·hd, D], [G·hd, D], [D, H·hd]
  Vec q_bias, k_bias, v_bias;          // empty without attention_bias
};

struct MlpWeights {  // SwiGLU: down(silu(gate(x)) * up(x))
  Mat gate_proj, up_proj;  // [F, D]
  Mat down_proj;           // [D, F]
};

struct MoeWeights {
  Mat gate;                       // [E, D] router
  Vec e_score_correction_bias;    // [E] (noaux_tc only) selection bias
  std::vector<MlpWeights> experts;  // E experts of width moe_intermediate_size
  MlpWeights shared;              // width moe_intermediate_size × n_shared_experts; absent when 0
  bool has_shared = false;
};

struct BlockWeights {
  Vec input_layernorm, post_attention_layernorm;  // [D]
  MlaWeights mla;
  GqaWeights gqa;
  bool moe = false;
  MlpWeights mlp;  // dense layers
  MoeWeights experts;
};

// One MTP module (deepseek-facts.md, MTP): layer L + k of the checkpoint.
struct MtpWeights {
  Vec enorm, hnorm;     // [D]
  Mat eh_proj;          // [D, 2D]: embedding half first
  BlockWeights block;
  Vec shared_head_norm; // [D]
};

struct Weights {
  Mat embed_tokens;  // [V, D]
  std::vector<BlockWeights> layers;
  Vec norm;          // [D]
  Mat lm_head;       // [V, D] (= embed_tokens when tied)
  std::vector<MtpWeights> mtp;
};

// Loads every tensor the config calls for, checking name, dtype and shape; throws Error naming the
// tensor and what was expected. The checkpoint must outlive the weights.
Weights load_weights(const Config& cfg, const Checkpoint& ckpt);

// A tensor a config calls for: its HF name and shape. `linear` marks 2-D projection weights, the ones
// FP8 checkpoints store as F8_E4M3 with block scales (embedding, head and router stay high precision).
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool linear = false;
};
// Every tensor the config calls for, in load order (for `seek info` and checkpoint writers).
std::vector<TensorSpec> expected_tensors(const Config& cfg);

}  // namespace seek
