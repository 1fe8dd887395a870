// sft.cpp — see sft.h.
#include "distill/sft.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/tokenizer.h"
#include "train/optimizer.h"
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

train::TokenObjective completion_objective(const SftBatch& batch) {
  train::TokenObjective obj;
  const SftBatch* b = &batch;
  obj.fn = [b](const float* logp, float* dlogp) {
    if (b->completion_tokens == 0) return 0.0;
    const double inv = 1.0 / double(b->completion_tokens);
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


json options_json(const SftOptions& o) {
  return {{"model", o.model}, {"tokenizer", o.tokenizer.empty() ? o.model : o.tokenizer}, {"steps", o.steps},
          {"epochs", o.epochs}, {"batch", o.batch}, {"lr", o.lr}, {"min_lr_ratio", o.min_lr_ratio}, {"clip", o.clip},
          {"weight_decay", o.weight_decay}, {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps},
          {"warmup", o.warmup}, {"max_seconds", o.max_seconds}, {"seed", o.seed}};
}

void draw_loss(const std::string& dir) {
  const plot::Columns m = plot::read_jsonl((fs::path(dir) / "metrics.jsonl").string());
  plot::Chart c;
  c.title = "Distillation SFT loss (completion tokens only)";
  c.x_label = "step";
  c.y_label = "cross-entropy (nats/token)";
  c.add_series("train batch", m.get("step"), m.get("loss"));
  c.write_svg((fs::path(dir) / "loss.svg").string());
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

  train::TrainModel m = train::TrainModel::from_checkpoint(o.model);
  const Config& c = m.config();
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
  fs::remove_all(partial);
  fs::create_directories(partial);

  const int64_t n = int64_t(m.data().size());
  std::vector<float> mom(size_t(n), 0.f), var(size_t(n), 0.f);
  std::vector<uint8_t> decay(size_t(n), 0);
  for (const auto& p : m.params())
    if (p.decay) std::fill(decay.begin() + p.offset, decay.begin() + p.offset + p.numel, 1);
  const train::Schedule sched{"cosine", std::min(o.warmup, r.planned_steps / 10), r.planned_steps, o.min_lr_ratio, 0.2};
  const train::AdamWOptions ao{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay};
  const train::LossWeights lw{.mtp_lambda = 0, .balance_alpha = 0};

  // The data order: one seeded permutation per epoch, consumed B at a time across epoch boundaries.
  std::vector<size_t> order;
  int64_t epoch = 0;
  size_t pos = 0;
  auto reshuffle = [&] {
    order.resize(traces.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    SplitMix64 rng(mix64(o.seed, uint64_t(epoch)));
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[size_t(rng.below(i))]);
    pos = 0;
  };
  reshuffle();

  std::ofstream metrics(partial / "metrics.jsonl");
  const auto t0 = clock::now();
  int64_t window_tokens = 0, window_completion = 0;
  auto t_window = t0;
  for (int64_t step = 1; step <= r.planned_steps; ++step) {
    const double elapsed = std::chrono::duration<double>(clock::now() - t0).count();
    if (o.max_seconds > 0 && step > 1 && elapsed >= o.max_seconds) {
      r.stopped_by_time = true;
      break;
    }
    std::vector<size_t> which;
    while (int64_t(which.size()) < o.batch) {
      if (pos == order.size()) {
        ++epoch;
        reshuffle();
        if (int64_t(traces.size()) < o.batch && !which.empty()) break;  // fewer traces than a batch: one pass
      }
      which.push_back(order[pos++]);
    }
    const SftBatch b = make_sft_batch(traces, which, pad);
    const train::TokenObjective obj = completion_objective(b);
    const train::LossParts lp = m.forward_backward(b.ids.data(), b.B, b.T, lw, &obj);
    const double gnorm = train::clip_grad_norm(m.grad().data(), n, o.clip);
    const double lr = o.lr * train::lr_multiplier(sched, step);
    train::adamw_step(m.data().data(), m.grad().data(), mom.data(), var.data(), decay.data(), n, step, lr, ao);
    r.steps = step;
    r.completion_tokens += b.completion_tokens;
    if (step == 1) r.first_loss = lp.main;
    r.last_loss = lp.main;
    window_tokens += b.B * b.T;
    window_completion += b.completion_tokens;
    if (step % std::max<int64_t>(1, o.log_every) == 0 || step == r.planned_steps || step == 1) {
      const auto now = clock::now();
      const double secs = std::chrono::duration<double>(now - t0).count();
      const double wsecs = std::max(1e-9, std::chrono::duration<double>(now - t_window).count());
      double eta = secs / double(step) * double(r.planned_steps - step);
      if (o.max_seconds > 0) eta = std::min(eta, std::max(0.0, o.max_seconds - secs));
      const double ep = double(epoch) + double(pos) / double(traces.size());
      metrics << json{{"step", step}, {"epoch", ep}, {"loss", lp.main}, {"lr", lr}, {"grad_norm", gnorm},
                      {"completion_tokens", b.completion_tokens}, {"tokens_per_s", double(window_tokens) / wsecs},
                      {"completion_tokens_per_s", double(window_completion) / wsecs}, {"elapsed_s", secs}}
                     .dump()
              << "\n";
      metrics.flush();
      if (progress) {
        std::fprintf(progress, "sft step %lld/%lld | epoch %.2f | loss %.4f | lr %.2e | %.0f tok/s (%.0f completion) | ETA %s\n",
                     (long long)step, (long long)r.planned_steps, ep, lp.main, lr, double(window_tokens) / wsecs,
                     double(window_completion) / wsecs, format_duration(eta).c_str());
        std::fflush(progress);
      }
      window_tokens = window_completion = 0;
      t_window = now;
    }
  }
  r.seconds = std::chrono::duration<double>(clock::now() - t0).count();
  metrics.close();
  if (r.stopped_by_time && progress)
    std::fprintf(progress, "sft: wall-clock budget of %.0f s reached after %lld of %lld steps\n", o.max_seconds,
                 (long long)r.steps, (long long)r.planned_steps);

  // The model, the tokenizer, the summary, the chart; then the rename that publishes them.
  m.save(partial.string());
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    const fs::path src = fs::is_directory(tok_dir) ? fs::path(tok_dir) / f
                         : std::string(f) == "tokenizer.json" ? fs::path(tok_dir)
                                                              : fs::path(tok_dir).parent_path() / f;
    if (!fs::exists(src)) continue;
    std::ifstream in(src, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_file_atomic((partial / f).string(), bytes);
  }
  try {
    if (r.steps > 0) draw_loss(partial.string());
  } catch (const Error& e) {  // a chart is not worth the run
    if (progress) std::fprintf(progress, "warning: loss.svg not drawn: %s\n", e.what());
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
  return r;
}

}  // namespace seek::distill
