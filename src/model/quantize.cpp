// quantize.cpp — see quantize.h.
#include "model/quantize.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>

#include "model/weights.h"
#include "tensor/format.h"
#include "tensor/quant.h"
#include "util/error.h"
#include "util/progress.h"

namespace seek {

namespace {

// llama.cpp's use_more_bits: the first and last eighth of the layers, and every third one between.
bool use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

int64_t layer_of(const std::string& name) {
  if (name.rfind("model.layers.", 0) != 0) return -1;
  return std::stoll(name.substr(13, name.find('.', 13) - 13));
}

bool ends_with(const std::string& s, const char* suffix) { return s.ends_with(suffix); }

}  // namespace

QuantMix parse_quant_mix(const std::string& s) {
  std::string l = s;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  if (l == "q8_0") return QuantMix::Q8_0;
  if (l == "q4_0") return QuantMix::Q4_0;
  if (l == "q5_0") return QuantMix::Q5_0;
  if (l == "q5_k") return QuantMix::Q5_K;
  if (l == "q6_k") return QuantMix::Q6_K;
  if (l == "q4_k_m") return QuantMix::Q4_K_M;
  if (l == "q5_k_m") return QuantMix::Q5_K_M;
  throw Error("--type " + s + ": expected q8_0, q4_0, q5_0, q5_k, q6_k, q4_k_m or q5_k_m");
}

DType quant_type_for(QuantMix mix, const Config& c, const std::string& name, int64_t rows, int64_t cols) {
  if (rows <= 1 || ends_with(name, "mlp.gate.weight") || ends_with(name, "kv_b_proj.weight")) return DType::F32;
  DType t = DType::Q4_K;
  switch (mix) {
    case QuantMix::Q8_0: t = DType::Q8_0; break;
    case QuantMix::Q4_0: t = DType::Q4_0; break;
    case QuantMix::Q5_0: t = DType::Q5_0; break;
    case QuantMix::Q5_K: t = DType::Q5_K; break;
    case QuantMix::Q6_K: t = DType::Q6_K; break;
    case QuantMix::Q4_K_M:
    case QuantMix::Q5_K_M: {
      t = mix == QuantMix::Q4_K_M ? DType::Q4_K : DType::Q5_K;
      const int64_t layer = layer_of(name);
      if (name == "lm_head.weight" || (name == "model.embed_tokens.weight" && c.tie_word_embeddings)) t = DType::Q6_K;
      else if ((ends_with(name, "self_attn.v_proj.weight") || ends_with(name, "down_proj.weight")) &&
               use_more_bits(layer, c.num_hidden_layers))
        t = DType::Q6_K;
      break;
    }
  }
  if (cols % dtype_block_values(t) != 0) t = t == DType::Q4_K ? DType::Q5_0 : t == DType::Q5_K ? DType::Q5_1 : DType::Q8_0;
  return cols % dtype_block_values(t) == 0 ? t : DType::F32;
}

std::unique_ptr<Checkpoint> quantize_checkpoint(const Config& c, const Checkpoint& src, QuantMix mix, bool progress) {
  auto buffers = std::make_shared<std::deque<std::vector<uint8_t>>>();
  std::vector<TensorInfo> out;
  const std::vector<TensorSpec> specs = expected_tensors(c);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t done_values = 0, total_values = 0;
  double shown = -1;  // seconds at the last progress line
  for (const TensorSpec& s : specs) total_values += s.shape.size() == 2 ? s.shape[0] * s.shape[1] : 0;
  std::vector<float> rowbuf;
  for (const TensorSpec& s : specs) {
    const TensorInfo& t = src.get(s.name);
    if (s.shape.size() != 2) {  // vectors pass through
      out.push_back(t);
      continue;
    }
    const int64_t rows = s.shape[0], cols = s.shape[1];
    const DType target = quant_type_for(mix, c, s.name, rows, cols);
    Mat m{t.dtype, t.data, rows, cols};
    if (t.dtype == DType::F8_E4M3) {
      const TensorInfo& sc = src.get(s.name + "_scale_inv");
      m.scale_inv = static_cast<const float*>(sc.data);
      m.block = c.fp8_block;
    }
    TensorInfo u = t;
    u.dtype = target;
    u.nbytes = dtype_nbytes(target, rows * cols);
    std::vector<uint8_t>& b = buffers->emplace_back(u.nbytes);
    // Row chunks of ~16 MB of f32, so memory stays the output plus one chunk.
    const int64_t chunk = std::max<int64_t>(1, (int64_t(4) << 20) / cols);
    const size_t out_row = dtype_nbytes(target, cols);
    for (int64_t r = 0; r < rows; r += chunk) {
      const int64_t n = std::min(chunk, rows - r);
      rowbuf.resize(size_t(n * cols));
      mat_rows_to_f32(m, r, n, rowbuf.data());
      if (target == DType::F32) std::memcpy(b.data() + size_t(r) * out_row, rowbuf.data(), size_t(n * cols) * 4);
      else quantize_rows(target, rowbuf.data(), n, cols, b.data() + size_t(r) * out_row);
    }
    u.data = b.data();
    out.push_back(std::move(u));
    done_values += rows * cols;
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (progress && (dt >= shown + 0.5 || done_values == total_values)) {  // a line every half second, not per tensor
      shown = dt;
      const double rate = double(done_values) / std::max(dt, 1e-9);
      std::fprintf(stderr, "\rquantize: %5.1f%%  %.0f M weights/s  ETA %s   ", 100.0 * double(done_values) / double(total_values),
                   rate / 1e6, format_duration(double(total_values - done_values) / rate).c_str());
    }
  }
  if (progress) std::fprintf(stderr, "\n");
  return std::make_unique<Checkpoint>(src.dir(), std::shared_ptr<const void>(buffers), std::move(out));
}

}  // namespace seek
