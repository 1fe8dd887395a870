// pack.h — bytes that go from one rank to the others (util/comm.h): plain values, and arrays and
// strings preceded by their length, in the writer's order. The reader checks every length against what
// is left and throws Error naming `what` (the message's sender) when the bytes are shorter than they say.
// Both ends are the same build on the same kind of machine: no byte order or versioning.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "util/error.h"

namespace seek {

struct Packer {
  std::vector<uint8_t> b;
  template <class T>
  void pod(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof v);
  }
  template <class T>
  void array(const T* v, size_t n) {
    static_assert(std::is_trivially_copyable_v<T>);
    pod(int64_t(n));
    if (n) b.insert(b.end(), reinterpret_cast<const uint8_t*>(v), reinterpret_cast<const uint8_t*>(v + n));
  }
  template <class T>
  void array(const std::vector<T>& v) { array(v.data(), v.size()); }
  void str(const std::string& v) { array(v.data(), v.size()); }
};

struct Unpacker {
  const uint8_t* p;
  const uint8_t* end;
  const char* what;  // who sent it, for the errors

  Unpacker(const uint8_t* begin, const uint8_t* end_, const char* what_) : p(begin), end(end_), what(what_) {}
  explicit Unpacker(const std::vector<uint8_t>& b, const char* what_) : Unpacker(b.data(), b.data() + b.size(), what_) {}

  void take(void* out, size_t n) {
    if (size_t(end - p) < n) throw Error(std::string(what) + " is shorter than what it describes");
    if (n) std::memcpy(out, p, n);
    p += n;
  }
  template <class T>
  T pod() {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    take(&v, sizeof v);
    return v;
  }
  template <class T>
  size_t length() {
    const int64_t n = pod<int64_t>();
    if (n < 0 || size_t(n) > size_t(end - p) / sizeof(T)) throw Error(std::string(what) + " has a bad length");
    return size_t(n);
  }
  template <class T>
  std::vector<T> array() {
    std::vector<T> v(length<T>());
    take(v.data(), v.size() * sizeof(T));
    return v;
  }
  std::string str() {
    std::string v(length<char>(), '\0');
    take(v.data(), v.size());
    return v;
  }
  bool done() const { return p == end; }
};

}  // namespace seek
