// gguf.cpp — see gguf.h. Layout and type codes follow llama.cpp's gguf-py (gguf_reader.py,
// gguf_writer.py, constants.py) and ggml/src/gguf.cpp.
#include "model/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "util/atomic_file.h"
#include "util/error.h"

namespace seek {

static_assert(std::endian::native == std::endian::little, "GGUF is read by copying little-endian fields");

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kVersion = 3;
constexpr int64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;
const char* const kAlignmentKey = "general.alignment";
const char* const kSupported = "seek reads F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K";

bool is_integer(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
    case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}
bool is_float(GgufType t) { return t == GgufType::F32 || t == GgufType::F64; }
bool is_known(uint32_t code) { return code <= uint32_t(GgufType::F64); }

// Bytes of one scalar on disk (strings: the smallest, an empty one).
size_t scalar_bytes(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 12;  // element type + count
  }
  return 1;
}

// The range an integer type holds, as int64 (U64 is cut at INT64_MAX: GgufValue keeps int64).
void int_range(GgufType t, int64_t* lo, int64_t* hi) {
  switch (t) {
    case GgufType::U8: *lo = 0; *hi = UINT8_MAX; return;
    case GgufType::I8: *lo = INT8_MIN; *hi = INT8_MAX; return;
    case GgufType::U16: *lo = 0; *hi = UINT16_MAX; return;
    case GgufType::I16: *lo = INT16_MIN; *hi = INT16_MAX; return;
    case GgufType::U32: *lo = 0; *hi = UINT32_MAX; return;
    case GgufType::I32: *lo = INT32_MIN; *hi = INT32_MAX; return;
    case GgufType::U64: *lo = 0; *hi = INT64_MAX; return;
    case GgufType::BOOL: *lo = 0; *hi = 1; return;
    default: *lo = INT64_MIN; *hi = INT64_MAX; return;
  }
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// A bounds-checked cursor over the header. `where` says what is being read ("key \"x\": ") so that every
// Error names the file and the key or tensor.
struct Cursor {
  const std::string& path;
  const uint8_t* base;
  size_t size;
  size_t pos = 0;
  std::string where;

  [[noreturn]] void fail(const std::string& why) const { throw Error(path + ": " + where + why); }
  size_t left() const { return size - pos; }
  void need(size_t n, const char* what) const {
    if (n > left())
      fail(strfmt("truncated: %s needs %zu bytes at offset %zu, but the file ends %zu bytes later", what, n, pos,
                  left()));
  }
  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base + pos, sizeof v);
    pos += sizeof v;
    return v;
  }
  std::string str(const char* what) {
    const uint64_t n = get<uint64_t>(what);
    if (n > left())
      fail(strfmt("%s is %llu bytes long, but only %zu bytes remain in the file", what, (unsigned long long)n, left()));
    std::string s(reinterpret_cast<const char*>(base + pos), size_t(n));
    pos += size_t(n);
    return s;
  }
  // A count of items of at least `min_bytes` each, bounded by what the rest of the file can hold.
  size_t count(const char* what, size_t min_bytes) {
    const uint64_t n = get<uint64_t>(what);
    if (n > left() / min_bytes)
      fail(strfmt("%s = %llu, but %zu remaining bytes hold at most %zu", what, (unsigned long long)n, left(),
                  left() / min_bytes));
    return size_t(n);
  }
};

int64_t read_int(Cursor& c, GgufType t) {
  switch (t) {
    case GgufType::U8: return c.get<uint8_t>("a U8");
    case GgufType::I8: return c.get<int8_t>("an I8");
    case GgufType::U16: return c.get<uint16_t>("a U16");
    case GgufType::I16: return c.get<int16_t>("an I16");
    case GgufType::U32: return c.get<uint32_t>("a U32");
    case GgufType::I32: return c.get<int32_t>("an I32");
    case GgufType::I64: return c.get<int64_t>("an I64");
    case GgufType::U64: {
      const uint64_t v = c.get<uint64_t>("a U64");
      if (v > uint64_t(INT64_MAX))
        c.fail(strfmt("U64 value %llu is above INT64_MAX, the largest seek holds", (unsigned long long)v));
      return int64_t(v);
    }
    case GgufType::BOOL: {
      const uint8_t v = c.get<uint8_t>("a BOOL");
      if (v > 1) c.fail(strfmt("BOOL byte is %u, expected 0 or 1", unsigned(v)));
      return v;
    }
    default: SEEK_ASSERT(false);
  }
  return 0;
}

