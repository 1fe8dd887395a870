// gguf_model.cpp — GGUF models as seek's config and checkpoint, and back. See gguf_model.h.
#include "model/gguf_model.h"

#include <cmath>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "model/weights.h"
#include "tensor/format.h"
#include "util/error.h"
#include "util/json_file.h"

namespace seek {

using json = nlohmann::json;

namespace {

// Per-layer tensor names: GGUF's suffix after "blk.N." and the Hugging Face one after "model.layers.N.".
const std::pair<const char*, const char*> kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q_a.weight", "self_attn.q_a_proj.weight"},
    {"attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight"},
    {"attn_q_b.weight", "self_attn.q_b_proj.weight"},
    {"attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight"},
    {"attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight"},
    {"attn_kv_b.weight", "self_attn.kv_b_proj.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
    {"ffn_gate_inp.weight", "mlp.gate.weight"},
    {"exp_probs_b.bias", "mlp.gate.e_score_correction_bias"},
    {"ffn_gate_shexp.weight", "mlp.shared_experts.gate_proj.weight"},
    {"ffn_up_shexp.weight", "mlp.shared_experts.up_proj.weight"},
    {"ffn_down_shexp.weight", "mlp.shared_experts.down_proj.weight"},
};
const std::pair<const char*, const char*> kGlobalNames[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};
// Llama 3.1's per-frequency rope divisors (RopeParams::freq_factors).
constexpr const char* kRopeFreqs = "rope_freqs.weight";
const std::pair<const char*, const char*> kExpertNames[] = {
    {"ffn_gate_exps.weight", "gate_proj.weight"},
    {"ffn_up_exps.weight", "up_proj.weight"},
    {"ffn_down_exps.weight", "down_proj.weight"},
};

// "blk.12.attn_q.weight" -> (12, "attn_q.weight"); false for a name without the prefix.
bool split_block_name(const std::string& name, int64_t* layer, std::string* rest) {
  if (name.rfind("blk.", 0) != 0) return false;
  size_t dot = name.find('.', 4);
  if (dot == std::string::npos || dot == 4) return false;
  int64_t n = 0;
  for (size_t i = 4; i < dot; i++) {
    if (name[i] < '0' || name[i] > '9' || n > (int64_t(1) << 40)) return false;
    n = n * 10 + (name[i] - '0');
  }
  *layer = n;
  *rest = name.substr(dot + 1);
  return true;
}

// Llama's q/k rows as llama.cpp stores them: within each head of hd rows, HF row j·hd/2 + i is at 2i + j.
int64_t llama_gguf_row(int64_t hf_row, int64_t hd) {
  const int64_t h = hf_row / hd, r = hf_row % hd, half = hd / 2;
  const int64_t j = r / half, i = r % half;
  return h * hd + 2 * i + j;
}

// Buffers a GGUF model's checkpoint owns besides the file: Llama's re-ordered q/k, MLA's rebuilt kv_b.
struct GgufOwner {
  std::shared_ptr<const GgufFile> file;
  std::deque<std::vector<uint8_t>> buffers;  // a deque: adding one keeps the others where they are
};

Mat mat_of(const TensorInfo& t) {
  Mat m;
  m.dtype = t.dtype;
  m.data = t.data;
  m.rows = t.shape.size() >= 2 ? t.numel() / t.shape.back() : 1;
  m.cols = t.shape.back();
  return m;
}

}  // namespace

bool is_gguf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in && in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

json gguf_config_json(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture");
  auto key = [&](const char* k) { return arch + "." + k; };
  if (arch != "deepseek2" && arch != "qwen2" && arch != "llama")
    throw Error(f.path() + ": key \"general.architecture\" = \"" + arch +
                "\" is not supported (deepseek2, qwen2 or llama)");
  json j;
  const int64_t nextn = f.get_int(key("nextn_predict_layers"), 0);
  j["num_hidden_layers"] = f.get_int(key("block_count")) - nextn;
  j["hidden_size"] = f.get_int(key("embedding_length"));
  j["intermediate_size"] = f.get_int(key("feed_forward_length"));
  const int64_t H = f.get_int(key("attention.head_count"));
  j["num_attention_heads"] = H;
  j["rms_norm_eps"] = f.get_float(key("attention.layer_norm_rms_epsilon"));
  j["rope_theta"] = f.get_float(key("rope.freq_base"), 10000.0);
  j["max_position_embeddings"] = f.get_int(key("context_length"), 4096);
  j["tie_word_embeddings"] = f.find_tensor("output.weight") == nullptr;
  const TensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd) throw Error(f.path() + ": has no tensor \"token_embd.weight\"");
  j["vocab_size"] = f.get_int(key("vocab_size"), embd->shape[0]);
  if (f.find(key("rope.scaling.type")) && f.get_string(key("rope.scaling.type")) != "none" &&
      f.get_string(key("rope.scaling.type")) != "yarn")
    throw Error(f.path() + ": key \"" + key("rope.scaling.type") + "\" = \"" + f.get_string(key("rope.scaling.type")) +
                "\" is not supported (none or yarn)");

