// mtp.h — a multi-token prediction module (DeepSeek-V3 §2.2), forward and backward. Module k at
// position i combines the previous depth's hidden state h_i with the embedding e of token t_{i+k+1}:
//   x = eh_proj([enorm(e) ; hnorm(h)])   (the released weights put the embedding half first)
// then one transformer block. Its own final norm, shared_head.norm, and the main model's output head
// turn the block's output into logits for t_{i+k+2}: that is the head module (nn/head.h) with this
// module's norm. The embedding and the head are the main model's; the caller looks up e and applies the
// head.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/block.h"

namespace seek {

template <class V>
struct MtpParams {
  typename V::Vector enorm{}, hnorm{};    // [D]
  typename V::Matrix eh_proj{};           // [D, 2D]: embedding half first
  BlockParams<V> block;
  typename V::Vector shared_head_norm{};  // [D]
};
using MtpWeights = MtpParams<WeightView>;
using MtpGrads = MtpParams<GradView>;

struct MtpActs {
  std::vector<float> cat;             // [M, 2D] enorm(e) | hnorm(h)
  std::vector<float> e_rstd, h_rstd;  // [M]
  std::vector<float> x;               // [M, D] eh_proj output, the block's input
  BlockActs block;
  std::vector<float> out;             // [M, D] the block's output
};

// out [M, D] = block(eh_proj([enorm(e) ; hnorm(h)])) for e, h [M, D] over `rows`. With a trace:
// "<name>.eh", the block's, and "<name>.hidden" (its output).
void mtp_forward(const Pass& p, const BlockSpec& s, const MtpWeights& w, const float* e, const float* h, float* out,
                 const Rows& rows, MtpActs* acts, ExpertExecutor& ex, const std::string* name = nullptr);
// de, dh [M, D] (written) and g from dout [M, D] (which the backward overwrites).
void mtp_backward(const Pass& p, const BlockSpec& s, const MtpWeights& w, MtpGrads& g, const float* e, const float* h,
                  float* dout, float* de, float* dh, const Rows& rows, const MtpActs& acts, ExpertExecutor& ex);

}  // namespace seek