double read_float(Cursor& c, GgufType t) {
  if (t == GgufType::F32) return c.get<float>("an F32");
  return c.get<double>("an F64");
}

GgufType read_type(Cursor& c, const char* what) {
  const uint32_t code = c.get<uint32_t>(what);
  if (!is_known(code)) c.fail(strfmt("%s is %u, expected a GGUF value type 0..12", what, code));
  return GgufType(code);
}

GgufValue read_value(Cursor& c) {
  GgufValue v;
  v.type = read_type(c, "value type");
  if (is_integer(v.type) || v.type == GgufType::BOOL) {
    v.i = read_int(c, v.type);
    v.b = v.i != 0;
  } else if (is_float(v.type)) {
    v.f = read_float(c, v.type);
  } else if (v.type == GgufType::STRING) {
    v.s = c.str("string");
  } else {  // ARRAY
    v.elem = read_type(c, "array element type");
    if (v.elem == GgufType::ARRAY) c.fail("arrays of arrays are not supported");
    const size_t n = c.count("array count", scalar_bytes(v.elem));
    if (v.elem == GgufType::STRING) {
      v.strings.reserve(n);
      for (size_t k = 0; k < n; ++k) v.strings.push_back(c.str("array string"));
    } else if (is_float(v.elem)) {
      v.floats.reserve(n);
      for (size_t k = 0; k < n; ++k) v.floats.push_back(read_float(c, v.elem));
    } else {
      v.ints.reserve(n);
      for (size_t k = 0; k < n; ++k) v.ints.push_back(read_int(c, v.elem));
    }
  }
  return v;
}

// ggml's type names by code; nullptr for the codes ggml retired or never used.
const char* const kGgmlNames[] = {
    "F32", "F16", "Q4_0", "Q4_1", nullptr, nullptr, "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K",
    "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS",
    "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16", nullptr, nullptr, nullptr, "TQ1_0", "TQ2_0", nullptr,
    nullptr, nullptr, "MXFP4", "NVFP4", "Q1_0", "Q2_0",
};

struct GgmlCode {
  DType dtype;
  uint32_t code;
};
constexpr GgmlCode kGgmlCodes[] = {
    {DType::F32, 0},  {DType::F16, 1},  {DType::Q4_0, 2},  {DType::Q5_0, 6}, {DType::Q5_1, 7}, {DType::Q8_0, 8},
    {DType::Q4_K, 12}, {DType::Q5_K, 13}, {DType::Q6_K, 14}, {DType::BF16, 30},
};

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* const names[] = {"U8", "I8", "U16", "I16", "U32", "I32", "F32",
                                      "BOOL", "STRING", "ARRAY", "U64", "I64", "F64"};
  return is_known(uint32_t(t)) ? names[uint32_t(t)] : "unknown";
}

