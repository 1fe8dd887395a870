// Sampler: greedy, seeds, the distribution it draws from (fixed seeds, many draws, against the exact
// probabilities), each truncation (top-k, top-p, min-p), penalties and bias, and parameter errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "engine/sampler.h"
#include "util/error.h"

using namespace seek;

namespace {

// Draws n tokens from fresh copies of `logits` with one sampler per draw sequence (no penalties used).
std::vector<double> frequencies(const SamplingParams& p, const std::vector<float>& logits, int n) {
  Sampler s(p, int64_t(logits.size()));
  std::vector<double> f(logits.size(), 0);
  for (int i = 0; i < n; ++i) {
    std::vector<float> z = logits;
    f[size_t(s.sample(z.data()))] += 1.0 / n;
  }
  return f;
}

std::vector<double> softmax(const std::vector<float>& z, double t) {
  std::vector<double> p(z.size());
  double m = *std::max_element(z.begin(), z.end()), s = 0;
  for (size_t i = 0; i < z.size(); ++i) s += (p[i] = std::exp((z[i] - m) / t));
  for (double& x : p) x /= s;
  return p;
}

// Every frequency within 4 standard errors of its probability (n draws).
void expect_matches(const std::vector<double>& f, const std::vector<double>& p, int n) {
  for (size_t i = 0; i < p.size(); ++i) {
    double se = std::sqrt(std::max(p[i] * (1 - p[i]), 1e-12) / n);
    EXPECT_NEAR(f[i], p[i], 4 * se + 1e-9) << "token " << i;
  }
}

const std::vector<float> kLogits = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, 1.5f};

}  // namespace

TEST(Sampler, GreedyTakesTheLargestLowestId) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p, 4);
  std::vector<float> z = {1.f, 3.f, 3.f, 2.f};
  EXPECT_EQ(s.sample(z.data()), 1);
}

TEST(Sampler, SameSeedSameTokens) {
  SamplingParams p;
  p.seed = 42;
  Sampler a(p, 6), b(p, 6);
  p.seed = 43;
  Sampler c(p, 6);
  int differ = 0;
  for (int i = 0; i < 200; ++i) {
    std::vector<float> z1 = kLogits, z2 = kLogits, z3 = kLogits;
    int32_t x = a.sample(z1.data());
    EXPECT_EQ(x, b.sample(z2.data()));
    differ += x != c.sample(z3.data());
  }
  EXPECT_GT(differ, 20);
}

TEST(Sampler, DrawsFromTheSoftmax) {
  const int n = 40000;
  for (float t : {1.0f, 0.5f, 2.0f}) {
    SamplingParams p;
    p.temperature = t;
    p.seed = 7;
    expect_matches(frequencies(p, kLogits, n), softmax(kLogits, t), n);
  }
}

TEST(Sampler, TopKTopPMinP) {
  const int n = 40000;
  const std::vector<double> full = softmax(kLogits, 1.0);
  // top-k 2: tokens 0 and 5 only, renormalized.
  SamplingParams k;
  k.top_k = 2;
  k.seed = 1;
  std::vector<double> want(6, 0);
  want[0] = full[0] / (full[0] + full[5]);
  want[5] = full[5] / (full[0] + full[5]);
  expect_matches(frequencies(k, kLogits, n), want, n);
  // top-p 0.7: the most likely tokens until their mass reaches 0.7 (0: .42, 5: .25, 1: .15 -> three).
  SamplingParams tp;
  tp.top_p = 0.7f;
  tp.seed = 2;
  double m3 = full[0] + full[5] + full[1];
  ASSERT_LT(full[0] + full[5], 0.7);
  ASSERT_GE(m3, 0.7);
  std::vector<double> want3(6, 0);
  for (int i : {0, 5, 1}) want3[size_t(i)] = full[size_t(i)] / m3;
  expect_matches(frequencies(tp, kLogits, n), want3, n);
  // min-p 0.5: keep tokens with p >= 0.5 × p(0): exp(-0.5) = .61 and exp(-1) = .37 → tokens 0 and 5.
  SamplingParams mp;
  mp.min_p = 0.5f;
  mp.seed = 3;
  expect_matches(frequencies(mp, kLogits, n), want, n);
}

TEST(Sampler, TopPOnALargeVocabulary) {
  // 5000 tokens: one holds half the mass, the rest share it; top-p 0.5 keeps exactly the first.
  std::vector<float> z(5000, 0.f);
  z[1234] = std::log(4999.f);
  SamplingParams p;
  p.top_p = 0.5f;
  Sampler s(p, 5000);
  for (int i = 0; i < 50; ++i) {
    std::vector<float> c = z;
    EXPECT_EQ(s.sample(c.data()), 1234);
  }
  // top-p 0.75 needs the first token plus about half of the rest.
  SamplingParams q;
  q.top_p = 0.75f;
  q.seed = 9;
  Sampler s2(q, 5000);
  int first = 0;
  for (int i = 0; i < 2000; ++i) {
    std::vector<float> c = z;
    first += s2.sample(c.data()) == 1234;
  }
  EXPECT_NEAR(first / 2000.0, 0.5 / 0.75, 0.04);
}

