// pretrain.cpp — see pretrain.h.
#include "train/pretrain.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "data/loader.h"
#include "model/random_checkpoint.h"
#include "nn/moe.h"
#include "train/flops.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/json_file.h"
#include "util/plot.h"

namespace seek::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

double mtp_lambda_final(const PretrainOptions& o) { return std::isnan(o.mtp_lambda_final) ? o.mtp_lambda : o.mtp_lambda_final; }


// Tokens routed to each expert of each MoE layer, summed over the micro-batches since the last log line.
struct LoadWindow {
  std::vector<std::vector<int64_t>> count;  // [layer][E]; empty for dense layers
  void add(const std::vector<std::vector<int64_t>>& load) {
    if (count.size() != load.size()) count.assign(load.size(), {});
    for (size_t l = 0; l < load.size(); ++l) {
      if (count[l].size() != load[l].size()) count[l].assign(load[l].size(), 0);
      for (size_t e = 0; e < load[l].size(); ++e) count[l][e] += load[l][e];
    }
  }
  void reset() {
    for (auto& c : count) std::fill(c.begin(), c.end(), 0);
  }
  // {"<layer>": {"max_over_mean", "dead", "routed" (token-expert assignments)}}, the worst layer's max/mean (and which), the total dead.
  json summary(double& worst, int64_t& worst_layer, int64_t& dead) const {
    json j = json::object();
    worst = 0, worst_layer = -1, dead = 0;
    for (size_t l = 0; l < count.size(); ++l) {
      const std::vector<int64_t>& c = count[l];
      if (c.empty()) continue;
      int64_t total = 0, mx = 0, d = 0;
      for (int64_t v : c) total += v, mx = std::max(mx, v), d += v == 0;
      const double mom = total > 0 ? double(mx) * double(c.size()) / double(total) : 0.0;
      j[std::to_string(l)] = {{"max_over_mean", mom}, {"dead", d}, {"routed", total}};
      if (mom > worst) worst = mom, worst_layer = int64_t(l);
      dead += d;
    }
    return j;
  }
};

