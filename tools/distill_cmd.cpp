// distill_cmd.cpp — `seek distill` (rejection-sample a teacher, then SFT a student on the kept traces)
// and `seek sft` (the SFT alone, on a traces file): flags onto src/distill/. Progress on stderr.
//
//   OUT/traces.jsonl   the kept traces (reused when present: a rerun skips the sampling)
//   OUT/rejection.json the sampling statistics and wall time
//   OUT/student/       the distilled student (HF layout + tokenizer, metrics.jsonl, loss.svg, sft.json);
//                      written only when SFT completes (a rerun skips it when present)
//   OUT/distill.json   both stages' figures, for the report card
#include <filesystem>
#include <fstream>

#include "commands.h"
#include "distill/rejection.h"
#include "distill/sft.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace seek {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

json stats_json(const distill::RejectionStats& s) {
  return {{"questions", s.questions}, {"samples", s.samples}, {"correct", s.correct}, {"formatted", s.formatted},
          {"correct_and_formatted", s.correct_and_formatted}, {"duplicates", s.duplicates}, {"capped", s.capped},
          {"kept", s.kept}, {"questions_with_trace", s.questions_with_trace}, {"share_with_trace", s.share_with_trace},
          {"tokens", s.tokens}, {"seconds", s.seconds}};
}

json sft_result_json(const distill::SftResult& r) {
  return {{"steps", r.steps}, {"planned_steps", r.planned_steps}, {"traces", r.traces},
          {"completion_tokens", r.completion_tokens}, {"first_loss", r.first_loss}, {"last_loss", r.last_loss},
          {"seconds", r.seconds}, {"total_seconds", r.total_seconds}, {"stopped_by_time", r.stopped_by_time}};
}

void add_sft_options(CLI::App* c, distill::SftOptions& o) {
  c->add_option("--steps", o.steps, "optimizer steps (0 = from --epochs)")->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--epochs", o.epochs, "passes over the traces when --steps is 0")->capture_default_str();
  c->add_option("--batch", o.batch, "sequences per step")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  c->add_option("--lr", o.lr)->capture_default_str();
  c->add_option("--min-lr-ratio", o.min_lr_ratio)->capture_default_str();
  c->add_option("--warmup", o.warmup, "warmup steps (at most a tenth of the steps)")->capture_default_str();
  c->add_option("--clip", o.clip, "global gradient norm limit (0 = off)")->capture_default_str();
  c->add_option("--weight-decay", o.weight_decay)->capture_default_str();
  c->add_option("--max-seconds", o.max_seconds, "wall-clock budget of the SFT loop (0 = none)")->capture_default_str();
  c->add_option("--seed", o.seed, "data order (and, for distill, sampling and questions)")->capture_default_str();
  c->add_option("--log-every", o.log_every)->capture_default_str();
  c->add_option("--save-every", o.save_every, "checkpoint interval in steps (a killed run resumes from the last)")
      ->capture_default_str();
}

}  // namespace

