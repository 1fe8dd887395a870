// trainer.h — the one training loop of seek, for every objective: pretraining (train/pretrain.h),
// distillation's SFT (distill/sft.h) and GRPO (rl/grpo.h). Each step the objective sets the model's
// gradient (one forward/backward or several accumulated); the loop clips it to a global norm, takes an
// AdamW step at the scheduled learning rate, logs metrics and a progress line, and writes checkpoints
// from which a stopped or killed run resumes exactly.
//
// A run lives in a directory: metrics.jsonl (one JSON object per logged step: step, loss, lr,
// grad_norm, tokens_per_s and mfu over the steps since the previous line (training compute only, not
// validation or checkpoints), gemm_peak_gflops, seconds, and the objective's fields), ckpt-<step>/
// (config.json + model.safetensors, loadable by Model::load; optim.safetensors, the AdamW moments;
// state.json: step, the run's wall time so far, the options, the objective's state; and any files the
// objective keeps) and `latest`, naming the newest complete checkpoint. A checkpoint is written into a
// temporary directory and renamed into place, then `latest` is rewritten atomically, so a run killed at
// any moment resumes from the last complete one; the two newest are kept. A run started in a
// directory that has a checkpoint resumes from it — only with the same options — and reaches bit for
// bit the same parameters as one that never stopped (same thread count).
//
// MFU = the objective's training FLOPs per second over the log interval / this machine's f32 GEMM
// peak, measured at the start and again at every log line, the best kept (a peak measured while
// something else ran would otherwise inflate every later MFU).
//
// Data parallelism (util/comm.h): under `mpiexec -n N`, every rank runs this loop on the same
// parameters. The objective computes its rank's share of the step's gradient (Objective::data_parallel);
// the loop sums the shares over the ranks (deterministically, in rank order), so every rank takes the
// same AdamW step and the parameters stay bit for bit equal (checked at every checkpoint: an Error names
// the step when they are not). Rank 0 alone writes metrics, checkpoints and plots and prints progress;
// the others wait for each checkpoint. Rank 0's clock decides the wall-time budget for all. tokens_per_s
// is the group's; MFU divides by N times one rank's measured GEMM peak. metrics also get comm_fraction,
// the share of the interval spent summing gradients. A checkpoint holds no rank count: a run resumes
// under another N (the objective decides whether it can split its batch that way).
//
// Expert parallelism (Objective::experts): each rank holds, updates and keeps AdamW moments for only its
// share of the routed experts (train_model.h), whose gradient it computed whole; the sum over the ranks
// covers the rest of the arena, the gradient norm adds the experts' squares over the ranks, and the
// ranks must agree on that rest. A checkpoint is the whole model all the same (rank 0 writes it, each
// expert's tensors sent by its rank), so a run resumes under any N, with or without the experts spread.
//
// Does not: overlap of the gradient sum with the backward pass.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/optimizer.h"
#include "util/comm.h"
#include "train/train_model.h"

