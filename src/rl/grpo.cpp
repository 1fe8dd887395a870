// grpo.cpp — see grpo.h.
#include "rl/grpo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "model/tokenizer.h"
#include "rl/rollout.h"
#include "train/flops.h"
#include "train/trainer.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/plot.h"
#include "util/progress.h"
#include "util/rng.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace seek::rl {

namespace {

void validate(const GrpoRunOptions& o) {
  if (o.policy.empty() || o.out.empty()) throw Error("grpo: --policy and --out are required");
  if (o.steps < 1) throw Error("grpo: --steps must be at least 1");
  if (o.questions < 1) throw Error("grpo: --questions must be at least 1");
  if (o.group < 2) throw Error("grpo: --group must be at least 2 (advantages compare samples of one question)");
  if (o.inner < 1) throw Error("grpo: --inner must be at least 1");
  if (o.micro < 1) throw Error("grpo: --micro must be at least 1");
  if (o.max_new_tokens < 1) throw Error("grpo: --max-new-tokens must be at least 1");
  if (!(o.lr > 0)) throw Error("grpo: --lr must be positive");
  if (o.kinds.empty()) throw Error("grpo: no task kinds");
  if (o.min_difficulty < 1 || o.max_difficulty > kMaxDifficulty || o.min_difficulty > o.max_difficulty)
    throw Error(strfmt("grpo: difficulties must satisfy 1 <= min <= max <= %d", kMaxDifficulty));
}

// Training sequences of one batch of rollouts: prompt + completion, padded with EOS to a common length.
struct Packed {
  int64_t B = 0, T = 0;          // T = the longest sequence − 1 (inputs); ids are [B, T + 1]
  std::vector<int32_t> ids;
  std::vector<float> mask;        // [B, T]: 1 where the target is a completion token
  std::vector<float> advantage;   // [B]
  int64_t tokens = 0, sequences = 0;  // response tokens, sequences with any
};

Packed pack(const std::vector<const Rollout*>& rs, const std::vector<float>& adv, int32_t pad) {
  Packed p;
  p.B = int64_t(rs.size());
  for (const Rollout* r : rs) p.T = std::max(p.T, int64_t(r->prompt.size() + r->completion.size()) - 1);
  p.ids.assign(size_t(p.B * (p.T + 1)), pad);
  p.mask.assign(size_t(p.B * p.T), 0.f);
  p.advantage = adv;
  for (int64_t b = 0; b < p.B; ++b) {
    const Rollout& r = *rs[size_t(b)];
    const int64_t P = int64_t(r.prompt.size()), C = int64_t(r.completion.size());
    int32_t* row = &p.ids[size_t(b * (p.T + 1))];
    std::copy(r.prompt.begin(), r.prompt.end(), row);
    std::copy(r.completion.begin(), r.completion.end(), row + P);
    // The target of input position t is token t + 1: completion tokens are targets at P−1 .. P+C−2.
    for (int64_t t = P - 1; t < P + C - 1; ++t) p.mask[size_t(b * p.T + t)] = 1.f;
    p.tokens += C;
    p.sequences += C > 0;
  }
  return p;
}

// The weights, and the tokenizer files of the starting policy (tokenizer_config.json when it has one).
void save_policy(const train::TrainModel& m, const std::string& tokenizer_json, const fs::path& dir) {
  m.save(dir.string());
  fs::copy_file(tokenizer_json, dir / "tokenizer.json", fs::copy_options::overwrite_existing);
  const fs::path cfg = fs::path(tokenizer_json).parent_path() / "tokenizer_config.json";
  if (fs::exists(cfg)) fs::copy_file(cfg, dir / "tokenizer_config.json", fs::copy_options::overwrite_existing);
}

void draw_plots(const fs::path& out) {
  const plot::Columns c = plot::drop_superseded(plot::read_jsonl((out / "metrics.jsonl").string()), "step");
  const std::vector<double> step = c.get("grpo_step");
  plot::Chart reward;
  reward.title = "GRPO: reward, accuracy and format rate of the rollouts";
  reward.x_label = "step";
  reward.add_series("mean reward", step, c.get("reward"));
  reward.add_series("accuracy", step, c.get("accuracy"));
  reward.add_series("format rate", step, c.get("format_rate"));
  reward.add_series("opens <think>", step, c.get("think_rate"));
  plot::Chart len;
  len.title = "Response length (tokens)";
  len.x_label = "step";
  len.add_series("mean completion tokens", step, c.get("response_length"));
  plot::Chart kl;
  kl.title = "KL to the reference and entropy";
  kl.x_label = "step";
  kl.add_series("KL (k3)", step, c.get("kl"));
  kl.add_series("entropy (nats/token)", step, c.get("entropy"));
  kl.add_series("clip fraction", step, c.get("clip_fraction"));
  plot::write_svg((out / "grpo.svg").string(), {reward, len, kl});
}

// GRPO as an objective of the training loop: one loop step is one optimizer step; every `inner` steps
// start with a new batch of rollouts, sampled from the live policy (TrainModel::inference, no copy).
class GrpoObjective final : public train::Objective {
 public:
  GrpoObjective(const GrpoRunOptions& o, const GrpoOptions& lo, const Tokenizer& tok, int32_t eos, const Config& c,
                Communicator& comm)
      : o_(o), lo_(lo), tok_(tok), eos_(eos), c_(c), comm_(comm), ref_(train::TrainModel::from_checkpoint(o.policy)) {}

