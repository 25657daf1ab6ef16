// BrickServer over loopback: ops through BrickClient, payloads that do not decode, the cap on
// requests waiting for the disk, and locks and markers as clients on separate connections see
// them.
#include "brick/server.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <set>
#include <thread>
#include <vector>

#include "brick/client.h"
#include "brick/locks.h"
#include "common/failpoint.h"
#include "common/wire.h"
#include "tests/common/test_util.h"

namespace drfs::brick {
namespace {

using brick_proto::Op;
using brick_proto::Reply;
using brick_proto::Request;
using drfs::testing::TempDir;

std::unique_ptr<BrickServer> Serve(const std::string& dir, size_t max_queued = 256u << 20,
                                   int disk_threads = 4,
                                   const std::function<void(BrickServerOptions&)>& tweak = {}) {
  ::mkdir(dir.c_str(), 0755);
  BrickServerOptions o;
  o.dir = dir;
  o.disk_threads = disk_threads;
  o.max_queued_bytes = max_queued;
  o.backend.journal.fsync_policy = changelog::FsyncPolicy::kNever;
  if (tweak) tweak(o);
  auto s = BrickServer::Start(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

TEST(BrickServer, ServesOpsAndReportsErrnos) {
  TempDir t;
  auto s = Serve(t.Sub("b"));
  ASSERT_NE(s, nullptr);
  auto c = BrickClient::Connect("127.0.0.1", s->port());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ((*c)->brick_id(), s->backend()->brick_id().ToString());
  Gfid d = Gfid::Random(), f = Gfid::Random();
  ASSERT_TRUE((*c)->Mkdir(Gfid::Root(), "docs", d, 0755).ok());
  ASSERT_TRUE((*c)->Create(d, "a", f, 0644).ok());
  auto n = (*c)->Write(f, 0, "hello");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 5u);
  auto data = (*c)->Read(f, 0, 100);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, "hello");
  auto again = (*c)->Mkdir(Gfid::Root(), "docs", Gfid::Random(), 0755);
  EXPECT_EQ(again.status().sys_errno(), EEXIST);
  EXPECT_NE(again.status().message().find("MKDIR on brick 127.0.0.1:"), std::string::npos)
      << again.status().message();
  auto entries = (*c)->ReaddirAll(Gfid::Root());
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].name, "docs");
}

TEST(BrickServer, APayloadThatDoesNotDecodeGetsEprotoAndTheConnectionStaysUsable) {
  TempDir t;
  auto s = Serve(t.Sub("b"));
  ASSERT_NE(s, nullptr);
  auto rpc = RpcClient::Connect("127.0.0.1", s->port(), {});
  ASSERT_TRUE(rpc.ok());
  auto bad = (*rpc)->Call(static_cast<uint16_t>(Op::kGetattr), std::string("short")).get();
  ASSERT_TRUE(bad.ok()) << bad.status().ToString();
  Reply r;
  ASSERT_TRUE(brick_proto::DecodeReply(Op::kGetattr, bad->payload, &r).ok());
  EXPECT_EQ(r.err, EPROTO);
  std::string ok;
  Request q;
  q.op = Op::kGetattr;
  q.gfid = Gfid::Root();
  brick_proto::EncodeRequest(q, &ok);
  auto good = (*rpc)->Call(static_cast<uint16_t>(Op::kGetattr), ok).get();
  ASSERT_TRUE(good.ok());
  ASSERT_TRUE(brick_proto::DecodeReply(Op::kGetattr, good->payload, &r).ok());
  EXPECT_EQ(r.err, 0);
  EXPECT_EQ(r.attr.gfid, Gfid::Root());
}

TEST(BrickServer, RequestsPastTheQueueCapGetEagainInsteadOfGrowingMemory) {
  if (!failpoint::CompiledIn()) GTEST_SKIP() << "failure probes are compiled out";
  TempDir t;
  // A 3 MiB cap, one disk thread held 300 ms per request: of 12 pipelined 1 MiB writes, only
  // those that fit under the cap are queued; the rest are refused at once.
  auto s = Serve(t.Sub("b"), 3u << 20, 1);
  ASSERT_NE(s, nullptr);
  auto c = BrickClient::Connect("127.0.0.1", s->port());
  ASSERT_TRUE(c.ok());
  Gfid f = Gfid::Random();
  ASSERT_TRUE((*c)->Create(Gfid::Root(), "big", f, 0644).ok());
  ASSERT_TRUE(failpoint::Set("brick.server.execute", "delay(300)"));
  std::vector<std::future<Result<Reply>>> inflight;
  for (int i = 0; i < 12; ++i) {
    Request w;
    w.op = Op::kWrite;
    w.gfid = f;
    w.offset = static_cast<uint64_t>(i) << 20;
    w.data = std::string(1 << 20, 'w');
    inflight.push_back((*c)->Call(w));
  }
  int done = 0, busy = 0;
  for (auto& fut : inflight) {
    auto r = fut.get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    if (r->err == 0) {
      ++done;
    } else if (r->err == EAGAIN) {
      ++busy;
      EXPECT_NE(r->message.find("retry"), std::string::npos) << r->message;
    } else {
      ADD_FAILURE() << r->message;
    }
  }
  EXPECT_GT(done, 0);
  EXPECT_GT(busy, 0) << "nothing was refused: the cap did not hold";
  failpoint::ClearAll();
  // The brick recovers: once the queue drains, writes go through again.
  auto later = (*c)->Write(f, 0, "x");
  EXPECT_TRUE(later.ok()) << later.status().ToString();
}

