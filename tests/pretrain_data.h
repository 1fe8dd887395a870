// pretrain_data.h — a small pretraining set for tests: a BPE tokenizer trained on the synthetic corpus,
// train/val shards with data.json, and a tiny V3 config of that vocabulary.
#pragma once
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/corpus.h"
#include "data/shards.h"
#include "model/bpe_trainer.h"
#include "model/safetensors.h"
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

// How far apart two checkpoints' parameters are: the largest |a - b| over every element, and the L2
// norm of a - b over the L2 norm of what training moved (b - the run's initial model, `init`).
struct ParamDiff {
  double max_abs = 0, rel_to_update = 0;
};
inline ParamDiff param_diff(const std::string& a, const std::string& b, const std::string& init) {
  SafetensorsFile fa(a + "/model.safetensors"), fb(b + "/model.safetensors"), fi(init + "/model.safetensors");
  ParamDiff d;
  double diff2 = 0, moved2 = 0;
  for (const auto& [name, info] : fb.tensors()) {
    const TensorInfo *ta = fa.find(name), *tb = fb.find(name), *ti = fi.find(name);
    EXPECT_TRUE(ta && ti && ta->numel() == tb->numel()) << name;
    if (!ta || !ti || ta->numel() != tb->numel()) continue;
    const auto* x = reinterpret_cast<const float*>(ta->data);
    const auto* y = reinterpret_cast<const float*>(tb->data);
    const auto* z = reinterpret_cast<const float*>(ti->data);
    for (int64_t i = 0; i < tb->numel(); ++i) {
      d.max_abs = std::max(d.max_abs, double(std::fabs(x[i] - y[i])));
      diff2 += double(x[i] - y[i]) * double(x[i] - y[i]);
      moved2 += double(y[i] - z[i]) * double(y[i] - z[i]);
    }
  }
  d.rel_to_update = std::sqrt(diff2 / std::max(moved2, 1e-300));
  return d;
}

}  // namespace seek::test
