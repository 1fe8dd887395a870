// sft.cpp — see sft.h.
#include "distill/sft.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/tokenizer.h"
#include "train/flops.h"
#include "train/trainer.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/plot.h"
#include "util/rng.h"

namespace seek::distill {

namespace fs = std::filesystem;
using json = nlohmann::json;

SftBatch make_sft_batch(const std::vector<Trace>& traces, const std::vector<size_t>& which, int32_t pad_id) {
  if (which.empty()) throw Error("sft: an empty batch");
  SftBatch b;
  b.B = int64_t(which.size());
  int64_t longest = 0;
  for (size_t i : which) {
    if (i >= traces.size()) throw Error(strfmt("sft: batch names trace %zu of %zu", i, traces.size()));
    longest = std::max<int64_t>(longest, int64_t(traces[i].prompt.size() + traces[i].completion.size()));
  }
  b.T = std::max<int64_t>(1, longest - 1);
  b.ids.assign(size_t(b.B * (b.T + 1)), pad_id);     // [B, T+1]
  b.mask.assign(size_t(b.B * b.T), 0);               // [B, T]
  for (int64_t r = 0; r < b.B; ++r) {
    const Trace& t = traces[which[size_t(r)]];
    int32_t* row = b.ids.data() + r * (b.T + 1);
    std::copy(t.prompt.begin(), t.prompt.end(), row);
    std::copy(t.completion.begin(), t.completion.end(), row + t.prompt.size());
    const auto P = int64_t(t.prompt.size()), L = P + int64_t(t.completion.size());
    // Target t+1 in [P, L): positions t in [P-1, L-1). A trace with an empty prompt cannot predict its
    // first token (nothing precedes it).
    for (int64_t pos = std::max<int64_t>(0, P - 1); pos < L - 1; ++pos) b.mask[size_t(r * b.T + pos)] = 1;
  }
  for (uint8_t m : b.mask) b.completion_tokens += m;
  return b;
}

train::TokenObjective completion_objective(const SftBatch& batch, int64_t denominator) {
  train::TokenObjective obj;
  const SftBatch* b = &batch;
  obj.fn = [b, denominator](const float* logp, float* dlogp) {
    if (b->completion_tokens == 0) return 0.0;
    const double inv = 1.0 / double(denominator > 0 ? denominator : b->completion_tokens);
    double sum = 0;
    for (size_t i = 0; i < b->mask.size(); ++i)
      if (b->mask[i]) {
        sum += double(logp[i]);
        dlogp[i] = float(-inv);
      }
    return -sum * inv;
  };
  return obj;
}

namespace {

// The data order: one seeded permutation per epoch (SplitMix64 Fisher–Yates), consumed B at a time
// across epoch boundaries. Its state is (epoch, pos): the permutation follows from the seed.
class SftObjective final : public train::Objective {
 public:
  SftObjective(const SftOptions& o, const std::vector<Trace>& traces, int32_t pad, const Config& c, Communicator& comm)
      : o_(o), traces_(traces), pad_(pad), c_(c), comm_(comm) {
    reshuffle();
  }

  // Every rank draws the same batch and trains on its share of the rows, the loss divided by the whole
  // batch's completion tokens: the ranks' gradients sum to the batch's.
  bool data_parallel() const override { return true; }

  train::StepReport step(train::TrainModel& m, int64_t step) override {
    std::vector<size_t> which;
    while (int64_t(which.size()) < o_.batch) {
      if (pos_ == order_.size()) {
        ++epoch_;
        reshuffle();
        if (int64_t(traces_.size()) < o_.batch && !which.empty()) break;  // fewer traces than a batch: one pass
      }
      which.push_back(order_[pos_++]);
    }
    const SftBatch b = make_sft_batch(traces_, which, pad_);
    const size_t n = which.size(), N = size_t(comm_.size()), me = size_t(comm_.rank());
    const std::vector<size_t> mine(which.begin() + ptrdiff_t(n * me / N), which.begin() + ptrdiff_t(n * (me + 1) / N));
    double loss = 0;
    if (mine.empty()) {  // fewer rows than ranks: this rank's share of the gradient is zero
      std::fill(m.grad().begin(), m.grad().end(), 0.f);
    } else {
      const SftBatch part = N == 1 ? b : make_sft_batch(traces_, mine, pad_);
      const train::TokenObjective obj = completion_objective(part, b.completion_tokens);
      loss = m.forward_backward(part.ids.data(), part.B, part.T, {.mtp_lambda = 0, .balance_alpha = 0}, &obj).main;
    }
    comm_.all_reduce_sum(std::span<double>(&loss, 1));
    if (step == 1) first_loss = loss;
    last_loss = loss;
    completion_tokens += b.completion_tokens;
    window_completion_ += b.completion_tokens;
    train::StepReport r;
    r.loss = loss;
    r.tokens = b.B * b.T;
    r.flops = double(r.tokens) * train::train_flops_per_token(c_, b.T);
    return r;
  }

