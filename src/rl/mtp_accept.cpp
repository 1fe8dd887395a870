// mtp_accept.cpp — see mtp_accept.h.
#include "rl/mtp_accept.h"

#include <algorithm>

#include "tensor/kernels.h"
#include "util/error.h"

namespace seek::rl {

MtpAcceptance mtp_acceptance(Model& model, const std::vector<std::vector<int32_t>>& texts,
                             const std::vector<int64_t>& score_from, std::vector<MtpDraft>* drafts) {
  const Config& c = model.config();
  if (c.num_nextn_predict_layers < 1)
    throw Error("mtp acceptance: the model has no MTP module (num_nextn_predict_layers = 0)");
  if (!score_from.empty() && score_from.size() != texts.size())
    throw Error(strfmt("mtp acceptance: %zu score_from entries for %zu texts", score_from.size(), texts.size()));
  const int64_t V = c.vocab_size, D = c.hidden_size;
  MtpAcceptance r;
  std::vector<float> logits, hidden, mtp_logits;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int32_t>& x = texts[i];
    const int64_t T = int64_t(x.size());
    if (T < 3) continue;
    if (T > c.max_position_embeddings)
      throw Error(strfmt("mtp acceptance: text %zu has %lld tokens, more than max_position_embeddings = %lld", i,
                         (long long)T, (long long)c.max_position_embeddings));
    logits.resize(size_t(T * V));
    hidden.resize(size_t(T * D));
    mtp_logits.resize(size_t((T - 1) * V));
    KVCache cache = model.new_cache(T);
    model.forward(cache, x.data(), T, logits.data(), true, hidden.data());  // logits [T, V], hidden [T, D]
    KVCache mtp_cache = model.new_mtp_cache(T - 1);
    model.forward_mtp(0, mtp_cache, hidden.data(), x.data() + 1, T - 1, mtp_logits.data());  // [T−1, V]
    const int64_t from = score_from.empty() ? 0 : score_from[i];
    for (int64_t t = std::max<int64_t>(0, from - 2); t + 2 < T; ++t) {
      const int32_t draft = int32_t(argmax(&mtp_logits[size_t(t * V)], V));
      const int32_t main = int32_t(argmax(&logits[size_t((t + 1) * V)], V));
      r.count += 1;
      r.accepted += draft == main;
      r.mtp_correct += draft == x[size_t(t + 2)];
      r.main_correct += main == x[size_t(t + 2)];
      if (drafts) drafts->push_back({int64_t(i), t + 2, draft, main});
    }
  }
  return r;
}

}  // namespace seek::rl
