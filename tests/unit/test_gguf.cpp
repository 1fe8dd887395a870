// GGUF: round trip of every value type and tensor dtype, a file written by llama.cpp's gguf-py read and
// rewritten byte for byte, every kind of bad file refused with a message that names the file and the key
// or tensor, and seeded mutations of a valid file that load or throw Error — never crash, never
// allocate more than the file's size justifies.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "model/gguf.h"
#include "test_util.h"
#include "util/error.h"
#include "util/rng.h"

using namespace seek;

namespace {

using Metadata = std::vector<std::pair<std::string, GgufValue>>;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A GGUF file built field by field, for files no writer would produce.
struct G {
  std::string b;
  G& u8(uint8_t v) { return raw(&v, 1); }
  G& u32(uint32_t v) { return raw(&v, 4); }
  G& u64(uint64_t v) { return raw(&v, 8); }
  G& raw(const void* p, size_t n) {
    b.append(static_cast<const char*>(p), n);
    return *this;
  }
  G& str(const std::string& s) { return u64(s.size()).raw(s.data(), s.size()); }
  G& kv_u32(const std::string& key, uint32_t v) { return str(key).u32(uint32_t(GgufType::U32)).u32(v); }
  G& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (uint64_t e : ne) u64(e);
    return u32(type).u64(offset);
  }
  G& pad(size_t a = 32) {
    while (b.size() % a) b.push_back('\0');
    return *this;
  }
  G& zeros(size_t n) {
    b.append(n, '\0');
    return *this;
  }
};

G head(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) { return G().raw("GGUF", 4).u32(version).u64(n_tensors).u64(n_kv); }

void expect_error(const std::string& path, const std::string& needle, const std::string& label = "") {
  try {
    GgufFile f(path);
    ADD_FAILURE() << label << ": accepted a bad file; expected: " << needle;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << label << ": " << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << label << ": " << msg;
  }
}

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = uint8_t(rng.next());
  return v;
}

// Every metadata value type, each at a limit of its range, and every kind of array.
Metadata every_value() {
  std::vector<std::string> many(150000);
  for (size_t k = 0; k < many.size(); ++k) many[k] = k % 1000 == 0 ? "" : "tok" + std::to_string(k);
  return {
      {"general.architecture", GgufValue::str("deepseek2")},
      {"t.u8", GgufValue::integer(GgufType::U8, 255)},
      {"t.i8", GgufValue::integer(GgufType::I8, -128)},
      {"t.u16", GgufValue::integer(GgufType::U16, 65535)},
      {"t.i16", GgufValue::integer(GgufType::I16, -32768)},
      {"t.u32", GgufValue::u32(4294967295u)},
      {"t.i32", GgufValue::i32(INT32_MIN)},
      {"t.f32", GgufValue::f32(-0.1f)},
      {"t.bool", GgufValue::boolean(true)},
      {"t.false", GgufValue::boolean(false)},
      {"t.str", GgufValue::str(std::string("nul\0inside, ünïcode", 20))},
      {"t.empty", GgufValue::str("")},
      {"t.u64", GgufValue::u64(uint64_t(INT64_MAX))},
      {"t.i64", GgufValue::integer(GgufType::I64, INT64_MIN)},
      {"t.f64", GgufValue::f64(1.0 / 3.0)},
      {"a.strs", GgufValue::str_array(many)},
      {"a.u8", GgufValue::int_array(GgufType::U8, {0, 255})},
      {"a.i8", GgufValue::int_array(GgufType::I8, {-128, 127})},
      {"a.u16", GgufValue::int_array(GgufType::U16, {65535})},
      {"a.i16", GgufValue::int_array(GgufType::I16, {-32768, 1})},
      {"a.u32", GgufValue::int_array(GgufType::U32, {4294967295, 0})},
      {"a.i32", GgufValue::int_array(GgufType::I32, {INT32_MIN, INT32_MAX})},
      {"a.u64", GgufValue::int_array(GgufType::U64, {INT64_MAX})},
      {"a.i64", GgufValue::int_array(GgufType::I64, {INT64_MIN, -1})},
      {"a.bool", GgufValue::int_array(GgufType::BOOL, {1, 0, 1})},
      {"a.f32", GgufValue::f32_array({0.5, double(-1e30f)})},
      {"a.f64", GgufValue::f64_array({1e-300, -2.0})},
      {"a.empty", GgufValue::int_array(GgufType::I32, {})},
      {"a.nostrs", GgufValue::str_array({})},
  };
}

