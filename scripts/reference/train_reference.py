"""Training goldens: losses and every parameter's gradient from PyTorch autograd (float64) for tiny
random checkpoints, plus the loss curve of 6 torch.optim.AdamW steps.

    /usr/bin/python3 scripts/reference/train_reference.py --out tests/golden/train
    /usr/bin/python3 scripts/reference/train_reference.py --out tests/golden/train --check   # rebuild in a
                                          temp dir, compare byte for byte, exit 1 on a difference

THE LOSS CONTRACT (what seek's training must reproduce)
  Batch: input_ids I32 [B, T+1], B = 2, T = 9. inputs = ids[:, :T], targets = ids[:, 1:]. Each row is
  an independent causal sequence, positions 0..T-1 (no packing, no padding).
  * loss_main = mean over all B*T positions (b, i) of CE(logits[b, i], ids[b, i+1]).
  * loss_mtp (deepseek_v3 with num_nextn_predict_layers = 1; 0 otherwise): for 0 <= i <= T-2 the MTP
    module's input at position i is
        eh_proj([enorm(Emb(ids[b, i+1])) ; hnorm(h_main[b, i])])
    where h_main is the main model's hidden state AFTER the final norm (model.py's
    MTP_PREVIOUS_HIDDEN = "post_final_norm") and Emb is the MAIN embedding; one block (MLA + MoE) runs
    causally over positions 0..T-2 (RoPE positions 0..T-2), then shared_head.norm and the MAIN lm_head.
    Its logits at i predict ids[b, i+2]; loss_mtp = mean over the B*(T-1) positions.
  * loss_balance (deepseek cases; 0 otherwise): the complementary sequence-wise balance loss. For each
    sequence b and each MoE layer of the MAIN model (not the MTP block):
        f_e = E / (k*T) * sum_t 1[e in token t's top-k]            (a constant: no gradient)
        P_e = (1/T) * sum_t s'_{e,t},  s' = s / sum_e s             (s = sigmoid scores for v3, softmax
                                                                      probabilities for v2; gradient)
        term = sum_e f_e * P_e
    loss_balance = mean over the B sequences of the sum over MoE layers of term.
  * total = loss_main + 0.3 * loss_mtp + 0.01 * loss_balance.
  Routing: the top-k selection (groups, e_score_correction_bias, ties) is a constant; no gradient flows
  through the selection or into e_score_correction_bias. The gate weight receives gradient through the
  chosen experts' gating values (unbiased scores of the chosen experts, normalized over the k when
  norm_topk_prob, times routed_scaling_factor) and through P_e.
  Gradients: grad.<HF name> = d total / d parameter for every tensor in model.safetensors except
  e_score_correction_bias (not trained by gradient) and the MTP layer's duplicate embed_tokens /
  shared_head.head, which are tied to model.embed_tokens / lm_head (their gradient is in the main
  tensors). For tied-embedding models (llama) grad.model.embed_tokens.weight holds both uses.
  adamw_losses [6]: total before each of 6 torch.optim.AdamW steps on the same batch (unused parameters
  get a zero gradient, so weight decay applies to them every step; lr 1e-2,
  betas (0.9, 0.95), eps 1e-8, weight_decay 0.1 on 2-D tensors, 0 on 1-D tensors; the correction bias
  and the MTP duplicates are not optimizer parameters; the duplicates stay tied, i.e. equal to the main
  tensors, throughout).

Everything is float64; stored as F32 (ids I32). Deterministic: numpy PCG64 seeds, one torch thread.
The model is model.py's Reference with a differentiable MoE (routing selection from model.py's
`route`, which is numpy and therefore a constant; gate values recomputed in torch).

Self-checks (abort on failure): the four losses recomputed independently (model.py's plain
Reference.run with its numpy routing and the MTP's own duplicate tensors, numpy cross-entropy, the
balance loss with Python loops over generate.py's loop_route) agree to 1e-10; 4-point central finite differences of the total for a few gradient
entries per case (the largest entries of several tensors plus random ones) agree to 1e-6 relative;
every routing decision (expert and group, all MoE layers incl. MTP, every AdamW step) has a margin
>= 3e-4 so a float32 implementation routes identically (a failing draw retries with the next attempt);
for v3 the correction bias changes at least one selection.
"""

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as gen  # noqa: E402
import model as ref  # noqa: E402
import safetensors_io as st  # noqa: E402

B, T = 2, 9
LAMBDA_MTP = 0.3
ALPHA_BAL = 0.01
ADAMW = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
ADAMW_STEPS = 6
MARGIN = 3e-4
VERSION = "1"

