// recipe_report.cpp — see recipe_report.h.
#include "recipe_report.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "model/config.h"
#include "rl/eval.h"
#include "rl/report_figures.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/plot.h"
#include "util/progress.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace seek {

namespace {

json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw Error(p.string() + ": missing (its stage did not finish?)");
  return json::parse(in);
}

std::string pct(double x) { return std::isfinite(x) ? strfmt("%.1f%%", 100 * x) : "–"; }

// "77.8% [74.0–81.2]": a share of n problems with its 95% interval (rl::wilson_interval).
std::string share(double p, int64_t n) {
  const rl::Interval i = rl::wilson_interval(p, n);
  return pct(p) + strfmt(" [%.1f–%.1f]", 100 * i.lo, 100 * i.hi);
}

// "+7.4 points (±5.9)": p1 − p2 with the 95% interval of the difference; "not settled" when it spans 0.
bool settled(double p1, int64_t n1, double p2, int64_t n2) {
  return std::fabs(p1 - p2) > rl::difference_halfwidth(p1, n1, p2, n2);
}
std::string difference(double p1, int64_t n1, double p2, int64_t n2) {
  const double d = p1 - p2, h = rl::difference_halfwidth(p1, n1, p2, n2);
  return strfmt("%+.1f points (±%.1f%s)", 100 * d, 100 * h, settled(p1, n1, p2, n2) ? "" : ", not settled");
}
// A comparison claim's verdict: "yes" or "no" only when the 95% interval of the difference excludes 0.
const char* verdict(double p1, int64_t n1, double p2, int64_t n2) {
  if (!settled(p1, n1, p2, n2)) return p1 > p2 ? "not settled (ahead within the noise)" : "not settled";
  return p1 > p2 ? "yes" : "no";
}

// Mean of a column over its first or last k finite rows.
double edge_mean(const std::vector<double>& v, size_t k, bool first) {
  double s = 0;
  size_t n = 0;
  for (size_t i = 0; i < v.size() && n < k; ++i) {
    const double x = first ? v[i] : v[v.size() - 1 - i];
    if (std::isfinite(x)) s += x, ++n;
  }
  return n ? s / double(n) : NAN;
}

}  // namespace