// One tensor of every dtype GGUF holds for seek, with row-major shapes of 1 to 4 extents.
struct TensorCase {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

std::vector<TensorCase> every_dtype() {
  std::vector<TensorCase> ts = {
      {"f32", DType::F32, {2, 3}, {}},        {"f16", DType::F16, {5}, {}},
      {"bf16", DType::BF16, {4, 1, 3}, {}},   {"q8_0", DType::Q8_0, {3, 64}, {}},
      {"q4_0", DType::Q4_0, {2, 32}, {}},     {"q4_k", DType::Q4_K, {2, 512}, {}},
      {"q6_k", DType::Q6_K, {1, 2, 1, 256}, {}}, {"q5_0", DType::Q5_0, {3, 32}, {}},
      {"q5_k", DType::Q5_K, {1, 512}, {}},    {"q5_1", DType::Q5_1, {2, 64}, {}},
  };
  uint64_t seed = 1;
  for (TensorCase& t : ts) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    t.data = random_bytes(dtype_nbytes(t.dtype, n), seed++);
  }
  return ts;
}

std::vector<GgufTensorOut> outs(const std::vector<TensorCase>& ts) {
  std::vector<GgufTensorOut> o;
  for (const TensorCase& t : ts) o.push_back({t.name, t.dtype, t.shape, t.data.data()});
  return o;
}

}  // namespace

TEST(Gguf, RoundTripEveryValueTypeAndDtype) {
  test::TempDir dir;
  const Metadata md = every_value();
  const std::vector<TensorCase> ts = every_dtype();
  for (int64_t alignment : {32, 64, 8}) {
    const std::string p = dir / ("rt" + std::to_string(alignment) + ".gguf");
    write_gguf(p, md, outs(ts), alignment);
    GgufFile f(p);
    EXPECT_EQ(f.alignment(), alignment);
    // general.alignment is appended when it is not the default.
    ASSERT_EQ(f.metadata().size(), md.size() + (alignment != 32));
    for (size_t k = 0; k < md.size(); ++k) {
      EXPECT_EQ(f.metadata()[k].first, md[k].first);
      EXPECT_TRUE(f.metadata()[k].second == md[k].second) << md[k].first;
    }
    if (alignment != 32) {
      EXPECT_EQ(f.get_int("general.alignment"), alignment);
    }
    EXPECT_EQ(f.size_bytes() % size_t(alignment), 0u);  // the last tensor is padded too, as gguf-py does
    ASSERT_EQ(f.tensors().size(), ts.size());
    for (size_t k = 0; k < ts.size(); ++k) {
      const TensorInfo& t = f.tensors()[k];
      EXPECT_EQ(t.name, ts[k].name);
      EXPECT_EQ(t.dtype, ts[k].dtype);
      EXPECT_EQ(t.shape, ts[k].shape) << t.name;
      EXPECT_EQ(t.file, p);
      ASSERT_EQ(t.nbytes, ts[k].data.size()) << t.name;
      EXPECT_EQ(std::memcmp(t.data, ts[k].data.data(), t.nbytes), 0) << t.name;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % uintptr_t(alignment), 0u) << t.name;
      EXPECT_EQ(f.find_tensor(t.name), &t);
    }
    EXPECT_EQ(f.find_tensor("nope"), nullptr);
  }
  // The strings survive as written, the 150k-string array included.
  GgufFile f(dir / "rt32.gguf");
  const auto& strs = f.get_strings("a.strs");
  ASSERT_EQ(strs.size(), 150000u);
  EXPECT_EQ(strs[0], "");
  EXPECT_EQ(strs[149999], "tok149999");
  EXPECT_EQ(f.get_string("t.str"), std::string("nul\0inside, ünïcode", 20));
  // A file with nothing in it is valid.
  write_gguf(dir / "empty.gguf", {}, {});
  GgufFile e(dir / "empty.gguf");
  EXPECT_TRUE(e.metadata().empty());
  EXPECT_TRUE(e.tensors().empty());
}

