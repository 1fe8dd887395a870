// Pretraining end to end on the synthetic reasoning corpus: the validation loss falls; a run stopped
// at step k and resumed equals an uninterrupted run bit for bit; a run killed with SIGKILL resumes from
// its last complete checkpoint to the same result; a mismatched or missing checkpoint is refused; the
// metrics carry per-layer expert balance over the log interval and MFU, the charts are drawn at every
// checkpoint, and the MTP weight λ switches at the step its schedule says (across a resume too).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/corpus.h"
#include "data/shards.h"
#include "model/bpe_trainer.h"
#include "model/tokenizer.h"
#include "model/weights.h"
#include "pretrain_data.h"
#include "ranks.h"
#include "test_util.h"
#include "train/pretrain.h"
#include "util/error.h"

using namespace seek;
using namespace seek::train;
using seek::test::Dataset;
namespace fs = std::filesystem;

namespace {

using test::file_bytes;

std::vector<nlohmann::json> metric_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

}  // namespace

TEST(Pretrain, ValidationLossFalls) {
  Dataset d;
  PretrainOptions o = d.options(d.dir / "run", 40);
  PretrainResult r = pretrain(o, nullptr);
  EXPECT_EQ(r.step, 40);
  ASSERT_TRUE(std::isfinite(r.first_val_loss) && std::isfinite(r.last_val_loss));
  EXPECT_LT(r.last_val_loss, r.first_val_loss - 0.5) << r.first_val_loss << " -> " << r.last_val_loss;
  // The checkpoint is an HF directory the inference side loads, and metrics were written.
  EXPECT_TRUE(fs::exists(d.dir / "run/ckpt-40/model.safetensors"));
  EXPECT_TRUE(fs::exists(d.dir / "run/metrics.jsonl"));
}

TEST(Pretrain, StoppedAndResumedEqualsUninterrupted) {
  Dataset d;
  pretrain(d.options(d.dir / "straight", 8), nullptr);
  PretrainOptions o = d.options(d.dir / "resumed", 8);
  o.stop_after = 4;
  PretrainResult first = pretrain(o, nullptr);
  EXPECT_EQ(first.step, 4);
  o.stop_after = 0;
  PretrainResult second = pretrain(o, nullptr);
  EXPECT_TRUE(second.resumed);
  EXPECT_EQ(second.step, 8);
  EXPECT_TRUE(file_bytes(d.dir / "straight/ckpt-8/model.safetensors") == file_bytes(d.dir / "resumed/ckpt-8/model.safetensors"));
  EXPECT_TRUE(file_bytes(d.dir / "straight/ckpt-8/optim.safetensors") == file_bytes(d.dir / "resumed/ckpt-8/optim.safetensors"));
}

TEST(Pretrain, CheckpointWithFlatMomentsResumes) {
  // Checkpoints written before the moments were stored per parameter hold two flat arrays in the
  // table's order: the stopped run's optimizer state rewritten that way resumes to the same bits (after
  // a flat array of the wrong length was refused, naming the file).
  Dataset d;
  pretrain(d.options(d.dir / "straight", 8), nullptr);
  PretrainOptions o = d.options(d.dir / "resumed", 8);
  o.stop_after = 4;
  pretrain(o, nullptr);
  const std::string path = o.out + "/ckpt-4/optim.safetensors";
  std::vector<float> m, v;
  {
    SafetensorsFile opt(path);
    for (const TensorSpec& t : expected_tensors(load_config(o.out + "/ckpt-4")))
      for (auto [prefix, flat] : {std::pair{"exp_avg.", &m}, std::pair{"exp_avg_sq.", &v}}) {
        const TensorInfo* x = opt.find(prefix + t.name);
        ASSERT_NE(x, nullptr) << prefix << t.name;
        const auto* f = static_cast<const float*>(x->data);
        flat->insert(flat->end(), f, f + x->numel());
      }
  }
  const std::vector<int64_t> shape{int64_t(m.size())}, short_shape{int64_t(m.size()) - 1};
  write_safetensors(path, {{"exp_avg", DType::F32, short_shape, m.data()}, {"exp_avg_sq", DType::F32, short_shape, v.data()}});
  o.stop_after = 0;
  try {
    pretrain(o, nullptr);
    ADD_FAILURE() << "short flat moments were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("optim.safetensors"), std::string::npos) << e.what();
  }
  write_safetensors(path, {{"exp_avg", DType::F32, shape, m.data()}, {"exp_avg_sq", DType::F32, shape, v.data()}});
  EXPECT_TRUE(pretrain(o, nullptr).resumed);
  EXPECT_TRUE(file_bytes(d.dir / "straight/ckpt-8/model.safetensors") == file_bytes(d.dir / "resumed/ckpt-8/model.safetensors"));
}

