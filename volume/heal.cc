#include "volume/heal.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <map>
#include <set>

#include "brick/client.h"
#include "common/log.h"

namespace drfs::volume {

using brick::BrickClient;
using brick_proto::Op;
using brick_proto::Reply;
using brick_proto::Request;
using Mask = uint32_t;
using Clients = std::vector<std::shared_ptr<BrickClient>>;

namespace {

constexpr uint64_t kChunk = 1u << 20;  // data heal copies (and holds the lock for) 1 MiB at a time
constexpr int kMaxPasses = 8;

Result<Reply> Call(const std::shared_ptr<BrickClient>& c, const Request& q) {
  if (!c) return Unavailable("brick is down");
  DRFS_ASSIGN_OR_RETURN(Reply r, c->Call(q).get());
  return r;
}

int32_t At(const std::vector<int32_t>& v, size_t i) { return i < v.size() ? v[i] : 0; }

// The markers of one object on every brick, read under the heal's lock.
struct Markers {
  Mask present = 0;                         // bricks where the object exists (and is locked)
  std::vector<std::vector<int32_t>> pend;   // per brick
  std::vector<brick_proto::Iatt> attr;      // per brick (lookup-gfid)
};

std::string NeedsText(const std::vector<std::vector<int32_t>>& pend, size_t n) {
  bool t[3] = {false, false, false};
  bool dirty_only = true;
  for (size_t i = 0; i < pend.size(); ++i) {
    for (int k = 0; k < 3; ++k) {
      if (At(pend[i], static_cast<size_t>(k)) != 0) t[k] = true;
      for (size_t j = 0; j < n; ++j) {
        if (At(pend[i], brick_proto::PendingIndex(static_cast<int>(j), k)) != 0) {
          t[k] = true;
          dirty_only = false;
        }
      }
    }
  }
  std::string s;
  const char* names[3] = {"data", "metadata", "entry"};
  for (int k = 0; k < 3; ++k)
    if (t[k]) s += (s.empty() ? "" : ",") + std::string(names[k]);
  if (s.empty()) return "";
  return dirty_only ? s + " (dirty)" : s;
}

class HealRun {
 public:
  HealRun(VolumeClient* c, const std::atomic<bool>* stop = nullptr)
      : vc_(c), n_(c->brick_count()), stop_(stop) {
    for (size_t i = 0; i < n_; ++i) {
      cl_.push_back(c->brick(i));
      if (c->is_arbiter(i)) arbiter_ |= 1u << i;
    }
    all_ = (1u << n_) - 1;
  }

  Mask up() const {
    Mask m = 0;
    for (size_t i = 0; i < n_; ++i)
      if (cl_[i] && !cl_[i]->lost()) m |= 1u << i;
    return m;
  }

  // Every gfid in the heal index of bricks that are up, with the bricks that list it.
  std::map<Gfid, Mask> ReadIndex(const std::vector<size_t>& only) {
    std::map<Gfid, Mask> out;
    for (size_t i = 0; i < n_; ++i) {
      if (!cl_[i]) continue;
      if (!only.empty() && std::find(only.begin(), only.end(), i) == only.end()) continue;
      uint64_t cookie = 0;
      for (int guard = 0; guard < 100000; ++guard) {
        Request q;
        q.op = Op::kHealIndex;
        q.offset = cookie;
        q.length = brick_proto::kMaxDirEntries;
        auto r = Call(cl_[i], q);
        if (!r.ok() || r->err != 0) break;
        for (auto& e : r->entries) {
          out[e.gfid] |= 1u << i;
          cookie = e.cookie;
        }
        if (r->eof || r->entries.empty()) break;
      }
    }
    return out;
  }

  // Lookup-gfid on every brick that is up (no lock).
  Markers Peek(const Gfid& g) {
    Markers m;
    m.pend.resize(n_);
    m.attr.resize(n_);
    for (size_t i = 0; i < n_; ++i) {
      Request q;
      q.op = Op::kLookupGfid;
      q.gfid = g;
      auto r = Call(cl_[i], q);
      if (r.ok() && r->err == 0) {
        m.present |= 1u << i;
        m.pend[i] = r->pending;
        m.attr[i] = r->attr;
      }
    }
    return m;
  }

