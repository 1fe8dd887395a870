// trainer.cpp — see trainer.h.
#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "data/loader.h"
#include "model/random_checkpoint.h"
#include "model/safetensors.h"
#include "tensor/roofline.h"
#include "train/flops.h"
#include "train/optimizer.h"
#include "train/train_model.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/plot.h"

namespace seek::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

double mtp_lambda_final(const PretrainOptions& o) { return std::isnan(o.mtp_lambda_final) ? o.mtp_lambda : o.mtp_lambda_final; }

json options_json(const PretrainOptions& o) {
  return {{"batch", o.batch}, {"seq_len", o.seq_len}, {"accum", o.accum}, {"lr", o.lr}, {"min_lr_ratio", o.min_lr_ratio},
          {"clip", o.clip}, {"weight_decay", o.weight_decay}, {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps},
          {"warmup", o.warmup}, {"schedule", o.schedule}, {"steps", o.steps}, {"mtp_lambda", o.mtp_lambda},
          {"mtp_lambda_final", mtp_lambda_final(o)}, {"mtp_switch", o.mtp_switch},
          {"balance", o.balance}, {"gamma", o.gamma}, {"seq_alpha", o.seq_alpha}, {"aux_alpha", o.aux_alpha},
          {"fp8", o.fp8}, {"seed", o.seed}};
}

// The options a checkpoint was trained with; checkpoints written before the λ schedule existed had a
// constant λ (final = initial; the switch point then changes nothing, so it matches any).
json saved_options(json saved, const PretrainOptions& o) {
  if (saved.is_object() && !saved.contains("mtp_lambda_final") && saved.contains("mtp_lambda")) {
    saved["mtp_lambda_final"] = saved["mtp_lambda"];
    saved["mtp_switch"] = o.mtp_switch;
  }
  return saved;
}


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

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
}

void save_checkpoint(const std::string& out, const TrainModel& m, const std::vector<float>& mom,
                     const std::vector<float>& var, int64_t step, const LoaderState& ls, const PretrainOptions& o) {
  const std::string name = "ckpt-" + std::to_string(step);
  const fs::path tmp = fs::path(out) / (".tmp-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  m.save(tmp.string());
  const std::vector<int64_t> shape{int64_t(mom.size())};
  write_safetensors((tmp / "optim.safetensors").string(),
                    {{"exp_avg", DType::F32, shape, mom.data()}, {"exp_avg_sq", DType::F32, shape, var.data()}});
  json st = {{"step", step}, {"loader", to_json(ls)}, {"options", options_json(o)}};
  write_file_atomic((tmp / "state.json").string(), st.dump(2) + "\n");
  const fs::path final_dir = fs::path(out) / name;
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  write_file_atomic((fs::path(out) / "latest").string(), name + "\n");
  // Keep the two newest checkpoints.
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string f = e.path().filename().string();
    if (f.rfind("ckpt-", 0) == 0 && f != name) {
      const int64_t s = std::atoll(f.c_str() + 5);
      if (s + 2 * std::max<int64_t>(1, o.save_every) <= step) fs::remove_all(e.path());
    }
  }
}

}  // namespace

