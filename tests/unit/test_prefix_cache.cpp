// Prefix cache: chained block keys (only prefixes from token 0 match), restored rows equal prefill's
// and continue to the same logits, LRU under a byte budget, the disk tier across restarts, corrupt and
// truncated files refused.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "engine/prefix_cache.h"
#include "model/model.h"
#include "test_util.h"
#include "util/compare.h"
#include "util/error.h"

using namespace seek;
namespace fs = std::filesystem;

namespace {

std::vector<int32_t> tokens(int64_t n, int32_t salt, int64_t V) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(int32_t((i * 37 + salt * 11 + 5) % V));
  return p;
}

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<Model> model;
  explicit Fixture(const char* type = "deepseek_v3") {
    write_random_checkpoint((dir.path / "m").string(), test::tiny_config(type), {DType::F32, 7, 1});
    model = Model::load((dir.path / "m").string());
  }
  KVCache prefill(const std::vector<int32_t>& ids) {
    KVCache c = model->new_cache(int64_t(ids.size()) + 8);
    std::vector<float> logits(size_t(model->config().vocab_size));
    model->forward(c, ids.data(), int64_t(ids.size()), logits.data(), false);
    return c;
  }
  PrefixCacheOptions options(size_t ram = size_t(1) << 30, std::string disk = {}) {
    PrefixCacheOptions o;
    o.ram_bytes = ram;
    o.disk_dir = std::move(disk);
    o.salt = 42;
    return o;
  }
};

bool same_rows(const KVCache& a, const KVCache& b, int64_t n) {
  for (size_t l = 0; l < a.layers.size(); ++l) {
    const size_t kn = a.layers[l].k.size() / size_t(a.capacity), vn = a.layers[l].v.size() / size_t(a.capacity);
    const size_t kn_b = b.layers[l].k.size() / size_t(b.capacity);
    if (kn != kn_b) return false;
    for (size_t i = 0; i < size_t(n) * kn; ++i)
      if (a.layers[l].k[i] != b.layers[l].k[i]) return false;
    for (size_t i = 0; i < size_t(n) * vn; ++i)
      if (a.layers[l].v[i] != b.layers[l].v[i]) return false;
  }
  return true;
}

}  // namespace

TEST(PrefixCache, KeysChainFromTokenZero) {
  Fixture f;
  PrefixCache pc(f.model->config(), MlaForm::Absorbed, f.options());
  const int64_t V = f.model->config().vocab_size;
  std::vector<int32_t> a = tokens(40, 1, V), b = a;
  b[3] = (b[3] + 1) % int32_t(V);  // differs in block 0 only
  auto ka = pc.block_keys(a.data(), 40), kb = pc.block_keys(b.data(), 40);
  ASSERT_EQ(ka.size(), 2u);  // whole blocks of 16 only
  EXPECT_NE(ka[0], kb[0]);
  EXPECT_NE(ka[1], kb[1]) << "block 1 has the same tokens, but its key must carry the prefix before it";
  EXPECT_EQ(pc.block_keys(a.data(), 32), ka);
  PrefixCacheOptions other = f.options();
  other.salt = 43;
  PrefixCache pc2(f.model->config(), MlaForm::Absorbed, other);
  EXPECT_NE(pc2.block_keys(a.data(), 16)[0], ka[0]) << "another model never shares keys";
}

