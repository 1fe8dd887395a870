// file_bytes.cpp — see file_bytes.h.
#include "util/file_bytes.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <utility>

#include "util/error.h"

namespace seek {

namespace {

constexpr size_t kHugePage = size_t(2) << 20;

// MemAvailable from /proc/meminfo in bytes, or 0 when unknown.
size_t available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  size_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

struct Fd {
  int fd;
  ~Fd() { ::close(fd); }
};

}  // namespace

FileBytes::Mode resolve_load_mode(size_t bytes) {
  if (const char* env = std::getenv("SEEK_WEIGHTS")) {
    if (std::strcmp(env, "mmap") == 0) return FileBytes::Mode::Mapped;
    if (std::strcmp(env, "read") == 0) return FileBytes::Mode::Read;
    throw Error(strfmt("SEEK_WEIGHTS=%s: expected mmap or read", env));
  }
  const size_t avail = available_memory();
  return avail != 0 && bytes <= avail / 2 ? FileBytes::Mode::Read : FileBytes::Mode::Mapped;
}

FileBytes::FileBytes(const std::string& path, Mode mode, const std::vector<std::pair<size_t, size_t>>& mapped_ranges) {
  Fd f{::open(path.c_str(), O_RDONLY)};
  if (f.fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(f.fd, &st) != 0) throw Error(path + ": cannot stat: " + std::strerror(errno));
  size_ = size_t(st.st_size);
  if (size_ == 0) return;
  if (mode == Mode::Auto) mode = resolve_load_mode(size_);
  if (mode == Mode::Mapped) {
    region_ = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, f.fd, 0);
    if (region_ == MAP_FAILED) {
      region_ = nullptr;
      throw Error(path + ": mmap failed: " + std::strerror(errno));
    }
    region_size_ = size_;
    data_ = static_cast<const uint8_t*>(region_);
    mapped_ = true;
    return;
  }
  // Read: a region with one spare huge page, so that the data can start on a 2 MiB boundary.
  const size_t len = (size_ + kHugePage - 1) / kHugePage * kHugePage;
  region_size_ = len + kHugePage;
  region_ = mmap(nullptr, region_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (region_ == MAP_FAILED) {
    region_ = nullptr;
    throw Error(strfmt("%s: cannot allocate %zu bytes to read it into: %s", path.c_str(), size_, std::strerror(errno)));
  }
  auto* base =
      reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(region_) + kHugePage - 1) / kHugePage * kHugePage);
  madvise(base, len, MADV_HUGEPAGE);  // advice only: without transparent huge pages the read still works
  // The ranges left as mappings, whole pages only (base is page-aligned, so memory and file offsets
  // agree modulo the page), sorted; the rest is read around them.
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  for (const auto& [off, n] : mapped_ranges) {
    const size_t b = (off + page - 1) / page * page, e = std::min(off + n, size_) / page * page;
    if (off + n > size_ || b >= e) continue;
    if (mmap(base + b, e - b, PROT_READ, MAP_PRIVATE | MAP_FIXED, f.fd, off_t(b)) == MAP_FAILED) {
      const std::string why = std::strerror(errno);
      release();
      throw Error(strfmt("%s: cannot map bytes [%zu, %zu): %s", path.c_str(), b, e, why.c_str()));
    }
    lookup_.emplace_back(b, e);
  }
  std::sort(lookup_.begin(), lookup_.end());
  size_t next_skip = 0;
  for (size_t done = 0; done < size_;) {
    while (next_skip < lookup_.size() && lookup_[next_skip].second <= done) next_skip++;
    if (next_skip < lookup_.size() && lookup_[next_skip].first <= done) {
      done = lookup_[next_skip].second;
      continue;
    }
    size_t want = std::min<size_t>(size_ - done, size_t(1) << 30);
    if (next_skip < lookup_.size()) want = std::min(want, lookup_[next_skip].first - done);
    const ssize_t n = ::pread(f.fd, base + done, want, off_t(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = n < 0 ? std::strerror(errno) : "the file ended early";
      release();
      throw Error(strfmt("%s: read failed after %zu of %zu bytes: %s", path.c_str(), done, size_, why.c_str()));
    }
    done += size_t(n);
  }
  mprotect(base, len, PROT_READ);
  data_ = base;
}

FileBytes::~FileBytes() { release(); }

void FileBytes::release_mapped_pages() const {
  auto* base = const_cast<uint8_t*>(data_);
  for (const auto& [b, e] : lookup_) madvise(base + b, e - b, MADV_DONTNEED);  // clean file pages: nothing is lost
}

void FileBytes::release() {
  if (region_) munmap(region_, region_size_);
  region_ = nullptr;
  data_ = nullptr;
  region_size_ = 0;
  lookup_.clear();
}

FileBytes::FileBytes(FileBytes&& o) noexcept { *this = std::move(o); }

FileBytes& FileBytes::operator=(FileBytes&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    region_ = std::exchange(o.region_, nullptr);
    region_size_ = std::exchange(o.region_size_, 0);
    mapped_ = std::exchange(o.mapped_, false);
    lookup_ = std::exchange(o.lookup_, {});
  }
  return *this;
}

}  // namespace seek