GgufValue GgufValue::integer(GgufType type, int64_t v) {
  SEEK_ASSERT(is_integer(type));
  GgufValue g;
  g.type = type;
  g.i = v;
  return g;
}
GgufValue GgufValue::u32(uint32_t v) { return integer(GgufType::U32, v); }
GgufValue GgufValue::i32(int32_t v) { return integer(GgufType::I32, v); }
GgufValue GgufValue::u64(uint64_t v) {
  SEEK_ASSERT_MSG(v <= uint64_t(INT64_MAX), "GgufValue holds U64 values up to INT64_MAX");
  return integer(GgufType::U64, int64_t(v));
}
GgufValue GgufValue::f32(float v) {
  GgufValue g;
  g.type = GgufType::F32;
  g.f = v;
  return g;
}
GgufValue GgufValue::f64(double v) {
  GgufValue g;
  g.type = GgufType::F64;
  g.f = v;
  return g;
}
GgufValue GgufValue::boolean(bool v) {
  GgufValue g;
  g.type = GgufType::BOOL;
  g.b = v;
  g.i = v;
  return g;
}
GgufValue GgufValue::str(std::string v) {
  GgufValue g;
  g.type = GgufType::STRING;
  g.s = std::move(v);
  return g;
}
GgufValue GgufValue::str_array(std::vector<std::string> v) {
  GgufValue g;
  g.type = GgufType::ARRAY;
  g.elem = GgufType::STRING;
  g.strings = std::move(v);
  return g;
}
GgufValue GgufValue::int_array(GgufType elem, std::vector<int64_t> v) {
  SEEK_ASSERT(is_integer(elem) || elem == GgufType::BOOL);
  GgufValue g;
  g.type = GgufType::ARRAY;
  g.elem = elem;
  g.ints = std::move(v);
  return g;
}
GgufValue GgufValue::f32_array(std::vector<double> v) {
  GgufValue g;
  g.type = GgufType::ARRAY;
  g.elem = GgufType::F32;
  g.floats = std::move(v);
  return g;
}
GgufValue GgufValue::f64_array(std::vector<double> v) {
  GgufValue g = f32_array(std::move(v));
  g.elem = GgufType::F64;
  return g;
}

bool operator==(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type) return false;
  if (is_integer(a.type)) return a.i == b.i;
  if (a.type == GgufType::BOOL) return a.b == b.b;
  if (is_float(a.type)) return a.f == b.f || (a.f != a.f && b.f != b.f);
  if (a.type == GgufType::STRING) return a.s == b.s;
  if (a.elem != b.elem) return false;
  if (a.elem == GgufType::STRING) return a.strings == b.strings;
  if (is_float(a.elem)) return a.floats == b.floats;
  return a.ints == b.ints;
}

const char* ggml_type_name(uint32_t ggml_type) {
  return ggml_type < std::size(kGgmlNames) ? kGgmlNames[ggml_type] : nullptr;
}

bool dtype_from_ggml(uint32_t ggml_type, DType* out) {
  for (const GgmlCode& c : kGgmlCodes)
    if (c.code == ggml_type) {
      *out = c.dtype;
      return true;
    }
  return false;
}

uint32_t ggml_type_of(DType t) {
  for (const GgmlCode& c : kGgmlCodes)
    if (c.dtype == t) return c.code;
  SEEK_ASSERT_MSG(false, "GGUF holds no F8_E4M3, I32 or I64 tensors for seek");
  return 0;
}

// ---- Reader ----

GgufFile::GgufFile(const std::string& path, FileBytes::Mode mode) : path_(path), bytes_(path, mode) { parse(); }

void GgufFile::replace_bytes(FileBytes bytes) {
  if (bytes.size() != bytes_.size())
    throw Error(strfmt("%s: the file changed while it was loaded (%zu bytes, then %zu)", path_.c_str(),
                       bytes_.size(), bytes.size()));
  for (TensorInfo& t : tensors_)
    if (const int64_t off = file_offset(t); off >= 0) t.data = bytes.data() + off;
  bytes_ = std::move(bytes);
}

int64_t GgufFile::file_offset(const TensorInfo& t) const {
  const auto* p = static_cast<const uint8_t*>(t.data);
  return p >= bytes_.data() && p < bytes_.data() + bytes_.size() ? int64_t(p - bytes_.data()) : -1;
}

