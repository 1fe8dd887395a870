// pass@k (rl/passk.h): the stable product form equals brute-force enumeration of every k-subset of the
// n samples on small n, pass@1 = c/n, edge cases, and the mean over problems.
#include <gtest/gtest.h>

#include <cmath>

#include "rl/passk.h"

using namespace seek;
using namespace seek::rl;

namespace {

// Share of the k-subsets of n samples (the first c correct) that contain a correct sample.
double brute_force(int n, int c, int k) {
  int64_t hit = 0, total = 0;
  for (uint32_t s = 0; s < (1u << n); ++s) {
    if (__builtin_popcount(s) != k) continue;
    ++total;
    hit += (s & ((1u << c) - 1)) != 0;
  }
  return double(hit) / double(total);
}

}  // namespace

TEST(PassK, MatchesBruteForceEnumeration) {
  int checked = 0;
  for (int n = 1; n <= 12; ++n)
    for (int c = 0; c <= n; ++c)
      for (int k = 1; k <= n; ++k) {
        EXPECT_NEAR(pass_at_k(n, c, k), brute_force(n, c, k), 1e-12) << "n " << n << " c " << c << " k " << k;
        ++checked;
      }
  EXPECT_GT(checked, 500);
}

TEST(PassK, PassAtOneIsTheCorrectShare) {
  for (int n = 1; n <= 64; n += 7)
    for (int c = 0; c <= n; ++c) EXPECT_NEAR(pass_at_k(n, c, 1), double(c) / n, 1e-14);
}

TEST(PassK, EdgesAndLargeN) {
  EXPECT_EQ(pass_at_k(16, 0, 8), 0.0);
  EXPECT_EQ(pass_at_k(16, 16, 1), 1.0);
  EXPECT_EQ(pass_at_k(16, 9, 8), 1.0);  // n − c < k: every subset holds a correct one
  // Large n stays finite and in [0, 1] where C(n, k) overflows a double.
  const double p = pass_at_k(100000, 3, 5000);
  EXPECT_TRUE(std::isfinite(p));
  EXPECT_NEAR(p, 1 - std::pow(1 - 5000.0 / 100000, 3), 1e-5);
  EXPECT_THROW(pass_at_k(4, 1, 5), Error);
  EXPECT_THROW(pass_at_k(4, 5, 1), Error);
  EXPECT_THROW(pass_at_k(4, -1, 1), Error);
  EXPECT_THROW(pass_at_k(4, 1, 0), Error);
}

TEST(PassK, MeanOverProblems) {
  EXPECT_EQ(mean_pass_at_k({}, 1), 0.0);
  const std::vector<PassCounts> probs = {{4, 0}, {4, 1}, {4, 4}};
  EXPECT_NEAR(mean_pass_at_k(probs, 1), (0 + 0.25 + 1) / 3, 1e-15);
  EXPECT_NEAR(mean_pass_at_k(probs, 2), (0 + 0.5 + 1) / 3, 1e-15);
  EXPECT_THROW(mean_pass_at_k(probs, 5), Error);
}
