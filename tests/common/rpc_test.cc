#include "common/rpc.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/cert.h"
#include "common/coding.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "tests/common/test_util.h"

namespace drfs {
namespace {

using drfs::testing::TempDir;
using namespace std::chrono_literals;

// Hang guard for waits that normally end at once. Never a pass/fail timing assertion.
constexpr auto kHangGuard = 60s;

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Records what the handler saw and echoes requests back (same op, same payload). Requests with
// op kHold are kept unanswered until the test releases them.
class EchoService {
 public:
  static constexpr uint16_t kHold = 9;

  RpcHandler Handler() {
    return [this](std::shared_ptr<const PeerInfo> peer, Frame req, Responder reply) {
      {
        std::lock_guard<std::mutex> l(mu_);
        ++calls_;
        last_peer_ = std::move(peer);
        if (req.op == kHold) {
          held_.push_back(reply);
          cv_.notify_all();
          return;
        }
      }
      reply.Send(req.op, std::move(req.payload));
    };
  }
  int calls() {
    std::lock_guard<std::mutex> l(mu_);
    return calls_;
  }
  std::shared_ptr<const PeerInfo> last_peer() {
    std::lock_guard<std::mutex> l(mu_);
    return last_peer_;
  }
  bool WaitHeld(size_t n) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, kHangGuard, [&] { return held_.size() >= n; });
  }
  std::vector<Responder> TakeHeld() {
    std::lock_guard<std::mutex> l(mu_);
    return std::exchange(held_, {});
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int calls_ = 0;
  std::shared_ptr<const PeerInfo> last_peer_;
  std::vector<Responder> held_;
};

// Captures log lines in a file for the test to read back.
class LogCapture {
 public:
  LogCapture() : path_(dir_.Sub("test.log")) { EXPECT_OK(SetLogFile(path_)); }
  std::string Text() const { return drfs::testing::ReadFile(path_); }
  // Waits until some line holds every one of `parts`; returns that line ("" on hang guard).
  std::string WaitForLine(const std::vector<std::string>& parts) const {
    auto deadline = std::chrono::steady_clock::now() + kHangGuard;
    while (std::chrono::steady_clock::now() < deadline) {
      std::string text = Text();
      size_t pos = 0;
      while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        std::string line = text.substr(pos, end - pos);
        bool all = std::all_of(parts.begin(), parts.end(),
                               [&](const std::string& p) { return Contains(line, p); });
        if (all) return line;
        pos = end + 1;
      }
      std::this_thread::sleep_for(10ms);
    }
    return "";
  }

 private:
  TempDir dir_;
  std::string path_;
};

ClientOptions FastClientOptions() {
  ClientOptions o;
  o.connect_timeout = 10s;
  o.request_timeout = kHangGuard;
  o.reconnect_backoff_initial = 10ms;
  o.reconnect_backoff_max = 100ms;
  return o;
}

