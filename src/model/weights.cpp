// weights.cpp — the name table and its three kinds of source. See weights.h.
//
// The table is one function per kind of module (MLA, GQA, SwiGLU MLP, MoE, block, MTP, the whole model),
// each line one tensor: HF name suffix → view, with the shape the config implies. A source turns a line
// into a view: src.mat(name, rows, cols, linear), src.vec(name, n), and src.f32(matrix) for MLA's f32
// kv_b_proj.
#include "model/weights.h"

#include "util/error.h"

namespace seek {

namespace {

// ---- the table ---------------------------------------------------------------------------------------

template <class V, class Src>
void bind_mla(Src& src, const Config& c, const std::string& p, MlaParams<V>& w) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, C = c.kv_lora_rank, R = c.qk_rope_head_dim;
  const int64_t qk = c.qk_head_dim(), v = c.v_head_dim, ql = c.q_lora_rank;
  if (ql == 0) w.q_proj = src.mat(p + "self_attn.q_proj.weight", H * qk, D);
  else w.q_a_proj = src.mat(p + "self_attn.q_a_proj.weight", ql, D);
  w.kv_a_proj_with_mqa = src.mat(p + "self_attn.kv_a_proj_with_mqa.weight", C + R, D);
  if (ql > 0) {
    w.q_a_layernorm = src.vec(p + "self_attn.q_a_layernorm.weight", ql);
    w.q_b_proj = src.mat(p + "self_attn.q_b_proj.weight", H * qk, ql);
  }
  w.kv_a_layernorm = src.vec(p + "self_attn.kv_a_layernorm.weight", C);
  w.kv_b_proj = src.mat(p + "self_attn.kv_b_proj.weight", H * (c.qk_nope_head_dim + v), C);
  w.kv_b_f32 = src.f32(w.kv_b_proj);
  w.k_b = src.optional_mat(p + "self_attn.k_b_proj.weight", H * C, c.qk_nope_head_dim);
  w.v_b = src.optional_mat(p + "self_attn.v_b_proj.weight", H * v, C);
  w.o_proj = src.mat(p + "self_attn.o_proj.weight", D, H * v);
}

template <class V, class Src>
void bind_gqa(Src& src, const Config& c, const std::string& p, GqaParams<V>& w) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, G = c.num_key_value_heads, hd = c.head_dim;
  w.q_proj = src.mat(p + "self_attn.q_proj.weight", H * hd, D);
  w.k_proj = src.mat(p + "self_attn.k_proj.weight", G * hd, D);
  w.v_proj = src.mat(p + "self_attn.v_proj.weight", G * hd, D);
  w.o_proj = src.mat(p + "self_attn.o_proj.weight", D, H * hd);
  if (c.attention_bias) {
    w.q_bias = src.vec(p + "self_attn.q_proj.bias", H * hd);
    w.k_bias = src.vec(p + "self_attn.k_proj.bias", G * hd);
    w.v_bias = src.vec(p + "self_attn.v_proj.bias", G * hd);
  }
}

template <class V, class Src>
void bind_mlp(Src& src, const Config& c, const std::string& p, int64_t F, MlpParams<V>& w) {
  w.gate_proj = src.mat(p + "gate_proj.weight", F, c.hidden_size);
  w.up_proj = src.mat(p + "up_proj.weight", F, c.hidden_size);
  w.down_proj = src.mat(p + "down_proj.weight", c.hidden_size, F);
}

template <class V, class Src>
void bind_block(Src& src, const Config& c, int64_t i, BlockParams<V>& b) {
  const std::string p = "model.layers." + std::to_string(i) + ".";
  b.input_layernorm = src.vec(p + "input_layernorm.weight", c.hidden_size);
  b.post_attention_layernorm = src.vec(p + "post_attention_layernorm.weight", c.hidden_size);
  if (c.is_mla()) bind_mla<V>(src, c, p, b.mla);
  else bind_gqa<V>(src, c, p, b.gqa);
  if (!c.is_moe_layer(i)) {
    bind_mlp<V>(src, c, p + "mlp.", c.intermediate_size, b.mlp);
    return;
  }
  MoeParams<V>& m = b.moe;
  m.gate = src.mat(p + "mlp.gate.weight", c.n_routed_experts, c.hidden_size, false);
  if (c.topk_method == TopkMethod::NoauxTc)
    m.e_score_correction_bias = src.vec(p + "mlp.gate.e_score_correction_bias", c.n_routed_experts);
  m.experts.resize(size_t(c.n_routed_experts));
  for (int64_t e = 0; e < c.n_routed_experts; ++e)
    src.expert(e, [&] {
      bind_mlp<V>(src, c, p + "mlp.experts." + std::to_string(e) + ".", c.moe_intermediate_size, m.experts[size_t(e)]);
    });
  m.has_shared = c.n_shared_experts > 0;
  if (m.has_shared)
    bind_mlp<V>(src, c, p + "mlp.shared_experts.", c.moe_intermediate_size * c.n_shared_experts, m.shared_experts);
}

