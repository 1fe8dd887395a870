// loader.h — training batches from token shards: documents packed into fixed-length rows [B, T+1],
// shuffled deterministically per epoch, with an exact, restorable position; and a fixed validation set.
//
// Packing: each epoch orders the documents (a seeded permutation for training, file order for
// validation), concatenates their tokens into one stream, and cuts it into consecutive, non-overlapping
// rows of T+1 tokens; B consecutive rows form a batch. Row r holds inputs tokens[0..T) and next-token
// targets tokens[1..T+1). Every token of the epoch's stream lands in exactly one row, except the
// remainder: the last (n_tokens mod B*(T+1)) tokens of each epoch's stream, which that epoch drops (a
// different tail every epoch, since the order changes). Rows cross document boundaries; the bos/eos
// tokens that `seek data` writes around each document mark them. No attention masking is implied.
//
// Shuffle: a Fisher–Yates permutation of the documents driven by seek's own SplitMix64 generator seeded
// from (seed, epoch), with unbiased bounded draws — identical on every platform and standard library.
//
// Position: LoaderState {epoch, cursor (tokens of this epoch's stream already served), seed,
// data_hash}. state() after a batch and restore() into a fresh loader over the same shards continue
// bit-identically; restore refuses a state from other data, another seed or a cursor that is not on
// a batch boundary. to_json / from_json store it in a checkpoint.
//
// Not done: per-document attention masks, sequence-length curricula, multi-process sharding of batches.
#pragma once
#include "util/rng.h"  // SplitMix64
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/shards.h"

namespace seek {


// The document order of `epoch`: a permutation of [0, n_docs).
std::vector<uint64_t> epoch_permutation(uint64_t n_docs, uint64_t seed, uint64_t epoch);

struct Batch {
  int64_t B = 0, T = 0;
  uint64_t epoch = 0;
  std::vector<int32_t> tokens;  // [B, T+1]
  int32_t input(int64_t b, int64_t t) const { return tokens[size_t(b * (T + 1) + t)]; }       // t < T
  int32_t target(int64_t b, int64_t t) const { return tokens[size_t(b * (T + 1) + t + 1)]; }  // t < T
};

struct LoaderState {
  uint64_t epoch = 0;
  uint64_t cursor = 0;  // tokens of this epoch's packed stream already served (a multiple of B*(T+1))
  uint64_t seed = 0;
  uint64_t data_hash = 0;  // of the shards' checksums and counts, and B, T: refuses a foreign state
  bool operator==(const LoaderState&) const = default;
};
nlohmann::json to_json(const LoaderState& s);
LoaderState loader_state_from_json(const nlohmann::json& j);  // throws Error naming the missing field

// The shards of a split listed in a `seek data` manifest (DIR/data.json), as full paths; split is
// "train" or "val". Throws Error naming data.json when it is missing, malformed or lists no shard.
std::vector<std::string> manifest_shards(const std::string& dir, const std::string& split);

// Documents of several shards seen as one list, and a packed stream over a given order of them.
class ShardSet {
 public:
  ShardSet() = default;
  // Opens (and, if verify, checks) each shard; all must share one vocab_size.
  ShardSet(const std::vector<std::string>& paths, bool verify = true);
  uint64_t n_docs() const { return doc_start_.empty() ? 0 : doc_start_.back(); }
  uint64_t n_tokens() const { return n_tokens_; }
  uint64_t vocab_size() const { return vocab_size_; }
  uint64_t doc_size(uint64_t d) const;
  uint64_t hash() const;  // of every shard's n_docs, n_tokens, checksum (not of the paths)
  // Copies stream tokens [pos, pos + n) of the order `order` (document ids), whose cumulative sizes
  // are `cum` (cum[i] = tokens of order[0..i)), into out.
  void read_stream(const std::vector<uint64_t>& order, const std::vector<uint64_t>& cum, uint64_t pos, uint64_t n,
                   int32_t* out) const;

 private:
  std::vector<ShardReader> shards_;
  std::vector<uint64_t> doc_start_;  // [n_shards + 1] first global document id of each shard
  uint64_t n_tokens_ = 0, vocab_size_ = 0;
};

struct LoaderOptions {
  int64_t batch = 8;     // B
  int64_t seq_len = 256; // T
  uint64_t seed = 0;
  bool verify = true;    // check every shard's checksum and ids when opening
};

class DataLoader {
 public:
  // Throws Error if the shards cannot make one batch (fewer than B*(T+1) tokens).
  DataLoader(const std::vector<std::string>& shards, const LoaderOptions& o);
  Batch next();
  LoaderState state() const;
  void restore(const LoaderState& s);  // throws Error on a state of other data/seed/shape
  uint64_t batches_per_epoch() const { return batches_per_epoch_; }
  uint64_t tokens_per_epoch() const { return data_.n_tokens(); }
  const ShardSet& data() const { return data_; }

 private:
  void start_epoch(uint64_t e);
  ShardSet data_;
  LoaderOptions o_;
  uint64_t batches_per_epoch_ = 0, hash_ = 0;
  uint64_t epoch_ = 0, cursor_ = 0;
  std::vector<uint64_t> order_, cum_;
};

// The validation split: documents in file order, packed as above, the remainder dropped. batch(i)
// is the same for every call; there is no state.
class ValidationSet {
 public:
  ValidationSet(const std::vector<std::string>& shards, int64_t batch, int64_t seq_len, bool verify = true);
  uint64_t n_batches() const { return n_batches_; }
  Batch batch(uint64_t i) const;  // i < n_batches()

 private:
  ShardSet data_;
  int64_t B_, T_;
  uint64_t n_batches_ = 0;
  std::vector<uint64_t> order_, cum_;
};

}  // namespace seek
