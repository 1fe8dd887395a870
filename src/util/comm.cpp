// comm.cpp — see comm.h.
#include "util/comm.h"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <type_traits>

#include "util/error.h"

#ifdef SEEK_WITH_MPI
#include <mpi.h>
#endif

namespace seek {

void Communicator::sum_in_rank_order(const std::vector<const void*>& parts, void* out, int64_t n, Kind k) {
  // In blocks that stay in cache, and without a temporary (out may be one of the parts).
  auto sum = [&](auto* o) {
    using T = std::remove_pointer_t<decltype(o)>;
    constexpr int64_t kBlock = 4096;
    T acc[kBlock];
    for (int64_t b = 0; b < n; b += kBlock) {
      const int64_t m = std::min(kBlock, n - b);
      std::memcpy(acc, static_cast<const T*>(parts[0]) + b, sizeof(T) * size_t(m));
      for (size_t r = 1; r < parts.size(); ++r) {
        const T* p = static_cast<const T*>(parts[r]) + b;
        for (int64_t i = 0; i < m; ++i) acc[i] += p[i];
      }
      std::memcpy(o + b, acc, sizeof(T) * size_t(m));
    }
  };
  if (k == Kind::F32) sum(static_cast<float*>(out));
  else if (k == Kind::F64) sum(static_cast<double*>(out));
  else sum(static_cast<int64_t*>(out));
}

void Communicator::count_reduce(int64_t n, Kind k) {
  const int64_t N = size(), me = rank(), mine = n * (me + 1) / N - n * me / N;
  sent_ += (n - mine + mine * (N - 1)) * int64_t(width(k));  // others' chunks out, then mine to each other
}

namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void broadcast(void*, int64_t, int) override {}
  void all_to_all(const void* send, const int64_t* send_bytes, void* recv, const int64_t* recv_bytes) override {
    if (send_bytes[0] != recv_bytes[0]) throw Error("all_to_all: a rank sends itself a different size than it expects");
    if (send != recv && send_bytes[0] > 0) std::memmove(recv, send, size_t(send_bytes[0]));
  }
  void barrier() override {}
  std::string describe() const override { return "one process"; }

 protected:
  void reduce(void*, int64_t, Kind) override {}
};

// The ranks of an in-process group share one of these; each collective posts its arguments, waits for
// every rank, reads the others', and waits again before anyone may post the next.
struct LocalShared {
  explicit LocalShared(int n)
      : sync(n, Snapshot{this}), ptr(size_t(n)), cptr(size_t(n)), count(size_t(n)), kind(size_t(n)), sizes(size_t(n)) {}
  // When a phase completes: whether a rank had left by then (a rank that fails after it leaves in a
  // later phase, so every rank of a phase sees the same).
  struct Snapshot {
    LocalShared* s;
    void operator()() noexcept { s->failed_seen = s->failed.load(); }
  };
  std::barrier<Snapshot> sync;
  std::vector<void*> ptr;
  std::vector<const void*> cptr;
  std::vector<int64_t> count, kind;
  std::vector<const int64_t*> sizes;
  std::atomic<int> failed{-1};  // a rank that left after an error (leave_local_group)
  int failed_seen = -1;
};

class LocalRank final : public Communicator {
 public:
  LocalRank(std::shared_ptr<LocalShared> s, int rank, int size) : s_(std::move(s)), rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void broadcast(void* data, int64_t n, int root) override {
    count_broadcast(n, root);
    s_->ptr[size_t(rank_)] = data;
    s_->count[size_t(rank_)] = n;
    wait();
    check_equal("broadcast");
    if (rank_ != root && n > 0) std::memcpy(data, s_->ptr[size_t(root)], size_t(n));
    wait();
  }
  void all_to_all(const void* send, const int64_t* send_bytes, void* recv, const int64_t* recv_bytes) override {
    count_all_to_all(send_bytes);
    s_->cptr[size_t(rank_)] = send;
    s_->sizes[size_t(rank_)] = send_bytes;
    wait();
    auto* out = static_cast<uint8_t*>(recv);
    bool ok = true;
    for (int r = 0; r < size_; ++r) {
      const int64_t* theirs = s_->sizes[size_t(r)];
      int64_t at = 0;
      for (int q = 0; q < rank_; ++q) at += theirs[q];
      if (theirs[rank_] != recv_bytes[r]) ok = false;
      else if (recv_bytes[r] > 0) std::memcpy(out, static_cast<const uint8_t*>(s_->cptr[size_t(r)]) + at, size_t(recv_bytes[r]));
      out += recv_bytes[r];
    }
    wait();
    if (!ok) throw Error("all_to_all: a rank expects another size than its sender sends");
  }
  void barrier() override { wait(); }
  std::string describe() const override { return "in-process group of " + std::to_string(size_) + " ranks"; }
  void leave() {
    int none = -1;
    s_->failed.compare_exchange_strong(none, rank_);
    s_->sync.arrive_and_drop();
  }