// ---- Locks and markers -------------------------------------------------------------------------

using namespace std::chrono_literals;
using brick_proto::kLockBlocking;
using brick_proto::kLockUnlock;

// Hang guard for waits that normally end at once. Never a pass/fail timing assertion.
constexpr auto kHangGuard = 60s;

std::unique_ptr<BrickClient> Client(const BrickServer& s) {
  ClientOptions o;
  o.request_timeout = kHangGuard;
  auto c = BrickClient::Connect("127.0.0.1", const_cast<BrickServer&>(s).port(), {}, o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(*c) : nullptr;
}

Request Inodelk(const Gfid& g, uint32_t flags, uint64_t owner = 7,
                std::vector<int32_t> pending = {}) {
  Request q;
  q.op = Op::kInodelk;
  q.gfid = g;
  q.flags = flags;
  q.lock_owner = owner;
  q.pending = std::move(pending);
  return q;
}

Request Entrylk(const Gfid& parent, const std::string& name, uint32_t flags, uint64_t owner = 7,
                std::vector<int32_t> pending = {}, const Gfid& new_parent = Gfid(),
                const std::string& new_name = "") {
  Request q;
  q.op = Op::kEntrylk;
  q.parent = parent;
  q.name = name;
  q.new_parent = new_parent;
  q.new_name = new_name;
  q.flags = flags;
  q.lock_owner = owner;
  q.pending = std::move(pending);
  return q;
}

// The reply of a call expected to be answered, with a hang guard.
Reply Get(std::future<Result<Reply>>& f) {
  if (f.wait_for(kHangGuard) != std::future_status::ready) {
    ADD_FAILURE() << "no reply (hang guard)";
    return brick_proto::ErrorReply(ETIMEDOUT, "hang guard");
  }
  auto r = f.get();
  if (!r.ok()) {
    ADD_FAILURE() << r.status().ToString();
    return brick_proto::ErrorReply(EIO, r.status().ToString());
  }
  return *r;
}
Reply Sync(BrickClient& c, const Request& q) {
  auto f = c.Call(q);
  return Get(f);
}
bool Answered(std::future<Result<Reply>>& f) {
  return f.wait_for(0s) == std::future_status::ready;
}

// Waits (hang guard) until `pred` holds; lock requests reach the brick asynchronously.
bool Eventually(const std::function<bool()>& pred) {
  auto deadline = std::chrono::steady_clock::now() + kHangGuard;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

class BrickLocks : public ::testing::Test {
 protected:
  void SetUp() override {
    s_ = Serve(t_.Sub("b"));
    ASSERT_NE(s_, nullptr);
    a_ = Client(*s_);
    ASSERT_NE(a_, nullptr);
    ASSERT_TRUE(a_->Mkdir(Gfid::Root(), "d", d_, 0755).ok());
    ASSERT_TRUE(a_->Create(d_, "f", f_, 0644).ok());
  }
  LockManager& locks() { return *s_->locks(); }

  TempDir t_;
  std::unique_ptr<BrickServer> s_;
  std::unique_ptr<BrickClient> a_;
  const Gfid d_ = Gfid::Random(), f_ = Gfid::Random();
};

TEST_F(BrickLocks, BlockingWaitersOnOtherConnectionsAreGrantedInArrivalOrder) {
  ASSERT_EQ(Sync(*a_, Inodelk(f_, kLockBlocking)).err, 0);
  // Three more clients, the same lock_owner number each: owners differ by connection.
  std::vector<std::unique_ptr<BrickClient>> c;
  std::vector<std::future<Result<Reply>>> waits;
  for (size_t i = 0; i < 3; ++i) {
    c.push_back(Client(*s_));
    ASSERT_NE(c.back(), nullptr);
    waits.push_back(c.back()->Call(Inodelk(f_, kLockBlocking)));
    ASSERT_TRUE(Eventually([&] { return locks().waiting_count() == i + 1; }));
  }
  ASSERT_EQ(Sync(*a_, Inodelk(f_, kLockUnlock)).err, 0);
  for (size_t i = 0; i < 3; ++i) {
    Reply r = Get(waits[i]);
    EXPECT_EQ(r.err, 0) << r.message;
    for (size_t j = i + 1; j < 3; ++j)
      EXPECT_FALSE(Answered(waits[j])) << j << " before " << i;
    EXPECT_EQ(locks().waiting_count(), 2 - i);
    ASSERT_EQ(Sync(*c[i], Inodelk(f_, kLockUnlock)).err, 0);
  }
  EXPECT_EQ(locks().held_count(), 0u);
}

TEST_F(BrickLocks, NonBlockingGetsEagainAtOnce) {
  ASSERT_EQ(Sync(*a_, Inodelk(f_, 0)).err, 0);
  auto b = Client(*s_);
  Reply r = Sync(*b, Inodelk(f_, 0));
  EXPECT_EQ(r.err, EAGAIN);
  EXPECT_NE(r.message.find("INODELK gfid " + f_.ToString()), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("conflicting"), std::string::npos) << r.message;
  // The same owner on the same connection relocks; another owner there does not.
  EXPECT_EQ(Sync(*a_, Inodelk(f_, 0)).err, 0);
  EXPECT_EQ(Sync(*a_, Inodelk(f_, 0, /*owner=*/8)).err, EAGAIN);
  EXPECT_EQ(locks().held_count(), 1u);
  // Unlocking what it does not hold is fine.
  EXPECT_EQ(Sync(*b, Inodelk(f_, kLockUnlock)).err, 0);
  EXPECT_EQ(Sync(*b, Inodelk(f_, 0)).err, EAGAIN);
}

// The service lock space (the geo-rep syncers' election) has no object behind it: its locks are
// granted, conflict with each other by name, and never with a real directory's locks (self-heal
// of the root takes the whole root); markers there are refused.
TEST_F(BrickLocks, TheServiceLockSpaceLocksNoObject) {
  auto b = Client(*s_);
  const Gfid& space = brick_proto::ServiceLockSpace();
  ASSERT_EQ(Sync(*a_, Entrylk(space, ".drfs-georep-gs-rs0", 0)).err, 0);
  EXPECT_EQ(Sync(*b, Entrylk(space, ".drfs-georep-gs-rs0", 0)).err, EAGAIN);
  EXPECT_EQ(Sync(*b, Entrylk(Gfid::Root(), "", 0)).err, 0) << "the root's whole-directory lock";
  EXPECT_EQ(Sync(*b, Entrylk(space, "x", 0, 7, {0, 0, 1})).err, EINVAL);
  ASSERT_EQ(Sync(*b, Entrylk(Gfid::Root(), "", kLockUnlock)).err, 0);
  ASSERT_EQ(Sync(*a_, Entrylk(space, ".drfs-georep-gs-rs0", kLockUnlock)).err, 0);
  EXPECT_EQ(Sync(*b, Entrylk(space, ".drfs-georep-gs-rs0", 0)).err, 0);
}

TEST_F(BrickLocks, EntryLocksTakeBothKeysAtOnceAndAWholeDirectoryConflictsWithNames) {
  auto b = Client(*s_);
  auto c = Client(*s_);
  ASSERT_EQ(Sync(*a_, Entrylk(Gfid::Root(), "a", 0)).err, 0);
  // Rename-style: (root, a) and (d, b). Busy, so non-blocking takes neither.
  EXPECT_EQ(Sync(*b, Entrylk(Gfid::Root(), "a", 0, 7, {}, d_, "b")).err, EAGAIN);
  EXPECT_EQ(locks().held_count(), 1u);
  auto both = b->Call(Entrylk(Gfid::Root(), "a", kLockBlocking, 7, {}, d_, "b"));
  ASSERT_TRUE(Eventually([&] { return locks().waiting_count() == 1; }));
  EXPECT_EQ(locks().held_count(), 1u) << "the free key is not taken while waiting";
  // The whole of d conflicts with the name b waits for, and queues behind it.
  EXPECT_EQ(Sync(*c, Entrylk(d_, "", 0)).err, EAGAIN);
  ASSERT_EQ(Sync(*a_, Entrylk(Gfid::Root(), "a", kLockUnlock)).err, 0);
  EXPECT_EQ(Get(both).err, 0);
  EXPECT_EQ(locks().held_count(), 2u);
  EXPECT_EQ(Sync(*c, Entrylk(d_, "", 0)).err, EAGAIN);
  EXPECT_EQ(Sync(*c, Entrylk(d_, "other", 0)).err, 0) << "another name of d is free";
  ASSERT_EQ(Sync(*b, Entrylk(Gfid::Root(), "a", kLockUnlock, 7, {}, d_, "b")).err, 0);
  ASSERT_EQ(Sync(*c, Entrylk(d_, "other", kLockUnlock)).err, 0);
  EXPECT_EQ(Sync(*c, Entrylk(d_, "", 0)).err, 0);
  EXPECT_EQ(Sync(*a_, Entrylk(d_, "x", 0)).err, EAGAIN);
  // Inode locks live apart from entry locks.
  EXPECT_EQ(Sync(*a_, Inodelk(d_, 0)).err, 0);
}

TEST_F(BrickLocks, ClosingAConnectionReleasesItsLocksAndItsWaits) {
  auto b = Client(*s_);
  auto c = Client(*s_);
  ASSERT_EQ(Sync(*a_, Inodelk(f_, kLockBlocking)).err, 0);
  auto b_wait = b->Call(Inodelk(f_, kLockBlocking));
  ASSERT_TRUE(Eventually([&] { return locks().waiting_count() == 1; }));
  // A goes away holding the lock: B gets it.
  a_.reset();
  Reply r = Get(b_wait);
  EXPECT_EQ(r.err, 0) << r.message;
  // C waits, then goes away: its wait is dropped, not granted later.
  auto c_wait = c->Call(Inodelk(f_, kLockBlocking));
  ASSERT_TRUE(Eventually([&] { return locks().waiting_count() == 1; }));
  c.reset();
  ASSERT_TRUE(Eventually([&] { return locks().waiting_count() == 0; }));
  ASSERT_EQ(Sync(*b, Inodelk(f_, kLockUnlock)).err, 0);
  EXPECT_EQ(locks().held_count(), 0u);
  auto d = Client(*s_);
  EXPECT_EQ(Sync(*d, Inodelk(f_, 0)).err, 0);
}

TEST_F(BrickLocks, UnlockCancelsTheOwnersWait) {
  auto b = Client(*s_);
  ASSERT_EQ(Sync(*a_, Inodelk(f_, kLockBlocking)).err, 0);
  auto wait = b->Call(Inodelk(f_, kLockBlocking, /*owner=*/5));
  ASSERT_TRUE(Eventually([&] { return locks().waiting_count() == 1; }));
  // Another owner's unlock on the same connection cancels nothing.
  EXPECT_EQ(Sync(*b, Inodelk(f_, kLockUnlock, /*owner=*/6)).err, 0);
  EXPECT_EQ(locks().waiting_count(), 1u);
  EXPECT_EQ(Sync(*b, Inodelk(f_, kLockUnlock, /*owner=*/5)).err, 0);
  Reply r = Get(wait);
  EXPECT_EQ(r.err, ECANCELED);
  EXPECT_NE(r.message.find("cancelled"), std::string::npos) << r.message;
  EXPECT_EQ(locks().waiting_count(), 0u);
  EXPECT_EQ(locks().held_count(), 1u);
}

TEST_F(BrickLocks, LocksApplyTheirPreOpAndUnlocksTheirPostOp) {
  // Inode lock: dirty-data pre-op, cleared by the unlock's post-op.
  Reply r = Sync(*a_, Inodelk(f_, kLockBlocking, 7, {1, 0, 0}));
  ASSERT_EQ(r.err, 0) << r.message;
  EXPECT_EQ(r.pending, (std::vector<int32_t>{1, 0, 0}));
  Request g;
  g.op = Op::kGetattr;
  g.gfid = f_;
  EXPECT_EQ(Sync(*a_, g).pending, (std::vector<int32_t>{1, 0, 0}));
  Request l;
  l.op = Op::kLookup;
  l.parent = d_;
  l.name = "f";
  EXPECT_EQ(Sync(*a_, l).pending, (std::vector<int32_t>{1, 0, 0}));
  EXPECT_EQ(*a_->HealIndexAll(), std::vector<Gfid>{f_});
  r = Sync(*a_, Inodelk(f_, kLockUnlock, 7, {-1, 0, 0}));
  ASSERT_EQ(r.err, 0) << r.message;
  EXPECT_TRUE(r.pending.empty());
  EXPECT_TRUE(a_->HealIndexAll()->empty());
  EXPECT_EQ(locks().held_count(), 0u);
  // A plain lock reports the markers as they are.
  ASSERT_TRUE(a_->Xattrop(f_, {0, 0, 0, 2}).ok());
  r = Sync(*a_, Inodelk(f_, 0));
  EXPECT_EQ(r.pending, (std::vector<int32_t>{0, 0, 0, 2}));
  ASSERT_EQ(Sync(*a_, Inodelk(f_, kLockUnlock)).err, 0);

  // Entry lock across two directories: both parents get the deltas; the reply has the first's.
  r = Sync(*a_, Entrylk(Gfid::Root(), "x", kLockBlocking, 7, {0, 0, 1}, d_, "y"));
  ASSERT_EQ(r.err, 0) << r.message;
  EXPECT_EQ(r.pending, (std::vector<int32_t>{0, 0, 1}));
  g.gfid = d_;
  EXPECT_EQ(Sync(*a_, g).pending, (std::vector<int32_t>{0, 0, 1}));
  g.gfid = Gfid::Root();
  EXPECT_EQ(Sync(*a_, g).pending, (std::vector<int32_t>{0, 0, 1}));
  r = Sync(*a_, Entrylk(Gfid::Root(), "x", kLockUnlock, 7, {0, 0, -1}, d_, "y"));
  ASSERT_EQ(r.err, 0) << r.message;
  EXPECT_TRUE(r.pending.empty());
  g.gfid = d_;
  EXPECT_TRUE(Sync(*a_, g).pending.empty());
  EXPECT_EQ(locks().held_count(), 0u);
}

TEST_F(BrickLocks, AFailedPreOpLeavesNothingLockedOrMarked) {
  // No such object: the lock is not kept.
  const Gfid missing = Gfid::Random();
  Reply r = Sync(*a_, Inodelk(missing, kLockBlocking, 7, {1}));
  EXPECT_EQ(r.err, ENOENT) << r.message;
  EXPECT_EQ(locks().held_count(), 0u);
  EXPECT_EQ(Sync(*a_, Inodelk(missing, 0)).err, ENOENT) << "its markers cannot be read";
  EXPECT_EQ(locks().held_count(), 0u);
  // Two directories, the second missing: the first's deltas are taken back.
  r = Sync(*a_, Entrylk(d_, "n", kLockBlocking, 7, {0, 0, 1}, missing, "m"));
  EXPECT_EQ(r.err, ENOENT) << r.message;
  EXPECT_EQ(locks().held_count(), 0u);
  Request g;
  g.op = Op::kGetattr;
  g.gfid = d_;
  EXPECT_TRUE(Sync(*a_, g).pending.empty());
  // A lock held before a failed relock stays held.
  ASSERT_EQ(Sync(*a_, Entrylk(d_, "n", 0)).err, 0);
  EXPECT_EQ(Sync(*a_, Entrylk(d_, "n", 0, 7, {1}, missing, "m")).err, ENOENT);
  EXPECT_EQ(locks().held_count(), 1u);
  auto b = Client(*s_);
  EXPECT_EQ(Sync(*b, Entrylk(d_, "n", 0)).err, EAGAIN);
}

TEST_F(BrickLocks, UnlockingAFileRemovedWhileLockedStillUnlocks) {
  ASSERT_EQ(Sync(*a_, Inodelk(f_, kLockBlocking, 7, {1})).err, 0);
  ASSERT_TRUE(a_->Unlink(d_, "f").ok());
  Reply r = Sync(*a_, Inodelk(f_, kLockUnlock, 7, {-1}));
  EXPECT_EQ(r.err, 0) << r.message;
  EXPECT_EQ(locks().held_count(), 0u);
  EXPECT_TRUE(a_->HealIndexAll()->empty()) << "the removed file's entry is dropped";
}

TEST_F(BrickLocks, BadLockRequestsAreAnsweredNotDropped) {
  auto rpc = RpcClient::Connect("127.0.0.1", s_->port(), {});
  ASSERT_TRUE(rpc.ok());
  auto bad = (*rpc)->Call(static_cast<uint16_t>(Op::kInodelk), std::string("short")).get();
  ASSERT_TRUE(bad.ok()) << bad.status().ToString();
  Reply r;
  ASSERT_TRUE(brick_proto::DecodeReply(Op::kInodelk, bad->payload, &r).ok());
  EXPECT_EQ(r.err, EPROTO);
  EXPECT_EQ(Sync(*a_, Inodelk(Gfid(), 0)).err, EINVAL);
  EXPECT_EQ(Sync(*a_, Inodelk(f_, 1u << 7)).err, EINVAL);
  EXPECT_EQ(Sync(*a_, Entrylk(Gfid(), "x", 0)).err, EINVAL);
  EXPECT_EQ(Sync(*a_, Entrylk(d_, "a/b", 0)).err, EINVAL);
  EXPECT_EQ(Sync(*a_, Entrylk(d_, "..", 0)).err, EINVAL);
  EXPECT_EQ(locks().held_count(), 0u);
  // The connection that sent garbage still works.
  std::string ok;
  brick_proto::EncodeRequest(Inodelk(f_, 0), &ok);
  auto good = (*rpc)->Call(static_cast<uint16_t>(Op::kInodelk), ok).get();
  ASSERT_TRUE(good.ok());
  ASSERT_TRUE(brick_proto::DecodeReply(Op::kInodelk, good->payload, &r).ok());
  EXPECT_EQ(r.err, 0) << r.message;
}

TEST_F(BrickLocks, StoppingWithWaitersEndsEveryWaitAndDropsEveryLock) {
  auto b = Client(*s_);
  ASSERT_EQ(Sync(*a_, Inodelk(f_, kLockBlocking)).err, 0);
  auto wait = b->Call(Inodelk(f_, kLockBlocking));
  ASSERT_TRUE(Eventually([&] { return locks().waiting_count() == 1; }));
  s_->Stop();
  EXPECT_EQ(locks().waiting_count(), 0u);
  EXPECT_EQ(locks().held_count(), 0u);
  // B's wait ends: either its connection closed first (Unavailable), or A's did and B was
  // granted just before its own closed, which released it again; a client that loses its
  // connection has lost its locks either way.
  ASSERT_EQ(wait.wait_for(kHangGuard), std::future_status::ready);
  auto r = wait.get();
  if (!r.ok()) {
    EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
  } else {
    EXPECT_EQ(r->err, 0) << r->message;
  }
}

TEST(BrickServerMarkers, XattropLookupsAndHealIndexOverTcp) {
  TempDir t;
  auto s = Serve(t.Sub("b"));
  ASSERT_NE(s, nullptr);
  auto c = Client(*s);
  ASSERT_NE(c, nullptr);
  std::vector<Gfid> files;
  for (int i = 0; i < 10; ++i) {
    files.push_back(Gfid::Random());
    ASSERT_TRUE(c->Create(Gfid::Root(), "f" + std::to_string(i), files.back(), 0644).ok());
  }
  for (size_t i = 0; i < files.size(); i += 2) {
    auto p = c->Xattrop(files[i], {0, 1});
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_EQ(*p, (std::vector<int32_t>{0, 1}));
  }
  auto p = c->Xattrop(files[0], {0, 0, 0, 1});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, (std::vector<int32_t>{0, 1, 0, 1}));
  Request lg;
  lg.op = Op::kLookupGfid;
  lg.gfid = files[0];
  EXPECT_EQ(Sync(*c, lg).pending, (std::vector<int32_t>{0, 1, 0, 1}));
  lg.gfid = files[1];
  EXPECT_TRUE(Sync(*c, lg).pending.empty());
  auto listed = c->HealIndexAll(/*page=*/2);
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  std::set<Gfid> want{files[0], files[2], files[4], files[6], files[8]};
  EXPECT_EQ(std::set<Gfid>(listed->begin(), listed->end()), want);
  EXPECT_EQ(listed->size(), want.size());
  auto missing = c->Xattrop(Gfid::Random(), {1});
  EXPECT_EQ(missing.status().sys_errno(), ENOENT);
}

TEST(BrickServerMarkers, AReadOnlyBrickRefusesMarkerChangesButNotPlainLocks) {
  TempDir t;
  const Gfid f = Gfid::Random();
  {
    auto s = Serve(t.Sub("b"));
    ASSERT_NE(s, nullptr);
    auto c = Client(*s);
    ASSERT_TRUE(c->Create(Gfid::Root(), "f", f, 0644).ok());
  }
  auto s =
      Serve(t.Sub("b"), 256u << 20, 4, [](BrickServerOptions& o) { o.backend.read_only = true; });
  ASSERT_NE(s, nullptr);
  auto c = Client(*s);
  EXPECT_EQ(c->Xattrop(f, {1}).status().sys_errno(), EROFS);
  EXPECT_TRUE(c->Xattrop(f, {0}).ok());
  Reply r = Sync(*c, Inodelk(f, kLockBlocking, 7, {1}));
  EXPECT_EQ(r.err, EROFS) << r.message;
  EXPECT_EQ(s->locks()->held_count(), 0u);
  r = Sync(*c, Inodelk(f, kLockBlocking));
  EXPECT_EQ(r.err, 0) << r.message;
  r = Sync(*c, Entrylk(Gfid::Root(), "f", kLockBlocking));
  EXPECT_EQ(r.err, 0) << r.message;
  EXPECT_EQ(s->locks()->held_count(), 2u);
  // An unlock always unlocks; a post-op it may not apply is reported.
  r = Sync(*c, Inodelk(f, kLockUnlock, 7, {-1}));
  EXPECT_EQ(r.err, EROFS) << r.message;
  EXPECT_NE(r.message.find("released"), std::string::npos) << r.message;
  EXPECT_EQ(Sync(*c, Entrylk(Gfid::Root(), "f", kLockUnlock)).err, 0);
  EXPECT_EQ(s->locks()->held_count(), 0u);
}

TEST(BrickServerArbiter, WritesAreAcknowledgedButReadsFail) {
  TempDir t;
  auto s =
      Serve(t.Sub("b"), 256u << 20, 4, [](BrickServerOptions& o) { o.backend.arbiter = true; });
  ASSERT_NE(s, nullptr);
  auto c = Client(*s);
  const Gfid f = Gfid::Random();
  ASSERT_TRUE(c->Create(Gfid::Root(), "f", f, 0644).ok());
  auto n = c->Write(f, 0, "some data");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 9u);
  EXPECT_EQ(c->Getattr(f)->size, 0u);
  auto rd = c->Read(f, 0, 9);
  EXPECT_EQ(rd.status().sys_errno(), EIO);
  EXPECT_NE(rd.status().message().find("arbiter"), std::string::npos) << rd.status().message();
  // Markers and locks work on an arbiter as anywhere.
  EXPECT_EQ(Sync(*c, Inodelk(f, kLockBlocking, 7, {1})).pending, (std::vector<int32_t>{1}));
}