  // Locks (blocking, in brick order) on every brick in `where`; the lock replies carry the
  // markers as they are under the lock. Returns the bricks locked.
  Mask LockAll(const Request& lock, uint64_t owner, Mask where, Markers* m) {
    Mask got = 0;
    for (size_t i = 0; i < n_; ++i) {
      if (!(where & (1u << i))) continue;
      Request q = lock;
      q.lock_owner = owner;
      q.flags = brick_proto::kLockBlocking;
      auto r = Call(cl_[i], q);
      if (r.ok() && r->err == 0) {
        got |= 1u << i;
        if (m) m->pend[i] = r->pending;
      }
    }
    return got;
  }
  void UnlockAll(const Request& lock, uint64_t owner, Mask where,
                 const std::vector<std::vector<int32_t>>* deltas) {
    for (size_t i = 0; i < n_; ++i) {
      if (!(where & (1u << i))) continue;
      Request q = lock;
      q.lock_owner = owner;
      q.flags = brick_proto::kLockUnlock;
      if (deltas) q.pending = (*deltas)[i];
      auto r = Call(cl_[i], q);
      if (!r.ok() || r->err != 0) {
        DRFS_LOG(Warn) << "self-heal: unlock on brick " << i << " failed: "
                       << (r.ok() ? r->message : r.status().message());
      }
    }
  }

  // Sources and sinks for marker type t among `present` (AFR): a brick another brick accuses
  // is a sink. No accusation but dirty: "dirty only".
  struct Verdict {
    Mask sources = 0, sinks = 0;
    bool needed = false;
    bool dirty_only = false;
    bool split_brain = false;
  };
  Verdict Judge(const Markers& m, Mask present, int t, bool data) const {
    Verdict v;
    Mask accused = 0;
    bool dirty = false;
    for (size_t i = 0; i < n_; ++i) {
      if (!(present & (1u << i))) continue;
      if (At(m.pend[i], static_cast<size_t>(t)) != 0) dirty = true;
      for (size_t j = 0; j < n_; ++j) {
        if (j != i && At(m.pend[i], brick_proto::PendingIndex(static_cast<int>(j), t)) > 0) {
          accused |= 1u << j;
        }
      }
    }
    Mask candidates = present & (data ? ~arbiter_ : all_);
    v.needed = accused != 0 || dirty;
    if (accused == 0) {
      v.dirty_only = dirty;
      v.sources = candidates;
      return v;
    }
    v.sources = candidates & ~accused;
    v.sinks = present & accused;
    if (v.sources == 0) v.split_brain = true;
    return v;
  }

  // The deltas that undo what was observed for type t: each brick's dirty, and on sources the
  // accusations of the healed sinks.
  std::vector<std::vector<int32_t>> Clear(const Markers& m, Mask locked, Mask healed_sinks,
                                          int t) const {
    std::vector<std::vector<int32_t>> d(n_, std::vector<int32_t>(3 + 3 * n_, 0));
    for (size_t i = 0; i < n_; ++i) {
      if (!(locked & (1u << i))) continue;
      d[i][static_cast<size_t>(t)] = -At(m.pend[i], static_cast<size_t>(t));
      for (size_t j = 0; j < n_; ++j) {
        if (!(healed_sinks & (1u << j)) && j != i) continue;
        size_t k = brick_proto::PendingIndex(static_cast<int>(j), t);
        if (At(m.pend[i], k) != 0) d[i][k] = -At(m.pend[i], k);
      }
      // A negative counter means a post-op was applied twice (or a crash undid half of an
      // xattrop): it accuses nobody, but keeps the object in the index. Zero it.
      for (size_t k = 0; k < m.pend[i].size() && k < d[i].size(); ++k)
        if (m.pend[i][k] < 0) d[i][k] = -m.pend[i][k];
    }
    return d;
  }

  Result<std::vector<brick_proto::DirEntry>> ListAll(size_t i, const Gfid& dir) {
    std::vector<brick_proto::DirEntry> v;
    uint64_t cookie = 0;
    for (;;) {
      Request q;
      q.op = Op::kReaddir;
      q.gfid = dir;
      q.offset = cookie;
      q.length = brick_proto::kMaxDirEntries;
      DRFS_ASSIGN_OR_RETURN(Reply r, Call(cl_[i], q));
      if (r.err != 0) return ErrnoStatus(r.err, r.message);
      for (auto& e : r.entries) {
        cookie = e.cookie;
        v.push_back(std::move(e));
      }
      if (r.eof || r.entries.empty()) return v;
    }
  }

  // Removes name (and, for a directory, everything under it) from brick k only.
  Status RemoveTree(size_t k, const Gfid& parent, const brick_proto::DirEntry& e) {
    if (e.type == DT_DIR) {
      DRFS_ASSIGN_OR_RETURN(auto kids, ListAll(k, e.gfid));
      for (auto& c : kids) DRFS_RETURN_IF_ERROR(RemoveTree(k, e.gfid, c));
    }
    Request q;
    q.op = e.type == DT_DIR ? Op::kRmdir : Op::kUnlink;
    q.parent = parent;
    q.name = e.name;
    DRFS_ASSIGN_OR_RETURN(Reply r, Call(cl_[k], q));
    if (r.err != 0 && r.err != ENOENT) return ErrnoStatus(r.err, r.message);
    return Status::Ok();
  }

