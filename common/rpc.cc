#include "common/rpc.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/log.h"

// Implementation notes.
//
// Server: one ServerCore owns the io_context, the acceptor and the io threads. Each connection is
// a ServerConnection whose socket, timer and read loop live on its own strand. Replies may come
// from any thread: Send() encodes the frame and, under a mutex, if no write is under way and the
// connection is plain TCP, writes it to the socket at once from the calling thread (a disk
// thread, for the brick), which saves waking an io thread per reply. Otherwise, or for what the
// socket does not take, it queues the frame and posts a write to the strand, which drains the
// whole queue in one gathered write.
// Connections hold the core (and so the io_context) alive, and Responders hold connections only
// weakly, so a late reply can never touch a destroyed io_context.
//
// Stop() is a gate: it marks the core stopping (no new connections are registered), closes the
// acceptor and every connection on their strands, drops the work guard and joins the io threads.
// With every socket closed, every pending operation completes (aborted) and run() returns on its
// own, so no handler is left holding a connection and nothing is detached.
//
// Client: all state lives on one strand, except what `mu` guards (the call table and the write
// queue), which lets a call on a plain-TCP connection with nothing queued register itself and
// write its request straight from the caller's thread; every other call posts onto the strand.
// Calls made while
// disconnected wait in `unsent` for the next connection attempt, which is scheduled no earlier
// than the backoff allows; a failed attempt fails exactly those calls with Unavailable.

namespace drfs {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using ErrorCode = boost::system::error_code;
using Strand = asio::strand<asio::io_context::executor_type>;
using SslStream = asio::ssl::stream<tcp::socket>;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kReadChunk = 64 * 1024;

std::string FormatEndpoint(const tcp::endpoint& ep) {
  const auto addr = ep.address();
  std::string a = addr.to_string();
  if (addr.is_v6()) a = "[" + a + "]";
  return a + ":" + std::to_string(ep.port());
}

std::string HostPort(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

// See dead_peer_timeout in rpc.h. Failing to set it is logged, not fatal: the connection works,
// it only notices a vanished peer later.
void SetDeadPeerTimeout(int fd, std::chrono::milliseconds t, const std::string& peer) {
  if (t.count() <= 0) return;
  const int total_s = static_cast<int>(std::max<int64_t>(2, (t.count() + 999) / 1000));
  const int idle = std::max(1, total_s / 2);
  const int count = 3;
  const int interval = std::max(1, (total_s - idle) / count);
  const int on = 1;
  const unsigned int user_timeout_ms = static_cast<unsigned int>(t.count());
  if (::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms) != 0) {
    DRFS_LOG(Warn) << "connection with " << peer << ": cannot set TCP keepalive ("
                   << std::strerror(errno) << "); a peer that vanishes without closing is noticed "
                   << "only after the kernel's default keepalive time";
  }
}

std::string Ms(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

// The reason a TLS operation failed: OpenSSL's reason string, plus the certificate
// verification error when there was one ("certificate has expired").
std::string TlsReason(const ErrorCode& ec, SSL* ssl) {
  std::string r = ec.message();
  if (ssl != nullptr) {
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
      r += " (";
      r += X509_verify_cert_error_string(v);
      r += ")";
    }
  }
  return r;
}

bool IsEof(const ErrorCode& ec) {
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
         ec == asio::error::connection_reset;
}

// The first entry of `nid` in a certificate subject, as UTF-8.
std::string NameEntry(X509_NAME* name, int nid) {
  int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

Result<std::shared_ptr<asio::ssl::context>> MakeSslContext(const TlsConfig& tls, bool server) {
  auto ctx = std::make_shared<asio::ssl::context>(server ? asio::ssl::context::tls_server
                                                         : asio::ssl::context::tls_client);
  if (!tls.enabled()) return ctx;
  // A client may go without a certificate (servers will refuse it, which tests rely on); a
  // server never does, and both need the CA.
  const bool has_cert = !tls.cert_file.empty() || !tls.key_file.empty();
  if (tls.ca_file.empty() || tls.cert_file.empty() != tls.key_file.empty() ||
      (server && !has_cert)) {
    return FailedPrecondition("TLS needs a certificate, a key and a CA file, got cert '" +
                              tls.cert_file + "', key '" + tls.key_file + "', CA '" + tls.ca_file +
                              "'; set all three, or none for plain TCP");
  }
  SSL_CTX* native = ctx->native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION) != 1) {
    return Internal("cannot restrict TLS to version 1.3: " + std::to_string(ERR_get_error()));
  }
  ErrorCode ec;
  if (has_cert) ctx->use_certificate_chain_file(tls.cert_file, ec);
  if (ec) {
    return FailedPrecondition("cannot load TLS certificate " + tls.cert_file + ": " + ec.message() +
                              "; check the path, or issue one with 'drfs cert issue'");
  }
  if (has_cert) ctx->use_private_key_file(tls.key_file, asio::ssl::context::pem, ec);
  if (ec && ec.category() == asio::error::get_ssl_category() &&
      ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH) {
    return FailedPrecondition("TLS key " + tls.key_file + " does not match certificate " +
                              tls.cert_file + "; use the .key issued with that .crt");
  }
  if (ec) {
    return FailedPrecondition("cannot load TLS key " + tls.key_file + ": " + ec.message() +
                              "; check the path and that it is readable");
  }
  if (has_cert && SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    return FailedPrecondition("TLS key " + tls.key_file + " does not match certificate " +
                              tls.cert_file + "; use the .key issued with that .crt");
  }
  ctx->load_verify_file(tls.ca_file, ec);
  if (ec) {
    return FailedPrecondition("cannot load TLS CA " + tls.ca_file + ": " + ec.message() +
                              "; point ca_file at the site CA's ca.crt");
  }
  ctx->set_verify_mode(server ? asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert
                              : asio::ssl::verify_peer,
                       ec);
  if (ec) return Internal("cannot set TLS verify mode: " + ec.message());
  return ctx;
}

