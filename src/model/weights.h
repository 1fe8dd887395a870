// weights.h — the Hugging Face name table: which tensors a config calls for, with their names and
// shapes, bound to the modules' typed views (nn/transformer.h) from any source: a checkpoint (mmapped
// safetensors, every tensor checked), a training arena (f32 params or their gradients), or just the
// list of names (seek info, checkpoint writers). One table, one order.
//
// The order is the training arena's layout, chosen so that projections of the same input lie one after
// another (q_a or q with kv_a; gate with up; q, k, v) and run as one GEMM (nn/linear.h).
//
// Checkpoint matrices stay where they are (mmapped, in their stored format: F32, BF16, F16, or F8_E4M3
// with its 128×128 block scales, dequantized inside the matmul kernel — see CONTRIBUTING.md for why).
// Vectors (norm weights, biases, the routing bias) are small and are converted to f32 copies at load,
// and so is MLA's kv_b_proj, which the absorbed form multiplies from both sides through plain f32 GEMMs
// (~1% of a layer's weights).
#pragma once
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
};
// Every tensor the config calls for, in the table's order.
std::vector<TensorSpec> expected_tensors(const Config& cfg);

// Views of a checkpoint's tensors, checking name, dtype and shape (throws Error naming the tensor and
// what was expected). The f32 copies go into `store`; the checkpoint and the store must outlive the views.
Weights load_weights(const Config& cfg, const Checkpoint& ckpt, std::vector<std::vector<float>>& store);

// Views of f32 arenas laid out in expected_tensors' order: the weights, and their gradients.
Weights arena_weights(const Config& cfg, const float* params);
Grads arena_grads(const Config& cfg, float* grads);

}  // namespace seek