void register_distill_commands(CLI::App& app) {
  // seek distill
  static std::string teacher, student, out;
  static distill::QuestionOptions qo;
  static distill::RejectionOptions ro;
  static distill::SftOptions so;
  static std::vector<std::string> kinds = {"arithmetic", "countdown"};
  static bool allow_no_traces = false;
  auto* d = app.add_subcommand("distill", "Rejection-sample a teacher on training questions, then SFT a student on the "
                                          "verified-correct traces (resumable: reuses OUT/traces.jsonl)");
  d->add_option("--teacher", teacher, "teacher model directory (with tokenizer.json)")->required();
  d->add_option("--student", student, "student model directory to fine-tune (its starting weights)")->required();
  d->add_option("--out", out, "stage directory: traces.jsonl, rejection.json, student/, distill.json")->required();
  d->add_option("--questions", qo.count, "training questions asked")->capture_default_str()->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  d->add_option("--samples", ro.samples, "teacher completions per question (K)")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  d->add_option("--max-per-question", ro.max_per_question, "traces kept per question at most")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  d->add_option("--max-new-tokens", ro.max_new_tokens)->capture_default_str()->check(CLI::Range(1, 1 << 20));
  d->add_option("--temperature", ro.temperature, "teacher sampling temperature")->capture_default_str();
  d->add_option("--gen-batch", ro.batch, "sequences per generation batch")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  d->add_option("--min-difficulty", qo.min_difficulty)->capture_default_str();
  d->add_option("--max-difficulty", qo.max_difficulty)->capture_default_str();
  d->add_option("--kinds", kinds, "task kinds: arithmetic,countdown")->delimiter(',')->capture_default_str();
  d->add_flag("--allow-no-traces", allow_no_traces,
              "when the teacher gets nothing right, write the student unchanged (recorded as such) instead of failing");
  add_sft_options(d, so);
  d->callback([] {
    // Under mpiexec: every rank samples its share of the questions and trains on its share of each
    // batch (rl::chunked_rollouts, distill::sft); rank 0 alone writes and reports.
    Communicator& comm = world();
    const bool lead = comm.rank() == 0;
    std::FILE* report = lead ? stderr : nullptr;
    auto say = [&](auto... args) {
      if (report) std::fprintf(report, args...);
    };
    const auto t0 = std::chrono::steady_clock::now();
    on_rank0(comm, [&] { fs::create_directories(out); });
    const fs::path traces_path = fs::path(out) / "traces.jsonl";
    const fs::path student_out = fs::path(out) / "student";
    const Tokenizer tok = Tokenizer::load(teacher);
    // The student learns the teacher's token ids: it must use the same tokenizer.
    const fs::path st = fs::path(student) / "tokenizer.json";
    if (fs::exists(st) && file_bytes(st) != file_bytes(fs::path(teacher) / "tokenizer.json"))
      throw Error(st.string() + ": differs from the teacher's tokenizer.json (the student must share the teacher's vocabulary)");
    json summary = json::object();
    const fs::path summary_path = fs::path(out) / "distill.json";
    if (fs::exists(summary_path)) {
      try {
        summary = json::parse(file_bytes(summary_path));
      } catch (const json::exception&) {
        summary = json::object();
      }
    }
    std::vector<distill::Trace> traces;
    if (fs::exists(traces_path)) {
      traces = distill::load_traces(traces_path.string());
      say("distill: reusing %zu traces from %s\n", traces.size(), traces_path.c_str());
    } else {
      {
        std::string list;
        for (const std::string& k : kinds) list += (list.empty() ? "" : ",") + k;
        qo.kinds = parse_task_kinds(list);
      }
      qo.seed = so.seed;
      ro.seed = so.seed;
      const std::vector<Problem> questions = distill::training_questions(qo);
      say("distill: asking %s %zu training questions, %lld samples each%s\n", teacher.c_str(), questions.size(),
          (long long)ro.samples, comm.size() > 1 ? (", over " + comm.describe()).c_str() : "");
      auto model = Model::load(teacher);
      distill::RejectionStats rs;
      ro.comm = &comm;
      traces = distill::rejection_sample(*model, tok, questions, ro, &rs, report);
      summary["rejection"] = stats_json(rs);
      summary["rejection"]["options"] = {{"questions", qo.count}, {"samples", ro.samples},
                                         {"max_per_question", ro.max_per_question}, {"temperature", ro.temperature},
                                         {"max_new_tokens", ro.max_new_tokens}, {"min_difficulty", qo.min_difficulty},
                                         {"max_difficulty", qo.max_difficulty}, {"kinds", kinds}, {"seed", so.seed}};
      on_rank0(comm, [&] {
        distill::save_traces(traces_path.string(), traces);
        write_file_atomic((fs::path(out) / "rejection.json").string(), summary["rejection"].dump(2) + "\n");
        write_file_atomic(summary_path.string(), summary.dump(2) + "\n");
      });
      say("distill: kept %lld traces (%.1f%% of questions have one) in %.1f s\n", (long long)rs.kept,
          100 * rs.share_with_trace, rs.seconds);
    }
    if (traces.empty() && allow_no_traces) {
      // Nothing to learn from: the "distilled" student is its base, and the record says so.
      on_rank0(comm, [&] {
        if (!fs::exists(student_out / "sft.json")) {
          const fs::path tmp = student_out.string() + ".partial";
          fs::remove_all(tmp);
          fs::copy(student, tmp, fs::copy_options::recursive);
          write_file_atomic((tmp / "sft.json").string(), json{{"steps", 0}, {"traces", 0}, {"note", "no traces: the student is its base"}}.dump(2) + "\n");
          fs::rename(tmp, student_out);
        }
        summary["sft"] = json{{"steps", 0}, {"traces", 0}, {"seconds", 0.0}};
        summary["student"] = student_out.string();
        summary["wall_seconds_this_run"] = seconds_since(t0);
        write_file_atomic(summary_path.string(), summary.dump(2) + "\n");
      });
      say("distill: no traces; %s is the student base, unchanged\n", student_out.c_str());
      return;
    }
    if (traces.empty())
      throw Error("distill: the teacher wrote no correct, well-formed completion, so there is nothing to distill; delete " +
                  traces_path.string() + " to sample again (more --samples, easier --max-difficulty)");
    if (fs::exists(student_out / "sft.json")) {
      say("distill: %s is complete; nothing to do\n", student_out.c_str());
      return;
    }
    so.model = student;
    so.tokenizer = teacher;
    so.out = student_out.string();
    so.comm = &comm;
    const distill::SftResult r = distill::sft(so, traces);
    summary["sft"] = sft_result_json(r);
    summary["student"] = student_out.string();
    summary["wall_seconds_this_run"] = seconds_since(t0);
    on_rank0(comm, [&] { write_file_atomic(summary_path.string(), summary.dump(2) + "\n"); });
    say("distill: student %s: loss %.4f -> %.4f in %lld steps, %.1f s of SFT%s\n", student_out.c_str(), r.first_loss,
        r.last_loss, (long long)r.steps, r.seconds, r.stopped_by_time ? " (wall-clock budget)" : "");
  });

  // seek sft
  static distill::SftOptions fo;
  static std::string traces_file;
  auto* s = app.add_subcommand("sft", "Fine-tune a model on reasoning traces (loss on the completion tokens only)");
  s->add_option("--model", fo.model, "model directory to fine-tune")->required();
  s->add_option("--traces", traces_file, "traces.jsonl written by `seek distill`")->required();
  s->add_option("--out", fo.out, "output model directory (written when SFT completes)")->required();
  s->add_option("--tokenizer", fo.tokenizer, "directory whose tokenizer.json is copied (default: --model)");
  add_sft_options(s, fo);
  s->callback([] {
    const std::vector<distill::Trace> traces = distill::load_traces(traces_file);
    const distill::SftResult r = distill::sft(fo, traces);
    if (world().rank() == 0)
      std::fprintf(stderr, "sft: %s: loss %.4f -> %.4f in %lld steps, %.1f s%s\n", fo.out.c_str(), r.first_loss,
                   r.last_loss, (long long)r.steps, r.seconds, r.stopped_by_time ? " (wall-clock budget)" : "");
  });
}

}  // namespace seek