TEST(Pretrain, KilledRunResumesToTheSameResult) {
  // Both runs go through the CLI (which picks its own BLAS kernels), one straight, one killed with
  // SIGKILL part way and started again with the same flags: the final checkpoints are identical.
  Dataset d;
  const int64_t steps = 30;
  auto args_for = [&](const std::string& out) {
    return std::vector<std::string>{SEEK_BINARY, "pretrain", "--config", d.config, "--data", d.data, "--out", out,
                                    "--steps", std::to_string(steps), "--batch", "4", "--seq-len", "32", "--warmup", "2",
                                    "--eval-every", std::to_string(steps), "--eval-batches", "4", "--save-every", "2",
                                    "--log-every", "1000"};
  };
  // Returns true when the process was killed (it had not finished yet).
  auto run = [&](const std::string& out, bool kill_it) {
    const pid_t pid = test::spawn_quiet(args_for(out));
    if (kill_it)  // once a few checkpoints exist (a write may be under way at that moment)
      for (int i = 0; i < 2000 && !fs::exists(fs::path(out) / "ckpt-6"); ++i) usleep(1000);
    if (kill_it) kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!kill_it) {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "seek pretrain failed";
    }
    return WIFSIGNALED(status);
  };
  const std::string straight = d.dir / "straight", killed = d.dir / "killed";
  run(straight, false);
  const bool was_killed = run(killed, true);
  run(killed, false);
  std::printf("[pretrain] the first run was %s\n", was_killed ? "killed part way" : "already finished when killed");
  ASSERT_TRUE(fs::exists(killed + "/ckpt-30/model.safetensors"));
  EXPECT_TRUE(file_bytes(straight + "/ckpt-30/model.safetensors") == file_bytes(killed + "/ckpt-30/model.safetensors"));
  EXPECT_TRUE(file_bytes(straight + "/ckpt-30/optim.safetensors") == file_bytes(killed + "/ckpt-30/optim.safetensors"));
}

TEST(Pretrain, RefusesBadCheckpoints) {
  Dataset d;
  PretrainOptions o = d.options(d.dir / "run", 4);
  pretrain(o, nullptr);
  // Other options than the checkpoint's.
  PretrainOptions other = o;
  other.lr = 1e-2;
  other.steps = 6;
  try {
    pretrain(other, nullptr);
    ADD_FAILURE() << "resumed with other options";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("other options"), std::string::npos) << e.what();
  }
  // latest names a checkpoint that is not there.
  test::write_text(d.dir / "run/latest", "ckpt-99\n");
  EXPECT_THROW(pretrain(o, nullptr), Error);
  // A truncated optimizer state.
  test::write_text(d.dir / "run/latest", "ckpt-4\n");
  fs::resize_file(d.dir / "run/ckpt-4/optim.safetensors", 100);
  EXPECT_THROW(pretrain(o, nullptr), Error);
}

TEST(Pretrain, MetricsHavePerLayerBalanceAndMfu) {
  Dataset d;
  PretrainOptions o = d.options(d.dir / "run", 6);
  o.log_every = 2;
  o.eval_every = 3;
  pretrain(o, nullptr);
  // The tiny V3 config: layers 1 and 2 are MoE (first_k_dense_replace 1), 8 experts, 3 per token.
  const int64_t E = 8, k = 3, tokens_per_step = o.batch * o.seq_len;
  std::vector<nlohmann::json> lines = metric_lines(d.dir / "run/metrics.jsonl");
  std::vector<int64_t> steps;
  int64_t prev = 0;
  for (const nlohmann::json& j : lines) {
    steps.push_back(j["step"].get<int64_t>());
    if (!j.contains("loss")) continue;  // step 0: validation only
    const int64_t step = j["step"].get<int64_t>();
    EXPECT_GT(j["tokens_per_s"].get<double>(), 0) << j;
    EXPECT_GT(j["gemm_peak_gflops"].get<double>(), 0) << j;
    EXPECT_GT(j["mfu"].get<double>(), 0) << j;
    EXPECT_LT(j["mfu"].get<double>(), 1.5) << j;  // a peak measured on this machine bounds it (with noise)
    EXPECT_DOUBLE_EQ(j["mtp_lambda"].get<double>(), 0.3);
    ASSERT_TRUE(j.contains("expert_load")) << j;
    const nlohmann::json& el = j["expert_load"];
    EXPECT_EQ(el.size(), 2u) << el;
    double worst = 0;
    int64_t dead = 0;
    for (const char* layer : {"1", "2"}) {
      ASSERT_TRUE(el.contains(layer)) << el;
      const double r = el[layer]["max_over_mean"].get<double>();
      EXPECT_GE(r, 1.0);
      EXPECT_LE(r, double(E));
      EXPECT_GE(el[layer]["dead"].get<int64_t>(), 0);
      EXPECT_LT(el[layer]["dead"].get<int64_t>(), E);
      // Accumulated over every step since the previous line, not the last batch only.
      EXPECT_EQ(el[layer]["routed"].get<int64_t>(), (step - prev) * tokens_per_step * k) << "step " << step;
      worst = std::max(worst, r);
      dead += el[layer]["dead"].get<int64_t>();
    }
    EXPECT_DOUBLE_EQ(j["max_over_mean_load"].get<double>(), worst);
    EXPECT_EQ(j["dead_experts"].get<int64_t>(), dead);
    prev = step;
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{0, 1, 2, 3, 4, 6}));  // the first step is always logged
}

