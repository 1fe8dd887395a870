// seek — the command line. Thin mains over the library: flags, progress and printing only.
//
//   seek info [--json] PATH            parameters and KV cache of a model dir or config.json
//   seek new-model --out DIR ...       write a random model in HF layout (no download)
//   seek forward -m DIR ...            run a forward pass and show the predictions
//   seek demo                          the built-in main job: all of the above on a tiny V3 model
//   seek bench ...                     rooflines and prefill/decode throughput (tools/bench.cpp)
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <omp.h>
#include <random>

#include "commands.h"
#include "model/model.h"
#include "model/model_card.h"
#include "model/bpe_trainer.h"
#include "model/chat_template.h"
#include "model/random_checkpoint.h"
#include "model/tokenizer.h"
#include "engine/decode.h"
#include "engine/generator.h"
#include "rl/mtp_accept.h"
#include "presets.h"
#include "tensor/blas.h"
#include "tensor/cpu.h"
#include "tensor/kernels.h"
#include "util/comm.h"
#include "util/compare.h"
#include "util/error.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace seek {

json preset_config(const std::string& name) {
  if (name == "tiny-v3") return json::parse(presets::kTinyV3);
  if (name == "bench-1b") return json::parse(presets::kBench1B);
  throw Error("unknown preset \"" + name + "\" (expected tiny-v3 or bench-1b)");
}

