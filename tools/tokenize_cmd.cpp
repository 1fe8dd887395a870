// tokenize_cmd.cpp — `seek tokenize` (text to ids, for debugging and checks) and `seek tokenizer train`
// (a byte-level BPE tokenizer from text files). Thin: flags, file reading and printing only.
//
//   seek tokenize --tokenizer DIR [--pieces] [--bos] TEXT    TEXT "-" reads stdin exactly (no stripping)
//   seek tokenizer train --vocab-size N --out DIR [--min-frequency F] FILES...
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "model/bpe_trainer.h"
#include "model/tokenizer.h"
#include "util/error.h"

namespace seek {

namespace {

struct TokenizeFlags {
  std::string tokenizer, text;
  bool pieces = false, bos = false;
};

struct TrainFlags {
  int64_t vocab_size = 0;
  int64_t min_frequency = 2;
  bool split_digits = false;
  std::string out;
  std::vector<std::string> files;
};

std::string read_all(std::istream& in) {
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void run_tokenize(const TokenizeFlags& f) {
  Tokenizer tok = Tokenizer::load(f.tokenizer);
  std::string text = f.text;
  if (text == "-") {
    std::ios::sync_with_stdio(false);
    text = read_all(std::cin);
  }
  std::vector<int32_t> ids = tok.encode(text, f.bos);
  if (!f.pieces) {
    std::printf("%s\n", nlohmann::json(ids).dump().c_str());
    return;
  }
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    nlohmann::ordered_json o = {{"id", ids[i]}, {"piece", std::string(tok.piece(ids[i]))}, {"special", tok.is_special(ids[i])}};
    out += (i ? ",\n " : "\n ") + o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  out += ids.empty() ? "]\n" : "\n]\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
}

void run_train(const TrainFlags& f) {
  if (f.files.empty()) throw Error("tokenizer train: no input FILES given");
  std::vector<std::string> texts;
  size_t bytes = 0;
  for (const std::string& path : f.files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open training text");
    texts.push_back(read_all(in));
    bytes += texts.back().size();
  }
  auto t0 = std::chrono::steady_clock::now();
  TrainedTokenizer t = train_bpe(texts, {f.vocab_size, f.min_frequency, f.split_digits});
  double s = seconds_since(t0);
  write_tokenizer_dir(f.out, t);
  std::printf("trained on %.2f MB in %.2f s: vocab %lld (%lld merges)%s -> %s/tokenizer.json\n", bytes / 1e6, s,
              (long long)t.vocab_size, (long long)t.n_merges,
              t.vocab_size < f.vocab_size ? " (no more pairs occur --min-frequency times)" : "", f.out.c_str());
}

}  // namespace

void register_tokenizer_commands(CLI::App& app) {
  auto tf = std::make_shared<TokenizeFlags>();
  CLI::App* c = app.add_subcommand("tokenize", "print the token ids of TEXT as a JSON array");
  c->add_option("--tokenizer", tf->tokenizer, "directory with tokenizer.json (a model dir works), or the file")->required();
  c->add_option("text", tf->text, "the text; - reads stdin exactly")->required();
  c->add_flag("--pieces", tf->pieces, "print {\"id\", \"piece\", \"special\"} objects instead of ids");
  c->add_flag("--bos", tf->bos, "prepend the bos token");
  c->callback([tf] { run_tokenize(*tf); });

  auto tr = std::make_shared<TrainFlags>();
  CLI::App* tc = app.add_subcommand("tokenizer", "tokenizer tools");
  tc->require_subcommand(1);
  CLI::App* train = tc->add_subcommand("train", "train a byte-level BPE tokenizer (HF tokenizer.json) on text files");
  train->add_option("--vocab-size", tr->vocab_size, "vocabulary size, the 10 special tokens and 256 bytes included")
      ->required();
  train->add_option("--out", tr->out, "output directory")->required();
  train->add_option("--min-frequency", tr->min_frequency, "merge only pairs seen at least this often")->capture_default_str();
  train->add_flag("--split-digits", tr->split_digits, "every digit its own token (no merge joins digits)");
  train->add_option("files", tr->files, "training text files")->required();
  train->callback([tr] { run_train(*tr); });
}

}  // namespace seek
