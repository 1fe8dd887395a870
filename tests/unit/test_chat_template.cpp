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

// ChatML as Qwen2.5-Instruct's template renders it (tests/data/tokenizer-qwen2/tokenizer_config.json).
TEST(ChatTemplate, Qwen25AndChatML) {
  const std::string qsys = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n";
  std::vector<ChatMessage> m{{"user", "Hi"}, {"assistant", "<think>x</think>Hello"}, {"user", "Bye"}};
  const std::string turns = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>x</think>Hello<|im_end|>\n"
                            "<|im_start|>user\nBye<|im_end|>\n";
  EXPECT_EQ(render_chat(ChatStyle::Qwen25, m, {}), qsys + turns + "<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(ChatStyle::ChatML, m, {}), turns + "<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(ChatStyle::Qwen25, m, {.add_generation_prompt = false}), qsys + turns);
  EXPECT_EQ(render_chat(ChatStyle::Qwen25, {{"user", "q"}}, {.think = true}),
            qsys + "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n");
  // A first system message replaces the default; a later one is rendered in place.
  EXPECT_EQ(render_chat(ChatStyle::Qwen25, {{"system", "S"}, {"user", "u"}, {"system", "T"}}, {}),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nu<|im_end|>\n<|im_start|>system\nT<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_THROW(render_chat(ChatStyle::Qwen25, {{"tool", "x"}}, {}), Error);
  EXPECT_EQ(chat_tokens(ChatStyle::Qwen25).eos, "<|im_end|>");
}

// Llama 3's template (tests/data/tokenizer-llama3/tokenizer_config.json): content trimmed, BOS first.
TEST(ChatTemplate, Llama3) {
  std::vector<ChatMessage> m{{"system", "Be brief. "}, {"user", "\n Hi \n"}, {"assistant", "Hello"}, {"user", "Bye"}};
  EXPECT_EQ(render_chat(ChatStyle::Llama3, m, {}),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render_chat(ChatStyle::Llama3, {{"user", "q"}}, {.add_generation_prompt = false}),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nq<|eot_id|>");
  EXPECT_THROW(render_chat(ChatStyle::Llama3, {{"ipython", "x"}}, {}), Error);
  EXPECT_EQ(chat_tokens(ChatStyle::Llama3).eos, "<|eot_id|>");
}

TEST(ChatTemplate, DetectStyleFromTemplate) {
  auto none = [](std::string_view) { return false; };
  auto has = [](std::string_view s) { return s == "<｜User｜>" || s == "<|im_start|>" || s == "<|start_header_id|>"; };
  EXPECT_EQ(detect_chat_style(none, "{{'<｜User｜>' + message['content']}}"), ChatStyle::DeepSeekV3);
  EXPECT_EQ(detect_chat_style(none, "{{'<|start_header_id|>' + role}}"), ChatStyle::Llama3);
  EXPECT_EQ(detect_chat_style(none, "<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
            ChatStyle::Qwen25);
  EXPECT_EQ(detect_chat_style(none, "{{'<|im_start|>' + message.role}}"), ChatStyle::ChatML);
  // R1-Distill-Qwen: Qwen's tokens plus DeepSeek's; without a template DeepSeek's tags win.
  EXPECT_EQ(detect_chat_style(has), ChatStyle::DeepSeekV3);
  EXPECT_EQ(detect_chat_style([](std::string_view s) { return s == "<|im_start|>"; }), ChatStyle::ChatML);
  EXPECT_EQ(detect_chat_style([](std::string_view s) { return s == "<|start_header_id|>"; }), ChatStyle::Llama3);
  // An unknown template falls back to the tokens.
  EXPECT_EQ(detect_chat_style(has, "[INST] {{content}} [/INST]"), ChatStyle::DeepSeekV3);
  EXPECT_THROW(detect_chat_style(none, "[INST]"), Error);
}

TEST(ChatTemplate, StudentsPromptsThroughTheirTokenizers) {
  const Tokenizer qwen = Tokenizer::load(test::data_path("data/tokenizer-qwen2"));
  EXPECT_EQ(detect_chat_style(qwen), ChatStyle::Qwen25);  // from tokenizer_config.json's chat_template
  const std::string p = render_chat(ChatStyle::Qwen25, {{"user", "Hi"}}, {});
  std::vector<int32_t> ids = qwen.encode(p);
  const int32_t im_start = 151644, im_end = 151645;
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_start), 3);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_end), 2);
  EXPECT_EQ(qwen.decode(ids), p);
  EXPECT_EQ(chat_stop_ids(ChatStyle::Qwen25, qwen), (std::vector<int32_t>{im_end, 151643}));

  const Tokenizer llama = Tokenizer::load(test::data_path("data/tokenizer-llama3"));
  EXPECT_EQ(detect_chat_style(llama), ChatStyle::Llama3);
  const std::string q = render_chat(ChatStyle::Llama3, {{"user", "Hi"}}, {});
  ids = llama.encode(q);
  EXPECT_EQ(ids.front(), 128000);  // <|begin_of_text|>, written by the template: no add_bos
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 128006), 2);  // <|start_header_id|>
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 128009), 1);  // <|eot_id|>
  EXPECT_EQ(llama.decode(ids), q);
  EXPECT_EQ(chat_stop_ids(ChatStyle::Llama3, llama), (std::vector<int32_t>{128009, 128001}));  // no <|eom_id|> here

  // DeepSeek-V3's tokenizer: its template names "<｜User｜>".
  const Tokenizer v3 = Tokenizer::load(test::data_path("data/tokenizer"));
  EXPECT_EQ(detect_chat_style(v3), ChatStyle::DeepSeekV3);
  EXPECT_EQ(chat_stop_ids(ChatStyle::DeepSeekV3, v3), (std::vector<int32_t>{1}));
}
