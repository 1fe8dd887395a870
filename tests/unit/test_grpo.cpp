// GRPO through the training loop, end to end on the shipped tiny model (models/seek-tiny: it answers
// some arithmetic right and some wrong, so groups have mixed rewards and the gradients are real): a run
// stopped part way and resumed — with the reference reset and saved beside the policy, and two
// optimizer steps per batch of rollouts — reaches the same policy byte for byte as a run that never
// stopped, in-process and through the CLI after SIGKILL.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "rl/grpo.h"
#include "train/train_model.h"
#include "ranks.h"
#include "test_util.h"

using namespace seek;
namespace fs = std::filesystem;

namespace {

const std::string kPolicy = std::string(SEEK_TEST_DATA) + "/../models/seek-tiny";

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

rl::GrpoRunOptions options(const std::string& out) {
  rl::GrpoRunOptions o;
  o.policy = kPolicy;
  o.out = out;
  o.steps = 3;
  o.questions = 2;
  o.group = 4;
  o.max_new_tokens = 160;
  o.inner = 2;
  o.micro = 3;
  o.lr = 1e-3;
  o.warmup = 1;
  o.ref_reset = 1;
  o.kinds = {TaskKind::Arithmetic};
  o.min_difficulty = 2;
  o.max_difficulty = 3;
  o.save_every = 1;
  return o;
}

}  // namespace

TEST(Grpo, StoppedAndResumedEqualsUninterrupted) {
  test::TempDir dir;
  const rl::GrpoResult straight = rl::grpo(options(dir / "straight"), nullptr);
  EXPECT_EQ(straight.steps, 3);
  rl::GrpoRunOptions o = options(dir / "resumed");
  o.stop_after = 1;
  EXPECT_EQ(rl::grpo(o, nullptr).steps, 1);
  EXPECT_FALSE(fs::exists(o.out + "/model"));
  EXPECT_TRUE(fs::exists(o.out + "/ckpt-2/reference/model.safetensors"));  // loop step 2 = rollout step 1
  o.stop_after = 0;
  const rl::GrpoResult resumed = rl::grpo(o, nullptr);
  EXPECT_EQ(resumed.steps, 3);
  EXPECT_DOUBLE_EQ(resumed.last_reward, straight.last_reward);
  const std::string a = file_bytes(dir / "straight/model/model.safetensors");
  EXPECT_TRUE(a == file_bytes(dir / "resumed/model/model.safetensors"));
  // Something was learned: rewards differed within groups and the policy moved.
  EXPECT_GT(straight.first_accuracy + straight.last_accuracy, 0.0);
  train::TrainModel::from_checkpoint(kPolicy).save(dir / "initial");
  EXPECT_FALSE(a == file_bytes(dir / "initial/model.safetensors")) << "the policy did not move: nothing was tested";
  EXPECT_TRUE(fs::exists(dir / "straight/grpo.svg"));
}

TEST(Grpo, KilledRunResumesToTheSameResult) {
  test::TempDir dir;
  auto spawn = [&](const std::string& out) {
    return test::spawn_quiet({SEEK_BINARY, "grpo", "--policy", kPolicy, "--out", out, "--steps", "6", "--questions", "2",
                              "--group", "4", "--max-new-tokens", "160", "--inner", "1", "--micro", "4", "--lr", "1e-3",
                              "--warmup", "1", "--ref-reset", "2", "--kinds", "arithmetic", "--min-difficulty", "2",
                              "--max-difficulty", "3", "--save-every", "1"});
  };
  auto finish = [&](pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
  };
  const std::string straight = dir / "straight", killed = dir / "killed";
  EXPECT_EQ(finish(spawn(straight)), 0);
  const pid_t pid = spawn(killed);
  for (int i = 0; i < 60000 && !fs::exists(killed + "/ckpt-3"); ++i) usleep(1000);
  kill(pid, SIGKILL);
  const int status = finish(pid);
  std::printf("[grpo] the first run was %s\n", WIFSIGNALED(status) ? "killed part way" : "already finished when killed");
  EXPECT_EQ(finish(spawn(killed)), 0);
  EXPECT_TRUE(file_bytes(straight + "/model/model.safetensors") == file_bytes(killed + "/model/model.safetensors"));
}

// Data parallelism (`mpiexec -n N seek grpo`): ranks of an in-process group on threads. 3 questions
// over 2 ranks (1 and 2 questions) and over 4 (one rank without a question), one rollout step with two
// optimizer steps. The rollouts use the seeds they have in one process: the same tokens and rewards. The
// first optimizer step starts from the same parameters: its loss, gradient norm and KL agree within 1e-5.
// The policy after both steps is one process's within 1e-3 of the update: AdamW's first step moves every
// parameter by lr · sign(g), so an element whose gradient is a near-cancelling sum (a group's advantages
// sum to zero) and whose last bits depend on the order of sums can move the other way.
TEST(Grpo, DataParallelRanksComputeWhatOneProcessComputes) {
  test::TempDir dir;
  auto on_ranks = [&](int n, const std::string& out) {
    rl::GrpoResult lead;
    for (const std::string& e : test::on_ranks(n, [&](Communicator& c) {
        rl::GrpoRunOptions o = options(out);
        o.questions = 3;
        o.steps = 1;
        // Groups with mixed rewards at the first step (the options above give uniform ones: no gradient).
        o.kinds = {TaskKind::Arithmetic, TaskKind::Countdown};
        o.min_difficulty = 1;
        o.max_difficulty = kMaxDifficulty;
        o.comm = &c;
        const rl::GrpoResult r = rl::grpo(o, nullptr);
        if (c.rank() == 0) lead = r;
      }))
      EXPECT_EQ(e, "");
    return lead;
  };
  const rl::GrpoResult one = on_ranks(1, dir / "one");
  for (int n : {2, 4}) {
    const std::string out = dir / ("ranks" + std::to_string(n));
    const rl::GrpoResult many = on_ranks(n, out);
    EXPECT_DOUBLE_EQ(many.first_reward, one.first_reward) << n << " ranks";
    EXPECT_DOUBLE_EQ(many.last_reward, one.last_reward) << n << " ranks";
    train::TrainModel::from_checkpoint(kPolicy).save(dir / "initial");
    const test::ParamDiff diff = test::param_diff(out + "/model", dir / "one/model", dir / "initial");
    std::printf("[grpo] %d ranks vs one: |dθ| / |θ - θ0| %.3g\n", n, diff.rel_to_update);
    EXPECT_LT(diff.rel_to_update, 1e-3) << n << " ranks";
    auto lines = [](const std::string& path) {
      std::vector<nlohmann::json> v;
      std::ifstream in(path);
      for (std::string l; std::getline(in, l);)
        if (!l.empty()) v.push_back(nlohmann::json::parse(l));
      return v;
    };
    const auto la = lines(out + "/metrics.jsonl"), lb = lines(dir / "one/metrics.jsonl");
    ASSERT_EQ(la.size(), lb.size());
    ASSERT_GE(la.size(), 1u);
    EXPECT_GT(lb[0].value("grad_norm", 0.0), 0) << "no gradient at the first step: nothing was tested";
    for (const char* k : {"loss", "grad_norm", "reward", "kl", "accuracy"}) {
      const double x = la[0].value(k, 0.0), y = lb[0].value(k, 0.0);
      EXPECT_NEAR(x, y, 1e-5 * std::max(1e-3, std::fabs(y))) << k << ", " << n << " ranks";
    }
  }
}