DType parse_dtype_flag(const std::string& s) {
  if (s == "f32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  if (s == "f16") return DType::F16;
  if (s == "fp8") return DType::F8_E4M3;
  throw Error("--dtype " + s + ": expected f32, bf16, f16 or fp8");
}

MlaForm parse_mla_flag(const std::string& s) {
  if (s == "absorbed") return MlaForm::Absorbed;
  if (s == "naive") return MlaForm::Naive;
  throw Error("--mla " + s + ": expected absorbed or naive");
}

json info_json(const std::string& path) {
  Config c = load_config(path);
  ParamCount p = count_params(c);
  const int64_t L = c.num_hidden_layers;
  json j;
  j["model_type"] = c.model_type_name;
  j["params_total"] = p.total;
  j["params_active"] = p.active;
  j["params_mtp"] = p.mtp;
  j["num_hidden_layers"] = L;
  j["moe_layers"] = [&] {
    int64_t n = 0;
    for (int64_t i = 0; i < L; ++i) n += c.is_moe_layer(i);
    return n;
  }();
  if (c.is_mla()) {
    j["kv_values_per_token"] = L * KVCache::values_per_token(c, MlaForm::Absorbed);
    j["kv_values_per_token_mha"] = L * c.num_attention_heads * (c.qk_head_dim() + c.v_head_dim);
    j["kv_form"] = "mla_latent";
  } else {
    j["kv_values_per_token"] = L * KVCache::values_per_token(c, MlaForm::Naive);
    j["kv_values_per_token_mha"] = L * 2 * c.num_attention_heads * c.head_dim;
    j["kv_form"] = c.num_key_value_heads == c.num_attention_heads ? "mha" : "gqa";
  }
  j["kv_bytes_per_token_bf16"] = j["kv_values_per_token"].get<int64_t>() * 2;
  j["kv_ratio_to_mha"] = double(j["kv_values_per_token"].get<int64_t>()) / double(j["kv_values_per_token_mha"].get<int64_t>());
  if (fs::is_directory(path)) {
    bool has_weights = fs::exists(fs::path(path) / "model.safetensors") ||
                       fs::exists(fs::path(path) / "model.safetensors.index.json");
    if (has_weights) {
      Checkpoint ck(path);
      std::map<std::string, int64_t> by_dtype;
      for (const auto& [name, t] : ck.tensors()) by_dtype[std::string(dtype_name(t->dtype))] += int64_t(t->nbytes);
      j["weight_bytes"] = ck.total_bytes();
      j["weight_bytes_by_dtype"] = by_dtype;
      j["tensors"] = ck.tensors().size();
    }
  }
  return j;
}

static std::string human(double x) {
  const char* u[] = {"", "K", "M", "B", "T"};
  int i = 0;
  while (std::fabs(x) >= 1000 && i < 4) x /= 1000, ++i;
  return strfmt(i ? "%.2f%s" : "%.0f%s", x, u[i]);
}

void print_info(const json& j) {
  std::printf("model_type        %s\n", j["model_type"].get<std::string>().c_str());
  std::printf("layers            %lld (%lld MoE)\n", (long long)j["num_hidden_layers"].get<int64_t>(),
              (long long)j["moe_layers"].get<int64_t>());
  std::printf("parameters        %s total, %s active per token", human(double(j["params_total"].get<int64_t>())).c_str(),
              human(double(j["params_active"].get<int64_t>())).c_str());
  if (j["params_mtp"].get<int64_t>() > 0) std::printf(", %s in MTP", human(double(j["params_mtp"].get<int64_t>())).c_str());
  std::printf("\n");
  std::printf("kv cache / token  %lld values (%s, %lld B in bf16) vs %lld for multi-head attention: %.1f%% (%.1fx smaller)\n",
              (long long)j["kv_values_per_token"].get<int64_t>(), j["kv_form"].get<std::string>().c_str(),
              (long long)j["kv_bytes_per_token_bf16"].get<int64_t>(), (long long)j["kv_values_per_token_mha"].get<int64_t>(),
              100 * j["kv_ratio_to_mha"].get<double>(), 1 / j["kv_ratio_to_mha"].get<double>());
  if (j.contains("weight_bytes")) {
    std::printf("weights           %zu tensors, %.1f MB:", j["tensors"].get<size_t>(), j["weight_bytes"].get<double>() / 1e6);
    for (auto& [k, v] : j["weight_bytes_by_dtype"].items()) std::printf(" %s %.1f MB", k.c_str(), v.get<double>() / 1e6);
    std::printf("\n");
  }
}

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    std::string tok = s.substr(i, j == std::string::npos ? std::string::npos : j - i);
    try {
      size_t used = 0;
      long v = std::stol(tok, &used);
      if (used != tok.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument("range");
      ids.push_back(int32_t(v));
    } catch (const std::exception&) {
      throw Error("--ids: \"" + tok + "\" is not a token id (expected comma-separated non-negative integers)");
    }
    if (j == std::string::npos) break;
    i = j + 1;
  }
  if (ids.empty()) throw Error("--ids: no token ids");
  return ids;
}

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = int32_t(rng() % uint64_t(vocab));
  return ids;
}

CLI::Option* add_draft_option(CLI::App* cmd, int64_t& draft_tokens, const std::string& when) {
  return cmd
      ->add_option("--draft", draft_tokens,
                   "speculative decoding: tokens the model's MTP module drafts per step, verified in one forward "
                   "(0 = off; " + when + ")")
      ->check(CLI::Range(int64_t(0), SpeculativeParams::kMaxDraft));
}

std::string default_model_dir() {
#ifdef SEEK_DEFAULT_MODEL
  if (fs::exists(fs::path(SEEK_DEFAULT_MODEL) / "config.json")) return SEEK_DEFAULT_MODEL;
#endif
  return "";
}

std::unique_ptr<ExpertParallel> spread_experts(Model& model, const std::string& path) {
  if (world().size() == 1) return nullptr;
  const int64_t E = model.config().n_routed_experts;
  if (E == 0) throw Error(path + ": expert parallelism (mpiexec) needs a MoE model; this one is dense");
  auto ep = std::make_unique<ExpertParallel>(world(), E);
  model.set_experts(ep.get());
  return ep;
}

