// gguf.h — GGUF v3 files (llama.cpp's container): a checked reader whose tensors point into the file's
// bytes (util/file_bytes.h, zero-copy) and an atomic, streaming writer.
//
// Format (little-endian): magic "GGUF", u32 version (3), u64 tensor count, u64 metadata count; the
// metadata as key/value pairs (key: u64 length + bytes; value: u32 type + payload; arrays: u32 element
// type + u64 count + elements); the tensor infos (name, u32 n_dims ≤ 4, n_dims u64 extents with the
// innermost first, u32 ggml type, u64 offset relative to the data section); padding to
// `general.alignment` (default 32); then the data. Every field is validated: a file that is truncated,
// whose counts or lengths run past its end, whose types are unknown, whose tensors are misaligned, fall
// outside the data, overlap, or whose byte size disagrees with the extents and type is refused with an
// Error naming the file and the key or tensor.
//
// Stricter than llama.cpp where seek needs it: n_dims and extents must be > 0, a bool 0 or 1, a U64 at
// most INT64_MAX, and one tensor of a type seek does not compute with (Q5_K, I32, ...) refuses the file.
// Looser in two ways: tensors may lie in any order with gaps between them, as long as each is aligned and
// none overlap (llama.cpp wants them packed in info order), and names may be longer than ggml's 63 bytes. Arrays are bounded by the file's size before anything is
// allocated, so a corrupt count fails with an Error, not with an allocation of its size.
//
// Shapes here are row-major, outermost first, as safetensors and PyTorch write them: GGUF's extents
// [ne0 = K, ne1 = N] become shape [N, K].
//
// Does not: know model architectures or tensor names (model/gguf_model.h maps them to seek's).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/safetensors.h"  // TensorInfo
#include "util/file_bytes.h"

namespace seek {

// GGUF's metadata value types, with their on-disk codes.
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value. Scalars: integers in `i` (an unsigned value above INT64_MAX is refused at read),
// floats in `f`, bools in `b`, strings in `s`. Arrays (`type` ARRAY, element type `elem`; arrays of arrays
// are refused): strings in `strings`, integers and bools in `ints`, floats in `floats`.
struct GgufValue {
  GgufType type = GgufType::U32;
  GgufType elem = GgufType::U32;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<std::string> strings;
  std::vector<int64_t> ints;
  std::vector<double> floats;

  static GgufValue integer(GgufType type, int64_t v);  // type: any integer type (range checked at write)
  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue f32(float v);
  static GgufValue f64(double v);
  static GgufValue boolean(bool v);
  static GgufValue str(std::string v);
  static GgufValue str_array(std::vector<std::string> v);
  static GgufValue int_array(GgufType elem, std::vector<int64_t> v);  // elem: an integer type or BOOL
  static GgufValue f32_array(std::vector<double> v);
  static GgufValue f64_array(std::vector<double> v);
};
bool operator==(const GgufValue& a, const GgufValue& b);  // same type and contents (unused fields ignored)

// ggml's tensor type codes for the dtypes seek computes with; false for any other code.
bool dtype_from_ggml(uint32_t ggml_type, DType* out);
// ggml's name for a type code ("Q5_K"), or nullptr for a code ggml does not define.
const char* ggml_type_name(uint32_t ggml_type);
uint32_t ggml_type_of(DType t);  // asserts for I32/I64/F8_E4M3, which GGUF does not hold

class GgufFile {
 public:
  // Throws Error. `mode` as FileBytes's: Mapped when only the metadata is wanted (a tokenizer), so that
  // the tensors are not read a second time beside the model that holds them.
  explicit GgufFile(const std::string& path, FileBytes::Mode mode = FileBytes::Mode::Auto);
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  // Typed getters: throw Error naming the file and key when the key is absent or has another type.
  // Any integer type is accepted as an integer; F32/F64 as a float (and integers too, converted).
  // get_ints takes arrays of any integer type or of BOOL; get_floats arrays of F32 or F64.
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;  // fallback when absent
  double get_float(const std::string& key) const;
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  const std::string& get_string(const std::string& key) const;
  const std::vector<std::string>& get_strings(const std::string& key) const;
  const std::vector<int64_t>& get_ints(const std::string& key) const;
  const std::vector<double>& get_floats(const std::string& key) const;

  // Tensors in file order; `file` in each TensorInfo is this file's path. `data` points into the file's
  // bytes, except for a tensor not aligned for its type (possible only with general.alignment < 4),
  // which is copied.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(const std::string& name) const;
  int64_t alignment() const { return alignment_; }
  size_t size_bytes() const { return bytes_.size(); }
  // Where a tensor's data starts in the file, or -1 for a realigned copy.
  int64_t file_offset(const TensorInfo& t) const;
  // Holds the file through `bytes` from now on (the same file opened another way: read, with mapped
  // ranges), the tensors pointing into them; the parsed header is kept. Throws Error if the size differs.
  void replace_bytes(FileBytes bytes);
  // Gives back the pages of the ranges kept as mappings (the token embedding) after a lookup.
  void release_lookup_pages() const { bytes_.release_mapped_pages(); }

 private:
  std::string path_;
  FileBytes bytes_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<TensorInfo> tensors_;
  int64_t alignment_ = 32;
  std::unordered_map<std::string, size_t> kv_index_, tensor_index_;
  std::vector<std::unique_ptr<uint8_t[]>> copies_;  // realigned tensors
  void parse();
};

// One tensor to write: shape row-major (outermost first), data dtype_nbytes(dtype, numel) bytes.
struct GgufTensorOut {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};

// Writes a GGUF v3 file atomically (temp file, fsync, rename), tensors aligned to `alignment` (a power
// of two; appended as general.alignment when it is not 32 and the metadata lacks it), each padded with
// zeros to it, in the order given, as gguf-py's GGUFWriter lays them out (its output for the same
// content is byte-identical). Throws Error naming the file and the key or tensor for a duplicate key or
// tensor name, a value that does not fit its type, a shape GGUF cannot hold (1 to 4 extents, each > 0,
// the innermost a multiple of the block), or a dtype GGUF does not hold (F8_E4M3, I32, I64).
void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorOut>& tensors, int64_t alignment = 32);

// The same, for tensors produced one at a time: `data(i)` returns tensor i's bytes, valid until the next
// call, so a converter needs memory for one tensor, not the whole file.
void write_gguf_streamed(const std::string& path,
                         const std::vector<std::pair<std::string, GgufValue>>& metadata,
                         const std::vector<TensorMeta>& tensors,
                         const std::function<const void*(size_t i)>& data, int64_t alignment = 32);

}  // namespace seek