template <class V, class Src>
void bind_model(Src& src, const Config& c, ModelParams<V>& w) {
  const int64_t V_ = c.vocab_size, D = c.hidden_size;
  w.embed_tokens = src.mat("model.embed_tokens.weight", V_, D, false);
  w.layers.resize(size_t(c.num_hidden_layers));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) bind_block<V>(src, c, i, w.layers[size_t(i)]);
  w.norm = src.vec("model.norm.weight", D);
  w.lm_head = c.tie_word_embeddings ? w.embed_tokens : src.mat("lm_head.weight", V_, D, false);
  // MTP modules: layers L .. L+n-1. Their embed_tokens / shared_head.head copies of the main embedding
  // and head are not read: the paper shares them with the main model.
  w.mtp.resize(size_t(c.num_nextn_predict_layers));
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    const int64_t i = c.num_hidden_layers + k;
    const std::string p = "model.layers." + std::to_string(i) + ".";
    MtpParams<V>& m = w.mtp[size_t(k)];
    m.enorm = src.vec(p + "enorm.weight", D);
    m.hnorm = src.vec(p + "hnorm.weight", D);
    m.eh_proj = src.mat(p + "eh_proj.weight", D, 2 * D);
    m.shared_head_norm = src.vec(p + "shared_head.norm.weight", D);
    bind_block<V>(src, c, i, m.block);
  }
}

// ---- the sources ---------------------------------------------------------------------------------------

// A source binds routed expert e's tensors inside src.expert(e, bind).

// The list of names (no views).
struct NameSource {
  std::vector<TensorSpec> names;
  int64_t expert_ = -1;
  void expert(int64_t e, const auto& bind) {
    expert_ = e;
    bind();
    expert_ = -1;
  }
  Mat mat(const std::string& name, int64_t rows, int64_t cols, bool linear = true) {
    names.push_back({name, {rows, cols}, linear, expert_});
    return {};
  }
  const float* vec(const std::string& name, int64_t n) {
    names.push_back({name, {n}, false, expert_});
    return nullptr;
  }
  const float* f32(const Mat&) { return nullptr; }
  Mat optional_mat(const std::string&, int64_t, int64_t) { return {}; }  // no Hugging Face file has one
};

// A checkpoint: every tensor checked; vectors and kv_b converted into the store.
struct CheckpointSource {
  const Config& c;
  const Checkpoint& ck;
  std::vector<std::vector<float>>& store;

  void expert(int64_t, const auto& bind) { bind(); }
  Mat mat(const std::string& name, int64_t rows, int64_t cols, bool = true) {
    const TensorInfo& t = ck.get(name);
    if (t.shape != std::vector<int64_t>{rows, cols})
      throw Error(strfmt("%s: tensor \"%s\" has shape %s, expected [%lld, %lld]", t.file.c_str(), name.c_str(),
                         t.shape_str().c_str(), (long long)rows, (long long)cols));
    if (!is_weight_dtype(t.dtype))
      throw Error(t.file + ": tensor \"" + name + "\" has dtype " + std::string(dtype_name(t.dtype)) +
                  ", expected F32, BF16, F16 or F8_E4M3");
    Mat m;
    m.dtype = t.dtype;
    m.data = t.data;
    m.rows = rows;
    m.cols = cols;
    if (weight_format(t.dtype).block_scales) {
      const int64_t b = c.fp8_block;
      m.block = b;
      const std::string sname = name + "_scale_inv";
      const TensorInfo* s = ck.find(sname);
      if (!s) throw Error(t.file + ": FP8 tensor \"" + name + "\" has no \"" + sname + "\" block scales");
      const std::vector<int64_t> want{(rows + b - 1) / b, (cols + b - 1) / b};
      if (s->dtype != DType::F32 || s->shape != want)
        throw Error(strfmt("%s: tensor \"%s\" is %s %s, expected F32 [%lld, %lld] (%lld×%lld blocks)", s->file.c_str(),
                           sname.c_str(), std::string(dtype_name(s->dtype)).c_str(), s->shape_str().c_str(),
                           (long long)want[0], (long long)want[1], (long long)b, (long long)b));
      m.scale_inv = static_cast<const float*>(s->data);
    }
    return m;
  }
  const float* vec(const std::string& name, int64_t n) {
    const TensorInfo& t = ck.get(name);
    if (t.shape != std::vector<int64_t>{n})
      throw Error(strfmt("%s: tensor \"%s\" has shape %s, expected [%lld]", t.file.c_str(), name.c_str(),
                         t.shape_str().c_str(), (long long)n));
    if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16)
      throw Error(t.file + ": tensor \"" + name + "\" has dtype " + std::string(dtype_name(t.dtype)) +
                  ", expected F32, BF16 or F16");
    std::vector<float>& v = store.emplace_back(size_t(n));
    to_f32(t.dtype, t.data, v.data(), size_t(n));
    return v.data();
  }
  Mat optional_mat(const std::string& name, int64_t rows, int64_t cols) {
    return ck.find(name) ? mat(name, rows, cols) : Mat{};
  }
  const float* f32(const Mat& m) {
    if (m.dtype == DType::F32) return m.f32();
    std::vector<float>& v = store.emplace_back(size_t(m.rows * m.cols));
    mat_rows_to_f32(m, 0, m.rows, v.data());
    return v.data();
  }
};