  if (arch == "qwen2" || arch == "llama") {
    j["model_type"] = arch;
    j["num_key_value_heads"] = f.get_int(key("attention.head_count_kv"), H);
    if (f.find(key("attention.key_length"))) j["head_dim"] = f.get_int(key("attention.key_length"));
    if (arch == "llama") j["attention_bias"] = f.find_tensor("blk.0.attn_q.bias") != nullptr;
    return j;
  }

  // MLA: mainline's split layout writes the MQA view (key_length = kv_lora + rope, head_count_kv 1) and the
  // per-head sizes under *_mla; the older layout writes the per-head sizes as key_length / value_length.
  const bool split = f.find(key("attention.key_length_mla")) != nullptr;
  const int64_t qk = f.get_int(key(split ? "attention.key_length_mla" : "attention.key_length"));
  const int64_t rope = f.get_int(key("rope.dimension_count"));
  j["num_key_value_heads"] = H;
  j["qk_rope_head_dim"] = rope;
  j["qk_nope_head_dim"] = qk - rope;
  j["v_head_dim"] = f.get_int(key(split ? "attention.value_length_mla" : "attention.value_length"));
  const int64_t q_lora = f.get_int(key("attention.q_lora_rank"), 0);
  j["q_lora_rank"] = q_lora > 0 ? json(q_lora) : json(nullptr);
  j["kv_lora_rank"] = f.get_int(key("attention.kv_lora_rank"));
  j["first_k_dense_replace"] = f.get_int(key("leading_dense_block_count"), 0);
  j["n_routed_experts"] = f.get_int(key("expert_count"), 0);
  j["n_shared_experts"] = f.get_int(key("expert_shared_count"), 0);
  j["num_experts_per_tok"] = f.get_int(key("expert_used_count"), 0);
  j["moe_intermediate_size"] = f.get_int(key("expert_feed_forward_length"), 0);
  j["routed_scaling_factor"] = f.get_float(key("expert_weights_scale"), 1.0);
  j["norm_topk_prob"] = f.get_bool(key("expert_weights_norm"), false);
  j["n_group"] = f.get_int(key("expert_group_count"), 1);
  j["topk_group"] = f.get_int(key("expert_group_used_count"), 1);
  const int64_t gating = f.get_int(key("expert_gating_func"), 1);
  if (gating != 1 && gating != 2)
    throw Error(strfmt("%s: key \"%s\" = %lld is not supported (1 softmax, 2 sigmoid)", f.path().c_str(),
                       key("expert_gating_func").c_str(), (long long)gating));
  j["scoring_func"] = gating == 2 ? "sigmoid" : "softmax";
  const bool noaux = f.find_tensor(strfmt("blk.%lld.exp_probs_b.bias", (long long)j["first_k_dense_replace"].get<int64_t>())) != nullptr;
  j["model_type"] = noaux ? "deepseek_v3" : "deepseek_v2";
  j["topk_method"] = noaux ? "noaux_tc" : (j["n_group"].get<int64_t>() > 1 ? "group_limited_greedy" : "greedy");
  if (f.find(key("rope.scaling.type")) && f.get_string(key("rope.scaling.type")) == "yarn") {
    // llama.cpp keeps 0.1 · mscale_all_dim as yarn_log_multiplier; DeepSeek's configs have mscale = mscale_all_dim.
    const double m = f.get_float(key("rope.scaling.yarn_log_multiplier"), 0.0) / 0.1;
    j["rope_scaling"] = {{"type", "yarn"},
                         {"factor", f.get_float(key("rope.scaling.factor"))},
                         {"original_max_position_embeddings", f.get_int(key("rope.scaling.original_context_length"))},
                         {"beta_fast", f.get_float(key("rope.scaling.yarn_beta_fast"), 32.0)},
                         {"beta_slow", f.get_float(key("rope.scaling.yarn_beta_slow"), 1.0)},
                         {"mscale", m},
                         {"mscale_all_dim", m}};
  }
  return j;
}

