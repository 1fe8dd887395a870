// json_file.cpp — see json_file.h.
#include "util/json_file.h"

#include <fstream>

#include "util/error.h"

namespace seek {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
}

}  // namespace seek
