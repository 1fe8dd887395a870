// safetensors.cpp — see safetensors.h.
#include "model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace seek {

using json = nlohmann::json;
namespace fs = std::filesystem;

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorInfo::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path), bytes_(path) {
  const size_t size = bytes_.size();
  if (size < 8)
    throw Error(strfmt("%s: truncated: %zu bytes, a safetensors file needs at least 8", path.c_str(), size));
  {
    const uint8_t* base = bytes_.data();
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(base[i]) << (8 * i);
    if (n > size - 8)
      throw Error(strfmt("%s: truncated or corrupt: header says %llu bytes of JSON but only %zu bytes follow",
                         path.c_str(), (unsigned long long)n, size - 8));
    json h;
    try {
      h = json::parse(base + 8, base + 8 + n);
    } catch (const json::exception& e) {
      throw Error(path + ": header is not valid JSON: " + e.what());
    }
    if (!h.is_object()) throw Error(path + ": header must be a JSON object");
    const uint8_t* data = base + 8 + n;
    size_t data_size = size - 8 - n;
    std::vector<std::pair<size_t, size_t>> ranges;
    for (auto it = h.begin(); it != h.end(); ++it) {
      const std::string& name = it.key();
      if (name == "__metadata__") {
        if (!it->is_object()) throw Error(path + ": __metadata__ must be an object");
        for (auto m = it->begin(); m != it->end(); ++m)
          if (m->is_string()) metadata_[m.key()] = m->get<std::string>();
        continue;
      }
      auto bad = [&](const std::string& why) -> Error {
        return Error(path + ": tensor \"" + name + "\": " + why);
      };
      const json& e = *it;
      if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
        throw bad("entry must have dtype, shape and data_offsets");
      TensorInfo t;
      t.name = name;
      t.file = path;
      if (!e["dtype"].is_string() || !dtype_from_name(e["dtype"].get<std::string>(), &t.dtype))
        throw bad("unsupported dtype " + e["dtype"].dump() + " (expected F32, BF16, F16, F8_E4M3, I32 or I64)");
      if (!e["shape"].is_array()) throw bad("shape must be an array");
      for (const json& d : e["shape"]) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > (int64_t(1) << 40))
          throw bad("shape " + e["shape"].dump() + " must hold non-negative integers");
        t.shape.push_back(d.get<int64_t>());
      }
      const json& off = e["data_offsets"];
      if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
        throw bad("data_offsets must be [begin, end] with non-negative integers, got " + off.dump());
      uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
      if (b > en || en > data_size)
        throw bad(strfmt("data_offsets [%llu, %llu] fall outside the %zu data bytes of the file (truncated?)",
                         (unsigned long long)b, (unsigned long long)en, data_size));
      uint64_t want = uint64_t(t.numel()) * dtype_size(t.dtype);
      if (en - b != want)
        throw bad(strfmt("holds %llu bytes but shape %s of %s needs %llu", (unsigned long long)(en - b),
                         t.shape_str().c_str(), std::string(dtype_name(t.dtype)).c_str(), (unsigned long long)want));
      t.nbytes = size_t(want);
      t.data = data + b;
      if (want > 0) ranges.emplace_back(size_t(b), size_t(en));
      if (reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype) != 0) {
        // Typed loads need natural alignment; a file that does not give it costs one copy.
        copies_.emplace_back(new uint8_t[t.nbytes]);
        std::memcpy(copies_.back().get(), t.data, t.nbytes);
        t.data = copies_.back().get();
      }
      tensors_.emplace(name, std::move(t));
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i)
      if (ranges[i].first < ranges[i - 1].second)
        throw Error(strfmt("%s: tensors overlap at data offset %zu", path.c_str(), ranges[i].first));
  }
}