 protected:
  void reduce(void* x, int64_t n, Kind k) override {
    count_reduce(n, k);
    s_->ptr[size_t(rank_)] = x;
    s_->count[size_t(rank_)] = n;
    s_->kind[size_t(rank_)] = int64_t(k);
    wait();
    check_equal("all_reduce_sum");
    parts_.assign(s_->ptr.begin(), s_->ptr.end());
    sum_.resize(size_t(n) * width(k));  // the others read x until the next wait
    sum_in_rank_order(parts_, sum_.data(), n, k);
    wait();
    if (n > 0) std::memcpy(x, sum_.data(), size_t(n) * width(k));  // an empty vector's data() may be null
  }

 private:
  // Every rank sees the same posted sizes, so every rank throws or none does.
  void check_equal(const char* what) const {
    for (int r = 1; r < size_; ++r)
      if (s_->count[size_t(r)] != s_->count[0] || s_->kind[size_t(r)] != s_->kind[0])
        throw Error(std::string(what) + ": the ranks passed different sizes or types");
  }
  // Every rank posts, then reads what the others posted; a rank that left makes the others throw.
  void wait() {
    s_->sync.arrive_and_wait();
    if (const int r = s_->failed_seen; r >= 0)
      throw Error("rank " + std::to_string(r) + " of the in-process group failed and left it");
  }
  std::shared_ptr<LocalShared> s_;
  int rank_, size_;
  std::vector<const void*> parts_;
  std::vector<uint8_t> sum_;
};

#ifdef SEEK_WITH_MPI
// MPI counts are ints: collectives move at most this many bytes per call and loop over larger arrays.
constexpr int64_t kMaxMpiBytes = int64_t(1) << 30;
// A sum goes in buckets of this many bytes: a rank's receive buffer is one bucket, not the array (a
// whole gradient in one call kept a buffer of the gradient's size on every rank: 367 MiB for the 96M
// training bench), and the order of additions, so the bits, are the same.
constexpr int64_t kSumBucketBytes = int64_t(8) << 20;

class Mpi final : public Communicator {
 public:
  Mpi() {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int provided = 0;
      // Serialized: the server's collectives run on its scheduler thread, not the one that started MPI.
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
      if (provided < MPI_THREAD_SERIALIZED) throw Error("MPI: this library cannot be called from more than one thread");
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local_);
    MPI_Comm_free(&node);
  }
  ~Mpi() override { finalize(); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_; }
  void broadcast(void* data, int64_t n, int root) override {
    count_broadcast(n, root);
    for (int64_t at = 0; at < n; at += kMaxMpiBytes)
      MPI_Bcast(static_cast<uint8_t*>(data) + at, int(std::min(kMaxMpiBytes, n - at)), MPI_BYTE, root, MPI_COMM_WORLD);
  }
  void broadcast_idle(void* data, int64_t n, int root) override {
    if (n > kMaxMpiBytes) return broadcast(data, n, root);
    count_broadcast(n, root);
    MPI_Request req;
    MPI_Ibcast(data, int(n), MPI_BYTE, root, MPI_COMM_WORLD, &req);
    // Poll at once for a while (a broadcast that comes soon costs no sleep), then every 200 us.
    for (int polls = 0;; ++polls) {
      int done = 0;
      MPI_Test(&req, &done, MPI_STATUS_IGNORE);
      if (done) return;
      if (polls > 1000) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  void finalize() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
  void all_to_all(const void* send, const int64_t* send_bytes, void* recv, const int64_t* recv_bytes) override {
    const size_t N = static_cast<size_t>(size_);
    std::vector<int> sc(N), sd(N), rc(N), rd(N);
    int64_t s_at = 0, r_at = 0;
    for (int r = 0; r < size_; ++r) {
      sc[size_t(r)] = int(send_bytes[r]), sd[size_t(r)] = int(s_at), rc[size_t(r)] = int(recv_bytes[r]), rd[size_t(r)] = int(r_at);
      s_at += send_bytes[r];
      r_at += recv_bytes[r];
    }
    if (s_at > INT_MAX || r_at > INT_MAX)
      throw Error("all_to_all: more than 2 GiB in one exchange (MPI counts are 32-bit)");
    count_all_to_all(send_bytes);
    MPI_Alltoallv(send, sc.data(), sd.data(), MPI_BYTE, recv, rc.data(), rd.data(), MPI_BYTE, MPI_COMM_WORLD);
  }
  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }
  std::string describe() const override {
    return "MPI, " + std::to_string(size_) + " ranks (" + std::to_string(local_) + " on this machine)";
  }

 protected:
  // Chunk r of x goes to rank r, which adds every rank's copy in rank order; then all gather the sums.
  void reduce(void* x, int64_t n, Kind k) override {
    if (size_ == 1) return;
    const int64_t w = int64_t(width(k)), per_call = std::max<int64_t>(1, kSumBucketBytes / w / size_) * size_;
    for (int64_t at = 0; at < n; at += per_call) {
      const int64_t part = std::min(per_call, n - at);
      count_reduce(part, k);  // each part is split over the ranks on its own
      reduce_part(static_cast<uint8_t*>(x) + at * w, part, k);
    }
  }

 private:
  void reduce_part(uint8_t* x, int64_t n, Kind k) {
    const int64_t w = int64_t(width(k));
    const size_t N = static_cast<size_t>(size_);
    std::vector<int> cnt(N), at(N);
    for (int r = 0; r < size_; ++r) {
      const int64_t b = n * r / size_, e = n * (r + 1) / size_;
      at[size_t(r)] = int(b * w);
      cnt[size_t(r)] = int((e - b) * w);
    }
    const int mine = cnt[size_t(rank_)];
    buf_.resize(size_t(mine) * size_t(size_));
    std::vector<int> rc(N, mine), rd(N);
    for (int r = 0; r < size_; ++r) rd[size_t(r)] = r * mine;
    MPI_Alltoallv(x, cnt.data(), at.data(), MPI_BYTE, buf_.data(), rc.data(), rd.data(), MPI_BYTE, MPI_COMM_WORLD);
    std::vector<const void*> parts(N);
    for (int r = 0; r < size_; ++r) parts[size_t(r)] = buf_.data() + size_t(r) * size_t(mine);
    sum_in_rank_order(parts, x + at[size_t(rank_)], mine / w, k);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, cnt.data(), at.data(), MPI_BYTE, MPI_COMM_WORLD);
  }
  int rank_ = 0, size_ = 1, local_ = 1;
  std::vector<uint8_t> buf_;
};
#endif