std::unique_ptr<RpcClient> MustConnect(uint16_t port, const TlsConfig& tls = {},
                                       const ClientOptions& o = FastClientOptions()) {
  auto c = RpcClient::Connect("127.0.0.1", port, tls, o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(*c) : nullptr;
}

Result<Frame> CallSync(RpcClient& c, uint16_t op, std::string payload) {
  auto f = c.Call(op, std::move(payload));
  if (f.wait_for(kHangGuard) != std::future_status::ready) {
    return Internal("hang guard: no callback");
  }
  return f.get();
}

// A plain TCP connection to 127.0.0.1:port, with a receive timeout as a hang guard.
class RawSocket {
 public:
  explicit RawSocket(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    timeval tv{static_cast<time_t>(kHangGuard.count()), 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  // "127.0.0.1:PORT" as the server sees us.
  std::string LocalAddress() const {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    return "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  }
  void Write(const std::string& data) {
    EXPECT_EQ(::send(fd_, data.data(), data.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(data.size()));
  }
  // True when the server closed the connection (EOF or reset) rather than the guard expiring.
  bool ServerClosed() {
    char buf[256];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }
  void Close() {
    ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// --- plain TCP --------------------------------------------------------------------------------

TEST(Rpc, EchoOverLoopback) {
  EchoService svc;
  RpcServer server;
  ASSERT_OK(server.Start("127.0.0.1", 0, {}, svc.Handler()));
  ASSERT_NE(server.port(), 0);
  auto client = MustConnect(server.port());
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->target(), "127.0.0.1:" + std::to_string(server.port()));

  for (uint16_t op : {1, 2, 65535}) {
    auto r = CallSync(*client, op, "hello " + std::to_string(op));
    ASSERT_OK(r);
    EXPECT_EQ(r->kind, kFrameReply);
    EXPECT_EQ(r->op, op);
    EXPECT_EQ(r->payload, "hello " + std::to_string(op));
  }
  auto empty = CallSync(*client, 3, "");
  ASSERT_OK(empty);
  EXPECT_EQ(empty->payload, "");
  std::string big(3 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4096)
    big[i] = static_cast<char>(i / 4096);
  auto r = CallSync(*client, 4, big);
  ASSERT_OK(r);
  EXPECT_EQ(r->payload, big);

  auto peer = svc.last_peer();
  ASSERT_NE(peer, nullptr);
  EXPECT_FALSE(peer->tls);
  EXPECT_TRUE(peer->address.rfind("127.0.0.1:", 0) == 0) << peer->address;
  EXPECT_EQ(peer->role, "");
  EXPECT_EQ(server.connection_count(), 1u);
}

TEST(Rpc, ThousandCallsInFlightFromFourThreadsAnsweredOutOfOrder) {
  constexpr int kThreads = 4, kPerThread = 250, kTotal = kThreads * kPerThread;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<Frame, Responder>> pending;
  RpcServer server;
  ASSERT_OK(server.Start("127.0.0.1", 0, {},
                         [&](std::shared_ptr<const PeerInfo>, Frame req, Responder reply) {
                           std::lock_guard<std::mutex> l(mu);
                           pending.emplace_back(std::move(req), reply);
                           cv.notify_all();
                         }));
  // The worker answers only once every request has arrived, so all 1000 are in flight at once,
  // and answers them shuffled, from its own thread.
  std::thread worker([&] {
    std::unique_lock<std::mutex> l(mu);
    if (!cv.wait_for(l, kHangGuard, [&] { return pending.size() == kTotal; })) return;
    auto batch = std::move(pending);
    l.unlock();
    std::shuffle(batch.begin(), batch.end(), std::mt19937(42));
    for (auto& [req, reply] : batch)
      reply.Send(static_cast<uint16_t>(req.op + 1), "re:" + req.payload);
  });

  auto client = MustConnect(server.port());
  ASSERT_NE(client, nullptr);
  std::vector<std::thread> callers;
  std::atomic<int> ok{0};
  std::vector<std::string> failures(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&, t] {
      std::vector<std::pair<std::string, std::future<Result<Frame>>>> calls;
      for (int i = 0; i < kPerThread; ++i) {
        std::string payload = std::to_string(t) + "/" + std::to_string(i);
        calls.emplace_back(payload, client->Call(static_cast<uint16_t>(t), payload));
      }
      for (auto& [payload, f] : calls) {
        if (f.wait_for(kHangGuard) != std::future_status::ready) {
          failures[t] = "hang guard";
          return;
        }
        Result<Frame> r = f.get();
        if (!r.ok()) {
          failures[t] = r.status().ToString();
        } else if (r->payload != "re:" + payload || r->op != t + 1) {
          failures[t] = "reply " + r->payload + " for request " + payload;
        } else {
          ++ok;
        }
      }
    });
  }
  for (auto& c : callers)
    c.join();
  worker.join();
  for (const auto& f : failures)
    EXPECT_EQ(f, "");
  EXPECT_EQ(ok.load(), kTotal);
  EXPECT_EQ(server.connection_count(), 1u);  // all multiplexed on one connection
}

// Requests and replies are written straight from the calling thread while the socket is idle,
// and through the io thread for whatever the socket does not take at once: large frames from
// several threads at a time must still arrive whole and unmixed, both ways.
TEST(Rpc, LargeCallsFromSeveralThreadsArriveWholeBothWays) {
  RpcServer server;
  std::vector<std::thread> answerers;
  std::mutex mu;
  ASSERT_OK(server.Start("127.0.0.1", 0, {},
                         [&](std::shared_ptr<const PeerInfo>, Frame req, Responder reply) {
                           std::lock_guard<std::mutex> l(mu);
                           answerers.emplace_back([req = std::move(req), reply]() mutable {
                             std::reverse(req.payload.begin(), req.payload.end());
                             reply.Send(req.op, std::move(req.payload));
                           });
                         }));
  auto client = MustConnect(server.port());
  ASSERT_NE(client, nullptr);
  constexpr int kThreads = 4, kPerThread = 6;
  std::vector<std::string> failures(kThreads);
  std::vector<std::thread> callers;
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&, t] {
      std::vector<std::pair<std::string, std::future<Result<Frame>>>> calls;
      for (int i = 0; i < kPerThread; ++i) {
        std::string payload((1 + (i % 3)) << 20, static_cast<char>('a' + t));
        for (size_t k = 0; k < payload.size(); k += 1000) payload[k] = static_cast<char>(i + k);
        auto f = client->Call(static_cast<uint16_t>(t), payload);
        std::reverse(payload.begin(), payload.end());
        calls.emplace_back(std::move(payload), std::move(f));
      }
      for (auto& [want, f] : calls) {
        if (f.wait_for(kHangGuard) != std::future_status::ready) {
          failures[t] = "hang guard";
          return;
        }
        Result<Frame> r = f.get();
        if (!r.ok()) {
          failures[t] = r.status().ToString();
        } else if (r->op != t || r->payload != want) {
          failures[t] = "a reply of " + std::to_string(r->payload.size()) + " bytes differs";
        }
      }
    });
  }
  for (auto& c : callers)
    c.join();
  {
    std::lock_guard<std::mutex> l(mu);
    for (auto& a : answerers)
      a.join();
  }
  for (const auto& f : failures)
    EXPECT_EQ(f, "");
}

TEST(Rpc, ServerRestartFailsCallsWithUnavailableThenReconnects) {
  EchoService svc;
  auto server = std::make_unique<RpcServer>();
  ASSERT_OK(server->Start("127.0.0.1", 0, {}, svc.Handler()));
  const uint16_t port = server->port();
  auto client = MustConnect(port);
  ASSERT_NE(client, nullptr);
  ASSERT_OK(CallSync(*client, 1, "before"));

  // A call in flight when the server goes away fails with Unavailable, naming the server.
  auto held = client->Call(EchoService::kHold, "in flight");
  ASSERT_TRUE(svc.WaitHeld(1));
  server->Stop();
  // A reply to a stopped server's connection is dropped, not crashed on.
  for (auto& r : svc.TakeHeld())
    r.Send(1, "too late");
  ASSERT_EQ(held.wait_for(kHangGuard), std::future_status::ready);
  Result<Frame> lost = held.get();
  EXPECT_EQ(lost.status().code(), Code::kUnavailable) << lost.status().ToString();
  EXPECT_TRUE(Contains(lost.status().message(),
                       "connection to 127.0.0.1:" + std::to_string(port) + " lost"))
      << lost.status().message();
  EXPECT_TRUE(Contains(lost.status().message(), "retry")) << lost.status().message();

  // While it is down, calls fail with Unavailable.
  server.reset();
  for (int i = 0; i < 3; ++i) {
    auto r = CallSync(*client, 1, "while down");
    EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
    EXPECT_TRUE(Contains(r.status().message(), "127.0.0.1:" + std::to_string(port)))
        << r.status().message();
  }

  // Back on the same port: calls succeed again after the client reconnects by itself.
  server = std::make_unique<RpcServer>();
  Status started;
  for (int i = 0; i < 100; ++i) {  // the port may linger briefly; guard, not a timing check
    started = server->Start("127.0.0.1", port, {}, svc.Handler());
    if (started.ok()) break;
    server = std::make_unique<RpcServer>();
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_OK(started);
  Result<Frame> r = Internal("not called");
  auto deadline = std::chrono::steady_clock::now() + kHangGuard;
  while (std::chrono::steady_clock::now() < deadline) {
    r = CallSync(*client, 2, "after");
    if (r.ok()) break;
    EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
  }
  ASSERT_OK(r);
  EXPECT_EQ(r->payload, "after");
}

TEST(Rpc, BacksOffBetweenConnectAttemptsWhileTheServerIsDown) {
  EchoService svc;
  auto server = std::make_unique<RpcServer>();
  ASSERT_OK(server->Start("127.0.0.1", 0, {}, svc.Handler()));
  const uint16_t port = server->port();
  ClientOptions o = FastClientOptions();
  o.reconnect_backoff_initial = 20ms;
  o.reconnect_backoff_max = 160ms;
  auto client = MustConnect(port, {}, o);
  ASSERT_NE(client, nullptr);
  server.reset();  // down: connection refused from now on

  // A tight retry loop: every call fails with Unavailable, and the failed attempts are spaced
  // by the backoff (20 + 40 + 80 + 160 + 160 ms at least between the first and the sixth), so
  // the loop cannot spin. Only a lower bound is checked: a slow machine only makes it longer.
  auto start = std::chrono::steady_clock::now();
  int unavailable = 0;
  for (int i = 0; i < 7; ++i) {
    auto r = CallSync(*client, 1, "x");
    if (r.status().code() == Code::kUnavailable) ++unavailable;
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(unavailable, 7);
  EXPECT_GE(elapsed, 400ms);
}

TEST(Rpc, TimeoutFailsTheCallWithDeadlineExceededNamingServerAndOp) {
  EchoService svc;
  RpcServer server;
  ASSERT_OK(server.Start("127.0.0.1", 0, {}, svc.Handler()));
  ClientOptions o = FastClientOptions();
  o.request_timeout = 200ms;
  auto client = MustConnect(server.port(), {}, o);
  ASSERT_NE(client, nullptr);
  auto r = CallSync(*client, EchoService::kHold, "never answered");
  EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded) << r.status().ToString();
  EXPECT_TRUE(Contains(r.status().message(), "127.0.0.1:" + std::to_string(server.port())))
      << r.status().message();
  EXPECT_TRUE(Contains(r.status().message(), "op 9")) << r.status().message();
  // The late reply is dropped by the client, and the connection keeps working.
  ASSERT_TRUE(svc.WaitHeld(1));
  for (auto& h : svc.TakeHeld())
    h.Send(9, "late");
  auto ok = CallSync(*client, 1, "next");
  ASSERT_OK(ok);
  EXPECT_EQ(ok->payload, "next");
}

// Calls share one deadline timer: each still times out request_timeout after it was made, while
// calls answered in time in between are not disturbed.
TEST(Rpc, StaggeredCallsEachTimeOutOnTheirOwnDeadline) {
  EchoService svc;
  RpcServer server;
  ASSERT_OK(server.Start("127.0.0.1", 0, {}, svc.Handler()));
  ClientOptions o = FastClientOptions();
  o.request_timeout = 300ms;
  auto client = MustConnect(server.port(), {}, o);
  ASSERT_NE(client, nullptr);
  const auto start = std::chrono::steady_clock::now();
  auto first = client->Call(EchoService::kHold, "first");
  std::this_thread::sleep_for(150ms);
  auto second = client->Call(EchoService::kHold, "second");
  for (int i = 0; i < 5; ++i) ASSERT_OK(CallSync(*client, 1, "answered"));
  auto r1 = first.get();
  const auto t1 = std::chrono::steady_clock::now() - start;
  auto r2 = second.get();
  const auto t2 = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r1.status().code(), Code::kDeadlineExceeded) << r1.status().ToString();
  EXPECT_EQ(r2.status().code(), Code::kDeadlineExceeded) << r2.status().ToString();
  EXPECT_GE(t1, 300ms);
  EXPECT_GE(t2, 450ms);
  EXPECT_GE(t2 - t1, 75ms) << "the first call was held back to the second one's deadline";
  ASSERT_TRUE(svc.WaitHeld(2));
  svc.TakeHeld();
  ASSERT_OK(CallSync(*client, 1, "still fine"));
}

TEST(Rpc, MalformedInputClosesOnlyThatConnectionAndIsLogged) {
  LogCapture log;
  EchoService svc;
  RpcServer server;
  ServerOptions so;
  so.max_payload = 1 << 20;
  ASSERT_OK(server.Start("127.0.0.1", 0, {}, svc.Handler(), so));
  auto good = MustConnect(server.port());
  ASSERT_NE(good, nullptr);

  // A well-behaved client keeps calling the whole time.
  std::atomic<bool> stop{false};
  std::atomic<int> good_ok{0}, good_failed{0};
  std::thread steady([&] {
    while (!stop) {
      auto r = CallSync(*good, 1, "steady");
      (r.ok() && r->payload == "steady" ? good_ok : good_failed)++;
    }
  });

  {  // garbage
    RawSocket s(server.port());
    s.Write("this is not a drfs frame at all, just text\r\n");
    EXPECT_TRUE(s.ServerClosed());
    EXPECT_NE(log.WaitForLine({s.LocalAddress(), "bad frame magic"}), "") << log.Text();
  }
  {  // oversized length: refused from the header alone, no payload sent
    Frame f{kFrameRequest, 1, 1, ""};
    std::string header = EncodeFrame(f);
    EncodeFixed32(header.data() + 20, 100u << 20);
    EncodeFixed32(header.data() + 28, crc32c::Mask(crc32c::Value(header.data(), 28)));
    RawSocket s(server.port());
    s.Write(header);
    EXPECT_TRUE(s.ServerClosed());
    EXPECT_NE(log.WaitForLine({s.LocalAddress(),
                               "oversized frame: payload length 104857600 > "
                               "max 1048576"}),
              "")
        << log.Text();
  }
  {  // a good frame, then half a frame, then close
    std::string frame = EncodeFrame(Frame{kFrameRequest, 1, 7, "payload of a truncated frame"});
    RawSocket s(server.port());
    std::string addr = s.LocalAddress();
    s.Write(frame + frame.substr(0, 40));
    s.Close();
    EXPECT_NE(log.WaitForLine({addr, "closed mid-frame"}), "") << log.Text();
  }
  {  // a bad payload checksum
    std::string frame = EncodeFrame(Frame{kFrameRequest, 1, 8, "abc"});
    frame.back() ^= 1;
    RawSocket s(server.port());
    s.Write(frame);
    EXPECT_TRUE(s.ServerClosed());
    EXPECT_NE(log.WaitForLine({s.LocalAddress(), "payload checksum mismatch"}), "") << log.Text();
  }

  // The steady client made progress after all that, and never failed.
  int before = good_ok.load();
  auto deadline = std::chrono::steady_clock::now() + kHangGuard;
  while (good_ok.load() < before + 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  stop = true;
  steady.join();
  EXPECT_GE(good_ok.load(), before + 3);
  EXPECT_EQ(good_failed.load(), 0);
  auto r = CallSync(*good, 2, "still here");
  ASSERT_OK(r);
}

TEST(Rpc, StopWithCallsInFlightAndRepliesFromAnotherThread) {
  EchoService svc;
  auto server = std::make_unique<RpcServer>();
  ASSERT_OK(server->Start("127.0.0.1", 0, {}, svc.Handler()));
  auto client = MustConnect(server->port());
  ASSERT_NE(client, nullptr);
  std::vector<std::future<Result<Frame>>> calls;
  for (int i = 0; i < 20; ++i)
    calls.push_back(client->Call(EchoService::kHold, "x"));
  ASSERT_TRUE(svc.WaitHeld(20));
  auto held = svc.TakeHeld();
  // A "disk thread" replies while the server stops, and after it is gone.
  std::thread replier([&] {
    for (auto& h : held)
      h.Send(9, "maybe");
  });
  server->Stop();
  server.reset();
  replier.join();
  for (auto& c : calls) {
    ASSERT_EQ(c.wait_for(kHangGuard), std::future_status::ready);
    auto r = c.get();
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
    }
  }
}

// on_close runs once per connection, whatever closed it, with the PeerInfo its handler calls
// saw; connection ids are distinct; Stop() closes the rest before it returns.
TEST(Rpc, OnCloseRunsOncePerConnectionForEveryWayItCloses) {
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, int> closed;  // connection id -> on_close calls
  std::map<uint64_t, std::string> addresses;
  std::set<uint64_t> seen;  // connection ids the handler saw
  RpcServer server;
  ServerOptions so;
  so.on_close = [&](const PeerInfo& p) {
    std::lock_guard<std::mutex> l(mu);
    ++closed[p.connection_id];
    addresses[p.connection_id] = p.address;
    cv.notify_all();
  };
  ASSERT_OK(server.Start(
      "127.0.0.1", 0, {},
      [&](std::shared_ptr<const PeerInfo> peer, Frame req, Responder reply) {
        {
          std::lock_guard<std::mutex> l(mu);
          seen.insert(peer->connection_id);
          // The handler never runs for a connection already reported closed.
          EXPECT_EQ(closed.count(peer->connection_id), 0u);
        }
        reply.Send(req.op, std::to_string(peer->connection_id));
      },
      so));
  auto wait_closed = [&](size_t n) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, kHangGuard, [&] { return closed.size() >= n; });
  };
  // 1: the client goes away.
  uint64_t first = 0;
  {
    auto c = MustConnect(server.port());
    ASSERT_NE(c, nullptr);
    auto r = CallSync(*c, 1, "x");
    ASSERT_OK(r);
    first = std::stoull(r->payload);
    EXPECT_NE(first, 0u);
  }
  ASSERT_TRUE(wait_closed(1));
  // 2: the server closes it for a bad frame.
  {
    RawSocket s(server.port());
    s.Write("not a frame");
    EXPECT_TRUE(s.ServerClosed());
  }
  ASSERT_TRUE(wait_closed(2));
  // 3 and 4: still open when the server stops.
  auto c3 = MustConnect(server.port());
  auto c4 = MustConnect(server.port());
  ASSERT_NE(c3, nullptr);
  ASSERT_NE(c4, nullptr);
  auto r3 = CallSync(*c3, 1, "x");
  auto r4 = CallSync(*c4, 1, "x");
  ASSERT_OK(r3);
  ASSERT_OK(r4);
  EXPECT_NE(r3->payload, r4->payload);
  server.Stop();
  std::unique_lock<std::mutex> l(mu);  // no wait: Stop() has run every on_close
  EXPECT_EQ(closed.size(), 4u);
  for (const auto& [id, n] : closed) {
    EXPECT_EQ(n, 1) << "connection " << id;
    EXPECT_NE(id, 0u);
    EXPECT_TRUE(addresses[id].rfind("127.0.0.1:", 0) == 0) << addresses[id];
  }
  for (uint64_t id : seen)
    EXPECT_EQ(closed.count(id), 1u) << "connection " << id << " never reported closed";
  EXPECT_EQ(closed.count(first), 1u);
  EXPECT_EQ(closed.count(std::stoull(r3->payload)), 1u);
  EXPECT_EQ(closed.count(std::stoull(r4->payload)), 1u);
  l.unlock();
  server.Stop();  // idempotent: nothing runs twice
  l.lock();
  EXPECT_EQ(closed.size(), 4u);
}

