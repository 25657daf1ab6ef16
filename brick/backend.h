// Backend: what a brick stores on disk, and every brick op against it.
//
// Layout of a brick directory DIR:
//   DIR/...                    the user's tree, as plain files and directories, so an admin can
//                              read files straight off a brick. Every object carries its gfid in
//                              the xattr trusted.drfs.gfid (16 raw bytes). DIR itself is the
//                              root, gfid 00000000-0000-0000-0000-000000000001.
//   DIR/.drfs/gfid/ab/cd/<gfid> the gfid index ("handles"), ab/cd = the gfid's first two bytes
//                              in hex. A file, symlink or special file: a hard link to it. A
//                              directory: a symlink "../../<pp>/<qq>/<parent gfid>/<name>", so
//                              renaming a directory only rewrites its own handle. The root's
//                              handle points at DIR.
//   DIR/.drfs/changelog/       the journal (changelog/); every successful mutation is appended
//                              before the op returns.
//   DIR/.drfs/intents          intents of multi-step namespace ops in flight, in fixed slots
//                              (detail/intent_log.h; see backend.cc).
//   DIR/.drfs/tmp/             new objects being built before they are renamed into the tree.
//   DIR/.drfs/heal/<gfid>      the heal index: an empty file for each object whose pending
//                              markers (xattr trusted.drfs.pending) are not all zero.
// ".drfs" in the root is hidden from readdir and refused as a name.
//
// Contract:
// - Every op returns a brick_proto::Reply whose err is the errno the same call gives on a local
//   file system (ENOENT, EEXIST, ENOTEMPTY, ENOTDIR, EISDIR, ...), with a message naming the
//   object. A failed op changes nothing and is not journaled.
// - A successful mutation is in the journal (Reply::lsn) before Execute() returns, under the
//   journal's fsync policy.
// - Names with '/', NUL, "." or ".." are refused with EINVAL (over 255 bytes: ENAMETOOLONG, as
//   the kernel says). The backend never follows a user's symlink (one used as a parent gives
//   ENOTDIR), and a gfid handle that would lead outside DIR or to another object (tampered, or
//   stale after a crash) gives ESTALE.
// - Ops on the same directory entry, and data ops on the same file, are serialized, so the
//   journal order is the order in which the changes took effect.
// - Crash consistency: a kill -9 at any point leaves, after the next Open(), either the old or
//   the new state of each op in flight, with the tree, the gfid index and the journal agreeing:
//   an op is on disk if and only if it is journaled. Open() repairs what a crash left.
// - Read-only mode refuses every mutation with EROFS unless the caller passes
//   allow_when_read_only (the brick server does that for the applier's certificate role). An
//   XATTROP with a non-zero delta counts as a mutation here.
// - Xattrs named trusted.drfs.* are the brick's own: clients can neither read, list, set nor
//   remove them.
// - Markers (brick_proto.h): XATTROP adds deltas to an object's counters, atomically with
//   respect to other XATTROPs on it, and keeps the heal index a superset of the objects with a
//   counter not zero, across kill -9 too (HEAL_INDEX lists it and drops what a crash left).
//   LOOKUP, GETATTR and LOOKUP_GFID report the counters. Markers are not journaled and change
//   no attribute a user sees. INODELK and ENTRYLK are not served here (EOPNOTSUPP): locks
//   belong to connections, see BrickServer.
// - Arbiter (BackendOptions::arbiter): the brick keeps the namespace, attributes and xattrs of
//   a replica set but no file data, so it can break ties between two data bricks at the cost of
//   metadata only. WRITE stores nothing and answers as if it had (count = the data's size),
//   FALLOCATE allocates nothing, SETATTR leaves the size alone (files stay empty); all three are
//   still journaled as on a data brick, so the journal tells which files changed. READ fails
//   with EIO.
// - Thread-safe: Execute() is called concurrently from a pool of disk threads.
#pragma once

#include <memory>
#include <string>

#include "changelog/writer.h"
#include "common/brick_protocol.h"
#include "common/status.h"

namespace drfs::brick {

struct BackendOptions {
  bool read_only = false;
  bool arbiter = false;              // keep no file data (see above)
  changelog::WriterOptions journal;  // brick_id, fsync policy, segment limits
};

class Backend {
 public:
  // Creates DIR's private folders if needed, gives the root its gfid, opens the journal and
  // repairs what a crash left in flight. FailedPrecondition if DIR is not a directory, the file
  // system lacks trusted xattrs, or the journal is held by another brick.
  static Result<std::unique_ptr<Backend>> Open(const std::string& dir,
                                               const BackendOptions& options);
  ~Backend();

  // Runs one op. `allow_when_read_only` lets a mutation through a read-only brick.
  brick_proto::Reply Execute(const brick_proto::Request& request,
                             bool allow_when_read_only = false);

  const std::string& dir() const;
  const Gfid& brick_id() const;
  changelog::Writer* journal();
  bool read_only() const;
  bool arbiter() const;

  // What Open() repaired (for logs and tests).
  struct RepairReport {
    int intents_completed = 0;   // journaled before the crash: finished the cleanup
    int intents_rolled_back = 0; // not journaled: undone
  };
  const RepairReport& repair_report() const;

  struct Impl;

 private:
  explicit Backend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drfs::brick
