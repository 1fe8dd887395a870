// train_model.cpp — see train_model.h. The forward of each piece keeps what its backward needs; the
// model's backward calls the pieces in exactly the reverse order of the forward (style.md §7).
#include "train/train_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <malloc.h>

#include "model/safetensors.h"
#include "model/weights.h"
#include "train/grad_ops.h"
#include "train/mla_train.h"
#include "util/error.h"

namespace seek::train {

namespace {

using Buf = std::vector<float>;
Buf zeros(int64_t n) { return Buf(static_cast<size_t>(n), 0.f); }

struct MlpActs {
  Buf gate, up, act;  // [n, F]
};
// Routed experts run on their tokens gathered together: rows of the sorted [n·k] order are grouped by
// expert (CSR offsets), `slot[r]` is the (token·k + j) choice a sorted row came from, `row_of[t·k + j]`
// the inverse.
struct MoeActs {
  Buf z;                        // [n, E] router logits
  std::vector<int32_t> idx;     // [n, k]
  Buf w;                        // [n, k] gate weights
  std::vector<int64_t> begin;   // [E + 1] sorted-row range of each expert
  std::vector<int64_t> slot, row_of;
  Buf xs;                       // [n·k, D] the gathered inputs, sorted by expert
  MlpActs rows;                 // [n·k, F] the experts' activations, sorted
  Buf ys;                       // [n·k, D] expert outputs, sorted
  MlpActs shared;
};
struct GqaActs {
  Buf q, k, v, att, attn;
};
struct BlockActs {
  Buf x_in, rstd1, xn1, h, rstd2, xn2;
  MlaActivations mla;
  GqaActs gqa;
  MlpActs mlp;
  MoeActs moe;
};

}  // namespace

TrainModel::TrainModel(Config c) : cfg_(std::move(c)), rope_(cfg_.rope) {
  // A step allocates its activations afresh (blocks of up to tens of MB). glibc maps blocks over 128 KB
  // with mmap and unmaps them on free, so every step paid a page fault per 4 KB it touched (17% of a
  // step on configs/train-bench.json). Keeping blocks up to 32 MB (glibc's maximum) in the heap, and
  // not trimming it, lets the next step reuse the same pages.
  static const bool heap_kept = [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return true;
  }();
  (void)heap_kept;
  int64_t off = 0;
  for (const TensorSpec& s : expected_tensors(cfg_)) {
    Param p;
    p.name = s.name;
    p.shape = s.shape;
    p.numel = 1;
    for (int64_t d : s.shape) p.numel *= d;
    p.offset = off;
    p.decay = s.shape.size() == 2;
    off += p.numel;
    index_[p.name] = params_.size();
    params_.push_back(p);
  }
  data_.assign(static_cast<size_t>(off), 0.f);
  grad_.assign(static_cast<size_t>(off), 0.f);
}

TrainModel TrainModel::from_checkpoint(const std::string& dir) {
  TrainModel m(load_config(dir));
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

const TrainModel::Param& TrainModel::param(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error("training model: no parameter \"" + name + "\"");
  return params_[it->second];
}
float* TrainModel::p(const std::string& name) { return data_.data() + param(name).offset; }
float* TrainModel::g(const std::string& name) { return grad_.data() + param(name).offset; }

LossParts TrainModel::forward_backward(const int32_t* ids, int64_t B, int64_t T, const LossWeights& w,
                                       const TokenObjective* obj) {
  return run(ids, B, T, w, true, obj);
}
LossParts TrainModel::loss(const int32_t* ids, int64_t B, int64_t T, const LossWeights& w, const TokenObjective* obj) {
  return run(ids, B, T, w, false, obj);
}

LossParts TrainModel::run(const int32_t* all_ids, int64_t B, int64_t T, const LossWeights& lw, bool backward,
                          const TokenObjective* obj) {
  const Config& c = cfg_;
  const int64_t D = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers, N = B * T;
  const float eps = float(c.rms_norm_eps);
  const bool mtp = c.num_nextn_predict_layers > 0 && T > 1 && lw.mtp_lambda != 0;
  const std::string head = c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  if (backward) std::fill(grad_.begin(), grad_.end(), 0.f);
  for (int64_t i = 0; i < B * (T + 1); ++i)
    if (all_ids[i] < 0 || all_ids[i] >= V) throw Error(strfmt("training batch: token id %d is outside the vocabulary", all_ids[i]));
  // Inputs and next-token targets of the B sequences, laid out one after another: row b·T + t.
  std::vector<int32_t> in(static_cast<size_t>(N)), tgt(static_cast<size_t>(N));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      in[size_t(b * T + t)] = all_ids[b * (T + 1) + t];
      tgt[size_t(b * T + t)] = all_ids[b * (T + 1) + t + 1];
    }
  LossParts out;
  Workspace ws;
  load_.assign(static_cast<size_t>(L), {});
  for (int64_t i = 0; i < L; ++i)
    if (c.is_moe_layer(i)) load_[size_t(i)].assign(static_cast<size_t>(c.n_routed_experts), 0);
  auto lp = [](int64_t i) { return "model.layers." + std::to_string(i) + "."; };

  // ---- pieces: forward and backward side by side -------------------------------------------------
  // SwiGLU MLP on n rows: y = down(silu(gate(x)) · up(x)); gate, up, act [n, F] are kept.
  auto mlp_fwd = [&](const std::string& pre, const float* x, float* y, int64_t n, int64_t F, float* gate, float* up,
                     float* act) {
    linear_forward(gate, x, p(pre + "gate_proj.weight"), nullptr, n, D, F);
    linear_forward(up, x, p(pre + "up_proj.weight"), nullptr, n, D, F);
    swiglu_forward(act, gate, up, n * F);
    linear_forward(y, act, p(pre + "down_proj.weight"), nullptr, n, F, D);
  };
  auto mlp_bwd = [&](const std::string& pre, const float* x, const float* dy, float* dx, int64_t n, int64_t F,
                     const float* gate, const float* up, const float* act) {
    Buf dact = zeros(n * F), dg = zeros(n * F), du = zeros(n * F);
    linear_backward(dact.data(), g(pre + "down_proj.weight"), nullptr, dy, act, p(pre + "down_proj.weight"), n, F, D);
    swiglu_backward(dg.data(), du.data(), dact.data(), gate, up, n * F);
    linear_backward(dx, g(pre + "gate_proj.weight"), nullptr, dg.data(), x, p(pre + "gate_proj.weight"), n, D, F);
    linear_backward(dx, g(pre + "up_proj.weight"), nullptr, du.data(), x, p(pre + "up_proj.weight"), n, D, F);
  };
  auto mlp_fwd_acts = [&](const std::string& pre, const float* x, float* y, int64_t n, int64_t F, MlpActs& a) {
    a.gate = zeros(n * F);
    a.up = zeros(n * F);
    a.act = zeros(n * F);
    mlp_fwd(pre, x, y, n, F, a.gate.data(), a.up.data(), a.act.data());
  };
  auto mlp_bwd_acts = [&](const std::string& pre, const float* x, const float* dy, float* dx, int64_t n, int64_t F,
                          const MlpActs& a) { mlp_bwd(pre, x, dy, dx, n, F, a.gate.data(), a.up.data(), a.act.data()); };

  // DeepSeekMoE on n rows. The routed experts run one per task on the rows routed to them (gathered
  // into one block per expert, so each is three GEMMs), two tasks at a time on the two cores.
  const int64_t E = c.n_routed_experts, k = c.num_experts_per_tok, Fm = c.moe_intermediate_size;
  auto expert = [&](const std::string& pre, int64_t e) { return pre + "mlp.experts." + std::to_string(e) + "."; };
  auto moe_fwd = [&](const std::string& pre, const float* x, float* y, int64_t n, MoeActs& a) {
    const int64_t R = n * k;
    a.z = zeros(n * E);
    linear_forward(a.z.data(), x, p(pre + "mlp.gate.weight"), nullptr, n, D, E);
    a.idx.assign(size_t(R), 0);
    a.w = zeros(R);
    const float* bias = c.topk_method == TopkMethod::NoauxTc ? p(pre + "mlp.gate.e_score_correction_bias") : nullptr;
    moe_route(c, a.z.data(), bias, n, a.idx.data(), a.w.data(), ws);
    if (c.n_shared_experts > 0) mlp_fwd_acts(pre + "mlp.shared_experts.", x, y, n, Fm * c.n_shared_experts, a.shared);
    else std::fill(y, y + n * D, 0.f);
    a.begin.assign(size_t(E + 1), 0);
    for (int64_t r = 0; r < R; ++r) a.begin[size_t(a.idx[size_t(r)] + 1)]++;
    for (int64_t e = 0; e < E; ++e) a.begin[size_t(e + 1)] += a.begin[size_t(e)];
    a.slot.assign(size_t(R), 0);
    a.row_of.assign(size_t(R), 0);
    std::vector<int64_t> next(a.begin.begin(), a.begin.end() - 1);
    for (int64_t r = 0; r < R; ++r) {
      const int64_t row = next[size_t(a.idx[size_t(r)])]++;
      a.slot[size_t(row)] = r;
      a.row_of[size_t(r)] = row;
    }
    a.xs = zeros(R * D);
    for (int64_t row = 0; row < R; ++row)
      std::memcpy(&a.xs[size_t(row * D)], x + a.slot[size_t(row)] / k * D, sizeof(float) * size_t(D));
    a.rows.gate = zeros(R * Fm);
    a.rows.up = zeros(R * Fm);
    a.rows.act = zeros(R * Fm);
    a.ys = zeros(R * D);
#pragma omp parallel for schedule(dynamic)
    for (int64_t e = 0; e < E; ++e) {
      const int64_t r0 = a.begin[size_t(e)], ne = a.begin[size_t(e + 1)] - r0;
      if (ne == 0) continue;
      mlp_fwd(expert(pre, e), &a.xs[size_t(r0 * D)], &a.ys[size_t(r0 * D)], ne, Fm, &a.rows.gate[size_t(r0 * Fm)],
              &a.rows.up[size_t(r0 * Fm)], &a.rows.act[size_t(r0 * Fm)]);
    }
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < k; ++j) {
        const float wt = a.w[size_t(t * k + j)];
        const float* yr = &a.ys[size_t(a.row_of[size_t(t * k + j)] * D)];
        for (int64_t d = 0; d < D; ++d) y[t * D + d] += wt * yr[d];
      }
  };
  // Sequence-wise balance loss of one MoE layer over one sequence of n rows (z [n, E], idx [n, k]):
  // its value; with dz, its gradient scaled by coef is added to dz.
  auto balance = [&](const float* z, const int32_t* idx, int64_t n, double coef, float* dz) {
    Buf s = zeros(n * E);
    for (int64_t t = 0; t < n; ++t) {
      const float* zt = z + t * E;
      float* st = &s[size_t(t * E)];
      if (c.scoring_func == ScoringFunc::Sigmoid) {
        for (int64_t e = 0; e < E; ++e) st[e] = 1.f / (1.f + std::exp(-zt[e]));
      } else {
        std::memcpy(st, zt, sizeof(float) * size_t(E));
        softmax(st, 1, E, E);
      }
    }
    std::vector<double> f(static_cast<size_t>(E), 0.0), P(static_cast<size_t>(E), 0.0), S(static_cast<size_t>(n), 0.0);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < k; ++j) f[size_t(idx[t * k + j])] += double(E) / double(k * n);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t e = 0; e < E; ++e) S[size_t(t)] += s[size_t(t * E + e)];
      for (int64_t e = 0; e < E; ++e) P[size_t(e)] += s[size_t(t * E + e)] / S[size_t(t)] / double(n);
    }
    double value = 0;
    for (int64_t e = 0; e < E; ++e) value += f[size_t(e)] * P[size_t(e)];
    if (dz) {
      // ∂/∂s'_{t,e} = coef·f_e/n; s' = s/S_t; then through sigmoid or softmax.
      std::vector<double> ds(static_cast<size_t>(E));
      for (int64_t t = 0; t < n; ++t) {
        const double St = S[size_t(t)];
        double dot = 0;  // Σ_e ds'_e s'_e
        for (int64_t e = 0; e < E; ++e) dot += coef * f[size_t(e)] / double(n) * s[size_t(t * E + e)] / St;
        for (int64_t e = 0; e < E; ++e) ds[size_t(e)] = (coef * f[size_t(e)] / double(n) - dot) / St;
        if (c.scoring_func == ScoringFunc::Sigmoid) {
          for (int64_t e = 0; e < E; ++e) {
            const double se = s[size_t(t * E + e)];
            dz[t * E + e] += float(ds[size_t(e)] * se * (1 - se));
          }
        } else {
          double d2 = 0;
          for (int64_t e = 0; e < E; ++e) d2 += ds[size_t(e)] * s[size_t(t * E + e)];
          for (int64_t e = 0; e < E; ++e) dz[t * E + e] += float(s[size_t(t * E + e)] * (ds[size_t(e)] - d2));
        }
      }
    }
    return value;
  };
  // Σ over the B sequences (of S rows each) of a layer's balance loss.
  auto balance_all = [&](const MoeActs& a, int64_t Bn, int64_t S, double coef, float* dz) {
    double sum = 0;
    for (int64_t b = 0; b < Bn; ++b)
      sum += balance(&a.z[size_t(b * S * E)], &a.idx[size_t(b * S * k)], S, coef, dz ? dz + b * S * E : nullptr);
    return sum;
  };
  auto moe_bwd = [&](const std::string& pre, const float* x, const float* dy, float* dx, int64_t Bn, int64_t S,
                     const MoeActs& a, double balance_coef) {
    const int64_t n = Bn * S, R = n * k;
    if (c.n_shared_experts > 0) mlp_bwd_acts(pre + "mlp.shared_experts.", x, dy, dx, n, Fm * c.n_shared_experts, a.shared);
    Buf dw = zeros(R), dys = zeros(R * D), dxs = zeros(R * D);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      const int64_t t = r / k, row = a.row_of[size_t(r)];
      const float* yr = &a.ys[size_t(row * D)];
      const float wt = a.w[size_t(r)];
      double dot = 0;
      for (int64_t d = 0; d < D; ++d) {
        dot += double(dy[t * D + d]) * yr[d];
        dys[size_t(row * D + d)] = wt * dy[t * D + d];
      }
      dw[size_t(r)] = float(dot);
    }
