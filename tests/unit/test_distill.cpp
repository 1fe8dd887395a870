// Distillation (src/distill/): the rejection filter keeps only correct and well-formed completions,
// dedupes them and caps them per question; traces round-trip through JSON lines; the SFT batch masks
// everything but the completion tokens and its loss is the masked mean cross-entropy (checked against
// TrainModel::target_logprobs and by finite differences); SFT lowers the loss on a fixed batch of a tiny
// Qwen2 student with a SeekTiny tokenizer and writes a loadable model; a wall-clock budget stops it; a
// killed `seek sft` leaves no output directory; rejection sampling runs end to end on a tiny model.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "data/corpus.h"
#include "distill/rejection.h"
#include "distill/sft.h"
#include "model/bpe_trainer.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "ranks.h"
#include "test_util.h"
#include "train/train_model.h"
#include "util/error.h"
#include "util/rng.h"

using namespace seek;
using namespace seek::distill;
namespace fs = std::filesystem;

namespace {

using test::file_bytes;

rl::Rollout rollout(int64_t problem, std::vector<int32_t> completion, bool correct, bool formatted) {
  rl::Rollout r;
  r.problem = problem;
  r.prompt = {0, 4, 100 + int32_t(problem), 5};
  r.completion = std::move(completion);
  r.text.assign(1, 't');  // (= "t" trips GCC 12's -Wrestrict false positive, bug 105329)
  r.reward.correct = correct;
  r.reward.formatted = formatted;
  r.finished = !r.completion.empty() && r.completion.back() == 1;
  return r;
}

// A SeekTiny tokenizer trained on the corpus, a random tiny Qwen2 student of its vocabulary, and
// traces that are worked solutions of training problems (what a perfect teacher writes).
struct Student {
  test::TempDir dir;
  std::string model;
  Tokenizer tok;
  int32_t eos = -1;
  Student() {
    CorpusOptions co;
    co.n_documents = 300;
    co.max_difficulty = 2;
    co.worked_fraction = 0.5;
    model = dir / "student";
    write_tokenizer_dir(model, train_bpe(make_corpus(co), BpeTrainOptions{320, 2}));
    tok = Tokenizer::load(model);
    eos = tok.token_id("<|eos|>");
    nlohmann::json cfg = test::tiny_config("qwen2");
    cfg["vocab_size"] = tok.vocab_size();
    write_random_checkpoint(model, cfg, {DType::F32, 7, 1});
  }
  std::vector<distill::Trace> traces(int n, uint64_t seed = 3) const {
    std::vector<distill::Trace> out;
    for (int i = 0; i < n; ++i) {
      Problem p = make_split_problem(i % 2 ? TaskKind::Countdown : TaskKind::Arithmetic, 1, Split::Train, seed, uint64_t(i));
      distill::Trace t;
      t.problem = p;
      t.prompt = tok.encode(prompt_text(p));
      t.text = "<think>" + worked_solution(p) + "</think><answer>" + p.answer + "</answer>";
      t.completion = tok.encode(t.text);
      t.completion.push_back(eos);
      out.push_back(std::move(t));
    }
    return out;
  }
};

}  // namespace

// --- Rejection filter --------------------------------------------------------------------------------

