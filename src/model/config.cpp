// config.cpp — config.json → Config, with every field checked. See config.h.
#include "model/config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace seek {

using json = nlohmann::json;

namespace {

// A field reader that knows which file it reads, so every error names the file and the field.
struct Fields {
  const json& j;
  const std::string& src;

  [[noreturn]] void bad(const std::string& field, const std::string& why) const {
    throw Error(strfmt("%s: field \"%s\" %s", src.c_str(), field.c_str(), why.c_str()));
  }
  bool has(const char* f) const { return j.contains(f) && !j[f].is_null(); }

  int64_t integer(const char* f, int64_t min, int64_t max, const int64_t* def = nullptr) const {
    if (!has(f)) {
      if (def) return *def;
      bad(f, "is missing (expected an integer)");
    }
    const json& v = j[f];
    if (!v.is_number_integer()) bad(f, "must be an integer, got " + v.dump());
    int64_t x = v.get<int64_t>();
    if (x < min || x > max) bad(f, strfmt("= %lld is out of range [%lld, %lld]", (long long)x, (long long)min, (long long)max));
    return x;
  }
  int64_t integer_or(const char* f, int64_t def, int64_t min, int64_t max) const { return integer(f, min, max, &def); }
  int64_t required(const char* f, int64_t min = 1, int64_t max = int64_t(1) << 40) const { return integer(f, min, max); }