TEST(Rpc, ClientDestructionCancelsCallsInFlight) {
  EchoService svc;
  RpcServer server;
  ASSERT_OK(server.Start("127.0.0.1", 0, {}, svc.Handler()));
  auto client = MustConnect(server.port());
  ASSERT_NE(client, nullptr);
  auto f = client->Call(EchoService::kHold, "x");
  ASSERT_TRUE(svc.WaitHeld(1));
  client.reset();
  ASSERT_EQ(f.wait_for(kHangGuard), std::future_status::ready);
  EXPECT_EQ(f.get().status().code(), Code::kCancelled);
  for (auto& h : svc.TakeHeld())
    h.Send(9, "nobody listens");
}

TEST(Rpc, ConnectToANonListeningPortFailsWithUnavailable) {
  uint16_t port;
  EchoService svc;
  {
    RpcServer s;
    ASSERT_OK(s.Start("127.0.0.1", 0, {}, svc.Handler()));
    port = s.port();
  }
  auto c = RpcClient::Connect("127.0.0.1", port, {}, FastClientOptions());
  EXPECT_EQ(c.status().code(), Code::kUnavailable) << c.status().ToString();
  EXPECT_TRUE(Contains(c.status().message(), "cannot connect to 127.0.0.1:" + std::to_string(port)))
      << c.status().message();
}

