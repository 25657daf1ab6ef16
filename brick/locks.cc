// LockManager implementation notes.
//
// State, all under one mutex: a Resource per inode (inode locks) or per directory (entry locks)
// that has a lock or a waiter, holding the granted locks (name -> owner; an inode's one key is
// "") and a FIFO queue of waiters. A two-key waiter sits in the queue of each of its (one or
// two) resources. Waiters get a sequence number when they arrive, so every queue is in arrival
// order and "earlier" means a smaller number, across resources too.
//
// Granting. A waiter W can be granted when, for each of its keys k, no other owner holds a lock
// conflicting with k, and no earlier waiter E of another owner in k's queue wants a key that
// conflicts with k, unless E is itself held up by a lock W's owner holds (E cannot go before
// that owner anyway; see the header). Only the resources whose state changed are rescanned.
// Granting normally makes nothing else grantable (it only adds locks), except through that
// exception: a grant to owner O can let O's later waiters pass waiters newly held up by O. So
// Regrant() repeats until a pass grants nothing; each pass grants at least one waiter or ends.
//
// Costs: a rescan is quadratic in the length of the queues it walks, which stay short (one
// waiter per client transaction on a contended object); nothing here touches the disk.
#include "brick/locks.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace drfs::brick {

namespace {

struct ResourceId {
  LockKey::Kind kind;
  Gfid gfid;
  friend bool operator==(const ResourceId&, const ResourceId&) = default;
  friend auto operator<=>(const ResourceId&, const ResourceId&) = default;
};

struct ResourceHash {
  size_t operator()(const ResourceId& r) const {
    uint64_t a, b;
    std::memcpy(&a, r.gfid.bytes.data(), sizeof a);
    std::memcpy(&b, r.gfid.bytes.data() + 8, sizeof b);
    return static_cast<size_t>((a * 0x9e3779b97f4a7c15ull) ^ b ^ static_cast<uint64_t>(r.kind));
  }
};

ResourceId IdOf(const LockKey& k) {
  return ResourceId{k.kind, k.gfid};
}

// Whether two keys cannot be held by different owners at once.
bool Conflicts(const LockKey& a, const LockKey& b) {
  if (a.kind != b.kind || a.gfid != b.gfid) return false;
  return a.kind == LockKey::Kind::kInode || a.name.empty() || b.name.empty() || a.name == b.name;
}

}  // namespace

struct LockManager::Impl {
  struct Waiter {
    uint64_t seq = 0;
    LockOwner owner;
    std::vector<LockKey> keys;  // sorted, unique
    Callback done;
    bool queued = false;
  };
  using WaiterPtr = std::shared_ptr<Waiter>;

  struct Resource {
    std::map<std::string, LockOwner> held;  // name -> holder
    std::list<WaiterPtr> queue;             // by seq
  };

  struct Connection {
    std::set<LockKey> held;  // keys held by any owner of the connection
    std::unordered_set<WaiterPtr> waiting;
    bool empty() const { return held.empty() && waiting.empty(); }
  };

  // A callback to run once the mutex is dropped, with its arguments.
  struct Done {
    Callback cb;
    int err = 0;
    std::vector<LockKey> acquired;
  };

  mutable std::mutex mu;
  uint64_t next_seq = 1;
  std::unordered_map<ResourceId, Resource, ResourceHash> resources;
  std::unordered_map<uint64_t, Connection> connections;
  size_t held_count = 0;
  size_t waiting_count = 0;

  static std::vector<LockKey> Normalize(std::vector<LockKey> keys) {
    for (auto& k : keys) {
      if (k.kind == LockKey::Kind::kInode) k.name.clear();
    }
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return keys;
  }

  static std::vector<ResourceId> ResourcesOf(const std::vector<LockKey>& keys) {
    std::vector<ResourceId> ids;
    for (const auto& k : keys) {
      if (std::find(ids.begin(), ids.end(), IdOf(k)) == ids.end()) ids.push_back(IdOf(k));
    }
    return ids;
  }

  const Resource* Find(const ResourceId& id) const {
    auto it = resources.find(id);
    return it == resources.end() ? nullptr : &it->second;
  }

