// test_eval.cpp — rl/eval: the metrics on hand-made rollouts with known answers (summarize), and
// evaluate() end to end on a random tiny V3 model with a tokenizer trained on the corpus; the KV
// figures of rl/report_figures.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "data/corpus.h"
#include "model/bpe_trainer.h"
#include "model/config.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "rl/eval.h"
#include "rl/passk.h"
#include "rl/report_figures.h"
#include "ranks.h"
#include "test_util.h"
#include "util/error.h"

using namespace seek;
using namespace seek::rl;

namespace {

Problem arithmetic(int difficulty, int64_t a, int64_t b) {
  Problem p;
  p.kind = TaskKind::Arithmetic;
  p.difficulty = difficulty;
  p.numbers = {a, b};
  p.op = '+';
  p.target = a + b;
  p.answer = std::to_string(a + b);
  p.question = strfmt("What is %lld + %lld?", (long long)a, (long long)b);
  return p;
}

// A rollout of problem j whose text answers `answer`, formatted with <think> or not, with `tokens`
// generated tokens (EOS included when finished).
Rollout rollout(const std::vector<Problem>& ps, int64_t j, const std::string& answer, bool think, int64_t tokens,
                bool finished = true) {
  Rollout r;
  r.problem = j;
  r.text = (think ? "<think>ok</think>" : "") + std::string("<answer>") + answer + "</answer>";
  r.completion.assign(size_t(tokens + (finished ? 1 : 0)), 5);
  r.finished = finished;
  r.reward = score(ps[size_t(j)], r.text);
  return r;
}

}  // namespace