// --- a peer that vanishes -----------------------------------------------------------------

// Two network namespaces joined by a veth pair, as two hosts (10.251.0.1 in a, 10.251.0.2 in
// b). Needs root and iproute2. Removed (with the veth) when it goes.
class TwoHosts {
 public:
  TwoHosts()
      : a_("drfs-rpct-a-" + std::to_string(::getpid())),
        b_("drfs-rpct-b-" + std::to_string(::getpid())) {
    const std::string va = "drfsrpa" + std::to_string(::getpid() % 100000);
    const std::string vb = "drfsrpb" + std::to_string(::getpid() % 100000);
    Teardown();
    ok_ = Sh("ip netns add " + a_) && Sh("ip netns add " + b_) &&
          Sh("ip link add " + va + " netns " + a_ + " type veth peer name " + vb + " netns " + b_) &&
          Sh(In(a_) + "ip addr add 10.251.0.1/30 dev " + va) &&
          Sh(In(b_) + "ip addr add 10.251.0.2/30 dev " + vb) && Sh(In(a_) + "ip link set lo up") &&
          Sh(In(b_) + "ip link set lo up") && Sh(In(a_) + "ip link set " + va + " up") &&
          Sh(In(b_) + "ip link set " + vb + " up");
    vb_ = vb;
  }
  ~TwoHosts() { Teardown(); }
  bool ok() const { return ok_; }
  // Host b drops off the network: its end of the link goes down, so nothing it sent or would
  // send reaches a, and a's packets go nowhere. No FIN, no RST.
  bool CutB() { return Sh(In(b_) + "ip link set " + vb_ + " down"); }
  // Runs fn on a thread inside host a's (or b's) network namespace: sockets it makes, and
  // threads it starts, are that host's.
  template <typename Fn>
  static void RunIn(const std::string& ns, Fn fn) {
    std::thread t([&] {
      int fd = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
      ASSERT_GE(fd, 0) << ns << ": " << std::strerror(errno);
      ASSERT_EQ(::setns(fd, CLONE_NEWNET), 0) << ns << ": " << std::strerror(errno);
      ::close(fd);
      fn();
    });
    t.join();
  }
  const std::string& a() const { return a_; }
  const std::string& b() const { return b_; }