  // Rank r samples and trains on questions [Q r / N, Q (r + 1) / N) of every step's batch (whole groups:
  // advantages stay within a rank); the normalizers (sequences, tokens) and every statistic are the
  // whole batch's.
  bool data_parallel() const override { return true; }

  train::StepReport step(train::TrainModel& policy, int64_t k) override {
    const int64_t step = (k - 1) / o_.inner + 1;
    if ((k - 1) % o_.inner == 0) sample(policy, step);
    // One optimizer step on the GRPO objective, the batch split into micro-batches whose gradients add
    // up to the whole batch's (each micro-batch's loss is weighted by its share of the normalizer).
    const auto t_train = Clock::now();
    double kl_w = 0, clip_w = 0, ent_w = 0, loss_sum = 0, train_tokens = 0;
    const bool first_inner = (k - 1) % o_.inner == 0;
    for (size_t mb = 0; mb < micro_.size(); ++mb) {
      const Packed& pk = micro_[mb];
      const double share = lo_.variant == GrpoOptions::Dapo ? double(pk.tokens) / double(tot_tokens_)
                                                             : double(pk.sequences) / double(tot_seqs_);
      std::vector<float> ent;
      GrpoStats st;
      train::TokenObjective obj{[&](const float* logp, float* dlogp) {
                                  GrpoBatch gb{pk.B, pk.T, logp, old_lp_[mb].empty() ? nullptr : old_lp_[mb].data(),
                                               ref_lp_[mb].empty() ? nullptr : ref_lp_[mb].data(), pk.mask.data(),
                                               pk.advantage.data()};
                                  st = grpo_token_loss(gb, lo_, dlogp);
                                  for (int64_t i = 0; i < pk.B * pk.T; ++i) dlogp[i] *= float(share);
                                  return st.loss * share;
                                },
                                &ent};
      loss_sum += policy.forward_backward(pk.ids.data(), pk.B, pk.T, none(), &obj, mb > 0).main;
      double e = 0;
      for (int64_t i = 0; i < pk.B * pk.T; ++i) e += pk.mask[size_t(i)] * ent[size_t(i)];
      kl_w += st.mean_kl * double(st.n_tokens);
      clip_w += st.clip_fraction * double(st.n_tokens);
      ent_w += e;
      train_tokens += double(pk.B * pk.T);
    }
    if (micro_.empty()) std::fill(policy.grad().begin(), policy.grad().end(), 0.f);  // every group dropped
    double sums[5] = {loss_sum, kl_w, clip_w, ent_w, train_tokens};
    comm_.all_reduce_sum(std::span<double>(sums, 5));
    loss_sum = sums[0], kl_w = sums[1], clip_w = sums[2], ent_w = sums[3], train_tokens = sums[4];
    const double train_s = std::chrono::duration<double>(Clock::now() - t_train).count();
    const double N = double(n_rollouts_);
    const double kl = tot_tokens_ == 0 ? 0 : kl_w / double(tot_tokens_), clipf = tot_tokens_ == 0 ? 0 : clip_w / double(tot_tokens_);
    const double entropy = tot_tokens_ == 0 ? 0 : ent_w / double(tot_tokens_);
    train::StepReport r;
    r.loss = loss_sum;
    r.tokens = int64_t(train_tokens);
    r.flops = flops_ * (first_inner ? 1.0 : 0.0) + train_flops_;
    r.metrics = {{"grpo_step", step},
                 {"reward", mean_reward_},
                 {"accuracy", correct_ / N},
                 {"format_rate", formatted_ / N},
                 {"think_rate", think_ / N},
                 {"response_length", length_ / N},
                 {"kl", kl},
                 {"clip_fraction", clipf},
                 {"entropy", entropy},
                 {"groups_kept", kept_groups_},
                 {"rollout_tokens_per_s", double(rollout_tokens_) / std::max(1e-9, rollout_stats_.seconds)},
                 {"train_tokens_per_s", train_tokens / std::max(1e-9, train_s)}};
    r.progress = strfmt("reward %.3f acc %4.1f%% fmt %4.1f%% think %4.1f%% | len %.0f | kl %.4f clip %.1f%% ent %.2f | "
                        "groups %lld/%lld | rollout %.0f tok/s",
                        mean_reward_, 100 * correct_ / N, 100 * formatted_ / N, 100 * think_ / N, length_ / N, kl,
                        100 * clipf, entropy, (long long)kept_groups_, (long long)o_.questions,
                        double(rollout_tokens_) / std::max(1e-9, rollout_stats_.seconds));
    return r;
  }