  void after_update(train::TrainModel&, int64_t, bool logging, train::StepReport& r) override {
    if (!logging) return;
    const double ep = double(epoch_) + double(pos_) / double(traces_.size());
    const double secs = std::max(1e-9, std::chrono::duration<double>(Clock::now() - t_window_).count());
    r.metrics = {{"epoch", ep},
                 {"completion_tokens", window_completion_},
                 {"completion_tokens_per_s", double(window_completion_) / secs}};
    r.progress = strfmt("epoch %.2f | loss %.4f | %.0f completion tok/s", ep, r.loss, double(window_completion_) / secs);
    window_completion_ = 0;
    t_window_ = Clock::now();
  }

  json options() const override {
    return {{"model", o_.model}, {"batch", o_.batch}, {"seed", o_.seed}, {"traces", int64_t(traces_.size())}};
  }
  json state() const override {
    return {{"epoch", epoch_}, {"pos", pos_}, {"completion_tokens", completion_tokens}, {"first_loss", first_loss},
            {"last_loss", last_loss}};
  }
  void restore(const json& st, const std::string& ckpt) override {
    try {
      epoch_ = st.at("epoch").get<int64_t>();
      reshuffle();
      pos_ = st.at("pos").get<size_t>();
      completion_tokens = st.at("completion_tokens").get<int64_t>();
      first_loss = st.at("first_loss").is_number() ? st.at("first_loss").get<double>() : NAN;
      last_loss = st.at("last_loss").is_number() ? st.at("last_loss").get<double>() : NAN;
    } catch (const json::exception& e) {
      throw Error(ckpt + "/state.json: the SFT state is incomplete: " + e.what());
    }
    if (pos_ > order_.size()) throw Error(ckpt + "/state.json: the data position is past the epoch");
  }
  void plot(const std::string& out) const override { draw_loss(out); }

  double first_loss = NAN, last_loss = NAN;
  int64_t completion_tokens = 0;

 private:
  using Clock = std::chrono::steady_clock;
  void reshuffle() {
    order_.resize(traces_.size());
    for (size_t i = 0; i < order_.size(); ++i) order_[i] = i;
    SplitMix64 rng(mix64(o_.seed, uint64_t(epoch_)));
    for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[size_t(rng.below(i))]);
    pos_ = 0;
  }
  static void draw_loss(const std::string& dir) {
    const plot::Columns m = plot::drop_superseded(plot::read_jsonl((fs::path(dir) / "metrics.jsonl").string()), "step");
    plot::Chart c;
    c.title = "Distillation SFT loss (completion tokens only)";
    c.x_label = "step";
    c.y_label = "cross-entropy (nats/token)";
    c.add_series("train batch", m.get("step"), m.get("loss"));
    c.write_svg((fs::path(dir) / "loss.svg").string());
  }

  const SftOptions& o_;
  const std::vector<Trace>& traces_;
  int32_t pad_;
  const Config& c_;
  Communicator& comm_;
  std::vector<size_t> order_;
  int64_t epoch_ = 0;
  size_t pos_ = 0;
  int64_t window_completion_ = 0;
  Clock::time_point t_window_ = Clock::now();
};

json options_json(const SftOptions& o) {
  return {{"model", o.model}, {"tokenizer", o.tokenizer.empty() ? o.model : o.tokenizer}, {"steps", o.steps},
          {"epochs", o.epochs}, {"batch", o.batch}, {"lr", o.lr}, {"min_lr_ratio", o.min_lr_ratio}, {"clip", o.clip},
          {"weight_decay", o.weight_decay}, {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps},
          {"warmup", o.warmup}, {"max_seconds", o.max_seconds}, {"seed", o.seed}};
}

}  // namespace