 private:
  static std::string In(const std::string& ns) { return "ip netns exec " + ns + " "; }
  static bool Sh(const std::string& cmd) {
    const int rc = std::system((cmd + " 2>&1").c_str());
    EXPECT_EQ(rc, 0) << cmd;
    return rc == 0;
  }
  void Teardown() {
    (void)std::system(("ip netns del " + a_ + " 2>/dev/null").c_str());
    (void)std::system(("ip netns del " + b_ + " 2>/dev/null").c_str());
  }
  std::string a_, b_, vb_;
  bool ok_ = false;
};

// A peer whose host vanishes (it lost power, its link was cut: no FIN or RST ever comes) is given
// up on both ends after about dead_peer_timeout: the server closes the connection and runs
// on_close (where a brick drops the peer's locks, so a Passive syncer can take over), and a
// client that does not reconnect reports the connection lost. Without TCP keepalive both would
// wait for traffic that never comes. The 60 s guard only stops a hang; it times nothing.
TEST(RpcDeadPeer, AHostThatVanishesIsGivenUpOnBothEnds) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
  TwoHosts hosts;
  ASSERT_TRUE(hosts.ok());
  std::mutex mu;
  std::condition_variable cv;
  int closed = 0;
  EchoService svc;
  RpcServer server;
  ServerOptions so;
  so.dead_peer_timeout = 2s;
  so.on_close = [&](const PeerInfo&) {
    std::lock_guard<std::mutex> l(mu);
    ++closed;
    cv.notify_all();
  };
  TwoHosts::RunIn(hosts.a(), [&] { ASSERT_OK(server.Start("10.251.0.1", 0, {}, svc.Handler(), so)); });
  ASSERT_NE(server.port(), 0);
  std::unique_ptr<RpcClient> client;
  TwoHosts::RunIn(hosts.b(), [&] {
    ClientOptions co = FastClientOptions();
    co.reconnect = false;
    co.dead_peer_timeout = 2s;
    auto c = RpcClient::Connect("10.251.0.1", server.port(), {}, co);
    ASSERT_OK(c);
    client = std::move(*c);
  });
  ASSERT_NE(client, nullptr);
  ASSERT_OK(CallSync(*client, 1, "before the cut"));
  EXPECT_EQ(server.connection_count(), 1u);

  ASSERT_TRUE(hosts.CutB());
  {
    std::unique_lock<std::mutex> l(mu);
    EXPECT_TRUE(cv.wait_for(l, kHangGuard, [&] { return closed == 1; }))
        << "the server still holds the connection of a host that vanished";
  }
  EXPECT_EQ(server.connection_count(), 0u);
  const auto guard = std::chrono::steady_clock::now() + kHangGuard;
  while (!client->lost() && std::chrono::steady_clock::now() < guard) std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(client->lost()) << "the client still trusts a connection to a host that vanished";
  client.reset();
  server.Stop();
}