TEST(Eval, PassKsArePowersOfTwoAndTheSampleCount) {
  EXPECT_EQ(pass_ks(1), (std::vector<int64_t>{1}));
  EXPECT_EQ(pass_ks(4), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(pass_ks(6), (std::vector<int64_t>{1, 2, 4, 6}));
  EXPECT_EQ(pass_ks(16), (std::vector<int64_t>{1, 2, 4, 8, 16}));
}

TEST(Eval, OpensThink) {
  EXPECT_TRUE(opens_think("<think>a</think>"));
  EXPECT_TRUE(opens_think(" \n<think>"));
  EXPECT_FALSE(opens_think("<answer>1</answer><think>"));
  EXPECT_FALSE(opens_think(""));
  EXPECT_FALSE(opens_think("<thin"));
}

// Three problems, 4 samples each, every count known by hand.
TEST(Eval, SummarizeHandMadeRollouts) {
  std::vector<Problem> ps = {arithmetic(1, 2, 3), arithmetic(2, 10, 20), arithmetic(2, 7, 8)};
  std::vector<Rollout> greedy = {rollout(ps, 0, "5", true, 10), rollout(ps, 1, "31", false, 4),
                                 rollout(ps, 2, "15", false, 6, false)};
  std::vector<Rollout> sampled;
  // problem 0: 4 of 4 correct, all thinking, lengths 10
  for (int i = 0; i < 4; ++i) sampled.push_back(rollout(ps, 0, "5", true, 10));
  // problem 1: 1 of 4 correct (the thinking one), lengths 20, 2, 2, 2
  sampled.push_back(rollout(ps, 1, "30", true, 20));
  for (int i = 0; i < 3; ++i) sampled.push_back(rollout(ps, 1, "31", false, 2));
  // problem 2: 0 of 4, one cut at max_new_tokens
  for (int i = 0; i < 3; ++i) sampled.push_back(rollout(ps, 2, "14", false, 3));
  sampled.push_back(rollout(ps, 2, "", false, 8, false));

  EvalResult r = summarize(ps, greedy, sampled, 4);
  EXPECT_EQ(r.problems, 3);
  EXPECT_EQ(r.samples, 4);
  EXPECT_DOUBLE_EQ(r.pass1_greedy, 2.0 / 3);
  EXPECT_DOUBLE_EQ(r.pass1_sampled, (1.0 + 0.25 + 0.0) / 3);
  EXPECT_DOUBLE_EQ(r.pass_at_k.at(1), r.pass1_sampled);
  // pass@2 of n=4, c=1: 1 - C(3,2)/C(4,2) = 1/2; pass@4 with c=1: 1.
  EXPECT_DOUBLE_EQ(r.pass_at_k.at(2), (1.0 + 0.5 + 0.0) / 3);
  EXPECT_DOUBLE_EQ(r.pass_at_k.at(4), (1.0 + 1.0 + 0.0) / 3);
  EXPECT_EQ(r.pass_at_k.size(), 3u);
  EXPECT_DOUBLE_EQ(r.format_rate, 5.0 / 12);
  EXPECT_DOUBLE_EQ(r.think_rate, 5.0 / 12);
  EXPECT_DOUBLE_EQ(r.format_rate_greedy, 1.0 / 3);
  EXPECT_DOUBLE_EQ(r.think_rate_greedy, 1.0 / 3);
  EXPECT_DOUBLE_EQ(r.accuracy_thinking, 1.0);  // the 5 thinking samples are the 5 correct ones
  EXPECT_DOUBLE_EQ(r.accuracy_direct, 0.0);
  EXPECT_DOUBLE_EQ(r.mean_length, (40.0 + 26.0 + 17.0) / 12);  // EOS not counted
  EXPECT_DOUBLE_EQ(r.mean_length_greedy, 20.0 / 3);
  EXPECT_DOUBLE_EQ(r.truncated_rate, 1.0 / 12);
  // Breakdown: difficulty 1 holds problem 0, difficulty 2 problems 1 and 2; one kind.
  ASSERT_EQ(r.by_difficulty.size(), 2u);
  EXPECT_EQ(r.by_difficulty.at(1).problems, 1);
  EXPECT_DOUBLE_EQ(r.by_difficulty.at(1).pass1_greedy, 1.0);
  EXPECT_DOUBLE_EQ(r.by_difficulty.at(2).pass1_greedy, 0.5);
  EXPECT_DOUBLE_EQ(r.by_difficulty.at(2).pass_at_k.at(4), 0.5);
  EXPECT_DOUBLE_EQ(r.by_difficulty.at(2).pass_at_k.at(1), 0.125);
  EXPECT_DOUBLE_EQ(r.by_difficulty.at(2).mean_length, 43.0 / 8);
  ASSERT_EQ(r.by_kind.size(), 1u);
  EXPECT_DOUBLE_EQ(r.by_kind.at("arithmetic").pass_at_k.at(2), r.pass_at_k.at(2));
}

TEST(Eval, SummarizeSplitsByKind) {
  std::vector<Problem> ps = {arithmetic(1, 1, 1), arithmetic(1, 2, 2)};
  ps[1].kind = TaskKind::Countdown;  // a hand-made Countdown: reach 4 from {2, 2}
  ps[1].target = 4;
  std::vector<Rollout> greedy = {rollout(ps, 0, "2", true, 3), rollout(ps, 1, "2+2", true, 3)};
  EvalResult r = summarize(ps, greedy, {}, 1);
  EXPECT_EQ(r.samples, 0);
  EXPECT_TRUE(r.pass_at_k.empty());
  EXPECT_DOUBLE_EQ(r.by_kind.at("arithmetic").pass1_greedy, 1.0);
  EXPECT_DOUBLE_EQ(r.by_kind.at("countdown").pass1_greedy, 1.0);
  EXPECT_DOUBLE_EQ(r.pass1_greedy, 1.0);
}

TEST(Eval, SummarizeRefusesMismatchedRollouts) {
  std::vector<Problem> ps = {arithmetic(1, 2, 3), arithmetic(1, 4, 5)};
  std::vector<Rollout> one = {rollout(ps, 0, "5", true, 1)};
  EXPECT_THROW(summarize(ps, one, {}, 1), Error);  // one greedy rollout for two problems
  std::vector<Rollout> sampled = {rollout(ps, 0, "5", true, 1), rollout(ps, 0, "5", true, 1),
                                  rollout(ps, 1, "9", true, 1), rollout(ps, 1, "9", true, 1)};
  EXPECT_NO_THROW(summarize(ps, {}, sampled, 2));
  EXPECT_THROW(summarize(ps, {}, sampled, 3), Error);  // wrong count
  std::swap(sampled[1], sampled[2]);
  EXPECT_THROW(summarize(ps, {}, sampled, 2), Error);  // not problem-major
}

// Greedy on every problem, samples on some: the sampled metrics average over the sampled problems only.
TEST(Eval, SummarizeSamplesASubset) {
  std::vector<Problem> ps = {arithmetic(1, 2, 3), arithmetic(2, 10, 20), arithmetic(2, 7, 8), arithmetic(1, 1, 1)};
  std::vector<Rollout> greedy = {rollout(ps, 0, "5", true, 10), rollout(ps, 1, "30", false, 4),
                                 rollout(ps, 2, "14", false, 6), rollout(ps, 3, "2", false, 2)};
  // problems 0 and 2 sampled twice: 2 of 2 correct, then 1 of 2
  std::vector<Rollout> sampled = {rollout(ps, 0, "5", true, 10), rollout(ps, 0, "5", true, 10),
                                  rollout(ps, 2, "15", true, 4), rollout(ps, 2, "1", false, 4)};
  EvalResult r = summarize(ps, greedy, sampled, 2);
  EXPECT_EQ(r.problems, 4);
  EXPECT_EQ(r.sampled_problems, 2);
  EXPECT_DOUBLE_EQ(r.pass1_greedy, 3.0 / 4);
  EXPECT_DOUBLE_EQ(r.pass1_sampled, (1.0 + 0.5) / 2);  // not over 4 problems
  EXPECT_DOUBLE_EQ(r.pass_at_k.at(2), 1.0);
  EXPECT_DOUBLE_EQ(r.mean_length, 7.0);
  EXPECT_EQ(r.by_difficulty.at(1).problems, 2);
  EXPECT_DOUBLE_EQ(r.by_difficulty.at(1).pass_at_k.at(1), 1.0);  // problem 0 alone was sampled
  EXPECT_DOUBLE_EQ(r.by_difficulty.at(2).pass_at_k.at(1), 0.5);
  const std::string table = eval_table_md({{"m", r}});
  EXPECT_NE(table.find("| 4 (2 sampled) |"), std::string::npos) << table;
  EvalResult back = eval_result_from_json(to_json(r));
  EXPECT_EQ(back.sampled_problems, 2);
  // A problem sampled twice, or out of order, or past the end, is refused.
  std::vector<Rollout> twice = {sampled[0], sampled[1], sampled[0], sampled[1]};
  EXPECT_THROW(summarize(ps, greedy, twice, 2), Error);
  std::vector<Rollout> backwards = {sampled[2], sampled[3], sampled[0], sampled[1]};
  EXPECT_THROW(summarize(ps, greedy, backwards, 2), Error);
  std::vector<Rollout> past = sampled;
  past[2].problem = past[3].problem = 4;
  EXPECT_THROW(summarize(ps, greedy, past, 2), Error);
}

TEST(Eval, JsonRoundTripAndTables) {
  std::vector<Problem> ps = {arithmetic(1, 2, 3), arithmetic(3, 10, 20)};
  std::vector<Rollout> greedy = {rollout(ps, 0, "5", true, 10), rollout(ps, 1, "31", false, 4)};
  std::vector<Rollout> sampled = {rollout(ps, 0, "5", true, 10), rollout(ps, 0, "4", true, 9),
                                  rollout(ps, 1, "30", false, 2), rollout(ps, 1, "31", true, 12)};
  EvalResult r = summarize(ps, greedy, sampled, 2);
  r.seconds = 1.5;
  nlohmann::json j = to_json(r);
  for (const char* f : {"pass1_greedy", "pass1_sampled", "pass_at_k", "format_rate", "format_rate_greedy", "mean_length",
                        "mean_length_greedy", "think_rate", "think_rate_greedy", "accuracy_thinking", "accuracy_direct", "truncated_rate", "by_kind",
                        "by_difficulty", "problems", "samples", "seconds"})
    EXPECT_TRUE(j.contains(f)) << f;
  EXPECT_DOUBLE_EQ(j["pass_at_k"]["2"].get<double>(), r.pass_at_k.at(2));
  EXPECT_TRUE(j["by_difficulty"].contains("3"));
  EXPECT_TRUE(j["by_kind"]["arithmetic"].contains("pass_at_k"));
  EvalResult back = eval_result_from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(to_json(back), j);
  nlohmann::json missing = j;
  missing.erase("format_rate");
  EXPECT_THROW(eval_result_from_json(missing), Error);

  EvalResult other = r;
  other.pass_at_k[4] = 0.9;  // a row with more ks: the table shows the union
  std::string md = eval_table_md({{"base", r}, {"grpo", other}});
  EXPECT_NE(md.find("| base | 2 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| grpo |"), std::string::npos);
  EXPECT_NE(md.find("pass@4"), std::string::npos);
  EXPECT_NE(md.find("–"), std::string::npos);  // base has no pass@4
  std::string bd = eval_breakdown_md(r);
  EXPECT_NE(bd.find("| arithmetic | 2 |"), std::string::npos) << bd;
  EXPECT_NE(bd.find("| difficulty 3 | 1 |"), std::string::npos) << bd;
}

TEST(Eval, ProblemsAreHeldOutAndCycleDifficulties) {
  EvalOptions o;
  o.min_difficulty = 2;
  o.max_difficulty = 4;
  o.problems = 6;
  std::vector<Problem> ps = eval_problems(o);
  ASSERT_EQ(ps.size(), 12u);
  for (size_t i = 0; i < ps.size(); ++i) {
    EXPECT_EQ(split_of(ps[i]), Split::HeldOut);
    EXPECT_EQ(ps[i].difficulty, 2 + int(i % 6) % 3);
    EXPECT_EQ(ps[i].kind, i < 6 ? TaskKind::Arithmetic : TaskKind::Countdown);
  }
  o.min_difficulty = 5, o.max_difficulty = 4;
  EXPECT_THROW(eval_problems(o), Error);
  o.min_difficulty = 1, o.kinds.clear();
  EXPECT_THROW(eval_problems(o), Error);
}

namespace {

// A tokenizer trained on the corpus and a random tiny V3 model of its vocabulary.
struct TinySetup {
  test::TempDir dir;
  Tokenizer tok;
  std::unique_ptr<Model> model;
  TinySetup() {
    CorpusOptions co;
    co.n_documents = 300;
    co.max_difficulty = 3;
    write_tokenizer_dir(dir / "m", train_bpe(make_corpus(co), BpeTrainOptions{320, 2}));
    tok = Tokenizer::load(dir / "m");
    nlohmann::json cfg = test::tiny_config("deepseek_v3");
    cfg["vocab_size"] = tok.vocab_size();
    write_random_checkpoint(dir / "m", cfg, {DType::F32, 3, 1});
    model = Model::load(dir / "m");
  }
};

TinySetup& tiny() {
  static TinySetup s;
  return s;
}

EvalOptions tiny_options() {
  EvalOptions o;
  o.problems = 3;
  o.samples = 4;
  o.max_new_tokens = 12;
  o.max_difficulty = 2;
  o.seed = 5;
  o.batch = 5;  // several chunks
  return o;
}

}  // namespace

TEST(Eval, EvaluateTinyModel) {
  TinySetup& s = tiny();
  EvalOptions o = tiny_options();
  EvalResult r = evaluate(*s.model, s.tok, o);
  EXPECT_EQ(r.problems, 6);
  EXPECT_EQ(r.samples, 4);
  ASSERT_EQ(r.pass_at_k.size(), 3u);
  EXPECT_LE(r.pass_at_k.at(1), r.pass_at_k.at(2));
  EXPECT_LE(r.pass_at_k.at(2), r.pass_at_k.at(4));
  EXPECT_DOUBLE_EQ(r.pass1_sampled, r.pass_at_k.at(1));
  EXPECT_GT(r.mean_length, 0);
  EXPECT_LE(r.mean_length, 12);
  EXPECT_LE(r.mean_length_greedy, 12);
  EXPECT_EQ(r.by_kind.size(), 2u);
  EXPECT_EQ(r.by_difficulty.size(), 2u);
  EXPECT_GT(r.seconds, 0);
  // Greedy is deterministic; so is sampling with the same seed.
  EvalResult again = evaluate(*s.model, s.tok, o);
  EXPECT_EQ(again.pass1_greedy, r.pass1_greedy);
  EXPECT_EQ(again.mean_length_greedy, r.mean_length_greedy);
  EXPECT_EQ(again.mean_length, r.mean_length);
  EXPECT_EQ(again.pass_at_k, r.pass_at_k);
  nlohmann::json j = to_json(r);
  EXPECT_TRUE(j.contains("pass_at_k") && j["pass_at_k"].contains("4"));
}

// More greedy problems than sampled ones: the same problems, the same sampled rollouts, greedy over
// the longer list.
TEST(Eval, EvaluateMoreGreedyProblemsThanSampled) {
  TinySetup& s = tiny();
  EvalOptions o = tiny_options();
  const EvalResult few = evaluate(*s.model, s.tok, o);
  EvalOptions more = o;
  more.greedy_problems = o.problems + 2;
  const EvalResult r = evaluate(*s.model, s.tok, more);
  EXPECT_EQ(r.problems, few.problems + 2 * int64_t(o.kinds.size()));
  EXPECT_EQ(r.sampled_problems, few.problems);
  EXPECT_EQ(r.pass_at_k, few.pass_at_k);  // the first `problems` of each kind, sampled with the same seeds
  EXPECT_EQ(r.mean_length, few.mean_length);
  more.greedy_problems = o.problems - 1;
  EXPECT_THROW(eval_problems(more), Error);
}

// Data parallelism (`mpiexec -n N seek eval`, and rejection sampling): rank r samples chunks r, r + N, …
// and every rank gathers every chunk. Each rank has its own model and tokenizer, as separate processes
// do. Every rollout equals one process's, and so does the whole evaluation.
TEST(Rollouts, RanksSampleTheirChunksAndGatherWhatOneProcessSamples) {
  TinySetup& s = tiny();
  EvalOptions o = tiny_options();
  o.greedy_problems = 5;  // 10 greedy problems, 6 sampled: chunks of 1 problem (batch 5 / 4 samples)
  const std::vector<Problem> problems = eval_problems(o);
  RolloutOptions ro;
  ro.samples = 3, ro.batch = 7, ro.max_new_tokens = 10, ro.seed = 9;  // 4 chunks of 2 problems, the last of 2
  const std::vector<Rollout> one = chunked_rollouts(*s.model, s.tok, problems, ro, one_process());
  ASSERT_EQ(one.size(), problems.size() * 3);
  nlohmann::json whole = to_json(evaluate(*s.model, s.tok, o));
  whole.erase("seconds");
  for (int n : {2, 3}) {
    std::vector<std::vector<Rollout>> got(static_cast<size_t>(n));
    std::vector<nlohmann::json> evals(static_cast<size_t>(n));
    for (const std::string& e : test::on_ranks(n, [&](Communicator& c) {
           auto model = Model::load(s.dir / "m");
           const Tokenizer tok = Tokenizer::load(s.dir / "m");
           int64_t last_total = 0;
           got[size_t(c.rank())] = chunked_rollouts(*model, tok, problems, ro, c,
                                                    [&](const std::vector<Rollout>&, int64_t, int64_t total) { last_total = total; });
           EXPECT_LT(last_total, int64_t(one.size()));  // its share, not all
           EvalOptions oc = o;
           oc.comm = &c;
           evals[size_t(c.rank())] = to_json(evaluate(*model, tok, oc));
           evals[size_t(c.rank())].erase("seconds");
         }))
      EXPECT_EQ(e, "");
    for (int r = 0; r < n; ++r) {
      const std::vector<Rollout>& g = got[size_t(r)];
      ASSERT_EQ(g.size(), one.size()) << n << " ranks, rank " << r;
      for (size_t i = 0; i < one.size(); ++i) {
        EXPECT_EQ(g[i].problem, one[i].problem) << i;
        EXPECT_EQ(g[i].prompt, one[i].prompt) << i;
        EXPECT_EQ(g[i].completion, one[i].completion) << n << " ranks, rank " << r << ", rollout " << i;
        EXPECT_EQ(g[i].text, one[i].text) << i;
        EXPECT_EQ(g[i].finished, one[i].finished) << i;
        EXPECT_EQ(g[i].reward.total, one[i].reward.total) << i;
      }
      EXPECT_EQ(evals[size_t(r)], whole) << n << " ranks, rank " << r;
    }
  }
}

TEST(Eval, GreedyDoesNotDependOnTheBatch) {
  TinySetup& s = tiny();
  EvalOptions o = tiny_options();
  o.samples = 1;
  EvalResult a = evaluate(*s.model, s.tok, o);
  o.batch = 64;  // one chunk instead of two: other batch neighbours, same greedy tokens
  EvalResult b = evaluate(*s.model, s.tok, o);
  EXPECT_EQ(a.pass1_greedy, b.pass1_greedy);
  EXPECT_EQ(a.mean_length_greedy, b.mean_length_greedy);
  EXPECT_EQ(a.format_rate_greedy, b.format_rate_greedy);
}

// --- KV figures ------------------------------------------------------------------------------------

TEST(ReportFigures, KvValuesOfTheRealConfigs) {
  auto refs = reference_kv_configs();
  ASSERT_EQ(refs.size(), 2u);
  const Config& lite = refs[0].second;
  const Config& v3 = refs[1].second;
  // DeepSeek-V3: 61 layers × 576 = 35,136 values (70,272 B in bf16, the facts sheet); MHA 61 × 128 × 320.
  EXPECT_EQ(kv_values_per_token(v3), 61 * 576);
  EXPECT_EQ(kv_values_per_token_mha(v3), 61 * 128 * (192 + 128));
  EXPECT_EQ(kv_values_per_token(lite), 27 * 576);
  EXPECT_EQ(kv_values_per_token_mha(lite), 27 * 16 * 320);
  // The compiled-in configs are the committed files.
  for (auto& [name, file] : {std::pair<std::string, std::string>{"DeepSeek-V2-Lite", "deepseek-v2-lite.json"},
                             {"DeepSeek-V3", "deepseek-v3.json"}}) {
    Config c = load_config(test::data_path("data/configs/" + file));
    const Config& e = name == "DeepSeek-V3" ? v3 : lite;
    EXPECT_EQ(kv_values_per_token(c), kv_values_per_token(e)) << name;
    EXPECT_EQ(kv_values_per_token_mha(c), kv_values_per_token_mha(e)) << name;
    EXPECT_EQ(c.hidden_size, e.hidden_size) << name;
    EXPECT_EQ(c.n_routed_experts, e.n_routed_experts) << name;
  }
  std::string md = kv_table_md(refs);
  EXPECT_NE(md.find("| DeepSeek-V3 | 61 | MLA latent 512 + rope 64 | 35136 | 68.62 |"), std::string::npos) << md;
  EXPECT_NE(md.find("71.1×"), std::string::npos) << md;
  EXPECT_NE(md.find("8.9×"), std::string::npos) << md;
}

TEST(ReportFigures, KvValuesOfDenseModels) {
  Config q = parse_config(test::tiny_config("qwen2"), "qwen2");  // H 4, G 2, head_dim 8, 2 layers
  EXPECT_EQ(kv_values_per_token(q), 2 * 2 * 2 * 8);
  EXPECT_EQ(kv_values_per_token_mha(q), 2 * 2 * 4 * 8);
  Config v3 = parse_config(test::tiny_config("deepseek_v3"), "v3");
  EXPECT_EQ(kv_values_per_token(v3), 3 * (16 + 6));
  EXPECT_EQ(kv_values_per_token_mha(v3), 3 * 3 * (14 + 10));
  EXPECT_NE(kv_table_md({{"tiny", q}}).find("GQA 2 × 2 heads × 8"), std::string::npos);
}

TEST(Eval, IntervalsOfAShareAndOfADifference) {
  // Wilson's interval, against values worked by hand from its formula.
  const rl::Interval half = rl::wilson_interval(0.5, 100);
  EXPECT_NEAR(half.lo, 0.4038, 1e-4);
  EXPECT_NEAR(half.hi, 0.5962, 1e-4);
  const rl::Interval all = rl::wilson_interval(1.0, 64);  // 64 of 64: not certain, unlike p ± 0
  EXPECT_NEAR(all.lo, 0.9434, 1e-4);
  EXPECT_DOUBLE_EQ(all.hi, 1.0);
  const rl::Interval none = rl::wilson_interval(0.0, 500);
  EXPECT_DOUBLE_EQ(none.lo, 0.0);
  EXPECT_NEAR(none.hi, 0.00762, 1e-5);
  // The figures: distilled 68.4% vs GRPO 61.0% of 500 problems each.
  EXPECT_NEAR(rl::difference_halfwidth(0.684, 500, 0.610, 500), 0.0591, 1e-4);
}
