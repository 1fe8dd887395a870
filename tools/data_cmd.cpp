// data_cmd.cpp — `seek corpus` and `seek data`. Thin: flags, reading text files and printing; the
// shard format is src/data/shards.h.
//
//   seek data --tokenizer DIR --out DIR [--val-fraction 0.05] [--seed N] [--shard-tokens N] FILES...
//
// Inputs: a file ending in .jsonl holds one JSON object per line with a string "text" (blank lines are
// skipped; a line that is not such an object is an Error naming file:line). Any other file is plain
// text whose documents are separated by blank lines (lines of only spaces, tabs or \r); a document is
// its lines joined with "\n", without a trailing newline. Empty documents are skipped.
// Each document becomes [bos] + encode(text) + [eos] (bos / eos only when the tokenizer has them) and
// goes to validation when a hash of its text and --seed falls below --val-fraction, so the split does
// not depend on file order and duplicated texts land on the same side. Documents are appended in input
// order to train-000.tok, train-001.tok, ... (val-000.tok, ...); a shard is closed once it holds at least
// --shard-tokens tokens (documents are never split). data.json, written last and atomically, lists the
// shards with their counts and checksums, the tokenizer's vocab size and bos/eos, the seed and inputs.
// Each input file is read whole into memory (encoding runs on OpenMP threads, 2048 documents at a time);
// a shard's documents are held until it is written. Progress (documents/s, ETA by bytes) goes to stderr
// every 2 s. Not done: inputs larger than memory, deduplication, quality filters; stale shards of an
// earlier run in --out are left alone (data.json names the current ones).
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "data/corpus.h"
#include "data/loader.h"
#include "data/shards.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "tensor/backend.h"
#include "util/error.h"

namespace seek {

// ======================================== seek data ========================================

namespace {

struct DataFlags {
  std::string tokenizer, out;
  double val_fraction = 0.05;
  uint64_t seed = 0;
  int64_t shard_tokens = 100'000'000;
  std::vector<std::string> files;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open input text");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> split_documents(const std::string& path, const std::string& bytes) {
  std::vector<std::string> docs;
  size_t pos = 0, line_no = 0;
  std::string cur;
  bool jsonl = ends_with(path, ".jsonl");
  while (pos < bytes.size()) {
    size_t nl = bytes.find('\n', pos);
    size_t end = nl == std::string::npos ? bytes.size() : nl;
    std::string_view line(bytes.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    bool blank = line.find_first_not_of(" \t\r") == std::string_view::npos;
    if (jsonl) {
      if (blank) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        throw Error(strfmt("%s:%zu: not valid JSON: %s", path.c_str(), line_no, e.what()));
      }
      if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
        throw Error(strfmt("%s:%zu: expected an object with a string field \"text\"", path.c_str(), line_no));
      std::string text = j["text"].get<std::string>();
      if (!text.empty()) docs.push_back(std::move(text));
    } else if (blank) {
      if (!cur.empty()) docs.push_back(std::move(cur));
      cur.clear();
    } else {
      if (!cur.empty()) cur += '\n';
      cur.append(line);
    }
  }
  if (!cur.empty()) docs.push_back(std::move(cur));
  return docs;
}

bool goes_to_validation(const std::string& text, uint64_t seed, double val_fraction) {
  uint64_t h = fnv1a64(text.data(), text.size());
  uint64_t x = SplitMix64(h ^ SplitMix64(seed).next()).next();
  return double(x >> 11) * 0x1p-53 < val_fraction;
}

std::string hex64(uint64_t v) { return strfmt("%016llx", (unsigned long long)v); }

// Documents of one split, flushed to numbered shards.
struct SplitWriter {
  std::string name, dir;
  int64_t vocab = 0, shard_tokens = 0;
  std::vector<std::vector<int32_t>> pending;
  uint64_t pending_tokens = 0, docs = 0, tokens = 0;
  nlohmann::ordered_json shards = nlohmann::ordered_json::array();

