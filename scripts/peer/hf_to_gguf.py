#!/usr/bin/env python3
"""Convert a DeepSeek-V2/V3 model folder in Hugging Face layout (as seek writes them) to a GGUF file
for ik_llama.cpp, so that seek's models can run in that engine for side-by-side benchmarks (issue 12).

Why not the peer's own convert_hf_to_gguf.py: it loads the tokenizer through `transformers`
(AutoTokenizer), which is not installed here. This script needs only numpy and the peer's gguf-py
package, imported from the peer's checkout by path, so the key names, tensor names and enum values
come from the same code the peer's converter uses.

Usage:
  /usr/bin/python3 scripts/peer/hf_to_gguf.py --gguf-py PATH/ik_llama.cpp/gguf-py MODEL_DIR OUT.gguf
                                              [--type bf16|f16|f32] [--pre NAME] [--layout ik|mainline]

What it writes (the facts are taken from ik_llama.cpp's convert_hf_to_gguf.py, DeepseekV2Model):
- architecture deepseek2 with the same hyperparameter keys that converter writes, including the
  yarn rope-scaling keys when config.json has yarn scaling with mscale_all_dim.
- tensors under the names of gguf-py's tensor map: experts stacked into 3-D ffn_{gate,up,down}_exps,
  e_score_correction_bias as exp_probs_b.bias, and kv_b_proj written three ways, as attn_kv_b and
  split into attn_k_b / attn_v_b (ik_llama.cpp's MLA layout). The multi-token-prediction layers
  (index >= num_hidden_layers) are dropped, as that converter does.
- weights in --type (default bf16); norms, other 1-D tensors, the router (ffn_gate_inp) and the
  biases in f32, as that converter does. BF16, F16 and F32 source tensors are read as they are;
  F8_E4M3 tensors are dequantized with their `weight_scale_inv` block scales.
- with tokenizer.json: a byte-level BPE ("gpt2") vocabulary of config.json's vocab_size (ids with no
  token become [PAD<id>]), merges, bos/eos/pad ids and add_bos/add_eos from tokenizer_config.json.
  Without it (seek's random benchmark models have none): a synthetic vocabulary, see
  synthetic_vocab(); fine for llama-bench, which feeds random token ids, useless for text.

scripts/peer/check_gguf.py checks a written file against its source folder, value by value.

--layout mainline writes mainline llama.cpp's MLA layout instead (as its conversion/deepseek.py does;
give its gguf-py, which has the *_mla keys): head_count_kv 1, key_length kv_lora + rope and
value_length kv_lora, key_length_mla nope + rope and value_length_mla v, and only the 3-D
attn_k_b [n_head, kv_lora, nope] and attn_v_b [n_head, v, kv_lora] (no attn_kv_b). Mainline refuses the
ik layout ("wrong number of tensors": it does not read attn_kv_b when the split ones are present).

Not supported: other architectures, tokenizers that are not byte-level BPE, quantized output types,
big-endian hosts, splitting the output file.
"""

import argparse
import json
import math
import re
import struct
import sys
from pathlib import Path

import numpy as np

gguf = None  # the peer's gguf-py, imported in main() from --gguf-py


class ConvertError(Exception):
    pass


# ---------------------------------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length N, N bytes of JSON, then the raw tensor bytes
# (data_offsets are relative to the end of the header).

STORAGE = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"), "F8_E4M3": np.dtype("u1")}


def _e4m3fn_table():
    """float32 value of each e4m3fn code: bias 7, subnormals at exponent 0, S.1111.111 is NaN."""
    codes = np.arange(256)
    exp = (codes >> 3) & 0xF
    man = codes & 7
    mag = np.where(exp == 0, man / 8.0 * 2.0 ** -6, (1.0 + man / 8.0) * 2.0 ** (exp - 7.0))
    mag[(exp == 15) & (man == 7)] = np.nan
    return np.where(codes >> 7, -mag, mag).astype(np.float32)


E4M3FN = _e4m3fn_table()


