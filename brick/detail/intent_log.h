// IntentLog: the intents of namespace ops in flight, in one preallocated file of fixed slots,
// DIR/.drfs/intents.
//
// An op writes its intent into a free slot before its first step and clears the slot once it is
// journaled (see backend.cc, "Crash consistency"). Two pwrite()s per op and no new inode: an
// intent file created and deleted per op makes ext4's inode allocator scan past thousands of
// recently deleted inodes, which measured as most of the brick's CPU time on small files.
//
// Slot: magic u32 | text length u32 | crc32c(text) u32 | reserved u32 | text. Magic 0 is free.
// A slot torn by a crash while it was written fails its CRC and reads as free: the op it
// described had not started. Not fsynced: like the intents it replaces, it protects against a
// process crash (the page cache survives), not a power loss.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/coding.h"
#include "common/crc32c.h"
#include "common/status.h"

namespace drfs::brick::detail {

class IntentLog {
 public:
  static constexpr uint32_t kSlots = 256;
  static constexpr uint32_t kSlotSize = 2048;
  static constexpr uint32_t kHeader = 16;
  static constexpr uint32_t kMagic = 0x544e4944;  // "DINT"

  IntentLog() = default;
  IntentLog(const IntentLog&) = delete;
  IntentLog& operator=(const IntentLog&) = delete;
  ~IntentLog() {
    if (fd_ >= 0) ::close(fd_);
  }

  // Opens (creating and sizing it if needed) the log at `path` relative to `dir_fd`.
  Status Open(int dir_fd, const char* path, const std::string& display) {
    display_ = display;
    fd_ = ::openat(dir_fd, path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd_ < 0) return ErrnoStatus(errno, "open " + display_);
    if (::ftruncate(fd_, static_cast<off_t>(kSlots) * kSlotSize) != 0) {
      return ErrnoStatus(errno, "size " + display_);
    }
    for (uint32_t i = 0; i < kSlots; ++i) free_.push_back(kSlots - 1 - i);
    return Status::Ok();
  }

  // Writes `text` into a free slot (waiting while all are busy) and returns the slot.
  Result<int> Put(const std::string& text) {
    if (text.size() > kSlotSize - kHeader) {
      return Internal("intent of " + std::to_string(text.size()) + " bytes does not fit a slot");
    }
    int slot;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return !free_.empty(); });
      slot = free_.back();
      free_.pop_back();
    }
    std::string buf;
    PutFixed32(&buf, kMagic);
    PutFixed32(&buf, static_cast<uint32_t>(text.size()));
    PutFixed32(&buf, crc32c::Value(text));
    PutFixed32(&buf, 0);
    buf += text;
    if (Status s = Write(slot, buf); !s.ok()) {
      Release(slot);
      return s;
    }
    return slot;
  }

  // Frees a slot whose op is settled.
  Status Clear(int slot) {
    std::string zero(kHeader, '\0');
    Status s = Write(slot, zero);
    Release(slot);
    return s;
  }

  // The live intents, as (slot, text). Their slots stay taken until Clear().
  Result<std::vector<std::pair<int, std::string>>> ReadAll() {
    std::vector<std::pair<int, std::string>> out;
    std::string buf(kSlotSize, '\0');
    for (uint32_t i = 0; i < kSlots; ++i) {
      ssize_t n = ::pread(fd_, buf.data(), kSlotSize, static_cast<off_t>(i) * kSlotSize);
      if (n < 0) return ErrnoStatus(errno, "read " + display_);
      if (n < static_cast<ssize_t>(kHeader) || DecodeFixed32(buf.data()) != kMagic) continue;
      uint32_t len = DecodeFixed32(buf.data() + 4);
      if (len > kSlotSize - kHeader || kHeader + len > static_cast<size_t>(n)) continue;
      std::string text = buf.substr(kHeader, len);
      if (crc32c::Value(text) != DecodeFixed32(buf.data() + 8)) continue;  // torn: not started
      out.emplace_back(static_cast<int>(i), std::move(text));
    }
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [slot, text] : out) std::erase(free_, slot);
    return out;
  }

 private:
  Status Write(int slot, const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done,
                           static_cast<off_t>(slot) * kSlotSize + static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, "write " + display_);
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  }
  void Release(int slot) {
    {
      std::lock_guard<std::mutex> l(mu_);
      free_.push_back(slot);
    }
    cv_.notify_one();
  }

  int fd_ = -1;
  std::string display_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> free_;
};

}  // namespace drfs::brick::detail
