// Chat formats: DeepSeek-V3/R1 and SeekTiny prompts against hand-checked strings, history reasoning
// stripped as R1's template does, style detection, the conversations we refuse, and a rendered prompt
// through DeepSeek-V3's tokenizer (tests/data/tokenizer/): every tag one special id.
#include <gtest/gtest.h>

#include <algorithm>

#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "test_util.h"
#include "util/error.h"

using namespace seek;

namespace {

const std::string BOS = "<｜begin▁of▁sentence｜>";
const std::string EOS = "<｜end▁of▁sentence｜>";
const std::string USER = "<｜User｜>";
const std::string ASSIST = "<｜Assistant｜>";

}  // namespace

TEST(ChatTemplate, FullWidthCharacters) {
  // ｜ is U+FF5C (EF BD 9C), ▁ is U+2581 (E2 96 81): not ASCII '|' and '_'.
  EXPECT_EQ(USER, "<\xEF\xBD\x9CUser\xEF\xBD\x9C>");
  EXPECT_EQ(BOS, "<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>");
  EXPECT_EQ(chat_tokens(ChatStyle::DeepSeekV3).bos, BOS);
  EXPECT_EQ(chat_tokens(ChatStyle::DeepSeekV3).eos, EOS);
}

TEST(ChatTemplate, V3SingleUserTurn) {
  std::vector<ChatMessage> m{{"user", "Hi!"}};
  EXPECT_EQ(render_chat(ChatStyle::DeepSeekV3, m, {}), BOS + USER + "Hi!" + ASSIST);
  EXPECT_EQ(render_chat(ChatStyle::DeepSeekV3, m, {.add_generation_prompt = false}), BOS + USER + "Hi!");
}

TEST(ChatTemplate, V3SystemAndHistory) {
  std::vector<ChatMessage> m{{"system", "Be brief."},
                             {"user", "2+2?"},
                             {"assistant", "4"},
                             {"user", "And 3+3?"}};
  EXPECT_EQ(render_chat(ChatStyle::DeepSeekV3, m, {}),
            "<｜begin▁of▁sentence｜>Be brief.<｜User｜>2+2?<｜Assistant｜>4<｜end▁of▁sentence｜>"
            "<｜User｜>And 3+3?<｜Assistant｜>");
}

TEST(ChatTemplate, V3SeveralSystemMessagesJoined) {
  std::vector<ChatMessage> m{{"system", "A"}, {"system", "B"}, {"user", "q"}};
  EXPECT_EQ(render_chat(ChatStyle::DeepSeekV3, m, {}), BOS + "A\n\nB" + USER + "q" + ASSIST);
  // A system message alone: BOS, its text, the generation prompt.
  EXPECT_EQ(render_chat(ChatStyle::DeepSeekV3, {{"system", "S"}}, {}), BOS + "S" + ASSIST);
}

TEST(ChatTemplate, R1ThinkPrefill) {
  std::vector<ChatMessage> m{{"user", "Why?"}};
  EXPECT_EQ(render_chat(ChatStyle::DeepSeekV3, m, {.think = true}),
            "<｜begin▁of▁sentence｜><｜User｜>Why?<｜Assistant｜><think>\n");
}

TEST(ChatTemplate, HistoryReasoningStripped) {
  std::vector<ChatMessage> m{{"user", "1+1?"},
                             {"assistant", "<think>\nadd them\n</think>\n\n2"},
                             {"user", "again"},
                             {"assistant", "a</think>b</think>c"},  // after the LAST </think>
                             {"user", "once more"},
                             {"assistant", "no tags at all"}};
  EXPECT_EQ(render_chat(ChatStyle::DeepSeekV3, m, {.think = true}),
            BOS + USER + "1+1?" + ASSIST + "\n\n2" + EOS + USER + "again" + ASSIST + "c" + EOS + USER +
                "once more" + ASSIST + "no tags at all" + EOS + ASSIST + "<think>\n");
  EXPECT_EQ(strip_history_reasoning("x</think>"), "");
  EXPECT_EQ(strip_history_reasoning("<think>unfinished"), "<think>unfinished");
}