  // Makes name -> gfid on sink k as the source s has it. Objects it creates get markers on the
  // source accusing k, so the next pass copies their data, metadata and entries.
  Status CreateOnSink(size_t s, size_t k, const Gfid& dir, const brick_proto::DirEntry& e) {
    Request look;
    look.op = Op::kLookupGfid;
    look.gfid = e.gfid;
    auto src = Call(cl_[s], look);
    if (!src.ok() || src->err != 0) return Status::Ok();  // gone meanwhile: nothing to do
    const brick_proto::Iatt& a = src->attr;
    auto on_sink = Call(cl_[k], look);
    Request q;
    q.parent = dir;
    q.name = e.name;
    q.gfid = e.gfid;
    if (on_sink.ok() && on_sink->err == 0) {
      if (S_ISDIR(a.mode)) {
        // The directory exists elsewhere on the sink (renamed while it was down): move it.
        Request res;
        res.op = Op::kResolveGfid;
        res.gfid = e.gfid;
        DRFS_ASSIGN_OR_RETURN(Reply where, Call(cl_[k], res));
        if (where.err != 0) return ErrnoStatus(where.err, where.message);
        // The old name's parent: look it up by path, one component at a time.
        Gfid parent = Gfid::Root();
        std::string path = where.data, name;
        size_t pos = 0;
        std::vector<std::string> parts;
        while (pos <= path.size()) {
          size_t nx = path.find('/', pos);
          if (nx == std::string::npos) nx = path.size();
          if (nx > pos) parts.push_back(path.substr(pos, nx - pos));
          pos = nx + 1;
        }
        if (parts.empty()) return Status::Ok();
        for (size_t p = 0; p + 1 < parts.size(); ++p) {
          Request l;
          l.op = Op::kLookup;
          l.parent = parent;
          l.name = parts[p];
          DRFS_ASSIGN_OR_RETURN(Reply lr, Call(cl_[k], l));
          if (lr.err != 0) return ErrnoStatus(lr.err, lr.message);
          parent = lr.attr.gfid;
        }
        q.op = Op::kRename;
        q.parent = parent;
        q.name = parts.back();
        q.new_parent = dir;
        q.new_name = e.name;
      } else {
        q.op = Op::kLink;  // a file that has another name there: one more link
      }
    } else if (S_ISDIR(a.mode)) {
      q.op = Op::kMkdir;
      q.mode = a.mode & 07777;
      q.uid = a.uid;
      q.gid = a.gid;
    } else if (S_ISREG(a.mode)) {
      q.op = Op::kCreate;
      q.mode = a.mode & 07777;
      q.uid = a.uid;
      q.gid = a.gid;
      q.flags = brick_proto::kCreateExclusive;
    } else if (S_ISLNK(a.mode)) {
      Request rl;
      rl.op = Op::kReadlink;
      rl.gfid = e.gfid;
      DRFS_ASSIGN_OR_RETURN(Reply t, Call(cl_[s], rl));
      if (t.err != 0) return ErrnoStatus(t.err, t.message);
      q.op = Op::kSymlink;
      q.target = t.data;
      q.uid = a.uid;
      q.gid = a.gid;
    } else {
      q.op = Op::kMknod;
      q.mode = a.mode;
      q.rdev = a.rdev;
      q.uid = a.uid;
      q.gid = a.gid;
    }
    DRFS_ASSIGN_OR_RETURN(Reply r, Call(cl_[k], q));
    if (r.err != 0 && r.err != EEXIST) return ErrnoStatus(r.err, r.message);
    // Mark what the new object still needs on sink k.
    std::vector<int32_t> d(3 + 3 * n_, 0);
    if (q.op != Op::kRename && q.op != Op::kLink) {
      d[brick_proto::PendingIndex(static_cast<int>(k), brick_proto::kMarkMetadata)] = 1;
      if (S_ISREG(a.mode) && a.size > 0 && !(arbiter_ & (1u << k))) {
        d[brick_proto::PendingIndex(static_cast<int>(k), brick_proto::kMarkData)] = 1;
      }
      if (S_ISDIR(a.mode)) d[brick_proto::PendingIndex(static_cast<int>(k), brick_proto::kMarkEntry)] = 1;
    } else if (S_ISDIR(a.mode)) {
      d[brick_proto::PendingIndex(static_cast<int>(k), brick_proto::kMarkEntry)] = 1;
    }
    if (std::any_of(d.begin(), d.end(), [](int32_t x) { return x != 0; })) {
      Request x;
      x.op = Op::kXattrop;
      x.gfid = e.gfid;
      x.pending = d;
      auto xr = Call(cl_[s], x);
      if (!xr.ok() || xr->err != 0) {
        return Internal("cannot mark " + e.gfid.ToString() + " for heal on its source");
      }
    }
    return Status::Ok();
  }

