// transformer.cpp — the model's forward pass: embedding, pre-norm blocks (attention + MLP or MoE),
// final norm, lm head; and the MTP modules (DeepSeek-V3 §2.2). Parameter counts for `seek info`.
#include <cstring>

#include "model/layers.h"
#include "model/model.h"
#include "util/error.h"

namespace seek {

std::unique_ptr<Model> Model::load(const std::string& dir) {
  Config cfg = load_config(dir);
  auto ckpt = std::make_unique<Checkpoint>(dir);
  return std::make_unique<Model>(std::move(cfg), std::move(ckpt));
}

Model::Model(Config cfg, std::unique_ptr<Checkpoint> ckpt) : cfg_(std::move(cfg)), ckpt_(std::move(ckpt)) {
  w_ = load_weights(cfg_, *ckpt_);
  rope_ = Rope(cfg_.rope);
  for (int64_t i = 0; i < cfg_.num_hidden_layers; ++i) layer_names_.push_back("layer." + std::to_string(i));
  for (int64_t k = 0; k < cfg_.num_nextn_predict_layers; ++k) layer_names_.push_back("mtp." + std::to_string(k));
}

KVCache Model::new_cache(int64_t capacity, MlaForm form) const {
  return KVCache(cfg_, cfg_.num_hidden_layers, capacity, form);
}

KVCache Model::new_mtp_cache(int64_t capacity, MlaForm form) const {
  return KVCache(cfg_, cfg_.num_nextn_predict_layers, capacity, form);
}

void Model::check_ids(const int32_t* ids, int64_t T) const {
  for (int64_t t = 0; t < T; ++t)
    if (ids[t] < 0 || ids[t] >= cfg_.vocab_size)
      throw Error(strfmt("token id %d at position %lld is outside the vocabulary [0, %lld)", ids[t], (long long)t,
                         (long long)cfg_.vocab_size));
}

void Model::block(const BlockWeights& b, LayerCache& cache, MlaForm form, float* x, int64_t T, int64_t pos0,
                  Trace* trace, const std::string* name) {
  const int64_t D = cfg_.hidden_size;
  const float eps = float(cfg_.rms_norm_eps);
  float* xn = ws_.f(kXNorm, T * D);
  float* y = ws_.f(kAttnProj, T * D);
  // Attention sub-block.
  rmsnorm(xn, x, b.input_layernorm.data(), T, D, eps);
  if (cfg_.is_mla()) mla_forward(cfg_, rope_, b.mla, cache, form, xn, y, T, pos0, ws_);
  else gqa_forward(cfg_, rope_, b.gqa, cache, xn, y, T, pos0, ws_);
  if (trace) trace->put(*name + ".attn", y, T * D);
  for (int64_t i = 0; i < T * D; ++i) x[i] += y[i];
  // Feed-forward sub-block.
  rmsnorm(xn, x, b.post_attention_layernorm.data(), T, D, eps);
  float* f = ws_.f(kFfnOut, T * D);
  if (b.moe) {
    const int64_t k = cfg_.num_experts_per_tok;
    std::vector<int32_t> idx;
    std::vector<float> wt;
    if (trace) {
      idx.resize(size_t(T * k));
      wt.resize(size_t(T * k));
    }
    moe_forward(cfg_, b.experts, xn, f, T, ws_, trace ? idx.data() : nullptr, trace ? wt.data() : nullptr);
    if (trace) {
      std::vector<float> fidx(idx.begin(), idx.end());
      trace->put(*name + ".topk_idx", fidx.data(), T * k);
      trace->put(*name + ".topk_weight", wt.data(), T * k);
    }
  } else {
    mlp_forward(b.mlp, xn, f, T, D, ws_);
  }
  if (trace) trace->put(*name + ".ffn", f, T * D);
  for (int64_t i = 0; i < T * D; ++i) x[i] += f[i];
  if (trace) trace->put(*name, x, T * D);
}

void Model::forward(KVCache& cache, const int32_t* ids, int64_t T, float* logits, bool all_logits, float* hidden,
                    Trace* trace) {
  const int64_t D = cfg_.hidden_size, V = cfg_.vocab_size;
  if (T <= 0) throw Error("forward: no tokens");
  if (cache.len + T > cache.capacity)
    throw Error(strfmt("forward: %lld cached + %lld new tokens exceed the cache capacity %lld", (long long)cache.len,
                       (long long)T, (long long)cache.capacity));
  if (int64_t(cache.layers.size()) != cfg_.num_hidden_layers) throw Error("forward: cache was made for another model");
  check_ids(ids, T);
  const int64_t pos0 = cache.len;
  float* x = ws_.f(kX, T * D);  // [T, D] residual stream
  embedding(x, w_.embed_tokens, ids, T);
  if (trace) trace->put("embed", x, T * D);
  for (int64_t i = 0; i < cfg_.num_hidden_layers; ++i)
    block(w_.layers[size_t(i)], cache.layers[size_t(i)], cache.form, x, T, pos0, trace, &layer_names_[size_t(i)]);
  cache.len += T;
  const int64_t first = all_logits ? 0 : T - 1;  // rows that get logits
  const int64_t first_norm = hidden ? 0 : first;   // rows that get the final norm
  float* xn = ws_.f(kXNorm, T * D);
  rmsnorm(xn + first_norm * D, x + first_norm * D, w_.norm.data(), T - first_norm, D, float(cfg_.rms_norm_eps));
  if (hidden) std::memcpy(hidden, xn, sizeof(float) * size_t(T * D));
  if (trace) trace->put("norm", xn + first * D, (T - first) * D);
  matmul(logits, xn + first * D, w_.lm_head, T - first);  // [T - first, V]
  if (trace) trace->put("logits", logits, (T - first) * V);
}

void Model::forward_mtp(int k, KVCache& cache, const float* h_prev, const int32_t* next_ids, int64_t T,
                        float* logits, float* hidden_out, Trace* trace) {
  if (k < 0 || k >= int(w_.mtp.size())) throw Error(strfmt("forward_mtp: the model has no MTP module %d", k));
  if (cache.len + T > cache.capacity) throw Error("forward_mtp: cache capacity exceeded");
  check_ids(next_ids, T);
  const MtpWeights& m = w_.mtp[size_t(k)];
  const int64_t D = cfg_.hidden_size;
  const float eps = float(cfg_.rms_norm_eps);
  // h' = eh_proj([enorm(Emb(t_{i+k+1})) ; hnorm(h_prev_i)])  — embedding half first.
  float* cat = ws_.f(kMtpCat, T * 2 * D);  // [T, 2D]
  float* e = ws_.f(kXNorm, T * D);
  embedding(e, w_.embed_tokens, next_ids, T);
  for (int64_t t = 0; t < T; ++t) {
    rmsnorm(cat + t * 2 * D, e + t * D, m.enorm.data(), 1, D, eps);
    rmsnorm(cat + t * 2 * D + D, h_prev + t * D, m.hnorm.data(), 1, D, eps);
  }
  float* x = ws_.f(kX, T * D);
  matmul(x, cat, m.eh_proj, T);
  const std::string& name = layer_names_[size_t(cfg_.num_hidden_layers + k)];
  if (trace) trace->put(name + ".eh", x, T * D);
  const int64_t pos0 = cache.len;
  block(m.block, cache.layers[size_t(k)], cache.form, x, T, pos0, trace, &name);  // traces mtp.k.{attn,ffn,...}
  cache.len += T;
  if (trace) {
    trace->values[name + ".hidden"] = std::move(trace->values[name]);
    trace->values.erase(name);
  }
  float* xn = ws_.f(kXNorm, T * D);
  rmsnorm(xn, x, m.shared_head_norm.data(), T, D, eps);
  if (hidden_out) std::memcpy(hidden_out, xn, sizeof(float) * size_t(T * D));
  matmul(logits, xn, w_.lm_head, T);
  if (trace) trace->put(name + ".logits", logits, T * cfg_.vocab_size);
}

ParamCount count_params(const Config& c) {
  const int64_t D = c.hidden_size, V = c.vocab_size;
  auto attn = [&]() -> int64_t {
    if (!c.is_mla()) {
      const int64_t H = c.num_attention_heads, G = c.num_key_value_heads, hd = c.head_dim;
      return D * H * hd * 2 + D * G * hd * 2 + (c.attention_bias ? (H + 2 * G) * hd : 0);
    }
    const int64_t H = c.num_attention_heads, qk = c.qk_head_dim(), C = c.kv_lora_rank, R = c.qk_rope_head_dim;
    int64_t q = c.q_lora_rank == 0 ? D * H * qk : D * c.q_lora_rank + c.q_lora_rank + c.q_lora_rank * H * qk;
    return q + D * (C + R) + C + C * H * (c.qk_nope_head_dim + c.v_head_dim) + H * c.v_head_dim * D;
  };
  auto mlp = [&](int64_t F) { return 3 * D * F; };
  // One block: (total, active).
  auto block = [&](int64_t i) -> std::pair<int64_t, int64_t> {
    int64_t base = attn() + 2 * D;
    if (!c.is_moe_layer(i)) return {base + mlp(c.intermediate_size), base + mlp(c.intermediate_size)};
    const int64_t E = c.n_routed_experts, F = c.moe_intermediate_size;
    int64_t router = E * D + (c.topk_method == TopkMethod::NoauxTc ? E : 0);
    int64_t shared = mlp(F * c.n_shared_experts);
    return {base + router + shared + E * mlp(F), base + router + shared + c.num_experts_per_tok * mlp(F)};
  };
  ParamCount p;
  p.total = V * D + D + (c.tie_word_embeddings ? 0 : V * D);
  p.active = D + V * D;  // final norm + head (the embedding lookup is a read of one row, not counted)
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    auto [t, a] = block(i);
    p.total += t;
    p.active += a;
  }
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    // enorm, hnorm, eh_proj, shared_head.norm + one block; embedding and head are shared.
    p.mtp += 3 * D + 2 * D * D + block(c.num_hidden_layers + k).first;
  }
  p.total += p.mtp;
  return p;
}

}  // namespace seek
