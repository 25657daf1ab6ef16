// Generic request/reply RPC over TCP, optionally TLS 1.3 with mutual authentication.
//
// The layer carries opaque payloads in frames (common/wire.h); what an op number and a payload
// mean belongs to the service on top (the brick, drfsd). Requests are multiplexed: a client may
// have many calls in flight on one connection, and the server may answer them in any order.
//
// TLS: a TlsConfig with files set turns TLS on. Both sides use TLS 1.3 only and trust exactly
// the site CA in ca_file. The server requires a client certificate signed by that CA; the client
// checks the server's certificate against the CA and, by default, that it names the host it
// dialed (a DNS or IP subjectAltName). The certificate subject's OU is the peer's role
// ("brick", "client", "daemon", "applier"); `drfs cert` (common/cert.h) mints such certificates.
//
// Threads: each RpcServer and RpcClient runs its own small pool of io threads, owned and joined
// by it. Server handlers and client callbacks run on those threads and must not block: hand
// slow work (disk I/O) to another thread and reply or continue from there.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>

#include "common/status.h"
#include "common/wire.h"

namespace drfs {

// Empty files = plain TCP. All three are PEM files; cert_file may hold a chain. A server needs
// all three; a client needs ca_file, and without cert_file/key_file it presents no certificate
// (which every drfs server refuses).
struct TlsConfig {
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
  // Client side: also require the server certificate to name the dialed host (SAN DNS or IP).
  bool verify_server_name = true;

  bool enabled() const { return !cert_file.empty() || !key_file.empty() || !ca_file.empty(); }
};

// Who is on the other end of a server connection, fixed once the connection is set up.
struct PeerInfo {
  std::string address;  // "127.0.0.1:41234"
  bool tls = false;
  std::string common_name;  // certificate subject CN ("" without TLS)
  std::string role;         // certificate subject OU ("" without TLS)
  // Unique among this server's connections for its lifetime (never reused, never 0): state a
  // service keeps per connection (the brick's locks) is keyed by it.
  uint64_t connection_id = 0;
};

namespace detail {
class ServerConnection;
struct ServerCore;
struct ClientCore;
}  // namespace detail

// The way a server handler answers one request. Cheap to copy; holds no strong reference to
// the connection. Send() may be called from any thread, exactly once per request (a second
// call sends a second reply, which the client drops). A reply to a connection that has closed,
// or to a server that has stopped, is dropped silently.
class Responder {
 public:
  Responder() = default;
  void Send(uint16_t op, std::string payload) const;
  uint64_t request_id() const { return id_; }

 private:
  friend class detail::ServerConnection;
  Responder(std::weak_ptr<detail::ServerConnection> conn, uint64_t id)
      : conn_(std::move(conn)), id_(id) {}

  std::weak_ptr<detail::ServerConnection> conn_;
  uint64_t id_ = 0;
};

// Called once per request frame, on an io thread: in arrival order for one connection, and
// concurrently for different connections. `peer` is fixed for the connection's lifetime.
using RpcHandler =
    std::function<void(std::shared_ptr<const PeerInfo> peer, Frame request, Responder reply)>;

struct ServerOptions {
  int io_threads = 2;
  size_t max_payload = kDefaultMaxPayload;
  // A connection that has not finished its TLS handshake by then is closed.
  std::chrono::milliseconds handshake_timeout{10000};
  // A peer that stops answering at the TCP level (its host lost power, its link was cut: no
  // FIN or RST ever comes) is given up after about this long: TCP keepalive probes start after
  // half of it without traffic, and TCP_USER_TIMEOUT bounds data it does not acknowledge. The
  // connection then closes like any other, and whatever lives on it goes with it (a brick's
  // locks, a client's pending calls). 0: the kernel's defaults (about 2 h of keepalive).
  std::chrono::milliseconds dead_peer_timeout{10000};
  // Called exactly once per accepted connection when it closes, whatever the reason (the peer
  // hung up, a bad frame, a failed handshake, Stop()), on an io thread, after the last handler
  // call for that connection has returned; it must not block. Stop() returns only after it has
  // run for every connection. Replies sent from it are dropped.
  std::function<void(const PeerInfo& peer)> on_close;
};

// Accepts connections and hands each request frame to the handler. A connection that sends a
// malformed or oversized frame, or fails the TLS handshake, is closed and logged (peer address
// and reason); the others keep being served.
class RpcServer {
 public:
  RpcServer();
  ~RpcServer();  // Stop()
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  // Binds host:port (port 0 picks a free port; see port()) and starts serving. The handler
  // must stay callable until Stop() returns. Fails with FailedPrecondition for unreadable or
  // mismatched TLS files and Unavailable when the address cannot be bound. Call once.
  Status Start(const std::string& host, uint16_t port, const TlsConfig& tls, RpcHandler handler,
               const ServerOptions& options = {});

