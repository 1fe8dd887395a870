// Config parsing: real DeepSeek configs read field for field, derived figures (`seek info`), and every
// kind of bad field refused with its name.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "test_util.h"
#include "util/error.h"

using namespace seek;
using nlohmann::json;

TEST(Config, DeepSeekV3) {
  Config c = load_config(test::data_path("data/configs/deepseek-v3.json"));
  EXPECT_EQ(c.model_type, ModelType::DeepseekV3);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.scoring_func, ScoringFunc::Sigmoid);
  EXPECT_EQ(c.topk_method, TopkMethod::NoauxTc);
  EXPECT_TRUE(c.fp8);
  EXPECT_EQ(c.fp8_block, 128);
  EXPECT_EQ(c.rope.type, "yarn");
  EXPECT_EQ(c.rope.dim, 64);
  EXPECT_FALSE(c.is_moe_layer(2));
  EXPECT_TRUE(c.is_moe_layer(3));
  // 576 latent values per token per layer; 61 layers.
  EXPECT_EQ(KVCache::values_per_token(c, MlaForm::Absorbed), 576);
  EXPECT_EQ(61 * KVCache::values_per_token(c, MlaForm::Absorbed), 35136);
  // softmax scale: 1/sqrt(192) · (0.1·ln 40 + 1)².
  double m = 0.1 * std::log(40.0) + 1.0;
  EXPECT_NEAR(c.softmax_scale(), m * m / std::sqrt(192.0), 1e-7);
  // DeepSeek-V3: 671B main-model parameters + 14B MTP = 685B; 37B activated.
  ParamCount p = count_params(c);
  EXPECT_NEAR(double(p.total - p.mtp) / 1e9, 671.0, 1.0);
  EXPECT_NEAR(double(p.mtp) / 1e9, 11.5, 3.0);
  EXPECT_NEAR(double(p.active) / 1e9, 37.5, 1.0);
}

TEST(Config, DeepSeekV2Lite) {
  Config c = load_config(test::data_path("data/configs/deepseek-v2-lite.json"));
  EXPECT_EQ(c.q_lora_rank, 0);
  EXPECT_EQ(c.scoring_func, ScoringFunc::Softmax);
  EXPECT_EQ(c.topk_method, TopkMethod::Greedy);
  EXPECT_FALSE(c.norm_topk_prob);
  // V2-Lite: 15.7B total, 2.4B activated (DeepSeek-V2 paper, appendix B).
  ParamCount p = count_params(c);
  EXPECT_NEAR(double(p.total) / 1e9, 15.7, 0.2);
  EXPECT_NEAR(double(p.active) / 1e9, 2.4, 0.3);
}

namespace {

// Expects parse_config to refuse `j` with a message that contains `needle`.
void expect_refused(const json& j, const std::string& needle) {
  try {
    parse_config(j, "cfg.json");
    FAIL() << "accepted a config that should be refused for: " << needle;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_NE(msg.find("cfg.json"), std::string::npos) << msg;
  }
}

}  // namespace

TEST(Config, BadFieldsAreNamed) {
  const json v3 = test::tiny_config("deepseek_v3");
  ASSERT_NO_THROW(parse_config(v3, "cfg.json"));
  json j = v3;
  j.erase("kv_lora_rank");
  expect_refused(j, "\"kv_lora_rank\" is missing");
  j = v3;
  j["hidden_size"] = "48";
  expect_refused(j, "\"hidden_size\" must be an integer");
  j = v3;
  j["hidden_size"] = -3;
  expect_refused(j, "\"hidden_size\" = -3 is out of range");
  j = v3;
  j["n_group"] = 3;
  expect_refused(j, "\"n_group\" = 3 does not divide n_routed_experts = 8");
  j = v3;
  j["topk_group"] = 5;
  expect_refused(j, "\"topk_group\"");
  j = v3;
  j["topk_group"] = 1;  // keeps 2 experts, fewer than k = 3
  expect_refused(j, "keeps 2 experts, fewer than num_experts_per_tok = 3");
  j = v3;
  j["num_experts_per_tok"] = 9;
  expect_refused(j, "\"num_experts_per_tok\" = 9 is out of range");
  j = v3;
  j["scoring_func"] = "relu";
  expect_refused(j, "\"scoring_func\" = \"relu\" is not supported");
  j = v3;
  j["topk_method"] = "best";
  expect_refused(j, "\"topk_method\" = \"best\"");
  j = v3;
  j["model_type"] = "gpt2";
  expect_refused(j, "\"model_type\" = \"gpt2\" is not supported");
  j = v3;
  j.erase("model_type");
  expect_refused(j, "\"model_type\" is missing");
  j = v3;
  j["qk_rope_head_dim"] = 7;
  expect_refused(j, "\"qk_rope_head_dim\" = 7 must be even");
  j = v3;
  j["rope_scaling"]["type"] = "ntk";
  expect_refused(j, "\"type\" = \"ntk\" is not supported");
  j = v3;
  j["rope_scaling"].erase("original_max_position_embeddings");
  expect_refused(j, "original_max_position_embeddings");
  j = v3;
  j["rms_norm_eps"] = "tiny";
  expect_refused(j, "\"rms_norm_eps\" must be a number");
  j = v3;
  j["quantization_config"] = {{"quant_method", "fp8"}, {"weight_block_size", {128, 64}}};
  expect_refused(j, "\"weight_block_size\" must be [n, n]");
  j = v3;
  j["hidden_act"] = "gelu";
  expect_refused(j, "\"hidden_act\" = \"gelu\" is not supported");
  json q = test::tiny_config("qwen2");
  q["use_sliding_window"] = true;
  expect_refused(q, "\"use_sliding_window\" = true is not supported");
  q = test::tiny_config("qwen2");
  ASSERT_NO_THROW(parse_config(q, "cfg.json"));
  q["num_key_value_heads"] = 3;
  expect_refused(q, "\"num_key_value_heads\" = 3 does not divide num_attention_heads = 4");
  q = test::tiny_config("qwen2");
  q.erase("intermediate_size");
  expect_refused(q, "\"intermediate_size\" is missing");
  expect_refused(json::array(), "expected a JSON object");
}

TEST(Config, FileErrors) {
  test::TempDir dir;
  test::write_text(dir / "config.json", "{\"model_type\": ");
  try {
    load_config(dir.path.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_config(dir / "absent.json"), Error);
}

TEST(Config, DenseStudents) {
  Config q = parse_config(test::tiny_config("qwen2"), "q");
  EXPECT_TRUE(q.attention_bias);
  EXPECT_EQ(q.head_dim, 8);
  EXPECT_EQ(q.rope.dim, 8);
  Config l = parse_config(test::tiny_config("llama"), "l");
  EXPECT_FALSE(l.attention_bias);
  EXPECT_EQ(l.head_dim, 12);
  EXPECT_EQ(l.rope.type, "llama3");
  EXPECT_TRUE(l.tie_word_embeddings);
  EXPECT_NEAR(l.softmax_scale(), 1.0 / std::sqrt(12.0), 1e-7);
}