// A TCP socket, with or without TLS on top. Only touched from its strand.
class Transport {
 public:
  Transport(const Strand& strand, asio::ssl::context& ctx, bool tls)
      : stream_(strand, ctx), tls_(tls) {}

  tcp::socket& socket() { return stream_.next_layer(); }
  SslStream& ssl() { return stream_; }
  bool tls() const { return tls_; }

  template <typename Buffers, typename Handler>
  void AsyncReadSome(const Buffers& b, Handler&& h) {
    if (tls_) {
      stream_.async_read_some(b, std::forward<Handler>(h));
    } else {
      socket().async_read_some(b, std::forward<Handler>(h));
    }
  }
  template <typename Buffers, typename Handler>
  void AsyncWrite(const Buffers& b, Handler&& h) {
    if (tls_) {
      asio::async_write(stream_, b, std::forward<Handler>(h));
    } else {
      asio::async_write(socket(), b, std::forward<Handler>(h));
    }
  }
  // Abortive close: pending operations complete with operation_aborted. No TLS close_notify,
  // which could wait on a peer that never answers.
  void Close() {
    ErrorCode ec;
    socket().shutdown(tcp::socket::shutdown_both, ec);
    socket().close(ec);
  }

 private:
  SslStream stream_;
  const bool tls_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Server

namespace detail {

struct ServerCore : std::enable_shared_from_this<ServerCore> {
  // Declared first so it is destroyed last: streams refer to it.
  std::shared_ptr<asio::ssl::context> ssl_ctx;
  bool tls = false;
  RpcHandler handler;
  ServerOptions options;
  asio::io_context io;
  Strand accept_strand{asio::make_strand(io)};
  tcp::acceptor acceptor{accept_strand};
  asio::steady_timer accept_retry{accept_strand};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  uint16_t port = 0;
  std::string listen_address;

  std::mutex mu;  // guards the fields below
  bool stopping = false;
  uint64_t next_conn_id = 0;
  std::map<uint64_t, std::weak_ptr<ServerConnection>> conns;

  void DoAccept();
  void Unregister(uint64_t id) {
    std::lock_guard<std::mutex> l(mu);
    conns.erase(id);
  }
};

class ServerConnection : public std::enable_shared_from_this<ServerConnection> {
 public:
  ServerConnection(std::shared_ptr<ServerCore> core, const Strand& strand)
      : core_(std::move(core)),
        strand_(strand),
        transport_(strand_, *core_->ssl_ctx, core_->tls),
        decoder_(core_->options.max_payload),
        handshake_timer_(strand_),
        peer_(std::make_shared<PeerInfo>()) {}

  tcp::socket& socket() { return transport_.socket(); }
  // Before Start(), from the accepting strand; Start() is posted after it.
  void set_id(uint64_t id) {
    id_ = id;
    peer_->connection_id = id;
  }

  // On the strand, once accepted and registered.
  void Start() {
    if (IsClosed()) return;  // Stop() got here first; arm no timer
    ErrorCode ec;
    auto ep = socket().remote_endpoint(ec);
    peer_->address = ec ? std::string("unknown peer") : FormatEndpoint(ep);
    socket().set_option(tcp::no_delay(true), ec);
    SetDeadPeerTimeout(socket().native_handle(), core_->options.dead_peer_timeout, peer_->address);
    if (!transport_.tls()) {
      {
        std::lock_guard<std::mutex> l(mu_);
        direct_fd_ = socket().native_handle();
      }
      DoRead();
      return;
    }
    peer_->tls = true;
    auto self = shared_from_this();
    handshake_timer_.expires_after(core_->options.handshake_timeout);
    handshake_timer_.async_wait([self](const ErrorCode& tec) {
      if (tec || self->handshake_done_ || self->IsClosed()) return;
      DRFS_LOG(Warn) << "refused TLS connection from " << self->peer_->address
                     << ": no handshake within " << Ms(self->core_->options.handshake_timeout);
      self->CloseNow();
    });
    transport_.ssl().async_handshake(asio::ssl::stream_base::server,
                                     [self](const ErrorCode& hec) { self->OnHandshake(hec); });
  }

