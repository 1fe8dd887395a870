// flops.cpp — see flops.h.
#include "train/flops.h"

#include "util/error.h"

namespace seek::train {

namespace {

// Multiply-adds per token of block i's GEMMs (attention projections and MLP).
double block_macs(const Config& c, int64_t i) {
  const double D = double(c.hidden_size), H = double(c.num_attention_heads);
  double attn;
  if (c.is_mla()) {
    const double qk = double(c.qk_head_dim()), C = double(c.kv_lora_rank), R = double(c.qk_rope_head_dim);
    const double q = c.q_lora_rank == 0 ? D * H * qk : D * double(c.q_lora_rank) + double(c.q_lora_rank) * H * qk;
    attn = q + D * (C + R) + C * H * double(c.qk_nope_head_dim + c.v_head_dim) + H * double(c.v_head_dim) * D;
  } else {
    const double G = double(c.num_key_value_heads), hd = double(c.head_dim);
    attn = D * H * hd + 2 * D * G * hd + H * hd * D;
  }
  double mlp;
  if (c.is_moe_layer(i)) {
    const double F = double(c.moe_intermediate_size);
    mlp = D * double(c.n_routed_experts) + double(c.num_experts_per_tok) * 3 * D * F +
          3 * D * F * double(c.n_shared_experts);
  } else {
    mlp = 3 * D * double(c.intermediate_size);
  }
  return attn + mlp;
}

// Q·Kᵀ and P·V FLOPs per token of one block over the causal average context (T+1)/2.
double attention_core_flops(const Config& c, int64_t T) {
  const double qk = c.is_mla() ? double(c.qk_head_dim()) : double(c.head_dim);
  const double v = c.is_mla() ? double(c.v_head_dim) : double(c.head_dim);
  return 2 * double(c.num_attention_heads) * (qk + v) * double(T + 1) / 2;
}

}  // namespace

double forward_flops_per_token(const Config& c, int64_t T) {
  if (T < 1) throw Error("forward_flops_per_token: sequence length " + std::to_string(T) + " must be >= 1");
  const double D = double(c.hidden_size), V = double(c.vocab_size);
  const double head = D * V;
  double main = head;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) main += block_macs(c, i);
  double flops = 2 * main + double(c.num_hidden_layers) * attention_core_flops(c, T);
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    const double macs = 2 * D * D + block_macs(c, c.num_hidden_layers + k) + head;
    flops += double(T - 1) / double(T) * (2 * macs + attention_core_flops(c, T));
  }
  return flops;
}

double train_flops_per_token(const Config& c, int64_t T) { return 3 * forward_flops_per_token(c, T); }

}  // namespace seek::train
