// VolumeClient: a replicated volume as one file system, without FUSE. The FUSE mount
// (volume/fuse.h), the self-heal daemon (volume/heal.h) and the secondary site's applier all
// use it.
//
// Replication follows GlusterFS AFR:
// - Every mutation goes to every brick of the replica set, as a transaction: lock on the bricks
//   (inodelk for data and metadata, entrylk on the parent for names), pre-op (mark the object
//   dirty), the op, post-op (clear dirty; on the bricks that succeeded, mark the bricks that did
//   not as pending), unlock. Pre-op and post-op ride on the lock and unlock requests. The
//   pre-op already accuses the bricks that are down. When every other brick answered the op
//   alike, the op is answered right away and its post-op and unlock follow in the background
//   (AFR's order); otherwise the post-op accuses the bricks that failed before the answer.
//   Either way, once an op is answered the markers on the bricks that applied it name every
//   brick that missed it, or (the client died before the post-op) leave "dirty" behind.
// - It succeeds when a quorum succeeded: more than half of the bricks; with two, exactly half
//   when the first brick is among them (cluster.quorum-type auto), or cluster.quorum-count
//   (fixed). Data ops also need a brick that holds data (not only the arbiter). Without
//   quorum a mutation fails with EROFS (before it starts: too few bricks up) or EIO (bricks
//   answered differently and no outcome has quorum); what did happen is marked for heal.
// - A client that dies mid-transaction leaves "dirty" on every brick it reached; its locks go
//   with its connections. Self-heal settles dirty objects by majority.
// - Writes to one file use an eager lock: the first write takes the lock and the pre-op, later
//   writes reuse them, and the post-op and unlock happen when the file is flushed, fsynced,
//   released, idle for eager_lock_idle, or held for eager_lock_max.
// - Reads go to one brick that is up and not marked stale for that object (by its markers,
//   which lookups and getattrs return, or by a failure this client saw), preferring the first.
// - Gfids of new objects are chosen here (random unless the caller passes one), so every
//   replica, and the secondary site, has the same ones.
//
// Errors: a Status whose sys_errno() is what a local file system returns (ENOENT, EEXIST,
// ENOTEMPTY, ...); EIO when no brick can answer; EROFS without quorum for writes or on a
// read-only client. Thread-safe: FUSE calls it from many threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/brick_protocol.h"
#include "common/gfid.h"
#include "common/rpc.h"
#include "common/status.h"
#include "volume/layout.h"

namespace drfs::brick {
class BrickClient;
}

namespace drfs::volume {

using brick_proto::DirEntry;
using brick_proto::Iatt;
using brick_proto::StatfsInfo;

struct VolumeClientOptions {
  TlsConfig tls;
  ClientOptions rpc;           // per-brick connection: timeouts, backoff
  std::string client_name = "drfs-client";
  bool read_only = false;      // every mutation gets EROFS
  // Given to every brick connection's hello: the applier (and self-heal) of a secondary's
  // volume, whose bricks are read-only to everyone without it (brick/server.h).
  std::string applier_secret;
  // How long after losing a brick's connection an op that finds too few bricks connected (none,
  // or fewer than the write quorum) waits for them to come back before failing (see Snapshot).
  std::chrono::milliseconds reconnect_grace{5000};
  std::chrono::milliseconds eager_lock_idle{20};
  std::chrono::milliseconds eager_lock_max{1000};
};

// The attributes Setattr applies: brick_proto::kAttr* bits in `valid`.
struct SetattrArgs {
  uint32_t valid = 0;
  uint32_t mode = 0, uid = 0, gid = 0;
  uint64_t size = 0;
  int64_t atime_ns = 0, mtime_ns = 0;
};

struct ReaddirPage {
  std::vector<DirEntry> entries;  // each with a cookie to continue after it
  bool eof = false;
};

// One brick of the replica set, as this client sees it.
struct BrickHealth {
  std::string name;
  bool arbiter = false;
  bool connected = false;  // the last call reached it
  std::string last_error;
};

class VolumeClient {
 public:
  // Connects to the bricks that are up. It succeeds while at least one is reachable (reads
  // work); bricks that are down are retried on later calls.
  static Result<std::unique_ptr<VolumeClient>> Open(const Layout& layout,
                                                    const VolumeClientOptions& options = {});
  ~VolumeClient();  // ends open write transactions (post-op, unlock), waits for post-ops

