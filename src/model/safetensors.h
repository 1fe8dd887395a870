// safetensors.h — Hugging Face safetensors files: a checked reader whose tensors point into the file's
// bytes (read into huge pages or mapped: util/file_bytes.h) and an atomic writer; a Checkpoint is a set of them (one file, or shards named by model.safetensors.index.json).
//
// Format: 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}
// then the data; offsets are relative to the end of the header. Every field is validated: a file
// that is truncated, whose header is not JSON, whose offsets fall outside the data or overlap, whose
// dtype is unknown or whose byte size disagrees with its shape is refused with an Error naming the
// file and the tensor. Tensors are not copied, except one whose data is not aligned for its dtype.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tensor/dtype.h"
#include "util/atomic_file.h"  // write_file_atomic
#include "util/file_bytes.h"

namespace seek {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // inside the file's bytes (or an aligned copy)
  size_t nbytes = 0;
  std::string file;            // for error messages
  int64_t numel() const;
  std::string shape_str() const;  // "[4, 7]"
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws Error
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t mapped_bytes() const { return bytes_.size(); }

 private:
  std::string path_;
  FileBytes bytes_;  // read into huge pages or mapped: util/file_bytes.h
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  std::vector<std::unique_ptr<uint8_t[]>> copies_;  // realigned tensors
};

// All tensors of a model directory: model.safetensors.index.json with its shards if present,
// else model.safetensors, else every *.safetensors in the directory (sorted).
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& dir);
  // Tensors another reader has put under Hugging Face names (model/gguf_model.h); `owner` keeps their
  // bytes alive; `source` (the file) names them in errors. Names must be unique.
  Checkpoint(std::string source, std::shared_ptr<const void> owner, std::vector<TensorInfo> tensors);
  const TensorInfo* find(const std::string& name) const;
  // Throws Error naming the tensor and the files searched when absent.
  const TensorInfo& get(const std::string& name) const;
  const std::map<std::string, const TensorInfo*>& tensors() const { return index_; }
  const std::string& dir() const { return dir_; }
  size_t total_bytes() const;  // bytes of tensor data over all shards

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::shared_ptr<const void> owner_;  // the other reader's file and buffers
  std::vector<TensorInfo> own_;        // its tensors
  std::map<std::string, const TensorInfo*> index_;
};

// One tensor to write.
struct TensorOut {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;  // numel × dtype_size bytes
};

// Writes a safetensors file atomically (temp file in the same directory, fsync, rename).
// The header is padded with spaces to a multiple of 8 bytes so every tensor is 8-aligned when the
// tensors' sizes are multiples of 8 (the writer pads between tensors to keep them aligned).
void write_safetensors(const std::string& path, const std::vector<TensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The same, for tensors produced one at a time: `data(i)` returns tensor i's bytes, valid until the
// next call, so a writer needs memory for one tensor, not the whole file.
struct TensorMeta {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};
void write_safetensors_streamed(const std::string& path, const std::vector<TensorMeta>& tensors,
                                const std::function<const void*(size_t i)>& data,
                                const std::map<std::string, std::string>& metadata = {});


}  // namespace seek
