// eval.cpp — see eval.h.
#include "rl/eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "rl/passk.h"
#include "util/error.h"
#include "util/rng.h"

namespace seek::rl {

Interval wilson_interval(double p, int64_t n) {
  if (n <= 0) return {0, 1};
  const double z = 1.96, z2 = z * z, nn = double(n);
  const double mid = (p + z2 / (2 * nn)) / (1 + z2 / nn);
  const double half = z * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / (1 + z2 / nn);
  return {std::max(0.0, mid - half), std::min(1.0, mid + half)};
}

double difference_halfwidth(double p1, int64_t n1, double p2, int64_t n2) {
  if (n1 <= 0 || n2 <= 0) return 1;
  return 1.96 * std::sqrt(p1 * (1 - p1) / double(n1) + p2 * (1 - p2) / double(n2));
}

std::vector<int64_t> pass_ks(int64_t samples) {
  std::vector<int64_t> ks;
  for (int64_t k = 1; k <= samples; k *= 2) ks.push_back(k);
  if (samples >= 1 && ks.back() != samples) ks.push_back(samples);
  return ks;
}

bool opens_think(const std::string& text) {
  size_t i = text.find_first_not_of(" \t\r\n");
  return i != std::string::npos && text.compare(i, 7, "<think>") == 0;
}

std::vector<Problem> eval_problems(const EvalOptions& o) {
  if (o.kinds.empty()) throw Error("eval: no task kinds");
  if (o.min_difficulty < 1 || o.max_difficulty > kMaxDifficulty || o.min_difficulty > o.max_difficulty)
    throw Error(strfmt("eval: difficulties %d..%d: expected 1 <= min <= max <= %d", o.min_difficulty,
                       o.max_difficulty, kMaxDifficulty));
  if (o.problems < 1) throw Error("eval: problems must be at least 1");
  if (o.samples < 1) throw Error("eval: samples must be at least 1");
  if (o.greedy_problems != 0 && o.greedy_problems < o.problems)
    throw Error(strfmt("eval: greedy problems (%lld) must be at least the sampled problems (%lld)",
                       (long long)o.greedy_problems, (long long)o.problems));
  const int levels = o.max_difficulty - o.min_difficulty + 1;
  const int64_t per_kind = greedy_per_kind(o);
  std::vector<Problem> out;
  for (TaskKind kind : o.kinds)
    for (int64_t i = 0; i < per_kind; ++i)
      out.push_back(make_split_problem(kind, o.min_difficulty + int(i % levels), o.split, o.seed, uint64_t(i),
                                       o.heldout_fraction));
  return out;
}

namespace {

int64_t length_of(const Rollout& r) { return int64_t(r.completion.size()) - (r.finished ? 1 : 0); }

// Per-problem tallies, from which every metric (overall and per group) is a mean.
struct Tally {
  bool greedy_correct = false;
  int64_t n = 0, correct = 0, formatted = 0, tokens = 0;
};

EvalGroup group_of(const std::vector<const Tally*>& ts, const std::vector<int64_t>& ks, bool has_greedy) {
  EvalGroup g;
  g.problems = int64_t(ts.size());
  if (ts.empty()) return g;
  int64_t n = 0, formatted = 0, tokens = 0, greedy = 0;
  std::vector<PassCounts> counts;
  for (const Tally* t : ts) {
    greedy += t->greedy_correct;
    n += t->n, formatted += t->formatted, tokens += t->tokens;
    if (t->n > 0) counts.push_back({t->n, t->correct});  // sampled problems only
  }
  if (has_greedy) g.pass1_greedy = double(greedy) / double(ts.size());
  if (n > 0) {
    for (int64_t k : ks) g.pass_at_k[k] = mean_pass_at_k(counts, k);
    g.format_rate = double(formatted) / double(n);
    g.mean_length = double(tokens) / double(n);
  }
  return g;
}

}  // namespace

EvalResult summarize(const std::vector<Problem>& problems, const std::vector<Rollout>& greedy,
                     const std::vector<Rollout>& sampled, int64_t samples) {
  const size_t P = problems.size();
  if (samples < 1) throw Error("eval: samples must be at least 1");
  if (!greedy.empty() && greedy.size() != P)
    throw Error(strfmt("eval: %zu greedy rollouts for %zu problems (expected one each)", greedy.size(), P));
  if (sampled.size() % size_t(samples) != 0)
    throw Error(strfmt("eval: %zu sampled rollouts: expected a multiple of %lld samples", sampled.size(),
                       (long long)samples));
  EvalResult r;
  r.problems = int64_t(P);
  r.sampled_problems = int64_t(sampled.size() / size_t(samples));
  r.samples = sampled.empty() ? 0 : samples;
  std::vector<Tally> tally(P);
  for (size_t j = 0; j < greedy.size(); ++j) {
    const Rollout& g = greedy[j];
    if (g.problem != int64_t(j)) throw Error(strfmt("eval: greedy rollout %zu is of problem %lld", j, (long long)g.problem));
    tally[j].greedy_correct = g.reward.correct;
    r.format_rate_greedy += g.reward.formatted;
    r.mean_length_greedy += double(length_of(g));
    r.think_rate_greedy += opens_think(g.text);
  }
  double n_by_style[2] = {0, 0}, correct_by_style[2] = {0, 0};  // [opens <think>]
  const size_t S = size_t(samples);
  for (size_t b = 0; b < sampled.size(); b += S) {  // blocks of `samples`, one problem each, increasing
    const int64_t j = sampled[b].problem;
    if (j < 0 || j >= int64_t(P) || (b > 0 && j <= sampled[b - S].problem))
      throw Error(strfmt("eval: sampled rollout %zu is of problem %lld (expected problem-major order, each problem "
                         "once, below %zu)", b, (long long)j, P));
    for (size_t i = b; i < b + S; ++i)
      if (sampled[i].problem != j)
        throw Error(strfmt("eval: sampled rollout %zu is of problem %lld (expected problem-major order)", i,
                           (long long)sampled[i].problem));
  }
  for (const Rollout& s : sampled) {
    Tally& t = tally[size_t(s.problem)];
    t.n += 1, t.correct += s.reward.correct, t.formatted += s.reward.formatted, t.tokens += length_of(s);
    const bool thinks = opens_think(s.text);
    r.think_rate += thinks;
    n_by_style[thinks] += 1;
    correct_by_style[thinks] += s.reward.correct;
    r.truncated_rate += !s.finished;
  }
  if (n_by_style[1]) r.accuracy_thinking = correct_by_style[1] / n_by_style[1];
  if (n_by_style[0]) r.accuracy_direct = correct_by_style[0] / n_by_style[0];
  if (!greedy.empty()) {
    r.format_rate_greedy /= double(P), r.mean_length_greedy /= double(P), r.think_rate_greedy /= double(P);
  }
  if (!sampled.empty()) r.think_rate /= double(sampled.size()), r.truncated_rate /= double(sampled.size());

  const std::vector<int64_t> ks = sampled.empty() ? std::vector<int64_t>{} : pass_ks(samples);
  std::vector<const Tally*> all;
  std::map<std::string, std::vector<const Tally*>> kinds;
  std::map<int, std::vector<const Tally*>> levels;
  for (size_t j = 0; j < P; ++j) {
    all.push_back(&tally[j]);
    kinds[task_kind_name(problems[j].kind)].push_back(&tally[j]);
    levels[problems[j].difficulty].push_back(&tally[j]);
  }
  EvalGroup whole = group_of(all, ks, !greedy.empty());
  r.pass1_greedy = whole.pass1_greedy;
  r.pass_at_k = whole.pass_at_k;
  r.pass1_sampled = ks.empty() ? 0.0 : whole.pass_at_k.at(1);
  r.format_rate = whole.format_rate;
  r.mean_length = whole.mean_length;
  for (auto& [name, ts] : kinds) r.by_kind[name] = group_of(ts, ks, !greedy.empty());
  for (auto& [d, ts] : levels) r.by_difficulty[d] = group_of(ts, ks, !greedy.empty());
  return r;
}

EvalResult evaluate(Model& model, const Tokenizer& tok, const EvalOptions& o, std::FILE* progress) {
  const std::vector<Problem> problems = eval_problems(o);
  if (o.batch < 1) throw Error("eval: batch must be at least 1");
  Communicator& comm = or_world(o.comm);
  const auto t0 = std::chrono::steady_clock::now();
  // The sampled problems: the first o.problems of each kind (eval_problems lays the kinds out in turn).
  const int64_t per_kind = greedy_per_kind(o);
  std::vector<Problem> sampled_set;
  std::vector<int64_t> index;  // in `problems`
  for (int64_t j = 0; j < int64_t(problems.size()); ++j)
    if (j % per_kind < o.problems) sampled_set.push_back(problems[size_t(j)]), index.push_back(j);
  // Progress of this rank's share, both passes together: sequences done, rate, ETA.
  auto last = t0;
  int64_t before = 0;  // the greedy pass's sequences, once it is done
  auto show = [&](const char* what, int64_t left_after) {
    return [&, what, left_after](const std::vector<Rollout>&, int64_t done, int64_t total) {
      const auto now = std::chrono::steady_clock::now();
      if (!progress || std::chrono::duration<double>(now - last).count() < 5.0) return;
      const double s = std::chrono::duration<double>(now - t0).count(), rate = double(before + done) / s;
      const int64_t all = before + total + left_after;
      std::fprintf(progress, "eval: %s, %lld/%lld sequences%s, %.1f sequences/s, ETA %.0f s\n", what,
                   (long long)(before + done), (long long)all, comm.size() > 1 ? " (rank 0's share)" : "", rate,
                   double(all - before - done) / rate);
      std::fflush(progress);
      last = now;
    };
  };
  const int64_t N = comm.size(), sampled_left = int64_t(sampled_set.size()) * o.samples / N;
  RolloutOptions ro;
  ro.max_new_tokens = o.max_new_tokens;
  ro.batch = o.batch;
  ro.weights = o.weights;
  ro.samples = 1;
  ro.draft_tokens = o.draft_tokens;
  ro.temperature = 0.0f;
  ro.seed = mix64(o.seed, 1);
  std::vector<Rollout> greedy = chunked_rollouts(model, tok, problems, ro, comm, show("greedy", sampled_left));
  before = int64_t(problems.size()) / N;
  ro.samples = o.samples;
  ro.temperature = o.temperature;
  ro.top_p = o.top_p;
  ro.seed = mix64(o.seed, 2);
  std::vector<Rollout> sampled = chunked_rollouts(model, tok, sampled_set, ro, comm, show("sampled", 0));
  for (Rollout& r : sampled) r.problem = index[size_t(r.problem)];
  EvalResult r = summarize(problems, greedy, sampled, o.samples);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// --- JSON ------------------------------------------------------------------------------------------

namespace {

nlohmann::json ks_json(const std::map<int64_t, double>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (auto& [k, v] : m) j[std::to_string(k)] = v;
  return j;
}

nlohmann::json group_json(const EvalGroup& g) {
  return {{"problems", g.problems}, {"pass1_greedy", g.pass1_greedy}, {"pass_at_k", ks_json(g.pass_at_k)},
          {"format_rate", g.format_rate}, {"mean_length", g.mean_length}};
}

const nlohmann::json& field(const nlohmann::json& j, const char* name, const std::string& where) {
  if (!j.is_object() || !j.contains(name)) throw Error(where + ": missing field \"" + name + "\"");
  return j.at(name);
}

template <class T>
T get(const nlohmann::json& j, const char* name, const std::string& where) {
  try {
    return field(j, name, where).get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": field \"" + name + "\": " + e.what());
  }
}

std::map<int64_t, double> ks_from(const nlohmann::json& j, const std::string& where) {
  std::map<int64_t, double> m;
  const nlohmann::json& o = field(j, "pass_at_k", where);
  if (!o.is_object()) throw Error(where + ": field \"pass_at_k\" must be an object");
  for (auto& [k, v] : o.items()) {
    try {
      m[std::stoll(k)] = v.get<double>();
    } catch (const std::exception&) {
      throw Error(where + ": pass_at_k \"" + k + "\" is not k: number");
    }
  }
  return m;
}

EvalGroup group_from(const nlohmann::json& j, const std::string& where) {
  EvalGroup g;
  g.problems = get<int64_t>(j, "problems", where);
  g.pass1_greedy = get<double>(j, "pass1_greedy", where);
  g.pass_at_k = ks_from(j, where);
  g.format_rate = get<double>(j, "format_rate", where);
  g.mean_length = get<double>(j, "mean_length", where);
  return g;
}

}  // namespace

nlohmann::json to_json(const EvalResult& r) {
  nlohmann::json j = {{"pass1_greedy", r.pass1_greedy},
                      {"pass1_sampled", r.pass1_sampled},
                      {"pass_at_k", ks_json(r.pass_at_k)},
                      {"format_rate", r.format_rate},
                      {"format_rate_greedy", r.format_rate_greedy},
                      {"mean_length", r.mean_length},
                      {"mean_length_greedy", r.mean_length_greedy},
                      {"think_rate", r.think_rate},
                      {"think_rate_greedy", r.think_rate_greedy},
                      {"accuracy_thinking", r.accuracy_thinking},
                      {"accuracy_direct", r.accuracy_direct},
                      {"truncated_rate", r.truncated_rate},
                      {"problems", r.problems},
                      {"sampled_problems", r.sampled_problems},
                      {"samples", r.samples},
                      {"seconds", r.seconds}};
  j["by_kind"] = nlohmann::json::object();
  for (auto& [name, g] : r.by_kind) j["by_kind"][name] = group_json(g);
  j["by_difficulty"] = nlohmann::json::object();
  for (auto& [d, g] : r.by_difficulty) j["by_difficulty"][std::to_string(d)] = group_json(g);
  return j;
}

EvalResult eval_result_from_json(const nlohmann::json& j) {
  const std::string w = "eval result";
  EvalResult r;
  r.pass1_greedy = get<double>(j, "pass1_greedy", w);
  r.pass1_sampled = get<double>(j, "pass1_sampled", w);
  r.pass_at_k = ks_from(j, w);
  r.format_rate = get<double>(j, "format_rate", w);
  r.format_rate_greedy = get<double>(j, "format_rate_greedy", w);
  r.mean_length = get<double>(j, "mean_length", w);
  r.mean_length_greedy = get<double>(j, "mean_length_greedy", w);
  r.think_rate = get<double>(j, "think_rate", w);
  r.think_rate_greedy = get<double>(j, "think_rate_greedy", w);
  r.accuracy_thinking = j.value("accuracy_thinking", 0.0);  // absent from results written before them
  r.accuracy_direct = j.value("accuracy_direct", 0.0);
  r.truncated_rate = get<double>(j, "truncated_rate", w);
  r.problems = get<int64_t>(j, "problems", w);
  r.samples = get<int64_t>(j, "samples", w);
  r.sampled_problems = j.value("sampled_problems", r.samples ? r.problems : int64_t(0));  // before the split: all
  r.seconds = get<double>(j, "seconds", w);
  for (auto& [name, g] : field(j, "by_kind", w).items()) r.by_kind[name] = group_from(g, w + ": by_kind." + name);
  for (auto& [d, g] : field(j, "by_difficulty", w).items()) {
    int level = 0;
    try {
      level = std::stoi(d);
    } catch (const std::exception&) {
      throw Error(w + ": by_difficulty key \"" + d + "\" is not a difficulty");
    }
    r.by_difficulty[level] = group_from(g, w + ": by_difficulty." + d);
  }
  return r;
}

// --- Markdown --------------------------------------------------------------------------------------

namespace {

std::string pct(double x) { return strfmt("%.1f%%", 100 * x); }

std::string ks_cell(const std::map<int64_t, double>& m, int64_t k) {
  auto it = m.find(k);
  return it == m.end() ? "–" : pct(it->second);
}

}  // namespace

std::string eval_table_md(const std::vector<std::pair<std::string, EvalResult>>& rows) {
  std::set<int64_t> ks;
  for (auto& [name, r] : rows)
    for (auto& [k, v] : r.pass_at_k) ks.insert(k);
  ks.erase(1);  // pass@1 sampled has its own column
  std::string s = "| model | problems | pass@1 greedy | pass@1 sampled |";
  for (int64_t k : ks) s += strfmt(" pass@%lld |", (long long)k);
  s += " format (sampled) | format (greedy) | opens <think> | accuracy when thinking | accuracy when not | length (sampled) | length (greedy) |\n|---|--:|--:|--:|";
  for (size_t i = 0; i < ks.size(); ++i) s += "--:|";
  s += "--:|--:|--:|--:|--:|--:|--:|\n";
  for (auto& [name, r] : rows) {
    const std::string n = r.samples && r.sampled_problems != r.problems
                              ? strfmt("%lld (%lld sampled)", (long long)r.problems, (long long)r.sampled_problems)
                              : std::to_string(r.problems);
    s += strfmt("| %s | %s | %s | %s |", name.c_str(), n.c_str(), pct(r.pass1_greedy).c_str(),
                r.samples ? pct(r.pass1_sampled).c_str() : "–");
    for (int64_t k : ks) s += strfmt(" %s |", ks_cell(r.pass_at_k, k).c_str());
    s += strfmt(" %s | %s | %s | %s | %s | %.1f | %.1f |\n", pct(r.format_rate).c_str(), pct(r.format_rate_greedy).c_str(),
                pct(r.think_rate).c_str(), r.samples && r.think_rate > 0 ? pct(r.accuracy_thinking).c_str() : "–",
                r.samples && r.think_rate < 1 ? pct(r.accuracy_direct).c_str() : "–", r.mean_length, r.mean_length_greedy);
  }
  return s;
}

std::string eval_breakdown_md(const EvalResult& r) {
  std::vector<int64_t> ks;
  for (auto& [k, v] : r.pass_at_k) ks.push_back(k);
  std::string s = "| group | problems | pass@1 greedy |";
  for (int64_t k : ks) s += strfmt(" pass@%lld |", (long long)k);
  s += " format (sampled) | length (sampled) |\n|---|--:|--:|";
  for (size_t i = 0; i < ks.size(); ++i) s += "--:|";
  s += "--:|--:|\n";
  auto row = [&](const std::string& name, const EvalGroup& g) {
    s += strfmt("| %s | %lld | %s |", name.c_str(), (long long)g.problems, pct(g.pass1_greedy).c_str());
    for (int64_t k : ks) s += strfmt(" %s |", ks_cell(g.pass_at_k, k).c_str());
    s += strfmt(" %s | %.1f |\n", pct(g.format_rate).c_str(), g.mean_length);
  };
  for (auto& [name, g] : r.by_kind) row(name, g);
  for (auto& [d, g] : r.by_difficulty) row(strfmt("difficulty %d", d), g);
  return s;
}

}  // namespace seek::rl
