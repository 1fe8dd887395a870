// Speculative decoding with the MTP module (engine/decode.h): greedy output identical token for token
// with and without drafts (both MLA forms, alone, batched, chunked prefill); speculative sampling keeps
// the model's distribution, checked against exact probabilities; the shipped teacher's drafts are
// mostly accepted.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "data/corpus.h"
#include "data/tasks.h"
#include "engine/generator.h"
#include "model/random_checkpoint.h"
#include "test_util.h"
#include "util/error.h"

using namespace seek;

namespace {

std::vector<int32_t> prompt(int64_t n, int32_t salt, int64_t V) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(int32_t((i * 37 + salt * 11 + 5) % V));
  return p;
}

// Pearson's chi-square of counts against probabilities (cells with probability 0 must be empty).
double chi_square(const std::vector<int64_t>& counts, const std::vector<double>& probs, int64_t n) {
  double x2 = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] <= 0) {
      EXPECT_EQ(counts[i], 0) << "outcome " << i << " has probability 0";
      continue;
    }
    const double e = probs[i] * double(n);
    x2 += (double(counts[i]) - e) * (double(counts[i]) - e) / e;
  }
  return x2;
}

// softmax(logits / t) over the top k, as the sampler draws (no penalties).
std::vector<double> top_k_probs(const float* z, int64_t V, float t, int64_t k) {
  std::vector<int32_t> ids(static_cast<size_t>(V));
  for (int64_t v = 0; v < V; ++v) ids[size_t(v)] = int32_t(v);
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) { return z[a] > z[b]; });
  std::vector<double> p(size_t(V), 0.0);
  double sum = 0;
  for (int64_t i = 0; i < k; ++i) sum += std::exp(double(z[ids[size_t(i)]] - z[ids[0]]) / t);
  for (int64_t i = 0; i < k; ++i) p[size_t(ids[size_t(i)])] = std::exp(double(z[ids[size_t(i)]] - z[ids[0]]) / t) / sum;
  return p;
}

// The tiny DeepSeek configs with one MTP module: V3 (q_lora, sigmoid routing) and V2's layout with a
// module added (no q_lora, softmax routing, group-limited experts).
std::vector<std::pair<std::string, nlohmann::json>> mtp_configs() {
  nlohmann::json v2 = test::tiny_config("deepseek_v2");
  v2["num_nextn_predict_layers"] = 1;
  return {{"deepseek_v3", test::tiny_config("deepseek_v3")}, {"deepseek_v2+mtp", v2}};
}

}  // namespace

// verify() returns a token distributed as the model's p whatever the drafter's q, accepting the draft
// with probability Σ min(p, q): q close to p, far from it, putting mass where top-k excludes, and a
// point mass; greedy accepts exactly the argmax.
TEST(Sampler, VerifyKeepsTheModelsDistribution) {
  const int64_t V = 6;
  const std::vector<float> logits = {1.0f, 2.5f, 0.2f, 2.0f, -1.0f, 1.7f};
  struct Case {
    float t;
    int64_t k;
    std::vector<double> q;
  };
  const std::vector<Case> cases = {
      {1.0f, 0, {0.1, 0.35, 0.05, 0.25, 0.05, 0.2}},  // near p
      {0.7f, 0, {0.6, 0.0, 0.3, 0.0, 0.1, 0.0}},      // mostly where p is small
      {1.3f, 3, {0.2, 0.2, 0.2, 0.2, 0.2, 0.0}},      // mass on ids top-k excludes
      {1.0f, 0, {0.0, 0.0, 0.0, 1.0, 0.0, 0.0}},      // one fixed guess
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    SamplingParams sp;
    sp.temperature = cases[c].t;
    sp.top_k = cases[c].k;
    sp.seed = 100 + c;
    Sampler s(sp, V);
    const std::vector<double> p = top_k_probs(logits.data(), V, cases[c].t, cases[c].k ? cases[c].k : V);
    TokenDist q;
    for (int64_t v = 0; v < V; ++v)
      if (cases[c].q[size_t(v)] > 0) {
        q.ids.push_back(int32_t(v));
        q.probs.push_back(float(cases[c].q[size_t(v)]));
      }
    std::mt19937_64 rng(7 + c);
    std::discrete_distribution<int> from_q(cases[c].q.begin(), cases[c].q.end());
    const int64_t n = 40000;
    std::vector<int64_t> counts(size_t(V), 0);
    int64_t accepted = 0;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<float> z = logits;
      const int32_t d = from_q(rng);
      bool ok = false;
      const int32_t tok = s.verify(z.data(), d, q, &ok);
      counts[size_t(tok)] += 1;
      accepted += ok;
      if (ok) {
        EXPECT_EQ(tok, d);
      }
    }
    // 5 degrees of freedom at most: P(χ² > 25) < 2e-4.
    EXPECT_LT(chi_square(counts, p, n), 25.0) << "case " << c;
    double overlap = 0;
    for (int64_t v = 0; v < V; ++v) overlap += std::min(p[size_t(v)], cases[c].q[size_t(v)]);
    const double rate = double(accepted) / double(n), sd = std::sqrt(overlap * (1 - overlap) / double(n));
    EXPECT_NEAR(rate, overlap, 5 * sd + 1e-9) << "case " << c;
  }
  SamplingParams greedy;
  greedy.temperature = 0;
  Sampler g(greedy, V);
  TokenDist q{{3}, {1.f}};
  for (int32_t d : {1, 3}) {
    std::vector<float> z = logits;
    bool ok = true;
    EXPECT_EQ(g.verify(z.data(), d, q, &ok), 1);
    EXPECT_EQ(ok, d == 1);
  }
}

