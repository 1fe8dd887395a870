// workspace.h — scratch memory for the passes of a model: a bump arena. alloc<T>(n) hands out n
// elements (64-byte aligned); a Frame gives back, when it closes, everything allocated since it opened.
// What the arena handed out never moves: when its block is full it adds another, and when the outermost
// frame closes it merges them into one block of the high-water size, so a steady workload (a decode
// step, a training step of one shape) allocates nothing after its first pass.
//
// Not thread-safe: allocate before a parallel region (one slice per thread), never inside it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace seek {

class Workspace {
 public:
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  template <class T>
  T* alloc(int64_t n) {
    return static_cast<T*>(bytes(size_t(n > 0 ? n : 0) * sizeof(T)));
  }

  // Opens a scope of allocations; closing it releases them.
  class Frame {
   public:
    explicit Frame(Workspace& ws) : ws_(ws), block_(ws.block_), offset_(ws.offset_) { ++ws.depth_; }
    ~Frame() { ws_.release(block_, offset_); }
    Frame(const Frame&) = delete;
    Frame& operator=(const Frame&) = delete;

   private:
    Workspace& ws_;
    size_t block_, offset_;
  };

  size_t capacity() const;  // bytes held

  // Child arenas for the tasks of a parallel region, one per thread: call reserve_threads(n) before
  // the region, then each task allocates from thread(its thread number) only.
  void reserve_threads(int n);
  Workspace& thread(int i) { return *children_[size_t(i)]; }

 private:
  struct Block {
    std::unique_ptr<std::byte[], void (*)(std::byte*)> data{nullptr, nullptr};
    size_t size = 0;
  };
  void* bytes(size_t n);
  void release(size_t block, size_t offset);

  std::vector<Block> blocks_;
  size_t block_ = 0, offset_ = 0;  // the top: next free byte of blocks_[block_]
  size_t used_ = 0;                // bytes in use now, over all blocks (for the merge)
  size_t high_water_ = 0;
  int depth_ = 0;
  std::vector<std::unique_ptr<Workspace>> children_;
};

// n default-constructed T from the workspace (jobs, small tables): a pass allocates nothing of its own.
template <class T>
T* make_n(Workspace& ws, int64_t n) {
  T* p = ws.alloc<T>(n);
  for (int64_t i = 0; i < n; ++i) new (p + i) T();
  return p;
}

// A buffer of n elements: training's `keep` (grown as needed and kept across steps for backward), or,
// when keep is null (inference), scratch from the workspace.
template <class T>
T* kept_or_scratch(std::vector<T>* keep, Workspace& ws, int64_t n) {
  if (!keep) return ws.alloc<T>(n);
  if (keep->size() < size_t(n)) keep->resize(size_t(n));
  return keep->data();
}

}  // namespace seek