// GGUF stores extents innermost first: shape [N, K] is written as ne = [K, N].
TEST(Gguf, ExtentsAreStoredInnermostFirst) {
  test::TempDir dir;
  std::vector<float> w(2 * 3 * 4);
  write_gguf(dir / "w.gguf", {}, {{"w", DType::F32, {2, 3, 4}, w.data()}});
  const std::string bytes = read_all(dir / "w.gguf");
  const std::string want = G().raw("GGUF", 4).u32(3).u64(1).u64(0).tensor("w", {4, 3, 2}, 0, 0).b;
  EXPECT_EQ(bytes.substr(0, want.size()), want);
  EXPECT_EQ(bytes.size(), 96u + 96u);  // header (73 bytes) padded to 32, then 96 data bytes
}

TEST(Gguf, Getters) {
  test::TempDir dir;
  write_gguf(dir / "g.gguf", every_value(), {});
  GgufFile f(dir / "g.gguf");
  EXPECT_EQ(f.get_int("t.u8"), 255);
  EXPECT_EQ(f.get_int("t.i64"), INT64_MIN);
  EXPECT_EQ(f.get_int("t.u64"), INT64_MAX);
  EXPECT_EQ(f.get_int("absent", 7), 7);
  EXPECT_FLOAT_EQ(float(f.get_float("t.f32")), -0.1f);
  EXPECT_EQ(f.get_float("t.f64"), 1.0 / 3.0);
  EXPECT_EQ(f.get_float("t.i16"), -32768.0);  // integers convert
  EXPECT_EQ(f.get_float("absent", 2.5), 2.5);
  EXPECT_TRUE(f.get_bool("t.bool", false));
  EXPECT_FALSE(f.get_bool("t.false", true));
  EXPECT_TRUE(f.get_bool("absent", true));
  EXPECT_EQ(f.get_string("general.architecture"), "deepseek2");
  EXPECT_EQ(f.get_ints("a.i32"), (std::vector<int64_t>{INT32_MIN, INT32_MAX}));
  EXPECT_EQ(f.get_ints("a.bool"), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(f.get_floats("a.f32"), (std::vector<double>{0.5, double(-1e30f)}));
  EXPECT_TRUE(f.get_ints("a.empty").empty());
  EXPECT_EQ(f.find("absent"), nullptr);
  ASSERT_NE(f.find("t.u16"), nullptr);
  EXPECT_EQ(f.find("t.u16")->type, GgufType::U16);

  const std::string p = dir / "g.gguf";
  auto expect_throw = [&](auto&& call, const std::string& needle) {
    try {
      call();
      ADD_FAILURE() << "no error; expected: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p + ": " + needle), std::string::npos) << e.what();
    }
  };
  expect_throw([&] { f.get_int("absent"); }, "missing key \"absent\" (expected an integer)");
  expect_throw([&] { f.get_int("t.f32"); }, "key \"t.f32\" is F32, expected an integer");
  expect_throw([&] { f.get_int("t.bool", 0); }, "key \"t.bool\" is BOOL, expected an integer");
  expect_throw([&] { f.get_float("t.str"); }, "key \"t.str\" is STRING, expected a number");
  expect_throw([&] { f.get_bool("t.u8", false); }, "key \"t.u8\" is U8, expected a BOOL");
  expect_throw([&] { f.get_string("a.strs"); }, "key \"a.strs\" is an array of STRING, expected a STRING");
  expect_throw([&] { f.get_strings("a.i32"); }, "key \"a.i32\" is an array of I32, expected an array of STRING");
  expect_throw([&] { f.get_ints("a.f64"); }, "key \"a.f64\" is an array of F64, expected an array of integers");
  expect_throw([&] { f.get_floats("a.u8"); }, "key \"a.u8\" is an array of U8, expected an array of F32 or F64");
  expect_throw([&] { f.get_strings("absent"); }, "missing key \"absent\"");
}

TEST(Gguf, GgmlTypeCodes) {
  const std::pair<DType, uint32_t> codes[] = {{DType::F32, 0},  {DType::F16, 1},  {DType::Q4_0, 2},
                                              {DType::Q5_0, 6},  {DType::Q5_1, 7}, {DType::Q8_0, 8}, {DType::Q4_K, 12},
                                              {DType::Q5_K, 13}, {DType::Q6_K, 14}, {DType::BF16, 30}};
  for (auto [dtype, code] : codes) {
    DType d;
    ASSERT_TRUE(dtype_from_ggml(code, &d)) << code;
    EXPECT_EQ(d, dtype);
    EXPECT_EQ(ggml_type_of(dtype), code);
    EXPECT_EQ(std::string(ggml_type_name(code)), std::string(dtype_name(dtype)));
  }
  DType d;
  EXPECT_FALSE(dtype_from_ggml(3, &d));  // Q4_1
  EXPECT_FALSE(dtype_from_ggml(26, &d));  // I32
  EXPECT_STREQ(ggml_type_name(13), "Q5_K");
  EXPECT_EQ(ggml_type_name(4), nullptr);  // retired Q4_2
  EXPECT_EQ(ggml_type_name(1000), nullptr);
  EXPECT_STREQ(gguf_type_name(GgufType::F64), "F64");
}

// A file written by llama.cpp's gguf-py (scripts/peer/make_gguf_fixture.py; tests/data/gguf/README.md).
TEST(Gguf, ReadsGgufPyFileAndWritesItByteForByte) {
  const std::string p = test::data_path("data/gguf/tiny.gguf");
  GgufFile f(p);
  EXPECT_EQ(f.get_string("general.architecture"), "seek-test");
  EXPECT_EQ(f.find("test.u8")->type, GgufType::U8);
  EXPECT_EQ(f.get_int("test.u8"), 200);
  EXPECT_EQ(f.get_int("test.i8"), -100);
  EXPECT_EQ(f.get_int("test.u16"), 60000);
  EXPECT_EQ(f.get_int("test.i16"), -30000);
  EXPECT_EQ(f.get_int("test.u32"), 4000000000);
  EXPECT_EQ(f.get_int("test.i32"), -2000000000);
  EXPECT_EQ(f.get_float("test.f32"), 0.15625);
  EXPECT_EQ(f.find("test.u64")->type, GgufType::U64);
  EXPECT_EQ(f.get_int("test.u64"), int64_t(1) << 40);
  EXPECT_EQ(f.get_int("test.i64"), -(int64_t(1) << 50));
  EXPECT_EQ(f.get_float("test.f64"), -2.5e-300);
  EXPECT_TRUE(f.get_bool("test.bool", false));
  EXPECT_EQ(f.get_string("test.str"), "héllo, gguf");
  EXPECT_EQ(f.get_strings("test.strs"), (std::vector<std::string>{"a", "", "ünïcode", "<|end▁of▁sentence|>"}));
  EXPECT_EQ(f.find("test.i32s")->elem, GgufType::I32);
  EXPECT_EQ(f.get_ints("test.i32s"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.get_floats("test.f32s"), (std::vector<double>{0.5, -1.25}));
  EXPECT_EQ(f.find("test.bools")->elem, GgufType::BOOL);
  EXPECT_EQ(f.get_ints("test.bools"), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(f.get_ints("test.u8s"), (std::vector<int64_t>{0, 255, 7}));
  EXPECT_EQ(f.get_ints("test.i64s"), (std::vector<int64_t>{-(int64_t(1) << 62), 5}));
  EXPECT_EQ(f.get_floats("test.f64s")[0], 1e300);
  EXPECT_TRUE(std::signbit(f.get_floats("test.f64s")[1]));
  EXPECT_EQ(f.metadata().size(), 20u);

  ASSERT_EQ(f.tensors().size(), 4u);
  const TensorInfo* v = f.find_tensor("v.f32");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(static_cast<const float*>(v->data)[1], -2.0f);
  const TensorInfo* h = f.find_tensor("v.f16");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->dtype, DType::F16);
  EXPECT_EQ(f16_to_f32(static_cast<const uint16_t*>(h->data)[4]), 65504.0f);
  const TensorInfo* m = f.find_tensor("m.f32");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->shape, (std::vector<int64_t>{2, 3}));  // numpy's shape, row-major
  for (int k = 0; k < 6; ++k) EXPECT_EQ(static_cast<const float*>(m->data)[k], 0.25f * float(k));
  const TensorInfo* q = f.find_tensor("m.q8_0");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dtype, DType::Q8_0);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{2, 32}));
  ASSERT_EQ(q->nbytes, 68u);
  for (int k = 0; k < 68; ++k) EXPECT_EQ(static_cast<const uint8_t*>(q->data)[k], k % 251);

  // seek's writer, given what the reader found, writes gguf-py's bytes exactly.
  test::TempDir dir;
  std::vector<GgufTensorOut> ts;
  for (const TensorInfo& t : f.tensors()) ts.push_back({t.name, t.dtype, t.shape, t.data});
  write_gguf(dir / "again.gguf", f.metadata(), ts);
  EXPECT_TRUE(read_all(dir / "again.gguf") == read_all(p));
}

