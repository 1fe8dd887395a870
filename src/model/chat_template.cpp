// chat_template.cpp — DeepSeek-V3/R1 and SeekTiny chat formats, written out by hand (see the header).
#include "model/chat_template.h"

#include "util/error.h"

namespace seek {

const ChatTokens& chat_tokens(ChatStyle style) {
  static const ChatTokens v3{"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "", "<｜User｜>",
                             "<｜Assistant｜>", "<think>", "</think>"};
  static const ChatTokens tiny{"<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>", "<think>",
                               "</think>"};
  return style == ChatStyle::DeepSeekV3 ? v3 : tiny;
}

std::string_view strip_history_reasoning(std::string_view content, std::string_view close) {
  size_t p = content.rfind(close);
  return p == std::string_view::npos ? content : content.substr(p + close.size());
}

std::string render_chat(ChatStyle style, const std::vector<ChatMessage>& msgs, const ChatOptions& opt) {
  if (msgs.empty()) throw Error("chat: no messages to render");
  if (opt.think && !opt.add_generation_prompt)
    throw Error("chat: think (prefill \"<think>\\n\") needs add_generation_prompt");
  const ChatTokens& t = chat_tokens(style);

  // System messages: a leading run, joined with a blank line (as the template's ns.system_prompt).
  size_t i = 0;
  std::string system;
  for (; i < msgs.size() && msgs[i].role == "system"; ++i) {
    if (i > 0) system += "\n\n";
    system += msgs[i].content;
  }
  const bool has_system = i > 0;

  std::string out(t.bos);
  if (has_system) {
    out += t.system;  // empty for DeepSeekV3
    out += system;
  }
  for (; i < msgs.size(); ++i) {
    const ChatMessage& m = msgs[i];
    if (m.role == "user") {
      out += t.user;
      out += m.content;
    } else if (m.role == "assistant") {
      out += t.assistant;
      out += strip_history_reasoning(m.content, t.think_close);
      out += t.eos;
    } else if (m.role == "system") {
      throw Error(strfmt("chat: message %zu: a system message must come before all user and assistant "
                         "messages",
                         i));
    } else {
      throw Error(strfmt("chat: message %zu: role \"%s\" is not one of system, user, assistant", i,
                         m.role.c_str()));
    }
  }
  if (opt.add_generation_prompt) {
    out += t.assistant;
    if (opt.think) {
      out += t.think_open;
      out += "\n";
    }
  }
  return out;
}

ChatStyle detect_chat_style(const std::function<bool(std::string_view)>& has_token) {
  if (has_token("<｜User｜>")) return ChatStyle::DeepSeekV3;
  if (has_token("<|user|>")) return ChatStyle::SeekTiny;
  throw Error("chat: the tokenizer has neither \"<｜User｜>\" (DeepSeek-V3) nor \"<|user|>\" (seek) as a "
              "token; no known chat format");
}

}  // namespace seek