  // Whether `r` has a lock conflicting with `key` whose holder satisfies `match`.
  template <typename Pred>
  static bool AnyHolder(const Resource& r, const LockKey& key, Pred match) {
    if (key.kind == LockKey::Kind::kInode || key.name.empty()) {
      return std::any_of(r.held.begin(), r.held.end(),
                         [&](const auto& h) { return match(h.second); });
    }
    auto it = r.held.find(key.name);
    if (it != r.held.end() && match(it->second)) return true;
    it = r.held.find("");
    return it != r.held.end() && match(it->second);
  }

  // Whether one of w's keys conflicts with a lock `who` holds.
  bool BlockedBy(const Waiter& w, const LockOwner& who) const {
    for (const auto& k : w.keys) {
      const Resource* r = Find(IdOf(k));
      if (r && AnyHolder(*r, k, [&](const LockOwner& o) { return o == who; })) return true;
    }
    return false;
  }

  bool Grantable(const Waiter& w) const {
    for (const auto& k : w.keys) {
      const Resource* r = Find(IdOf(k));
      if (r == nullptr) continue;
      if (AnyHolder(*r, k, [&](const LockOwner& o) { return o != w.owner; })) return false;
      for (const WaiterPtr& e : r->queue) {
        if (e->seq >= w.seq) break;
        if (e->owner == w.owner) continue;
        bool conflict = std::any_of(e->keys.begin(), e->keys.end(),
                                    [&](const LockKey& ek) { return Conflicts(ek, k); });
        if (conflict && !BlockedBy(*e, w.owner)) return false;
      }
    }
    return true;
  }

  // Returns the keys the owner did not hold already.
  std::vector<LockKey> Grant(const Waiter& w) {
    std::vector<LockKey> acquired;
    for (const auto& k : w.keys) {
      auto [it, added] = resources[IdOf(k)].held.insert_or_assign(k.name, w.owner);
      if (added) {
        ++held_count;
        acquired.push_back(k);
      }
      connections[w.owner.connection].held.insert(k);
    }
    return acquired;
  }

  // Takes a waiter out of its queues (not out of its connection's set).
  void Unqueue(const WaiterPtr& w) {
    for (const auto& id : ResourcesOf(w->keys)) {
      auto it = resources.find(id);
      if (it != resources.end()) it->second.queue.remove(w);
    }
    w->queued = false;
    --waiting_count;
  }

  void Enqueue(const WaiterPtr& w) {
    for (const auto& id : ResourcesOf(w->keys))
      resources[id].queue.push_back(w);
    w->queued = true;
    connections[w->owner.connection].waiting.insert(w);
    ++waiting_count;
  }

  void DropConnectionWaiter(const WaiterPtr& w) {
    auto it = connections.find(w->owner.connection);
    if (it == connections.end()) return;
    it->second.waiting.erase(w);
    if (it->second.empty()) connections.erase(it);
  }

  void DropIfIdle(const ResourceId& id) {
    auto it = resources.find(id);
    if (it != resources.end() && it->second.held.empty() && it->second.queue.empty()) {
      resources.erase(it);
    }
  }

  // Grants every waiter of the `touched` resources that can be, FIFO, until nothing changes.
  void Regrant(std::set<ResourceId> touched, std::vector<Done>* done) {
    for (bool progress = true; progress;) {
      progress = false;
      std::vector<ResourceId> more;
      for (const auto& id : touched) {
        const Resource* r = Find(id);
        if (r == nullptr) continue;
        const std::vector<WaiterPtr> snapshot(r->queue.begin(), r->queue.end());
        for (const WaiterPtr& w : snapshot) {
          if (!w->queued || !Grantable(*w)) continue;
          Unqueue(w);
          DropConnectionWaiter(w);
          done->push_back(Done{std::move(w->done), 0, Grant(*w)});
          for (const auto& other : ResourcesOf(w->keys))
            more.push_back(other);
          progress = true;
        }
      }
      touched.insert(more.begin(), more.end());
    }
    for (const auto& id : touched)
      DropIfIdle(id);
  }

  // Releases `key` if `owner` holds it exactly; records its resource in `touched`.
  void Release(const LockOwner& owner, const LockKey& key, std::set<ResourceId>* touched) {
    auto it = resources.find(IdOf(key));
    if (it == resources.end()) return;
    auto h = it->second.held.find(key.name);
    if (h == it->second.held.end() || h->second != owner) return;
    it->second.held.erase(h);
    --held_count;
    touched->insert(IdOf(key));
    auto c = connections.find(owner.connection);
    if (c != connections.end()) {
      c->second.held.erase(key);
      if (c->second.empty()) connections.erase(c);
    }
  }
};

