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

void Model::block(const BlockWeights& b, const std::vector<Segment>& segs, MlaForm form, float* x, int64_t N,
                  const int32_t* pos, Trace* trace, const std::string* name) {
  const int64_t D = cfg_.hidden_size;
  const float eps = float(cfg_.rms_norm_eps);
  float* xn = ws_.f(kXNorm, N * D);
  float* y = ws_.f(kAttnProj, N * D);
  // Attention sub-block.
  rmsnorm(xn, x, b.input_layernorm.data(), N, D, eps);
  if (cfg_.is_mla()) mla_forward(cfg_, rope_, b.mla, segs, form, xn, y, N, pos, ws_);
  else gqa_forward(cfg_, rope_, b.gqa, segs, xn, y, N, pos, ws_);
  if (trace) trace->put(*name + ".attn", y, N * D);
  for (int64_t i = 0; i < N * D; ++i) x[i] += y[i];
  // Feed-forward sub-block.
  rmsnorm(xn, x, b.post_attention_layernorm.data(), N, D, eps);
  float* f = ws_.f(kFfnOut, N * D);
  if (b.moe) {
    const int64_t k = cfg_.num_experts_per_tok;
    std::vector<int32_t> idx;
    std::vector<float> wt;
    if (trace) {
      idx.resize(size_t(N * k));
      wt.resize(size_t(N * k));
    }
    moe_forward(cfg_, b.experts, xn, f, N, ws_, trace ? idx.data() : nullptr, trace ? wt.data() : nullptr);
    if (trace) {
      std::vector<float> fidx(idx.begin(), idx.end());
      trace->put(*name + ".topk_idx", fidx.data(), N * k);
      trace->put(*name + ".topk_weight", wt.data(), N * k);
    }
  } else {
    mlp_forward(b.mlp, xn, f, N, D, ws_);
  }
  if (trace) trace->put(*name + ".ffn", f, N * D);
  for (int64_t i = 0; i < N * D; ++i) x[i] += f[i];
  if (trace) trace->put(*name, x, N * D);
}

float* Model::run_blocks(const std::vector<BatchItem>& items, Trace* trace) {
  const int64_t D = cfg_.hidden_size;
  if (items.empty()) throw Error("forward: no sequences");
  int64_t N = 0;
  for (const BatchItem& it : items) {
    if (it.n <= 0) throw Error("forward: a sequence with no tokens");
    if (it.cache->len + it.n > it.cache->capacity)
      throw Error(strfmt("forward: %lld cached + %lld new tokens exceed the cache capacity %lld",
                         (long long)it.cache->len, (long long)it.n, (long long)it.cache->capacity));
    if (int64_t(it.cache->layers.size()) != cfg_.num_hidden_layers) throw Error("forward: cache was made for another model");
    if (it.cache->form != items[0].cache->form) throw Error("forward: a batch mixes naive and absorbed MLA caches");
    check_ids(it.ids, it.n);
    N += it.n;
  }
  // Rows: the items' tokens one after the other, with their positions.
  int32_t* ids = ws_.i(kIds, N);
  int32_t* pos = ws_.i(kPos, N);
  segs_.resize(items.size());
  int64_t row = 0;
  for (size_t j = 0; j < items.size(); ++j) {
    const BatchItem& it = items[j];
    std::memcpy(ids + row, it.ids, sizeof(int32_t) * size_t(it.n));
    for (int64_t t = 0; t < it.n; ++t) pos[row + t] = int32_t(it.cache->len + t);
    segs_[j] = Segment{nullptr, row, it.n, it.cache->len};
    row += it.n;
  }
  float* x = ws_.f(kX, N * D);  // [N, D] residual stream
  embedding(x, w_.embed_tokens, ids, N);
  if (trace) trace->put("embed", x, N * D);
  for (int64_t i = 0; i < cfg_.num_hidden_layers; ++i) {
    for (size_t j = 0; j < items.size(); ++j) segs_[j].cache = &items[j].cache->layers[size_t(i)];
    block(w_.layers[size_t(i)], segs_, items[0].cache->form, x, N, pos, trace, &layer_names_[size_t(i)]);
  }
  for (const BatchItem& it : items) it.cache->len += it.n;
  return x;
}

void Model::forward(KVCache& cache, const int32_t* ids, int64_t T, float* logits, bool all_logits, float* hidden,
                    Trace* trace) {
  const int64_t D = cfg_.hidden_size, V = cfg_.vocab_size;
  if (T <= 0) throw Error("forward: no tokens");
  one_.assign(1, BatchItem{&cache, ids, T});
  float* x = run_blocks(one_, trace);
  const int64_t first = all_logits ? 0 : T - 1;  // rows that get logits
  const int64_t first_norm = hidden ? 0 : first;   // rows that get the final norm
  float* xn = ws_.f(kXNorm, T * D);
  rmsnorm(xn + first_norm * D, x + first_norm * D, w_.norm.data(), T - first_norm, D, float(cfg_.rms_norm_eps));
  if (hidden) std::memcpy(hidden, xn, sizeof(float) * size_t(T * D));
  if (trace) trace->put("norm", xn + first * D, (T - first) * D);
  matmul(logits, xn + first * D, w_.lm_head, T - first);  // [T - first, V]
  if (trace) trace->put("logits", logits, (T - first) * V);
}

void Model::forward_batch(const std::vector<BatchItem>& items, float* logits) {
  const int64_t D = cfg_.hidden_size;
  float* x = run_blocks(items, nullptr);
  // Each item's last row, normed, through the head: logits [B, V].
  const int64_t B = int64_t(items.size());
  float* last = ws_.f(kLastRows, B * D);
  int64_t row = 0;
  for (int64_t b = 0; b < B; ++b) {
    row += items[size_t(b)].n;
    std::memcpy(last + b * D, x + (row - 1) * D, sizeof(float) * size_t(D));
  }
  rmsnorm(last, last, w_.norm.data(), B, D, float(cfg_.rms_norm_eps));
  matmul(logits, last, w_.lm_head, B);
}

void Model::forward_mtp(int k, KVCache& cache, const float* h_prev, const int32_t* next_ids, int64_t T,
                        float* logits, float* hidden_out, Trace* trace) {
  if (k < 0 || k >= int(w_.mtp.size())) throw Error(strfmt("forward_mtp: the model has no MTP module %d", k));
  if (T <= 0) throw Error("forward_mtp: no tokens");
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
  int32_t* pos = ws_.i(kPos, T);
  for (int64_t t = 0; t < T; ++t) pos[t] = int32_t(cache.len + t);
  segs_.assign(1, Segment{&cache.layers[size_t(k)], 0, T, cache.len});
  block(m.block, segs_, cache.form, x, T, pos, trace, &name);  // traces mtp.k.{attn,ffn,...}
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