// ---- Read-only bricks and the applier secret (guarantee 5 without TLS) -------------------------

constexpr char kSecret[] = "0123456789abcdef0123456789abcdef";

std::unique_ptr<BrickServer> ServeReadOnly(const std::string& dir, const std::string& secret,
                                           uint16_t port = 0) {
  return Serve(dir, 256u << 20, 4, [&](BrickServerOptions& o) {
    o.backend.read_only = true;
    o.applier_secret = secret;
    o.port = port;
  });
}

std::unique_ptr<BrickClient> ClientWithSecret(BrickServer& s, const std::string& secret,
                                              bool reconnect = false) {
  ClientOptions o;
  o.request_timeout = kHangGuard;
  o.reconnect = reconnect;
  o.reconnect_backoff_initial = 10ms;
  auto c = BrickClient::Connect("127.0.0.1", s.port(), {}, o, secret);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(*c) : nullptr;
}

TEST(BrickServerReadOnly, EveryoneButTheApplierGetsErofsNamingTheBrickAndTheSecondary) {
  TempDir t;
  auto s = ServeReadOnly(t.Sub("b"), kSecret);
  ASSERT_NE(s, nullptr);
  auto c = Client(*s);
  auto made = c->Mkdir(Gfid::Root(), "d", Gfid::Random(), 0755);
  EXPECT_EQ(made.status().sys_errno(), EROFS);
  const std::string m = made.status().message();
  EXPECT_NE(m.find("brick " + t.Sub("b")), std::string::npos) << m;
  EXPECT_NE(m.find("secondary"), std::string::npos) << m;
  EXPECT_NE(m.find("only its applier may change it"), std::string::npos) << m;
  EXPECT_EQ(c->Xattrop(Gfid::Root(), {1}).status().sys_errno(), EROFS);
  // Reads still work.
  EXPECT_TRUE(c->Getattr(Gfid::Root()).ok());
  EXPECT_TRUE(c->ReaddirAll(Gfid::Root()).ok());
}

