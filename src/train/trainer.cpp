// trainer.cpp — see trainer.h.
#include "train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/loader.h"
#include "model/random_checkpoint.h"
#include "model/safetensors.h"
#include "train/grad_ops.h"
#include "train/optimizer.h"
#include "train/train_model.h"
#include "util/error.h"

namespace seek::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

json options_json(const PretrainOptions& o) {
  return {{"batch", o.batch}, {"seq_len", o.seq_len}, {"accum", o.accum}, {"lr", o.lr}, {"min_lr_ratio", o.min_lr_ratio},
          {"clip", o.clip}, {"weight_decay", o.weight_decay}, {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps},
          {"warmup", o.warmup}, {"schedule", o.schedule}, {"steps", o.steps}, {"mtp_lambda", o.mtp_lambda},
          {"balance", o.balance}, {"gamma", o.gamma}, {"seq_alpha", o.seq_alpha}, {"aux_alpha", o.aux_alpha},
          {"fp8", o.fp8}, {"seed", o.seed}};
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
    if (st.contains("options") && st["options"] != options_json(o))
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
  const LossWeights lw{o.mtp_lambda, alpha};
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
  }
  std::vector<float> gacc(static_cast<size_t>(n));
  // FP8 simulation for this run's GEMMs; restored on every way out.
  struct Fp8Scope {
    bool before;
    explicit Fp8Scope(bool on) : before(fp8_simulation()) { set_fp8_simulation(on); }
    ~Fp8Scope() { set_fp8_simulation(before); }
  } fp8_scope(o.fp8);
  const auto t_start = std::chrono::steady_clock::now();
  int64_t tokens = 0, run_steps = 0;
  while (step < o.steps) {
    ++step;
    ++run_steps;
    std::fill(gacc.begin(), gacc.end(), 0.f);
    LossParts lp{};
    for (int64_t a = 0; a < o.accum; ++a) {
      Batch bt = loader.next();
      LossParts l = m.forward_backward(bt.tokens.data(), bt.B, bt.T, lw);
      for (int64_t i = 0; i < n; ++i) gacc[size_t(i)] += m.grad()[size_t(i)] / float(o.accum);
      lp.total += l.total / double(o.accum);
      lp.main += l.main / double(o.accum);
      lp.mtp += l.mtp / double(o.accum);
      lp.balance += l.balance / double(o.accum);
      tokens += bt.B * bt.T;
    }
    const double gnorm = clip_grad_norm(gacc.data(), n, o.clip);
    const double lr = o.lr * lr_multiplier(sched, step);
    adamw_step(m.data().data(), gacc.data(), mom.data(), var.data(), decay.data(), n, step, lr, ao);
    const TrainModel::BalanceStats bs =
        o.balance == "aux-free" && c.n_routed_experts > 0 ? m.update_routing_bias(o.gamma) : m.balance_stats();
    const bool eval_now = o.eval_every > 0 && (step % o.eval_every == 0 || step == o.steps);
    double vl = NAN;
    if (eval_now) r.last_val_loss = vl = validate();
    if (step % std::max<int64_t>(1, o.log_every) == 0 || step == o.steps || eval_now) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      const double tps = double(tokens) / std::max(secs, 1e-9);
      const double eta = secs / double(run_steps) * double(o.steps - step);
      json line = {{"step", step}, {"loss", lp.total}, {"loss_main", lp.main}, {"loss_mtp", lp.mtp},
                   {"loss_balance", lp.balance}, {"lr", lr}, {"grad_norm", gnorm}, {"tokens_per_s", tps},
                   {"max_over_mean_load", bs.max_over_mean}, {"dead_experts", bs.dead}};
      if (eval_now) line["val_loss"] = vl;
      metrics << line.dump() << "\n";
      metrics.flush();
      if (progress)
        std::fprintf(progress,
                     "step %lld/%lld | loss %.4f (main %.4f, mtp %.4f) | val %s | %.0f tok/s | imbalance %.2f, dead %lld | "
                     "lr %.2e | ETA %.0fs\n",
                     (long long)step, (long long)o.steps, lp.total, lp.main, lp.mtp,
                     eval_now ? strfmt("%.4f", vl).c_str() : "-", tps, bs.max_over_mean, (long long)bs.dead, lr, eta);
    }
    const bool stop_now = o.stop_after > 0 && run_steps >= o.stop_after;
    if ((o.save_every > 0 && step % o.save_every == 0) || step == o.steps || stop_now)
      save_checkpoint(o.out, m, mom, var, step, loader.state(), o);
    if (stop_now) break;
  }
  r.step = step;
  return r;
}

}  // namespace seek::train