  // From any thread.
  void Close() {
    asio::post(strand_, [self = shared_from_this()] { self->CloseNow(); });
  }

  // From any thread.
  void Send(uint64_t id, uint16_t op, std::string payload) {
    if (payload.size() > std::numeric_limits<uint32_t>::max()) {
      DRFS_LOG(Error) << "dropping reply to request " << id << " from " << peer_->address
                      << ": payload of " << payload.size() << " bytes does not fit a frame";
      return;
    }
    std::string bytes = EncodeFrame(Frame{kFrameReply, op, id, std::move(payload)});
    bool start = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (closed_) return;
      if (!write_scheduled_ && direct_fd_ >= 0) {
        // Nothing queued or being written: write from this thread, sparing the io thread a
        // wake-up. Whatever the socket does not take at once (or an error, which the
        // strand's write then reports) goes the usual way.
        size_t done = 0;
        while (done < bytes.size()) {
          ssize_t n = ::send(direct_fd_, bytes.data() + done, bytes.size() - done,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
          if (n > 0) {
            done += static_cast<size_t>(n);
          } else if (n < 0 && errno == EINTR) {
            continue;
          } else {
            break;
          }
        }
        if (done == bytes.size()) return;
        bytes.erase(0, done);
      }
      queue_.push_back(std::move(bytes));
      start = !write_scheduled_;
      write_scheduled_ = true;
    }
    if (start) asio::post(strand_, [self = shared_from_this()] { self->DoWrite(); });
  }

 private:
  bool IsClosed() {
    std::lock_guard<std::mutex> l(mu_);
    return closed_;
  }

  void CloseNow() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (closed_) return;
      closed_ = true;
      queue_.clear();
    }
    handshake_timer_.cancel();
    transport_.Close();
    core_->Unregister(id_);
    // On the strand, as every handler call of this connection: none runs after this.
    if (core_->options.on_close) core_->options.on_close(*peer_);
  }

  void OnHandshake(const ErrorCode& ec) {
    handshake_done_ = true;
    handshake_timer_.cancel();
    if (IsClosed()) return;
    if (ec) {
      DRFS_LOG(Warn) << "refused TLS connection from " << peer_->address << ": "
                     << TlsReason(ec, transport_.ssl().native_handle())
                     << "; peers need TLS 1.3 and a certificate from this site's CA "
                        "('drfs cert issue')";
      CloseNow();
      return;
    }
    X509* cert = SSL_get1_peer_certificate(transport_.ssl().native_handle());
    if (cert != nullptr) {
      X509_NAME* subject = X509_get_subject_name(cert);
      peer_->common_name = NameEntry(subject, NID_commonName);
      peer_->role = NameEntry(subject, NID_organizationalUnitName);
      X509_free(cert);
    }
    DoRead();
  }

  void DoRead() {
    auto self = shared_from_this();
    transport_.AsyncReadSome(asio::buffer(buf_),
                             [self](const ErrorCode& ec, size_t n) { self->OnRead(ec, n); });
  }

  void OnRead(const ErrorCode& ec, size_t n) {
    if (IsClosed()) return;
    if (ec) {
      if (decoder_.mid_frame()) {
        DRFS_LOG(Warn) << "connection from " << peer_->address << " closed mid-frame ("
                       << decoder_.partial_bytes()
                       << " bytes of an unfinished frame): " << ec.message();
      } else if (!IsEof(ec) && ec != asio::error::operation_aborted) {
        DRFS_LOG(Warn) << "connection from " << peer_->address << " failed: " << ec.message();
      }
      CloseNow();
      return;
    }
    frames_.clear();
    Status s = decoder_.Feed(std::string_view(buf_.data(), n), &frames_);
    // Frames completed before a bad one are still served.
    for (Frame& f : frames_) {
      if (f.kind != kFrameRequest) {
        s = InvalidArgument("reply frame (id " + std::to_string(f.id) + ") sent to a server");
        break;
      }
      const uint64_t id = f.id;
      core_->handler(peer_, std::move(f), Responder(weak_from_this(), id));
    }
    frames_.clear();
    if (!s.ok()) {
      DRFS_LOG(Warn) << "closing connection from " << peer_->address << ": " << s.message();
      CloseNow();
      return;
    }
    DoRead();
  }

