// safetensors: round trip, sharded checkpoints, and every kind of bad file refused with a message
// that names the file and the tensor — never a crash.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <utility>
#include <vector>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "model/safetensors.h"
#include "test_util.h"
#include "util/error.h"

using namespace seek;
using nlohmann::json;

namespace {

// A safetensors file from a header (as JSON text) and raw data bytes.
std::string raw_file(const std::string& header, const std::string& data) {
  std::string s(8, '\0');
  uint64_t n = header.size();
  std::memcpy(s.data(), &n, 8);
  return s + header + data;
}

void expect_error(const std::string& path, const std::string& needle) {
  try {
    SafetensorsFile f(path);
    FAIL() << "accepted a bad file; expected: " << needle;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  }
}

}  // namespace

TEST(Safetensors, RoundTrip) {
  test::TempDir dir;
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> b = {0x3f80, 0xc000, 0x0000};
  std::vector<uint8_t> c = {0x7e, 0x01, 0x38};
  std::vector<int32_t> d = {7, -1};
  write_safetensors(dir / "x.safetensors",
                    {{"a", DType::F32, {2, 3}, a.data()}, {"b", DType::BF16, {3}, b.data()},
                     {"c", DType::F8_E4M3, {1, 3}, c.data()}, {"d", DType::I32, {2}, d.data()}},
                    {{"format", "pt"}});
  SafetensorsFile f(dir / "x.safetensors");
  ASSERT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const TensorInfo* ta = f.find("a");
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(ta->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(ta->data, a.data(), 24), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ta->data) % 8, 0u);
  EXPECT_EQ(f.find("b")->dtype, DType::BF16);
  EXPECT_EQ(std::memcmp(f.find("c")->data, c.data(), 3), 0);
  EXPECT_EQ(static_cast<const int32_t*>(f.find("d")->data)[1], -1);
  EXPECT_EQ(f.find("nope"), nullptr);
}

