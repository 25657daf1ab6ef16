#include "volume/client.h"

#include <linux/fs.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "brick/client.h"
#include "common/failpoint.h"
#include "common/log.h"

namespace drfs::volume {

using brick::BrickClient;
using brick_proto::Op;
using brick_proto::Reply;
using brick_proto::Request;
using Clock = std::chrono::steady_clock;
using Mask = uint32_t;

namespace {

constexpr size_t kMaxBricks = 16;

Status Errno(int err, std::string message) { return Status(ErrnoStatus(err, message).code(), std::move(message), err); }

int Popcount(Mask m) { return std::popcount(m); }

// The result of one request on one brick.
struct Outcome {
  bool sent = false;        // the brick was asked
  bool answered = false;    // it replied (transport worked)
  Reply reply;              // when answered
  std::string transport_error;
  bool ok() const { return answered && reply.err == 0; }
};

// Waits for a set of asynchronous calls.
class Latch {
 public:
  explicit Latch(int n) : n_(n) {}
  void Done() {
    std::lock_guard<std::mutex> l(mu_);
    if (--n_ == 0) cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return n_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int n_;
};

struct Hasher {
  size_t operator()(const Gfid& g) const {
    uint64_t a, b;
    std::memcpy(&a, g.bytes.data(), 8);
    std::memcpy(&b, g.bytes.data() + 8, 8);
    return static_cast<size_t>(a ^ (b * 0x9E3779B97F4A7C15ull));
  }
};

}  // namespace

// An open eager-locked write transaction on one file (see client.h).
struct WriteTxn {
  Gfid gfid;
  uint64_t owner = 0;
  std::vector<std::shared_ptr<BrickClient>> clients;  // the connections that hold the lock
  Mask locked = 0;   // bricks where the lock and pre-op took
  Mask up = 0;       // the bricks up when it opened
  Mask pre = 0;      // bricks the pre-op accused (down when it opened)
  Mask failed = 0;   // locked bricks that then failed a write: accused at post-op
  // Per brick: the bricks it saw fail a write it applied (its post-op accuses them).
  std::vector<Mask> accuse;
  bool opening = true;
  bool closing = false;
  Status open_error;
  int inflight = 0;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [start, end) of writes in flight
  Clock::time_point started, last_used;
  std::condition_variable cv;
};

struct VolumeClient::Impl {
  VolumeClientOptions opts;
  size_t n = 0;
  Mask all = 0;

  mutable std::mutex mu;  // guards everything below
  Layout layout;
  struct Slot {
    BrickAddress addr;
    std::shared_ptr<BrickClient> client;
    std::string last_error;
    Clock::time_point next_try{};
    std::chrono::milliseconds backoff{100};
    bool connecting = false;
    Clock::time_point lost_at{};  // when its connection was last lost (a restart, usually)
  };
  std::vector<Slot> slots;
  // Bricks not to read an object from, as of `seq` (when this client last saw every brick's
  // markers for it). A brick that (re)connected after that is suspect for the object until it
  // is looked up again: it may have missed writes from other clients while it was away.
  struct Freshness {
    Mask bad = 0;
    uint64_t seq = 0;
  };
  std::unordered_map<Gfid, Freshness, Hasher> stale;
  uint64_t seq = 1;
  std::vector<uint64_t> connected_seq;  // per brick: seq at its latest (re)connection
  std::unordered_map<Gfid, std::shared_ptr<WriteTxn>, Hasher> txns;
  // Post-ops sent after their op was answered (see Transact), by lock key: a later transaction
  // of this client on the same key waits for them, rather than meet its own lock as "held".
  std::unordered_map<std::string, int> unlocking;
  int posts_inflight = 0;
  std::condition_variable settle_cv;  // unlocking or posts_inflight went down
  bool stopping = false;
  std::condition_variable bg_cv;
  std::condition_variable connected_cv;  // a brick (re)connected
  std::thread bg;

  uint64_t owner_base = 0;
  std::atomic<uint64_t> owner_seq{0};

  ~Impl() {
    {
      std::lock_guard<std::mutex> l(mu);
      stopping = true;
    }
    bg_cv.notify_all();
    connected_cv.notify_all();
    if (bg.joinable()) bg.join();
  }

  std::string Name() const { return "volume " + layout.volume; }

  // ---- bricks ----

  // The connected bricks. When fewer are connected than `need` (1, or the write quorum) and a
  // brick lost its connection less than reconnect_grace ago, waits (up to that grace after the
  // loss) for bricks to come back: a brick restarting (a rolling restart, a site's bricks
  // turning read-only or writable on failover) is back within a second, and its clients ride
  // through instead of failing with EIO or EROFS. A brick down for longer costs no wait.
  // Short of bricks, it also tries every disconnected brick at once (waiting up to 300 ms for
  // the answers) rather than leave it to the reconnect backoff: a brick back after a long
  // outage is used as soon as an op needs it.
  std::vector<std::shared_ptr<BrickClient>> Snapshot(bool need_quorum = false) {
    std::unique_lock<std::mutex> l(mu);
    const auto first = Clock::now();
    bool probed = false;
    for (;;) {
      std::vector<std::shared_ptr<BrickClient>> v(n);
      bool poke = false;
      const auto now = Clock::now();
      Clock::time_point wait_until{};
      for (size_t i = 0; i < n; ++i) {
        auto& s = slots[i];
        if (s.client && s.client->lost()) {
          s.last_error = "connection lost";
          s.client.reset();
          s.next_try = now;
          s.lost_at = now;
          poke = true;
        }
        v[i] = s.client;
        if (!s.client && s.addr.port != 0 && s.lost_at != Clock::time_point{} &&
            s.lost_at + opts.reconnect_grace > now) {
          wait_until = std::max(wait_until, s.lost_at + opts.reconnect_grace);
          if (s.next_try > now + std::chrono::milliseconds(100)) {
            s.next_try = now + std::chrono::milliseconds(100);  // retry briefly while we wait
            poke = true;
          }
        }
      }
      const Mask up = UpMask(v);
      const bool enough = need_quorum ? HasQuorum(up) : up != 0;
      if (!enough && !probed) {
        probed = true;
        for (auto& s : slots) {
          if (!s.client && s.addr.port != 0 && s.next_try > now) {
            s.next_try = now;
            poke = true;
          }
        }
        wait_until = std::max(wait_until, first + std::chrono::milliseconds(300));
      }
      if (poke) bg_cv.notify_all();
      if (enough || wait_until <= now || stopping) return v;
      connected_cv.wait_until(l, std::min(wait_until, now + std::chrono::milliseconds(100)));
    }
  }
  static Mask UpMask(const std::vector<std::shared_ptr<BrickClient>>& v) {
    Mask m = 0;
    for (size_t i = 0; i < v.size(); ++i)
      if (v[i]) m |= 1u << i;
    return m;
  }
  void NoteFailure(size_t i, const std::shared_ptr<BrickClient>& c, const std::string& why) {
    std::lock_guard<std::mutex> l(mu);
    if (slots[i].client == c && c && c->lost()) {
      slots[i].client.reset();
      slots[i].next_try = Clock::now();
      slots[i].lost_at = slots[i].next_try;
      bg_cv.notify_all();
    }
    slots[i].last_error = why;
  }
  // NoteFailure for callbacks run on a connection's own io thread: they must not drop what may
  // be its last reference (its destructor joins that thread). The next Snapshot() replaces a
  // lost connection.
  void NoteFailureOf(size_t i, const std::string& why) {
    std::lock_guard<std::mutex> l(mu);
    slots[i].last_error = why;
  }
  Mask ArbiterMask() const {
    Mask m = 0;
    for (size_t i = 0; i < n; ++i)
      if (slots[i].addr.arbiter) m |= 1u << i;
    return m;
  }

