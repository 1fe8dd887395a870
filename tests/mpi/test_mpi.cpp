// Under mpiexec (ctest runs this with -n 2, 3 and 4, one thread per rank): the MPI communicator's
// collectives, data-parallel pretraining, evaluation and expert-parallel inference against one process.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "comm_checks.h"
#include "model/model.h"
#include "model/random_checkpoint.h"
#include "nn/moe.h"
#include "pretrain_data.h"
#include "rl/eval.h"
#include "ranks.h"
#include "train/pretrain.h"
#include "util/comm.h"

using namespace seek;

TEST(Mpi, Collectives) {
  ASSERT_GT(world().size(), 1) << "run under mpiexec -n 2 or more";
  EXPECT_EQ(test::check_collectives(world()), "");
}

TEST(Mpi, ParallelPretrainingComputesWhatOneProcessComputes) {
  Communicator& w = world();
  // Rank 0 makes the data; every rank reads it from the directory rank 0 names.
  std::unique_ptr<test::Dataset> d;
  std::string dir;
  if (w.rank() == 0) {
    d = std::make_unique<test::Dataset>();
    dir = d->dir.path.string();
  }
  int64_t len = int64_t(dir.size());
  w.broadcast(&len, sizeof len, 0);
  dir.resize(size_t(len));
  w.broadcast(dir.data(), len, 0);
  auto options = [&](const std::string& out) {
    train::PretrainOptions o;
    o.config = dir + "/config.json";
    o.data = dir + "/data";
    o.out = dir + "/" + out;
    o.steps = 6;
    o.batch = 12;  // splits over 2, 3 and 4 ranks
    o.seq_len = 32;
    o.warmup = 2;
    o.eval_every = 6;
    o.eval_batches = 4;
    o.save_every = 3;
    o.log_every = 1000;
    return o;
  };
  // The reference: rank 0 alone, in a group of one.
  if (w.rank() == 0) {
    train::PretrainOptions o = options("one");
    o.comm = &one_process();
    train::pretrain(o, nullptr);
  }
  w.barrier();
  // Data parallel, then the experts spread (every rank the whole batch).
  for (bool experts : {false, true}) {
    train::PretrainOptions o = options(experts ? "mpi-experts" : "mpi");
    o.expert_parallel = experts;
    train::PretrainResult r = train::pretrain(o, nullptr);
    EXPECT_EQ(r.step, 6);
    if (w.rank() == 0) {
      const test::ParamDiff diff = test::param_diff(o.out + "/ckpt-6", dir + "/one/ckpt-6", dir + "/one/init");
      std::printf("[mpi] %s on %d ranks vs one process: max |dθ| %.3g, |dθ| / |θ - θ0| %.3g\n",
                  experts ? "experts" : "batch", w.size(), diff.max_abs, diff.rel_to_update);
      EXPECT_LT(diff.rel_to_update, 1e-4);  // the bound of the unit tests Pretrain.*ParallelRanks...
    }
  }
  w.barrier();  // rank 0's directory lives until every rank is done with it
}

// `mpiexec -n N seek eval` on the shipped teacher: the ranks share the problems (rl/rollout.h) and every
// rank's result is one process's, greedy and sampled.
TEST(Mpi, EvaluationOverRanksEqualsOneProcess) {
  Communicator& w = world();
  const std::string dir = std::string(SEEK_TEST_DATA) + "/../models/seek-tiny";
  auto model = Model::load(dir);
  const Tokenizer tok = Tokenizer::load(dir);
  rl::EvalOptions o;
  o.kinds = {TaskKind::Arithmetic};
  o.min_difficulty = 2, o.max_difficulty = 3;
  o.problems = 6, o.greedy_problems = 16, o.samples = 3;
  o.max_new_tokens = 320, o.batch = 12, o.seed = 4;
  auto figures = [&](Communicator& c) {
    o.comm = &c;
    nlohmann::json j = rl::to_json(rl::evaluate(*model, tok, o));
    j.erase("seconds");
    return j;
  };
  nlohmann::json one;
  if (w.rank() == 0) one = figures(one_process());
  const nlohmann::json spread = figures(w);
  if (w.rank() == 0) {
    EXPECT_EQ(spread, one);
    EXPECT_GT(one["pass1_greedy"].get<double>(), 0.5);  // a real model's answers, not empty ones
    std::printf("[mpi] eval on %d ranks: greedy pass@1 %.3f, sampled %.3f, as one process\n", w.size(),
                spread["pass1_greedy"].get<double>(), spread["pass1_sampled"].get<double>());
  }
}

