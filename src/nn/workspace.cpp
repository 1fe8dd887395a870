// workspace.cpp — see workspace.h.
#include "nn/workspace.h"

#include <algorithm>
#include <new>

#include "util/error.h"

namespace seek {

namespace {
constexpr size_t kAlign = 64;
constexpr size_t kMinBlock = size_t(1) << 20;

std::byte* aligned_new(size_t n) { return static_cast<std::byte*>(::operator new(n, std::align_val_t(kAlign))); }
void aligned_delete(std::byte* p) { ::operator delete(p, std::align_val_t(kAlign)); }
size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

void* Workspace::bytes(size_t n) {
  n = round_up(std::max<size_t>(n, 1));
  while (block_ < blocks_.size() && offset_ + n > blocks_[block_].size) {
    // This block cannot hold it: the rest of it stays unused until the top comes back below it.
    used_ += blocks_[block_].size - offset_;
    ++block_;
    offset_ = 0;
  }
  if (block_ == blocks_.size()) {
    Block b;
    b.size = std::max({n, kMinBlock, blocks_.empty() ? size_t(0) : blocks_.back().size * 2});
    b.data = {aligned_new(b.size), aligned_delete};
    blocks_.push_back(std::move(b));
    offset_ = 0;
  }
  void* p = blocks_[block_].data.get() + offset_;
  offset_ += n;
  used_ += n;
  high_water_ = std::max(high_water_, used_);
  return p;
}

void Workspace::release(size_t block, size_t offset) {
  SEEK_ASSERT(depth_ > 0);
  block_ = block;
  offset_ = offset;
  size_t used = offset;
  for (size_t i = 0; i < block; ++i) used += blocks_[i].size;
  used_ = used;
  if (--depth_ == 0 && blocks_.size() > 1) {
    // Everything is free: one block of the high-water size from now on.
    blocks_.clear();
    Block b;
    b.size = round_up(high_water_);
    b.data = {aligned_new(b.size), aligned_delete};
    blocks_.push_back(std::move(b));
    block_ = offset_ = used_ = 0;
  }
}

void Workspace::reserve_threads(int n) {
  while (int(children_.size()) < n) children_.push_back(std::make_unique<Workspace>());
}

size_t Workspace::capacity() const {
  size_t n = 0;
  for (const Block& b : blocks_) n += b.size;
  return n;
}

}  // namespace seek
