// weights.cpp — the HF name → seek slot tables, and checked loading. See weights.h.
//
// The mapping is written as one function per kind of module (MLA, GQA, SwiGLU MLP, MoE, MTP); each
// line is one row of the table: HF name suffix → our slot, with the shape the config implies.
#include "model/weights.h"

#include "util/error.h"

namespace seek {

namespace {

class Loader {
 public:
  Loader(const Config& c, const Checkpoint* ck, std::vector<TensorSpec>* names) : c_(c), ck_(ck), names_(names) {}

  // A 2-D weight [rows, cols] stored as F32/BF16/F16, or F8_E4M3 with `<name>_scale_inv`.
  Mat mat(const std::string& name, int64_t rows, int64_t cols, bool linear = true) {
    if (names_) {
      names_->push_back({name, {rows, cols}, linear});
      return {};
    }
    const TensorInfo& t = ck_->get(name);
    if (t.shape != std::vector<int64_t>{rows, cols})
      throw Error(strfmt("%s: tensor \"%s\" has shape %s, expected [%lld, %lld]", t.file.c_str(), name.c_str(),
                         t.shape_str().c_str(), (long long)rows, (long long)cols));
    if (t.dtype == DType::I32 || t.dtype == DType::I64)
      throw Error(t.file + ": tensor \"" + name + "\" has dtype " + std::string(dtype_name(t.dtype)) +
                  ", expected F32, BF16, F16 or F8_E4M3");
    Mat m;
    m.dtype = t.dtype;
    m.data = t.data;
    m.rows = rows;
    m.cols = cols;
    if (t.dtype == DType::F8_E4M3) {
      int64_t b = c_.fp8_block;
      m.block = b;
      std::string sname = name + "_scale_inv";
      const TensorInfo* s = ck_->find(sname);
      if (!s) throw Error(t.file + ": FP8 tensor \"" + name + "\" has no \"" + sname + "\" block scales");
      std::vector<int64_t> want{(rows + b - 1) / b, (cols + b - 1) / b};
      if (s->dtype != DType::F32 || s->shape != want)
        throw Error(strfmt("%s: tensor \"%s\" is %s %s, expected F32 [%lld, %lld] (%lld×%lld blocks)", s->file.c_str(),
                           sname.c_str(), std::string(dtype_name(s->dtype)).c_str(), s->shape_str().c_str(),
                           (long long)want[0], (long long)want[1], (long long)b, (long long)b));
      m.scale_inv = static_cast<const float*>(s->data);
    }
    return m;
  }

  // A 1-D vector of n values, converted to f32.
  Vec vec(const std::string& name, int64_t n) {
    if (names_) {
      names_->push_back({name, {n}, false});
      return {};
    }
    const TensorInfo& t = ck_->get(name);
    if (t.shape != std::vector<int64_t>{n})
      throw Error(strfmt("%s: tensor \"%s\" has shape %s, expected [%lld]", t.file.c_str(), name.c_str(),
                         t.shape_str().c_str(), (long long)n));
    if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16)
      throw Error(t.file + ": tensor \"" + name + "\" has dtype " + std::string(dtype_name(t.dtype)) +
                  ", expected F32, BF16 or F16");
    Vec v(static_cast<size_t>(n));
    to_f32(t.dtype, t.data, v.data(), size_t(n));
    return v;
  }

  bool collecting() const { return names_ != nullptr; }

 private:
  const Config& c_;
  const Checkpoint* ck_;
  std::vector<TensorSpec>* names_;
};

void load_mla(Loader& L, const Config& c, const std::string& p, MlaWeights& w) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, C = c.kv_lora_rank, R = c.qk_rope_head_dim;
  const int64_t qk = c.qk_head_dim(), v = c.v_head_dim;
  if (c.q_lora_rank == 0) {
    w.q_proj = L.mat(p + "self_attn.q_proj.weight", H * qk, D);
  } else {
    w.q_a_proj = L.mat(p + "self_attn.q_a_proj.weight", c.q_lora_rank, D);
    w.q_a_layernorm = L.vec(p + "self_attn.q_a_layernorm.weight", c.q_lora_rank);
    w.q_b_proj = L.mat(p + "self_attn.q_b_proj.weight", H * qk, c.q_lora_rank);
  }
  w.kv_a_proj_with_mqa = L.mat(p + "self_attn.kv_a_proj_with_mqa.weight", C + R, D);
  w.kv_a_layernorm = L.vec(p + "self_attn.kv_a_layernorm.weight", C);
  w.kv_b_proj = L.mat(p + "self_attn.kv_b_proj.weight", H * (c.qk_nope_head_dim + v), C);
  w.o_proj = L.mat(p + "self_attn.o_proj.weight", D, H * v);
  if (!L.collecting()) {
    w.kv_b_f32.resize(size_t(w.kv_b_proj.rows * C));
    mat_rows_to_f32(w.kv_b_proj, 0, w.kv_b_proj.rows, w.kv_b_f32.data());
  }
}