namespace {

// The file's bytes as a model holds them: read (FileBytes), except the token embedding when the file
// has its own output head: a prompt looks up a few of its rows, so it stays a mapping of the file and
// only those rows' pages become resident (the table is 10-20% of a small model's file). The header is
// parsed once, from a mapping, which then gives way to the read bytes.
std::shared_ptr<const GgufFile> open_model_file(const std::string& path) {
  auto file = std::make_shared<GgufFile>(path, FileBytes::Mode::Mapped);
  const FileBytes::Mode mode = resolve_load_mode(file->size_bytes());
  if (mode != FileBytes::Mode::Read) return file;
  std::vector<std::pair<size_t, size_t>> lookup;
  const TensorInfo* embd = file->find_tensor("token_embd.weight");
  if (embd && file->find_tensor("output.weight") && file->file_offset(*embd) >= 0)
    lookup.emplace_back(size_t(file->file_offset(*embd)), embd->nbytes);
  file->replace_bytes(FileBytes(path, mode, lookup));
  return file;
}

}  // namespace

GgufModel load_gguf_model(const std::string& path) {
  GgufModel out;
  auto file = open_model_file(path);
  out.file = file;
  out.config = parse_config(gguf_config_json(*file), path);
  if (const TensorInfo* ff = file->find_tensor(kRopeFreqs)) {  // Llama 3.1's scaling, as llama.cpp stores it
    const int64_t half = out.config.rope.dim / 2;
    if (out.config.is_mla() || !out.config.rope.type.empty())
      throw Error(path + ": tensor \"" + kRopeFreqs + "\" is supported for qwen2 and llama without other rope scaling");
    if (ff->dtype != DType::F32 || ff->shape != std::vector<int64_t>{half})
      throw Error(strfmt("%s: tensor \"%s\" is %s %s, expected F32 [%lld] (one factor per rotary frequency)",
                         path.c_str(), kRopeFreqs, std::string(dtype_name(ff->dtype)).c_str(), ff->shape_str().c_str(),
                         (long long)half));
    const float* v = static_cast<const float*>(ff->data);
    for (int64_t i = 0; i < half; i++)
      if (!(v[i] > 0.0f) || !std::isfinite(v[i]))
        throw Error(strfmt("%s: tensor \"%s\"[%lld] = %g, expected a positive finite factor", path.c_str(), kRopeFreqs,
                           (long long)i, double(v[i])));
    out.config.rope.freq_factors.assign(v, v + half);
  }
  const Config& c = out.config;
  auto owner = std::make_shared<GgufOwner>();
  owner->file = file;

  std::vector<TensorInfo> tensors;
  auto add = [&](const TensorInfo& t, std::string hf_name) {
    TensorInfo u = t;
    u.name = std::move(hf_name);
    tensors.push_back(std::move(u));
  };
  auto owned = [&](const TensorInfo& like, std::string name, DType dtype, std::vector<int64_t> shape) -> TensorInfo& {
    TensorInfo u;
    u.name = std::move(name);
    u.dtype = dtype;
    u.shape = std::move(shape);
    u.file = like.file;
    u.nbytes = dtype_nbytes(dtype, u.numel());
    owner->buffers.emplace_back(u.nbytes);
    u.data = owner->buffers.back().data();
    tensors.push_back(std::move(u));
    return tensors.back();
  };

  std::map<int64_t, std::pair<const TensorInfo*, const TensorInfo*>> split_kv;  // layer -> (k_b, v_b)
  std::map<int64_t, bool> has_kv_b;
  for (const TensorInfo& t : file->tensors()) {
    bool done = t.name == kRopeFreqs;  // read into the config above
    for (const auto& [g, hf] : kGlobalNames)
      if (t.name == g) add(t, hf), done = true;
    if (done) continue;
    int64_t layer = 0;
    std::string rest;
    if (!split_block_name(t.name, &layer, &rest))
      throw Error(t.file + ": tensor \"" + t.name + "\" is not one seek knows for this architecture");
    if (layer >= c.num_hidden_layers) continue;  // multi-token-prediction blocks: not read (as llama.cpp)
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    if (rest == "attn_k_b.weight" || rest == "attn_v_b.weight") {
      (rest == "attn_k_b.weight" ? split_kv[layer].first : split_kv[layer].second) = &t;
      continue;
    }
    if (rest == "attn_kv_b.weight") has_kv_b[layer] = true;
    for (const auto& [g, hf] : kExpertNames) {
      if (rest != g) continue;
      if (t.shape.size() != 3 || t.shape[0] != c.n_routed_experts)
        throw Error(strfmt("%s: tensor \"%s\" has shape %s, expected [%lld, rows, cols]", t.file.c_str(),
                           t.name.c_str(), t.shape_str().c_str(), (long long)c.n_routed_experts));
      const size_t each = t.nbytes / size_t(t.shape[0]);
      for (int64_t e = 0; e < t.shape[0]; e++) {
        TensorInfo u = t;
        u.name = p + "mlp.experts." + std::to_string(e) + "." + hf;
        u.shape = {t.shape[1], t.shape[2]};
        u.data = static_cast<const uint8_t*>(t.data) + size_t(e) * each;
        u.nbytes = each;
        tensors.push_back(std::move(u));
      }
      done = true;
    }
    for (const auto& [g, hf] : kLayerNames)
      if (!done && rest == g) add(t, p + hf), done = true;
    if (!done) throw Error(t.file + ": tensor \"" + t.name + "\" is not one seek knows for this architecture");
  }

  // MLA's split layout: kv_b [H·(nope+v), C] rebuilt in f32 from k_b [H, C, nope] and v_b [H, v, C].
  for (const auto& [layer, kv] : split_kv) {
    if (has_kv_b[layer]) continue;  // ik_llama.cpp's files carry both: attn_kv_b is read
    const auto [kb, vb] = kv;
    const int64_t H = c.num_attention_heads, C = c.kv_lora_rank, nope = c.qk_nope_head_dim, v = c.v_head_dim;
    const std::string where = strfmt("%s: layer %lld", path.c_str(), (long long)layer);
    if (!kb || !vb) throw Error(where + " has only one of attn_k_b and attn_v_b");
    if (kb->shape != std::vector<int64_t>{H, C, nope} || vb->shape != std::vector<int64_t>{H, v, C})
      throw Error(strfmt("%s: attn_k_b %s and attn_v_b %s, expected [%lld, %lld, %lld] and [%lld, %lld, %lld]",
                         where.c_str(), kb->shape_str().c_str(), vb->shape_str().c_str(), (long long)H, (long long)C,
                         (long long)nope, (long long)H, (long long)v, (long long)C));
    std::vector<float> k(size_t(H * C * nope)), vv(size_t(H * v * C));
    mat_rows_to_f32(mat_of(*kb), 0, H * C, k.data());
    mat_rows_to_f32(mat_of(*vb), 0, H * v, vv.data());
    const std::string p = "model.layers." + std::to_string(layer) + ".self_attn.";
    TensorInfo& kvb = owned(*kb, p + "kv_b_proj.weight", DType::F32, {H * (nope + v), C});
    float* out = static_cast<float*>(const_cast<void*>(kvb.data));
    for (int64_t h = 0; h < H; h++) {
      for (int64_t r = 0; r < nope; r++)
        for (int64_t cc = 0; cc < C; cc++) out[(h * (nope + v) + r) * C + cc] = k[size_t((h * C + cc) * nope + r)];
      std::memcpy(out + (h * (nope + v) + nope) * C, vv.data() + h * v * C, size_t(v * C) * 4);
    }
    // And the split matrices as stored, per head W_UK_hᵀ and W_UV_h: what a decode step reads (nn/mla.h).
    add(*kb, p + "k_b_proj.weight");
    tensors.back().shape = {H * C, nope};
    add(*vb, p + "v_b_proj.weight");
    tensors.back().shape = {H * v, C};
  }

  // Llama's q and k rows back in Hugging Face's order (whole rows: any format).
  if (c.model_type == ModelType::Llama) {
    for (TensorInfo& t : tensors) {
      const bool q = t.name.ends_with("self_attn.q_proj.weight"), k = t.name.ends_with("self_attn.k_proj.weight");
      const bool qb = t.name.ends_with("self_attn.q_proj.bias"), kb = t.name.ends_with("self_attn.k_proj.bias");
      if (!(q || k || qb || kb)) continue;
      const Mat m = (q || k) ? mat_of(t) : Mat{t.dtype, t.data, t.shape[0], 1};
      const size_t rb = (q || k) ? size_t(row_bytes(m)) : dtype_size(t.dtype);
      const int64_t hd = c.head_dim;
      if (m.rows % hd != 0 || hd % 2 != 0)
        throw Error(strfmt("%s: tensor \"%s\" has %lld rows, not a multiple of head_dim %lld", t.file.c_str(),
                           t.name.c_str(), (long long)m.rows, (long long)hd));
      std::vector<uint8_t>& buf = owner->buffers.emplace_back(t.nbytes);
      for (int64_t r = 0; r < m.rows; r++)
        std::memcpy(buf.data() + size_t(r) * rb, static_cast<const uint8_t*>(t.data) + size_t(llama_gguf_row(r, hd)) * rb, rb);
      t.data = buf.data();
    }
  }
  out.checkpoint = std::make_unique<Checkpoint>(path, std::shared_ptr<const void>(owner), std::move(tensors));
  return out;
}