TEST(PrefixCache, RestoredRowsEqualPrefillAndGiveTheSameLogits) {
  for (const char* type : {"deepseek_v3", "qwen2"}) {
    Fixture f(type);
    const int64_t V = f.model->config().vocab_size;
    const std::vector<int32_t> ids = tokens(40, 2, V);
    PrefixCache pc(f.model->config(), MlaForm::Absorbed, f.options());
    KVCache full = f.prefill(ids);
    pc.insert(ids.data(), int64_t(ids.size()), full);

    // A request with the same first 35 tokens, then different ones.
    std::vector<int32_t> next(ids.begin(), ids.begin() + 35);
    for (int32_t t : tokens(10, 9, V)) next.push_back(t);
    KVCache c = f.model->new_cache(int64_t(next.size()) + 4);
    const int64_t hit = pc.restore(next.data(), int64_t(next.size()), int64_t(next.size()) - 1, c);
    EXPECT_EQ(hit, 32) << type;
    EXPECT_EQ(c.len, 32);
    EXPECT_TRUE(same_rows(c, full, 32)) << type;
    // Prefill the rest and compare with a full pass over `next`.
    std::vector<float> got(static_cast<size_t>(V)), want(static_cast<size_t>(V));
    f.model->forward(c, next.data() + hit, int64_t(next.size()) - hit, got.data(), false);
    KVCache ref = f.model->new_cache(int64_t(next.size()));
    f.model->forward(ref, next.data(), int64_t(next.size()), want.data(), false);
    EXPECT_LT(max_rel_diff(got.data(), want.data(), V), 1e-5) << type;
    const PrefixCacheStats s = pc.stats();
    EXPECT_EQ(s.hit_tokens, 32);
    EXPECT_EQ(s.miss_tokens, int64_t(next.size()) - 32);

    // Never more than max_tokens, and a different first token misses entirely.
    KVCache d = f.model->new_cache(64);
    EXPECT_EQ(pc.restore(ids.data(), 40, 20, d), 16);
    std::vector<int32_t> other = ids;
    other[0] = (other[0] + 1) % int32_t(V);
    KVCache e = f.model->new_cache(64);
    EXPECT_EQ(pc.restore(other.data(), 40, 39, e), 0);
    EXPECT_EQ(e.len, 0);
  }
}

TEST(PrefixCache, RamTierIsAnLruUnderItsBudget) {
  Fixture f;
  const int64_t V = f.model->config().vocab_size;
  const std::vector<int32_t> ids = tokens(64, 3, V);  // 4 blocks
  KVCache full = f.prefill(ids);
  // Room for about two and a half blocks.
  PrefixCache probe(f.model->config(), MlaForm::Absorbed, f.options());
  probe.insert(ids.data(), 16, full);
  const size_t block = probe.stats().ram_bytes;
  ASSERT_GT(block, 0u);
  PrefixCache pc(f.model->config(), MlaForm::Absorbed, f.options(block * 5 / 2));
  pc.insert(ids.data(), 64, full);
  PrefixCacheStats s = pc.stats();
  EXPECT_EQ(s.ram_blocks, 2);
  EXPECT_LE(s.ram_bytes, block * 5 / 2);
  EXPECT_EQ(s.evictions, 2);
  // The leaves went first: the first two blocks still hit.
  KVCache c = f.model->new_cache(80);
  EXPECT_EQ(pc.restore(ids.data(), 64, 63, c), 32);
  EXPECT_TRUE(same_rows(c, full, 32));
}