bool started_by_mpi_launcher() {
  for (const char* v : {"PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

}  // namespace

std::vector<std::vector<uint8_t>> all_gather(Communicator& c, const std::vector<uint8_t>& mine) {
  std::vector<int64_t> sizes(static_cast<size_t>(c.size()), 0);
  sizes[size_t(c.rank())] = int64_t(mine.size());
  c.all_reduce_sum(std::span<int64_t>(sizes));
  std::vector<std::vector<uint8_t>> all(sizes.size());
  for (int r = 0; r < c.size(); ++r) {
    std::vector<uint8_t>& b = all[size_t(r)];
    b = r == c.rank() ? mine : std::vector<uint8_t>(static_cast<size_t>(sizes[size_t(r)]));
    if (!b.empty()) c.broadcast(b.data(), int64_t(b.size()), r);
  }
  return all;
}

bool have_mpi() {
#ifdef SEEK_WITH_MPI
  return true;
#else
  return false;
#endif
}

Communicator& world() {
  static const std::unique_ptr<Communicator> w = []() -> std::unique_ptr<Communicator> {
#ifdef SEEK_WITH_MPI
    if (started_by_mpi_launcher()) return std::make_unique<Mpi>();
#else
    if (started_by_mpi_launcher() && std::getenv("PMI_SIZE") && std::string(std::getenv("PMI_SIZE")) != "1")
      throw Error("seek was started by an MPI launcher but this build has no MPI (install libmpich-dev and rebuild)");
#endif
    return std::make_unique<SingleProcess>();
  }();
  return *w;
}

Communicator& one_process() {
  static SingleProcess one;
  return one;
}

void finalize_world() {
#ifdef SEEK_WITH_MPI
  if (auto* m = dynamic_cast<Mpi*>(&world())) m->finalize();
#endif
}

void abort_world(int status) {
#ifdef SEEK_WITH_MPI
  if (world().size() > 1) MPI_Abort(MPI_COMM_WORLD, status);
#endif
  std::_Exit(status);
}

void leave_local_group(Communicator& rank) {
  if (auto* r = dynamic_cast<LocalRank*>(&rank)) r->leave();
}

std::vector<std::unique_ptr<Communicator>> make_local_group(int n) {
  if (n < 1) throw Error("make_local_group: a group needs at least one rank");
  auto shared = std::make_shared<LocalShared>(n);
  std::vector<std::unique_ptr<Communicator>> g;
  for (int r = 0; r < n; ++r) g.push_back(std::make_unique<LocalRank>(shared, r, n));
  return g;
}

}  // namespace seek