void write_recipe_report(const std::string& out_dir, const std::string& preset, const json& stages, const json& order) {
  const fs::path out(out_dir), plots = out / "plots";
  fs::create_directories(plots);
  const std::vector<std::pair<std::string, std::string>> evals = {
      {"teacher-base", "teacher: pretrained MoE base"}, {"teacher-grpo", "teacher: after GRPO (R1-Zero)"},
      {"student-base", "student: pretrained dense base"}, {"student-distill", "student: distilled from the teacher"},
      {"student-grpo", "student: GRPO from its base, equal time"}};
  std::map<std::string, rl::EvalResult> res;
  std::vector<std::pair<std::string, rl::EvalResult>> rows;
  json eval_json = json::object();
  for (const auto& [key, label] : evals) {
    const json j = read_json(out / ("eval-" + key + ".json"));
    eval_json[key] = j;
    res[key] = rl::eval_result_from_json(j);
    rows.push_back({label, res[key]});
  }
  const json base = eval_json["teacher-base"];
  const int64_t kmax = res["teacher-base"].samples;
  auto passk = [&](const std::string& key, int64_t k) {
    const auto& m = res[key].pass_at_k;
    auto it = m.find(k);
    return it == m.end() ? NAN : it->second;
  };
  const double mtp = base.contains("mtp_acceptance") ? base["mtp_acceptance"].get<double>() : NAN;
  // Speculative decoding with that module (seek eval --mtp-acceptance): the speed at batch 1.
  const json spec = base.contains("speculative") ? base["speculative"] : json();
  const double spec_speedup = spec.is_object() ? spec["speedup"].get<double>() : NAN;

  // Curves: copy each run's plots next to the report, and measure what they show.
  auto copy_plot = [&](const fs::path& src, const std::string& name) {
    if (!fs::exists(src)) return std::string();
    fs::copy_file(src, plots / name, fs::copy_options::overwrite_existing);
    return "plots/" + name;
  };
  const std::string loss_svg = copy_plot(out / "pretrain-teacher" / "loss.svg", "teacher-pretrain-loss.svg");
  const std::string bal_svg = copy_plot(out / "pretrain-teacher" / "balance.svg", "teacher-expert-balance.svg");
  const std::string grpo_svg = copy_plot(out / "grpo-teacher" / "grpo.svg", "teacher-grpo.svg");
  const std::string sgrpo_svg = copy_plot(out / "grpo-student" / "grpo.svg", "student-grpo.svg");
  const std::string sloss_svg = copy_plot(out / "pretrain-student" / "loss.svg", "student-pretrain-loss.svg");
  const plot::Columns g = plot::drop_superseded(plot::read_jsonl((out / "grpo-teacher" / "metrics.jsonl").string()), "step");
  const double len0 = edge_mean(g.get("response_length"), 5, true), len1 = edge_mean(g.get("response_length"), 5, false);
  const double acc0 = edge_mean(g.get("accuracy"), 5, true), acc1 = edge_mean(g.get("accuracy"), 5, false);
  const plot::Columns pm = plot::drop_superseded(plot::read_jsonl((out / "pretrain-teacher" / "metrics.jsonl").string()), "step");
  const double balance_last = edge_mean(pm.get("max_over_mean_load"), 3, false);
  const double dead_last = edge_mean(pm.get("dead_experts"), 3, false);
  const std::vector<double> val = pm.get("val_loss");
  const double val0 = edge_mean(val, 1, true), val1 = edge_mean(val, 1, false);
  // With --ablation: the same teacher balanced by an auxiliary loss.
  const bool ablation = fs::exists(out / "pretrain-teacher-aux" / "metrics.jsonl");
  double aux_balance = NAN, aux_dead = NAN, aux_val = NAN;
  std::string aux_bal_svg;
  if (ablation) {
    const plot::Columns am =
        plot::drop_superseded(plot::read_jsonl((out / "pretrain-teacher-aux" / "metrics.jsonl").string()), "step");
    aux_balance = edge_mean(am.get("max_over_mean_load"), 3, false);
    aux_dead = edge_mean(am.get("dead_experts"), 3, false);
    aux_val = edge_mean(am.get("val_loss"), 1, false);
    aux_bal_svg = copy_plot(out / "pretrain-teacher-aux" / "balance.svg", "teacher-aux-expert-balance.svg");
  }

  const Config teacher = load_config((out / "teacher-base").string());
  std::vector<std::pair<std::string, Config>> kv = {{"this run's teacher", teacher}};
  for (auto& c : rl::reference_kv_configs()) kv.push_back(c);
  const int64_t kv_lat = rl::kv_values_per_token(teacher), kv_mha = rl::kv_values_per_token_mha(teacher);

  double wall = 0;
  for (const auto& [name, s] : stages.items()) wall += s.value("seconds", 0.0);

  json report = {{"preset", preset},
                 {"base_pass1", res["teacher-base"].pass1_greedy},
                 {"base_pass1_sampled", res["teacher-base"].pass1_sampled},
                 {"base_pass16", passk("teacher-base", 16)},
                 {"base_pass_at_k_max", passk("teacher-base", kmax)},
                 {"grpo_pass1", res["teacher-grpo"].pass1_greedy},
                 {"grpo_pass1_sampled", res["teacher-grpo"].pass1_sampled},
                 {"student_base_pass1", res["student-base"].pass1_greedy},
                 {"student_distill_pass1", res["student-distill"].pass1_greedy},
                 {"student_grpo_pass1", res["student-grpo"].pass1_greedy},
                 {"grpo_response_length_first", len0},
                 {"grpo_response_length_last", len1},
                 {"grpo_rollout_accuracy_first", acc0},
                 {"grpo_rollout_accuracy_last", acc1},
                 {"teacher_val_loss_first", val0},
                 {"teacher_val_loss_last", val1},
                 {"teacher_expert_max_over_mean", balance_last},
                 {"teacher_dead_experts", dead_last},
                 {"ablation_aux_expert_max_over_mean", aux_balance},  // null without --ablation
                 {"ablation_aux_dead_experts", aux_dead},
                 {"ablation_aux_val_loss_last", aux_val},
                 {"mtp_acceptance", mtp},
                 {"speculative_speedup", spec_speedup},
                 {"kv_values_per_token", kv_lat},
                 {"kv_values_per_token_mha", kv_mha},
                 {"wall_seconds", wall},
                 {"evals", eval_json},
                 {"stages", stages},
                 {"stage_order", order}};
  // nlohmann writes NaN as null, which is what a reader should see for "not measured".
  write_file_atomic((out / "report.json").string(), report.dump(2) + "\n");

  const double b1 = res["teacher-base"].pass1_greedy, g1 = res["teacher-grpo"].pass1_greedy;
  const double d1 = res["student-distill"].pass1_greedy, s1 = res["student-grpo"].pass1_greedy;
  std::string md;
  md += "# seek recipe — report card (preset `" + preset + "`)\n\n";
  md += strfmt("The whole DeepSeek recipe at small scale on this machine, in %s of wall time. Every figure below was "
               "measured in this run; held-out problems never appear in training data.\n\n",
               format_duration(wall).c_str());
  md += "## DeepSeek claims, measured here\n\n| claim | measured here | holds here? |\n|---|---|---|\n";
  const int64_t nb = res["teacher-base"].problems, ng = res["teacher-grpo"].problems;
  const int64_t nd = res["student-distill"].problems, ns = res["student-grpo"].problems;
  md += strfmt("| RL with rule rewards alone (R1-Zero, no SFT) raises held-out pass@1 | greedy pass@1 %s → %s of %lld problems: %s | %s |\n",
               share(b1, nb).c_str(), share(g1, ng).c_str(), (long long)ng, difference(g1, ng, b1, nb).c_str(), verdict(g1, ng, b1, nb));
  md += strfmt("| RL sharpens what the base can sometimes do: pass@%lld of the base is well above its pass@1 | pass@1 %s (sampled %s), pass@%lld %s | %s |\n",
               (long long)kmax, pct(b1).c_str(), pct(res["teacher-base"].pass1_sampled).c_str(), (long long)kmax,
               pct(passk("teacher-base", kmax)).c_str(), passk("teacher-base", kmax) > 1.5 * res["teacher-base"].pass1_sampled ? "yes" : "no");
  md += strfmt("| Under RL the responses grow longer as the model learns to reason | mean completion tokens %.0f → %.0f (first/last 5 GRPO steps); rollout accuracy %s → %s | %s |\n",
               len0, len1, pct(acc0).c_str(), pct(acc1).c_str(), len1 > len0 ? "yes" : "no");
  md += strfmt("| For a small model, distilling a reasoning teacher beats RL on the small model itself | student pass@1: distilled %s vs GRPO for the same wall time %s (base %s): %s | %s |\n",
               share(d1, nd).c_str(), share(s1, ns).c_str(), pct(res["student-base"].pass1_greedy).c_str(),
               difference(d1, nd, s1, ns).c_str(), verdict(d1, nd, s1, ns));
  md += strfmt("| MLA's KV cache is a small fraction of ordinary attention's | %lld vs %lld values per token for this teacher (%.1f%%); V3: see the table below | yes |\n",
               (long long)kv_lat, (long long)kv_mha, 100.0 * double(kv_lat) / double(kv_mha));
  if (ablation) {
    // DeepSeek-V3's claim: balance at least as good as an auxiliary loss's, without its cost in quality.
    const bool holds = balance_last <= aux_balance * 1.05 && val1 <= aux_val * 1.005;
    md += strfmt("| Auxiliary-loss-free balancing balances experts without the auxiliary loss's cost in quality | worst layer max/mean expert load at the end of pretraining: aux-loss-free %.2f vs auxiliary loss %.2f (dead experts %.0f vs %.0f); final validation loss %.4f vs %.4f | %s |\n",
                 balance_last, aux_balance, dead_last, aux_dead, val1, aux_val, holds ? "yes" : "no");
  } else {
    md += strfmt("| Auxiliary-loss-free balancing keeps experts balanced | teacher's worst layer max/mean expert load at the end of pretraining %.2f, dead experts %.0f (`--ablation` compares it with an auxiliary loss; docs/results.md has a longer comparison) | %s |\n",
                 balance_last, dead_last, balance_last < 1.5 ? "yes" : "partly");
  }
  md += strfmt("| The MTP module's draft of the token after next is often right | acceptance %s on held-out documents | %s |\n",
               pct(mtp).c_str(), std::isfinite(mtp) ? (mtp > 0.5 ? "yes" : "partly") : "not measured");
  if (spec.is_object())
    md += strfmt("| Used as a draft, it speeds decoding up (DeepSeek-V3: 1.8x) | greedy decode at batch 1 with %lld draft a step: %.2fx the tokens/s without (%.0f vs %.0f), %s of first drafts accepted, %.2f tokens a step | %s |\n",
                 (long long)spec["draft_tokens"].get<int64_t>(), spec_speedup, spec["tokens_per_s"].get<double>(),
                 spec["tokens_per_s_without"].get<double>(), pct(spec["first_draft_acceptance"].get<double>()).c_str(),
                 spec["tokens_per_step"].get<double>(), spec_speedup >= 1.5 ? "yes" : spec_speedup > 1.05 ? "partly" : "no");
  md += "\n";
  if (preset == "tiny") {
    // The targets for this preset, each against what this run measured.
    const double bk = passk("teacher-base", kmax), sb = res["student-base"].pass1_greedy;
    md += "## The tiny preset's targets\n\n| target | measured | met? |\n|---|---|---|\n";
    md += strfmt("| base pass@1 on held-out problems below 30%% | %s | %s |\n", pct(b1).c_str(), b1 < 0.3 ? "yes" : "no");
    md += strfmt("| base pass@%lld well above pass@1 | %s vs %s | %s |\n", (long long)kmax, pct(bk).c_str(), pct(b1).c_str(),
                 bk > 1.5 * b1 ? "yes" : "no");
    md += strfmt("| after GRPO, pass@1 at least 70%% | %s | %s |\n", pct(g1).c_str(), g1 >= 0.7 ? "yes" : "no");
    md += strfmt("| the distilled student beats the GRPO-trained student of the same size | %s vs %s (their base: %s) | %s |\n\n",
                 pct(d1).c_str(), pct(s1).c_str(), pct(sb).c_str(),
                 d1 > sb || d1 <= s1 ? verdict(d1, nd, s1, ns) : "yes, but both are below their base");
  }
  md += "## Held-out evaluation, every stage\n\n" + rl::eval_table_md(rows) + "\n";
  const rl::EvalResult& tb = res["teacher-base"];
  md += strfmt("Greedy pass@1 is the headline, on %lld held-out problems. The sampled figures (temperature 1, %lld samples "
               "a problem) are on the first %lld of them: pass@k is the unbiased estimator over the samples. ",
               (long long)tb.problems, (long long)tb.samples, (long long)tb.sampled_problems);
  md += "Brackets are 95% intervals (Wilson); a difference's ± is its 95% interval (normal approximation, taking the two "
        "evaluations as independent; they share their problems, so the interval is if anything too wide).\n\n";
  md += "### The teacher after GRPO, by kind and difficulty\n\n" + rl::eval_breakdown_md(res["teacher-grpo"]) + "\n";
  md += "## Curves\n\n";
  auto img = [&](const std::string& path, const std::string& caption) {
    if (!path.empty()) md += "**" + caption + "**\n\n![" + caption + "](" + path + ")\n\n";
  };
  img(loss_svg, "Teacher pretraining: training, MTP and validation loss");
  img(bal_svg, "Teacher pretraining: expert load balance per MoE layer (aux-loss-free)");
  img(aux_bal_svg, "Ablation: the same teacher balanced by an auxiliary loss instead");
  img(grpo_svg, "Teacher GRPO: reward, accuracy, format; response length; KL and entropy");
  img(sloss_svg, "Student pretraining loss");
  img(sgrpo_svg, "Student GRPO (the equal-time comparison with distillation)");
  md += "## KV cache per token: MLA vs ordinary multi-head attention\n\n" + rl::kv_table_md(kv) + "\n";
  md += "## Stages and their commands\n\n| stage | seconds | command |\n|---|---|---|\n";
  for (const auto& n : order) {
    const json& s = stages[n.get<std::string>()];
    md += strfmt("| %s | %.0f | `%s` |\n", n.get<std::string>().c_str(), s.value("seconds", 0.0), s.value("command", std::string()).c_str());
  }
  md += "\nEach stage can be rerun alone with its command; `seek recipe` skips the stages that finished.\n";
  write_file_atomic((out / "report.md").string(), md);
}

}  // namespace seek
