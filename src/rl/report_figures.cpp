// report_figures.cpp — see report_figures.h.
#include "rl/report_figures.h"

#include <nlohmann/json.hpp>

#include "model/kv_cache.h"
#include "util/error.h"

namespace seek::rl {

namespace {

// tests/data/configs/deepseek-v2-lite.json and deepseek-v3.json (HF config.json), verbatim.
const char* kDeepSeekV2Lite = R"json(
{
  "architectures": ["DeepseekV2ForCausalLM"],
  "model_type": "deepseek_v2",
  "vocab_size": 102400,
  "hidden_size": 2048,
  "intermediate_size": 10944,
  "moe_intermediate_size": 1408,
  "num_hidden_layers": 27,
  "num_attention_heads": 16,
  "num_key_value_heads": 16,
  "n_shared_experts": 2,
  "n_routed_experts": 64,
  "routed_scaling_factor": 1.0,
  "kv_lora_rank": 512,
  "q_lora_rank": null,
  "qk_rope_head_dim": 64,
  "v_head_dim": 128,
  "qk_nope_head_dim": 128,
  "topk_method": "greedy",
  "n_group": 1,
  "topk_group": 1,
  "num_experts_per_tok": 6,
  "moe_layer_freq": 1,
  "first_k_dense_replace": 1,
  "norm_topk_prob": false,
  "scoring_func": "softmax",
  "max_position_embeddings": 163840,
  "rms_norm_eps": 1e-06,
  "rope_theta": 10000,
  "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707,
                   "original_max_position_embeddings": 4096, "type": "yarn"},
  "tie_word_embeddings": false
}
)json";

const char* kDeepSeekV3 = R"json(
{
  "architectures": ["DeepseekV3ForCausalLM"],
  "model_type": "deepseek_v3",
  "vocab_size": 129280,
  "hidden_size": 7168,
  "intermediate_size": 18432,
  "moe_intermediate_size": 2048,
  "num_hidden_layers": 61,
  "num_nextn_predict_layers": 1,
  "num_attention_heads": 128,
  "num_key_value_heads": 128,
  "n_shared_experts": 1,
  "n_routed_experts": 256,
  "routed_scaling_factor": 2.5,
  "kv_lora_rank": 512,
  "q_lora_rank": 1536,
  "qk_rope_head_dim": 64,
  "v_head_dim": 128,
  "qk_nope_head_dim": 128,
  "topk_method": "noaux_tc",
  "n_group": 8,
  "topk_group": 4,
  "num_experts_per_tok": 8,
  "moe_layer_freq": 1,
  "first_k_dense_replace": 3,
  "norm_topk_prob": true,
  "scoring_func": "sigmoid",
  "hidden_act": "silu",
  "max_position_embeddings": 163840,
  "rms_norm_eps": 1e-06,
  "rope_theta": 10000,
  "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                   "original_max_position_embeddings": 4096, "type": "yarn"},
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                          "weight_block_size": [128, 128]}
}
)json";

}  // namespace

int64_t kv_values_per_token(const Config& c) {
  return c.num_hidden_layers * KVCache::values_per_token(c, MlaForm::Absorbed);  // GQA ignores the form
}

int64_t kv_values_per_token_mha(const Config& c) {
  if (c.is_mla()) return c.num_hidden_layers * KVCache::values_per_token(c, MlaForm::Naive);  // H·(qk + v)
  return c.num_hidden_layers * 2 * c.num_attention_heads * c.head_dim;
}

std::vector<std::pair<std::string, Config>> reference_kv_configs() {
  return {{"DeepSeek-V2-Lite", parse_config(nlohmann::json::parse(kDeepSeekV2Lite), "DeepSeek-V2-Lite config")},
          {"DeepSeek-V3", parse_config(nlohmann::json::parse(kDeepSeekV3), "DeepSeek-V3 config")}};
}

std::string kv_table_md(const std::vector<std::pair<std::string, Config>>& models) {
  std::string s =
      "| model | layers | cached per token per layer | KV values / token | KiB / token (bf16) | MHA values / token "
      "| MHA KiB / token (bf16) | MHA / cached |\n|---|--:|---|--:|--:|--:|--:|--:|\n";
  for (const auto& [name, c] : models) {
    const int64_t v = kv_values_per_token(c), m = kv_values_per_token_mha(c);
    std::string what =
        c.is_mla() ? strfmt("MLA latent %lld + rope %lld", (long long)c.kv_lora_rank, (long long)c.qk_rope_head_dim)
                   : strfmt("%s 2 × %lld heads × %lld", c.num_key_value_heads == c.num_attention_heads ? "MHA" : "GQA",
                            (long long)c.num_key_value_heads, (long long)c.head_dim);
    s += strfmt("| %s | %lld | %s | %lld | %.2f | %lld | %.2f | %.1f× |\n", name.c_str(), (long long)c.num_hidden_layers,
                what.c_str(), (long long)v, double(v) * 2 / 1024, (long long)m, double(m) * 2 / 1024,
                v ? double(m) / double(v) : 0.0);
  }
  return s;
}

}  // namespace seek::rl
