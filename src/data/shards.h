// shards.h — the token-shard file (*.tok): tokenized documents ready for training, written atomically
// and read through mmap with every field validated.
//
// Format (all integers little-endian; version 1):
//
//   offset  size  field
//   0       8     magic "SEEKTOK1"
//   8       4     u32 version = 1
//   12      4     u32 token_bytes: 2 (uint16 ids, used when vocab_size <= 65536) or 4 (uint32 ids)
//   16      8     u64 vocab_size, at most 2^31: every id is < vocab_size
//   24      8     u64 n_docs
//   32      8     u64 n_tokens
//   40      8     u64 payload checksum: FNV-1a 64 over the offsets table and the token bytes, as stored
//   48      8     u64 header checksum: FNV-1a 64 over bytes [0, 48)
//   56      8     u64 reserved = 0
//   64            offsets: (n_docs + 1) u64; offsets[0] = 0, non-decreasing, offsets[n_docs] = n_tokens.
//                 Document i is tokens [offsets[i], offsets[i+1]).
//   64+8(n_docs+1) tokens: n_tokens ids of token_bytes each
//
// The file is exactly that long. The writer picks token_bytes from vocab_size.
//
// What it does: ShardReader::open checks the magic, version, token_bytes, header checksum, the file
// length against the counts (without overflow), and the offsets table (monotonic, within the payload);
// with verify = true (the default) it also checks the payload checksum and that every id is below
// vocab_size; with verify = false those two are left to verify(), so opening a large shard is O(n_docs).
// Every failure is a seek::Error naming the file and what is wrong; a truncated or corrupted file never
// crashes the reader. What it doesn't do: compression, big-endian hosts, appending to an existing shard.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace seek {

inline constexpr char kShardMagic[8] = {'S', 'E', 'E', 'K', 'T', 'O', 'K', '1'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 64;

// FNV-1a 64-bit, continuing from `h` (start with kFnvOffset).
inline constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
uint64_t fnv1a64(const void* data, size_t n, uint64_t h = kFnvOffset);

// 2 when every id of a vocabulary of this size fits uint16, else 4.
int shard_token_bytes(int64_t vocab_size);

// What write_shard wrote (also what a reader's header says).
struct ShardInfo {
  uint64_t n_docs = 0, n_tokens = 0, vocab_size = 0, checksum = 0;
  int token_bytes = 0;
};

// Writes docs as one shard at `path` atomically (temp file beside it, fsync, rename). Throws Error
// naming the path if an id is outside [0, vocab_size) or the write fails. Empty documents are kept.
ShardInfo write_shard(const std::string& path, const std::vector<std::vector<int32_t>>& docs, int64_t vocab_size);

// A read-only, memory-mapped shard. Copies share the mapping; safe to read from several threads.
class ShardReader {
 public:
  ShardReader() = default;
  static ShardReader open(const std::string& path, bool verify = true);

  // Checks the payload checksum and the id range (throws Error naming the file). Idempotent.
  void verify() const;

  const std::string& path() const;
  const ShardInfo& info() const;
  uint64_t n_docs() const { return info().n_docs; }
  uint64_t n_tokens() const { return info().n_tokens; }
  uint64_t doc_begin(uint64_t i) const;  // i <= n_docs; SEEK_ASSERT on an index out of range
  uint64_t doc_size(uint64_t i) const;   // i < n_docs
  // Copies tokens [start, start + n) of the shard's token array (as int32) into out.
  void read_tokens(uint64_t start, uint64_t n, int32_t* out) const;
  std::vector<int32_t> doc(uint64_t i) const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace seek