SafetensorsFile::~SafetensorsFile() = default;

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Checkpoint::Checkpoint(const std::string& dir) : dir_(dir) {
  if (!fs::is_directory(dir)) throw Error(dir + ": not a directory (expected a model directory with config.json and *.safetensors)");
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::vector<std::string> shards;
  if (fs::exists(index)) {
    std::ifstream in(index);
    json j;
    try {
      j = json::parse(in);
    } catch (const json::exception& e) {
      throw Error(index.string() + ": not valid JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(index.string() + ": expected an object with \"weight_map\"");
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it->is_string()) throw Error(index.string() + ": weight_map[\"" + it.key() + "\"] must be a file name");
      std::string f = it->get<std::string>();
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
        throw Error(index.string() + ": weight_map[\"" + it.key() + "\"] = \"" + f + "\" must be a file in the directory");
      if (std::find(shards.begin(), shards.end(), f) == shards.end()) shards.push_back(f);
    }
    for (const std::string& f : shards) files_.push_back(std::make_unique<SafetensorsFile>((fs::path(dir) / f).string()));
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      const std::string f = (fs::path(dir) / it->get<std::string>()).string();
      for (auto& file : files_)
        if (file->path() == f) {
          const TensorInfo* t = file->find(it.key());
          if (!t) throw Error(f + ": has no tensor \"" + it.key() + "\" although " + index.string() + " puts it there");
          index_[it.key()] = t;
        }
    }
  } else {
    fs::path single = fs::path(dir) / "model.safetensors";
    if (fs::exists(single)) {
      shards.push_back(single.string());
    } else {
      for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".safetensors") shards.push_back(e.path().string());
      std::sort(shards.begin(), shards.end());
    }
    if (shards.empty()) throw Error(dir + ": no model.safetensors, index or *.safetensors file");
    for (const std::string& f : shards) {
      files_.push_back(std::make_unique<SafetensorsFile>(f));
      for (const auto& [name, t] : files_.back()->tensors()) {
        if (index_.count(name)) throw Error(f + ": tensor \"" + name + "\" also appears in " + index_[name]->file);
        index_[name] = &t;
      }
    }
  }
}

Checkpoint::Checkpoint(std::string source, std::shared_ptr<const void> owner, std::vector<TensorInfo> tensors)
    : dir_(std::move(source)), owner_(std::move(owner)), own_(std::move(tensors)) {
  for (const TensorInfo& t : own_)
    if (!index_.emplace(t.name, &t).second) throw Error(dir_ + ": tensor \"" + t.name + "\" appears twice");
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorInfo& Checkpoint::get(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) throw Error(dir_ + ": missing tensor \"" + name + "\"");
  return *t;
}

size_t Checkpoint::total_bytes() const {
  size_t n = 0;
  for (const auto& [name, t] : index_) n += t->nbytes;
  return n;
}

namespace {

}  // namespace

void write_safetensors_streamed(const std::string& path, const std::vector<TensorMeta>& tensors,
                                const std::function<const void*(size_t i)>& data,
                                const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::vector<std::pair<size_t, size_t>> spans;  // offset, bytes
  size_t off = 0;
  for (const TensorMeta& t : tensors) {
    size_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= size_t(d);
    off = (off + 7) / 8 * 8;  // keep every tensor 8-aligned
    h[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {off, off + n}}};
    spans.emplace_back(off, n);
    off += n;
  }
  std::string header = h.dump();
  while ((header.size() + 8) % 8) header.push_back(' ');
  write_atomic(path, [&](AtomicWriter& out) {
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
    out.write(len, 8);
    out.write(header.data(), header.size());
    size_t pos = 0;
    static const char zeros[8] = {};
    for (size_t i = 0; i < tensors.size(); ++i) {
      out.write(zeros, spans[i].first - pos);
      out.write(data(i), spans[i].second);
      pos = spans[i].first + spans[i].second;
    }
  });
}

void write_safetensors(const std::string& path, const std::vector<TensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorMeta> meta;
  for (const TensorOut& t : tensors) meta.push_back({t.name, t.dtype, t.shape});
  write_safetensors_streamed(path, meta, [&](size_t i) { return tensors[i].data; }, metadata);
}


}  // namespace seek