// ---- writing ---------------------------------------------------------------------------------------

void write_gguf_model(const std::string& path, const Config& c, const Checkpoint& ckpt, const std::string& name,
                      const std::vector<std::pair<std::string, GgufValue>>& extra) {
  std::string arch;
  switch (c.model_type) {
    case ModelType::DeepseekV3:
    case ModelType::DeepseekV2: arch = "deepseek2"; break;
    case ModelType::Qwen2: arch = "qwen2"; break;
    case ModelType::Llama: arch = "llama"; break;
  }
  if (c.is_mla() && c.moe_layer_freq != 1)
    throw Error(strfmt("%s: moe_layer_freq %lld cannot be written to GGUF (llama.cpp's deepseek2 makes every layer "
                       "after the first dense ones MoE)", path.c_str(), (long long)c.moe_layer_freq));
  if (!c.rope.type.empty() && !(c.is_mla() && c.rope.type == "yarn") && !(!c.is_mla() && c.rope.type == "llama3"))
    throw Error(path + ": rope scaling \"" + c.rope.type + "\" cannot be written to GGUF by seek yet");
  // Llama 3.1's scaling goes into the file as llama.cpp's converter writes it: the rope_freqs tensor.
  const std::vector<float> freq_factors = c.is_mla() ? std::vector<float>{} : rope_freq_factors(c.rope);
  std::vector<std::pair<std::string, GgufValue>> kv;
  auto key = [&](const std::string& k) { return arch + "." + k; };
  auto u32 = [&](const std::string& k, int64_t v) { kv.emplace_back(key(k), GgufValue::u32(uint32_t(v))); };
  auto f32 = [&](const std::string& k, double v) { kv.emplace_back(key(k), GgufValue::f32(float(v))); };
  kv.emplace_back("general.architecture", GgufValue::str(arch));
  kv.emplace_back("general.type", GgufValue::str("model"));
  kv.emplace_back("general.name", GgufValue::str(name));
  u32("block_count", c.num_hidden_layers);
  u32("context_length", c.max_position_embeddings);
  u32("embedding_length", c.hidden_size);
  u32("feed_forward_length", c.intermediate_size);
  u32("attention.head_count", c.num_attention_heads);
  f32("rope.freq_base", c.rope_theta);
  f32("attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  u32("vocab_size", c.vocab_size);
  if (c.is_mla()) {
    const int64_t qk = c.qk_head_dim();
    u32("attention.head_count_kv", 1);
    u32("leading_dense_block_count", c.first_k_dense_replace);
    if (c.q_lora_rank > 0) u32("attention.q_lora_rank", c.q_lora_rank);
    u32("attention.kv_lora_rank", c.kv_lora_rank);
    u32("attention.key_length", c.kv_lora_rank + c.qk_rope_head_dim);
    u32("attention.value_length", c.kv_lora_rank);
    u32("attention.key_length_mla", qk);
    u32("attention.value_length_mla", c.v_head_dim);
    u32("expert_feed_forward_length", c.moe_intermediate_size);
    u32("expert_count", c.n_routed_experts);
    u32("expert_shared_count", c.n_shared_experts);
    u32("expert_used_count", c.num_experts_per_tok);
    f32("expert_weights_scale", c.routed_scaling_factor);
    kv.emplace_back(key("expert_weights_norm"), GgufValue::boolean(c.norm_topk_prob));
    u32("expert_gating_func", c.scoring_func == ScoringFunc::Sigmoid ? 2 : 1);
    if (c.n_group > 1) {
      u32("expert_group_count", c.n_group);
      u32("expert_group_used_count", c.topk_group);
    }
    u32("rope.dimension_count", c.qk_rope_head_dim);
    if (c.rope.type == "yarn") {
      kv.emplace_back(key("rope.scaling.type"), GgufValue::str("yarn"));
      f32("rope.scaling.factor", c.rope.factor);
      u32("rope.scaling.original_context_length", int64_t(c.rope.original_max_position));
      f32("rope.scaling.yarn_log_multiplier", 0.1 * c.rope.mscale_all_dim);
    }
  } else {
    u32("attention.head_count_kv", c.num_key_value_heads);
    u32("attention.key_length", c.head_dim);
    u32("attention.value_length", c.head_dim);
    u32("rope.dimension_count", c.head_dim);
  }
  for (const auto& e : extra) kv.push_back(e);

  // Tensors: every name the config calls for, renamed; experts stacked; kv_b split; Llama's q/k permuted.
  std::map<std::string, std::string> to_gguf;
  for (const auto& [g, hf] : kGlobalNames) to_gguf[hf] = g;
  std::deque<std::vector<uint8_t>> buffers;  // stacked experts, split kv_b, permuted rows, f32 vectors
  std::vector<GgufTensorOut> out;
  auto raw = [&](const TensorInfo& t) -> const void* { return t.data; };
  auto as_f32 = [&](const TensorInfo& t) -> const void* {
    if (t.dtype == DType::F32) return t.data;
    std::vector<uint8_t>& b = buffers.emplace_back(size_t(t.numel()) * 4);
    to_f32(t.dtype, t.data, reinterpret_cast<float*>(b.data()), size_t(t.numel()));
    return b.data();
  };
  if (!freq_factors.empty())
    out.push_back({kRopeFreqs, DType::F32, {int64_t(freq_factors.size())}, freq_factors.data()});
  std::map<std::string, bool> written;
  for (const TensorSpec& s : expected_tensors(c)) {
    if (written[s.name]) continue;
    int64_t layer = -1;
    std::string rest;
    if (s.name.rfind("model.layers.", 0) == 0) {
      const size_t dot = s.name.find('.', 13);
      layer = std::stoll(s.name.substr(13, dot - 13));
      rest = s.name.substr(dot + 1);
    }
    if (layer >= c.num_hidden_layers) continue;  // MTP modules: llama.cpp's converter drops them too
    const TensorInfo& t = ckpt.get(s.name);
    if (t.dtype == DType::F8_E4M3)
      throw Error(t.file + ": tensor \"" + s.name + "\" is FP8; convert it to bf16 first (seek quantize)");
    const bool vec = s.shape.size() == 1;
    if (layer < 0) {
      out.push_back({to_gguf.at(s.name), vec ? DType::F32 : t.dtype, s.shape, vec ? as_f32(t) : raw(t)});
      continue;
    }
    const std::string blk = "blk." + std::to_string(layer) + ".";
    if (rest.rfind("mlp.experts.", 0) == 0) {  // stack all experts of this projection
      const std::string after = rest.substr(std::strlen("mlp.experts."));  // "3.gate_proj.weight"
      const std::string proj = after.substr(after.find('.') + 1);            // "gate_proj.weight"
      const char* g = nullptr;
      for (const auto& [gn, hf] : kExpertNames)
        if (proj == hf) g = gn;
      const int64_t E = c.n_routed_experts;
      const size_t each = t.nbytes;
      std::vector<uint8_t>& b = buffers.emplace_back(each * size_t(E));
      for (int64_t e = 0; e < E; e++) {
        const std::string n = "model.layers." + std::to_string(layer) + ".mlp.experts." + std::to_string(e) + "." + proj;
        const TensorInfo& te = ckpt.get(n);
        if (te.dtype != t.dtype || te.nbytes != each)
          throw Error(te.file + ": expert tensor \"" + n + "\" differs in dtype or size from expert 0's");
        std::memcpy(b.data() + size_t(e) * each, te.data, each);
        written[n] = true;
      }
      out.push_back({blk + g, t.dtype, {E, s.shape[0], s.shape[1]}, b.data()});
      continue;
    }
    if (rest == "self_attn.kv_b_proj.weight") {  // split: k_b [H, C, nope], v_b [H, v, C], f32
      const int64_t H = c.num_attention_heads, C = c.kv_lora_rank, nope = c.qk_nope_head_dim, v = c.v_head_dim;
      const float* kvb = static_cast<const float*>(as_f32(t));
      std::vector<uint8_t>& kb = buffers.emplace_back(size_t(H * C * nope) * 4);
      std::vector<uint8_t>& vb = buffers.emplace_back(size_t(H * v * C) * 4);
      float* k = reinterpret_cast<float*>(kb.data());
      float* vv = reinterpret_cast<float*>(vb.data());
      for (int64_t h = 0; h < H; h++) {
        for (int64_t r = 0; r < nope; r++)
          for (int64_t cc = 0; cc < C; cc++) k[(h * C + cc) * nope + r] = kvb[(h * (nope + v) + r) * C + cc];
        std::memcpy(vv + h * v * C, kvb + (h * (nope + v) + nope) * C, size_t(v * C) * 4);
      }
      out.push_back({blk + "attn_k_b.weight", DType::F32, {H, C, nope}, k});
      out.push_back({blk + "attn_v_b.weight", DType::F32, {H, v, C}, vv});
      continue;
    }
    const char* g = nullptr;
    for (const auto& [gn, hf] : kLayerNames)
      if (rest == hf) g = gn;
    if (!g) throw Error(path + ": internal: no GGUF name for \"" + s.name + "\"");
    const void* data = vec ? as_f32(t) : raw(t);
    const DType dt = vec ? DType::F32 : t.dtype;
    if (c.model_type == ModelType::Llama &&
        (rest == "self_attn.q_proj.weight" || rest == "self_attn.k_proj.weight" || rest == "self_attn.q_proj.bias" ||
         rest == "self_attn.k_proj.bias")) {
      const int64_t rows = s.shape[0];
      const size_t rb = dtype_nbytes(dt, vec ? 1 : s.shape[1]);
      std::vector<uint8_t>& b = buffers.emplace_back(size_t(rows) * rb);
      for (int64_t r = 0; r < rows; r++)
        std::memcpy(b.data() + size_t(llama_gguf_row(r, c.head_dim)) * rb, static_cast<const uint8_t*>(data) + size_t(r) * rb, rb);
      data = b.data();
    }
    out.push_back({blk + g, dt, s.shape, data});
  }
  write_gguf(path, kv, out);
}

// ---- tokenizer -------------------------------------------------------------------------------------

namespace {

// The pre-tokenizer's Split regexes (in order) and whether ByteLevel applies GPT-2's own regex.
std::string llama_pre_name(const json& pre, const std::string& where) {
  std::vector<std::string> splits;
  bool byte_level = false, use_regex = true, isolated_digits = false;
  json steps = pre.is_object() && pre.value("type", "") == "Sequence" ? pre.value("pretokenizers", json::array())
               : pre.is_null()                                       ? json::array()
                                                                      : json::array({pre});
  for (const json& s : steps) {
    const std::string type = s.value("type", "");
    if (type == "Split" && s.contains("pattern") && s["pattern"].contains("Regex")) {
      splits.push_back(s["pattern"]["Regex"].get<std::string>());
      if (splits.back() == "\\p{N}") isolated_digits = s.value("behavior", "") == "Isolated";
    } else if (type == "ByteLevel") {
      byte_level = true;
      use_regex = s.value("use_regex", true);
    }
  }
  const std::string qwen2 =
      R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
  const std::string llama3 =
      R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
  if (byte_level && !use_regex && splits.size() == 3 && splits[0] == "\\p{N}{1,3}") return "deepseek-v3";
  if (byte_level && !use_regex && splits.size() == 1 && splits[0] == qwen2) return "qwen2";
  if (byte_level && !use_regex && splits.size() == 1 && splits[0] == llama3) return "llama-bpe";
  if (byte_level && use_regex && splits.size() == 1 && isolated_digits) return "smollm";
  if (byte_level && use_regex && splits.empty()) return "gpt-2";
  throw Error(where + ": pre_tokenizer is not one llama.cpp names (deepseek-v3, qwen2, llama-bpe, smollm, gpt-2)");
}

int32_t special_id(const json& cfg, const char* field, const json& vocab, const json& added) {
  if (!cfg.contains(field) || cfg[field].is_null()) return -1;
  const json& v = cfg[field];
  const std::string content = v.is_string() ? v.get<std::string>() : v.value("content", "");
  for (const json& a : added)
    if (a.value("content", "") == content) return a.value("id", -1);
  return vocab.contains(content) ? vocab[content].get<int32_t>() : -1;
}

}  // namespace

TokenizerParts gguf_tokenizer_parts(const GgufFile& f) {
  const std::string model = f.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    throw Error(f.path() + ": key \"tokenizer.ggml.model\" = \"" + model +
                "\": only byte-level BPE tokenizers (\"gpt2\") are supported");
  TokenizerParts p;
  p.tokens = f.get_strings("tokenizer.ggml.tokens");
  if (f.find("tokenizer.ggml.merges")) p.merges = f.get_strings("tokenizer.ggml.merges");
  if (f.find("tokenizer.ggml.token_type"))
    for (int64_t t : f.get_ints("tokenizer.ggml.token_type")) p.token_types.push_back(int32_t(t));
  p.pre = f.find("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : "default";
  p.bos_id = int32_t(f.get_int("tokenizer.ggml.bos_token_id", -1));
  p.eos_id = int32_t(f.get_int("tokenizer.ggml.eos_token_id", -1));
  if (f.find("tokenizer.chat_template")) p.chat_template = f.get_string("tokenizer.chat_template");
  return p;
}

Tokenizer load_model_tokenizer(const std::string& model, const std::string& tokenizer_dir) {
  if (!tokenizer_dir.empty()) return Tokenizer::load(tokenizer_dir);
  if (is_gguf_file(model)) {
    const GgufFile f(model, FileBytes::Mode::Mapped);  // only the metadata's pages are touched
    if (!f.find("tokenizer.ggml.tokens"))
      throw Error(model + ": has no tokenizer (no key \"tokenizer.ggml.tokens\"); pass --tokenizer DIR");
    return Tokenizer::from_parts(gguf_tokenizer_parts(f), model);
  }
  if (!std::ifstream(model + "/tokenizer.json")) throw Error(model + ": no tokenizer.json (pass --tokenizer DIR)");
  return Tokenizer::load(model);
}

std::vector<std::pair<std::string, GgufValue>> gguf_tokenizer_metadata(const std::string& dir, int64_t vocab_size) {
  const std::string path = dir + "/tokenizer.json";
  const json tj = read_json_file(path);
  const json& model = tj.at("model");
  if (model.value("type", "") != "BPE") throw Error(path + ": model.type must be BPE");
  std::vector<std::string> tokens(static_cast<size_t>(vocab_size));
  std::vector<int64_t> types(static_cast<size_t>(vocab_size), 5);  // unused
  std::vector<bool> seen(static_cast<size_t>(vocab_size), false);
  auto put = [&](const std::string& tok, int64_t id, int64_t type) {
    if (id < 0 || id >= vocab_size)
      throw Error(strfmt("%s: token id %lld is outside the model's vocabulary of %lld", path.c_str(), (long long)id,
                         (long long)vocab_size));
    tokens[size_t(id)] = tok;
    types[size_t(id)] = type;
    seen[size_t(id)] = true;
  };
  for (auto it = model.at("vocab").begin(); it != model.at("vocab").end(); ++it) put(it.key(), it->get<int64_t>(), 1);
  const json added = tj.value("added_tokens", json::array());
  for (const json& a : added) put(a.at("content").get<std::string>(), a.at("id").get<int64_t>(), a.value("special", false) ? 3 : 4);
  for (int64_t i = 0; i < vocab_size; i++)
    if (!seen[size_t(i)]) tokens[size_t(i)] = "[PAD" + std::to_string(i) + "]";
  std::vector<std::string> merges;
  for (const json& m : model.value("merges", json::array()))
    merges.push_back(m.is_string() ? m.get<std::string>() : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());

  std::vector<std::pair<std::string, GgufValue>> kv;
  kv.emplace_back("tokenizer.ggml.model", GgufValue::str("gpt2"));
  kv.emplace_back("tokenizer.ggml.pre", GgufValue::str(llama_pre_name(tj.value("pre_tokenizer", json()), path)));
  kv.emplace_back("tokenizer.ggml.tokens", GgufValue::str_array(std::move(tokens)));
  kv.emplace_back("tokenizer.ggml.token_type", GgufValue::int_array(GgufType::I32, std::move(types)));
  kv.emplace_back("tokenizer.ggml.merges", GgufValue::str_array(std::move(merges)));
  json cfg = json::object();
  if (std::ifstream(dir + "/tokenizer_config.json")) cfg = read_json_file(dir + "/tokenizer_config.json");
  const int32_t bos = special_id(cfg, "bos_token", model.at("vocab"), added);
  const int32_t eos = special_id(cfg, "eos_token", model.at("vocab"), added);
  if (bos >= 0) kv.emplace_back("tokenizer.ggml.bos_token_id", GgufValue::u32(uint32_t(bos)));
  if (eos >= 0) kv.emplace_back("tokenizer.ggml.eos_token_id", GgufValue::u32(uint32_t(eos)));
  kv.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::boolean(cfg.value("add_bos_token", false)));
  if (cfg.contains("chat_template") && cfg["chat_template"].is_string())
    kv.emplace_back("tokenizer.chat_template", GgufValue::str(cfg["chat_template"].get<std::string>()));
  return kv;
}

}  // namespace seek
