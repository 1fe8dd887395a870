// loader.cpp — packing, per-epoch shuffling and the restorable position (see loader.h).
#include "data/loader.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "util/error.h"

namespace seek {


std::vector<uint64_t> epoch_permutation(uint64_t n_docs, uint64_t seed, uint64_t epoch) {
  std::vector<uint64_t> p(n_docs);
  for (uint64_t i = 0; i < n_docs; ++i) p[i] = i;
  SplitMix64 mix(seed);
  uint64_t s = mix.next() ^ (epoch * 0xd1b54a32d192ed03ull);
  SplitMix64 rng(SplitMix64(s).next());
  for (uint64_t i = n_docs; i > 1; --i) std::swap(p[i - 1], p[rng.below(i)]);
  return p;
}

nlohmann::json to_json(const LoaderState& s) {
  return {{"epoch", s.epoch}, {"cursor", s.cursor}, {"seed", s.seed}, {"data_hash", s.data_hash}};
}

LoaderState loader_state_from_json(const nlohmann::json& j) {
  LoaderState s;
  auto get = [&](const char* k) -> uint64_t {
    if (!j.is_object() || !j.contains(k) || !j[k].is_number_unsigned())
      throw Error(std::string("data loader state: field \"") + k + "\" is missing or not an unsigned integer");
    return j[k].get<uint64_t>();
  };
  s.epoch = get("epoch");
  s.cursor = get("cursor");
  s.seed = get("seed");
  s.data_hash = get("data_hash");
  return s;
}

std::vector<std::string> manifest_shards(const std::string& dir, const std::string& split) {
  std::string path = (std::filesystem::path(dir) / "data.json").string();
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open the data manifest (written by `seek data`)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains(split) || !j[split].is_object() || !j[split].contains("shards") ||
      !j[split]["shards"].is_array())
    throw Error(path + ": field \"" + split + ".shards\" is missing or not an array");
  std::vector<std::string> out;
  for (const auto& s : j[split]["shards"]) {
    if (!s.is_object() || !s.contains("file") || !s["file"].is_string())
      throw Error(path + ": an entry of \"" + split + ".shards\" has no string \"file\"");
    out.push_back((std::filesystem::path(dir) / s["file"].get<std::string>()).string());
  }
  if (out.empty()) throw Error(path + ": split \"" + split + "\" has no shards");
  return out;
}

// ---------------------------------------------------------------------------------------------------

ShardSet::ShardSet(const std::vector<std::string>& paths, bool verify) {
  if (paths.empty()) throw Error("data loader: no token shards given");
  doc_start_.push_back(0);
  for (const std::string& p : paths) {
    ShardReader r = ShardReader::open(p, verify);
    if (!shards_.empty() && r.info().vocab_size != vocab_size_)
      throw Error(strfmt("%s: vocab_size %llu differs from %s's %llu", p.c_str(),
                         (unsigned long long)r.info().vocab_size, shards_[0].path().c_str(),
                         (unsigned long long)vocab_size_));
    vocab_size_ = r.info().vocab_size;
    n_tokens_ += r.n_tokens();
    doc_start_.push_back(doc_start_.back() + r.n_docs());
    shards_.push_back(std::move(r));
  }
}

uint64_t ShardSet::doc_size(uint64_t d) const {
  size_t s = size_t(std::upper_bound(doc_start_.begin(), doc_start_.end(), d) - doc_start_.begin()) - 1;
  SEEK_ASSERT(s < shards_.size());
  return shards_[s].doc_size(d - doc_start_[s]);
}

uint64_t ShardSet::hash() const {
  uint64_t h = kFnvOffset;
  for (const ShardReader& r : shards_) {
    uint64_t v[3] = {r.n_docs(), r.n_tokens(), r.info().checksum};
    h = fnv1a64(v, sizeof v, h);
  }
  return h;
}

void ShardSet::read_stream(const std::vector<uint64_t>& order, const std::vector<uint64_t>& cum, uint64_t pos,
                           uint64_t n, int32_t* out) const {
  SEEK_ASSERT(cum.size() == order.size() + 1 && pos + n <= cum.back());
  // The first document whose tokens reach past pos.
  size_t i = size_t(std::upper_bound(cum.begin(), cum.end(), pos) - cum.begin()) - 1;
  while (n > 0) {
    SEEK_ASSERT(i < order.size());
    uint64_t d = order[i];
    size_t s = size_t(std::upper_bound(doc_start_.begin(), doc_start_.end(), d) - doc_start_.begin()) - 1;
    const ShardReader& r = shards_[s];
    uint64_t local = d - doc_start_[s];
    uint64_t off = pos - cum[i];
    uint64_t take = std::min(n, r.doc_size(local) - off);
    r.read_tokens(r.doc_begin(local) + off, take, out);
    out += take;
    pos += take;
    n -= take;
    ++i;
  }
}