TEST(DistillSelect, KeepsOnlyCorrectAndFormattedDedupesAndCaps) {
  std::vector<Problem> problems(3);
  for (int i = 0; i < 3; ++i) problems[size_t(i)] = make_problem(TaskKind::Arithmetic, 1, 5, uint64_t(i));
  const int32_t eos = 1;
  std::vector<rl::Rollout> rs = {
      rollout(0, {10, 11, 1}, true, true),    // kept
      rollout(0, {10, 11, 1}, true, true),    // duplicate
      rollout(0, {12, 1}, true, false),       // correct, not formatted
      rollout(0, {13, 1}, false, true),       // formatted, wrong
      rollout(0, {14, 1}, true, true),        // kept (2nd)
      rollout(0, {15, 1}, true, true),        // over the cap of 2
      rollout(1, {16, 1}, false, false),      // nothing for problem 1
      rollout(2, {17, 18}, true, true),       // cut at max_new_tokens: EOS appended, kept
      rollout(2, {17, 18, 1}, true, true),    // the same completion once EOS is there: duplicate
  };
  RejectionStats s;
  std::vector<distill::Trace> t = select_traces(problems, rs, 2, eos, &s);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].completion, (std::vector<int32_t>{10, 11, 1}));
  EXPECT_EQ(t[1].completion, (std::vector<int32_t>{14, 1}));
  EXPECT_EQ(t[2].completion, (std::vector<int32_t>{17, 18, 1}));
  EXPECT_EQ(t[0].problem.id, problems[0].id);
  EXPECT_EQ(t[2].problem.id, problems[2].id);
  EXPECT_EQ(t[2].prompt, rs[7].prompt);
  EXPECT_EQ(s.questions, 3);
  EXPECT_EQ(s.samples, 9);
  EXPECT_EQ(s.correct, 7);
  EXPECT_EQ(s.formatted, 7);
  EXPECT_EQ(s.correct_and_formatted, 6);
  EXPECT_EQ(s.duplicates, 2);
  EXPECT_EQ(s.capped, 1);
  EXPECT_EQ(s.kept, 3);
  EXPECT_EQ(s.questions_with_trace, 2);
  EXPECT_NEAR(s.share_with_trace, 2.0 / 3.0, 1e-12);
  // A rollout naming a problem that does not exist is bad input.
  EXPECT_THROW(select_traces(problems, {rollout(3, {1}, true, true)}, 2, eos), Error);
}

TEST(DistillSelect, TrainingQuestionsAreDistinctTrainSplitAndInRange) {
  QuestionOptions o;
  o.count = 60;
  o.min_difficulty = 2;
  o.max_difficulty = 3;
  std::vector<Problem> q = training_questions(o);
  ASSERT_EQ(q.size(), 60u);
  std::set<uint64_t> ids;
  int countdown = 0;
  for (const Problem& p : q) {
    EXPECT_TRUE(ids.insert(p.id).second);
    EXPECT_EQ(split_of(p), Split::Train);
    EXPECT_GE(p.difficulty, 2);
    EXPECT_LE(p.difficulty, 3);
    countdown += p.kind == TaskKind::Countdown;
  }
  EXPECT_GT(countdown, 10);
  EXPECT_EQ(training_questions(o)[7].id, q[7].id);  // deterministic
  o.kinds.clear();
  EXPECT_THROW(training_questions(o), Error);
}

TEST(DistillTraces, JsonlRoundTrips) {
  test::TempDir dir;
  std::vector<distill::Trace> traces(2);
  traces[0].problem = make_problem(TaskKind::Countdown, 4, 9, 2);
  traces[0].prompt = {0, 4, 300, 5};
  traces[0].completion = {6, 301, 7, 8, 302, 9, 1};
  traces[0].text = "<think>\"quotes\"\nand a tab\t</think><answer>x</answer>";
  traces[1].problem = make_problem(TaskKind::Arithmetic, 3, 9, 5);
  traces[1].prompt = {0, 4, 5};
  traces[1].completion = {1};
  const std::string path = dir / "traces.jsonl";
  save_traces(path, traces);
  std::vector<distill::Trace> back = load_traces(path);
  ASSERT_EQ(back.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const Problem &a = traces[i].problem, &b = back[i].problem;
    EXPECT_EQ(a.kind, b.kind);
    EXPECT_EQ(a.difficulty, b.difficulty);
    EXPECT_EQ(a.question, b.question);
    EXPECT_EQ(a.answer, b.answer);
    EXPECT_EQ(a.numbers, b.numbers);
    EXPECT_EQ(a.op, b.op);
    EXPECT_EQ(a.target, b.target);
    EXPECT_EQ(a.id, b.id);
    ASSERT_EQ(a.steps.size(), b.steps.size());
    for (size_t k = 0; k < a.steps.size(); ++k) {
      EXPECT_EQ(a.steps[k].lhs, b.steps[k].lhs);
      EXPECT_EQ(a.steps[k].rhs, b.steps[k].rhs);
      EXPECT_EQ(a.steps[k].op, b.steps[k].op);
    }
    EXPECT_EQ(traces[i].prompt, back[i].prompt);
    EXPECT_EQ(traces[i].completion, back[i].completion);
    EXPECT_EQ(traces[i].text, back[i].text);
  }
  // The reloaded Countdown problem still checks its own reference answer.
  EXPECT_TRUE(check_answer(back[0].problem, back[0].problem.answer));
  // A malformed line is refused with the file and line.
  test::write_text(path, file_bytes(path) + "{\"prompt\": [1]}\n");
  try {
    load_traces(path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("traces.jsonl:3"), std::string::npos) << e.what();
  }
}

