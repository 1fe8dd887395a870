// train_model.cpp — see train_model.h. The forward of each module keeps what its backward needs; the
// model's backward calls the modules in exactly the reverse order of the forward (style.md §7).
#include "train/train_model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "model/safetensors.h"
#include "model/spec.h"
#include "model/weights.h"
#include "nn/head.h"
#include "tensor/backend.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace seek::train {

struct TrainModel::Activations {
  std::vector<std::vector<float>> resid;  // [L + 1][N, D]: the input of each block, then the last output
  std::vector<BlockActs> layers;          // [L]
  std::vector<float> hn, rstd;            // [N, D], [N] the final norm
  std::vector<float> logits, probs;       // [N, V]
  MtpActs mtp;
  std::vector<float> mtp_e, mtp_h, mtp_out, mtp_hn, mtp_rstd, mtp_logits, mtp_probs;
  std::vector<Segment> segs, mtp_segs;
};

namespace {

template <class T>
T* sized(std::vector<T>& v, int64_t n) {
  if (v.size() < size_t(n)) v.resize(size_t(n));
  return v.data();
}

}  // namespace

TrainModel::TrainModel(Config c, ExpertRange own)
    : cfg_(std::move(c)), own_(own), acts_(std::make_unique<Activations>()), ws_(std::make_unique<Workspace>()) {
  if (!(own.begin >= 0 && own.begin < own.end))
    throw Error(strfmt("a training model cannot hold routed experts [%lld, %lld) of %lld: expected 0 <= first < end",
                       (long long)own.begin, (long long)own.end, (long long)cfg_.n_routed_experts));
  if (own.begin <= 0 && own.end >= cfg_.n_routed_experts) own_ = own = {};  // every expert
  layout_ = arena_layout(cfg_, own);
  for (size_t i = 0; i < layout_.tensors.size(); ++i) {
    const TensorSpec& s = layout_.tensors[i];
    if (layout_.offset[i] < 0) continue;  // another rank's expert
    params_.push_back({s.name, s.shape, layout_.offset[i], s.numel(), s.shape.size() == 2});
  }
  data_.assign(static_cast<size_t>(layout_.size), 0.f);
  grad_.assign(static_cast<size_t>(layout_.size), 0.f);
  w_ = arena_weights(cfg_, data_.data(), own);
  wm_ = arena_grads(cfg_, data_.data(), own);
  g_ = arena_grads(cfg_, grad_.data(), own);
  spec_ = transformer_spec(cfg_);
}

TrainModel::TrainModel(TrainModel&&) noexcept = default;
TrainModel& TrainModel::operator=(TrainModel&&) noexcept = default;
TrainModel::~TrainModel() = default;