TEST(ChatTemplate, SeekTiny) {
  std::vector<ChatMessage> m{{"system", "S"}, {"user", "u1"}, {"assistant", "<think>r</think>a1"}, {"user", "u2"}};
  EXPECT_EQ(render_chat(ChatStyle::SeekTiny, m, {}),
            "<|bos|><|system|>S<|user|>u1<|assistant|>a1<|eos|><|user|>u2<|assistant|>");
  EXPECT_EQ(render_chat(ChatStyle::SeekTiny, {{"user", "u"}}, {.think = true}),
            "<|bos|><|user|>u<|assistant|><think>\n");
  EXPECT_EQ(render_chat(ChatStyle::SeekTiny, {{"user", "u"}}, {.add_generation_prompt = false}),
            "<|bos|><|user|>u");
}

TEST(ChatTemplate, Refused) {
  ChatOptions o;
  EXPECT_THROW(render_chat(ChatStyle::DeepSeekV3, {}, o), Error);
  EXPECT_THROW(render_chat(ChatStyle::DeepSeekV3, {{"tool", "x"}}, o), Error);
  EXPECT_THROW(render_chat(ChatStyle::SeekTiny, {{"User", "x"}}, o), Error);  // roles are lower case
  EXPECT_THROW(render_chat(ChatStyle::DeepSeekV3, {{"user", "a"}, {"system", "late"}}, o), Error);
  EXPECT_THROW(render_chat(ChatStyle::DeepSeekV3, {{"user", "a"}}, {.add_generation_prompt = false, .think = true}),
               Error);
  try {
    render_chat(ChatStyle::DeepSeekV3, {{"user", "a"}, {"robot", "b"}}, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("message 1: role \"robot\""), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, DetectStyle) {
  auto has = [](std::vector<std::string> toks) {
    return [toks](std::string_view s) { return std::find(toks.begin(), toks.end(), s) != toks.end(); };
  };
  EXPECT_EQ(detect_chat_style(has({BOS, USER, ASSIST})), ChatStyle::DeepSeekV3);
  EXPECT_EQ(detect_chat_style(has({"<|bos|>", "<|user|>"})), ChatStyle::SeekTiny);
  EXPECT_THROW(detect_chat_style(has({"<s>", "[INST]"})), Error);
}

TEST(ChatTemplate, V3PromptThroughTheTokenizer) {
  const Tokenizer tok = Tokenizer::load(test::data_path("data/tokenizer"));
  EXPECT_EQ(detect_chat_style([&](std::string_view s) { return tok.token_id(s) >= 0; }), ChatStyle::DeepSeekV3);
  const int32_t bos = 0, eos = 1, user = 128803, assistant = 128804;  // tokenizer.json added_tokens
  EXPECT_EQ(tok.token_id(BOS), bos);
  EXPECT_EQ(tok.token_id(EOS), eos);
  EXPECT_EQ(tok.token_id(USER), user);
  EXPECT_EQ(tok.token_id(ASSIST), assistant);
  EXPECT_EQ(tok.bos_id(), bos);

  std::vector<ChatMessage> m{{"system", "Be brief."},
                             {"user", "Hi there"},
                             {"assistant", "<think>\nhmm\n</think>\n\nHello!"},
                             {"user", "Bye"}};
  const std::string prompt = render_chat(ChatStyle::DeepSeekV3, m, {});
  // The text carries its BOS: encode without adding another one.
  std::vector<int32_t> ids = tok.encode(prompt);
  std::vector<int32_t> want{bos};
  auto add = [&](std::vector<int32_t> v) { want.insert(want.end(), v.begin(), v.end()); };
  add(tok.encode("Be brief."));
  want.push_back(user);
  add(tok.encode("Hi there"));
  want.push_back(assistant);
  add(tok.encode("\n\nHello!"));
  want.push_back(eos);
  want.push_back(user);
  add(tok.encode("Bye"));
  want.push_back(assistant);
  EXPECT_EQ(ids, want);
  EXPECT_EQ(tok.decode(ids), prompt);
}
