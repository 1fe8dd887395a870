// model_card.cpp — see model_card.h.
#include "model/model_card.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/json_file.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace seek {

namespace {
constexpr const char* kFile = "seek_model.json";

// "1.41M", "0.35M", "1.02B"
std::string count(int64_t n) {
  return n >= 1000000000 ? strfmt("%.2fB", double(n) / 1e9) : strfmt("%.2fM", double(n) / 1e6);
}
}  // namespace

std::optional<ModelCard> read_model_card(const std::string& dir) {
  const fs::path file = fs::path(dir) / kFile;
  if (!fs::is_directory(dir) || !fs::exists(file)) return std::nullopt;
  const json j = read_json_file(file.string());
  if (!j.is_object()) throw Error(file.string() + ": expected a JSON object");
  ModelCard c;
  for (auto [key, field] : {std::pair{"name", &c.name}, {"about", &c.about}, {"trained_on", &c.trained_on}, {"example", &c.example}}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_string()) throw Error(file.string() + ": " + key + " must be a string");
    *field = j[key].get<std::string>();
  }
  return c;
}

void write_model_card(const std::string& dir, const ModelCard& c) {
  const json j = {{"name", c.name}, {"about", c.about}, {"trained_on", c.trained_on}, {"example", c.example}};
  write_file_atomic((fs::path(dir) / kFile).string(), j.dump(2) + "\n");
}

std::string describe_model(const std::string& dir, const Config& cfg) {
  const ParamCount p = count_params(cfg);
  std::string size = count(p.total) + " parameters";
  if (cfg.n_routed_experts > 0) size += " (" + count(p.active) + " active per token)";
  const std::optional<ModelCard> card = read_model_card(dir);
  if (!card) return dir + " (" + cfg.model_type_name + ", " + size + ")";
  std::string s = (card->name.empty() ? fs::path(dir).filename().string() : card->name) + ": ";
  if (!card->about.empty()) s += card->about + ", ";
  s += size;
  if (!card->trained_on.empty()) s += ", trained on " + card->trained_on;
  if (!card->example.empty()) s += "; try \"" + card->example + "\"";
  return s;
}

}  // namespace seek