TEST(Gguf, BadFilesAreRefused) {
  test::TempDir dir;
  const std::string p = dir / "bad.gguf";
  const uint64_t huge = ~uint64_t(0);
  const uint32_t F32 = 0, Q8_0 = 8;
  auto kv = [](uint32_t type) { return head(0, 1).str("a").u32(type); };
  struct Case {
    const char* label;
    std::string bytes;
    std::string needle;
  };
  const Case cases[] = {
      {"short", "GG", "not a GGUF file: only 2 bytes, expected the magic \"GGUF\""},
      {"magic", "GGUX" + std::string(20, '\0'), "not a GGUF file: magic \"GGUX\""},
      {"v1", head(0, 0, 1).b, "GGUF version 1 is not supported: seek reads version 3"},
      {"v2", head(0, 0, 2).b, "GGUF version 2 is not supported"},
      {"big-endian", head(0, 0, 0x03000000).b, "(a big-endian file?), expected 3"},
      {"v4", head(0, 0, 4).b, "GGUF version 4, expected 3"},
      {"no counts", head(0, 0).b.substr(0, 12), "truncated: the tensor count needs 8 bytes at offset 8"},
      {"kv count", head(0, uint64_t(1) << 62).zeros(64).b, "header claims 0 tensors and 4611686018427387904 metadata keys, more than the"},
      {"tensor count", head(huge, 0).zeros(64).b, "header claims 18446744073709551615 tensors"},
      {"key length", head(0, 1).u64(huge).zeros(13).b,
       "metadata key 0: key length is 18446744073709551615 bytes long, but only 13 bytes remain"},
      {"empty key", head(0, 1).str("").u32(0).u8(1).b, "metadata key 0: key is empty"},
      {"duplicate key", head(0, 2).kv_u32("a", 1).kv_u32("a", 2).b, "key \"a\" appears twice"},
      {"value type", kv(13).u8(0).b, "key \"a\": value type is 13, expected a GGUF value type 0..12"},
      {"value truncated", kv(uint32_t(GgufType::U64)).u32(0).b, "key \"a\": truncated: a U64 needs 8 bytes at offset 37"},
      {"string length", kv(uint32_t(GgufType::STRING)).u64(100).raw("abc", 3).b,
       "key \"a\": string is 100 bytes long, but only 3 bytes remain"},
      {"bool", kv(uint32_t(GgufType::BOOL)).u8(2).b, "key \"a\": BOOL byte is 2, expected 0 or 1"},
      {"u64", kv(uint32_t(GgufType::U64)).u64(huge).b, "key \"a\": U64 value 18446744073709551615 is above INT64_MAX"},
      {"array of arrays", kv(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::ARRAY)).u64(1).zeros(12).b,
       "key \"a\": arrays of arrays are not supported"},
      {"array elem type", kv(uint32_t(GgufType::ARRAY)).u32(77).u64(0).b, "key \"a\": array element type is 77"},
      {"array count", kv(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::U32)).u64(uint64_t(1) << 60).zeros(8).b,
       "key \"a\": array count = 1152921504606846976, but 8 remaining bytes hold at most 2"},
      {"string array count", kv(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::STRING)).u64(3).zeros(16).b,
       "key \"a\": array count = 3, but 16 remaining bytes hold at most 2"},
      {"array string", kv(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::STRING)).u64(1).u64(9).raw("12345678", 8).b,
       "key \"a\": array string is 9 bytes long"},
      {"alignment type", head(0, 1).str("general.alignment").u32(uint32_t(GgufType::U64)).u64(64).b,
       "key \"general.alignment\" is U64, expected U32"},
      {"alignment 48", head(0, 1).kv_u32("general.alignment", 48).b, "key \"general.alignment\" = 48, expected a power of two"},
      {"alignment 0", head(0, 1).kv_u32("general.alignment", 0).b, "key \"general.alignment\" = 0, expected a power of two"},
      {"name length", head(1, 0).u64(huge).zeros(40).b, "tensor 0: name length is 18446744073709551615 bytes long"},
      {"empty name", head(1, 0).tensor("", {2}, F32, 0).pad().zeros(32).b, "tensor 0: name is empty"},
      {"duplicate tensor", head(2, 0).tensor("w", {2}, F32, 0).tensor("w", {2}, F32, 32).pad().zeros(64).b,
       "tensor \"w\" appears twice"},
      {"n_dims 0", head(1, 0).tensor("w", {}, F32, 0).zeros(40).b, "tensor \"w\": n_dims = 0, expected 1 to 4"},
      {"n_dims 5", head(1, 0).tensor("w", {1, 1, 1, 1, 1}, F32, 0).pad().zeros(32).b, "tensor \"w\": n_dims = 5, expected 1 to 4"},
      {"extent 0", head(1, 0).tensor("w", {2, 0}, F32, 0).pad().zeros(32).b,
       "tensor \"w\": extents [2, 0] (innermost first) must all be > 0"},
      {"extents overflow", head(1, 0).tensor("w", {uint64_t(1) << 32, uint64_t(1) << 32}, F32, 0).pad().zeros(32).b,
       "tensor \"w\": extents [4294967296, 4294967296] hold more than INT64_MAX elements"},
      {"bytes overflow", head(1, 0).tensor("w", {uint64_t(1) << 62}, F32, 0).pad().zeros(32).b,
       "tensor \"w\": extents [4611686018427387904] of F32 need more bytes than the file's"},
      {"unknown ggml type", head(1, 0).tensor("w", {2}, 99, 0).pad().zeros(32).b, "tensor \"w\": unknown ggml type 99"},
      {"Q3_K", head(1, 0).tensor("w", {256}, 11, 0).pad().zeros(256).b,
       "tensor \"w\": ggml type Q3_K (11) is not supported; seek reads F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K"},
      {"I32", head(1, 0).tensor("w", {2}, 26, 0).pad().zeros(32).b, "tensor \"w\": ggml type I32 (26) is not supported"},
      {"block", head(1, 0).tensor("w", {33, 2}, Q8_0, 0).pad().zeros(96).b,
       "tensor \"w\": innermost extent 33 is not a multiple of Q8_0's block of 32 values"},
      {"misaligned", head(1, 0).tensor("w", {2}, F32, 4).pad().zeros(32).b,
       "tensor \"w\": data offset 4 is not a multiple of the alignment 32"},
      {"ggml type truncated", head(1, 0).str("w").u32(4).u64(2).u64(2).u64(2).u64(2).b,
       "tensor \"w\": truncated: the ggml type needs 4 bytes at offset 69"},
      {"data outside", head(1, 0).tensor("w", {4}, F32, 0).pad().zeros(8).b,
       "tensor \"w\": data [0, 16) falls outside the 8 data bytes of the file"},
      {"offset outside", head(1, 0).tensor("w", {2}, F32, uint64_t(1) << 63).pad().zeros(32).b,
       "tensor \"w\": data [9223372036854775808, 9223372036854775816) falls outside the 32 data bytes"},
      {"no data section", head(1, 0).tensor("w", {2}, F32, 0).b,
       "the data section would start at byte 64 (the header's end aligned to 32), past the end of the file at 57"},
      {"overlap", head(2, 0).tensor("a", {16}, F32, 0).tensor("b", {2}, F32, 32).pad().zeros(64).b,
       "tensors \"a\" and \"b\" overlap at data offset 32"},
  };
  for (const Case& c : cases) {
    test::write_text(p, c.bytes);
    expect_error(p, c.needle, c.label);
  }
  expect_error(dir / "absent.gguf", "cannot open");
  test::write_text(p, "");
  expect_error(p, "not a GGUF file: only 0 bytes");

  // The hand-built bytes are right: the same builder makes files the reader takes.
  test::write_text(p, head(2, 1).kv_u32("general.alignment", 16).tensor("a", {2}, F32, 0).tensor("b", {2}, F32, 16).pad(16).zeros(24).b);
  GgufFile ok(p);
  EXPECT_EQ(ok.alignment(), 16);
  EXPECT_EQ(ok.tensors().size(), 2u);
}

