// random_checkpoint.h — writes a model directory with random weights in the real HF layout
// (config.json + safetensors, optionally sharded with an index, optionally FP8 block-scaled), so that
// tests, the bench and the built-in demo need no download.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "tensor/dtype.h"

namespace seek {

struct RandomCheckpointOptions {
  DType dtype = DType::BF16;  // projections; F8_E4M3 stores them block-scaled and the rest in BF16
  uint64_t seed = 1;
  int shards = 1;             // > 1 writes model-0000i-of-0000n.safetensors + model.safetensors.index.json
};

// Validates config_json (parse_config), then writes dir/config.json and the weights. Values: linear
// weights uniform with std 1/sqrt(in_features), embeddings std 1, norm weights near 1, routing bias
// small. Deterministic in the seed, whatever the thread count. Returns the bytes of tensor data.
size_t write_random_checkpoint(const std::string& dir, const nlohmann::json& config_json,
                               const RandomCheckpointOptions& opt);

}  // namespace seek