  double number(const char* f, double def, double min, double max) const {
    if (!has(f)) return def;
    const json& v = j[f];
    if (!v.is_number()) bad(f, "must be a number, got " + v.dump());
    double x = v.get<double>();
    if (!std::isfinite(x) || x < min || x > max) bad(f, strfmt("= %g is out of range [%g, %g]", x, min, max));
    return x;
  }
  bool boolean(const char* f, bool def) const {
    if (!has(f)) return def;
    if (!j[f].is_boolean()) bad(f, "must be true or false, got " + j[f].dump());
    return j[f].get<bool>();
  }
  std::string string(const char* f, const std::string& def) const {
    if (!has(f)) return def;
    if (!j[f].is_string()) bad(f, "must be a string, got " + j[f].dump());
    return j[f].get<std::string>();
  }
};

constexpr int64_t kBig = int64_t(1) << 31;

void parse_rope_scaling(const Fields& f, Config& c) {
  c.rope.theta = f.number("rope_theta", 10000.0, 1.0, 1e12);
  if (!f.has("rope_scaling")) return;
  const json& rs = f.j["rope_scaling"];
  if (!rs.is_object()) f.bad("rope_scaling", "must be an object or null, got " + rs.dump());
  std::string src = f.src + " (rope_scaling)";
  Fields r{rs, src};
  // HF writes the kind as "type" (DeepSeek) or "rope_type" (Llama 3.1); both mean the same.
  std::string type = r.string("type", r.string("rope_type", ""));
  if (type == "default") return;
  if (type != "yarn" && type != "llama3" && type != "linear")
    r.bad(r.has("type") ? "type" : "rope_type", "= \"" + type + "\" is not supported (expected yarn, llama3, linear or default)");
  c.rope.type = type;
  c.rope.factor = r.number("factor", 1.0, 1.0, 1e6);
  if (!r.has("factor")) r.bad("factor", "is missing");
  if (type == "yarn" || type == "llama3") {
    if (!r.has("original_max_position_embeddings")) r.bad("original_max_position_embeddings", "is missing");
    c.rope.original_max_position = double(r.integer("original_max_position_embeddings", 1, kBig));
  }
  if (type == "yarn") {
    c.rope.beta_fast = r.number("beta_fast", 32.0, 0.0, 1e6);
    c.rope.beta_slow = r.number("beta_slow", 1.0, 0.0, 1e6);
    c.rope.mscale = r.number("mscale", 1.0, 0.0, 1e3);
    c.rope.mscale_all_dim = r.number("mscale_all_dim", 0.0, 0.0, 1e3);
    if (c.rope.beta_fast <= 0 || c.rope.beta_slow <= 0) r.bad("beta_fast", "and beta_slow must be positive");
  }
  if (type == "llama3") {
    c.rope.low_freq_factor = r.number("low_freq_factor", 1.0, 1e-6, 1e6);
    c.rope.high_freq_factor = r.number("high_freq_factor", 4.0, 1e-6, 1e6);
    if (c.rope.high_freq_factor <= c.rope.low_freq_factor) r.bad("high_freq_factor", "must be above low_freq_factor");
  }
}

void parse_deepseek(const Fields& f, Config& c) {
  // q_lora_rank: null (V2-Lite) means a plain q_proj.
  c.q_lora_rank = f.integer_or("q_lora_rank", 0, 0, kBig);
  c.kv_lora_rank = f.required("kv_lora_rank");
  c.qk_nope_head_dim = f.required("qk_nope_head_dim");
  c.qk_rope_head_dim = f.required("qk_rope_head_dim");
  c.v_head_dim = f.required("v_head_dim");
  if (c.qk_rope_head_dim % 2) f.bad("qk_rope_head_dim", strfmt("= %lld must be even (RoPE rotates pairs)", (long long)c.qk_rope_head_dim));
  c.rope.dim = c.qk_rope_head_dim;

  c.n_routed_experts = f.integer_or("n_routed_experts", 0, 0, 1 << 20);
  c.n_shared_experts = f.integer_or("n_shared_experts", 0, 0, 1 << 20);
  c.first_k_dense_replace = f.integer_or("first_k_dense_replace", 0, 0, kBig);
  c.moe_layer_freq = f.integer_or("moe_layer_freq", 1, 1, kBig);
  c.num_nextn_predict_layers = f.integer_or("num_nextn_predict_layers", 0, 0, 64);
  if (c.n_routed_experts > 0) {
    c.num_experts_per_tok = f.integer("num_experts_per_tok", 1, c.n_routed_experts);
    c.moe_intermediate_size = f.required("moe_intermediate_size");
    c.n_group = f.integer_or("n_group", 1, 1, c.n_routed_experts);
    if (c.n_routed_experts % c.n_group)
      f.bad("n_group", strfmt("= %lld does not divide n_routed_experts = %lld", (long long)c.n_group, (long long)c.n_routed_experts));
    c.topk_group = f.integer_or("topk_group", 1, 1, c.n_group);
    c.routed_scaling_factor = f.number("routed_scaling_factor", 1.0, 0.0, 1e6);
    c.norm_topk_prob = f.boolean("norm_topk_prob", false);
    std::string sf = f.string("scoring_func", "softmax");
    if (sf == "softmax") c.scoring_func = ScoringFunc::Softmax;
    else if (sf == "sigmoid") c.scoring_func = ScoringFunc::Sigmoid;
    else f.bad("scoring_func", "= \"" + sf + "\" is not supported (expected softmax or sigmoid)");
    std::string tm = f.string("topk_method", "greedy");
    if (tm == "greedy") c.topk_method = TopkMethod::Greedy;
    else if (tm == "group_limited_greedy") c.topk_method = TopkMethod::GroupLimitedGreedy;
    else if (tm == "noaux_tc") c.topk_method = TopkMethod::NoauxTc;
    else f.bad("topk_method", "= \"" + tm + "\" is not supported (expected greedy, group_limited_greedy or noaux_tc)");
    if (c.topk_method != TopkMethod::Greedy &&
        c.topk_group * (c.n_routed_experts / c.n_group) < c.num_experts_per_tok)
      f.bad("topk_group", strfmt("= %lld keeps %lld experts, fewer than num_experts_per_tok = %lld",
                                 (long long)c.topk_group, (long long)(c.topk_group * (c.n_routed_experts / c.n_group)),
                                 (long long)c.num_experts_per_tok));
  }
  bool any_dense = false;
  for (int64_t i = 0; i < c.num_hidden_layers + c.num_nextn_predict_layers; ++i) any_dense |= !c.is_moe_layer(i);
  c.intermediate_size = any_dense ? f.required("intermediate_size") : f.integer_or("intermediate_size", 0, 0, kBig);

  if (f.has("quantization_config")) {
    const json& q = f.j["quantization_config"];
    std::string src = f.src + " (quantization_config)";
    if (!q.is_object()) f.bad("quantization_config", "must be an object");
    Fields qf{q, src};
    std::string method = qf.string("quant_method", "");
    if (method != "fp8") qf.bad("quant_method", "= \"" + method + "\" is not supported (expected fp8)");
    std::string fmt = qf.string("fmt", "e4m3");
    if (fmt != "e4m3") qf.bad("fmt", "= \"" + fmt + "\" is not supported (expected e4m3)");
    if (qf.has("weight_block_size")) {
      const json& b = q["weight_block_size"];
      if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || b[0] != b[1] || b[0].get<int64_t>() <= 0)
        qf.bad("weight_block_size", "must be [n, n] with n > 0, got " + b.dump());
      c.fp8_block = b[0].get<int64_t>();
    }
    c.fp8 = true;
  }
}

