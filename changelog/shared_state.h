// The journal's published position, shared between the writer and readers in any process.
//
// The writer publishes the highest LSN a reader may consume (its "visible" LSN) in a small
// memory-mapped file, DIR/state. Under the `always` and `interval` fsync policies that is the
// highest *durable* LSN, so a syncer never ships a record that a power loss could take back
// and whose LSN the next record would then reuse. Readers wait for it to move with a futex on
// the shared mapping, which wakes them at once, in the writer's process or another one.
//
// The file is a cache of the writer's state, not a source of truth: the writer rebuilds it from
// the segments every time it opens the journal, so it is never fsynced.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "changelog/record.h"
#include "common/status.h"

namespace drfs::changelog {

inline constexpr char kStateFileName[] = "state";

class SharedState {
 public:
  ~SharedState();
  SharedState(const SharedState&) = delete;
  SharedState& operator=(const SharedState&) = delete;

  // The writer's side: creates or resets DIR/state.
  static Result<std::unique_ptr<SharedState>> CreateForWriter(const std::string& dir,
                                                              Lsn visible, uint64_t pid);
  // A reader's side: NotFound while no writer has ever opened the journal.
  static Result<std::unique_ptr<SharedState>> OpenForReader(const std::string& dir);

  Lsn visible() const;
  uint64_t writer_pid() const;

  // Writer: publishes a new visible LSN and wakes every waiting reader.
  void Publish(Lsn visible);

  // A token that changes with every Publish(); take it before checking visible().
  uint32_t Sequence() const;
  // Blocks until Publish() has been called since `seq` was taken, or `timeout` passes.
  void WaitForChange(uint32_t seq, std::chrono::milliseconds timeout) const;

 private:
  struct Layout;
  SharedState(int fd, Layout* map) : fd_(fd), map_(map) {}

  int fd_;
  Layout* map_;  // read-only for readers: a Publish() from one would fault at once
};

}  // namespace drfs::changelog