  // Removes name e from directory `dir` on sink k, unless that would destroy an object a source
  // still has under another name (renamed or linked while k was down): then a directory is left
  // for its new parent's heal to move, and a file loses this name only while another name keeps
  // it alive. Deferred (Unavailable) in those cases; a later pass finishes.
  Status SafeRemove(Mask src, size_t k, const Gfid& dir, const brick_proto::DirEntry& e) {
    Request look;
    look.op = Op::kLookupGfid;
    look.gfid = e.gfid;
    bool elsewhere = false;
    for (size_t i = 0; i < n_ && !elsewhere; ++i) {
      if (i == k || !(src & (1u << i))) continue;
      auto on_src = Call(cl_[i], look);
      elsewhere = on_src.ok() && on_src->err == 0;
    }
    if (elsewhere) {
      if (e.type == DT_DIR) {
        return Unavailable("directory " + e.gfid.ToString() + " lives on under another name; "
                           "its new parent's heal moves it");
      }
      auto on_sink = Call(cl_[k], look);
      if (!on_sink.ok() || on_sink->err != 0 || on_sink->attr.nlink <= 1) {
        return Unavailable("file " + e.gfid.ToString() + " lives on under another name; its "
                           "new name is linked first");
      }
      Request q;
      q.op = Op::kUnlink;
      q.parent = dir;
      q.name = e.name;
      DRFS_ASSIGN_OR_RETURN(Reply r, Call(cl_[k], q));
      if (r.err != 0 && r.err != ENOENT) return ErrnoStatus(r.err, r.message);
      return Status::Ok();
    }
    return RemoveTree(k, dir, e);
  }