class Checkpoint:
    """The tensors of one model folder: model.safetensors, or the shards a model.safetensors.index.json
    names. Tensors are memory-mapped and read on demand."""

    def __init__(self, model_dir, block_size):
        self.block_size = block_size
        self.entries = {}  # name -> (path, dtype string, shape, begin, end) with absolute offsets
        index = model_dir / "model.safetensors.index.json"
        single = model_dir / "model.safetensors"
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (KeyError, ValueError) as e:
                raise ConvertError(f"{index}: no readable 'weight_map' ({e})")
            files = sorted(set(weight_map.values()))
        elif single.is_file():
            weight_map, files = None, ["model.safetensors"]
        else:
            raise ConvertError(f"{model_dir}: neither model.safetensors nor model.safetensors.index.json")
        for fname in files:
            path = model_dir / fname
            if not path.is_file():
                raise ConvertError(f"{index}: names {fname}, which does not exist")
            self._read_header(path)
        if weight_map is not None and set(weight_map) != set(self.entries):
            diff = sorted(set(weight_map) ^ set(self.entries))
            raise ConvertError(f"{index}: weight_map and the shards disagree on {len(diff)} tensors, e.g. {diff[:3]}")
        self._maps = {}

    def _read_header(self, path):
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise ConvertError(f"{path}: too short for a safetensors file")
            (n,) = struct.unpack("<Q", raw)
            try:
                header = json.loads(f.read(n))
            except ValueError as e:
                raise ConvertError(f"{path}: bad safetensors header ({e})")
        size = path.stat().st_size
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype, shape, (b, e) = info["dtype"], info["shape"], info["data_offsets"]
            if name in self.entries:
                raise ConvertError(f"{path}: tensor {name} is also in {self.entries[name][0]}")
            if dtype in STORAGE and (e - b != math.prod(shape) * STORAGE[dtype].itemsize or 8 + n + e > size):
                raise ConvertError(f"{path}: tensor {name}: data_offsets do not match dtype {dtype} shape {shape}")
            self.entries[name] = (path, dtype, tuple(shape), 8 + n + b, 8 + n + e)

    def names(self):
        return list(self.entries)

    def shape(self, name):
        return self.entries[name][2]

    def dtype(self, name):
        return self.entries[name][1]

    def raw(self, name):
        """The stored array (BF16 as uint16 bits, F8_E4M3 as uint8 codes), read-only memmap."""
        path, dtype, shape, b, e = self.entries[name]
        if dtype not in STORAGE:
            raise ConvertError(f"{path}: tensor {name} has dtype {dtype}; supported: {', '.join(STORAGE)}")
        if path not in self._maps:
            self._maps[path] = np.memmap(path, dtype=np.uint8, mode="r")
        return self._maps[path][b:e].view(STORAGE[dtype]).reshape(shape)

    def f32(self, name):
        """The tensor's values as float32 (FP8: code value times its block's weight_scale_inv)."""
        dtype, a = self.dtype(name), self.raw(name)
        if dtype == "F32":
            return np.array(a, dtype=np.float32)
        if dtype == "F16":
            return a.astype(np.float32)
        if dtype == "BF16":
            return (a.astype(np.uint32) << 16).view(np.float32)
        # F8_E4M3 with 2-D block scales
        sname = name + "_scale_inv"
        if sname not in self.entries:
            raise ConvertError(f"F8_E4M3 tensor {name} has no {sname} (block scales) in {self.entries[name][0]}")
        if a.ndim != 2:
            raise ConvertError(f"F8_E4M3 tensor {name} has shape {a.shape}; only 2-D block-scaled FP8 is supported")
        bo, bi = self.block_size
        rows, cols = a.shape
        s = self.f32(sname)
        if s.shape != (-(-rows // bo), -(-cols // bi)):
            raise ConvertError(f"{sname}: shape {s.shape} does not fit {name} {a.shape} in {bo}x{bi} blocks")
        v = E4M3FN[a]
        v *= np.repeat(np.repeat(s, bo, axis=0), bi, axis=1)[:rows, :cols]
        return v


def f32_to_bf16_bits(x):
    """Round to nearest even, NaN kept quiet (what ggml's fp32 -> bf16 conversion does)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    r = ((u.astype(np.uint64) + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    if nan.any():
        r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return r


# ---------------------------------------------------------------------------------------------------
# config.json -> deepseek2 hyperparameters

def need(cfg, key, where="config.json"):
    if cfg.get(key) is None:
        raise ConvertError(f"{where}: missing field '{key}'")
    return cfg[key]


def write_hparams(w, cfg, ftype, name, layout="ik"):
    """The keys ik_llama.cpp's converter writes for DeepseekV2/V3ForCausalLM (base Model keys first,
    then DeepseekV2Model's), from the same config fields."""
    n_layer = need(cfg, "num_hidden_layers")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name)
    w.add_block_count(n_layer)
    if cfg.get("max_position_embeddings") is not None:
        w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(need(cfg, "hidden_size"))
    w.add_feed_forward_length(need(cfg, "intermediate_size"))
    w.add_head_count(need(cfg, "num_attention_heads"))
    if layout == "mainline":
        w.add_head_count_kv(1)  # MLA as MQA over the latent
    elif layout == "legacy":
        w.add_head_count_kv(need(cfg, "num_attention_heads"))  # as MHA: llama.cpp's files before the split
    elif cfg.get("num_key_value_heads") is not None:
        w.add_head_count_kv(cfg["num_key_value_heads"])
    if cfg.get("rope_theta") is not None:
        w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(need(cfg, "rms_norm_eps"))
    w.add_expert_used_count(need(cfg, "num_experts_per_tok"))
    w.add_file_type(ftype)

    w.add_leading_dense_block_count(cfg.get("first_k_dense_replace", 0))
    w.add_vocab_size(need(cfg, "vocab_size"))
    if cfg.get("q_lora_rank") is not None:
        w.add_q_lora_rank(cfg["q_lora_rank"])
    w.add_kv_lora_rank(need(cfg, "kv_lora_rank"))
    key_length = cfg.get("head_dim") or need(cfg, "qk_nope_head_dim") + need(cfg, "qk_rope_head_dim")
    if layout == "mainline":
        if not hasattr(w, "add_key_length_mla"):
            raise ConvertError("--layout mainline: this gguf-py has no add_key_length_mla (give mainline's gguf-py)")
        w.add_key_length(need(cfg, "kv_lora_rank") + need(cfg, "qk_rope_head_dim"))
        w.add_value_length(need(cfg, "kv_lora_rank"))
        w.add_key_length_mla(key_length)
        w.add_value_length_mla(cfg.get("v_head_dim", key_length))
    else:
        w.add_key_length(key_length)
        w.add_value_length(cfg.get("v_head_dim", key_length))
    w.add_expert_feed_forward_length(need(cfg, "moe_intermediate_size"))
    w.add_expert_count(need(cfg, "n_routed_experts"))
    w.add_expert_shared_count(need(cfg, "n_shared_experts"))
    w.add_expert_weights_scale(need(cfg, "routed_scaling_factor"))
    w.add_expert_weights_norm(need(cfg, "norm_topk_prob"))
    gating = {"sigmoid": gguf.ExpertGatingFuncType.SIGMOID, "softmax": gguf.ExpertGatingFuncType.SOFTMAX}
    scoring = need(cfg, "scoring_func")
    if scoring not in gating:
        raise ConvertError(f"config.json: scoring_func '{scoring}' is not supported (sigmoid, softmax)")
    w.add_expert_gating_func(gating[scoring])
    w.add_rope_dimension_count(need(cfg, "qk_rope_head_dim"))

    rs = cfg.get("rope_scaling")
    if rs and "factor" in rs:
        kind = rs.get("type", rs.get("rope_type"))  # the peer's converter reads only "type"
        if kind == "yarn" and "mscale_all_dim" in rs:
            w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            w.add_rope_scaling_factor(rs["factor"])
            w.add_rope_scaling_orig_ctx_len(need(rs, "original_max_position_embeddings", "config.json rope_scaling"))
            w.add_rope_scaling_yarn_log_mul(0.1 * rs["mscale_all_dim"])
        else:
            note(f"rope_scaling {rs} is not written (the peer's converter writes only yarn with mscale_all_dim)")


DENSE = ("qwen2", "llama")


def write_hparams_dense(w, cfg, ftype, name):
    """The keys llama.cpp's converter writes for Qwen2ForCausalLM and LlamaForCausalLM (TextModel's)."""
    n_head = need(cfg, "num_attention_heads")
    head_dim = cfg.get("head_dim") or need(cfg, "hidden_size") // n_head
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name)
    w.add_block_count(need(cfg, "num_hidden_layers"))
    w.add_context_length(need(cfg, "max_position_embeddings"))
    w.add_embedding_length(need(cfg, "hidden_size"))
    w.add_feed_forward_length(need(cfg, "intermediate_size"))
    w.add_head_count(n_head)
    w.add_head_count_kv(cfg.get("num_key_value_heads") or n_head)
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    w.add_layer_norm_rms_eps(need(cfg, "rms_norm_eps"))
    w.add_file_type(ftype)
    if cfg["model_type"] == "llama":
        w.add_vocab_size(need(cfg, "vocab_size"))
        w.add_rope_dimension_count(head_dim)
    rs = cfg.get("rope_scaling")
    if rs and not (cfg["model_type"] == "llama" and rs.get("rope_type", rs.get("type")) == "llama3"):
        raise ConvertError(f"config.json: rope_scaling {rs} is not supported for {cfg['model_type']}")


