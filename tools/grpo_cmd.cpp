// grpo_cmd.cpp — `seek grpo`: reinforcement learning with rule rewards (rl/grpo.h).
#include <memory>
#include <sstream>

#include "commands.h"
#include "engine/decode.h"
#include "rl/grpo.h"
#include "util/error.h"

namespace seek {

namespace {

rl::GrpoOptions::Variant parse_variant(const std::string& s) {
  if (s == "grpo") return rl::GrpoOptions::Grpo;
  if (s == "drgrpo") return rl::GrpoOptions::DrGrpo;
  if (s == "dapo") return rl::GrpoOptions::Dapo;
  throw Error("--variant " + s + ": expected grpo, drgrpo or dapo");
}

}  // namespace

void register_grpo_commands(CLI::App& app) {
  struct Flags {
    rl::GrpoRunOptions o;
    std::string kinds = "arithmetic,countdown", variant = "grpo";
    double eps_low = -1, eps_high = -1, beta = -1;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* c = app.add_subcommand("grpo", "reinforcement learning of a model with rule rewards (R1-Zero's GRPO)");
  rl::GrpoRunOptions& o = f->o;
  c->add_option("--policy", o.policy, "model directory to start from (with tokenizer.json)")->required();
  c->add_option("--out", o.out, "run directory: metrics.jsonl, grpo.svg, model/")->required();
  c->add_option("--steps", o.steps)->capture_default_str();
  c->add_option("--questions", o.questions, "problems per step")->capture_default_str();
  c->add_option("--group", o.group, "completions per problem (G)")->capture_default_str();
  c->add_option("--max-new-tokens", o.max_new_tokens)->capture_default_str();
  c->add_option("--temperature", o.temperature)->capture_default_str();
  add_draft_option(c, o.draft_tokens, "in rollouts; off by default: slower at rollout batch sizes")->capture_default_str();
  c->add_option("--inner", o.inner, "optimizer steps per batch of rollouts")->capture_default_str();
  c->add_option("--micro", o.micro, "sequences per forward/backward")->capture_default_str();
  c->add_option("--lr", o.lr)->capture_default_str();
  c->add_option("--warmup", o.warmup)->capture_default_str();
  c->add_option("--clip", o.clip, "global gradient norm limit")->capture_default_str();
  c->add_option("--variant", f->variant, "grpo, drgrpo or dapo (sets ε, β and normalization as its paper)")->capture_default_str();
  c->add_option("--eps-low", f->eps_low, "ratio clip below (default: the variant's)");
  c->add_option("--eps-high", f->eps_high, "ratio clip above (default: the variant's)");
  c->add_option("--beta", f->beta, "KL coefficient (default: the variant's)");
  c->add_flag("--dynamic-sampling", o.dynamic_sampling, "drop groups whose rewards are all equal (DAPO)");
  c->add_option("--ref-reset", o.ref_reset, "reset the reference to the policy every N steps (0 = never)")->capture_default_str();
  c->add_option("--reward-accuracy", o.weights.accuracy)->capture_default_str();
  c->add_option("--reward-format", o.weights.format)->capture_default_str();
  c->add_option("--kinds", f->kinds)->capture_default_str();
  c->add_option("--min-difficulty", o.min_difficulty)->capture_default_str();
  c->add_option("--max-difficulty", o.max_difficulty)->capture_default_str();
  c->add_option("--seed", o.seed)->capture_default_str();
  c->add_option("--max-seconds", o.max_seconds, "stop after this much wall time (0 = no limit)")->capture_default_str();
  c->add_option("--log-every", o.log_every)->capture_default_str();
  c->add_option("--save-every", o.save_every, "checkpoint interval in steps (a killed run resumes from the last)")
      ->capture_default_str();
  c->callback([f] {
    rl::GrpoRunOptions o = f->o;
    o.kinds = parse_task_kinds(f->kinds);
    o.loss = rl::GrpoOptions::preset(parse_variant(f->variant));
    if (f->eps_low >= 0) o.loss.eps_low = f->eps_low;
    if (f->eps_high >= 0) o.loss.eps_high = f->eps_high;
    if (f->beta >= 0) o.loss.beta = f->beta;
    const rl::GrpoResult r = rl::grpo(o);
    if (world().rank() == 0)
      std::printf("grpo: %lld steps in %.0f s; reward %.3f -> %.3f, accuracy %.1f%% -> %.1f%% (means of the first and last 5 steps); "
                "model in %s/model\n",
                (long long)r.steps, r.seconds, r.first_reward, r.last_reward, 100 * r.first_accuracy, 100 * r.last_accuracy,
                o.out.c_str());
  });
}

}  // namespace seek
