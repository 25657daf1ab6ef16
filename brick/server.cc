#include "brick/server.h"

#include <cerrno>

#include "common/failpoint.h"
#include "common/log.h"

namespace drfs::brick {

using namespace brick_proto;

BrickServer::BrickServer(const BrickServerOptions& options, std::unique_ptr<Backend> backend)
    : opts_(options), backend_(std::move(backend)), disk_(options.disk_threads, "brick-disk") {}

Result<std::unique_ptr<BrickServer>> BrickServer::Start(const BrickServerOptions& options) {
  DRFS_ASSIGN_OR_RETURN(auto backend, Backend::Open(options.dir, options.backend));
  std::unique_ptr<BrickServer> s(new BrickServer(options, std::move(backend)));
  ServerOptions so;
  so.io_threads = options.io_threads;
  BrickServer* self = s.get();
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
                 << (options.backend.read_only ? ", read-only" : "");
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
  const size_t bytes = request.payload.size() + kFrameHeaderSize;
  if (queued_bytes_.fetch_add(bytes) + bytes > opts_.max_queued_bytes) {
    queued_bytes_ -= bytes;
    send(ErrorReply(EAGAIN, "brick " + opts_.dir + " is busy (" +
                                std::to_string(opts_.max_queued_bytes >> 20) +
                                " MiB of requests wait for its disk); retry shortly"));
    return;
  }
  bool queued = disk_.Submit([this, peer, request = std::move(request), send, bytes]() {
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
    const bool applier = peer->tls && peer->role == opts_.applier_role;
    send(backend_->Execute(req, applier));
  });
  if (!queued) {
    queued_bytes_ -= bytes;
    send(ErrorReply(ESHUTDOWN, "brick " + opts_.dir + " is shutting down; retry on " +
                                   "another replica or after it restarts"));
  }
}

}  // namespace drfs::brick
