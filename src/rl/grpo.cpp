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
#include "train/optimizer.h"
#include "train/train_model.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/plot.h"
#include "util/progress.h"
#include "util/rng.h"

namespace fs = std::filesystem;

namespace seek::rl {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

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
  const plot::Columns c = plot::read_jsonl((out / "metrics.jsonl").string());
  const std::vector<double> step = c.get("step");
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

}  // namespace

GrpoResult grpo(const GrpoRunOptions& o, std::FILE* progress) {
  validate(o);
  const fs::path out(o.out), policy_dir = out / ".policy";
  fs::create_directories(out);
  const std::string tok_path = (fs::path(o.policy) / "tokenizer.json").string();
  if (!fs::exists(tok_path)) throw Error(o.policy + ": no tokenizer.json (the policy directory needs one)");
  const Tokenizer tok = Tokenizer::load(tok_path);
  const int32_t eos = tok.token_id("<|eos|>");
  if (eos < 0) throw Error(tok_path + ": no <|eos|> token (seek's chat format needs it)");

  train::TrainModel policy = train::TrainModel::from_checkpoint(o.policy);
  train::TrainModel ref = train::TrainModel::from_checkpoint(o.policy);
  const int64_t n = int64_t(policy.data().size());
  std::vector<float> mom(size_t(n), 0.f), var(size_t(n), 0.f), acc(size_t(n), 0.f);
  std::vector<uint8_t> decay(size_t(n), 0);
  for (const auto& p : policy.params())
    if (p.decay) std::fill(decay.begin() + p.offset, decay.begin() + p.offset + p.numel, 1);
  const train::AdamWOptions ao{o.lr, 0.9, 0.99, 1e-8, o.weight_decay};
  train::LossWeights none;
  none.mtp_lambda = 0;
  none.balance_alpha = 0;
  GrpoOptions lo = o.loss;
  if (lo.drgrpo_max_tokens == 0) lo.drgrpo_max_tokens = o.max_new_tokens;  // a constant, not the batch's T

  std::ofstream metrics(out / "metrics.jsonl", std::ios::trunc);
  if (!metrics) throw Error((out / "metrics.jsonl").string() + ": cannot write");
  GrpoResult res;
  std::vector<double> rewards_hist, acc_hist;
  const auto t_start = Clock::now();
  int64_t adam_t = 0;
  for (int64_t step = 1; step <= o.steps; ++step) {
    const auto t_step = Clock::now();
    // 1. Rollouts with the current policy.
    save_policy(policy, tok_path, policy_dir);
    std::unique_ptr<Model> engine = Model::load(policy_dir.string());
    SplitMix64 rng(mix64(o.seed, uint64_t(step)));
    std::vector<Problem> problems;
    for (int64_t q = 0; q < o.questions; ++q) {
      const TaskKind kind = o.kinds[size_t(rng.uniform(o.kinds.size()))];
      const int d = int(rng.range(o.min_difficulty, o.max_difficulty));
      problems.push_back(make_split_problem(kind, d, Split::Train, o.seed, uint64_t((step - 1) * o.questions + q),
                                            o.heldout_fraction));
    }
    RolloutOptions ro;
    ro.samples = o.group;
    ro.temperature = o.temperature;
    ro.max_new_tokens = o.max_new_tokens;
    ro.seed = mix64(o.seed ^ 0x5EEDull, uint64_t(step));
    ro.weights = o.weights;
    RolloutStats rs;
    const std::vector<Rollout> rolls = sample_rollouts(*engine, tok, problems, ro, &rs);
    engine.reset();

    // 2. Rewards → advantages; DAPO's dynamic sampling drops groups that all scored alike.
    std::vector<double> rewards;
    double correct = 0, formatted = 0, think = 0, length = 0;
    for (const Rollout& r : rolls) {
      rewards.push_back(r.reward.total);
      correct += r.reward.correct;
      formatted += r.reward.formatted;
      think += r.text.rfind("<think>", 0) == 0;
      length += double(r.completion.size());
    }
    const double N = double(rolls.size());
    const std::vector<float> adv = group_advantages(rewards, o.group, lo);
    std::vector<const Rollout*> kept;
    std::vector<float> kept_adv;
    int64_t kept_groups = 0;
    for (int64_t q = 0; q < o.questions; ++q) {
      if (o.dynamic_sampling && !keep_group(&rewards[size_t(q * o.group)], o.group)) continue;
      ++kept_groups;
      for (int64_t i = 0; i < o.group; ++i) {
        kept.push_back(&rolls[size_t(q * o.group + i)]);
        kept_adv.push_back(adv[size_t(q * o.group + i)]);
      }
    }

    // 3. Optimizer steps on the GRPO objective, the batch split into micro-batches whose gradients add
    // up to the whole batch's (each micro-batch's loss is weighted by its share of the normalizer).
    double kl = 0, clipf = 0, entropy = 0, train_tokens = 0, loss_sum = 0;
    const auto t_train = Clock::now();
    if (!kept.empty()) {
      std::vector<Packed> micro;
      int64_t tot_tokens = 0, tot_seqs = 0;
      for (size_t b0 = 0; b0 < kept.size(); b0 += size_t(o.micro)) {
        const size_t b1 = std::min(kept.size(), b0 + size_t(o.micro));
        micro.push_back(pack({kept.begin() + long(b0), kept.begin() + long(b1)},
                             {kept_adv.begin() + long(b0), kept_adv.begin() + long(b1)}, eos));
        tot_tokens += micro.back().tokens;
        tot_seqs += micro.back().sequences;
      }
      // Log-probabilities of the sampling policy (for the ratio when inner > 1) and of the reference.
      std::vector<std::vector<float>> old_lp(micro.size()), ref_lp(micro.size());
      for (size_t m = 0; m < micro.size(); ++m) {
        if (o.inner > 1) old_lp[m] = policy.target_logprobs(micro[m].ids.data(), micro[m].B, micro[m].T);
        if (lo.beta > 0) ref_lp[m] = ref.target_logprobs(micro[m].ids.data(), micro[m].B, micro[m].T);
      }
      for (int64_t it = 0; it < o.inner; ++it) {
        std::fill(acc.begin(), acc.end(), 0.f);
        double kl_w = 0, clip_w = 0, ent_w = 0;
        loss_sum = 0;
        for (size_t m = 0; m < micro.size(); ++m) {
          const Packed& pk = micro[m];
          const double share = lo.variant == GrpoOptions::Dapo ? double(pk.tokens) / double(tot_tokens)
                                                                : double(pk.sequences) / double(tot_seqs);
          std::vector<float> ent;
          GrpoStats st;
          train::TokenObjective obj{[&](const float* logp, float* dlogp) {
                                      GrpoBatch gb{pk.B, pk.T, logp, old_lp[m].empty() ? nullptr : old_lp[m].data(),
                                                   ref_lp[m].empty() ? nullptr : ref_lp[m].data(), pk.mask.data(),
                                                   pk.advantage.data()};
                                      st = grpo_token_loss(gb, lo, dlogp);
                                      for (int64_t i = 0; i < pk.B * pk.T; ++i) dlogp[i] *= float(share);
                                      return st.loss * share;
                                    },
                                    &ent};
          loss_sum += policy.forward_backward(pk.ids.data(), pk.B, pk.T, none, &obj).main;
          const std::vector<float>& g = policy.grad();
          for (int64_t i = 0; i < n; ++i) acc[size_t(i)] += g[size_t(i)];
          double e = 0;
          for (int64_t i = 0; i < pk.B * pk.T; ++i) e += pk.mask[size_t(i)] * ent[size_t(i)];
          kl_w += st.mean_kl * double(st.n_tokens);
          clip_w += st.clip_fraction * double(st.n_tokens);
          ent_w += e;
          train_tokens += double(pk.B * pk.T);
        }
        kl = kl_w / double(tot_tokens);
        clipf = clip_w / double(tot_tokens);
        entropy = ent_w / double(tot_tokens);
        train::clip_grad_norm(acc.data(), n, o.clip);
        const double lr = o.lr * std::min(1.0, double(adam_t + 1) / double(std::max<int64_t>(1, o.warmup)));
        train::adamw_step(policy.data().data(), acc.data(), mom.data(), var.data(), decay.data(), n, ++adam_t, lr, ao);
      }
    }
    const double train_s = since(t_train);
    if (o.ref_reset > 0 && step % o.ref_reset == 0) ref.data() = policy.data();

    // 4. Log.
    const double mean_reward = std::accumulate(rewards.begin(), rewards.end(), 0.0) / N;
    rewards_hist.push_back(mean_reward);
    acc_hist.push_back(correct / N);
    const double elapsed = since(t_start);
    nlohmann::json j = {{"step", step},
                        {"reward", mean_reward},
                        {"accuracy", correct / N},
                        {"format_rate", formatted / N},
                        {"think_rate", think / N},
                        {"response_length", length / N},
                        {"loss", loss_sum},
                        {"kl", kl},
                        {"clip_fraction", clipf},
                        {"entropy", entropy},
                        {"groups_kept", kept_groups},
                        {"rollout_tokens_per_s", double(rs.tokens) / std::max(1e-9, rs.seconds)},
                        {"train_tokens_per_s", train_tokens / std::max(1e-9, train_s)},
                        {"step_seconds", since(t_step)},
                        {"seconds", elapsed}};
    metrics << j.dump() << "\n" << std::flush;
    if (progress && (step % o.log_every == 0 || step == o.steps))
      std::fprintf(progress,
                   "grpo step %lld/%lld | reward %.3f acc %4.1f%% fmt %4.1f%% think %4.1f%% | len %.0f | kl %.4f clip %.1f%% "
                   "ent %.2f | groups %lld/%lld | rollout %.0f tok/s train %.0f tok/s | ETA %s\n",
                   (long long)step, (long long)o.steps, mean_reward, 100 * correct / N, 100 * formatted / N, 100 * think / N,
                   length / N, kl, 100 * clipf, entropy, (long long)kept_groups, (long long)o.questions,
                   double(rs.tokens) / std::max(1e-9, rs.seconds), train_tokens / std::max(1e-9, train_s),
                   format_duration(elapsed / double(step) * double(o.steps - step)).c_str());
    res.steps = step;
    if (o.max_seconds > 0 && elapsed >= o.max_seconds) {
      if (progress) std::fprintf(progress, "grpo: wall-time budget of %.0f s reached after %lld steps\n", o.max_seconds, (long long)step);
      break;
    }
  }
  metrics.close();
  res.seconds = since(t_start);
  auto mean_of = [](const std::vector<double>& v, bool first) {
    const size_t k = std::min<size_t>(5, v.size());
    if (k == 0) return 0.0;
    double s = 0;
    for (size_t i = 0; i < k; ++i) s += first ? v[i] : v[v.size() - 1 - i];
    return s / double(k);
  };
  res.first_reward = mean_of(rewards_hist, true);
  res.last_reward = mean_of(rewards_hist, false);
  res.first_accuracy = mean_of(acc_hist, true);
  res.last_accuracy = mean_of(acc_hist, false);
  try {
    draw_plots(out);
  } catch (const Error& e) {
    if (progress) std::fprintf(progress, "warning: plots not drawn: %s\n", e.what());
  }
  // The final policy, renamed into place only when complete.
  const fs::path tmp = out / "model.tmp", final_dir = out / "model";
  fs::remove_all(tmp);
  save_policy(policy, tok_path, tmp);
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  fs::remove_all(policy_dir);
  return res;
}

}  // namespace seek::rl
