// corpus.cpp — the synthetic pretraining corpus (see corpus.h): problems from rl/tasks.h rendered in
// the SeekTiny chat format in the direct or worked style. Does not tokenize or shard.
#include "data/corpus.h"

#include <nlohmann/json.hpp>

#include "model/chat_template.h"
#include "model/safetensors.h"
#include "util/error.h"

namespace seek {

namespace {

void check_fraction(const char* field, double v) {
  if (!(v >= 0.0 && v <= 1.0)) throw Error(strfmt("corpus: option %s = %g is outside [0, 1]", field, v));
}

}  // namespace

double default_direct_error_rate(int difficulty) {
  static const double kRate[kMaxDifficulty + 1] = {0.0, 0.0, 0.1, 0.3, 0.6, 0.8, 0.9};
  if (difficulty < 1 || difficulty > kMaxDifficulty)
    throw Error(strfmt("corpus: difficulty = %d is outside 1..%d", difficulty, kMaxDifficulty));
  return kRate[difficulty];
}

std::string prompt_text(const Problem& p) {
  ChatOptions o;
  o.add_generation_prompt = true;
  return render_chat(ChatStyle::SeekTiny, {{"user", p.question}}, o);
}

void validate(const CorpusOptions& opt) {
  if (opt.n_documents < 0)
    throw Error(strfmt("corpus: option n_documents = %lld must be >= 0", (long long)opt.n_documents));
  check_fraction("worked_fraction", opt.worked_fraction);
  check_fraction("sloppy_fraction", opt.sloppy_fraction);
  check_fraction("countdown_fraction", opt.countdown_fraction);
  check_fraction("heldout_fraction", opt.heldout_fraction);
  if (opt.min_difficulty < 1 || opt.min_difficulty > kMaxDifficulty)
    throw Error(strfmt("corpus: option min_difficulty = %d is outside 1..%d", opt.min_difficulty, kMaxDifficulty));
  if (opt.max_difficulty < opt.min_difficulty || opt.max_difficulty > kMaxDifficulty)
    throw Error(strfmt("corpus: option max_difficulty = %d is outside min_difficulty..%d (min_difficulty = %d)",
                       opt.max_difficulty, kMaxDifficulty, opt.min_difficulty));
  if (!opt.direct_error_rate.empty()) {
    if (opt.direct_error_rate.size() != size_t(kMaxDifficulty))
      throw Error(strfmt("corpus: option direct_error_rate has %zu entries, expected %d (difficulties 1..%d)",
                         opt.direct_error_rate.size(), kMaxDifficulty, kMaxDifficulty));
    for (double r : opt.direct_error_rate) check_fraction("direct_error_rate[]", r);
  }
}

std::vector<CorpusDoc> make_corpus_docs(const CorpusOptions& opt) {
  validate(opt);
  const std::string eos(chat_tokens(ChatStyle::SeekTiny).eos);
  const uint64_t problem_seed = mix64(opt.seed, 0x9b0b1e5);
  std::vector<CorpusDoc> docs;
  docs.reserve(size_t(opt.n_documents));
  for (int64_t i = 0; i < opt.n_documents; ++i) {
    SplitMix64 rng(mix64(opt.seed, uint64_t(i)));
    TaskKind kind = rng.real() < opt.countdown_fraction ? TaskKind::Countdown : TaskKind::Arithmetic;
    int d = int(rng.range(opt.min_difficulty, opt.max_difficulty));
    bool worked = rng.real() < opt.worked_fraction;
    bool sloppy = rng.real() < opt.sloppy_fraction;
    double err_u = rng.real();
    uint64_t work_seed = rng.next(), slip_seed = rng.next(), wrong_seed = rng.next();

    CorpusDoc doc;
    doc.problem = make_split_problem(kind, d, opt.split, problem_seed, uint64_t(i), opt.heldout_fraction);
    doc.worked = worked;
    std::string completion;
    if (worked) {
      doc.sloppy = sloppy;
      Worked w = work_problem(doc.problem, work_seed, sloppy ? std::optional<uint64_t>(slip_seed) : std::nullopt);
      doc.answer = w.answer;
      completion = "<think>" + w.text + "</think><answer>" + w.answer + "</answer>";
    } else {
      double rate = opt.direct_error_rate.empty() ? default_direct_error_rate(d) : opt.direct_error_rate[d - 1];
      doc.answer = err_u < rate ? plausible_wrong_answer(doc.problem, wrong_seed) : doc.problem.answer;
      completion = "<answer>" + doc.answer + "</answer>";
    }
    doc.correct = check_answer(doc.problem, doc.answer);
    doc.text = prompt_text(doc.problem) + completion + eos;
    docs.push_back(std::move(doc));
  }
  return docs;
}

std::vector<std::string> make_corpus(const CorpusOptions& opt) {
  std::vector<CorpusDoc> docs = make_corpus_docs(opt);
  std::vector<std::string> out;
  out.reserve(docs.size());
  for (CorpusDoc& d : docs) out.push_back(std::move(d.text));
  return out;
}

std::string document_body(const std::string& document) {
  const ChatTokens& t = chat_tokens(ChatStyle::SeekTiny);
  std::string_view s(document);
  if (s.substr(0, t.bos.size()) == t.bos) s.remove_prefix(t.bos.size());
  if (s.size() >= t.eos.size() && s.substr(s.size() - t.eos.size()) == t.eos) s.remove_suffix(t.eos.size());
  return std::string(s);
}

void write_corpus(const std::string& path, const CorpusOptions& opt) {
  std::vector<CorpusDoc> docs = make_corpus_docs(opt);
  std::string out;
  for (const CorpusDoc& d : docs) {
    nlohmann::ordered_json j;
    j["text"] = document_body(d.text);
    j["kind"] = task_kind_name(d.problem.kind);
    j["difficulty"] = d.problem.difficulty;
    j["style"] = d.worked ? "worked" : "direct";
    j["sloppy"] = d.sloppy;
    j["correct"] = d.correct;
    j["split"] = split_name(opt.split);
    j["question"] = d.problem.question;
    j["answer"] = d.answer;
    out += j.dump();
    out += '\n';
  }
  write_file_atomic(path, out);
}

}  // namespace seek
