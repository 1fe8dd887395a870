// comm_checks.h — one check of a communicator's collectives, run by every rank of a group: the unit
// tests run it on in-process groups, tests/mpi under mpiexec. Returns "" or what went wrong on this rank.
#pragma once
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "util/comm.h"

namespace seek::test {

inline std::string check_collectives(Communicator& c) {
  const int n = c.size(), me = c.rank();
  std::string fail;
  auto expect = [&](bool ok, const std::string& what) {
    if (!ok && fail.empty()) fail = "rank " + std::to_string(me) + " of " + std::to_string(n) + ": " + what;
  };
  // Float sums in rank order, bit for bit: values whose sum depends on the order (1e8 + 1 - 1e8...).
  // 1037 elements: the chunks of the MPI reduction are uneven; 2,109,589 (8.05 MiB): more than one of
  // its 8 MiB buckets, the last one short.
  auto value = [](int r, int64_t i) { return float(((r * 7 + i * 13) % 11) - 5) * (r % 2 ? 1e8f : 1.f) + float(i % 3) * 1e-3f; };
  for (const int64_t len : {int64_t(1037), int64_t(2109589)}) {
    std::vector<float> x(static_cast<size_t>(len));
    for (int64_t i = 0; i < len; ++i) x[size_t(i)] = value(me, i);
    c.all_reduce_sum(x);
    for (int64_t i = 0; i < len; ++i) {
      float want = value(0, i);
      for (int r = 1; r < n; ++r) want += value(r, i);
      if (std::memcmp(&want, &x[size_t(i)], 4) != 0) {
        expect(false, "float sum of " + std::to_string(len) + " at " + std::to_string(i) + " is not the rank-order sum");
        break;
      }
    }
  }
  std::vector<double> dv{double(me), 0.5};
  c.all_reduce_sum(dv);
  expect(dv[0] == double(n * (n - 1) / 2) && dv[1] == 0.5 * n, "double sum");
  std::vector<int64_t> iv{int64_t(me) << 40, 1};
  c.all_reduce_sum(iv);
  expect(iv[0] == (int64_t(n) * (n - 1) / 2) << 40 && iv[1] == n, "int64 sum");
  std::vector<float> empty;
  c.all_reduce_sum(empty);

  // Broadcast from the last rank.
  std::vector<int32_t> b(100, me);
  c.broadcast(b.data(), int64_t(b.size() * 4), n - 1);
  for (int32_t v : b) expect(v == n - 1, "broadcast");

  // All-to-all: rank a sends rank b (a + b) % 3 + 1 bytes, each the value 16 a + b (and none to itself
  // when a is odd).
  auto bytes = [](int a, int b) { return (a % 2 == 1 && a == b) ? 0 : (a + b) % 3 + 1; };
  std::vector<int64_t> sb(static_cast<size_t>(n)), rb(static_cast<size_t>(n));
  std::vector<uint8_t> send, recv;
  for (int r = 0; r < n; ++r) {
    sb[size_t(r)] = bytes(me, r);
    rb[size_t(r)] = bytes(r, me);
    send.insert(send.end(), size_t(sb[size_t(r)]), uint8_t(16 * me + r));
  }
  int64_t total = 0;
  for (int64_t v : rb) total += v;
  recv.assign(size_t(total), 0xff);
  c.all_to_all(send.data(), sb.data(), recv.data(), rb.data());
  size_t at = 0;
  for (int r = 0; r < n; ++r)
    for (int64_t k = 0; k < rb[size_t(r)]; ++k) expect(recv[at++] == uint8_t(16 * r + me), "all_to_all from rank " + std::to_string(r));
  c.barrier();
  return fail;
}

}  // namespace seek::test