TEST(BrickServerReadOnly, TheRightSecretLetsTheSameMutationsThroughOnItsConnectionOnly) {
  TempDir t;
  auto s = ServeReadOnly(t.Sub("b"), kSecret);
  ASSERT_NE(s, nullptr);
  auto applier = ClientWithSecret(*s, kSecret);
  ASSERT_NE(applier, nullptr);
  EXPECT_EQ(applier->brick_id(), s->backend()->brick_id().ToString());
  const Gfid d = Gfid::Random(), f = Gfid::Random();
  auto made = applier->Mkdir(Gfid::Root(), "d", d, 0755);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  ASSERT_TRUE(applier->Create(d, "f", f, 0644).ok());
  auto n = applier->Write(f, 0, "from the primary");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  // Locks with markers (what replication and heal take) are the applier's too.
  Reply r = Sync(*applier, Inodelk(f, kLockBlocking, 7, {1}));
  EXPECT_EQ(r.err, 0) << r.message;
  r = Sync(*applier, Inodelk(f, kLockUnlock, 7, {-1}));
  EXPECT_EQ(r.err, 0) << r.message;
  // Another connection of the same process, without the secret, is not the applier.
  auto other = Client(*s);
  EXPECT_EQ(other->Write(f, 0, "local edit").status().sys_errno(), EROFS);
  EXPECT_EQ(*other->Read(f, 0, 100), "from the primary");
  EXPECT_EQ(other->Unlink(d, "f").sys_errno(), EROFS);
  EXPECT_TRUE(applier->Unlink(d, "f").ok());
}