  void add(std::vector<int32_t>&& d) {
    pending_tokens += d.size();
    pending.push_back(std::move(d));
    if (pending_tokens >= uint64_t(shard_tokens)) flush();
  }
  void flush() {
    if (pending.empty()) return;
    std::string file = strfmt("%s-%03zu.tok", name.c_str(), shards.size());
    ShardInfo info = write_shard((std::filesystem::path(dir) / file).string(), pending, vocab);
    shards.push_back({{"file", file}, {"documents", info.n_docs}, {"tokens", info.n_tokens},
                      {"token_bytes", info.token_bytes}, {"checksum", hex64(info.checksum)}});
    docs += info.n_docs;
    tokens += info.n_tokens;
    pending.clear();
    pending_tokens = 0;
  }
  nlohmann::ordered_json summary() const { return {{"documents", docs}, {"tokens", tokens}, {"shards", shards}}; }
};

void run_data(const DataFlags& f) {
  if (f.files.empty()) throw Error("data: no input FILES given");
  if (!(f.val_fraction >= 0 && f.val_fraction < 1))
    throw Error(strfmt("--val-fraction %g: expected a fraction in [0, 1)", f.val_fraction));
  if (f.shard_tokens <= 0) throw Error(strfmt("--shard-tokens %lld: expected a positive count", (long long)f.shard_tokens));
  Tokenizer tok = Tokenizer::load(f.tokenizer);
  const int64_t vocab = tok.vocab_size();
  const int32_t bos = tok.bos_id(), eos = tok.eos_id();

  uint64_t total_bytes = 0;
  for (const std::string& p : f.files) {
    struct stat st;
    if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) throw Error(p + ": cannot open input text (not a file)");
    total_bytes += uint64_t(st.st_size);
  }
  std::error_code ec;
  std::filesystem::create_directories(f.out, ec);
  if (ec) throw Error(f.out + ": cannot create the output directory: " + ec.message());

  SplitWriter train{"train", f.out, vocab, f.shard_tokens, {}}, val{"val", f.out, vocab, f.shard_tokens, {}};
  nlohmann::ordered_json inputs = nlohmann::ordered_json::array();
  auto t0 = std::chrono::steady_clock::now();
  double last_report = 0;
  uint64_t done_bytes = 0, done_docs = 0;
  const size_t chunk = 2048;
  for (const std::string& path : f.files) {
    std::string bytes = read_file_bytes(path);
    std::vector<std::string> docs = split_documents(path, bytes);
    bytes = std::string();
    for (size_t c0 = 0; c0 < docs.size(); c0 += chunk) {
      size_t c1 = std::min(docs.size(), c0 + chunk);
      std::vector<std::vector<int32_t>> ids(c1 - c0);
      parallel_tasks(int64_t(c1 - c0), [&](int64_t j, int) {
        std::vector<int32_t>& d = ids[size_t(j)];
        d = tok.encode(docs[c0 + size_t(j)], bos >= 0);
        if (eos >= 0) d.push_back(eos);
      });
      for (size_t i = c0; i < c1; ++i) {
        (goes_to_validation(docs[i], f.seed, f.val_fraction) ? val : train).add(std::move(ids[i - c0]));
        done_bytes += docs[i].size();
      }
      done_docs += c1 - c0;
      double s = seconds_since(t0);
      if (s - last_report >= 2.0) {
        last_report = s;
        double rate = done_bytes / s;
        double eta = rate > 0 && total_bytes > done_bytes ? (total_bytes - done_bytes) / rate : 0;
        std::fprintf(stderr, "seek data: %llu documents, %.1f / %.1f MB, %.0f documents/s, ETA %.0f s\n",
                     (unsigned long long)done_docs, done_bytes / 1e6, total_bytes / 1e6, done_docs / s, eta);
      }
    }
    inputs.push_back({{"file", path}, {"documents", docs.size()}});
  }
  train.flush();
  val.flush();
  if (train.docs + val.docs == 0) throw Error("data: the input files hold no documents");

