// prefix_cache.cpp — see prefix_cache.h.
#include "engine/prefix_cache.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "util/atomic_file.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace seek {

namespace {

constexpr char kMagic[8] = {'S', 'E', 'E', 'K', 'K', 'V', '0', '1'};
// magic, salt, key, parent, then u32 tokens, layers, kn, vn.
constexpr size_t kHeaderBytes = 8 + 3 * 8 + 4 * 4;

std::string hex16(uint64_t v) { return strfmt("%016llx", (unsigned long long)v); }

template <class T>
T get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

uint64_t model_fingerprint(const std::string& dir) {
  // Owned, so that a throw (a missing or unreadable file) does not leak it.
  std::unique_ptr<XXH64_state_t, decltype(&XXH64_freeState)> state(XXH64_createState(), &XXH64_freeState);
  XXH64_state_t* st = state.get();
  XXH64_reset(st, 0x5eec);
  auto add_file = [&](const fs::path& p, bool whole) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw Error(p.string() + ": cannot read");
    const std::string name = p.filename().string();
    XXH64_update(st, name.data(), name.size());
    const uint64_t size = fs::file_size(p);
    XXH64_update(st, &size, sizeof size);
    std::vector<char> buf(64 << 10);
    const int windows = whole ? 1 : 16;
    for (int w = 0; w < windows; ++w) {
      const uint64_t at = whole ? 0 : (size > buf.size() ? (size - buf.size()) / 15 * uint64_t(w) : 0);
      in.clear();
      in.seekg(std::streamoff(at));
      in.read(buf.data(), std::streamsize(buf.size()));
      XXH64_update(st, buf.data(), size_t(in.gcount()));
      if (whole) {
        while (in) {
          in.read(buf.data(), std::streamsize(buf.size()));
          XXH64_update(st, buf.data(), size_t(in.gcount()));
        }
      }
    }
  };
  if (fs::is_regular_file(dir)) {  // a GGUF file: config, tokenizer and weights in one
    add_file(dir, false);
    return XXH64_digest(st);
  }
  const fs::path cfg = fs::path(dir) / "config.json";
  if (!fs::exists(cfg)) throw Error(dir + ": no config.json");
  add_file(cfg, true);
  std::vector<fs::path> weights;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") weights.push_back(e.path());
  std::sort(weights.begin(), weights.end());
  for (const fs::path& p : weights) add_file(p, false);
  return XXH64_digest(st);
}

PrefixCache::PrefixCache(const Config& cfg, MlaForm form, PrefixCacheOptions opt) : opt_(std::move(opt)) {
  if (opt_.block_tokens < 1) throw Error("prefix cache: block_tokens must be at least 1");
  KVCache probe(cfg, cfg.num_hidden_layers, 1, form);
  n_layers_ = cfg.num_hidden_layers;
  kn_ = int64_t(probe.layers[0].k.size());
  vn_ = int64_t(probe.layers[0].v.size());
  block_bytes_ = size_t(n_layers_ * (kn_ + vn_) * opt_.block_tokens) * sizeof(float) +
                 size_t(opt_.block_tokens) * sizeof(int32_t) + sizeof(Block);
  // The layout is part of the key: the same model in another MLA form or block size never collides.
  const int64_t layout[5] = {int64_t(form), opt_.block_tokens, n_layers_, kn_, vn_};
  opt_.salt = XXH64(layout, sizeof layout, opt_.salt);
  if (!opt_.disk_dir.empty()) {
    dir_ = (fs::path(opt_.disk_dir) / hex16(opt_.salt)).string();
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) throw Error(dir_ + ": cannot create the cache directory: " + ec.message());
    // Index what is there (names and sizes only; contents are checked when read), oldest first.
    std::vector<std::pair<fs::file_time_type, std::pair<uint64_t, size_t>>> found;
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string name = e.path().filename().string();
      if (name.size() != 19 || name.substr(16) != ".kv" || !e.is_regular_file()) continue;
      char* end = nullptr;
      const uint64_t key = std::strtoull(name.substr(0, 16).c_str(), &end, 16);
      found.push_back({e.last_write_time(), {key, size_t(e.file_size())}});
    }
    std::sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.first < b.first; });
    for (auto& f : found) {
      disk_lru_.push_front(f.second.first);
      disk_[f.second.first] = DiskEntry{f.second.second, disk_lru_.begin()};
      stats_.disk_bytes += f.second.second;
    }
    stats_.disk_blocks = int64_t(disk_.size());
    writer_ = std::thread([this] { writer_loop(); });
  }
}