  void DoWrite() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (closed_) return;
      writing_.swap(queue_);
      if (writing_.empty()) {
        write_scheduled_ = false;
        return;
      }
    }
    bufs_.clear();
    for (const auto& w : writing_)
      bufs_.push_back(asio::buffer(w));
    auto self = shared_from_this();
    transport_.AsyncWrite(bufs_, [self](const ErrorCode& ec, size_t) {
      self->writing_.clear();
      if (ec) {
        if (!self->IsClosed() && !IsEof(ec) && ec != asio::error::broken_pipe) {
          DRFS_LOG(Warn) << "writing to " << self->peer_->address << " failed: " << ec.message();
        }
        self->CloseNow();
        return;
      }
      self->DoWrite();
    });
  }

  std::shared_ptr<ServerCore> core_;  // first: outlives the stream below
  Strand strand_;
  Transport transport_;
  FrameDecoder decoder_;
  asio::steady_timer handshake_timer_;
  std::shared_ptr<PeerInfo> peer_;
  uint64_t id_ = 0;
  bool handshake_done_ = false;  // strand only
  std::array<char, kReadChunk> buf_{};
  std::vector<Frame> frames_;
  std::vector<std::string> writing_;  // strand only: the batch being written
  std::vector<asio::const_buffer> bufs_;

  std::mutex mu_;
  bool closed_ = false;
  bool write_scheduled_ = false;  // a DoWrite is posted or a write is under way
  // Plain TCP: the socket, which Send() may write to directly while no write is scheduled.
  // Only used under mu_ and while !closed_, and CloseNow() sets closed_ before closing it.
  int direct_fd_ = -1;
  std::vector<std::string> queue_;
};

void ServerCore::DoAccept() {
  auto conn = std::make_shared<ServerConnection>(shared_from_this(), asio::make_strand(io));
  acceptor.async_accept(conn->socket(), [self = shared_from_this(), conn](const ErrorCode& ec) {
    if (ec == asio::error::operation_aborted) return;
    {
      std::lock_guard<std::mutex> l(self->mu);
      if (self->stopping) return;
      if (!ec) {
        conn->set_id(++self->next_conn_id);
        self->conns[self->next_conn_id] = conn;
      }
    }
    if (ec) {
      // Out of descriptors and the like: wait a little instead of spinning on accept.
      DRFS_LOG(Warn) << "accepting on " << self->listen_address << " failed: " << ec.message()
                     << "; retrying in 100 ms";
      self->accept_retry.expires_after(std::chrono::milliseconds(100));
      self->accept_retry.async_wait([self](const ErrorCode& tec) {
        if (!tec) self->DoAccept();
      });
      return;
    }
    asio::post(conn->socket().get_executor(), [conn] { conn->Start(); });
    self->DoAccept();
  });
}

}  // namespace detail

void Responder::Send(uint16_t op, std::string payload) const {
  if (auto conn = conn_.lock()) conn->Send(id_, op, std::move(payload));
}

RpcServer::RpcServer() = default;
RpcServer::~RpcServer() {
  Stop();
}