void GgufFile::parse() {
  const std::string& path = path_;
  Cursor c{path, bytes_.data(), bytes_.size(), 0, {}};
  const size_t size = bytes_.size();
  if (size < 4 || std::memcmp(c.base, "GGUF", 4) != 0) {
    std::string got = size < 4 ? strfmt("only %zu bytes", size) : "magic " + quoted(std::string((const char*)c.base, 4));
    throw Error(path + ": not a GGUF file: " + got + ", expected the magic \"GGUF\"");
  }
  c.pos = 4;
  const uint32_t version = c.get<uint32_t>("the version");
  if (version == 1 || version == 2)
    throw Error(strfmt("%s: GGUF version %u is not supported: seek reads version 3 (convert the model again with a "
                       "current llama.cpp)", path.c_str(), version));
  if (version != kVersion)
    throw Error(strfmt("%s: GGUF version %u%s, expected 3", path.c_str(), version,
                       __builtin_bswap32(version) == kVersion ? " (a big-endian file?)" : ""));
  const uint64_t n_tensors = c.get<uint64_t>("the tensor count");
  const uint64_t n_kv = c.get<uint64_t>("the metadata count");
  // A key/value takes at least 13 bytes (key length, type, a U8); a tensor info at least 32 (name length,
  // n_dims, one extent, type, offset). Bound both counts before reserving anything.
  constexpr size_t kMinKv = 13, kMinTensor = 32;
  if (n_kv > c.left() / kMinKv || n_tensors > c.left() / kMinTensor ||
      n_kv * kMinKv + n_tensors * kMinTensor > c.left())
    throw Error(strfmt("%s: header claims %llu tensors and %llu metadata keys, more than the %zu bytes of the file "
                       "can hold (corrupt or truncated)", path.c_str(), (unsigned long long)n_tensors,
                       (unsigned long long)n_kv, size));

  kv_.reserve(size_t(n_kv));
  for (size_t k = 0; k < n_kv; ++k) {
    c.where = strfmt("metadata key %zu: ", k);
    std::string key = c.str("key length");
    if (key.empty()) c.fail("key is empty");
    if (kv_index_.count(key)) throw Error(path + ": key " + quoted(key) + " appears twice");
    c.where = "key " + quoted(key) + ": ";
    GgufValue v = read_value(c);
    kv_index_.emplace(key, kv_.size());
    kv_.emplace_back(std::move(key), std::move(v));
  }
  c.where.clear();
  if (const GgufValue* a = find(kAlignmentKey)) {
    if (a->type != GgufType::U32)
      throw Error(path + ": key \"general.alignment\" is " + gguf_type_name(a->type) + ", expected U32");
    if (a->i == 0 || (a->i & (a->i - 1)) != 0)
      throw Error(strfmt("%s: key \"general.alignment\" = %lld, expected a power of two", path.c_str(),
                         (long long)a->i));
    alignment_ = a->i;
  }

  struct Raw {
    uint64_t offset;
    size_t index;
  };
  std::vector<Raw> raw;
  tensors_.reserve(size_t(n_tensors));
  raw.reserve(size_t(n_tensors));
  for (size_t k = 0; k < n_tensors; ++k) {
    c.where = strfmt("tensor %zu: ", k);
    TensorInfo t;
    t.name = c.str("name length");
    t.file = path;
    if (t.name.empty()) c.fail("name is empty");
    if (tensor_index_.count(t.name)) throw Error(path + ": tensor " + quoted(t.name) + " appears twice");
    c.where = "tensor " + quoted(t.name) + ": ";
    const uint32_t n_dims = c.get<uint32_t>("n_dims");
    if (n_dims < 1 || n_dims > kMaxDims) c.fail(strfmt("n_dims = %u, expected 1 to %u", n_dims, kMaxDims));
    uint64_t ne[kMaxDims];
    for (uint32_t d = 0; d < n_dims; ++d) ne[d] = c.get<uint64_t>("an extent");
    const uint32_t type = c.get<uint32_t>("the ggml type");
    const uint64_t offset = c.get<uint64_t>("the data offset");

    std::string extents = "[";
    for (uint32_t d = 0; d < n_dims; ++d) extents += strfmt("%s%llu", d ? ", " : "", (unsigned long long)ne[d]);
    extents += "]";
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      if (ne[d] == 0) c.fail("extents " + extents + " (innermost first) must all be > 0");
      if (__builtin_mul_overflow(numel, ne[d], &numel) || numel > uint64_t(INT64_MAX))
        c.fail("extents " + extents + " hold more than INT64_MAX elements");
    }
    if (!dtype_from_ggml(type, &t.dtype)) {
      const char* name = ggml_type_name(type);
      if (!name) c.fail(strfmt("unknown ggml type %u", type));
      c.fail(strfmt("ggml type %s (%u) is not supported; %s", name, type, kSupported));
    }
    const uint64_t block = uint64_t(dtype_block_values(t.dtype));
    if (ne[0] % block != 0)
      c.fail(strfmt("innermost extent %llu is not a multiple of %s's block of %llu values",
                    (unsigned long long)ne[0], std::string(dtype_name(t.dtype)).c_str(), (unsigned long long)block));
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel / block, uint64_t(dtype_block_bytes(t.dtype)), &nbytes) ||
        nbytes > size)
      c.fail(strfmt("extents %s of %s need more bytes than the file's %zu", extents.c_str(),
                    std::string(dtype_name(t.dtype)).c_str(), size));
    if (offset % uint64_t(alignment_) != 0)
      c.fail(strfmt("data offset %llu is not a multiple of the alignment %lld", (unsigned long long)offset,
                    (long long)alignment_));
    for (uint32_t d = n_dims; d-- > 0;) t.shape.push_back(int64_t(ne[d]));
    t.nbytes = size_t(nbytes);
    tensor_index_.emplace(t.name, tensors_.size());
    raw.push_back({offset, tensors_.size()});
    tensors_.push_back(std::move(t));
  }
  c.where.clear();

  // The data section starts at the header's end rounded up to the alignment.
  const uint64_t a = uint64_t(alignment_);
  const uint64_t data_start = (uint64_t(c.pos) + a - 1) / a * a;
  if (!tensors_.empty() && data_start > size)
    throw Error(strfmt("%s: the data section would start at byte %llu (the header's end aligned to %lld), past the "
                       "end of the file at %zu (truncated?)", path.c_str(), (unsigned long long)data_start,
                       (long long)alignment_, size));
  const uint64_t data_size = tensors_.empty() ? 0 : size - data_start;
  std::vector<std::pair<uint64_t, size_t>> spans;  // begin, tensor index
  for (const Raw& r : raw) {
    TensorInfo& t = tensors_[r.index];
    if (r.offset > data_size || t.nbytes > data_size - r.offset)
      throw Error(strfmt("%s: tensor \"%s\": data [%llu, %llu) falls outside the %llu data bytes of the file "
                         "(truncated?)", path.c_str(), t.name.c_str(), (unsigned long long)r.offset,
                         (unsigned long long)(r.offset + t.nbytes), (unsigned long long)data_size));
    t.data = bytes_.data() + data_start + r.offset;
    const size_t align = t.dtype == DType::F32 ? 4 : 2;
    if (reinterpret_cast<uintptr_t>(t.data) % align != 0) {
      // Typed loads need natural alignment; only general.alignment < 4 allows this, and it costs a copy.
      copies_.emplace_back(new uint8_t[t.nbytes]);
      std::memcpy(copies_.back().get(), t.data, t.nbytes);
      t.data = copies_.back().get();
    }
    spans.emplace_back(r.offset, r.index);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t k = 1; k < spans.size(); ++k) {
    const TensorInfo& prev = tensors_[spans[k - 1].second];
    if (spans[k].first < spans[k - 1].first + prev.nbytes)
      throw Error(strfmt("%s: tensors \"%s\" and \"%s\" overlap at data offset %llu", path.c_str(), prev.name.c_str(),
                         tensors_[spans[k].second].name.c_str(), (unsigned long long)spans[k].first));
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

std::string type_str(const GgufValue& v) {
  if (v.type != GgufType::ARRAY) return gguf_type_name(v.type);
  return std::string("an array of ") + gguf_type_name(v.elem);
}

}  // namespace

