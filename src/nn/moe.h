// moe.h — DeepSeekMoE (DeepSeek-V3 §2.1.2, DeepSeek-V2 §2.2), forward and backward: the router
// (softmax or sigmoid scores; greedy, group-limited and noaux_tc selection; the correction bias that
// moves selection but not weights), shared experts, and the routed experts behind an ExpertExecutor
// that dispatches each token to its experts and combines their outputs — in this process today
// (LocalExperts), across ranks with an all-to-all when experts are spread over machines.
//
// FFN output = shared(x) + Σ_{i ∈ TopK} g_i · expert_i(x). Routing is computed once, here, for
// inference and training; selection is a constant for the gradient (neither idx nor the correction
// bias gets one), the gate weights are not.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "nn/mlp.h"
#include "util/comm.h"

namespace seek {

enum class ScoringFunc { Softmax, Sigmoid };
enum class TopkMethod { Greedy, GroupLimitedGreedy, NoauxTc };

struct RouterSpec {
  int64_t experts = 0;             // E
  int64_t experts_per_token = 0;   // k
  int64_t n_group = 1, topk_group = 1;
  ScoringFunc scoring = ScoringFunc::Softmax;
  TopkMethod method = TopkMethod::Greedy;
  bool norm_topk_prob = false;
  float routed_scaling_factor = 1.f;
};

template <class V>
struct MoeParams {
  typename V::Matrix gate{};                    // [E, D] router
  typename V::Vector e_score_correction_bias{};  // [E] (noaux_tc only; moved by the balancing rule, not by gradients)
  std::vector<MlpParams<V>> experts;             // E experts of width moe_intermediate_size
  MlpParams<V> shared_experts;                   // width moe_intermediate_size × n_shared_experts
  bool has_shared = false;
};
using MoeWeights = MoeParams<WeightView>;
using MoeGrads = MoeParams<GradView>;

// The rows routed to experts, grouped by expert (R = n·k rows; CSR offsets per expert).
struct RoutedActs {
  std::vector<int64_t> begin;   // [E + 1] expert e owns grouped rows begin[e] .. begin[e + 1]
  std::vector<int32_t> token;   // [R] the token a grouped row came from
  std::vector<int32_t> row_of;  // [n·k] the grouped row of choice (t, j)
  std::vector<float> xs;        // [R, D] gathered inputs
  std::vector<float> gu, act;   // [R, 2F], [R, F] the experts' SwiGLU activations
  std::vector<float> ys;        // [R, D] expert outputs
};

struct MoeActs;

// ExpertDispatch: where each (token, choice) row of this rank went, and what this rank's experts ran
// for every rank.
struct DispatchActs {
  std::vector<int64_t> sent, received;  // [N] rows to and from each rank
  std::vector<int32_t> slot;            // [n·k] the place of choice (t, j) in the rank-ordered rows sent
  std::vector<float> back;              // [n·k, D] the experts' outputs, in the order sent
  std::vector<float> x_in;              // [R_in, D] the rows received, in rank order
  std::vector<int32_t> idx_in;          // [R_in] their experts
  std::shared_ptr<MoeActs> experts;     // the owned experts' activations on the rows received
};

struct MoeActs {
  std::vector<float> logits;   // [n, E] router logits
  std::vector<int32_t> idx;    // [n, k] chosen experts
  std::vector<float> weight;   // [n, k] gate weights
  RoutedActs routed;
  MlpActs shared;
  DispatchActs dispatch;       // ExpertDispatch only
};

// Runs the experts of a MoE layer: dispatch (each token's row to the routed experts it chose), the
// expert MLPs, and combine (the gate-weighted sum back into each token's row), with the shared experts
// beside them — every token's, so they overlap the routed ones (in one pool of tasks here; while the
// all-to-all is in flight across ranks, as DeepSeek's inference does).
class ExpertExecutor {
 public:
  virtual ~ExpertExecutor() = default;
  // y[t] = shared(x[t]) + Σ_j weight[t, j] · expert_{idx[t, j]}(x[t]) for n tokens; acts (training)
  // keeps the activations the backward needs.
  virtual void forward(const Pass& p, const MoeWeights& w, const float* x, int64_t n, int64_t k, const int32_t* idx,
                       const float* weight, float* y, MoeActs* acts) = 0;
  // dx[t] = the gradient through the experts (written); dweight[t, j] = dy[t] · expert_{idx[t, j]}(x[t])
  // (written); the experts' gradients accumulate. x: the forward's input.
  virtual void backward(const Pass& p, const MoeWeights& w, MoeGrads& g, const float* x, const float* dy, int64_t n,
                        int64_t k, const float* weight, float* dx, float* dweight, const MoeActs& acts) = 0;
};

// Every expert in this process: the tokens are grouped per expert (a stable counting sort); each expert
// runs its three GEMMs on its rows, one expert per task on all cores (an expert's matmuls run whole on
// one core, which beats splitting a ~n·k/E-row matmul over the cores with a barrier after each), the
// largest first so that no core is left with a big one at the end.
class LocalExperts final : public ExpertExecutor {
 public:
  void forward(const Pass& p, const MoeWeights& w, const float* x, int64_t n, int64_t k, const int32_t* idx,
               const float* weight, float* y, MoeActs* acts) override;
  void backward(const Pass& p, const MoeWeights& w, MoeGrads& g, const float* x, const float* dy, int64_t n, int64_t k,
                const float* weight, float* dx, float* dweight, const MoeActs& acts) override;
};
ExpertExecutor& local_experts();

// The routed experts spread over the ranks of a group: rank r owns experts [E r / N, E (r + 1) / N) and
// touches only their weights (mapped weights then stay resident on the ranks that own them alone).
class SpreadExperts : public ExpertExecutor {
 public:
  int rank() const { return comm_.rank(); }
  int64_t first_expert() const { return e0_; }
  int64_t end_expert() const { return e1_; }
  // Token rows through MoE layers so far (a token through L layers counts L), forward passes only.
  int64_t token_layers() const { return tokens_; }