PretrainResult pretrain(const PretrainOptions& o, std::FILE* progress) {
  if (o.balance != "aux-free" && o.balance != "aux" && o.balance != "none")
    throw Error("--balance " + o.balance + ": expected aux-free, aux or none");
  if (o.steps < 1 || o.batch < 1 || o.seq_len < 2 || o.accum < 1) throw Error("pretrain: steps, batch, accum must be >= 1 and seq_len >= 2");
  if (!(o.mtp_lambda >= 0) || mtp_lambda_final(o) < 0)
    throw Error(strfmt("--mtp-lambda %g / --mtp-lambda-final %g: expected >= 0", o.mtp_lambda, mtp_lambda_final(o)));
  if (!(o.mtp_switch >= 0 && o.mtp_switch <= 1))
    throw Error(strfmt("--mtp-switch %g: expected a fraction of the steps in [0, 1]", o.mtp_switch));
  fs::create_directories(o.out);
  PretrainResult r;
  // The model: from the latest checkpoint, or created from the config.
  const fs::path latest = fs::path(o.out) / "latest";
  std::string ckpt;
  if (fs::exists(latest)) {
    std::ifstream in(latest);
    std::getline(in, ckpt);
    if (ckpt.empty() || !fs::exists(fs::path(o.out) / ckpt / "state.json"))
      throw Error(latest.string() + ": names \"" + ckpt + "\", which is not a complete checkpoint");
    r.resumed = true;
  } else {
    if (o.config.empty()) throw Error("pretrain: --config is required for a new run (no checkpoint in " + o.out + ")");
    write_random_checkpoint((fs::path(o.out) / "init").string(), read_json(o.config), {DType::F32, o.seed, 1});
  }
  const std::string model_dir = r.resumed ? (fs::path(o.out) / ckpt).string() : (fs::path(o.out) / "init").string();
  TrainModel m = TrainModel::from_checkpoint(model_dir);
  const Config& c = m.config();
  const int64_t n = int64_t(m.data().size());
  std::vector<float> mom(size_t(n), 0.f), var(size_t(n), 0.f);
  std::vector<uint8_t> decay(size_t(n), 0);
  for (const auto& p : m.params())
    if (p.decay) std::fill(decay.begin() + p.offset, decay.begin() + p.offset + p.numel, 1);

  DataLoader loader(manifest_shards(o.data, "train"), LoaderOptions{o.batch, o.seq_len, o.seed, true});
  std::unique_ptr<ValidationSet> val;
  try {
    val = std::make_unique<ValidationSet>(manifest_shards(o.data, "val"), o.batch, o.seq_len);
  } catch (const Error&) {
    val.reset();  // no validation split
  }
  int64_t step = 0;
  if (r.resumed) {
    const std::string dir = (fs::path(o.out) / ckpt).string();
    json st = read_json(dir + "/state.json");
    if (!st.contains("step") || !st.contains("loader")) throw Error(dir + "/state.json: missing step or loader");
    step = st["step"].get<int64_t>();
    if (st.contains("options") && saved_options(st["options"], o) != options_json(o))
      throw Error(dir + "/state.json: the checkpoint was trained with other options (" + st["options"].dump() +
                  "); resume with the same flags or use another --out");
    SafetensorsFile opt(dir + "/optim.safetensors");
    const TensorInfo* a = opt.find("exp_avg");
    const TensorInfo* b = opt.find("exp_avg_sq");
    if (!a || !b || a->numel() != n || b->numel() != n || a->dtype != DType::F32 || b->dtype != DType::F32)
      throw Error(dir + "/optim.safetensors: the optimizer state does not match the model (" + std::to_string(n) + " values)");
    std::memcpy(mom.data(), a->data, size_t(n) * 4);
    std::memcpy(var.data(), b->data, size_t(n) * 4);
    loader.restore(loader_state_from_json(st["loader"]));
    if (progress) std::fprintf(progress, "resuming %s at step %lld\n", dir.c_str(), (long long)step);
  }

  const double alpha = o.balance == "aux-free" ? o.seq_alpha : o.balance == "aux" ? o.aux_alpha : 0.0;
  const LossWeights lw{o.mtp_lambda, alpha};  // validation reports the main loss only: λ does not matter
  const Schedule sched{o.schedule, o.warmup, o.steps, o.min_lr_ratio, 0.2};
  const AdamWOptions ao{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay};
  auto validate = [&]() {
    if (!val || val->n_batches() == 0) return double(NAN);
    double sum = 0;
    const uint64_t nb = std::min<uint64_t>(val->n_batches(), uint64_t(o.eval_batches));
    for (uint64_t i = 0; i < nb; ++i) {
      Batch bt = val->batch(i);
      sum += m.loss(bt.tokens.data(), bt.B, bt.T, lw).main;
    }
    return sum / double(nb);
  };
  std::ofstream metrics(fs::path(o.out) / "metrics.jsonl", std::ios::app);
  if (step == 0) {
    r.first_val_loss = validate();
    metrics << json{{"step", 0}, {"val_loss", r.first_val_loss}}.dump() << "\n";
    metrics.flush();
  }
  // MFU's denominator: this machine's f32 GEMM peak, measured now (a short run: ~0.1 s on two cores)
  // and again at every log line, keeping the best: a peak measured while something else ran would
  // otherwise inflate every later MFU (a run started under load printed "MFU 83%" once alone).
  double peak = measure_sgemm_peak(1024, 2);
  const double flops_per_token = train_flops_per_token(c, o.seq_len);
  const std::string out_dir = o.out;
  auto plots = [&] {
    try {
      draw_pretrain_plots(out_dir);
    } catch (const Error& e) {  // a chart is not worth a training run
      if (progress) std::fprintf(progress, "warning: plots not drawn: %s\n", e.what());
    }
  };
  std::vector<float> gacc(static_cast<size_t>(n));
  m.set_fp8(o.fp8);
  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  int64_t window_tokens = 0, run_steps = 0;
  double window_secs = 0;  // training compute since the last log line (no validation, no checkpoints)
  LoadWindow window;
  while (step < o.steps) {
    ++step;
    ++run_steps;
    const auto t_step = clock::now();
    const double lambda = mtp_lambda_at(o, step);
    const LossWeights step_weights{lambda, alpha};
    std::fill(gacc.begin(), gacc.end(), 0.f);
    LossParts lp{};
    for (int64_t a = 0; a < o.accum; ++a) {
      Batch bt = loader.next();
      LossParts l = m.forward_backward(bt.tokens.data(), bt.B, bt.T, step_weights);
      window.add(m.expert_load());
      for (int64_t i = 0; i < n; ++i) gacc[size_t(i)] += m.grad()[size_t(i)] / float(o.accum);
      lp.total += l.total / double(o.accum);
      lp.main += l.main / double(o.accum);
      lp.mtp += l.mtp / double(o.accum);
      lp.balance += l.balance / double(o.accum);
      window_tokens += bt.B * bt.T;
    }
    const double gnorm = clip_grad_norm(gacc.data(), n, o.clip);
    const double lr = o.lr * lr_multiplier(sched, step);
    adamw_step(m.data().data(), gacc.data(), mom.data(), var.data(), decay.data(), n, step, lr, ao);
    if (o.balance == "aux-free" && c.n_routed_experts > 0) m.update_routing_bias(o.gamma);
    window_secs += std::chrono::duration<double>(clock::now() - t_step).count();
    const bool eval_now = o.eval_every > 0 && (step % o.eval_every == 0 || step == o.steps);
    double vl = NAN;
    if (eval_now) r.last_val_loss = vl = validate();
    if (step % std::max<int64_t>(1, o.log_every) == 0 || step == o.steps || eval_now) {
      const double secs = std::chrono::duration<double>(clock::now() - t_start).count();
      const double tps = double(window_tokens) / std::max(window_secs, 1e-9);
      peak = std::max(peak, measure_sgemm_peak(1024, 1));
      const double mfu = tps * flops_per_token / peak;
      const double eta = secs / double(run_steps) * double(o.steps - step);
      double worst = 0;
      int64_t worst_layer = -1, dead = 0;
      const json per_layer = window.summary(worst, worst_layer, dead);
      json line = {{"step", step}, {"loss", lp.total}, {"loss_main", lp.main}, {"loss_mtp", lp.mtp},
                   {"loss_balance", lp.balance}, {"mtp_lambda", lambda}, {"lr", lr}, {"grad_norm", gnorm},
                   {"tokens_per_s", tps}, {"mfu", mfu}, {"gemm_peak_gflops", peak / 1e9},
                   {"train_flops_per_token", flops_per_token}};
      if (worst_layer >= 0) {
        line["max_over_mean_load"] = worst;
        line["dead_experts"] = dead;
        line["expert_load"] = per_layer;
      }
      if (eval_now) line["val_loss"] = vl;
      metrics << line.dump() << "\n";
      metrics.flush();
      if (progress)
        std::fprintf(progress,
                     "step %lld/%lld | loss %.4f (main %.4f, mtp %.4f, λ %.2f) | val %s | %.0f tok/s, MFU %.1f%% | %s | "
                     "lr %.2e | ETA %s\n",
                     (long long)step, (long long)o.steps, lp.total, lp.main, lp.mtp, lambda,
                     eval_now ? strfmt("%.4f", vl).c_str() : "-", tps, 100 * mfu,
                     worst_layer >= 0 ? strfmt("load max/mean %.2f (layer %lld), dead %lld", worst, (long long)worst_layer,
                                               (long long)dead).c_str()
                                      : "dense",
                     lr, format_duration(eta).c_str());
      window.reset();
      window_tokens = 0;
      window_secs = 0;
    }
    const bool stop_now = o.stop_after > 0 && run_steps >= o.stop_after;
    if ((o.save_every > 0 && step % o.save_every == 0) || step == o.steps || stop_now) {
      save_checkpoint(o.out, m, mom, var, step, loader.state(), o);
      plots();
    }
    if (stop_now) break;
  }
  if (step == o.steps && run_steps == 0) plots();  // an already finished run: draw what it logged
  r.step = step;
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