namespace seek::train {

struct TrainOptions {
  std::string out;          // the run directory
  std::string name = "train";  // the progress line's first word
  int64_t steps = 100;      // optimizer steps
  double lr = 1e-3;         // peak learning rate
  Schedule schedule;        // warmup, then cosine / wsd / constant; total = steps
  AdamWOptions adamw;       // betas, eps, weight decay (AdamWOptions::lr is unused: lr and schedule decide)
  double clip = 1.0;        // global gradient norm limit (0: none)
  bool fp8 = false;         // simulate FP8 GEMM inputs (DeepSeek-V3 §3.3; nn/pass.h)
  int64_t save_every = 50;  // checkpoint interval in steps (the last step is always saved)
  int64_t log_every = 10;   // metrics interval in steps (the first and the last are always logged)
  double max_seconds = 0;   // wall-time budget over all resumes: no step starts after it (0: none)
  int64_t stop_after = 0;   // stop, with a checkpoint, after this many steps of this run (tests of resume)
  Communicator* comm = nullptr;  // the data-parallel group; null: world() (one process unless under mpiexec)
};

// What the objective did in one step.
struct StepReport {
  double loss = 0;          // the step's loss (metrics "loss")
  int64_t tokens = 0;       // positions trained on (tokens/s)
  double flops = 0;         // model FLOPs spent (MFU)
  nlohmann::json metrics = nlohmann::json::object();  // more fields for this step's metrics line
  std::string progress;     // the objective's part of the progress line
  bool log = false;         // force a metrics line at this step (e.g. a validation result)
};

// What a run optimizes; the loop does the rest.
class Objective {
 public:
  virtual ~Objective() = default;
  // Sets m.grad() to the gradient of step `step` (1-based) at the current parameters.
  virtual StepReport step(TrainModel& m, int64_t step) = 0;
  // After the update of step `step`; `logging` says the step gets a metrics line: add to report what
  // it should say (a validation loss, statistics since the previous line).
  virtual void after_update(TrainModel& m, int64_t step, bool logging, StepReport& report) {}
  // The objective's options: a checkpoint resumes only a run whose options are equal.
  virtual nlohmann::json options() const = 0;
  // State beyond the model and the optimizer (a data position, a sampling order), and files kept in
  // every checkpoint directory (a reference model, the tokenizer).
  virtual nlohmann::json state() const { return nlohmann::json::object(); }
  virtual void restore(const nlohmann::json& state, const std::string& checkpoint) {}
  virtual void save_files(const std::string& checkpoint) const {}
  // Whether step() runs on a group of ranks: each sets m.grad() to its share, so that the sum over the
  // ranks is the step's gradient, and returns the report of the whole step. One that does not runs in
  // one process only (the loop refuses a larger group).
  virtual bool data_parallel() const { return false; }
  // The routed experts this rank trains (expert parallelism: its share; the others' are not in its
  // model at all); every expert by default.
  virtual ExpertRange experts() const { return {}; }
  // Charts, redrawn from the run's metrics at every checkpoint.
  virtual void plot(const std::string& out) const {}
};

class Trainer {
 public:
  // Opens the run in o.out: from its latest checkpoint (the options must be equal: an Error names the
  // difference otherwise) or, when it has none, from the model directory `initial`.
  Trainer(const TrainOptions& o, Objective& obj, const std::string& initial);
  ~Trainer();

  TrainModel& model() { return *model_; }
  bool resumed() const { return resumed_; }
  int64_t step() const { return step_; }
  double seconds() const { return seconds_; }  // wall time of the loop, over all resumes
  bool stopped_by_time() const { return stopped_by_time_; }

  // Appends one line to metrics.jsonl (e.g. the validation loss before the first step).
  void log(const nlohmann::json& line);
  // Runs the steps left (or until the time budget or stop_after), with a checkpoint at the end.
  void run(std::FILE* progress);

 private:
  void save_checkpoint();  // on every rank: checks that they agree, then rank 0 writes
  void write_checkpoint();
  bool lead() const { return comm_->rank() == 0; }

  TrainOptions o_;
  Objective& obj_;
  Communicator* comm_;
  std::unique_ptr<TrainModel> model_;
  std::vector<float> m_, v_;   // AdamW moments, the arena's layout
  void read_moments(const std::string& ckpt);
  std::vector<uint8_t> decay_;
  int64_t step_ = 0;
  double seconds_ = 0;
  bool resumed_ = false, stopped_by_time_ = false;
  nlohmann::json run_options_;
};

// The checkpoint directory out/latest names ("" when there is none); throws Error when it names one
// that is not complete.
std::string latest_checkpoint(const std::string& out);
// Whether `out` holds a checkpoint that a run with these options would resume (false: none, or one
// trained with other options).
bool can_resume(const std::string& out, const TrainOptions& o, const Objective& obj);

}  // namespace seek::train
