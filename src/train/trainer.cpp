// trainer.cpp — see trainer.h.
#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/safetensors.h"
#include "tensor/roofline.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/json_file.h"
#include "util/progress.h"

namespace seek::train {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// What a checkpoint must share with the run that resumes it: everything that changes the arithmetic.
json options_json(const TrainOptions& o, const Objective& obj) {
  return {{"steps", o.steps},
          {"lr", o.lr},
          {"schedule", o.schedule.kind},
          {"warmup", o.schedule.warmup},
          {"min_lr_ratio", o.schedule.min_ratio},
          {"decay_fraction", o.schedule.decay_fraction},
          {"beta1", o.adamw.beta1},
          {"beta2", o.adamw.beta2},
          {"eps", o.adamw.eps},
          {"weight_decay", o.adamw.weight_decay},
          {"clip", o.clip},
          {"fp8", o.fp8},
          {"objective", obj.options()}};
}


// A 64-bit digest of the parameters' bits (ranks compare theirs at every checkpoint).
uint64_t digest(const std::vector<float>& x) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ x.size();
  const auto* w = reinterpret_cast<const uint32_t*>(x.data());
  for (size_t i = 0; i < x.size(); ++i) h = (h ^ w[i]) * 0x100000001b3ull + (h >> 29);
  return h;
}

}  // namespace

std::string latest_checkpoint(const std::string& out) {
  const fs::path latest = fs::path(out) / "latest";
  if (!fs::exists(latest)) return "";
  std::ifstream in(latest);
  std::string name;
  std::getline(in, name);
  if (name.empty() || !fs::exists(fs::path(out) / name / "state.json"))
    throw Error(latest.string() + ": names \"" + name + "\", which is not a complete checkpoint");
  return (fs::path(out) / name).string();
}

bool can_resume(const std::string& out, const TrainOptions& o, const Objective& obj) {
  const std::string ckpt = latest_checkpoint(out);
  if (ckpt.empty()) return false;
  const json st = read_json_file(ckpt + "/state.json");
  return st.contains("options") && st["options"] == options_json(o, obj);
}

Trainer::Trainer(const TrainOptions& o, Objective& obj, const std::string& initial)
    : o_(o), obj_(obj), comm_(&or_world(o.comm)) {
  if (comm_->size() > 1 && !obj.data_parallel())
    throw Error(o.name + strfmt(": runs in one process only, not on %d ranks (data parallelism: seek pretrain)",
                                comm_->size()));
  if (o.steps < 1) throw Error(o.name + ": steps must be at least 1");
  if (!(o.lr > 0)) throw Error(o.name + strfmt(": the learning rate %g must be positive", o.lr));
  if (o.max_seconds < 0) throw Error(o.name + ": the wall-time budget must not be negative");
  fs::create_directories(o.out);
  run_options_ = options_json(o, obj);
  const std::string ckpt = latest_checkpoint(o.out);
  resumed_ = !ckpt.empty();
  json st;
  if (resumed_) {
    st = read_json_file(ckpt + "/state.json");
    if (!st.contains("step") || !st.contains("options") || !st.contains("seconds"))
      throw Error(ckpt + "/state.json: missing step, seconds or options");
    if (st["options"] != run_options_)
      throw Error(ckpt + "/state.json: the checkpoint was trained with other options (" + st["options"].dump() +
                  "); resume with the same flags or use another --out");
  }
  model_ = std::make_unique<TrainModel>(TrainModel::from_checkpoint(resumed_ ? ckpt : initial));
  model_->set_fp8(o.fp8);
  const int64_t n = int64_t(model_->data().size());
  m_.assign(size_t(n), 0.f);
  v_.assign(size_t(n), 0.f);
  decay_.assign(size_t(n), 0);
  for (const auto& p : model_->params())
    if (p.decay) std::fill(decay_.begin() + p.offset, decay_.begin() + p.offset + p.numel, 1);
  if (resumed_) {
    step_ = st["step"].get<int64_t>();
    seconds_ = st["seconds"].get<double>();
    SafetensorsFile opt(ckpt + "/optim.safetensors");
    const TensorInfo* a = opt.find("exp_avg");
    const TensorInfo* b = opt.find("exp_avg_sq");
    if (!a || !b || a->numel() != n || b->numel() != n || a->dtype != DType::F32 || b->dtype != DType::F32)
      throw Error(ckpt + "/optim.safetensors: the optimizer state does not match the model (" + std::to_string(n) +
                  " values)");
    std::memcpy(m_.data(), a->data, size_t(n) * 4);
    std::memcpy(v_.data(), b->data, size_t(n) * 4);
    obj_.restore(st.value("objective", json::object()), ckpt);
  } else if (lead()) {
    std::ofstream(fs::path(o.out) / "metrics.jsonl", std::ios::trunc);  // a new run's metrics start empty
  }
}

