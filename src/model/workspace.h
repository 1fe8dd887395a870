// workspace.h — scratch buffers for one forward pass. Each slot grows to the largest size asked of
// it and is then reused, so a decode step allocates nothing once the first step has run.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace seek {

enum Slot : int {
  kX, kXNorm, kQ, kQA, kKVA, kCkv, kKV, kQCat, kScores, kCtx, kAttnOut, kAttnProj,
  kK, kV, kRouterLogits, kScores2, kSel, kGather, kGate, kUp, kDown, kFfnOut, kMtpCat, kPos,
  kTopkIdx, kTopkW, kOrder, kExpertOut, kShared, kActive, kIds, kLastRows, kNumSlots
};

class Workspace {
 public:
  float* f(Slot s, int64_t n) {
    auto& b = buf_[s];
    if (b.size() < size_t(n)) b.resize(size_t(n));
    return b.data();
  }
  int32_t* i(Slot s, int64_t n) { return reinterpret_cast<int32_t*>(f(s, n)); }

  // A private workspace for thread `id` of a parallel region (e.g. one expert per thread). Call
  // threads(n) outside the region first; it only allocates the first time n grows.
  void threads(int n) {
    while (int(children_.size()) < n) children_.push_back(std::make_unique<Workspace>());
  }
  Workspace& thread(int id) { return *children_[size_t(id)]; }

 private:
  std::vector<float> buf_[kNumSlots];
  std::vector<std::unique_ptr<Workspace>> children_;
};

}  // namespace seek
