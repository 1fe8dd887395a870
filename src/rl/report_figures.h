// report_figures.h — the KV-cache figures of the report card: values cached per token by a model's
// attention (MLA's absorbed latent, or GQA's keys and values) against ordinary multi-head attention
// with the same heads (DeepSeek-V2 §2.1.4, Table 1: MHA 2·n_h·d_h·l, GQA 2·n_g·d_h·l, MLA (d_c + d_R)·l),
// for the trained model and the real DeepSeek-V2-Lite and DeepSeek-V3 configs.
//
// Values are summed over the main model's num_hidden_layers (the MTP modules are a draft head, not
// part of serving). Bytes assume bf16 (2 bytes a value). The per-layer counts come from
// KVCache::values_per_token, the layout the cache actually allocates.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"

namespace seek::rl {

// MLA: (kv_lora_rank + qk_rope_head_dim)·L; GQA/MHA models: 2·G·head_dim·L.
int64_t kv_values_per_token(const Config& c);
// Multi-head attention with the same heads: MLA models H·(qk_head_dim + v_head_dim)·L (keys with
// their rope part, values, as naive MLA caches them); others 2·H·head_dim·L.
int64_t kv_values_per_token_mha(const Config& c);

// The real configs, compiled in (equal to tests/data/configs/*.json, which a test checks):
// {"DeepSeek-V2-Lite", …}, {"DeepSeek-V3", …}.
std::vector<std::pair<std::string, Config>> reference_kv_configs();

// | model | layers | cached per token per layer | KV values / token | KiB / token (bf16) | MHA values / token |
// MHA KiB / token | MHA / cached |, one row per named config.
std::string kv_table_md(const std::vector<std::pair<std::string, Config>>& models);

}  // namespace seek::rl
