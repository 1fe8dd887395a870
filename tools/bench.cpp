// bench.cpp — `seek bench`: the machine's rooflines and seek's prefill/decode throughput on a
// DeepSeek-V3-layout model of ~1B parameters (configs/bench-1b.json) with random weights, each figure
// as a ratio to its roofline measured in the same run. A benchmark, never a test.
//
// Order matters for the memory figure: the model is written by a child process and the model runs
// before the roofline buffers exist, so the peak resident memory (VmHWM) is the model's own.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "commands.h"
#include "engine/generator.h"
#include "model/gguf_model.h"
#include "model/model.h"
#include "tensor/backend.h"
#include "tensor/blas.h"
#include "tensor/cpu.h"
#include "tensor/kernels.h"
#include "tensor/roofline.h"
#include "util/error.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace seek {

void add_bench_options(CLI::App* cmd, BenchOptions& o) {
  cmd->add_option("--model", o.model_dir, "model directory (written first if absent)")->capture_default_str();
  cmd->add_option("--preset", o.preset, "config to write the model from")->capture_default_str();
  cmd->add_option("--dtype", o.dtype, "weight dtype when writing the model")->capture_default_str();
  cmd->add_option("--prompt", o.prompt, "prefill length")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--decode", o.decode, "decode steps")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--json", o.json_out, "also write the figures to this JSON file");
}

namespace {

int64_t vm_hwm_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}

// Bytes of weights one decode step reads: every matrix of the active path once.
double active_weight_bytes(const Model& m) {
  const Config& c = m.config();
  const Weights& w = m.weights();
  auto bytes = [](const Mat& x) {
    double b = double(x.rows) * double(row_bytes(x));
    if (weight_format(x.dtype).block_scales)
      b += double((x.rows + x.block - 1) / x.block * ((x.cols + x.block - 1) / x.block)) * 4;
    return b;
  };
  auto mlp = [&](const MlpWeights& p) { return bytes(p.gate_proj) + bytes(p.up_proj) + bytes(p.down_proj); };
  double total = bytes(w.lm_head);
  for (const BlockWeights& b : w.layers) {
    if (c.is_mla()) {
      const MlaWeights& a = b.mla;
      total += (c.q_lora_rank ? bytes(a.q_a_proj) + bytes(a.q_b_proj) : bytes(a.q_proj)) + bytes(a.kv_a_proj_with_mqa) +
               double(a.kv_b_proj.rows * a.kv_b_proj.cols) * 4 + bytes(a.o_proj);
    } else {
      total += bytes(b.gqa.q_proj) + bytes(b.gqa.k_proj) + bytes(b.gqa.v_proj) + bytes(b.gqa.o_proj);
    }
    if (b.moe.experts.empty()) {
      total += mlp(b.mlp);
    } else {
      total += bytes(b.moe.gate) + double(c.num_experts_per_tok) * mlp(b.moe.experts[0]);
      if (b.moe.has_shared) total += mlp(b.moe.shared_experts);
    }
  }
  return total;
}

// Model FLOPs of a T-token prefill from position 0 that computes logits for the last token only:
// 2 per weight per token for every projection (routed experts: k per token), plus causal attention
// counted in the naive form (q·k over qk dims and p·v over v dims for T(T+1)/2 pairs per head).
double prefill_flops(const Config& c, const ParamCount& p, int64_t T) {
  const double head = double(c.vocab_size) * double(c.hidden_size);
  double flops = 2.0 * (double(p.active) - head) * double(T) + 2.0 * head;
  const double pairs = double(T) * double(T + 1) / 2;
  const double per_pair = c.is_mla() ? double(c.num_attention_heads) * double(c.qk_head_dim() + c.v_head_dim)
                                     : double(c.num_attention_heads) * 2.0 * double(c.head_dim);
  flops += 2.0 * per_pair * pairs * double(c.num_hidden_layers);
  return flops;
}

}  // namespace

