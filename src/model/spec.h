// spec.h — the modules' hyperparameters (nn/) from a config: what each HF field means for the rotary
// table, the attention, the router and the blocks. The modules know nothing of config.json; this is
// where its semantics meet them.
#pragma once
#include "model/config.h"
#include "nn/transformer.h"

namespace seek {

// inv_freq and YaRN's cos/sin factor from rope_theta and rope_scaling, the pairing by model type
// (DeepSeek checkpoints rotate adjacent pairs, Qwen2 and Llama the two halves).
Rope rope_table(const Config& c);
// Block `layer` (0 .. L−1 the main blocks, L + k the MTP module k's block), with the model's rotary
// table (rope_table(c) when null).
BlockSpec block_spec(const Config& c, int64_t layer, std::shared_ptr<const Rope> rope = nullptr);
TransformerSpec transformer_spec(const Config& c);

}  // namespace seek
