#include "brick/server.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>

#include "common/failpoint.h"
#include "common/log.h"

namespace drfs::brick {

using namespace brick_proto;

namespace {

bool AnyNonZero(const std::vector<int32_t>& v) {
  return std::any_of(v.begin(), v.end(), [](int32_t x) { return x != 0; });
}

// A lock name is "" (the whole directory) or what an entry name may be.
bool ValidLockName(const std::string& n) {
  return n.empty() || (n != "." && n != ".." && n.find('/') == std::string::npos &&
                       n.find('\0') == std::string::npos);
}

}  // namespace

BrickServer::BrickServer(const BrickServerOptions& options, std::unique_ptr<Backend> backend)
    : opts_(options), backend_(std::move(backend)), disk_(options.disk_threads, "brick-disk") {}

Result<std::unique_ptr<BrickServer>> BrickServer::Start(const BrickServerOptions& options) {
  DRFS_ASSIGN_OR_RETURN(auto backend, Backend::Open(options.dir, options.backend));
  if (!options.applier_secret.empty() && !options.backend.read_only) {
    return InvalidArgument("brick " + options.dir +
                           ": an applier secret only means something on a read-only brick; "
                           "add --read-only or drop --applier-secret-file");
  }
  std::unique_ptr<BrickServer> s(new BrickServer(options, std::move(backend)));
  ServerOptions so;
  so.io_threads = options.io_threads;
  BrickServer* self = s.get();
  // A client that goes away (crashed, partitioned, closed) releases its locks and waits.
  so.on_close = [self](const PeerInfo& peer) {
    self->locks_.ReleaseConnection(peer.connection_id);
    std::lock_guard<std::mutex> l(self->conn_mu_);
    self->applier_conns_.erase(peer.connection_id);
    self->refused_conns_.erase(peer.connection_id);
  };
  Status st = s->rpc_.Start(
      options.host, options.port, options.tls,
      [self](std::shared_ptr<const PeerInfo> peer, Frame request, Responder reply) {
        self->Handle(std::move(peer), std::move(request), std::move(reply));
      },
      so);
  if (!st.ok()) return st.WithContext("brick " + options.dir);
  DRFS_LOG(Info) << "brick " << options.dir << " (id " << s->backend_->brick_id().ToString()
                 << ") serving on " << options.host << ":" << s->port()
                 << (options.tls.enabled() ? " with TLS" : "")
                 << (options.backend.read_only
                         ? (options.applier_secret.empty() ? ", read-only"
                                                           : ", read-only (applier by secret)")
                         : "")
                 << (options.backend.arbiter ? ", arbiter (no file data)" : "");
  return s;
}

BrickServer::~BrickServer() { Stop(); }

void BrickServer::Stop() {
  rpc_.Stop();       // no new requests; replies to closed connections are dropped
  disk_.Shutdown();  // ops already queued finish, so nothing is left half-journaled
}

void BrickServer::Handle(std::shared_ptr<const PeerInfo> peer, Frame request, Responder reply) {
  const uint16_t op = request.op;
  auto send = [reply, op](const Reply& r) {
    std::string out;
    EncodeReply(static_cast<Op>(op), r, &out);
    reply.Send(op, std::move(out));
  };
  if (!IsValidOp(op)) {
    DRFS_LOG(Warn) << "brick " << opts_.dir << ": unknown op " << op << " from " << peer->address;
    // Not a brick op we can encode a reply for: answer with the generic error layout.
    std::string out;
    EncodeReply(Op::kHello, ErrorReply(EOPNOTSUPP, "unknown brick op " + std::to_string(op) +
                                                       "; is the client newer than this brick?"),
                &out);
    reply.Send(op, std::move(out));
    return;
  }
  if (op == static_cast<uint16_t>(Op::kInodelk) || op == static_cast<uint16_t>(Op::kEntrylk)) {
    HandleLock(*peer, request, send);
    return;
  }
  if (op == static_cast<uint16_t>(Op::kHello)) {
    HandleHello(*peer, request, send);
    return;
  }
  // Decided here, in the connection's request order, not on the disk thread: a mutation sent
  // right after the hello must not race it.
  const bool applier = IsApplier(*peer);
  const size_t bytes = request.payload.size() + kFrameHeaderSize;
  if (queued_bytes_.fetch_add(bytes) + bytes > opts_.max_queued_bytes) {
    queued_bytes_ -= bytes;
    send(ErrorReply(EAGAIN, "brick " + opts_.dir + " is busy (" +
                                std::to_string(opts_.max_queued_bytes >> 20) +
                                " MiB of requests wait for its disk); retry shortly"));
    return;
  }
  bool queued = disk_.Submit([this, peer, request = std::move(request), send, bytes, applier]() {
    DRFS_FAILPOINT("brick.server.execute");  // tests hold the disk thread here (delay)
    queued_bytes_ -= bytes;
    Request req;
    Status s = DecodeRequest(static_cast<Op>(request.op), request.payload, &req);
    if (!s.ok()) {
      DRFS_LOG(Warn) << "brick " << opts_.dir << ": " << s.message() << " from "
                     << peer->address;
      send(ErrorReply(EPROTO, s.message()));
      return;
    }
    send(backend_->Execute(req, applier));
  });
  if (!queued) {
    queued_bytes_ -= bytes;
    send(ErrorReply(ESHUTDOWN, "brick " + opts_.dir + " is shutting down; retry on " +
                                   "another replica or after it restarts"));
  }
}

bool BrickServer::IsApplier(const PeerInfo& peer) {
  if (peer.tls && peer.role == opts_.applier_role) return true;
  // Only a read-only brick asks; the others need not pay for the lookup.
  if (opts_.applier_secret.empty()) return false;
  std::lock_guard<std::mutex> l(conn_mu_);
  return applier_conns_.count(peer.connection_id) != 0;
}

void BrickServer::HandleHello(const PeerInfo& peer, const Frame& request, Send send) {
  Request q;
  if (Status s = DecodeRequest(Op::kHello, request.payload, &q); !s.ok()) {
    DRFS_LOG(Warn) << "brick " << opts_.dir << ": " << s.message() << " from " << peer.address;
    send(ErrorReply(EPROTO, s.message()));
    return;
  }
  // A brick without a secret (writable, or read-only for TLS appliers only) ignores one: the
  // applier connects the same way before and after its volume turns read-only.
  if (!q.xattr_value.empty() && !opts_.applier_secret.empty()) {
    const std::string& want = opts_.applier_secret;
    const bool match = q.xattr_value.size() == want.size() &&
                       CRYPTO_memcmp(q.xattr_value.data(), want.data(), want.size()) == 0;
    std::unique_lock<std::mutex> l(conn_mu_);
    if (!match) {
      applier_conns_.erase(peer.connection_id);
      const bool first = refused_conns_.insert(peer.connection_id).second;
      l.unlock();
      if (first) {
        DRFS_LOG(Warn) << "brick " << opts_.dir << ": client '" << q.name << "' at " << peer.address
                       << " presented a wrong applier secret; it stays read-only to it";
      }
      send(ErrorReply(EACCES, "brick " + opts_.dir +
                                  " refused the applier secret (it does not match the brick's "
                                  "--applier-secret-file); check that the applier reads the "
                                  "same secret file as the brick, then reconnect"));
      return;
    }
    applier_conns_.insert(peer.connection_id);
  }
  Reply r;
  r.data = backend_->brick_id().ToString();
  send(r);
}

Reply BrickServer::ApplyMarkers(const std::vector<Gfid>& objects,
                                const std::vector<int32_t>& deltas, bool applier,
                                bool undo_on_error) {
  Reply first;
  std::optional<Reply> failed;
  // Without deltas this only reads, and only the first object's markers are reported.
  const size_t n = AnyNonZero(deltas) ? objects.size() : std::min<size_t>(objects.size(), 1);
  for (size_t i = 0; i < n; ++i) {
    Request x;
    x.op = Op::kXattrop;
    x.gfid = objects[i];
    x.pending = deltas;
    Reply r = backend_->Execute(x, applier);
    if (r.err != 0 && undo_on_error) {
      // Take back what the objects before this one got, so a failed lock changed nothing.
      std::vector<int32_t> back(deltas.size());
      bool invertible = true;
      for (size_t k = 0; k < deltas.size(); ++k) {
        invertible = invertible && deltas[k] != std::numeric_limits<int32_t>::min();
        back[k] = invertible ? -deltas[k] : 0;
      }
      for (size_t j = 0; j < i && invertible && AnyNonZero(back); ++j) {
        Request u = x;
        u.gfid = objects[j];
        u.pending = back;
        Reply ur = backend_->Execute(u, applier);
        if (ur.err != 0) {
          DRFS_LOG(Warn) << "brick " << opts_.dir << ": cannot take back the markers of gfid "
                         << objects[j].ToString() << " after a failed lock: " << ur.message;
        }
      }
      return r;
    }
    // Without undo (an unlock's post-op) every object gets its deltas; the first failure is
    // what the reply reports.
    if (r.err != 0 && !failed) failed = r;
    if (i == 0) first = std::move(r);
  }
  return failed ? *failed : first;
}

void BrickServer::HandleLock(const PeerInfo& peer, const Frame& request, Send send) {
  const Op op = static_cast<Op>(request.op);
  Request q;
  if (Status s = DecodeRequest(op, request.payload, &q); !s.ok()) {
    DRFS_LOG(Warn) << "brick " << opts_.dir << ": " << s.message() << " from " << peer.address;
    send(ErrorReply(EPROTO, s.message()));
    return;
  }
  const bool inode = op == Op::kInodelk;
  std::string what = std::string(OpName(op)) + " ";
  std::vector<LockKey> keys;
  std::vector<Gfid> objects;  // what `pending` applies to
  if (inode) {
    what += "gfid " + q.gfid.ToString() + " on brick " + opts_.dir;
    if (q.gfid.is_null()) {
      send(ErrorReply(EINVAL, what + ": the request names no gfid"));
      return;
    }
    keys.push_back(LockKey::Inode(q.gfid));
    objects.push_back(q.gfid);
  } else {
    what += q.parent.ToString() + "/" + q.name;
    if (!q.new_parent.is_null()) what += " and " + q.new_parent.ToString() + "/" + q.new_name;
    what += " on brick " + opts_.dir;
    if (q.parent.is_null() || !ValidLockName(q.name) ||
        (!q.new_parent.is_null() && !ValidLockName(q.new_name))) {
      send(ErrorReply(EINVAL, what + ": needs a directory gfid and a name (\"\" for the whole "
                                     "directory) without '/'"));
      return;
    }
    keys.push_back(LockKey::Entry(q.parent, q.name));
    objects.push_back(q.parent);
    if (!q.new_parent.is_null()) {
      keys.push_back(LockKey::Entry(q.new_parent, q.new_name));
      if (q.new_parent != q.parent) objects.push_back(q.new_parent);
    }
  }
  if ((q.flags & ~(kLockUnlock | kLockBlocking)) != 0) {
    send(ErrorReply(EINVAL, what + ": unknown flags " + std::to_string(q.flags)));
    return;
  }
  const bool applier = IsApplier(peer);
  const LockOwner owner{peer.connection_id, q.lock_owner};
  const bool marks = AnyNonZero(q.pending);
  if (!inode && q.parent == brick_proto::ServiceLockSpace()) {
    if (marks || !q.new_parent.is_null()) {
      send(ErrorReply(EINVAL, what + ": the service lock space takes one name and no markers"));
      return;
    }
    objects.clear();  // no object behind it: nothing to read or mark
  }
  auto shutting_down = [this, what](const std::string& state) {
    return ErrorReply(ESHUTDOWN, what + ": brick " + opts_.dir + " is shutting down (" + state +
                                     "); retry on another replica or after it restarts");
  };

  if (q.flags & kLockUnlock) {
    if (!marks) {
      // Now, on this thread: in order with the connection's other lock requests.
      locks_.Unlock(owner, keys);
    }
    auto post = [this, owner, keys, objects, deltas = std::move(q.pending), marks, applier,
                 send]() {
      Reply r = ApplyMarkers(objects, deltas, applier, /*undo_on_error=*/false);
      if (marks) locks_.Unlock(owner, keys);
      if (r.err == ENOENT) {
        r = Reply{};  // removed while locked: nothing left to mark, and the lock is gone
      } else if (r.err != 0) {
        r.message += "; the lock was released";
      }
      send(r);
    };
    if (!disk_.Submit(std::move(post))) {
      if (marks) locks_.Unlock(owner, keys);
      send(shutting_down("the lock was released, its markers not changed"));
    }
    return;
  }

  if (marks && backend_->read_only() && !applier) {
    send(ErrorReply(EROFS, what + " with markers refused: brick " + opts_.dir +
                               " is read-only (this site is a secondary; only its applier may "
                               "change it); nothing was locked"));
    return;
  }
  auto granted = [this, owner, objects, deltas = std::move(q.pending), applier, send, what,
                  shutting_down](int err, std::vector<LockKey> acquired) {
    if (err != 0) {
      std::string why;
      switch (err) {
        case EAGAIN:
          why =
              "another owner holds a conflicting lock or waits for one first; retry, or ask "
              "to block";
          break;
        case ECANCELED:
          why = "the wait was cancelled by an unlock from the same owner";
          break;
        case ECONNABORTED:
          why = "the connection closed while waiting";
          break;
        default:
          why = std::strerror(err);
      }
      send(ErrorReply(err, what + ": " + why));
      return;
    }
    // The pre-op and the markers for the reply need the disk.
    bool queued = disk_.Submit([this, owner, objects, deltas, applier, send, acquired]() {
      Reply r = ApplyMarkers(objects, deltas, applier, /*undo_on_error=*/true);
      if (r.err != 0) {
        locks_.Unlock(owner, acquired);
        r.message += "; the lock was not taken";
      }
      send(r);
    });
    if (!queued) {
      locks_.Unlock(owner, acquired);
      send(shutting_down("the lock was not taken"));
    }
  };
  locks_.Lock(owner, std::move(keys), (q.flags & kLockBlocking) != 0, std::move(granted));
}

}  // namespace drfs::brick