// Greedy decoding with MTP drafts (1 and 3 per step, with and without the confidence gate) gives the
// tokens of decoding without them: for both DeepSeek layouts with MTP, both MLA cache forms, requests
// alone and batched (one of them sharing another's prompt, one with a repetition penalty), and a
// prefill in chunks through the decoding step.
TEST(Decoder, MtpDraftsGiveTheSameGreedyTokens) {
  for (const auto& [name, cfg] : mtp_configs()) {
    test::TempDir dir;
    write_random_checkpoint(dir.path.string(), cfg, {DType::F32, 23, 1});
    auto m = Model::load(dir.path.string());
    const int64_t V = m->config().vocab_size;
    std::vector<GenerationRequest> reqs(4);
    for (size_t i = 0; i < reqs.size(); ++i) {
      reqs[i].prompt = prompt(4 + 5 * int64_t(i), int32_t(i), V);
      reqs[i].sampling.temperature = 0;
      reqs[i].stop.max_new_tokens = 18 + 5 * int64_t(i);
    }
    reqs[2].sampling.repetition_penalty = 1.3f;
    reqs[3].prompt = reqs[1].prompt;  // prefilled once, the cache copied
    for (MlaForm form : {MlaForm::Absorbed, MlaForm::Naive}) {
      Generator g(*m, nullptr, form);
      std::vector<std::vector<int32_t>> want;
      for (const auto& r : reqs) want.push_back(g.run({r})[0].tokens);
      int64_t accepted = 0;
      for (int64_t k : {1, 3}) {
        for (float gate : {0.f, 0.03f}) {  // random weights: the module's guesses have probability ~1/V
          std::vector<GenerationRequest> spec = reqs;
          for (auto& r : spec) {
            r.speculative.draft_tokens = k;
            r.speculative.min_draft_prob = gate;
          }
          const std::string what = name + (form == MlaForm::Naive ? " naive" : " absorbed") +
                                   strfmt(" k=%lld gate=%.1f", (long long)k, double(gate));
          std::vector<GenerationOutput> batch = g.run(spec);
          for (size_t i = 0; i < spec.size(); ++i) {
            EXPECT_EQ(g.run({spec[i]})[0].tokens, want[i]) << what << " request " << i << " alone";
            EXPECT_EQ(batch[i].tokens, want[i]) << what << " request " << i << " batched";
            const DraftStats& st = batch[i].drafts;
            EXPECT_EQ(st.tokens, int64_t(want[i].size())) << what;
            if (gate == 0) {
              EXPECT_GE(st.drafted[0], 1) << what << ": request " << i << " drafted nothing";
            }
            EXPECT_EQ(st.drafted[k], 0) << what << ": more drafts than asked";
            EXPECT_LT(st.steps, int64_t(want[i].size()) + 1);
            accepted += st.total_accepted();
          }
        }
        // Chunked prefill (3 prompt tokens a step) through the decoding step itself, with a second
        // sequence that shares the prompt's prefill (it copies the caches, the module's too).
        GenerationRequest r = reqs[2];
        r.speculative.draft_tokens = k;
        Sequence s(*m, nullptr, r, form), follower(*m, nullptr, r, form);
        follower.share_prefill(&s);
        Decoder d(*m, nullptr);
        std::vector<std::vector<TokenEvent>> events;
        std::vector<Sequence*> both = {&s, &follower};
        while (!both.empty()) {
          d.step(both, 3, events);
          std::erase_if(both, [](Sequence* q) { return q->done(); });
        }
        EXPECT_EQ(s.generated, want[2]) << name << " chunked prefill, k = " << k;
        EXPECT_EQ(follower.generated, want[2]) << name << " chunked prefill, shared, k = " << k;
        EXPECT_GT(follower.draft_stats.drafted[0], 0);
      }
      // Random weights: the module guesses right now and then, so both verification paths run.
      EXPECT_GT(accepted, 0) << name << ": no draft was ever accepted";
    }
  }
}