  // Entry heal of directory g: sinks get exactly the source's names.
  Status HealEntries(const Gfid& g, Markers& m, HealStats* st, bool* split) {
    const uint64_t owner = vc_->NewLockOwner();
    Request lock;
    lock.op = Op::kEntrylk;
    lock.parent = g;
    lock.name = "";
    Mask locked = LockAll(lock, owner, m.present & up(), &m);
    Verdict v = Judge(m, locked, brick_proto::kMarkEntry, false);
    Status result;
    Mask healed = 0;
    if (!v.needed) {
      // Nothing left to do (another healer finished it).
    } else if (v.split_brain) {
      *split = true;
      result = FailedPrecondition("entry split brain on directory " + g.ToString());
    } else {
      // Dirty only: the majority's listing is the truth; with a tie keep every name
      // (a conservative merge: nothing acknowledged is ever dropped).
      std::map<size_t, std::vector<brick_proto::DirEntry>> lists;
      for (size_t i = 0; i < n_; ++i) {
        if (!(locked & (1u << i))) continue;
        auto l = ListAll(i, g);
        if (l.ok()) lists[i] = std::move(*l);
      }
      std::map<std::string, std::map<Gfid, Mask>> names;  // name -> gfid -> bricks
      for (auto& [i, l] : lists)
        for (auto& e : l) names[e.name][e.gfid] |= 1u << i;
      Mask voters = 0;
      for (auto& [i, l] : lists) voters |= 1u << i;
      Mask src = v.dirty_only ? voters : (v.sources & voters);
      Mask sinks = v.dirty_only ? voters : (v.sinks & voters);
      if (!v.dirty_only && sinks == 0) {
        result = Unavailable("the brick that needs the entries of " + g.ToString() + " is down");
      }
      if (src == 0) {
        result = Unavailable("no source of directory " + g.ToString() + " is up");
        sinks = 0;  // fall through to unlock
      }
      for (size_t k = 0; k < n_; ++k) {
        if (!(sinks & (1u << k))) continue;
        Status ks;
        // Wanted on k: for each name, the gfid the sources agree on.
        std::map<std::string, Gfid> wanted;
        for (auto& [name, by_gfid] : names) {
          Gfid want;
          Mask want_bricks = 0;
          for (auto& [gf, bm] : by_gfid) {
            Mask s_has = bm & src;
            if (Popcount(s_has) > Popcount(want_bricks)) {
              want = gf;
              want_bricks = s_has;
            }
          }
          bool keep = want_bricks != 0;
          // Dirty only: majority rule; a tie keeps the name.
          if (v.dirty_only) keep = 2 * Popcount(want_bricks) >= Popcount(src);
          if (!keep) continue;
          wanted[name] = want;
          const brick_proto::DirEntry* have = nullptr;
          const brick_proto::DirEntry* src_e = nullptr;
          for (auto& e : lists[k])
            if (e.name == name) have = &e;
          size_t sb = static_cast<size_t>(std::countr_zero(want_bricks));
          for (auto& e : lists[sb])
            if (e.name == name) src_e = &e;
          if (have && have->gfid == want) continue;
          if (have) {
            // Another object holds the name on the sink: it must go first (safely).
            Status rs = SafeRemove(src, k, g, *have);
            if (!rs.ok()) {
              ks = rs;
              continue;
            }
          }
          if (src_e) {
            Status cs = CreateOnSink(sb, k, g, *src_e);
            if (!cs.ok()) ks = cs;
          }
        }
        // Then the names the sources do not have, from a fresh listing (the adds above may have
        // moved objects here or away).
        auto now_k = ListAll(k, g);
        if (!now_k.ok()) {
          ks = now_k.status();
        } else {
          for (auto& e : *now_k) {
            auto w = wanted.find(e.name);
            if (w != wanted.end() && w->second == e.gfid) continue;
            Status rs = SafeRemove(src, k, g, e);
            if (!rs.ok()) ks = rs;
          }
        }
        if (ks.ok()) healed |= 1u << k;
        else result = ks;
      }
      // Adding and removing names stamped the healed directories with the heal's own clock:
      // give them the source's times, as the client's ops left them there.
      if (!v.dirty_only && healed != 0 && src != 0) {
        Request ga;
        ga.op = Op::kGetattr;
        ga.gfid = g;
        auto sa = Call(cl_[static_cast<size_t>(std::countr_zero(src))], ga);
        for (size_t k = 0; k < n_ && sa.ok() && sa->err == 0; ++k) {
          if (!(healed & (1u << k))) continue;
          Request tm;
          tm.op = Op::kSetattr;
          tm.gfid = g;
          tm.attr_valid = brick_proto::kAttrAtime | brick_proto::kAttrMtime;
          tm.atime_ns = sa->attr.atime_ns;
          tm.mtime_ns = sa->attr.mtime_ns;
          (void)Call(cl_[k], tm);
        }
      }
    }
    auto d = Clear(m, locked, healed, brick_proto::kMarkEntry);
    if (!result.ok() || v.split_brain) {
      // Keep the accusations of sinks not healed, and dirty markers when anything failed.
      for (size_t i = 0; i < n_; ++i) d[i][brick_proto::kMarkEntry] = 0;
    }
    UnlockAll(lock, owner, locked, &d);
    if (v.needed && result.ok()) ++st->healed;
    return result;
  }

