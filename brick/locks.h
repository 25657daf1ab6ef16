// LockManager: the brick's inode and entry locks (kInodelk, kEntrylk), held in memory for the
// clients of one BrickServer.
//
// Keys. An inode lock is keyed by the object's gfid and covers the whole object. An entry lock
// is keyed by (directory gfid, name); the name "" stands for the whole directory and conflicts
// with every entry lock of that directory, and every entry lock conflicts with it. Inode and
// entry locks never conflict with each other. A request names one key, or two (a rename's
// source and destination): both are granted at once or neither is.
//
// Owners. Every lock is exclusive and belongs to an owner: (connection id, the client's
// lock_owner). Locks of the same owner never conflict, so an owner re-locking what it holds is
// granted at once (idempotent: one unlock releases it).
//
// Waiting. A blocking request that conflicts waits in a queue and is granted first come, first
// served: a request is granted only when no other owner holds a conflicting lock and no earlier
// waiter of another owner wants a conflicting one. So named locks cannot starve a whole-directory
// lock (or the reverse). The one exception: an earlier waiter that is itself held up by a lock
// the requester's owner holds may be passed, since it must wait for that owner anyway (without
// it an owner upgrading from a name to the whole directory would wait on itself). A non-blocking
// request gets EAGAIN at once where a blocking one would wait. Nothing blocks a thread: a
// waiter is a callback, run when the wait ends.
//
// Ends of a wait (the callback's err):
//   0             granted
//   EAGAIN        non-blocking, and the lock is not free (for this owner, now)
//   ECANCELED     the same owner unlocked one of the keys while waiting (Unlock() cancels waits,
//                 so a client that gave up on a lock can always clean up)
//   ECONNABORTED  the connection closed (ReleaseConnection) while waiting
// With err 0 the callback also gets the keys this grant added: those the owner did not hold
// already (so a caller undoing a grant releases only those). Every Lock() call's callback runs
// exactly once. Callbacks run on the thread whose call
// decided them (Lock() itself when decided at once, else the Unlock()/ReleaseConnection() that
// granted or cancelled them), after the manager's own lock is dropped, so they may call back
// into the manager. They must not block.
//
// Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/gfid.h"

namespace drfs::brick {

struct LockOwner {
  uint64_t connection = 0;  // PeerInfo::connection_id
  uint64_t owner = 0;       // Request::lock_owner
  friend bool operator==(const LockOwner&, const LockOwner&) = default;
  friend auto operator<=>(const LockOwner&, const LockOwner&) = default;
};

struct LockKey {
  enum class Kind : uint8_t { kInode, kEntry };
  Kind kind = Kind::kInode;
  Gfid gfid;         // the object (kInode) or the directory (kEntry)
  std::string name;  // kEntry: the name, "" for the whole directory; kInode: always ""

  static LockKey Inode(const Gfid& g) { return LockKey{Kind::kInode, g, ""}; }
  static LockKey Entry(const Gfid& dir, std::string name) {
    return LockKey{Kind::kEntry, dir, std::move(name)};
  }
  friend bool operator==(const LockKey&, const LockKey&) = default;
  friend auto operator<=>(const LockKey&, const LockKey&) = default;
};

class LockManager {
 public:
  using Callback = std::function<void(int err, std::vector<LockKey> acquired)>;

  LockManager();
  ~LockManager();
  LockManager(const LockManager&) = delete;
  LockManager& operator=(const LockManager&) = delete;

  // Locks `keys` (one or two; duplicates count once) for `owner`; `done` gets the outcome.
  void Lock(const LockOwner& owner, std::vector<LockKey> keys, bool blocking, Callback done);
  // Releases whichever of `keys` `owner` holds and cancels its waits for any of them (their
  // callbacks get ECANCELED). What it does not hold is ignored. Then grants what became free.
  void Unlock(const LockOwner& owner, const std::vector<LockKey>& keys);
  // Drops every lock and wait of the connection (waits end with ECONNABORTED), then grants
  // what became free.
  void ReleaseConnection(uint64_t connection);

  // For tests and status output.
  bool Holds(const LockOwner& owner, const LockKey& key) const;
  size_t held_count() const;
  size_t waiting_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace drfs::brick
