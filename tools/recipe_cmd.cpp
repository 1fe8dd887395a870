// recipe_cmd.cpp — `seek recipe`: the whole DeepSeek recipe at small scale, one command.
//
//   corpus → tokenizer → token shards → pretrain a V3-architecture MoE teacher (MLA, aux-loss-free
//   balancing, MTP) → eval → GRPO, R1-Zero style (no SFT first) → eval → pretrain a dense Qwen2-style
//   student base → eval → rejection-sample the RL'd teacher and distill into the student → eval →
//   GRPO on the student base for the same wall time as distillation → eval → report card.
//
// Every stage runs as its own `seek` command (the report lists them, so any stage can be rerun by
// hand) in a child process. A finished stage leaves OUT/stages/<name>.json; a rerun of the recipe skips
// those, so a killed run resumes at the stage it was in. Presets: `smoke` checks the pipeline end to end
// in a few minutes (CI runs it); `tiny` is sized to show the effects in about 12 minutes on 2 cores.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "recipe_report.h"
#include "model/model_card.h"
#include "util/atomic_file.h"
#include "util/comm.h"
#include "util/error.h"
#include "util/progress.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace seek {

namespace {

struct Preset {
  std::string name;
  // corpus
  int64_t documents = 3000;
  double worked_fraction = 0.2;
  int min_difficulty = 1, max_difficulty = 2;  // of the problems evaluated, trained on by GRPO, distilled
  int corpus_min_difficulty = 1;               // pretraining also sees easier problems (a curriculum)
  std::string kinds = "arithmetic,countdown";  // the tasks of the corpus, evaluation, GRPO and distillation
  int64_t vocab = 384;
  bool split_digits = true;                    // every digit a token: arithmetic a small model can do
  // models
  json teacher, student;
  // pretraining
  int64_t pretrain_steps = 40, student_steps = 40, batch = 8, seq_len = 96;
  double pretrain_lr = 3e-3;
  // evaluation
  int64_t eval_problems = 8, eval_samples = 4, max_new_tokens = 96;
  int64_t eval_greedy_problems = 12;  // greedy pass@1's (its interval); the first eval_problems are also sampled
  // GRPO
  int64_t grpo_steps = 3, grpo_questions = 4, grpo_group = 4;
  double grpo_lr = 1e-4, grpo_beta = 0.001;
  // distillation
  int64_t distill_questions = 8, distill_samples = 4, distill_max_per_question = 2, sft_steps = 10;
  double sft_lr = 1e-3;
};

json teacher_config(int64_t hidden, int64_t layers, int64_t experts, int64_t moe_inter, int64_t vocab) {
  return json{{"model_type", "deepseek_v3"},
              {"vocab_size", vocab},
              {"hidden_size", hidden},
              {"intermediate_size", hidden * 11 / 4},
              {"num_hidden_layers", layers},
              {"num_attention_heads", 4},
              {"num_key_value_heads", 4},
              {"q_lora_rank", hidden / 2},
              {"kv_lora_rank", hidden / 4},
              {"qk_nope_head_dim", 32},
              {"qk_rope_head_dim", 16},
              {"v_head_dim", 32},
              {"n_routed_experts", experts},
              {"n_shared_experts", 1},
              {"num_experts_per_tok", 2},
              {"n_group", 1},
              {"topk_group", 1},
              {"moe_intermediate_size", moe_inter},
              {"moe_layer_freq", 1},
              {"first_k_dense_replace", 1},
              {"routed_scaling_factor", 2.5},
              {"scoring_func", "sigmoid"},
              {"topk_method", "noaux_tc"},
              {"norm_topk_prob", true},
              {"num_nextn_predict_layers", 1},
              {"rms_norm_eps", 1e-6},
              {"rope_theta", 10000},
              {"max_position_embeddings", 512},
              {"tie_word_embeddings", false}};
}

json student_config(int64_t hidden, int64_t layers, int64_t vocab) {
  return json{{"model_type", "qwen2"},
              {"vocab_size", vocab},
              {"hidden_size", hidden},
              {"intermediate_size", hidden * 11 / 4},
              {"num_hidden_layers", layers},
              {"num_attention_heads", 4},
              {"num_key_value_heads", 2},
              {"rms_norm_eps", 1e-6},
              {"rope_theta", 10000.0},
              {"max_position_embeddings", 512},
              {"tie_word_embeddings", true}};
}

Preset preset(const std::string& name) {
  Preset p;
  p.name = name;
  if (name == "smoke") {
    p.teacher = teacher_config(64, 2, 4, 32, p.vocab);
    p.student = student_config(48, 2, p.vocab);
    return p;
  }
  if (name == "tiny") {
    // Arithmetic only: its worked solutions are column scratchpads the tiny teacher executes well
    // (docs/LOG.md); Countdown's are not, and pass@1 >= 70% after RL needs reasoning that pays.
    p.kinds = "arithmetic";
    p.documents = 80000;
    p.worked_fraction = 0.4;
    p.min_difficulty = 2;
    p.max_difficulty = 3;
    p.corpus_min_difficulty = 1;
    p.vocab = 384;
    p.teacher = teacher_config(128, 4, 8, 64, p.vocab);
    p.student = student_config(96, 3, p.vocab);
    p.pretrain_steps = 2500;
    p.student_steps = 2000;
    p.batch = 16;
    p.seq_len = 256;
    p.eval_problems = 64;
    p.eval_greedy_problems = 500;  // a 95% interval of about ±4 points at 70%
    p.eval_samples = 16;
    p.max_new_tokens = 320;
    p.grpo_steps = 120;
    p.grpo_questions = 8;
    p.grpo_group = 8;
    p.grpo_lr = 3e-4;
    p.distill_questions = 512;
    p.distill_samples = 8;
    p.distill_max_per_question = 2;
    p.sft_steps = 300;
    return p;
  }
  throw Error("--preset " + name + ": expected smoke or tiny");
}

std::string self_exe() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("recipe: cannot find the seek binary (/proc/self/exe)");
  return p.string();
}