TrainModel TrainModel::from_checkpoint(const std::string& dir, ExpertRange own) {
  TrainModel m(load_config(dir), own);
  {
    std::ifstream in(std::filesystem::path(dir) / "config.json");
    m.config_json_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  Checkpoint ck(dir);
  for (const Param& p : m.params_) {
    const TensorInfo& t = ck.get(p.name);
    if (t.shape != p.shape)
      throw Error(t.file + ": tensor \"" + p.name + "\" has shape " + t.shape_str() + ", not what the config implies");
    float* dst = m.data_.data() + p.offset;
    if (t.dtype == DType::F8_E4M3) {
      const TensorInfo& s = ck.get(p.name + "_scale_inv");
      Mat w{t.dtype, t.data, p.shape[0], p.shape[1], static_cast<const float*>(s.data), m.cfg_.fp8_block};
      mat_rows_to_f32(w, 0, w.rows, dst);
    } else if (t.dtype == DType::F32 || t.dtype == DType::BF16 || t.dtype == DType::F16) {
      to_f32(t.dtype, t.data, dst, size_t(p.numel));
    } else {
      throw Error(t.file + ": tensor \"" + p.name + "\" has a dtype that is not a weight");
    }
  }
  return m;
}

Model& TrainModel::inference() {
  if (!own_.all())
    throw Error(strfmt("a training model holding experts [%lld, %lld) of %lld runs no inference on its own",
                       (long long)own_.begin, (long long)own_.end, (long long)cfg_.n_routed_experts));
  if (!inference_) inference_ = std::make_unique<Model>(cfg_, w_);
  return *inference_;
}

LossParts TrainModel::forward_backward(const int32_t* ids, int64_t B, int64_t T, const LossWeights& w,
                                       const TokenObjective* obj, bool accumulate) {
  return run(ids, B, T, w, true, obj, accumulate);
}
LossParts TrainModel::loss(const int32_t* ids, int64_t B, int64_t T, const LossWeights& w, const TokenObjective* obj) {
  return run(ids, B, T, w, false, obj, false);
}

LossParts TrainModel::run(const int32_t* all_ids, int64_t B, int64_t T, const LossWeights& lw, bool backward,
                          const TokenObjective* obj, bool accumulate) {
  const Config& c = cfg_;
  const int64_t D = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers, N = B * T;
  const float eps = float(c.rms_norm_eps);
  const bool mtp = c.num_nextn_predict_layers > 0 && T > 1 && lw.mtp_lambda != 0;
  for (int64_t i = 0; i < B * (T + 1); ++i)
    if (all_ids[i] < 0 || all_ids[i] >= V)
      throw Error(strfmt("training batch: token id %d is outside the vocabulary", all_ids[i]));
  Workspace& ws = *ws_;
  Workspace::Frame frame(ws);
  const Pass pass{ws, fp8_, nullptr};
  ExpertExecutor& ex = ex_ ? *ex_ : local_experts();
  Activations& a = *acts_;

  // Inputs and next-token targets of the B sequences, laid out one after another: row b·T + t.
  int32_t* in = ws.alloc<int32_t>(N);
  int32_t* tgt = ws.alloc<int32_t>(N);
  int32_t* pos = ws.alloc<int32_t>(N);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      in[b * T + t] = all_ids[b * (T + 1) + t];
      tgt[b * T + t] = all_ids[b * (T + 1) + t + 1];
      pos[b * T + t] = int32_t(t);
    }
  a.segs.resize(size_t(B));
  for (int64_t b = 0; b < B; ++b) a.segs[size_t(b)] = Segment{nullptr, b * T, T, 0};
  const Rows rows{N, pos, &a.segs, MlaForm::Naive};
  LossParts out;
  load_.assign(static_cast<size_t>(L), {});
  for (int64_t i = 0; i < L; ++i)
    if (c.is_moe_layer(i)) load_[size_t(i)].assign(static_cast<size_t>(c.n_routed_experts), 0);

  // ---- forward: the blocks over all B·T rows, each keeping its input and activations -------------------
  a.resid.resize(size_t(L + 1));
  a.layers.resize(size_t(L));
  embed(w_.embed_tokens, in, N, sized(a.resid[0], N * D));
  for (int64_t i = 0; i < L; ++i) {
    const BlockSpec& s = spec_.layers[size_t(i)];
    BlockActs& acts = a.layers[size_t(i)];
    block_forward(pass, s, w_.layers[size_t(i)], a.resid[size_t(i)].data(), sized(a.resid[size_t(i + 1)], N * D), rows,
                  &acts, ex);
    if (s.moe) {
      const MoeActs& m = acts.moe;
      out.balance += moe_balance_loss(pass, s.router, m.logits.data(), m.idx.data(), B, T, 0, nullptr) / double(B);
      for (int64_t j = 0; j < N * s.router.experts_per_token; ++j) load_[size_t(i)][size_t(m.idx[size_t(j)])]++;
    }
  }
  const float* xL = a.resid[size_t(L)].data();
  float* hn = sized(a.hn, N * D);
  float* rstd = sized(a.rstd, N);
  float* logits = sized(a.logits, N * V);
  float* probs = sized(a.probs, N * V);
  head_forward(pass, w_.norm, w_.lm_head, eps, xL, N, hn, rstd, logits);
  out.main = cross_entropy(logits, tgt, N, V, probs);
  float* dlogp = nullptr;
  if (obj) {
    float* logp = ws.alloc<float>(N);
    dlogp = ws.alloc<float>(N);
    std::fill(dlogp, dlogp + N, 0.f);
    if (obj->entropy) obj->entropy->assign(size_t(N), 0.f);
    token_logprobs(logits, tgt, N, V, logp, obj->entropy ? obj->entropy->data() : nullptr);
    out.main = obj->fn(logp, dlogp);
  }

  // MTP module: positions 0 .. T-2 of each sequence, inputs Emb(ids[b, t+1]) and the main model's
  // normed hidden state h[b, t]; target ids[b, t+2].
  const int64_t Tm = T - 1, M = B * Tm;
  int32_t *in2 = nullptr, *tgt2 = nullptr;
  Rows rows2;
  if (mtp) {
    const MtpWeights& mw = w_.mtp[0];
    in2 = ws.alloc<int32_t>(M);
    tgt2 = ws.alloc<int32_t>(M);
    float* h = sized(a.mtp_h, M * D);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < Tm; ++t) {
        in2[b * Tm + t] = all_ids[b * (T + 1) + t + 1];
        tgt2[b * Tm + t] = all_ids[b * (T + 1) + t + 2];
        std::memcpy(h + (b * Tm + t) * D, hn + (b * T + t) * D, sizeof(float) * size_t(D));
      }
    a.mtp_segs.resize(size_t(B));
    for (int64_t b = 0; b < B; ++b) a.mtp_segs[size_t(b)] = Segment{nullptr, b * Tm, Tm, 0};
    rows2 = Rows{M, pos, &a.mtp_segs, MlaForm::Naive};  // positions 0 .. Tm-1 of each sequence: pos's rows
    int32_t* pos2 = ws.alloc<int32_t>(M);
    for (int64_t i = 0; i < M; ++i) pos2[i] = int32_t(i % Tm);
    rows2.pos = pos2;
    float* e = sized(a.mtp_e, M * D);
    embed(w_.embed_tokens, in2, M, e);
    float* mout = sized(a.mtp_out, M * D);
    mtp_forward(pass, spec_.mtp[0], mw, e, h, mout, rows2, &a.mtp, ex);
    float* mlogits = sized(a.mtp_logits, M * V);
    head_forward(pass, mw.shared_head_norm, w_.lm_head, eps, mout, M, sized(a.mtp_hn, M * D), sized(a.mtp_rstd, M),
                 mlogits);
    out.mtp = cross_entropy(mlogits, tgt2, M, V, sized(a.mtp_probs, M * V));
  }
  out.total = out.main + (mtp ? lw.mtp_lambda * out.mtp : 0.0) + lw.balance_alpha * out.balance;
  if (!backward) return out;

  // ---- backward, in reverse ----------------------------------------------------------------------
  if (!accumulate) fill(grad_.data(), 0.f, int64_t(grad_.size()));
  const float scale = float(lw.scale);
  float* dhn = nullptr;  // the MTP module's gradient on the main model's normed states
  if (mtp) {
    const MtpWeights& mw = w_.mtp[0];
    MtpGrads& mg = g_.mtp[0];
    float* dml = ws.alloc<float>(M * V);
    cross_entropy_backward(dml, a.mtp_probs.data(), tgt2, M, V, float(lw.mtp_lambda) * scale);
    float* dmout = ws.alloc<float>(M * D);
    head_backward(pass, mw.shared_head_norm, w_.lm_head, mg.shared_head_norm, g_.lm_head, a.mtp_out.data(),
                  a.mtp_hn.data(), a.mtp_rstd.data(), dml, nullptr, M, dmout);
    float* de = ws.alloc<float>(M * D);
    float* dh = ws.alloc<float>(M * D);
    mtp_backward(pass, spec_.mtp[0], mw, mg, a.mtp_e.data(), a.mtp_h.data(), dmout, de, dh, rows2, a.mtp, ex);
    embed_backward(g_.embed_tokens, de, in2, M, D);
    // The module read h[b, t] for t < T − 1: its gradient goes there; the last position of each
    // sequence gets none.
    dhn = ws.alloc<float>(N * D);
    parallel_for(N, D, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / T, t = r % T;
        if (t < Tm) std::memcpy(dhn + r * D, dh + (b * Tm + t) * D, sizeof(float) * size_t(D));
        else std::fill(dhn + r * D, dhn + (r + 1) * D, 0.f);
      }
    });
  }
  float* dlogits = ws.alloc<float>(N * V);
  if (obj) {
    if (scale != 1.f)
      for (int64_t i = 0; i < N; ++i) dlogp[i] *= scale;
    token_logprobs_backward(pass, dlogits, probs, tgt, dlogp, N, V);
  } else {
    cross_entropy_backward(dlogits, probs, tgt, N, V, scale);
  }
  float* dx = ws.alloc<float>(N * D);
  head_backward(pass, w_.norm, w_.lm_head, g_.norm, g_.lm_head, xL, hn, rstd, dlogits, dhn, N, dx);
  for (int64_t i = L - 1; i >= 0; --i)
    block_backward(pass, spec_.layers[size_t(i)], w_.layers[size_t(i)], g_.layers[size_t(i)], a.resid[size_t(i)].data(),
                   dx, rows, a.layers[size_t(i)], ex, lw.balance_alpha * lw.scale / double(B), B);
  embed_backward(g_.embed_tokens, dx, in, N, D);
  return out;
}

