// BrickServer: exports one brick directory over the brick protocol.
//
// It owns the Backend (the directory, its gfid index and journal), a pool of disk threads and
// an RpcServer. Network threads only decode frames and hand each request to the disk pool, so
// they never block on the disk; replies go back in whatever order the ops finish, written by the
// disk thread itself when the connection has nothing else queued (plain TCP). A request
// whose payload does not decode gets EPROTO and is logged; a malformed frame closes only that
// connection (common/rpc.h). On a read-only brick only the applier may mutate: a peer whose
// certificate role is "applier", or, without TLS, a connection whose hello carried the brick's
// applier secret (Gluster's per-volume trusted-client password). That standing belongs to the
// connection and ends with it; a hello with a wrong secret gets EACCES and changes nothing.
// Past max_queued_bytes of requests waiting for the disk, new requests get EAGAIN at once.
//
// Locks (INODELK, ENTRYLK) are the exception to "decode on a disk thread": the network thread
// decodes them and hands them to the LockManager (brick/locks.h) at once, so a connection's
// lock requests reach it in the order they arrived and before the connection's close, which
// releases every lock and wait of the connection. A waiting lock holds no thread. Once granted,
// the lock's pre-op (its `pending` deltas, as an XATTROP) and the read of the object's markers
// for the reply run on a disk thread; if that fails (the object is gone, say) the lock is
// released again (what this request added; a lock the owner held before stays) and its deltas
// taken back, and the error answered: a failed lock changes nothing. An unlock with
// deltas applies them on a disk thread and then releases, whatever the outcome: unlock always
// unlocks, and a post-op that could not be applied is reported in the reply (except ENOENT:
// an object removed meanwhile has nothing left to mark). A wait cancelled by the owner's
// unlock is answered ECANCELED. On a read-only brick, locks whose deltas are not all zero need
// the applier role (EROFS, nothing locked); plain locks do not. An unlock with deltas releases
// only once its post-op is done, so an owner locking the same key again waits for the unlock's
// reply first (replies to one connection come in completion order).
//
// Stop() (and the destructor) is a gate: stop accepting, let queued ops finish, close the
// journal.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "brick/backend.h"
#include "brick/locks.h"
#include "common/rpc.h"
#include "common/thread_pool.h"

namespace drfs::brick {

struct BrickServerOptions {
  std::string dir;
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: pick a free port
  TlsConfig tls;
  BackendOptions backend;
  // Disk threads mostly wait in the journal's fdatasync; the more ops wait together, the more
  // one fdatasync covers (group commit). 32 measured 1.8x the small-file rate of 8 at 16
  // clients on 2 cores (docs/benchmarks.md).
  int disk_threads = 32;
  // Network threads only decode requests and hand them to the disk threads, which also write
  // plain-TCP replies themselves. One measured 10-25% more small files/s than two at 4 and 16
  // clients on 2 cores (fewer hand-offs between io threads); TLS may want more.
  int io_threads = 1;
  std::string applier_role = "applier";
  // Not empty (read-only bricks only): a client whose hello presents exactly this is the
  // applier for the rest of its connection. See ReadApplierSecretFile (brick/client.h).
  std::string applier_secret;
  // Request bytes waiting for a disk thread, across all clients. Past it, requests are answered
  // at once with EAGAIN ("brick busy; retry") instead of queued, so clients that pipeline more
  // than the disk absorbs cannot grow the brick's memory without bound.
  size_t max_queued_bytes = 256u << 20;
};

class BrickServer {
 public:
  static Result<std::unique_ptr<BrickServer>> Start(const BrickServerOptions& options);
  ~BrickServer();
  BrickServer(const BrickServer&) = delete;
  BrickServer& operator=(const BrickServer&) = delete;

  void Stop();
  uint16_t port() const { return rpc_.port(); }
  Backend* backend() { return backend_.get(); }
  LockManager* locks() { return &locks_; }

 private:
  BrickServer(const BrickServerOptions& options, std::unique_ptr<Backend> backend);
  void Handle(std::shared_ptr<const PeerInfo> peer, Frame request, Responder reply);
  using Send = std::function<void(const brick_proto::Reply&)>;
  // INODELK/ENTRYLK, on the network thread.
  void HandleLock(const PeerInfo& peer, const Frame& request, Send send);
  // HELLO, on the network thread, so the connection's next requests see its verdict.
  void HandleHello(const PeerInfo& peer, const Frame& request, Send send);
  // May this peer change a read-only brick? Called on the network thread, in request order.
  bool IsApplier(const PeerInfo& peer);
  // On a disk thread: applies `deltas` to each of `objects` (XATTROP) and returns the reply
  // carrying the first one's markers. With `undo_on_error`, a failure takes back what was
  // applied to the others.
  brick_proto::Reply ApplyMarkers(const std::vector<Gfid>& objects,
                                  const std::vector<int32_t>& deltas, bool applier,
                                  bool undo_on_error);

  const BrickServerOptions opts_;
  std::atomic<size_t> queued_bytes_{0};
  // Connections that presented the applier secret, and those already warned about a wrong
  // one (so a client retrying its hello logs once per connection). Dropped in on_close.
  std::mutex conn_mu_;
  std::set<uint64_t> applier_conns_;
  std::set<uint64_t> refused_conns_;
  std::unique_ptr<Backend> backend_;
  // Before disk_ and rpc_, so it outlives both: grants submit work to disk_, and rpc_'s
  // on_close releases locks.
  LockManager locks_;
  ThreadPool disk_;
  RpcServer rpc_;
};

}  // namespace drfs::brick
