// LockManager on its own: conflicts, FIFO grants, two-key atomicity, whole-directory fairness,
// cancelled waits, connection release, and many threads contending (run under TSan too).
#include "brick/locks.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace drfs::brick {
namespace {

using namespace std::chrono_literals;

Gfid G(uint8_t b) {
  Gfid g;
  g.bytes[0] = b;
  g.bytes[15] = 7;
  return g;
}

// What a Lock() call's callback reported, and when (the order of callbacks across calls).
struct Outcome {
  bool done = false;
  int err = -1;
  std::vector<LockKey> acquired;
  int order = 0;
};

class Recorder {
 public:
  LockManager::Callback Track(const std::string& name) {
    {
      std::lock_guard<std::mutex> l(mu_);
      outcomes_[name];
    }
    return [this, name](int err, std::vector<LockKey> acquired) {
      std::lock_guard<std::mutex> l(mu_);
      Outcome& o = outcomes_[name];
      EXPECT_FALSE(o.done) << name << ": callback ran twice";
      o.done = true;
      o.err = err;
      o.acquired = std::move(acquired);
      o.order = ++seq_;
    };
  }
  Outcome Get(const std::string& name) {
    std::lock_guard<std::mutex> l(mu_);
    return outcomes_[name];
  }
  bool Done(const std::string& name) { return Get(name).done; }
  int Err(const std::string& name) { return Get(name).err; }