  // Waits until the post-ops of every answered op are answered by the bricks (see above).
  void Settle();
  VolumeClient(const VolumeClient&) = delete;
  VolumeClient& operator=(const VolumeClient&) = delete;

  // A newer layout (a brick restarted on another port). Bricks are matched by brick_id.
  Status UpdateLayout(const Layout& layout);
  Layout layout() const;

  // Namespace.
  Result<Iatt> Lookup(const Gfid& parent, std::string_view name);
  Result<Iatt> Getattr(const Gfid& gfid);
  Result<Iatt> Setattr(const Gfid& gfid, const SetattrArgs& attrs);
  Result<Iatt> Mkdir(const Gfid& parent, std::string_view name, uint32_t mode, uint32_t uid,
                     uint32_t gid, const Gfid& gfid = Gfid());
  // exclusive: EEXIST if the name exists; otherwise an existing file is returned as is.
  Result<Iatt> Create(const Gfid& parent, std::string_view name, uint32_t mode, uint32_t uid,
                      uint32_t gid, bool exclusive, const Gfid& gfid = Gfid());
  Result<Iatt> Mknod(const Gfid& parent, std::string_view name, uint32_t mode, uint64_t rdev,
                     uint32_t uid, uint32_t gid, const Gfid& gfid = Gfid());
  Result<Iatt> Symlink(const Gfid& parent, std::string_view name, std::string_view target,
                       uint32_t uid, uint32_t gid, const Gfid& gfid = Gfid());
  Result<std::string> Readlink(const Gfid& gfid);
  Result<Iatt> Link(const Gfid& gfid, const Gfid& new_parent, std::string_view new_name);
  Status Unlink(const Gfid& parent, std::string_view name);
  Status Rmdir(const Gfid& parent, std::string_view name);
  // flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE.
  Status Rename(const Gfid& parent, std::string_view name, const Gfid& new_parent,
                std::string_view new_name, uint32_t flags = 0);
  // `cookie` 0 starts; pass the last entry's cookie to continue.
  Result<ReaddirPage> Readdir(const Gfid& dir, uint64_t cookie, uint32_t max_entries, bool plus);

  // Data.
  Result<std::string> Read(const Gfid& gfid, uint64_t offset, uint64_t length);
  // Returns the file's attributes after the write.
  Result<Iatt> Write(const Gfid& gfid, uint64_t offset, std::string data);
  Result<Iatt> Fallocate(const Gfid& gfid, uint32_t mode, uint64_t offset, uint64_t length);
  Status Fsync(const Gfid& gfid, bool datasync);
  // Ends the file's write transaction now (close(2), flush).
  Status Flush(const Gfid& gfid);

  // Extended attributes (names under trusted.drfs. are the bricks' own and refused).
  Result<std::string> Getxattr(const Gfid& gfid, std::string_view name);
  Status Setxattr(const Gfid& gfid, std::string_view name, std::string_view value,
                  uint32_t flags);
  Result<std::vector<std::string>> Listxattr(const Gfid& gfid);
  Status Removexattr(const Gfid& gfid, std::string_view name);

  Result<StatfsInfo> Statfs();
  Status Access(const Gfid& gfid, uint32_t mask);

  std::vector<BrickHealth> Health() const;

  // Self-heal's access to the replica set. Index i is the brick's place in the layout (the
  // same i as in the pending markers). nullptr while the brick cannot be reached.
  size_t brick_count() const;
  std::shared_ptr<brick::BrickClient> brick(size_t i);
  bool is_arbiter(size_t i) const;
  // A lock owner id unique to this client process.
  uint64_t NewLockOwner();

  struct Impl;

 private:
  explicit VolumeClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drfs::volume