  void after_update(train::TrainModel& policy, int64_t k, bool, train::StepReport&) override {
    const int64_t step = (k - 1) / o_.inner + 1;
    if (k % o_.inner == 0 && o_.ref_reset > 0 && step % o_.ref_reset == 0) {
      ref_.data() = policy.data();
      ref_reset_at_ = step;
    }
  }

  json options() const override {
    json kinds = json::array();
    for (TaskKind kind : o_.kinds) kinds.push_back(int(kind));
    return {{"policy", o_.policy}, {"steps", o_.steps}, {"questions", o_.questions}, {"group", o_.group},
            {"max_new_tokens", o_.max_new_tokens}, {"temperature", o_.temperature}, {"inner", o_.inner},
            {"micro", o_.micro}, {"variant", int(lo_.variant)}, {"eps_low", lo_.eps_low}, {"eps_high", lo_.eps_high},
            {"beta", lo_.beta}, {"scale_std", lo_.scale_std}, {"std_unbiased", lo_.std_unbiased}, {"std_eps", lo_.std_eps}, {"drgrpo_max_tokens", lo_.drgrpo_max_tokens},
            {"dynamic_sampling", o_.dynamic_sampling}, {"ref_reset", o_.ref_reset},
            {"reward_accuracy", o_.weights.accuracy}, {"reward_format", o_.weights.format}, {"kinds", kinds},
            {"min_difficulty", o_.min_difficulty}, {"max_difficulty", o_.max_difficulty},
            {"heldout_fraction", o_.heldout_fraction}, {"seed", o_.seed}};
  }
  // The reference moves only at a reset: then it is saved beside the policy (reference/).
  json state() const override { return {{"rewards", rewards_hist}, {"accuracy", acc_hist}, {"ref_reset_at", ref_reset_at_}}; }
  void save_files(const std::string& ckpt) const override {
    if (ref_reset_at_ > 0) ref_.save((fs::path(ckpt) / "reference").string());
  }
  void restore(const json& st, const std::string& ckpt) override {
    rewards_hist = st.value("rewards", std::vector<double>{});
    acc_hist = st.value("accuracy", std::vector<double>{});
    ref_reset_at_ = st.value("ref_reset_at", int64_t(0));
    if (ref_reset_at_ > 0) ref_ = train::TrainModel::from_checkpoint((fs::path(ckpt) / "reference").string());
  }
  void plot(const std::string& out) const override { draw_plots(out); }

  std::vector<double> rewards_hist, acc_hist;  // per rollout batch

 private:
  using Clock = std::chrono::steady_clock;
  static train::LossWeights none() { return {.mtp_lambda = 0, .balance_alpha = 0}; }