#pragma omp parallel for schedule(dynamic)
    for (int64_t e = 0; e < E; ++e) {
      const int64_t r0 = a.begin[size_t(e)], ne = a.begin[size_t(e + 1)] - r0;
      if (ne == 0) continue;
      mlp_bwd(expert(pre, e), &a.xs[size_t(r0 * D)], &dys[size_t(r0 * D)], &dxs[size_t(r0 * D)], ne, Fm,
              &a.rows.gate[size_t(r0 * Fm)], &a.rows.up[size_t(r0 * Fm)], &a.rows.act[size_t(r0 * Fm)]);
    }
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < k; ++j) {
        const float* src = &dxs[size_t(a.row_of[size_t(t * k + j)] * D)];
        for (int64_t d = 0; d < D; ++d) dx[t * D + d] += src[d];
      }
    Buf dz = zeros(n * E);
    moe_gate_backward(dz.data(), a.z.data(), a.idx.data(), dw.data(), n, E, k,
                      RouterSpec{c.scoring_func == ScoringFunc::Sigmoid, c.norm_topk_prob, float(c.routed_scaling_factor)});
    if (balance_coef != 0) balance_all(a, Bn, S, balance_coef, dz.data());
    linear_backward(dx, g(pre + "mlp.gate.weight"), nullptr, dz.data(), x, p(pre + "mlp.gate.weight"), n, D, E);
  };

  auto mla_params = [&](const std::string& pre, bool grads) {
    auto f = [&](const std::string& name) { return grads ? g(pre + name) : p(pre + name); };
    MlaParams m;
    if (c.q_lora_rank == 0) m.q_proj = f("self_attn.q_proj.weight");
    else {
      m.q_a_proj = f("self_attn.q_a_proj.weight");
      m.q_a_norm = f("self_attn.q_a_layernorm.weight");
      m.q_b_proj = f("self_attn.q_b_proj.weight");
    }
    m.kv_a_proj = f("self_attn.kv_a_proj_with_mqa.weight");
    m.kv_a_norm = f("self_attn.kv_a_layernorm.weight");
    m.kv_b_proj = f("self_attn.kv_b_proj.weight");
    m.o_proj = f("self_attn.o_proj.weight");
    return m;
  };

  const int64_t H = c.num_attention_heads, G = c.num_key_value_heads, hd = c.head_dim;
  auto bias_p = [&](const std::string& name) { return c.attention_bias ? p(name) : nullptr; };
  auto bias_g = [&](const std::string& name) { return c.attention_bias ? g(name) : nullptr; };
  auto gqa_fwd = [&](const std::string& pre, const float* x, float* y, int64_t Bn, int64_t S, GqaActs& a) {
    const int64_t n = Bn * S;
    const std::vector<int32_t> pos = batch_positions(Bn, S);
    a.q = zeros(n * H * hd);
    a.k = zeros(n * G * hd);
    a.v = zeros(n * G * hd);
    linear_forward(a.q.data(), x, p(pre + "self_attn.q_proj.weight"), bias_p(pre + "self_attn.q_proj.bias"), n, D, H * hd);
    linear_forward(a.k.data(), x, p(pre + "self_attn.k_proj.weight"), bias_p(pre + "self_attn.k_proj.bias"), n, D, G * hd);
    linear_forward(a.v.data(), x, p(pre + "self_attn.v_proj.weight"), bias_p(pre + "self_attn.v_proj.bias"), n, D, G * hd);
    rope(a.q.data(), n, H, H * hd, hd, pos.data(), rope_.inv_freq.data(), hd, rope_.cos_sin_scale, RopeLayout::HalfSplit);
    rope(a.k.data(), n, G, G * hd, hd, pos.data(), rope_.inv_freq.data(), hd, rope_.cos_sin_scale, RopeLayout::HalfSplit);
    a.att = zeros(Bn * H * S * S);
    a.attn = zeros(n * H * hd);
    attention_forward(a.attn.data(), a.att.data(), a.q.data(), a.k.data(), a.v.data(), Bn, S, H, G, hd, hd,
                      c.softmax_scale());
    linear_forward(y, a.attn.data(), p(pre + "self_attn.o_proj.weight"), nullptr, n, H * hd, D);
  };
  auto gqa_bwd = [&](const std::string& pre, const float* x, const float* dy, float* dx, int64_t Bn, int64_t S,
                     const GqaActs& a) {
    const int64_t n = Bn * S;
    const std::vector<int32_t> pos = batch_positions(Bn, S);
    Buf dattn = zeros(n * H * hd), dq = zeros(n * H * hd), dk = zeros(n * G * hd), dv = zeros(n * G * hd);
    linear_backward(dattn.data(), g(pre + "self_attn.o_proj.weight"), nullptr, dy, a.attn.data(),
                    p(pre + "self_attn.o_proj.weight"), n, H * hd, D);
    attention_backward(dq.data(), dk.data(), dv.data(), dattn.data(), a.att.data(), a.q.data(), a.k.data(), a.v.data(), Bn,
                       S, H, G, hd, hd, c.softmax_scale());
    rope_backward(dq.data(), n, H, H * hd, hd, pos.data(), rope_.inv_freq.data(), hd, rope_.cos_sin_scale, RopeLayout::HalfSplit);
    rope_backward(dk.data(), n, G, G * hd, hd, pos.data(), rope_.inv_freq.data(), hd, rope_.cos_sin_scale, RopeLayout::HalfSplit);
    linear_backward(dx, g(pre + "self_attn.q_proj.weight"), bias_g(pre + "self_attn.q_proj.bias"), dq.data(), x,
                    p(pre + "self_attn.q_proj.weight"), n, D, H * hd);
    linear_backward(dx, g(pre + "self_attn.k_proj.weight"), bias_g(pre + "self_attn.k_proj.bias"), dk.data(), x,
                    p(pre + "self_attn.k_proj.weight"), n, D, G * hd);
    linear_backward(dx, g(pre + "self_attn.v_proj.weight"), bias_g(pre + "self_attn.v_proj.bias"), dv.data(), x,
                    p(pre + "self_attn.v_proj.weight"), n, D, G * hd);
  };

  // One pre-norm block (layer i) on x [Bn·S, D] in place: Bn sequences of S tokens.
  auto block_fwd = [&](int64_t i, float* x, int64_t Bn, int64_t S, BlockActs& a) {
    const std::string pre = lp(i);
    const int64_t n = Bn * S;
    a.x_in.assign(x, x + n * D);
    a.xn1 = zeros(n * D);
    a.rstd1 = zeros(n);
    rmsnorm_forward(a.xn1.data(), a.rstd1.data(), x, p(pre + "input_layernorm.weight"), n, D, eps);
    Buf y = zeros(n * D);
    if (c.is_mla()) mla_train_forward(c, rope_, mla_params(pre, false), a.xn1.data(), y.data(), Bn, S, a.mla);
    else gqa_fwd(pre, a.xn1.data(), y.data(), Bn, S, a.gqa);
    for (int64_t j = 0; j < n * D; ++j) x[j] += y[size_t(j)];
    a.h.assign(x, x + n * D);
    a.xn2 = zeros(n * D);
    a.rstd2 = zeros(n);
    rmsnorm_forward(a.xn2.data(), a.rstd2.data(), x, p(pre + "post_attention_layernorm.weight"), n, D, eps);
    std::fill(y.begin(), y.end(), 0.f);
    if (c.is_moe_layer(i)) moe_fwd(pre, a.xn2.data(), y.data(), n, a.moe);
    else mlp_fwd_acts(pre + "mlp.", a.xn2.data(), y.data(), n, c.intermediate_size, a.mlp);
    for (int64_t j = 0; j < n * D; ++j) x[j] += y[size_t(j)];
  };
  // dx [Bn·S, D]: in, ∂L/∂(block output); out, ∂L/∂(block input).
  auto block_bwd = [&](int64_t i, float* dx, int64_t Bn, int64_t S, const BlockActs& a, double balance_coef) {
    const std::string pre = lp(i);
    const int64_t n = Bn * S;
    Buf dxn2 = zeros(n * D);
    if (c.is_moe_layer(i)) moe_bwd(pre, a.xn2.data(), dx, dxn2.data(), Bn, S, a.moe, balance_coef);
    else mlp_bwd_acts(pre + "mlp.", a.xn2.data(), dx, dxn2.data(), n, c.intermediate_size, a.mlp);
    rmsnorm_backward(dx, g(pre + "post_attention_layernorm.weight"), dxn2.data(), a.h.data(),
                     p(pre + "post_attention_layernorm.weight"), a.rstd2.data(), n, D);
    Buf dxn1 = zeros(n * D);
    if (c.is_mla()) {
      MlaParams gp = mla_params(pre, true);
      mla_train_backward(c, rope_, mla_params(pre, false), gp, a.xn1.data(), dx, dxn1.data(), Bn, S, a.mla);
    } else {
      gqa_bwd(pre, a.xn1.data(), dx, dxn1.data(), Bn, S, a.gqa);
    }
    rmsnorm_backward(dx, g(pre + "input_layernorm.weight"), dxn1.data(), a.x_in.data(), p(pre + "input_layernorm.weight"),
                     a.rstd1.data(), n, D);
  };

  // ---- the main model over all B·T rows -------------------------------------------------------------
  std::vector<BlockActs> acts(static_cast<size_t>(L));
  Buf x = zeros(N * D);
  embedding_forward(x.data(), p("model.embed_tokens.weight"), in.data(), N, D);
  for (int64_t i = 0; i < L; ++i) {
    block_fwd(i, x.data(), B, T, acts[size_t(i)]);
    if (c.is_moe_layer(i)) {
      out.balance += balance_all(acts[size_t(i)].moe, B, T, 0, nullptr) / double(B);
      for (int32_t e : acts[size_t(i)].moe.idx) load_[size_t(i)][size_t(e)]++;
    }
  }
  Buf hn = zeros(N * D), rstd_f = zeros(N), logits = zeros(N * V), probs = zeros(N * V);
  rmsnorm_forward(hn.data(), rstd_f.data(), x.data(), p("model.norm.weight"), N, D, eps);
  linear_forward(logits.data(), hn.data(), p(head), nullptr, N, D, V);
  Buf logp, dlogp;
  out.main = cross_entropy_forward(probs.data(), logits.data(), tgt.data(), N, V);
  if (obj) {
    logp = zeros(N);
    dlogp = zeros(N);
    if (obj->entropy) obj->entropy->assign(size_t(N), 0.f);
    token_logprobs(logp.data(), obj->entropy ? obj->entropy->data() : nullptr, logits.data(), tgt.data(), N, V);
    out.main = obj->fn(logp.data(), dlogp.data());
  }

  // MTP module: positions 0 .. T-2 of each sequence, inputs Emb(ids[b, t+1]) and the main model's
  // normed hidden state h[b, t]; target ids[b, t+2].
  const int64_t Tm = T - 1, M = B * Tm;
  const std::string mp = lp(L);
  BlockActs mact;
  Buf e, en, e_rstd, hsel, hnn, h_rstd, cat, x2, mn, m_rstd, mprobs;
  std::vector<int32_t> in2, tgt2;
  if (mtp) {
    in2.resize(size_t(M));
    tgt2.resize(size_t(M));
    hsel = zeros(M * D);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < Tm; ++t) {
        in2[size_t(b * Tm + t)] = all_ids[b * (T + 1) + t + 1];
        tgt2[size_t(b * Tm + t)] = all_ids[b * (T + 1) + t + 2];
        std::memcpy(&hsel[size_t((b * Tm + t) * D)], &hn[size_t((b * T + t) * D)], sizeof(float) * size_t(D));
      }
    e = zeros(M * D);
    en = zeros(M * D);
    e_rstd = zeros(M);
    hnn = zeros(M * D);
    h_rstd = zeros(M);
    cat = zeros(M * 2 * D);
    embedding_forward(e.data(), p("model.embed_tokens.weight"), in2.data(), M, D);
    rmsnorm_forward(en.data(), e_rstd.data(), e.data(), p(mp + "enorm.weight"), M, D, eps);
    rmsnorm_forward(hnn.data(), h_rstd.data(), hsel.data(), p(mp + "hnorm.weight"), M, D, eps);
    for (int64_t t = 0; t < M; ++t) {
      std::memcpy(&cat[size_t(t * 2 * D)], &en[size_t(t * D)], sizeof(float) * size_t(D));
      std::memcpy(&cat[size_t(t * 2 * D + D)], &hnn[size_t(t * D)], sizeof(float) * size_t(D));
    }
    x2 = zeros(M * D);
    linear_forward(x2.data(), cat.data(), p(mp + "eh_proj.weight"), nullptr, M, 2 * D, D);
    block_fwd(L, x2.data(), B, Tm, mact);
    mn = zeros(M * D);
    m_rstd = zeros(M);
    rmsnorm_forward(mn.data(), m_rstd.data(), x2.data(), p(mp + "shared_head.norm.weight"), M, D, eps);
    Buf mlogits = zeros(M * V);
    mprobs = zeros(M * V);
    linear_forward(mlogits.data(), mn.data(), p(head), nullptr, M, D, V);
    out.mtp = cross_entropy_forward(mprobs.data(), mlogits.data(), tgt2.data(), M, V);
  }
  out.total = out.main + (mtp ? lw.mtp_lambda * out.mtp : 0.0) + lw.balance_alpha * out.balance;
  if (!backward) return out;

  // ---- backward, in reverse ----------------------------------------------------------------------
  Buf dhn = zeros(N * D);
  if (mtp) {
    Buf dml = zeros(M * V), dmn = zeros(M * D), dx2 = zeros(M * D), dcat = zeros(M * 2 * D);
    cross_entropy_backward(dml.data(), mprobs.data(), tgt2.data(), M, V, float(lw.mtp_lambda));
    linear_backward(dmn.data(), g(head), nullptr, dml.data(), mn.data(), p(head), M, D, V);
    rmsnorm_backward(dx2.data(), g(mp + "shared_head.norm.weight"), dmn.data(), x2.data(), p(mp + "shared_head.norm.weight"),
                     m_rstd.data(), M, D);
    block_bwd(L, dx2.data(), B, Tm, mact, 0.0);
    linear_backward(dcat.data(), g(mp + "eh_proj.weight"), nullptr, dx2.data(), cat.data(), p(mp + "eh_proj.weight"), M,
                    2 * D, D);
    Buf den = zeros(M * D), dhnn = zeros(M * D), de = zeros(M * D), dhsel = zeros(M * D);
    for (int64_t t = 0; t < M; ++t) {
      std::memcpy(&den[size_t(t * D)], &dcat[size_t(t * 2 * D)], sizeof(float) * size_t(D));
      std::memcpy(&dhnn[size_t(t * D)], &dcat[size_t(t * 2 * D + D)], sizeof(float) * size_t(D));
    }
    rmsnorm_backward(de.data(), g(mp + "enorm.weight"), den.data(), e.data(), p(mp + "enorm.weight"), e_rstd.data(), M, D);
    embedding_backward(g("model.embed_tokens.weight"), de.data(), in2.data(), M, D);
    rmsnorm_backward(dhsel.data(), g(mp + "hnorm.weight"), dhnn.data(), hsel.data(), p(mp + "hnorm.weight"), h_rstd.data(),
                     M, D);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < Tm; ++t)
        for (int64_t d = 0; d < D; ++d) dhn[size_t((b * T + t) * D + d)] += dhsel[size_t((b * Tm + t) * D + d)];
  }
  Buf dlogits = zeros(N * V), dx = zeros(N * D);
  if (obj) logprob_backward(dlogits.data(), probs.data(), tgt.data(), dlogp.data(), N, V);
  else cross_entropy_backward(dlogits.data(), probs.data(), tgt.data(), N, V, 1.f);
  linear_backward(dhn.data(), g(head), nullptr, dlogits.data(), hn.data(), p(head), N, D, V);
  rmsnorm_backward(dx.data(), g("model.norm.weight"), dhn.data(), x.data(), p("model.norm.weight"), rstd_f.data(), N, D);
  for (int64_t i = L - 1; i >= 0; --i) block_bwd(i, dx.data(), B, T, acts[size_t(i)], lw.balance_alpha / double(B));
  embedding_backward(g("model.embed_tokens.weight"), dx.data(), in.data(), N, D);
  // The routing bias is moved by the balancing rule, never by the gradient.
  if (c.topk_method == TopkMethod::NoauxTc)
    for (int64_t i = 0; i < L + c.num_nextn_predict_layers; ++i)
      if (c.is_moe_layer(i)) {
        const Param& bp = param(lp(i) + "mlp.gate.e_score_correction_bias");
        std::fill(grad_.begin() + bp.offset, grad_.begin() + bp.offset + bp.numel, 0.f);
      }
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
  run(ids, B, T, none, false, &obj);
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

TrainModel::BalanceStats TrainModel::update_routing_bias(double gamma) {
  for (size_t i = 0; i < load_.size(); ++i) {
    const auto& l = load_[i];
    if (l.empty() || cfg_.topk_method != TopkMethod::NoauxTc) continue;
    double mean = 0;
    for (int64_t n : l) mean += double(n);
    mean /= double(l.size());
    float* b = p("model.layers." + std::to_string(i) + ".mlp.gate.e_score_correction_bias");
    for (size_t e = 0; e < l.size(); ++e) {
      const double d = mean - double(l[e]);
      b[e] += float(gamma * double((d > 0) - (d < 0)));
    }
  }
  return balance_stats();
}

void TrainModel::save(const std::string& dir) const {
  std::filesystem::create_directories(dir);
  std::vector<TensorOut> out;
  for (const Param& p : params_) out.push_back({p.name, DType::F32, p.shape, data_.data() + p.offset});
  write_safetensors((std::filesystem::path(dir) / "model.safetensors").string(), out, {{"format", "pt"}});
  write_file_atomic((std::filesystem::path(dir) / "config.json").string(), config_json_);
}

}  // namespace seek::train
