// Logging. One line per message, written with a single write() so lines from many threads never
// interleave: "2026-11-21T12:00:00.123Z W changelog/writer.cc:88] message".
// Messages go to stderr, and also to a file once SetLogFile() is called (daemons do that).
#pragma once

#include <sstream>
#include <string>
#include <string_view>

#include "common/status.h"

namespace drfs {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Also append log lines to `path`. Returns an error if it cannot be opened.
Status SetLogFile(const std::string& path);
// Whether to copy lines to stderr (default true).
void SetLogToStderr(bool on);

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return os_; }

 private:
  LogLevel level_;
  std::ostringstream os_;
};

// Turns the stream expression into void so DRFS_LOG works as a statement anywhere, including
// an unbraced if (glog's trick).
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace drfs

#define DRFS_LOG(severity)                                          \
  (::drfs::LogLevel::k##severity < ::drfs::GetLogLevel())           \
      ? (void)0                                                     \
      : ::drfs::LogVoidify() &                                      \
            ::drfs::LogMessage(::drfs::LogLevel::k##severity, __FILE__, __LINE__).stream()