  // Data heal of file g from the first source to the sinks, in chunks under the inode lock.
  Status HealData(const Gfid& g, Markers& m, HealStats* st, bool* split) {
    const uint64_t owner = vc_->NewLockOwner();
    Mask where = m.present & up();
    // Data heal lets go of the inode lock between chunks, so client I/O goes on. Another
    // healer must not start on the same file meanwhile (both would subtract what they saw):
    // a second lock, in a key space no client uses (an entry lock named under a file's gfid),
    // is held for the whole heal; a healer that cannot get it at once leaves the file alone.
    Request domain;
    domain.op = Op::kEntrylk;
    domain.parent = g;
    domain.name = "drfs-self-heal";
    Mask held = 0;
    bool busy = false;
    for (size_t i = 0; i < n_; ++i) {
      if (!(where & (1u << i))) continue;
      Request q = domain;
      q.lock_owner = owner;
      auto r = Call(cl_[i], q);
      if (r.ok() && r->err == 0) held |= 1u << i;
      else if (r.ok() && r->err == EAGAIN) busy = true;
    }
    struct Release {
      HealRun* run;
      Request domain;
      uint64_t owner;
      Mask held;
      ~Release() { run->UnlockAll(domain, owner, held, nullptr); }
    } release{this, domain, owner, held};
    if (busy) return Unavailable("another self-heal daemon is healing " + g.ToString());
    Request lock;
    lock.op = Op::kInodelk;
    lock.gfid = g;
    Mask locked = LockAll(lock, owner, where, &m);
    Verdict v = Judge(m, locked, brick_proto::kMarkData, true);
    Markers first = m;
    if (!v.needed) {
      UnlockAll(lock, owner, locked, nullptr);
      return Status::Ok();
    }
    if (v.split_brain) {
      UnlockAll(lock, owner, locked, nullptr);
      *split = true;
      return FailedPrecondition("data split brain on file " + g.ToString());
    }
    Mask src_mask = v.sources;
    Mask sinks = v.sinks;
    if (!v.dirty_only && (sinks & locked) == 0) {
      UnlockAll(lock, owner, locked, nullptr);
      return Unavailable("the brick that needs " + g.ToString() + " is down");
    }
    if (v.dirty_only) {
      // A client died mid-write: the largest copy is the source, the others follow it.
      size_t best = n_;
      for (size_t i = 0; i < n_; ++i) {
        if (!(src_mask & (1u << i))) continue;
        if (best == n_ || m.attr[i].size > m.attr[best].size) best = i;
      }
      if (best == n_) {
        UnlockAll(lock, owner, locked, nullptr);
        return Unavailable("no data brick of " + g.ToString() + " is up");
      }
      src_mask = 1u << best;
      sinks = locked & ~src_mask & ~arbiter_;
    }
    const size_t s = static_cast<size_t>(std::countr_zero(src_mask));
    const Mask data_sinks = sinks & ~arbiter_;
    Status result;
    uint64_t off = 0;
    for (;;) {
      Request ga;
      ga.op = Op::kGetattr;
      ga.gfid = g;
      auto sa = Call(cl_[s], ga);
      if (!sa.ok() || sa->err != 0) {
        result = Unavailable("source brick lost " + g.ToString() + " during heal");
        break;
      }
      const uint64_t size = sa->attr.size;
      if (off >= size) {
        // Same size everywhere, then done.
        for (size_t k = 0; k < n_; ++k) {
          if (!(data_sinks & (1u << k))) continue;
          // The size, and the source's times: writing the chunks stamped the sink with the
          // heal's own clock, and a healed copy must not look newer than its source.
          Request t;
          t.op = Op::kSetattr;
          t.gfid = g;
          t.attr_valid = brick_proto::kAttrSize | brick_proto::kAttrAtime | brick_proto::kAttrMtime;
          t.size = size;
          t.atime_ns = sa->attr.atime_ns;
          t.mtime_ns = sa->attr.mtime_ns;
          auto tr = Call(cl_[k], t);
          if (!tr.ok() || tr->err != 0) result = Unavailable("truncate on sink failed");
        }
        break;
      }
      Request rd;
      rd.op = Op::kRead;
      rd.gfid = g;
      rd.offset = off;
      rd.length = std::min<uint64_t>(kChunk, size - off);
      auto sr = Call(cl_[s], rd);
      if (!sr.ok() || sr->err != 0) {
        result = Unavailable("reading the source failed");
        break;
      }
      for (size_t k = 0; k < n_; ++k) {
        if (!(data_sinks & (1u << k))) continue;
        auto kr = Call(cl_[k], rd);
        if (kr.ok() && kr->err == 0 && kr->data == sr->data) continue;  // already the same
        Request w;
        w.op = Op::kWrite;
        w.gfid = g;
        w.offset = off;
        w.data = sr->data;
        auto wr = Call(cl_[k], w);
        if (!wr.ok() || wr->err != 0) {
          result = Unavailable("writing to the sink failed");
        } else {
          st->bytes_copied += static_cast<int64_t>(w.data.size());
        }
      }
      if (!result.ok()) break;
      off += sr->data.size();
      if (stopping()) {
        result = Unavailable("self-heal is stopping");
        break;
      }
      if (sr->data.empty()) break;
      // Let client I/O in between chunks.
      UnlockAll(lock, owner, locked, nullptr);
      Markers dummy;
      dummy.pend.resize(n_);
      locked = LockAll(lock, owner, where, &dummy);
      if (!(locked & src_mask)) {
        result = Unavailable("source went down during heal");
        break;
      }
    }
    auto d = Clear(first, locked, result.ok() ? sinks : 0, brick_proto::kMarkData);
    if (!result.ok()) {
      for (size_t i = 0; i < n_; ++i) d[i][brick_proto::kMarkData] = 0;
    }
    UnlockAll(lock, owner, locked, &d);
    if (result.ok()) ++st->healed;
    return result;
  }