std::vector<TaskKind> parse_task_kinds(const std::string& comma_list) {
  std::vector<TaskKind> kinds;
  size_t at = 0;
  while (at <= comma_list.size()) {
    const size_t end = std::min(comma_list.find(',', at), comma_list.size());
    const std::string k = comma_list.substr(at, end - at);
    if (k == "arithmetic") kinds.push_back(TaskKind::Arithmetic);
    else if (k == "countdown") kinds.push_back(TaskKind::Countdown);
    else throw Error("--kinds: \"" + k + "\" is not a task kind (expected arithmetic and/or countdown)");
    at = end + 1;
  }
  return kinds;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Compares the two MLA forms, and cached step-by-step decode against one full pass, on `ids`.
// Returns {naive vs absorbed, cached vs full} as max relative differences of the logits.
std::pair<double, double> self_check(Model& m, const std::vector<int32_t>& ids) {
  const int64_t T = int64_t(ids.size()), V = m.config().vocab_size;
  std::vector<float> full(static_cast<size_t>(T * V)), naive(static_cast<size_t>(T * V)), step(size_t(T * V));
  KVCache a = m.new_cache(T, MlaForm::Absorbed);
  m.forward(a, ids.data(), T, full.data());
  double forms = 0;
  if (m.config().is_mla()) {
    KVCache n = m.new_cache(T, MlaForm::Naive);
    m.forward(n, ids.data(), T, naive.data());
    forms = max_rel_diff(naive.data(), full.data(), T * V);
  }
  KVCache s = m.new_cache(T, MlaForm::Absorbed);
  for (int64_t t = 0; t < T; ++t) m.forward(s, ids.data() + t, 1, step.data() + t * V);
  return {forms, max_rel_diff(step.data(), full.data(), T * V)};
}

int cmd_info(const std::string& path, bool as_json) {
  json j = info_json(path);
  if (as_json) std::printf("%s\n", j.dump(2).c_str());
  else print_info(j);
  return 0;
}

int cmd_new_model(const std::string& out, const std::string& preset, const std::string& config_file,
                  const std::string& dtype, uint64_t seed, int shards) {
  json cj;
  if (!config_file.empty()) {
    std::ifstream in(config_file);
    if (!in) throw Error(config_file + ": cannot open");
    try {
      cj = json::parse(in);
    } catch (const json::exception& e) {
      throw Error(config_file + ": not valid JSON: " + e.what());
    }
  } else {
    cj = preset_config(preset);
  }
  auto t0 = std::chrono::steady_clock::now();
  size_t bytes = write_random_checkpoint(out, cj, {parse_dtype_flag(dtype), seed, shards});
  std::fprintf(stderr, "wrote %s: %.1f MB of %s weights in %.1f s\n", out.c_str(), double(bytes) / 1e6, dtype.c_str(),
               seconds_since(t0));
  return 0;
}

int cmd_forward(const std::string& dir, const std::string& ids_flag, int64_t n_random, const std::string& mla,
                uint64_t seed, const std::string& logits_out) {
  auto t0 = std::chrono::steady_clock::now();
  auto m = Model::load(dir);
  const Config& c = m->config();
  std::fprintf(stderr, "loaded %s (%s) in %.2f s\n", dir.c_str(), c.model_type_name.c_str(), seconds_since(t0));
  std::vector<int32_t> ids = ids_flag.empty() ? random_ids(n_random, c.vocab_size, seed) : parse_ids(ids_flag);
  const int64_t T = int64_t(ids.size()), V = c.vocab_size, D = c.hidden_size;
  std::vector<float> logits(static_cast<size_t>(T * V)), hidden(static_cast<size_t>(T * D));
  const MlaForm form = parse_mla_flag(mla);
  KVCache cache = m->new_cache(T, form);
  t0 = std::chrono::steady_clock::now();
  m->forward(cache, ids.data(), T, logits.data(), true, hidden.data());
  double dt = seconds_since(t0);
  if (!logits_out.empty()) {
    write_file_atomic(logits_out, logits.data(), logits.size() * 4);
    std::fprintf(stderr, "wrote %lld x %lld f32 logits to %s\n", (long long)T, (long long)V, logits_out.c_str());
  }
  std::vector<float> mtp;
  if (c.num_nextn_predict_layers > 0 && T > 1) {
    mtp.resize(size_t((T - 1) * V));
    KVCache mc = m->new_mtp_cache(T, form);
    m->forward_mtp(0, mc, hidden.data(), ids.data() + 1, T - 1, mtp.data());
  }
  std::printf("pos  token  next(argmax)  logit    %s\n", mtp.empty() ? "" : "next+1(MTP)");
  for (int64_t t = 0; t < T; ++t) {
    const int a = int(argmax(&logits[size_t(t * V)], V));
    std::printf("%3lld  %5d  %12d  %7.3f", (long long)t, ids[size_t(t)], a, logits[size_t(t * V + a)]);
    if (!mtp.empty() && t + 1 < T) std::printf("  %11d", int(argmax(&mtp[size_t(t * V)], V)));
    std::printf("\n");
  }
  std::fprintf(stderr, "forward: %lld tokens in %.3f s (%.1f tokens/s)%s\n", (long long)T, dt, double(T) / dt,
               c.is_mla() ? (std::string(", MLA form ") + mla_form_name(form)).c_str() : "");
  return 0;
}

// A few lines for the demo's tokenizer to learn from (the real corpus arrives with `seek pretrain`).
const char* kDemoCorpus =
    "DeepSeek-V3 is a Mixture-of-Experts language model with Multi-head Latent Attention.\n"
    "Each token is routed to 8 of 256 experts; a bias balances their load without an auxiliary loss.\n"
    "The latent attention caches 576 values per token per layer instead of 32768.\n"
    "Multi-token prediction trains the model to predict the token after next.\n"
    "R1-Zero learned to reason from rule-based rewards: <think> 12 * 34 = 408 </think> <answer> 408 </answer>\n"
    "The answer is checked by a rule, and the format by another: think first, then answer.\n"
    "Distillation hands the reasoning of a large model to a small dense student.\n"
    "Context caching makes a repeated prefix cheap: a cache hit costs a quarter of a miss.\n";

int cmd_demo(const std::string& out) {
  std::printf("seek demo: a tiny DeepSeek-V3-architecture model with random weights, made here (no download)\n");
  std::printf("cpu: %s; BLAS core %s\n\n", cpu_features_string(), blas_core_name());
  std::fflush(stdout);
  if (!fs::exists(fs::path(out) / "config.json")) cmd_new_model(out, "tiny-v3", "", "bf16", 1, 1);
  if (!fs::exists(fs::path(out) / "tokenizer.json")) {
    std::vector<std::string> texts;
    for (int i = 0; i < 8; ++i) texts.push_back(kDemoCorpus);
    write_tokenizer_dir(out, train_bpe(texts, BpeTrainOptions{512, 2}));
  }
  if (!fs::exists(fs::path(out) / "seek_model.json"))
    write_model_card(out, {"seek demo", "a tiny DeepSeek-V3-architecture model with random weights (its words are noise)",
                           "nothing: it is untrained", "Hello"});
  print_info(info_json(out));
  auto m = Model::load(out);
  const Config& c = m->config();
  std::vector<int32_t> ids = random_ids(48, c.vocab_size, 7);
  auto [forms, cached] = self_check(*m, ids);
  std::printf("\nchecks on a %zu-token prompt (max |a-b| / max |b| over all logits):\n", ids.size());
  std::printf("  naive vs absorbed MLA        %.2e\n", forms);
  std::printf("  cached decode vs full pass   %.2e\n", cached);

  // Greedy generation from the prompt (the decoding step every generation loop runs), then how often
  // the MTP module's draft of the token after next agreed with it.
  const int64_t n_new = 32;
  GenerationRequest greedy;
  greedy.prompt = ids;
  greedy.sampling.temperature = 0;
  greedy.stop.max_new_tokens = n_new;
  const GenerationOutput g = Generator(*m, nullptr).run({greedy})[0];
  std::printf("\ngreedy continuation (%zu tokens):", g.tokens.size());
  for (int32_t id : g.tokens) std::printf(" %d", id);
  std::printf("\nprefill %zu tokens: %.1f tokens/s; decode: %.1f tokens/s", ids.size(), double(ids.size()) / g.prefill_seconds,
              double(g.tokens.size()) / g.decode_seconds);
  if (c.num_nextn_predict_layers > 0) {
    std::vector<int32_t> text = ids;
    text.insert(text.end(), g.tokens.begin(), g.tokens.end());
    const rl::MtpAcceptance a = rl::mtp_acceptance(*m, {text}, {int64_t(ids.size())});
    std::printf("; MTP draft agreed with the next greedy token %lld/%lld times (random weights: expect ~0)",
                (long long)a.accepted, (long long)a.count);
  }
  std::printf("\n");

  // Text in, text out: the chat format, the tokenizer, sampling, streaming.
  Tokenizer tok = Tokenizer::load(out);
  const ChatStyle style = detect_chat_style(tok);
  const std::string prompt = render_chat(style, {{"user", "What does latent attention cache?"}}, ChatOptions{true, true});
  GenerationRequest req;
  req.prompt = tok.encode(prompt);
  req.sampling.temperature = 0.8f;
  req.sampling.seed = 1;
  req.stop.max_new_tokens = 24;
  req.stop.stop_ids = {tok.eos_id()};
  std::printf("\nchat prompt (%zu tokens): %s\nsampled reply (random weights, so no sense yet): ", req.prompt.size(),
              prompt.c_str());
  Generator gen(*m, &tok);
  gen.run({req}, [](size_t, std::string_view piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    return true;
  });
  std::printf("\n(try it yourself: build/seek chat -m %s)\n", out.c_str());

  bool ok = forms < 1e-4 && cached < 1e-4;
  std::printf("\n%s\n", ok ? "demo: OK" : "demo: FAILED (the two MLA forms or cached decode disagree)");
  return ok ? 0 : 1;
}

}  // namespace seek

