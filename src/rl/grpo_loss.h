// grpo_loss.h — the pure math of R1-Zero-style policy optimization: group-normalized advantages, the
// clipped-ratio surrogate with a k3 KL penalty, and its exact derivative with respect to the per-token
// log-probabilities. No model code: the trainer computes logp (the log-probability of each sampled token
// under the current policy), calls grpo_token_loss, and backpropagates dlogits = dlogp · (onehot − softmax).
//
// Notation: a batch of B sequences (n groups of G consecutive samples of one question), T token positions
// each; o_i = the response tokens of sequence i (mask = 1), |o_i| their number; per token
//   ρ = exp(logp − old_logp)                       (importance ratio π_θ / π_old)
//   s = min(ρ·A_i, clip(ρ, 1 − eps_low, 1 + eps_high)·A_i)     (PPO surrogate)
//   KL = exp(ref − logp) − (ref − logp) − 1        (Schulman's k3 estimator of KL(π_θ‖π_ref), ≥ 0)
//   ℓ = s − beta·KL                                (maximized; the loss is its negative)
//
// Variants (`GrpoOptions::variant` picks how token terms are averaged; `preset()` sets every field the
// way the paper does):
//   Grpo   — DeepSeekMath (Shao et al. 2024, §4.1.2, eq. 3) and DeepSeek-R1 (2025, §2.2.1):
//            A_i = (r_i − mean(r)) / (std(r) + std_eps) within the group;
//            loss = −(1/B) Σ_i (1/|o_i|) Σ_{t∈o_i} ℓ      (mean over tokens, then over sequences).
//            DeepSeekMath used β = 0.04 (our default); R1-Zero used β = 0.001 (facts sheet).
//   DrGrpo — "Understanding R1-Zero-Like Training: A Critical Perspective" (Liu et al. 2025, §3.2):
//            removes both biases: A_i = r_i − mean(r) (scale_std = false) and no 1/|o_i|:
//            loss = −(1/B) Σ_i (1/L) Σ_{t∈o_i} ℓ  with L = drgrpo_max_tokens, a constant (the
//            generation budget; 0 = the batch's T), as in their code (masked sum / constant).
//            preset: β = 0 (rule-based rewards need no reference model).
//   Dapo   — DAPO (Yu et al. 2025, §3): clip-higher (eps_low 0.2, eps_high 0.28), token-level mean
//            over every response token of the batch: loss = −(1/Σ_i |o_i|) Σ_i Σ_{t∈o_i} ℓ;
//            dynamic sampling: groups whose rewards are all equal carry no signal and are dropped
//            (keep_group) and more are sampled; A_i as in GRPO; preset: β = 0 (DAPO removes the KL).
//            Not here: DAPO's overlong reward shaping (a reward rule, not part of the loss).
// B in Grpo/DrGrpo counts the sequences with at least one response token (an all-masked row is
// padding). A batch with no response token has loss 0 and dlogp 0.
//
// Derivative conventions (so that the PyTorch golden comparison is exact): torch.min at a tie passes
// half the gradient to each argument, torch.clamp passes the gradient at and inside its bounds. Hence
// dℓ/dlogp = A·ρ unless the clipped branch is chosen and active — (A > 0 and ρ > 1 + eps_high) or
// (A < 0 and ρ < 1 − eps_low) — where it is 0; minus β·(1 − exp(ref − logp)) from the KL. Masked
// positions get 0. Everything is computed in double from the float inputs.
//
// What this file does NOT do: sampling, rewards (reward.h), the model's backward, reference resets.
#pragma once
#include <cstdint>
#include <vector>

namespace seek::rl {

struct GrpoOptions {
  enum Variant { Grpo, DrGrpo, Dapo };
  Variant variant = Grpo;         // how token terms are averaged (see the header)
  double eps_low = 0.2;           // ratio clipped below at 1 − eps_low (PPO ε)
  double eps_high = 0.2;          // ratio clipped above at 1 + eps_high (DAPO clip-higher: 0.28)
  double beta = 0.04;             // KL coefficient (DeepSeekMath 0.04, R1-Zero 0.001); 0 = no KL term
  bool scale_std = true;          // advantages divided by the group's std (GRPO, DAPO); false: Dr. GRPO
  bool std_unbiased = true;       // sample std (n − 1, torch.std's default as in TRL and veRL); false: population
  double std_eps = 1e-4;          // added to the std before dividing (TRL's value)
  int64_t drgrpo_max_tokens = 0;  // Dr. GRPO's constant length normalizer L; 0 = the batch's T

  // The settings the variant's paper uses: Grpo = the defaults above; DrGrpo = scale_std false, β 0;
  // Dapo = eps_high 0.28, β 0.
  static GrpoOptions preset(Variant v);
};

const char* variant_name(GrpoOptions::Variant v);  // "grpo" | "drgrpo" | "dapo"

// Advantages for n groups of G consecutive samples (rewards.size() = n·G): r_i − mean of its group,
// divided by (std + std_eps) when scale_std. A group with equal rewards gets 0 for every sample.
// G = 1 gives zeros. Throws Error when G < 1 or rewards.size() is not a multiple of G.
std::vector<float> group_advantages(const std::vector<double>& rewards, int64_t G, const GrpoOptions& opt);

// DAPO dynamic sampling: false when all G rewards of a group are equal (exact comparison: rule rewards
// take a few discrete values), so the group has zero advantage and no gradient.
bool keep_group(const double* rewards, int64_t G);

// The trainer's batch: B sequences × T positions, row-major. A row holds prompt, response and padding;
// mask marks the response tokens, whose logp is the log-probability of the token sampled there.
struct GrpoBatch {
  int64_t B = 0, T = 0;
  const float* logp = nullptr;       // [B, T] current policy, log π_θ(token)
  const float* old_logp = nullptr;   // [B, T] sampling policy π_old; nullptr = logp (on-policy, ρ ≡ 1)
  const float* ref_logp = nullptr;   // [B, T] reference policy π_ref; may be nullptr only when beta = 0
  const float* mask = nullptr;       // [B, T] 1 for response tokens, 0 for prompt/padding (nonzero = 1)
  const float* advantage = nullptr;  // [B] the sequence's advantage (group_advantages)
};

struct GrpoStats {
  double loss = 0;               // the value minimized
  double mean_kl = 0;            // token mean of the k3 KL over response tokens (0 without ref_logp)
  double clip_fraction = 0;      // share of response tokens where the clipped branch is chosen and active
  double clip_low_fraction = 0;  //   … of them with A < 0 and ρ < 1 − eps_low
  double clip_high_fraction = 0; //   … of them with A > 0 and ρ > 1 + eps_high
  double mean_ratio = 0;         // token mean of ρ over response tokens
  int64_t n_tokens = 0;          // response tokens (mask nonzero)
  int64_t n_sequences = 0;       // sequences with at least one response token
};

// The loss and, when dlogp is non-null, ∂loss/∂logp into dlogp [B, T] (every entry written; 0 where
// masked or where the clip is active). Asserts ref_logp when beta != 0.
GrpoStats grpo_token_loss(const GrpoBatch& in, const GrpoOptions& opt, float* dlogp);

}  // namespace seek::rl
