// LockTable: a fixed array of mutexes ("stripes") that serializes ops on the same directory
// entry (keyed by parent gfid + name) and on the same object (keyed by gfid).
//
// An op names every stripe it needs up front and StripeLock takes them in index order, so two
// ops never wait on each other in a cycle. Unrelated keys may share a stripe; that costs some
// parallelism, never correctness. An op that learns which object it touches only after looking
// (unlink, rename) locks, looks again, and starts over if the entry changed meanwhile.
#pragma once

#include <algorithm>
#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "common/gfid.h"

namespace drfs::brick::detail {

class LockTable {
 public:
  static constexpr size_t kStripes = 1024;

  static size_t EntrySlot(const Gfid& parent, std::string_view name) {
    uint64_t h = Fnv(kEntrySeed, parent.bytes.data(), parent.bytes.size());
    h = Fnv(h, name.data(), name.size());
    return static_cast<size_t>(h % kStripes);
  }
  static size_t ObjectSlot(const Gfid& gfid) {
    return static_cast<size_t>(Fnv(kObjectSeed, gfid.bytes.data(), gfid.bytes.size()) % kStripes);
  }
  std::mutex& at(size_t slot) { return mu_[slot]; }

 private:
  static constexpr uint64_t kEntrySeed = 14695981039346656037ull;
  static constexpr uint64_t kObjectSeed = 1099511628211ull * 31;
  static uint64_t Fnv(uint64_t h, const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
  }
  std::array<std::mutex, kStripes> mu_;
};

// Holds up to four stripes, taken in ascending order and released on destruction.
class StripeLock {
 public:
  StripeLock(LockTable& table, std::initializer_list<size_t> slots) : table_(table) {
    assert(slots.size() <= slots_.size());
    for (size_t s : slots) {
      if (std::find(slots_.begin(), slots_.begin() + n_, s) == slots_.begin() + n_) {
        slots_[n_++] = s;
      }
    }
    std::sort(slots_.begin(), slots_.begin() + n_);
    for (size_t i = 0; i < n_; ++i)
      table_.at(slots_[i]).lock();
  }
  ~StripeLock() {
    for (size_t i = n_; i > 0; --i)
      table_.at(slots_[i - 1]).unlock();
  }
  StripeLock(const StripeLock&) = delete;
  StripeLock& operator=(const StripeLock&) = delete;

 private:
  LockTable& table_;
  std::array<size_t, 4> slots_{};
  size_t n_ = 0;
};

}  // namespace drfs::brick::detail