// --- TLS ------------------------------------------------------------------------------------

// A site CA with a server and a client certificate, plus the bad cases.
struct Pki {
  TempDir dir;
  TlsConfig server, client, other_ca_client, expired_client, no_cert_client;

  Pki() {
    EXPECT_OK(cert::CreateCa(dir.Sub("ca"), {}));
    EXPECT_OK(cert::CreateCa(dir.Sub("other"), {}));
    Issue("ca", "brick-1", "brick", 0, &server);
    Issue("ca", "applier-1", "applier", 0, &client);
    Issue("other", "intruder", "applier", 0, &other_ca_client);
    Issue("ca", "old", "client", -30, &expired_client);
    other_ca_client.ca_file = dir.Sub("ca/ca.crt");
    no_cert_client.ca_file = dir.Sub("ca/ca.crt");
  }
  void Issue(const std::string& ca, const std::string& name, const std::string& role,
             int offset_days, TlsConfig* out) {
    cert::LeafOptions o;
    o.name = name;
    o.role = role;
    o.days = 10;
    o.not_before_offset_days = offset_days;
    EXPECT_OK(cert::IssueCert(dir.Sub(ca), dir.Sub("certs"), o));
    out->cert_file = dir.Sub("certs/" + name + ".crt");
    out->key_file = dir.Sub("certs/" + name + ".key");
    out->ca_file = dir.Sub(ca + "/ca.crt");
  }
};

