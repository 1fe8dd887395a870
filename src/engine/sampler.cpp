// sampler.cpp — see sampler.h.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "tensor/kernels.h"
#include "util/error.h"

namespace seek {

void SamplingParams::validate(int64_t vocab) const {
  auto bad = [](const char* name, double v, const char* range) {
    throw Error(strfmt("sampling parameter %s = %g is out of range (%s)", name, v, range));
  };
  if (!std::isfinite(temperature) || temperature < 0 || temperature > 100) bad("temperature", temperature, "0 to 100; 0 is greedy");
  if (top_k < 0) bad("top_k", double(top_k), ">= 0; 0 is off");
  if (!(top_p > 0 && top_p <= 1)) bad("top_p", top_p, "(0, 1]");
  if (!(min_p >= 0 && min_p <= 1)) bad("min_p", min_p, "[0, 1]");
  if (!(repetition_penalty > 0 && repetition_penalty <= 100)) bad("repetition_penalty", repetition_penalty, "(0, 100]");
  if (!(frequency_penalty >= -2 && frequency_penalty <= 2)) bad("frequency_penalty", frequency_penalty, "[-2, 2]");
  if (!(presence_penalty >= -2 && presence_penalty <= 2)) bad("presence_penalty", presence_penalty, "[-2, 2]");
  for (const auto& [id, b] : logit_bias) {
    if (id < 0 || id >= vocab) throw Error(strfmt("logit_bias: token id %d is outside the vocabulary [0, %lld)", id, (long long)vocab));
    if (!(b >= -100 && b <= 100)) bad("logit_bias", b, "[-100, 100]");
  }
}

Sampler::Sampler(SamplingParams p, int64_t vocab)
    : p_(std::move(p)), vocab_(vocab), rng_(p_.seed), out_count_(size_t(vocab), 0), seen_(size_t(vocab), 0),
      cand_(size_t(vocab)), prob_(size_t(vocab)) {
  p_.validate(vocab);
  // Everything that can grow is reserved at its largest, so sample() never allocates.
  out_tokens_.reserve(size_t(vocab));
  seen_tokens_.reserve(size_t(vocab));
  pairs_.reserve(size_t(vocab));
}

void Sampler::note_seen(int32_t id) {
  if (!seen_[size_t(id)]) {
    seen_[size_t(id)] = 1;
    seen_tokens_.push_back(id);
  }
}

void Sampler::add_prompt(const int32_t* ids, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] >= 0 && ids[i] < vocab_) note_seen(ids[i]);
}

float Sampler::uniform() { return float(double(rng_() >> 11) * 0x1.0p-53); }

int64_t Sampler::distribution(float* z, double* total_out) {
  const int64_t V = vocab_;
  for (const auto& [id, b] : p_.logit_bias) z[id] += b;
  if (p_.repetition_penalty != 1.0f)
    for (int32_t id : seen_tokens_) z[id] = z[id] > 0 ? z[id] / p_.repetition_penalty : z[id] * p_.repetition_penalty;
  if (p_.frequency_penalty != 0 || p_.presence_penalty != 0)
    for (int32_t id : out_tokens_) z[id] -= p_.frequency_penalty * float(out_count_[size_t(id)]) + p_.presence_penalty;

  if (p_.temperature == 0) {
    cand_[0] = int32_t(argmax(z, V));
    prob_[0] = 1;
    *total_out = 1;
    return 1;
  }
  // Candidates: all ids, or the top k by logit (partitioned, then sorted, descending; ties to lower id).
  int64_t n = V;
  std::iota(cand_.begin(), cand_.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); };
  if (p_.top_k > 0 && p_.top_k < V) {
    n = p_.top_k;
    std::nth_element(cand_.begin(), cand_.begin() + n - 1, cand_.end(), by_logit);
  }
  const float inv_t = 1.0f / p_.temperature;
  // The candidates' logits (all of z, in id order, or the top k gathered into prob_), then their
  // probabilities in two vector passes: the largest, and exp_sum.
  const float* zc = z;
  if (n < V) {
    for (int64_t i = 0; i < n; ++i) prob_[size_t(i)] = z[cand_[size_t(i)]];
    zc = prob_.data();
  }
  double total = exp_sum(prob_.data(), zc, n, zc[argmax(zc, n)], inv_t);
  // min-p: drop what is below min_p × the most likely (whose unnormalized probability is 1).
  if (p_.min_p > 0) {
    int64_t kept = 0;
    total = 0;
    for (int64_t i = 0; i < n; ++i)
      if (prob_[size_t(i)] >= p_.min_p) {
        cand_[size_t(kept)] = cand_[size_t(i)];
        total += (prob_[size_t(kept)] = prob_[size_t(i)]);
        ++kept;
      }
    n = kept;
  }
  // top-p: the smallest set of most likely tokens (ties to the lower id) whose mass reaches top_p. The
  // probabilities are non-negative floats, which order as their bit patterns: a histogram of the
  // leading bits finds the bucket where the mass counted from the top reaches top_p. The buckets above
  // it are kept whole, in id order, and only that bucket's tokens are sorted to find the cut (sorting a
  // growing prefix of all of them took 11 ms a token on a flat 129,280-token distribution).
  if (p_.top_p < 1) {
    // 4096 buckets: the exponent and 4 leading mantissa bits (16 per power of 2); a NaN's sign is dropped.
    constexpr int kShift = 19;
    auto bucket = [](float p) {
      uint32_t u;
      std::memcpy(&u, &p, 4);
      return int((u & 0x7FFFFFFFu) >> kShift);
    };
    std::array<double, 4096>& mass = bucket_mass_;
    mass.fill(0);
    for (int64_t i = 0; i < n; ++i) mass[size_t(bucket(prob_[size_t(i)]))] += prob_[size_t(i)];
    const double need = double(p_.top_p) * total;
    int cut = 0;  // the bucket where the mass reaches need (the lowest if rounding never lets it)
    double above = 0;
    for (int b = int(mass.size()) - 1; b >= 0; --b) {
      if (above + mass[size_t(b)] >= need) {
        cut = b;
        break;
      }
      above += mass[size_t(b)];
    }
    std::vector<std::pair<float, int32_t>>& edge = top_p_scratch();
    edge.clear();
    int64_t kept = 0;
    total = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int b = bucket(prob_[size_t(i)]);
      if (b > cut) {
        cand_[size_t(kept)] = cand_[size_t(i)];
        total += (prob_[size_t(kept)] = prob_[size_t(i)]);
        ++kept;
      } else if (b == cut) {
        edge.push_back({prob_[size_t(i)], cand_[size_t(i)]});
      }
    }
    std::sort(edge.begin(), edge.end(), [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    for (const auto& [prob, id] : edge) {
      cand_[size_t(kept)] = id;
      total += (prob_[size_t(kept)] = prob);
      ++kept;
      if (total >= need) break;
    }
    n = kept;
  }
  *total_out = total;
  return n;
}

