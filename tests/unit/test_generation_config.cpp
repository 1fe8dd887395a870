// A checkpoint's generation_config.json as decoding defaults: DeepSeek-R1's own file, do_sample false
// (greedy), an absent file (seek's defaults), and bad values refused with the file and key named.
#include <gtest/gtest.h>

#include <fstream>

#include "engine/generation_config.h"
#include "server/api.h"
#include "test_util.h"
#include "util/error.h"

using namespace seek;

namespace {
std::string write_config(const test::TempDir& dir, const std::string& text) {
  std::ofstream(dir.path / "generation_config.json") << text;
  return dir.path.string();
}

void expect_error(const std::string& text, const std::string& needle) {
  test::TempDir dir;
  try {
    read_generation_config(write_config(dir, text));
    ADD_FAILURE() << "no error for " << text;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("generation_config.json"), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(GenerationConfig, ReadsDeepSeekR1sFile) {
  test::TempDir dir;
  // DeepSeek-R1's generation_config.json as published.
  const GenerationDefaults d = read_generation_config(write_config(dir, R"({
    "_from_model_config": true, "bos_token_id": 0, "eos_token_id": 1, "do_sample": true,
    "temperature": 0.6, "top_p": 0.95, "transformers_version": "4.46.3"})"));
  EXPECT_FLOAT_EQ(d.sampling.temperature, 0.6f);
  EXPECT_FLOAT_EQ(d.sampling.top_p, 0.95f);
  EXPECT_EQ(d.sampling.top_k, 0);
  EXPECT_EQ(d.eos_ids, std::vector<int32_t>{1});
  EXPECT_FALSE(d.max_new_tokens);
  EXPECT_NE(d.source.find("generation_config.json"), std::string::npos);
}

TEST(GenerationConfig, GreedyListsAndAbsence) {
  test::TempDir dir;
  const GenerationDefaults g = read_generation_config(write_config(dir, R"({"do_sample": false, "temperature": 0.7,
    "top_k": 20, "repetition_penalty": 1.1, "max_new_tokens": 300, "eos_token_id": [151643, 151645]})"));
  EXPECT_EQ(g.sampling.temperature, 0.f) << "do_sample false is greedy, whatever the temperature";
  EXPECT_EQ(g.sampling.top_k, 20);
  EXPECT_FLOAT_EQ(g.sampling.repetition_penalty, 1.1f);
  EXPECT_EQ(g.max_new_tokens, 300);
  EXPECT_EQ(g.eos_ids, (std::vector<int32_t>{151643, 151645}));
  test::TempDir empty;
  const GenerationDefaults none = read_generation_config(empty.path.string());
  EXPECT_EQ(none.source, "");
  EXPECT_EQ(none.sampling.temperature, SamplingParams{}.temperature);
  EXPECT_TRUE(none.eos_ids.empty());
}

TEST(GenerationConfig, BadValuesNameTheKey) {
  expect_error(R"({"temperature": "hot"})", "temperature");
  expect_error(R"({"top_p": 0})", "top_p");
  expect_error(R"({"top_k": -1})", "top_k");
  expect_error(R"({"eos_token_id": [1, "x"]})", "eos_token_id");
  expect_error(R"({"do_sample": 1})", "do_sample");
  expect_error(R"({"max_new_tokens": 0})", "max_new_tokens");
  expect_error(R"([1, 2])", "object");
  expect_error(R"({"temperature": )", "generation_config.json");
}

TEST(GenerationConfig, TheServersDefaultsGiveWayToARequestsFields) {
  ApiLimits lim;
  lim.sampling.temperature = 0.6f;
  lim.sampling.top_p = 0.95f;
  lim.sampling.top_k = 20;
  const ApiRequest plain = parse_chat_request(R"({"model": "m", "messages": [{"role": "user", "content": "hi"}]})", lim);
  EXPECT_FLOAT_EQ(plain.sampling.temperature, 0.6f);
  EXPECT_FLOAT_EQ(plain.sampling.top_p, 0.95f);
  EXPECT_EQ(plain.sampling.top_k, 20);
  const ApiRequest own = parse_chat_request(
      R"({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "top_p": 0.5})", lim);
  EXPECT_EQ(own.sampling.temperature, 0.f);
  EXPECT_FLOAT_EQ(own.sampling.top_p, 0.5f);
  EXPECT_EQ(own.sampling.top_k, 20);
}
