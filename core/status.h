// core/status.h: expected failures as values. A Status is ok or carries a code and a message that
// says what failed and why; Expected<T> is a T or such a Status. Bugs are not Statuses: they abort
// through SPATTN_CHECK with the file and line.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace spattn {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad input: a file, a key, a parameter (the CLI exits 2)
  kNotFound,         // a file or a named thing that does not exist (exit 2)
  kInfeasible,       // a valid request that no plan can satisfy (exit 2)
  kUnavailable,      // a resource is missing: no GPU, no NCCL (exit 1)
  kInternal,         // anything else (exit 1)
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok_status() { return {}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status infeasible(std::string m) { return {StatusCode::kInfeasible, std::move(m)}; }
inline Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// A value or the Status that says why there is none. Constructing from an ok Status is a bug.
template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Expected(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) {
      std::fprintf(stderr, "Expected constructed from an ok Status\n");
      std::abort();
    }
  }
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace spattn

// Aborts with file and line when a programming invariant fails (not for bad input).
#define SPATTN_CHECK(cond)                                                          \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

// Returns the Status of an expression from the enclosing function when it is not ok.
#define SPATTN_RETURN_IF_ERROR(expr) \
  do {                               \
    ::spattn::Status _st = (expr);   \
    if (!_st.ok()) return _st;       \
  } while (0)
