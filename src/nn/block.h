// block.h — one pre-norm transformer block, forward and backward:
//   h = x + attention(norm1(x));  out = h + ffn(norm2(h))
// attention is MLA or GQA, ffn a dense SwiGLU MLP or DeepSeekMoE. The backward calls the pieces in
// exactly the reverse order of the forward (style.md §7).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/gqa.h"
#include "nn/mla.h"
#include "nn/moe.h"

namespace seek {

struct BlockSpec {
  int64_t hidden = 0;  // D
  float eps = 1e-6f;   // the two RMSNorms
  bool mla = true;     // MLA (mla) or GQA (gqa)
  MlaSpec mla_spec;
  GqaSpec gqa_spec;
  bool moe = false;    // DeepSeekMoE (router) or a dense MLP
  RouterSpec router;
};

template <class V>
struct BlockParams {
  typename V::Vector input_layernorm{}, post_attention_layernorm{};  // [D]
  MlaParams<V> mla;
  GqaParams<V> gqa;
  MlpParams<V> mlp;  // dense layers
  MoeParams<V> moe;  // MoE layers
};
using BlockWeights = BlockParams<WeightView>;
using BlockGrads = BlockParams<GradView>;

struct BlockActs {
  std::vector<float> xn1, rstd1;  // [N, D], [N] the attention's normalized input
  std::vector<float> h;           // [N, D] after the attention's residual
  std::vector<float> xn2, rstd2;  // the FFN's normalized input
  MlaActs mla;
  GqaActs gqa;
  MlpActs mlp;
  MoeActs moe;
};

// out [N, D] = block(x [N, D]) over `rows` (out may alias x). acts (training) keeps what the backward
// needs; with a trace in the pass, records "<name>.attn", "<name>.ffn", "<name>" (and the routing).
void block_forward(const Pass& p, const BlockSpec& s, const BlockWeights& w, const float* x, float* out,
                   const Rows& rows, BlockActs* acts, ExpertExecutor& ex, const std::string* name = nullptr);
// d [N, D]: in, ∂L/∂out; out, ∂L/∂x (x: the block's input). g += ∂L/∂parameters. balance_coef ≠ 0 adds
// the MoE balance loss's gradient (B sequences).
void block_backward(const Pass& p, const BlockSpec& s, const BlockWeights& w, BlockGrads& g, const float* x, float* d,
                    const Rows& rows, const BlockActs& acts, ExpertExecutor& ex, double balance_coef, int64_t B);

}  // namespace seek
