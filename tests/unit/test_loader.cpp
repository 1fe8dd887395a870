// test_loader.cpp — the training loader and validation set: determinism by seed, exact restore in the
// middle of an epoch and across epochs, every token of an epoch served once (but the documented
// remainder), a stable validation set, refusals of foreign states and too-small data, and `seek data`
// end to end (documents, bos/eos, a split independent of file order, errors).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sys/wait.h>

#include "data/loader.h"
#include "model/tokenizer.h"
#include "test_util.h"
#include "util/error.h"

namespace seek {
namespace {

// Documents of varied lengths whose tokens are all distinct (0, 1, 2, ... in file order), over shards.
struct Corpus {
  test::TempDir dir;
  std::vector<std::string> shards;
  std::vector<std::vector<int32_t>> docs;  // global document order
  uint64_t n_tokens = 0;
  Corpus(int n_shards, int docs_per_shard, int64_t vocab = 1 << 20, uint64_t seed = 7) {
    SplitMix64 rng(seed);
    int32_t next = 0;
    for (int s = 0; s < n_shards; ++s) {
      std::vector<std::vector<int32_t>> part;
      for (int d = 0; d < docs_per_shard; ++d) {
        std::vector<int32_t> doc(rng.below(40));  // empty documents included
        for (int32_t& t : doc) t = int32_t(next++ % vocab);
        n_tokens += doc.size();
        part.push_back(doc);
        docs.push_back(doc);
      }
      shards.push_back(dir / ("train-" + std::to_string(s) + ".tok"));
      write_shard(shards.back(), part, vocab);
    }
  }
};

TEST(Loader, SplitMix64MatchesTheReference) {
  SplitMix64 r(0);
  EXPECT_EQ(r.next(), 0xe220a8397b1dcdafull);
  EXPECT_EQ(r.next(), 0x6e789e6aa1b965f4ull);
  EXPECT_EQ(r.next(), 0x06c45d188009454full);
}

TEST(Loader, PermutationIsAPermutationAndChangesPerEpoch) {
  auto p0 = epoch_permutation(1000, 42, 0), p1 = epoch_permutation(1000, 42, 1);
  auto q0 = epoch_permutation(1000, 43, 0);
  EXPECT_EQ(p0, epoch_permutation(1000, 42, 0));
  EXPECT_NE(p0, p1);
  EXPECT_NE(p0, q0);
  std::vector<uint64_t> s = p0;
  std::sort(s.begin(), s.end());
  for (uint64_t i = 0; i < 1000; ++i) EXPECT_EQ(s[i], i);
  EXPECT_TRUE(epoch_permutation(0, 1, 0).empty());
  EXPECT_EQ(epoch_permutation(1, 1, 5), std::vector<uint64_t>{0});
}

TEST(Loader, SameSeedSameBatches) {
  Corpus c(3, 50);
  LoaderOptions o{4, 15, 123};
  DataLoader a(c.shards, o), b(c.shards, o);
  o.seed = 124;
  DataLoader other(c.shards, o);
  bool differs = false;
  for (uint64_t i = 0; i < 3 * a.batches_per_epoch() + 2; ++i) {
    Batch x = a.next(), y = b.next(), z = other.next();
    ASSERT_EQ(x.tokens, y.tokens) << "batch " << i;
    EXPECT_EQ(x.epoch, y.epoch);
    ASSERT_EQ(x.tokens.size(), size_t(4 * 16));
    differs |= x.tokens != z.tokens;
  }
  EXPECT_TRUE(differs);
}

TEST(Loader, InputsAndTargetsAreShiftedRows) {
  Corpus c(1, 30);
  DataLoader l(c.shards, {2, 7, 1});
  Batch b = l.next();
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t t = 0; t + 1 < 7; ++t) EXPECT_EQ(b.target(r, t), b.input(r, t + 1));
}

TEST(Loader, EveryTokenOfAnEpochOnceButTheRemainder) {
  Corpus c(3, 40);
  const int64_t B = 3, T = 10;
  DataLoader l(c.shards, {B, T, 9});
  uint64_t per_batch = B * (T + 1);
  ASSERT_EQ(l.batches_per_epoch(), c.n_tokens / per_batch);
  for (uint64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<int32_t> seen;
    for (uint64_t i = 0; i < l.batches_per_epoch(); ++i) {
      Batch b = l.next();
      EXPECT_EQ(b.epoch, epoch);
      seen.insert(seen.end(), b.tokens.begin(), b.tokens.end());
    }
    // The epoch's stream is its documents in permuted order; the served tokens are its prefix.
    std::vector<int32_t> stream;
    for (uint64_t d : epoch_permutation(c.docs.size(), 9, epoch))
      stream.insert(stream.end(), c.docs[d].begin(), c.docs[d].end());
    ASSERT_EQ(stream.size(), c.n_tokens);
    ASSERT_EQ(seen.size(), l.batches_per_epoch() * per_batch);
    EXPECT_TRUE(std::equal(seen.begin(), seen.end(), stream.begin()));
    std::set<int32_t> distinct(seen.begin(), seen.end());
    EXPECT_EQ(distinct.size(), seen.size()) << "a token served twice in epoch " << epoch;
    EXPECT_EQ(c.n_tokens - seen.size(), c.n_tokens % per_batch);  // the documented remainder
  }
}

TEST(Loader, RestoreContinuesBitIdentically) {
  Corpus c(2, 60);
  LoaderOptions o{2, 9, 77};
  DataLoader full(c.shards, o);
  const uint64_t bpe = full.batches_per_epoch();
  std::vector<std::vector<int32_t>> ref;
  for (uint64_t i = 0; i < 4 * bpe; ++i) ref.push_back(full.next().tokens);
  // Stop at several points: mid-epoch, exactly at an epoch's end, in a later epoch.
  for (uint64_t stop : {uint64_t(0), uint64_t(1), bpe / 2, bpe, bpe + 3, 2 * bpe - 1}) {
    DataLoader first(c.shards, o);
    for (uint64_t i = 0; i < stop; ++i) first.next();
    LoaderState s = loader_state_from_json(nlohmann::json::parse(to_json(first.state()).dump()));
    EXPECT_EQ(s, first.state());
    DataLoader resumed(c.shards, o);
    resumed.restore(s);
    for (uint64_t i = stop; i < stop + bpe + 2; ++i)
      ASSERT_EQ(resumed.next().tokens, ref[i]) << "stopped at " << stop << ", batch " << i;
  }
  // Restoring an earlier state into a loader that has moved on also rewinds it.
  DataLoader l(c.shards, o);
  LoaderState s0 = l.state();
  for (uint64_t i = 0; i < bpe + 1; ++i) l.next();
  l.restore(s0);
  EXPECT_EQ(l.next().tokens, ref[0]);
}

TEST(Loader, RestoreRefusesForeignStates) {
  Corpus c(2, 40), d(2, 40, 1 << 20, 8);
  LoaderOptions o{2, 5, 1};
  DataLoader l(c.shards, o);
  l.next();
  LoaderState s = l.state();
  LoaderState bad = s;
  bad.seed = 2;
  EXPECT_THROW(l.restore(bad), Error);
  bad = s;
  bad.cursor += 1;
  EXPECT_THROW(l.restore(bad), Error);
  bad = s;
  bad.cursor = (l.batches_per_epoch() + 1) * 2 * 6;
  EXPECT_THROW(l.restore(bad), Error);
  DataLoader other(d.shards, o);
  EXPECT_THROW(other.restore(s), Error);
  DataLoader other_shape(c.shards, {2, 6, 1});
  EXPECT_THROW(other_shape.restore(s), Error);
  EXPECT_THROW(loader_state_from_json(nlohmann::json{{"epoch", 1}}), Error);
}

TEST(Loader, TooLittleDataIsRefused) {
  Corpus c(1, 3);
  EXPECT_THROW(DataLoader(c.shards, {8, int64_t(c.n_tokens) + 1, 0}), Error);
  EXPECT_THROW(DataLoader(c.shards, {0, 4, 0}), Error);
  EXPECT_THROW(DataLoader({}, {1, 4, 0}), Error);
  EXPECT_THROW(ValidationSet(c.shards, 8, int64_t(c.n_tokens) + 1), Error);
}

TEST(Loader, ShardsOfDifferentVocabulariesAreRefused) {
  test::TempDir dir;
  write_shard(dir / "a.tok", {{1, 2, 3}}, 100);
  write_shard(dir / "b.tok", {{1, 2, 3}}, 200);
  EXPECT_THROW(DataLoader({dir / "a.tok", dir / "b.tok"}, {1, 2, 0}), Error);
}

TEST(Loader, ValidationSetIsStableAndInFileOrder) {
  Corpus c(2, 50, 50000);  // 16-bit shards
  ValidationSet v(c.shards, 3, 8), w(c.shards, 3, 8);
  uint64_t per_batch = 3 * 9;
  ASSERT_EQ(v.n_batches(), c.n_tokens / per_batch);
  std::vector<int32_t> stream;
  for (const auto& d : c.docs) stream.insert(stream.end(), d.begin(), d.end());
  for (int pass = 0; pass < 2; ++pass)
    for (uint64_t i = 0; i < v.n_batches(); ++i) {
      Batch b = v.batch(i);
      EXPECT_EQ(b.tokens, w.batch(i).tokens);
      EXPECT_TRUE(std::equal(b.tokens.begin(), b.tokens.end(), stream.begin() + long(i * per_batch)));
    }
}

TEST(Loader, ManifestShards) {
  test::TempDir dir;
  test::write_text(dir / "data.json",
                   R"({"train": {"shards": [{"file": "train-000.tok"}]}, "val": {"shards": []}})");
  auto s = manifest_shards(dir.path.string(), "train");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0], dir / "train-000.tok");
  EXPECT_THROW(manifest_shards(dir.path.string(), "val"), Error);
  EXPECT_THROW(manifest_shards(dir.path.string(), "test"), Error);
  EXPECT_THROW(manifest_shards((dir / "missing"), "train"), Error);
  test::write_text(dir / "data.json", "{not json");
  EXPECT_THROW(manifest_shards(dir.path.string(), "train"), Error);
}

