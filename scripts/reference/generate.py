"""Builds the tiny random checkpoints and golden outputs under tests/golden/data/<case>/.

    /usr/bin/python3 scripts/reference/generate.py --out tests/golden/data            # write all cases
    /usr/bin/python3 scripts/reference/generate.py --out tests/golden/data --check    # regenerate in a
                                                      temp dir and compare byte for byte with --out
    /usr/bin/python3 scripts/reference/generate.py --out /tmp/g --cases v3_f32,llama

Each case directory gets config.json, the weights (model.safetensors, or 3 shards plus
model.safetensors.index.json) and golden.safetensors (see tests/golden/data/README.md for names).

Everything is deterministic: fixed seeds, numpy's PCG64 generator, one CPU thread for torch. A case
draws weights from `seed`; if the draw fails an acceptance check (routing margins too small for a
float32 implementation to reproduce, or the property the case must exercise does not show up), it
retries with the next attempt number, so the accepted attempt is part of the case's identity.

Self-checks run on every accepted case (they raise AssertionError):
  * the checkpoint written to disk, loaded back, gives bit-identical records,
  * MLA: absorbed form == naive form (max diff < 1e-10), float64,
  * one token at a time through the KV caches (absorbed MLA / GQA) == the full run, and a chunked
    prefill with the naive form == the full run (main logits and MTP logits),
  * RoPE: adjacent-pair rotation == complex multiplication (DeepSeek's form) and == HF's
    permute-then-rotate_half form; fp8 codec self-test; bf16 rounding == torch's.
"""

import argparse
import filecmp
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp8  # noqa: E402
import model as ref  # noqa: E402
import safetensors_io as st  # noqa: E402

MARGIN = 3e-4        # min gap between the last kept and first dropped routing score / group score
GENERATOR_VERSION = "1"


# ----------------------------------------------------------------------------------------------
# configs

def deepseek_config(v3=True, **kw):
    c = {
        "architectures": ["DeepseekV3ForCausalLM" if v3 else "DeepseekV2ForCausalLM"],
        "model_type": "deepseek_v3" if v3 else "deepseek_v2",
        "vocab_size": 157,
        "hidden_size": 48,
        "intermediate_size": 80,
        "moe_intermediate_size": 16,
        "num_hidden_layers": 3,
        "num_attention_heads": 3,
        "num_key_value_heads": 3,
        "n_shared_experts": 1,
        "n_routed_experts": 16,
        "ep_size": 1,
        "routed_scaling_factor": 2.5,
        "kv_lora_rank": 32,
        "q_lora_rank": 40,
        "qk_rope_head_dim": 16,
        "v_head_dim": 12,
        "qk_nope_head_dim": 16,
        "topk_method": "noaux_tc",
        "n_group": 4,
        "topk_group": 2,
        "num_experts_per_tok": 4,
        "moe_layer_freq": 1,
        "first_k_dense_replace": 1,
        "norm_topk_prob": True,
        "scoring_func": "sigmoid",
        "aux_loss_alpha": 0.001,
        "seq_aux": True,
        "hidden_act": "silu",
        "max_position_embeddings": 40960,
        "initializer_range": 0.02,
        "rms_norm_eps": 1e-6,
        "use_cache": True,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pretraining_tp": 1,
        "tie_word_embeddings": False,
        "rope_theta": 10000.0,
        "rope_scaling": {
            "beta_fast": 32,
            "beta_slow": 1,
            "factor": 40,
            "mscale": 0.8,
            "mscale_all_dim": 0.707,
            "original_max_position_embeddings": 1024,
            "type": "yarn",
        },
        "attention_bias": False,
        "attention_dropout": 0.0,
        "torch_dtype": "float32",
    }
    if v3:
        c["num_nextn_predict_layers"] = 1
    c.update(kw)
    return c


def qwen2_config(**kw):
    c = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": 151,
        "hidden_size": 48,
        "intermediate_size": 88,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "max_window_layers": 2,
        "use_sliding_window": False,
        "sliding_window": 4096,
        "initializer_range": 0.02,
        "rms_norm_eps": 1e-6,
        "use_cache": True,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "tie_word_embeddings": False,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "attention_dropout": 0.0,
        "torch_dtype": "float32",
    }
    c.update(kw)
    return c


def llama_config(**kw):
    c = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": 140,
        "hidden_size": 48,
        "intermediate_size": 80,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "hidden_act": "silu",
        "max_position_embeddings": 512,
        "initializer_range": 0.02,
        "rms_norm_eps": 1e-5,
        "use_cache": True,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pretraining_tp": 1,
        "tie_word_embeddings": True,
        "rope_theta": 10000.0,
        "rope_scaling": {
            "factor": 8.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 64,
            "rope_type": "llama3",
        },
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "torch_dtype": "float32",
    }
    c.update(kw)
    return c