namespace {

std::vector<uint64_t> cumulative(const ShardSet& data, const std::vector<uint64_t>& order) {
  std::vector<uint64_t> cum(order.size() + 1, 0);
  for (size_t i = 0; i < order.size(); ++i) cum[i + 1] = cum[i] + data.doc_size(order[i]);
  return cum;
}

void check_shape(int64_t B, int64_t T, const char* who) {
  if (B <= 0 || T <= 0) throw Error(strfmt("%s: batch %lld and seq_len %lld must be positive", who, (long long)B, (long long)T));
}

}  // namespace

// ---------------------------------------------------------------------------------------------------

DataLoader::DataLoader(const std::vector<std::string>& shards, const LoaderOptions& o) : data_(shards, o.verify), o_(o) {
  check_shape(o.batch, o.seq_len, "data loader");
  uint64_t per_batch = uint64_t(o.batch) * uint64_t(o.seq_len + 1);
  batches_per_epoch_ = data_.n_tokens() / per_batch;
  if (batches_per_epoch_ == 0)
    throw Error(strfmt("%s...: the training shards hold %llu tokens, fewer than one batch of %lld x %lld",
                       shards[0].c_str(), (unsigned long long)data_.n_tokens(), (long long)o.batch,
                       (long long)(o.seq_len + 1)));
  uint64_t v[3] = {data_.hash(), uint64_t(o.batch), uint64_t(o.seq_len)};
  hash_ = fnv1a64(v, sizeof v);
  start_epoch(0);
}

void DataLoader::start_epoch(uint64_t e) {
  epoch_ = e;
  cursor_ = 0;
  order_ = epoch_permutation(data_.n_docs(), o_.seed, e);
  cum_ = cumulative(data_, order_);
}

Batch DataLoader::next() {
  uint64_t per_batch = uint64_t(o_.batch) * uint64_t(o_.seq_len + 1);
  if (cursor_ / per_batch >= batches_per_epoch_) start_epoch(epoch_ + 1);
  Batch b;
  b.B = o_.batch;
  b.T = o_.seq_len;
  b.epoch = epoch_;
  b.tokens.resize(per_batch);
  data_.read_stream(order_, cum_, cursor_, per_batch, b.tokens.data());
  cursor_ += per_batch;
  return b;
}

LoaderState DataLoader::state() const { return {epoch_, cursor_, o_.seed, hash_}; }

void DataLoader::restore(const LoaderState& s) {
  uint64_t per_batch = uint64_t(o_.batch) * uint64_t(o_.seq_len + 1);
  if (s.data_hash != hash_)
    throw Error("data loader state: it belongs to other shards or another batch/seq_len (data_hash differs)");
  if (s.seed != o_.seed)
    throw Error(strfmt("data loader state: seed %llu, this loader's seed is %llu", (unsigned long long)s.seed,
                       (unsigned long long)o_.seed));
  if (s.cursor % per_batch != 0 || s.cursor / per_batch > batches_per_epoch_)
    throw Error(strfmt("data loader state: cursor %llu is not a batch boundary within the epoch's %llu batches",
                       (unsigned long long)s.cursor, (unsigned long long)batches_per_epoch_));
  if (s.epoch != epoch_ || order_.empty()) start_epoch(s.epoch);
  cursor_ = s.cursor;
}

// ---------------------------------------------------------------------------------------------------

ValidationSet::ValidationSet(const std::vector<std::string>& shards, int64_t batch, int64_t seq_len, bool verify)
    : data_(shards, verify), B_(batch), T_(seq_len) {
  check_shape(batch, seq_len, "validation set");
  n_batches_ = data_.n_tokens() / (uint64_t(B_) * uint64_t(T_ + 1));
  if (n_batches_ == 0)
    throw Error(strfmt("%s...: the validation shards hold %llu tokens, fewer than one batch of %lld x %lld",
                       shards[0].c_str(), (unsigned long long)data_.n_tokens(), (long long)B_, (long long)(T_ + 1)));
  order_.resize(data_.n_docs());
  for (uint64_t i = 0; i < order_.size(); ++i) order_[i] = i;
  cum_ = cumulative(data_, order_);
}

Batch ValidationSet::batch(uint64_t i) const {
  SEEK_ASSERT(i < n_batches_);
  uint64_t per_batch = uint64_t(B_) * uint64_t(T_ + 1);
  Batch b;
  b.B = B_;
  b.T = T_;
  b.tokens.resize(per_batch);
  data_.read_stream(order_, cum_, i * per_batch, per_batch, b.tokens.data());
  return b;
}

}  // namespace seek
