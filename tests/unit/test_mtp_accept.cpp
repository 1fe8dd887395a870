// test_mtp_accept.cpp — rl/mtp_accept against a direct slow computation on a random tiny V3 model: the
// main model's greedy choice at t+2 from a fresh forward over the prefix x_0..x_{t+1}, and the MTP
// draft from forward_mtp run one position at a time over x_0..x_t.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "model/model.h"
#include "rl/mtp_accept.h"
#include "test_util.h"
#include "util/error.h"

using namespace seek;
using namespace seek::rl;

namespace {

int32_t argmax_of(const std::vector<float>& x, int64_t off, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[size_t(off + i)] > x[size_t(off + best)]) best = i;
  return int32_t(best);
}

// The slow reference: every prediction from its own prefix, the MTP module step by step.
MtpAcceptance slow_acceptance(Model& m, const std::vector<std::vector<int32_t>>& texts, const std::vector<int64_t>& from,
                              std::vector<MtpDraft>& drafts) {
  const int64_t V = m.config().vocab_size, D = m.config().hidden_size;
  MtpAcceptance r;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int32_t>& x = texts[i];
    const int64_t T = int64_t(x.size());
    for (int64_t t = 0; t + 2 < T; ++t) {
      if (t + 2 < from[i]) continue;
      // Main model's greedy token at t+2 given x_0..x_{t+1}.
      std::vector<float> logits(size_t((t + 2) * V));
      KVCache c1 = m.new_cache(t + 2);
      m.forward(c1, x.data(), t + 2, logits.data());
      const int32_t main = argmax_of(logits, (t + 1) * V, V);
      // Hidden states of x_0..x_t, then the MTP module position by position.
      std::vector<float> lg(size_t((t + 1) * V)), h(size_t((t + 1) * D)), ml(static_cast<size_t>(V));
      KVCache c2 = m.new_cache(t + 1);
      m.forward(c2, x.data(), t + 1, lg.data(), true, h.data());
      KVCache mc = m.new_mtp_cache(t + 1);
      for (int64_t s = 0; s <= t; ++s) m.forward_mtp(0, mc, h.data() + s * D, &x[size_t(s + 1)], 1, ml.data());
      const int32_t draft = argmax_of(ml, 0, V);
      r.count++;
      r.accepted += draft == main;
      r.mtp_correct += draft == x[size_t(t + 2)];
      r.main_correct += main == x[size_t(t + 2)];
      drafts.push_back({int64_t(i), t + 2, draft, main});
    }
  }
  return r;
}

}  // namespace

TEST(MtpAcceptance, EqualsTheSlowComputation) {
  test::TempDir dir;
  nlohmann::json cfg = test::tiny_config("deepseek_v3");
  write_random_checkpoint(dir / "m", cfg, {DType::F32, 11, 1});
  auto m = Model::load(dir / "m");
  const int64_t V = m->config().vocab_size;
  // Texts with repeats so that the random model's greedy choices sometimes agree with the draft.
  std::vector<std::vector<int32_t>> texts;
  for (int n : {2, 3, 9, 14}) {
    std::vector<int32_t> x;
    for (int i = 0; i < n; ++i) x.push_back(int32_t((i * 7 + n) % (i % 3 == 0 ? 5 : int(V))));
    texts.push_back(x);
  }
  std::vector<int64_t> from = {0, 0, 0, 0};
  std::vector<MtpDraft> fast_drafts, slow_drafts;
  MtpAcceptance fast = mtp_acceptance(*m, texts, from, &fast_drafts);
  MtpAcceptance slow = slow_acceptance(*m, texts, from, slow_drafts);
  // Token by token: the same drafts and the same main-model choices (a random model's drafts are
  // rarely accepted, so the counts alone would prove little).
  ASSERT_EQ(fast_drafts.size(), slow_drafts.size());
  std::set<int32_t> distinct;
  for (size_t i = 0; i < fast_drafts.size(); ++i) {
    EXPECT_EQ(fast_drafts[i].text, slow_drafts[i].text) << i;
    EXPECT_EQ(fast_drafts[i].position, slow_drafts[i].position) << i;
    EXPECT_EQ(fast_drafts[i].draft, slow_drafts[i].draft) << i;
    EXPECT_EQ(fast_drafts[i].main, slow_drafts[i].main) << i;
    distinct.insert(fast_drafts[i].draft);
  }
  EXPECT_GT(distinct.size(), 2u);  // the drafts do depend on the position
  EXPECT_EQ(fast.count, 0 + 1 + 7 + 12);
  EXPECT_EQ(fast.count, slow.count);
  EXPECT_EQ(fast.accepted, slow.accepted);
  EXPECT_EQ(fast.mtp_correct, slow.mtp_correct);
  EXPECT_EQ(fast.main_correct, slow.main_correct);
  EXPECT_EQ(mtp_acceptance(*m, texts).count, fast.count);  // no score_from = from 0

  from = {0, 5, 5, 9};  // only drafted positions ≥ from
  MtpAcceptance part = mtp_acceptance(*m, texts, from);
  std::vector<MtpDraft> unused;
  MtpAcceptance part_slow = slow_acceptance(*m, texts, from, unused);
  EXPECT_EQ(part.count, 0 + 0 + 4 + 5);
  EXPECT_EQ(part.accepted, part_slow.accepted);
  EXPECT_EQ(part.mtp_correct, part_slow.mtp_correct);
  std::printf("random tiny V3: acceptance %.3f over %lld drafts\n", fast.acceptance(), (long long)fast.count);

  EXPECT_THROW(mtp_acceptance(*m, texts, {0, 1}), Error);  // score_from of the wrong length
}

TEST(MtpAcceptance, ModelWithoutMtpIsAnError) {
  test::TempDir dir;
  write_random_checkpoint(dir / "m", test::tiny_config("deepseek_v2"), {DType::F32, 1, 1});
  auto m = Model::load(dir / "m");
  try {
    mtp_acceptance(*m, {{1, 2, 3, 4}});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no MTP module"), std::string::npos) << e.what();
  }
}
