// Helpers shared by drfs unit tests.
#pragma once

#include <string>

#include "common/status.h"

namespace drfs::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Directory holding built binaries (set by CTest), for tests that start child processes.
std::string BinDir();

// File helpers for corruption tests.
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& data);

}  // namespace drfs::testing

// gtest assertions for Status and Result.
#define ASSERT_OK(expr)                                         \
  do {                                                          \
    const auto& drfs_s_ = (expr);                               \
    ASSERT_TRUE(::drfs::testing::StatusOf(drfs_s_).ok())        \
        << ::drfs::testing::StatusOf(drfs_s_).ToString();       \
  } while (0)
#define EXPECT_OK(expr)                                         \
  do {                                                          \
    const auto& drfs_s_ = (expr);                               \
    EXPECT_TRUE(::drfs::testing::StatusOf(drfs_s_).ok())        \
        << ::drfs::testing::StatusOf(drfs_s_).ToString();       \
  } while (0)

namespace drfs::testing {
inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}
}  // namespace drfs::testing