TEST(BrickServerReadOnly, AWrongSecretIsRefusedWithEaccesAndChangesNothing) {
  TempDir t;
  auto s = ServeReadOnly(t.Sub("b"), kSecret);
  ASSERT_NE(s, nullptr);
  ClientOptions o;
  o.request_timeout = kHangGuard;
  auto c = BrickClient::Connect("127.0.0.1", s->port(), {}, o, "not-the-secret");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().sys_errno(), EACCES);
  EXPECT_NE(c.status().message().find("refused the applier secret"), std::string::npos)
      << c.status().message();
  // A hello with a wrong secret after a right one takes the standing back.
  auto rpc = RpcClient::Connect("127.0.0.1", s->port(), {});
  ASSERT_TRUE(rpc.ok());
  auto hello = [&](const std::string& secret) {
    Request h;
    h.op = Op::kHello;
    h.name = "test";
    h.flags = brick_proto::kProtocolVersion;
    h.xattr_value = secret;
    std::string enc;
    brick_proto::EncodeRequest(h, &enc);
    auto f = (*rpc)->Call(static_cast<uint16_t>(Op::kHello), enc).get();
    Reply r;
    EXPECT_TRUE(f.ok() && brick_proto::DecodeReply(Op::kHello, f->payload, &r).ok());
    return r;
  };
  auto mkdir = [&] {
    Request q;
    q.op = Op::kMkdir;
    q.parent = Gfid::Root();
    q.name = "x" + Gfid::Random().ToString().substr(0, 8);
    q.gfid = Gfid::Random();
    q.mode = 0755;
    std::string enc;
    brick_proto::EncodeRequest(q, &enc);
    auto f = (*rpc)->Call(static_cast<uint16_t>(Op::kMkdir), enc).get();
    Reply r;
    EXPECT_TRUE(f.ok() && brick_proto::DecodeReply(Op::kMkdir, f->payload, &r).ok());
    return r.err;
  };
  EXPECT_EQ(hello(kSecret).err, 0);
  EXPECT_EQ(mkdir(), 0);
  EXPECT_EQ(hello("wrong").err, EACCES);
  EXPECT_EQ(mkdir(), EROFS);
}

