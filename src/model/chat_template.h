// chat_template.h — turns a conversation into prompt text, in the formats of DeepSeek-V3/R1 (and the
// R1-Distill students, whose tokenizers carry DeepSeek's tags), Qwen2.5 (ChatML), Llama 3, or seek's own.
//
// This is code, not a Jinja engine: each style is the behaviour of one known template, written out by
// hand, without tools or tool calls (the `tool` role is refused in every style).
//
// DeepSeekV3 follows the `chat_template` of DeepSeek-V3's tokenizer_config.json
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
// - User/assistant turns need not alternate (the template does not check it either).
//
// ChatML is Qwen2.5-Instruct's template (tokenizer_config.json of tests/data/tokenizer-qwen2/) without
// tools; Qwen25 is the same with that template's default system prompt:
//
//   [<|im_start|>system\n{system}<|im_end|>\n]<|im_start|>user\n{user}<|im_end|>\n
//   <|im_start|>assistant\n{reply}<|im_end|>\n...<|im_start|>assistant\n
//
// - A first message that is not a system message gets, in Qwen25 only, the system block
//   "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." in front. A system message
//   later in the conversation is rendered in place, as the template does. No BOS.
// - Assistant turns are kept verbatim (the template strips no reasoning).
//
// Llama3 is Llama 3's template (tokenizer_config.json of tests/data/tokenizer-llama3/):
//
//   <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content, trimmed}<|eot_id|>...
//   <|start_header_id|>assistant<|end_header_id|>\n\n
//
// - Every message, system ones included, in order; content has leading and trailing ASCII whitespace
//   removed (Jinja's `trim`, which also strips Unicode spaces). Llama 3.1-Instruct's own template
//   adds a "Cutting Knowledge Date" system block; this is the plain Llama 3 one.
//
// In all styles `think` appends "<think>\n" to the generation prompt, content is inserted verbatim (text
// that spells a special token is not escaped here), and a rendered text that starts with a BOS carries
// it already: tokenize it without adding another BOS.
//
// SeekTiny is the format of seek's own small models, whose special tokens are ASCII:
//   <|bos|><|system|>{system}<|user|>{user}<|assistant|>{reply}<|eos|>...<|assistant|>[<think>\n]
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace seek {

class Tokenizer;

struct ChatMessage {
  std::string role;  // system | user | assistant
  std::string content;
};

enum class ChatStyle { DeepSeekV3, SeekTiny, ChatML, Qwen25, Llama3 };

struct ChatOptions {
  bool add_generation_prompt = true;  // end with the assistant tag
  bool think = false;                 // R1: prefill "<think>\n" after the assistant tag (needs the above)
};

// The special strings of one style. For ChatML and Llama3, system / user / assistant are the whole
// header that opens such a turn ("<|im_start|>user\n") and eos is the end-of-turn token.
struct ChatTokens {
  std::string_view bos, eos, system, user, assistant;  // bos, system: empty where there is none
  std::string_view think_open, think_close;
};
const ChatTokens& chat_tokens(ChatStyle style);

// Renders messages into the prompt text. Throws Error for no messages, an unknown role, a system
// message after a user or assistant message (DeepSeekV3, SeekTiny), or `think` without
// `add_generation_prompt`.
std::string render_chat(ChatStyle style, const std::vector<ChatMessage>& msgs, const ChatOptions& opt);

// Picks the style. From chat_template (tokenizer_config.json's or the GGUF's), when given, by
// substrings: "<｜User｜>" DeepSeekV3, "<|start_header_id|>" Llama3, "<|im_start|>" Qwen25 if it also
// holds Qwen2.5's default system prompt, else ChatML, "<|user|>" SeekTiny. Otherwise (or when none of
// these occurs) from the tokens, `has_token(s)` saying whether `s` is a token of the tokenizer, in this
// order: "<｜User｜>" DeepSeekV3 (the R1-Distill students have it beside their base's tokens),
// "<|user|>" SeekTiny, "<|im_start|>" ChatML, "<|start_header_id|>" Llama3. Throws Error when nothing fits.
ChatStyle detect_chat_style(const std::function<bool(std::string_view)>& has_token, std::string_view chat_template = {});
// The same over a tokenizer's tokens and its chat_template().
ChatStyle detect_chat_style(const Tokenizer& tok);

// Token ids that end an assistant turn in this style: its end-of-turn token ("<|im_end|>", "<|eot_id|>",
// ...), the other end tokens of its family that the tokenizer has ("<|endoftext|>"; "<|end_of_text|>",
// "<|eom_id|>"), and the tokenizer's eos_id(); each once, those absent from the tokenizer left out.
std::vector<int32_t> chat_stop_ids(ChatStyle style, const Tokenizer& tok);

// Text of a past assistant turn as the template keeps it: what follows the last `close`, or all of it.
std::string_view strip_history_reasoning(std::string_view content, std::string_view close = "</think>");

}  // namespace seek