namespace {

// max |a - b| / max |b|.
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, m = 0;
  for (size_t i = 0; i < b.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i]))), m = std::max(m, double(std::fabs(b[i])));
  return d / std::max(m, 1e-30);
}

// Logits of a fixed workload: a 12-token prompt, 3 decode steps, a batched step of two sequences, and
// the MTP module when the model has one — every pass that runs MoE layers.
std::vector<float> workload(Model& m, MlaForm form) {
  const Config& c = m.config();
  const int64_t V = c.vocab_size, D = c.hidden_size;
  std::vector<int32_t> ids(12);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 37 + 11) % size_t(V));
  std::vector<float> out, logits(size_t(12 * V)), hidden(size_t(12 * D));
  KVCache a = m.new_cache(32, form), b = m.new_cache(32, form);
  m.forward(a, ids.data(), 12, logits.data(), true, hidden.data());
  out.insert(out.end(), logits.begin(), logits.end());
  for (int32_t t : {3, 5, 8}) {
    m.forward(a, &t, 1, logits.data(), false);
    out.insert(out.end(), logits.begin(), logits.begin() + V);
  }
  const int32_t one = 4;
  std::vector<Model::BatchItem> items{{&a, &one, 1, 1}, {&b, ids.data(), 5, 2}};
  std::vector<float> batch(size_t(3 * V));
  m.forward_batch(items, batch.data());
  out.insert(out.end(), batch.begin(), batch.end());
  if (c.num_nextn_predict_layers > 0) {
    KVCache mc = m.new_mtp_cache(32, form);
    m.forward_mtp(0, mc, hidden.data(), ids.data() + 1, 11, logits.data());
    out.insert(out.end(), logits.begin(), logits.begin() + 11 * V);
  }
  return out;
}

}  // namespace

TEST(Mpi, ExpertParallelLogitsEqualOneProcess) {
  // Every MoE model type, both MLA forms: the experts spread over the ranks give the logits of one
  // process (<= 1e-5 of the largest, f32 weights: only the order of the final sums differs), and every
  // rank the same bits.
  Communicator& w = world();
  for (const char* type : {"deepseek_v3", "deepseek_v2"}) {
    test::TempDir dir;
    write_random_checkpoint(dir / "m", test::tiny_config(type), {DType::F32, 3, 1});
    std::unique_ptr<Model> m = Model::load(dir / "m");
    ExpertParallel ep(w, m->config().n_routed_experts);
    for (MlaForm form : {MlaForm::Absorbed, MlaForm::Naive}) {
      m->set_experts(nullptr);
      const std::vector<float> one = workload(*m, form);
      m->set_experts(&ep);
      const int64_t sent_before = w.bytes_sent();
      std::vector<float> spread = workload(*m, form);
      EXPECT_GT(w.bytes_sent(), sent_before);
      const double diff = rel_diff(spread, one);
      if (w.rank() == 0)
        std::printf("[mpi] %s, %s MLA, experts on %d ranks vs one process: logits differ by %.2g of the largest\n", type,
                    form == MlaForm::Absorbed ? "absorbed" : "naive", w.size(), diff);
      EXPECT_LE(diff, 1e-5) << type << " on " << w.size() << " ranks";
      std::vector<float> lead = spread;
      w.broadcast(lead.data(), int64_t(lead.size() * 4), 0);
      EXPECT_EQ(std::memcmp(lead.data(), spread.data(), lead.size() * 4), 0) << "rank " << w.rank() << " differs";
    }
  }
}
