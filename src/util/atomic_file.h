// atomic_file.h — writing a file so that a crash leaves either the old file or the whole new one:
// the bytes go to a temp file beside the target, which is fsynced, renamed over it, and the rename
// made durable by an fsync of the directory. Every file seek writes goes through here.
#pragma once
#include <cstddef>
#include <functional>
#include <string>

namespace seek {

// Appends bytes to the temp file being written.
class AtomicWriter {
 public:
  AtomicWriter(int fd, std::string tmp_path) : fd_(fd), tmp_(std::move(tmp_path)) {}
  void write(const void* data, size_t n);  // throws Error naming the file

 private:
  int fd_;
  std::string tmp_;
};

// body(out) produces the file's bytes through out.write(); throws Error (and leaves `path` untouched)
// when anything fails.
void write_atomic(const std::string& path, const std::function<void(AtomicWriter&)>& body);
void write_file_atomic(const std::string& path, const void* data, size_t n);
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace seek