Trainer::~Trainer() = default;

void Trainer::log(const json& line) {
  if (!lead()) return;
  std::ofstream out(fs::path(o_.out) / "metrics.jsonl", std::ios::app);
  out << line.dump() << "\n";
  if (!out) throw Error((fs::path(o_.out) / "metrics.jsonl").string() + ": cannot write");
}

void Trainer::save_checkpoint() {
  if (comm_->size() > 1) {
    // Every rank took the same steps on the same summed gradients: their parameters must be equal.
    uint64_t mine = digest(model_->data()), lead_digest = mine;
    comm_->broadcast(&lead_digest, sizeof lead_digest, 0);
    int64_t differ = mine != lead_digest;
    comm_->all_reduce_sum(std::span<int64_t>(&differ, 1));
    if (differ)
      throw Error(o_.name + strfmt(": at step %lld the parameters of %lld rank(s) differ from rank 0's (ranks must "
                                   "run the same build with the same thread count)", (long long)step_, (long long)differ));
  }
  if (lead()) write_checkpoint();
  comm_->barrier();  // no rank goes on before the checkpoint is complete
}

void Trainer::write_checkpoint() {
  const std::string name = "ckpt-" + std::to_string(step_);
  const fs::path tmp = fs::path(o_.out) / (".tmp-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  model_->save(tmp.string());
  const std::vector<int64_t> shape{int64_t(m_.size())};
  write_safetensors((tmp / "optim.safetensors").string(),
                    {{"exp_avg", DType::F32, shape, m_.data()}, {"exp_avg_sq", DType::F32, shape, v_.data()}});
  const json st = {{"step", step_}, {"seconds", seconds_}, {"options", run_options_}, {"objective", obj_.state()}};
  write_file_atomic((tmp / "state.json").string(), st.dump(2) + "\n");
  obj_.save_files(tmp.string());
  const fs::path final_dir = fs::path(o_.out) / name;
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  write_file_atomic((fs::path(o_.out) / "latest").string(), name + "\n");
  // Keep the two newest checkpoints.
  std::vector<int64_t> steps;
  for (const auto& e : fs::directory_iterator(o_.out)) {
    const std::string f = e.path().filename().string();
    if (f.rfind("ckpt-", 0) == 0 && f.find_first_not_of("0123456789", 5) == std::string::npos && f.size() > 5)
      steps.push_back(std::stoll(f.substr(5)));
  }
  std::sort(steps.rbegin(), steps.rend());
  for (size_t i = 2; i < steps.size(); ++i) fs::remove_all(fs::path(o_.out) / ("ckpt-" + std::to_string(steps[i])));
  try {
    obj_.plot(o_.out);
  } catch (const Error& e) {  // a chart is not worth a training run
    std::fprintf(stderr, "warning: plots not drawn: %s\n", e.what());
  }
}

void Trainer::run(std::FILE* progress) {
  TrainModel& m = *model_;
  const int64_t n = int64_t(m.data().size());
  Schedule sched = o_.schedule;
  sched.total = o_.steps;
  const int ranks = comm_->size();
  if (!lead()) progress = nullptr;
  double peak = lead() ? measure_sgemm_peak(1024, 2) : 0;
  const auto t_run = Clock::now();
  const double seconds_before = seconds_;
  int64_t run_steps = 0, saved = -1;
  int64_t window_tokens = 0;
  double window_flops = 0, window_secs = 0, window_comm = 0;
  if (step_ >= o_.steps) {  // an already finished run: draw what it logged
    try {
      if (lead()) obj_.plot(o_.out);
    } catch (const Error&) {
    }
    return;
  }
  while (step_ < o_.steps) {
    seconds_ = seconds_before + since(t_run);
    if (ranks > 1 && o_.max_seconds > 0) comm_->broadcast(&seconds_, sizeof seconds_, 0);  // rank 0's clock decides
    if (o_.max_seconds > 0 && step_ > 0 && seconds_ >= o_.max_seconds) {
      stopped_by_time_ = true;
      if (progress)
        std::fprintf(progress, "%s: wall-time budget of %.0f s reached after %lld of %lld steps\n", o_.name.c_str(),
                     o_.max_seconds, (long long)step_, (long long)o_.steps);
      break;
    }
    ++step_;
    ++run_steps;
    const auto t_step = Clock::now();
    StepReport r = obj_.step(m, step_);
    if (ranks > 1) {
      const auto t_comm = Clock::now();
      comm_->all_reduce_sum(m.grad());
      window_comm += since(t_comm);
    }
    const double gnorm = grad_norm(m.grad().data(), n);
    const double lr = o_.lr * lr_multiplier(sched, step_);
    adamw_step(m.data().data(), m.grad().data(), m_.data(), v_.data(), decay_.data(), n, step_, lr, o_.adamw,
               clip_factor(gnorm, o_.clip));
    window_secs += since(t_step);
    window_tokens += r.tokens;
    window_flops += r.flops;
    const bool stop_now = o_.stop_after > 0 && run_steps >= o_.stop_after;
    const bool logging = step_ == 1 || step_ % std::max<int64_t>(1, o_.log_every) == 0 || step_ == o_.steps || r.log;
    obj_.after_update(m, step_, logging, r);
    seconds_ = seconds_before + since(t_run);
    if (logging || r.log) {
      const double tps = double(window_tokens) / std::max(window_secs, 1e-9);
      if (lead()) peak = std::max(peak, measure_sgemm_peak(1024, 1));
      const double mfu = window_flops / std::max(window_secs, 1e-9) / (peak * ranks);
      json line = {{"step", step_},       {"loss", r.loss},     {"lr", lr},   {"grad_norm", gnorm},
                   {"tokens_per_s", tps}, {"mfu", mfu},         {"gemm_peak_gflops", peak / 1e9},
                   {"seconds", seconds_}};
      if (ranks > 1) line["comm_fraction"] = window_comm / std::max(window_secs, 1e-9);
      line.update(r.metrics);
      log(line);
      if (progress) {
        double eta = (seconds_ - seconds_before) / double(run_steps) * double(o_.steps - step_);
        if (o_.max_seconds > 0) eta = std::min(eta, std::max(0.0, o_.max_seconds - seconds_));
        std::fprintf(progress, "%s step %lld/%lld | %s | lr %.2e | %.0f tok/s, MFU %.1f%% | ETA %s\n", o_.name.c_str(),
                     (long long)step_, (long long)o_.steps, r.progress.c_str(), lr, tps, 100 * mfu,
                     format_duration(eta).c_str());
        std::fflush(progress);
      }
      window_tokens = 0;
      window_flops = 0;
      window_secs = 0;
      window_comm = 0;
    }
    if ((o_.save_every > 0 && step_ % o_.save_every == 0) || step_ == o_.steps || stop_now) {
      save_checkpoint();
      saved = step_;
    }
    if (stop_now) return;
  }
  if (saved != step_) save_checkpoint();
}

}  // namespace seek::train