CASES = {
    "v3": dict(
        config=gen.deepseek_config(
            vocab_size=64, hidden_size=32, intermediate_size=40, moe_intermediate_size=6,
            num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2,
            n_routed_experts=8, num_experts_per_tok=3, n_group=4, topk_group=2, n_shared_experts=1,
            q_lora_rank=16, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8,
            first_k_dense_replace=1, norm_topk_prob=True, routed_scaling_factor=2.5, aux_loss_alpha=ALPHA_BAL,
            max_position_embeddings=4096,
            rope_scaling={"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.8,
                          "mscale_all_dim": 0.707, "original_max_position_embeddings": 1024,
                          "type": "yarn"}),
        seed=11001,
        about="DeepSeek-V3 tiny: q_lora, sigmoid/noaux_tc with nonzero correction bias, 4 groups keep 2, "
              "8 experts top-3, 1 shared, first_k_dense_replace 1, 3 layers, MTP (depth 1), yarn, "
              "norm_topk_prob, routed_scaling_factor 2.5"),
    "v2": dict(
        config=gen.deepseek_config(
            v3=False, vocab_size=64, hidden_size=32, intermediate_size=48, moe_intermediate_size=8,
            num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2,
            q_lora_rank=None, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8,
            n_shared_experts=2, n_routed_experts=8, num_experts_per_tok=2, n_group=1, topk_group=1,
            topk_method="greedy", scoring_func="softmax", norm_topk_prob=False, routed_scaling_factor=1.0,
            first_k_dense_replace=1, max_position_embeddings=2560, aux_loss_alpha=ALPHA_BAL,
            rope_scaling={"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707,
                          "mscale_all_dim": 0.707, "original_max_position_embeddings": 64, "type": "yarn"}),
        seed=12002,
        about="DeepSeek-V2 tiny: q_proj (q_lora_rank null), softmax/greedy, no normalization, scale 1.0, "
              "8 experts top-2, 2 shared, 3 layers (layer 0 dense), yarn, no MTP"),
    "qwen2": dict(
        config=gen.qwen2_config(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2),
        seed=13003,
        about="Qwen2 tiny: GQA 4 heads / 2 kv heads, q/k/v bias, untied head, 2 layers"),
    "llama": dict(
        config=gen.llama_config(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=1, head_dim=16),
        seed=14004,
        about="Llama-3.1 tiny: GQA 4 heads / 1 kv head, head_dim 16 != 32/4, llama3 rope scaling, "
              "tied embeddings, 2 layers"),
}


# ----------------------------------------------------------------------------------------------
# differentiable model

class TrainModel(ref.Reference):
    """model.py's Reference with a MoE whose gate values are torch (differentiable) and whose
    selection comes from model.py's numpy `route` (a constant). Records per-layer routing for the
    balance loss and the minimum routing margin."""

    def __init__(self, config, weights):
        super().__init__(config, weights)
        self.routes = []           # (layer prefix, idx [T,k] numpy, scores [T,E] torch) per moe call
        self.min_margin = float("inf")
        self.bias_changes = 0

    def moe(self, p, x, rec=None, rec_name=None):
        c = self.cfg
        E, k = c["n_routed_experts"], c["num_experts_per_tok"]
        with torch.no_grad():                                            # selection: constant
            r = self.route(p, x.detach())
        srt = -np.sort(-r["masked"], axis=-1)
        gap = srt[:, k - 1] - srt[:, k]
        gap = gap[np.isfinite(gap)]
        if gap.size:
            self.min_margin = min(self.min_margin, float(gap.min()))
        if r["group_scores"] is not None:
            g = -np.sort(-r["group_scores"], axis=-1)
            tg = c["topk_group"]
            self.min_margin = min(self.min_margin, float((g[:, tg - 1] - g[:, tg]).min()))
        if c.get("topk_method") == "noaux_tc":
            with torch.no_grad():
                u = self.route(p, x.detach(), bias_override=np.zeros(E))
            self.bias_changes += sum(set(a) != set(b) for a, b in zip(r["idx"], u["idx"]))
        logits = x @ self.w[p + "mlp.gate.weight"].T                        # [T, E]
        if c.get("scoring_func", "softmax") == "sigmoid":
            scores = torch.sigmoid(logits)
        else:
            scores = torch.softmax(logits, dim=-1)
        idx = torch.from_numpy(r["idx"]).long()                              # [T, k]
        wt = scores.gather(1, idx)
        if c.get("norm_topk_prob") and k > 1:
            wt = wt / (wt.sum(dim=-1, keepdim=True) + 1e-20)
        wt = wt * float(c.get("routed_scaling_factor", 1.0))
        # cross-check the gate values against model.py's (numpy) route
        assert float(torch.max(torch.abs(wt.detach() - torch.from_numpy(r["weight"])))) < 1e-12
        y = torch.zeros_like(x)
        for e in range(E):
            rows, slot = np.nonzero(r["idx"] == e)
            if rows.size == 0:
                continue
            rows_t, slot_t = torch.from_numpy(rows).long(), torch.from_numpy(slot).long()
            out = self.mlp(f"{p}mlp.experts.{e}.", x[rows_t]) * wt[rows_t, slot_t][:, None]
            y = y.index_add(0, rows_t, out)
        if c.get("n_shared_experts"):
            y = y + self.mlp(p + "mlp.shared_experts.", x)
        self.routes.append((p, r["idx"], scores))
        return y


