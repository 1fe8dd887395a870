// chat_template.h — turns a conversation into prompt text, in DeepSeek-V3/R1's format or seek's own.
//
// This is code, not a Jinja engine: each style is the behaviour of one known template, written out by
// hand. DeepSeekV3 follows the `chat_template` of DeepSeek-V3's tokenizer_config.json
// (shared/fixtures/deepseek-v3-tokenizer/) plus the one R1 change:
//
//   <｜begin▁of▁sentence｜>{system}<｜User｜>{user}<｜Assistant｜>{reply}<｜end▁of▁sentence｜>...<｜Assistant｜>
//
// - The bars and the space mark are full width: `｜` U+FF5C and `▁` U+2581.
// - System messages must come first (one or several); their contents are joined with "\n\n" and placed
//   right after the BOS, with no tag of their own (DeepSeekV3) or after one `<|system|>` (SeekTiny).
//   The Jinja template would also collect a system message from the middle of a conversation and move
//   it to the front; we refuse that instead of silently reordering.
// - Past assistant turns lose their reasoning, as R1's template does: only the text after the last
//   `</think>` is kept, verbatim (the "\n\n" that usually follows `</think>` stays, as in R1).
// - The generation prompt is the assistant tag; with `think` (R1) it is followed by "<think>\n", so the
//   model's output starts inside the reasoning (see engine/reasoning.h, prompt_opened_think = true).
// - Tool calls and the `tool` role are not supported (the role is refused); user/assistant turns need
//   not alternate (the template does not check it either).
// - Content is inserted verbatim: text that spells a special token ("<｜User｜>") is not escaped here.
// - The rendered text already begins with the BOS token: tokenize it without adding another BOS.
//
// SeekTiny is the format of seek's own small models, whose special tokens are ASCII:
//   <|bos|><|system|>{system}<|user|>{user}<|assistant|>{reply}<|eos|>...<|assistant|>[<think>\n]
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace seek {

struct ChatMessage {
  std::string role;  // system | user | assistant
  std::string content;
};

enum class ChatStyle { DeepSeekV3, SeekTiny };

struct ChatOptions {
  bool add_generation_prompt = true;  // end with the assistant tag
  bool think = false;                 // R1: prefill "<think>\n" after the assistant tag (needs the above)
};

// The special strings of one style.
struct ChatTokens {
  std::string_view bos, eos, system, user, assistant;  // system is empty where there is no tag
  std::string_view think_open, think_close;
};
const ChatTokens& chat_tokens(ChatStyle style);

// Renders messages into the prompt text. Throws Error for no messages, an unknown role, a system
// message after a user or assistant message, or `think` without `add_generation_prompt`.
std::string render_chat(ChatStyle style, const std::vector<ChatMessage>& msgs, const ChatOptions& opt);

// Picks the style from a tokenizer's special tokens: DeepSeekV3 if "<｜User｜>" is one, SeekTiny if
// "<|user|>" is. `has_token(s)` says whether `s` is a (special) token of the tokenizer. Throws Error
// when neither is.
ChatStyle detect_chat_style(const std::function<bool(std::string_view)>& has_token);

// Text of a past assistant turn as the template keeps it: what follows the last `close`, or all of it.
std::string_view strip_history_reasoning(std::string_view content, std::string_view close = "</think>");

}  // namespace seek