namespace {

// Under mpiexec: only the commands that run on a group of processes, and as many threads per rank as
// the machine has cores per local rank (unless OMP_NUM_THREADS says otherwise): two ranks of two
// threads each on two cores would spin against each other. `generate` and `serve` spread the experts
// (every rank runs the same decode; rank 0 alone prints and serves); their weights are mapped (SEEK_WEIGHTS=mmap unless set), so
// a rank holds in memory the pages it reads: the shared part and its own experts.
void join_world(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  // Before MPI starts a thread that would take a signal meant for sigwait.
  if (cmd == "serve") seek::block_stop_signals();
  seek::Communicator& w = seek::world();
  if (w.size() == 1) return;
  if (cmd == "recipe")
    throw seek::Error("seek recipe runs its stages as child processes: run it in one process with --ranks " +
                      std::to_string(w.size()) + ", and it starts each data-parallel stage under mpiexec");
  const std::vector<std::string> data_parallel = {"pretrain", "sft", "grpo", "distill", "eval"},
                                 expert_parallel = {"generate", "serve"};
  const auto among = [&](const std::vector<std::string>& v) { return std::find(v.begin(), v.end(), cmd) != v.end(); };
  const auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? (i + 1 == v.size() ? " and " : ", ") : "") + v[i];
    return s;
  };
  if (!among(data_parallel) && !among(expert_parallel))
    throw seek::Error("seek " + cmd + " runs in one process; under mpiexec (" + w.describe() + ") seek runs: " +
                      list(data_parallel) + " (data parallel), " + list(expert_parallel) + " (expert parallel)");
  if (!std::getenv("OMP_NUM_THREADS")) omp_set_num_threads(std::max(1, omp_get_num_procs() / w.local_size()));
  if (among(expert_parallel)) setenv("SEEK_WEIGHTS", "mmap", 0);
  // Rank 0 prints the results; every rank still reports its errors on stderr.
  if (w.rank() != 0 && !std::freopen("/dev/null", "w", stdout)) throw seek::Error("cannot silence rank's stdout");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace seek;
  blas_prefer_avx512(argv);
  CLI::App app{"seek — the DeepSeek system in C++"};
  app.require_subcommand(1);

  auto* info = app.add_subcommand("info", "Parameters and KV cache of a model (a directory, or a bare config.json)");
  std::string info_path;
  bool info_json_flag = false;
  info->add_option("path", info_path, "model directory or config.json")->required();
  info->add_flag("--json", info_json_flag, "print JSON");

  auto* nm = app.add_subcommand("new-model", "Write a model with random weights in Hugging Face layout");
  std::string nm_out, nm_preset = "tiny-v3", nm_config, nm_dtype = "bf16";
  uint64_t nm_seed = 1;
  int nm_shards = 1;
  nm->add_option("--out", nm_out, "output directory")->required();
  nm->add_option("--preset", nm_preset, "built-in config: tiny-v3 or bench-1b")->capture_default_str();
  nm->add_option("--config", nm_config, "a config.json to use instead of a preset");
  nm->add_option("--dtype", nm_dtype, "f32, bf16, f16 or fp8 (block-scaled e4m3)")->capture_default_str();
  nm->add_option("--seed", nm_seed, "random seed")->capture_default_str();
  nm->add_option("--shards", nm_shards, "number of safetensors shards")->capture_default_str()->check(CLI::Range(1, 1000));

  auto* fw = app.add_subcommand("forward", "Run a forward pass and print each position's prediction");
  std::string fw_model, fw_ids, fw_mla = "absorbed", fw_logits;
  int64_t fw_random = 16;
  uint64_t fw_seed = 1;
  fw->add_option("-m,--model", fw_model, "model directory")->required();
  fw->add_option("--ids", fw_ids, "comma-separated token ids");
  fw->add_option("--random", fw_random, "use N random token ids (when --ids is absent)")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  fw->add_option("--mla", fw_mla, "MLA form: absorbed or naive")->capture_default_str();
  fw->add_option("--seed", fw_seed, "seed for --random")->capture_default_str();
  fw->add_option("--logits", fw_logits, "also write every position's logits to this file (f32 [tokens, vocab])");

  auto* demo = app.add_subcommand("demo", "The built-in main job: make a tiny V3 model, describe it, check and run it");
  std::string demo_out = "build/demo-model";
  demo->add_option("--out", demo_out, "where to write the tiny model")->capture_default_str();

  BenchOptions bo;
  auto* bench = app.add_subcommand("bench", "Measure rooflines and prefill/decode throughput on a 1B V3-layout model");
  add_bench_options(bench, bo);

  register_tokenizer_commands(app);
  register_generate_commands(app);
  register_data_commands(app);
  register_train_commands(app);
  register_serve_commands(app);
  register_eval_commands(app);
  register_distill_commands(app);
  register_grpo_commands(app);
  register_recipe_commands(app);
  register_convert_commands(app);
  try {
    join_world(argc, argv);
    app.parse(argc, argv);  // registered commands run inside, from their callbacks
    if (*info) return cmd_info(info_path, info_json_flag);
    if (*nm) return cmd_new_model(nm_out, nm_preset, nm_config, nm_dtype, nm_seed, nm_shards);
    if (*fw) return cmd_forward(fw_model, fw_ids, fw_random, fw_mla, fw_seed, fw_logits);
    if (*demo) return cmd_demo(demo_out);
    if (*bench) return cmd_bench(bo);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    if (world().size() > 1) {
      // The other ranks may be waiting for this one in a collective: end them all.
      std::fprintf(stderr, "seek (rank %d of %d): %s\n", world().rank(), world().size(), e.what());
      abort_world(2);
    }
    std::fprintf(stderr, "seek: %s\n", e.what());
    return 2;
  }
  return 0;
}