std::vector<float> TrainModel::target_logprobs(const int32_t* ids, int64_t B, int64_t T, std::vector<float>* entropy) {
  std::vector<float> logp;
  TokenObjective obj{[&](const float* lp, float*) {
                       logp.assign(lp, lp + B * T);
                       return 0.0;
                     },
                     entropy};
  LossWeights none;
  none.mtp_lambda = 0;
  none.balance_alpha = 0;
  run(ids, B, T, none, false, &obj, false);
  return logp;
}

TrainModel::BalanceStats TrainModel::balance_stats() const {
  BalanceStats st;
  for (const auto& l : load_) {
    if (l.empty()) continue;
    int64_t total = 0, most = 0;
    for (int64_t n : l) {
      total += n;
      most = std::max(most, n);
      st.dead += n == 0;
    }
    const double mean = double(total) / double(l.size());
    if (mean > 0) st.max_over_mean = std::max(st.max_over_mean, double(most) / mean);
  }
  return st;
}

void TrainModel::sum_expert_load(Communicator& c) {
  if (c.size() == 1) return;
  std::vector<int64_t> flat;
  for (const auto& l : load_) flat.insert(flat.end(), l.begin(), l.end());
  c.all_reduce_sum(flat);
  size_t at = 0;
  for (auto& l : load_)
    for (int64_t& n : l) n = flat[at++];
}