PrefixCache::~PrefixCache() {
  if (writer_.joinable()) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    writer_cv_.notify_all();
    writer_.join();
  }
}

std::vector<uint64_t> PrefixCache::block_keys(const int32_t* ids, int64_t n) const {
  std::vector<uint64_t> keys;
  uint64_t h = opt_.salt;
  for (int64_t b = 0; (b + 1) * opt_.block_tokens <= n; ++b) {
    h = XXH64(ids + b * opt_.block_tokens, size_t(opt_.block_tokens) * sizeof(int32_t), h);
    keys.push_back(h);
  }
  return keys;
}

std::string PrefixCache::file_of(uint64_t key) const { return dir_ + "/" + hex16(key) + ".kv"; }

std::vector<char> PrefixCache::serialize(const Block& b) const {
  const size_t tok_bytes = b.tokens.size() * sizeof(int32_t), row_bytes = b.rows.size() * sizeof(float);
  std::vector<char> out(kHeaderBytes + tok_bytes + row_bytes + 8);
  char* p = out.data();
  auto put = [&p](const void* src, size_t n) {
    std::memcpy(p, src, n);
    p += n;
  };
  const uint32_t dims[4] = {uint32_t(b.tokens.size()), uint32_t(n_layers_), uint32_t(kn_), uint32_t(vn_)};
  put(kMagic, 8);
  put(&opt_.salt, 8);
  put(&b.key, 8);
  put(&b.parent, 8);
  put(dims, sizeof dims);
  put(b.tokens.data(), tok_bytes);
  put(b.rows.data(), row_bytes);
  const uint64_t sum = XXH64(out.data(), size_t(p - out.data()), 0);
  put(&sum, 8);
  return out;
}

PrefixCache::BlockPtr PrefixCache::load_file(uint64_t key, uint64_t parent, const int32_t* tokens) {
  auto it = disk_.find(key);
  if (it == disk_.end()) return nullptr;
  const std::string path = file_of(key);
  const size_t bt = size_t(opt_.block_tokens);
  const size_t n_rows = size_t(n_layers_ * (kn_ + vn_)) * bt;
  const size_t want = kHeaderBytes + bt * sizeof(int32_t) + n_rows * sizeof(float) + 8;
  std::vector<char> buf;
  bool ok = false;
  {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      in.seekg(0, std::ios::end);
      if (size_t(in.tellg()) == want) {
        buf.resize(want);
        in.seekg(0);
        in.read(buf.data(), std::streamsize(want));
        ok = size_t(in.gcount()) == want;
      }
    }
  }
  const char* p = buf.data();
  ok = ok && std::memcmp(p, kMagic, 8) == 0 && get<uint64_t>(p + 8) == opt_.salt && get<uint64_t>(p + 16) == key &&
       get<uint64_t>(p + 24) == parent && get<uint32_t>(p + 32) == bt && get<uint32_t>(p + 36) == uint32_t(n_layers_) &&
       get<uint32_t>(p + 40) == uint32_t(kn_) && get<uint32_t>(p + 44) == uint32_t(vn_) &&
       get<uint64_t>(p + want - 8) == XXH64(p, want - 8, 0);
  if (!ok) {
    stats_.corrupt_files++;
    disk_forget(key, true);
    return nullptr;
  }
  auto b = std::make_shared<Block>();
  b->key = key;
  b->parent = parent;
  b->tokens.resize(bt);
  std::memcpy(b->tokens.data(), p + kHeaderBytes, bt * sizeof(int32_t));
  if (std::memcmp(b->tokens.data(), tokens, bt * sizeof(int32_t)) != 0) return nullptr;  // another prefix
  b->rows.resize(n_rows);
  std::memcpy(b->rows.data(), p + kHeaderBytes + bt * sizeof(int32_t), n_rows * sizeof(float));
  disk_lru_.splice(disk_lru_.begin(), disk_lru_, it->second.lru);
  return b;
}

