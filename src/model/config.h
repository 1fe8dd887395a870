// config.h — a model's hyperparameters, field for field as in Hugging Face `config.json`.
//
// Four model types: deepseek_v3, deepseek_v2 (MLA + DeepSeekMoE), qwen2 and llama (dense GQA students).
// Every behaviour is an explicit field; nothing is inferred from a size. parse_config validates every
// field it reads and throws seek::Error naming the source, the field and the value it refused.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "model/rope_scaling.h"
#include "nn/moe.h"  // ScoringFunc, TopkMethod

namespace seek {

enum class ModelType { DeepseekV3, DeepseekV2, Qwen2, Llama };

struct Config {
  ModelType model_type = ModelType::DeepseekV3;
  std::string model_type_name;          // as written in config.json

  // Shared by all types.
  int64_t vocab_size = 0;               // V
  int64_t hidden_size = 0;              // D
  int64_t intermediate_size = 0;        // dense SwiGLU width
  int64_t num_hidden_layers = 0;        // L (main blocks, MTP not counted)
  int64_t num_attention_heads = 0;      // H
  int64_t num_key_value_heads = 0;      // G (GQA); = H when absent
  int64_t head_dim = 0;                 // GQA head size; hidden_size / H when absent
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  int64_t max_position_embeddings = 4096;
  bool tie_word_embeddings = false;     // lm head = embed_tokens
  bool attention_bias = false;          // q/k/v bias (always true for qwen2)
  RopeParams rope;                      // rope_theta + rope_scaling, dim filled per model type

  // MLA (deepseek_v2 / v3).
  int64_t q_lora_rank = 0;              // 0 (null in config.json) = plain q_proj, as in V2-Lite
  int64_t kv_lora_rank = 0;             // C
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;         // R
  int64_t v_head_dim = 0;

  // DeepSeekMoE.
  int64_t n_routed_experts = 0;         // E; 0 = no MoE layers
  int64_t n_shared_experts = 0;         // one shared MLP of width moe_intermediate_size × n_shared_experts
  int64_t num_experts_per_tok = 0;      // k
  int64_t n_group = 1;
  int64_t topk_group = 1;
  int64_t moe_intermediate_size = 0;
  int64_t moe_layer_freq = 1;
  int64_t first_k_dense_replace = 0;
  double routed_scaling_factor = 1.0;
  ScoringFunc scoring_func = ScoringFunc::Softmax;
  TopkMethod topk_method = TopkMethod::Greedy;
  bool norm_topk_prob = false;

  // Multi-token prediction (V3): modules stored as layers L .. L + n - 1.
  int64_t num_nextn_predict_layers = 0;

  // FP8 block-scaled weights (quantization_config).
  bool fp8 = false;
  int64_t fp8_block = 128;

  bool is_mla() const { return model_type == ModelType::DeepseekV3 || model_type == ModelType::DeepseekV2; }
  bool is_moe_layer(int64_t i) const {
    return n_routed_experts > 0 && i >= first_k_dense_replace && i % moe_layer_freq == 0;
  }
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  // 1/sqrt(d_qk), times yarn mscale² when YaRN is on (deepseek-facts.md, MLA).
  float softmax_scale() const;
};

// Parses and validates; `source` names the file in error messages.
Config parse_config(const nlohmann::json& j, const std::string& source);
// Reads `path` (a config.json, or a directory that holds one).
Config load_config(const std::string& path);

const char* model_type_name(ModelType t);

}  // namespace seek