TrainModel::BalanceStats TrainModel::update_routing_bias(double gamma) {
  for (size_t i = 0; i < load_.size(); ++i) {
    const auto& l = load_[i];
    if (l.empty() || cfg_.topk_method != TopkMethod::NoauxTc) continue;
    double mean = 0;
    for (int64_t n : l) mean += double(n);
    mean /= double(l.size());
    float* b = wm_.layers[i].moe.e_score_correction_bias;
    for (size_t e = 0; e < l.size(); ++e) {
      const double d = mean - double(l[e]);
      b[e] += float(gamma * double((d > 0) - (d < 0)));
    }
  }
  return balance_stats();
}

TrainModel::Gather::Gather(const TrainModel& m, Communicator& c, const std::vector<float>& arena)
    : m_(m), c_(c), arena_(arena), ranges_(size_t(2 * c.size()), 0) {
  SEEK_ASSERT(int64_t(arena.size()) == m.layout_.size);
  ranges_[size_t(2 * c.rank())] = m.own_.begin;
  ranges_[size_t(2 * c.rank() + 1)] = std::min(m.own_.end, m.cfg_.n_routed_experts);
  c.all_reduce_sum(ranges_);
}

const float* TrainModel::Gather::tensor(size_t i) {
  const TensorSpec& t = m_.layout_.tensors[i];
  const int64_t at = m_.layout_.offset[i];
  int owner = -1;  // the first rank that holds it: rank 0 for all but another rank's experts
  for (int r = 0; r < c_.size() && owner < 0; ++r)
    if (t.expert < 0 || (t.expert >= ranges_[size_t(2 * r)] && t.expert < ranges_[size_t(2 * r + 1)])) owner = r;
  if (owner < 0) throw Error("gathering the model: no rank holds \"" + t.name + "\"");
  if (owner == 0) return c_.rank() == 0 ? arena_.data() + at : nullptr;
  buf_.resize(size_t(t.numel()));
  if (c_.rank() == owner) std::copy(arena_.data() + at, arena_.data() + at + t.numel(), buf_.begin());
  c_.broadcast(buf_.data(), t.numel() * int64_t(sizeof(float)), owner);
  return c_.rank() == 0 ? buf_.data() : nullptr;
}

void TrainModel::save(const std::string& dir) const { save(dir, one_process()); }

void TrainModel::save(const std::string& dir, Communicator& c) const {
  Gather g(*this, c, data_);
  if (c.rank() != 0) {
    for (size_t i = 0; i < layout_.tensors.size(); ++i) g.tensor(i);
    return;
  }
  std::filesystem::create_directories(dir);
  std::vector<TensorMeta> meta;
  for (const TensorSpec& t : layout_.tensors) meta.push_back({t.name, DType::F32, t.shape});
  write_safetensors_streamed((std::filesystem::path(dir) / "model.safetensors").string(), meta,
                             [&](size_t i) { return static_cast<const void*>(g.tensor(i)); }, {{"format", "pt"}});
  write_file_atomic((std::filesystem::path(dir) / "config.json").string(), config_json_);
}

}  // namespace seek::train