def losses(model, ids):
    """ids LongTensor [B, T+1] -> dict of scalar float64 tensors (total, main, mtp, balance)."""
    cfg = model.cfg
    Bn, T1 = ids.shape
    Tn = T1 - 1
    ce_main, ce_mtp, bal = [], [], []
    L = model.L
    for b in range(Bn):
        model.routes = []
        rec, _ = model.forward(ids[b, :Tn], record=False)
        ce_main.append(torch.nn.functional.cross_entropy(rec["logits"], ids[b, 1:], reduction="sum"))
        main_routes = list(model.routes)
        if model.n_mtp:
            assert model.n_mtp == 1
            m, _ = model.mtp(ids[b, 1:Tn], rec["mtp_prev_hidden"][:Tn - 1], record=False)
            ce_mtp.append(torch.nn.functional.cross_entropy(m["mtp.0.logits"], ids[b, 2:], reduction="sum"))
        if model.mt in ref.DEEPSEEK and cfg.get("n_routed_experts"):
            E, k = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
            s_b = torch.zeros((), dtype=ref.DT)
            n_layers = 0
            for (p, idx, scores) in main_routes:
                assert not p.startswith(f"model.layers.{L}.")
                counts = np.bincount(idx.reshape(-1), minlength=E).astype(np.float64)
                f = torch.from_numpy(counts * E / (k * Tn))
                sn = scores / scores.sum(dim=-1, keepdim=True)
                P = sn.mean(dim=0)
                s_b = s_b + (f * P).sum()
                n_layers += 1
            assert n_layers == sum(model.is_moe(i) for i in range(L))
            bal.append(s_b)
    zero = torch.zeros((), dtype=ref.DT)
    loss_main = torch.stack(ce_main).sum() / (Bn * Tn)
    loss_mtp = torch.stack(ce_mtp).sum() / (Bn * (Tn - 1)) if ce_mtp else zero
    loss_bal = torch.stack(bal).mean() if bal else zero
    total = loss_main + LAMBDA_MTP * loss_mtp + ALPHA_BAL * loss_bal
    return dict(total=total, main=loss_main, mtp=loss_mtp, balance=loss_bal)


# ----------------------------------------------------------------------------------------------
# parameters

def make_params(cfg, weights):
    """-> (w dict for the model, {name: trainable leaf}, {duplicate name: main name})."""
    L = cfg["num_hidden_layers"]
    tied = {}
    if cfg["model_type"] == "deepseek_v3" and cfg.get("num_nextn_predict_layers"):
        tied[f"model.layers.{L}.embed_tokens.weight"] = "model.embed_tokens.weight"
        tied[f"model.layers.{L}.shared_head.head.weight"] = "lm_head.weight"
    params, w = {}, {}
    for name, t in weights.items():
        if name in tied:
            continue
        if name.endswith("e_score_correction_bias"):
            w[name] = t.clone()                          # constant
        else:
            params[name] = t.clone().requires_grad_(True)
            w[name] = params[name]
    for dup, main in tied.items():
        assert torch.equal(weights[dup], weights[main]), dup
        w[dup] = params[main]                            # the module uses the main tensors
    return w, params, tied


def grads_of(total, params):
    names = list(params)
    gs = torch.autograd.grad(total, [params[n] for n in names], allow_unused=True)
    return {n: (g if g is not None else torch.zeros_like(params[n])) for n, g in zip(names, gs)}