// --- SFT batch and loss ------------------------------------------------------------------------------

TEST(DistillSft, BatchMasksPromptAndPadding) {
  std::vector<distill::Trace> t(2);
  t[0].prompt = {0, 4, 20, 5};  // P = 4, L = 7
  t[0].completion = {30, 31, 1};
  t[1].prompt = {0, 4, 5};      // P = 3, L = 5
  t[1].completion = {32, 1};
  const int32_t pad = 1;
  SftBatch b = make_sft_batch(t, {0, 1}, pad);
  ASSERT_EQ(b.B, 2);
  ASSERT_EQ(b.T, 6);
  EXPECT_EQ(b.ids, (std::vector<int32_t>{0, 4, 20, 5, 30, 31, 1,  //
                                         0, 4, 5, 32, 1, 1, 1}));
  // Targets ids[b, t+1]: row 0 learns 30, 31, EOS (t = 3, 4, 5); row 1 learns 32, EOS (t = 2, 3).
  EXPECT_EQ(b.mask, (std::vector<uint8_t>{0, 0, 0, 1, 1, 1,  //
                                          0, 0, 1, 1, 0, 0}));
  EXPECT_EQ(b.completion_tokens, 5);

  // The objective: −mean of the masked logp; dlogp = −1/5 on the mask and exactly 0 elsewhere.
  std::vector<float> logp(12), dlogp(12, 0.f);
  for (size_t i = 0; i < 12; ++i) logp[i] = -0.1f * float(i + 1);
  train::TokenObjective obj = completion_objective(b);
  const double loss = obj.fn(logp.data(), dlogp.data());
  EXPECT_NEAR(loss, (0.4 + 0.5 + 0.6 + 0.9 + 1.0) / 5, 1e-6);
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(dlogp[i], b.mask[i] ? -0.2f : 0.f) << i;
  EXPECT_THROW(make_sft_batch(t, {}, pad), Error);
  EXPECT_THROW(make_sft_batch(t, {2}, pad), Error);
}

TEST(DistillSft, LossIsTheMaskedMeanCrossEntropyAndItsGradient) {
  Student s;
  std::vector<distill::Trace> traces = s.traces(3);
  SftBatch b = make_sft_batch(traces, {0, 1, 2}, s.eos);
  train::TrainModel m = train::TrainModel::from_checkpoint(s.model);
  const train::LossWeights lw{.mtp_lambda = 0, .balance_alpha = 0};
  std::vector<float> lp = m.target_logprobs(b.ids.data(), b.B, b.T);
  double want = 0;
  for (size_t i = 0; i < b.mask.size(); ++i) want -= b.mask[i] ? double(lp[i]) : 0.0;
  want /= double(b.completion_tokens);
  train::TokenObjective obj = completion_objective(b);
  const double got = m.forward_backward(b.ids.data(), b.B, b.T, lw, &obj).main;
  EXPECT_NEAR(got, want, 1e-5 * std::fabs(want));
  // A loss on the prompt would differ: the full-sequence mean is not this number.
  const double full = m.loss(b.ids.data(), b.B, b.T, lw).main;
  EXPECT_GT(std::fabs(full - got), 1e-3);

  // The gradient it produces, along a random direction, against central finite differences.
  std::vector<float> g = m.grad(), dir(g.size());
  SplitMix64 rng(11);
  double analytic = 0;
  for (size_t i = 0; i < dir.size(); ++i) {
    dir[i] = float(rng.real() * 2 - 1);
    analytic += double(dir[i]) * double(g[i]);
  }
  const std::vector<float> p0 = m.data();
  const double h = 1e-3;
  auto at = [&](double eps) {
    for (size_t i = 0; i < dir.size(); ++i) m.data()[i] = p0[i] + float(eps) * dir[i];
    return m.loss(b.ids.data(), b.B, b.T, lw, &obj).main;
  };
  const double numeric = (at(h) - at(-h)) / (2 * h);
  m.data() = p0;
  EXPECT_NEAR(analytic, numeric, 2e-2 * std::fabs(numeric) + 1e-4) << "analytic " << analytic << " numeric " << numeric;
}