  // Tries to connect one brick (without holding mu).
  void TryConnect(size_t i) {
    BrickAddress addr;
    {
      std::lock_guard<std::mutex> l(mu);
      if (slots[i].client || slots[i].connecting || slots[i].addr.port == 0) return;
      slots[i].connecting = true;
      addr = slots[i].addr;
    }
    ClientOptions co = opts.rpc;
    co.reconnect = false;  // a connection is a lock session: a new one is a new client
    auto c = BrickClient::Connect(addr.host, addr.port, opts.tls, co, opts.applier_secret);
    std::string err;
    if (c.ok() && !addr.brick_id.empty() && (*c)->brick_id() != addr.brick_id) {
      err = "brick at " + addr.host + ":" + std::to_string(addr.port) + " is " + (*c)->brick_id() +
            ", not " + addr.name + " (" + addr.brick_id + "); the layout is out of date";
    } else if (!c.ok()) {
      err = c.status().message();
    }
    std::lock_guard<std::mutex> l(mu);
    Slot& s = slots[i];
    s.connecting = false;
    if (err.empty() && s.addr == addr) {
      s.client = std::shared_ptr<BrickClient>(std::move(*c));
      s.backoff = std::chrono::milliseconds(100);
      s.last_error.clear();
      // Whatever this client believed about the brick's freshness is void now, even at a first
      // connection: a brick that was down when the volume was opened missed what was written.
      connected_seq[i] = ++seq;
      connected_cv.notify_all();
      DRFS_LOG(Info) << Name() << ": connected to brick " << addr.name << " at " << addr.host
                     << ":" << addr.port;
    } else {
      if (s.last_error != err && !err.empty()) {
        DRFS_LOG(Warn) << Name() << ": brick " << addr.name << " unreachable: " << err;
      }
      s.last_error = err.empty() ? "layout changed while connecting" : err;
      s.next_try = Clock::now() + s.backoff;
      s.backoff = std::min(s.backoff * 2, std::chrono::milliseconds(2000));
    }
  }

  // Background: reconnects bricks, and ends idle or old write transactions.
  void Background() {
    std::unique_lock<std::mutex> l(mu);
    while (!stopping) {
      auto now = Clock::now();
      auto wake = now + std::chrono::milliseconds(500);
      std::vector<size_t> connect;
      for (size_t i = 0; i < n; ++i) {
        if (!slots[i].client && !slots[i].connecting && slots[i].addr.port != 0) {
          if (slots[i].next_try <= now) connect.push_back(i);
          else wake = std::min(wake, slots[i].next_try);
        }
      }
      std::vector<std::shared_ptr<WriteTxn>> expire;
      for (auto& [g, t] : txns) {
        if (t->opening || t->closing) continue;
        auto idle_at = t->last_used + opts.eager_lock_idle;
        auto max_at = t->started + opts.eager_lock_max;
        auto at = std::min(idle_at, max_at);
        if ((at <= now && t->inflight == 0) || max_at <= now) expire.push_back(t);
        else wake = std::min(wake, std::max(at, now + std::chrono::milliseconds(1)));
      }
      if (!connect.empty() || !expire.empty()) {
        l.unlock();
        for (size_t i : connect) TryConnect(i);
        // Past eager_lock_max the transaction closes even while writes are in flight: new
        // writes wait and open a fresh one, so a waiting client or healer gets its turn.
        for (auto& t : expire) CloseTxn(t);
        l.lock();
        continue;
      }
      bg_cv.wait_until(l, wake);
    }
  }

  // ---- quorum and markers ----

  bool HasQuorum(Mask ok) const {
    const int c = Popcount(ok & all);
    const int total = static_cast<int>(n);
    if (layout.quorum_type == "none") return c >= 1;
    if (layout.quorum_type == "fixed") return c >= std::max(1, layout.quorum_count);
    if (2 * c > total) return true;
    return 2 * c == total && (ok & 1u);
  }
  std::string QuorumText() const {
    if (layout.quorum_type == "fixed") return std::to_string(layout.quorum_count) + " of " +
                                             std::to_string(n) + " bricks (quorum-type fixed)";
    if (layout.quorum_type == "none") return "one brick (quorum-type none)";
    if (n % 2 == 0) return "more than half of the " + std::to_string(n) +
                           " bricks, or half with the first";
    return "more than half of the " + std::to_string(n) + " bricks";
  }
  // `dirty` on the object's own counter, and `by` on the accusation of each brick in `accuse`.
  std::vector<int32_t> Deltas(int type, int dirty, Mask accuse, int by = 1) const {
    std::vector<int32_t> d(3 + 3 * n, 0);
    d[type] = dirty;
    for (size_t j = 0; j < n; ++j)
      if (accuse & (1u << j)) d[brick_proto::PendingIndex(static_cast<int>(j), type)] = by;
    return d;
  }
  // Bricks that another brick's markers say are stale.
  Mask Accused(const std::vector<int32_t>& p) const {
    Mask m = 0;
    for (size_t j = 0; j < n; ++j)
      for (int t = 0; t < 3; ++t) {
        size_t k = brick_proto::PendingIndex(static_cast<int>(j), t);
        if (k < p.size() && p[k] > 0) m |= 1u << j;
      }
    return m;
  }
  // `checked_at`: the seq when the lookup that found `m` was sent.
  void SetStale(const Gfid& g, Mask m, uint64_t checked_at) {
    std::lock_guard<std::mutex> l(mu);
    if (stale.size() > 200000) stale.clear();  // a cache: forgetting only costs a re-check
    stale[g] = Freshness{m, checked_at};
  }
  uint64_t Seq() {
    std::lock_guard<std::mutex> l(mu);
    return ++seq;
  }
  void AddStale(const Gfid& g, Mask m) {
    if (m == 0) return;
    std::lock_guard<std::mutex> l(mu);
    if (stale.size() > 200000) stale.clear();
    stale[g].bad |= m;
  }
  // Bad bricks for g, plus bricks that reconnected since g was last checked.
  Mask StaleOf(const Gfid& g) {
    std::lock_guard<std::mutex> l(mu);
    auto it = stale.find(g);
    Mask m = 0;
    uint64_t checked = 0;
    if (it != stale.end()) {
      m = it->second.bad;
      checked = it->second.seq;
    }
    for (size_t i = 0; i < n; ++i)
      if (connected_seq[i] > checked) m |= 1u << i;
    // While this client's write transaction on g is open, bricks outside it (down when it
    // opened, or failed a write since) miss writes that are not yet marked anywhere.
    auto t = txns.find(g);
    if (t != txns.end() && !t->second->opening) m |= all & ~(t->second->locked & ~t->second->failed);
    return m;
  }

  // ---- calls ----

  // A brick that is shutting down, or whose disk queue is full (EAGAIN, except from a lock
  // request, where it means "held"), did not take part: like a brick that did not answer, it
  // gets no vote, and the op moves on to another brick.
  static bool Unanswered(const Reply& r, bool lock_op) {
    return r.err == ESHUTDOWN || (r.err == EAGAIN && !lock_op);
  }

  // Sends `req(i)` to every brick in `mask` at once and waits for all replies.
  template <typename F>
  std::vector<Outcome> Fan(const std::vector<std::shared_ptr<BrickClient>>& cl, Mask mask, F&& req) {
    std::vector<Outcome> out(n);
    int count = 0;
    for (size_t i = 0; i < n; ++i)
      if ((mask & (1u << i)) && cl[i]) ++count;
    if (count == 0) return out;
    Latch latch(count);
    for (size_t i = 0; i < n; ++i) {
      if (!(mask & (1u << i)) || !cl[i]) continue;
      out[i].sent = true;
      Request q = req(i);
      const bool lock_op = q.op == Op::kInodelk || q.op == Op::kEntrylk;
      cl[i]->Call(q, [&out, &latch, i, lock_op](Result<Reply> r) {
        if (r.ok() && Unanswered(*r, lock_op)) {
          out[i].transport_error = r->message;
        } else if (r.ok()) {
          out[i].answered = true;
          out[i].reply = std::move(*r);
        } else {
          out[i].transport_error = r.status().message();
        }
        latch.Done();
      });
    }
    latch.Wait();
    for (size_t i = 0; i < n; ++i)
      if (out[i].sent && !out[i].answered) NoteFailure(i, cl[i], out[i].transport_error);
    return out;
  }
  std::vector<Outcome> FanSame(const std::vector<std::shared_ptr<BrickClient>>& cl, Mask mask,
                               const Request& q) {
    return Fan(cl, mask, [&q](size_t) { return q; });
  }
  Outcome One(const std::shared_ptr<BrickClient>& c, const Request& q, size_t i) {
    Outcome o;
    o.sent = true;
    auto r = c->Call(q).get();
    if (r.ok() && Unanswered(*r, q.op == Op::kInodelk || q.op == Op::kEntrylk)) {
      o.transport_error = r->message;
    } else if (r.ok()) {
      o.answered = true;
      o.reply = std::move(*r);
    } else {
      o.transport_error = r.status().message();
      NoteFailure(i, c, o.transport_error);
    }
    return o;
  }

