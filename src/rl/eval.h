// eval.h — evaluating a model on held-out verifiable problems, as the R1-Zero recipe reports it
// (DeepSeek-R1 §2.2.4 / §3: pass@1 estimated from k samples at temperature > 0, and greedy):
// pass@1 greedy, pass@1 sampled, pass@k (k = 1, 2, 4, … up to the samples, and the samples
// themselves; the unbiased estimator of rl/passk.h), the format rate, the mean completion length and
// how often the model opens a <think> block, overall and by task kind and by difficulty.
//
// evaluate() generates (rl/rollout.h: greedy = one sample at temperature 0, sampled = `samples` per
// problem at temperature 1) and hands the rollouts to summarize(), a pure function, so the arithmetic
// of the metrics is tested on hand-made rollouts. Also here: the JSON form of a result (to_json /
// eval_result_from_json, for report.json and for resuming a recipe stage) and markdown tables for the
// report card, several results side by side.
//
// Definitions, per completion (Rollout):
//   correct     reward.correct (check_answer on the first <answer> span; rl/reward.h)
//   formatted   reward.formatted (exactly <think>…</think><answer>…</answer>)
//   length      generated tokens, the EOS excluded (completion.size() − finished)
//   thinks      the text opens a reasoning block: "<think>" after optional whitespace
//   truncated   cut at max_new_tokens (no EOS)
// Not here: the GRPO training loop, MTP acceptance (rl/mtp_accept.h), KV figures (rl/report_figures.h).
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "model/model.h"
#include "model/tokenizer.h"
#include "rl/reward.h"
#include "rl/rollout.h"
#include "data/tasks.h"

namespace seek::rl {

struct EvalOptions {
  std::vector<TaskKind> kinds = {TaskKind::Arithmetic, TaskKind::Countdown};
  int min_difficulty = 1, max_difficulty = 3;  // problem i of a kind has difficulty min + i mod (max − min + 1)
  int64_t problems = 64;         // per kind, sampled (pass@k) and greedy
  int64_t greedy_problems = 0;   // per kind, greedy only: at least `problems` (0: `problems`). Greedy
                                 // pass@1 needs many problems for a tight interval; pass@k is costlier
  int64_t samples = 16;          // sampled completions per problem (pass@k for k up to this)
  float temperature = 1.0f, top_p = 1.0f;  // the sampled completions' (a model's chat defaults, to measure them)
  int64_t max_new_tokens = 256;
  uint64_t seed = 1;             // problems and sampling
  double heldout_fraction = kDefaultHeldOutFraction;  // as in training: split_of must agree
  RewardWeights weights;
  Split split = Split::HeldOut;
  int64_t batch = 64;            // sequences per generation batch
  int64_t draft_tokens = 0;      // MTP drafts per step (speculative decoding: the same results' law)
  Communicator* comm = nullptr;  // ranks that share the problems (rl/rollout.h); null: world()
};

// Metrics of a group of problems (one kind, one difficulty).
struct EvalGroup {
  int64_t problems = 0;  // greedy; the sampled metrics cover those of them that were sampled
  double pass1_greedy = 0;
  std::map<int64_t, double> pass_at_k;  // same ks as the whole result
  double format_rate = 0;               // sampled
  double mean_length = 0;               // sampled
};

struct EvalResult {
  double pass1_greedy = 0;        // share of problems whose greedy completion is correct
  double pass1_sampled = 0;       // mean accuracy of the sampled completions (= pass_at_k[1])
  std::map<int64_t, double> pass_at_k;  // k → mean unbiased pass@k over problems
  double format_rate = 0, format_rate_greedy = 0;
  double mean_length = 0, mean_length_greedy = 0;  // completion tokens, EOS excluded
  double think_rate = 0, think_rate_greedy = 0;    // share of completions that open <think>
  // Accuracy of the sampled completions that open <think> and of those that do not (0 when there are
  // none): whether reasoning pays for this model, the thing R1-Zero's RL has to discover.
  double accuracy_thinking = 0, accuracy_direct = 0;
  double truncated_rate = 0;      // share of sampled completions cut at max_new_tokens
  std::map<std::string, EvalGroup> by_kind;  // "arithmetic" | "countdown"
  std::map<int, EvalGroup> by_difficulty;
  int64_t problems = 0;           // greedy: every problem
  int64_t sampled_problems = 0;   // the problems that were also sampled (the sampled metrics' n)
  int64_t samples = 0;
  double seconds = 0;             // generation wall time (0 from summarize)
};

// How sure a share measured on n problems is: Wilson's 95% score interval (good near 0% and 100%,
// where p ± 1.96·sqrt(p(1 − p)/n) is not).
struct Interval {
  double lo = 0, hi = 0;
};
Interval wilson_interval(double p, int64_t n);
// The half-width of the 95% interval of p1 − p2, two shares measured on n1 and n2 problems drawn
// independently (normal approximation): 1.96·sqrt(p1(1 − p1)/n1 + p2(1 − p2)/n2).
double difference_halfwidth(double p1, int64_t n1, double p2, int64_t n2);

// The ks reported for n samples: 1, 2, 4, 8, … ≤ n, and n itself.
std::vector<int64_t> pass_ks(int64_t samples);

// Whether the completion text opens a <think> block (optional leading whitespace, then "<think>").
bool opens_think(const std::string& text);

// Problems per kind evaluated greedy: max(problems, greedy_problems).
inline int64_t greedy_per_kind(const EvalOptions& o) { return o.greedy_problems > o.problems ? o.greedy_problems : o.problems; }

// The problems evaluate() uses: for each kind in order, max(problems, greedy_problems) problems of the
// split, make_split_problem(kind, difficulty(i), split, seed, i, heldout_fraction); the first
// `problems` of each kind are also sampled. Throws Error on bad options (no kinds, difficulties
// outside 1..6 or min > max, problems or samples < 1, greedy_problems below problems).
std::vector<Problem> eval_problems(const EvalOptions& o);

// The metrics of rollouts already scored: greedy holds one rollout per problem, sampled `samples`
// per problem for some of the problems, problem-major in increasing problem order (rollout.problem
// indexes `problems`). Either may be empty (its metrics stay 0). Throws Error when the counts or
// indices do not match.
EvalResult summarize(const std::vector<Problem>& problems, const std::vector<Rollout>& greedy,
                     const std::vector<Rollout>& sampled, int64_t samples);

// Generates and summarizes. Over a group of ranks, each generates its share of the problems and every
// rank returns the whole result, the same as one process's. Writes a progress line (done/total
// sequences, rate, ETA) to `progress` every few seconds when it is not null.
EvalResult evaluate(Model& model, const Tokenizer& tok, const EvalOptions& o, std::FILE* progress = nullptr);

nlohmann::json to_json(const EvalResult& r);
EvalResult eval_result_from_json(const nlohmann::json& j);  // throws Error naming a missing field

// One row per named result (a model or a stage): pass@1 greedy and sampled, pass@k, format, think
// and length. The k columns are the union of the rows' ks.
std::string eval_table_md(const std::vector<std::pair<std::string, EvalResult>>& rows);
// One result broken down: a row per kind, then per difficulty.
std::string eval_breakdown_md(const EvalResult& r);

}  // namespace seek::rl