  // Metadata heal: mode, owner, times and xattrs from the first source.
  Status HealMetadata(const Gfid& g, Markers& m, HealStats* st, bool* split) {
    const uint64_t owner = vc_->NewLockOwner();
    Request lock;
    lock.op = Op::kInodelk;
    lock.gfid = g;
    Mask locked = LockAll(lock, owner, m.present & up(), &m);
    Verdict v = Judge(m, locked, brick_proto::kMarkMetadata, false);
    if (!v.needed) {
      UnlockAll(lock, owner, locked, nullptr);
      return Status::Ok();
    }
    if (v.split_brain) {
      UnlockAll(lock, owner, locked, nullptr);
      *split = true;
      return FailedPrecondition("metadata split brain on " + g.ToString());
    }
    if (!v.dirty_only && (v.sinks & locked) == 0) {
      UnlockAll(lock, owner, locked, nullptr);
      return Unavailable("the brick that needs the metadata of " + g.ToString() + " is down");
    }
    Mask src = v.sources & ~arbiter_ ? v.sources & ~arbiter_ : v.sources;
    Mask sinks = v.dirty_only ? (locked & ~(1u << std::countr_zero(src))) : v.sinks;
    if (v.dirty_only) src = 1u << std::countr_zero(src);
    const size_t s = static_cast<size_t>(std::countr_zero(src));
    Status result;
    Request ga;
    ga.op = Op::kGetattr;
    ga.gfid = g;
    auto sa = Call(cl_[s], ga);
    Request lx;
    lx.op = Op::kListxattr;
    lx.gfid = g;
    auto sx = Call(cl_[s], lx);
    if (!sa.ok() || sa->err != 0 || !sx.ok() || sx->err != 0) {
      result = Unavailable("source unreadable");
    } else {
      std::map<std::string, std::string> want;
      for (auto& name : sx->names) {
        Request gx;
        gx.op = Op::kGetxattr;
        gx.gfid = g;
        gx.xattr_name = name;
        auto v2 = Call(cl_[s], gx);
        if (v2.ok() && v2->err == 0) want[name] = v2->data;
      }
      for (size_t k = 0; k < n_ && result.ok(); ++k) {
        if (!(sinks & (1u << k))) continue;
        Request sa2;
        sa2.op = Op::kSetattr;
        sa2.gfid = g;
        sa2.attr_valid = brick_proto::kAttrUid | brick_proto::kAttrGid;
        sa2.uid = sa->attr.uid;
        sa2.gid = sa->attr.gid;
        auto r1 = Call(cl_[k], sa2);
        // Mode after owner (chown may clear setuid bits); times last.
        sa2.attr_valid = S_ISLNK(sa->attr.mode) ? 0 : brick_proto::kAttrMode;
        sa2.mode = sa->attr.mode & 07777;
        auto r2 = sa2.attr_valid ? Call(cl_[k], sa2) : r1;
        auto kx = Call(cl_[k], lx);
        if (!r1.ok() || r1->err != 0 || !r2.ok() || r2->err != 0 || !kx.ok() || kx->err != 0) {
          result = Unavailable("sink refused metadata");
          break;
        }
        for (auto& name : kx->names) {
          if (want.count(name)) continue;
          Request rx;
          rx.op = Op::kRemovexattr;
          rx.gfid = g;
          rx.xattr_name = name;
          (void)Call(cl_[k], rx);
        }
        for (auto& [name, value] : want) {
          Request gx;
          gx.op = Op::kGetxattr;
          gx.gfid = g;
          gx.xattr_name = name;
          auto cur = Call(cl_[k], gx);
          if (cur.ok() && cur->err == 0 && cur->data == value) continue;
          Request sx2;
          sx2.op = Op::kSetxattr;
          sx2.gfid = g;
          sx2.xattr_name = name;
          sx2.xattr_value = value;
          auto r = Call(cl_[k], sx2);
          if (!r.ok() || r->err != 0) result = Unavailable("sink refused xattr " + name);
        }
        Request tm;
        tm.op = Op::kSetattr;
        tm.gfid = g;
        tm.attr_valid = brick_proto::kAttrAtime | brick_proto::kAttrMtime;
        tm.atime_ns = sa->attr.atime_ns;
        tm.mtime_ns = sa->attr.mtime_ns;
        // Symlinks too: the brick sets a symlink's own times (utimensat on its O_PATH handle),
        // and a symlink the heal made would otherwise keep the heal's clock.
        auto rt = Call(cl_[k], tm);
        if (!rt.ok() || rt->err != 0) {
          result = Unavailable("sink refused the times of " + g.ToString());
          break;
        }
      }
    }
    auto d = Clear(m, locked, result.ok() ? sinks : 0, brick_proto::kMarkMetadata);
    if (!result.ok()) {
      for (size_t i = 0; i < n_; ++i) d[i][brick_proto::kMarkMetadata] = 0;
    }
    UnlockAll(lock, owner, locked, &d);
    if (result.ok()) ++st->healed;
    return result;
  }