  // Rollouts of this step's problems with the current policy, their rewards and advantages, and the
  // micro-batches to train on (with the sampling policy's and the reference's log-probabilities).
  void sample(train::TrainModel& policy, int64_t step) {
    SplitMix64 rng(mix64(o_.seed, uint64_t(step)));
    std::vector<Problem> problems;
    const int64_t N = comm_.size(), q0 = o_.questions * comm_.rank() / N, q1 = o_.questions * (comm_.rank() + 1) / N;
    for (int64_t q = 0; q < o_.questions; ++q) {
      const TaskKind kind = o_.kinds[size_t(rng.uniform(o_.kinds.size()))];
      const int d = int(rng.range(o_.min_difficulty, o_.max_difficulty));
      if (q < q0 || q >= q1) continue;  // another rank's question
      problems.push_back(make_split_problem(kind, d, Split::Train, o_.seed, uint64_t((step - 1) * o_.questions + q),
                                            o_.heldout_fraction));
    }
    RolloutOptions ro;
    ro.samples = o_.group;
    ro.temperature = o_.temperature;
    ro.max_new_tokens = o_.max_new_tokens;
    ro.draft_tokens = o_.draft_tokens;
    ro.seed = mix64(o_.seed ^ 0x5EEDull, uint64_t(step));
    ro.first_problem = q0;
    ro.weights = o_.weights;
    rollout_stats_ = {};
    if (!problems.empty()) rollouts_ = sample_rollouts(policy.inference(), tok_, problems, ro, &rollout_stats_);
    else rollouts_.clear();
    // Rewards → advantages; DAPO's dynamic sampling drops groups that all scored alike.
    std::vector<double> rewards;
    correct_ = formatted_ = think_ = length_ = 0;
    for (const Rollout& r : rollouts_) {
      rewards.push_back(r.reward.total);
      correct_ += r.reward.correct;
      formatted_ += r.reward.formatted;
      think_ += r.text.rfind("<think>", 0) == 0;
      length_ += double(r.completion.size());
    }
    // The whole batch's statistics (the groups below stay on their rank).
    double stats[6] = {correct_, formatted_, think_, length_, std::accumulate(rewards.begin(), rewards.end(), 0.0),
                       double(rollouts_.size())};
    comm_.all_reduce_sum(std::span<double>(stats, 6));
    correct_ = stats[0], formatted_ = stats[1], think_ = stats[2], length_ = stats[3];
    n_rollouts_ = int64_t(stats[5]);
    mean_reward_ = stats[4] / stats[5];
    rewards_hist.push_back(mean_reward_);
    acc_hist.push_back(correct_ / stats[5]);
    const std::vector<float> adv = group_advantages(rewards, o_.group, lo_);
    std::vector<const Rollout*> kept;
    std::vector<float> kept_adv;
    kept_groups_ = 0;
    for (int64_t q = 0; q < int64_t(problems.size()); ++q) {
      if (o_.dynamic_sampling && !keep_group(&rewards[size_t(q * o_.group)], o_.group)) continue;
      ++kept_groups_;
      for (int64_t i = 0; i < o_.group; ++i) {
        kept.push_back(&rollouts_[size_t(q * o_.group + i)]);
        kept_adv.push_back(adv[size_t(q * o_.group + i)]);
      }
    }
    micro_.clear();
    tot_tokens_ = tot_seqs_ = 0;
    for (size_t b0 = 0; b0 < kept.size(); b0 += size_t(o_.micro)) {
      const size_t b1 = std::min(kept.size(), b0 + size_t(o_.micro));
      micro_.push_back(pack({kept.begin() + long(b0), kept.begin() + long(b1)},
                            {kept_adv.begin() + long(b0), kept_adv.begin() + long(b1)}, eos_));
      tot_tokens_ += micro_.back().tokens;
      tot_seqs_ += micro_.back().sequences;
    }
    int64_t counts[4] = {tot_tokens_, tot_seqs_, kept_groups_, rollout_stats_.tokens};
    comm_.all_reduce_sum(std::span<int64_t>(counts, 4));
    tot_tokens_ = counts[0], tot_seqs_ = counts[1], kept_groups_ = counts[2], rollout_tokens_ = counts[3];
    // Log-probabilities of the sampling policy (for the ratio when inner > 1) and of the reference.
    old_lp_.assign(micro_.size(), {});
    ref_lp_.assign(micro_.size(), {});
    flops_ = 0;
    train_flops_ = 0;
    for (size_t mb = 0; mb < micro_.size(); ++mb) {
      const Packed& pk = micro_[mb];
      const double fwd = double(pk.B * pk.T) * train::train_flops_per_token(c_, pk.T) / 3;
      if (o_.inner > 1) old_lp_[mb] = policy.target_logprobs(pk.ids.data(), pk.B, pk.T), flops_ += fwd;
      if (lo_.beta > 0) ref_lp_[mb] = ref_.target_logprobs(pk.ids.data(), pk.B, pk.T), flops_ += fwd;
      train_flops_ += 3 * fwd;
    }
  }

