// convert_cmd.cpp — `seek convert` (Hugging Face folder <-> GGUF file) and `seek quantize` (to GGUF's block
// formats). Thin: flags, the choice of reader and writer, and what is printed.
//
//   seek convert --to gguf IN_DIR|IN.gguf OUT.gguf       seek's models into llama.cpp (tokenizer included)
//   seek convert --to safetensors IN.gguf OUT_DIR        llama.cpp's files into a Hugging Face folder
//   seek quantize IN_DIR|IN.gguf OUT.gguf --type q8_0|q4_0|q5_0|q5_k|q6_k|q4_k_m|q5_k_m
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "model/gguf_model.h"
#include "model/quantize.h"
#include "model/weights.h"
#include "tensor/format.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace seek {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A model as a config and a checkpoint, from a Hugging Face folder or a GGUF file.
struct Source {
  Config config;
  json config_json;
  std::unique_ptr<Checkpoint> checkpoint;
  std::string tokenizer_dir;  // a folder holding tokenizer.json, or ""
  std::vector<std::pair<std::string, GgufValue>> gguf_tokenizer;  // a GGUF file's tokenizer.ggml.* keys
};

Source open_source(const std::string& in) {
  Source s;
  if (is_gguf_file(in)) {
    GgufModel g = load_gguf_model(in);
    s.config_json = gguf_config_json(*g.file);
    s.config = std::move(g.config);
    for (const auto& kv : g.file->metadata())
      if (kv.first.rfind("tokenizer.ggml.", 0) == 0) s.gguf_tokenizer.push_back(kv);
    s.checkpoint = std::move(g.checkpoint);
    return s;
  }
  if (!fs::is_directory(in)) throw Error(in + ": neither a GGUF file nor a model directory");
  s.config = load_config(in);
  s.checkpoint = std::make_unique<Checkpoint>(in);
  if (fs::exists(fs::path(in) / "tokenizer.json")) s.tokenizer_dir = in;
  return s;
}

void write_gguf_from(const Source& s, const Checkpoint& ckpt, const std::string& out, const std::string& name) {
  std::vector<std::pair<std::string, GgufValue>> tok = s.gguf_tokenizer;
  if (tok.empty() && !s.tokenizer_dir.empty()) tok = gguf_tokenizer_metadata(s.tokenizer_dir, s.config.vocab_size);
  if (tok.empty()) std::fprintf(stderr, "note: no tokenizer beside the model: the GGUF file has none (llama.cpp needs one)\n");
  write_gguf_model(out, s.config, ckpt, name, tok);
}

int cmd_convert(const std::string& to, const std::string& in, const std::string& out) {
  auto t0 = std::chrono::steady_clock::now();
  Source s = open_source(in);
  if (to == "gguf") {
    write_gguf_from(s, *s.checkpoint, out, fs::path(in).filename().string());
  } else if (to == "safetensors") {
    if (s.config_json.is_null()) throw Error(in + ": already a Hugging Face folder");
    if (!s.config.rope.freq_factors.empty())
      throw Error(in + ": tensor \"rope_freqs.weight\" (per-frequency rope factors) has no config.json form; "
                  "convert the model's Hugging Face folder instead");
    fs::create_directories(out);
    // Matrices keep F32/F16/BF16; block formats become f32 (safetensors has none of them).
    std::vector<TensorOut> tensors;
    std::vector<std::vector<float>> f32;
    for (const TensorSpec& spec : expected_tensors(s.config)) {
      const TensorInfo& t = s.checkpoint->get(spec.name);
      if (!dtype_is_block(t.dtype)) {
        tensors.push_back({spec.name, t.dtype, spec.shape, t.data});
        continue;
      }
      std::vector<float>& v = f32.emplace_back(size_t(t.numel()));
      mat_rows_to_f32(Mat{t.dtype, t.data, spec.shape[0], spec.shape[1]}, 0, spec.shape[0], v.data());
      tensors.push_back({spec.name, DType::F32, spec.shape, v.data()});
    }
    write_safetensors((fs::path(out) / "model.safetensors").string(), tensors);
    write_file_atomic((fs::path(out) / "config.json").string(), s.config_json.dump(2) + "\n");
    std::fprintf(stderr, "note: the GGUF tokenizer is not written as tokenizer.json (not supported yet)\n");
  } else {
    throw Error("--to " + to + ": expected gguf or safetensors");
  }
  std::fprintf(stderr, "wrote %s in %.1f s\n", out.c_str(), seconds_since(t0));
  return 0;
}

int cmd_quantize(const std::string& in, const std::string& out, const std::string& type) {
  const QuantMix mix = parse_quant_mix(type);
  auto t0 = std::chrono::steady_clock::now();
  Source s = open_source(in);
  auto q = quantize_checkpoint(s.config, *s.checkpoint, mix, true);
  write_gguf_from(s, *q, out, fs::path(in).filename().string());
  std::fprintf(stderr, "wrote %s (%.1f MB, %s) in %.1f s\n", out.c_str(), double(fs::file_size(out)) / 1e6,
               type.c_str(), seconds_since(t0));
  return 0;
}

}  // namespace

void register_convert_commands(CLI::App& app) {
  struct Flags {
    std::string to, in, out, type;
  };
  auto f = std::make_shared<Flags>();
  auto* cv = app.add_subcommand("convert", "Convert a model between a Hugging Face folder and a GGUF file");
  cv->add_option("--to", f->to, "gguf or safetensors")->required();
  cv->add_option("in", f->in, "a model directory or a .gguf file")->required();
  cv->add_option("out", f->out, "the .gguf file or the directory to write")->required();
  cv->callback([f] { cmd_convert(f->to, f->in, f->out); });

  auto g = std::make_shared<Flags>();
  auto* qz = app.add_subcommand("quantize", "Write a model's weights in GGUF's block formats (llama.cpp's mixtures)");
  qz->add_option("in", g->in, "a model directory or a .gguf file")->required();
  qz->add_option("out", g->out, "the .gguf file to write")->required();
  qz->add_option("--type", g->type, "q8_0, q4_0, q5_0, q5_k, q6_k, q4_k_m or q5_k_m")->required();
  qz->callback([g] { cmd_quantize(g->in, g->out, g->type); });
}

}  // namespace seek
