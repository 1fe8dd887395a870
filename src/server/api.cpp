// api.cpp — see api.h.
#include "server/api.h"

#include <cmath>
#include <limits>

#include "engine/decode.h"

namespace seek {

using nlohmann::json;

json error_json(const ApiError& e) {
  return {{"error",
           {{"message", e.what()},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json usage_json(int64_t prompt, int64_t hit, int64_t completion, int64_t reasoning) {
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_cache_hit_tokens", hit},
          {"prompt_cache_miss_tokens", prompt - hit},
          {"prompt_tokens_details", {{"cached_tokens", hit}}},
          {"completion_tokens_details", {{"reasoning_tokens", reasoning}}}};
}

namespace {

std::string strfmt_range(int64_t lo, int64_t hi) {
  return "must be between " + std::to_string(lo) + " and " + std::to_string(hi);
}

[[noreturn]] void bad(const std::string& param, const std::string& msg) {
  throw ApiError(400, param.empty() ? msg : param + ": " + msg, "invalid_request_error", param, "invalid_value");
}

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "a number";
  }
}

[[noreturn]] void wrong_type(const std::string& param, const json& v, const char* want) {
  throw ApiError(400, param + ": expected " + want + ", got " + type_name(v), "invalid_request_error", param,
                 "invalid_type");
}

// A field that is absent or null gives nullptr.
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

double number(const json& body, const char* name, double lo, double hi, double dflt) {
  const json* v = field(body, name);
  if (!v) return dflt;
  if (!v->is_number()) wrong_type(name, *v, "a number");
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) bad(name, "must be between " + json(lo).dump() + " and " + json(hi).dump());
  return x;
}

std::optional<int64_t> integer(const json& body, const char* name, int64_t lo, int64_t hi) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (!(std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15)) wrong_type(name, *v, "an integer");
    const int64_t x = int64_t(d);
    if (x < lo || x > hi) bad(name, strfmt_range(lo, hi));
    return x;
  }
  if (!v->is_number_integer()) wrong_type(name, *v, "an integer");
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    bad(name, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) bad(name, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return x;
}

bool boolean(const json& body, const char* name, bool dflt) {
  const json* v = field(body, name);
  if (!v) return dflt;
  if (!v->is_boolean()) wrong_type(name, *v, "a boolean");
  return v->get<bool>();
}

json parse_body(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw ApiError(400, std::string("the body is not valid JSON: ") + e.what(), "invalid_request_error", "",
                   "invalid_json");
  }
  if (!j.is_object()) throw ApiError(400, "the body must be a JSON object", "invalid_request_error", "", "invalid_json");
  return j;
}

// Fields shared by chat and completions.
void parse_common(const json& j, ApiRequest& r, const ApiLimits& lim) {
  const json* model = field(j, "model");
  if (!model) throw ApiError(400, "model: required", "invalid_request_error", "model", "missing_required_parameter");
  if (!model->is_string()) wrong_type("model", *model, "a string");
  r.model = model->get<std::string>();
  r.stream = boolean(j, "stream", false);
  if (const json* so = field(j, "stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", *so, "an object");
    r.include_usage = boolean(*so, "include_usage", false);
  }
  auto mt = integer(j, "max_tokens", 1, lim.max_tokens);
  if (!mt) mt = integer(j, "max_completion_tokens", 1, lim.max_tokens);
  r.max_tokens = mt;
  r.sampling = lim.sampling;
  r.sampling.temperature = float(number(j, "temperature", 0, 2, lim.sampling.temperature));
  r.sampling.top_p = float(number(j, "top_p", 0, 1, lim.sampling.top_p));
  if (!(r.sampling.top_p > 0)) bad("top_p", "must be greater than 0");
  r.sampling.frequency_penalty = float(number(j, "frequency_penalty", -2, 2, 0));
  r.sampling.presence_penalty = float(number(j, "presence_penalty", -2, 2, 0));
  if (auto seed = integer(j, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max())) {
    r.sampling.seed = uint64_t(*seed);
    r.seed_given = true;
  }
  r.n = integer(j, "n", 1, lim.max_n).value_or(1);
  r.draft_tokens = integer(j, "draft_tokens", 0, SpeculativeParams::kMaxDraft);
  if (field(j, "min_draft_prob")) r.min_draft_prob = float(number(j, "min_draft_prob", 0, 1, 0));
  if (const json* stop = field(j, "stop")) {
    if (stop->is_string()) {
      r.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      if (int64_t(stop->size()) > lim.max_stop) bad("stop", "at most " + std::to_string(lim.max_stop) + " stop strings");
      for (const json& s : *stop) {
        if (!s.is_string()) wrong_type("stop", s, "a string or an array of strings");
        r.stop.push_back(s.get<std::string>());
      }
    } else {
      wrong_type("stop", *stop, "a string or an array of strings");
    }
    std::erase_if(r.stop, [](const std::string& s) { return s.empty(); });
  }
  if (const json* lb = field(j, "logit_bias")) {
    if (!lb->is_object()) wrong_type("logit_bias", *lb, "an object of token id -> bias");
    if (lb->size() > 1024) bad("logit_bias", "at most 1024 entries");
    for (auto it = lb->begin(); it != lb->end(); ++it) {
      char* end = nullptr;
      const long id = std::strtol(it.key().c_str(), &end, 10);
      if (it.key().empty() || *end || id < 0 || id > std::numeric_limits<int32_t>::max())
        bad("logit_bias", "keys must be token ids");
      if (!it.value().is_number()) wrong_type("logit_bias", it.value(), "a number");
      const double b = it.value().get<double>();
      if (!(b >= -100 && b <= 100)) bad("logit_bias", "biases must be between -100 and 100");
      r.sampling.logit_bias.push_back({int32_t(id), float(b)});
    }
  }
}

