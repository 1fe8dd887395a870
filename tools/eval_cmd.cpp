// eval_cmd.cpp — `seek eval`: pass@1 (greedy and sampled), pass@k, format rate, response length on
// held-out problems (rl/eval.h); optionally the MTP draft acceptance on held-out problem documents
// (rl/mtp_accept.h) with the speed the drafts give (speculative decoding at batch 1), and the KV-cache
// table (rl/report_figures.h). Prints markdown tables; --json writes the figures atomically.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "commands.h"
#include "data/corpus.h"
#include "engine/decode.h"
#include "engine/generator.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "rl/eval.h"
#include "rl/mtp_accept.h"
#include "rl/report_figures.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace seek {

namespace {

struct EvalFlags {
  std::string model, tokenizer, kinds = "arithmetic,countdown", json_out;
  rl::EvalOptions o;
  bool mtp = false, only_mtp = false, kv_table = false;
  int64_t mtp_documents = 64;
  int64_t spec_problems = 8;  // --mtp-acceptance: problems per kind for the speculative decoding speed
};

// Held-out documents in the pretraining format, their token ids, and where each completion starts.
rl::MtpAcceptance measure_mtp(Model& m, const Tokenizer& tok, const EvalFlags& f) {
  CorpusOptions co;
  co.seed = f.o.seed;
  co.n_documents = f.mtp_documents;
  co.min_difficulty = f.o.min_difficulty;
  co.max_difficulty = f.o.max_difficulty;
  co.split = Split::HeldOut;
  co.heldout_fraction = f.o.heldout_fraction;
  bool arith = false, count = false;
  for (TaskKind k : f.o.kinds) (k == TaskKind::Arithmetic ? arith : count) = true;
  co.countdown_fraction = count ? (arith ? 0.5 : 1.0) : 0.0;
  std::vector<std::vector<int32_t>> texts;
  std::vector<int64_t> from;
  for (const CorpusDoc& d : make_corpus_docs(co)) {
    texts.push_back(tok.encode(d.text));
    from.push_back(int64_t(tok.encode(prompt_text(d.problem)).size()));
  }
  return rl::mtp_acceptance(m, texts, from);
}

// Speculative decoding at batch 1: greedy answers to held-out problems one at a time, without drafts
// and with the model's default drafts, alternating for `rounds`; decode tokens/s of each (the same
// tokens: greedy output does not depend on drafts).
struct SpecSpeed {
  int64_t draft_tokens = 0, tokens = 0;
  double plain_tps = 0, draft_tps = 0;
  DraftStats stats;
  bool same_output = true;
};

SpecSpeed measure_speculative(Model& m, const Tokenizer& tok, const EvalFlags& f, int64_t problems, int rounds) {
  rl::EvalOptions o = f.o;
  o.problems = problems;
  std::vector<GenerationRequest> reqs;
  for (const Problem& p : rl::eval_problems(o)) {
    GenerationRequest r;
    r.prompt = tok.encode(prompt_text(p));
    r.sampling.temperature = 0;
    r.stop.max_new_tokens = f.o.max_new_tokens;
    if (tok.eos_id() >= 0) r.stop.stop_ids = {tok.eos_id()};
    reqs.push_back(r);
  }
  SpecSpeed s;
  s.draft_tokens = default_speculative(m.config()).draft_tokens;
  Generator g(m, &tok);
  double plain_s = 0, draft_s = 0;
  int64_t plain_n = 0, draft_n = 0;
  for (int round = 0; round < rounds; ++round)
    for (int64_t k : {int64_t(0), s.draft_tokens})
      for (GenerationRequest r : reqs) {
        r.speculative.draft_tokens = k;
        const GenerationOutput out = g.run({r})[0];
        const int64_t n = int64_t(out.tokens.size()) - 1;  // the first comes from the prefill
        (k ? draft_s : plain_s) += out.decode_seconds;
        (k ? draft_n : plain_n) += n;
        if (k) s.stats.add(out.drafts);
      }
  s.same_output = plain_n == draft_n;
  s.tokens = plain_n / rounds;
  s.plain_tps = plain_s > 0 ? double(plain_n) / plain_s : 0;
  s.draft_tps = draft_s > 0 ? double(draft_n) / draft_s : 0;
  return s;
}

int run_eval(const EvalFlags& flags) {
  EvalFlags f = flags;
  f.o.kinds = parse_task_kinds(f.kinds);
  if (!fs::is_directory(f.model)) throw Error(f.model + ": not a model directory (expected config.json and *.safetensors)");
  const std::string tdir = f.tokenizer.empty() ? f.model : f.tokenizer;
  if (!fs::exists(fs::path(tdir) / "tokenizer.json")) throw Error(tdir + ": no tokenizer.json (pass --tokenizer DIR)");
  auto model = Model::load(f.model);
  Tokenizer tok = Tokenizer::load(tdir);
  if (tok.vocab_size() > model->config().vocab_size)
    throw Error(strfmt("%s: the tokenizer has %lld tokens but the model's vocab_size is %lld", tdir.c_str(),
                       (long long)tok.vocab_size(), (long long)model->config().vocab_size));
  if (f.only_mtp) f.mtp = true;

  // Under mpiexec the ranks share the problems (rl::evaluate); rank 0 alone measures the MTP drafts and
  // their speed, prints (the others' stdout is closed) and writes.
  Communicator& comm = world();
  f.o.comm = &comm;
  std::FILE* report = comm.rank() == 0 ? stderr : nullptr;
  nlohmann::json j = nlohmann::json::object();
  if (!f.only_mtp) {
    if (report)
      std::fprintf(report, "eval: %s, %lld problems per kind (held-out, difficulty %d..%d) greedy, %lld of them with %lld samples, up to %lld new tokens\n",
                 f.model.c_str(), (long long)rl::greedy_per_kind(f.o), f.o.min_difficulty,
                 f.o.max_difficulty, (long long)f.o.problems, (long long)f.o.samples, (long long)f.o.max_new_tokens);
    rl::EvalResult r = rl::evaluate(*model, tok, f.o, report);
    std::printf("%s\n%s", rl::eval_table_md({{fs::path(f.model).filename().string(), r}}).c_str(),
                rl::eval_breakdown_md(r).c_str());
    if (report)
      std::fprintf(report, "eval: %.1f s; %.1f%% of the sampled completions hit --max-new-tokens\n", r.seconds,
                   100 * r.truncated_rate);
    j = rl::to_json(r);
  }
  if (f.mtp) on_rank0(comm, [&] {
    const auto t0 = std::chrono::steady_clock::now();
    rl::MtpAcceptance a = measure_mtp(*model, tok, f);
    std::printf("\nMTP draft acceptance on %lld held-out documents (completion tokens): %.1f%% of %lld drafts "
                "(draft = text's token %.1f%%, main model's greedy = text's token %.1f%%) in %.1f s\n",
                (long long)f.mtp_documents, 100 * a.acceptance(), (long long)a.count,
                a.count ? 100.0 * double(a.mtp_correct) / double(a.count) : 0.0,
                a.count ? 100.0 * double(a.main_correct) / double(a.count) : 0.0, seconds_since(t0));
    j["mtp_acceptance"] = a.acceptance();
    j["mtp"] = {{"documents", f.mtp_documents}, {"drafts", a.count}, {"accepted", a.accepted},
                {"draft_correct", a.mtp_correct}, {"main_correct", a.main_correct}};
    if (default_speculative(model->config()).draft_tokens > 0) {
      const auto t1 = std::chrono::steady_clock::now();
      const SpecSpeed s = measure_speculative(*model, tok, f, f.spec_problems, 2);
      const double first = s.stats.drafted[0] ? double(s.stats.accepted[0]) / double(s.stats.drafted[0]) : 0.0;
      const double per_step = s.stats.steps ? double(s.stats.tokens) / double(s.stats.steps) : 0.0;
      std::printf("Speculative decoding at batch 1 (%lld draft%s a step, greedy, %lld held-out problems, 2 alternating "
                  "rounds): %.0f tokens/s against %.0f without drafts, %.2fx; %.1f%% of first drafts accepted, %.2f "
                  "tokens a step (%.1f s)\n",
                  (long long)s.draft_tokens, s.draft_tokens == 1 ? "" : "s", (long long)f.spec_problems, s.draft_tps,
                  s.plain_tps, s.plain_tps > 0 ? s.draft_tps / s.plain_tps : 0.0, 100 * first, per_step,
                  seconds_since(t1));
      if (!s.same_output) throw Error("eval: the greedy output with drafts differs in length from the one without");
      j["speculative"] = {{"draft_tokens", s.draft_tokens}, {"problems", f.spec_problems},
                          {"tokens_per_s", s.draft_tps}, {"tokens_per_s_without", s.plain_tps},
                          {"speedup", s.plain_tps > 0 ? s.draft_tps / s.plain_tps : 0.0},
                          {"first_draft_acceptance", first}, {"tokens_per_step", per_step}};
    }
  });
  const Config& c = model->config();
  j["kv_values_per_token"] = rl::kv_values_per_token(c);
  j["kv_values_per_token_mha"] = rl::kv_values_per_token_mha(c);
  if (f.kv_table) {
    std::vector<std::pair<std::string, Config>> rows = {{fs::path(f.model).filename().string(), c}};
    for (auto& rc : rl::reference_kv_configs()) rows.push_back(rc);
    std::printf("\n%s", rl::kv_table_md(rows).c_str());
  }
  j["model"] = f.model;
  j["options"] = {{"kinds", f.kinds}, {"min_difficulty", f.o.min_difficulty}, {"max_difficulty", f.o.max_difficulty},
                  {"problems_per_kind", f.o.problems}, {"greedy_problems_per_kind", rl::greedy_per_kind(f.o)},
                  {"samples", f.o.samples},
                  {"max_new_tokens", f.o.max_new_tokens}, {"seed", f.o.seed}};
  if (!f.json_out.empty()) on_rank0(comm, [&] { write_file_atomic(f.json_out, j.dump(2) + "\n"); });
  return 0;
}

}  // namespace

