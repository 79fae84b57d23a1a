// Error types and checks. User errors (bad input) and internal bugs are different types so
// callers can tell "fix your config" from "report a bug".
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace strata {

/// A problem with the caller's input: shapes, dtypes, devices, configs, files.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// A broken invariant inside strata: a bug to report, not a user mistake.
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& what) : std::logic_error(what) {}
};

/// Concatenates anything streamable into one string.
template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

/// Throws Error with the concatenated message when cond is false. Arguments are only
/// formatted on failure, so checks are cheap on hot paths.
template <class... Args>
inline void check(bool cond, const Args&... args) {
  if (!cond) [[unlikely]] {
    throw Error(str_cat(args...));
  }
}

/// Like check, for invariants that only a strata bug can break.
template <class... Args>
inline void check_internal(bool cond, const Args&... args) {
  if (!cond) [[unlikely]] {
    throw InternalError(str_cat("internal error (please report): ", args...));
  }
}

}  // namespace strata