Status RpcServer::Start(const std::string& host, uint16_t port, const TlsConfig& tls,
                        RpcHandler handler, const ServerOptions& options) {
  if (core_) return FailedPrecondition("RpcServer::Start called twice; create a new server");
  if (!handler) return InvalidArgument("RpcServer::Start needs a handler");
  const std::string where = HostPort(host, port);
  DRFS_ASSIGN_OR_RETURN(auto ctx, MakeSslContext(tls, /*server=*/true));
  auto core = std::make_shared<detail::ServerCore>();
  core->ssl_ctx = std::move(ctx);
  core->tls = tls.enabled();
  core->handler = std::move(handler);
  core->options = options;
  if (core->options.io_threads < 1) core->options.io_threads = 1;

  ErrorCode ec;
  tcp::resolver resolver(core->io);
  auto results = resolver.resolve(host, std::to_string(port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return Unavailable("cannot resolve listen address " + where + ": " +
                       (ec ? ec.message() : std::string("no addresses")) + "; check the host name");
  }
  const tcp::endpoint ep = results.begin()->endpoint();
  auto& acc = core->acceptor;
  if (acc.open(ep.protocol(), ec); ec) {
    return Unavailable("cannot open a socket for " + where + ": " + ec.message());
  }
  acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (acc.bind(ep, ec); ec) {
    return Unavailable("cannot listen on " + where + ": " + ec.message() +
                       "; is another process using the port?");
  }
  if (acc.listen(asio::socket_base::max_listen_connections, ec); ec) {
    return Unavailable("cannot listen on " + where + ": " + ec.message());
  }
  core->port = acc.local_endpoint(ec).port();
  core->listen_address = HostPort(host, core->port);
  core->work.emplace(core->io.get_executor());
  core->DoAccept();
  for (int i = 0; i < core->options.io_threads; ++i) {
    core->threads.emplace_back([c = core.get()] {
      pthread_setname_np(pthread_self(), "rpc-server-io");
      c->io.run();
    });
  }
  core_ = std::move(core);
  DRFS_LOG(Debug) << "RPC server listening on " << core_->listen_address
                  << (core_->tls ? " (TLS)" : "");
  return Status::Ok();
}

void RpcServer::Stop() {
  if (!core_) return;
  auto& core = *core_;
  std::vector<std::shared_ptr<detail::ServerConnection>> open;
  {
    std::lock_guard<std::mutex> l(core.mu);
    if (core.stopping && core.threads.empty()) return;
    core.stopping = true;
    for (auto& [id, weak] : core.conns) {
      if (auto c = weak.lock()) open.push_back(std::move(c));
    }
  }
  asio::post(core.accept_strand, [c = core_] {
    ErrorCode ec;
    c->acceptor.close(ec);
    c->accept_retry.cancel();
  });
  for (auto& c : open)
    c->Close();
  open.clear();
  core.work.reset();
  for (auto& t : core.threads)
    t.join();
  core.threads.clear();
}

uint16_t RpcServer::port() const {
  return core_ ? core_->port : 0;
}

size_t RpcServer::connection_count() const {
  if (!core_) return 0;
  std::lock_guard<std::mutex> l(core_->mu);
  return core_->conns.size();
}

// ---------------------------------------------------------------------------------------------
// Client

namespace detail {

struct ClientConn {
  ClientConn(const Strand& strand, asio::ssl::context& ctx, bool tls, size_t max_payload)
      : transport(strand, ctx, tls),
        resolver(strand),
        connect_timer(strand),
        decoder(max_payload) {}

  Transport transport;
  tcp::resolver resolver;
  asio::steady_timer connect_timer;
  FrameDecoder decoder;
  bool timed_out = false;
  bool got_reply = false;
  bool writing = false;
  std::vector<std::string> queue;  // guarded by ClientCore::mu, as `writing`
  std::vector<std::string> batch;
  std::vector<asio::const_buffer> bufs;
  std::array<char, kReadChunk> buf{};
  std::vector<Frame> frames;
};

struct ClientCore {
  std::string host;
  uint16_t port = 0;
  std::string target;
  TlsConfig tls;
  ClientOptions options;
  std::shared_ptr<asio::ssl::context> ssl_ctx;  // before io: outlives every stream
  asio::io_context io;
  Strand strand{asio::make_strand(io)};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;

  // Guards `calls`, `next_id`, `direct`, `deadline_armed`, and the queue and writing flag of the
  // connection. Never held while a callback runs.
  std::mutex mu;
  // Plain TCP, connected: the connection callers may write to directly (under mu, when nothing
  // is queued or being written). Cleared under mu before its socket is closed.
  std::shared_ptr<ClientConn> direct;

  // Everything below is touched only on `strand` (or under mu, where said).
  enum class State { kIdle, kConnecting, kConnected };
  struct Pending {
    uint16_t op = 0;
    RpcClient::Callback done;
    std::string bytes;  // the encoded request until it is handed to a connection
    Clock::time_point deadline;
  };
  State state = State::kIdle;
  std::shared_ptr<ClientConn> conn;
  uint64_t next_id = 0;
  std::unordered_map<uint64_t, Pending> calls;
  std::vector<uint64_t> unsent;
  asio::steady_timer reconnect_timer{strand};
  // One timer for every call's deadline, set to the earliest (calls all get the same timeout, so
  // a new call's deadline is never earlier than one already set): no timer per call.
  asio::steady_timer deadline_timer{strand};
  bool deadline_armed = false;
  std::chrono::milliseconds backoff{0};
  Clock::time_point next_attempt{};
  bool shutting_down = false;
  std::atomic<bool> lost{false};  // reconnect = false and the connection went away
  std::function<void(const Status&)> on_connect_result;  // the first Connect() waits on it

  void StartCall(uint16_t op, std::string payload, RpcClient::Callback done);
  // From the caller's thread: registers and writes the call directly if the connection allows
  // it right now; false (nothing done) otherwise.
  bool TryDirectCall(uint16_t op, std::string& payload, RpcClient::Callback& done);
  void ArmDeadline(Clock::time_point at);
  void OnDeadline();
  void ScheduleConnect();
  void DoConnect();
  void ConnectFailed(const std::shared_ptr<ClientConn>& c, const std::string& reason);
  void Connected(const std::shared_ptr<ClientConn>& c);
  void ConnectionLost(const std::shared_ptr<ClientConn>& c, const std::string& reason);
  void StartWrite(const std::shared_ptr<ClientConn>& c);
  void DoRead(const std::shared_ptr<ClientConn>& c);
  void OnRead(const std::shared_ptr<ClientConn>& c, const ErrorCode& ec, size_t n);
  void FailAll(std::unordered_map<uint64_t, Pending> failed, const Status& s);
  void Shutdown();
};

void ClientCore::StartCall(uint16_t op, std::string payload, RpcClient::Callback done) {
  if (shutting_down) {
    done(Status(Code::kCancelled, "RPC client to " + target + " is shutting down; op " +
                                      std::to_string(op) + " was not sent"));
    return;
  }
  if (lost) {
    done(Unavailable("connection to " + target + " was lost; this client does not reconnect"));
    return;
  }
  if (payload.size() > std::numeric_limits<uint32_t>::max()) {
    done(InvalidArgument("request payload of " + std::to_string(payload.size()) + " bytes for " +
                         target + " does not fit a frame; split it"));
    return;
  }
  std::unique_lock<std::mutex> l(mu);
  const uint64_t id = ++next_id;
  Pending p;
  p.op = op;
  p.done = std::move(done);
  p.bytes = EncodeFrame(Frame{kFrameRequest, op, id, std::move(payload)});
  p.deadline = Clock::now() + options.request_timeout;
  if (!deadline_armed) ArmDeadline(p.deadline);
  auto& slot = calls[id] = std::move(p);
  if (state == State::kConnected) {
    conn->queue.push_back(std::move(slot.bytes));
    l.unlock();
    StartWrite(conn);
    return;
  }
  l.unlock();
  unsent.push_back(id);
  if (state == State::kIdle) ScheduleConnect();
}

bool ClientCore::TryDirectCall(uint16_t op, std::string& payload, RpcClient::Callback& done) {
  if (payload.size() > std::numeric_limits<uint32_t>::max()) return false;
  std::lock_guard<std::mutex> l(mu);
  // Without an armed deadline timer (which only the strand may arm) or with writes pending, the
  // call takes the strand's way.
  if (!direct || direct->writing || !direct->queue.empty() || !deadline_armed) return false;
  const uint64_t id = ++next_id;
  std::string bytes = EncodeFrame(Frame{kFrameRequest, op, id, std::move(payload)});
  size_t sent = 0;
  const int fd = direct->transport.socket().native_handle();
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // full, or an error the strand's write will meet and report
    }
  }
  Pending p;
  p.op = op;
  p.done = std::move(done);
  p.deadline = Clock::now() + options.request_timeout;
  calls[id] = std::move(p);
  if (sent < bytes.size()) {
    bytes.erase(0, sent);
    direct->queue.push_back(std::move(bytes));
    asio::post(strand, [this, c = direct] {
      if (c == conn) StartWrite(c);
    });
  }
  return true;
}