LockManager::LockManager() : impl_(std::make_unique<Impl>()) {}
LockManager::~LockManager() = default;

namespace {
template <typename D>
void RunAll(std::vector<D> done) {
  for (auto& d : done) {
    if (d.cb) d.cb(d.err, std::move(d.acquired));
  }
}
}  // namespace

void LockManager::Lock(const LockOwner& owner, std::vector<LockKey> keys, bool blocking,
                       Callback done) {
  keys = Impl::Normalize(std::move(keys));
  if (keys.empty()) {
    done(EINVAL, {});
    return;
  }
  int err = 0;
  std::vector<LockKey> acquired;
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    auto w = std::make_shared<Impl::Waiter>();
    w->seq = impl_->next_seq++;
    w->owner = owner;
    w->keys = std::move(keys);
    if (impl_->Grantable(*w)) {
      acquired = impl_->Grant(*w);
    } else if (!blocking) {
      err = EAGAIN;
    } else {
      w->done = std::move(done);
      impl_->Enqueue(w);
      return;
    }
  }
  done(err, std::move(acquired));
}

void LockManager::Unlock(const LockOwner& owner, const std::vector<LockKey>& keys_in) {
  const std::vector<LockKey> keys = Impl::Normalize(keys_in);
  std::vector<Impl::Done> done;
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    std::set<ResourceId> touched;
    for (const auto& k : keys)
      impl_->Release(owner, k, &touched);
    // This owner's waits for any of the keys end.
    std::vector<Impl::WaiterPtr> cancel;
    for (const auto& k : keys) {
      const auto* r = impl_->Find(IdOf(k));
      if (r == nullptr) continue;
      for (const auto& w : r->queue) {
        if (w->owner == owner && std::find(w->keys.begin(), w->keys.end(), k) != w->keys.end() &&
            std::find(cancel.begin(), cancel.end(), w) == cancel.end()) {
          cancel.push_back(w);
        }
      }
    }
    std::sort(cancel.begin(), cancel.end(),
              [](const auto& a, const auto& b) { return a->seq < b->seq; });
    for (const auto& w : cancel) {
      impl_->Unqueue(w);
      impl_->DropConnectionWaiter(w);
      done.push_back(Impl::Done{std::move(w->done), ECANCELED, {}});
      for (const auto& id : Impl::ResourcesOf(w->keys))
        touched.insert(id);
    }
    impl_->Regrant(std::move(touched), &done);
  }
  RunAll(std::move(done));
}

void LockManager::ReleaseConnection(uint64_t connection) {
  std::vector<Impl::Done> done;
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    auto it = impl_->connections.find(connection);
    if (it == impl_->connections.end()) return;
    Impl::Connection gone = std::move(it->second);
    impl_->connections.erase(it);
    std::set<ResourceId> touched;
    for (const auto& k : gone.held) {
      auto r = impl_->resources.find(IdOf(k));
      if (r == impl_->resources.end()) continue;
      auto h = r->second.held.find(k.name);
      if (h != r->second.held.end() && h->second.connection == connection) {
        r->second.held.erase(h);
        --impl_->held_count;
        touched.insert(IdOf(k));
      }
    }
    std::vector<Impl::WaiterPtr> waiters(gone.waiting.begin(), gone.waiting.end());
    std::sort(waiters.begin(), waiters.end(),
              [](const auto& a, const auto& b) { return a->seq < b->seq; });
    for (const auto& w : waiters) {
      impl_->Unqueue(w);
      done.push_back(Impl::Done{std::move(w->done), ECONNABORTED, {}});
      for (const auto& id : Impl::ResourcesOf(w->keys))
        touched.insert(id);
    }
    impl_->Regrant(std::move(touched), &done);
  }
  RunAll(std::move(done));
}

bool LockManager::Holds(const LockOwner& owner, const LockKey& key_in) const {
  LockKey key = key_in;
  if (key.kind == LockKey::Kind::kInode) key.name.clear();
  std::lock_guard<std::mutex> l(impl_->mu);
  const auto* r = impl_->Find(IdOf(key));
  if (r == nullptr) return false;
  auto it = r->held.find(key.name);
  return it != r->held.end() && it->second == owner;
}

size_t LockManager::held_count() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->held_count;
}

size_t LockManager::waiting_count() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->waiting_count;
}

}  // namespace drfs::brick