 protected:
  SpreadExperts(Communicator& c, int64_t n_experts);  // throws Error with fewer experts than ranks
  Communicator& comm_;
  int64_t E_ = 0, e0_ = 0, e1_ = 0, tokens_ = 0;
};

// Every rank holds the same tokens (decode over ranks: attention and dense layers are replicated, each
// rank runs the same step), so no token needs to be sent out: each rank computes its experts'
// gate-weighted part of every token's output (rank 0 also the shared experts'), and the parts are summed
// over the ranks (util/comm.h: in rank order, the same bits on every rank, so the ranks sample the same
// tokens). Per MoE layer and token each rank sends 2 (N - 1) / N · D floats, what a dispatch + combine
// sends when a token's k experts sit on every other rank. Inference only: training, whose ranks hold
// different rows, uses ExpertDispatch.
class ExpertParallel final : public SpreadExperts {
 public:
  ExpertParallel(Communicator& c, int64_t n_experts) : SpreadExperts(c, n_experts) {}
  void forward(const Pass& p, const MoeWeights& w, const float* x, int64_t n, int64_t k, const int32_t* idx,
               const float* weight, float* y, MoeActs* acts) override;
  // Throws Error: see above.
  void backward(const Pass& p, const MoeWeights& w, MoeGrads& g, const float* x, const float* dy, int64_t n, int64_t k,
                const float* weight, float* dx, float* dweight, const MoeActs& acts) override;
};

// The ranks hold different tokens (data-parallel attention, as DeepSeek trains and serves). Each
// (token, choice) row goes to the rank of its expert (all-to-all "dispatch": the expert's index and D
// floats a row), that rank runs its experts on every row it received, and the outputs go back
// (all-to-all "combine") to be weighted and summed on the token's rank. Every rank runs the shared
// experts on its own tokens. The backward sends the outputs' gradients the same way and the inputs'
// gradients back; a rank's experts accumulate the gradient of every rank's tokens and the other experts'
// gradients stay 0, so the data-parallel sum of the ranks' gradients is the whole batch's. Per token and
// MoE layer a rank sends out k rows of D floats (less those its own experts run) and receives as many
// back. Every rank must run every MoE layer, with or without tokens. In one process it computes
// LocalExperts' bits.
class ExpertDispatch final : public SpreadExperts {
 public:
  ExpertDispatch(Communicator& c, int64_t n_experts) : SpreadExperts(c, n_experts) {}
  void forward(const Pass& p, const MoeWeights& w, const float* x, int64_t n, int64_t k, const int32_t* idx,
               const float* weight, float* y, MoeActs* acts) override;
  void backward(const Pass& p, const MoeWeights& w, MoeGrads& g, const float* x, const float* dy, int64_t n, int64_t k,
                const float* weight, float* dx, float* dweight, const MoeActs& acts) override;
  // (token, choice) rows sent to the experts of other ranks so far, forward passes only.
  int64_t rows_out() const { return rows_out_; }
  // Bytes this rank has sent to others so far: dispatch and combine, forward and backward.
  int64_t bytes_out() const { return bytes_out_; }

