"""PyTorch peer for seek's training benchmark: one training step of a DeepSeek-V3-architecture model
(MLA + DeepSeekMoE + MTP), forward + backward + AdamW, in float32 on the CPU, written to be the fastest
HONEST eager PyTorch we can make on this machine (a 2-core AVX-512 Zen 5 with Debian's PyTorch 1.13).

    /usr/bin/python3 scripts/reference/train_bench.py                     # benchmark, JSON on stdout
    /usr/bin/python3 scripts/reference/train_bench.py --sweep             # also time the variants
    /usr/bin/python3 scripts/reference/train_bench.py --check             # correctness checks only

It is a benchmark peer, never a runtime dependency of seek.

WHAT ONE STEP IS
  Batch B x T random token ids (ids [B, T+1]; inputs ids[:, :T], targets ids[:, 1:]), every row an
  independent causal sequence. Model from the HF-style config (default configs/train-bench.json):
  embedding; per layer RMSNorm -> MLA (naive form: q = q_b(norm(q_a(x))), kv_a -> [c_kv ; k_pe],
  kv_b(norm(c_kv)) -> k_nope, v per head, YaRN RoPE on q_pe / k_pe with adjacent-pair rotation, causal
  softmax attention with the YaRN softmax scale, o_proj) -> residual -> RMSNorm -> dense SwiGLU (layers
  < first_k_dense_replace) or DeepSeekMoE (sigmoid scores, noaux_tc group-limited top-k with the
  correction bias, normalized gate weights x routed_scaling_factor, routed + shared SwiGLU experts) ->
  residual; final norm; lm_head; cross-entropy. MTP depth 1 as in scripts/reference/train_reference.py's
  loss contract: eh_proj([enorm(Emb(ids[t+1])) ; hnorm(final-normed h[t])]) -> one MoE block ->
  shared_head norm -> the same lm_head -> CE vs ids[t+2], t = 0..T-2.
  loss = CE_main + 0.3 CE_mtp + 1e-4 * sequence-wise balance loss (main MoE layers; seek's default
  balance_alpha). Then loss.backward(), torch.optim.AdamW(foreach=True).step() and the
  auxiliary-loss-free bias update (b -= 0.001 sign(load - mean load)), which is what seek's trainer does.

WHAT IS MEASURED
  * median wall time of --steps steps after 2 warm-up steps -> tokens/s (B*T tokens per step);
  * the f32 GEMM peak this PyTorch reaches in the same process (torch.mm 2048^3, best of several);
  * model FLOPs per token (training = 3 x forward; forward = 2 x the multiply-adds of every GEMM the
    token goes through + causal attention 2 H (dqk + dv) (T+1)/2 per layer; MTP parts x (T-1)/T;
    embedding lookups 0) and MFU = FLOPs/token x tokens/s / GEMM peak.

SPEED CHOICES (each measured; --sweep re-times the environment-level ones)
  * OpenBLAS core type: Debian's PyTorch calls OpenBLAS 0.3.21 (openmp flavour) for f32 GEMM; that
    version does not know Zen 5 and, with this machine's OPENBLAS_CORETYPE=Haswell, runs AVX2 kernels.
    OPENBLAS_CORETYPE=SKYLAKEX selects its AVX-512 kernels. It must be set before the library loads,
    so the script re-executes itself with the chosen environment (--coretype).
  * ATEN_CPU_CAPABILITY: this build runs its own elementwise kernels at AVX2 by default on this CPU;
    avx512 can be forced (--aten-cpu), also only before torch loads.
  * OMP_WAIT_POLICY (--omp-wait): PyTorch's intra-op pool and OpenBLAS share libgomp here.
  * threads: every core this process may run on (os.sched_getaffinity), unless --threads says otherwise.
    No in-process probe: an earlier version timed 2 steps at 1 and at 2 threads and kept the faster, and
    on this machine that probe picked 1 thread (2,217 tokens/s) where 2 threads ran at 3,608-3,754 in the
    same hour: two steps in a warming process are not a measurement. The GEMM peak (MFU denominator) is
    measured with the same threads.
  * OMP_WAIT_POLICY=active by default: on a quiet machine, 3 alternating rounds each on
    configs/train-bench.json (2026-12-05), active ran at 3186 / 3371 / 3501 tokens/s and passive at
    2777 / 2660 / 3297 (active waits spin between the many small parallel regions of a step). On a
    machine shared with other busy processes spinning is pathological (2 threads ran 15x slower in an
    earlier sweep): pass --omp-wait passive there, or better, benchmark on a quiet machine.
  * fewer, larger GEMMs: q_a and kv_a_proj_with_mqa read the same input -> one GEMM; each expert's
    gate_proj and up_proj -> one GEMM; same for the dense MLP and the shared expert. (The HF-layout
    weights are the row blocks of these fused matrices; --check exports them and compares.)
  * MoE dispatch by grouping: argsort of the flattened top-k expert ids, one index_select, one GEMM
    pair per expert (a Python loop over the experts, never over tokens), one index_add_ back. Each
    expert's weights are separate parameters, so backward does not zero-fill a stacked expert tensor
    per expert slice.
  * RMSNorm as a small autograd.Function (saves x and 1/rms; 3 fused-ish ops backward instead of the
    ~8-op autograd chain); SwiGLU via F.silu * up.
  * attention: baddbmm (additive causal mask, softmax scale as alpha) + softmax + bmm; split into
    --attn-chunks query blocks, each multiplying only the keys it can see (2 blocks do 3/4 of the
    full T x T work). F.scaled_dot_product_attention does not exist in 1.13. RoPE cos/sin once.
  * routing selection under no_grad (it is a constant for autograd, as in the loss contract).

LAST SWEEP (--sweep, 2 cores SHARED with other jobs: load average 2 to 8 from other jobs, so absolute
figures are low and noisy; re-run --sweep on a quiet machine before quoting them)
  OpenBLAS core: 1 thread SKYLAKEX 2372 tok/s (GEMM 254 GFLOP/s) vs Haswell 1319 (66) vs autodetect
  (picks Cooperlake) 1848 (163); 2 threads: passive 1766, unset/active wait 111-112 (spin + contention);
  attention blocks 1 / 2 / 4: 1756 / 2372 / 1564; ATEN_CPU_CAPABILITY=avx512 1558; mkldnn off 1583 (the
  last four at higher load than the first; no clear gain from any). At load ~1.8 (one other busy
  process): 1 thread 4320 tok/s (0.474 s/step, GEMM 255 GFLOP/s 1 thread) vs 2 threads passive 3424
  (GEMM 494 GFLOP/s with 2 threads).
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "train-bench.json"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5, help="timed steps (after 2 warm-up steps)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="intra-op threads (default: every core this process may run on)")
    ap.add_argument("--coretype", default="SKYLAKEX",
                    help="OPENBLAS_CORETYPE to run under ('auto' = unset, OpenBLAS detects)")
    ap.add_argument("--aten-cpu", default="default",
                    help="ATEN_CPU_CAPABILITY ('default' = unset; avx2, avx512)")
    ap.add_argument("--omp-wait", default="active",
                    help="OMP_WAIT_POLICY ('default' = unset; active, passive). active is fastest on a quiet "
                         "machine; passive when other processes share the cores (spinning threads then made "
                         "2-thread steps 15x slower)")
    ap.add_argument("--attn-chunks", type=int, default=2,
                    help="query blocks per attention (1 = one full T x T masked product)")
    ap.add_argument("--mkldnn", default="on", choices=["on", "off"], help="torch.backends.mkldnn.enabled")
    ap.add_argument("--json-only", action="store_true", help="only the JSON line (stdout)")
    ap.add_argument("--sweep", action="store_true",
                    help="also time the variants (each in a fresh process) and report them")
    ap.add_argument("--check", action="store_true", help="run the correctness checks and exit")
    return ap.parse_args(argv)


# ----------------------------------------------------------------------------------------------
# environment: BLAS core type etc. must be in the environment before libopenblas / torch load

ENV_KNOBS = (("OPENBLAS_CORETYPE", "coretype", "auto"), ("ATEN_CPU_CAPABILITY", "aten_cpu", "default"),
             ("OMP_WAIT_POLICY", "omp_wait", "default"))


def ensure_environment(args):
    """Re-exec this script with the requested environment unless it is already in place."""
    want = {}
    for var, attr, unset in ENV_KNOBS:
        v = getattr(args, attr)
        want[var] = None if v == unset else v
    if all(os.environ.get(k) == v for k, v in want.items()):
        return
    if os.environ.get("_TRAIN_BENCH_REEXEC"):
        raise SystemExit("train_bench: environment did not stick after re-exec")
    env = dict(os.environ)
    for k, v in want.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    env["_TRAIN_BENCH_REEXEC"] = "1"
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)


ARGS = parse_args()
ensure_environment(ARGS)

import ctypes  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def log(*a):
    if not ARGS.json_only:
        print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# small ops

class RMSNormFn(torch.autograd.Function):
    """y = x / sqrt(mean(x^2) + eps) * w over the last dim. Saves x and r = 1/rms."""

    @staticmethod
    def forward(ctx, x, w, eps):
        r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True).add_(eps))
        ctx.save_for_backward(x, w, r)
        return x * r * w

    @staticmethod
    def backward(ctx, g):
        x, w, r = ctx.saved_tensors
        xh = x * r                                           # normalized x
        gw = g * w
        dx = (gw - xh * (gw * xh).mean(-1, keepdim=True)) * r
        dw = (g * xh).reshape(-1, x.shape[-1]).sum(0)
        return dx, dw, None


def rms_norm(x, w, eps):
    return RMSNormFn.apply(x, w, eps)


def yarn_mscale(scale, mscale):
    return 0.1 * mscale * math.log(scale) + 1.0 if scale > 1 else 1.0


def rope_tables(cfg, T, dtype):
    """cos/sin [T, R/2] (times the YaRN attention factor), and the softmax scale; follows model.py."""
    R = cfg["qk_rope_head_dim"]
    theta = float(cfg.get("rope_theta", 10000.0))
    base = 1.0 / theta ** (torch.arange(0, R, 2, dtype=torch.float64) / R)
    inv, mult = base, 1.0
    scale = 1.0 / math.sqrt(cfg["qk_nope_head_dim"] + R)
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "yarn":
        factor = float(rs["factor"])
        orig = float(rs.get("original_max_position_embeddings", 4096))
        bf, bs = float(rs.get("beta_fast", 32)), float(rs.get("beta_slow", 1))
        corr = lambda n: R * math.log(orig / (n * 2 * math.pi)) / (2 * math.log(theta))  # noqa: E731
        lo, hi = max(math.floor(corr(bf)), 0), min(math.ceil(corr(bs)), R - 1)
        hi = hi + 0.001 if lo == hi else hi
        ramp = torch.clamp((torch.arange(R // 2, dtype=torch.float64) - lo) / (hi - lo), 0.0, 1.0)
        inv = base / factor * ramp + base * (1.0 - ramp)
        ms_all = yarn_mscale(factor, float(rs.get("mscale_all_dim", 0.0)))
        mult = yarn_mscale(factor, float(rs.get("mscale", 1.0))) / ms_all
        scale *= ms_all * ms_all
    elif rs:
        raise NotImplementedError(f"rope_scaling {rs}")
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return (torch.cos(ang) * mult).to(dtype), (torch.sin(ang) * mult).to(dtype), scale


def rope(x, cos, sin):
    """x [B, T, ..., R]: rotates adjacent pairs (x[2i], x[2i+1]) by position t's angle i.
    cos/sin already shaped to broadcast against [B, T, ..., R/2]."""
    xv = x.unflatten(-1, (-1, 2))
    a, b = xv[..., 0], xv[..., 1]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)


# ----------------------------------------------------------------------------------------------
# the model (functional; parameters in a flat dict)

class Model:
    def __init__(self, cfg, dtype=torch.float32, std=0.02, seed=0, attn_chunks=1):
        self.cfg = cfg
        c = cfg
        self.D, self.H, self.V = c["hidden_size"], c["num_attention_heads"], c["vocab_size"]
        self.L = c["num_hidden_layers"]
        self.Qr, self.C = c["q_lora_rank"], c["kv_lora_rank"]
        self.Dn, self.R, self.Dv = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
        self.E, self.K = c["n_routed_experts"], c["num_experts_per_tok"]
        self.G, self.TG = c.get("n_group") or 1, c.get("topk_group") or 1
        self.Im, self.I = c["moe_intermediate_size"], c["intermediate_size"]
        self.n_shared = c.get("n_shared_experts") or 0
        self.eps = c["rms_norm_eps"]
        self.rsf = float(c.get("routed_scaling_factor", 1.0))
        self.n_mtp = c.get("num_nextn_predict_layers", 0) or 0
        assert self.Qr, "this benchmark implements the q_lora form (V3)"
        assert c.get("scoring_func") == "sigmoid" and c.get("topk_method") == "noaux_tc"
        assert self.n_mtp in (0, 1) and not c.get("tie_word_embeddings", False)
        self.dtype = dtype
        self.attn_chunks = attn_chunks
        g = torch.Generator().manual_seed(seed)
        P = {}

        def lin(name, out_f, in_f):
            P[name] = (torch.randn(out_f, in_f, generator=g, dtype=torch.float64) * std).to(dtype)

        def ones(name, n):
            P[name] = torch.ones(n, dtype=dtype)

        D, H = self.D, self.H
        lin("embed", self.V, D)
        for i in range(self.L + self.n_mtp):
            p = f"l{i}."
            ones(p + "in_norm", D)
            lin(p + "qkv_a", self.Qr + self.C + self.R, D)     # [q_a_proj ; kv_a_proj_with_mqa]
            ones(p + "q_a_norm", self.Qr)
            lin(p + "q_b", H * (self.Dn + self.R), self.Qr)
            ones(p + "kv_a_norm", self.C)
            lin(p + "kv_b", H * (self.Dn + self.Dv), self.C)
            lin(p + "o", D, H * self.Dv)
            ones(p + "post_norm", D)
            if self.is_moe(i):
                lin(p + "gate", self.E, D)
                P[p + "bias"] = torch.zeros(self.E, dtype=dtype)   # e_score_correction_bias (no grad)
                for e in range(self.E):
                    lin(p + f"e{e}.gu", 2 * self.Im, D)           # [gate_proj ; up_proj]
                    lin(p + f"e{e}.down", D, self.Im)
                if self.n_shared:
                    lin(p + "sh.gu", 2 * self.n_shared * self.Im, D)
                    lin(p + "sh.down", D, self.n_shared * self.Im)
            else:
                lin(p + "mlp.gu", 2 * self.I, D)
                lin(p + "mlp.down", D, self.I)
        ones("norm", D)
        lin("lm_head", self.V, D)
        if self.n_mtp:
            ones("mtp.enorm", D)
            ones("mtp.hnorm", D)
            lin("mtp.eh", D, 2 * D)
            ones("mtp.head_norm", D)
        self.P = P
        for k, v in P.items():
            if not k.endswith(".bias"):
                v.requires_grad_(True)
        self._rope = {}

    def is_moe(self, i):
        c = self.cfg
        return bool(self.E) and i >= c.get("first_k_dense_replace", 0) and i % c.get("moe_layer_freq", 1) == 0

    def params(self):
        return [v for k, v in self.P.items() if v.requires_grad]

    def tables(self, T):
        if T not in self._rope:
            cos, sin, scale = rope_tables(self.cfg, T, self.dtype)
            mask = torch.full((T, T), float("-inf"), dtype=self.dtype).triu_(1)
            self._rope[T] = (cos, sin, scale, mask)
        return self._rope[T]

    # -- MLA (naive form) --------------------------------------------------------------------------
    def mla(self, p, x, B, T):
        P, H, Dn, R, Dv, C, Qr = self.P, self.H, self.Dn, self.R, self.Dv, self.C, self.Qr
        cos, sin, scale, mask = self.tables(T)
        a = F.linear(x, P[p + "qkv_a"])                                        # [N, Qr + C + R]
        q = F.linear(rms_norm(a[:, :Qr], P[p + "q_a_norm"], self.eps), P[p + "q_b"])
        q = q.view(B, T, H, Dn + R)
        q = torch.cat((q[..., :Dn], rope(q[..., Dn:], cos[:, None, :], sin[:, None, :])), dim=-1)
        kv = F.linear(rms_norm(a[:, Qr:Qr + C], P[p + "kv_a_norm"], self.eps), P[p + "kv_b"])
        kv = kv.view(B, T, H, Dn + Dv)
        k_pe = rope(a[:, Qr + C:].view(B, T, R), cos, sin)                      # [B, T, R], all heads
        k = torch.cat((kv[..., :Dn], k_pe[:, :, None, :].expand(B, T, H, R)), dim=-1)
        q = q.transpose(1, 2).reshape(B * H, T, Dn + R)
        k = k.transpose(1, 2).reshape(B * H, T, Dn + R)
        v = kv[..., Dn:].transpose(1, 2).reshape(B * H, T, Dv)
        kt = k.transpose(1, 2)
        n = min(self.attn_chunks, T)
        if n == 1:
            s = torch.baddbmm(mask, q, kt, alpha=scale)                         # [BH, T, T], masked
            o = torch.bmm(torch.softmax(s, dim=-1), v)                          # [BH, T, Dv]
        else:
            # query blocks skip the key blocks they cannot see: (n+1)/(2n) of the full T x T work
            cuts, outs = [T * j // n for j in range(n + 1)], []
            for lo, hi in zip(cuts[:-1], cuts[1:]):
                s = torch.baddbmm(mask[lo:hi, :hi], q[:, lo:hi], kt[:, :, :hi], alpha=scale)
                outs.append(torch.bmm(torch.softmax(s, dim=-1), v[:, :hi]))
            o = torch.cat(outs, dim=1)
        o = o.view(B, H, T, Dv).transpose(1, 2).reshape(B * T, H * Dv)
        return F.linear(o, P[p + "o"])

    # -- feed-forward ------------------------------------------------------------------------------
    @staticmethod
    def swiglu(x, w_gu, w_down):
        gu = F.linear(x, w_gu)
        g, u = gu.chunk(2, dim=-1)
        return F.linear(F.silu(g) * u, w_down)

    def moe(self, p, x, B, T, stats):
        """x [N, D] -> [N, D]. stats collects (scores [B,T,E], selection counts) for the balance
        loss and the expert loads for the bias update."""
        P, E, K, N = self.P, self.E, self.K, x.shape[0]
        s = torch.sigmoid(F.linear(x, P[p + "gate"]))                          # [N, E] unbiased scores
        with torch.no_grad():                                                  # selection: a constant
            sel = s + P[p + "bias"]
            if self.G > 1:
                gs = sel.view(N, self.G, E // self.G).topk(2, dim=-1).values.sum(-1)   # [N, G]
                drop = torch.ones_like(gs, dtype=torch.bool)
                drop.scatter_(1, gs.topk(self.TG, dim=-1).indices, False)
                sel = sel.masked_fill(drop.repeat_interleave(E // self.G, dim=1), float("-inf"))
            idx = sel.topk(K, dim=-1).indices                                  # [N, K]
            flat = idx.reshape(-1)
            order = torch.argsort(flat)                                        # slots grouped by expert
            tok = order // K                                                   # token of each slot
            counts = torch.bincount(flat, minlength=E)
        w = s.gather(1, idx)
        w = w / (w.sum(-1, keepdim=True) + 1e-20) * self.rsf                   # [N, K]
        xs = x.index_select(0, tok)                                            # [N*K, D] by expert
        outs = []
        for e, xe in enumerate(xs.split(counts.tolist())):
            if xe.shape[0]:
                outs.append(self.swiglu(xe, P[p + f"e{e}.gu"], P[p + f"e{e}.down"]))
        ys = torch.cat(outs) * w.reshape(-1, 1).index_select(0, order)
        y = torch.zeros_like(x).index_add_(0, tok, ys)
        if self.n_shared:
            y = y + self.swiglu(x, P[p + "sh.gu"], P[p + "sh.down"])
        if stats is not None:
            stats.append((p, s.view(B, T, E), idx.view(B, T, K), counts))
        return y

    def block(self, i, x, B, T, stats):
        p = f"l{i}."
        h = x + self.mla(p, rms_norm(x, self.P[p + "in_norm"], self.eps), B, T)
        hn = rms_norm(h, self.P[p + "post_norm"], self.eps)
        if self.is_moe(i):
            f = self.moe(p, hn, B, T, stats)
        else:
            f = self.swiglu(hn, self.P[p + "mlp.gu"], self.P[p + "mlp.down"])
        return h + f

    # -- whole model -------------------------------------------------------------------------------
    def forward(self, ids):
        """ids [B, T+1] -> dict(logits [B*T, V], mtp_logits [B*(T-1), V] or None, stats)."""
        P = self.P
        B, T = ids.shape[0], ids.shape[1] - 1
        inp = ids[:, :T]
        x = F.embedding(inp.reshape(-1), P["embed"])                           # [N, D]
        stats_main, stats_mtp = [], []
        for i in range(self.L):
            x = self.block(i, x, B, T, stats_main)
        hn = rms_norm(x, P["norm"], self.eps)
        out = dict(logits=F.linear(hn, P["lm_head"]), mtp_logits=None, stats_main=stats_main,
                   stats_mtp=stats_mtp)
        if self.n_mtp:
            Tm = T - 1
            e = rms_norm(F.embedding(ids[:, 1:T].reshape(-1), P["embed"]), P["mtp.enorm"], self.eps)
            h = rms_norm(hn.view(B, T, -1)[:, :Tm].reshape(B * Tm, -1), P["mtp.hnorm"], self.eps)
            xm = F.linear(torch.cat((e, h), dim=-1), P["mtp.eh"])
            xm = self.block(self.L, xm, B, Tm, stats_mtp)
            out["mtp_logits"] = F.linear(rms_norm(xm, P["mtp.head_norm"], self.eps), P["lm_head"])
        return out

    def balance_loss(self, stats):
        """Complementary sequence-wise balance loss, summed over MoE layers, mean over sequences."""
        total = 0.0
        for _, s, idx, _ in stats:
            B, T, E = s.shape
            with torch.no_grad():
                cnt = torch.zeros(B, E, dtype=s.dtype).scatter_add_(
                    1, idx.reshape(B, -1), torch.ones(B, idx.shape[1] * idx.shape[2], dtype=s.dtype))
                f = cnt * (E / (self.K * T))
            Pm = (s / s.sum(-1, keepdim=True)).mean(1)                          # [B, E]
            total = total + (f * Pm).sum(-1).mean()
        return total

    def loss(self, ids, balance_alpha=1e-4, mtp_lambda=0.3):
        out = self.forward(ids)
        T = ids.shape[1] - 1
        main = F.cross_entropy(out["logits"], ids[:, 1:].reshape(-1))
        total = main
        parts = dict(main=main.detach())
        if out["mtp_logits"] is not None:
            mtp = F.cross_entropy(out["mtp_logits"], ids[:, 2:T + 1].reshape(-1))
            total = total + mtp_lambda * mtp
            parts["mtp"] = mtp.detach()
        if balance_alpha and out["stats_main"]:
            bal = self.balance_loss(out["stats_main"])
            total = total + balance_alpha * bal
            parts["balance"] = bal.detach()
        return total, parts, out

    @torch.no_grad()
    def update_bias(self, out, gamma=1e-3):
        """Auxiliary-loss-free balancing: b -= gamma * sign(load - mean load), every routed layer."""
        for p, _, _, counts in out["stats_main"] + out["stats_mtp"]:
            load = counts.to(self.dtype)
            self.P[p + "bias"].sub_(gamma * torch.sign(load - load.mean()))

    # -- HF-layout export, for model.py's float64 Reference ----------------------------------------
    def hf_weights(self):
        P, Qr, Im = self.P, self.Qr, self.Im
        W = {"model.embed_tokens.weight": P["embed"], "model.norm.weight": P["norm"],
             "lm_head.weight": P["lm_head"]}
        for i in range(self.L + self.n_mtp):
            p, q = f"l{i}.", f"model.layers.{i}."
            a = P[p + "qkv_a"]
            W.update({q + "input_layernorm.weight": P[p + "in_norm"],
                      q + "self_attn.q_a_proj.weight": a[:Qr],
                      q + "self_attn.kv_a_proj_with_mqa.weight": a[Qr:],
                      q + "self_attn.q_a_layernorm.weight": P[p + "q_a_norm"],
                      q + "self_attn.q_b_proj.weight": P[p + "q_b"],
                      q + "self_attn.kv_a_layernorm.weight": P[p + "kv_a_norm"],
                      q + "self_attn.kv_b_proj.weight": P[p + "kv_b"],
                      q + "self_attn.o_proj.weight": P[p + "o"],
                      q + "post_attention_layernorm.weight": P[p + "post_norm"]})

            def mlp(prefix, gu, down, inter):
                W.update({prefix + "gate_proj.weight": gu[:inter], prefix + "up_proj.weight": gu[inter:],
                          prefix + "down_proj.weight": down})
            if self.is_moe(i):
                W[q + "mlp.gate.weight"] = P[p + "gate"]
                W[q + "mlp.gate.e_score_correction_bias"] = P[p + "bias"]
                for e in range(self.E):
                    mlp(q + f"mlp.experts.{e}.", P[p + f"e{e}.gu"], P[p + f"e{e}.down"], Im)
                if self.n_shared:
                    mlp(q + "mlp.shared_experts.", P[p + "sh.gu"], P[p + "sh.down"], self.n_shared * Im)
            else:
                mlp(q + "mlp.", P[p + "mlp.gu"], P[p + "mlp.down"], self.I)
        if self.n_mtp:
            q = f"model.layers.{self.L}."
            W.update({q + "embed_tokens.weight": P["embed"], q + "enorm.weight": P["mtp.enorm"],
                      q + "hnorm.weight": P["mtp.hnorm"], q + "eh_proj.weight": P["mtp.eh"],
                      q + "shared_head.norm.weight": P["mtp.head_norm"],
                      q + "shared_head.head.weight": P["lm_head"]})
        return {k: v.detach().to(torch.float64).clone() for k, v in W.items()}


# ----------------------------------------------------------------------------------------------
# FLOPs per token

def flops_per_token(cfg, T):
    """-> (training FLOPs per token, breakdown dict of forward FLOPs per token)."""
    D, H, V = cfg["hidden_size"], cfg["num_attention_heads"], cfg["vocab_size"]
    Qr, C = cfg["q_lora_rank"], cfg["kv_lora_rank"]
    Dn, R, Dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    E, K, Im, I = cfg["n_routed_experts"], cfg["num_experts_per_tok"], cfg["moe_intermediate_size"], \
        cfg["intermediate_size"]
    S = cfg.get("n_shared_experts") or 0
    L, fk, freq = cfg["num_hidden_layers"], cfg.get("first_k_dense_replace", 0), cfg.get("moe_layer_freq", 1)
    n_mtp = cfg.get("num_nextn_predict_layers", 0) or 0
    attn_proj = 2 * (D * Qr + D * (C + R) + Qr * H * (Dn + R) + C * H * (Dn + Dv) + H * Dv * D)
    attn_core = 2 * H * (Dn + R + Dv) * (T + 1) / 2
    dense = 2 * 3 * D * I
    moe = 2 * (D * E + K * 3 * D * Im + S * 3 * D * Im)
    head = 2 * D * V
    n_moe = sum(1 for i in range(L) if E and i >= fk and i % freq == 0)
    b = {"attn_proj": L * attn_proj, "attn_core": L * attn_core, "dense_mlp": (L - n_moe) * dense,
         "moe": n_moe * moe, "lm_head": head}
    if n_mtp:
        f = (T - 1) / T
        b["mtp_eh_proj"] = f * 2 * 2 * D * D
        b["mtp_block"] = f * (attn_proj + (T - 1 + 1) / 2 * 2 * H * (Dn + R + Dv) + moe)
        b["mtp_lm_head"] = f * head
    return 3 * sum(b.values()), b


# ----------------------------------------------------------------------------------------------
# machine facts

def blas_facts():
    libs = sorted({ln.split()[-1] for ln in open("/proc/self/maps")
                   if re.search(r"blas|lapack|gomp|mkl|dnnl", ln) and "/" in ln})
    core, config = None, None
    for path in libs:
        if "openblas" in os.path.basename(path) and "lib" in path:
            try:
                lib = ctypes.CDLL(path)
                lib.openblas_get_corename.restype = ctypes.c_char_p
                lib.openblas_get_config.restype = ctypes.c_char_p
                core = lib.openblas_get_corename().decode()
                config = lib.openblas_get_config().decode()
                break
            except (OSError, AttributeError):
                pass
    alt = ""
    try:
        alt = subprocess.run(["update-alternatives", "--display", "libblas.so.3-x86_64-linux-gnu"],
                             capture_output=True, text=True).stdout
        alt = next((ln.strip() for ln in alt.splitlines() if "currently points" in ln), "")
    except OSError:
        pass
    return dict(libs=libs, openblas_core=core, openblas_config=config, alternative=alt)


def gemm_peak(n=2048, reps=8):
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def aten_capability():
    m = re.search(r"CPU capability usage: (\S+)", torch.__config__.show())
    return m.group(1) if m else "?"


def load1():
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except OSError:
        return -1.0


# ----------------------------------------------------------------------------------------------
# benchmark

def bench(cfg, args):
    torch.manual_seed(0)
    model = Model(cfg, torch.float32, attn_chunks=args.attn_chunks)
    opt = torch.optim.AdamW(model.params(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1,
                            foreach=True)
    ids = torch.randint(0, cfg["vocab_size"], (args.batch, args.seq + 1), generator=torch.Generator().manual_seed(1))

    def step():
        opt.zero_grad(set_to_none=True)
        loss, parts, out = model.loss(ids)
        loss.backward()
        opt.step()
        model.update_bias(out)
        return float(loss)

    def timed(label):
        t = time.perf_counter()
        loss = step()
        dt = time.perf_counter() - t
        log(f"  step {label}: {dt:.3f} s  loss {loss:.4f}  threads {torch.get_num_threads()}  load {load1():.2f}")
        return dt, loss

    for i in range(2):
        timed(f"warm-up {i}")
    times, losses = [], []
    for i in range(args.steps):
        dt, loss = timed(str(i))
        times.append(dt)
        losses.append(loss)
    return statistics.median(times), times, losses


def main_bench(args):
    with open(args.config) as f:
        cfg = json.load(f)
    torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = args.mkldnn == "on"
    facts = blas_facts()
    log(f"torch {torch.__version__}; threads {torch.get_num_threads()}; "
        f"ATen CPU capability {aten_capability()}; "
        f"mkldnn {torch.backends.mkldnn.enabled}")
    log(f"BLAS: {facts['alternative']}; OpenBLAS core {facts['openblas_core']} ({facts['openblas_config']}); "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; "
        f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY')}")
    log("loaded: " + ", ".join(facts["libs"]))
    peak = gemm_peak()
    log(f"f32 GEMM peak (torch.mm 2048^3, best of 8): {peak:.1f} GFLOP/s")
    fpt, br = flops_per_token(cfg, args.seq)
    log(f"FLOPs per token (training = 3 x forward): {fpt / 1e6:.3f} M; forward breakdown (MFLOP/token):")
    for k, v in br.items():
        log(f"  {k:12s} {v / 1e6:8.4f}")
    load_before = load1()
    log(f"load before: {load_before:.2f}")
    med, times, losses = bench(cfg, args)
    tokens = args.batch * args.seq
    tps = tokens / med
    mfu = fpt * tps / (peak * 1e9)
    log(f"step median {med:.3f} s over {len(times)} steps -> {tps:.0f} tokens/s, "
        f"{fpt * tps / 1e9:.1f} GFLOP/s, MFU {100 * mfu:.1f}% of the measured GEMM peak")
    return dict(impl="pytorch", tokens_per_s=round(tps, 1), step_seconds_median=round(med, 4),
                step_seconds=[round(t, 4) for t in times], flops_per_token=round(fpt),
                flops_breakdown_fwd={k: round(v) for k, v in br.items()},
                gemm_peak_gflops=round(peak, 1), mfu=round(mfu, 4), threads=torch.get_num_threads(),
                blas=f"OpenBLAS {facts['openblas_config']}" if facts["openblas_config"] else facts["libs"],
                coretype=facts["openblas_core"], omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                aten_cpu_capability=os.environ.get("ATEN_CPU_CAPABILITY") or "default",
                mkldnn=args.mkldnn, attn_chunks=args.attn_chunks, batch=args.batch, seq=args.seq, torch=torch.__version__,
                loss_terms="main + 0.3 mtp + 1e-4 sequence balance; aux-free bias update",
                optimizer="torch.optim.AdamW(foreach=True) (1.13 has no fused CPU AdamW)",
                load_avg_before=load_before, load_avg_after=load1())


def _v(threads=2, core="SKYLAKEX", wait="active", chunks=2, aten="default", mkldnn="on"):
    return ["--threads", str(threads), "--coretype", core, "--omp-wait", wait, "--attn-chunks", str(chunks),
            "--aten-cpu", aten, "--mkldnn", mkldnn]


VARIANTS = [  # (name, full flag set); each runs in a fresh process (environment knobs need one)
    ("defaults: 2 threads, SKYLAKEX, active wait, 2 attention blocks", _v()),
    ("1 thread", _v(threads=1)),
    ("OMP_WAIT_POLICY=passive", _v(wait="passive")),
    ("OMP_WAIT_POLICY unset", _v(wait="default")),
    ("OpenBLAS Haswell kernels (machine default)", _v(core="Haswell")),
    ("OpenBLAS autodetect", _v(core="auto")),
    ("attention as 1 full masked block", _v(chunks=1)),
    ("attention in 4 query blocks", _v(chunks=4)),
    ("ATEN_CPU_CAPABILITY=avx512", _v(aten="avx512")),
    ("mkldnn off", _v(mkldnn="off")),
]


def sweep(args):
    res = {}
    base = [sys.executable, os.path.abspath(__file__), "--config", args.config, "--batch", str(args.batch),
            "--seq", str(args.seq), "--steps", str(args.steps), "--json-only"]
    env = {k: v for k, v in os.environ.items() if k != "_TRAIN_BENCH_REEXEC"}
    for name, extra in VARIANTS:
        try:   # a pathological variant (spinning threads on a busy machine) may take minutes
            r = subprocess.run(base + extra, capture_output=True, text=True, env=env, timeout=240)
        except subprocess.TimeoutExpired:
            res[name] = dict(error="timed out after 240 s")
            log(f"  {name}: timed out after 240 s")
            continue
        try:
            j = json.loads(r.stdout.strip().splitlines()[-1])
            res[name] = dict(tokens_per_s=j["tokens_per_s"], gemm_peak_gflops=j["gemm_peak_gflops"],
                             coretype=j["coretype"], load_before=j["load_avg_before"],
                             load_after=j["load_avg_after"])
            log(f"  {name:42s} {j['tokens_per_s']:8.0f} tokens/s   GEMM peak {j['gemm_peak_gflops']:6.1f} "
                f"GFLOP/s  core {j['coretype']}")
        except (ValueError, IndexError, KeyError):
            res[name] = dict(error=r.stderr.strip()[-300:])
            log(f"  {name}: failed: {r.stderr.strip()[-300:]}")
    return res


# ----------------------------------------------------------------------------------------------
# correctness checks

def check(args):
    sys.path.insert(0, HERE)
    import model as reference                                               # float64 oracle
    with open(args.config) as f:
        cfg = json.load(f)
    torch.set_num_threads(args.threads)
    ok = True

    # 1. the RMSNorm autograd.Function against autograd through the plain formula
    x = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, dtype=torch.float64, requires_grad=True)
    g = torch.autograd.gradcheck(lambda a, b: RMSNormFn.apply(a, b, 1e-6), (x, w))
    log(f"check RMSNorm backward (gradcheck, float64): {'ok' if g else 'FAIL'}")
    ok &= bool(g)

    # 2. float64 forward vs scripts/reference/model.py (main and MTP logits), random routing bias so
    #    the correction bias matters, weights with std 0.1 so that routing and attention are not flat
    m = Model(cfg, torch.float64, std=0.1, seed=3, attn_chunks=args.attn_chunks)
    with torch.no_grad():
        for k in m.P:
            if k.endswith(".bias"):
                m.P[k].copy_(torch.randn(m.E, dtype=torch.float64) * 0.05)
            elif "norm" in k:
                m.P[k].copy_(1 + 0.1 * torch.randn_like(m.P[k]))
    ref = reference.Reference(cfg, m.hf_weights())
    assert reference.MTP_PREVIOUS_HIDDEN == "post_final_norm"
    B, T = 2, 12
    ids = torch.randint(0, cfg["vocab_size"], (B, T + 1), generator=torch.Generator().manual_seed(5))
    refs = []
    for b in range(B):
        r = ref.run(ids[b, :T].numpy())
        rm, _ = ref.mtp(ids[b, 1:T], r["mtp_prev_hidden"][:-1])
        refs.append((r["logits"], rm["mtp.0.logits"]))
    worst = 0.0
    for chunks in sorted({1, 3, args.attn_chunks}):                  # ragged query blocks included
        m.attn_chunks = chunks
        with torch.no_grad():
            out = m.forward(ids)
        for b in range(B):
            worst = max(worst, (out["logits"].view(B, T, -1)[b] - refs[b][0]).abs().max().item(),
                        (out["mtp_logits"].view(B, T - 1, -1)[b] - refs[b][1]).abs().max().item())
    good = worst < 1e-9
    log(f"check float64 logits (main + MTP, B={B}, T={T}, attention query blocks "
        f"{sorted({1, 3, args.attn_chunks})}) vs scripts/reference/model.py: max |diff| {worst:.2e} "
        f"{'ok' if good else 'FAIL'}")
    ok &= good

    # 3. float32 at init: loss ~ ln(vocab); 20 AdamW steps on one fixed batch lower it
    m = Model(cfg, torch.float32, attn_chunks=args.attn_chunks)
    opt = torch.optim.AdamW(m.params(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, foreach=True)
    ids = torch.randint(0, cfg["vocab_size"], (2, 65), generator=torch.Generator().manual_seed(7))
    losses = []
    for _ in range(21):
        opt.zero_grad(set_to_none=True)
        loss, parts, o = m.loss(ids)
        losses.append((float(parts["main"]), float(parts.get("mtp", 0.0)), float(loss)))
        if len(losses) == 21:
            break
        loss.backward()
        opt.step()
        m.update_bias(o)
    ln_v = math.log(cfg["vocab_size"])
    g1 = abs(losses[0][0] - ln_v) < 0.1 and abs(losses[0][1] - ln_v) < 0.1   # logit std ~0.3 adds ~0.05
    g2 = losses[-1][2] < losses[0][2] - 0.5 and all(losses[i + 1][2] < losses[i][2] for i in range(20))
    log(f"check init loss main {losses[0][0]:.4f} mtp {losses[0][1]:.4f} vs ln(V) {ln_v:.4f}: {'ok' if g1 else 'FAIL'}")
    log(f"check 20 AdamW steps (lr 1e-3, fixed 2x64 batch): total {losses[0][2]:.4f} -> {losses[-1][2]:.4f}, "
        f"monotone: {'ok' if g2 else 'FAIL'}")
    ok &= g1 and g2
    print(json.dumps(dict(check="ok" if ok else "FAIL", logits_max_abs_diff_f64=worst,
                          init_loss=losses[0][0], loss_after_20=losses[-1][2])))
    return 0 if ok else 1


def main():
    args = ARGS
    if args.check:
        sys.exit(check(args))
    variants = None
    if args.sweep:
        log("variants (each a fresh process, --steps timed steps):")
        variants = sweep(args)
    res = main_bench(args)
    res["variants_tried"] = variants if variants is not None else \
        "environment variants not re-timed (pass --sweep); see the docstring"
    print(json.dumps(res))


if __name__ == "__main__":
    main()
