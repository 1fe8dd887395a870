// spec.cpp — see spec.h.
#include "model/spec.h"

#include <algorithm>

namespace seek {

namespace {
// Positions whose rotary cos/sin are tabulated at load: training rows and most contexts; 1 MiB for R = 64.
constexpr int64_t kRopeTablePositions = 4096;
}  // namespace

Rope rope_table(const Config& c) {
  Rope r;
  r.inv_freq = rope_inv_freq(c.rope);
  r.cos_sin_scale = rope_cos_sin_scale(c.rope);
  r.layout = c.is_mla() ? RopeLayout::Interleaved : RopeLayout::HalfSplit;
  r.tabulate(std::min<int64_t>(c.max_position_embeddings, kRopeTablePositions));
  return r;
}

BlockSpec block_spec(const Config& c, int64_t layer, std::shared_ptr<const Rope> rope) {
  if (!rope) rope = std::make_shared<const Rope>(rope_table(c));
  BlockSpec s;
  s.hidden = c.hidden_size;
  s.eps = float(c.rms_norm_eps);
  s.mla = c.is_mla();
  if (s.mla) {
    MlaSpec& m = s.mla_spec;
    m.hidden = c.hidden_size;
    m.heads = c.num_attention_heads;
    m.q_lora_rank = c.q_lora_rank;
    m.kv_lora_rank = c.kv_lora_rank;
    m.qk_nope_head_dim = c.qk_nope_head_dim;
    m.qk_rope_head_dim = c.qk_rope_head_dim;
    m.v_head_dim = c.v_head_dim;
    m.eps = float(c.rms_norm_eps);
    m.softmax_scale = c.softmax_scale();
    m.rope = rope;
  } else {
    GqaSpec& g = s.gqa_spec;
    g.hidden = c.hidden_size;
    g.heads = c.num_attention_heads;
    g.kv_heads = c.num_key_value_heads;
    g.head_dim = c.head_dim;
    g.softmax_scale = c.softmax_scale();
    g.rope = rope;
  }
  s.moe = c.is_moe_layer(layer);
  if (s.moe) {
    RouterSpec& r = s.router;
    r.experts = c.n_routed_experts;
    r.experts_per_token = c.num_experts_per_tok;
    r.n_group = c.n_group;
    r.topk_group = c.topk_group;
    r.scoring = c.scoring_func;
    r.method = c.topk_method;
    r.norm_topk_prob = c.norm_topk_prob;
    r.routed_scaling_factor = float(c.routed_scaling_factor);
  }
  return s;
}

TransformerSpec transformer_spec(const Config& c) {
  TransformerSpec t;
  t.vocab = c.vocab_size;
  t.hidden = c.hidden_size;
  t.eps = float(c.rms_norm_eps);
  const auto rope = std::make_shared<const Rope>(rope_table(c));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) t.layers.push_back(block_spec(c, i, rope));
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) t.mtp.push_back(block_spec(c, c.num_hidden_layers + k, rope));
  return t;
}

}  // namespace seek