def llama3_rope_factors(cfg):
    """Llama 3.1's rope scaling as llama.cpp's converter stores it (LlamaModel.generate_extra_tensors): no
    scaling keys, but a rope_freqs tensor of one divisor per rotary frequency, computed in float32 freqs."""
    rs = cfg["rope_scaling"]
    dim = cfg.get("head_dim") or need(cfg, "hidden_size") // need(cfg, "num_attention_heads")
    base = cfg.get("rope_theta", 10000.0)
    freqs = 1.0 / (np.float32(base) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))
    factor = rs.get("factor", 8.0)
    low, high = rs.get("low_freq_factor", 1.0), rs.get("high_freq_factor", 4.0)
    old_ctx = rs.get("original_max_position_embeddings", 8192)
    out = []
    for f in freqs.astype(np.float64):
        wavelen = 2 * math.pi / f
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def llama_permute(x, n_head):
    """llama.cpp's converter stores Llama's q and k rows with each head's two rotary halves interleaved
    (Meta's layout, which its NORM rope expects); Hugging Face's checkpoints have them as two halves."""
    return x.reshape(n_head, 2, x.shape[0] // n_head // 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)


def plan_dense(ck, cfg, out_type):
    T = gguf.GGMLQuantizationType
    arch = {"qwen2": gguf.MODEL_ARCH.QWEN2, "llama": gguf.MODEL_ARCH.LLAMA}[cfg["model_type"]]
    tmap = gguf.get_tensor_name_map(arch, cfg["num_hidden_layers"])
    np_dtype = {T.F32: np.float32, T.F16: np.float16, T.BF16: np.uint16}
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads") or n_head
    plan = []
    for name in sorted(ck.names()):
        g = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        if g is None:
            raise ConvertError(f"tensor {name} has no {cfg['model_type']} GGUF name")
        shape = ck.shape(name)
        q = T.F32 if len(shape) <= 1 or g.endswith("_norm.weight") else out_type

        def load(name=name, q=q):
            x = ck.f32(name)
            if cfg["model_type"] == "llama" and name.endswith("q_proj.weight"):
                x = llama_permute(x, n_head)
            elif cfg["model_type"] == "llama" and name.endswith("k_proj.weight"):
                x = llama_permute(x, n_kv)
            return f32_to_bf16_bits(x) if q == T.BF16 else np.ascontiguousarray(x, dtype=np_dtype[q])
        plan.append((g, shape, q, load))
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factors = llama3_rope_factors(cfg)
        plan.insert(0, ("rope_freqs.weight", factors.shape, T.F32, lambda: factors))
    return plan


def check_config(cfg):
    mt = cfg.get("model_type")
    if mt in DENSE:
        return
    if mt not in ("deepseek_v3", "deepseek_v2"):
        raise ConvertError(f"config.json: model_type is {mt!r}; supported: deepseek_v3, deepseek_v2, qwen2, llama")
    if cfg.get("moe_layer_freq", 1) != 1:
        raise ConvertError(f"config.json: moe_layer_freq {cfg['moe_layer_freq']} is not supported "
                           "(ik_llama.cpp makes every layer after first_k_dense_replace an MoE layer)")
    n_group, topk_group = cfg.get("n_group") or 1, cfg.get("topk_group") or 1
    if n_group > 1 and topk_group < n_group:
        note(f"n_group {n_group} / topk_group {topk_group}: ik_llama.cpp's deepseek2 routes with a plain top-k "
             "over all experts (no group limit), so its expert choice can differ from seek's; the cost is the same")


# ---------------------------------------------------------------------------------------------------
# tensors

def plan_tensors(ck, cfg, out_type, layout="ik"):
    """A list of (gguf name, numpy shape, ggml type, function returning the data), in write order."""
    T = gguf.GGMLQuantizationType
    n_layer = cfg["num_hidden_layers"]
    n_expert = cfg["n_routed_experts"]
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.DEEPSEEK2, n_layer)
    np_dtype = {T.F32: np.float32, T.F16: np.float16, T.BF16: np.uint16}

    def encode(x, qtype):
        if qtype == T.BF16:
            return f32_to_bf16_bits(x)
        return np.ascontiguousarray(x, dtype=np_dtype[qtype])

    def loader(name, qtype):
        def load():
            src = ck.dtype(name)
            if (src, qtype) in (("BF16", T.BF16), ("F16", T.F16), ("F32", T.F32)):
                return np.ascontiguousarray(ck.raw(name))  # the stored bits are already the output
            return encode(ck.f32(name), qtype)
        return load

    def gguf_name(hf_name):
        g = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if g is None:
            raise ConvertError(f"tensor {hf_name} ({ck.entries.get(hf_name, ('?',))[0]}) has no deepseek2 GGUF name")
        return g

    def out_qtype(hf_name, g, ndim):
        # the peer converter's rule: 1-D, norms, the router and non-".weight" tensors stay f32
        if ndim <= 1 or g.endswith("_norm.weight") or not hf_name.endswith(".weight"):
            return T.F32
        if re.fullmatch(r"blk\.\d+\.ffn_gate_inp\.weight", g):
            return T.F32
        return out_type

    def layer_of(name):
        m = re.match(r"model\.layers\.(\d+)\.", name)
        return int(m.group(1)) if m else None

    def order(name):
        bid = layer_of(name)
        if bid is not None:
            return (1, bid, name)
        return (0 if "embed_tokens" in name else 2, 0, name)

    plan, experts, done_experts, skipped = [], {}, set(), 0
    names = ck.names()
    for name in names:
        m = re.fullmatch(r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight", name)
        if m:
            experts[(int(m.group(1)), int(m.group(2)), m.group(3))] = name
    if "lm_head.weight" not in ck.entries:
        raise ConvertError("lm_head.weight is missing (tied embeddings are not supported; ik_llama.cpp needs output.weight)")

    for name in sorted(names, key=order):
        bid = layer_of(name)
        if bid is not None and bid >= n_layer:
            skipped += 1  # multi-token prediction layers: the peer's converter drops them
            continue
        if name.endswith("_scale_inv"):
            if name[: -len("_scale_inv")] not in ck.entries:
                raise ConvertError(f"{name} has no tensor {name[:-len('_scale_inv')]} to scale")
            continue
        if name.endswith((".attention.masked_bias", ".attention.bias", ".rotary_emb.inv_freq")):
            continue
        if ck.dtype(name) not in STORAGE:
            raise ConvertError(f"tensor {name} ({ck.entries[name][0]}) has dtype {ck.dtype(name)}; "
                               f"supported: {', '.join(STORAGE)}")
        if ck.dtype(name) == "F8_E4M3" and name + "_scale_inv" not in ck.entries:
            raise ConvertError(f"F8_E4M3 tensor {name} has no {name}_scale_inv (block scales)")
        shape = ck.shape(name)

        m = re.fullmatch(r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight", name)
        if m:
            if bid in done_experts:
                continue
            done_experts.add(bid)
            for proj in ("down_proj", "gate_proj", "up_proj"):
                parts = []
                for x in range(n_expert):
                    if (bid, x, proj) not in experts:
                        raise ConvertError(f"model.layers.{bid}.mlp.experts.{x}.{proj}.weight is missing "
                                           f"(config.json n_routed_experts = {n_expert})")
                    parts.append(experts[(bid, x, proj)])
                s0 = ck.shape(parts[0])
                if any(ck.shape(p) != s0 for p in parts) or len(s0) != 2:
                    raise ConvertError(f"layer {bid} {proj}: experts have different or non-2-D shapes")
                g = gguf_name(f"model.layers.{bid}.mlp.experts.{proj}.weight")
                q = out_qtype(parts[0], g, 3)

                def stacked(parts=parts, q=q, s0=s0):
                    out = np.empty((len(parts),) + s0, dtype=np_dtype[q])
                    for i, p in enumerate(parts):
                        out[i] = loader(p, q)()
                    return out
                plan.append((g, (n_expert,) + s0, q, stacked))
            continue

        if name.endswith("kv_b_proj.weight"):
            # kv_b [n_head * (nope + v), kv_lora], per head k_nope rows then v rows. Written as is,
            # and split: k_b [n_head * kv_lora, nope] (each head's k part transposed), v_b [n_head * v, kv_lora].
            n_head = need(cfg, "num_key_value_heads")
            nope, vdim = cfg["qk_nope_head_dim"], cfg["v_head_dim"]
            rows, rank = shape
            if rows != n_head * (nope + vdim):
                raise ConvertError(f"{name}: shape {shape}, expected [{n_head} * ({nope} + {vdim}), kv_lora_rank]")
            g = gguf_name(name)
            q = out_qtype(name, g, 2)
            if layout in ("ik", "legacy"):
                plan.append((g, shape, q, loader(name, q)))
            if layout == "legacy":
                continue

            def k_b(name=name, q=q):
                kv = ck.f32(name).reshape(n_head, nope + vdim, rank)
                return encode(kv[:, :nope, :].transpose(0, 2, 1).reshape(n_head * rank, nope), q)

            def v_b(name=name, q=q):
                kv = ck.f32(name).reshape(n_head, nope + vdim, rank)
                return encode(kv[:, nope:, :].reshape(n_head * vdim, rank), q)
            # the same values; mainline wants them 3-D, one matrix per head
            k_shape = (n_head, rank, nope) if layout == "mainline" else (n_head * rank, nope)
            v_shape = (n_head, vdim, rank) if layout == "mainline" else (n_head * vdim, rank)
            plan.append((gguf_name(name.replace("kv_b_proj", "k_b_proj")), k_shape, q,
                         lambda k_b=k_b, k_shape=k_shape: k_b().reshape(k_shape)))
            plan.append((gguf_name(name.replace("kv_b_proj", "v_b_proj")), v_shape, q,
                         lambda v_b=v_b, v_shape=v_shape: v_b().reshape(v_shape)))
            continue

        hf = name.replace("e_score_correction_bias", "e_score_correction.bias")
        g = gguf_name(hf)
        q = out_qtype(hf, g, len(shape))
        plan.append((g, shape, q, loader(name, q)))

    if skipped:
        note(f"dropped {skipped} tensors of the multi-token-prediction layer(s) (index >= {n_layer})")
    seen = set()
    for g, *_ in plan:
        if g in seen:
            raise ConvertError(f"two source tensors map to {g}")
        seen.add(g)
    return plan


# ---------------------------------------------------------------------------------------------------
# vocabulary

def bytes_to_unicode():
    """GPT-2's byte -> printable character table used by byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


# llama.cpp's names for the pre-tokenizers it implements, keyed by the Hugging Face pre_tokenizer.
# DeepSeek-V3's tokenizer.json (three Split regexes, then ByteLevel without its own regex) is what
# llama.cpp calls "deepseek-v3" (LLAMA_VOCAB_PRE_TYPE_DEEPSEEK3_LLM, the same three regexes).
DEEPSEEK_V3_SPLITS = [
    "\\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]


def detect_pre(pre):
    """tokenizer.json's pre_tokenizer -> llama.cpp's tokenizer.ggml.pre name."""
    steps = pre.get("pretokenizers", []) if pre and pre.get("type") == "Sequence" else [pre] if pre else []
    splits = [s.get("pattern", {}).get("Regex") for s in steps if s.get("type") == "Split"]
    byte_level = [s for s in steps if s.get("type") == "ByteLevel"]
    if len(byte_level) != 1 or steps[-1] is not byte_level[0]:
        raise ConvertError("tokenizer.json: pre_tokenizer does not end in ByteLevel; only byte-level BPE is supported")
    use_regex = byte_level[0].get("use_regex", True)
    if splits == DEEPSEEK_V3_SPLITS and not use_regex:
        return "deepseek-v3"
    if splits == ["\\p{N}"] and use_regex and steps[0].get("behavior") == "Isolated":
        # single digits, then GPT-2's regex: seek's own BPE trainer writes this. llama.cpp's
        # "smollm" is exactly these two regexes (and, like Hugging Face here, no space cleanup).
        return "smollm"
    if not splits and use_regex:
        return "gpt-2"
    return None


def looks_special(tok):
    # the peer converter's does_token_look_special
    return (tok in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (tok.startswith("<|") and tok.endswith("|>"))
            or (tok.startswith("<｜") and tok.endswith("｜>")) or (tok.startswith("<unused") and tok.endswith(">")))


def vocab_from_tokenizer_json(w, model_dir, vocab_size, pre_override):
    path = model_dir / "tokenizer.json"
    tj = json.loads(path.read_text(encoding="utf-8"))
    model = tj.get("model") or {}
    if model.get("type") != "BPE":
        raise ConvertError(f"{path}: model.type is {model.get('type')!r}; only BPE is supported")
    id_to_tok = {i: t for t, i in model.get("vocab", {}).items()}
    added = {}
    for t in tj.get("added_tokens", []):
        added[t["id"]] = t
        id_to_tok[t["id"]] = t["content"]
    if not id_to_tok:
        raise ConvertError(f"{path}: model.vocab is empty")
    if max(id_to_tok) >= vocab_size:
        raise ConvertError(f"{path}: token id {max(id_to_tok)} >= config.json vocab_size {vocab_size}")

    T = gguf.TokenType
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in id_to_tok:
            tokens.append(f"[PAD{i}]")
            types.append(T.UNUSED)
            continue
        tok = id_to_tok[i]
        if i in added:
            if added[i].get("special") or looks_special(tok):
                types.append(T.CONTROL)
            else:
                tok = tok.replace("\u2581", " ")
                types.append(T.USER_DEFINED)
        else:
            types.append(T.NORMAL)
        tokens.append(tok)
    if len(set(tokens)) != len(tokens):
        raise ConvertError(f"{path}: two ids have the same token text")

    pre = pre_override or detect_pre(tj.get("pre_tokenizer"))
    if pre is None:
        pre = "deepseek-v3"
        note(f"{path}: pre_tokenizer not recognized, writing 'deepseek-v3' (use --pre to choose); "
             "text may tokenize differently from Hugging Face, token ids fed directly are unaffected")

    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)  # handles both merge forms
    if not special.merges:
        raise ConvertError(f"{path}: model.merges is empty; llama.cpp's BPE loader needs merges")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    special.add_to_gguf(w, quiet=True)
    return f"tokenizer.json: {len(id_to_tok)} tokens, {vocab_size - len(id_to_tok)} padding, " \
           f"{len(special.merges)} merges, pre '{pre}', special ids {special.special_token_ids}"


def synthetic_vocab(w, vocab_size, pre="deepseek-v3"):
    """No tokenizer.json: ids 0..255 are the 256 byte-level tokens (so any text tokenizes), id 256 is
    'ĠĠ' (two spaces) with the single merge 'Ġ Ġ' (the BPE loader needs a merges key), the last id
    is <|endoftext|> (control; bos = eos), the rest are fillers [SYN<id>]."""
    if vocab_size < 258:
        raise ConvertError(f"config.json: vocab_size {vocab_size} is too small for the synthetic vocabulary (>= 258)")
    T = gguf.TokenType
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)] + ["ĠĠ"] + [f"[SYN{i}]" for i in range(257, vocab_size - 1)] + ["<|endoftext|>"]
    types = [T.NORMAL] * (vocab_size - 1) + [T.CONTROL]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(["Ġ Ġ"])
    w.add_bos_token_id(vocab_size - 1)
    w.add_eos_token_id(vocab_size - 1)
    w.add_add_bos_token(False)
    return f"no tokenizer.json: SYNTHETIC vocabulary of {vocab_size} tokens (bytes, fillers, " \
           f"<|endoftext|> = {vocab_size - 1}); fine for llama-bench, not for text"


# ---------------------------------------------------------------------------------------------------

def note(msg):
    print(f"hf_to_gguf: note: {msg}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf-py", required=True, help="the peer's gguf-py folder (ik_llama.cpp/gguf-py)")
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--type", choices=("bf16", "f16", "f32"), default="bf16", help="type of the weight matrices")
    ap.add_argument("--pre", help="tokenizer.ggml.pre to write instead of the detected one")
    ap.add_argument("--layout", choices=("ik", "mainline", "legacy"), default="ik",
                    help="MLA tensors as ik_llama.cpp reads them (default), as mainline llama.cpp does (split "
                         "attn_k_b/attn_v_b), or as llama.cpp wrote them before that split (attn_kv_b only)")
    args = ap.parse_args()

    global gguf
    gp = Path(args.gguf_py)
    if not (gp / "gguf" / "__init__.py").is_file():
        sys.exit(f"hf_to_gguf: --gguf-py {gp}: no gguf/__init__.py there (give the peer's gguf-py folder)")
    sys.path.insert(0, str(gp))
    import gguf as g
    gguf = g

    try:
        cfg_path = args.model_dir / "config.json"
        if not cfg_path.is_file():
            raise ConvertError(f"{cfg_path}: not found")
        cfg = json.loads(cfg_path.read_text())
        check_config(cfg)
        block = (cfg.get("quantization_config") or {}).get("weight_block_size", [128, 128])
        ck = Checkpoint(args.model_dir, tuple(block))
        T, F = gguf.GGMLQuantizationType, gguf.LlamaFileType
        out_type, ftype = {"bf16": (T.BF16, F.MOSTLY_BF16), "f16": (T.F16, F.MOSTLY_F16),
                           "f32": (T.F32, F.ALL_F32)}[args.type]
        dense = cfg["model_type"] in DENSE
        if dense:
            plan = plan_dense(ck, cfg, out_type)
            arch = {"qwen2": gguf.MODEL_ARCH.QWEN2, "llama": gguf.MODEL_ARCH.LLAMA}[cfg["model_type"]]
        else:
            plan = plan_tensors(ck, cfg, out_type, args.layout)
            arch = gguf.MODEL_ARCH.DEEPSEEK2

        w = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[arch])
        if dense:
            write_hparams_dense(w, cfg, ftype, args.model_dir.resolve().name)
        else:
            write_hparams(w, cfg, ftype, args.model_dir.resolve().name, args.layout)
        vocab_size = cfg["vocab_size"]
        if (args.model_dir / "tokenizer.json").is_file():
            vocab_msg = vocab_from_tokenizer_json(w, args.model_dir, vocab_size, args.pre)
        else:
            default_pre = {"qwen2": "qwen2", "llama": "llama-bpe"}.get(cfg["model_type"], "deepseek-v3")
            vocab_msg = synthetic_vocab(w, vocab_size, args.pre or default_pre)
            note(vocab_msg)
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)

        itemsize = {T.F32: 4, T.F16: 2, T.BF16: 2}
        np_dtype = {T.F32: np.float32, T.F16: np.float16, T.BF16: np.uint16}
        for gname, shape, q, _ in plan:
            w.add_tensor_info(gname, shape, np.dtype(np_dtype[q]), math.prod(shape) * itemsize[q], raw_dtype=q)
        w.write_header_to_file(path=args.out)
        try:
            w.write_kv_data_to_file()
            w.write_ti_data_to_file()
            total = 0
            for gname, shape, q, load in plan:  # one tensor in memory at a time
                data = load()
                if tuple(data.shape) != tuple(shape) or data.dtype != np_dtype[q]:
                    raise ConvertError(f"internal: {gname} came out {data.shape} {data.dtype}, planned {shape} {q.name}")
                w.write_tensor_data(data)
                total += data.nbytes
            w.close()
        except BaseException:
            w.close()
            args.out.unlink(missing_ok=True)  # no half-written file left behind
            raise
    except ConvertError as e:
        sys.exit(f"hf_to_gguf: error: {e}")
    print(f"hf_to_gguf: wrote {args.out}: {len(plan)} tensors, {total / 2**20:.1f} MiB, weights {args.type}; {vocab_msg}")


if __name__ == "__main__":
    main()