  Status NoBrickError(const std::string& what, const std::vector<Outcome>& out) {
    std::string why;
    for (size_t i = 0; i < n; ++i) {
      if (!out[i].transport_error.empty()) {
        why += (why.empty() ? "" : "; ") + slots[i].addr.name + ": " + out[i].transport_error;
      }
    }
    return Errno(EIO, Name() + ": " + what + ": no brick could be reached" +
                          (why.empty() ? "" : " (" + why + ")") +
                          "; check `drfs volume status " + layout.volume + "`");
  }

  // Read-type op: the bricks to try, best first: up, not stale for gfid, data bricks first
  // (an arbiter only when `arbiter_ok`).
  std::vector<size_t> ReadOrder(const std::vector<std::shared_ptr<BrickClient>>& cl,
                                const Gfid& g, bool arbiter_ok) {
    Mask bad = StaleOf(g);
    std::vector<size_t> good, worse;
    for (size_t i = 0; i < n; ++i) {
      if (!cl[i]) continue;
      if (slots[i].addr.arbiter && !arbiter_ok) continue;
      ((bad & (1u << i)) || slots[i].addr.arbiter ? worse : good).push_back(i);
    }
    // Stale bricks only as a last resort for metadata-free reads is wrong for data: skip them.
    std::vector<size_t> order = good;
    for (size_t i : worse)
      if (!(bad & (1u << i))) order.push_back(i);
    return order;
  }

  // Runs a read-type request on the best brick, moving on when a brick cannot be reached.
  // Bricks not to use for g's data or listing. When a brick that is up is suspect for g (it
  // reconnected since g was last looked up) or stale, first asks every brick for g's markers
  // (one round trip), so the answer is current rather than a guess.
  Mask FreshStale(const Gfid& g, const std::vector<std::shared_ptr<BrickClient>>& cl) {
    if (StaleOf(g) & UpMask(cl)) {
      Request ga;
      ga.op = Op::kLookupGfid;
      ga.gfid = g;
      (void)LookupAll(ga);
    }
    return StaleOf(g);
  }

  Result<Reply> ReadOp(const Gfid& g, const Request& q, bool arbiter_ok = false) {
    auto cl = Snapshot();
    FreshStale(g, cl);
    auto order = ReadOrder(cl, g, arbiter_ok);
    std::vector<Outcome> out(n);
    for (size_t i : order) {
      out[i] = One(cl[i], q, i);
      if (!out[i].answered) continue;
      if (out[i].reply.err != 0) return Errno(out[i].reply.err, out[i].reply.message);
      return std::move(out[i].reply);
    }
    if (order.empty() && UpMask(cl) != 0) {
      return Errno(EIO, Name() + ": " + std::string(brick_proto::OpName(q.op)) + " of " +
                            g.ToString() + ": every brick that is up needs heal for it; " +
                            "wait for `drfs volume heal " + layout.volume + " info` to drain");
    }
    return NoBrickError(std::string(brick_proto::OpName(q.op)), out);
  }

  // Lookup-type request to every brick: the majority's answer wins; markers seen update which
  // bricks are stale for the object.
  // A post-op still under way changes the object's ctime when it lands (it rewrites the
  // markers xattr): an attribute read waits for this client's own post-ops on the object, so a
  // stat right after a write, and every one after it, shows the same ctime (tar's "file changed
  // as we read it" otherwise).
  Result<Reply> LookupAll(const Request& q) {
    if (q.op == Op::kGetattr) WaitPosts({"i" + q.gfid.ToString()});
    auto r = LookupAllOnce(q);
    if (q.op == Op::kLookup && r.ok() && PostsInFlight("i" + r->attr.gfid.ToString())) {
      WaitPosts({"i" + r->attr.gfid.ToString()});
      r = LookupAllOnce(q);
    }
    return r;
  }
  bool PostsInFlight(const std::string& key) {
    std::lock_guard<std::mutex> l(mu);
    return unlocking.count(key) != 0;
  }
  Result<Reply> LookupAllOnce(const Request& q) {
    const uint64_t checked_at = Seq();
    auto cl = Snapshot();
    auto out = FanSame(cl, UpMask(cl), q);
    Mask found = 0, answered = 0, accused = 0;
    for (size_t i = 0; i < n; ++i) {
      if (!out[i].answered) continue;
      answered |= 1u << i;
      if (out[i].reply.err == 0) {
        found |= 1u << i;
        accused |= Accused(out[i].reply.pending);
      }
    }
    if (answered == 0) return NoBrickError(std::string(brick_proto::OpName(q.op)), out);
    // Bricks another brick accuses do not get a vote while a fresh one answered.
    Mask voters = answered & ~accused ? answered & ~accused : answered;
    Mask yes = found & voters, no = voters & ~found;
    if (Popcount(no) > Popcount(yes) || (Popcount(no) == Popcount(yes) && (no & 1u))) {
      size_t i = static_cast<size_t>(std::countr_zero(no));
      return Errno(out[i].reply.err, out[i].reply.message);
    }
    // A name can resolve to different objects on different bricks: one that missed a rename or
    // an unlink+create while it was down still has the old object under the name. The gfid most
    // voters agree on wins (a tie goes to the first brick's), never simply the first brick's.
    Mask fresh_found = yes;
    if (q.op == Op::kLookup) {
      Mask best = 0;
      for (size_t i = 0; i < n; ++i) {
        if (!(yes & (1u << i))) continue;
        Mask same = 0;
        for (size_t k = 0; k < n; ++k) {
          if ((yes & (1u << k)) && out[k].reply.attr.gfid == out[i].reply.attr.gfid) same |= 1u << k;
        }
        if (Popcount(same) > Popcount(best)) best = same;
      }
      if (best) fresh_found = best;
    }
    // Pick a fresh data brick's attributes (an arbiter's size is always 0).
    Mask pick = fresh_found & ~ArbiterMask();
    if (!pick) pick = fresh_found;
    if (!pick) pick = found;
    size_t i = static_cast<size_t>(std::countr_zero(pick));
    Reply r = std::move(out[i].reply);
    // Stale for this object: accused bricks, and bricks that missed or disagree about it.
    Mask stale_now = accused | (answered & ~found);
    for (size_t k = 0; k < n; ++k) {
      if ((found & (1u << k)) && out[k].reply.attr.gfid != r.attr.gfid) stale_now |= 1u << k;
    }
    SetStale(r.attr.gfid, stale_now, checked_at);
    return r;
  }

  // ---- transactions ----

  struct TxnResult {
    Status status;
    Reply reply;  // the winning reply, on success
  };

