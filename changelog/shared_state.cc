#include "changelog/shared_state.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>

#include "common/file.h"

namespace drfs::changelog {

namespace {
constexpr char kMagic[8] = {'D', 'R', 'F', 'S', 'C', 'L', 'S', 'T'};
constexpr size_t kMapSize = 4096;
}  // namespace

struct SharedState::Layout {
  char magic[8];
  uint32_t version;
  uint32_t seq;  // futex word
  uint64_t visible;
  uint64_t writer_pid;
};


SharedState::~SharedState() {
  static_assert(sizeof(Layout) <= kMapSize);
  ::munmap(map_, kMapSize);
  ::close(fd_);
}

Result<std::unique_ptr<SharedState>> SharedState::CreateForWriter(const std::string& dir,
                                                                  Lsn visible, uint64_t pid) {
  std::string path = JoinPath(dir, kStateFileName);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "open " + path);
  if (::ftruncate(fd, kMapSize) != 0) {
    Status s = ErrnoStatus(errno, "size " + path);
    ::close(fd);
    return s;
  }
  void* p = ::mmap(nullptr, kMapSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    Status s = ErrnoStatus(errno, "map " + path);
    ::close(fd);
    return s;
  }
  auto* m = static_cast<Layout*>(p);
  std::memcpy(m->magic, kMagic, sizeof kMagic);
  m->version = 1;
  std::atomic_ref<uint64_t>(m->writer_pid).store(pid, std::memory_order_relaxed);
  std::unique_ptr<SharedState> st(new SharedState(fd, m));
  st->Publish(visible);
  return st;
}

Result<std::unique_ptr<SharedState>> SharedState::OpenForReader(const std::string& dir) {
  std::string path = JoinPath(dir, kStateFileName);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open " + path);
  struct stat st;
  if (::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(kMapSize)) {
    ::close(fd);
    return NotFound(path + " is not initialised yet (no writer has opened this journal)");
  }
  void* p = ::mmap(nullptr, kMapSize, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    Status s = ErrnoStatus(errno, "map " + path);
    ::close(fd);
    return s;
  }
  auto* m = static_cast<Layout*>(p);
  if (std::memcmp(m->magic, kMagic, sizeof kMagic) != 0) {
    ::munmap(p, kMapSize);
    ::close(fd);
    return NotFound(path + " is not initialised yet (no writer has opened this journal)");
  }
  return std::unique_ptr<SharedState>(new SharedState(fd, m));
}

Lsn SharedState::visible() const {
  return std::atomic_ref<uint64_t>(map_->visible).load(std::memory_order_acquire);
}

uint64_t SharedState::writer_pid() const {
  return std::atomic_ref<uint64_t>(map_->writer_pid).load(std::memory_order_relaxed);
}

uint32_t SharedState::Sequence() const {
  return std::atomic_ref<uint32_t>(map_->seq).load(std::memory_order_acquire);
}

void SharedState::Publish(Lsn visible) {
  std::atomic_ref<uint64_t>(map_->visible).store(visible, std::memory_order_release);
  std::atomic_ref<uint32_t>(map_->seq).fetch_add(1, std::memory_order_acq_rel);
  // Shared (not PRIVATE) futex: waiters may live in other processes.
  ::syscall(SYS_futex, &map_->seq, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

void SharedState::WaitForChange(uint32_t seq, std::chrono::milliseconds timeout) const {
  if (timeout.count() <= 0) return;
  timespec ts;
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  ts.tv_nsec = static_cast<long>((timeout.count() % 1000) * 1000000);
  // Returns at once with EAGAIN if seq already moved; EINTR/ETIMEDOUT just end the wait.
  ::syscall(SYS_futex, &map_->seq, FUTEX_WAIT, seq, &ts, nullptr, 0);
}

}  // namespace drfs::changelog