 private:
  int owner(int32_t e) const;
  // all_to_all of rows of `width` bytes, counted in bytes_out_.
  void exchange(const void* send, const std::vector<int64_t>& send_rows, void* recv, const std::vector<int64_t>& recv_rows,
                int64_t width);
  int64_t rows_out_ = 0, bytes_out_ = 0;
  MoeActs scratch_;  // the dispatch's bookkeeping when the caller keeps no activations (inference)
};

// Routing for T tokens (deepseek-facts.md, DeepSeekMoE routing): from router logits [T, E] to the chosen
// experts idx [T, k] (descending selection score; ties to the lower index) and their gate weights
// weight [T, k]. `bias` is e_score_correction_bias (or null): it changes the selection only.
void moe_route(const Pass& p, const RouterSpec& r, const float* logits, const float* bias, int64_t T, int32_t* idx,
               float* weight);
// The router's gradient through the gate weights (idx constant): dlogits [T, E] += from dweight [T, k].
//   sigmoid: w_j = c·s_j / (Σ_sel s + 1e-20) (or c·s_j without norm_topk_prob), s = σ(z)
//   softmax: w_j = c·p_j (normalized over the chosen k when norm_topk_prob), p = softmax(z) over all E
void moe_route_backward(const RouterSpec& r, const float* logits, const int32_t* idx, const float* dweight, int64_t T,
                        float* dlogits);

// The complementary sequence-wise balance loss (DeepSeek-V3 §2.1.2), summed over B sequences of S tokens:
// Σ_b Σ_e f_e·P_e, f_e = E/(k·S)·count_e (a constant), P_e = mean_t s'_{t,e}, s' = the scores normalized
// over all experts. With dlogits, adds coef × its gradient.
double moe_balance_loss(const Pass& p, const RouterSpec& r, const float* logits, const int32_t* idx, int64_t B, int64_t S,
                        double coef, float* dlogits);

// y [n, D] = MoE(x [n, D]). acts (training) keeps what the backward needs. The router logits and the
// routing are recorded in acts, or, at inference, into idx_out/weight_out [n, k] when given.
void moe_forward(const Pass& p, const RouterSpec& r, const MoeWeights& w, const float* x, float* y, int64_t n,
                 MoeActs* acts, ExpertExecutor& ex, int32_t* idx_out = nullptr, float* weight_out = nullptr);
// dx [n, D] = ∂L/∂x (written); g += ∂L/∂parameters; dy [n, D]. balance_coef ≠ 0 adds the balance loss's
// gradient (B sequences of S = n / B tokens).
void moe_backward(const Pass& p, const RouterSpec& r, const MoeWeights& w, MoeGrads& g, const float* x, const float* dy,
                  float* dx, int64_t n, const MoeActs& acts, ExpertExecutor& ex, double balance_coef, int64_t B);

}  // namespace seek
