// grpo_loss.cpp — GRPO / Dr. GRPO / DAPO advantages and token loss; the formulas and conventions are in
// grpo_loss.h.
#include "rl/grpo_loss.h"

#include <cmath>

#include "util/error.h"

namespace seek::rl {

GrpoOptions GrpoOptions::preset(Variant v) {
  GrpoOptions o;
  o.variant = v;
  if (v == DrGrpo) {
    o.scale_std = false;
    o.beta = 0;
  } else if (v == Dapo) {
    o.eps_high = 0.28;
    o.beta = 0;
  }
  return o;
}

const char* variant_name(GrpoOptions::Variant v) {
  switch (v) {
    case GrpoOptions::Grpo: return "grpo";
    case GrpoOptions::DrGrpo: return "drgrpo";
    case GrpoOptions::Dapo: return "dapo";
  }
  return "?";
}

std::vector<float> group_advantages(const std::vector<double>& rewards, int64_t G, const GrpoOptions& opt) {
  const int64_t n = int64_t(rewards.size());
  if (G < 1 || n % G != 0)
    throw Error(strfmt("group_advantages: %lld rewards do not split into groups of G = %lld", (long long)n,
                       (long long)G));
  std::vector<float> adv(size_t(n), 0.f);
  for (int64_t g0 = 0; g0 < n; g0 += G) {
    const double* r = rewards.data() + g0;
    if (!keep_group(r, G)) continue;  // equal rewards: exactly 0 (no rounding noise from the mean)
    double mean = 0;
    for (int64_t i = 0; i < G; ++i) mean += r[i];
    mean /= double(G);
    double scale = 1;
    if (opt.scale_std) {
      double ss = 0;
      for (int64_t i = 0; i < G; ++i) ss += (r[i] - mean) * (r[i] - mean);
      const double denom = opt.std_unbiased ? double(G - 1) : double(G);
      scale = 1.0 / (std::sqrt(ss / denom) + opt.std_eps);
    }
    for (int64_t i = 0; i < G; ++i) adv[size_t(g0 + i)] = float((r[i] - mean) * scale);
  }
  return adv;
}

bool keep_group(const double* rewards, int64_t G) {
  for (int64_t i = 1; i < G; ++i)
    if (rewards[i] != rewards[0]) return true;
  return false;
}

GrpoStats grpo_token_loss(const GrpoBatch& in, const GrpoOptions& opt, float* dlogp) {
  const int64_t B = in.B, T = in.T;
  SEEK_ASSERT(B >= 0 && T >= 0);
  SEEK_ASSERT(in.logp && in.mask && in.advantage);
  SEEK_ASSERT_MSG(opt.beta == 0 || in.ref_logp, "grpo_token_loss: beta != 0 needs ref_logp");
  const double lo = 1.0 - opt.eps_low, hi = 1.0 + opt.eps_high;

  // Per-sequence response lengths fix each token's weight w in loss = −Σ w·ℓ.
  std::vector<int64_t> len(size_t(B), 0);
  GrpoStats st;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) len[size_t(b)] += in.mask[b * T + t] != 0.f;
    st.n_tokens += len[size_t(b)];
    st.n_sequences += len[size_t(b)] > 0;
  }
  const int64_t L = opt.drgrpo_max_tokens > 0 ? opt.drgrpo_max_tokens : T;

  double loss = 0, kl_sum = 0, ratio_sum = 0;
  int64_t clip_low = 0, clip_high = 0;
  for (int64_t b = 0; b < B; ++b) {
    double w = 0;  // this sequence's token weight
    if (len[size_t(b)] > 0) {
      switch (opt.variant) {
        case GrpoOptions::Grpo: w = 1.0 / (double(st.n_sequences) * double(len[size_t(b)])); break;
        case GrpoOptions::DrGrpo: w = 1.0 / (double(st.n_sequences) * double(L)); break;
        case GrpoOptions::Dapo: w = 1.0 / double(st.n_tokens); break;
      }
    }
    const double A = in.advantage[b];
    for (int64_t t = 0; t < T; ++t) {
      const int64_t i = b * T + t;
      if (in.mask[i] == 0.f) {
        if (dlogp) dlogp[i] = 0.f;
        continue;
      }
      const double lp = in.logp[i];
      const double rho = in.old_logp ? std::exp(lp - double(in.old_logp[i])) : 1.0;
      const double surr = rho * A;
      const double surr_clip = std::fmin(std::fmax(rho, lo), hi) * A;
      double term, dterm;  // ℓ and dℓ/dlogp
      if (A > 0 && rho > hi) {  // clipped branch chosen and active: constant
        term = surr_clip, dterm = 0, ++clip_high;
      } else if (A < 0 && rho < lo) {
        term = surr_clip, dterm = 0, ++clip_low;
      } else {  // unclipped branch (ties inside the clip range pass A·ρ in full)
        term = std::fmin(surr, surr_clip), dterm = surr;
      }
      if (in.ref_logp) {
        const double d = double(in.ref_logp[i]) - lp;
        const double e = std::exp(d);
        const double kl = e - d - 1.0;
        kl_sum += kl;
        if (opt.beta != 0) {
          term -= opt.beta * kl;
          dterm -= opt.beta * (1.0 - e);  // dKL/dlogp = −e + 1
        }
      }
      ratio_sum += rho;
      loss -= w * term;
      if (dlogp) dlogp[i] = float(-w * dterm);
    }
  }
  st.loss = loss;
  if (st.n_tokens > 0) {
    const double n = double(st.n_tokens);
    st.mean_kl = kl_sum / n;
    st.mean_ratio = ratio_sum / n;
    st.clip_low_fraction = double(clip_low) / n;
    st.clip_high_fraction = double(clip_high) / n;
    st.clip_fraction = double(clip_low + clip_high) / n;
  }
  return st;
}

}  // namespace seek::rl
