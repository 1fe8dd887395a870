// weights.h — the Hugging Face name table: which tensors a config calls for, with their names and
// shapes, bound to the modules' typed views (nn/transformer.h) from any source: a checkpoint (mmapped
// safetensors, every tensor checked), a training arena (f32 params or their gradients), or just the
// list of names (seek info, checkpoint writers). One table, one order.
//
// The order is the training arena's layout (with the routed experts moved after the rest: arena_layout),
// chosen so that projections of the same input lie one after another (q_a or q with kv_a; gate with up;
// q, k, v) and run as one GEMM (nn/linear.h).
//
// Checkpoint matrices stay where they are (mmapped, in their stored format: F32, BF16, F16, or F8_E4M3
// with its 128×128 block scales, dequantized inside the matmul kernel — see CONTRIBUTING.md for why).
// Vectors (norm weights, biases, the routing bias) are small and are converted to f32 copies at load,
// and so is MLA's kv_b_proj, which the absorbed form multiplies from both sides through plain f32 GEMMs
// (~1% of a layer's weights).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"
#include "nn/transformer.h"

namespace seek {

// A tensor a config calls for: its HF name and shape. `linear` marks 2-D projection weights, the ones
// FP8 checkpoints store as F8_E4M3 with block scales (embedding, head and router stay high precision).
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool linear = false;
  int64_t expert = -1;  // the routed expert it belongs to (any MoE layer, MTP's included); -1: none
  int64_t numel() const;
};
// Every tensor the config calls for, in the table's order.
std::vector<TensorSpec> expected_tensors(const Config& cfg);

// The routed experts a training arena holds: all (the default), or one rank's share under expert
// parallelism (nn/moe.h SpreadExperts), so that a rank's memory is the shared part and E/N experts.
struct ExpertRange {
  int64_t begin = 0, end = INT64_MAX;
  bool owns(int64_t e) const { return e >= begin && e < end; }
  bool all() const { return begin == 0 && end == INT64_MAX; }
};
// An f32 training arena's layout: every tensor but the routed experts', in the table's order, then the
// held routed experts' (offset -1 for the others), in the table's order; so the part every rank holds
// alike is one prefix, [0, replicated), and the experts' part one suffix.
struct ArenaLayout {
  std::vector<TensorSpec> tensors;  // all the config calls for
  std::vector<int64_t> offset;      // per tensor; -1: an expert this arena does not hold
  int64_t replicated = 0, size = 0;
};
ArenaLayout arena_layout(const Config& cfg, ExpertRange own = {});

// Views of a checkpoint's tensors, checking name, dtype and shape (throws Error naming the tensor and
// what was expected). The f32 copies go into `store`; the checkpoint and the store must outlive the views.
Weights load_weights(const Config& cfg, const Checkpoint& ckpt, std::vector<std::vector<float>>& store);

// Views of f32 arenas laid out as arena_layout(cfg, own) says: the weights, and their gradients. An expert
// the arena does not hold gets views with its shape and no data.
Weights arena_weights(const Config& cfg, const float* params, ExpertRange own = {});
Grads arena_grads(const Config& cfg, float* grads, ExpertRange own = {});

}  // namespace seek