SftResult sft(const SftOptions& o, const std::vector<Trace>& all_traces, std::FILE* progress) {
  using clock = std::chrono::steady_clock;
  const auto t_call = clock::now();
  if (o.out.empty() || o.model.empty()) throw Error("sft: the student model and the output directory are required");
  if (o.batch < 1) throw Error(strfmt("sft: batch %lld must be >= 1", (long long)o.batch));
  if (o.steps < 0 || (o.steps == 0 && !(o.epochs > 0)))
    throw Error(strfmt("sft: steps %lld / epochs %g: give steps > 0 or epochs > 0", (long long)o.steps, o.epochs));
  if (!(o.lr > 0) || o.max_seconds < 0) throw Error(strfmt("sft: lr %g must be > 0 and max_seconds %g >= 0", o.lr, o.max_seconds));
  const std::string tok_dir = o.tokenizer.empty() ? o.model : o.tokenizer;
  const Tokenizer tok = Tokenizer::load(tok_dir);
  int32_t pad = tok.token_id("<|eos|>");
  if (pad < 0) pad = tok.eos_id();
  if (pad < 0) throw Error(tok_dir + ": the tokenizer has no <|eos|> (the padding id)");

  const Config c = load_config(o.model);
  SftResult r;
  std::vector<Trace> traces;
  for (size_t i = 0; i < all_traces.size(); ++i) {
    const Trace& t = all_traces[i];
    for (const auto* ids : {&t.prompt, &t.completion})
      for (int32_t id : *ids)
        if (id < 0 || id >= c.vocab_size)
          throw Error(strfmt("sft: trace %zu has token id %d outside the student's vocabulary (%s: vocab_size %lld)", i,
                             id, o.model.c_str(), (long long)c.vocab_size));
    if (t.completion.empty()) continue;
    if (int64_t(t.prompt.size() + t.completion.size()) > c.max_position_embeddings) {
      r.skipped_too_long++;
      continue;
    }
    traces.push_back(t);
  }
  if (traces.empty())
    throw Error(strfmt("sft: no trace to train on (%zu given, %lld longer than max_position_embeddings %lld)",
                       all_traces.size(), (long long)r.skipped_too_long, (long long)c.max_position_embeddings));
  r.traces = int64_t(traces.size());
  r.planned_steps = o.steps > 0 ? o.steps : std::max<int64_t>(1, int64_t(std::ceil(o.epochs * double(r.traces) / double(o.batch))));

  std::string out_dir = o.out;
  while (out_dir.size() > 1 && out_dir.back() == '/') out_dir.pop_back();
  const fs::path partial = out_dir + ".partial";
  train::TrainOptions t;
  t.out = partial.string();
  t.name = "sft";
  t.steps = r.planned_steps;
  t.lr = o.lr;
  t.schedule = train::Schedule{"cosine", std::min(o.warmup, r.planned_steps / 10), r.planned_steps, o.min_lr_ratio, 0.2};
  t.adamw = train::AdamWOptions{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay};
  t.clip = o.clip;
  t.save_every = o.save_every;
  t.log_every = o.log_every;
  t.max_seconds = o.max_seconds;
  t.stop_after = o.stop_after;
  Communicator& comm = or_world(o.comm);
  t.comm = &comm;
  SftObjective obj(o, traces, pad, c, comm);
  // Resume a killed run of these options; clear another run's leftover (rank 0, once every rank has looked).
  const bool stale = fs::exists(partial) && !train::can_resume(partial.string(), t, obj);
  comm.barrier();
  on_rank0(comm, [&] {
    if (stale) fs::remove_all(partial);
  });
  train::Trainer trainer(t, obj, o.model);
  trainer.run(progress);
  r.steps = trainer.step();
  r.stopped_by_time = trainer.stopped_by_time();
  r.seconds = trainer.seconds();
  r.completion_tokens = obj.completion_tokens;
  r.first_loss = obj.first_loss;
  r.last_loss = obj.last_loss;
  if (o.stop_after > 0 && r.steps < r.planned_steps && !r.stopped_by_time) return r;  // stopped for a test
  // Rank 0 publishes the model (the others return once it has): the model, the tokenizer, the summary;
  // the checkpoints leave; then the rename that publishes them.
  on_rank0(comm, [&] {
    trainer.model().save(partial.string());
    for (const auto& e : fs::directory_iterator(partial)) {
      const std::string f = e.path().filename().string();
      if (f.rfind("ckpt-", 0) == 0 || f == "latest") fs::remove_all(e.path());
    }
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
      const fs::path src = fs::is_directory(tok_dir) ? fs::path(tok_dir) / f
                           : std::string(f) == "tokenizer.json" ? fs::path(tok_dir)
                                                                : fs::path(tok_dir).parent_path() / f;
      if (!fs::exists(src)) continue;
      std::ifstream in(src, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      write_file_atomic((partial / f).string(), bytes);
    }
    r.total_seconds = std::chrono::duration<double>(clock::now() - t_call).count();
    const json summary = {{"options", options_json(o)},
                          {"result",
                           {{"steps", r.steps}, {"planned_steps", r.planned_steps}, {"traces", r.traces},
                            {"skipped_too_long", r.skipped_too_long}, {"completion_tokens", r.completion_tokens},
                            {"first_loss", r.first_loss}, {"last_loss", r.last_loss}, {"seconds", r.seconds},
                            {"total_seconds", r.total_seconds}, {"stopped_by_time", r.stopped_by_time}}}};
    write_file_atomic((partial / "sft.json").string(), summary.dump(2) + "\n");
    fs::remove_all(out_dir);
    fs::rename(partial, out_dir);
  });
  return r;
}

}  // namespace seek::distill