void PrefixCache::disk_forget(uint64_t key, bool remove_file) {
  auto it = disk_.find(key);
  if (it == disk_.end()) return;
  stats_.disk_bytes -= it->second.bytes;
  disk_lru_.erase(it->second.lru);
  disk_.erase(it);
  stats_.disk_blocks = int64_t(disk_.size());
  if (remove_file) {
    std::error_code ec;
    fs::remove(file_of(key), ec);
  }
}

void PrefixCache::ram_put(BlockPtr b) {
  auto it = ram_.find(b->key);
  if (it != ram_.end()) {
    ram_lru_.splice(ram_lru_.begin(), ram_lru_, it->second.lru);
    return;
  }
  if (block_bytes_ > opt_.ram_bytes) return;
  const uint64_t key = b->key;
  ram_lru_.push_front(key);
  ram_[key] = RamEntry{std::move(b), ram_lru_.begin()};
  stats_.ram_bytes += block_bytes_;
  while (stats_.ram_bytes > opt_.ram_bytes && !ram_lru_.empty()) {
    ram_.erase(ram_lru_.back());
    ram_lru_.pop_back();
    stats_.ram_bytes -= block_bytes_;
    stats_.evictions++;
  }
  stats_.ram_blocks = int64_t(ram_.size());
}

int64_t PrefixCache::restore(const int32_t* ids, int64_t n, int64_t max_tokens, KVCache& cache) {
  SEEK_ASSERT(cache.len == 0 && int64_t(cache.layers.size()) == n_layers_);
  const int64_t bt = opt_.block_tokens;
  const std::vector<uint64_t> keys = block_keys(ids, std::min(n, max_tokens));
  std::vector<BlockPtr> found;
  std::lock_guard<std::mutex> lk(mu_);
  uint64_t parent = opt_.salt;
  for (size_t i = 0; i < keys.size(); ++i) {
    const int32_t* toks = ids + int64_t(i) * bt;
    BlockPtr b;
    auto it = ram_.find(keys[i]);
    if (it != ram_.end() && it->second.block->parent == parent &&
        std::equal(toks, toks + bt, it->second.block->tokens.begin())) {
      b = it->second.block;
      stats_.ram_block_hits++;
    } else if (!dir_.empty() && (b = load_file(keys[i], parent, toks))) {
      stats_.disk_block_hits++;
      ram_put(b);
    }
    if (!b) break;
    found.push_back(std::move(b));
    parent = keys[i];
  }
  // Touch children first so the root ends most recent (evicted last), in both tiers.
  for (size_t i = found.size(); i-- > 0;) {
    ram_put(found[i]);
    auto d = disk_.find(found[i]->key);
    if (d != disk_.end()) disk_lru_.splice(disk_lru_.begin(), disk_lru_, d->second.lru);
  }
  const int64_t hit = int64_t(found.size()) * bt;
  SEEK_ASSERT(hit <= cache.capacity);
  for (size_t i = 0; i < found.size(); ++i) {
    const float* src = found[i]->rows.data();
    const size_t row0 = i * size_t(bt);
    for (int64_t l = 0; l < n_layers_; ++l) {
      LayerCache& lc = cache.layers[size_t(l)];
      std::memcpy(lc.k.data() + row0 * size_t(kn_), src, size_t(bt * kn_) * sizeof(float));
      src += bt * kn_;
      if (vn_) std::memcpy(lc.v.data() + row0 * size_t(vn_), src, size_t(bt * vn_) * sizeof(float));
      src += bt * vn_;
    }
  }
  cache.len = hit;
  stats_.lookups++;
  stats_.hit_tokens += hit;
  stats_.miss_tokens += n - hit;
  return hit;
}