TEST(Pretrain, PlotsDrawnAtEveryCheckpoint) {
  Dataset d;
  PretrainOptions o = d.options(d.dir / "run", 6);
  o.log_every = 1;
  o.stop_after = 3;  // a run stopped part way (as if killed after its checkpoint) already has its charts
  pretrain(o, nullptr);
  const std::string loss = d.dir / "run/loss.svg", balance = d.dir / "run/balance.svg";
  ASSERT_TRUE(fs::exists(loss));
  ASSERT_TRUE(fs::exists(balance));
  EXPECT_NE(file_bytes(loss).find(">train (next token)</text>"), std::string::npos);
  o.stop_after = 0;
  pretrain(o, nullptr);
  const std::string l = file_bytes(loss), b = file_bytes(balance);
  for (const std::string* svg : {&l, &b}) {
    EXPECT_EQ(svg->rfind("<?xml", 0), 0u);
    EXPECT_NE(svg->find("</svg>"), std::string::npos);
  }
  for (const char* name : {"train (next token)", "MTP (token after next)", "validation"})
    EXPECT_NE(l.find(std::string(">") + name + "</text>"), std::string::npos) << name;
  for (const char* name : {"layer 1", "layer 2", "all layers"})
    EXPECT_NE(b.find(std::string(">") + name + "</text>"), std::string::npos) << name;
  // The training loss line has a vertex per logged step (1 .. 6).
  const size_t g = l.find("<title>train (next token)</title>");
  ASSERT_NE(g, std::string::npos);
  const std::string group = l.substr(g, l.find("</g>", g) - g);
  const size_t p = group.find("points=\"");
  ASSERT_NE(p, std::string::npos);
  const std::string pts = group.substr(p, group.find('"', p + 8) - p);
  EXPECT_EQ(std::count(pts.begin(), pts.end(), ','), 6) << pts;
}

TEST(Pretrain, MtpLambdaScheduleSwitchesAndResumesExactly) {
  PretrainOptions s;
  s.steps = 10;
  s.mtp_lambda = 0.3;
  EXPECT_EQ(mtp_lambda_at(s, 10), 0.3);  // no final λ: constant
  s.mtp_lambda_final = 0.1;
  s.mtp_switch = 0.7;
  EXPECT_EQ(mtp_lambda_at(s, 7), 0.3);
  EXPECT_EQ(mtp_lambda_at(s, 8), 0.1);
  s.mtp_switch = 0;
  EXPECT_EQ(mtp_lambda_at(s, 1), 0.1);
  s.mtp_switch = 1;
  EXPECT_EQ(mtp_lambda_at(s, 10), 0.3);

  Dataset d;
  auto options = [&](const std::string& out) {
    PretrainOptions o = d.options(out, 10);
    o.log_every = 1;
    o.mtp_lambda = 0.3;
    o.mtp_lambda_final = 0.1;
    o.mtp_switch = 0.7;
    return o;
  };
  pretrain(options(d.dir / "straight"), nullptr);
  for (const nlohmann::json& j : metric_lines(d.dir / "straight/metrics.jsonl")) {
    if (!j.contains("mtp_lambda")) continue;
    EXPECT_DOUBLE_EQ(j["mtp_lambda"].get<double>(), j["step"].get<int64_t>() <= 7 ? 0.3 : 0.1) << j;
  }
  // Stopped before the switch and resumed after it: the same parameters as the straight run.
  PretrainOptions o = options(d.dir / "resumed");
  o.stop_after = 6;
  pretrain(o, nullptr);
  o.stop_after = 0;
  PretrainResult r = pretrain(o, nullptr);
  EXPECT_TRUE(r.resumed);
  EXPECT_TRUE(file_bytes(d.dir / "straight/ckpt-10/model.safetensors") == file_bytes(d.dir / "resumed/ckpt-10/model.safetensors"));
  // Another final λ is another run.
  o.mtp_lambda_final = 0.2;
  EXPECT_THROW(pretrain(o, nullptr), Error);
  // A checkpoint from before the schedule existed (no mtp_lambda_final in its options) resumes as constant λ.
  PretrainOptions c = d.options(d.dir / "legacy", 4);
  pretrain(c, nullptr);
  const std::string state = d.dir / "legacy/ckpt-4/state.json";
  nlohmann::json st = nlohmann::json::parse(file_bytes(state));
  st["options"].erase("mtp_lambda_final");
  st["options"].erase("mtp_switch");
  test::write_text(state, st.dump());
  EXPECT_NO_THROW(pretrain(c, nullptr));
  c.mtp_lambda_final = 0.1;
  EXPECT_THROW(pretrain(c, nullptr), Error);
}