// Speculative sampling keeps the model's distribution: the second output token, verified from the
// MTP module's draft, against its exact marginal Σ_a p(a) p(b | a) over the whole vocabulary
// (temperature 2, where the random module's guesses overlap the model's enough for both verification
// paths to run), over 12000 seeded samples.
TEST(Decoder, SpeculativeSamplingKeepsTheModelsDistribution) {
  test::TempDir dir;
  write_random_checkpoint(dir.path.string(), test::tiny_config("deepseek_v3"), {DType::F32, 29, 1});
  auto m = Model::load(dir.path.string());
  const int64_t V = m->config().vocab_size;
  const float t = 2.0f;
  const std::vector<int32_t> p0 = prompt(6, 2, V);
  auto next = [&](const std::vector<int32_t>& ids) {
    KVCache cache = m->new_cache(int64_t(ids.size()));
    std::vector<float> logits(static_cast<size_t>(V));
    m->forward(cache, ids.data(), int64_t(ids.size()), logits.data(), false);
    return top_k_probs(logits.data(), V, t, V);
  };
  const std::vector<double> pa = next(p0);
  std::vector<double> pb(static_cast<size_t>(V), 0.0);
  for (int32_t a = 0; a < V; ++a) {
    std::vector<int32_t> ia = p0;
    ia.push_back(a);
    const std::vector<double> given_a = next(ia);
    for (int64_t b = 0; b < V; ++b) pb[size_t(b)] += pa[size_t(a)] * given_a[size_t(b)];
  }
  std::vector<int64_t> counts(static_cast<size_t>(V), 0);
  DraftStats stats;
  const int64_t n = 12000, per_batch = 1000;
  Generator g(*m, nullptr);
  for (int64_t b0 = 0; b0 < n; b0 += per_batch) {
    std::vector<GenerationRequest> reqs(static_cast<size_t>(per_batch));
    for (int64_t i = 0; i < per_batch; ++i) {
      GenerationRequest& r = reqs[size_t(i)];
      r.prompt = p0;  // one prefill, shared
      r.sampling.temperature = t;
      r.sampling.seed = uint64_t(1000 + b0 + i);
      r.stop.max_new_tokens = 3;
      r.speculative.draft_tokens = 2;
    }
    for (const GenerationOutput& o : g.run(reqs)) {
      ASSERT_EQ(o.tokens.size(), 3u);
      counts[size_t(o.tokens[1])] += 1;
      stats.add(o.drafts);
    }
  }
  // 96 degrees of freedom: P(χ² > 160) < 1e-4.
  EXPECT_LT(chi_square(counts, pb, n), 160.0);
  // Every second token was drafted, and both verification paths ran.
  EXPECT_EQ(stats.drafted[0], n);
  EXPECT_GT(stats.accepted[0], n / 20);
  EXPECT_LT(stats.accepted[0], n - n / 20);
}

// The shipped teacher (models/seek-tiny, one MTP module trained with it): greedy answers with two
// drafts a step equal those without, most first drafts are accepted, and a step gives well over one
// token.
TEST(Decoder, ShippedTeacherAcceptsMostMtpDrafts) {
  const std::string dir = std::string(SEEK_TEST_DATA) + "/../models/seek-tiny";
  auto m = Model::load(dir);
  const Tokenizer tok = Tokenizer::load(dir);
  std::vector<GenerationRequest> reqs;
  for (uint64_t i = 0; i < 6; ++i) {
    GenerationRequest r;
    r.prompt = tok.encode(prompt_text(make_problem(TaskKind::Arithmetic, 2, 77, i)));
    r.sampling.temperature = 0;
    r.stop.max_new_tokens = 48;
    reqs.push_back(r);
  }
  Generator g(*m, &tok);
  const std::vector<GenerationOutput> plain = g.run(reqs);
  for (auto& r : reqs) r.speculative.draft_tokens = 2;
  const std::vector<GenerationOutput> spec = g.run(reqs);
  DraftStats st;
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(spec[i].tokens, plain[i].tokens) << "request " << i;
    EXPECT_EQ(spec[i].text, plain[i].text) << "request " << i;
    st.add(spec[i].drafts);
  }
  ASSERT_GT(st.drafted[0], 0);
  const double first = double(st.accepted[0]) / double(st.drafted[0]);
  const double per_step = double(st.tokens) / double(st.steps);
  EXPECT_GT(first, 0.7) << "first-draft acceptance";
  EXPECT_GT(per_step, 1.5) << "tokens per step";
}
