// rejection.cpp — see rejection.h.
#include "distill/rejection.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "util/atomic_file.h"
#include "util/error.h"
#include "util/rng.h"

namespace seek::distill {

using json = nlohmann::json;

std::vector<Problem> training_questions(const QuestionOptions& o) {
  if (o.count < 0) throw Error(strfmt("questions: count %lld must be >= 0", (long long)o.count));
  if (o.kinds.empty()) throw Error("questions: no task kinds given");
  if (o.min_difficulty < 1 || o.max_difficulty > kMaxDifficulty || o.min_difficulty > o.max_difficulty)
    throw Error(strfmt("questions: difficulties %d..%d: expected 1 <= min <= max <= %d", o.min_difficulty,
                       o.max_difficulty, kMaxDifficulty));
  SplitMix64 rng(mix64(o.seed, 0x64697374696c6cull));  // "distill"
  std::vector<Problem> out;
  std::set<uint64_t> seen;
  const int64_t max_draws = 20 * o.count + 100;
  for (int64_t i = 0; i < max_draws && int64_t(out.size()) < o.count; ++i) {
    const TaskKind kind = o.kinds[size_t(i) % o.kinds.size()];
    const int d = int(rng.range(o.min_difficulty, o.max_difficulty));
    Problem p = make_split_problem(kind, d, Split::Train, o.seed, uint64_t(i), o.heldout_fraction);
    if (seen.insert(p.id).second) out.push_back(std::move(p));
  }
  return out;
}

std::vector<Trace> select_traces(const std::vector<Problem>& problems, const std::vector<rl::Rollout>& rollouts,
                                 int64_t max_per_question, int32_t eos, RejectionStats* stats) {
  RejectionStats s;
  s.questions = int64_t(problems.size());
  s.samples = int64_t(rollouts.size());
  std::vector<std::set<std::vector<int32_t>>> kept(problems.size());
  std::vector<Trace> out;
  for (const rl::Rollout& r : rollouts) {
    if (r.problem < 0 || size_t(r.problem) >= problems.size())
      throw Error(strfmt("select_traces: rollout names problem %lld of %zu", (long long)r.problem, problems.size()));
    s.tokens += int64_t(r.completion.size());
    s.correct += r.reward.correct;
    s.formatted += r.reward.formatted;
    if (!(r.reward.correct && r.reward.formatted)) continue;
    s.correct_and_formatted++;
    std::vector<int32_t> completion = r.completion;
    if (completion.empty() || completion.back() != eos) completion.push_back(eos);
    auto& mine = kept[size_t(r.problem)];
    if (mine.count(completion)) {
      s.duplicates++;
      continue;
    }
    if (int64_t(mine.size()) >= max_per_question) {
      s.capped++;
      continue;
    }
    mine.insert(completion);
    out.push_back({problems[size_t(r.problem)], r.prompt, std::move(completion), r.text});
  }
  s.kept = int64_t(out.size());
  for (const auto& k : kept) s.questions_with_trace += !k.empty();
  if (stats) {
    stats->questions += s.questions;
    stats->samples += s.samples;
    stats->correct += s.correct;
    stats->formatted += s.formatted;
    stats->correct_and_formatted += s.correct_and_formatted;
    stats->duplicates += s.duplicates;
    stats->capped += s.capped;
    stats->kept += s.kept;
    stats->questions_with_trace += s.questions_with_trace;
    stats->tokens += s.tokens;
    stats->share_with_trace = stats->questions ? double(stats->questions_with_trace) / double(stats->questions) : 0.0;
  }
  return out;
}

std::vector<Trace> rejection_sample(Model& teacher, const Tokenizer& tok, const std::vector<Problem>& questions,
                                    const RejectionOptions& o, RejectionStats* stats, std::FILE* progress) {
  if (o.samples < 1 || o.batch < 1 || o.max_per_question < 1 || o.max_new_tokens < 1)
    throw Error(strfmt("rejection sampling: samples %lld, batch %lld, max_per_question %lld and max_new_tokens %lld "
                       "must all be >= 1",
                       (long long)o.samples, (long long)o.batch, (long long)o.max_per_question,
                       (long long)o.max_new_tokens));
  const int32_t eos = tok.token_id("<|eos|>");
  if (eos < 0) throw Error("rejection sampling: the tokenizer has no <|eos|> token");
  const auto t0 = std::chrono::steady_clock::now();
  Communicator& comm = or_world(o.comm);
  rl::RolloutOptions ro;
  ro.samples = o.samples;
  ro.temperature = o.temperature;
  ro.max_new_tokens = o.max_new_tokens;
  ro.batch = o.batch;
  ro.seed = o.seed;
  // The progress line tallies this rank's chunks as they come.
  int64_t correct = 0, formatted = 0, tokens = 0;
  auto show = [&](const std::vector<rl::Rollout>& chunk, int64_t done, int64_t total) {
    for (const rl::Rollout& r : chunk) correct += r.reward.correct, formatted += r.reward.formatted, tokens += int64_t(r.completion.size());
    if (!progress) return;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double rate = double(done) / std::max(secs, 1e-9);
    std::fprintf(progress, "rejection sampling: %lld/%lld samples%s, %.1f%% correct, %.1f%% formatted | %.0f tok/s | ETA %.0f s\n",
                 (long long)done, (long long)total, comm.size() > 1 ? " (rank 0's share)" : "",
                 100.0 * double(correct) / double(std::max<int64_t>(1, done)),
                 100.0 * double(formatted) / double(std::max<int64_t>(1, done)), double(tokens) / std::max(secs, 1e-9),
                 double(total - done) / std::max(rate, 1e-9));
    std::fflush(progress);
  };
  const std::vector<rl::Rollout> rollouts = rl::chunked_rollouts(teacher, tok, questions, ro, comm, show);
  RejectionStats s;
  std::vector<Trace> out = select_traces(questions, rollouts, o.max_per_question, eos, &s);
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (stats) *stats = s;
  return out;
}

// --- JSON lines -------------------------------------------------------------------------------------

namespace {

json problem_json(const Problem& p) {
  json steps = json::array();
  for (const CountdownStep& s : p.steps) steps.push_back({s.lhs, s.rhs, std::string(1, s.op)});
  return {{"kind", task_kind_name(p.kind)}, {"difficulty", p.difficulty}, {"question", p.question},
          {"answer", p.answer}, {"numbers", p.numbers}, {"op", std::string(1, p.op)}, {"target", p.target},
          {"steps", steps}, {"id", p.id}};
}

Problem problem_from_json(const json& j) {
  Problem p;
  const std::string kind = j.at("kind").get<std::string>();
  if (kind == "arithmetic") p.kind = TaskKind::Arithmetic;
  else if (kind == "countdown") p.kind = TaskKind::Countdown;
  else throw Error("field \"problem.kind\" = \"" + kind + "\": expected arithmetic or countdown");
  p.difficulty = j.at("difficulty").get<int>();
  p.question = j.at("question").get<std::string>();
  p.answer = j.at("answer").get<std::string>();
  p.numbers = j.at("numbers").get<std::vector<int64_t>>();
  const std::string op = j.at("op").get<std::string>();
  if (op.size() != 1) throw Error("field \"problem.op\" = \"" + op + "\": expected one character");
  p.op = op[0];
  p.target = j.at("target").get<int64_t>();
  for (const json& s : j.at("steps")) {
    const std::string sop = s.at(2).get<std::string>();
    if (sop.size() != 1) throw Error("field \"problem.steps\": operator \"" + sop + "\" is not one character");
    p.steps.push_back({s.at(0).get<int>(), s.at(1).get<int>(), sop[0]});
  }
  p.id = j.at("id").get<uint64_t>();
  return p;
}

}  // namespace

void save_traces(const std::string& path, const std::vector<Trace>& traces) {
  std::string text;
  for (const Trace& t : traces) {
    json j = {{"problem", problem_json(t.problem)}, {"prompt", t.prompt}, {"completion", t.completion}, {"text", t.text}};
    // Replace rather than throw on invalid UTF-8 in a sampled text (ids are the ground truth).
    text += j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  write_file_atomic(path, text);
}

std::vector<Trace> load_traces(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::vector<Trace> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const json j = json::parse(line);
      Trace t;
      t.problem = problem_from_json(j.at("problem"));
      t.prompt = j.at("prompt").get<std::vector<int32_t>>();
      t.completion = j.at("completion").get<std::vector<int32_t>>();
      t.text = j.value("text", std::string());
      if (t.prompt.empty() || t.completion.empty()) throw Error("empty \"prompt\" or \"completion\"");
      out.push_back(std::move(t));
    } catch (const json::exception& e) {
      throw Error(strfmt("%s:%lld: not a trace: %s", path.c_str(), (long long)n, e.what()));
    } catch (const Error& e) {
      throw Error(strfmt("%s:%lld: %s", path.c_str(), (long long)n, e.what()));
    }
  }
  return out;
}

}  // namespace seek::distill