  // Takes `lock` (an INODELK or ENTRYLK request without flags/owner/pending) on every brick in
  // `want`, with the pre-op. Tries all at once without waiting; if another owner holds it
  // somewhere, releases and takes them one by one in brick order, waiting (no deadlock: every
  // client waits in the same order).
  // `agreed`: the errno every brick that answered and refused gave, when they all gave the same
  // one (ENOENT: the object is gone), else 0.
  // `pre_accuse`: bricks the pre-op already accuses (they are down, so they will miss the op).
  Mask Lock(const std::vector<std::shared_ptr<BrickClient>>& cl, Mask want, const Request& lock,
            uint64_t owner, int type, std::string* why = nullptr, int* agreed = nullptr,
            Mask pre_accuse = 0, Mask* read_only = nullptr) {
    Request q = lock;
    q.lock_owner = owner;
    q.flags = 0;
    q.pending = Deltas(type, 1, pre_accuse);
    auto out = FanSame(cl, want, q);
    Mask got = 0, busy = 0;
    int common = 0;
    bool mixed = false;
    for (size_t i = 0; i < n; ++i) {
      if (!out[i].answered) continue;
      const int e = out[i].reply.err;
      if (e == 0) {
        got |= 1u << i;
      } else if (e == EAGAIN) {
        busy |= 1u << i;
      } else {
        if (why) {
          *why += (why->empty() ? "" : "; ") + slots[i].addr.name + ": " + out[i].reply.message;
        }
        if (common != 0 && common != e) mixed = true;
        common = e;
        if (e == EROFS && read_only) *read_only |= 1u << i;
      }
    }
    if (agreed) *agreed = (!mixed && busy == 0 && got == 0) ? common : 0;
    for (size_t i = 0; i < n; ++i)
      if (out[i].sent && !out[i].answered) Abandon(cl[i], lock, owner);
    if (busy == 0) return got;
    Release(cl, got, lock, owner, type, pre_accuse);
    got = 0;
    q.flags = brick_proto::kLockBlocking;
    for (size_t i = 0; i < n; ++i) {
      if (!(want & (1u << i)) || !cl[i]) continue;
      Outcome o = One(cl[i], q, i);
      if (!o.answered) Abandon(cl[i], lock, owner);
      if (o.ok()) {
        got |= 1u << i;
      } else if (why) {
        *why += (why->empty() ? "" : "; ") + slots[i].addr.name + ": " +
                (o.answered ? o.reply.message : o.transport_error);
      }
    }
    return got;
  }
  // A lock request that got no answer (timed out) may still be granted later, to an owner that
  // would never let go: cancel it (an unlock cancels a wait, or releases a late grant). Its
  // pre-op, if it happened, leaves "dirty" for self-heal to settle.
  void Abandon(const std::shared_ptr<BrickClient>& c, const Request& lock, uint64_t owner) {
    if (!c || c->lost()) return;  // a closed connection released everything already
    Request q = lock;
    q.lock_owner = owner;
    q.flags = brick_proto::kLockUnlock;
    q.pending.clear();
    c->Call(q, [](Result<Reply>) {});
  }

  // Post-op and unlock on the bricks in `mask`: brick i gets the deltas `post(i)`.
  void Unlock(const std::vector<std::shared_ptr<BrickClient>>& cl, Mask mask, const Request& lock,
              uint64_t owner, const std::function<std::vector<int32_t>(size_t)>& post) {
    if (mask == 0) return;
    auto out = Fan(cl, mask, [&](size_t i) {
      Request q = lock;
      q.lock_owner = owner;
      q.flags = brick_proto::kLockUnlock;
      q.pending = post(i);
      return q;
    });
    for (size_t i = 0; i < n; ++i) {
      if ((mask & (1u << i)) && !out[i].ok()) {
        DRFS_LOG(Warn) << Name() << ": post-op on brick " << slots[i].addr.name << " failed ("
                       << (out[i].answered ? out[i].reply.message : out[i].transport_error)
                       << "); its markers stay for self-heal to settle";
      }
    }
  }
  // Undoes a pre-op that led nowhere (the lock is given back with "dirty -1").
  void Release(const std::vector<std::shared_ptr<BrickClient>>& cl, Mask mask, const Request& lock,
               uint64_t owner, int type, Mask pre_accuse = 0) {
    const auto undo = Deltas(type, -1, pre_accuse, -1);
    Unlock(cl, mask, lock, owner, [&](size_t) { return undo; });
  }

  // Decides an op's outcome from the replies of the bricks in `locked` (AFR's rule): success
  // with quorum; else an error that a quorum agrees on; else EIO. `winners` are the bricks
  // whose state is right; the other bricks of the replica set get accused.
  // `same_object`: the op names an object by its name (create, mkdir, mknod, symlink), and
  // bricks that answered with different objects do not agree. A non-exclusive create on a
  // brick that missed an unlink (it was down) opens the old file still there, while the others
  // make the new one: the object most bricks made wins, and the others lose (the parent is
  // marked for entry heal on them) rather than the first brick's answer being taken as it is.
  TxnResult Decide(const std::string& what, const std::vector<Outcome>& out, Mask locked,
                   bool data_op, Mask* winners, bool same_object = false) {
    Mask ok = 0;
    std::map<int, Mask> errs;
    for (size_t i = 0; i < n; ++i) {
      if (!(locked & (1u << i)) || !out[i].answered) continue;
      if (out[i].reply.err == 0) ok |= 1u << i;
      else errs[out[i].reply.err] |= 1u << i;
    }
    if (same_object && ok) {
      Mask best = 0;
      for (size_t i = 0; i < n; ++i) {
        if (!(ok & (1u << i))) continue;
        Mask same = 0;
        for (size_t k = 0; k < n; ++k) {
          if ((ok & (1u << k)) && out[k].reply.attr.gfid == out[i].reply.attr.gfid) same |= 1u << k;
        }
        if (Popcount(same) > Popcount(best)) best = same;
      }
      if (best != ok) {
        DRFS_LOG(Warn) << Name() << ": " << what << ": the bricks answered with different objects; "
                       << "the one " << Popcount(best) << " of them made wins, the others are "
                       << "marked for self-heal";
      }
      ok = best;
    }
    const Mask data_bricks = all & ~ArbiterMask();
    TxnResult r;
    if (HasQuorum(ok) && (!data_op || (ok & data_bricks))) {
      *winners = ok;
      Mask pick = ok & data_bricks ? ok & data_bricks : ok;
      r.reply = out[static_cast<size_t>(std::countr_zero(pick))].reply;
      return r;
    }
    Mask best = 0;
    int best_err = 0;
    for (auto& [e, m] : errs) {
      if (Popcount(m) > Popcount(best) ||
          (Popcount(m) == Popcount(best) && std::countr_zero(m) < std::countr_zero(best))) {
        best = m;
        best_err = e;
      }
    }
    if (best && (HasQuorum(best) || ok == 0)) {
      *winners = best;
      size_t i = static_cast<size_t>(std::countr_zero(best));
      r.status = Errno(best_err, out[i].reply.message);
      return r;
    }
    *winners = ok;
    std::string detail;
    for (size_t i = 0; i < n; ++i) {
      detail += (detail.empty() ? "" : ", ") + slots[i].addr.name + ": ";
      if (!(locked & (1u << i))) detail += "down";
      else if (!out[i].answered) detail += out[i].transport_error;
      else if (out[i].reply.err == 0) detail += "ok";
      else detail += out[i].reply.message;
    }
    r.status = Errno(ok ? EIO : EROFS,
                     Name() + ": " + what + " has no quorum (" + detail + "); it needs " +
                         QuorumText() + (ok ? "; what did happen is marked for self-heal" : ""));
    return r;
  }

