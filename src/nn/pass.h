// pass.h — how one forward or backward pass runs, handed to every module: where its scratch comes from,
// the numerics it simulates, and (for golden tests and debugging) where it records activations.
// A module also takes its activations struct (training: filled by forward, read by backward; null at
// inference).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "nn/workspace.h"
#include "tensor/format.h"

namespace seek {

// Activations recorded by name, for golden tests and debugging: "embed", "layer.{i}.attn",
// "layer.{i}.ffn", "layer.{i}", "layer.{i}.topk_idx", "layer.{i}.topk_weight", "norm", "logits",
// "mtp.{k}.eh", "mtp.{k}.hidden", "mtp.{k}.logits". Each is [T, n] row-major f32.
struct ActivationTrace {
  std::map<std::string, std::vector<float>> values;
  void put(const std::string& name, const float* p, int64_t n) { values[name].assign(p, p + n); }
};

struct Pass {
  Workspace& ws;
  // Simulate FP8 GEMM inputs (DeepSeek-V3 §3.3, training): every projection's input, weight and
  // gradients are rounded through E4M3 in 1×128 tiles (activations, gradients) and 128×128 blocks
  // (weights) and the product accumulates in f32. The embedding, the output head, the router, norms and
  // the attention core stay in f32.
  bool fp8 = false;
  ActivationTrace* trace = nullptr;
};

// The parameters of a module as typed views. One struct template per module, instantiated twice over the
// same layout: with WeightView for the weights (matrices in any weight format, read-only; vectors in f32)
// and with GradView for their gradients (f32, written) — llm.c's ParameterTensors, once for each.
struct WeightView {
  using Matrix = Mat;
  using Vector = const float*;
};
struct GradView {
  using Matrix = float*;
  using Vector = float*;
};

}  // namespace seek