TEST(PrefixCache, DiskTierSurvivesRestartAndRefusesCorruptFiles) {
  Fixture f;
  const int64_t V = f.model->config().vocab_size;
  const std::vector<int32_t> ids = tokens(50, 4, V);  // 3 whole blocks
  KVCache full = f.prefill(ids);
  const std::string disk = f.dir / "cache";
  {
    PrefixCache pc(f.model->config(), MlaForm::Absorbed, f.options(size_t(1) << 30, disk));
    pc.insert(ids.data(), 50, full);
    pc.flush();
    EXPECT_EQ(pc.stats().disk_writes, 3);
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(disk))
    if (e.is_regular_file()) files.push_back(e.path());
  ASSERT_EQ(files.size(), 3u);
  {  // a restart: nothing in RAM, everything from disk
    PrefixCache pc(f.model->config(), MlaForm::Absorbed, f.options(size_t(1) << 30, disk));
    EXPECT_EQ(pc.stats().disk_blocks, 3);
    KVCache c = f.model->new_cache(64);
    EXPECT_EQ(pc.restore(ids.data(), 50, 49, c), 48);
    EXPECT_TRUE(same_rows(c, full, 48));
    EXPECT_EQ(pc.stats().disk_block_hits, 3);
  }
  // Corrupt block 1 (one flipped byte in the rows) and truncate block 2: only block 0 may hit.
  PrefixCache keys(f.model->config(), MlaForm::Absorbed, f.options());
  const auto k = keys.block_keys(ids.data(), 48);
  auto file_of = [&](uint64_t key) {
    for (const fs::path& p : files)
      if (p.filename().string() == strfmt("%016llx.kv", (unsigned long long)key)) return p;
    return fs::path();
  };
  const fs::path f1 = file_of(k[1]), f2 = file_of(k[2]);
  ASSERT_FALSE(f1.empty());
  ASSERT_FALSE(f2.empty());
  {
    std::fstream io(f1, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(200);
    char ch;
    io.read(&ch, 1);
    ch ^= 0x10;
    io.seekp(200);
    io.write(&ch, 1);
  }
  fs::resize_file(f2, fs::file_size(f2) - 9);
  {
    PrefixCache pc(f.model->config(), MlaForm::Absorbed, f.options(size_t(1) << 30, disk));
    KVCache c = f.model->new_cache(64);
    EXPECT_EQ(pc.restore(ids.data(), 50, 49, c), 16);
    EXPECT_EQ(pc.stats().corrupt_files, 1);
    EXPECT_FALSE(fs::exists(f1)) << "a corrupt file is removed";
    // Block 2 is only reached once block 1 is back: the truncated file is refused too.
    pc.insert(ids.data(), 50, full);  // block 1 is written again; block 2's file is still indexed
    pc.flush();
    pc.clear_ram();
    KVCache d = f.model->new_cache(64);
    EXPECT_EQ(pc.restore(ids.data(), 50, 49, d), 16 * (1 + 1)) << "block 2's truncated file must not be used";
    EXPECT_EQ(pc.stats().corrupt_files, 2);
    pc.flush();
  }
}

TEST(PrefixCache, DiskTierStaysUnderItsBudget) {
  Fixture f;
  const int64_t V = f.model->config().vocab_size;
  const std::vector<int32_t> ids = tokens(64, 5, V);  // 4 blocks
  KVCache full = f.prefill(ids);
  const std::string disk = f.dir / "small-disk";
  PrefixCacheOptions o = f.options(size_t(1) << 30, disk);
  {
    PrefixCache probe(f.model->config(), MlaForm::Absorbed, o);
    probe.insert(ids.data(), 16, full);
    probe.flush();
    o.disk_bytes = probe.stats().disk_bytes * 5 / 2;  // room for two and a half files
  }
  fs::remove_all(disk);
  PrefixCache pc(f.model->config(), MlaForm::Absorbed, o);
  pc.insert(ids.data(), 64, full);
  pc.flush();
  const PrefixCacheStats s = pc.stats();
  EXPECT_EQ(s.disk_blocks, 2);
  EXPECT_LE(s.disk_bytes, o.disk_bytes);
  int64_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(disk)) files += e.is_regular_file();
  EXPECT_EQ(files, 2);
  // The leaves went first: after a restart the first two blocks still hit.
  PrefixCache again(f.model->config(), MlaForm::Absorbed, o);
  KVCache c = f.model->new_cache(80);
  EXPECT_EQ(again.restore(ids.data(), 64, 63, c), 32);
  EXPECT_TRUE(same_rows(c, full, 32));
}

TEST(PrefixCache, ModelFingerprintFollowsTheWeights) {
  test::TempDir dir;
  const std::string a = dir / "a", b = dir / "b";
  write_random_checkpoint(a, test::tiny_config("deepseek_v3"), {DType::F32, 1, 1});
  write_random_checkpoint(b, test::tiny_config("deepseek_v3"), {DType::F32, 2, 1});
  EXPECT_EQ(model_fingerprint(a), model_fingerprint(a));
  EXPECT_NE(model_fingerprint(a), model_fingerprint(b)) << "same config, other weights";
  EXPECT_THROW(model_fingerprint(dir / "missing"), Error);
}