std::string join(const std::vector<std::string>& args) {
  std::string s = "seek";
  for (const std::string& a : args) s += " " + a;
  return s;
}

// Runs `seek args...` as a child process, or `mpiexec -n ranks seek args...` when ranks > 1; throws with
// the exit status on failure.
void run_child(const std::vector<std::string>& args, int ranks = 1) {
  std::vector<std::string> all{self_exe()};
  if (ranks > 1) all.insert(all.begin(), {"/usr/bin/env", "mpiexec", "-n", std::to_string(ranks)});
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw Error("recipe: fork failed");
  if (pid == 0) {
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error(strfmt("recipe: `%s` failed (%s %d)", join(args).c_str(), WIFEXITED(status) ? "exit status" : "signal",
                       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status)));
}

// The last checkpoint of a `seek pretrain` run, with the tokenizer copied in: a model directory.
void export_pretrained(const fs::path& run, const fs::path& tokenizer_dir, const fs::path& model) {
  std::ifstream in(run / "latest");
  std::string name;
  if (!(in >> name)) throw Error((run / "latest").string() + ": missing; the pretraining run did not save a checkpoint");
  const fs::path ckpt = name.find('/') == std::string::npos ? run / name : fs::path(name);
  const fs::path tmp = model.string() + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(ckpt / f, tmp / f);
  fs::copy_file(tokenizer_dir / "tokenizer.json", tmp / "tokenizer.json");
  if (fs::exists(tokenizer_dir / "tokenizer_config.json"))
    fs::copy_file(tokenizer_dir / "tokenizer_config.json", tmp / "tokenizer_config.json");
  fs::remove_all(model);
  fs::rename(tmp, model);
}

// The chat defaults of a model the recipe made (generation_config.json, engine/generation_config.h):
// top-p 0.95 as DeepSeek-R1 recommends, and temperature 0.5 rather than its 0.6. Measured on the shipped
// models (models/README.md): on 500 held-out problems of difficulty 2-3, 4 samples each, the teacher's
// sampled pass@1 is 93.1% at these settings against 94.6% greedy (0.6: 92.5%, 2.1 points off).
// With the model's card (model/model_card.h) for `seek chat` and the chat page.
void write_chat_defaults(const fs::path& model, const ModelCard& card) {
  write_file_atomic((model / "generation_config.json").string(),
                    "{\n  \"do_sample\": true,\n  \"temperature\": 0.5,\n  \"top_p\": 0.95\n}\n");
  write_model_card(model.string(), card);
}

constexpr const char* kCorpus = "seek's synthetic arithmetic corpus (seek corpus)";
constexpr const char* kExample = "What is 8517 + 6625?";

}  // namespace