TEST(BrickServerReadOnly, TheApplierStaysTheApplierAcrossAReconnect) {
  TempDir t;
  auto s = ServeReadOnly(t.Sub("b"), kSecret);
  ASSERT_NE(s, nullptr);
  const uint16_t port = s->port();
  auto applier = ClientWithSecret(*s, kSecret, /*reconnect=*/true);
  ASSERT_NE(applier, nullptr);
  ASSERT_TRUE(applier->Mkdir(Gfid::Root(), "before", Gfid::Random(), 0755).ok());
  s.reset();  // the brick restarts on the same port: a new connection, a new hello
  s = ServeReadOnly(t.Sub("b"), kSecret, port);
  ASSERT_NE(s, nullptr);
  Status st;
  for (int i = 0; i < 50; ++i) {
    st = applier->Mkdir(Gfid::Root(), "after", Gfid::Random(), 0755).status();
    if (st.code() != Code::kUnavailable) break;  // the first call meets the lost connection
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST(BrickServerReadOnly, ASecretNeedsAReadOnlyBrickAndAWritableBrickIgnoresOne) {
  TempDir t;
  BrickServerOptions o;
  o.dir = t.Sub("w");
  ::mkdir(o.dir.c_str(), 0755);
  o.applier_secret = kSecret;
  auto bad = BrickServer::Start(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--read-only"), std::string::npos)
      << bad.status().message();
  // The applier connects the same way before its volume turns read-only.
  auto s = Serve(t.Sub("w"));
  ASSERT_NE(s, nullptr);
  auto c = ClientWithSecret(*s, kSecret);
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->Mkdir(Gfid::Root(), "d", Gfid::Random(), 0755).ok());
}

TEST(ApplierSecretFile, MustExistBeNonEmptyAndPrivate) {
  TempDir t;
  const std::string p = t.Sub("vol.secret");
  auto missing = ReadApplierSecretFile(p);
  EXPECT_EQ(missing.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find(p), std::string::npos) << missing.status().message();
  auto write = [&](const std::string& content, mode_t mode) {
    ::unlink(p.c_str());
    FILE* f = std::fopen(p.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(content.c_str(), f);
    std::fclose(f);
    ASSERT_EQ(::chmod(p.c_str(), mode), 0);
  };
  write(" \n", 0600);
  auto empty = ReadApplierSecretFile(p);
  EXPECT_EQ(empty.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(empty.status().message().find("is empty"), std::string::npos)
      << empty.status().message();
  write("abc123\n", 0640);
  auto open = ReadApplierSecretFile(p);
  EXPECT_EQ(open.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(open.status().message().find("chmod 600 " + p), std::string::npos)
      << open.status().message();
  write("abc123\n", 0604);
  EXPECT_EQ(ReadApplierSecretFile(p).status().code(), Code::kFailedPrecondition);
  write("abc123\n", 0600);
  auto good = ReadApplierSecretFile(p);
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(*good, "abc123");
  write("abc123\n", 0400);
  EXPECT_TRUE(ReadApplierSecretFile(p).ok());
}

}  // namespace
}  // namespace drfs::brick
