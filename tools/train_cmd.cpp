// train_cmd.cpp — `seek pretrain`: flags onto train::PretrainOptions (src/train/trainer.h). Progress
// lines on stderr (loss, tokens/s, MFU, expert balance, ETA); metrics and charts in --out.
#include "commands.h"
#include "train/pretrain.h"

namespace seek {

void register_train_commands(CLI::App& app) {
  static train::PretrainOptions o;
  auto* c = app.add_subcommand("pretrain", "Pretrain a model from scratch on token shards (resumes from --out when it holds a checkpoint)");
  c->add_option("--config", o.config, "config.json of the model to create");
  c->add_option("--data", o.data, "directory written by `seek data`")->required();
  c->add_option("--out", o.out, "run directory: checkpoints, metrics.jsonl, loss.svg, balance.svg")->required();
  c->add_option("--steps", o.steps)->capture_default_str()->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  c->add_option("--batch", o.batch)->capture_default_str()->check(CLI::Range(1, 1 << 16));
  c->add_option("--seq-len", o.seq_len)->capture_default_str()->check(CLI::Range(2, 1 << 20));
  c->add_option("--accum", o.accum, "gradient accumulation micro-batches")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  c->add_option("--lr", o.lr)->capture_default_str();
  c->add_option("--min-lr-ratio", o.min_lr_ratio)->capture_default_str();
  c->add_option("--warmup", o.warmup)->capture_default_str();
  c->add_option("--schedule", o.schedule, "cosine or wsd")->capture_default_str();
  c->add_option("--clip", o.clip, "global gradient norm limit (0 = off)")->capture_default_str();
  c->add_option("--weight-decay", o.weight_decay)->capture_default_str();
  c->add_option("--mtp-lambda", o.mtp_lambda, "MTP loss weight λ (until --mtp-switch)")->capture_default_str();
  c->add_option("--mtp-lambda-final", o.mtp_lambda_final,
                "λ after --mtp-switch (DeepSeek-V3: 0.3 then 0.1); default: --mtp-lambda, i.e. constant");
  c->add_option("--mtp-switch", o.mtp_switch, "fraction of --steps after which λ becomes --mtp-lambda-final")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  c->add_option("--balance", o.balance, "aux-free, aux or none")->capture_default_str();
  c->add_option("--gamma", o.gamma, "aux-free bias step")->capture_default_str();
  c->add_option("--seq-alpha", o.seq_alpha, "sequence-wise balance loss weight (aux-free)")->capture_default_str();
  c->add_option("--aux-alpha", o.aux_alpha, "auxiliary balance loss weight (aux)")->capture_default_str();
  c->add_flag("--fp8", o.fp8, "simulate FP8 (E4M3) GEMM inputs as DeepSeek-V3 trains");
  c->add_option("--seed", o.seed)->capture_default_str();
  c->add_option("--eval-every", o.eval_every)->capture_default_str();
  c->add_option("--eval-batches", o.eval_batches)->capture_default_str();
  c->add_option("--save-every", o.save_every)->capture_default_str();
  c->add_option("--log-every", o.log_every)->capture_default_str();
  c->add_flag("--expert-parallel", o.expert_parallel,
              "under mpiexec: spread the routed experts over the ranks as well as the batch (an all-to-all sends each "
              "token to the ranks of its experts and back)");
  c->add_option("--stop-after", o.stop_after, "stop after this many steps of this run (with a checkpoint)")->capture_default_str();
  c->callback([] {
    train::PretrainResult r = train::pretrain(o);
    if (world().rank() == 0)
      std::fprintf(stderr, "pretrain: step %lld%s; validation loss %.4f -> %.4f\n", (long long)r.step,
                   r.resumed ? " (resumed)" : "", r.first_val_loss, r.last_val_loss);
  });
}

}  // namespace seek