  // One whole transaction: lock (+pre-op), the op on every locked brick, post-op + unlock.
  TxnResult Transact(const std::string& what, const Request& lock, int type, bool data_op,
                     const std::function<Request(size_t)>& op, bool same_object = false) {
    if (opts.read_only) return {Errno(EROFS, Name() + " is mounted read-only"), {}};
    auto cl = Snapshot(/*need_quorum=*/true);
    const Mask up = UpMask(cl);
    if (!HasQuorum(up)) {
      return {Errno(EROFS, Name() + ": " + what + " refused: only " + std::to_string(Popcount(up)) +
                               " of " + std::to_string(n) + " bricks are up and writes need " +
                               QuorumText()),
              {}};
    }
    const uint64_t owner = NewOwner();
    const auto keys = LockKeys(lock);
    WaitPosts(keys);
    // The bricks that are down miss this op whatever happens: the pre-op accuses them already,
    // so that the markers are right from the moment the op is applied (see below).
    const Mask pre = all & ~up;
    std::string why;
    int agreed = 0;
    Mask read_only = 0;
    Mask locked = Lock(cl, up, lock, owner, type, &why, &agreed, pre, &read_only);
    if (read_only) {
      // A brick that refuses writes (its volume is a geo-replication secondary, or fenced for a
      // failover) means the volume takes none: the op is not done on the others either (the
      // bricks restart one by one when the volume turns read-only).
      Release(cl, locked, lock, owner, type, pre);
      return {Errno(EROFS, Name() + ": " + what + ": " + why), {}};
    }
    if (!HasQuorum(locked)) {
      Release(cl, locked, lock, owner, type, pre);
      if (agreed != 0) return {Errno(StaleIfGone(lock, agreed), Name() + ": " + what + ": " + why), {}};
      return {Errno(EROFS, Name() + ": " + what + ": could lock only " +
                               std::to_string(Popcount(locked)) + " of " + std::to_string(n) +
                               " bricks (" + why + "); writes need " + QuorumText()),
              {}};
    }
    auto out = Fan(cl, locked, op);
    Mask winners = 0;
    TxnResult r = Decide(what, out, locked, data_op, &winners, same_object);
    if (!r.status.ok() && r.status.sys_errno() == ENOENT && lock.op == Op::kInodelk) {
      r.status = Errno(ESTALE, r.status.message());
    }
    const Mask losers = all & ~winners;
    // Clean: every brick that was up took the lock and answered the op alike. Then the
    // pre-op's markers already say all there is (dirty on each of them, the bricks that were
    // down accused), and the post-op only takes "dirty" back: the caller is answered now and the
    // post-op and unlock follow without being waited for, as AFR answers before its post-op. A
    // client that dies in between leaves "dirty" on bricks that agree, which self-heal settles
    // by majority, and the accusations of the bricks that missed the op. Otherwise (a brick
    // failed or disagreed), the post-op accuses it before the caller hears of the outcome.
    bool clean = locked == up;
    for (size_t i = 0; clean && i < n; ++i) {
      if (!(locked & (1u << i))) continue;
      const size_t f = static_cast<size_t>(std::countr_zero(locked));
      clean = out[i].answered && out[i].reply.err == out[f].reply.err;
    }
    if (clean && losers == pre) {
      UnlockAsync(cl, locked, lock, owner, Deltas(type, -1, 0), keys);
      return r;
    }
    auto won = Deltas(type, -1, losers), lost = Deltas(type, -1, 0);
    for (size_t j = 0; j < n; ++j) {
      if (!(pre & (1u << j))) continue;
      const size_t k = brick_proto::PendingIndex(static_cast<int>(j), type);
      won[k] -= 1;  // the pre-op's accusation is already there
      lost[k] -= 1;
    }
    Unlock(cl, locked, lock, owner,
           [&](size_t i) { return (winners & (1u << i)) ? won : lost; });
    return r;
  }

  // ---- post-ops after the answer ----

  // What a lock request holds, as keys for `unlocking`.
  static std::vector<std::string> LockKeys(const Request& lock) {
    if (lock.op == Op::kInodelk) return {"i" + lock.gfid.ToString()};
    std::vector<std::string> v{"e" + lock.parent.ToString() + "/" + lock.name};
    if (!lock.new_parent.is_null()) {
      v.push_back("e" + lock.new_parent.ToString() + "/" + lock.new_name);
    }
    return v;
  }
  // Waits until this client's post-ops on `keys` are answered: until then the bricks still
  // hold those locks for it.
  void WaitPosts(const std::vector<std::string>& keys) {
    std::unique_lock<std::mutex> l(mu);
    settle_cv.wait(l, [&] {
      for (const auto& k : keys)
        if (unlocking.count(k)) return false;
      return true;
    });
  }
  void Settle() {
    std::unique_lock<std::mutex> l(mu);
    settle_cv.wait(l, [&] { return posts_inflight == 0; });
  }
  struct AsyncPost {
    std::atomic<int> remaining{0};
    std::vector<std::string> keys;
  };
  void FinishPost(const std::shared_ptr<AsyncPost>& p) {
    if (--p->remaining != 0) return;
    std::lock_guard<std::mutex> l(mu);
    for (const auto& k : p->keys) {
      auto it = unlocking.find(k);
      if (it != unlocking.end() && --it->second == 0) unlocking.erase(it);
    }
    --posts_inflight;
    settle_cv.notify_all();  // under mu: Settle() in the destructor cannot return before this
  }
  // Post-op `deltas` and unlock on the bricks in `mask`, answered in the background.
  void UnlockAsync(const std::vector<std::shared_ptr<BrickClient>>& cl, Mask mask,
                   const Request& lock, uint64_t owner, const std::vector<int32_t>& deltas,
                   const std::vector<std::string>& keys) {
    auto p = std::make_shared<AsyncPost>();
    p->keys = keys;
    int count = 0;
    for (size_t i = 0; i < n; ++i)
      if ((mask & (1u << i)) && cl[i]) ++count;
    if (count == 0) return;
    p->remaining = count;
    {
      std::lock_guard<std::mutex> l(mu);
      for (const auto& k : keys) ++unlocking[k];
      ++posts_inflight;
    }
    // Tests: the client "dies" between the answer and the post-op (nothing is sent; its locks
    // go when its connections close).
    const bool drop = DRFS_FAILPOINT("volume.client.before_post_op");
    for (size_t i = 0; i < n; ++i) {
      if (!(mask & (1u << i)) || !cl[i]) continue;
      if (drop) {
        FinishPost(p);
        continue;
      }
      Request q = lock;
      q.lock_owner = owner;
      q.flags = brick_proto::kLockUnlock;
      q.pending = deltas;
      // The callback holds no reference to the connection: run on the connection's own io
      // thread, it must never be the one to destroy it.
      cl[i]->Call(q, [this, p, i](Result<Reply> r) {
        if (!r.ok() || r->err != 0) {
          const std::string why = r.ok() ? r->message : r.status().message();
          DRFS_LOG(Warn) << Name() << ": post-op on brick " << slots[i].addr.name << " failed ("
                         << why << "); its markers stay for self-heal to settle";
          if (!r.ok()) NoteFailureOf(i, why);
        }
        FinishPost(p);
      });
    }
  }

  uint64_t NewOwner() { return owner_base + owner_seq.fetch_add(1); }

  // An op on an object by gfid that finds it gone gets ESTALE, as NFS does: the kernel then
  // looks the name up again and retries (a path whose file was replaced meanwhile).
  static int StaleIfGone(const Request& lock, int err) {
    return err == ENOENT && lock.op == Op::kInodelk ? ESTALE : err;
  }

  static Request InodeLock(const Gfid& g) {
    Request q;
    q.op = Op::kInodelk;
    q.gfid = g;
    return q;
  }
  static Request EntryLock(const Gfid& parent, std::string_view name) {
    Request q;
    q.op = Op::kEntrylk;
    q.parent = parent;
    q.name = std::string(name);
    return q;
  }

  Result<Iatt> EntryCreate(const std::string& what, const Gfid& parent, std::string_view name,
                           Request q) {
    if (q.gfid.is_null()) q.gfid = Gfid::Random();
    q.parent = parent;
    q.name = std::string(name);
    auto r = Transact(what, EntryLock(parent, name), brick_proto::kMarkEntry, false,
                      [&q](size_t) { return q; }, /*same_object=*/true);
    if (!r.status.ok()) return r.status;
    return r.reply.attr;
  }

  // ---- eager write transactions ----

