// The request schema: every field parsed, every bad input refused with the right status and parameter,
// DeepSeek's usage fields, and a fuzz of the parser (mutated bodies only ever parse or give a 400).
#include <gtest/gtest.h>

#include <random>

#include "server/api.h"

using namespace seek;
using nlohmann::json;

namespace {

ApiError chat_error(const std::string& body, ApiLimits lim = {}) {
  try {
    parse_chat_request(body, lim);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body;
  return ApiError(0, "");
}

std::string with(json extra) {
  json j = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  if (extra.is_object()) j.update(extra);
  return j.dump();
}

}  // namespace

TEST(ServerApi, ParsesEveryChatField) {
  const std::string body = R"({
    "model": "deepseek-chat",
    "messages": [{"role": "system", "content": "be brief"},
                 {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                 {"role": "assistant", "content": null},
                 {"role": "developer", "content": "dev"}],
    "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 33, "temperature": 0.5,
    "top_p": 0.9, "stop": ["x", "", "yz"], "seed": -3, "n": 2, "frequency_penalty": 1.5,
    "presence_penalty": -0.5, "logprobs": true, "top_logprobs": 3, "logit_bias": {"17": -100},
    "thinking": {"type": "enabled"}, "draft_tokens": 3, "min_draft_prob": 0.25, "user": "ignored",
    "unknown_field": [1, 2]})";
  ApiRequest r = parse_chat_request(body, ApiLimits{});
  EXPECT_TRUE(r.chat);
  EXPECT_EQ(r.model, "deepseek-chat");
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[1].content, "ab");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(r.messages[3].role, "system");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(*r.max_tokens, 33);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"x", "yz"}));
  EXPECT_TRUE(r.seed_given);
  EXPECT_EQ(r.sampling.seed, uint64_t(int64_t(-3)));
  EXPECT_EQ(r.n, 2);
  EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, 1.5f);
  EXPECT_FLOAT_EQ(r.sampling.presence_penalty, -0.5f);
  EXPECT_EQ(r.top_logprobs, 3);
  ASSERT_EQ(r.sampling.logit_bias.size(), 1u);
  EXPECT_EQ(r.sampling.logit_bias[0].first, 17);
  EXPECT_EQ(r.thinking, std::optional<bool>(true));
  EXPECT_EQ(r.draft_tokens, std::optional<int64_t>(3));
  EXPECT_EQ(r.min_draft_prob, std::optional<float>(0.25f));

  ApiRequest d = parse_chat_request(with({}), ApiLimits{});
  EXPECT_FALSE(d.stream);
  EXPECT_FALSE(d.max_tokens);
  EXPECT_EQ(d.top_logprobs, -1);
  EXPECT_FALSE(d.draft_tokens);  // the server's default
  EXPECT_FALSE(d.min_draft_prob);
  EXPECT_FLOAT_EQ(d.sampling.temperature, 1.0f);
  EXPECT_EQ(parse_chat_request(with({{"max_completion_tokens", 7}}), ApiLimits{}).max_tokens, std::optional<int64_t>(7));
  EXPECT_EQ(parse_chat_request(with({{"stop", "END"}}), ApiLimits{}).stop, std::vector<std::string>{"END"});
  EXPECT_EQ(parse_chat_request(with({{"max_tokens", 5.0}}), ApiLimits{}).max_tokens, std::optional<int64_t>(5));
}

