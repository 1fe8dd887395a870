// trainer.cpp — see trainer.h.
#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "model/safetensors.h"
#include "model/weights.h"
#include "tensor/kernels.h"
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


// A 64-bit digest of the bits of x[0, n) (ranks compare their parameters' at every checkpoint).
uint64_t digest(const std::vector<float>& x, int64_t n) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ uint64_t(n);
  const auto* w = reinterpret_cast<const uint32_t*>(x.data());
  for (int64_t i = 0; i < n; ++i) h = (h ^ w[i]) * 0x100000001b3ull + (h >> 29);
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
  model_ = std::make_unique<TrainModel>(TrainModel::from_checkpoint(resumed_ ? ckpt : initial, obj.experts()));
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
    read_moments(ckpt);
    obj_.restore(st.value("objective", json::object()), ckpt);
  } else if (lead()) {
    std::ofstream(fs::path(o.out) / "metrics.jsonl", std::ios::trunc);  // a new run's metrics start empty
  }
}

Trainer::~Trainer() = default;

// optim.safetensors holds each parameter's moments as "exp_avg.<name>" and "exp_avg_sq.<name>" (f32, its
// shape), so that a rank reads the ones it holds. Checkpoints written before that hold two flat arrays,
// "exp_avg" and "exp_avg_sq", with every tensor in the table's order; they resume too.
void Trainer::read_moments(const std::string& ckpt) {
  const std::string path = ckpt + "/optim.safetensors";
  SafetensorsFile opt(path);
  const TensorInfo* flat_m = opt.find("exp_avg");
  const TensorInfo* flat_v = opt.find("exp_avg_sq");
  if (flat_m || flat_v) {
    std::map<std::string, int64_t> at;
    int64_t n = 0;
    for (const TensorSpec& t : expected_tensors(model_->config())) at[t.name] = n, n += t.numel();
    for (const TensorInfo* t : {flat_m, flat_v})
      if (!t || t->dtype != DType::F32 || t->numel() != n)
        throw Error(path + strfmt(": the flat moments \"exp_avg\" and \"exp_avg_sq\" must be F32 with %lld values, one "
                                  "per parameter: the optimizer state does not match the model", (long long)n));
    for (const auto& p : model_->params())
      for (auto [t, dst] : {std::pair{flat_m, &m_}, std::pair{flat_v, &v_}})
        std::memcpy(dst->data() + p.offset, static_cast<const float*>(t->data) + at.at(p.name),
                    size_t(p.numel) * sizeof(float));
    return;
  }
  for (const auto& p : model_->params())
    for (auto [prefix, dst] : {std::pair{"exp_avg.", &m_}, std::pair{"exp_avg_sq.", &v_}}) {
      const std::string name = prefix + p.name;
      const TensorInfo* t = opt.find(name);
      if (!t || t->dtype != DType::F32 || t->shape != p.shape)
        throw Error(path + ": no F32 tensor \"" + name + "\" of the parameter's shape: the optimizer state does not "
                    "match the model");
      std::memcpy(dst->data() + p.offset, t->data, size_t(p.numel) * sizeof(float));
    }
}

void Trainer::log(const json& line) {
  if (!lead()) return;
  std::ofstream out(fs::path(o_.out) / "metrics.jsonl", std::ios::app);
  out << line.dump() << "\n";
  if (!out) throw Error((fs::path(o_.out) / "metrics.jsonl").string() + ": cannot write");
}

void Trainer::save_checkpoint() {
  if (comm_->size() > 1) {
    // Every rank took the same steps on the same summed gradients: their parameters must be equal (all
    // but the experts, when each rank holds its own).
    const TrainModel& m = *model_;
    uint64_t mine = digest(m.data(), m.experts().all() ? int64_t(m.data().size()) : m.replicated());
    uint64_t lead_digest = mine;
    comm_->broadcast(&lead_digest, sizeof lead_digest, 0);
    int64_t differ = mine != lead_digest;
    comm_->all_reduce_sum(std::span<int64_t>(&differ, 1));
    if (differ)
      throw Error(o_.name + strfmt(": at step %lld the parameters of %lld rank(s) differ from rank 0's (ranks must "
                                   "run the same build with the same thread count)", (long long)step_, (long long)differ));
  }
  write_checkpoint();
  comm_->barrier();  // no rank goes on before the checkpoint is complete
}

// On every rank (the experts' tensors come from the ranks that hold them); rank 0 writes.
void Trainer::write_checkpoint() {
  const std::string name = "ckpt-" + std::to_string(step_);
  const fs::path tmp = fs::path(o_.out) / (".tmp-" + name + "-" + std::to_string(::getpid()));
  if (lead()) {
    fs::remove_all(tmp);
    fs::create_directories(tmp);
  }
  model_->save(tmp.string(), *comm_);
  // The moments, gathered like the parameters: all exp_avg, then all exp_avg_sq.
  TrainModel::Gather gm(*model_, *comm_, m_), gv(*model_, *comm_, v_);
  const size_t n = gm.tensors().size();
  auto moment = [&](size_t i) { return static_cast<const void*>(i < n ? gm.tensor(i) : gv.tensor(i - n)); };
  if (!lead()) {
    for (size_t i = 0; i < 2 * n; ++i) moment(i);
    return;
  }
  std::vector<TensorMeta> meta;
  for (const char* prefix : {"exp_avg.", "exp_avg_sq."})
    for (const TensorSpec& t : gm.tensors()) meta.push_back({prefix + t.name, DType::F32, t.shape});
  write_safetensors_streamed((tmp / "optim.safetensors").string(), meta, moment);
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
    // The part every rank holds is summed over the ranks; a rank's own experts have their whole gradient.
    const int64_t summed = m.experts().all() ? n : m.replicated();
    if (ranks > 1) {
      const auto t_comm = Clock::now();
      comm_->all_reduce_sum(std::span<float>(m.grad().data(), size_t(summed)));
      window_comm += since(t_comm);
    }
    double gnorm;
    if (summed < n) {  // with the squares of the other ranks' experts
      double experts = sum_squares(m.grad().data() + summed, n - summed);
      comm_->all_reduce_sum(std::span<double>(&experts, 1));
      gnorm = std::sqrt(sum_squares(m.grad().data(), summed) + experts);
    } else {
      gnorm = grad_norm(m.grad().data(), n);
    }
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