// An f32 arena laid out as arena_layout says: views of the weights (Mutable = false) or of their
// gradients. The routed experts' tensors come from a second cursor, after the replicated part.
template <bool Mutable>
struct ArenaSource {
  using Ptr = std::conditional_t<Mutable, float*, const float*>;
  Ptr base;
  ExpertRange own;
  int64_t offset = 0, expert_offset = 0;  // expert_offset starts at the layout's `replicated`
  bool held = true;                       // false inside an expert the arena does not hold

  void expert(int64_t e, const auto& bind) {
    held = own.owns(e);
    std::swap(offset, expert_offset);
    bind();
    std::swap(offset, expert_offset);
    held = true;
  }
  Ptr take(int64_t n) {
    if (!held) return nullptr;
    Ptr p = base + offset;
    offset += n;
    return p;
  }
  auto mat(const std::string&, int64_t rows, int64_t cols, bool = true) {
    Ptr p = take(rows * cols);
    if constexpr (Mutable) return p;
    else return Mat{DType::F32, p, rows, cols};
  }
  Ptr vec(const std::string&, int64_t n) { return take(n); }
  auto optional_mat(const std::string&, int64_t, int64_t) {  // never in an arena
    if constexpr (Mutable) return Ptr{};
    else return Mat{};
  }
  Ptr f32(const auto& m) {
    if constexpr (Mutable) return nullptr;  // kv_b's f32 copy is a weight view only
    else return m.f32();
  }
};

}  // namespace

std::vector<TensorSpec> expected_tensors(const Config& cfg) {
  NameSource src;
  Weights w;
  bind_model<WeightView>(src, cfg, w);
  return std::move(src.names);
}

Weights load_weights(const Config& cfg, const Checkpoint& ckpt, std::vector<std::vector<float>>& store) {
  CheckpointSource src{cfg, ckpt, store};
  Weights w;
  bind_model<WeightView>(src, cfg, w);
  return w;
}

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

ArenaLayout arena_layout(const Config& cfg, ExpertRange own) {
  ArenaLayout l;
  l.tensors = expected_tensors(cfg);
  l.offset.assign(l.tensors.size(), -1);
  for (size_t i = 0; i < l.tensors.size(); ++i)
    if (l.tensors[i].expert < 0) l.offset[i] = l.replicated, l.replicated += l.tensors[i].numel();
  l.size = l.replicated;
  for (size_t i = 0; i < l.tensors.size(); ++i)
    if (l.tensors[i].expert >= 0 && own.owns(l.tensors[i].expert)) l.offset[i] = l.size, l.size += l.tensors[i].numel();
  return l;
}

Weights arena_weights(const Config& cfg, const float* params, ExpertRange own) {
  ArenaSource<false> src{params, own};
  src.expert_offset = arena_layout(cfg, own).replicated;
  Weights w;
  bind_model<WeightView>(src, cfg, w);
  return w;
}

Grads arena_grads(const Config& cfg, float* grads, ExpertRange own) {
  ArenaSource<true> src{grads, own};
  src.expert_offset = arena_layout(cfg, own).replicated;
  Grads g;
  bind_model<GradView>(src, cfg, g);
  return g;
}

}  // namespace seek