FP8_QUANT = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]}

# name -> dict(config, storage f32|bf16|fp8, shards, T, seed, what it exercises, extra checks)
CASES = {
    "v3_f32": dict(
        config=deepseek_config(),
        storage="f32", shards=1, T=11, seed=1001,
        neg_bias_layers=[2],
        about="DeepSeek-V3: q_lora, sigmoid/noaux_tc, 4 groups keep 2, 16 experts top-4, 1 shared, "
              "yarn (mscale 0.8 != mscale_all_dim 0.707, ramp 1..5), MTP; layer 2's correction bias is "
              "mostly negative so excluded groups must be -inf (0-fill would pick them)"),
    "v3_bf16": dict(
        config=deepseek_config(torch_dtype="bfloat16"),
        storage="bf16", shards=1, T=11, seed=1001,
        neg_bias_layers=[2],
        about="v3_f32's architecture, seed and bias pattern with BF16 weights (bias F32)"),
    "v3_fp8": dict(
        config=deepseek_config(
            vocab_size=131, hidden_size=160, intermediate_size=200, moe_intermediate_size=72,
            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
            n_shared_experts=2, n_routed_experts=8, n_group=2, topk_group=1, num_experts_per_tok=3,
            q_lora_rank=144, kv_lora_rank=136, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=40,
            torch_dtype="bfloat16", quantization_config=FP8_QUANT),
        storage="fp8", shards=1, T=11, seed=3003,
        about="DeepSeek-V3 FP8 e4m3 weights with 128x128 weight_scale_inv, dims > 128 and not multiples "
              "of 128 (partial blocks), BF16 embed/head/norms/gate, F32 bias, 2 layers + MTP"),
    "v3_sharded": dict(
        config=deepseek_config(torch_dtype="bfloat16"),
        storage="bf16", shards=3, T=11, seed=4004,
        about="v3_bf16's config, other seed, weights split over 3 shards + model.safetensors.index.json"),
    "v2_lite": dict(
        config=deepseek_config(
            v3=False, vocab_size=96, hidden_size=40, intermediate_size=72, moe_intermediate_size=12,
            num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
            q_lora_rank=None, kv_lora_rank=24, qk_nope_head_dim=12, qk_rope_head_dim=8, v_head_dim=12,
            n_shared_experts=2, n_routed_experts=10, num_experts_per_tok=3, n_group=1, topk_group=1,
            topk_method="greedy", scoring_func="softmax", norm_topk_prob=False, routed_scaling_factor=1.0,
            max_position_embeddings=2560,
            rope_scaling={"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707,
                          "mscale_all_dim": 0.707, "original_max_position_embeddings": 64, "type": "yarn"}),
        storage="f32", shards=1, T=9, seed=5005,
        about="DeepSeek-V2-Lite shape: q_proj (q_lora_rank null), softmax/greedy, no normalization, "
              "scale 1.0, 2 shared experts, yarn mscale 0.707/0.707 (ramp 0..2), no MTP"),
    "v2_group": dict(
        config=deepseek_config(
            v3=False, vocab_size=111, hidden_size=40, intermediate_size=64, moe_intermediate_size=12,
            num_hidden_layers=4, num_attention_heads=2, num_key_value_heads=2,
            q_lora_rank=24, kv_lora_rank=24, qk_nope_head_dim=12, qk_rope_head_dim=8, v_head_dim=16,
            n_shared_experts=2, n_routed_experts=16, num_experts_per_tok=3, n_group=4, topk_group=2,
            topk_method="group_limited_greedy", scoring_func="softmax", norm_topk_prob=False,
            routed_scaling_factor=16.0, first_k_dense_replace=1, moe_layer_freq=2,
            max_position_embeddings=4096, rope_scaling=None),
        storage="f32", shards=1, T=9, seed=6006, expert_down_gain=0.3,
        about="DeepSeek-V2 (236B) style: q_lora, softmax/group_limited_greedy (group score = max), "
              "4 groups keep 2, scale 16, moe_layer_freq 2 (only layer 2 is MoE), no rope scaling"),
    "qwen2": dict(
        config=qwen2_config(),
        storage="f32", shards=1, T=7, seed=7007,
        about="Qwen2: GQA 4 heads / 2 kv heads, q/k/v bias, half-split RoPE, no scaling, untied head"),
    "qwen2_bf16": dict(
        config=qwen2_config(torch_dtype="bfloat16"),
        storage="bf16", shards=1, T=7, seed=7007,
        about="qwen2's config and seed with BF16 weights"),
    "llama": dict(
        config=llama_config(),
        storage="f32", shards=1, T=9, seed=8008,
        about="Llama-3.1 style: GQA 4 heads / 1 kv head, head_dim 16 != 48/4, llama3 rope scaling "
              "(orig 64: bands unchanged / smoothed / divided all present), tied embeddings"),
}


