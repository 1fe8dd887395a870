// passk.h — the unbiased pass@k estimator of Chen et al. 2021 ("Evaluating Large Language Models
// Trained on Code", §2.1, eq. 1 and its numerically stable form in Figure 3): with n samples of a
// problem of which c are correct, pass@k = 1 − C(n−c, k) / C(n, k) = 1 − Π_{i=n−c+1}^{n} (1 − k/i),
// the probability that k samples drawn without replacement from the n include a correct one. Averaged
// over problems it estimates the benchmark's pass@k. pass@1 = c/n.
#pragma once
#include <cstdint>
#include <vector>

#include "util/error.h"

namespace seek::rl {

// pass@k of one problem. Throws Error unless 1 ≤ k ≤ n and 0 ≤ c ≤ n.
inline double pass_at_k(int64_t n, int64_t c, int64_t k) {
  if (k < 1 || k > n || c < 0 || c > n)
    throw Error(strfmt("pass_at_k: need 1 <= k <= n and 0 <= c <= n, got n = %lld, c = %lld, k = %lld",
                       (long long)n, (long long)c, (long long)k));
  if (n - c < k) return 1.0;  // every k-subset holds a correct sample
  double miss = 1.0;          // C(n−c, k) / C(n, k) as a product of c factors, each in (0, 1]
  for (int64_t i = n - c + 1; i <= n; ++i) miss *= 1.0 - double(k) / double(i);
  return 1.0 - miss;
}

struct PassCounts {
  int64_t n = 0;        // samples drawn for the problem
  int64_t correct = 0;  // of them correct
};

// Mean pass@k over problems (0 for an empty list). Throws Error as pass_at_k for any problem.
inline double mean_pass_at_k(const std::vector<PassCounts>& problems, int64_t k) {
  if (problems.empty()) return 0.0;
  double sum = 0;
  for (const PassCounts& p : problems) sum += pass_at_k(p.n, p.correct, k);
  return sum / double(problems.size());
}

}  // namespace seek::rl
