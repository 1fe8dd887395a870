// random_checkpoint.cpp — see random_checkpoint.h.
#include "model/random_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "tensor/backend.h"
#include "util/error.h"

namespace seek {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Counter-based generator: value i of stream s depends only on (seed, s, i), so threads can fill
// any range in any order and the file is the same.
inline uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
inline float uniform_pm1(uint64_t seed, uint64_t stream, uint64_t i) {  // in [-1, 1)
  uint64_t r = splitmix(splitmix(seed * 0x100000001b3ull + stream) + i);
  return float(double(r >> 40) * (2.0 / double(1ull << 24)) - 1.0);
}

void fill(float* dst, int64_t n, uint64_t seed, uint64_t stream, float center, float halfwidth) {
  parallel_for(n, 2, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dst[i] = center + halfwidth * uniform_pm1(seed, stream, uint64_t(i));
  });
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

bool ends_with(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

size_t write_random_checkpoint(const std::string& dir, const json& config_json, const RandomCheckpointOptions& opt) {
  json cj = config_json;
  const bool fp8 = opt.dtype == DType::F8_E4M3;
  if (fp8 && !cj.contains("quantization_config"))
    cj["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"activation_scheme", "dynamic"},
                                 {"weight_block_size", {128, 128}}};
  if (!fp8) cj.erase("quantization_config");
  cj["torch_dtype"] = opt.dtype == DType::F32 ? "float32" : opt.dtype == DType::F16 ? "float16" : "bfloat16";
  const Config cfg = parse_config(cj, "config");
  if (opt.shards < 1) throw Error("write_random_checkpoint: shards must be >= 1");
  fs::create_directories(dir);

  const DType dense = fp8 ? DType::BF16 : opt.dtype;  // what non-FP8 tensors are stored as
  const int64_t B = cfg.fp8_block;

  // The tensor list, FP8 scales beside their weights.
  struct Item {
    TensorMeta meta;
    size_t spec;     // index into specs
    bool is_scale;
  };
  std::vector<TensorSpec> specs = expected_tensors(cfg);
  std::vector<Item> items;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = specs[i];
    const bool bias = ends_with(s.name, "e_score_correction_bias");
    DType dt = bias ? DType::F32 : (fp8 && s.linear ? DType::F8_E4M3 : dense);
    items.push_back({{s.name, dt, s.shape}, i, false});
    if (dt == DType::F8_E4M3)
      items.push_back({{s.name + "_scale_inv", DType::F32, {(s.shape[0] + B - 1) / B, (s.shape[1] + B - 1) / B}}, i, true});
  }

  std::vector<float> f32;     // the current tensor in f32
  std::vector<uint8_t> bytes; // the current tensor as stored
  std::vector<float> scales;  // FP8 scales of the current weight
  size_t total = 0;
  auto produce = [&](const Item& it) -> const void* {
    const TensorSpec& s = specs[it.spec];
    if (it.is_scale) return scales.data();  // computed with its weight just before
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    f32.resize(size_t(n));
    const uint64_t stream = fnv1a(s.name);
    if (s.shape.size() == 1) {
      if (ends_with(s.name, "e_score_correction_bias")) fill(f32.data(), n, opt.seed, stream, 0.f, 0.05f);
      else if (ends_with(s.name, ".bias")) fill(f32.data(), n, opt.seed, stream, 0.f, 0.1f);
      else fill(f32.data(), n, opt.seed, stream, 1.f, 0.1f);  // norm weights
    } else {
      // embeddings: std 1; projections: std 1/sqrt(in). Uniform on [-a, a] has std a/sqrt(3).
      const bool embed = !s.linear && (ends_with(s.name, "embed_tokens.weight"));
      const float stdev = embed ? 1.f : 1.f / std::sqrt(float(s.shape[1]));
      fill(f32.data(), n, opt.seed, stream, 0.f, stdev * std::sqrt(3.f));
    }
    const DType dt = it.meta.dtype;
    bytes.resize(size_t(n) * dtype_size(dt));
    if (dt == DType::F32) {
      std::memcpy(bytes.data(), f32.data(), size_t(n) * 4);
    } else if (dt == DType::BF16 || dt == DType::F16) {
      auto* o = reinterpret_cast<uint16_t*>(bytes.data());
      parallel_for(n, 2, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) o[i] = dt == DType::BF16 ? f32_to_bf16(f32[size_t(i)]) : f32_to_f16(f32[size_t(i)]);
      });
    } else {
      // FP8 e4m3 per 128×128 block: scale = amax / 448, stored value = w / scale.
      const int64_t N = s.shape[0], K = s.shape[1], nb = (K + B - 1) / B;
      scales.assign(size_t(((N + B - 1) / B) * nb), 0.f);
      for (int64_t bi = 0; bi < (N + B - 1) / B; ++bi)
        for (int64_t bj = 0; bj < nb; ++bj) {
          float amax = 0.f;
          for (int64_t r = bi * B; r < std::min(N, (bi + 1) * B); ++r)
            for (int64_t c = bj * B; c < std::min(K, (bj + 1) * B); ++c) amax = std::max(amax, std::fabs(f32[size_t(r * K + c)]));
          const float scale = amax > 0 ? amax / 448.f : 1.f;
          scales[size_t(bi * nb + bj)] = scale;
          for (int64_t r = bi * B; r < std::min(N, (bi + 1) * B); ++r)
            for (int64_t c = bj * B; c < std::min(K, (bj + 1) * B); ++c)
              bytes[size_t(r * K + c)] = f32_to_f8e4m3(f32[size_t(r * K + c)] / scale);
        }
    }
    return bytes.data();
  };

  // Split into shards of roughly equal bytes, keeping a weight and its scales together.
  const int n_shards = opt.shards;
  std::vector<std::vector<size_t>> shard_items(static_cast<size_t>(n_shards));
  size_t all = 0;
  for (const Item& it : items) {
    size_t n = dtype_size(it.meta.dtype);
    for (int64_t d : it.meta.shape) n *= size_t(d);
    all += n;
  }
  size_t acc = 0, shard = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    size_t n = dtype_size(items[i].meta.dtype);
    for (int64_t d : items[i].meta.shape) n *= size_t(d);
    // A scale tensor follows its weight into the same shard.
    if (!items[i].is_scale) shard = std::min<size_t>(size_t(n_shards) - 1, acc * size_t(n_shards) / std::max<size_t>(all, 1));
    shard_items[shard].push_back(i);
    acc += n;
    total += n;
  }
  json weight_map = json::object();
  for (int s = 0; s < n_shards; ++s) {
    std::string file = n_shards == 1 ? "model.safetensors"
                                     : strfmt("model-%05d-of-%05d.safetensors", s + 1, n_shards);
    std::vector<TensorMeta> metas;
    for (size_t i : shard_items[size_t(s)]) {
      metas.push_back(items[i].meta);
      weight_map[items[i].meta.name] = file;
    }
    write_safetensors_streamed((fs::path(dir) / file).string(), metas,
                               [&](size_t j) { return produce(items[shard_items[size_t(s)][j]]); },
                               {{"format", "pt"}});
  }
  if (n_shards > 1) {
    json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_file_atomic((fs::path(dir) / "model.safetensors.index.json").string(), index.dump(2) + "\n");
  }
  write_file_atomic((fs::path(dir) / "config.json").string(), cj.dump(2) + "\n");
  return total;
}

}  // namespace seek