  Result<std::shared_ptr<WriteTxn>> OpenTxn(const Gfid& g) {
    std::shared_ptr<WriteTxn> t;
    {
      std::unique_lock<std::mutex> l(mu);
      for (;;) {
        auto it = txns.find(g);
        if (it == txns.end()) break;
        t = it->second;
        if (t->closing) {
          t->cv.wait(l);
          t.reset();
          continue;
        }
        t->cv.wait(l, [&] { return !t->opening; });
        if (!t->open_error.ok()) return t->open_error;
        if (t->closing) {
          t.reset();
          continue;
        }
        ++t->inflight;
        return t;
      }
      t = std::make_shared<WriteTxn>();
      t->gfid = g;
      t->started = t->last_used = Clock::now();
      txns[g] = t;
    }
    // This thread opens it.
    WaitPosts(LockKeys(InodeLock(g)));
    auto cl = Snapshot(/*need_quorum=*/true);
    const Mask up = UpMask(cl);
    Status err;
    Mask locked = 0;
    const Mask pre = all & ~up;  // as in Transact: the pre-op accuses the bricks that are down
    const uint64_t owner = NewOwner();
    if (opts.read_only) {
      err = Errno(EROFS, Name() + " is mounted read-only");
    } else if (!HasQuorum(up) || !(up & ~ArbiterMask())) {
      err = Errno(EROFS, Name() + ": write to " + g.ToString() + " refused: only " +
                             std::to_string(Popcount(up)) + " of " + std::to_string(n) +
                             " bricks are up and writes need " + QuorumText());
    } else {
      std::string why;
      int agreed = 0;
      Mask read_only = 0;
      locked = Lock(cl, up, InodeLock(g), owner, brick_proto::kMarkData, &why, &agreed, pre, &read_only);
      if (read_only) {
        Release(cl, locked, InodeLock(g), owner, brick_proto::kMarkData, pre);
        locked = 0;
        err = Errno(EROFS, Name() + ": write to " + g.ToString() + ": " + why);
      } else if ((!HasQuorum(locked) || !(locked & ~ArbiterMask())) && agreed != 0) {
        Release(cl, locked, InodeLock(g), owner, brick_proto::kMarkData, pre);
        locked = 0;
        err = Errno(StaleIfGone(InodeLock(g), agreed), Name() + ": write to " + g.ToString() + ": " + why);
      } else if (!HasQuorum(locked) || !(locked & ~ArbiterMask())) {
        Release(cl, locked, InodeLock(g), owner, brick_proto::kMarkData, pre);
        err = Errno(EROFS, Name() + ": write to " + g.ToString() + ": could lock only " +
                               std::to_string(Popcount(locked)) + " bricks (" + why +
                               "); writes need " +
                               QuorumText());
      }
    }
    std::lock_guard<std::mutex> l(mu);
    t->opening = false;
    t->owner = owner;
    t->clients = cl;
    t->locked = locked;
    t->up = up;
    t->pre = pre;
    t->accuse.assign(n, 0);
    t->started = t->last_used = Clock::now();
    if (!err.ok()) {
      t->open_error = err;
      txns.erase(g);
      t->cv.notify_all();
      return err;
    }
    ++t->inflight;
    t->cv.notify_all();
    return t;
  }

  // Post-op and unlock; the transaction leaves the table.
  void CloseTxn(const std::shared_ptr<WriteTxn>& t) {
    {
      std::unique_lock<std::mutex> l(mu);
      t->cv.wait(l, [&] { return !t->opening; });
      auto gone = [&] {
        auto it = txns.find(t->gfid);
        return it == txns.end() || it->second != t;
      };
      if (gone()) return;
      if (t->closing) {
        t->cv.wait(l, gone);  // someone else closes it
        return;
      }
      t->closing = true;
      t->cv.wait(l, [&] { return t->inflight == 0; });
    }
    // Each brick that applied every write accuses the bricks it saw miss one, and the bricks
    // that were not in the transaction at all. A brick that missed a write keeps its "dirty"
    // (no post-op of its own), so self-heal looks at it even if every accuser is lost.
    const Mask winners = t->locked & ~t->failed;
    const Mask outside = all & ~t->locked;
    bool clean = t->failed == 0 && t->locked == t->up;
    for (size_t i = 0; clean && i < n; ++i) clean = t->accuse[i] == 0;
    if (clean) {
      // Every write reached every brick that was up, and the pre-op accused the others: only
      // "dirty" is left to take back, which need not be waited for (see Transact).
      UnlockAsync(t->clients, t->locked, InodeLock(t->gfid), t->owner,
                  Deltas(brick_proto::kMarkData, -1, 0), LockKeys(InodeLock(t->gfid)));
    } else {
      Unlock(t->clients, t->locked, InodeLock(t->gfid), t->owner, [&](size_t i) {
        if (!(winners & (1u << i))) return std::vector<int32_t>{};
        auto d = Deltas(brick_proto::kMarkData, -1, outside | t->accuse[i]);
        for (size_t j = 0; j < n; ++j)
          if (t->pre & (1u << j))
            d[brick_proto::PendingIndex(static_cast<int>(j), brick_proto::kMarkData)] -= 1;
        return d;
      });
    }
    AddStale(t->gfid, all & ~winners);
    std::lock_guard<std::mutex> l(mu);
    auto it = txns.find(t->gfid);
    if (it != txns.end() && it->second == t) txns.erase(it);
    t->cv.notify_all();
  }

  void FlushTxn(const Gfid& g) {
    std::shared_ptr<WriteTxn> t;
    {
      std::lock_guard<std::mutex> l(mu);
      auto it = txns.find(g);
      if (it == txns.end()) return;
      t = it->second;
    }
    CloseTxn(t);
  }
};

// ---------------------------------------------------------------------------------------------

VolumeClient::VolumeClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

VolumeClient::~VolumeClient() {
  std::vector<std::shared_ptr<WriteTxn>> open;
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    for (auto& [g, t] : impl_->txns) open.push_back(t);
  }
  for (auto& t : open) impl_->CloseTxn(t);
  impl_->Settle();
}

void VolumeClient::Settle() { impl_->Settle(); }

Result<std::unique_ptr<VolumeClient>> VolumeClient::Open(const Layout& layout,
                                                         const VolumeClientOptions& options) {
  if (layout.bricks.empty()) return InvalidArgument("volume " + layout.volume + " has no bricks");
  if (layout.replica < 1 || static_cast<size_t>(layout.replica) != layout.bricks.size()) {
    return Status(Code::kUnimplemented,
                  "volume " + layout.volume + " has " + std::to_string(layout.bricks.size()) +
                      " bricks in replica sets of " + std::to_string(layout.replica) +
                      "; this client serves exactly one replica set (distribution over several "
                      "is not built yet)",
                  EOPNOTSUPP);
  }
  if (layout.bricks.size() > kMaxBricks) {
    return InvalidArgument("volume " + layout.volume + " has more than 16 replicas");
  }
  auto impl = std::make_unique<Impl>();
  impl->opts = options;
  impl->layout = layout;
  impl->n = layout.bricks.size();
  impl->all = (impl->n == 32 ? ~0u : ((1u << impl->n) - 1));
  impl->slots.resize(impl->n);
  impl->connected_seq.assign(impl->n, 0);
  for (size_t i = 0; i < impl->n; ++i) impl->slots[i].addr = layout.bricks[i];
  {
    std::random_device rd;
    impl->owner_base = (static_cast<uint64_t>(rd()) << 32 | rd()) & ~0xFFFFFFFFull;
  }
  // First connections in parallel, so a dead brick costs one connect timeout, not n.
  std::vector<std::thread> th;
  for (size_t i = 0; i < impl->n; ++i) th.emplace_back([&impl, i] { impl->TryConnect(i); });
  for (auto& t : th) t.join();
  std::string why;
  bool any = false;
  for (auto& s : impl->slots) {
    if (s.client) any = true;
    else why += (why.empty() ? "" : "; ") + s.addr.name + ": " +
                (s.addr.port == 0 ? "not running" : s.last_error);
  }
  if (!any) {
    return Status(Code::kUnavailable,
                  "volume " + layout.volume + ": no brick can be reached (" + why +
                      "); check `drfs volume status " + layout.volume + "`",
                  ENOTCONN);
  }
  Impl* p = impl.get();
  impl->bg = std::thread([p] { p->Background(); });
  return std::unique_ptr<VolumeClient>(new VolumeClient(std::move(impl)));
}

Status VolumeClient::UpdateLayout(const Layout& layout) {
  std::lock_guard<std::mutex> l(impl_->mu);
  if (layout.bricks.size() != impl_->n) {
    return FailedPrecondition("volume " + layout.volume + " now has " +
                              std::to_string(layout.bricks.size()) + " bricks instead of " +
                              std::to_string(impl_->n) + "; remount to use the new layout");
  }
  for (size_t i = 0; i < impl_->n; ++i) {
    auto& s = impl_->slots[i];
    if (s.addr == layout.bricks[i]) continue;
    DRFS_LOG(Info) << impl_->Name() << ": brick " << layout.bricks[i].name << " now at "
                   << layout.bricks[i].host << ":" << layout.bricks[i].port;
    s.addr = layout.bricks[i];
    s.client.reset();  // in-flight users keep their reference
    s.next_try = Clock::now();
    s.backoff = std::chrono::milliseconds(100);
  }
  impl_->layout.generation = layout.generation;
  impl_->layout.quorum_type = layout.quorum_type;
  impl_->layout.quorum_count = layout.quorum_count;
  impl_->layout.bricks = layout.bricks;
  impl_->bg_cv.notify_all();
  return Status::Ok();
}

Layout VolumeClient::layout() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->layout;
}