void ClientCore::ArmDeadline(Clock::time_point at) {
  deadline_armed = true;
  deadline_timer.expires_at(at);
  deadline_timer.async_wait([this](const ErrorCode& ec) {
    if (ec) return;  // cancelled: Shutdown()
    OnDeadline();
  });
}

void ClientCore::OnDeadline() {
  std::unique_lock<std::mutex> l(mu);
  deadline_armed = false;
  const Clock::time_point now = Clock::now();
  std::vector<Pending> expired;
  std::optional<Clock::time_point> next;
  for (auto it = calls.begin(); it != calls.end();) {
    if (it->second.deadline <= now) {
      expired.push_back(std::move(it->second));
      it = calls.erase(it);  // an id left in `unsent` is skipped when its call is gone
    } else {
      if (!next || it->second.deadline < *next) next = it->second.deadline;
      ++it;
    }
  }
  if (next && !shutting_down) ArmDeadline(*next);
  l.unlock();
  for (Pending& p : expired) {
    p.done(DeadlineExceeded("call to " + target + " (op " + std::to_string(p.op) +
                            ") got no reply within " + Ms(options.request_timeout) +
                            "; the server may be overloaded or stuck, and the request may "
                            "still have run; retry if it is idempotent"));
  }
}

void ClientCore::ScheduleConnect() {
  state = State::kConnecting;
  reconnect_timer.expires_at(std::max(Clock::now(), next_attempt));
  reconnect_timer.async_wait([this](const ErrorCode& ec) {
    if (ec || shutting_down) return;
    DoConnect();
  });
}

void ClientCore::DoConnect() {
  auto c = std::make_shared<ClientConn>(strand, *ssl_ctx, tls.enabled(), options.max_payload);
  conn = c;
  c->connect_timer.expires_after(options.connect_timeout);
  c->connect_timer.async_wait([this, c](const ErrorCode& ec) {
    if (ec || c != conn || state != State::kConnecting) return;
    c->timed_out = true;
    c->resolver.cancel();
    c->transport.Close();
  });
  c->resolver.async_resolve(
      host, std::to_string(port), tcp::resolver::numeric_service,
      [this, c](const ErrorCode& ec, tcp::resolver::results_type results) {
        if (c != conn) return;
        if (ec) {
          ConnectFailed(c, c->timed_out ? "timed out after " + Ms(options.connect_timeout)
                                        : "cannot resolve host: " + ec.message());
          return;
        }
        asio::async_connect(
            c->transport.socket(), results, [this, c](const ErrorCode& cec, const tcp::endpoint&) {
              if (c != conn) return;
              if (cec) {
                ConnectFailed(c, c->timed_out ? "timed out after " + Ms(options.connect_timeout)
                                              : cec.message());
                return;
              }
              ErrorCode ignored;
              c->transport.socket().set_option(tcp::no_delay(true), ignored);
              SetDeadPeerTimeout(c->transport.socket().native_handle(), options.dead_peer_timeout,
                                 HostPort(host, port));
              if (!c->transport.tls()) {
                Connected(c);
                return;
              }
              SSL* ssl = c->transport.ssl().native_handle();
              if (tls.verify_server_name) {
                ErrorCode aec;
                asio::ip::make_address(host, aec);
                if (!aec) {
                  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
                } else {
                  SSL_set1_host(ssl, host.c_str());
                }
              }
              c->transport.ssl().async_handshake(
                  asio::ssl::stream_base::client, [this, c](const ErrorCode& hec) {
                    if (c != conn) return;
                    if (hec) {
                      ConnectFailed(
                          c, c->timed_out
                                 ? "TLS handshake timed out after " + Ms(options.connect_timeout)
                                 : "TLS handshake failed: " +
                                       TlsReason(hec, c->transport.ssl().native_handle()));
                      return;
                    }
                    Connected(c);
                  });
            });
      });
}

