// model.h — the inference model: its passes over KV caches, made of the nn/ modules — embedding →
// blocks → final norm → lm head, and DeepSeek-V3's MTP modules.
//
// A Model reads its weights either from a checkpoint it owns (mmapped, in their stored formats) or from
// f32 arenas held elsewhere — a training model's live parameters, which GRPO and distillation sample
// from without a copy (train/train_model.h). One pass at a time per Model (it owns its scratch).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/kv_cache.h"
#include "model/safetensors.h"
#include "model/spec.h"
#include "model/weights.h"
#include "nn/moe.h"

namespace seek {

class GgufFile;

struct ParamCount {
  int64_t total = 0;   // every parameter, MTP modules included
  int64_t active = 0;  // used per token by the main model: all but the embedding, with k of E routed experts
  int64_t mtp = 0;     // in the MTP modules (part of total)
};
ParamCount count_params(const Config& c);

class Model {
 public:
  // Reads config.json and the safetensors of `dir`, checking every tensor; or a GGUF file
  // (model/gguf_model.h).
  static std::unique_ptr<Model> load(const std::string& dir);
  Model(Config cfg, std::unique_ptr<Checkpoint> ckpt);
  // Over weights that live elsewhere (a training arena: train/train_model.h) and must outlive the model.
  Model(Config cfg, const Weights& weights);

  const Config& config() const { return cfg_; }
  const Weights& weights() const { return w_; }
  const Checkpoint* checkpoint() const { return ckpt_.get(); }  // null over borrowed weights

  KVCache new_cache(int64_t capacity, MlaForm form = MlaForm::Absorbed) const;
  KVCache new_mtp_cache(int64_t capacity, MlaForm form = MlaForm::Absorbed) const;

  // Appends T tokens to the sequence in `cache` and computes their logits:
  // logits [T, V] when all_logits, else [1, V] for the last token only.
  // hidden (optional) receives the final-normed hidden states [T, D], the MTP module's input. (The
  // facts sheet says the state before the final norm; vLLM and SGLang, which run the released MTP
  // weights, use the normed one, and so does seek: docs/LOG.md, 2026-11-24.)
  void forward(KVCache& cache, const int32_t* ids, int64_t T, float* logits, bool all_logits = true,
               float* hidden = nullptr, ActivationTrace* trace = nullptr);

  // One step for several sequences in one pass (continuous batching, rollouts, speculative
  // verification): item b appends its n tokens to its own cache; projections and experts run once over
  // all rows, so their weights are read once per step for the whole batch. logits receives, item after
  // item, the logits of each item's last n_logits tokens [Σ n_logits, V]. All caches must have the same
  // MLA form. hidden (optional) receives the final-normed hidden states of every row [Σ n, D], item
  // after item: the MTP drafter's input (engine/draft.h).
  struct BatchItem {
    KVCache* cache;
    const int32_t* ids;
    int64_t n;
    int64_t n_logits = 1;
  };
  void forward_batch(const std::vector<BatchItem>& items, float* logits, float* hidden = nullptr);

  // MTP module k (0-based) at T positions appended to mtp_cache: h_prev [T, D] is the previous depth's
  // normed hidden state at positions i, next_ids [T] the tokens t_{i+k+1}; writes logits [T, V]
  // predicting t_{i+k+2}, and (optional) this depth's hidden state after shared_head.norm [T, D], the
  // input of depth k + 1.
  void forward_mtp(int k, KVCache& mtp_cache, const float* h_prev, const int32_t* next_ids, int64_t T,
                   float* logits, float* hidden_out = nullptr, ActivationTrace* trace = nullptr);
  // MTP module k for several sequences in one pass (the drafter of speculative decoding): item b appends
  // its n positions to its own MTP cache; logits [Σ n_logits, V] and hidden_out (optional) [Σ n_logits, D]
  // receive, item after item, those of each item's last n_logits positions (n_logits 0: the positions
  // only enter the cache).
  struct MtpItem {
    KVCache* cache;
    const float* h_prev;       // [n, D]
    const int32_t* next_ids;   // [n]
    int64_t n;
    int64_t n_logits = 1;
  };
  void forward_mtp_batch(int k, const std::vector<MtpItem>& items, float* logits, float* hidden_out = nullptr,
                         ActivationTrace* trace = nullptr);

  // Who runs the MoE layers' experts (nn/moe.h): every expert in this process (the default, null) or
  // an ExpertParallel group's share; it must outlive the passes that use it.
  void set_experts(ExpertExecutor* ex) { experts_ = ex; }

 private:
  void init();
  // The blocks over the items' tokens: the residual stream [N, D] of every row, allocated in the
  // caller's workspace frame.
  float* run_blocks(const std::vector<BatchItem>& items, ActivationTrace* trace);
  void check_ids(const int32_t* ids, int64_t T) const;
  // The token embedding's rows of ids into out [T, D]; a GGUF mapping's pages are given back after.
  void embed_ids(const int32_t* ids, int64_t T, float* out);

  Config cfg_;
  TransformerSpec spec_;
  std::unique_ptr<Checkpoint> ckpt_;
  std::vector<std::vector<float>> store_;  // f32 copies of a checkpoint's vectors (and kv_b)
  Weights w_;
  std::vector<std::string> layer_names_;  // "layer.{i}", then "mtp.{k}": built once, for traces
  std::vector<Segment> segs_;             // reused per step: no allocation once warm
  std::vector<BatchItem> one_;            // forward()'s single item
  std::vector<MtpItem> one_mtp_;          // forward_mtp()'s
  Workspace ws_;
  ExpertExecutor* experts_ = nullptr;
  std::shared_ptr<const GgufFile> lookup_file_;  // a GGUF file whose token embedding stays a mapping
};

}  // namespace seek