void register_eval_commands(CLI::App& app) {
  auto f = std::make_shared<EvalFlags>();
  auto* c = app.add_subcommand("eval", "pass@1 / pass@k, format rate and response length on held-out problems");
  c->add_option("-m,--model", f->model, "model directory")->required();
  c->add_option("--tokenizer", f->tokenizer, "tokenizer directory (default: the model directory)");
  c->add_option("--kinds", f->kinds, "task kinds, comma-separated: arithmetic, countdown")->capture_default_str();
  c->add_option("--min-difficulty", f->o.min_difficulty)->capture_default_str()->check(CLI::Range(1, kMaxDifficulty));
  c->add_option("--max-difficulty", f->o.max_difficulty)->capture_default_str()->check(CLI::Range(1, kMaxDifficulty));
  c->add_option("--problems", f->o.problems, "held-out problems per kind")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  c->add_option("--greedy-problems", f->o.greedy_problems,
                "held-out problems per kind for greedy pass@1 alone, at least --problems (default: --problems); "
                "the first --problems of them are also sampled")
      ->check(CLI::Range(1, 1 << 20));
  c->add_option("--samples", f->o.samples, "sampled completions per problem (pass@k up to this)")
      ->capture_default_str()->check(CLI::Range(1, 1 << 16));
  c->add_option("--temperature", f->o.temperature, "of the sampled completions (the greedy ones are greedy)")
      ->capture_default_str()->check(CLI::Range(0.0, 2.0));
  c->add_option("--top-p", f->o.top_p, "of the sampled completions")->capture_default_str()->check(CLI::Range(0.01, 1.0));
  c->add_option("--max-new-tokens", f->o.max_new_tokens)->capture_default_str()->check(CLI::Range(1, 1 << 20));
  add_draft_option(c, f->o.draft_tokens, "off by default: slower at evaluation batch sizes")->capture_default_str();
  c->add_option("--batch", f->o.batch, "sequences per generation batch")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  c->add_option("--seed", f->o.seed, "problems and sampling")->capture_default_str();
  c->add_option("--heldout-fraction", f->o.heldout_fraction, "as the corpus was made with")->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  c->add_option("--json", f->json_out, "write the figures as JSON to this file");
  c->add_flag("--mtp-acceptance", f->mtp, "also measure the MTP draft acceptance on held-out documents");
  c->add_flag("--only-mtp", f->only_mtp, "measure only the MTP draft acceptance (no generation)");
  c->add_option("--mtp-documents", f->mtp_documents, "held-out documents for --mtp-acceptance")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  c->add_option("--spec-problems", f->spec_problems,
                "held-out problems per kind for --mtp-acceptance's speculative decoding speed (batch 1)")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  c->add_flag("--kv-table", f->kv_table, "print KV values per token vs multi-head attention, with V2-Lite and V3");
  c->callback([f] { run_eval(*f); });
}

}  // namespace seek
