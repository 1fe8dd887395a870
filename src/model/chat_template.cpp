// chat_template.cpp — DeepSeek-V3/R1, ChatML (Qwen2.5), Llama 3 and SeekTiny chat formats, written out
// by hand (see the header).
#include "model/chat_template.h"

#include <algorithm>

#include "model/tokenizer.h"
#include "util/error.h"

namespace seek {

namespace {
constexpr std::string_view kQwenDefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

void check_role(const ChatMessage& m, size_t i) {
  if (m.role != "system" && m.role != "user" && m.role != "assistant")
    throw Error(strfmt("chat: message %zu: role \"%s\" is not one of system, user, assistant", i, m.role.c_str()));
}

// Jinja's trim over ASCII whitespace.
std::string_view trim(std::string_view s) {
  const char* ws = " \t\n\r\v\f";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// ChatML / Qwen25 / Llama3: every message in order under its own header.
std::string render_headed(ChatStyle style, const std::vector<ChatMessage>& msgs) {
  std::string out;
  if (style == ChatStyle::Llama3) {
    out = "<|begin_of_text|>";
    for (size_t i = 0; i < msgs.size(); ++i) {
      check_role(msgs[i], i);
      out += "<|start_header_id|>" + msgs[i].role + "<|end_header_id|>\n\n";
      out += trim(msgs[i].content);
      out += "<|eot_id|>";
    }
    return out;
  }
  if (style == ChatStyle::Qwen25 && msgs[0].role != "system") {
    out += "<|im_start|>system\n";
    out += kQwenDefaultSystem;
    out += "<|im_end|>\n";
  }
  for (size_t i = 0; i < msgs.size(); ++i) {
    check_role(msgs[i], i);
    out += "<|im_start|>" + msgs[i].role + "\n" + msgs[i].content + "<|im_end|>\n";
  }
  return out;
}
}  // namespace

const ChatTokens& chat_tokens(ChatStyle style) {
  static const ChatTokens v3{"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "", "<｜User｜>",
                             "<｜Assistant｜>", "<think>", "</think>"};
  static const ChatTokens tiny{"<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>", "<think>",
                               "</think>"};
  static const ChatTokens chatml{"", "<|im_end|>", "<|im_start|>system\n", "<|im_start|>user\n",
                                 "<|im_start|>assistant\n", "<think>", "</think>"};
  static const ChatTokens llama3{"<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>system<|end_header_id|>\n\n",
                                 "<|start_header_id|>user<|end_header_id|>\n\n",
                                 "<|start_header_id|>assistant<|end_header_id|>\n\n", "<think>", "</think>"};
  switch (style) {
    case ChatStyle::DeepSeekV3: return v3;
    case ChatStyle::SeekTiny: return tiny;
    case ChatStyle::ChatML:
    case ChatStyle::Qwen25: return chatml;
    case ChatStyle::Llama3: return llama3;
  }
  return v3;
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
  std::string out;
  if (style == ChatStyle::ChatML || style == ChatStyle::Qwen25 || style == ChatStyle::Llama3) {
    out = render_headed(style, msgs);
  } else {
    // System messages: a leading run, joined with a blank line (as the template's ns.system_prompt).
    size_t i = 0;
    std::string system;
    for (; i < msgs.size() && msgs[i].role == "system"; ++i) {
      if (i > 0) system += "\n\n";
      system += msgs[i].content;
    }
    out = t.bos;
    if (i > 0) {
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
        check_role(m, i);
      }
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

ChatStyle detect_chat_style(const std::function<bool(std::string_view)>& has_token, std::string_view chat_template) {
  auto in_template = [&](std::string_view s) { return chat_template.find(s) != std::string_view::npos; };
  if (in_template("<｜User｜>")) return ChatStyle::DeepSeekV3;
  if (in_template("<|start_header_id|>")) return ChatStyle::Llama3;
  if (in_template("<|im_start|>")) return in_template(kQwenDefaultSystem) ? ChatStyle::Qwen25 : ChatStyle::ChatML;
  if (in_template("<|user|>")) return ChatStyle::SeekTiny;
  if (has_token("<｜User｜>")) return ChatStyle::DeepSeekV3;
  if (has_token("<|user|>")) return ChatStyle::SeekTiny;
  if (has_token("<|im_start|>")) return ChatStyle::ChatML;
  if (has_token("<|start_header_id|>")) return ChatStyle::Llama3;
  throw Error("chat: no known chat format: the chat template and the tokens have none of \"<｜User｜>\" "
              "(DeepSeek-V3/R1), \"<|im_start|>\" (ChatML, Qwen2.5), \"<|start_header_id|>\" (Llama 3), "
              "\"<|user|>\" (seek)");
}

ChatStyle detect_chat_style(const Tokenizer& tok) {
  return detect_chat_style([&](std::string_view s) { return tok.token_id(s) >= 0; }, tok.chat_template());
}

std::vector<int32_t> chat_stop_ids(ChatStyle style, const Tokenizer& tok) {
  std::vector<std::string_view> names{chat_tokens(style).eos};
  if (style == ChatStyle::ChatML || style == ChatStyle::Qwen25) names.push_back("<|endoftext|>");
  if (style == ChatStyle::Llama3) {
    names.push_back("<|end_of_text|>");
    names.push_back("<|eom_id|>");
  }
  std::vector<int32_t> ids;
  auto add = [&](int32_t id) {
    if (id >= 0 && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  };
  for (std::string_view n : names) add(tok.token_id(n));
  add(tok.eos_id());
  return ids;
}

}  // namespace seek
