// recipe_report.h — the report card of `seek recipe`: OUT/report.md (tables and plots, readable on
// GitHub), OUT/report.json (the same figures for machines) and OUT/plots/ (the SVGs it shows), from
// the files the stages left in OUT (eval-*.json, metrics.jsonl of each run, the stage records).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace seek {

// stages: {"<stage name>": {"command": ..., "seconds": ...}} in the order they ran.
// stages: {"<stage name>": {"command": ..., "seconds": ...}}; order: the names in the order they ran.
void write_recipe_report(const std::string& out, const std::string& preset, const nlohmann::json& stages,
                         const nlohmann::json& order);

}  // namespace seek