// ---- namespace ----

Result<Iatt> VolumeClient::Lookup(const Gfid& parent, std::string_view name) {
  Request q;
  q.op = Op::kLookup;
  q.parent = parent;
  q.name = std::string(name);
  DRFS_ASSIGN_OR_RETURN(Reply r, impl_->LookupAll(q));
  return r.attr;
}

Result<Iatt> VolumeClient::Getattr(const Gfid& gfid) {
  Request q;
  q.op = Op::kGetattr;
  q.gfid = gfid;
  DRFS_ASSIGN_OR_RETURN(Reply r, impl_->LookupAll(q));
  return r.attr;
}

Result<Iatt> VolumeClient::Setattr(const Gfid& gfid, const SetattrArgs& a) {
  Request q;
  q.op = Op::kSetattr;
  q.gfid = gfid;
  q.attr_valid = a.valid;
  q.mode = a.mode;
  q.uid = a.uid;
  q.gid = a.gid;
  q.size = a.size;
  q.atime_ns = a.atime_ns;
  q.mtime_ns = a.mtime_ns;
  const bool data = (a.valid & brick_proto::kAttrSize) != 0;
  impl_->FlushTxn(gfid);  // our own eager write lock would make this op wait for it
  auto r = impl_->Transact("setattr of " + gfid.ToString(), Impl::InodeLock(gfid),
                           data ? brick_proto::kMarkData : brick_proto::kMarkMetadata, data,
                           [&q](size_t) { return q; });
  if (!r.status.ok()) return r.status;
  return r.reply.attr;
}

Result<Iatt> VolumeClient::Mkdir(const Gfid& parent, std::string_view name, uint32_t mode,
                                 uint32_t uid, uint32_t gid, const Gfid& gfid) {
  Request q;
  q.op = Op::kMkdir;
  q.gfid = gfid;
  q.mode = mode;
  q.uid = uid;
  q.gid = gid;
  return impl_->EntryCreate("mkdir " + std::string(name), parent, name, std::move(q));
}

Result<Iatt> VolumeClient::Create(const Gfid& parent, std::string_view name, uint32_t mode,
                                  uint32_t uid, uint32_t gid, bool exclusive, const Gfid& gfid) {
  Request q;
  q.op = Op::kCreate;
  q.gfid = gfid;
  q.mode = mode;
  q.uid = uid;
  q.gid = gid;
  q.flags = exclusive ? brick_proto::kCreateExclusive : 0;
  return impl_->EntryCreate("create " + std::string(name), parent, name, std::move(q));
}

Result<Iatt> VolumeClient::Mknod(const Gfid& parent, std::string_view name, uint32_t mode,
                                 uint64_t rdev, uint32_t uid, uint32_t gid, const Gfid& gfid) {
  Request q;
  q.op = Op::kMknod;
  q.gfid = gfid;
  q.mode = mode;
  q.rdev = rdev;
  q.uid = uid;
  q.gid = gid;
  return impl_->EntryCreate("mknod " + std::string(name), parent, name, std::move(q));
}

Result<Iatt> VolumeClient::Symlink(const Gfid& parent, std::string_view name,
                                   std::string_view target, uint32_t uid, uint32_t gid,
                                   const Gfid& gfid) {
  Request q;
  q.op = Op::kSymlink;
  q.gfid = gfid;
  q.target = std::string(target);
  q.mode = S_IFLNK | 0777;
  q.uid = uid;
  q.gid = gid;
  return impl_->EntryCreate("symlink " + std::string(name), parent, name, std::move(q));
}

Result<std::string> VolumeClient::Readlink(const Gfid& gfid) {
  Request q;
  q.op = Op::kReadlink;
  q.gfid = gfid;
  DRFS_ASSIGN_OR_RETURN(Reply r, impl_->ReadOp(gfid, q, /*arbiter_ok=*/true));
  return std::move(r.data);
}

Result<Iatt> VolumeClient::Link(const Gfid& gfid, const Gfid& new_parent,
                                std::string_view new_name) {
  Request q;
  q.op = Op::kLink;
  q.gfid = gfid;
  q.parent = new_parent;
  q.name = std::string(new_name);
  auto r = impl_->Transact("link " + std::string(new_name), Impl::EntryLock(new_parent, new_name),
                           brick_proto::kMarkEntry, false, [&q](size_t) { return q; });
  if (!r.status.ok()) return r.status;
  return r.reply.attr;
}

Status VolumeClient::Unlink(const Gfid& parent, std::string_view name) {
  Request q;
  q.op = Op::kUnlink;
  q.parent = parent;
  q.name = std::string(name);
  return impl_
      ->Transact("unlink " + std::string(name), Impl::EntryLock(parent, name),
                 brick_proto::kMarkEntry, false, [&q](size_t) { return q; })
      .status;
}

Status VolumeClient::Rmdir(const Gfid& parent, std::string_view name) {
  Request q;
  q.op = Op::kRmdir;
  q.parent = parent;
  q.name = std::string(name);
  return impl_
      ->Transact("rmdir " + std::string(name), Impl::EntryLock(parent, name),
                 brick_proto::kMarkEntry, false, [&q](size_t) { return q; })
      .status;
}

Status VolumeClient::Rename(const Gfid& parent, std::string_view name, const Gfid& new_parent,
                            std::string_view new_name, uint32_t flags) {
  Request q;
  q.op = Op::kRename;
  q.parent = parent;
  q.name = std::string(name);
  q.new_parent = new_parent;
  q.new_name = std::string(new_name);
  q.flags = flags;
  Request lock = Impl::EntryLock(parent, name);
  lock.new_parent = new_parent;
  lock.new_name = std::string(new_name);
  return impl_
      ->Transact("rename " + std::string(name) + " to " + std::string(new_name), lock,
                 brick_proto::kMarkEntry, false, [&q](size_t) { return q; })
      .status;
}

Result<ReaddirPage> VolumeClient::Readdir(const Gfid& dir, uint64_t cookie, uint32_t max_entries,
                                          bool plus) {
  Request q;
  q.op = Op::kReaddir;
  q.gfid = dir;
  q.offset = cookie;
  q.length = std::min<uint32_t>(max_entries, brick_proto::kMaxDirEntries);
  q.flags = plus ? brick_proto::kReaddirPlus : 0;
  // Cookies belong to the brick that made them: a listing that started on one brick continues
  // there. The read brick of a directory only changes when a brick fails or turns stale.
  auto cl = impl_->Snapshot();
  impl_->FreshStale(dir, cl);
  auto order = impl_->ReadOrder(cl, dir, /*arbiter_ok=*/!plus);
  if (cookie != 0 && !order.empty()) order.resize(1);
  std::vector<Outcome> out(impl_->n);
  for (size_t i : order) {
    out[i] = impl_->One(cl[i], q, i);
    if (!out[i].answered) continue;
    if (out[i].reply.err != 0) return Errno(out[i].reply.err, out[i].reply.message);
    ReaddirPage p;
    p.entries = std::move(out[i].reply.entries);
    p.eof = out[i].reply.eof;
    return p;
  }
  return impl_->NoBrickError("readdir of " + dir.ToString(), out);
}

// ---- data ----

