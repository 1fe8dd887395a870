"""Float64 reference forward pass for DeepSeek-V3 / DeepSeek-V2 (MLA + DeepSeekMoE + MTP) and dense
Qwen2 / Llama (GQA), written from the formulas in /work/shared/design/deepseek-facts.md and the
decisions listed below. It is the oracle for seek's golden tests, so it favours plainness over speed:
every weight is upcast to float64 and every op runs in float64 on the CPU.

What it does
  * loads an HF-layout checkpoint directory (config.json + model.safetensors or sharded files with
    model.safetensors.index.json; F32 / BF16 / F16 / FP8-e4m3 with 128x128 `weight_scale_inv`),
  * runs a causal forward over a token sequence and records intermediates (see `Reference.forward`),
  * MLA in two forms: "naive" (decompress k/v per head) and "absorbed" (cache c_kv and k_pe, fold
    W_UK into the query and W_UV after the softmax), and a KV cache so a prompt can be fed in chunks,
  * the V3 MTP module (depth 1).

What it does not do: batching, padding masks, sliding windows, training, dropout, any speed trick.

Decisions it follows (shared with seek):
  * pre-norm blocks; RMSNorm x / sqrt(mean(x^2) + eps) * w
  * RoPE pairs: DeepSeek rotates adjacent pairs (x[2i], x[2i+1]); Qwen2/Llama the half-split pairs
    (x[i], x[i + d/2]); positions 0..T-1
  * YaRN (rope_scaling type "yarn") follows HF DeepSeek and is applied whenever configured: ramped
    inv_freq, cos/sin times mscale(factor, mscale)/mscale(factor, mscale_all_dim), softmax scale times
    mscale(factor, mscale_all_dim)^2. Missing keys take HF's defaults (beta_fast 32, beta_slow 1,
    mscale 1, mscale_all_dim 0, original_max_position_embeddings 4096)
  * llama3 rope_scaling: the Llama-3.1 frequency rescale
  * MoE routing: groups not kept are excluded (-inf), ties go to the lower index, gate weights are the
    unbiased scores, normalized when norm_topk_prob (and k > 1), then always times
    routed_scaling_factor; layer i is MoE iff n_routed_experts > 0, i >= first_k_dense_replace and
    i % moe_layer_freq == 0
  * MTP (depth 1): h' = eh_proj([enorm(Emb(t_{i+1})); hnorm(h_i)]), h = main model's last hidden state
    before the final norm, one block over positions 0..T-2, shared_head.norm, the main lm_head.
"""

import json
import math
import os
import sys

import numpy as np
import torch

try:
    from . import fp8, safetensors_io
except ImportError:  # run as a script from this directory
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import fp8
    import safetensors_io

DT = torch.float64
DEEPSEEK = ("deepseek_v2", "deepseek_v3")

# Which main-model hidden state feeds the MTP module's hnorm. The facts sheet says the last hidden
# state BEFORE the final norm; vLLM and SGLang, which run DeepSeek's released MTP weights at the
# reported acceptance rates, feed the state AFTER model.norm. seek follows the engines ("post_final_norm");
# "pre_final_norm" regenerates goldens for the other convention.
MTP_PREVIOUS_HIDDEN = "post_final_norm"
DENSE = ("qwen2", "llama")


# ----------------------------------------------------------------------------------------------
# checkpoint loading

def load_checkpoint(path):
    """-> (config dict, {name: float64 torch tensor}). FP8 weights are dequantized with their
    `<name>_scale_inv` blocks (block size from quantization_config.weight_block_size)."""
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    raw = {}
    for fn in files:
        tensors, _ = safetensors_io.read(os.path.join(path, fn))
        for k, v in tensors.items():
            if k in raw:
                raise ValueError(f"{path}: tensor {k} appears in more than one shard")
            raw[k] = v
    block = 128
    q = config.get("quantization_config")
    if q and q.get("weight_block_size"):
        bo, bi = q["weight_block_size"]
        if bo != bi:
            raise NotImplementedError("non-square fp8 blocks")
        block = bo
    weights = {}
    for name, (dtype, arr) in raw.items():
        if name.endswith("_scale_inv"):
            continue
        if dtype == "F8_E4M3":
            sname = name + "_scale_inv"
            if sname not in raw:
                raise ValueError(f"{path}: fp8 tensor {name} has no {sname}")
            sdt, sarr = raw[sname]
            val = fp8.dequantize_blockwise(arr, safetensors_io.to_float64(sdt, sarr), block)
        else:
            val = safetensors_io.to_float64(dtype, arr)
        weights[name] = torch.from_numpy(np.ascontiguousarray(val)).to(DT)
    return config, weights


