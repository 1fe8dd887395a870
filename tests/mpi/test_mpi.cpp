// Under mpiexec (ctest runs this with -n 2 and -n 3, one thread per rank): the MPI communicator's
// collectives, and data-parallel pretraining over MPI against the same run in one process.
#include <gtest/gtest.h>

#include <memory>

#include "comm_checks.h"
#include "pretrain_data.h"
#include "train/pretrain.h"
#include "util/comm.h"

using namespace seek;

TEST(Mpi, Collectives) {
  ASSERT_GT(world().size(), 1) << "run under mpiexec -n 2 or more";
  EXPECT_EQ(test::check_collectives(world()), "");
}

TEST(Mpi, DataParallelPretrainingComputesWhatOneProcessComputes) {
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
    o.batch = 6;  // splits over 2 and 3 ranks
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
    std::vector<std::unique_ptr<Communicator>> alone = make_local_group(1);
    train::PretrainOptions o = options("one");
    o.comm = alone[0].get();
    train::pretrain(o, nullptr);
  }
  w.barrier();
  train::PretrainResult r = train::pretrain(options("mpi"), nullptr);
  EXPECT_EQ(r.step, 6);
  if (w.rank() == 0) {
    const test::ParamDiff diff = test::param_diff(dir + "/mpi/ckpt-6", dir + "/one/ckpt-6", dir + "/one/init");
    std::printf("[mpi] %d ranks vs one process: max |dθ| %.3g, |dθ| / |θ - θ0| %.3g\n", w.size(), diff.max_abs,
                diff.rel_to_update);
    EXPECT_LT(diff.rel_to_update, 1e-4);  // the bound of the unit test Pretrain.DataParallelRanks...
  }
  w.barrier();  // rank 0's directory lives until every rank is done with it
}