// general.alignment = 1 lets an F32 tensor start at an odd offset; it is copied so typed loads stay aligned.
TEST(Gguf, UnalignedTensorIsCopied) {
  test::TempDir dir;
  const float v[2] = {1.5f, -2.f};
  // An F16 of one element (2 bytes), then the F32 at data offset 2; the header is 123 bytes long.
  G file = head(2, 1).kv_u32("general.alignment", 1).tensor("h", {1}, 1, 0).tensor("w", {2}, 0, 2);
  ASSERT_EQ(file.b.size(), 123u);
  file.zeros(2).raw(v, 8);
  test::write_text(dir / "u.gguf", file.b);
  GgufFile f(dir / "u.gguf");
  const TensorInfo* w = f.find_tensor("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w->data) % 4, 0u);
  EXPECT_EQ(static_cast<const float*>(w->data)[1], -2.f);
}

TEST(Gguf, WriterRefusesWhatGgufCannotHold) {
  test::TempDir dir;
  const std::string p = dir / "w.gguf";
  std::vector<uint8_t> data(4096);
  auto expect_write_error = [&](const Metadata& md, const std::vector<GgufTensorOut>& ts, const std::string& needle,
                                int64_t alignment = 32) {
    try {
      write_gguf(p, md, ts, alignment);
      ADD_FAILURE() << "wrote; expected: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p + ": " + needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(p));
  };
  const void* d = data.data();
  expect_write_error({{"a", GgufValue::u32(1)}, {"a", GgufValue::u32(2)}}, {}, "key \"a\" appears twice");
  expect_write_error({{"a", GgufValue::integer(GgufType::U8, 256)}}, {}, "key \"a\": value 256 does not fit U8");
  expect_write_error({{"a", GgufValue::int_array(GgufType::I8, {1, -129})}}, {}, "key \"a\": value -129 does not fit I8");
  expect_write_error({{"general.alignment", GgufValue::u32(32)}}, {}, "key \"general.alignment\" must be U32 64", 64);
  expect_write_error({}, {}, "alignment 48 must be a power of two", 48);
  expect_write_error({}, {{"w", DType::F32, {2}, d}, {"w", DType::F32, {2}, d}}, "tensor \"w\": appears twice");
  expect_write_error({}, {{"w", DType::F8_E4M3, {2}, d}}, "tensor \"w\": F8_E4M3 cannot be written to GGUF");
  expect_write_error({}, {{"w", DType::F32, {}, d}}, "tensor \"w\": shape [] must have 1 to 4 extents");
  expect_write_error({}, {{"w", DType::F32, {1, 1, 1, 1, 2}, d}}, "tensor \"w\": shape [1, 1, 1, 1, 2] must have 1 to 4");
  expect_write_error({}, {{"w", DType::F32, {2, 0}, d}}, "tensor \"w\": shape [2, 0] must hold extents > 0");
  expect_write_error({}, {{"w", DType::Q4_K, {2, 128}, d}},
                     "tensor \"w\": shape [2, 128]: the innermost extent must be a multiple of Q4_K's block of 256");
  // An explicit general.alignment that agrees is kept, not written twice.
  write_gguf(p, {{"general.alignment", GgufValue::u32(64)}}, {{"w", DType::F32, {3}, d}}, 64);
  GgufFile f(p);
  EXPECT_EQ(f.metadata().size(), 1u);
  EXPECT_EQ(f.alignment(), 64);
  EXPECT_EQ(f.size_bytes(), 192u);  // header 90 -> 128, data 12 -> 64
}

// Seeded mutations of a valid file: truncation at every offset; every header offset overwritten with
// absurd u64s (counts, lengths, extents, offsets) and with odd u32s (types, n_dims); random byte flips in
// the header. Each either loads or throws Error. It runs in a child process whose address space is capped
// at 1 GiB above what it starts with, so an allocation sized by a corrupt count fails there (as a crash or
// bad_alloc) instead of passing unnoticed.
TEST(Gguf, MutatedFilesLoadOrThrow) {
  test::TempDir dir;
  const std::string good = dir / "good.gguf";
  std::vector<float> a(2 * 32, 1.f);
  std::vector<uint8_t> q(2 * 34, 3);
  write_gguf(good,
             {{"general.architecture", GgufValue::str("deepseek2")},
              {"n", GgufValue::u32(7)},
              {"toks", GgufValue::str_array({"a", "bc", "def"})},
              {"ids", GgufValue::int_array(GgufType::I32, {1, 2, 3})},
              {"fs", GgufValue::f32_array({0.5})},
              {"flag", GgufValue::boolean(true)}},
             {{"a", DType::F32, {2, 32}, a.data()}, {"q", DType::Q8_0, {2, 32}, q.data()}}, 32);
  const std::string base = read_all(good);
  const size_t header_end = base.size() - 256 - 96;  // data: a (256 bytes), q (68 bytes padded to 96)
  ASSERT_EQ(std::memcmp(base.data() + header_end, a.data(), 256), 0);
  ASSERT_GT(header_end, 100u);
  ASSERT_EQ(header_end % 32, 0u);

  // In memory where /dev/shm exists: eight thousand small files are then a second's work, not a disk's.
  const std::string path = std::filesystem::is_directory("/dev/shm")
                               ? "/dev/shm/seek-gguf-mutation-" + std::to_string(getpid()) + ".gguf"
                               : dir / "m.gguf";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child: cap the address space, then load every mutation.
    long pages = 0;
    if (std::FILE* s = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(s, "%ld", &pages) != 1) pages = 0;
      std::fclose(s);
    }
    const rlim_t cap = rlim_t(pages) * rlim_t(sysconf(_SC_PAGESIZE)) + (rlim_t(1) << 30);
    struct rlimit rl = {cap, cap};
    if (pages > 0) setrlimit(RLIMIT_AS, &rl);
    long loaded = 0, refused = 0;
    volatile uint64_t checksum = 0;
    auto attempt = [&](const std::string& bytes, const char* what, size_t at) {
      // A new file each time: rewriting one in place (O_TRUNC) makes ext4 flush it on close, 100x slower.
      unlink(path.c_str());
      test::write_text(path, bytes);
      try {
        GgufFile f(path);
        for (const TensorInfo& t : f.tensors()) {  // touch every byte the reader handed out
          uint8_t sum = 0;
          for (size_t k = 0; k < t.nbytes; ++k) sum = uint8_t(sum + static_cast<const uint8_t*>(t.data)[k]);
          checksum = checksum + sum;
        }
        ++loaded;
      } catch (const Error& e) {
        if (std::string(e.what()).find(path) == std::string::npos) {
          std::fprintf(stderr, "%s at %zu: error does not name the file: %s\n", what, at, e.what());
          unlink(path.c_str());
          _exit(4);
        }
        ++refused;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "%s at %zu: threw %s, not seek::Error\n", what, at, e.what());
        unlink(path.c_str());
        _exit(3);
      }
    };
    for (size_t n = 0; n < base.size(); ++n) attempt(base.substr(0, n), "truncation", n);
    // The rest mapped: reading each tiny file into a fresh 2 MiB page costs 3x the time (this env is the child's).
    setenv("SEEK_WEIGHTS", "mmap", 1);
    const uint64_t absurd64[] = {~uint64_t(0), uint64_t(1) << 63, uint64_t(INT64_MAX), uint64_t(1) << 62,
                                 uint64_t(1) << 32, uint64_t(base.size()), uint64_t(base.size()) + 1, 0};
    const uint32_t odd32[] = {~uint32_t(0), 0, 5, 9, 13, 31, 1u << 31};
    for (size_t at = 0; at + 8 <= header_end; ++at)
      for (uint64_t v : absurd64) {
        std::string m = base;
        std::memcpy(m.data() + at, &v, 8);
        attempt(m, "u64 splice", at);
      }
    for (size_t at = 0; at + 4 <= header_end; ++at)
      for (uint32_t v : odd32) {
        std::string m = base;
        std::memcpy(m.data() + at, &v, 4);
        attempt(m, "u32 splice", at);
      }
    SplitMix64 rng(20240607);
    for (int it = 0; it < 3000; ++it) {
      std::string m = base;
      const int flips = 1 + int(rng.below(4));
      size_t at = 0;
      for (int k = 0; k < flips; ++k) {
        at = size_t(rng.below(header_end));
        m[at] = char(uint8_t(m[at]) ^ uint8_t(1 + rng.below(255)));
      }
      if (rng.below(4) == 0) m.resize(size_t(rng.below(m.size() + 1)));
      attempt(m, "byte flips", at);
    }
    unlink(path.c_str());
    std::fprintf(stderr, "gguf mutations: %ld loaded, %ld refused (checksum %llu)\n", loaded, refused,
                 (unsigned long long)checksum);
    _exit(refused > 0 && loaded > 0 ? 0 : 5);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status)) << "the child died of signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0)
                                 << "; the mutation that killed it is left in " << path;
  if (WIFEXITED(status)) unlink(path.c_str());
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0) << "see the child's message above";
}
