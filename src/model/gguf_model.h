// gguf_model.h — a GGUF model file (as llama.cpp writes them) as seek's model: the config from the
// metadata, the tensors under their Hugging Face names, and back (seek convert --to gguf).
//
// Architectures: `deepseek2` (DeepSeek-V2/V3/R1; both layouts llama.cpp has written: the single
// attn_kv_b, and the split 3-D attn_k_b / attn_v_b with head_count_kv 1 and the *_length_mla keys),
// `qwen2` and `llama` (the R1-Distill students).
//
// The mapping, and where it is not a plain rename:
// - the 3-D expert stacks ffn_{gate,up,down}_exps [E, N, K] become E views mlp.experts.e.*, zero-copy;
// - the split attn_k_b [H, C, nope] and attn_v_b [H, v, C] are put back into kv_b_proj [H·(nope+v), C]
//   in f32 (seek converts kv_b to f32 at load anyway, nn/mla.h), and kept as they are, viewed as
//   self_attn.k_b_proj [H·C, nope] and self_attn.v_b_proj [H·v, C] (names no Hugging Face file has), for
//   decode;
// - Llama's q and k rows: llama.cpp's converter interleaves each head's two rotary halves (Meta's
//   order, for its NORM rope); they are put back in Hugging Face's order (a row permutation: whole rows,
//   so a block-quantized matrix is permuted without requantizing), and permuted again on writing;
// - no output.weight means tied embeddings; exp_probs_b.bias is e_score_correction_bias, whose presence
//   with sigmoid gating makes the model deepseek_v3 (noaux_tc routing), else deepseek_v2.
// Hyperparameters are turned into a config.json object and checked by parse_config, so a GGUF file
// meets the same validation as a Hugging Face folder; the error names the GGUF file and key.
//
// Does not: read tokenizers (model/tokenizer.h builds one from the `tokenizer.ggml.*` keys).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/gguf.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"

namespace seek {

// True when `path` is a file that starts with the GGUF magic.
bool is_gguf_file(const std::string& path);

// The config.json object equivalent to a GGUF file's metadata (throws Error naming the file and key).
nlohmann::json gguf_config_json(const GgufFile& f);

// A GGUF model: the file, its config, and its tensors as a Checkpoint under Hugging Face names.
struct GgufModel {
  std::shared_ptr<const GgufFile> file;
  Config config;
  std::unique_ptr<Checkpoint> checkpoint;
};
GgufModel load_gguf_model(const std::string& path);

// Writes a model (its config and a checkpoint holding every tensor the config calls for) as a GGUF file
// of architecture deepseek2 (split MLA layout, as mainline llama.cpp reads it), qwen2 or llama. Matrices
// keep their stored format (F32, F16, BF16 or a block format); FP8 matrices are written as BF16. Vectors
// are written in F32. `extra` metadata (the tokenizer's keys) is appended.
void write_gguf_model(const std::string& path, const Config& cfg, const Checkpoint& ckpt, const std::string& name,
                      const std::vector<std::pair<std::string, GgufValue>>& extra = {});

// A GGUF file's tokenizer (tokenizer.ggml.*), as Tokenizer::from_parts takes it. Throws Error naming the
// file and key when the file has none or it is not a byte-level BPE ("gpt2") tokenizer.
TokenizerParts gguf_tokenizer_parts(const GgufFile& f);

// The tokenizer that goes with a model: `tokenizer_dir` when given; else, for a GGUF file, its own
// tokenizer.ggml.* keys; else the model directory's tokenizer.json. Errors say which was tried.
Tokenizer load_model_tokenizer(const std::string& model, const std::string& tokenizer_dir);

// The `tokenizer.ggml.*` keys for a Hugging Face byte-level BPE tokenizer (dir/tokenizer.json and, when
// present, dir/tokenizer_config.json), as llama.cpp's converter writes them: tokens by id (ids with no
// token become "[PAD<id>]", unused), token types (added special tokens control, other added tokens user
// defined), merges, the pre-tokenizer's llama.cpp name (deepseek-v3, qwen2, llama-bpe, smollm or gpt-2,
// recognized from its regexes; Error for another), bos/eos ids, and tokenizer_config.json's chat_template.
// `vocab_size` pads the list.
std::vector<std::pair<std::string, GgufValue>> gguf_tokenizer_metadata(const std::string& dir, int64_t vocab_size);

}  // namespace seek
