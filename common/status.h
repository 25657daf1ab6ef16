// Status and Result<T>: errors as values.
//
// Every fallible call in drfs returns a Status or a Result<T>; exceptions never cross a module
// boundary. The code says what the *caller* should do (Abseil's split):
//   kUnavailable        - retry the call (peer down, resource busy, disk temporarily full)
//   kAborted            - retry the whole batch/transaction
//   kFailedPrecondition - stop and tell the operator (wrong state, fenced, misconfigured)
//   kDataLoss           - raise an alarm: durable data is corrupt or missing
// The message says what happened, to which object, and what to do next. A Status may also
// carry the errno that caused it, so brick replies can be mapped back to POSIX errors.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace drfs {

enum class Code : int {
  kOk = 0,
  kCancelled,
  kInvalidArgument,
  kDeadlineExceeded,
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,
  kResourceExhausted,
  kFailedPrecondition,
  kAborted,
  kOutOfRange,
  kUnimplemented,
  kInternal,
  kUnavailable,
  kDataLoss,
};

std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message, int sys_errno = 0)
      : code_(code), message_(std::move(message)), errno_(sys_errno) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // The errno behind this error, or 0.
  int sys_errno() const { return errno_; }

  // "DataLoss: segment ... is corrupt at offset 12"
  std::string ToString() const;

  // Returns a copy whose message is prefixed with `context: `.
  Status WithContext(std::string_view context) const;

  // Explicitly ignores a status where dropping it is correct (best-effort cleanup).
  void IgnoreError() const {}

 private:
  Code code_ = Code::kOk;
  std::string message_;
  int errno_ = 0;
};

inline Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
inline Status FailedPrecondition(std::string m) {
  return {Code::kFailedPrecondition, std::move(m)};
}
inline Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status Aborted(std::string m) { return {Code::kAborted, std::move(m)}; }
inline Status OutOfRange(std::string m) { return {Code::kOutOfRange, std::move(m)}; }
inline Status DataLoss(std::string m) { return {Code::kDataLoss, std::move(m)}; }
inline Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) { return {Code::kDeadlineExceeded, std::move(m)}; }

// Maps an errno from a failed system call to a Status whose message names the call, the object
// and the OS error text. ENOSPC/EDQUOT/EAGAIN/EINTR map to kUnavailable (retry once space or the
// resource comes back), ENOENT to kNotFound, EACCES/EPERM to kPermissionDenied, EIO to kDataLoss
// (the OS can no longer vouch for the bytes), the rest to kInternal.
Status ErrnoStatus(int err, std::string_view what);

// Result<T>: a T, or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result built from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    // get_if, not ok() then get: GCC 12 at -O2 otherwise reports the inactive Status of a
    // Result holding a value as maybe-uninitialized (tests/common/status_test.cc).
    const Status* s = std::get_if<Status>(&v_);
    return s != nullptr ? *s : kOkStatus;
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace drfs

#define DRFS_CONCAT_INNER_(a, b) a##b
#define DRFS_CONCAT_(a, b) DRFS_CONCAT_INNER_(a, b)

#define DRFS_RETURN_IF_ERROR(expr)              \
  do {                                          \
    ::drfs::Status drfs_status_ = (expr);       \
    if (!drfs_status_.ok()) return drfs_status_; \
  } while (0)

#define DRFS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

#define DRFS_ASSIGN_OR_RETURN(lhs, expr) \
  DRFS_ASSIGN_OR_RETURN_IMPL_(DRFS_CONCAT_(drfs_result_, __LINE__), lhs, expr)