// The client is refused: either the handshake fails at Connect, or (TLS 1.3 checks the client
// certificate after the client has finished) the first call fails with Unavailable.
void ExpectRefused(uint16_t port, const TlsConfig& tls) {
  auto c = RpcClient::Connect("127.0.0.1", port, tls, FastClientOptions());
  if (!c.ok()) {
    EXPECT_EQ(c.status().code(), Code::kUnavailable) << c.status().ToString();
    return;
  }
  auto r = CallSync(**c, 1, "let me in");
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
}

TEST(Rpc, TlsServesAValidClientAndReportsItsIdentity) {
  Pki pki;
  EchoService svc;
  RpcServer server;
  ASSERT_OK(server.Start("127.0.0.1", 0, pki.server, svc.Handler()));
  auto client = MustConnect(server.port(), pki.client);
  ASSERT_NE(client, nullptr);
  auto r = CallSync(*client, 5, "secret");
  ASSERT_OK(r);
  EXPECT_EQ(r->payload, "secret");
  auto peer = svc.last_peer();
  ASSERT_NE(peer, nullptr);
  EXPECT_TRUE(peer->tls);
  EXPECT_EQ(peer->common_name, "applier-1");
  EXPECT_EQ(peer->role, "applier");
  EXPECT_TRUE(peer->address.rfind("127.0.0.1:", 0) == 0) << peer->address;
  std::string big(1 << 20, 'b');
  auto rb = CallSync(*client, 6, big);
  ASSERT_OK(rb);
  EXPECT_EQ(rb->payload, big);
}