Result<std::string> VolumeClient::Read(const Gfid& gfid, uint64_t offset, uint64_t length) {
  Request q;
  q.op = Op::kRead;
  q.gfid = gfid;
  q.offset = offset;
  q.length = length;
  DRFS_ASSIGN_OR_RETURN(Reply r, impl_->ReadOp(gfid, q));
  return std::move(r.data);
}

Result<Iatt> VolumeClient::Write(const Gfid& gfid, uint64_t offset, std::string data) {
  DRFS_ASSIGN_OR_RETURN(std::shared_ptr<WriteTxn> t, impl_->OpenTxn(gfid));
  const uint64_t end = offset + data.size();
  Mask targets;
  {
    // Overlapping writes in flight would land in different orders on different bricks: wait.
    std::unique_lock<std::mutex> l(impl_->mu);
    t->cv.wait(l, [&] {
      for (auto& [s, e] : t->ranges)
        if (s < end && offset < e) return false;
      return true;
    });
    t->ranges.emplace_back(offset, end);
    targets = t->locked & ~t->failed;
  }
  Request q;
  q.op = Op::kWrite;
  q.gfid = gfid;
  q.offset = offset;
  q.data = std::move(data);
  auto out = impl_->FanSame(t->clients, targets, q);
  Mask ok = 0;
  for (size_t i = 0; i < impl_->n; ++i)
    if ((targets & (1u << i)) && out[i].ok()) ok |= 1u << i;
  const Mask data_bricks = impl_->all & ~impl_->ArbiterMask();
  Result<Iatt> result = Errno(EIO, "");
  if (impl_->HasQuorum(ok) && (ok & data_bricks)) {
    Mask pick = ok & data_bricks;
    result = out[static_cast<size_t>(std::countr_zero(pick))].reply.attr;
  } else {
    std::string detail;
    int first_err = 0;
    for (size_t i = 0; i < impl_->n; ++i) {
      if (!(targets & (1u << i)) || out[i].ok()) continue;
      if (out[i].answered && first_err == 0) first_err = out[i].reply.err;
      detail += (detail.empty() ? "" : ", ") + impl_->slots[i].addr.name + ": " +
                (out[i].answered ? out[i].reply.message : out[i].transport_error);
    }
    result = Errno(ok == 0 && first_err != 0 ? (first_err == ENOENT ? ESTALE : first_err) : EIO,
                   impl_->Name() + ": write to " + gfid.ToString() + " succeeded on " +
                       std::to_string(Popcount(ok)) + " bricks (" + detail + "); writes need " +
                       impl_->QuorumText() + " including a data brick");
  }
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    t->failed |= targets & ~ok;
    for (size_t i = 0; i < impl_->n; ++i)
      if (ok & (1u << i)) t->accuse[i] |= targets & ~ok;
    auto it = std::find(t->ranges.begin(), t->ranges.end(), std::make_pair(offset, end));
    if (it != t->ranges.end()) t->ranges.erase(it);
    --t->inflight;
    t->last_used = Clock::now();
    t->cv.notify_all();
  }
  if (targets & ~ok) {
    impl_->AddStale(gfid, targets & ~ok);
    impl_->bg_cv.notify_all();
  }
  return result;
}

Result<Iatt> VolumeClient::Fallocate(const Gfid& gfid, uint32_t mode, uint64_t offset,
                                     uint64_t length) {
  impl_->FlushTxn(gfid);
  Request q;
  q.op = Op::kFallocate;
  q.gfid = gfid;
  q.flags = mode;
  q.offset = offset;
  q.length = length;
  auto r = impl_->Transact("fallocate of " + gfid.ToString(), Impl::InodeLock(gfid),
                           brick_proto::kMarkData, true, [&q](size_t) { return q; });
  if (!r.status.ok()) return r.status;
  return r.reply.attr;
}

Status VolumeClient::Fsync(const Gfid& gfid, bool datasync) {
  impl_->FlushTxn(gfid);
  Request q;
  q.op = Op::kFsync;
  q.gfid = gfid;
  q.flags = datasync ? 1 : 0;
  auto cl = impl_->Snapshot();
  Mask stale = impl_->FreshStale(gfid, cl);
  auto out = impl_->FanSame(cl, Impl::UpMask(cl) & ~stale, q);
  Mask ok = 0;
  for (size_t i = 0; i < impl_->n; ++i)
    if (out[i].ok()) ok |= 1u << i;
  if (impl_->HasQuorum(ok)) return Status::Ok();
  for (size_t i = 0; i < impl_->n; ++i)
    if (out[i].answered && out[i].reply.err != 0)
      return Errno(out[i].reply.err, out[i].reply.message);
  return Errno(EIO, impl_->Name() + ": fsync of " + gfid.ToString() + " reached " +
                        std::to_string(Popcount(ok)) + " bricks; durability needs " +
                        impl_->QuorumText());
}

Status VolumeClient::Flush(const Gfid& gfid) {
  impl_->FlushTxn(gfid);
  return Status::Ok();
}

// ---- xattrs ----

Result<std::string> VolumeClient::Getxattr(const Gfid& gfid, std::string_view name) {
  Request q;
  q.op = Op::kGetxattr;
  q.gfid = gfid;
  q.xattr_name = std::string(name);
  DRFS_ASSIGN_OR_RETURN(Reply r, impl_->ReadOp(gfid, q, /*arbiter_ok=*/true));
  return std::move(r.data);
}

Status VolumeClient::Setxattr(const Gfid& gfid, std::string_view name, std::string_view value,
                              uint32_t flags) {
  Request q;
  q.op = Op::kSetxattr;
  q.gfid = gfid;
  q.xattr_name = std::string(name);
  q.xattr_value = std::string(value);
  q.flags = flags;
  impl_->FlushTxn(gfid);
  return impl_
      ->Transact("setxattr " + std::string(name), Impl::InodeLock(gfid),
                 brick_proto::kMarkMetadata, false, [&q](size_t) { return q; })
      .status;
}

Result<std::vector<std::string>> VolumeClient::Listxattr(const Gfid& gfid) {
  Request q;
  q.op = Op::kListxattr;
  q.gfid = gfid;
  DRFS_ASSIGN_OR_RETURN(Reply r, impl_->ReadOp(gfid, q, /*arbiter_ok=*/true));
  return std::move(r.names);
}

Status VolumeClient::Removexattr(const Gfid& gfid, std::string_view name) {
  Request q;
  q.op = Op::kRemovexattr;
  q.gfid = gfid;
  q.xattr_name = std::string(name);
  impl_->FlushTxn(gfid);
  return impl_
      ->Transact("removexattr " + std::string(name), Impl::InodeLock(gfid),
                 brick_proto::kMarkMetadata, false, [&q](size_t) { return q; })
      .status;
}

Result<StatfsInfo> VolumeClient::Statfs() {
  Request q;
  q.op = Op::kStatfs;
  q.gfid = Gfid::Root();
  DRFS_ASSIGN_OR_RETURN(Reply r, impl_->ReadOp(Gfid::Root(), q));
  return r.statfs;
}

Status VolumeClient::Access(const Gfid& gfid, uint32_t mask) {
  Request q;
  q.op = Op::kAccess;
  q.gfid = gfid;
  q.flags = mask;
  return impl_->ReadOp(gfid, q, /*arbiter_ok=*/true).status();
}

std::vector<BrickHealth> VolumeClient::Health() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  std::vector<BrickHealth> v;
  for (auto& s : impl_->slots) {
    BrickHealth h;
    h.name = s.addr.name;
    h.arbiter = s.addr.arbiter;
    h.connected = s.client && !s.client->lost();
    h.last_error = s.last_error;
    v.push_back(std::move(h));
  }
  return v;
}

size_t VolumeClient::brick_count() const { return impl_->n; }

std::shared_ptr<brick::BrickClient> VolumeClient::brick(size_t i) {
  if (i >= impl_->n) return nullptr;
  return impl_->Snapshot()[i];
}

bool VolumeClient::is_arbiter(size_t i) const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return i < impl_->n && impl_->slots[i].addr.arbiter;
}

uint64_t VolumeClient::NewLockOwner() { return impl_->NewOwner(); }

}  // namespace drfs::volume