# ----------------------------------------------------------------------------------------------
# random weights

class Weights:
    """Ordered {name: float32 array} plus each tensor's role (linear, embed, head, norm, gate, bias,
    ebias), which decides its storage dtype."""

    def __init__(self, rng, fp8_spread=False):
        self.rng = rng
        self.t = {}
        self.role = {}
        self.fp8_spread = fp8_spread

    def add(self, name, arr, role):
        assert name not in self.t, name
        self.t[name] = np.ascontiguousarray(arr, dtype=np.float32)
        self.role[name] = role

    def linear(self, name, out_f, in_f, gain=1.0):
        w = self.rng.standard_normal((out_f, in_f)) * (gain / math.sqrt(in_f))
        if self.fp8_spread:  # make the 128x128 blocks' ranges differ so a wrong scale index shows
            w = w * np.exp(self.rng.uniform(-0.6, 0.6, (out_f, 1))) * np.exp(self.rng.uniform(-0.6, 0.6, (1, in_f)))
        self.add(name + ".weight", w, "linear")

    def norm(self, name, dim):
        self.add(name + ".weight", self.rng.uniform(0.7, 1.3, dim), "norm")


def make_weights(cfg, rng, spec):
    mt = cfg["model_type"]
    D, V = cfg["hidden_size"], cfg["vocab_size"]
    W = Weights(rng, fp8_spread=spec["storage"] == "fp8")
    # a tied embedding is also the head: keep its logits O(3) like an untied head's
    emb_std = 2.5 / math.sqrt(D) if cfg.get("tie_word_embeddings") else 1.0
    W.add("model.embed_tokens.weight", rng.standard_normal((V, D)) * emb_std, "embed")

    def mlp(prefix, inter, down_gain=1.0):
        W.linear(prefix + "gate_proj", inter, D)
        W.linear(prefix + "up_proj", inter, D)
        W.linear(prefix + "down_proj", D, inter, down_gain)

    def block(i):
        p = f"model.layers.{i}."
        W.norm(p + "input_layernorm", D)
        H = cfg["num_attention_heads"]
        if mt in ref.DEEPSEEK:
            Dn, R, Dv, C = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
            if cfg.get("q_lora_rank"):
                W.linear(p + "self_attn.q_a_proj", cfg["q_lora_rank"], D)
                W.norm(p + "self_attn.q_a_layernorm", cfg["q_lora_rank"])
                W.linear(p + "self_attn.q_b_proj", H * (Dn + R), cfg["q_lora_rank"])
            else:
                W.linear(p + "self_attn.q_proj", H * (Dn + R), D)
            W.linear(p + "self_attn.kv_a_proj_with_mqa", C + R, D)
            W.norm(p + "self_attn.kv_a_layernorm", C)
            W.linear(p + "self_attn.kv_b_proj", H * (Dn + Dv), C)
            W.linear(p + "self_attn.o_proj", D, H * Dv)
        else:
            G = cfg["num_key_value_heads"]
            hd = cfg.get("head_dim") or D // H
            W.linear(p + "self_attn.q_proj", H * hd, D)
            W.linear(p + "self_attn.k_proj", G * hd, D)
            W.linear(p + "self_attn.v_proj", G * hd, D)
            if mt == "qwen2":
                W.add(p + "self_attn.q_proj.bias", rng.standard_normal(H * hd) * 0.3, "bias")
                W.add(p + "self_attn.k_proj.bias", rng.standard_normal(G * hd) * 0.3, "bias")
                W.add(p + "self_attn.v_proj.bias", rng.standard_normal(G * hd) * 0.3, "bias")
            W.linear(p + "self_attn.o_proj", D, H * hd)
        W.norm(p + "post_attention_layernorm", D)
        moe = (mt in ref.DEEPSEEK and cfg.get("n_routed_experts") and i >= cfg["first_k_dense_replace"]
               and i % cfg["moe_layer_freq"] == 0)
        if moe:
            E = cfg["n_routed_experts"]
            gain = 1.5 if cfg["scoring_func"] == "sigmoid" else 0.8
            W.add(p + "mlp.gate.weight", rng.standard_normal((E, D)) * (gain / math.sqrt(D)), "gate")
            if cfg["topk_method"] == "noaux_tc":
                if i in spec.get("neg_bias_layers", []):
                    # mostly negative: a token's kept groups often hold fewer than k experts with a
                    # positive selection score, so filling excluded experts with 0 (HF) would pick them
                    b = rng.uniform(-0.95, -0.55, E)
                    b[rng.permutation(E)[:E // 4]] = rng.uniform(-0.05, 0.15, E // 4)
                else:
                    b = rng.uniform(-0.2, 0.2, E)
                W.add(p + "mlp.gate.e_score_correction_bias", b, "ebias")
            for e in range(E):
                mlp(f"{p}mlp.experts.{e}.", cfg["moe_intermediate_size"], spec.get("expert_down_gain", 1.0))
            if cfg.get("n_shared_experts"):
                mlp(p + "mlp.shared_experts.", cfg["moe_intermediate_size"] * cfg["n_shared_experts"])
        else:
            mlp(p + "mlp.", cfg["intermediate_size"])

    L = cfg["num_hidden_layers"]
    for i in range(L):
        block(i)
    W.norm("model.norm", D)
    if not cfg.get("tie_word_embeddings"):
        W.add("lm_head.weight", rng.standard_normal((V, D)) * (2.5 / math.sqrt(D)), "head")
    if mt == "deepseek_v3" and cfg.get("num_nextn_predict_layers"):
        assert cfg["num_nextn_predict_layers"] == 1
        p = f"model.layers.{L}."
        W.add(p + "embed_tokens.weight", W.t["model.embed_tokens.weight"].copy(), "embed")
        W.norm(p + "enorm", D)
        W.norm(p + "hnorm", D)
        W.linear(p + "eh_proj", D, 2 * D)
        block(L)
        W.norm(p + "shared_head.norm", D)
        W.add(p + "shared_head.head.weight", W.t["lm_head.weight"].copy(), "head")
    return W


def to_storage(W, storage):
    """-> {name: (dtype, storage array)} following the case's storage policy."""
    out = {}
    for name, arr in W.t.items():
        role = W.role[name]
        if role == "ebias" or storage == "f32":
            out[name] = ("F32", st.encode("F32", arr))
        elif storage == "bf16" or role != "linear":
            out[name] = ("BF16", st.encode("BF16", arr))
        else:  # fp8 linear
            codes, scale = fp8.quantize_blockwise(arr)
            out[name] = ("F8_E4M3", codes)
            out[name + "_scale_inv"] = ("F32", scale)
    return out


def storage_to_weights(tensors, config):
    """The same decoding load_checkpoint does, in memory (used to test attempts before writing)."""
    block = (config.get("quantization_config") or {}).get("weight_block_size", [128, 128])[0]
    w = {}
    for name, (dtype, arr) in tensors.items():
        if name.endswith("_scale_inv"):
            continue
        if dtype == "F8_E4M3":
            s = tensors[name + "_scale_inv"][1]
            w[name] = torch.from_numpy(fp8.dequantize_blockwise(arr, s, block))
        else:
            w[name] = torch.from_numpy(st.to_float64(dtype, arr))
    return w


# ----------------------------------------------------------------------------------------------
# writing

def natural_key(name):
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name)]


