// prefix_cache.h — context caching: the KV rows of prompts already seen, reused by later requests that
// start with the same tokens, so that only the rest of their prompt is prefilled (DeepSeek's API calls
// these tokens `prompt_cache_hit_tokens`).
//
// Keys. A prompt is cut into blocks of `block_tokens` tokens (16 by default). Block i's key chains the
// hashes from token 0: key_0 = XXH64(tokens of block 0, seed = salt), key_i = XXH64(tokens of block i,
// seed = key_{i-1}). The salt identifies the model (model_fingerprint: config.json and a sample of the
// weights) and the cache layout, so two models never share entries. A key therefore stands for the whole
// prefix up to the end of its block: only prefixes that start at token 0 can hit, as in DeepSeek's API.
// Each entry keeps its own tokens and its parent's key, and a lookup checks both, so even a 64-bit
// collision cannot hand a request the rows of another prefix.
//
// Values. The rows of the block's positions in every layer of the sequence's KVCache, exactly as
// prefill wrote them (f32): for MLA's absorbed form the latent [c_kv, k_pe] (576 values per token per
// layer for V3), for dense models K and V. A hit copies them into the new sequence's cache.
//
// Tiers. RAM: an LRU under `ram_bytes` (children are touched before their parents on a hit, so a chain
// is evicted leaf first). Disk (optional, `disk_dir`): one file per block, `<dir>/<salt>/<key>.kv`,
// written atomically (util/atomic_file.h) by a background thread so the engine never waits on fsync;
// layout: magic "SEEKKV01", salt, key, parent key, token count, layer count, row widths, the tokens,
// the rows, then an XXH64 checksum of everything before it. A file whose size, magic, header or
// checksum is wrong is never trusted: it is counted in `corrupt_files`, deleted, and the lookup stops
// there (a miss). The disk tier is an LRU too (by last use, starting from the files' mtimes at start),
// under `disk_bytes`. Files survive restarts: a server started again with the same --cache-dir hits.
//
// Thread safety: every public method may be called from any thread (one mutex; the disk writer has
// its own thread and queue).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "model/config.h"
#include "model/kv_cache.h"

namespace seek {

struct PrefixCacheOptions {
  int64_t block_tokens = 16;
  size_t ram_bytes = size_t(1) << 30;    // RAM tier budget
  std::string disk_dir;                  // empty: no disk tier
  size_t disk_bytes = size_t(16) << 30;  // disk tier budget
  uint64_t salt = 0;                     // model_fingerprint(); the layout is mixed in by the cache
};

struct PrefixCacheStats {
  int64_t ram_blocks = 0, disk_blocks = 0;
  size_t ram_bytes = 0, disk_bytes = 0;
  int64_t lookups = 0, hit_tokens = 0, miss_tokens = 0;
  int64_t ram_block_hits = 0, disk_block_hits = 0;
  int64_t corrupt_files = 0, disk_writes = 0, disk_write_errors = 0, evictions = 0;
};

// A hash of the model: config.json and, for each *.safetensors file, its name, size and 16 sampled
// 64 KiB windows of its bytes. Throws Error if `model_dir` has no config.json.
uint64_t model_fingerprint(const std::string& model_dir);  // or a GGUF file

class PrefixCache {
 public:
  // n_layers and form describe the KVCaches this cache fills (Model::new_cache's).
  PrefixCache(const Config& cfg, MlaForm form, PrefixCacheOptions opt);
  ~PrefixCache();
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  int64_t block_tokens() const { return opt_.block_tokens; }

  // The chained block keys of ids[0, n): one per whole block.
  std::vector<uint64_t> block_keys(const int32_t* ids, int64_t n) const;

  // Finds the longest cached prefix of ids[0, n) of at most max_tokens tokens (whole blocks), copies
  // its rows into `cache` (which must be empty, of this cache's layout and large enough) and sets
  // cache.len. Returns the number of tokens restored (0 on a miss). Counts the lookup in the stats
  // with `n` prompt tokens.
  int64_t restore(const int32_t* ids, int64_t n, int64_t max_tokens, KVCache& cache);

  // Stores the blocks of ids[0, n) whose rows are in `cache` (positions [0, cache.len)) and that are
  // not cached yet; refreshes the ones that are.
  void insert(const int32_t* ids, int64_t n, const KVCache& cache);

  // Waits until the disk writer has written everything queued (tests, shutdown).
  void flush();
  // Drops the RAM tier (tests: forces lookups to go to disk).
  void clear_ram();
  PrefixCacheStats stats() const;

 private:
  struct Block {
    uint64_t key = 0, parent = 0;
    std::vector<int32_t> tokens;  // [block_tokens]
    std::vector<float> rows;      // per layer: k rows [bt, kn] then v rows [bt, vn]
  };
  using BlockPtr = std::shared_ptr<const Block>;
  struct RamEntry {
    BlockPtr block;
    std::list<uint64_t>::iterator lru;
  };
  struct DiskEntry {
    size_t bytes = 0;
    std::list<uint64_t>::iterator lru;
  };

  std::string file_of(uint64_t key) const;
  BlockPtr load_file(uint64_t key, uint64_t parent, const int32_t* tokens);  // null if absent/corrupt; mu_ held
  void ram_put(BlockPtr b);                                                   // mu_ held
  void disk_forget(uint64_t key, bool remove_file);                           // mu_ held
  void writer_loop();
  std::vector<char> serialize(const Block& b) const;

  PrefixCacheOptions opt_;
  int64_t n_layers_ = 0, kn_ = 0, vn_ = 0;  // row widths per layer (values per token)
  size_t block_bytes_ = 0;
  std::string dir_;  // disk_dir/<salt>, empty without a disk tier

  mutable std::mutex mu_;
  std::unordered_map<uint64_t, RamEntry> ram_;
  std::list<uint64_t> ram_lru_;  // front = most recent
  std::unordered_map<uint64_t, DiskEntry> disk_;
  std::list<uint64_t> disk_lru_;
  PrefixCacheStats stats_;

  std::condition_variable writer_cv_, idle_cv_;
  std::deque<BlockPtr> write_queue_;
  bool writing_ = false, stopping_ = false;
  std::thread writer_;
};

}  // namespace seek