// The columns "expert_load.<layer>.<field>" of the metrics, by layer.
std::map<int64_t, std::vector<double>> layer_columns(const plot::Columns& m, const std::string& field) {
  std::map<int64_t, std::vector<double>> r;
  const std::string prefix = "expert_load.", suffix = "." + field;
  for (const auto& [name, v] : m.col) {
    if (name.rfind(prefix, 0) != 0 || name.size() <= prefix.size() + suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string layer = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    if (layer.find_first_not_of("0123456789") == std::string::npos) r[std::stoll(layer)] = v;
  }
  return r;
}

// A series of the rows that logged the field: validation every eval_every steps is one line, not dots
// between the rows of other lines.
void add_logged(plot::Chart& c, const std::string& name, const std::vector<double>& step, const std::vector<double>& v) {
  std::vector<double> x, y;
  for (size_t i = 0; i < v.size(); ++i)
    if (std::isfinite(step[i]) && std::isfinite(v[i])) x.push_back(step[i]), y.push_back(v[i]);
  if (!x.empty()) c.add_series(name, std::move(x), std::move(y));
}

class PretrainObjective final : public Objective {
 public:
  PretrainObjective(const PretrainOptions& o, const Config& c, Communicator& comm)
      : o_(o),
        data_(comm),
        ep_(o.expert_parallel ? std::make_unique<ExpertDispatch>(comm, c.n_routed_experts) : nullptr),
        loader_(manifest_shards(o.data, "train"), LoaderOptions{o.batch, o.seq_len, o.seed, true}),
        alpha_(o.balance == "aux-free" ? o.seq_alpha : o.balance == "aux" ? o.aux_alpha : 0.0),
        moe_(c.n_routed_experts > 0),
        flops_per_token_(train_flops_per_token(c, o.seq_len)) {
    try {
      val_ = std::make_unique<ValidationSet>(manifest_shards(o.data, "val"), o.batch, o.seq_len);
    } catch (const Error&) {
      val_.reset();  // no validation split
    }
  }

  bool data_parallel() const override { return true; }
  ExpertRange experts() const override {
    return ep_ ? ExpertRange{ep_->first_expert(), ep_->end_expert()} : ExpertRange{};
  }

  StepReport step(TrainModel& m, int64_t step) override {
    const double lambda = mtp_lambda_at(o_, step);
    m.set_experts(ep_.get());
    const int ranks = data_.size();
    // This rank's rows of the global batch, and its share of the gradient of their mean loss.
    const int64_t rows = o_.batch / ranks, first = rows * data_.rank();
    const LossWeights w{lambda, alpha_, 1.0 / double(o_.accum * ranks)};
    double part[4] = {0, 0, 0, 0};  // total, main, mtp, balance: this rank's share, then the group's mean
    StepReport r;
    for (int64_t a = 0; a < o_.accum; ++a) {
      Batch bt = loader_.next();
      const LossParts l = m.forward_backward(bt.tokens.data() + first * (bt.T + 1), rows, bt.T, w, nullptr, a > 0);
      m.sum_expert_load(data_);
      window_.add(m.expert_load());
      const double mine[4] = {l.total, l.main, l.mtp, l.balance};
      for (int i = 0; i < 4; ++i) part[i] += mine[i] / double(o_.accum * ranks);
      r.tokens += bt.B * bt.T;
    }
    data_.all_reduce_sum(std::span<double>(part, 4));
    const LossParts lp{part[0], part[1], part[2], part[3]};
    r.loss = lp.total;
    r.flops = double(r.tokens) * flops_per_token_;
    r.metrics = {{"loss_main", lp.main}, {"loss_mtp", lp.mtp}, {"loss_balance", lp.balance}, {"mtp_lambda", lambda},
                 {"train_flops_per_token", flops_per_token_}};
    if (ep_ && ep_->token_layers() > 0)  // this rank's dispatch and combine, forward and backward
      r.metrics["expert_bytes_per_token_layer"] = double(ep_->bytes_out()) / double(ep_->token_layers());
    r.progress = strfmt("loss %.4f (main %.4f, mtp %.4f, λ %.2f)", lp.total, lp.main, lp.mtp, lambda);
    r.log = o_.eval_every > 0 && (step % o_.eval_every == 0 || step == o_.steps);
    return r;
  }

  void after_update(TrainModel& m, int64_t step, bool logging, StepReport& r) override {
    if (o_.balance == "aux-free" && moe_) m.update_routing_bias(o_.gamma);
    const bool eval_now = o_.eval_every > 0 && (step % o_.eval_every == 0 || step == o_.steps);
    double vl = NAN;
    if (eval_now) {
      last_val_loss = vl = validate(m);
      r.metrics["val_loss"] = vl;
    }
    if (logging || eval_now) {
      double worst = 0;
      int64_t worst_layer = -1, dead = 0;
      const json per_layer = window_.summary(worst, worst_layer, dead);
      if (worst_layer >= 0) {
        r.metrics["max_over_mean_load"] = worst;
        r.metrics["dead_experts"] = dead;
        r.metrics["expert_load"] = per_layer;
      }
      r.progress += strfmt(" | val %s | %s", eval_now ? strfmt("%.4f", vl).c_str() : "-",
                           worst_layer >= 0 ? strfmt("load max/mean %.2f (layer %lld), dead %lld", worst,
                                                     (long long)worst_layer, (long long)dead).c_str()
                                            : "dense");
      window_.reset();
    }
  }

  json options() const override {
    return {{"batch", o_.batch}, {"seq_len", o_.seq_len}, {"accum", o_.accum}, {"mtp_lambda", o_.mtp_lambda},
            {"mtp_lambda_final", mtp_lambda_final(o_)}, {"mtp_switch", o_.mtp_switch}, {"balance", o_.balance},
            {"gamma", o_.gamma}, {"seq_alpha", o_.seq_alpha}, {"aux_alpha", o_.aux_alpha}, {"seed", o_.seed},
            {"data", o_.data}};
  }
  json state() const override { return {{"loader", to_json(loader_.state())}}; }
  void restore(const json& st, const std::string& ckpt) override {
    if (!st.contains("loader")) throw Error(ckpt + "/state.json: no data loader position");
    loader_.restore(loader_state_from_json(st["loader"]));
  }
  void plot(const std::string& out) const override { draw_pretrain_plots(out); }

  // Mean main loss over the first eval_batches validation batches (NaN without a validation split);
  // each rank takes its rows of every batch, as in training (with the experts spread, every rank must
  // run every batch).
  double validate(TrainModel& m) {
    if (!val_ || val_->n_batches() == 0) return double(NAN);
    m.set_experts(ep_.get());  // before the first step too: a rank's model may hold only its experts
    double sum = 0;
    const uint64_t nb = std::min<uint64_t>(val_->n_batches(), uint64_t(o_.eval_batches));
    for (uint64_t i = 0; i < nb; ++i) {
      Batch bt = val_->batch(i);
      const int64_t rows = bt.B / data_.size(), first = rows * data_.rank();
      sum += m.loss(bt.tokens.data() + first * (bt.T + 1), rows, bt.T, LossWeights{o_.mtp_lambda, alpha_}).main /
             double(data_.size());
    }
    data_.all_reduce_sum(std::span<double>(&sum, 1));
    return sum / double(nb);
  }

  double last_val_loss = NAN;

 private:
  const PretrainOptions& o_;
  // The batch is split over comm's ranks (data_ = comm); with expert parallelism the experts too (ep_).
  Communicator& data_;
  std::unique_ptr<ExpertDispatch> ep_;
  DataLoader loader_;
  std::unique_ptr<ValidationSet> val_;
  double alpha_;
  bool moe_;
  double flops_per_token_;
  LoadWindow window_;
};

}  // namespace