def fd_check(model, ids, params, grads, rng, log):
    """4-point central differences of the total for a few entries; asserts 1e-6 relative agreement."""
    names = list(params)
    picks = []
    # the largest entry of a spread of tensors, plus random entries of random tensors
    for n in names[::max(1, len(names) // 8)]:
        g = grads[n].reshape(-1)
        picks.append((n, int(torch.argmax(g.abs()))))
    for _ in range(6):
        n = names[int(rng.integers(len(names)))]
        g = grads[n].reshape(-1)
        nz = torch.nonzero(g).reshape(-1)
        if nz.numel():
            picks.append((n, int(nz[int(rng.integers(nz.numel()))])))
    h = 1e-4
    worst = 0.0
    with torch.no_grad():
        for n, j in picks:
            flat = params[n].view(-1)
            x0 = float(flat[j])
            vals = []
            for d in (2, 1, -1, -2):
                flat[j] = x0 + d * h
                vals.append(float(losses(model, ids)["total"]))
            flat[j] = x0
            fd = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
            g = float(grads[n].reshape(-1)[j])
            rel = abs(fd - g) / max(abs(g), 1e-4)
            worst = max(worst, rel)
            assert rel < 1e-6, f"finite difference {n}[{j}]: fd {fd:.10e} autograd {g:.10e} rel {rel:.2e}"
    log(f"    finite differences: {len(picks)} entries, worst rel diff {worst:.1e}")
    return worst


def independent_losses(cfg, weights, ids):
    """The four losses recomputed from model.py's plain Reference.run (numpy routing, the MTP's own
    duplicate embed/head tensors) with numpy cross-entropy, and the balance loss with Python loops over
    generate.py's loop_route. -> dict of floats."""
    model = ref.Reference(cfg, weights)
    Tn = ids.shape[1] - 1

    def ce(logits, tgt):
        lg = logits.numpy()
        m = lg.max(axis=-1, keepdims=True)
        lse = (m + np.log(np.exp(lg - m).sum(axis=-1, keepdims=True)))[:, 0]
        return float(np.sum(lse - lg[np.arange(len(tgt)), tgt]))

    main = mtp = bal = 0.0
    L = model.L
    for b in range(ids.shape[0]):
        seq = ids[b].tolist()
        rec = model.run(np.array(seq[:Tn]))
        main += ce(rec["logits"], seq[1:])
        if model.n_mtp:
            mtp += ce(rec["mtp.0.logits"], seq[2:])
        if model.mt in ref.DEEPSEEK and cfg.get("n_routed_experts"):
            E, k = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
            for (_, p, x) in gen.moe_inputs(model, np.array(seq[:Tn])):
                if p == f"model.layers.{L}.":
                    continue                                   # MTP block: not in the balance loss
                chosen = [c for c, _ in gen.loop_route(model, p, x)]
                Wg = model.w[p + "mlp.gate.weight"].numpy()
                term = 0.0
                for e in range(E):
                    f = E / (k * Tn) * sum(e in c for c in chosen)
                    P = 0.0
                    for row in x.numpy():
                        lg = [float(Wg[j] @ row) for j in range(E)]
                        if cfg["scoring_func"] == "sigmoid":
                            sc = [1 / (1 + np.exp(-v)) for v in lg]
                        else:
                            z = [np.exp(v - max(lg)) for v in lg]
                            sc = [v / sum(z) for v in z]
                        P += sc[e] / sum(sc) / Tn
                    term += f * P
                bal += term / ids.shape[0]
    main /= ids.shape[0] * Tn
    mtp = mtp / (ids.shape[0] * (Tn - 1)) if model.n_mtp else 0.0
    return dict(main=main, mtp=mtp, balance=bal, total=main + LAMBDA_MTP * mtp + ALPHA_BAL * bal)


def adamw_curve(model, ids, params):
    """total before each of ADAMW_STEPS AdamW steps; params are modified (pass clones)."""
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=ADAMW["weight_decay"]),
                             dict(params=no_decay, weight_decay=0.0)],
                            lr=ADAMW["lr"], betas=ADAMW["betas"], eps=ADAMW["eps"])
    out = []
    for _ in range(ADAMW_STEPS):
        opt.zero_grad(set_to_none=True)
        tot = losses(model, ids)["total"]
        out.append(float(tot))
        tot.backward()
        # A parameter the step did not use (an expert no token chose) has grad None, and PyTorch's AdamW
        # would skip it, weight decay included. seek's contract: every parameter has a gradient (zero
        # when unused) and decoupled weight decay applies every step, as with persistent grad buffers.
        for p in params.values():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        opt.step()
    return out


# ----------------------------------------------------------------------------------------------