TEST(Rpc, TlsRefusesAClientWithoutACertificate) {
  Pki pki;
  LogCapture log;
  EchoService svc;
  RpcServer server;
  ASSERT_OK(server.Start("127.0.0.1", 0, pki.server, svc.Handler()));
  ExpectRefused(server.port(), pki.no_cert_client);
  EXPECT_NE(log.WaitForLine({"refused TLS connection from 127.0.0.1:", "certificate"}), "")
      << log.Text();
  EXPECT_EQ(svc.calls(), 0);
}

TEST(Rpc, TlsRefusesACertificateFromAnotherCa) {
  Pki pki;
  LogCapture log;
  EchoService svc;
  RpcServer server;
  ASSERT_OK(server.Start("127.0.0.1", 0, pki.server, svc.Handler()));
  ExpectRefused(server.port(), pki.other_ca_client);
  EXPECT_NE(
      log.WaitForLine({"refused TLS connection from 127.0.0.1:", "certificate verify failed"}), "")
      << log.Text();
  EXPECT_EQ(svc.calls(), 0);
}

TEST(Rpc, TlsRefusesAnExpiredCertificate) {
  Pki pki;
  LogCapture log;
  EchoService svc;
  RpcServer server;
  ASSERT_OK(server.Start("127.0.0.1", 0, pki.server, svc.Handler()));
  ExpectRefused(server.port(), pki.expired_client);
  EXPECT_NE(log.WaitForLine({"refused TLS connection from 127.0.0.1:", "expired"}), "")
      << log.Text();
  EXPECT_EQ(svc.calls(), 0);
}

TEST(Rpc, TlsRefusesATls12OnlyClient) {
  Pki pki;
  LogCapture log;
  EchoService svc;
  RpcServer server;
  ASSERT_OK(server.Start("127.0.0.1", 0, pki.server, svc.Handler()));

  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  ASSERT_NE(ctx, nullptr);
  SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  ASSERT_EQ(SSL_CTX_use_certificate_file(ctx, pki.client.cert_file.c_str(), SSL_FILETYPE_PEM), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey_file(ctx, pki.client.key_file.c_str(), SSL_FILETYPE_PEM), 1);
  RawSocket s(server.port());
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, s.fd());
  EXPECT_NE(SSL_connect(ssl), 1) << "a TLS 1.2 handshake must not succeed";
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  EXPECT_NE(log.WaitForLine({"refused TLS connection from " + s.LocalAddress(), "protocol"}), "")
      << log.Text();
  EXPECT_EQ(svc.calls(), 0);
}

TEST(Rpc, TlsClientRefusesAServerFromAnotherCa) {
  Pki pki;
  EchoService svc;
  RpcServer server;
  TlsConfig intruder = pki.other_ca_client;
  intruder.ca_file = pki.dir.Sub("other/ca.crt");  // it trusts its own CA, so it would serve
  ASSERT_OK(server.Start("127.0.0.1", 0, intruder, svc.Handler()));
  auto c = RpcClient::Connect("127.0.0.1", server.port(), pki.client, FastClientOptions());
  EXPECT_EQ(c.status().code(), Code::kUnavailable);
  EXPECT_TRUE(Contains(c.status().message(), "certificate verify failed")) << c.status().message();
  EXPECT_EQ(svc.calls(), 0);
}

TEST(Rpc, TlsFilesThatDoNotLoadAreReportedByName) {
  Pki pki;
  EchoService svc;
  RpcServer server;
  TlsConfig bad = pki.server;
  bad.key_file = pki.dir.Sub("missing.key");
  Status s = server.Start("127.0.0.1", 0, bad, svc.Handler());
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Contains(s.message(), bad.key_file)) << s.message();
  TlsConfig mismatched = pki.server;
  mismatched.key_file = pki.client.key_file;
  s = server.Start("127.0.0.1", 0, mismatched, svc.Handler());
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Contains(s.message(), "does not match")) << s.message();
  TlsConfig no_ca = pki.client;
  no_ca.ca_file.clear();
  EXPECT_EQ(RpcClient::Connect("127.0.0.1", 1, no_ca).status().code(), Code::kFailedPrecondition);
}

}  // namespace
}  // namespace drfs