void ClientCore::ConnectFailed(const std::shared_ptr<ClientConn>& c, const std::string& reason) {
  c->connect_timer.cancel();
  c->transport.Close();
  conn.reset();
  state = State::kIdle;
  if (backoff.count() == 0) backoff = options.reconnect_backoff_initial;
  next_attempt = Clock::now() + backoff;
  Status s = Unavailable("cannot connect to " + target + ": " + reason +
                         "; retry (next attempt in " + Ms(backoff) + ")");
  backoff = std::min(backoff * 2, options.reconnect_backoff_max);
  DRFS_LOG(Debug) << s.message();
  std::unordered_map<uint64_t, Pending> failed;
  {
    std::lock_guard<std::mutex> l(mu);
    for (uint64_t id : unsent) {
      auto it = calls.find(id);
      if (it == calls.end()) continue;
      failed.emplace(id, std::move(it->second));
      calls.erase(it);
    }
  }
  unsent.clear();
  if (on_connect_result) std::exchange(on_connect_result, nullptr)(s);
  FailAll(std::move(failed), s);
}

void ClientCore::Connected(const std::shared_ptr<ClientConn>& c) {
  c->connect_timer.cancel();
  state = State::kConnected;
  if (on_connect_result) std::exchange(on_connect_result, nullptr)(Status::Ok());
  {
    std::lock_guard<std::mutex> l(mu);
    if (options.handshake_op != 0) {
      // Queued ahead of every waiting call, and direct calls wait until the queue is written:
      // the server sees it first on this connection.
      const uint64_t id = ++next_id;
      Pending p;
      p.op = options.handshake_op;
      p.done = options.on_handshake_reply ? options.on_handshake_reply : [](Result<Frame>) {};
      p.deadline = Clock::now() + options.request_timeout;
      if (!deadline_armed) ArmDeadline(p.deadline);
      calls[id] = std::move(p);
      c->queue.push_back(
          EncodeFrame(Frame{kFrameRequest, options.handshake_op, id, options.handshake_payload}));
    }
    for (uint64_t id : unsent) {
      auto it = calls.find(id);
      if (it != calls.end()) c->queue.push_back(std::move(it->second.bytes));
    }
    if (!c->transport.tls()) direct = c;
  }
  unsent.clear();
  StartWrite(c);
  DoRead(c);
}

void ClientCore::ConnectionLost(const std::shared_ptr<ClientConn>& c, const std::string& reason) {
  if (c != conn) return;
  std::unordered_map<uint64_t, Pending> failed;
  {
    // No caller writes to the socket once `direct` is cleared, so it may be closed.
    std::lock_guard<std::mutex> l(mu);
    direct.reset();
    failed = std::exchange(calls, {});
  }
  c->transport.Close();
  conn.reset();
  state = State::kIdle;
  if (!options.reconnect) lost = true;
  if (c->got_reply) {
    // The connection worked: the next call redials at once.
    backoff = std::chrono::milliseconds(0);
    next_attempt = Clock::now();
  } else {
    // Dropped before any reply (a refused client certificate shows up here under TLS 1.3):
    // back off as for a failed connect.
    if (backoff.count() == 0) backoff = options.reconnect_backoff_initial;
    next_attempt = Clock::now() + backoff;
    backoff = std::min(backoff * 2, options.reconnect_backoff_max);
  }
  Status s = Unavailable("connection to " + target + " lost: " + reason + "; retry");
  DRFS_LOG(Info) << s.message();
  FailAll(std::move(failed), s);
}

void ClientCore::FailAll(std::unordered_map<uint64_t, Pending> failed, const Status& s) {
  for (auto& [id, p] : failed)
    p.done(s);
}

void ClientCore::StartWrite(const std::shared_ptr<ClientConn>& c) {
  {
    std::lock_guard<std::mutex> l(mu);
    if (c->writing || c->queue.empty()) return;
    c->writing = true;
    c->batch.swap(c->queue);
  }
  c->bufs.clear();
  for (const auto& b : c->batch)
    c->bufs.push_back(asio::buffer(b));
  c->transport.AsyncWrite(c->bufs, [this, c](const ErrorCode& ec, size_t) {
    {
      std::lock_guard<std::mutex> l(mu);
      c->writing = false;
    }
    c->batch.clear();
    if (c != conn) return;
    if (ec) {
      ConnectionLost(c, ec.message());
      return;
    }
    StartWrite(c);
  });
}

