// error.h — how seek reports trouble (CONTRIBUTING.md, "Errors").
//
// - Bad input (a file, a field, a flag) throws seek::Error whose message names the file or field and
//   what was expected; callers at the top (CLI, server) print it and carry on or exit cleanly.
// - A broken invariant inside seek is a bug: SEEK_ASSERT prints file:line and aborts.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace seek {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// printf-style formatting into a std::string.
std::string strfmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

[[noreturn]] inline void fail_assert(const char* expr, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "seek: assertion failed at %s:%d: %s%s%s\n", file, line, expr, msg ? " — " : "",
               msg ? msg : "");
  std::abort();
}

}  // namespace seek

#define SEEK_ASSERT(cond) \
  do { if (!(cond)) ::seek::fail_assert(#cond, __FILE__, __LINE__, nullptr); } while (0)
#define SEEK_ASSERT_MSG(cond, msg) \
  do { if (!(cond)) ::seek::fail_assert(#cond, __FILE__, __LINE__, (msg)); } while (0)
