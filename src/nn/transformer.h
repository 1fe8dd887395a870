// transformer.h — the whole model's parameters and hyperparameters: the embedding, the main blocks, the
// final norm and output head, and the MTP modules. The passes over them live with their callers: the
// inference model (model/model.h, over KV caches) and the training model (train/train_model.h, with the
// backward); both are made of this layer's modules and nothing else.
#pragma once
#include <cstdint>
#include <vector>

#include "nn/block.h"
#include "nn/mtp.h"

namespace seek {

struct TransformerSpec {
  int64_t vocab = 0;   // V
  int64_t hidden = 0;  // D
  float eps = 1e-6f;   // the final norm
  std::vector<BlockSpec> layers;  // the main blocks
  std::vector<BlockSpec> mtp;     // the MTP modules' blocks
};

template <class V>
struct ModelParams {
  typename V::Matrix embed_tokens{};  // [V, D]
  std::vector<BlockParams<V>> layers;
  typename V::Vector norm{};          // [D]
  typename V::Matrix lm_head{};       // [V, D] (= embed_tokens when tied)
  std::vector<MtpParams<V>> mtp;
};
using Weights = ModelParams<WeightView>;
using Grads = ModelParams<GradView>;

}  // namespace seek