TEST(DistillSft, LowersTheLossOnAFixedBatchAndWritesALoadableModel) {
  Student s;
  std::vector<distill::Trace> traces = s.traces(4);
  SftOptions o;
  o.model = s.model;
  o.out = s.dir / "out";
  o.steps = 20;
  o.batch = 8;  // more than the traces: every step sees the same four
  o.lr = 1e-2;
  o.warmup = 2;
  o.log_every = 5;
  SftResult r = sft(o, traces, nullptr);
  EXPECT_EQ(r.steps, 20);
  EXPECT_EQ(r.traces, 4);
  EXPECT_FALSE(r.stopped_by_time);
  std::printf("[distill] SFT on a fixed batch: loss %.4f -> %.4f in 20 steps (%.2f s)\n", r.first_loss, r.last_loss,
              r.seconds);
  EXPECT_LT(r.last_loss, 0.6 * r.first_loss);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "metrics.jsonl",
                        "sft.json", "loss.svg"})
    EXPECT_TRUE(fs::exists(fs::path(o.out) / f)) << f;
  EXPECT_FALSE(fs::exists(o.out + ".partial"));
  EXPECT_EQ(file_bytes(o.out + "/tokenizer.json"), file_bytes(s.model + "/tokenizer.json"));
  // The saved student gives the trained loss again, through the training loader and the inference one.
  train::TrainModel back = train::TrainModel::from_checkpoint(o.out);
  SftBatch b = make_sft_batch(traces, {0, 1, 2, 3}, s.eos);
  train::TokenObjective obj = completion_objective(b);
  const double reloaded = back.loss(b.ids.data(), b.B, b.T, {.mtp_lambda = 0, .balance_alpha = 0}, &obj).main;
  EXPECT_LT(reloaded, r.first_loss * 0.6);
  EXPECT_NO_THROW(Model::load(o.out));
  // A token id outside the student's vocabulary is refused, and nothing is written.
  traces[1].completion[0] = 100000;
  o.out = s.dir / "bad";
  EXPECT_THROW(sft(o, traces, nullptr), Error);
  EXPECT_FALSE(fs::exists(o.out));
}

TEST(DistillSft, WallClockBudgetStopsAndIsRecorded) {
  Student s;
  SftOptions o;
  o.model = s.model;
  o.out = s.dir / "out";
  o.steps = 100000;
  o.batch = 2;
  o.max_seconds = 0.3;
  SftResult r = sft(o, s.traces(4), nullptr);
  EXPECT_TRUE(r.stopped_by_time);
  EXPECT_GE(r.steps, 1);
  EXPECT_LT(r.steps, 100000);
  EXPECT_GE(r.seconds, 0.3);
  const nlohmann::json j = nlohmann::json::parse(file_bytes(o.out + "/sft.json"));
  EXPECT_EQ(j["result"]["stopped_by_time"], true);
  EXPECT_EQ(j["result"]["steps"], r.steps);
}

