#include "common/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>

#include "common/time.h"

namespace drfs {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<bool> g_to_stderr{true};
std::atomic<int> g_file_fd{-1};
std::mutex g_file_mu;

const char* ShortFile(const char* file) {
  // Keep "folder/file.cc" of the source path.
  const char* last = std::strrchr(file, '/');
  if (!last) return file;
  const char* p = last;
  while (p > file && *(p - 1) != '/') --p;
  return p;
}

void WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere left to report a logging failure
    }
    off += static_cast<size_t>(n);
  }
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }
void SetLogToStderr(bool on) { g_to_stderr = on; }

Status SetLogFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "open log file " + path);
  std::lock_guard<std::mutex> l(g_file_mu);
  int old = g_file_fd.exchange(fd);
  if (old >= 0) ::close(old);
  return Status::Ok();
}

LogMessage::LogMessage(LogLevel level, const char* file, int line) : level_(level) {
  static constexpr char kLetters[] = {'D', 'I', 'W', 'E'};
  os_ << FormatTimeMillis(NowNs()) << ' ' << kLetters[static_cast<int>(level)] << ' '
      << ShortFile(file) << ':' << line << "] ";
}

LogMessage::~LogMessage() {
  os_ << '\n';
  std::string s = os_.str();
  if (g_to_stderr) WriteAll(2, s);
  int fd = g_file_fd.load();
  if (fd >= 0) WriteAll(fd, s);
  (void)level_;
}

}  // namespace drfs
