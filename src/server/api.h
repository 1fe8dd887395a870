// api.h — the OpenAI/DeepSeek request schema: parsing and validating request bodies, and the JSON
// pieces of responses (errors, usage). Pure functions, no HTTP and no model: the server calls them, the
// unit tests and the parser fuzz test call them directly.
//
// What is accepted (everything else in a body is ignored, as OpenAI's API does with unknown fields):
//   chat:        model, messages (role system | developer (= system) | user | assistant; content a
//                string, null, or an array of {"type": "text", "text"} parts; `reasoning_content` in a
//                message is refused with 400, as DeepSeek does), stream, stream_options.include_usage,
//                max_tokens / max_completion_tokens, temperature [0, 2], top_p (0, 1], stop (a string or
//                up to 16 strings), seed, n, frequency_penalty / presence_penalty [-2, 2], logit_bias,
//                logprobs (bool) + top_logprobs [0, 20], thinking {"type": "enabled" | "disabled"}
//                (DeepSeek's switch for reasoning), and seek's own draft_tokens [0, 8] and
//                min_draft_prob [0, 1] (speculative decoding with the model's MTP module; absent: the
//                server's defaults, `seek serve --draft`; the output's law and the usage are the same
//                either way).
//   completions: model, prompt (a string, an array of one string, or an array of token ids), the same
//                sampling fields, logprobs as an integer [0, 5] (the legacy API), echo false, suffix null.
// Fields a request leaves out take the model's generation_config.json (ApiLimits::sampling).
// What `content` holds for seek's own models: the text after the reasoning, ending with the R1-Zero
// template's "<answer>…</answer>", tags included (a client can check the answer; the chat page drops
// them for display).
// Every refusal is an ApiError with the HTTP status and the offending parameter.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "model/chat_template.h"

namespace seek {

struct ApiError : std::runtime_error {
  int status;
  std::string type, param, code;
  ApiError(int status_, std::string message, std::string type_ = "invalid_request_error", std::string param_ = {},
           std::string code_ = {})
      : std::runtime_error(std::move(message)), status(status_), type(std::move(type_)), param(std::move(param_)),
        code(std::move(code_)) {}
};

// {"error": {"message", "type", "param", "code"}} (param and code null when empty).
nlohmann::json error_json(const ApiError& e);

struct ApiLimits {
  size_t max_body_bytes = size_t(4) << 20;
  int64_t max_prompt_tokens = 1 << 20;  // further capped by the model's context
  int64_t max_tokens = 1 << 16;         // largest max_tokens a request may ask for
  int64_t default_max_tokens = 4096;    // when a request gives none (capped by the room left)
  int64_t max_n = 8;
  int64_t max_messages = 4096;
  int64_t max_stop = 16;
  // A request's sampling where it gives none, and for what the API cannot set (top_k, repetition
  // penalty): the model's generation_config.json (engine/generation_config.h) or seek's defaults.
  SamplingParams sampling;
};

struct ApiRequest {
  bool chat = true;
  std::string model;
  std::vector<ChatMessage> messages;  // chat
  std::string prompt;                 // completions, text prompt
  std::vector<int32_t> prompt_ids;    // completions, token-id prompt (prompt_is_ids)
  bool prompt_is_ids = false;
  bool stream = false, include_usage = false;
  std::optional<int64_t> max_tokens;
  SamplingParams sampling;  // temperature, top_p, penalties, logit_bias, seed
  bool seed_given = false;
  std::vector<std::string> stop;
  int64_t n = 1;
  int top_logprobs = -1;  // -1: no logprobs
  std::optional<bool> thinking;
  // seek's speculative decoding (engine/decode.h): MTP drafts per step and the drafter's confidence gate;
  // absent: the server's defaults.
  std::optional<int64_t> draft_tokens;
  std::optional<float> min_draft_prob;
};

// Parse and validate a body (throws ApiError 400 on malformed JSON, a wrong type or a value out of range).
ApiRequest parse_chat_request(const std::string& body, const ApiLimits& limits);
ApiRequest parse_completion_request(const std::string& body, const ApiLimits& limits);

// DeepSeek's usage object, with OpenAI's prompt_tokens_details.cached_tokens beside it.
nlohmann::json usage_json(int64_t prompt_tokens, int64_t cache_hit_tokens, int64_t completion_tokens,
                          int64_t reasoning_tokens);

// JSON text that never throws on invalid UTF-8 (bytes of a partial character become U+FFFD).
std::string dump_json(const nlohmann::json& j);

}  // namespace seek