PretrainResult pretrain(const PretrainOptions& o, std::FILE* progress) {
  if (o.balance != "aux-free" && o.balance != "aux" && o.balance != "none")
    throw Error("--balance " + o.balance + ": expected aux-free, aux or none");
  if (o.steps < 1 || o.batch < 1 || o.seq_len < 2 || o.accum < 1)
    throw Error("pretrain: steps, batch, accum must be >= 1 and seq_len >= 2");
  if (!(o.mtp_lambda >= 0) || mtp_lambda_final(o) < 0)
    throw Error(strfmt("--mtp-lambda %g / --mtp-lambda-final %g: expected >= 0", o.mtp_lambda, mtp_lambda_final(o)));
  if (!(o.mtp_switch >= 0 && o.mtp_switch <= 1))
    throw Error(strfmt("--mtp-switch %g: expected a fraction of the steps in [0, 1]", o.mtp_switch));
  Communicator& comm = or_world(o.comm);
  if (o.batch % comm.size() != 0)
    throw Error(strfmt("pretrain: --batch %lld does not split evenly over %d ranks (each trains on batch / ranks rows)",
                       (long long)o.batch, comm.size()));
  fs::create_directories(o.out);
  // A new run starts from a random model written from the config (by rank 0; the others read it).
  const std::string init = (fs::path(o.out) / "init").string();
  const bool fresh = latest_checkpoint(o.out).empty();
  comm.barrier();  // every rank has looked for a checkpoint before rank 0 writes anything
  if (fresh && o.config.empty()) throw Error("pretrain: --config is required for a new run (no checkpoint in " + o.out + ")");
  on_rank0(comm, [&] {
    if (fresh) write_random_checkpoint(init, read_json_file(o.config), {DType::F32, o.seed, 1});
  });
  TrainOptions t;
  t.out = o.out;
  t.name = "pretrain";
  t.steps = o.steps;
  t.lr = o.lr;
  t.schedule = Schedule{o.schedule, o.warmup, o.steps, o.min_lr_ratio, 0.2};
  t.adamw = AdamWOptions{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay};
  t.clip = o.clip;
  t.fp8 = o.fp8;
  t.save_every = o.save_every;
  t.log_every = o.log_every;
  t.stop_after = o.stop_after;
  t.comm = &comm;
  const Config cfg = load_config(fresh ? init : latest_checkpoint(o.out));
  PretrainObjective obj(o, cfg, comm);
  Trainer trainer(t, obj, init);
  PretrainResult r;
  r.resumed = trainer.resumed();
  if (comm.rank() != 0) progress = nullptr;
  if (r.resumed && progress)
    std::fprintf(progress, "resuming %s at step %lld\n", latest_checkpoint(o.out).c_str(), (long long)trainer.step());
  if (!r.resumed) {
    r.first_val_loss = obj.validate(trainer.model());
    trainer.log(json{{"step", 0}, {"val_loss", r.first_val_loss}});
  }
  trainer.run(progress);
  r.step = trainer.step();
  r.last_val_loss = obj.last_val_loss;
  return r;
}

double mtp_lambda_at(const PretrainOptions& o, int64_t step) {
  const auto switch_step = int64_t(std::llround(o.mtp_switch * double(o.steps)));
  return step <= switch_step ? o.mtp_lambda : mtp_lambda_final(o);
}

void draw_pretrain_plots(const std::string& out) {
  // A run resumed from an earlier checkpoint logs some steps again: the later rows win.
  const plot::Columns m = plot::drop_superseded(plot::read_jsonl((fs::path(out) / "metrics.jsonl").string()), "step");
  const std::vector<double> step = m.get("step");

  plot::Chart loss;
  loss.title = "Pretraining loss";
  loss.x_label = "step";
  loss.y_label = "cross-entropy (nats/token)";
  const std::pair<const char*, const char*> loss_series[] = {
      {"loss_main", "train (next token)"}, {"loss_mtp", "MTP (token after next)"}, {"val_loss", "validation"}};
  for (auto [field, name] : loss_series) add_logged(loss, name, step, m.get(field));
  if (loss.series.empty()) throw Error((fs::path(out) / "metrics.jsonl").string() + ": no loss logged yet");
  loss.write_svg((fs::path(out) / "loss.svg").string());

  const auto ratio = layer_columns(m, "max_over_mean"), dead = layer_columns(m, "dead");
  if (ratio.empty()) return;  // a dense model: no experts to balance
  plot::Chart load;
  load.title = "Expert load per MoE layer (tokens since the previous log line)";
  load.x_label = "step";
  load.y_label = "max load / mean load";
  load.y_min = 1;  // max/mean >= 1
  for (const auto& [layer, v] : ratio) add_logged(load, "layer " + std::to_string(layer), step, v);
  plot::Chart gone;
  gone.title = "Dead experts (no token since the previous log line)";
  gone.x_label = "step";
  gone.y_label = "experts";
  gone.height = 320;
  gone.y_min = 0;
  for (const auto& [layer, v] : dead) add_logged(gone, "layer " + std::to_string(layer), step, v);
  add_logged(gone, "all layers", step, m.get("dead_experts"));
  if (!gone.series.empty()) gone.series.back().dashed = true;
  plot::write_svg((fs::path(out) / "balance.svg").string(), {load, gone});
}

}  // namespace seek::train