void parse_dense(const Fields& f, Config& c) {
  c.intermediate_size = f.required("intermediate_size");
  c.num_key_value_heads = f.integer_or("num_key_value_heads", c.num_attention_heads, 1, c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads)
    f.bad("num_key_value_heads", strfmt("= %lld does not divide num_attention_heads = %lld",
                                        (long long)c.num_key_value_heads, (long long)c.num_attention_heads));
  int64_t def_hd = c.hidden_size / c.num_attention_heads;
  c.head_dim = f.integer_or("head_dim", def_hd, 2, kBig);
  if (!f.has("head_dim") && c.hidden_size % c.num_attention_heads)
    f.bad("hidden_size", "is not divisible by num_attention_heads and no head_dim is given");
  if (c.head_dim % 2) f.bad("head_dim", strfmt("= %lld must be even (RoPE rotates pairs)", (long long)c.head_dim));
  c.rope.dim = c.head_dim;
  // Qwen2 always has q/k/v bias; Llama says so in attention_bias.
  c.attention_bias = c.model_type == ModelType::Qwen2 ? true : f.boolean("attention_bias", false);
  if (f.boolean("mlp_bias", false)) f.bad("mlp_bias", "= true is not supported");
}

}  // namespace

const char* model_type_name(ModelType t) {
  switch (t) {
    case ModelType::DeepseekV3: return "deepseek_v3";
    case ModelType::DeepseekV2: return "deepseek_v2";
    case ModelType::Qwen2: return "qwen2";
    case ModelType::Llama: return "llama";
  }
  return "?";
}

float Config::softmax_scale() const {
  double d = is_mla() ? double(qk_head_dim()) : double(head_dim);
  double s = 1.0 / std::sqrt(d);
  if (rope.type == "yarn") {
    double m = yarn_attention_mscale(rope);
    s *= m * m;
  }
  return float(s);
}

Config parse_config(const json& j, const std::string& source) {
  if (!j.is_object()) throw Error(source + ": expected a JSON object");
  Fields f{j, source};
  Config c;
  c.model_type_name = f.string("model_type", "");
  if (c.model_type_name == "deepseek_v3") c.model_type = ModelType::DeepseekV3;
  else if (c.model_type_name == "deepseek_v2") c.model_type = ModelType::DeepseekV2;
  else if (c.model_type_name == "qwen2") c.model_type = ModelType::Qwen2;
  else if (c.model_type_name == "llama") c.model_type = ModelType::Llama;
  else if (!f.has("model_type")) f.bad("model_type", "is missing (expected deepseek_v3, deepseek_v2, qwen2 or llama)");
  else f.bad("model_type", "= \"" + c.model_type_name + "\" is not supported (expected deepseek_v3, deepseek_v2, qwen2 or llama)");

  c.vocab_size = f.required("vocab_size", 1, kBig);
  c.hidden_size = f.required("hidden_size", 1, kBig);
  c.num_hidden_layers = f.required("num_hidden_layers", 1, 100000);
  c.num_attention_heads = f.required("num_attention_heads", 1, 1 << 16);
  c.rms_norm_eps = f.number("rms_norm_eps", 1e-6, 0.0, 1.0);
  c.max_position_embeddings = f.integer_or("max_position_embeddings", 4096, 1, kBig);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  parse_rope_scaling(f, c);
  // Behaviours seek does not implement are refused rather than silently computed some other way.
  const std::string act = f.string("hidden_act", "silu");
  if (act != "silu") f.bad("hidden_act", "= \"" + act + "\" is not supported (expected silu: every model type here uses SwiGLU)");
  if (f.boolean("use_sliding_window", false)) f.bad("use_sliding_window", "= true is not supported (full attention only)");
  if (c.is_mla()) parse_deepseek(f, c);
  else parse_dense(f, c);
  return c;
}

Config load_config(const std::string& path) {
  namespace fs = std::filesystem;
  std::string file = fs::is_directory(path) ? (fs::path(path) / "config.json").string() : path;
  std::ifstream in(file);
  if (!in) throw Error(file + ": cannot open (expected a model directory or a config.json)");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw Error(file + ": not valid JSON: " + e.what());
  }
  return parse_config(j, file);
}

}  // namespace seek