TEST(DistillSft, KilledRunLeavesNoOutputDirectory) {
  Student s;
  const std::string traces = s.dir / "traces.jsonl", out = s.dir / "out";
  save_traces(traces, s.traces(4));
  auto spawn = [&](const std::string& steps) {
    return test::spawn_quiet({SEEK_BINARY, "sft", "--model", s.model, "--traces", traces, "--out", out, "--steps", steps,
                              "--batch", "2", "--log-every", "1"});
  };
  // Killed while training (once its metrics show a step): no OUT, only OUT.partial.
  pid_t pid = spawn("1000000");
  const std::string metrics = out + ".partial/metrics.jsonl";
  for (int i = 0; i < 20000 && !(fs::exists(metrics) && fs::file_size(metrics) > 0); ++i) usleep(1000);
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(fs::exists(out + ".partial"));
  // Run again to the end: OUT is complete and the leftover is gone.
  pid = spawn("3");
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE(fs::exists(out + "/model.safetensors"));
  EXPECT_TRUE(fs::exists(out + "/sft.json"));
  EXPECT_FALSE(fs::exists(out + ".partial"));
}

// A run stopped part way (a checkpoint at the stop) and run again with the same options reaches the
// same student, byte for byte, as a run that never stopped.
TEST(DistillSft, StoppedAndResumedEqualsUninterrupted) {
  Student s;
  const std::vector<distill::Trace> traces = s.traces(6);
  auto options = [&](const std::string& out) {
    SftOptions o;
    o.model = s.model;
    o.out = out;
    o.steps = 8;
    o.batch = 4;  // 6 traces: the data order crosses an epoch at the stop
    o.lr = 1e-2;
    o.warmup = 2;
    o.save_every = 3;
    return o;
  };
  sft(options(s.dir / "straight"), traces, nullptr);
  SftOptions o = options(s.dir / "resumed");
  o.stop_after = 3;
  SftResult first = sft(o, traces, nullptr);
  EXPECT_EQ(first.steps, 3);
  EXPECT_FALSE(fs::exists(o.out));
  EXPECT_TRUE(fs::exists(o.out + ".partial/ckpt-3/state.json"));
  o.stop_after = 0;
  SftResult second = sft(o, traces, nullptr);
  EXPECT_EQ(second.steps, 8);
  EXPECT_EQ(second.completion_tokens, sft(options(s.dir / "again"), traces, nullptr).completion_tokens);
  EXPECT_TRUE(file_bytes(s.dir / "straight/model.safetensors") == file_bytes(s.dir / "resumed/model.safetensors"));
}

// The same through the CLI with SIGKILL: the killed run's OUT.partial resumes to the same student.
TEST(DistillSft, KilledRunResumesToTheSameResult) {
  Student s;
  const std::string traces = s.dir / "traces.jsonl";
  save_traces(traces, s.traces(6));
  auto spawn = [&](const std::string& out) {
    return test::spawn_quiet({SEEK_BINARY, "sft", "--model", s.model, "--traces", traces, "--out", out, "--steps", "40",
                              "--batch", "3", "--save-every", "2", "--log-every", "1"});
  };
  auto finish = [&](pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
  };
  const std::string straight = s.dir / "straight", killed = s.dir / "killed";
  EXPECT_EQ(finish(spawn(straight)), 0);
  pid_t pid = spawn(killed);
  for (int i = 0; i < 20000 && !fs::exists(killed + ".partial/ckpt-4"); ++i) usleep(1000);
  kill(pid, SIGKILL);
  const int status = finish(pid);
  std::printf("[distill] the first run was %s\n", WIFSIGNALED(status) ? "killed part way" : "already finished when killed");
  EXPECT_EQ(finish(spawn(killed)), 0);
  EXPECT_FALSE(fs::exists(killed + ".partial"));
  EXPECT_TRUE(file_bytes(straight + "/model.safetensors") == file_bytes(killed + "/model.safetensors"));
}

// --- Rejection sampling end to end -------------------------------------------------------------------