  nlohmann::ordered_json m;
  m["format"] = "seek token shards";
  m["version"] = kShardVersion;
  m["tokenizer"] = {{"path", f.tokenizer}, {"vocab_size", vocab}, {"bos_id", bos}, {"eos_id", eos}};
  m["seed"] = f.seed;
  m["val_fraction"] = f.val_fraction;
  m["shard_tokens"] = f.shard_tokens;
  m["documents"] = "plain text: split on blank lines; .jsonl: the \"text\" field; bos + text + eos";
  m["inputs"] = inputs;
  m["train"] = train.summary();
  m["val"] = val.summary();
  write_file_atomic((std::filesystem::path(f.out) / "data.json").string(), m.dump(2) + "\n");
  double s = seconds_since(t0);
  std::printf("%llu documents (%.1f MB) in %.1f s -> %s: train %llu documents, %llu tokens in %zu shards; "
              "val %llu documents, %llu tokens in %zu shards\n",
              (unsigned long long)(train.docs + val.docs), done_bytes / 1e6, s, f.out.c_str(),
              (unsigned long long)train.docs, (unsigned long long)train.tokens, train.shards.size(),
              (unsigned long long)val.docs, (unsigned long long)val.tokens, val.shards.size());
}

void register_data_command(CLI::App& app) {
  auto f = std::make_shared<DataFlags>();
  CLI::App* c = app.add_subcommand("data", "tokenize text files into token shards (train-*.tok, val-*.tok, data.json)");
  c->add_option("--tokenizer", f->tokenizer, "directory with tokenizer.json (a model dir works), or the file")->required();
  c->add_option("--out", f->out, "output directory")->required();
  c->add_option("--val-fraction", f->val_fraction, "share of documents for validation, by a hash of the text")
      ->capture_default_str();
  c->add_option("--seed", f->seed, "seed of the train/validation split")->capture_default_str();
  c->add_option("--shard-tokens", f->shard_tokens, "close a shard once it holds this many tokens")->capture_default_str();
  c->add_option("files", f->files, "text files (.jsonl: a \"text\" field per line; others: blank-line separated)")
      ->required();
  c->callback([f] { run_data(*f); });
}

}  // namespace

// ====================================== registration ======================================

// ---- seek corpus: the built-in synthetic reasoning corpus (src/data/corpus.h) -----------------------
void register_corpus_command(CLI::App& app) {
  static CorpusOptions co;
  static std::string out, split = "train";
  auto* c = app.add_subcommand("corpus", "Write the synthetic reasoning corpus (arithmetic, Countdown) as JSON lines");
  c->add_option("--out", out, "output .jsonl file")->required();
  c->add_option("-n,--documents", co.n_documents)->capture_default_str()->check(CLI::Range(int64_t(1), int64_t(1) << 32));
  c->add_option("--seed", co.seed)->capture_default_str();
  c->add_option("--worked-fraction", co.worked_fraction, "share written step by step in <think>")->capture_default_str();
  c->add_option("--sloppy-fraction", co.sloppy_fraction, "share of worked solutions with a slip")->capture_default_str();
  c->add_option("--min-difficulty", co.min_difficulty)->capture_default_str();
  c->add_option("--max-difficulty", co.max_difficulty)->capture_default_str();
  c->add_option("--countdown-fraction", co.countdown_fraction)->capture_default_str();
  c->add_option("--split", split, "train or heldout")->capture_default_str();
  c->callback([] {
    if (split == "train") co.split = Split::Train;
    else if (split == "heldout") co.split = Split::HeldOut;
    else throw Error("--split " + split + ": expected train or heldout");
    write_corpus(out, co);
    std::fprintf(stderr, "wrote %lld documents to %s\n", (long long)co.n_documents, out.c_str());
  });
}

void register_data_commands(CLI::App& app) {
  register_data_command(app);    // seek data
  register_corpus_command(app);  // seek corpus
}

}  // namespace seek