// Each getter: absent → Error (or the fallback), wrong type → Error naming what it is and what was wanted.
#define SEEK_GGUF_GET(cond, expected)                                                                  \
  const GgufValue* v = find(key);                                                                      \
  if (!v) throw Error(path_ + ": missing key " + quoted(key) + " (expected " + expected + ")");         \
  if (!(cond)) throw Error(path_ + ": key " + quoted(key) + " is " + type_str(*v) + ", expected " + expected)

int64_t GgufFile::get_int(const std::string& key) const {
  SEEK_GGUF_GET(is_integer(v->type), "an integer");
  return v->i;
}
int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const {
  return find(key) ? get_int(key) : fallback;
}
double GgufFile::get_float(const std::string& key) const {
  SEEK_GGUF_GET(is_float(v->type) || is_integer(v->type), "a number");
  return is_float(v->type) ? v->f : double(v->i);
}
double GgufFile::get_float(const std::string& key, double fallback) const {
  return find(key) ? get_float(key) : fallback;
}
bool GgufFile::get_bool(const std::string& key, bool fallback) const {
  if (!find(key)) return fallback;
  SEEK_GGUF_GET(v->type == GgufType::BOOL, "a BOOL");
  return v->b;
}
const std::string& GgufFile::get_string(const std::string& key) const {
  SEEK_GGUF_GET(v->type == GgufType::STRING, "a STRING");
  return v->s;
}
const std::vector<std::string>& GgufFile::get_strings(const std::string& key) const {
  SEEK_GGUF_GET(v->type == GgufType::ARRAY && v->elem == GgufType::STRING, "an array of STRING");
  return v->strings;
}
const std::vector<int64_t>& GgufFile::get_ints(const std::string& key) const {
  SEEK_GGUF_GET(v->type == GgufType::ARRAY && (is_integer(v->elem) || v->elem == GgufType::BOOL),
                "an array of integers");
  return v->ints;
}
const std::vector<double>& GgufFile::get_floats(const std::string& key) const {
  SEEK_GGUF_GET(v->type == GgufType::ARRAY && is_float(v->elem), "an array of F32 or F64");
  return v->floats;
}
#undef SEEK_GGUF_GET