 private:
  std::mutex mu_;
  std::map<std::string, Outcome> outcomes_;
  int seq_ = 0;
};

const LockOwner kA{1, 10}, kB{2, 10}, kC{3, 10}, kD{4, 10};

TEST(LockManager, ConflictsGiveEagainWithoutBlockingAndTheSameOwnerRelocks) {
  LockManager m;
  Recorder r;
  const LockKey f = LockKey::Inode(G(1));
  m.Lock(kA, {f}, false, r.Track("a"));
  EXPECT_EQ(r.Err("a"), 0);
  EXPECT_EQ(r.Get("a").acquired, std::vector<LockKey>{f});
  EXPECT_TRUE(m.Holds(kA, f));
  // Another owner: at once, EAGAIN. Same lock_owner number on another connection is another
  // owner.
  m.Lock(kB, {f}, false, r.Track("b"));
  EXPECT_EQ(r.Err("b"), EAGAIN);
  m.Lock(LockOwner{1, 11}, {f}, false, r.Track("a2"));
  EXPECT_EQ(r.Err("a2"), EAGAIN);
  // The same owner again: granted, nothing new acquired, and one unlock releases it.
  m.Lock(kA, {f}, true, r.Track("again"));
  EXPECT_EQ(r.Err("again"), 0);
  EXPECT_TRUE(r.Get("again").acquired.empty());
  EXPECT_EQ(m.held_count(), 1u);
  m.Unlock(kA, {f});
  EXPECT_FALSE(m.Holds(kA, f));
  EXPECT_EQ(m.held_count(), 0u);
  m.Lock(kB, {f}, false, r.Track("b2"));
  EXPECT_EQ(r.Err("b2"), 0);
  // Inode and entry locks on the same gfid never conflict; other objects neither.
  m.Lock(kA, {LockKey::Entry(G(1), "")}, false, r.Track("entry"));
  EXPECT_EQ(r.Err("entry"), 0);
  m.Lock(kA, {LockKey::Inode(G(2))}, false, r.Track("other"));
  EXPECT_EQ(r.Err("other"), 0);
  // Unlocking what one does not hold is fine and changes nothing.
  m.Unlock(kA, {f});
  EXPECT_TRUE(m.Holds(kB, f));
}

TEST(LockManager, BlockingWaitersAreGrantedInArrivalOrder) {
  LockManager m;
  Recorder r;
  const LockKey f = LockKey::Inode(G(1));
  m.Lock(kA, {f}, true, r.Track("a"));
  m.Lock(kB, {f}, true, r.Track("b"));
  m.Lock(kC, {f}, true, r.Track("c"));
  m.Lock(kD, {f}, true, r.Track("d"));
  EXPECT_TRUE(r.Done("a"));
  EXPECT_FALSE(r.Done("b") || r.Done("c") || r.Done("d"));
  EXPECT_EQ(m.waiting_count(), 3u);
  // A non-blocking request does not jump the queue.
  m.Lock(LockOwner{5, 1}, {f}, false, r.Track("try"));
  EXPECT_EQ(r.Err("try"), EAGAIN);
  m.Unlock(kA, {f});
  EXPECT_EQ(r.Err("b"), 0);
  EXPECT_FALSE(r.Done("c") || r.Done("d"));
  m.Unlock(kB, {f});
  EXPECT_EQ(r.Err("c"), 0);
  EXPECT_FALSE(r.Done("d"));
  m.Unlock(kC, {f});
  EXPECT_EQ(r.Err("d"), 0);
  EXPECT_LT(r.Get("b").order, r.Get("c").order);
  EXPECT_LT(r.Get("c").order, r.Get("d").order);
  EXPECT_EQ(m.waiting_count(), 0u);
  EXPECT_TRUE(m.Holds(kD, f));
}

TEST(LockManager, AWholeDirectoryLockConflictsWithEveryNameAndIsNotStarved) {
  LockManager m;
  Recorder r;
  const Gfid d = G(1);
  m.Lock(kA, {LockKey::Entry(d, "x")}, true, r.Track("a-x"));
  ASSERT_EQ(r.Err("a-x"), 0);
  // Another name in the same directory is free...
  m.Lock(kB, {LockKey::Entry(d, "y")}, false, r.Track("b-y"));
  EXPECT_EQ(r.Err("b-y"), 0);
  m.Unlock(kB, {LockKey::Entry(d, "y")});
  // ...but the whole directory is not.
  m.Lock(kC, {LockKey::Entry(d, "")}, false, r.Track("c-try"));
  EXPECT_EQ(r.Err("c-try"), EAGAIN);
  m.Lock(kC, {LockKey::Entry(d, "")}, true, r.Track("c-dir"));
  EXPECT_FALSE(r.Done("c-dir"));
  // Once the directory lock waits, a free name queues behind it instead of starving it.
  m.Lock(kB, {LockKey::Entry(d, "y")}, true, r.Track("b-y2"));
  EXPECT_FALSE(r.Done("b-y2"));
  m.Lock(kD, {LockKey::Entry(d, "z")}, false, r.Track("d-z"));
  EXPECT_EQ(r.Err("d-z"), EAGAIN);
  // Another directory is unaffected.
  m.Lock(kD, {LockKey::Entry(G(2), "y")}, false, r.Track("other-dir"));
  EXPECT_EQ(r.Err("other-dir"), 0);
  m.Unlock(kA, {LockKey::Entry(d, "x")});
  EXPECT_EQ(r.Err("c-dir"), 0);
  EXPECT_FALSE(r.Done("b-y2"));
  m.Unlock(kC, {LockKey::Entry(d, "")});
  EXPECT_EQ(r.Err("b-y2"), 0);
  // And the reverse: with the directory held, every name waits.
  m.Unlock(kB, {LockKey::Entry(d, "y")});
  m.Lock(kA, {LockKey::Entry(d, "")}, true, r.Track("a-dir"));
  ASSERT_EQ(r.Err("a-dir"), 0);
  m.Lock(kB, {LockKey::Entry(d, "q")}, false, r.Track("b-q"));
  EXPECT_EQ(r.Err("b-q"), EAGAIN);
}

TEST(LockManager, TwoKeysAreGrantedTogetherOrNotAtAll) {
  LockManager m;
  Recorder r;
  const LockKey src = LockKey::Entry(G(1), "a"), dst = LockKey::Entry(G(2), "b");
  m.Lock(kA, {src}, true, r.Track("a"));
  ASSERT_EQ(r.Err("a"), 0);
  // Non-blocking: one key busy, so neither is taken.
  m.Lock(kB, {src, dst}, false, r.Track("b-try"));
  EXPECT_EQ(r.Err("b-try"), EAGAIN);
  EXPECT_FALSE(m.Holds(kB, dst));
  // Blocking: it waits holding nothing; the free key is not taken meanwhile.
  m.Lock(kB, {src, dst}, true, r.Track("b"));
  EXPECT_FALSE(r.Done("b"));
  EXPECT_FALSE(m.Holds(kB, dst));
  EXPECT_EQ(m.held_count(), 1u);
  m.Unlock(kA, {src});
  EXPECT_EQ(r.Err("b"), 0);
  EXPECT_TRUE(m.Holds(kB, src));
  EXPECT_TRUE(m.Holds(kB, dst));
  auto acquired = r.Get("b").acquired;
  std::sort(acquired.begin(), acquired.end());
  std::vector<LockKey> want{src, dst};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(acquired, want);
  // The same key twice counts once.
  m.Lock(kC, {LockKey::Inode(G(3)), LockKey::Inode(G(3))}, false, r.Track("dup"));
  EXPECT_EQ(r.Err("dup"), 0);
  EXPECT_EQ(r.Get("dup").acquired.size(), 1u);
  // Unlocking both releases both.
  m.Unlock(kB, {src, dst});
  EXPECT_EQ(m.held_count(), 1u);
}

TEST(LockManager, UnlockCancelsTheOwnersWaitAndLetsOthersThrough) {
  LockManager m;
  Recorder r;
  const LockKey f = LockKey::Inode(G(1));
  m.Lock(kA, {f}, true, r.Track("a"));
  m.Lock(kB, {f}, true, r.Track("b"));
  m.Lock(kC, {f}, true, r.Track("c"));
  ASSERT_FALSE(r.Done("b"));
  // B gives up: its wait ends with ECANCELED; A still holds.
  m.Unlock(kB, {f});
  EXPECT_EQ(r.Err("b"), ECANCELED);
  EXPECT_FALSE(r.Done("c"));
  EXPECT_TRUE(m.Holds(kA, f));
  EXPECT_EQ(m.waiting_count(), 1u);
  // A waiting two-key request is cancelled by an unlock of either key, and a waiter it held
  // up goes through.
  const LockKey g = LockKey::Inode(G(2));
  m.Lock(kD, {f, g}, true, r.Track("d"));
  m.Lock(kB, {g}, true, r.Track("b-g"));
  EXPECT_FALSE(r.Done("b-g")) << "g is free, but D asked first";
  m.Unlock(kD, {g});
  EXPECT_EQ(r.Err("d"), ECANCELED);
  EXPECT_EQ(r.Err("b-g"), 0);
  m.Unlock(kA, {f});
  EXPECT_EQ(r.Err("c"), 0);
  EXPECT_EQ(m.waiting_count(), 0u);
}

TEST(LockManager, ClosingAConnectionDropsItsLocksAndWaits) {
  LockManager m;
  Recorder r;
  const LockKey f = LockKey::Inode(G(1)), g = LockKey::Inode(G(2));
  const LockOwner a1{1, 1}, a2{1, 2};  // two owners on connection 1
  m.Lock(a1, {f}, true, r.Track("a1-f"));
  m.Lock(kB, {g}, true, r.Track("b-g"));
  m.Lock(a2, {g}, true, r.Track("a2-g"));  // connection 1 waits for B
  m.Lock(kC, {f}, true, r.Track("c-f"));   // C waits for connection 1
  ASSERT_EQ(r.Err("a1-f"), 0);
  ASSERT_FALSE(r.Done("a2-g"));
  ASSERT_FALSE(r.Done("c-f"));
  m.ReleaseConnection(1);
  EXPECT_EQ(r.Err("a2-g"), ECONNABORTED);
  EXPECT_EQ(r.Err("c-f"), 0);
  EXPECT_TRUE(m.Holds(kC, f));
  EXPECT_FALSE(m.Holds(a1, f));
  // B's lock was not connection 1's.
  EXPECT_TRUE(m.Holds(kB, g));
  EXPECT_EQ(m.waiting_count(), 0u);
  EXPECT_EQ(m.held_count(), 2u);
  m.ReleaseConnection(1);  // nothing left: a no-op
  m.ReleaseConnection(kB.connection);
  m.ReleaseConnection(kC.connection);
  EXPECT_EQ(m.held_count(), 0u);
}

TEST(LockManager, AnOwnerUpgradingToTheWholeDirectoryDoesNotWaitOnItself) {
  LockManager m;
  Recorder r;
  const Gfid d = G(1);
  m.Lock(kA, {LockKey::Entry(d, "x")}, true, r.Track("a-x"));
  m.Lock(kB, {LockKey::Entry(d, "x")}, true, r.Track("b-x"));  // waits for A
  ASSERT_FALSE(r.Done("b-x"));
  // B waits for A anyway, so A passing B costs B nothing, and waiting behind B would deadlock.
  m.Lock(kA, {LockKey::Entry(d, "")}, true, r.Track("a-dir"));
  EXPECT_EQ(r.Err("a-dir"), 0);
  m.Unlock(kA, {LockKey::Entry(d, "x")});
  EXPECT_FALSE(r.Done("b-x")) << "A still holds the whole directory";
  m.Unlock(kA, {LockKey::Entry(d, "")});
  EXPECT_EQ(r.Err("b-x"), 0);
}

TEST(LockManager, CallbacksMayCallBackIntoTheManager) {
  LockManager m;
  const LockKey f = LockKey::Inode(G(1));
  std::promise<int> second;
  m.Lock(kA, {f}, true, [](int, std::vector<LockKey>) {});
  // When B is granted, its callback unlocks at once, which grants C from inside the callback.
  m.Lock(kB, {f}, true, [&](int err, std::vector<LockKey>) {
    EXPECT_EQ(err, 0);
    m.Unlock(kB, {f});
  });
  m.Lock(kC, {f}, true, [&](int err, std::vector<LockKey>) { second.set_value(err); });
  m.Unlock(kA, {f});
  auto fut = second.get_future();
  ASSERT_EQ(fut.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(fut.get(), 0);
  EXPECT_TRUE(m.Holds(kC, f));
}

// Threads lock random mixes of inode, named-entry, whole-directory and two-key requests and
// check, inside each grant, that no other owner holds anything conflicting.
TEST(LockManager, ManyThreadsNeverHoldConflictingLocks) {
  constexpr int kThreads = 8, kRounds = 400;
  LockManager m;
  std::mutex model_mu;
  std::multimap<LockKey, int> holding;  // key -> thread holding it
  std::atomic<int> conflicts{0}, grants{0}, eagain{0};
  auto conflicts_with = [](const LockKey& a, const LockKey& b) {
    if (a.kind != b.kind || a.gfid != b.gfid) return false;
    return a.kind == LockKey::Kind::kInode || a.name.empty() || b.name.empty() || a.name == b.name;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1);
      const LockOwner me{static_cast<uint64_t>(t) + 1, 1};
      auto key = [&] {
        switch (rng() % 3) {
          case 0:
            return LockKey::Inode(G(static_cast<uint8_t>(rng() % 3)));
          case 1:
            return LockKey::Entry(G(static_cast<uint8_t>(rng() % 2)), "");
          default:
            return LockKey::Entry(G(static_cast<uint8_t>(rng() % 2)),
                                  std::string(1, static_cast<char>('a' + rng() % 3)));
        }
      };
      for (int i = 0; i < kRounds; ++i) {
        std::vector<LockKey> keys{key()};
        if (rng() % 4 == 0) keys.push_back(key());
        const bool blocking = rng() % 5 != 0;
        std::promise<int> p;
        m.Lock(me, keys, blocking, [&p](int err, std::vector<LockKey>) { p.set_value(err); });
        auto f = p.get_future();
        if (f.wait_for(60s) != std::future_status::ready) {
          ADD_FAILURE() << "a lock was never granted (deadlock?)";
          return;
        }
        int err = f.get();
        if (err == EAGAIN) {
          ++eagain;
          continue;
        }
        ASSERT_EQ(err, 0);
        ++grants;
        {
          std::lock_guard<std::mutex> l(model_mu);
          for (const auto& k : keys) {
            for (const auto& [held, who] : holding) {
              if (who != t && conflicts_with(k, held)) ++conflicts;
            }
          }
          for (const auto& k : keys)
            holding.emplace(k, t);
        }
        if (rng() % 2) std::this_thread::yield();
        {
          std::lock_guard<std::mutex> l(model_mu);
          for (auto it = holding.begin(); it != holding.end();) {
            it = it->second == t ? holding.erase(it) : std::next(it);
          }
        }
        m.Unlock(me, keys);
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(conflicts.load(), 0);
  EXPECT_GT(grants.load(), kThreads * kRounds / 2);
  EXPECT_EQ(m.held_count(), 0u);
  EXPECT_EQ(m.waiting_count(), 0u);
  std::printf("grants %d, eagain %d\n", grants.load(), eagain.load());
}

}  // namespace
}  // namespace drfs::brick
