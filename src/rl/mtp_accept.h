// mtp_accept.h — how often DeepSeek-V3's multi-token-prediction draft would be accepted (DeepSeek-V3
// §2.2 and §5.4.3: the MTP module reused for speculative decoding, 85–90% acceptance of the second
// token reported there), measured by teacher forcing on texts, without a speculative decoder.
//
// For a text x_0 … x_{T−1}, one forward of the main model gives, at every position p, its normed
// hidden state h_p and its greedy choice g_p = argmax p(x_{p+1} | x_0..x_p). MTP module 0 reads h_t and
// Emb(x_{t+1}) and drafts d_t = argmax of its logits for x_{t+2}. The draft is accepted when
// d_t == g_{t+1}: the token the main model itself picks at t+2 given the true prefix x_0..x_{t+1}.
// Counted for every t with t+2 < T (the drafted position lies inside the text) and t+2 ≥ score_from
// (e.g. the prompt length, to count completion tokens only).
//
// Not here: a speculative decoder; depths beyond the first MTP module.
#pragma once
#include <cstdint>
#include <vector>

#include "model/model.h"

namespace seek::rl {

struct MtpAcceptance {
  int64_t count = 0;       // drafts judged
  int64_t accepted = 0;    // d_t == g_{t+1}
  int64_t mtp_correct = 0; // d_t == x_{t+2} (the draft is the text's token)
  int64_t main_correct = 0;// g_{t+1} == x_{t+2}
  double acceptance() const { return count ? double(accepted) / double(count) : 0.0; }
};

// One judged draft, for tests and for showing examples.
struct MtpDraft {
  int64_t text = 0, position = 0;  // the drafted position t+2 in text `text`
  int32_t draft = 0, main = 0;     // d_t and g_{t+1}
};

// texts: token ids (each at least 3 tokens to count anything); score_from: empty, or one first scored
// position per text. Throws Error when the model has no MTP module or a text is longer than the
// model's max_position_embeddings.
MtpAcceptance mtp_acceptance(Model& model, const std::vector<std::vector<int32_t>>& texts,
                             const std::vector<int64_t>& score_from = {}, std::vector<MtpDraft>* drafts = nullptr);

}  // namespace seek::rl