void register_recipe_commands(CLI::App& app) {
  struct Flags {
    std::string preset = "tiny", out;
    bool ablation = false;
    int ranks = 1;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* c = app.add_subcommand("recipe", "the whole DeepSeek recipe at small scale: pretrain, GRPO, distill, report card");
  c->add_option("--preset", f->preset, "smoke (seconds, CI) or tiny (about 12 minutes on 2 cores)")->capture_default_str();
  c->add_option("--out", f->out, "run directory (default: runs/recipe-PRESET); a rerun resumes it");
  c->add_flag("--ablation", f->ablation,
              "also pretrain the teacher with an auxiliary balance loss instead of aux-loss-free balancing, and "
              "compare the two in the report");
  c->add_option("--ranks", f->ranks,
                "run every training, sampling and evaluation stage on this many MPI processes (mpiexec -n N, data "
                "parallel); the corpus, tokenizer and data stages take seconds and stay in one")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  c->callback([f] {
    if (f->ranks > 1 && !have_mpi()) throw Error("recipe --ranks: this build has no MPI (install libmpich-dev and rebuild)");
    const Preset p = preset(f->preset);
    const fs::path out = f->out.empty() ? fs::path("runs") / ("recipe-" + p.name) : fs::path(f->out);
    fs::create_directories(out / "stages");
    fs::create_directories(out / "configs");
    write_file_atomic((out / "configs" / "teacher.json").string(), p.teacher.dump(2) + "\n");
    write_file_atomic((out / "configs" / "student.json").string(), p.student.dump(2) + "\n");
    const std::string O = out.string();
    // The problems every stage draws: difficulties and kinds.
    const std::string diff = "--min-difficulty " + std::to_string(p.min_difficulty) + " --max-difficulty " +
                             std::to_string(p.max_difficulty) + " --kinds " + p.kinds;
    // The corpus's share of Countdown: the share of the kinds that are Countdown.
    const std::vector<TaskKind> kinds = parse_task_kinds(p.kinds);
    const std::string countdown_fraction =
        strfmt("%g", double(std::count(kinds.begin(), kinds.end(), TaskKind::Countdown)) / double(kinds.size()));
    auto split = [](const std::string& s) {
      std::vector<std::string> v;
      std::string cur;
      for (char ch : s) {
        if (ch == ' ') {
          if (!cur.empty()) v.push_back(cur);
          cur.clear();
        } else {
          cur += ch;
        }
      }
      if (!cur.empty()) v.push_back(cur);
      return v;
    };
    auto eval_args = [&](const std::string& model, const std::string& name) {
      return split("eval -m " + O + "/" + model + " " + diff + " --problems " + std::to_string(p.eval_problems) +
                   " --greedy-problems " + std::to_string(p.eval_greedy_problems) +
                   " --samples " + std::to_string(p.eval_samples) + " --max-new-tokens " + std::to_string(p.max_new_tokens) +
                   " --seed 11 --json " + O + "/eval-" + name + ".json" +
                   (name == "teacher-base" ? " --mtp-acceptance" : ""));
    };
    // `seek pretrain` of configs/<who>.json into pretrain-<who>: checkpoints every quarter, about 30
    // progress lines and 6 validations.
    auto pretrain_args = [&](const std::string& who, int64_t steps, const std::string& run = "") {
      auto every = [&](int64_t parts) { return std::to_string(std::max<int64_t>(1, steps / parts)); };
      return split("pretrain --config " + O + "/configs/" + who + ".json --data " + O + "/data --out " + O + "/pretrain-" +
                   (run.empty() ? who : run) +
                   " --steps " + std::to_string(steps) + " --batch " + std::to_string(p.batch) + " --seq-len " +
                   std::to_string(p.seq_len) + " --lr " + strfmt("%g", p.pretrain_lr) + " --warmup " + every(20) +
                   " --eval-every " + every(6) + " --save-every " + every(4) + " --log-every " + every(30));
    };
    struct Stage {
      std::string name;
      std::vector<std::string> args;
      std::function<void()> after;
    };
    double distill_seconds = 0;
    std::vector<Stage> stages = {
        {"corpus", split("corpus --out " + O + "/corpus.jsonl -n " + std::to_string(p.documents) + " --worked-fraction " +
                         std::to_string(p.worked_fraction) + " --min-difficulty " + std::to_string(p.corpus_min_difficulty) +
                         " --max-difficulty " + std::to_string(p.max_difficulty) + " --countdown-fraction " +
                         countdown_fraction + " --seed 7"), {}},
        {"tokenizer", split("tokenizer train --vocab-size " + std::to_string(p.vocab) + (p.split_digits ? " --split-digits" : "") +
                            " --out " + O + "/tokenizer " + O + "/corpus.jsonl"), {}},
        {"data", split("data --tokenizer " + O + "/tokenizer --out " + O + "/data " + O + "/corpus.jsonl"), {}},
        {"pretrain-teacher", pretrain_args("teacher", p.pretrain_steps),
         [&] { export_pretrained(out / "pretrain-teacher", out / "tokenizer", out / "teacher-base"); }},
        {"eval-teacher-base", eval_args("teacher-base", "teacher-base"), {}},
        {"grpo-teacher",
         split("grpo --policy " + O + "/teacher-base --out " + O + "/grpo-teacher --steps " + std::to_string(p.grpo_steps) +
               " --questions " + std::to_string(p.grpo_questions) + " --group " + std::to_string(p.grpo_group) +
               " --max-new-tokens " + std::to_string(p.max_new_tokens) + " --lr " + strfmt("%g", p.grpo_lr) + " --beta " +
               strfmt("%g", p.grpo_beta) + " " + diff + " --seed 3"),
         [&] {
           write_chat_defaults(out / "grpo-teacher" / "model",
                               {"seek-tiny", "the MoE teacher after GRPO (R1-Zero style: rule rewards, no SFT)", kCorpus, kExample});
         }},
        {"eval-teacher-grpo", eval_args("grpo-teacher/model", "teacher-grpo"), {}},
        {"pretrain-student", pretrain_args("student", p.student_steps),
         [&] { export_pretrained(out / "pretrain-student", out / "tokenizer", out / "student-base"); }},
        {"eval-student-base", eval_args("student-base", "student-base"), {}},
        {"distill",
         split("distill --teacher " + O + "/grpo-teacher/model --student " + O + "/student-base --out " + O +
               "/distill --questions " + std::to_string(p.distill_questions) + " --samples " +
               std::to_string(p.distill_samples) + " --max-per-question " + std::to_string(p.distill_max_per_question) +
               " --steps " + std::to_string(p.sft_steps) + " --lr " + strfmt("%g", p.sft_lr) + " " + diff + " --seed 5 --allow-no-traces"),
         [&] {
           write_chat_defaults(out / "distill" / "student",
                               {"seek-tiny-student", "the dense student distilled from the teacher's verified reasoning", kCorpus,
                                kExample});
         }},
        {"eval-student-distill", eval_args("distill/student", "student-distill"), {}},
        {"grpo-student", {}, {}},  // its time budget is distillation's wall time: built below
        {"eval-student-grpo", eval_args("grpo-student/model", "student-grpo"), {}},
    };
    if (f->ablation) {  // the same teacher, balanced by an auxiliary loss: the report compares the two
      std::vector<std::string> a = pretrain_args("teacher", p.pretrain_steps, "teacher-aux");
      a.insert(a.end(), {"--balance", "aux"});
      const auto at = std::find_if(stages.begin(), stages.end(), [](const Stage& s) { return s.name == "pretrain-teacher"; });
      stages.insert(at + 1, Stage{"pretrain-teacher-aux", a, {}});
    }
    const auto t0 = std::chrono::steady_clock::now();
    json record = json::object();   // by name, for the report
    json order = json::array();     // the names in the order they ran
    for (size_t i = 0; i < stages.size(); ++i) {
      Stage& s = stages[i];
      const fs::path marker = out / "stages" / (s.name + ".json");
      if (s.name == "grpo-student") {
        s.args = split("grpo --policy " + O + "/student-base --out " + O + "/grpo-student --steps 100000 --questions " +
                       std::to_string(p.grpo_questions) + " --group " + std::to_string(p.grpo_group) + " --max-new-tokens " +
                       std::to_string(p.max_new_tokens) + " --lr " + strfmt("%g", p.grpo_lr) + " --beta " +
                       strfmt("%g", p.grpo_beta) + " " + diff + " --seed 3 --max-seconds " + strfmt("%.0f", std::max(1.0, distill_seconds)));
      }
      if (fs::exists(marker)) {
        std::ifstream in(marker);
        record[s.name] = json::parse(in);
        std::fprintf(stderr, "recipe [%zu/%zu] %s: done earlier, skipped\n", i + 1, stages.size(), s.name.c_str());
      } else {
        // Every stage that trains, samples or evaluates runs data parallel. The student's GRPO gets
        // distillation's wall time on as many ranks, so the comparison stays fair.
        const bool spread = s.name != "corpus" && s.name != "tokenizer" && s.name != "data";
        const std::string launcher = spread && f->ranks > 1 ? "mpiexec -n " + std::to_string(f->ranks) + " " : "";
        std::fprintf(stderr, "recipe [%zu/%zu] %s: %s%s\n", i + 1, stages.size(), s.name.c_str(), launcher.c_str(),
                     join(s.args).c_str());
        const auto ts = std::chrono::steady_clock::now();
        run_child(s.args, spread ? f->ranks : 1);
        if (s.after) s.after();
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
        record[s.name] = json{{"command", launcher + join(s.args)}, {"seconds", secs}};
        write_file_atomic(marker.string(), record[s.name].dump(2) + "\n");
      }
      order.push_back(s.name);
      if (s.name == "distill") distill_seconds = record[s.name]["seconds"].get<double>();
      std::fprintf(stderr, "recipe: %s elapsed\n", format_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()).c_str());
    }
    write_recipe_report(out.string(), p.name, record, order);
    std::printf("recipe: report card in %s/report.md (figures in report.json)\n", O.c_str());
  });
}

}  // namespace seek
