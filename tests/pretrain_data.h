// pretrain_data.h — a small pretraining set for tests: a BPE tokenizer trained on the synthetic corpus,
// train/val shards with data.json, and a tiny V3 config of that vocabulary.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/corpus.h"
#include "data/shards.h"
#include "model/bpe_trainer.h"
#include "model/tokenizer.h"
#include "test_util.h"
#include "train/pretrain.h"

namespace seek::test {

// A tokenizer trained on the corpus, train/val shards, data.json, and a tiny V3 config of that vocabulary.
struct Dataset {
  TempDir dir;
  std::string data, config;
  Dataset() {
    data = dir / "data";
    std::filesystem::create_directories(data);
    CorpusOptions co;
    co.n_documents = 400;
    co.max_difficulty = 3;
    std::vector<std::string> docs = make_corpus(co);
    write_tokenizer_dir(dir / "tok", train_bpe(docs, BpeTrainOptions{320, 2}));
    Tokenizer tok = Tokenizer::load(dir / "tok");
    std::vector<std::vector<int32_t>> train, val;
    for (size_t i = 0; i < docs.size(); ++i) (i % 10 == 0 ? val : train).push_back(tok.encode(docs[i]));
    write_shard(data + "/train-000.tok", train, tok.vocab_size());
    write_shard(data + "/val-000.tok", val, tok.vocab_size());
    nlohmann::json manifest = {{"train", {{"shards", {{{"file", "train-000.tok"}}}}}},
                               {"val", {{"shards", {{{"file", "val-000.tok"}}}}}}};
    write_text(data + "/data.json", manifest.dump());
    nlohmann::json cfg = tiny_config("deepseek_v3");
    cfg["vocab_size"] = tok.vocab_size();
    config = dir / "config.json";
    write_text(config, cfg.dump());
  }
  train::PretrainOptions options(const std::string& out, int64_t steps) const {
    train::PretrainOptions o;
    o.config = config;
    o.data = data;
    o.out = out;
    o.steps = steps;
    o.batch = 4;
    o.seq_len = 32;
    o.warmup = 2;
    o.eval_every = steps;
    o.eval_batches = 4;
    o.save_every = 2;
    o.log_every = 1000;
    return o;
  }
};

}  // namespace seek::test