  // Stops accepting, closes every connection, and joins the io threads: once it returns no
  // handler (nor on_close) is running or will run, and on_close has run for every connection.
  // Replies sent later are dropped. Idempotent.
  void Stop();

  uint16_t port() const;
  // Connections currently open (for tests and status output).
  size_t connection_count() const;

 private:
  std::shared_ptr<detail::ServerCore> core_;
};

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{5000};  // TCP connect plus TLS handshake
  std::chrono::milliseconds request_timeout{30000};
  size_t max_payload = kDefaultMaxPayload;  // largest reply accepted
  // A peer that stops answering at the TCP level (its host lost power, its link was cut: no
  // FIN or RST ever comes) is given up after about this long: TCP keepalive probes start after
  // half of it without traffic, and TCP_USER_TIMEOUT bounds data it does not acknowledge. The
  // connection then closes like any other, and whatever lives on it goes with it (a brick's
  // locks, a client's pending calls). 0: the kernel's defaults (about 2 h of keepalive).
  std::chrono::milliseconds dead_peer_timeout{10000};
  // Reconnect backoff after failed attempts: doubles from initial up to max.
  std::chrono::milliseconds reconnect_backoff_initial{50};
  std::chrono::milliseconds reconnect_backoff_max{2000};
  int io_threads = 1;
  // false: once an established connection is lost, the client stays down and every call fails
  // with Unavailable at once (see RpcClient::lost()). For callers whose server-side state (locks)
  // lives and dies with one connection: they make a new client instead.
  bool reconnect = true;
  // A request sent first on every connection this client makes, before any call, its reply
  // handed to on_handshake_reply (which may be empty; it runs on an io thread and must not
  // block). For per-connection state on the server that must survive a reconnect: the brick
  // keys the applier's standing by connection, so its hello is repeated on each. op 0: none.
  uint16_t handshake_op = 0;
  std::string handshake_payload;
  std::function<void(Result<Frame>)> on_handshake_reply;
};

// One connection to one server, re-established on demand. Thread-safe.
//
// Each call gets its reply, or fails with:
//   DeadlineExceeded  no reply within request_timeout (the request may still have run)
//   Unavailable       the connection was lost or could not be made (the request may have run if
//                     it was sent); retry
//   Cancelled         the client is being destroyed
// After the connection drops, the next call reconnects. Failed attempts back off exponentially
// (capped): calls made meanwhile wait for the next attempt rather than dialing at once, so a
// retry loop against a dead server does not spin.
class RpcClient {
 public:
  using Callback = std::function<void(Result<Frame>)>;

  // Makes the first connection before returning; fails with Unavailable (cannot connect, TLS
  // handshake refused) or FailedPrecondition (unreadable or mismatched TLS files).
  static Result<std::unique_ptr<RpcClient>> Connect(const std::string& host, uint16_t port,
                                                    const TlsConfig& tls,
                                                    const ClientOptions& options = {});

  // Closes the connection; calls still in flight fail with Cancelled. Must not be called from
  // one of this client's callbacks.
  ~RpcClient();
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // Sends a request; `done` runs exactly once, on an io thread, with the reply frame (its op
  // and payload as the server sent them) or an error.
  void Call(uint16_t op, std::string payload, Callback done);
  std::future<Result<Frame>> Call(uint16_t op, std::string payload);

  // "host:port"
  const std::string& target() const;
  // With ClientOptions::reconnect = false: the connection was lost for good.
  bool lost() const;

 private:
  explicit RpcClient(std::unique_ptr<detail::ClientCore> core);
  std::unique_ptr<detail::ClientCore> core_;
};

}  // namespace drfs
