"""GRPO / Dr. GRPO / DAPO losses in PyTorch float64 with autograd: goldens for seek's rl/grpo_loss.

Written from the papers (DeepSeekMath §4.1.2 eq. 3 and DeepSeek-R1 §2.2.1 for GRPO; Liu et al. 2025
"Understanding R1-Zero-Like Training" §3.2 for Dr. GRPO; Yu et al. 2025 "DAPO" §3 for DAPO) and
shared/design/deepseek-facts.md, not from seek's C++. Conventions fixed here (seek follows them):

  advantage  A_i = r_i - mean(group), divided by (std(group) + std_eps) when scale_std (GRPO, DAPO);
             std is torch.std (unbiased=True, sample) unless std_unbiased is false.
  per token  rho = exp(logp - old_logp) (old_logp absent: logp.detach(), on-policy);
             obj = torch.min(rho*A, torch.clamp(rho, 1-eps_low, 1+eps_high)*A)
                   - beta * (exp(ref - logp) - (ref - logp) - 1)          (k3 KL)
  loss       grpo:   -mean over sequences with >= 1 response token of (sum_t obj*mask / |o_i|)
             drgrpo: -mean over those sequences of (sum_t obj*mask / L), L = drgrpo_max_tokens or T
             dapo:   -(sum of obj*mask over the batch) / (number of response tokens)
             DAPO's dynamic sampling drops groups whose rewards are all equal: their rows' mask is
             set to 0 before the loss (the case records `keep` per group).
  dlogp      d loss / d logp by autograd (torch.min splits the gradient at ties, torch.clamp passes it
             at its bounds).

Inputs are short decimals (4 places); both sides use float32(value) as the float input, as seek's
float arrays hold them. Outputs are float64. Every token's ratio is kept >= 1e-6 away from the clip
bounds so that float rounding cannot flip a clip decision.

Run:  /usr/bin/python3 scripts/reference/grpo_reference.py --out tests/golden/grpo
      /usr/bin/python3 scripts/reference/grpo_reference.py --out tests/golden/grpo --check
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

torch.set_num_threads(1)

# name: (variant, B, T, G, options, seed, extra)
CASES = {
    "grpo_b4_t6":        ("grpo",   4, 6,  2, dict(beta=0.04), 1, {}),
    "grpo_b8_t10":       ("grpo",   8, 10, 4, dict(beta=0.1), 2, {"padding_row": True}),
    "grpo_onpolicy":     ("grpo",   6, 7,  3, dict(beta=0.04), 3, {"on_policy": True}),
    "grpo_population":   ("grpo",   6, 9,  3, dict(beta=0.0, std_unbiased=False), 4, {"no_ref": True}),
    "drgrpo_b8_t12":     ("drgrpo", 8, 12, 4, dict(beta=0.0, scale_std=False), 5, {"no_ref": True}),
    "drgrpo_budget_kl":  ("drgrpo", 6, 8,  2, dict(beta=0.02, scale_std=False, drgrpo_max_tokens=20), 6, {}),
    "dapo_b8_t9":        ("dapo",   8, 9,  4, dict(beta=0.0, eps_high=0.28), 7, {"dynamic": True}),
    "dapo_b12_t5_kl":    ("dapo",  12, 5,  4, dict(beta=0.01, eps_high=0.28), 8, {"dynamic": True}),
}

DEFAULTS = dict(eps_low=0.2, eps_high=0.2, beta=0.04, scale_std=True, std_unbiased=True, std_eps=1e-4,
                drgrpo_max_tokens=0)
REWARD_VALUES = [0.0, 0.1, 1.0, 1.1]


def f32(x):
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)


def advantages(rewards, G, o):
    r = torch.tensor(rewards, dtype=torch.float64).view(-1, G)
    a = r - r.mean(dim=1, keepdim=True)
    if o["scale_std"]:
        a = a / (r.std(dim=1, unbiased=o["std_unbiased"], keepdim=True) + o["std_eps"])
    return a.reshape(-1).numpy()


def loss_and_grad(variant, o, B, T, logp, old, ref, mask, adv):
    lp = torch.tensor(logp, dtype=torch.float64).view(B, T).requires_grad_(True)
    old_t = lp.detach() if old is None else torch.tensor(old, dtype=torch.float64).view(B, T)
    m = torch.tensor(mask, dtype=torch.float64).view(B, T)
    A = torch.tensor(adv, dtype=torch.float64).view(B, 1)
    ratio = torch.exp(lp - old_t)
    lo, hi = 1.0 - o["eps_low"], 1.0 + o["eps_high"]
    obj = torch.min(ratio * A, torch.clamp(ratio, lo, hi) * A)
    kl = None
    if ref is not None:
        d = torch.tensor(ref, dtype=torch.float64).view(B, T) - lp
        kl = torch.exp(d) - d - 1
    if o["beta"] != 0:
        obj = obj - o["beta"] * kl
    lengths = m.sum(dim=1)
    rows = lengths > 0
    n_tok = m.sum()
    if n_tok == 0:
        loss = (obj * m).sum() * 0
    elif variant == "grpo":
        loss = -((obj * m).sum(dim=1)[rows] / lengths[rows]).mean()
    elif variant == "drgrpo":
        L = o["drgrpo_max_tokens"] or T
        loss = -((obj * m).sum(dim=1)[rows] / L).mean()
    elif variant == "dapo":
        loss = -(obj * m).sum() / n_tok
    else:
        raise ValueError(variant)
    loss.backward()
    r = ratio.detach()
    Ad = A.expand(B, T)
    on = m > 0
    clip_low = ((Ad < 0) & (r < lo) & on).sum().item()
    clip_high = ((Ad > 0) & (r > hi) & on).sum().item()
    n = max(int(n_tok.item()), 1)
    stats = dict(
        mean_kl=float((kl.detach() * m).sum() / n) if kl is not None else 0.0,
        clip_fraction=(clip_low + clip_high) / n, clip_low_fraction=clip_low / n, clip_high_fraction=clip_high / n,
        mean_ratio=float((r * m).sum() / n) if n_tok > 0 else 0.0,
        n_tokens=int(n_tok.item()), n_sequences=int(rows.sum().item()))
    return float(loss), lp.grad.reshape(-1).numpy(), stats, r.reshape(-1).numpy()


def loop_loss(variant, o, B, T, logp, old, ref, mask, adv):
    """The same loss with plain Python floats and loops (self-check of the vectorized one)."""
    lo, hi = 1.0 - o["eps_low"], 1.0 + o["eps_high"]
    per_seq, total, n_tok = [], 0.0, 0
    for b in range(B):
        s, n = 0.0, 0
        for t in range(T):
            i = b * T + t
            if mask[i] == 0:
                continue
            rho = math.exp(logp[i] - (logp[i] if old is None else old[i]))
            v = min(rho * adv[b], min(max(rho, lo), hi) * adv[b])
            if o["beta"] != 0:
                d = ref[i] - logp[i]
                v -= o["beta"] * (math.exp(d) - d - 1)
            s += v
            n += 1
        if n:
            per_seq.append((s, n))
        total += s
        n_tok += n
    if n_tok == 0:
        return 0.0
    if variant == "grpo":
        return -sum(s / n for s, n in per_seq) / len(per_seq)
    if variant == "drgrpo":
        return -sum(s / (o["drgrpo_max_tokens"] or T) for s, _ in per_seq) / len(per_seq)
    return -total / n_tok


def build(name, spec):
    variant, B, T, G, opts, seed, extra = spec
    o = dict(DEFAULTS, **opts)
    lo, hi = 1.0 - o["eps_low"], 1.0 + o["eps_high"]
    rng = np.random.default_rng(seed)
    for attempt in range(100):
        # Rewards: one group all equal (zero advantage; dropped by DAPO's dynamic sampling), others mixed.
        rewards = list(rng.choice(REWARD_VALUES, size=B))
        rewards[:G] = [rewards[0]] * G
        for g in range(1, B // G):  # every other group mixed, with both signs of advantage
            rewards[g * G] = 1.1
            rewards[g * G + 1] = 0.0
        mask = np.zeros(B * T)
        for b in range(B):
            p = int(rng.integers(0, T // 3 + 1))
            n = int(rng.integers(1, T - p + 1))
            mask[b * T + p: b * T + p + n] = 1
        if extra.get("padding_row"):
            mask[(B - 1) * T: B * T] = 0
        logp = np.round(-rng.uniform(0.05, 4.0, B * T), 4)
        rho = rng.uniform(0.5, 1.7, B * T)  # both sides of the clip
        old = np.round(logp - np.log(rho), 4)
        same = rng.random(B * T) < 0.1  # some tokens exactly on-policy (ratio 1: a tie inside the clip)
        old[same] = logp[same]
        ref = np.round(logp + rng.uniform(-0.4, 0.4, B * T), 4)
        if extra.get("on_policy"):
            old = None
        if extra.get("no_ref"):
            ref = None
        keep = [bool(len(set(rewards[g * G:(g + 1) * G])) > 1) for g in range(B // G)]
        adv = advantages(rewards, G, o)
        adv32 = f32(adv)
        m_loss = mask.copy()
        if extra.get("dynamic"):
            for g, k in enumerate(keep):
                if not k:
                    m_loss[g * G * T:(g + 1) * G * T] = 0
        lp32, old32 = f32(logp), None if old is None else f32(old)
        ref32 = None if ref is None else f32(ref)
        ratio = np.exp(lp32 - (lp32 if old32 is None else old32))
        margin = np.min(np.minimum(np.abs(ratio - lo), np.abs(ratio - hi))[m_loss > 0])
        if margin < 1e-6:
            continue
        loss, dlogp, stats, _ = loss_and_grad(variant, o, B, T, lp32, old32, ref32, m_loss, adv32)
        check = loop_loss(variant, o, B, T, list(lp32), None if old32 is None else list(old32),
                          None if ref32 is None else list(ref32), list(m_loss), list(adv32))
        assert abs(check - loss) <= 1e-12 * max(1.0, abs(loss)), (name, check, loss)
        need_both = stats["clip_low_fraction"] > 0 and stats["clip_high_fraction"] > 0
        if not need_both and not extra.get("on_policy"):
            continue
        break
    else:
        sys.exit(f"{name}: no acceptable draw in 100 attempts")

    def nums(a):
        return None if a is None else [float(x) for x in a]

    return {
        "name": name, "variant": variant, "seed": seed, "attempt": attempt, "torch": torch.__version__,
        "options": o, "dynamic_sampling": bool(extra.get("dynamic")),
        "B": B, "T": T, "G": G, "rewards": [float(x) for x in rewards], "keep": keep,
        "advantage": nums(adv),
        "logp": nums(logp), "old_logp": nums(old), "ref_logp": nums(ref), "mask": [int(x) for x in mask],
        "loss": loss, "dlogp": nums(dlogp), "stats": stats,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--check", action="store_true", help="compare with the files in --out, write nothing")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    bad = []
    for name, spec in CASES.items():
        text = json.dumps(build(name, spec), indent=None, separators=(",", ":")) + "\n"
        path = os.path.join(args.out, name + ".json")
        if args.check:
            old = open(path).read() if os.path.exists(path) else None
            if old != text:
                bad.append(name)
        else:
            with open(path, "w") as f:
                f.write(text)
            print(f"{name}: {len(text)} bytes")
    if args.check:
        print("DIFFERENT: " + ", ".join(bad) if bad else "identical")
        sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