  // Heals what g needs. Returns false when something is left for a later pass.
  bool HealOne(const Gfid& g, HealStats* st, bool dirs_only) {
    Markers m = Peek(g);
    if (m.present == 0) return true;  // gone everywhere: stale index entries clear themselves
    bool is_dir = false;
    for (size_t i = 0; i < n_; ++i)
      if ((m.present & (1u << i)) && S_ISDIR(m.attr[i].mode)) is_dir = true;
    if (dirs_only && !is_dir) return false;
    bool split = false;
    bool done = true;
    auto note = [&](const Status& s, const char* what) {
      if (s.ok()) return;
      done = false;
      DRFS_LOG(Info) << "self-heal: " << what << " heal of " << g.ToString()
                     << " deferred: " << s.message();
    };
    if (is_dir) note(HealEntries(g, m, st, &split), "entry");
    else if (S_ISREG(m.attr[static_cast<size_t>(std::countr_zero(m.present))].mode))
      note(HealData(g, m, st, &split), "data");
    note(HealMetadata(g, m, st, &split), "metadata");
    if (split) ++st->split_brain;
    return done;
  }

  // Markers with only a brick's own, zero counters are leftovers of a crash: clear the index.
  void DropEmpty(const Gfid& g, Mask listed) {
    for (size_t i = 0; i < n_; ++i) {
      if (!(listed & (1u << i))) continue;
      Request x;
      x.op = Op::kXattrop;
      x.gfid = g;
      (void)Call(cl_[i], x);  // zero deltas: the brick drops an all-zero index entry
    }
  }

  bool stopping() const { return stop_ && stop_->load(); }

  VolumeClient* vc_;
  size_t n_;
  const std::atomic<bool>* stop_;
  Clients cl_;
  Mask arbiter_ = 0, all_ = 0;
  static int Popcount(Mask m) { return std::popcount(m); }
};

}  // namespace

Result<HealStats> Healer::HealOnce() {
  HealStats st;
  std::set<Gfid> failed;
  for (int pass = 0; pass < kMaxPasses; ++pass) {
    if (stop_) break;
    HealRun run(client_, &stop_);
    if (run.up() == 0) return Unavailable("self-heal: no brick of the volume is up");
    auto index = run.ReadIndex(index_bricks_);
    if (index.empty()) break;
    int progress = 0;
    // Directories first, so objects exist on the sinks before their data is copied.
    for (bool dirs : {true, false}) {
      for (auto& [g, listed] : index) {
        if (stop_) break;
        if (!dirs && failed.count(g)) continue;
        if (dirs) ++st.examined;
        if (run.HealOne(g, &st, dirs)) {
          ++progress;
          run.DropEmpty(g, listed);
          failed.erase(g);
        } else if (!dirs) {
          failed.insert(g);
        }
      }
    }
    if (progress == 0) break;
  }
  st.failed = static_cast<int>(failed.size());
  return st;
}

Result<std::vector<HealEntry>> Healer::Info(bool split_brain_only) {
  HealRun run(client_);
  if (run.up() == 0) return Unavailable("no brick of the volume is up");
  auto index = run.ReadIndex(index_bricks_);
  std::vector<HealEntry> out;
  const size_t n = client_->brick_count();
  auto layout = client_->layout();
  for (auto& [g, listed] : index) {
    Markers m = run.Peek(g);
    std::string needs = NeedsText(m.pend, n);
    if (needs.empty()) continue;  // cleared since the index was read
    bool split = false;
    bool is_dir = false, is_file = false;
    for (size_t i = 0; i < n; ++i) {
      if (!(m.present & (1u << i))) continue;
      is_dir |= S_ISDIR(m.attr[i].mode);
      is_file |= S_ISREG(m.attr[i].mode);
    }
    for (int t = 0; t < 3; ++t) {
      auto v = run.Judge(m, m.present, t, t == brick_proto::kMarkData && is_file);
      if (v.split_brain && !(t == brick_proto::kMarkEntry && !is_dir)) split = true;
    }
    if (split_brain_only && !split) continue;
    for (size_t i = 0; i < n; ++i) {
      if (!(listed & (1u << i))) continue;
      HealEntry e;
      e.brick = i;
      e.brick_name = i < layout.bricks.size() ? layout.bricks[i].name : std::to_string(i);
      e.gfid = g;
      e.needs = needs;
      e.split_brain = split;
      Request q;
      q.op = Op::kResolveGfid;
      q.gfid = g;
      auto r = Call(run.cl_[i], q);
      if (r.ok() && r->err == 0) e.path = r->data;
      out.push_back(std::move(e));
    }
  }
  return out;
}

}  // namespace drfs::volume