  const GrpoRunOptions& o_;
  const GrpoOptions lo_;
  const Tokenizer& tok_;
  int32_t eos_;
  const Config& c_;
  Communicator& comm_;
  train::TrainModel ref_;
  int64_t ref_reset_at_ = 0;  // the rollout step of the reference's last reset (0: never)
  std::vector<Rollout> rollouts_;
  RolloutStats rollout_stats_;
  std::vector<Packed> micro_;
  std::vector<std::vector<float>> old_lp_, ref_lp_;
  int64_t tot_tokens_ = 0, tot_seqs_ = 0, kept_groups_ = 0;  // the whole batch's (all ranks)
  int64_t n_rollouts_ = 0, rollout_tokens_ = 0;
  double correct_ = 0, formatted_ = 0, think_ = 0, length_ = 0, mean_reward_ = 0;
  double flops_ = 0, train_flops_ = 0;  // this batch's forward-only passes; one training step's
};

}  // namespace

GrpoResult grpo(const GrpoRunOptions& o, std::FILE* progress) {
  validate(o);
  const fs::path out(o.out);
  fs::create_directories(out);
  const std::string tok_path = (fs::path(o.policy) / "tokenizer.json").string();
  if (!fs::exists(tok_path)) throw Error(o.policy + ": no tokenizer.json (the policy directory needs one)");
  const Tokenizer tok = Tokenizer::load(tok_path);
  const int32_t eos = tok.token_id("<|eos|>");
  if (eos < 0) throw Error(tok_path + ": no <|eos|> token (seek's chat format needs it)");
  const Config c = load_config(o.policy);
  GrpoOptions lo = o.loss;
  if (lo.drgrpo_max_tokens == 0) lo.drgrpo_max_tokens = o.max_new_tokens;  // a constant, not the batch's T

  train::TrainOptions t;
  t.out = o.out;
  t.name = "grpo";
  t.steps = o.steps * o.inner;
  t.lr = o.lr;
  t.schedule = train::Schedule{"constant", o.warmup, t.steps, 1.0, 0.2};
  t.adamw = train::AdamWOptions{o.lr, 0.9, 0.99, 1e-8, o.weight_decay};
  t.clip = o.clip;
  t.save_every = o.save_every * o.inner;
  t.log_every = o.log_every * o.inner;
  t.max_seconds = o.max_seconds;
  t.stop_after = o.stop_after * o.inner;
  Communicator& comm = or_world(o.comm);
  t.comm = &comm;
  if (comm.rank() != 0) progress = nullptr;
  GrpoObjective obj(o, lo, tok, eos, c, comm);
  train::Trainer trainer(t, obj, o.policy);
  if (trainer.resumed() && progress)
    std::fprintf(progress, "grpo: resuming %s at step %lld\n", o.out.c_str(), (long long)(trainer.step() / o.inner));
  trainer.run(progress);

  GrpoResult res;
  res.steps = trainer.step() / o.inner;
  res.seconds = trainer.seconds();
  auto mean_of = [](const std::vector<double>& v, bool first) {
    const size_t k = std::min<size_t>(5, v.size());
    if (k == 0) return 0.0;
    double s = 0;
    for (size_t i = 0; i < k; ++i) s += first ? v[i] : v[v.size() - 1 - i];
    return s / double(k);
  };
  res.first_reward = mean_of(obj.rewards_hist, true);
  res.last_reward = mean_of(obj.rewards_hist, false);
  res.first_accuracy = mean_of(obj.acc_hist, true);
  res.last_accuracy = mean_of(obj.acc_hist, false);
  if (o.stop_after > 0 && trainer.step() < t.steps && !trainer.stopped_by_time()) return res;  // stopped for a test
  // The final policy (rank 0), renamed into place only when complete.
  on_rank0(comm, [&] {
    const fs::path tmp = out / "model.tmp", final_dir = out / "model";
    fs::remove_all(tmp);
    save_policy(trainer.model(), tok_path, tmp);
    fs::remove_all(final_dir);
    fs::rename(tmp, final_dir);
  });
  return res;
}

}  // namespace seek::rl
