// train_model.h — a model being trained: every parameter in one f32 arena, its gradient in a second of
// the same layout (llm.c's ParameterTensors), typed views of both (nn/transformer.h: Weights, Grads),
// and the loss with its gradient, computed by the same nn/ modules the inference model runs.
//
// The loss (DeepSeek-V3 §2.2, §2.1.2; the contract scripts/reference/train_reference.py also computes):
//   main    = mean over B·T positions of CE(logits[b, i], ids[b, i+1])
//   mtp     = mean over B·(T−1) positions of CE(MTP logits at i, ids[b, i+2]); the module reads the main
//             model's final-normed hidden state and Emb(ids[b, i+1]) (num_nextn_predict_layers = 1)
//   balance = mean over sequences of Σ over MoE layers of Σ_e f_e·P_e, f_e = E/(k·T)·count_e (constant),
//             P_e = mean_t s'_{e,t}, s' = scores normalized over all experts
//   total   = main + λ·mtp + α·balance
// Routing choices are constants; e_score_correction_bias gets no gradient (it is moved by the
// aux-loss-free rule between steps, not by the loss).
//
// The B sequences run together: every projection is one GEMM over B·T rows, routed experts run on the
// rows routed to them, attention runs per (sequence, head) on causal query blocks. MLA trains in the
// naive form (absorption is an inference rewrite of the same function). With mtp_lambda = 0 the MTP
// module is not run at all (its loss reads 0). Activations and scratch are kept between steps, so a
// step of the same shape allocates nothing.
//
// inference() is a Model over the live parameters (no copy): GRPO's rollouts and distillation's
// sampling use the current policy directly.
//
// Under expert parallelism a rank's model may hold only its share of the routed experts (ExpertRange,
// model/weights.h): the arena is then the part every rank holds alike, [0, replicated()), then this
// rank's experts, so its memory, with the gradient's and the optimizer's, is the shared part plus E/N
// experts. Such a model trains only with an executor that runs its experts here and the others on their
// ranks (ExpertDispatch); it writes a whole checkpoint with the other ranks (save(dir, comm)), and has
// no inference() (decode over ranks runs on Model with ExpertParallel).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/weights.h"
#include "nn/transformer.h"
#include "util/comm.h"

namespace seek::train {

struct LossWeights {
  double mtp_lambda = 0.3;
  double balance_alpha = 0.0001;
  double scale = 1.0;  // multiplies the loss's gradient (1/k for one of k accumulated micro-batches)
};

// A per-token objective in place of the mean cross-entropy (SFT with a loss mask, GRPO): given
// logp[B·T], the log-probability of each target ids[b, t+1] under the model (row b·T + t), it returns
// the loss and writes dlogp[B·T] = ∂loss/∂logp (0 for the positions it ignores; dlogp arrives zeroed).
struct TokenObjective {
  std::function<double(const float* logp, float* dlogp)> fn;
  std::vector<float>* entropy = nullptr;  // if set: filled with each position's entropy [B·T]
};

struct LossParts {
  double total = 0, main = 0, mtp = 0, balance = 0;
};

class TrainModel {
 public:
  // f32 copies of the tensors of a model directory (any stored dtype): all, or the part every rank holds
  // and the routed experts of `own`.
  static TrainModel from_checkpoint(const std::string& dir, ExpertRange own = {});
  TrainModel(TrainModel&&) noexcept;
  TrainModel& operator=(TrainModel&&) noexcept;
  ~TrainModel();

  struct Param {
    std::string name;
    std::vector<int64_t> shape;
    int64_t offset = 0, numel = 0;
    bool decay = false;  // 2-D weights decay; norms, biases and the routing bias do not
  };

  const Config& config() const { return cfg_; }
  // The tensors this model holds, in the table's order, at their arena offsets.
  const std::vector<Param>& params() const { return params_; }
  // The routed experts it holds, and the size of the arena's prefix that is not an expert's.
  ExpertRange experts() const { return own_; }
  int64_t replicated() const { return layout_.replicated; }
  std::vector<float>& data() { return data_; }
  const std::vector<float>& data() const { return data_; }
  std::vector<float>& grad() { return grad_; }
  const Weights& weights() const { return w_; }

  // Simulate FP8 GEMM inputs in this model's passes (DeepSeek-V3 §3.3; nn/pass.h). Off by default.
  void set_fp8(bool on) { fp8_ = on; }
  bool fp8() const { return fp8_; }