def build_case(name, spec, out_dir, log):
    cfg = json.loads(json.dumps(spec["config"]))
    V = cfg["vocab_size"]
    t0 = time.time()
    for attempt in range(200):
        seed = spec["seed"] * 1000 + attempt
        rng = np.random.default_rng(seed)
        ids = rng.integers(0, V, (B, T + 1))
        ids[0, int(rng.integers(T + 1))] = V - 1          # the largest id appears
        W = gen.make_weights(cfg, rng, {"storage": "f32"})
        tensors = gen.to_storage(W, "f32")
        weights = gen.storage_to_weights(tensors, cfg)
        ids_t = torch.from_numpy(ids).long()
        w, params, tied = make_params(cfg, weights)
        model = TrainModel(cfg, w)
        res = losses(model, ids_t)
        first_margin, bias_changes = model.min_margin, model.bias_changes
        # the AdamW trajectory must route with the same safety margin
        w2, params2, _ = make_params(cfg, weights)
        model2 = TrainModel(cfg, w2)
        curve = adamw_curve(model2, ids_t, params2)
        ok = min(first_margin, model2.min_margin) >= MARGIN
        if cfg.get("topk_method") == "noaux_tc" and cfg["model_type"] in ref.DEEPSEEK:
            ok = ok and bias_changes > 0
        if ok:
            break
    else:
        raise RuntimeError(f"{name}: no attempt passed the routing checks")
    grads = grads_of(res["total"], params)
    assert abs(curve[0] - float(res["total"])) < 1e-12
    fd_worst = fd_check(model, ids_t, params, grads, np.random.default_rng(seed + 77), log)
    ind = independent_losses(cfg, weights, ids)
    worst = max(abs(ind[k] - float(res[k])) for k in ind)
    assert worst < 1e-10, f"{name}: independent loss recomputation differs by {worst}: {ind}"
    log(f"    losses recomputed with model.py's Reference.run + loop routing: max diff {worst:.1e}")

    d = os.path.join(out_dir, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    gen.write_checkpoint(d, cfg, tensors, 1)
    # the checkpoint as written loads back to the same weights
    cfg2, wl = ref.load_checkpoint(d)
    assert cfg2 == cfg and set(wl) == set(weights)
    for k in wl:
        assert torch.equal(wl[k], weights[k]), k

    g = {"input_ids": ("I32", ids.astype(np.int32))}
    for key, lname in (("total", "loss"), ("main", "loss_main"), ("mtp", "loss_mtp"), ("balance", "loss_balance")):
        g[lname] = ("F32", np.array([float(res[key])], dtype=np.float32))
    for n in tensors:                                    # checkpoint order
        if n in params:
            g["grad." + n] = ("F32", grads[n].numpy().astype(np.float32))
    g["adamw_losses"] = ("F32", np.array(curve, dtype=np.float32))
    meta = {"format": "seek-train-golden", "version": VERSION, "case": name, "seed": str(seed),
            "attempt": str(attempt), "about": spec["about"], "B": str(B), "T": str(T),
            "lambda_mtp": str(LAMBDA_MTP), "alpha_balance": str(ALPHA_BAL),
            "adamw": json.dumps(ADAMW), "adamw_steps": str(ADAMW_STEPS),
            "mtp_previous_hidden": ref.MTP_PREVIOUS_HIDDEN}
    st.write(os.path.join(d, "train_golden.safetensors"), g, meta)

    sizes = {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))}
    n_par = sum(p.numel() for p in params.values())
    gnorm = float(torch.sqrt(sum((x * x).sum() for x in grads.values())))
    log(f"{name}: seed {seed} (attempt {attempt}), {len(tensors)} tensors, {n_par} trainable values, "
        f"{len(params)} grads; files " + ", ".join(f"{f} {s / 1024:.1f} KiB" for f, s in sizes.items())
        + f"; {time.time() - t0:.1f}s")
    log(f"    loss {float(res['total']):.6f} = main {float(res['main']):.6f} + {LAMBDA_MTP}*mtp "
        f"{float(res['mtp']):.6f} + {ALPHA_BAL}*balance {float(res['balance']):.6f}; |grad| {gnorm:.4f}")
    log(f"    adamw losses {[round(x, 6) for x in curve]}")
    if cfg["model_type"] in ref.DEEPSEEK:
        log(f"    routing min margin {min(first_margin, model2.min_margin):.2e} (first step and all AdamW "
            f"steps), correction bias changes {bias_changes} selections")
    log(f"    omitted grads: {sorted(set(tensors) - set(params))}")
    return sum(sizes.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (tests/golden/train)")
    ap.add_argument("--cases", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temp dir and compare byte for byte with --out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    gen.run_cases(CASES, build_case, args.cases, args.out, args.check, "seek-train-golden-")

if __name__ == "__main__":
    main()