// ---- Writer ----

namespace {

struct Out {
  std::string buf;
  template <class T>
  void put(T v) {
    buf.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    buf += s;
  }
};

void put_int(Out& o, GgufType t, int64_t v, const std::string& path, const std::string& key) {
  int64_t lo, hi;
  int_range(t, &lo, &hi);
  if (v < lo || v > hi)
    throw Error(strfmt("%s: key \"%s\": value %lld does not fit %s", path.c_str(), key.c_str(), (long long)v,
                       gguf_type_name(t)));
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: o.put(uint8_t(v)); return;
    case GgufType::U16: case GgufType::I16: o.put(uint16_t(v)); return;
    case GgufType::U32: case GgufType::I32: o.put(uint32_t(v)); return;
    default: o.put(uint64_t(v)); return;
  }
}

void put_float(Out& o, GgufType t, double v) {
  if (t == GgufType::F32) o.put(float(v));
  else o.put(v);
}

void put_value(Out& o, const GgufValue& v, const std::string& path, const std::string& key) {
  if (!is_known(uint32_t(v.type)))
    throw Error(strfmt("%s: key \"%s\": unknown value type %u", path.c_str(), key.c_str(), uint32_t(v.type)));
  o.put(uint32_t(v.type));
  if (v.type == GgufType::BOOL) put_int(o, v.type, v.b, path, key);
  else if (is_integer(v.type)) put_int(o, v.type, v.i, path, key);
  else if (is_float(v.type)) put_float(o, v.type, v.f);
  else if (v.type == GgufType::STRING) o.str(v.s);
  else {
    if (!is_known(uint32_t(v.elem)) || v.elem == GgufType::ARRAY)
      throw Error(path + ": key " + quoted(key) + ": array element type must be a scalar or STRING, not " +
                  gguf_type_name(v.elem));
    o.put(uint32_t(v.elem));
    if (v.elem == GgufType::STRING) {
      o.put<uint64_t>(v.strings.size());
      for (const std::string& s : v.strings) o.str(s);
    } else if (is_float(v.elem)) {
      o.put<uint64_t>(v.floats.size());
      for (double f : v.floats) put_float(o, v.elem, f);
    } else {
      o.put<uint64_t>(v.ints.size());
      for (int64_t i : v.ints) put_int(o, v.elem, i, path, key);
    }
  }
}

}  // namespace

