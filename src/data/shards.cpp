// shards.cpp — writer and mmap reader of the token-shard format (format and checks in shards.h).
#include "data/shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "util/atomic_file.h"
#include "util/error.h"

static_assert(std::endian::native == std::endian::little, "seek's token shards assume a little-endian host");

namespace seek {

namespace {

constexpr uint64_t kFnvPrime = 0x100000001b3ull;

void put_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void put_u64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t get_u32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint64_t get_u64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }

}  // namespace

uint64_t fnv1a64(const void* data, size_t n, uint64_t h) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= kFnvPrime;
  }
  return h;
}

int shard_token_bytes(int64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

ShardInfo write_shard(const std::string& path, const std::vector<std::vector<int32_t>>& docs, int64_t vocab_size) {
  if (vocab_size <= 0 || vocab_size > int64_t(1) << 31)
    throw Error(strfmt("%s: vocab_size %lld is outside [1, 2^31]", path.c_str(), (long long)vocab_size));
  ShardInfo info;
  info.vocab_size = uint64_t(vocab_size);
  info.n_docs = docs.size();
  info.token_bytes = shard_token_bytes(vocab_size);
  std::vector<uint64_t> offsets(docs.size() + 1, 0);
  for (size_t i = 0; i < docs.size(); ++i) {
    for (int32_t id : docs[i])
      if (id < 0 || int64_t(id) >= vocab_size)
        throw Error(strfmt("%s: document %zu has token id %d outside the vocabulary [0, %lld)", path.c_str(), i, id,
                           (long long)vocab_size));
    offsets[i + 1] = offsets[i] + docs[i].size();
  }
  info.n_tokens = offsets.back();

  // Token bytes, converted in one buffer (shards are written whole; the caller bounds their size).
  std::vector<uint8_t> tokens(info.n_tokens * size_t(info.token_bytes));
  size_t k = 0;
  for (const auto& d : docs)
    for (int32_t id : d) {
      if (info.token_bytes == 2) {
        uint16_t v = uint16_t(id);
        std::memcpy(&tokens[k], &v, 2);
      } else {
        uint32_t v = uint32_t(id);
        std::memcpy(&tokens[k], &v, 4);
      }
      k += size_t(info.token_bytes);
    }
  uint64_t h = fnv1a64(offsets.data(), offsets.size() * 8);
  h = fnv1a64(tokens.data(), tokens.size(), h);
  info.checksum = h;

  uint8_t header[kShardHeaderBytes] = {};
  std::memcpy(header, kShardMagic, 8);
  put_u32(header + 8, kShardVersion);
  put_u32(header + 12, uint32_t(info.token_bytes));
  put_u64(header + 16, info.vocab_size);
  put_u64(header + 24, info.n_docs);
  put_u64(header + 32, info.n_tokens);
  put_u64(header + 40, info.checksum);
  put_u64(header + 48, fnv1a64(header, 48));
  put_u64(header + 56, 0);

  write_atomic(path, [&](AtomicWriter& out) {
    out.write(header, sizeof header);
    out.write(offsets.data(), offsets.size() * 8);
    out.write(tokens.data(), tokens.size());
  });
  return info;
}

// ---------------------------------------------------------------------------------------------------
// Reader

struct ShardReader::Impl {
  std::string path;
  ShardInfo info;
  const uint8_t* base = nullptr;  // the whole mapped file
  size_t size = 0;
  const uint8_t* offsets = nullptr;  // (n_docs + 1) u64
  const uint8_t* tokens = nullptr;   // n_tokens * token_bytes
  ~Impl() {
    if (base) ::munmap(const_cast<uint8_t*>(base), size);
  }
  uint64_t offset(uint64_t i) const { return get_u64(offsets + 8 * i); }
  Error bad(const std::string& what) const { return Error(path + ": not a valid token shard: " + what); }
};

ShardReader ShardReader::open(const std::string& path, bool verify) {
  auto impl = std::make_shared<Impl>();
  impl->path = path;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(path + ": cannot open token shard: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw Error(path + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  size_t size = size_t(st.st_size);
  if (size < kShardHeaderBytes) {
    ::close(fd);
    throw impl->bad(strfmt("file is %zu bytes, shorter than the %zu-byte header", size, kShardHeaderBytes));
  }
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  ::close(fd);
  if (m == MAP_FAILED) throw Error(path + ": mmap failed: " + std::strerror(e));
  impl->base = static_cast<const uint8_t*>(m);
  impl->size = size;

  const uint8_t* h = impl->base;
  if (std::memcmp(h, kShardMagic, 8) != 0) throw impl->bad("magic is not \"SEEKTOK1\"");
  uint32_t version = get_u32(h + 8);
  if (version != kShardVersion) throw impl->bad(strfmt("version %u, this seek reads version %u", version, kShardVersion));
  if (get_u64(h + 48) != fnv1a64(h, 48)) throw impl->bad("header checksum mismatch (the header is corrupted)");
  ShardInfo& in = impl->info;
  uint32_t tb = get_u32(h + 12);
  if (tb != 2 && tb != 4) throw impl->bad(strfmt("token_bytes = %u, expected 2 or 4", tb));
  in.token_bytes = int(tb);
  in.vocab_size = get_u64(h + 16);
  in.n_docs = get_u64(h + 24);
  in.n_tokens = get_u64(h + 32);
  in.checksum = get_u64(h + 40);
  if (in.vocab_size == 0 || in.vocab_size > (uint64_t(1) << 31))
    throw impl->bad(strfmt("vocab_size = %llu is outside [1, 2^31]", (unsigned long long)in.vocab_size));
  if (int(tb) != shard_token_bytes(int64_t(in.vocab_size)))
    throw impl->bad(strfmt("token_bytes = %u does not match vocab_size %llu", tb, (unsigned long long)in.vocab_size));
  if (get_u64(h + 56) != 0) throw impl->bad("reserved header field is not 0");
  // Sizes, checked against the file length without overflow.
  size_t rest = size - kShardHeaderBytes;
  if (in.n_docs >= rest / 8)
    throw impl->bad(strfmt("n_docs = %llu needs a %llu-entry offsets table, but only %zu bytes follow the header",
                           (unsigned long long)in.n_docs, (unsigned long long)in.n_docs + 1, rest));
  size_t table = size_t(in.n_docs + 1) * 8;
  rest -= table;
  if (in.n_tokens > rest / tb || in.n_tokens * tb != rest)
    throw impl->bad(strfmt("n_tokens = %llu of %u bytes needs %s bytes of tokens, the file has %zu after the offsets "
                           "(truncated or trailing bytes)",
                           (unsigned long long)in.n_tokens, tb,
                           in.n_tokens > rest / tb ? "more than that many" : std::to_string(in.n_tokens * tb).c_str(),
                           rest));
  impl->offsets = h + kShardHeaderBytes;
  impl->tokens = impl->offsets + table;
  if (impl->offset(0) != 0) throw impl->bad("offsets[0] is not 0");
  for (uint64_t i = 0; i < in.n_docs; ++i) {
    uint64_t a = impl->offset(i), b = impl->offset(i + 1);
    if (b < a || b > in.n_tokens)
      throw impl->bad(strfmt("offsets[%llu] = %llu after %llu: not non-decreasing within the %llu tokens",
                             (unsigned long long)(i + 1), (unsigned long long)b, (unsigned long long)a,
                             (unsigned long long)in.n_tokens));
  }
  if (impl->offset(in.n_docs) != in.n_tokens)
    throw impl->bad(strfmt("offsets[n_docs] = %llu, expected n_tokens = %llu",
                           (unsigned long long)impl->offset(in.n_docs), (unsigned long long)in.n_tokens));
  ShardReader r;
  r.impl_ = impl;
  if (verify) r.verify();
  return r;
}

void ShardReader::verify() const {
  SEEK_ASSERT(impl_);
  const Impl& im = *impl_;
  const ShardInfo& in = im.info;
  size_t table = size_t(in.n_docs + 1) * 8, nbytes = size_t(in.n_tokens) * size_t(in.token_bytes);
  uint64_t h = fnv1a64(im.offsets, table);
  h = fnv1a64(im.tokens, nbytes, h);
  if (h != in.checksum) throw im.bad("payload checksum mismatch (offsets or tokens are corrupted)");
  for (uint64_t i = 0; i < in.n_tokens; ++i) {
    uint64_t id = in.token_bytes == 2 ? uint64_t(uint16_t(im.tokens[2 * i] | (im.tokens[2 * i + 1] << 8)))
                                      : uint64_t(get_u32(im.tokens + 4 * i));
    if (id >= in.vocab_size)
      throw im.bad(strfmt("token %llu has id %llu >= vocab_size %llu", (unsigned long long)i, (unsigned long long)id,
                          (unsigned long long)in.vocab_size));
  }
}

const std::string& ShardReader::path() const {
  SEEK_ASSERT(impl_);
  return impl_->path;
}

const ShardInfo& ShardReader::info() const {
  SEEK_ASSERT(impl_);
  return impl_->info;
}

uint64_t ShardReader::doc_begin(uint64_t i) const {
  SEEK_ASSERT(impl_ && i <= impl_->info.n_docs);
  return impl_->offset(i);
}

uint64_t ShardReader::doc_size(uint64_t i) const {
  SEEK_ASSERT(impl_ && i < impl_->info.n_docs);
  return impl_->offset(i + 1) - impl_->offset(i);
}

void ShardReader::read_tokens(uint64_t start, uint64_t n, int32_t* out) const {
  SEEK_ASSERT(impl_ && start <= impl_->info.n_tokens && n <= impl_->info.n_tokens - start);
  const uint8_t* p = impl_->tokens;
  if (impl_->info.token_bytes == 2) {
    for (uint64_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, p + 2 * (start + i), 2);
      out[i] = int32_t(v);
    }
  } else {
    for (uint64_t i = 0; i < n; ++i) out[i] = int32_t(get_u32(p + 4 * (start + i)));
  }
}

std::vector<int32_t> ShardReader::doc(uint64_t i) const {
  std::vector<int32_t> out(doc_size(i));
  read_tokens(doc_begin(i), out.size(), out.data());
  return out;
}

}  // namespace seek
