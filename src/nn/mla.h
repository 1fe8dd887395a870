// mla.h — Multi-head Latent Attention (deepseek-facts.md, MLA; DeepSeek-V2 §2.1), forward and backward.
//
// Per row: the query q = q_b(norm(q_a(x))) (or q_proj(x)), split per head into q_nope and q_pe, rope on
// q_pe; the compressed kv_a(x) = [c_kv ; k_pe], c_kv normalized, k_pe roped (one rope key for all
// heads); kv_b(c_kv) gives every head's k_nope and v. The first projection of the query and kv_a read
// the same input and run as one GEMM.
//
// Forward, three ways to one result (tests assert equal logits):
//   naive     per-head keys [k_nope ; k_pe] and values, causal attention per head ("MHA" form). With
//             no cache (training) the keys are the sequence's own rows and the softmax is kept;
//             with a naive cache the new rows' keys and values are stored and attention reads the cache.
//   absorbed  (inference) the cache holds only the latent [c_kv ; k_pe] (C + R per token). For few new
//             tokens (decode) W_UK folds into the query and attention is MQA over the latent rows with
//             key dim C + R and value dim C, then W_UV per head; for T ≥ 64 new tokens (prefill) the
//             context's k_nope and v are decompressed once and attention runs per head, which costs 160
//             instead of 544 multiply-adds per head and query-key pair for V3's dimensions — DeepSeek's
//             own prefill/decode split.
// Backward: the naive form (what DeepSeek trains; absorption is an inference rewrite of the same
// function), calling the forward's steps in reverse.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "nn/attention.h"

namespace seek {

struct MlaSpec {
  int64_t hidden = 0;             // D
  int64_t heads = 0;              // H
  int64_t q_lora_rank = 0;        // 0: plain q_proj (V2-Lite)
  int64_t kv_lora_rank = 0;       // C
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;   // R
  int64_t v_head_dim = 0;
  float eps = 1e-6f;              // the two inner RMSNorms
  float softmax_scale = 1.f;      // 1/sqrt(nope + R), times YaRN's mscale²
  std::shared_ptr<const Rope> rope;  // shared by every block of a model
  int64_t qk() const { return qk_nope_head_dim + qk_rope_head_dim; }
};

template <class V>
struct MlaParams {
  typename V::Matrix q_proj{};              // [H·qk, D]        (q_lora_rank == 0)
  typename V::Matrix q_a_proj{};            // [q_lora_rank, D] (q_lora_rank > 0)
  typename V::Vector q_a_layernorm{};       // [q_lora_rank]
  typename V::Matrix q_b_proj{};            // [H·qk, q_lora_rank]
  typename V::Matrix kv_a_proj_with_mqa{};  // [C + R, D]
  typename V::Vector kv_a_layernorm{};      // [C]
  typename V::Matrix kv_b_proj{};           // [H·(nope + v), C]: per head, k_nope rows then v rows
  typename V::Matrix o_proj{};              // [D, H·v]
  // kv_b_proj in f32 [H·(nope + v), C], for the absorbed form's f32 GEMMs: decompressing a long
  // segment's cache, and W_UV where kv_b_proj has 2-D block scales (FP8); a decode step reads W_UK and
  // W_UV from kv_b_proj itself, or from k_b and v_b below (mla.cpp). Weights only: the matrix itself when
  // it is f32, else a copy the model keeps (~1% of a layer).
  typename V::Vector kv_b_f32{};
  // GGUF files in mainline llama.cpp's split layout also keep their attn_k_b as k_b [H·C, nope] (per head
  // W_UK_hᵀ) and attn_v_b as v_b [H·v, C] (per head W_UV_h), in their stored formats: a decode step reads
  // those rather than the f32 kv_b_proj rebuilt from them. Empty for every other source.
  typename V::Matrix k_b{};
  typename V::Matrix v_b{};
};
using MlaWeights = MlaParams<WeightView>;
using MlaGrads = MlaParams<GradView>;

// What the naive training forward keeps for the backward (B sequences of S rows: N = B·S).
struct MlaActs {
  std::vector<float> a;        // [N, ld_a] the first projections: [q_a or q ; c_kv ; k_pe] (k_pe roped)
  std::vector<float> qa_n;     // [N, q_lora_rank] normalized q_a
  std::vector<float> qa_rstd;  // [N]
  std::vector<float> q;        // [N, H·qk] roped (q_lora_rank > 0; else q lives in `a`)
  std::vector<float> ckv_n;    // [N, C] normalized c_kv
  std::vector<float> ckv_rstd; // [N]
  std::vector<float> kv;       // [N, H·(nope + v)] decompressed
  std::vector<float> K;        // [N, H, qk] per-head keys [k_nope ; k_pe]
  std::vector<float> probs;    // [B, H, S, S]
  std::vector<float> attn;     // [N, H·v] before o_proj
};

// out [N, D] = MLA(x [N, D]) over `rows`; acts (training, naive form, no caches) keeps the activations.
void mla_forward(const Pass& p, const MlaSpec& s, const MlaWeights& w, const float* x, float* out, const Rows& rows,
                 MlaActs* acts);
// dx [N, D] = ∂L/∂x (written) and g += ∂L/∂parameters, given dout [N, D]; the naive training form only.
void mla_backward(const Pass& p, const MlaSpec& s, const MlaWeights& w, MlaGrads& g, const float* x, const float* dout,
                  float* dx, const Rows& rows, const MlaActs& acts);

}  // namespace seek