void write_gguf_streamed(const std::string& path,
                         const std::vector<std::pair<std::string, GgufValue>>& metadata,
                         const std::vector<TensorMeta>& tensors,
                         const std::function<const void*(size_t i)>& data, int64_t alignment) {
  if (alignment <= 0 || alignment > int64_t(UINT32_MAX) || (alignment & (alignment - 1)) != 0)
    throw Error(strfmt("%s: alignment %lld must be a power of two that fits U32", path.c_str(), (long long)alignment));
  std::unordered_set<std::string> keys;
  bool has_alignment = false;
  for (const auto& [key, v] : metadata) {
    if (key.empty()) throw Error(path + ": a metadata key is empty");
    if (!keys.insert(key).second) throw Error(path + ": key " + quoted(key) + " appears twice");
    if (key == kAlignmentKey) {
      if (v.type != GgufType::U32 || v.i != alignment)
        throw Error(strfmt("%s: key \"general.alignment\" must be U32 %lld, the alignment written", path.c_str(),
                           (long long)alignment));
      has_alignment = true;
    }
  }
  Out o;
  o.put(kMagic);
  o.put(kVersion);
  o.put<uint64_t>(tensors.size());
  const bool add_alignment = alignment != kDefaultAlignment && !has_alignment;
  o.put<uint64_t>(metadata.size() + (add_alignment ? 1 : 0));
  for (const auto& [key, v] : metadata) {
    o.str(key);
    put_value(o, v, path, key);
  }
  if (add_alignment) {
    o.str(kAlignmentKey);
    put_value(o, GgufValue::u32(uint32_t(alignment)), path, kAlignmentKey);
  }

  const uint64_t a = uint64_t(alignment);
  std::vector<size_t> nbytes;
  std::unordered_set<std::string> names;
  uint64_t offset = 0;
  for (const TensorMeta& t : tensors) {
    auto bad = [&](const std::string& why) { return Error(path + ": tensor " + quoted(t.name) + ": " + why); };
    if (t.name.empty()) throw Error(path + ": a tensor name is empty");
    if (!names.insert(t.name).second) throw bad("appears twice");
    if (t.dtype == DType::F8_E4M3 || t.dtype == DType::I32 || t.dtype == DType::I64)
      throw bad(std::string(dtype_name(t.dtype)) + " cannot be written to GGUF; " + kSupported);
    TensorInfo shape_of;  // for shape_str()
    shape_of.shape = t.shape;
    if (t.shape.empty() || t.shape.size() > kMaxDims) throw bad("shape " + shape_of.shape_str() + " must have 1 to 4 extents");
    int64_t numel = 1;
    for (int64_t d : t.shape)
      if (d <= 0 || __builtin_mul_overflow(numel, d, &numel))
        throw bad("shape " + shape_of.shape_str() + " must hold extents > 0 whose product fits int64");
    if (t.shape.back() % dtype_block_values(t.dtype) != 0)
      throw bad(strfmt("shape %s: the innermost extent must be a multiple of %s's block of %lld values",
                       shape_of.shape_str().c_str(), std::string(dtype_name(t.dtype)).c_str(),
                       (long long)dtype_block_values(t.dtype)));
    o.str(t.name);
    o.put(uint32_t(t.shape.size()));
    for (size_t d = t.shape.size(); d-- > 0;) o.put(uint64_t(t.shape[d]));  // innermost first
    o.put(ggml_type_of(t.dtype));
    o.put(offset);
    nbytes.push_back(dtype_nbytes(t.dtype, numel));
    offset += (nbytes.back() + a - 1) / a * a;
  }
  static const char zeros[256] = {};
  auto pad = [&](AtomicWriter& out, uint64_t n) {
    for (uint64_t r = (a - n % a) % a; r > 0;) {
      const size_t k = size_t(std::min<uint64_t>(r, sizeof zeros));
      out.write(zeros, k);
      r -= k;
    }
  };
  write_atomic(path, [&](AtomicWriter& out) {
    out.write(o.buf.data(), o.buf.size());
    pad(out, o.buf.size());
    for (size_t k = 0; k < tensors.size(); ++k) {
      out.write(data(k), nbytes[k]);
      pad(out, nbytes[k]);
    }
  });
}

void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorOut>& tensors, int64_t alignment) {
  std::vector<TensorMeta> meta;
  meta.reserve(tensors.size());
  for (const GgufTensorOut& t : tensors) meta.push_back({t.name, t.dtype, t.shape});
  write_gguf_streamed(path, metadata, meta, [&](size_t i) { return tensors[i].data; }, alignment);
}

}  // namespace seek