int cmd_bench(const BenchOptions& o) {
  std::fprintf(stderr, "seek bench: cpu %s, BLAS core %s, %d threads\n", cpu_features_string(), blas_core_name(),
               max_threads());
  if (!fs::exists(fs::path(o.model_dir) / "config.json") && !is_gguf_file(o.model_dir)) {
    std::fprintf(stderr, "writing the %s model to %s (once; reused by later runs)\n", o.preset.c_str(), o.model_dir.c_str());
    std::fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
      try {
        _exit(cmd_new_model(o.model_dir, o.preset, "", o.dtype, 1, 1));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "seek: %s\n", e.what());
        _exit(2);
      }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw Error("bench: writing the model failed");
  }

  auto t0 = std::chrono::steady_clock::now();
  auto m = Model::load(o.model_dir);
  const Config& c = m->config();
  const double load_s = seconds_since(t0);
  const ParamCount pc = count_params(c);
  const double weight_file_bytes = double(m->checkpoint()->total_bytes());
  const int64_t V = c.vocab_size, T = o.prompt;
  std::vector<int32_t> prompt = random_ids(T, V, 42);
  std::vector<float> logits(static_cast<size_t>(V));

  // Prefill: one warm-up pass pages the weights in, then the best of two.
  double prefill_s = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    KVCache cache = m->new_cache(T + o.decode);
    t0 = std::chrono::steady_clock::now();
    m->forward(cache, prompt.data(), T, logits.data(), false);
    double dt = seconds_since(t0);
    std::fprintf(stderr, "  prefill %d: %lld tokens in %.3f s\n", rep, (long long)T, dt);
    if (rep > 0) prefill_s = std::min(prefill_s, dt);
  }
  // Decode: greedy, batch 1, after the prompt. This VM's memory bandwidth drifts between states
  // (~50 and ~90 GB/s) within a run, so decode runs in rounds, each right after its own bandwidth
  // probe, and the ratio reported is the median of the rounds' ratios.
  KVCache cache = m->new_cache(T + o.decode);
  m->forward(cache, prompt.data(), T, logits.data(), false);
  int32_t next = int32_t(argmax(logits.data(), V));
  const double peak_rss = double(vm_hwm_bytes());  // the model's own peak, before any probe buffer
  const double wbytes = active_weight_bytes(*m);
  const int64_t rounds = std::min<int64_t>(o.decode, 4);
  std::vector<double> ratios, bws;
  double decode_s = 0;
  int64_t done = 0;
  std::fprintf(stderr, "decode: %lld rounds, each after a bandwidth probe\n", (long long)rounds);
  for (int64_t r = 0; r < rounds; ++r) {
    const int64_t steps = (o.decode - done) / (rounds - r);
    const double round_bw = measure_read_bandwidth(int64_t(1) << 29, 3);
    t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < steps; ++i) {
      m->forward(cache, &next, 1, logits.data(), false);
      next = int32_t(argmax(logits.data(), V));
    }
    const double dt = seconds_since(t0);
    // The latent cache read per step, at this round's mean context length.
    const double kv = double(c.num_hidden_layers) * double(KVCache::values_per_token(c, cache.form)) * 4.0 *
                      (double(T + done) + double(steps) / 2);
    ratios.push_back((wbytes + kv) * double(steps) / dt / round_bw);
    bws.push_back(round_bw);
    std::fprintf(stderr, "  round %lld: %lld tokens, %.1f tokens/s, bandwidth %.1f GB/s, %.1f%% of it\n", (long long)r,
                 (long long)steps, double(steps) / dt, round_bw / 1e9, 100 * ratios.back());
    decode_s += dt;
    done += steps;
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  const double decode_ratio = median(ratios), bw = median(bws);

  // Generation through the engine (sampling included), batch 1 and batch 8: 8 prompts of 32 tokens,
  // each generating o.decode tokens at temperature 1 without stops; decode tokens/s over the batch.
  // As llama-bench's tg: decode from an empty cache (one start token, then o.decode greedy steps), the
  // mean rate of two runs; and the lm head's matmul alone at T = 1, the part of a step that no
  // engine can shorten without changing the logits (every weight of it is read once per token).
  double tg_tps = 0;
  for (int rep = 0; rep < 2; ++rep) {
    KVCache fresh = m->new_cache(o.decode + 1);
    int32_t tok = prompt[0];
    t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < o.decode; ++i) {
      m->forward(fresh, &tok, 1, logits.data(), false);
      tok = int32_t(argmax(logits.data(), V));
    }
    tg_tps += double(o.decode) / seconds_since(t0) / 2;
  }
  std::vector<float> x(static_cast<size_t>(c.hidden_size), 0.01f);
  double head_s = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    t0 = std::chrono::steady_clock::now();
    matmul(logits.data(), x.data(), m->weights().lm_head, 1);
    head_s = std::min(head_s, seconds_since(t0));
  }
  std::fprintf(stderr, "  tg (from an empty cache): %.1f tokens/s; the head alone %.2f ms\n", tg_tps, head_s * 1e3);

  auto generate_tps = [&](int64_t batch) {
    std::vector<GenerationRequest> reqs(static_cast<size_t>(batch));
    for (int64_t b = 0; b < batch; ++b) {
      reqs[size_t(b)].prompt = random_ids(32, V, 100 + uint64_t(b));
      reqs[size_t(b)].sampling.seed = uint64_t(b);
      reqs[size_t(b)].stop.max_new_tokens = o.decode;
    }
    Generator g(*m, nullptr);
    std::vector<GenerationOutput> out = g.run(reqs);
    int64_t n = 0;
    for (const auto& r : out) n += int64_t(r.tokens.size()) - 1;  // the first token comes from prefill
    return double(n) / out[0].decode_seconds;
  };
  const double gen1 = generate_tps(1), gen8 = generate_tps(8);
  std::fprintf(stderr, "  generate: batch 1 %.1f tokens/s, batch 8 %.1f tokens/s\n", gen1, gen8);

  std::fprintf(stderr, "measuring the GEMM peak\n");
  const double peak = measure_sgemm_peak();

  const double prefill_tps = double(T) / prefill_s, decode_tps = double(o.decode) / decode_s;
  const double flops = prefill_flops(c, pc, T);
  const double kv_bytes = double(c.num_hidden_layers) * double(KVCache::values_per_token(c, cache.form)) * 4.0 *
                          (double(T) + double(o.decode) / 2);
  json j = {
      {"cpu", cpu_features_string()},
      {"blas_core", blas_core_name()},
      {"threads", max_threads()},
      {"model", o.model_dir},
      {"params_total", pc.total},
      {"params_active", pc.active},
      {"weight_bytes", weight_file_bytes},
      {"load_s", load_s},
      {"mem_read_bandwidth_GBps", bw / 1e9},
      {"sgemm_peak_GFLOPs", peak / 1e9},
      {"prefill_tokens", T},
      {"prefill_tokens_per_s", prefill_tps},
      {"prefill_GFLOPs", flops / prefill_s / 1e9},
      {"prefill_pct_of_gemm_peak", 100.0 * flops / prefill_s / peak},
      {"decode_tokens", o.decode},
      {"decode_tokens_per_s", decode_tps},
      {"decode_bytes_per_token", wbytes + kv_bytes},
      {"decode_pct_of_bandwidth", 100.0 * decode_ratio},
      {"decode_round_bandwidths_GBps", bws},
      {"decode_tg_tokens_per_s", tg_tps},
      {"decode_tg_ms_per_token", 1e3 / tg_tps},
      {"head_ms_per_token", head_s * 1e3},
      {"head_bytes", double(m->weights().lm_head.rows) * double(row_bytes(m->weights().lm_head))},
      {"generate_batch1_tokens_per_s", gen1},
      {"generate_batch8_tokens_per_s", gen8},
      {"peak_rss_bytes", peak_rss},
      {"peak_rss_over_weights", peak_rss / weight_file_bytes},
  };
  // A GGUF file: also against the file's size (tensors, metadata and tokenizer), as llama.cpp's is quoted.
  const double file_bytes = fs::is_regular_file(o.model_dir) ? double(fs::file_size(o.model_dir)) : 0.0;
  if (file_bytes > 0) j["peak_rss_over_file"] = peak_rss / file_bytes;
  std::printf("machine   %s, %d threads; read bandwidth %.1f GB/s (median); sgemm peak %.1f GFLOP/s\n", cpu_features_string(),
              max_threads(), bw / 1e9, peak / 1e9);
  std::printf("model     %s: %.3fB params, %.1fM active/token, %.2f GB weights\n", o.model_dir.c_str(), double(pc.total) / 1e9,
              double(pc.active) / 1e6, weight_file_bytes / 1e9);
  std::printf("prefill   %lld tokens: %.1f tokens/s, %.1f GFLOP/s = %.1f%% of sgemm peak\n", (long long)T, prefill_tps,
              flops / prefill_s / 1e9, 100.0 * flops / prefill_s / peak);
  std::printf("decode    batch 1: %.2f tokens/s, %.1f MB/token = %.1f%% of read bandwidth (median of %zu rounds)\n",
              decode_tps, (wbytes + kv_bytes) / 1e6, 100.0 * decode_ratio, ratios.size());
  std::printf("decode    tg %lld from an empty cache: %.2f tokens/s = %.2f ms/token, of which the head %.2f ms\n",
              (long long)o.decode, tg_tps, 1e3 / tg_tps, head_s * 1e3);
  std::printf("generate  sampling at temperature 1: batch 1 %.1f tokens/s, batch 8 %.1f tokens/s aggregate (%.2fx)\n", gen1,
              gen8, gen8 / gen1);
  std::printf("memory    peak resident %.2f GB = %.3f x weight bytes", peak_rss / 1e9, peak_rss / weight_file_bytes);
  if (file_bytes > 0) std::printf(" = %.3f x the file", peak_rss / file_bytes);
  std::printf("\n");
  if (!o.json_out.empty()) {
    std::ofstream out(o.json_out);
    out << j.dump(2) << "\n";
  }
  return 0;
}

}  // namespace seek