TEST(DistillRejection, SamplesScoresAndSelectsOnATinyModel) {
  Student s;  // a random model as the "teacher": it writes garbage, which must all be rejected
  auto model = Model::load(s.model);
  QuestionOptions qo;
  qo.count = 5;
  const std::vector<Problem> q = training_questions(qo);
  RejectionOptions ro;
  ro.samples = 3;
  ro.max_new_tokens = 6;
  ro.batch = 6;
  RejectionStats st;
  std::vector<distill::Trace> t = rejection_sample(*model, s.tok, q, ro, &st, nullptr);
  EXPECT_EQ(st.questions, 5);
  EXPECT_EQ(st.samples, 15);
  EXPECT_EQ(st.kept, int64_t(t.size()));
  EXPECT_LE(st.kept, st.correct_and_formatted);
  EXPECT_GT(st.tokens, 0);
  EXPECT_GT(st.seconds, 0);
  for (const distill::Trace& tr : t) EXPECT_EQ(tr.completion.back(), s.eos);
  // Same options, same samples.
  RejectionStats again;
  rejection_sample(*model, s.tok, q, ro, &again, nullptr);
  EXPECT_EQ(again.tokens, st.tokens);
  ro.max_per_question = 0;
  EXPECT_THROW(rejection_sample(*model, s.tok, q, ro, nullptr, nullptr), Error);
}

// Rejection sampling over ranks (`mpiexec -n N seek distill`): each rank samples its share of the
// questions; every rank selects from all of them what one process selects.
TEST(DistillRejection, RanksSampleWhatOneProcessSamples) {
  Student s;
  auto model = Model::load(s.model);
  QuestionOptions qo;
  qo.count = 7;
  const std::vector<Problem> q = training_questions(qo);
  RejectionOptions ro;
  ro.samples = 2, ro.max_new_tokens = 8, ro.batch = 4;  // 4 chunks of 2 questions, the last of 1
  RejectionStats one;
  rejection_sample(*model, s.tok, q, ro, &one, nullptr);
  for (const std::string& e : test::on_ranks(3, [&](Communicator& c) {
         auto m = Model::load(s.model);
         const Tokenizer tok = Tokenizer::load(s.model);
         RejectionOptions rc = ro;
         rc.comm = &c;
         RejectionStats st;
         rejection_sample(*m, tok, q, rc, &st, nullptr);
         EXPECT_EQ(st.samples, one.samples);
         EXPECT_EQ(st.tokens, one.tokens) << "rank " << c.rank();
         EXPECT_EQ(st.correct, one.correct);
         EXPECT_EQ(st.formatted, one.formatted);
       }))
    EXPECT_EQ(e, "");
}

// Data parallelism (`mpiexec -n N seek sft`): ranks of an in-process group on threads. Batches of 5
// traces of different lengths: 2 ranks take 2 and 3 rows, padded to their own longest; 7 ranks leave two
// without rows. After 6 steps the student equals one process's up to the order of sums.
TEST(DistillSft, DataParallelRanksComputeWhatOneProcessComputes) {
  Student s;
  const std::vector<distill::Trace> traces = s.traces(9);
  auto options = [&](const std::string& out) {
    SftOptions o;
    o.model = s.model;
    o.out = out;
    o.steps = 6;
    o.batch = 5;
    o.lr = 1e-2;
    o.warmup = 2;
    o.save_every = 3;
    return o;
  };
  auto on_ranks = [&](int n, const std::string& out) {
    SftResult lead;
    for (const std::string& e : test::on_ranks(n, [&](Communicator& c) {
           SftOptions o = options(out);
           o.comm = &c;
           const SftResult r = sft(o, traces, nullptr);
           if (c.rank() == 0) lead = r;
         }))
      EXPECT_EQ(e, "");
    return lead;
  };
  const SftResult one = on_ranks(1, s.dir / "one");
  for (int n : {2, 7}) {
    const std::string out = s.dir / ("ranks" + std::to_string(n));
    const SftResult many = on_ranks(n, out);
    EXPECT_NEAR(many.first_loss, one.first_loss, 1e-5 * std::fabs(one.first_loss)) << n << " ranks";
    EXPECT_NEAR(many.last_loss, one.last_loss, 1e-4 * std::fabs(one.last_loss)) << n << " ranks";
    EXPECT_EQ(many.completion_tokens, one.completion_tokens);
    ASSERT_TRUE(fs::exists(out + "/model.safetensors"));
    const test::ParamDiff diff = test::param_diff(out, s.dir / "one", s.model);
    std::printf("[sft] %d ranks vs one: |dθ| / |θ - θ0| %.3g\n", n, diff.rel_to_update);
    EXPECT_LT(diff.rel_to_update, 1e-4) << n << " ranks";
  }
}
