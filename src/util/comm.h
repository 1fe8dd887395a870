// comm.h — how seek's processes talk: the few collectives that data and expert parallelism need, over
// MPI (Debian's MPICH) when seek runs under mpiexec, in one process otherwise.
//
// Every collective is called by every rank of the group, in the same order, with matching sizes.
// Sums are deterministic: element i is added in rank order (rank 0's value + rank 1's + ...), whatever
// the group's size or the MPI library's own algorithms, so every rank holds bit for bit the same result
// and a run repeats bit for bit. The MPI implementation reduces in N chunks (each rank sums one chunk
// of every rank's data, then all gather the sums), in buckets of 8 MiB: the bytes each rank sends are
// those of a ring all-reduce, 2 (N - 1) / N of the array, and its buffer is one bucket.
//
// Three implementations: one process (size 1, every collective a copy or nothing), MPI, and an
// in-process group of N ranks on N threads (make_local_group) that gives the unit tests a group without
// mpiexec, with the same summation order as the MPI one.
//
// Errors: a rank that dies ends the job (MPICH's launcher kills the others: MPI_ERRORS_ARE_FATAL);
// a collective with mismatched sizes throws Error (local group) or aborts (MPI).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace seek {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Ranks of this group on this machine (threads per rank = cores / local_size).
  virtual int local_size() const { return size(); }
  // Replaces x on every rank with the element-wise sum over the ranks (in rank order).
  void all_reduce_sum(std::span<float> x) { reduce(x.data(), int64_t(x.size()), Kind::F32); }
  void all_reduce_sum(std::span<double> x) { reduce(x.data(), int64_t(x.size()), Kind::F64); }
  void all_reduce_sum(std::span<int64_t> x) { reduce(x.data(), int64_t(x.size()), Kind::I64); }
  // Copies root's bytes [0, n) into every rank's data.
  virtual void broadcast(void* data, int64_t n, int root) = 0;
  // The same, for a broadcast the other ranks may wait for a long time (a server's followers waiting for
  // the next request): they sleep between polls instead of spinning on a core. A little slower to wake.
  virtual void broadcast_idle(void* data, int64_t n, int root) { broadcast(data, n, root); }
  // Each rank sends send_bytes[r] bytes to rank r, from `send` packed in rank order, and receives
  // recv_bytes[r] bytes from rank r into `recv`, packed in rank order. send_bytes/recv_bytes: [size()];
  // what rank a sends to b is what b expects from a.
  virtual void all_to_all(const void* send, const int64_t* send_bytes, void* recv, const int64_t* recv_bytes) = 0;
  virtual void barrier() = 0;
  // "MPI, 2 ranks (2 on this machine)" or "one process".
  virtual std::string describe() const = 0;
  // Bytes this rank has sent to other ranks so far, as the algorithms above send them (a sum of n
  // bytes: 2 (N - 1) / N · n; a broadcast: (N - 1) · n from the root; all_to_all: what goes to others).
  int64_t bytes_sent() const { return sent_; }

 protected:
  enum class Kind { F32, F64, I64 };
  virtual void reduce(void* x, int64_t n, Kind k) = 0;
  static size_t width(Kind k) { return k == Kind::F32 ? 4 : 8; }
  // out[i] = sum over r of parts[r][i], in rank order, for i in [0, n).
  static void sum_in_rank_order(const std::vector<const void*>& parts, void* out, int64_t n, Kind k);
  // Counts what a sum of n elements, a broadcast of n bytes or an all-to-all sends from this rank.
  void count_reduce(int64_t n, Kind k);
  void count_broadcast(int64_t n, int root) { sent_ += rank() == root ? n * (size() - 1) : 0; }
  void count_all_to_all(const int64_t* send_bytes) {
    for (int r = 0; r < size(); ++r) sent_ += r == rank() ? 0 : send_bytes[r];
  }
  int64_t sent_ = 0;
};

// The process's group: MPI's world when this build has MPI and the process was started by an MPI
// launcher (mpiexec sets PMI_RANK / PMI_SIZE), one process otherwise. The first call initializes MPI;
// MPI is finalized when the program exits.
Communicator& world();
// `c`, or the process's group when c is null (options that default to world()).
inline Communicator& or_world(Communicator* c) { return c ? *c : world(); }
// A group of one, for work that one rank does alone (e.g. its own data split in expert parallelism).
Communicator& one_process();
// Rank 0 runs `work` (writing files the others will read, or measuring alone); every rank returns once
// it is done. The others sleep meanwhile (broadcast_idle) rather than spin on the cores it could use.
template <class Work>
void on_rank0(Communicator& c, Work&& work) {
  if (c.rank() == 0) work();
  char done = 0;
  c.broadcast_idle(&done, 1, 0);
}
// Every rank's bytes on every rank, in rank order: results each rank computed for its share of the
// work (one broadcast per rank, for results gathered once, not for a hot loop).
std::vector<std::vector<uint8_t>> all_gather(Communicator& c, const std::vector<uint8_t>& mine);
// Whether this build can run over MPI.
bool have_mpi();
// Ends this process's part in the group cleanly (MPI_Finalize), for a process that leaves through
// _exit; nothing for one process. No collective may follow.
void finalize_world();
// Ends the whole job: every rank of an MPI world (MPI_Abort; a rank that stopped alone would leave the
// others waiting in a collective), this process otherwise.
[[noreturn]] void abort_world(int status);

// N in-process ranks for tests: group[r] is rank r, to be used from its own thread (the collectives
// block until every rank has called them).
std::vector<std::unique_ptr<Communicator>> make_local_group(int n);
// A rank of such a group whose work failed leaves it: the others' collectives throw Error instead of
// waiting for it (as MPI_Abort ends the others under mpiexec). Nothing for other communicators.
void leave_local_group(Communicator& rank);

}  // namespace seek