// The top-p set on a large vocabulary, as draft() reports it, is the definition's: the shortest prefix
// of the tokens sorted by probability (ties to the lower id) whose mass reaches top_p. Normal logits, and
// the same rounded to a coarse grid so that many tokens tie, at the cut too.
TEST(Sampler, TopPKeepsTheShortestSortedPrefix) {
  const int64_t V = 20000;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 2.f);
  std::vector<float> continuous(static_cast<size_t>(V)), grid(static_cast<size_t>(V));
  for (int64_t i = 0; i < V; ++i) grid[size_t(i)] = std::round((continuous[size_t(i)] = nd(rng)) * 8) / 8;
  for (const std::vector<float>* logits_at : {&continuous, &grid})
  for (float top_p : {0.05f, 0.3f, 0.5f, 0.9f, 0.99f}) {
    for (float t : {1.0f, 0.6f}) {
      const std::vector<float>& logits = *logits_at;
      SCOPED_TRACE(std::string(logits_at == &grid ? "grid" : "continuous") + " top_p " + std::to_string(top_p) + " temperature " + std::to_string(t));
      SamplingParams p;
      p.top_p = top_p;
      p.temperature = t;
      Sampler s(p, V);
      std::vector<float> z = logits;
      TokenDist q;
      s.draft(z.data(), q, nullptr);
      // The reference: probabilities in double, sorted, the prefix reaching top_p of the total.
      const double zmax = *std::max_element(logits.begin(), logits.end());
      std::vector<std::pair<double, int32_t>> order;
      double total = 0;
      for (int64_t i = 0; i < V; ++i) {
        order.push_back({std::exp((logits[size_t(i)] - zmax) / t), int32_t(i)});
        total += order.back().first;
      }
      std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
      std::vector<int32_t> want;
      double mass = 0;
      for (const auto& [prob, id] : order) {
        want.push_back(id);
        if ((mass += prob) >= top_p * total) break;
      }
      std::vector<int32_t> got = q.ids;
      std::sort(got.begin(), got.end());
      std::sort(want.begin(), want.end());
      EXPECT_EQ(got, want);
      double sum = 0;
      for (float x : q.probs) sum += x;
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
  }
}

// A greedy draft's confidence is its token's softmax probability at temperature 1.
TEST(Sampler, GreedyDraftConfidenceIsTheSoftmaxProbability) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p, int64_t(kLogits.size()));
  std::vector<float> z = kLogits;
  TokenDist q;
  float confidence = -1;
  EXPECT_EQ(s.draft(z.data(), q, &confidence), 0);
  EXPECT_NEAR(confidence, softmax(kLogits, 1.0)[0], 1e-6);
}

TEST(Sampler, PenaltiesAndBias) {
  SamplingParams p;
  p.temperature = 0;
  p.presence_penalty = 1.5f;
  Sampler s(p, 3);
  std::vector<float> z = {1.0f, 0.0f, 0.0f};
  EXPECT_EQ(s.sample(z.data()), 0);
  z = {1.0f, 0.0f, 0.0f};
  EXPECT_EQ(s.sample(z.data()), 1);  // token 0 now 1 - 1.5 = -0.5
  // frequency: each repeat costs more.
  SamplingParams f;
  f.temperature = 0;
  f.frequency_penalty = 0.6f;
  Sampler sf(f, 2);
  std::vector<int32_t> got;
  for (int i = 0; i < 4; ++i) {
    std::vector<float> c = {1.0f, 0.0f};
    got.push_back(sf.sample(c.data()));
  }
  EXPECT_EQ(got, (std::vector<int32_t>{0, 0, 1, 0}));  // 1, 0.4, -0.2 < 0 → 1; then 0 -0.6 vs 0.4 → 0
  // repetition penalty applies to prompt tokens, both signs.
  SamplingParams r;
  r.temperature = 0;
  r.repetition_penalty = 2.0f;
  Sampler sr(r, 3);
  int32_t prompt[] = {0, 2};
  sr.add_prompt(prompt, 2);
  std::vector<float> c = {1.0f, 0.6f, -0.2f};
  EXPECT_EQ(sr.sample(c.data()), 1);
  EXPECT_FLOAT_EQ(c[0], 0.5f);
  EXPECT_FLOAT_EQ(c[2], -0.4f);
  // bias.
  SamplingParams b;
  b.temperature = 0;
  b.logit_bias = {{2, 5.0f}};
  Sampler sb(b, 3);
  std::vector<float> d = {1.0f, 0.0f, 0.0f};
  EXPECT_EQ(sb.sample(d.data()), 2);
}

TEST(Sampler, BadParametersAreNamed) {
  auto refused = [](SamplingParams p, const char* needle) {
    try {
      Sampler s(p, 10);
      ADD_FAILURE() << "accepted " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  SamplingParams p;
  p.temperature = -1;
  refused(p, "temperature");
  p = {};
  p.top_p = 0;
  refused(p, "top_p");
  p = {};
  p.top_k = -2;
  refused(p, "top_k");
  p = {};
  p.logit_bias = {{10, 1.0f}};
  refused(p, "token id 10 is outside the vocabulary");
  p = {};
  p.frequency_penalty = 3;
  refused(p, "frequency_penalty");
}