int32_t Sampler::draw(int64_t n, double total) {
  const double u = double(uniform()) * total;
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) {
    acc += prob_[size_t(i)];
    if (u < acc) return cand_[size_t(i)];
  }
  return cand_[size_t(n - 1)];
}

void Sampler::record(int32_t id) {
  if (out_count_[size_t(id)]++ == 0) out_tokens_.push_back(id);
  note_seen(id);
}

int32_t Sampler::sample(float* z) {
  double total = 0;
  const int64_t n = distribution(z, &total);
  const int32_t chosen = n == 1 ? cand_[0] : draw(n, total);
  record(chosen);
  return chosen;
}

int32_t Sampler::draft(float* z, TokenDist& q, float* confidence) {
  double total = 0;
  const int64_t n = distribution(z, &total);
  q.ids.assign(cand_.begin(), cand_.begin() + n);
  q.probs.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) q.probs[size_t(i)] = float(double(prob_[size_t(i)]) / total);
  if (p_.temperature == 0) {
    if (!confidence) return cand_[0];
    // The argmax's softmax probability over the (biased, penalized) logits (prob_ is free: q holds it).
    *confidence = float(1 / exp_sum(prob_.data(), z, vocab_, z[cand_[0]], 1.0f));
    return cand_[0];
  }
  const int32_t d = draw(n, total);
  if (confidence)
    for (int64_t i = 0; i < n; ++i)
      if (cand_[size_t(i)] == d) *confidence = q.probs[size_t(i)];
  return d;
}

int32_t Sampler::verify(float* z, int32_t d, const TokenDist& q, bool* accepted) {
  double total = 0;
  const int64_t n = distribution(z, &total);
  int32_t chosen;
  if (p_.temperature == 0) {
    chosen = cand_[0];
    *accepted = chosen == d;
  } else {
    double pd = 0, qd = 0;
    for (int64_t i = 0; i < n; ++i)
      if (cand_[size_t(i)] == d) pd = double(prob_[size_t(i)]) / total;
    for (size_t i = 0; i < q.ids.size(); ++i)
      if (q.ids[i] == d) qd = q.probs[i];
    // Accept with probability min(1, p(d)/q(d)): u·q(d) < p(d) with u in [0, 1).
    *accepted = qd > 0 && double(uniform()) * qd < pd;
    if (*accepted) {
      chosen = d;
    } else {
      // The residual max(0, p − q) over p's candidates (it is 0 wherever p is), renormalized.
      if (dense_.empty()) dense_.assign(size_t(vocab_), 0.f);
      for (size_t i = 0; i < q.ids.size(); ++i) dense_[size_t(q.ids[i])] = q.probs[i];
      auto residual = [&](int64_t i) {
        return std::max(0.0, double(prob_[size_t(i)]) / total - double(dense_[size_t(cand_[size_t(i)])]));
      };
      double rest = 0;
      for (int64_t i = 0; i < n; ++i) rest += residual(i);
      if (rest > 0) {
        const double u = double(uniform()) * rest;
        double acc = 0;
        chosen = -1;
        for (int64_t i = 0; i < n && chosen < 0; ++i)
          if (const double r = residual(i); r > 0 && u < (acc += r)) chosen = cand_[size_t(i)];
        if (chosen < 0)  // rounding at the end of the sum: the last candidate with residual mass
          for (int64_t i = n - 1; i >= 0 && chosen < 0; --i)
            if (residual(i) > 0) chosen = cand_[size_t(i)];
      } else {
        // p ≤ q everywhere only when p = q up to rounding, where d would have been accepted: draw from p.
        chosen = draw(n, total);
      }
      for (int32_t id : q.ids) dense_[size_t(id)] = 0;
    }
  }
  record(chosen);
  return chosen;
}

}  // namespace seek