TEST(ServerApi, RefusesBadChatRequestsWithStatusAndParameter) {
  struct Case {
    std::string body;
    std::string param;
  };
  const std::vector<Case> cases = {
      {"{", ""},
      {"[1, 2]", ""},
      {"", ""},
      {"\"text\"", ""},
      {R"({"messages": [{"role": "user", "content": "x"}]})", "model"},
      {R"({"model": 5, "messages": []})", "model"},
      {R"({"model": "m"})", "messages"},
      {R"({"model": "m", "messages": {}})", "messages"},
      {R"({"model": "m", "messages": []})", "messages"},
      {R"({"model": "m", "messages": ["hi"]})", "messages[0]"},
      {R"({"model": "m", "messages": [{"role": "tool", "content": "x"}]})", "messages[0].role"},
      {R"({"model": "m", "messages": [{"content": "x"}]})", "messages[0].role"},
      {R"({"model": "m", "messages": [{"role": "user"}]})", "messages[0].content"},
      {R"({"model": "m", "messages": [{"role": "user", "content": 3}]})", "messages[0].content"},
      {R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages[0].content"},
      {R"({"model": "m", "messages": [{"role": "assistant", "content": "a", "reasoning_content": "r"}]})",
       "messages[0].reasoning_content"},
      {with({{"temperature", -0.1}}), "temperature"},
      {with({{"temperature", 2.5}}), "temperature"},
      {with({{"temperature", "hot"}}), "temperature"},
      {with({{"top_p", 0}}), "top_p"},
      {with({{"top_p", 1.5}}), "top_p"},
      {with({{"max_tokens", 0}}), "max_tokens"},
      {with({{"max_tokens", -5}}), "max_tokens"},
      {with({{"max_tokens", 1e300}}), "max_tokens"},
      {with({{"max_tokens", 99999999999999}}), "max_tokens"},
      {with({{"max_tokens", 2.5}}), "max_tokens"},
      {with({{"max_tokens", "10"}}), "max_tokens"},
      {with({{"n", 0}}), "n"},
      {with({{"n", 1000}}), "n"},
      {with({{"seed", "x"}}), "seed"},
      {with({{"seed", 18446744073709551615ull}}), "seed"},
      {with({{"stream", "yes"}}), "stream"},
      {with({{"stream_options", true}}), "stream_options"},
      {with({{"stop", 4}}), "stop"},
      {with({{"stop", {"a", 1}}}), "stop"},
      {with({{"stop", json::array({"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17"})}}), "stop"},
      {with({{"frequency_penalty", 3}}), "frequency_penalty"},
      {with({{"presence_penalty", -2.01}}), "presence_penalty"},
      {with({{"top_logprobs", 2}}), "top_logprobs"},
      {with({{"logprobs", true}, {"top_logprobs", 21}}), "top_logprobs"},
      {with({{"logprobs", 1}}), "logprobs"},
      {with({{"logit_bias", {{"abc", 1}}}}), "logit_bias"},
      {with({{"logit_bias", {{"5", 101}}}}), "logit_bias"},
      {with({{"thinking", {{"type", "maybe"}}}}), "thinking.type"},
      {with({{"draft_tokens", 9}}), "draft_tokens"},
      {with({{"draft_tokens", -1}}), "draft_tokens"},
      {with({{"min_draft_prob", 1.5}}), "min_draft_prob"},
  };
  for (const Case& c : cases) {
    ApiError e = chat_error(c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body << " -> " << e.what();
    EXPECT_EQ(e.type, "invalid_request_error") << c.body;
  }
  // Invalid UTF-8 inside a string is malformed JSON.
  ApiError utf = chat_error(std::string(R"({"model": "m", "messages": [{"role": "user", "content": "a)") + "\xff\xfe" + "\"}]}");
  EXPECT_EQ(utf.status, 400);
  EXPECT_EQ(utf.code, "invalid_json");
  // Limits: too many messages.
  ApiLimits lim;
  lim.max_messages = 2;
  EXPECT_EQ(chat_error(R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"user","content":"c"}]})", lim).param,
            "messages");
}

