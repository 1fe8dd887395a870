// model.cpp — the inference passes over KV caches: embedding, the blocks, the final norm and lm head,
// and the MTP modules (DeepSeek-V3 §2.2), each a call into nn/. Parameter counts for `seek info`.
#include "model/model.h"

#include <cstring>

#include "model/gguf_model.h"
#include "nn/head.h"
#include "nn/linear.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace seek {

std::unique_ptr<Model> Model::load(const std::string& dir) {
  if (is_gguf_file(dir)) {
    GgufModel g = load_gguf_model(dir);
    auto m = std::make_unique<Model>(std::move(g.config), std::move(g.checkpoint));
    m->lookup_file_ = std::move(g.file);
    return m;
  }
  Config cfg = load_config(dir);
  auto ckpt = std::make_unique<Checkpoint>(dir);
  return std::make_unique<Model>(std::move(cfg), std::move(ckpt));
}

Model::Model(Config cfg, std::unique_ptr<Checkpoint> ckpt) : cfg_(std::move(cfg)), ckpt_(std::move(ckpt)) {
  w_ = load_weights(cfg_, *ckpt_, store_);
  init();
}

Model::Model(Config cfg, const Weights& weights) : cfg_(std::move(cfg)), w_(weights) { init(); }

void Model::init() {
  spec_ = transformer_spec(cfg_);
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

void Model::embed_ids(const int32_t* ids, int64_t T, float* out) {
  embed(w_.embed_tokens, ids, T, out);
  if (lookup_file_) lookup_file_->release_lookup_pages();  // the rows are copied: their pages can go
}

float* Model::run_blocks(const std::vector<BatchItem>& items, ActivationTrace* trace) {
  const int64_t D = cfg_.hidden_size;
  if (items.empty()) throw Error("forward: no sequences");
  int64_t N = 0;
  for (const BatchItem& it : items) {
    if (it.n <= 0) throw Error("forward: a sequence with no tokens");
    if (it.n_logits < 0 || it.n_logits > it.n) throw Error("forward: n_logits outside 0 .. the item's tokens");
    if (it.cache->len + it.n > it.cache->capacity)
      throw Error(strfmt("forward: %lld cached + %lld new tokens exceed the cache capacity %lld",
                         (long long)it.cache->len, (long long)it.n, (long long)it.cache->capacity));
    if (int64_t(it.cache->layers.size()) != cfg_.num_hidden_layers) throw Error("forward: cache was made for another model");
    if (it.cache->form != items[0].cache->form) throw Error("forward: a batch mixes naive and absorbed MLA caches");
    check_ids(it.ids, it.n);
    N += it.n;
  }
  // Rows: the items' tokens one after the other, with their positions.
  int32_t* ids = ws_.alloc<int32_t>(N);
  int32_t* pos = ws_.alloc<int32_t>(N);
  segs_.resize(items.size());
  int64_t row = 0;
  for (size_t j = 0; j < items.size(); ++j) {
    const BatchItem& it = items[j];
    std::memcpy(ids + row, it.ids, sizeof(int32_t) * size_t(it.n));
    for (int64_t t = 0; t < it.n; ++t) pos[row + t] = int32_t(it.cache->len + t);
    segs_[j] = Segment{nullptr, row, it.n, it.cache->len};
    row += it.n;
  }
  float* x = ws_.alloc<float>(N * D);  // [N, D] residual stream
  embed_ids(ids, N, x);
  if (trace) trace->put("embed", x, N * D);
  const Pass pass{ws_, false, trace};
  const Rows rows{N, pos, &segs_, items[0].cache->form};
  ExpertExecutor& experts = experts_ ? *experts_ : local_experts();
  for (int64_t i = 0; i < cfg_.num_hidden_layers; ++i) {
    for (size_t j = 0; j < items.size(); ++j) segs_[j].cache = &items[j].cache->layers[size_t(i)];
    block_forward(pass, spec_.layers[size_t(i)], w_.layers[size_t(i)], x, x, rows, nullptr, experts,
                  &layer_names_[size_t(i)]);
  }
  for (const BatchItem& it : items) it.cache->len += it.n;
  return x;
}

void Model::forward(KVCache& cache, const int32_t* ids, int64_t T, float* logits, bool all_logits, float* hidden,
                    ActivationTrace* trace) {
  const int64_t D = cfg_.hidden_size, V = cfg_.vocab_size;
  if (T <= 0) throw Error("forward: no tokens");
  Workspace::Frame frame(ws_);
  one_.assign(1, BatchItem{&cache, ids, T, all_logits ? T : 1});
  float* x = run_blocks(one_, trace);
  // The final norm over the rows that get logits, or over all of them when the hidden states are asked for.
  const int64_t n_logits = all_logits ? T : 1, normed = hidden ? T : n_logits;
  float* hn = ws_.alloc<float>(normed * D);
  head_forward(Pass{ws_, false, nullptr}, w_.norm, w_.lm_head, float(cfg_.rms_norm_eps), x + (T - normed) * D, normed,
               hn, nullptr, logits, n_logits);
  if (hidden) std::memcpy(hidden, hn, sizeof(float) * size_t(T * D));
  if (trace) {
    trace->put("norm", hn + (normed - n_logits) * D, n_logits * D);
    trace->put("logits", logits, n_logits * V);
  }
}

void Model::forward_batch(const std::vector<BatchItem>& items, float* logits, float* hidden) {
  const int64_t D = cfg_.hidden_size;
  Workspace::Frame frame(ws_);
  float* x = run_blocks(items, nullptr);
  int64_t N = 0, M = 0;
  for (const BatchItem& it : items) {
    N += it.n;
    M += it.n_logits;
  }
  // Each item's last n_logits rows, normed, through the head; with hidden, every row is normed first and
  // the head reads the logit rows from there (the norm is per row: the same values either way).
  const float eps = float(cfg_.rms_norm_eps);
  if (hidden) rmsnorm(hidden, x, w_.norm, N, D, eps);
  float* last = ws_.alloc<float>(M * D);
  int64_t row = 0, m = 0;
  for (const BatchItem& it : items) {
    row += it.n;
    std::memcpy(last + m * D, (hidden ? hidden : x) + (row - it.n_logits) * D, sizeof(float) * size_t(it.n_logits * D));
    m += it.n_logits;
  }
  const Pass pass{ws_, false, nullptr};
  if (hidden) {
    linear(pass, logits, last, w_.lm_head, M);
  } else {
    float* hn = ws_.alloc<float>(M * D);
    head_forward(pass, w_.norm, w_.lm_head, eps, last, M, hn, nullptr, logits);
  }
}

void Model::forward_mtp(int k, KVCache& cache, const float* h_prev, const int32_t* next_ids, int64_t T, float* logits,
                        float* hidden_out, ActivationTrace* trace) {
  if (T <= 0) throw Error("forward_mtp: no tokens");
  one_mtp_.assign(1, MtpItem{&cache, h_prev, next_ids, T, T});
  forward_mtp_batch(k, one_mtp_, logits, hidden_out, trace);
}

void Model::forward_mtp_batch(int k, const std::vector<MtpItem>& items, float* logits, float* hidden_out,
                              ActivationTrace* trace) {
  if (k < 0 || k >= int(w_.mtp.size())) throw Error(strfmt("forward_mtp: the model has no MTP module %d", k));
  if (items.empty()) throw Error("forward_mtp: no sequences");
  const int64_t D = cfg_.hidden_size;
  int64_t N = 0, M = 0;
  for (const MtpItem& it : items) {
    if (it.n <= 0) throw Error("forward_mtp: no tokens");
    if (it.n_logits < 0 || it.n_logits > it.n) throw Error("forward_mtp: n_logits outside 0 .. the item's tokens");
    if (it.cache->len + it.n > it.cache->capacity) throw Error("forward_mtp: cache capacity exceeded");
    if (int64_t(it.cache->layers.size()) != cfg_.num_nextn_predict_layers)
      throw Error("forward_mtp: cache was made for another model");
    if (it.cache->form != items[0].cache->form) throw Error("forward_mtp: a batch mixes naive and absorbed MLA caches");
    check_ids(it.next_ids, it.n);
    N += it.n;
    M += it.n_logits;
  }
  const MtpWeights& m = w_.mtp[size_t(k)];
  Workspace::Frame frame(ws_);
  int32_t* ids = ws_.alloc<int32_t>(N);
  int32_t* pos = ws_.alloc<int32_t>(N);
  float* h = ws_.alloc<float>(N * D);
  segs_.resize(items.size());
  int64_t row = 0;
  for (size_t j = 0; j < items.size(); ++j) {
    const MtpItem& it = items[j];
    std::memcpy(ids + row, it.next_ids, sizeof(int32_t) * size_t(it.n));
    std::memcpy(h + row * D, it.h_prev, sizeof(float) * size_t(it.n * D));
    for (int64_t t = 0; t < it.n; ++t) pos[row + t] = int32_t(it.cache->len + t);
    segs_[j] = Segment{&it.cache->layers[size_t(k)], row, it.n, it.cache->len};
    row += it.n;
  }
  float* e = ws_.alloc<float>(N * D);
  embed_ids(ids, N, e);
  const Pass pass{ws_, false, trace};
  const Rows rows{N, pos, &segs_, items[0].cache->form};
  const std::string& name = layer_names_[size_t(cfg_.num_hidden_layers + k)];
  float* out = ws_.alloc<float>(N * D);
  mtp_forward(pass, spec_.mtp[size_t(k)], m, e, h, out, rows, nullptr, experts_ ? *experts_ : local_experts(), &name);
  for (const MtpItem& it : items) it.cache->len += it.n;
  if (M == 0) return;  // positions caught up, no logits asked
  // Each item's last n_logits rows: shared_head.norm, then the main model's head.
  float* last = out;
  if (M != N) {
    last = ws_.alloc<float>(M * D);
    int64_t r = 0, o = 0;
    for (const MtpItem& it : items) {
      r += it.n;
      std::memcpy(last + o * D, out + (r - it.n_logits) * D, sizeof(float) * size_t(it.n_logits * D));
      o += it.n_logits;
    }
  }
  float* hn = ws_.alloc<float>(M * D);
  head_forward(pass, m.shared_head_norm, w_.lm_head, float(cfg_.rms_norm_eps), last, M, hn, nullptr, logits);
  if (hidden_out) std::memcpy(hidden_out, hn, sizeof(float) * size_t(M * D));
  if (trace) trace->put(name + ".logits", logits, M * cfg_.vocab_size);
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
