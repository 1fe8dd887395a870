// GRPO through the training loop, end to end on the shipped tiny model (models/seek-tiny: it answers
// some arithmetic right and some wrong, so groups have mixed rewards and the gradients are real): a run
// stopped part way and resumed — with the reference reset and saved beside the policy, and two
// optimizer steps per batch of rollouts — reaches the same policy byte for byte as a run that never
// stopped, in-process and through the CLI after SIGKILL.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "rl/grpo.h"
#include "train/train_model.h"
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
