// json_file.h — a JSON file read whole, with errors that name the file.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace seek {

// The parsed contents of `path`; throws seek::Error "PATH: cannot open" or "PATH: not valid JSON: ...".
nlohmann::json read_json_file(const std::string& path);

}  // namespace seek