TEST(Safetensors, BadFilesAreRefused) {
  test::TempDir dir;
  const std::string p = dir / "bad.safetensors";
  test::write_text(p, "abc");
  expect_error(p, "truncated");
  test::write_text(p, raw_file("{}", "").substr(0, 8) + "{");  // header length 2, 1 byte present
  expect_error(p, "truncated or corrupt");
  test::write_text(p, raw_file("{not json", ""));
  expect_error(p, "header is not valid JSON");
  test::write_text(p, raw_file("[1,2]", ""));
  expect_error(p, "must be a JSON object");
  test::write_text(p, raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", std::string(8, '\0')));
  expect_error(p, "tensor \"w\": data_offsets [0, 16] fall outside the 8 data bytes");
  test::write_text(p, raw_file(R"({"w":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')));
  expect_error(p, "tensor \"w\": unsupported dtype \"Q4_K\"");
  test::write_text(p, raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')));
  expect_error(p, "tensor \"w\": holds 8 bytes but shape [3] of F32 needs 12");
  test::write_text(p, raw_file(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, '\0')));
  expect_error(p, "tensor \"w\": shape [-2] must hold non-negative integers");
  test::write_text(p, raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", std::string(8, '\0')));
  expect_error(p, "tensor \"w\": data_offsets [8, 0]");
  test::write_text(p, raw_file(R"({"w":{"dtype":"F32","shape":[2]}})", std::string(8, '\0')));
  expect_error(p, "tensor \"w\": entry must have dtype, shape and data_offsets");
  test::write_text(p, raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                               std::string(12, '\0')));
  expect_error(p, "tensors overlap");
  expect_error(dir / "absent.safetensors", "cannot open");
}

TEST(Safetensors, UnalignedTensorIsCopied) {
  test::TempDir dir;
  float v[2] = {1.5f, -2.f};
  std::string data(1, 'x');
  data.append(reinterpret_cast<const char*>(v), 8);
  test::write_text(dir / "u.safetensors",
                   raw_file(R"({"pad":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]},)"
                            R"("w":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})",
                            data));
  SafetensorsFile f(dir / "u.safetensors");
  const TensorInfo* w = f.find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w->data) % 4, 0u);
  EXPECT_EQ(static_cast<const float*>(w->data)[1], -2.f);
}

namespace {

void expect_load_error(const std::string& dir, const std::string& needle) {
  try {
    Model::load(dir);
    FAIL() << "loaded a bad checkpoint; expected: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Checkpoint, MissingAndMisshapedTensors) {
  test::TempDir dir;
  json cfg = test::tiny_config("deepseek_v3");
  write_random_checkpoint(dir.path.string(), cfg, {DType::F32, 3, 1});
  ASSERT_NO_THROW(Model::load(dir.path.string()));
  // Rewrite the file without one tensor, then with one tensor of the wrong shape.
  SafetensorsFile* f = new SafetensorsFile(dir / "model.safetensors");
  std::vector<TensorOut> keep, reshaped;
  std::vector<std::vector<uint8_t>> copies;
  for (const auto& [name, t] : f->tensors()) {
    copies.emplace_back(static_cast<const uint8_t*>(t.data), static_cast<const uint8_t*>(t.data) + t.nbytes);
  }
  size_t i = 0;
  for (const auto& [name, t] : f->tensors()) {
    TensorOut o{name, t.dtype, t.shape, copies[i++].data()};
    if (name != "model.layers.1.mlp.gate.weight") keep.push_back(o);
    if (name == "model.layers.0.self_attn.kv_b_proj.weight") o.shape = {o.shape[1], o.shape[0]};
    reshaped.push_back(o);
  }
  delete f;
  write_safetensors(dir / "model.safetensors", keep);
  expect_load_error(dir.path.string(), "missing tensor \"model.layers.1.mlp.gate.weight\"");
  write_safetensors(dir / "model.safetensors", reshaped);
  expect_load_error(dir.path.string(), "tensor \"model.layers.0.self_attn.kv_b_proj.weight\" has shape [16, 54], expected [54, 16]");
  // A truncated file.
  std::filesystem::resize_file(dir / "model.safetensors", 1000);
  expect_load_error(dir.path.string(), "model.safetensors");
  // No weights at all.
  std::filesystem::remove(dir / "model.safetensors");
  expect_load_error(dir.path.string(), "no model.safetensors");
}

TEST(Checkpoint, ShardedWithIndex) {
  test::TempDir dir;
  write_random_checkpoint(dir.path.string(), test::tiny_config("deepseek_v3"), {DType::BF16, 5, 3});
  EXPECT_TRUE(std::filesystem::exists(dir / "model-00003-of-00003.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(dir / "model.safetensors.index.json"));
  auto m = Model::load(dir.path.string());
  EXPECT_EQ(m->weights().layers.size(), 3u);
  // An index that names a tensor its shard lacks.
  json idx = json::parse(std::ifstream(dir / "model.safetensors.index.json"));
  idx["weight_map"]["model.ghost.weight"] = "model-00001-of-00003.safetensors";
  test::write_text(dir / "model.safetensors.index.json", idx.dump());
  expect_load_error(dir.path.string(), "has no tensor \"model.ghost.weight\"");
  idx["weight_map"].erase("model.ghost.weight");
  idx["weight_map"]["model.norm.weight"] = "../escape.safetensors";
  test::write_text(dir / "model.safetensors.index.json", idx.dump());
  expect_load_error(dir.path.string(), "must be a file in the directory");
}

TEST(Checkpoint, Fp8NeedsScales) {
  test::TempDir dir;
  write_random_checkpoint(dir.path.string(), test::tiny_config("deepseek_v3"), {DType::F8_E4M3, 5, 1});
  auto m = Model::load(dir.path.string());
  EXPECT_EQ(m->weights().layers[0].mla.q_a_proj.dtype, DType::F8_E4M3);
  EXPECT_NE(m->weights().layers[0].mla.q_a_proj.scale_inv, nullptr);
  EXPECT_EQ(m->weights().embed_tokens.dtype, DType::BF16);
  // Drop one scale tensor.
  std::vector<TensorOut> keep;
  std::vector<std::vector<uint8_t>> copies;
  {
    SafetensorsFile f(dir / "model.safetensors");
    for (const auto& [name, t] : f.tensors())
      copies.emplace_back(static_cast<const uint8_t*>(t.data), static_cast<const uint8_t*>(t.data) + t.nbytes);
    size_t i = 0;
    for (const auto& [name, t] : f.tensors()) {
      if (name != "model.layers.0.self_attn.o_proj.weight_scale_inv") keep.push_back({name, t.dtype, t.shape, copies[i].data()});
      ++i;
    }
  }
  m.reset();
  write_safetensors(dir / "model.safetensors", keep);
  expect_load_error(dir.path.string(), "FP8 tensor \"model.layers.0.self_attn.o_proj.weight\" has no \"model.layers.0.self_attn.o_proj.weight_scale_inv\"");
}

// The two ways to hold a weight file (util/file_bytes.h) give the same bytes; read mode starts them on
// a huge-page boundary; SEEK_WEIGHTS picks the mode and a bad value is named.
TEST(FileBytes, ReadAndMappedAgree) {
  test::TempDir dir;
  const std::string p = dir / "w.bin";
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char(i * 2654435761u >> 13);
  test::write_text(p, data);
  FileBytes read(p, FileBytes::Mode::Read), mapped(p, FileBytes::Mode::Mapped);
  EXPECT_FALSE(read.mapped());
  EXPECT_TRUE(mapped.mapped());
  ASSERT_EQ(read.size(), data.size());
  ASSERT_EQ(mapped.size(), data.size());
  EXPECT_EQ(std::memcmp(read.data(), data.data(), data.size()), 0);
  EXPECT_EQ(std::memcmp(mapped.data(), data.data(), data.size()), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(read.data()) % (2 << 20), 0u);
  FileBytes moved = std::move(read);
  EXPECT_EQ(std::memcmp(moved.data(), data.data(), data.size()), 0);
  EXPECT_EQ(read.data(), nullptr);

  setenv("SEEK_WEIGHTS", "mmap", 1);
  EXPECT_EQ(resolve_load_mode(1), FileBytes::Mode::Mapped);
  EXPECT_TRUE(FileBytes(p).mapped());
  setenv("SEEK_WEIGHTS", "read", 1);
  EXPECT_FALSE(FileBytes(p).mapped());
  setenv("SEEK_WEIGHTS", "huge", 1);
  try {
    FileBytes f(p);
    ADD_FAILURE() << "accepted SEEK_WEIGHTS=huge";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("SEEK_WEIGHTS=huge: expected mmap or read"), std::string::npos) << e.what();
  }
  unsetenv("SEEK_WEIGHTS");
  // Auto reads a small file (far below half of the available memory).
  EXPECT_FALSE(FileBytes(p).mapped());
  EXPECT_EQ(FileBytes(dir / "w.bin", FileBytes::Mode::Read).size(), data.size());
}

// Read mode with ranges left as mappings of the file (a token embedding's rows, util/file_bytes.h): the
// bytes are the file's everywhere, at unaligned range edges too, a range past the end is ignored, and
// the whole pages inside a range are a mapping of the file (/proc/self/maps), not read memory.
TEST(FileBytes, MappedRangesInsideARead) {
  test::TempDir dir;
  const std::string p = dir / "w.bin";
  std::string data((3 << 20) + 123, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char(i * 2654435761u >> 13);
  test::write_text(p, data);
  const std::vector<std::pair<size_t, size_t>> ranges = {
      {(2 << 20) + 7, 300000}, {5000, 1 << 20}, {data.size() - 100, 50}, {data.size() - 10, 100}};
  FileBytes f(p, FileBytes::Mode::Read, ranges);
  ASSERT_EQ(f.size(), data.size());
  EXPECT_FALSE(f.mapped());
  EXPECT_EQ(std::memcmp(f.data(), data.data(), data.size()), 0);
  auto file_mapped = [&](const uint8_t* at) {
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);) {
      uintptr_t lo = 0, hi = 0;
      if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) != 2) continue;
      const auto a = reinterpret_cast<uintptr_t>(at);
      if (a >= lo && a < hi) return line.find("w.bin") != std::string::npos;
    }
    return false;
  };
  EXPECT_TRUE(file_mapped(f.data() + 8192));               // inside [5000, 5000 + 1 MiB)
  EXPECT_TRUE(file_mapped(f.data() + (2 << 20) + 4096));   // inside the second range
  EXPECT_FALSE(file_mapped(f.data()));                      // before the first range: read
  EXPECT_FALSE(file_mapped(f.data() + (1 << 20) + 8192));  // between the ranges: read

  // release_mapped_pages: the ranges' pages leave this process's resident memory (/proc/self/smaps) and
  // read the file's bytes again when touched; the read bytes around them are kept.
  auto resident_kb = [&](const uint8_t* at) {
    std::ifstream smaps("/proc/self/smaps");
    bool in = false;
    for (std::string line; std::getline(smaps, line);) {
      uintptr_t lo = 0, hi = 0;
      char dash = 0;
      if (std::sscanf(line.c_str(), "%lx%c%lx", &lo, &dash, &hi) == 3 && dash == '-') {
        const auto a = reinterpret_cast<uintptr_t>(at);
        in = a >= lo && a < hi;
      } else if (in && line.rfind("Rss:", 0) == 0) {
        return std::stol(line.substr(4));
      }
    }
    return -1L;
  };
  EXPECT_GT(resident_kb(f.data() + 8192), 0);  // the memcmp above touched every page
  f.release_mapped_pages();
  EXPECT_EQ(resident_kb(f.data() + 8192), 0);
  EXPECT_EQ(resident_kb(f.data() + (2 << 20) + 4096), 0);
  EXPECT_GT(resident_kb(f.data()), 0);  // read memory is never released
  EXPECT_EQ(std::memcmp(f.data(), data.data(), data.size()), 0);
  EXPECT_GT(resident_kb(f.data() + 8192), 0);
}