// Data parallelism (train/trainer.h): ranks of an in-process group on threads, as under mpiexec.
namespace {

// Runs pretrain(o) on each rank of a group of n, one thread each; rethrows a rank's error.
void pretrain_on_ranks(int n, PretrainOptions o) {
  for (const std::string& e : test::on_ranks(n, [&](Communicator& c) {
         PretrainOptions mine = o;
         mine.comm = &c;
         pretrain(mine, nullptr);
       }))
    if (!e.empty()) throw Error(e);
}

}  // namespace

TEST(Pretrain, DataParallelRanksComputeWhatOneProcessComputes) {
  // Batch 4 on one rank, on two ranks of 2 rows and on four ranks of 1 row: after 6 steps the parameters
  // agree up to the order of floating-point sums. The bound: an update computed from gradients that
  // differ in their last bits moves each parameter differently by far less than 1e-4 of what training
  // moved it (AdamW divides by sqrt(v): a gradient near 0 can flip a sign, bounded by lr per step).
  Dataset d;
  const int64_t steps = 6;
  PretrainOptions o = d.options(d.dir / "one", steps);
  pretrain_on_ranks(1, o);
  for (int n : {2, 4}) {
    PretrainOptions p = d.options(d.dir / ("ranks" + std::to_string(n)), steps);
    pretrain_on_ranks(n, p);
    const std::string a = p.out + "/ckpt-6", b = o.out + "/ckpt-6";
    const test::ParamDiff diff = test::param_diff(a, b, o.out + "/init");
    std::printf("[pretrain] %d ranks vs one: max |dθ| %.3g, |dθ| / |θ - θ0| %.3g\n", n, diff.max_abs, diff.rel_to_update);
    EXPECT_LT(diff.rel_to_update, 1e-4) << n << " ranks";
    EXPECT_LT(diff.max_abs, 2 * o.lr * double(steps)) << n << " ranks";
    // The losses of every logged step and the validation agree too; rank 0 alone wrote the metrics.
    const std::vector<nlohmann::json> one = metric_lines(o.out + "/metrics.jsonl"), many = metric_lines(p.out + "/metrics.jsonl");
    ASSERT_EQ(one.size(), many.size());
    for (size_t i = 0; i < one.size(); ++i)
      for (const char* k : {"loss", "loss_main", "loss_mtp", "val_loss", "grad_norm"})
        if (one[i].contains(k)) {
          ASSERT_TRUE(many[i].contains(k)) << many[i];
          EXPECT_NEAR(many[i][k].get<double>(), one[i][k].get<double>(), 1e-4 * std::fabs(one[i][k].get<double>()))
              << k << " at line " << i << ", " << n << " ranks";
        }
    for (const nlohmann::json& j : many)
      if (j.contains("loss")) {
        EXPECT_TRUE(j.contains("comm_fraction")) << j;
      }
  }
  // Two runs on two ranks are bit for bit equal (the sums go in rank order).
  PretrainOptions again = d.options(d.dir / "ranks2-again", steps);
  pretrain_on_ranks(2, again);
  EXPECT_TRUE(file_bytes(d.dir / "ranks2/ckpt-6/model.safetensors") == file_bytes(again.out + "/ckpt-6/model.safetensors"));
}

