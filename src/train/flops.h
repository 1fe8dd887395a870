// flops.h — the arithmetic a training step does per token, for model FLOPs utilization (MFU, PaLM
// appendix B): MFU = tokens/s × train_flops_per_token / the machine's f32 GEMM peak.
//
// Per token of a sequence of T tokens (ids [B, T+1]: T predicted positions):
//   train    = 3 × forward                      (the backward does two GEMMs for each forward one)
//   forward  = 2 × MACs of every GEMM applied to the token + attention core of every block
//   MACs     = Σ main blocks (attention projections + MLP) + lm head (D·V)
//            + (T−1)/T × Σ MTP modules (eh_proj 2D·D + block + lm head D·V)   (MTP predicts T−1 tokens)
//   attention projections, MLA: q_proj D·H·qk (or q_a_proj D·q_lora + q_b_proj q_lora·H·qk)
//                                + kv_a_proj D·(C+R) + kv_b_proj C·H·(nope+v) + o_proj H·v·D
//                          GQA: q D·H·hd + k D·G·hd + v D·G·hd + o H·hd·D
//   MLP, dense: 3·D·F (gate, up, down); MoE: router D·E + k routed experts 3·D·F_moe
//                + shared experts 3·D·(F_moe·n_shared)
//   attention core per block = 2·H·(qk + v)·(T+1)/2 FLOPs: Q·Kᵀ and P·V over the causal average
//                              context (T+1)/2 (GQA: qk = v = head_dim)
// with qk = qk_nope_head_dim + qk_rope_head_dim. Embedding lookups, norms, activations, softmax,
// RoPE, biases and the optimizer count zero: they are not GEMMs. An MTP module's block is an MoE
// block exactly when is_moe_layer(L + k) says so, as in the weights.
//
// Does not: count the recomputation a training implementation might do (MFU counts the model's
// work, not ours), or anything but the naive (non-absorbed) MLA form, which is what training runs.
#pragma once
#include <cstdint>

#include "model/config.h"

namespace seek::train {

// Forward FLOPs per token at sequence length T (formula above).
double forward_flops_per_token(const Config& c, int64_t T);
// 3 × forward_flops_per_token.
double train_flops_per_token(const Config& c, int64_t T);

}  // namespace seek::train