std::string run_command(const std::string& cmd, int* status) {
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *status = pclose(p);
  return out;
}

// Every document of a split, decoded, in shard order.
std::vector<std::string> split_texts(const Tokenizer& t, const std::string& dir, const std::string& split) {
  std::vector<std::string> out;
  for (const std::string& path : manifest_shards(dir, split)) {
    ShardReader r = ShardReader::open(path);
    for (uint64_t d = 0; d < r.n_docs(); ++d) {
      std::vector<int32_t> ids = r.doc(d);
      EXPECT_GE(ids.size(), 2u);
      EXPECT_EQ(ids.front(), t.bos_id());
      EXPECT_EQ(ids.back(), t.eos_id());
      out.push_back(t.decode(std::vector<int32_t>(ids.begin() + 1, ids.end() - 1)));
    }
  }
  return out;
}

TEST(Loader, CliDataEndToEnd) {
  test::TempDir dir;
  const std::string seek = SEEK_BINARY, tokdir = test::data_path("data/tokenizer");
  Tokenizer t = Tokenizer::load(tokdir);
  std::string plain, jsonl;
  std::vector<std::string> expected;
  for (int i = 0; i < 60; ++i) {
    std::string a = "Document " + std::to_string(i) + " line one.\nLine two of " + std::to_string(i) + ".";
    plain += a + (i % 3 ? "\n\n" : "\n \t\r\n\n");
    expected.push_back(a);
  }
  for (int i = 0; i < 40; ++i) {
    std::string b = "json \"doc\" " + std::to_string(i) + "\n\twith a newline";
    jsonl += nlohmann::json{{"text", b}, {"id", i}}.dump() + "\n" + (i % 5 ? "" : "\n");
    expected.push_back(b);
  }
  test::write_text(dir / "a.txt", plain);
  test::write_text(dir / "b.jsonl", jsonl);
  int status = 0;
  std::string cmd = seek + " data --tokenizer " + tokdir + " --val-fraction 0.25 --seed 5 --shard-tokens 300 --out ";
  run_command(cmd + dir / "o1" + " " + dir / "a.txt" + " " + dir / "b.jsonl 2>/dev/null", &status);
  ASSERT_EQ(status, 0);
  run_command(cmd + dir / "o2" + " " + dir / "b.jsonl" + " " + dir / "a.txt 2>/dev/null", &status);
  ASSERT_EQ(status, 0);
  auto train1 = split_texts(t, dir / "o1", "train"), val1 = split_texts(t, dir / "o1", "val");
  auto train2 = split_texts(t, dir / "o2", "train"), val2 = split_texts(t, dir / "o2", "val");
  EXPECT_EQ(train1.size() + val1.size(), expected.size());
  EXPECT_GT(val1.size(), 5u);
  EXPECT_GT(manifest_shards(dir / "o1", "train").size(), 1u);  // --shard-tokens 300 splits
  std::vector<std::string> all = train1;
  all.insert(all.end(), val1.begin(), val1.end());
  std::sort(all.begin(), all.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(all, expected);
  // The split does not depend on file order.
  std::sort(val1.begin(), val1.end());
  std::sort(val2.begin(), val2.end());
  EXPECT_EQ(val1, val2);
  std::ifstream in(dir / "o1/data.json");
  nlohmann::json m = nlohmann::json::parse(in);
  EXPECT_EQ(m["tokenizer"]["vocab_size"], t.vocab_size());
  EXPECT_EQ(m["seed"], 5);
  // The loader reads it.
  DataLoader l(manifest_shards(dir / "o1", "train"), {2, 16, 0});
  EXPECT_GT(l.batches_per_epoch(), 0u);
  // Bad input: exit status 2.
  test::write_text(dir / "bad.jsonl", "{\"text\": \"ok\"}\n{\"txt\": 1}\n");
  std::string err = run_command(cmd + dir / "o3 " + dir / "bad.jsonl 2>&1", &status);
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(err.find("bad.jsonl:2"), std::string::npos) << err;
  run_command(cmd + dir / "o3 " + dir / "missing.txt 2>/dev/null", &status);
  EXPECT_EQ(WEXITSTATUS(status), 2);
  run_command(seek + " data --tokenizer " + tokdir + " --val-fraction 1.5 --out " + dir / "o3 " + dir / "a.txt 2>/dev/null", &status);
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

}  // namespace
}  // namespace seek