void ClientCore::DoRead(const std::shared_ptr<ClientConn>& c) {
  c->transport.AsyncReadSome(asio::buffer(c->buf),
                             [this, c](const ErrorCode& ec, size_t n) { OnRead(c, ec, n); });
}

void ClientCore::OnRead(const std::shared_ptr<ClientConn>& c, const ErrorCode& ec, size_t n) {
  if (c != conn) return;
  if (ec) {
    std::string why = IsEof(ec) ? "closed by the server" : ec.message();
    if (c->transport.tls() && !IsEof(ec)) why = TlsReason(ec, c->transport.ssl().native_handle());
    ConnectionLost(c, why);
    return;
  }
  c->frames.clear();
  Status s = c->decoder.Feed(std::string_view(c->buf.data(), n), &c->frames);
  for (Frame& f : c->frames) {
    if (f.kind != kFrameReply) {
      s = InvalidArgument("request frame (id " + std::to_string(f.id) + ") sent to a client");
      break;
    }
    Pending p;
    {
      std::lock_guard<std::mutex> l(mu);
      auto it = calls.find(f.id);
      if (it == calls.end()) continue;  // timed out already
      p = std::move(it->second);
      calls.erase(it);
    }
    c->got_reply = true;
    p.done(std::move(f));
    if (c != conn) return;  // a callback cannot close us, but stay safe
  }
  c->frames.clear();
  if (!s.ok()) {
    DRFS_LOG(Warn) << "bad frame from " << target << ": " << s.message();
    ConnectionLost(c, "bad frame from the server: " + s.message());
    return;
  }
  DoRead(c);
}

void ClientCore::Shutdown() {
  shutting_down = true;
  reconnect_timer.cancel();
  deadline_timer.cancel();
  std::unordered_map<uint64_t, Pending> failed;
  {
    std::lock_guard<std::mutex> l(mu);
    direct.reset();
    failed = std::exchange(calls, {});
  }
  if (conn) {
    conn->connect_timer.cancel();
    conn->resolver.cancel();
    conn->transport.Close();
    conn.reset();
  }
  state = State::kIdle;
  unsent.clear();
  Status s(Code::kCancelled, "RPC client to " + target +
                                 " was closed before the reply arrived; the request may have run");
  if (on_connect_result) std::exchange(on_connect_result, nullptr)(s);
  FailAll(std::move(failed), s);
}

}  // namespace detail

RpcClient::RpcClient(std::unique_ptr<detail::ClientCore> core) : core_(std::move(core)) {}

RpcClient::~RpcClient() {
  if (!core_) return;
  asio::post(core_->strand, [c = core_.get()] { c->Shutdown(); });
  core_->work.reset();
  for (auto& t : core_->threads)
    t.join();
}

Result<std::unique_ptr<RpcClient>> RpcClient::Connect(const std::string& host, uint16_t port,
                                                      const TlsConfig& tls,
                                                      const ClientOptions& options) {
  DRFS_ASSIGN_OR_RETURN(auto ctx, MakeSslContext(tls, /*server=*/false));
  auto core = std::make_unique<detail::ClientCore>();
  core->host = host;
  core->port = port;
  core->target = HostPort(host, port);
  core->tls = tls;
  core->options = options;
  if (core->options.io_threads < 1) core->options.io_threads = 1;
  core->ssl_ctx = std::move(ctx);
  core->work.emplace(core->io.get_executor());
  for (int i = 0; i < core->options.io_threads; ++i) {
    core->threads.emplace_back([c = core.get()] {
      pthread_setname_np(pthread_self(), "rpc-client-io");
      c->io.run();
    });
  }
  std::unique_ptr<RpcClient> client(new RpcClient(std::move(core)));
  auto first = std::make_shared<std::promise<Status>>();
  auto result = first->get_future();
  asio::post(client->core_->strand, [c = client->core_.get(), first] {
    c->on_connect_result = [first](const Status& s) { first->set_value(s); };
    c->ScheduleConnect();
  });
  Status s = result.get();
  if (!s.ok()) return s;
  return client;
}

void RpcClient::Call(uint16_t op, std::string payload, Callback done) {
  if (core_->TryDirectCall(op, payload, done)) return;
  asio::post(core_->strand,
             [c = core_.get(), op, payload = std::move(payload), done = std::move(done)]() mutable {
               c->StartCall(op, std::move(payload), std::move(done));
             });
}

std::future<Result<Frame>> RpcClient::Call(uint16_t op, std::string payload) {
  auto promise = std::make_shared<std::promise<Result<Frame>>>();
  auto future = promise->get_future();
  Call(op, std::move(payload), [promise](Result<Frame> r) { promise->set_value(std::move(r)); });
  return future;
}

const std::string& RpcClient::target() const {
  return core_->target;
}

bool RpcClient::lost() const { return core_->lost; }

}  // namespace drfs
