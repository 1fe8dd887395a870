// quantize.h — a model's weights re-stored in GGUF's block formats (seek quantize), with llama.cpp's
// choice of which tensor gets which type, so that `seek quantize --type q4_k_m` writes the file
// `llama-quantize ... Q4_K_M` writes from the same weights (checked block for block on the fixtures of
// tests/data/gguf-models).
//
// Types:
//   q8_0, q4_0, q5_0, q5_k, q6_k
//                     every matrix but the router in that type (llama.cpp's "pure" choice for the same name);
//   q4_k_m, q5_k_m    llama.cpp's Q4_K_M / Q5_K_M mixtures: Q4_K / Q5_K, with Q6_K for the output head (the
//                     embedding when it is tied) and, in the layers where llama.cpp's use_more_bits(layer,
//                     n_layers) holds (the first and last eighth, and every third in between), attn_v and every
//                     ffn_down (dense, expert and shared).
// The router (mlp.gate) and every vector stay f32. A matrix whose width is not a multiple of its type's block
// falls back as llama.cpp's does: Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0; to f32 when even a block of 32
// does not divide it (llama.cpp: f16). MLA's kv_b is written split and in f32 (model/gguf_model.h).
// The quantized tensors are computed from the f32 value of each source weight (BF16, F16, FP8 with its
// block scales, or a block format: re-quantizing a quantized file loses more than quantizing once).
//
// Not done: importance matrices; llama.cpp's special cases for 70B models and 8-expert models.
#pragma once
#include <memory>
#include <string>

#include "model/config.h"
#include "model/safetensors.h"

namespace seek {

enum class QuantMix { Q8_0, Q4_0, Q5_0, Q5_K, Q6_K, Q4_K_M, Q5_K_M };
// "q8_0", "q4_0", "q5_0", "q5_k", "q6_k", "q4_k_m", "q5_k_m" (case-insensitive); throws Error naming the flag
// otherwise.
QuantMix parse_quant_mix(const std::string& s);

// The type llama.cpp's mixture gives a Hugging Face tensor name (before fallbacks), or F32 for tensors
// kept in f32.
DType quant_type_for(QuantMix mix, const Config& c, const std::string& hf_name, int64_t rows, int64_t cols);

// Every tensor the config calls for, quantized (shows progress on stderr when `progress`).
std::unique_ptr<Checkpoint> quantize_checkpoint(const Config& c, const Checkpoint& src, QuantMix mix,
                                                bool progress = false);

}  // namespace seek