  // ids [B, T+1]; fills grad() with the loss's gradient (adds it to what grad() holds when accumulate:
  // micro-batches of one step); returns the loss parts. With obj, main is obj's loss.
  LossParts forward_backward(const int32_t* ids, int64_t B, int64_t T, const LossWeights& w,
                             const TokenObjective* obj = nullptr, bool accumulate = false);
  // The loss only (no gradient).
  LossParts loss(const int32_t* ids, int64_t B, int64_t T, const LossWeights& w, const TokenObjective* obj = nullptr);
  // log p(ids[b, t+1] | ids[b, ..t]) for every row b·T + t (forward only, no MTP); and, if entropy is
  // given, each position's entropy.
  std::vector<float> target_logprobs(const int32_t* ids, int64_t B, int64_t T, std::vector<float>* entropy = nullptr);

  // Tokens routed to each expert of each main MoE layer by the last forward: [layer][E] (empty for
  // dense layers).
  const std::vector<std::vector<int64_t>>& expert_load() const { return load_; }
  // Expert parallelism (nn/moe.h): the routed experts of the passes run on `ex` (null: all here, the
  // default), e.g. ExpertDispatch, spread over the ranks that each train on their rows of the batch.
  void set_experts(ExpertExecutor* ex) { ex_ = ex; }
  // Replaces expert_load() with its sum over the ranks of c (data parallelism: each rank routed its own
  // part of the batch; the balance statistics and the routing bias's update are the whole batch's).
  void sum_expert_load(Communicator& c);
  // DeepSeek-V3's auxiliary-loss-free balancing (§2.1.2): for every MoE layer and expert,
  // b_i += γ · sign(mean load − load_i), from the loads of the last forward.
  struct BalanceStats {
    double max_over_mean = 0;  // worst layer's max load / mean load
    int64_t dead = 0;          // experts that received no token, over all layers
  };
  BalanceStats update_routing_bias(double gamma);
  BalanceStats balance_stats() const;

  // An inference model over the live parameters: it sees every update, and costs no copy. Valid while
  // this TrainModel lives.
  Model& inference();

  // Writes config.json (the one loaded) and model.safetensors (f32, HF names) atomically: a directory
  // seek generate / Model::load can run. The model must hold every expert.
  void save(const std::string& dir) const;
  // The same from the ranks of c together (a collective: every rank calls it): rank 0 writes the whole
  // model, each expert's tensors sent by the rank that holds them, one tensor at a time.
  void save(const std::string& dir, Communicator& c) const;

  // The whole model's tensors, one at a time in the table's order, gathered from the ranks' arenas: a
  // collective over c in which every rank calls tensor(i) for i = 0, 1, ... in turn. `arena` is laid out
  // as this model's (its parameters, or optimizer state kept alike); tensor(i) returns tensor i's values
  // on rank 0 (valid until the next call) and null on the others.
  class Gather {
   public:
    Gather(const TrainModel& m, Communicator& c, const std::vector<float>& arena);
    const std::vector<TensorSpec>& tensors() const { return m_.layout_.tensors; }
    const float* tensor(size_t i);

   private:
    const TrainModel& m_;
    Communicator& c_;
    const std::vector<float>& arena_;
    std::vector<int64_t> ranges_;  // [2 · ranks]: each rank's experts, [begin, end)
    std::vector<float> buf_;
  };

 private:
  TrainModel(Config c, ExpertRange own);
  LossParts run(const int32_t* ids, int64_t B, int64_t T, const LossWeights& w, bool backward,
                const TokenObjective* obj, bool accumulate);

  Config cfg_;
  ExpertRange own_;
  ArenaLayout layout_;
  std::string config_json_;
  TransformerSpec spec_;
  std::vector<std::vector<int64_t>> load_;
  std::vector<Param> params_;
  std::vector<float> data_, grad_;
  Weights w_;
  Grads wm_;  // the parameters again as f32 views that write (the routing bias's update)
  Grads g_;
  bool fp8_ = false;
  ExpertExecutor* ex_ = nullptr;
  std::unique_ptr<Model> inference_;
  // What a step keeps between its forward and its backward, reused from step to step.
  struct Activations;
  std::unique_ptr<Activations> acts_;
  std::unique_ptr<Workspace> ws_;
};

}  // namespace seek::train