# ----------------------------------------------------------------------------------------------
# small ops

def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * w


def silu(x):
    return x * torch.sigmoid(x)


def yarn_mscale(scale, mscale):
    return 0.1 * mscale * math.log(scale) + 1.0 if scale > 1 else 1.0


def rope_inv_freq(config, dim):
    """-> (inv_freq float64 [dim/2], cos/sin multiplier)."""
    theta = float(config.get("rope_theta", 10000.0))
    i = torch.arange(0, dim, 2, dtype=DT)
    base = 1.0 / theta ** (i / dim)
    rs = config.get("rope_scaling")
    if not rs:
        return base, 1.0
    kind = rs.get("rope_type", rs.get("type"))
    if kind == "yarn":
        factor = float(rs["factor"])
        orig = float(rs.get("original_max_position_embeddings", 4096))
        beta_fast = float(rs.get("beta_fast", 32))
        beta_slow = float(rs.get("beta_slow", 1))
        mscale = float(rs.get("mscale", 1.0))
        mscale_all_dim = float(rs.get("mscale_all_dim", 0.0))

        def corr_dim(n_rot):
            return dim * math.log(orig / (n_rot * 2 * math.pi)) / (2 * math.log(theta))

        low = max(math.floor(corr_dim(beta_fast)), 0)
        high = min(math.ceil(corr_dim(beta_slow)), dim - 1)
        if low == high:
            high += 0.001
        ramp = torch.clamp((torch.arange(dim // 2, dtype=DT) - low) / (high - low), 0.0, 1.0)
        extra_mask = 1.0 - ramp            # 1 = keep the original (extrapolated) frequency
        inv = (base / factor) * (1.0 - extra_mask) + base * extra_mask
        return inv, yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim)
    if kind == "llama3":
        factor = float(rs["factor"])
        lo_f = float(rs["low_freq_factor"])
        hi_f = float(rs["high_freq_factor"])
        old = float(rs["original_max_position_embeddings"])
        wavelen = 2 * math.pi / base
        low_wl, high_wl = old / lo_f, old / hi_f
        out = torch.where(wavelen > low_wl, base / factor, base)
        smooth = (old / wavelen - lo_f) / (hi_f - lo_f)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = (wavelen >= high_wl) & (wavelen <= low_wl)
        return torch.where(medium, smoothed, out), 1.0
    if kind in (None, "default"):
        return base, 1.0
    raise NotImplementedError(f"rope_scaling type {kind!r}")


def rope_cos_sin(inv_freq, mult, positions):
    ang = torch.as_tensor(positions, dtype=DT)[:, None] * inv_freq[None, :]     # [T, R/2]
    return torch.cos(ang) * mult, torch.sin(ang) * mult


def rope_adjacent(x, cos, sin):
    """x [T, ..., R]; rotates (x[2i], x[2i+1]) by angle i. cos/sin [T, R/2]."""
    shape = [x.shape[0]] + [1] * (x.dim() - 2) + [cos.shape[-1]]
    c, s = cos.reshape(shape), sin.reshape(shape)
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out


def rope_half(x, cos, sin):
    """x [T, ..., d]; rotates (x[i], x[i + d/2]) by angle i. cos/sin [T, d/2]."""
    h = x.shape[-1] // 2
    shape = [x.shape[0]] + [1] * (x.dim() - 2) + [h]
    c, s = cos.reshape(shape), sin.reshape(shape)
    a, b = x[..., :h], x[..., h:]
    return torch.cat([a * c - b * s, b * c + a * s], dim=-1)


def causal_softmax(scores, q_pos, k_pos):
    """scores [..., Tq, Tk]; key j is visible to query i iff k_pos[j] <= q_pos[i]."""
    visible = torch.as_tensor(k_pos)[None, :] <= torch.as_tensor(q_pos)[:, None]
    scores = scores.masked_fill(~visible, float("-inf"))
    return torch.softmax(scores, dim=-1)


def stable_desc(scores):
    """indices sorting each row by descending score; equal scores keep ascending index order."""
    return np.argsort(-scores, axis=-1, kind="stable")


# ----------------------------------------------------------------------------------------------
# the model

class Reference:
    def __init__(self, config, weights):
        self.cfg = config
        self.w = weights
        self.mt = config["model_type"]
        if self.mt not in DEEPSEEK + DENSE:
            raise NotImplementedError(f"model_type {self.mt}")
        self.D = config["hidden_size"]
        self.H = config["num_attention_heads"]
        self.L = config["num_hidden_layers"]
        self.eps = config["rms_norm_eps"]
        self.tied = bool(config.get("tie_word_embeddings", False))
        if self.mt in DEEPSEEK:
            self.C = config["kv_lora_rank"]
            self.R = config["qk_rope_head_dim"]
            self.Dn = config["qk_nope_head_dim"]
            self.Dv = config["v_head_dim"]
            self.q_lora = config.get("q_lora_rank") or 0
            self.inv_freq, self.rope_mult = rope_inv_freq(config, self.R)
            self.scale = 1.0 / math.sqrt(self.Dn + self.R)
            rs = config.get("rope_scaling")
            if rs and rs.get("rope_type", rs.get("type")) == "yarn":
                m = yarn_mscale(float(rs["factor"]), float(rs.get("mscale_all_dim", 0.0)))
                self.scale *= m * m
            self.n_mtp = config.get("num_nextn_predict_layers", 0) or 0
        else:
            self.G = config.get("num_key_value_heads") or self.H
            self.hd = config.get("head_dim") or self.D // self.H
            self.inv_freq, self.rope_mult = rope_inv_freq(config, self.hd)
            self.scale = 1.0 / math.sqrt(self.hd)
            self.n_mtp = 0

    # -- helpers ---------------------------------------------------------------------------------
    def lin(self, x, name, bias=True):
        y = x @ self.w[name + ".weight"].T
        b = name + ".bias"
        if bias and b in self.w:
            y = y + self.w[b]
        return y

    def norm(self, x, name):
        return rms_norm(x, self.w[name + ".weight"], self.eps)

    def head_weight(self):
        return self.w["model.embed_tokens.weight"] if self.tied else self.w["lm_head.weight"]

    def is_moe(self, i):
        c = self.cfg
        if self.mt not in DEEPSEEK or not c.get("n_routed_experts"):
            return False
        return i >= c.get("first_k_dense_replace", 0) and i % c.get("moe_layer_freq", 1) == 0

    # -- attention --------------------------------------------------------------------------------
    def mla(self, p, x, pos, cache, impl):
        """p: layer prefix ("model.layers.3."); x [T, D]; pos: absolute positions of the rows of x."""
        T, H, Dn, R, Dv, C = x.shape[0], self.H, self.Dn, self.R, self.Dv, self.C
        if self.q_lora:
            q = self.lin(self.norm(self.lin(x, p + "self_attn.q_a_proj"), p + "self_attn.q_a_layernorm"),
                         p + "self_attn.q_b_proj")
        else:
            q = self.lin(x, p + "self_attn.q_proj")
        q = q.view(T, H, Dn + R)                                                  # [T, H, Dn+R]
        cos, sin = rope_cos_sin(self.inv_freq, self.rope_mult, pos)
        q_nope, q_pe = q[..., :Dn], rope_adjacent(q[..., Dn:], cos, sin)          # [T,H,Dn] [T,H,R]
        kv = self.lin(x, p + "self_attn.kv_a_proj_with_mqa")                      # [T, C+R]
        c_kv = self.norm(kv[:, :C], p + "self_attn.kv_a_layernorm")               # [T, C]
        k_pe = rope_adjacent(kv[:, C:], cos, sin)                                 # [T, R]
        w_kvb = self.w[p + "self_attn.kv_b_proj.weight"].view(H, Dn + Dv, C)
        w_uk, w_uv = w_kvb[:, :Dn, :], w_kvb[:, Dn:, :]                           # [H,Dn,C] [H,Dv,C]
        cache.setdefault("pos", []).extend(int(t) for t in pos)
        if impl == "naive":
            k_nope = torch.einsum("tc,hdc->thd", c_kv, w_uk)                      # [T, H, Dn]
            v = torch.einsum("tc,hdc->thd", c_kv, w_uv)                           # [T, H, Dv]
            k = torch.cat([k_nope, k_pe[:, None, :].expand(T, H, R)], dim=-1)     # [T, H, Dn+R]
            cache["k"] = torch.cat([cache["k"], k]) if "k" in cache else k
            cache["v"] = torch.cat([cache["v"], v]) if "v" in cache else v
            qf = torch.cat([q_nope, q_pe], dim=-1)
            s = torch.einsum("thd,shd->hts", qf, cache["k"]) * self.scale         # [H, T, S]
            prob = causal_softmax(s, pos, cache["pos"])
            o = torch.einsum("hts,shd->thd", prob, cache["v"])                   # [T, H, Dv]
        elif impl == "absorbed":
            cache["c"] = torch.cat([cache["c"], c_kv]) if "c" in cache else c_kv
            cache["pe"] = torch.cat([cache["pe"], k_pe]) if "pe" in cache else k_pe
            q_abs = torch.einsum("thd,hdc->thc", q_nope, w_uk)                    # [T, H, C]
            s = (torch.einsum("thc,sc->hts", q_abs, cache["c"]) +
                 torch.einsum("thr,sr->hts", q_pe, cache["pe"])) * self.scale      # [H, T, S]
            prob = causal_softmax(s, pos, cache["pos"])
            o_lat = torch.einsum("hts,sc->thc", prob, cache["c"])                 # [T, H, C]
            o = torch.einsum("thc,hdc->thd", o_lat, w_uv)                         # [T, H, Dv]
        else:
            raise ValueError(impl)
        return self.lin(o.reshape(T, H * Dv), p + "self_attn.o_proj")

    def gqa(self, p, x, pos, cache):
        T, H, G, hd = x.shape[0], self.H, self.G, self.hd
        q = self.lin(x, p + "self_attn.q_proj").view(T, H, hd)
        k = self.lin(x, p + "self_attn.k_proj").view(T, G, hd)
        v = self.lin(x, p + "self_attn.v_proj").view(T, G, hd)
        cos, sin = rope_cos_sin(self.inv_freq, self.rope_mult, pos)
        q, k = rope_half(q, cos, sin), rope_half(k, cos, sin)
        cache.setdefault("pos", []).extend(int(t) for t in pos)
        cache["k"] = torch.cat([cache["k"], k]) if "k" in cache else k
        cache["v"] = torch.cat([cache["v"], v]) if "v" in cache else v
        group = torch.arange(H) // (H // G)                                       # query head -> kv head
        kk, vv = cache["k"][:, group, :], cache["v"][:, group, :]                 # [S, H, hd]
        s = torch.einsum("thd,shd->hts", q, kk) * self.scale
        prob = causal_softmax(s, pos, cache["pos"])
        o = torch.einsum("hts,shd->thd", prob, vv)
        return self.lin(o.reshape(T, H * hd), p + "self_attn.o_proj")

    # -- feed-forward ------------------------------------------------------------------------------
    def mlp(self, p, x):
        return self.lin(silu(self.lin(x, p + "gate_proj")) * self.lin(x, p + "up_proj"), p + "down_proj")

    def route(self, p, x, bias_override=None, group_fill=float("-inf")):
        """-> dict(idx [T,k] int64, weight [T,k] float64, sel [T,E] selection scores before masking,
        masked [T,E], scores [T,E], group_scores [T,G] or None). `bias_override` / `group_fill` are
        for the generator's diagnostics only (unbiased routing, HF's 0-fill)."""
        c = self.cfg
        E, k = c["n_routed_experts"], c["num_experts_per_tok"]
        logits = (x @ self.w[p + "mlp.gate.weight"].T).numpy()                    # [T, E]
        if c.get("scoring_func", "softmax") == "sigmoid":
            scores = 1.0 / (1.0 + np.exp(-logits))
        elif c.get("scoring_func", "softmax") == "softmax":
            z = np.exp(logits - logits.max(axis=-1, keepdims=True))
            scores = z / z.sum(axis=-1, keepdims=True)
        else:
            raise NotImplementedError(c["scoring_func"])
        method = c.get("topk_method", "greedy")
        sel = scores.copy()
        if method == "noaux_tc":
            b = self.w[p + "mlp.gate.e_score_correction_bias"].numpy() if bias_override is None else bias_override
            sel = sel + b[None, :]
        n_group = c.get("n_group") or 1
        masked, gscore = sel, None
        if n_group > 1 and method in ("group_limited_greedy", "noaux_tc"):
            assert E % n_group == 0 and c["topk_group"] * (E // n_group) >= k, "groups too small for top-k"
            g = sel.reshape(sel.shape[0], n_group, E // n_group)
            if method == "noaux_tc":
                assert E // n_group >= 2
                gscore = -np.sort(-g, axis=-1)[..., :2].sum(axis=-1)              # top-2 sum
            else:
                gscore = g.max(axis=-1)
            keep_groups = stable_desc(gscore)[:, :c["topk_group"]]
            keep = np.zeros_like(gscore, dtype=bool)
            np.put_along_axis(keep, keep_groups, True, axis=-1)
            keep_e = np.repeat(keep, E // n_group, axis=-1)
            masked = np.where(keep_e, sel, group_fill)
        elif method not in ("greedy", "group_limited_greedy", "noaux_tc"):
            raise NotImplementedError(method)
        idx = stable_desc(masked)[:, :k]
        wt = np.take_along_axis(scores, idx, axis=-1)
        if c.get("norm_topk_prob") and k > 1:
            wt = wt / (wt.sum(axis=-1, keepdims=True) + 1e-20)
        wt = wt * float(c.get("routed_scaling_factor", 1.0))
        return dict(idx=idx, weight=wt, sel=sel, masked=masked, scores=scores, group_scores=gscore)

    def moe(self, p, x, rec=None, rec_name=None):
        r = self.route(p, x)
        y = torch.zeros_like(x)
        for t in range(x.shape[0]):
            for j in range(r["idx"].shape[1]):
                e = int(r["idx"][t, j])
                y[t] += float(r["weight"][t, j]) * self.mlp(f"{p}mlp.experts.{e}.", x[t:t + 1])[0]
        if self.cfg.get("n_shared_experts"):
            y = y + self.mlp(p + "mlp.shared_experts.", x)
        if rec is not None:
            rec[rec_name + ".topk_idx"] = torch.from_numpy(r["idx"].astype(np.int32))
            rec[rec_name + ".topk_weight"] = torch.from_numpy(r["weight"])
        return y

    # -- blocks ------------------------------------------------------------------------------------
    def block(self, i, x, pos, cache, impl, rec, name):
        p = f"model.layers.{i}."
        hn = self.norm(x, p + "input_layernorm")
        a = self.mla(p, hn, pos, cache, impl) if self.mt in DEEPSEEK else self.gqa(p, hn, pos, cache)
        h = x + a
        hn = self.norm(h, p + "post_attention_layernorm")
        f = self.moe(p, hn, rec, name) if self.is_moe(i) else self.mlp(p + "mlp.", hn)
        out = h + f
        if rec is not None:
            rec[name + ".attn"] = a
            rec[name + ".ffn"] = f
            rec[name] = out
        return out

    def forward(self, ids, start=0, caches=None, impl="naive", record=True):
        """Runs tokens `ids` at positions start..start+T-1 (earlier positions must be in `caches`).
        -> (records, caches). records: input_ids, embed, layer.{i}.attn / .ffn / (residual),
        layer.{i}.topk_idx / .topk_weight (MoE layers), norm, logits, mtp_prev_hidden (the MTP
        input: the last hidden state before the final norm, or after it: see MTP_PREVIOUS_HIDDEN)."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        T = ids.shape[0]
        pos = list(range(start, start + T))
        if caches is None:
            caches = {"layers": [dict() for _ in range(self.L)]}
        rec = {} if record else None
        x = self.w["model.embed_tokens.weight"][ids]
        if rec is not None:
            rec["input_ids"] = ids.to(torch.int32)
            rec["embed"] = x
        for i in range(self.L):
            x = self.block(i, x, pos, caches["layers"][i], impl, rec, f"layer.{i}")
        hn = self.norm(x, "model.norm")
        logits = hn @ self.head_weight().T
        out = rec if rec is not None else {}
        h_mtp = x if MTP_PREVIOUS_HIDDEN == "pre_final_norm" else hn
        out.update({"norm": hn, "logits": logits, "mtp_prev_hidden": h_mtp})
        return out, caches

    def mtp(self, ids_next, h_main, start=0, cache=None, impl="naive", record=True):
        """MTP module 0 (depth 1). ids_next [n] = t_{i+1}, h_main [n, D] = main hidden h_i (before the
        final norm, see MTP_PREVIOUS_HIDDEN) for positions i = start..start+n-1. -> (records, cache)."""
        Lm = self.L
        p = f"model.layers.{Lm}."
        ids_next = torch.as_tensor(ids_next, dtype=torch.long)
        n = ids_next.shape[0]
        pos = list(range(start, start + n))
        cache = {} if cache is None else cache
        rec = {} if record else None
        e = self.norm(self.w[p + "embed_tokens.weight"][ids_next], p + "enorm")
        hh = self.norm(h_main, p + "hnorm")
        x = torch.cat([e, hh], dim=-1) @ self.w[p + "eh_proj.weight"].T            # [n, D]
        if rec is not None:
            rec["mtp.0.eh"] = x
        x = self.block(Lm, x, pos, cache, impl, rec, "mtp.0")
        hn = self.norm(x, p + "shared_head.norm")
        logits = hn @ self.head_weight().T
        out = rec if rec is not None else {}
        if rec is not None:
            rec["mtp.0.hidden"] = rec.pop("mtp.0")
        out.update({"mtp.0.hidden": x, "mtp.0.logits": logits})
        return out, cache

    def run(self, ids, impl="naive"):
        """Full-sequence forward with all records (main model + MTP when present)."""
        rec, _ = self.forward(ids, impl=impl)
        if self.n_mtp:
            if self.n_mtp != 1:
                raise NotImplementedError("only num_nextn_predict_layers == 1")
            m, _ = self.mtp(torch.as_tensor(ids)[1:], rec["mtp_prev_hidden"][:-1], impl=impl)
            rec.update(m)
        return rec

    def run_incremental(self, ids, impl="absorbed", chunks=None):
        """Feeds `ids` in chunks (default: one token at a time) through the KV caches.
        -> (logits [T, V], mtp logits [T-1, V] or None)."""
        T = len(ids)
        chunks = chunks or [1] * T
        caches, logits, hidden, start = None, [], [], 0
        for n in chunks:
            r, caches = self.forward(ids[start:start + n], start=start, caches=caches, impl=impl, record=False)
            logits.append(r["logits"])
            hidden.append(r["mtp_prev_hidden"])
            start += n
        assert start == T
        logits = torch.cat(logits)
        if not self.n_mtp:
            return logits, None
        hidden = torch.cat(hidden)
        mcache, mlog = {}, []
        ids_t = torch.as_tensor(ids)
        for i in range(T - 1):   # the draft head at position i needs t_{i+1}
            r, mcache = self.mtp(ids_t[i + 1:i + 2], hidden[i:i + 1], start=i, cache=mcache, impl=impl,
                                 record=False)
            mlog.append(r["mtp.0.logits"])
        return logits, torch.cat(mlog)


# ----------------------------------------------------------------------------------------------
# command line: re-check a golden case directory against this implementation

def verify_case(path):
    config, weights = load_checkpoint(path)
    golden, _ = safetensors_io.read(os.path.join(path, "golden.safetensors"))
    ids = golden["input_ids"][1].astype(np.int64)
    rec = Reference(config, weights).run(ids)
    worst = 0.0
    for name, (dtype, arr) in sorted(golden.items()):
        got = rec[name].numpy()
        if dtype == "I32":
            ok = np.array_equal(got.astype(np.int64), arr.astype(np.int64))
            print(f"  {name:24s} {'exact' if ok else 'MISMATCH'}")
            worst = max(worst, 0.0 if ok else float("inf"))
            continue
        d = float(np.max(np.abs(got - arr.astype(np.float64)) / (np.abs(arr) + 1e-3)))
        worst = max(worst, d)
        print(f"  {name:24s} max rel diff {d:.2e}")
    return worst


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: model.py CASE_DIR [CASE_DIR ...]   (re-checks golden.safetensors)")
        sys.exit(2)
    torch.set_num_threads(1)
    bad = 0
    for d in sys.argv[1:]:
        if not os.path.isfile(os.path.join(d, "golden.safetensors")):
            continue  # e.g. tests/golden/data/README.md from a shell glob
        print(d)
        w = verify_case(d)
        bad += w > 1e-6
    sys.exit(1 if bad else 0)
