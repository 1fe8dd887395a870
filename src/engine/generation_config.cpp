// generation_config.cpp — see generation_config.h.
#include "engine/generation_config.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/json_file.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace seek {

GenerationDefaults read_generation_config(const std::string& model_path) {
  GenerationDefaults d;
  const fs::path file = fs::path(model_path) / "generation_config.json";
  if (!fs::is_directory(model_path) || !fs::exists(file)) return d;
  d.source = file.string();
  const json j = read_json_file(d.source);
  if (!j.is_object()) throw Error(d.source + ": expected a JSON object");
  auto given = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  auto number = [&](const char* key, double lo, double hi, bool lo_open) -> std::optional<double> {
    if (!given(key)) return std::nullopt;
    if (!j[key].is_number()) throw Error(d.source + ": " + key + " must be a number");
    const double v = j[key].get<double>();
    if (!(lo_open ? v > lo : v >= lo) || !(v <= hi))
      throw Error(strfmt("%s: %s = %g is out of range (%s%g to %g)", d.source.c_str(), key, v, lo_open ? "above " : "", lo, hi));
    return v;
  };
  auto integer = [&](const json& v, const char* key) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0) throw Error(d.source + ": " + key + " must be a non-negative integer");
    return v.get<int64_t>();
  };
  if (auto t = number("temperature", 0, 100, false)) d.sampling.temperature = float(*t);
  if (auto p = number("top_p", 0, 1, true)) d.sampling.top_p = float(*p);
  if (auto r = number("repetition_penalty", 0, 100, true)) d.sampling.repetition_penalty = float(*r);
  if (given("top_k")) d.sampling.top_k = integer(j["top_k"], "top_k");
  if (given("max_new_tokens")) {
    d.max_new_tokens = integer(j["max_new_tokens"], "max_new_tokens");
    if (*d.max_new_tokens < 1) throw Error(d.source + ": max_new_tokens must be at least 1");
  }
  if (given("do_sample")) {
    if (!j["do_sample"].is_boolean()) throw Error(d.source + ": do_sample must be true or false");
    if (!j["do_sample"].get<bool>()) d.sampling.temperature = 0;  // greedy
  }
  if (given("eos_token_id")) {
    const json& e = j["eos_token_id"];
    if (e.is_array()) {
      for (const json& id : e) d.eos_ids.push_back(int32_t(integer(id, "eos_token_id")));
    } else {
      d.eos_ids.push_back(int32_t(integer(e, "eos_token_id")));
    }
  }
  return d;
}

}  // namespace seek