TEST(ServerApi, CompletionPrompts) {
  ApiRequest r = parse_completion_request(R"({"model": "m", "prompt": "once", "logprobs": 2})", ApiLimits{});
  EXPECT_FALSE(r.chat);
  EXPECT_EQ(r.prompt, "once");
  EXPECT_EQ(r.top_logprobs, 2);
  EXPECT_EQ(parse_completion_request(R"({"model": "m", "prompt": ["one"]})", ApiLimits{}).prompt, "one");
  ApiRequest ids = parse_completion_request(R"({"model": "m", "prompt": [1, 2, 3]})", ApiLimits{});
  EXPECT_TRUE(ids.prompt_is_ids);
  EXPECT_EQ(ids.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  for (const char* bad : {R"({"model": "m"})", R"({"model": "m", "prompt": 5})", R"({"model": "m", "prompt": ["a", "b"]})",
                          R"({"model": "m", "prompt": [1, -2]})", R"({"model": "m", "prompt": [1, 2.5]})",
                          R"({"model": "m", "prompt": "x", "echo": true})", R"({"model": "m", "prompt": "x", "suffix": "y"})",
                          R"({"model": "m", "prompt": "x", "logprobs": 6})", R"({"model": "m", "prompt": "x", "best_of": 3})"}) {
    try {
      parse_completion_request(bad, ApiLimits{});
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400) << bad;
    }
  }
}

TEST(ServerApi, UsageHasDeepSeeksFieldsAndErrorsOpenAIsShape) {
  json u = usage_json(100, 64, 20, 7);
  EXPECT_EQ(u["prompt_tokens"], 100);
  EXPECT_EQ(u["completion_tokens"], 20);
  EXPECT_EQ(u["total_tokens"], 120);
  EXPECT_EQ(u["prompt_cache_hit_tokens"], 64);
  EXPECT_EQ(u["prompt_cache_miss_tokens"], 36);
  EXPECT_EQ(u["prompt_tokens_details"]["cached_tokens"], 64);
  EXPECT_EQ(u["completion_tokens_details"]["reasoning_tokens"], 7);
  json e = error_json(ApiError(429, "busy", "rate_limit_error", "", "queue_full"));
  EXPECT_EQ(e["error"]["message"], "busy");
  EXPECT_EQ(e["error"]["type"], "rate_limit_error");
  EXPECT_TRUE(e["error"]["param"].is_null());
  EXPECT_EQ(e["error"]["code"], "queue_full");
  // Output with a broken UTF-8 byte still dumps.
  EXPECT_NO_THROW(dump_json(json{{"t", std::string("a\xff")}}));
}

// Fuzz: byte flips, truncations, duplications and splices of valid bodies. Each must parse or be a 400
// ApiError; anything else (another exception, a crash, a hang) fails.
TEST(ServerApi, FuzzedBodiesParseOrGive400) {
  const std::vector<std::string> seeds = {
      with({{"stream", true}, {"stop", {"a", "b"}}, {"logprobs", true}, {"top_logprobs", 2}, {"seed", 4}}),
      with({{"logit_bias", {{"3", 2}}}, {"thinking", {{"type", "disabled"}}}, {"n", 2}}),
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"}]},{"role":"assistant","content":"y"}]})",
      R"({"model":"m","prompt":[1,2,3],"max_tokens":4,"logprobs":1})",
  };
  const std::string alphabet = "{}[]\":,0123456789-.eEtrufalsn \\u\xff\x80";
  std::mt19937_64 rng(12345);
  int parsed = 0, refused = 0;
  for (int it = 0; it < 20000; ++it) {
    std::string s = seeds[rng() % seeds.size()];
    const int edits = 1 + int(rng() % 4);
    for (int k = 0; k < edits && !s.empty(); ++k) {
      const size_t at = rng() % s.size();
      switch (rng() % 5) {
        case 0: s[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: s.erase(at, 1 + rng() % 8); break;
        case 2: s.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
        case 3: s.resize(at); break;
        default: s.insert(at, s.substr(rng() % s.size(), rng() % 16)); break;
      }
    }
    const bool completions = s.find("\"prompt\"") != std::string::npos;
    try {
      if (completions) parse_completion_request(s, ApiLimits{});
      else parse_chat_request(s, ApiLimits{});
      parsed++;
    } catch (const ApiError& e) {
      ASSERT_EQ(e.status, 400) << s;
      refused++;
    } catch (const std::exception& e) {
      FAIL() << "unexpected exception " << e.what() << " for: " << s;
    }
  }
  EXPECT_GT(parsed, 100);
  EXPECT_GT(refused, 1000);
}