def write_checkpoint(d, config, tensors, shards):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    meta = {"format": "pt"}
    if shards == 1:
        st.write(os.path.join(d, "model.safetensors"), tensors, meta)
        return
    # checkpoint order (embed, layer 0, 1, ..., norm, head), cut into `shards` runs of about equal bytes;
    # a tensor and its _scale_inv stay together
    names = sorted((n for n in tensors if not n.endswith("_scale_inv")), key=natural_key)
    size = {n: tensors[n][1].nbytes + (tensors[n + "_scale_inv"][1].nbytes if n + "_scale_inv" in tensors else 0)
            for n in names}
    total = sum(size.values())
    parts, acc = [[] for _ in range(shards)], 0
    for n in names:
        k = min(shards - 1, int(acc * shards // total))
        parts[k].append(n)
        acc += size[n]
    weight_map = {}
    for k, part in enumerate(parts):
        assert part, "empty shard"
        fn = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        sub = {}
        for n in part:
            sub[n] = tensors[n]
            if n + "_scale_inv" in tensors:
                sub[n + "_scale_inv"] = tensors[n + "_scale_inv"]
        st.write(os.path.join(d, fn), sub, meta)
        for n in sorted(sub, key=natural_key):
            weight_map[n] = fn
    index = {"metadata": {"total_size": int(sum(a.nbytes for _, a in tensors.values()))},
             "weight_map": dict(sorted(weight_map.items(), key=lambda kv: natural_key(kv[0])))}
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


GOLDEN_SKIP = ("mtp_prev_hidden",)


def golden_tensors(rec):
    out = {}
    for name, t in rec.items():
        if name in GOLDEN_SKIP:
            continue
        a = t.numpy()
        if a.dtype in (np.int32, np.int64):
            out[name] = ("I32", a.astype(np.int32))
        else:
            out[name] = ("F32", a.astype(np.float32))
    return out


# ----------------------------------------------------------------------------------------------
# checks

def max_diff(a, b):
    return float(torch.max(torch.abs(a - b))) if a.numel() else 0.0


def check_rope_forms():
    """adjacent-pair rotation == DeepSeek's complex form == HF's permute + rotate_half form."""
    rng = np.random.default_rng(99)
    T, H, R = 5, 3, 16
    x = torch.from_numpy(rng.standard_normal((T, H, R)))
    cfg = deepseek_config()
    inv, mult = ref.rope_inv_freq(cfg, R)
    cos, sin = ref.rope_cos_sin(inv, mult, list(range(T)))
    a = ref.rope_adjacent(x, cos, sin)
    z = torch.view_as_complex(x.reshape(T, H, R // 2, 2).contiguous())
    f = torch.complex(cos, sin)                                              # mult * e^{i angle}
    b = torch.view_as_real(z * f[:, None, :]).reshape(T, H, R)
    assert max_diff(a, b) < 1e-12, "rope adjacent vs complex"
    perm = list(range(0, R, 2)) + list(range(1, R, 2))
    c = ref.rope_half(x[..., perm], cos, sin)
    assert max_diff(a[..., perm], c) < 1e-12, "rope adjacent vs permuted half-split"


def yarn_report(cfg):
    rs = cfg.get("rope_scaling")
    if not rs or rs.get("type") != "yarn":
        return ""
    R, theta = cfg["qk_rope_head_dim"], cfg["rope_theta"]
    inv, mult = ref.rope_inv_freq(cfg, R)
    base = 1.0 / theta ** (torch.arange(0, R, 2, dtype=torch.float64) / R)
    ratio = (inv / base).numpy()      # 1 = unchanged, 1/factor = fully interpolated
    return f"yarn inv_freq/base = {np.round(ratio, 4).tolist()}, cos/sin x {mult:.6f}"


def routing_checks(model, rec_x, spec, name):
    """Collects routing diagnostics for every MoE layer given its post-attention-norm inputs.
    -> dict(min_margin, biased_differs, zero_fill_differs)."""
    info = {"min_margin": float("inf"), "biased_differs": 0, "zero_fill_differs": 0, "routed": 0}
    cfg = model.cfg
    k = cfg["num_experts_per_tok"]
    for (lname, p, x) in rec_x:
        r = model.route(p, x)
        srt = -np.sort(-r["masked"], axis=-1)
        gap = srt[:, k - 1] - srt[:, k]
        gap = gap[np.isfinite(gap)]
        if gap.size:
            info["min_margin"] = min(info["min_margin"], float(gap.min()))
        if r["group_scores"] is not None:
            g = -np.sort(-r["group_scores"], axis=-1)
            tg = cfg["topk_group"]
            info["min_margin"] = min(info["min_margin"], float((g[:, tg - 1] - g[:, tg]).min()))
        info["routed"] += x.shape[0]
        if cfg["topk_method"] == "noaux_tc":
            E = cfg["n_routed_experts"]
            u = model.route(p, x, bias_override=np.zeros(E))
            info["biased_differs"] += sum(set(a) != set(b) for a, b in zip(r["idx"], u["idx"]))
        z = model.route(p, x, group_fill=0.0)
        info["zero_fill_differs"] += sum(set(a) != set(b) for a, b in zip(r["idx"], z["idx"]))
    return info


def moe_inputs(model, ids):
    """[(record name, layer prefix, post-attention-normed input)] for every MoE layer, MTP included."""
    out = []
    orig = model.moe

    def spy(p, x, rec=None, rec_name=None):
        out.append((rec_name, p, x.clone()))
        return orig(p, x, rec, rec_name)

    model.moe = spy
    try:
        model.run(ids)
    finally:
        model.moe = orig
    return out


def accept(model, ids, spec):
    cfg = model.cfg
    if not (cfg["model_type"] in ref.DEEPSEEK and cfg.get("n_routed_experts")):
        return True, {}
    info = routing_checks(model, moe_inputs(model, ids), spec, None)
    ok = info["min_margin"] >= MARGIN
    if cfg["topk_method"] == "noaux_tc":
        ok = ok and info["biased_differs"]
    if spec.get("neg_bias_layers"):
        ok = ok and info["zero_fill_differs"]
    return ok, info


def loop_attention(model, x):
    """Layer 0 attention written with explicit loops and flat row indices (no views/einsum), as an
    independent check of the head/row layout conventions. x [T, D] = layer 0 input (embeddings)."""
    c, W = model.cfg, {k: v.numpy() for k, v in model.w.items() if k.startswith("model.layers.0.")}
    p = "model.layers.0.self_attn."
    ln = lambda v, w: v / math.sqrt(float(np.mean(v * v)) + model.eps) * w      # noqa: E731
    T, H = x.shape[0], model.H
    xs = [ln(x[t], W["model.layers.0.input_layernorm.weight"]) for t in range(T)]
    inv, mult = ref.rope_inv_freq(c, model.R if model.mt in ref.DEEPSEEK else model.hd)
    inv = inv.numpy()

    def rot_pair(a, b, t, i):
        ang = t * inv[i]
        return (a * math.cos(ang) - b * math.sin(ang)) * mult, (a * math.sin(ang) + b * math.cos(ang)) * mult

    out = np.zeros((T, model.D))
    if model.mt in ref.DEEPSEEK:
        Dn, R, Dv, C = model.Dn, model.R, model.Dv, model.C
        Q, K, V = [], [], []
        for t in range(T):
            if model.q_lora:
                qa = ln(W[p + "q_a_proj.weight"] @ xs[t], W[p + "q_a_layernorm.weight"])
                q = W[p + "q_b_proj.weight"] @ qa
            else:
                q = W[p + "q_proj.weight"] @ xs[t]
            kva = W[p + "kv_a_proj_with_mqa.weight"] @ xs[t]
            ckv = ln(kva[:C], W[p + "kv_a_layernorm.weight"])
            kpe = kva[C:].copy()
            for i in range(R // 2):
                kpe[2 * i], kpe[2 * i + 1] = rot_pair(kva[C + 2 * i], kva[C + 2 * i + 1], t, i)
            kvb = W[p + "kv_b_proj.weight"] @ ckv
            qh, kh, vh = [], [], []
            for h in range(H):
                qrow = q[h * (Dn + R):(h + 1) * (Dn + R)].copy()
                for i in range(R // 2):
                    qrow[Dn + 2 * i], qrow[Dn + 2 * i + 1] = rot_pair(qrow[Dn + 2 * i], qrow[Dn + 2 * i + 1], t, i)
                base = h * (Dn + Dv)
                qh.append(qrow)
                kh.append(np.concatenate([kvb[base:base + Dn], kpe]))
                vh.append(kvb[base + Dn:base + Dn + Dv])
            Q.append(qh), K.append(kh), V.append(vh)
        for t in range(T):
            o = np.zeros(H * Dv)
            for h in range(H):
                sc = np.array([float(Q[t][h] @ K[s][h]) * model.scale for s in range(t + 1)])
                pr = np.exp(sc - sc.max())
                pr /= pr.sum()
                o[h * Dv:(h + 1) * Dv] = sum(pr[s] * V[s][h] for s in range(t + 1))
            out[t] = W[p + "o_proj.weight"] @ o
    else:
        G, hd = model.G, model.hd
        bias = lambda n: W.get(p + n + ".bias", 0.0)                                # noqa: E731
        Q, K, V = [], [], []
        for t in range(T):
            q = W[p + "q_proj.weight"] @ xs[t] + bias("q_proj")
            k = W[p + "k_proj.weight"] @ xs[t] + bias("k_proj")
            v = W[p + "v_proj.weight"] @ xs[t] + bias("v_proj")
            for vec, n in ((q, H), (k, G)):
                for h in range(n):
                    for i in range(hd // 2):
                        a, b = h * hd + i, h * hd + i + hd // 2
                        vec[a], vec[b] = rot_pair(vec[a], vec[b], t, i)
            Q.append(q), K.append(k), V.append(v)
        for t in range(T):
            o = np.zeros(H * hd)
            for h in range(H):
                g = h // (H // G)
                sc = np.array([float(Q[t][h * hd:(h + 1) * hd] @ K[s][g * hd:(g + 1) * hd]) * model.scale
                               for s in range(t + 1)])
                pr = np.exp(sc - sc.max())
                pr /= pr.sum()
                o[h * hd:(h + 1) * hd] = sum(pr[s] * V[s][g * hd:(g + 1) * hd] for s in range(t + 1))
            out[t] = W[p + "o_proj.weight"] @ o
    return out


def loop_route(model, p, x):
    """Routing for every row of x with plain Python lists and sorted(key=(-score, index))."""
    c = model.cfg
    E, k, G = c["n_routed_experts"], c["num_experts_per_tok"], c.get("n_group") or 1
    Wg = model.w[p + "mlp.gate.weight"].numpy()
    bias = model.w.get(p + "mlp.gate.e_score_correction_bias")
    res = []
    for row in x.numpy():
        logit = [float(Wg[e] @ row) for e in range(E)]
        if c["scoring_func"] == "sigmoid":
            s = [1 / (1 + math.exp(-v)) for v in logit]
        else:
            m = max(logit)
            z = [math.exp(v - m) for v in logit]
            s = [v / sum(z) for v in z]
        sel = [s[e] + (float(bias[e]) if c["topk_method"] == "noaux_tc" else 0.0) for e in range(E)]
        allowed = set(range(E))
        if G > 1 and c["topk_method"] != "greedy":
            n = E // G
            gs = []
            for g in range(G):
                vals = sorted(sel[g * n:(g + 1) * n], reverse=True)
                gs.append(vals[0] + vals[1] if c["topk_method"] == "noaux_tc" else vals[0])
            keep = sorted(range(G), key=lambda g: (-gs[g], g))[:c["topk_group"]]
            allowed = {e for e in range(E) if e // n in keep}
        chosen = sorted(allowed, key=lambda e: (-sel[e], e))[:k]
        w = [s[e] for e in chosen]
        if c.get("norm_topk_prob") and k > 1:
            tot = sum(w) + 1e-20
            w = [v / tot for v in w]
        res.append((chosen, [v * c["routed_scaling_factor"] for v in w]))
    return res


def self_checks(model, ids, rec):
    """absorbed == naive, incremental == full; raises AssertionError."""
    notes = []
    if model.mt in ref.DEEPSEEK:
        rec_abs = model.run(ids, impl="absorbed")
        worst = 0.0
        for k, v in rec.items():
            if v.dtype in (torch.int32, torch.int64):
                assert torch.equal(v, rec_abs[k]), f"absorbed vs naive: {k} differs"
            else:
                worst = max(worst, max_diff(v, rec_abs[k]))
        assert worst < 1e-10, f"absorbed vs naive max diff {worst}"
        notes.append(f"absorbed-vs-naive {worst:.1e}")
    impls = ["absorbed", "naive"] if model.mt in ref.DEEPSEEK else ["gqa", "gqa"]
    T = len(ids)
    for impl, chunks in ((impls[0], None), (impls[1], [3, 1, T - 4])):
        lg, mlg = model.run_incremental(ids, impl="naive" if impl == "gqa" else impl, chunks=chunks)
        d = max_diff(lg, rec["logits"])
        if mlg is not None:
            d = max(d, max_diff(mlg, rec["mtp.0.logits"]))
        assert d < 1e-10, f"incremental ({impl}, chunks {chunks}) vs full: {d}"
        notes.append(f"incremental[{impl},{'1-by-1' if chunks is None else chunks}] {d:.1e}")
    la = loop_attention(model, rec["embed"].numpy())
    d = float(np.max(np.abs(la - rec["layer.0.attn"].numpy())))
    assert d < 1e-10, f"loop attention vs vectorized: {d}"
    notes.append(f"loop-attention {d:.1e}")
    if model.mt in ref.DEEPSEEK and model.cfg.get("n_routed_experts"):
        worst = 0.0
        for (name, p, x) in moe_inputs(model, ids):
            for t, (chosen, w) in enumerate(loop_route(model, p, x)):
                assert list(rec[name + ".topk_idx"][t].tolist()) == chosen, f"loop route {name} token {t}"
                worst = max(worst, float(np.max(np.abs(np.array(w) - rec[name + ".topk_weight"][t].numpy()))))
        assert worst < 1e-12, f"loop route weights {worst}"
        notes.append(f"loop-routing {worst:.1e}")
    return notes


# ----------------------------------------------------------------------------------------------

def build_case(name, spec, out_dir, log):
    cfg = json.loads(json.dumps(spec["config"]))
    T, V = spec["T"], cfg["vocab_size"]
    t0 = time.time()
    for attempt in range(100):
        seed = spec["seed"] * 1000 + attempt
        rng = np.random.default_rng(seed)
        ids = rng.integers(2, V - 1, T)
        perm = rng.permutation(T)
        ids[perm[0]] = V - 1                       # the largest id
        ids[perm[2]] = ids[perm[1]]                # and a repeated token
        W = make_weights(cfg, rng, spec)
        tensors = to_storage(W, spec["storage"])
        model = ref.Reference(cfg, storage_to_weights(tensors, cfg))
        ok, info = accept(model, ids, spec)
        if ok:
            break
    else:
        raise RuntimeError(f"{name}: no attempt passed the acceptance checks")
    if info and cfg["topk_method"] == "noaux_tc":
        assert info["biased_differs"] > 0, f"{name}: the correction bias never changes a selection"
    if spec.get("neg_bias_layers"):
        assert info["zero_fill_differs"] > 0, f"{name}: 0-fill vs -inf exclusion never matters"
    rec = model.run(ids)
    notes = self_checks(model, ids, rec)
    d = os.path.join(out_dir, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    write_checkpoint(d, cfg, tensors, spec["shards"])
    # the checkpoint as written must give exactly the same numbers
    cfg2, w2 = ref.load_checkpoint(d)
    assert cfg2 == cfg
    rec2 = ref.Reference(cfg2, w2).run(ids)
    for k in rec:
        assert torch.equal(rec[k], rec2[k]), f"{name}: reloaded checkpoint differs in {k}"
    if cfg["model_type"] == "deepseek_v3" and cfg.get("num_nextn_predict_layers"):
        L = cfg["num_hidden_layers"]
        assert torch.equal(w2[f"model.layers.{L}.shared_head.head.weight"], w2["lm_head.weight"])
        assert torch.equal(w2[f"model.layers.{L}.embed_tokens.weight"], w2["model.embed_tokens.weight"])
    meta = {"format": "seek-golden", "version": GENERATOR_VERSION, "case": name, "seed": str(seed),
            "attempt": str(attempt), "about": spec["about"]}
    st.write(os.path.join(d, "golden.safetensors"), golden_tensors(rec), meta)

    files = sorted(os.listdir(d))
    size = sum(os.path.getsize(os.path.join(d, f)) for f in files)
    lg = rec["logits"]
    log(f"{name}: seed {seed} (attempt {attempt}), T={T}, {len(W.t)} tensors, {size / 1024:.0f} KiB, "
        f"{time.time() - t0:.1f}s")
    log(f"    logits std {float(lg.std()):.3f} max |.| {float(lg.abs().max()):.2f}; residual max |.| "
        f"{float(rec['layer.%d' % (cfg['num_hidden_layers'] - 1)].abs().max()):.2f}")
    if info:
        log(f"    routing ({info['routed']} token-layers): min margin {info['min_margin']:.2e}, "
            f"bias changes the selection for {info['biased_differs']}, "
            f"0-fill of excluded groups would change it for {info['zero_fill_differs']}")
    y = yarn_report(cfg)
    if y:
        log("    " + y)
    if cfg["model_type"] == "llama" and cfg.get("rope_scaling"):
        inv, _ = ref.rope_inv_freq(cfg, cfg["head_dim"])
        hd = cfg["head_dim"]
        base = 1.0 / cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        log(f"    llama3 inv_freq/base = {np.round((inv / base).numpy(), 4).tolist()}")
    log("    checks: " + ", ".join(notes))
    return size


def run_cases(cases, build_case, subset, out, check, prefix):
    """Builds the chosen cases into `out`, or with `check` into a temp dir compared byte for byte with
    `out` (exit 1 on any difference). Shared by generate.py and train_reference.py."""
    names = [c for c in subset.split(",") if c] or list(cases)
    for n in names:
        if n not in cases:
            sys.exit(f"unknown case {n}; known: {', '.join(cases)}")
    target = tempfile.mkdtemp(prefix=prefix) if check else out
    os.makedirs(target, exist_ok=True)
    total = 0
    t0 = time.time()
    for n in names:
        total += build_case(n, cases[n], target, print)
    print(f"total {total / 1024:.0f} KiB in {time.time() - t0:.1f}s")
    if check:
        bad = []
        for n in names:
            a, b = os.path.join(target, n), os.path.join(out, n)
            fa = sorted(os.listdir(a))
            fb = sorted(os.listdir(b)) if os.path.isdir(b) else []
            if fa != fb:
                bad.append(f"{n}: files {fa} vs {fb}")
                continue
            _, mismatch, errors = filecmp.cmpfiles(a, b, fa, shallow=False)
            bad += [f"{n}/{f}" for f in mismatch + errors]
        shutil.rmtree(target)
        if bad:
            print("DIFFERENT: " + ", ".join(bad))
            sys.exit(1)
        print("identical")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (tests/golden/data)")
    ap.add_argument("--cases", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temp dir and compare byte for byte with --out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    fp8.self_test()
    x = np.random.default_rng(5).standard_normal(4096).astype(np.float32) * 3
    assert np.array_equal(st.f32_to_bf16_bits(x),
                          torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16))
    check_rope_forms()
    run_cases(CASES, build_case, args.cases, args.out, args.check, "seek-golden-")

if __name__ == "__main__":
    main()