void PrefixCache::insert(const int32_t* ids, int64_t n, const KVCache& cache) {
  SEEK_ASSERT(int64_t(cache.layers.size()) == n_layers_);
  const int64_t bt = opt_.block_tokens;
  const std::vector<uint64_t> keys = block_keys(ids, std::min(n, cache.len));
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<BlockPtr> chain;
  uint64_t parent = opt_.salt;
  for (size_t i = 0; i < keys.size(); ++i) {
    const uint64_t key = keys[i];
    auto it = ram_.find(key);
    if (it != ram_.end()) {
      chain.push_back(it->second.block);
    } else {
      auto b = std::make_shared<Block>();
      b->key = key;
      b->parent = parent;
      b->tokens.assign(ids + int64_t(i) * bt, ids + int64_t(i + 1) * bt);
      b->rows.resize(size_t(n_layers_ * (kn_ + vn_) * bt));
      float* dst = b->rows.data();
      const size_t row0 = i * size_t(bt);
      for (int64_t l = 0; l < n_layers_; ++l) {
        const LayerCache& lc = cache.layers[size_t(l)];
        std::memcpy(dst, lc.k.data() + row0 * size_t(kn_), size_t(bt * kn_) * sizeof(float));
        dst += bt * kn_;
        if (vn_) std::memcpy(dst, lc.v.data() + row0 * size_t(vn_), size_t(bt * vn_) * sizeof(float));
        dst += bt * vn_;
      }
      chain.push_back(b);
    }
    parent = key;
  }
  // Children first, so that the root ends most recent and a chain is evicted from its leaf — in RAM
  // and, through the order of the writes, on disk.
  for (size_t i = chain.size(); i-- > 0;) {
    ram_put(chain[i]);
    if (!dir_.empty() && !disk_.count(chain[i]->key) &&
        std::find(write_queue_.begin(), write_queue_.end(), chain[i]) == write_queue_.end()) {
      write_queue_.push_back(chain[i]);
      writer_cv_.notify_one();
    }
  }
}

void PrefixCache::writer_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    writer_cv_.wait(lk, [&] { return stopping_ || !write_queue_.empty(); });
    if (write_queue_.empty()) return;  // stopping, and everything queued is written
    BlockPtr b = write_queue_.front();
    write_queue_.pop_front();
    if (disk_.count(b->key)) {
      idle_cv_.notify_all();
      continue;
    }
    writing_ = true;
    lk.unlock();
    const std::vector<char> bytes = serialize(*b);
    bool ok = true;
    try {
      write_file_atomic(file_of(b->key), bytes.data(), bytes.size());
    } catch (const Error&) {
      ok = false;
    }
    lk.lock();
    writing_ = false;
    if (!ok) {
      stats_.disk_write_errors++;
    } else {
      stats_.disk_writes++;
      disk_lru_.push_front(b->key);
      disk_[b->key] = DiskEntry{bytes.size(), disk_lru_.begin()};
      stats_.disk_bytes += bytes.size();
      while (stats_.disk_bytes > opt_.disk_bytes && disk_lru_.size() > 1) disk_forget(disk_lru_.back(), true);
      stats_.disk_blocks = int64_t(disk_.size());
    }
    idle_cv_.notify_all();
  }
}

void PrefixCache::flush() {
  std::unique_lock<std::mutex> lk(mu_);
  idle_cv_.wait(lk, [&] { return write_queue_.empty() && !writing_; });
}

void PrefixCache::clear_ram() {
  std::lock_guard<std::mutex> lk(mu_);
  ram_.clear();
  ram_lru_.clear();
  stats_.ram_bytes = 0;
  stats_.ram_blocks = 0;
}

PrefixCacheStats PrefixCache::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

}  // namespace seek
