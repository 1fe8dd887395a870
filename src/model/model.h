// model.h — a loaded model and its forward pass: embedding → blocks → final norm → lm head, plus the
// MTP modules of DeepSeek-V3.
//
// One forward at a time per Model (it owns its scratch workspace); a batch API over several sequences
// arrives with the generation engine. Weights are views into the mmapped checkpoint.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/kv_cache.h"
#include "model/layers.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "model/workspace.h"

namespace seek {

// Records intermediate activations by name, for golden tests and debugging:
// "embed", "layer.{i}.attn", "layer.{i}.ffn", "layer.{i}", "layer.{i}.topk_idx", "layer.{i}.topk_weight",
// "norm", "logits", "mtp.{k}.hidden", "mtp.{k}.logits". Each is [T, n] row-major f32.
struct Trace {
  std::map<std::string, std::vector<float>> values;
  void put(const std::string& name, const float* p, int64_t n) { values[name].assign(p, p + n); }
};

struct ParamCount {
  int64_t total = 0;   // every parameter, MTP modules included
  int64_t active = 0;  // used per token by the main model: all but the embedding, with k of E routed experts
  int64_t mtp = 0;     // in the MTP modules (part of total)
};
ParamCount count_params(const Config& c);

class Model {
 public:
  // Reads config.json and the safetensors of `dir`, checking every tensor.
  static std::unique_ptr<Model> load(const std::string& dir);
  Model(Config cfg, std::unique_ptr<Checkpoint> ckpt);

  const Config& config() const { return cfg_; }
  const Weights& weights() const { return w_; }
  const Checkpoint& checkpoint() const { return *ckpt_; }

  KVCache new_cache(int64_t capacity, MlaForm form = MlaForm::Absorbed) const;
  KVCache new_mtp_cache(int64_t capacity, MlaForm form = MlaForm::Absorbed) const;

  // Appends T tokens to the sequence in `cache` and computes their logits:
  // logits [T, V] when all_logits, else [1, V] for the last token only.
  // hidden (optional) receives the final-normed hidden states [T, D], the MTP module's input. (The
  // facts sheet says the state before the final norm; vLLM and SGLang, which run the released MTP
  // weights, use the normed one, and so does seek: docs/LOG.md, 2026-11-24.)
  void forward(KVCache& cache, const int32_t* ids, int64_t T, float* logits, bool all_logits = true,
               float* hidden = nullptr, Trace* trace = nullptr);

  // One step for several sequences in one pass (continuous batching, GRPO rollouts): item b appends
  // its n tokens to its own cache; projections and experts run once over all rows, so their weights
  // are read once per step for the whole batch. logits [B, V]: each item's last token. All caches
  // must have the same MLA form.
  struct BatchItem {
    KVCache* cache;
    const int32_t* ids;
    int64_t n;
  };
  void forward_batch(const std::vector<BatchItem>& items, float* logits);

  // MTP module k (0-based) at T positions appended to mtp_cache: h_prev [T, D] is the previous depth's
  // normed hidden state at positions i, next_ids [T] the tokens t_{i+k+1}; writes logits [T, V]
  // predicting t_{i+k+2}, and (optional) this depth's hidden state after shared_head.norm [T, D], the
  // input of depth k + 1.
  void forward_mtp(int k, KVCache& mtp_cache, const float* h_prev, const int32_t* next_ids, int64_t T,
                   float* logits, float* hidden_out = nullptr, Trace* trace = nullptr);

 private:
  // The shared pass: items' tokens in rows, each item's layer caches taken from `caches` (main or MTP).
  // Returns the rows of the final activations [N, D].
  void block(const BlockWeights& b, const std::vector<Segment>& segs, MlaForm form, float* x, int64_t N,
             const int32_t* pos, Trace* trace, const std::string* name);
  float* run_blocks(const std::vector<BatchItem>& items, Trace* trace);
  void check_ids(const int32_t* ids, int64_t T) const;

  Config cfg_;
  std::unique_ptr<Checkpoint> ckpt_;
  Weights w_;
  Rope rope_;
  std::vector<std::string> layer_names_;  // "layer.{i}", then "mtp.{k}": built once, for traces
  std::vector<Segment> segs_;             // reused per step: no allocation once warm
  std::vector<BatchItem> one_;            // forward()'s single item
  Workspace ws_;
};

}  // namespace seek