TEST(Pretrain, DataParallelRunResumesUnderAnotherRankCount) {
  // The loader's position is the global batch's: 3 steps on two ranks, then 3 more in one process, end
  // where 6 steps in one process end (up to the order of sums).
  Dataset d;
  PretrainOptions o = d.options(d.dir / "one", 6);
  pretrain_on_ranks(1, o);
  PretrainOptions p = d.options(d.dir / "switched", 6);
  p.stop_after = 3;
  pretrain_on_ranks(2, p);
  p.stop_after = 0;
  pretrain_on_ranks(1, p);
  const test::ParamDiff diff = test::param_diff(p.out + "/ckpt-6", o.out + "/ckpt-6", o.out + "/init");
  EXPECT_LT(diff.rel_to_update, 1e-4);
}

TEST(Pretrain, DataParallelRefusesABatchThatDoesNotSplit) {
  Dataset d;
  PretrainOptions o = d.options(d.dir / "run", 2);
  o.batch = 3;
  try {
    pretrain_on_ranks(2, o);
    ADD_FAILURE() << "batch 3 on 2 ranks was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--batch 3"), std::string::npos) << e.what();
  }
}

TEST(Pretrain, ExpertParallelRanksComputeWhatOneProcessComputes) {
  // The tiny V3 config's 8 routed experts spread over 2 and 4 ranks, each training on its rows of the
  // batch and sending its tokens to the experts' ranks (all-to-all): the first step's loss and gradient
  // norm within 1e-5 of one process's, the parameters after 6 steps within 1e-4 of the update (the bound
  // of data parallelism, for the same reason).
  Dataset d;
  const int64_t steps = 6;
  PretrainOptions o = d.options(d.dir / "one", steps);
  o.log_every = 1;
  pretrain_on_ranks(1, o);
  for (int n : {2, 4}) {
    PretrainOptions p = d.options(d.dir / ("experts" + std::to_string(n)), steps);
    p.log_every = 1;
    p.expert_parallel = true;
    pretrain_on_ranks(n, p);
    const test::ParamDiff diff = test::param_diff(p.out + "/ckpt-6", o.out + "/ckpt-6", o.out + "/init");
    std::printf("[pretrain] experts on %d ranks vs one: max |dθ| %.3g, |dθ| / |θ - θ0| %.3g\n", n, diff.max_abs,
                diff.rel_to_update);
    EXPECT_LT(diff.rel_to_update, 1e-4) << n << " ranks";
    const std::vector<nlohmann::json> one = metric_lines(o.out + "/metrics.jsonl"), many = metric_lines(p.out + "/metrics.jsonl");
    ASSERT_EQ(one.size(), many.size());
    ASSERT_TRUE(one[1].contains("grad_norm"));  // line 0: the validation before the first step
    for (const char* k : {"loss", "grad_norm", "loss_mtp"})
      EXPECT_NEAR(many[1][k].get<double>(), one[1][k].get<double>(), 1e-5 * std::fabs(one[1][k].get<double>())) << k;
  }
}

TEST(Pretrain, ExpertParallelRunResumesUnderAnotherRankCount) {
  // Each rank holds and checkpoints only its own experts' parameters and moments in memory, but the
  // checkpoint is the whole model: 3 steps with the experts on four ranks, then 3 on two, then the same
  // from that checkpoint in one process, each end where 6 steps in one process end.
  Dataset d;
  PretrainOptions o = d.options(d.dir / "one", 6);
  pretrain_on_ranks(1, o);
  PretrainOptions p = d.options(d.dir / "switched", 6);
  p.expert_parallel = true;
  p.stop_after = 3;
  pretrain_on_ranks(4, p);
  for (const char* name : {"exp_avg.model.layers.1.mlp.experts.7.down_proj.weight",
                                  "exp_avg_sq.model.layers.1.mlp.experts.0.gate_proj.weight"}) {
    SafetensorsFile opt(p.out + "/ckpt-3/optim.safetensors");  // the moments of every rank's experts
    ASSERT_NE(opt.find(name), nullptr) << name;
  }
  p.stop_after = 0;
  pretrain_on_ranks(2, p);
  const test::ParamDiff diff = test::param_diff(p.out + "/ckpt-6", o.out + "/ckpt-6", o.out + "/init");
  std::printf("[pretrain] experts on 4 ranks, then 2, vs one: |dθ| / |θ - θ0| %.3g\n", diff.rel_to_update);
  EXPECT_LT(diff.rel_to_update, 1e-4);
}
