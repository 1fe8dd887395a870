// file_bytes.h — a whole file's bytes in memory, read-only, for the weight readers.
//
// Two ways to hold them, chosen per file at open:
//   Read    the file is read into anonymous memory on 2 MiB pages (madvise MADV_HUGEPAGE), then made
//           read-only. Decode streams every weight once per token; on 4 KiB pages that stream misses
//           the TLB every 4 KiB, and on this 2-core Zen 5 VM the bench model then decodes ~25% slower
//           (docs/results.md, issue 12). Resident memory is the file's size, as mapped; the page cache
//           is not shared with other processes.
//   Mapped  mmap of the file: pages load on first touch and are shared with other processes, and a
//           file larger than memory still opens.
// Auto (the default) reads when the file takes at most half of the memory available, else maps.
// SEEK_WEIGHTS=mmap or SEEK_WEIGHTS=read in the environment overrides it.
// A read file may keep some byte ranges as mappings of the file (`mapped_ranges`, rounded inward to
// whole 4 KiB pages): a lookup table of which a prompt reads a few rows (a token embedding that is not
// also the output head) then costs resident memory only for the pages touched, as under Mapped; and
// release_mapped_pages() gives those back after a lookup (each touch maps the kernel's fault-around
// window, 64 KiB, so a few thousand lookups made a whole 75-140 MB table resident).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace seek {

class FileBytes {
 public:
  enum class Mode { Auto, Read, Mapped };

  FileBytes() = default;
  // Throws Error naming the file when it cannot be opened, read or mapped.
  // mapped_ranges: (offset, length) pairs within the file, Read mode only.
  explicit FileBytes(const std::string& path, Mode mode = Mode::Auto,
                     const std::vector<std::pair<size_t, size_t>>& mapped_ranges = {});
  ~FileBytes();
  FileBytes(FileBytes&& o) noexcept;
  FileBytes& operator=(FileBytes&& o) noexcept;
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool mapped() const { return mapped_; }
  // Unmaps the pages of the mapped ranges from this process (MADV_DONTNEED): they stay in the page
  // cache, and a later read maps them again. Only file mappings are released, never read bytes.
  void release_mapped_pages() const;

 private:
  void release();
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* region_ = nullptr;  // what munmap releases
  size_t region_size_ = 0;
  bool mapped_ = false;
  std::vector<std::pair<size_t, size_t>> lookup_;  // the mapped ranges inside a read region: [begin, end), sorted
};

// The mode Auto resolves to for a file of `bytes` (the environment's override, else by free memory).
FileBytes::Mode resolve_load_mode(size_t bytes);

}  // namespace seek