std::string message_text(const json& content, size_t i) {
  const std::string param = "messages[" + std::to_string(i) + "].content";
  if (content.is_null()) return {};
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) wrong_type(param, content, "a string or an array of text parts");
  std::string text;
  for (const json& part : content) {
    if (!part.is_object()) wrong_type(param, part, "a text part object");
    const json* type = field(part, "type");
    if (!type || !type->is_string() || type->get<std::string>() != "text")
      bad(param, "only parts of type \"text\" are supported");
    const json* t = field(part, "text");
    if (!t || !t->is_string()) bad(param, "a text part needs a string \"text\"");
    text += t->get<std::string>();
  }
  return text;
}

}  // namespace

ApiRequest parse_chat_request(const std::string& body, const ApiLimits& lim) {
  const json j = parse_body(body);
  ApiRequest r;
  r.chat = true;
  parse_common(j, r, lim);
  const json* msgs = field(j, "messages");
  if (!msgs) throw ApiError(400, "messages: required", "invalid_request_error", "messages", "missing_required_parameter");
  if (!msgs->is_array()) wrong_type("messages", *msgs, "an array");
  if (msgs->empty()) bad("messages", "must not be empty");
  if (int64_t(msgs->size()) > lim.max_messages) bad("messages", "at most " + std::to_string(lim.max_messages) + " messages");
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& m = (*msgs)[i];
    const std::string p = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) wrong_type(p, m, "an object");
    const json* role = field(m, "role");
    if (!role || !role->is_string()) bad(p + ".role", "required, a string");
    std::string rs = role->get<std::string>();
    if (rs == "developer") rs = "system";
    if (rs != "system" && rs != "user" && rs != "assistant")
      bad(p + ".role", "must be system, user or assistant (got \"" + rs + "\")");
    if (m.contains("reasoning_content") && !m["reasoning_content"].is_null())
      throw ApiError(400, p + ": reasoning_content must not be sent back in the input messages", "invalid_request_error",
                     p + ".reasoning_content", "invalid_request");
    const json* content = field(m, "content");
    if (!content && rs != "assistant") bad(p + ".content", "required");
    r.messages.push_back({rs, content ? message_text(*content, i) : std::string()});
  }
  if (field(j, "logprobs") && boolean(j, "logprobs", false)) r.top_logprobs = 0;
  if (auto k = integer(j, "top_logprobs", 0, 20)) {
    if (r.top_logprobs < 0) bad("top_logprobs", "needs logprobs: true");
    r.top_logprobs = int(*k);
  }
  if (const json* th = field(j, "thinking")) {
    if (!th->is_object()) wrong_type("thinking", *th, "an object");
    const json* t = field(*th, "type");
    if (!t || !t->is_string() || (t->get<std::string>() != "enabled" && t->get<std::string>() != "disabled"))
      bad("thinking.type", "must be \"enabled\" or \"disabled\"");
    r.thinking = t->get<std::string>() == "enabled";
  }
  return r;
}

ApiRequest parse_completion_request(const std::string& body, const ApiLimits& lim) {
  const json j = parse_body(body);
  ApiRequest r;
  r.chat = false;
  parse_common(j, r, lim);
  const json* p = field(j, "prompt");
  if (!p) throw ApiError(400, "prompt: required", "invalid_request_error", "prompt", "missing_required_parameter");
  if (p->is_string()) {
    r.prompt = p->get<std::string>();
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
    r.prompt = (*p)[0].get<std::string>();
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
    r.prompt_is_ids = true;
    for (const json& t : *p) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > std::numeric_limits<int32_t>::max())
        bad("prompt", "token ids must be non-negative integers");
      r.prompt_ids.push_back(int32_t(t.get<int64_t>()));
    }
  } else if (p->is_array()) {
    bad("prompt", "one prompt per request: a string, [string] or an array of token ids");
  } else {
    wrong_type("prompt", *p, "a string or an array of token ids");
  }
  if (auto k = integer(j, "logprobs", 0, 5)) r.top_logprobs = int(*k);
  if (boolean(j, "echo", false)) bad("echo", "echo is not supported");
  if (field(j, "suffix")) bad("suffix", "suffix is not supported");
  integer(j, "best_of", 1, 1);
  return r;
}

}  // namespace seek
