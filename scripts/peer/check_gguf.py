#!/usr/bin/env python3
"""Check a GGUF file written by hf_to_gguf.py against the model folder it came from.

Reads the GGUF with the peer's gguf-py (GGUFReader) and the safetensors with
scripts/reference/safetensors_io.py and fp8.py (not with hf_to_gguf.py's reader), and checks:
- the tensor set is exactly what ik_llama.cpp's deepseek2 loader expects for config.json, each with
  the expected ggml shape and type (f32 for 1-D tensors and the router, --type for the rest);
- every value: the source value (FP8 times its block scale) rounded to the tensor's type, bit for
  bit; experts stacked in id order; attn_k_b / attn_v_b rebuilt head by head from kv_b;
- the deepseek2 hyperparameter keys against config.json;
- the vocabulary: vocab_size tokens; with tokenizer.json, the tokens by id, the merges and the
  bos/eos ids; without it, a synthetic vocabulary with all 256 byte tokens.

Usage: /usr/bin/python3 scripts/peer/check_gguf.py --gguf-py PATH/gguf-py MODEL_DIR FILE.gguf [--type bf16]
Exit status 1 with a list of problems, 0 when all checks pass. Reads every tensor: meant for the
small models seek generates, not for a 671B checkpoint.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
import fp8  # noqa: E402
import safetensors_io as st  # noqa: E402


def read_source(model_dir):
    index = model_dir / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else ["model.safetensors"]
    tensors = {}
    for f in files:
        tensors.update(st.read(model_dir / f)[0])
    return tensors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf-py", required=True)
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("gguf_file", type=Path)
    ap.add_argument("--type", default="bf16", choices=("bf16", "f16", "f32"))
    ap.add_argument("--layout", default="ik", choices=("ik", "mainline"), help="as given to hf_to_gguf.py")
    args = ap.parse_args()
    sys.path.insert(0, args.gguf_py)
    from gguf import GGUFReader, GGMLQuantizationType as Q

    cfg = json.loads((args.model_dir / "config.json").read_text())
    src = read_source(args.model_dir)
    r = GGUFReader(args.gguf_file)
    problems = []

    def bad(msg):
        problems.append(msg)

    # ---- source values as float32 (FP8 dequantized with its block scale)
    def sval(name):
        dt, arr = src[name]
        if dt == "F8_E4M3":
            s = st.to_float64(*src[name + "_scale_inv"])
            v = fp8.decode(arr) * np.kron(s, np.ones((128, 128)))[: arr.shape[0], : arr.shape[1]]
            return v.astype(np.float32)
        return st.to_float64(dt, arr).astype(np.float32)

    wtype = {"bf16": Q.BF16, "f16": Q.F16, "f32": Q.F32}[args.type]

    def rounded(x, q):
        if q == Q.F32:
            return x.astype(np.float32).view(np.uint32)
        if q == Q.F16:
            return x.astype(np.float16).view(np.uint16)
        return st.f32_to_bf16_bits(x)

    # ---- expected tensors: gguf name -> (numpy shape, type, function giving source float32 values)
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    nh, nope, rope, vd = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    ql, kvl = cfg["q_lora_rank"], cfg["kv_lora_rank"]
    E, fe, ns = cfg["n_routed_experts"], cfg["moe_intermediate_size"], cfg["n_shared_experts"]
    I, L, dense = cfg["intermediate_size"], cfg["num_hidden_layers"], cfg.get("first_k_dense_replace", 0)

    exp = {"token_embd.weight": ((V, H), wtype, lambda: sval("model.embed_tokens.weight")),
           "output_norm.weight": ((H,), Q.F32, lambda: sval("model.norm.weight")),
           "output.weight": ((V, H), wtype, lambda: sval("lm_head.weight"))}

    def k_b(p):
        kv = sval(p + "self_attn.kv_b_proj.weight")
        out = np.empty((nh * kvl, nope), np.float32)
        for h in range(nh):
            out[h * kvl:(h + 1) * kvl] = kv[h * (nope + vd): h * (nope + vd) + nope].T
        return out

    def v_b(p):
        kv = sval(p + "self_attn.kv_b_proj.weight")
        return np.concatenate([kv[h * (nope + vd) + nope:(h + 1) * (nope + vd)] for h in range(nh)])

    for l in range(L):
        p, b = f"model.layers.{l}.", f"blk.{l}."

        def add(gname, shape, q, hf):
            exp[b + gname] = (shape, q, (lambda hf=p + hf: sval(hf)) if isinstance(hf, str) else hf)
        add("attn_norm.weight", (H,), Q.F32, "input_layernorm.weight")
        add("ffn_norm.weight", (H,), Q.F32, "post_attention_layernorm.weight")
        add("attn_q_a_norm.weight", (ql,), Q.F32, "self_attn.q_a_layernorm.weight")
        add("attn_kv_a_norm.weight", (kvl,), Q.F32, "self_attn.kv_a_layernorm.weight")
        add("attn_q_a.weight", (ql, H), wtype, "self_attn.q_a_proj.weight")
        add("attn_q_b.weight", (nh * (nope + rope), ql), wtype, "self_attn.q_b_proj.weight")
        add("attn_kv_a_mqa.weight", (kvl + rope, H), wtype, "self_attn.kv_a_proj_with_mqa.weight")
        if args.layout == "ik":
            add("attn_kv_b.weight", (nh * (nope + vd), kvl), wtype, "self_attn.kv_b_proj.weight")
            add("attn_k_b.weight", (nh * kvl, nope), wtype, lambda p=p: k_b(p))
            add("attn_v_b.weight", (nh * vd, kvl), wtype, lambda p=p: v_b(p))
        else:  # 3-D, one matrix per head
            add("attn_k_b.weight", (nh, kvl, nope), wtype, lambda p=p: k_b(p).reshape(nh, kvl, nope))
            add("attn_v_b.weight", (nh, vd, kvl), wtype, lambda p=p: v_b(p).reshape(nh, vd, kvl))
        add("attn_output.weight", (H, nh * vd), wtype, "self_attn.o_proj.weight")
        if l < dense:
            add("ffn_gate.weight", (I, H), wtype, "mlp.gate_proj.weight")
            add("ffn_up.weight", (I, H), wtype, "mlp.up_proj.weight")
            add("ffn_down.weight", (H, I), wtype, "mlp.down_proj.weight")
            continue
        add("ffn_gate_inp.weight", (E, H), Q.F32, "mlp.gate.weight")
        add("exp_probs_b.bias", (E,), Q.F32, "mlp.gate.e_score_correction_bias")
        for g, hf, shape in (("gate", "gate_proj", (fe, H)), ("up", "up_proj", (fe, H)), ("down", "down_proj", (H, fe))):
            add(f"ffn_{g}_exps.weight", (E,) + shape, wtype,
                lambda p=p, hf=hf: np.stack([sval(f"{p}mlp.experts.{x}.{hf}.weight") for x in range(E)]))
            add(f"ffn_{g}_shexp.weight", tuple(d * ns if d == fe else d for d in shape), wtype, f"mlp.shared_experts.{hf}.weight")

    got = {t.name: t for t in r.tensors}
    for name in sorted(set(exp) - set(got)):
        bad(f"missing tensor {name}")
    for name in sorted(set(got) - set(exp)):
        bad(f"unexpected tensor {name}")
    n_checked = 0
    for name in sorted(set(exp) & set(got)):
        shape, q, values = exp[name]
        t = got[name]
        if t.tensor_type != q:
            bad(f"{name}: type {t.tensor_type.name}, expected {q.name}")
            continue
        if tuple(int(d) for d in t.shape) != tuple(reversed(shape)):
            bad(f"{name}: ggml shape {list(t.shape)}, expected {list(reversed(shape))}")
            continue
        data = np.asarray(t.data)
        bits = data.view(np.uint16) if q == Q.BF16 else data.view(np.uint16 if q == Q.F16 else np.uint32)
        want = rounded(values(), q)
        if bits.reshape(shape).tobytes() != np.ascontiguousarray(want).reshape(shape).tobytes():
            bad(f"{name}: values differ from the source")
        n_checked += 1

    # ---- hyperparameters
    def field(key):
        f = r.get_field(key)
        if f is None:
            return None
        v = f.contents()
        return v

    arch = "deepseek2"
    want_kv = {
        "general.architecture": arch,
        f"{arch}.block_count": L, f"{arch}.embedding_length": H, f"{arch}.feed_forward_length": I,
        f"{arch}.context_length": cfg.get("max_position_embeddings"),
        f"{arch}.attention.head_count": nh, f"{arch}.attention.head_count_kv": cfg.get("num_key_value_heads"),
        f"{arch}.rope.freq_base": cfg.get("rope_theta"), f"{arch}.attention.layer_norm_rms_epsilon": cfg["rms_norm_eps"],
        f"{arch}.expert_used_count": cfg["num_experts_per_tok"], f"{arch}.leading_dense_block_count": dense,
        f"{arch}.vocab_size": V, f"{arch}.attention.q_lora_rank": ql, f"{arch}.attention.kv_lora_rank": kvl,
        f"{arch}.attention.key_length": nope + rope, f"{arch}.attention.value_length": vd,
        f"{arch}.expert_feed_forward_length": fe, f"{arch}.expert_count": E, f"{arch}.expert_shared_count": ns,
        f"{arch}.expert_weights_scale": cfg["routed_scaling_factor"], f"{arch}.expert_weights_norm": cfg["norm_topk_prob"],
        f"{arch}.expert_gating_func": {"softmax": 1, "sigmoid": 2}[cfg["scoring_func"]],
        f"{arch}.rope.dimension_count": rope,
        "general.file_type": {"f32": 0, "f16": 1, "bf16": 32}[args.type], "tokenizer.ggml.model": "gpt2",
    }
    if args.layout == "mainline":  # MLA as MQA over the latent, the head dims in the *_mla keys
        want_kv.update({f"{arch}.attention.head_count_kv": 1, f"{arch}.attention.key_length": kvl + rope,
                        f"{arch}.attention.value_length": kvl, f"{arch}.attention.key_length_mla": nope + rope,
                        f"{arch}.attention.value_length_mla": vd})
    rs = cfg.get("rope_scaling") or {}
    if rs.get("type", rs.get("rope_type")) == "yarn" and "mscale_all_dim" in rs:
        want_kv.update({f"{arch}.rope.scaling.type": "yarn", f"{arch}.rope.scaling.factor": rs["factor"],
                        f"{arch}.rope.scaling.original_context_length": rs["original_max_position_embeddings"],
                        f"{arch}.rope.scaling.yarn_log_multiplier": 0.1 * rs["mscale_all_dim"]})
    for key, want in want_kv.items():
        have = field(key)
        ok = (have == want) if not isinstance(want, float) or isinstance(want, bool) else \
            (have is not None and abs(have - want) <= 1e-6 * max(1.0, abs(want)))
        if not ok:
            bad(f"key {key}: {have!r}, expected {want!r}")

    # ---- vocabulary
    tokens = field("tokenizer.ggml.tokens")
    merges = field("tokenizer.ggml.merges")
    if tokens is None or len(tokens) != V:
        bad(f"tokenizer.ggml.tokens: {None if tokens is None else len(tokens)} tokens, expected {V}")
    if not merges:
        bad("tokenizer.ggml.merges missing or empty (llama.cpp's BPE loader requires it)")
    tj_path = args.model_dir / "tokenizer.json"
    if tokens is not None and tj_path.is_file():
        tj = json.loads(tj_path.read_text(encoding="utf-8"))
        by_id = {i: t for t, i in tj["model"]["vocab"].items()}
        by_id.update({t["id"]: t["content"] for t in tj.get("added_tokens", [])})
        for i in range(V):
            if tokens[i] != by_id.get(i, f"[PAD{i}]"):
                bad(f"token {i}: {tokens[i]!r}, expected {by_id.get(i, f'[PAD{i}]')!r}")
                break
        want_m = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
        if merges != want_m:
            bad(f"merges: {len(merges or [])} written, tokenizer.json has {len(want_m)} (or their order/text differs)")
        tc = json.loads((args.model_dir / "tokenizer_config.json").read_text()) \
            if (args.model_dir / "tokenizer_config.json").is_file() else {}
        ids = {t: i for i, t in by_id.items()}
        for typ in ("bos", "eos"):
            content = tc.get(f"{typ}_token")
            content = content.get("content") if isinstance(content, dict) else content
            if content is not None and field(f"tokenizer.ggml.{typ}_token_id") != ids.get(content):
                bad(f"tokenizer.ggml.{typ}_token_id: {field(f'tokenizer.ggml.{typ}_token_id')}, expected {ids.get(content)}")
    elif tokens is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from hf_to_gguf import bytes_to_unicode
        missing = set(bytes_to_unicode().values()) - set(tokens)
        if missing:
            bad(f"synthetic vocabulary lacks {len(missing)} byte tokens")
        if len(set(tokens)) != len(tokens):
            bad("synthetic vocabulary has duplicate tokens")
    types = field("tokenizer.ggml.token_type")
    if tokens is not None and (types is None or len(types) != len(tokens)):
        bad("tokenizer.ggml.token_type missing or of the wrong length")

    if problems:
        print(f"check_gguf: {args.gguf_file}: {len(problems)} problem(s):")
        for p in problems:
            print("  " + p)
        sys.exit(1)
    print(f"check_gguf: {args.gguf_file}: OK ({n_checked} tensors bit-exact, {len(want_kv)} keys, "
          f"{len(tokens)} tokens, {len(merges)} merges)")


if __name__ == "__main__":
    main()
