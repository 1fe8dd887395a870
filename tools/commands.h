// commands.h — what the CLI's command files share.
#pragma once
#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <memory>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/tasks.h"
#include "model/model.h"
#include "nn/moe.h"

namespace seek {

nlohmann::json preset_config(const std::string& name);
std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t seed);
double seconds_since(std::chrono::steady_clock::time_point t0);
// The model `seek chat` and `seek serve` use without -m: the recipe's result shipped in the repository
// (models/seek-tiny), or "" when this build has none.
std::string default_model_dir();
// "arithmetic,countdown" → the task kinds; throws Error naming --kinds otherwise.
std::vector<TaskKind> parse_task_kinds(const std::string& comma_list);
// `--draft K` (MTP drafts per step, 0 = off; engine/decode.h) with its range checked; `when` ends the help
// text (its default, or where a request overrides it).
CLI::Option* add_draft_option(CLI::App* cmd, int64_t& draft_tokens, const std::string& when);
// Under mpiexec (world().size() > 1): this rank's share of `model`'s routed experts, set as its expert
// executor (the model must outlive it); null in one process. Throws Error for a dense model.
std::unique_ptr<seek::ExpertParallel> spread_experts(seek::Model& model, const std::string& path);
// Blocks SIGINT and SIGTERM in this thread and every thread it starts after (`seek serve` takes them
// with sigwait); returns the set.
sigset_t block_stop_signals();
int cmd_new_model(const std::string& out, const std::string& preset, const std::string& config_file,
                  const std::string& dtype, uint64_t seed, int shards);

// Commands that register themselves: each adds its subcommands to `app` with a callback that runs the
// command and throws seek::Error on bad input (main prints it and exits with status 2).
// tools/tokenize_cmd.cpp: `seek tokenize`, `seek tokenizer train`.
void register_tokenizer_commands(CLI::App& app);
// tools/generate_cmd.cpp: `seek generate`, `seek chat`.
void register_generate_commands(CLI::App& app);
// tools/data_cmd.cpp: `seek corpus` (synthetic reasoning corpus), `seek data` (token shards).
void register_data_commands(CLI::App& app);
// tools/train_cmd.cpp: `seek pretrain`.
void register_train_commands(CLI::App& app);
// tools/serve_cmd.cpp: `seek serve`.
void register_serve_commands(CLI::App& app);
// tools/eval_cmd.cpp: `seek eval` (pass@k on held-out problems, MTP acceptance, KV table).
void register_eval_commands(CLI::App& app);
// tools/distill_cmd.cpp: `seek distill` (rejection sampling + SFT of a student), `seek sft`.
void register_distill_commands(CLI::App& app);
// tools/grpo_cmd.cpp: `seek grpo`.
void register_grpo_commands(CLI::App& app);
// tools/recipe_cmd.cpp: `seek recipe`.
void register_recipe_commands(CLI::App& app);
// tools/convert_cmd.cpp: `seek convert` (HF folder <-> GGUF), `seek quantize` (GGUF block formats).
void register_convert_commands(CLI::App& app);

struct BenchOptions {
  std::string model_dir = "build/bench-model";
  std::string preset = "bench-1b";
  std::string dtype = "bf16";
  int64_t prompt = 512;
  int64_t decode = 64;
  std::string json_out;
};
void add_bench_options(CLI::App* cmd, BenchOptions& o);
int cmd_bench(const BenchOptions& o);

}  // namespace seek
