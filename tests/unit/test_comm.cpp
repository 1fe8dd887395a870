// The communicator's collectives (util/comm.h) on in-process groups of 1 to 5 ranks: sums in rank
// order (bit for bit the sequential sum, on every rank), broadcast, all-to-all with uneven sizes, and
// mismatched calls refused. The MPI implementation runs the same checks under mpiexec (tests/mpi).
#include <gtest/gtest.h>


#include "comm_checks.h"
#include "ranks.h"
#include "util/comm.h"
#include "util/error.h"

using namespace seek;


TEST(Comm, CollectivesOnGroupsOfOneToFiveRanks) {
  for (int n = 1; n <= 5; ++n) {
    std::vector<std::string> failures(static_cast<size_t>(n));
    const std::vector<std::string> errors = test::on_ranks(n, [&](Communicator& c) {
      EXPECT_EQ(c.size(), n);
      failures[size_t(c.rank())] = test::check_collectives(c);
    });
    for (int r = 0; r < n; ++r) {
      EXPECT_EQ(errors[size_t(r)], "") << n << " ranks, rank " << r;
      EXPECT_EQ(failures[size_t(r)], "") << n << " ranks, rank " << r;
    }
  }
}

TEST(Comm, MismatchedCallsAreRefusedOnEveryRank) {
  const std::vector<std::string> errors = test::on_ranks(3, [](Communicator& c) {
    std::vector<float> x(size_t(4 + c.rank()), 1.f);
    c.all_reduce_sum(x);
  });
  for (const std::string& e : errors) EXPECT_NE(e.find("different sizes"), std::string::npos) << e;
  const std::vector<std::string> a2a = test::on_ranks(2, [](Communicator& c) {
    // Rank 0 sends rank 1 three bytes; rank 1 expects two.
    const int64_t send[2] = {1, 3}, recv[2] = {1, 2};
    const int64_t send1[2] = {1, 1}, recv1[2] = {3, 1};
    char in[8] = {}, out[8] = {};
    if (c.rank() == 0) c.all_to_all(in, send, out, recv1);
    else c.all_to_all(in, send1, out, recv);
  });
  EXPECT_NE(a2a[1].find("another size"), std::string::npos) << a2a[1];
}

TEST(Comm, OneProcessWithoutALauncher) {
  // The tests run without mpiexec: world() is one process, whatever this build has.
  EXPECT_EQ(world().size(), 1);
  EXPECT_EQ(world().rank(), 0);
  EXPECT_EQ(test::check_collectives(world()), "");
}
