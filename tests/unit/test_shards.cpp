// test_shards.cpp — the token-shard format: round trips in both token widths, the writer's checks, and
// the reader refusing (never crashing on) truncated files, flipped bytes and forged headers.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "data/shards.h"
#include "test_util.h"
#include "util/error.h"

namespace seek {
namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::vector<int32_t>> sample_docs(int64_t vocab) {
  std::vector<std::vector<int32_t>> docs = {{1, 2, 3}, {}, {int32_t(vocab - 1)}, {0, 5, 7, 9, 11}};
  for (int i = 0; i < 20; ++i) docs[3].push_back(int32_t((i * 7919) % vocab));
  return docs;
}

void expect_error_mentioning(const std::string& path, bool verify, const std::string& what) {
  try {
    ShardReader::open(path, verify);
    ADD_FAILURE() << "no error for " << what;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(Shards, RoundTripBothWidths) {
  test::TempDir dir;
  for (int64_t vocab : {300, 65536, 65537, 129280}) {
    auto docs = sample_docs(vocab);
    std::string path = dir / (std::string("s") + std::to_string(vocab) + ".tok");
    ShardInfo w = write_shard(path, docs, vocab);
    EXPECT_EQ(w.token_bytes, vocab <= 65536 ? 2 : 4);
    ShardReader r = ShardReader::open(path);
    EXPECT_EQ(r.n_docs(), docs.size());
    EXPECT_EQ(r.info().vocab_size, uint64_t(vocab));
    EXPECT_EQ(r.info().checksum, w.checksum);
    uint64_t total = 0;
    for (size_t i = 0; i < docs.size(); ++i) {
      EXPECT_EQ(r.doc(i), docs[i]);
      total += docs[i].size();
    }
    EXPECT_EQ(r.n_tokens(), total);
    EXPECT_EQ(read_bytes(path).size(), kShardHeaderBytes + 8 * (docs.size() + 1) + total * w.token_bytes);
  }
}

TEST(Shards, EmptyShard) {
  test::TempDir dir;
  write_shard(dir / "e.tok", {}, 100);
  ShardReader r = ShardReader::open(dir / "e.tok");
  EXPECT_EQ(r.n_docs(), 0u);
  EXPECT_EQ(r.n_tokens(), 0u);
}

TEST(Shards, WriterRefusesBadIdsAndLeavesNoFile) {
  test::TempDir dir;
  EXPECT_THROW(write_shard(dir / "a.tok", {{1, 2, 100}}, 100), Error);
  EXPECT_THROW(write_shard(dir / "a.tok", {{-1}}, 100), Error);
  EXPECT_THROW(write_shard(dir / "a.tok", {{1}}, 0), Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "a.tok"));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path));  // no temp files left behind
}

TEST(Shards, MissingAndNonRegular) {
  test::TempDir dir;
  EXPECT_THROW(ShardReader::open(dir / "nope.tok"), Error);
  EXPECT_THROW(ShardReader::open(dir.path.string()), Error);
}

TEST(Shards, TruncationAtEveryLengthIsRefused) {
  test::TempDir dir;
  for (int64_t vocab : {1000, 100000}) {
    std::string good = dir / "good.tok";
    write_shard(good, sample_docs(vocab), vocab);
    std::string bytes = read_bytes(good);
    std::string bad = dir / "bad.tok";
    for (size_t len = 0; len < bytes.size(); ++len) {
      test::write_text(bad, bytes.substr(0, len));
      for (bool verify : {true, false}) expect_error_mentioning(bad, verify, "truncated to " + std::to_string(len));
    }
    // Trailing bytes are refused too.
    test::write_text(bad, bytes + "x");
    expect_error_mentioning(bad, false, "a trailing byte");
  }
}

TEST(Shards, EveryFlippedByteIsDetected) {
  test::TempDir dir;
  for (int64_t vocab : {1000, 100000}) {
    std::string good = dir / "good.tok";
    auto docs = sample_docs(vocab);
    write_shard(good, docs, vocab);
    std::string bytes = read_bytes(good);
    std::string bad = dir / "bad.tok";
    for (size_t i = 0; i < bytes.size(); ++i) {
      for (uint8_t mask : {uint8_t(0x01), uint8_t(0x80), uint8_t(0xff)}) {
        std::string b = bytes;
        b[i] = char(uint8_t(b[i]) ^ mask);
        test::write_text(bad, b);
        expect_error_mentioning(bad, true, "flip at byte " + std::to_string(i));
        // Without the payload check, opening either fails cleanly or reads in-bounds documents.
        try {
          ShardReader r = ShardReader::open(bad, false);
          for (uint64_t d = 0; d < r.n_docs(); ++d) (void)r.doc(d);
          EXPECT_THROW(r.verify(), Error) << "flip at byte " << i;
        } catch (const Error&) {
        }
      }
    }
  }
}

// Headers whose own checksum is right but whose counts lie: huge, overflowing or inconsistent.
TEST(Shards, ForgedHeadersAreRefused) {
  test::TempDir dir;
  std::string good = dir / "good.tok";
  write_shard(good, sample_docs(1000), 1000);
  const std::string bytes = read_bytes(good);
  auto forge = [&](size_t at, uint64_t v, int width) {
    std::string b = bytes;
    std::memcpy(&b[at], &v, size_t(width));
    uint64_t h = fnv1a64(b.data(), 48);
    std::memcpy(&b[48], &h, 8);
    std::string path = dir / "forged.tok";
    test::write_text(path, b);
    return path;
  };
  const uint64_t big[] = {~uint64_t(0), ~uint64_t(0) / 2, ~uint64_t(0) / 4 + 1, ~uint64_t(0) / 8, uint64_t(1) << 61,
                          1000000, 5, 0};
  const uint64_t true_docs = 4, true_tokens = ShardReader::open(good).n_tokens();
  for (uint64_t v : big) {
    if (v != true_docs) expect_error_mentioning(forge(24, v, 8), false, "n_docs forged");
    if (v != true_tokens) expect_error_mentioning(forge(32, v, 8), false, "n_tokens forged");
  }
  expect_error_mentioning(forge(8, 2, 4), false, "version 2");
  expect_error_mentioning(forge(12, 3, 4), false, "token_bytes 3");
  expect_error_mentioning(forge(12, 4, 4), false, "token_bytes 4 for a small vocab");
  expect_error_mentioning(forge(16, 0, 8), false, "vocab 0");
  expect_error_mentioning(forge(16, uint64_t(1) << 40, 8), false, "huge vocab");
  expect_error_mentioning(forge(56, 1, 8), false, "reserved");
  // Non-monotonic offsets, with the payload checksum left to verify().
  {
    std::string b = bytes;
    uint64_t v = 2;  // offsets[2] = 2 < offsets[1] = 3
    std::memcpy(&b[kShardHeaderBytes + 16], &v, 8);
    test::write_text(dir / "offs.tok", b);
    expect_error_mentioning(dir / "offs.tok", false, "offsets");
  }
  // A vocab_size smaller than an id: caught by verify() (with a recomputed checksum it is still refused).
  expect_error_mentioning(forge(16, 10, 8), true, "id >= vocab_size");
}

}  // namespace
}  // namespace seek