void load_gqa(Loader& L, const Config& c, const std::string& p, GqaWeights& w) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, G = c.num_key_value_heads, hd = c.head_dim;
  w.q_proj = L.mat(p + "self_attn.q_proj.weight", H * hd, D);
  w.k_proj = L.mat(p + "self_attn.k_proj.weight", G * hd, D);
  w.v_proj = L.mat(p + "self_attn.v_proj.weight", G * hd, D);
  w.o_proj = L.mat(p + "self_attn.o_proj.weight", D, H * hd);
  if (c.attention_bias) {
    w.q_bias = L.vec(p + "self_attn.q_proj.bias", H * hd);
    w.k_bias = L.vec(p + "self_attn.k_proj.bias", G * hd);
    w.v_bias = L.vec(p + "self_attn.v_proj.bias", G * hd);
  }
}

void load_mlp(Loader& L, const Config& c, const std::string& p, int64_t F, MlpWeights& w) {
  w.gate_proj = L.mat(p + "gate_proj.weight", F, c.hidden_size);
  w.up_proj = L.mat(p + "up_proj.weight", F, c.hidden_size);
  w.down_proj = L.mat(p + "down_proj.weight", c.hidden_size, F);
}

void load_block(Loader& L, const Config& c, int64_t i, BlockWeights& b) {
  const std::string p = "model.layers." + std::to_string(i) + ".";
  b.input_layernorm = L.vec(p + "input_layernorm.weight", c.hidden_size);
  b.post_attention_layernorm = L.vec(p + "post_attention_layernorm.weight", c.hidden_size);
  if (c.is_mla()) load_mla(L, c, p, b.mla);
  else load_gqa(L, c, p, b.gqa);
  b.moe = c.is_moe_layer(i);
  if (!b.moe) {
    load_mlp(L, c, p + "mlp.", c.intermediate_size, b.mlp);
    return;
  }
  MoeWeights& m = b.experts;
  m.gate = L.mat(p + "mlp.gate.weight", c.n_routed_experts, c.hidden_size, false);
  if (c.topk_method == TopkMethod::NoauxTc)
    m.e_score_correction_bias = L.vec(p + "mlp.gate.e_score_correction_bias", c.n_routed_experts);
  m.experts.resize(size_t(c.n_routed_experts));
  for (int64_t e = 0; e < c.n_routed_experts; ++e)
    load_mlp(L, c, p + "mlp.experts." + std::to_string(e) + ".", c.moe_intermediate_size, m.experts[size_t(e)]);
  m.has_shared = c.n_shared_experts > 0;
  if (m.has_shared) load_mlp(L, c, p + "mlp.shared_experts.", c.moe_intermediate_size * c.n_shared_experts, m.shared);
}

void load_all(Loader& L, const Config& c, Weights& w) {
  const int64_t V = c.vocab_size, D = c.hidden_size;
  w.embed_tokens = L.mat("model.embed_tokens.weight", V, D, false);
  w.layers.resize(size_t(c.num_hidden_layers));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) load_block(L, c, i, w.layers[size_t(i)]);
  w.norm = L.vec("model.norm.weight", D);
  w.lm_head = c.tie_word_embeddings ? w.embed_tokens : L.mat("lm_head.weight", V, D, false);
  // MTP modules: layers L .. L+n-1. Their embed_tokens / shared_head.head copies of the main
  // embedding and head are not read: the paper shares them with the main model.
  w.mtp.resize(size_t(c.num_nextn_predict_layers));
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    const int64_t i = c.num_hidden_layers + k;
    const std::string p = "model.layers." + std::to_string(i) + ".";
    MtpWeights& m = w.mtp[size_t(k)];
    m.enorm = L.vec(p + "enorm.weight", D);
    m.hnorm = L.vec(p + "hnorm.weight", D);
    m.eh_proj = L.mat(p + "eh_proj.weight", D, 2 * D);
    m.shared_head_norm = L.vec(p + "shared_head.norm.weight", D);
    load_block(L, c, i, m.block);
  }
}

}  // namespace

Weights load_weights(const Config& cfg, const Checkpoint& ckpt) {
  Weights w;
  Loader L(cfg, &ckpt, nullptr);
  load_all(L, cfg, w);
  return w;
}

std::vector<TensorSpec> expected_tensors(const Config& cfg) {
  std::vector<TensorSpec> names;
  Weights w;
  Loader L(cfg, nullptr, &names);
  load_all(L, cfg, w);
  return names;
}

}  // namespace seek
