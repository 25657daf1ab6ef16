// BatchApplier: see apply.h for the contract. Notes on the implementation:
//
// - Apply first decides, from the stored position alone, what to do with the batch (Plan), then
//   applies its items in order (Run), then stores the new position, the counters and the
//   failures in one SQLite transaction. Nothing but the "attempt" mark is written before the
//   volume is touched, so an Unavailable return leaves the position as it was.
// - Every op checks the volume by gfid before it acts, and treats "already done" as success.
//   Errors are sorted three ways: transport trouble aborts the batch (Unavailable), "the object
//   is gone" is a skip (a later record removes it), and anything else is a failure row.
#include "secondary/apply.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "brick/client.h"
#include "changelog/record.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "common/time.h"
#include "secondary/detail/ordered_executor.h"
#include "volume/client.h"

namespace drfs::secondary {

using changelog::OpType;
using changelog::Record;
using georep::Batch;
using georep::BatchHeader;
using georep::Item;
using volume::Iatt;
using volume::VolumeClient;

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kApplied: return "applied";
    case Outcome::kDuplicate: return "duplicate";
    case Outcome::kStale: return "stale";
    case Outcome::kGap: return "gap";
  }
  return "?";
}

namespace {

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS positions (
  session TEXT NOT NULL,
  replica_set INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  token INTEGER NOT NULL,
  source_brick TEXT NOT NULL,
  lsn INTEGER NOT NULL,
  ts_ns INTEGER NOT NULL,
  crawl_seq INTEGER NOT NULL,
  crawl_done INTEGER NOT NULL,
  applied_ops INTEGER NOT NULL,
  failures INTEGER NOT NULL,
  kafka_offset INTEGER NOT NULL,
  applied_at_ns INTEGER NOT NULL,
  -- After a kBatchReplay batch: records of this stream journaled up to this time may repeat
  -- ones already applied (only the run's first batch carries the flag).
  replay_until_ns INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (session, replica_set)
);
-- How far an Apply that has not committed may have gone: records up to here from this brick
-- may already be on the volume (see "Re-applying" in apply.h).
CREATE TABLE IF NOT EXISTS attempts (
  session TEXT NOT NULL,
  replica_set INTEGER NOT NULL,
  source_brick TEXT NOT NULL,
  lsn INTEGER NOT NULL,
  PRIMARY KEY (session, replica_set)
);
-- Gfids whose object the applier destroyed (its last name removed). Gfids are never reused,
-- so a CREATE of one of these in a replay is an op already applied and undone since.
CREATE TABLE IF NOT EXISTS removed (
  session TEXT NOT NULL,
  gfid TEXT NOT NULL,
  at_ns INTEGER NOT NULL,
  PRIMARY KEY (session, gfid)
);
-- When the newest initial crawl of a replica set began (its items' timestamp). The crawl and
-- its window hold every object that lived on past that time: a replayed journal record
-- stamped before it never brings an object back.
CREATE TABLE IF NOT EXISTS crawls (
  session TEXT NOT NULL,
  replica_set INTEGER NOT NULL,
  started_ns INTEGER NOT NULL,
  PRIMARY KEY (session, replica_set)
);
CREATE TABLE IF NOT EXISTS failures (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  session TEXT NOT NULL,
  replica_set INTEGER NOT NULL,
  lsn INTEGER NOT NULL,
  op TEXT NOT NULL,
  target TEXT NOT NULL,
  error TEXT NOT NULL,
  at_ns INTEGER NOT NULL
);
)sql";

int64_t I(uint64_t v) { return static_cast<int64_t>(v); }
uint64_t U(int64_t v) { return static_cast<uint64_t>(v); }

// Errors that say nothing about the op itself: the volume could not be asked, or could not
// commit. The whole batch is retried later. ENOSPC/EDQUOT belong here too: recording every op
// of a full secondary as a failure would turn a full disk into a silent divergence.
bool IsTransport(const Status& s) {
  switch (s.sys_errno()) {
    case 0:
      break;
    case EIO: case ENOTCONN: case EROFS: case ETIMEDOUT: case ECONNREFUSED: case ECONNRESET:
    case ECONNABORTED: case EPIPE: case EHOSTUNREACH: case ENETUNREACH: case ESHUTDOWN:
    case EAGAIN: case EINTR: case ENOSPC: case EDQUOT: case ENOBUFS: case ENOMEM:
      return true;
    default:
      return false;
  }
  switch (s.code()) {
    case Code::kInvalidArgument: case Code::kNotFound: case Code::kAlreadyExists:
    case Code::kPermissionDenied: case Code::kFailedPrecondition: case Code::kOutOfRange:
    case Code::kUnimplemented:
      return false;
    default:
      return true;  // without an errno, assume the RPC layer: retrying is the safe side
  }
}

// The object (or its parent) does not exist: by gfid the volume client answers ESTALE.
bool IsGone(const Status& s) {
  return s.sys_errno() == ENOENT || s.sys_errno() == ESTALE || s.sys_errno() == ENOTDIR;
}

std::string ErrText(const Status& s) {
  std::string t = s.sys_errno() != 0 ? std::strerror(s.sys_errno()) : std::string(CodeName(s.code()));
  if (!s.message().empty()) t += " (" + s.message() + ")";
  return t;
}

std::string Entry(const Gfid& parent, std::string_view name) {
  return parent.ToString() + "/" + std::string(name);
}

std::string TargetOf(const Record& r) {
  switch (r.op) {
    case OpType::kCreate: case OpType::kMkdir: case OpType::kMknod: case OpType::kSymlink:
    case OpType::kLink: case OpType::kUnlink: case OpType::kRmdir:
      return Entry(r.parent, r.name) + " (" + r.gfid.ToString() + ")";
    case OpType::kRename:
      return Entry(r.parent, r.name) + " -> " + Entry(r.new_parent, r.new_name) + " (" +
             r.gfid.ToString() + ")";
    case OpType::kSetxattr: case OpType::kRemovexattr:
      return r.gfid.ToString() + " xattr " + r.xattr_name;
    default:
      return r.gfid.ToString();
  }
}

Position PositionFromRow(const SqlRow& row) {
  Position p;
  p.replica_set = static_cast<uint32_t>(row.Int(0));
  p.epoch = U(row.Int(1));
  p.token = U(row.Int(2));
  p.source_brick = row.Text(3);
  p.lsn = U(row.Int(4));
  p.ts_ns = U(row.Int(5));
  p.crawl_seq = U(row.Int(6));
  p.crawl_done = row.Int(7) != 0;
  p.applied_ops = U(row.Int(8));
  p.failures = U(row.Int(9));
  p.kafka_offset = row.Int(10);
  p.applied_at_ns = U(row.Int(11));
  return p;
}

constexpr std::string_view kPositionColumns =
    "replica_set, epoch, token, source_brick, lsn, ts_ns, crawl_seq, crawl_done, applied_ops, "
    "failures, kafka_offset, applied_at_ns";

struct Attempt {
  std::string source_brick;
  uint64_t lsn = 0;
};

// What to do with a batch, decided from the stored position before anything is touched.
struct Plan {
  std::optional<Outcome> early;  // stale, duplicate or gap: nothing to apply
  bool crawl = false;
  // Items at or below these are already applied (LSN mode) and skipped.
  uint64_t skip_lsn = 0;
  uint64_t skip_crawl = 0;
  bool check_lsn = false;  // LSN dedup applies (same brick, not a replay)
  bool lenient_all = false;  // no LSN checks: every op idempotently, superseded ops skipped
  Position next;             // the position after the batch
  uint64_t replay_until_ns = 0;  // items journaled up to here are treated as replayed
  uint64_t crawl_started_ns = 0;  // a new crawl run: when it began (stored in `crawls`)
};

bool Older(uint64_t epoch, uint64_t token, const Position& p) {
  return epoch < p.epoch || (epoch == p.epoch && token < p.token);
}

// The LSN the position reaches after `b`: its last LSN, unless it ends inside a WRITE.
uint64_t EndLsn(const Batch& b) {
  uint64_t end = b.header.last_lsn;
  if (!b.items.empty()) {
    const Item& last = b.items.back();
    if (last.op.op == OpType::kWrite && !last.last_fragment && last.op.lsn == end && end > 0) {
      end -= 1;
    }
  }
  return end;
}

// The journal timestamp of the last record the batch completes (0 if none).
uint64_t EndTs(const Batch& b, uint64_t end_lsn) {
  for (auto it = b.items.rbegin(); it != b.items.rend(); ++it) {
    if (it->op.lsn <= end_lsn && (it->op.op != OpType::kWrite || it->last_fragment)) {
      return it->op.timestamp_ns;
    }
  }
  return 0;
}

// How far past the old brick's applied time a takeover's records may still repeat ones
// already applied: the bricks' clocks differ a little.
constexpr uint64_t kReplaySkewNs = 5'000'000'000;
// The crawl's limbo of replica set N is this name and N in the secondary's root (see Park).
constexpr char kLimboPrefix[] = ".drfs-crawl-limbo-rs";
// What to do about a limbo the applier could not remove (the volume is read-only to all but it).
constexpr char kLimboLeft[] =
    "; it stays ('drfs georep verify' lists it) until the next initial sync of this replica set "
    "ends, or remove it by hand once the session is deleted (the volume is read-only until then)";

Plan MakePlan(const std::optional<Position>& stored, uint64_t stored_replay_until,
              const Batch& b, uint32_t rs) {
  const BatchHeader& h = b.header;
  Plan plan;
  plan.crawl = (h.flags & georep::kBatchCrawl) != 0;
  Position next = stored.value_or(Position{});
  next.replica_set = rs;
  if (stored && Older(h.epoch, h.token, *stored)) {
    plan.early = Outcome::kStale;
    return plan;
  }
  const bool same_brick = stored && h.source_brick == stored->source_brick;
  const bool same_stream =
      same_brick && h.epoch == stored->epoch && h.token == stored->token;
  next.epoch = h.epoch;
  next.token = h.token;
  next.source_brick = h.source_brick;
  if (same_stream) plan.replay_until_ns = stored_replay_until;
  if ((h.flags & georep::kBatchReplay) && stored && !same_stream) {
    plan.replay_until_ns = stored->ts_ns + kReplaySkewNs;
  }

  if (plan.crawl) {
    const uint64_t first = h.crawl_seq;
    const uint64_t last = b.items.empty() ? (first > 0 ? first - 1 : 0) : first + b.items.size() - 1;
    if (same_stream) {
      // This stream's crawl is over: a crawl batch now is a redelivery (of its CrawlDone too,
      // which must not move the position back to the crawl's end).
      if (stored->crawl_done) {
        plan.early = Outcome::kDuplicate;
        return plan;
      }
      if (!b.items.empty() && last <= stored->crawl_seq &&
          !((h.flags & georep::kBatchCrawlDone) && !stored->crawl_done)) {
        plan.early = Outcome::kDuplicate;
        return plan;
      }
      if (first > stored->crawl_seq + 1) {
        plan.early = Outcome::kGap;
        return plan;
      }
      plan.skip_crawl = stored->crawl_seq;
      next.crawl_seq = std::max(stored->crawl_seq, last);
    } else {
      // A crawl run is entered only at its first batch (crawl_seq 1, with kBatchResume naming
      // where the crawl starts in the journal): entered later, the items before it would be
      // missing. A new run restarts the crawl from its first item, whatever an earlier run of
      // another token applied.
      if (!(h.flags & georep::kBatchResume) || first != 1) {
        plan.early = Outcome::kGap;
        return plan;
      }
      next.crawl_seq = last;
      next.crawl_done = false;
      // Until the crawl is done the position is its start: the journal record it covers up to,
      // and the time the crawl began (its items carry it). A syncer taking over an unfinished
      // crawl from another brick restarts it from that time in its own journal.
      next.source_brick = h.resume_brick.empty() ? h.source_brick : h.resume_brick;
      next.lsn = h.resume_lsn;
      next.ts_ns = 0;
      for (const Item& it : b.items) {
        if (it.op.lsn == 0 && it.op.timestamp_ns != 0) {
          next.ts_ns = it.op.timestamp_ns;
          break;
        }
      }
      plan.crawl_started_ns = next.ts_ns;
    }
    plan.lenient_all = true;  // crawl items state what exists; they may repeat
  } else {
    if (same_stream && stored->crawl_seq > 0 && !stored->crawl_done) {
      // Journal records of a stream whose crawl has not ended: they follow its CrawlDone, so
      // that batch (or a crawl batch before it) is missing.
      plan.early = Outcome::kGap;
      return plan;
    }
    const bool empty = b.items.empty() && h.first_lsn == 0 && h.last_lsn == 0;
    const bool lsn_mode = same_stream || (same_brick && !(h.flags & georep::kBatchReplay));
    if ((!stored || !lsn_mode) && !empty && !(h.flags & georep::kBatchResume)) {
      // A stream this applier has not followed yet can only be entered at its start: the
      // batch that says where it resumes. Entering anywhere later would skip the records
      // before it (the start was lost: evicted by the broker, or never read).
      plan.early = Outcome::kGap;
      return plan;
    }
    if (!stored && !empty && h.first_lsn > h.resume_lsn + 1 && h.resume_brick == h.source_brick) {
      plan.early = Outcome::kGap;  // it does not even start where it says it resumes
      return plan;
    }
    if (!stored || !lsn_mode) {
      plan.lenient_all = true;
      if (empty) {
        // A marker batch from a new brick: it can only tell us where it stands.
        if (!same_brick) {
          next.lsn = (h.flags & georep::kBatchResume) && h.resume_brick == h.source_brick
                         ? h.resume_lsn
                         : 0;
        }
      } else {
        next.lsn = EndLsn(b);
        next.ts_ns = EndTs(b, next.lsn);
      }
    } else if (empty) {
      // Nothing to apply; a newer token is still worth recording (acks then carry it).
      if (same_stream && !(h.flags & georep::kBatchCrawlDone)) {
        plan.early = Outcome::kDuplicate;
        return plan;
      }
    } else {
      if (h.last_lsn <= stored->lsn) {
        plan.early = Outcome::kDuplicate;
        return plan;
      }
      if (h.first_lsn > stored->lsn + 1) {
        plan.early = Outcome::kGap;
        return plan;
      }
      plan.check_lsn = true;
      plan.skip_lsn = stored->lsn;
      const uint64_t end = EndLsn(b);
      if (end > stored->lsn) {
        next.lsn = end;
        next.ts_ns = EndTs(b, end);
      }
    }
  }
  if (h.flags & georep::kBatchCrawlDone) {
    next.crawl_done = true;
    next.source_brick = h.resume_brick.empty() ? h.source_brick : h.resume_brick;
    next.lsn = h.resume_lsn;
    // The journal time of E, when the batch carries that record (a syncer taking over another
    // brick's journal replays from this time); else the crawl's start time stays, which is
    // earlier: a longer replay, never a shorter one.
    for (auto it = b.items.rbegin(); it != b.items.rend(); ++it) {
      if (it->op.lsn != 0 && it->op.lsn == h.resume_lsn) {
        next.ts_ns = it->op.timestamp_ns;
        break;
      }
    }
  }
  plan.next = std::move(next);
  return plan;
}

// Applies one batch's items to the volume. Every method returns non-OK only for transport
// trouble; everything else ends as done, skipped or a failure row.
class Run {
 public:
  // `was_removed` says whether an earlier batch destroyed the object with that gfid.
  // `crawl_started_ns`: when the newest initial crawl began (0: none).
  Run(VolumeClient& v, uint32_t rs, std::function<bool(const Gfid&)> was_removed,
      uint64_t crawl_started_ns = 0, bool crawl = false)
      : v_(v),
        rs_(rs),
        was_removed_(std::move(was_removed)),
        crawl_started_ns_(crawl_started_ns),
        crawl_(crawl) {}

  Status Item(const georep::Item& it, bool lenient) {
    const Record& r = it.op;
    switch (r.op) {
      case OpType::kCreate: case OpType::kMkdir: case OpType::kMknod: case OpType::kSymlink:
        return MakeEntry(r, lenient);
      case OpType::kLink: return Link(r, lenient);
      case OpType::kUnlink: case OpType::kRmdir: return Remove(r);
      case OpType::kRename: return Rename(r, lenient);
      case OpType::kWrite: return Write(it);
      case OpType::kTruncate: {
        volume::SetattrArgs a;
        a.valid = brick_proto::kAttrSize;
        a.size = r.size;
        return Check(r, v_.Setattr(r.gfid, a).status());
      }
      case OpType::kFallocate:
        return Check(r, v_.Fallocate(r.gfid, r.fallocate_mode, r.offset, r.length).status());
      case OpType::kSetattr: return Setattr(r);
      case OpType::kSetxattr:
        if (it.gone) return Status::Ok();  // a later REMOVEXATTR or UNLINK follows
        return Check(r, v_.Setxattr(r.gfid, r.xattr_name, it.data, 0));
      case OpType::kRemovexattr: {
        Status s = v_.Removexattr(r.gfid, r.xattr_name);
        if (s.sys_errno() == ENODATA) return Status::Ok();
        return Check(r, s);
      }
    }
    Fail(r, "unknown op type " + std::to_string(static_cast<int>(r.op)));
    return Status::Ok();
  }

  // Ends the write transactions the batch opened, so their errors surface here and not later.
  Status FlushWrites(detail::OrderedExecutor& ex) {
    std::set<Gfid> written;
    {
      std::lock_guard<std::mutex> l(mu_);
      written.swap(written_);
    }
    for (const Gfid& g : written) {
      if (!ex.Submit({{g.ToString(), true}}, [this, g] { return FlushOne(g); })) break;
    }
    return ex.Wait();
  }

  // Puts the primary's attributes back (entry ops and writes moved times to "now"). One
  // snapshot per gfid: they may all go at once.
  Status Attrs(const std::vector<georep::AttrSnapshot>& attrs, uint64_t lsn,
               detail::OrderedExecutor& ex) {
    for (const auto& a : attrs) {
      if (!ex.Submit({{a.gfid.ToString(), true}}, [this, &a, lsn] { return AttrOne(a, lsn); })) break;
    }
    return ex.Wait();
  }

  std::vector<Failure>& failures() { return failures_; }
  const std::set<Gfid>& removed() const { return removed_; }

 private:
  Status FlushOne(const Gfid& g) {
    Status s = v_.Flush(g);
    if (!s.ok() && !IsGone(s) && IsTransport(s)) return Transport("flush of " + g.ToString(), s);
    return Status::Ok();
  }

  Status AttrOne(const georep::AttrSnapshot& a, uint64_t lsn) {
    {
      auto cur = v_.Getattr(a.gfid);
      if (!cur.ok()) {
        if (IsGone(cur.status())) return Status::Ok();
        if (IsTransport(cur.status())) return Transport("getattr of " + a.gfid.ToString(), cur.status());
        AddFailure(lsn, "ATTRS", a.gfid.ToString(), ErrText(cur.status()));
        return Status::Ok();
      }
      volume::SetattrArgs s;
      const bool link = S_ISLNK(cur->mode);
      if (!link && a.mode != 0 && (cur->mode & 07777) != (a.mode & 07777)) {
        s.valid |= brick_proto::kAttrMode;
        s.mode = a.mode & 07777;
      }
      if (cur->uid != a.uid) s.valid |= brick_proto::kAttrUid;
      if (cur->gid != a.gid) s.valid |= brick_proto::kAttrGid;
      s.uid = a.uid;
      s.gid = a.gid;
      if (cur->atime_ns != a.atime_ns || cur->mtime_ns != a.mtime_ns) {
        s.valid |= brick_proto::kAttrAtime | brick_proto::kAttrMtime;
        s.atime_ns = a.atime_ns;
        s.mtime_ns = a.mtime_ns;
      }
      if (s.valid == 0) return Status::Ok();
      auto r = v_.Setattr(a.gfid, s);
      if (!r.ok() && !IsGone(r.status())) {
        if (IsTransport(r.status())) return Transport("setattr of " + a.gfid.ToString(), r.status());
        AddFailure(lsn, "ATTRS", a.gfid.ToString(), ErrText(r.status()));
      }
    }
    return Status::Ok();
  }

  Status Transport(const std::string& what, const Status& s) {
    return Status(Code::kUnavailable,
                  "replica set " + std::to_string(rs_) + ": " + what +
                      " could not reach the secondary volume (" + s.message() +
                      "); the batch is retried whole",
                  s.sys_errno());
  }
  Status Transport(const Record& r, const Status& s) {
    return Transport("LSN " + std::to_string(r.lsn) + " " +
                         std::string(changelog::OpTypeName(r.op)) + " " + TargetOf(r),
                     s);
  }

  void AddFailure(uint64_t lsn, std::string op, std::string target, std::string error) {
    Failure f;
    f.replica_set = rs_;
    f.lsn = lsn;
    f.op = std::move(op);
    f.target = std::move(target);
    f.error = std::move(error);
    f.at_ns = NowNs();
    DRFS_LOG(Warn) << "georep apply: replica set " << rs_ << " LSN " << f.lsn << " " << f.op
                      << " " << f.target << " not applied: " << f.error;
    std::lock_guard<std::mutex> l(mu_);
    failures_.push_back(std::move(f));
  }
  void Fail(const Record& r, std::string error) {
    AddFailure(r.lsn, std::string(changelog::OpTypeName(r.op)), TargetOf(r), std::move(error));
  }

  // The common ending: ok, gone (superseded: a later record removes the object), transport
  // trouble, or a failure.
  Status Check(const Record& r, const Status& s) {
    if (s.ok() || IsGone(s)) return Status::Ok();
    if (IsTransport(s)) return Transport(r, s);
    Fail(r, ErrText(s));
    return Status::Ok();
  }

  // nullopt when there is no such object or entry; an error only for other trouble.
  Result<std::optional<Iatt>> Stat(const Gfid& g) {
    auto a = v_.Getattr(g);
    if (a.ok()) return std::optional<Iatt>(*a);
    if (IsGone(a.status())) return std::optional<Iatt>();
    return a.status();
  }
  Result<std::optional<Iatt>> Find(const Gfid& parent, std::string_view name) {
    auto a = v_.Lookup(parent, name);
    if (a.ok()) return std::optional<Iatt>(*a);
    if (IsGone(a.status())) return std::optional<Iatt>();
    return a.status();
  }
  // Runs a lookup-type call; false (with `*out` set to what to return) when it failed.
  template <typename T>
  bool Got(const Record& r, const Result<T>& res, Status* out) {
    if (res.ok()) return true;
    if (IsTransport(res.status())) {
      *out = Transport(r, res.status());
    } else {
      Fail(r, ErrText(res.status()));
      *out = Status::Ok();
    }
    return false;
  }

  std::string Describe(const std::optional<Iatt>& a) {
    if (!a) return "nothing";
    const char* type = S_ISDIR(a->mode) ? "directory" : S_ISLNK(a->mode) ? "symlink" : "file";
    return std::string(type) + " " + a->gfid.ToString();
  }

  Status MakeEntry(const Record& r, bool lenient) {
    Status out;
    auto have = Stat(r.gfid);
    if (!Got(r, have, &out)) return out;
    if (*have) {
      // A crawl's walk says where the object is now: one the secondary holds elsewhere (in
      // the limbo, see Park; or an earlier crawl run put it there) moves here. A file with
      // several names keeps them (the window's records settle the others) and gets this one.
      // A record of the window says where the object was made, and it can be here already
      // under a later name: a directory the window ships (a fix-up) is listed as it is now,
      // after records not applied yet. A directory moves (every later record follows, so its
      // later renames move it on); a file gets this name too (its later records remove the
      // names it did not have yet).
      if (crawl_ && (S_ISDIR((*have)->mode) || (r.lsn == 0 && (*have)->nlink <= 1))) {
        return Relocate(r);
      }
      if (crawl_) {
        Record link = r;
        link.op = OpType::kLink;
        return Link(link, /*lenient=*/true);
      }
      return Status::Ok();  // created before (this batch was applied already)
    }
    // Replaying, a CREATE of an object that was created and destroyed since must not bring it
    // back: the record that destroyed it may not apply again (its source moved on).
    if (lenient && (WasRemovedHere(r.gfid) || was_removed_(r.gfid))) return Status::Ok();
    // Nor one made before the newest initial crawl began: the crawl shipped every object that
    // lived on past its start, so this one was gone before (it was never here to leave a
    // tombstone). A journal replay by time can reach back that far.
    if (lenient && r.lsn != 0 && crawl_started_ns_ != 0 && r.timestamp_ns < crawl_started_ns_) {
      return Status::Ok();
    }
    Result<Iatt> made = Status(Code::kInternal, "unreachable");
    switch (r.op) {
      case OpType::kCreate:
        made = v_.Create(r.parent, r.name, r.mode, r.uid, r.gid, /*exclusive=*/true, r.gfid);
        break;
      case OpType::kMkdir:
        made = v_.Mkdir(r.parent, r.name, r.mode, r.uid, r.gid, r.gfid);
        break;
      case OpType::kMknod:
        made = v_.Mknod(r.parent, r.name, r.mode, r.rdev, r.uid, r.gid, r.gfid);
        break;
      default:
        made = v_.Symlink(r.parent, r.name, r.symlink_target, r.uid, r.gid, r.gfid);
        break;
    }
    if (made.ok()) return Status::Ok();
    const Status& s = made.status();
    if (IsTransport(s)) return Transport(r, s);
    if (s.sys_errno() == EEXIST) {
      auto there = Find(r.parent, r.name);
      if (!Got(r, there, &out)) return out;
      if (*there && (*there)->gfid == r.gfid) return Status::Ok();
      if (lenient) return Status::Ok();  // a later record moved or removed what is there
      Fail(r, "File exists: the name is taken by " + Describe(*there) +
                  " on the secondary, which the primary did not have; left as is. Compare the "
                  "two sites and resolve it by hand");
      return Status::Ok();
    }
    if (IsGone(s)) {
      if (lenient) return Status::Ok();  // the parent was removed by a later record
      Fail(r, "the parent directory " + r.parent.ToString() +
                  " does not exist on the secondary; the secondary is missing earlier ops: "
                  "resync the session");
      return Status::Ok();
    }
    Fail(r, ErrText(s));
    return Status::Ok();
  }

  // Where `g` is named on the secondary, from a brick's gfid index (its path, then the parent's
  // gfid by lookups from the root); nullopt if no brick can tell.
  std::optional<std::pair<Gfid, std::string>> Locate(const Gfid& g) {
    for (size_t i = 0; i < v_.brick_count(); ++i) {
      auto b = v_.brick(i);
      if (!b) continue;
      brick_proto::Request q;
      q.op = brick_proto::Op::kResolveGfid;
      q.gfid = g;
      auto rep = b->CallSync(q);
      if (!rep.ok()) continue;
      std::vector<std::string> parts;
      size_t at = 0;
      while (at <= rep->data.size()) {
        size_t slash = rep->data.find('/', at);
        if (slash == std::string::npos) slash = rep->data.size();
        if (slash > at) parts.push_back(rep->data.substr(at, slash - at));
        at = slash + 1;
      }
      if (parts.empty()) return std::nullopt;
      Gfid dir = Gfid::Root();
      for (size_t k = 0; k + 1 < parts.size(); ++k) {
        auto a = v_.Lookup(dir, parts[k]);
        if (!a.ok()) return std::nullopt;
        dir = a->gfid;
      }
      return std::make_pair(dir, parts.back());
    }
    return std::nullopt;
  }

  // Moves the object of crawl entry `r` to (r.parent, r.name) when that name is free.
  Status Relocate(const Record& r) { return RelocateTo(r, r.gfid, r.parent, r.name); }
  Status RelocateTo(const Record& r, const Gfid& g, const Gfid& parent, const std::string& name) {
    Status out;
    auto there = Find(parent, name);
    if (!Got(r, there, &out)) return out;
    if (*there) return Status::Ok();  // already here, or the name holds another object: left
    auto from = Locate(g);
    if (!from || (from->first == parent && from->second == name)) return Status::Ok();
    Status s = v_.Rename(from->first, from->second, parent, name, changelog::kRenameNoreplace);
    if (!s.ok() && IsTransport(s)) return Transport(r, s);
    return Status::Ok();  // otherwise (into its own subtree, say) the window's records settle it
  }

  // ---- The crawl's limbo.
  // A crawl's window can move an object the walk shipped into a directory the secondary does
  // not have: one the walk missed (it moved from where the walk had not been yet to where it
  // had been), which the window ships later, as it is then, when it meets that move. Left
  // where it was, the object would keep a name the primary took away (and a file unlinked
  // since would stay for good). It goes to the replica set's limbo, a directory in the root
  // (created when first needed). When the window ships the missed directory, the object is
  // moved out of the limbo to where the walk of that directory found it (MakeEntry: Relocate;
  // a further name: LINK); when a later rename moves it out, RENAME does. What is still in the
  // limbo when the crawl ends was removed on the primary since: the CrawlDone batch empties it.
  std::string LimboName() const { return std::string(kLimboPrefix) + std::to_string(rs_); }

  // Also a crawl's UNLINK (or rename over) of a file's last name here: its other names on the
  // primary may be in such a directory, which the window ships later as LINKs to it.
  bool ParkInstead(const Iatt& obj) const { return crawl_ && !S_ISDIR(obj.mode) && obj.nlink <= 1; }

  Status Park(const Record& r, const Iatt& obj) { return Park(r, r.parent, r.name, obj); }
  Status Park(const Record& r, const Gfid& parent, const std::string& entry, const Iatt& obj) {
    Status out;
    auto limbo = Find(Gfid::Root(), LimboName());
    if (!Got(r, limbo, &out)) return out;
    Gfid dir;
    if (*limbo) {
      dir = (*limbo)->gfid;
    } else {
      auto made = v_.Mkdir(Gfid::Root(), LimboName(), 0700, 0, 0);
      if (made.ok()) {
        dir = made->gfid;
      } else if (made.status().sys_errno() == EEXIST) {
        auto again = Find(Gfid::Root(), LimboName());
        if (!Got(r, again, &out)) return out;
        if (!*again) return Status::Ok();
        dir = (*again)->gfid;
      } else {
        if (IsTransport(made.status())) return Transport(r, made.status());
        Fail(r, "cannot create the crawl's limbo directory /" + LimboName() + ": " +
                    ErrText(made.status()));
        return Status::Ok();
      }
    }
    const std::string name = obj.gfid.ToString() + "." + std::to_string(r.lsn);
    Status s = v_.Rename(parent, entry, dir, name, changelog::kRenameNoreplace);
    if (!s.ok() && IsTransport(s)) return Transport(r, s);
    if (!s.ok() && !IsGone(s)) Fail(r, "moving it to the crawl's limbo: " + ErrText(s));
    return Status::Ok();
  }

 public:
  // Removes the limbo and what is left in it (the crawl is over: see Park).
  Status EmptyLimbo() {
    auto limbo = v_.Lookup(Gfid::Root(), LimboName());
    if (!limbo.ok()) {
      if (IsGone(limbo.status())) return Status::Ok();
      if (IsTransport(limbo.status())) {
        return Transport("the crawl's limbo /" + LimboName(), limbo.status());
      }
      AddFailure(0, "LOOKUP", "/" + LimboName(), "cannot empty the crawl's limbo: " +
                                                   ErrText(limbo.status()) + kLimboLeft);
      return Status::Ok();
    }
    DRFS_RETURN_IF_ERROR(EmptyDir(limbo->gfid, "/" + LimboName()));
    Status s = v_.Rmdir(Gfid::Root(), LimboName());
    if (s.ok() || IsGone(s)) return Status::Ok();
    if (IsTransport(s)) return Transport("the crawl's limbo /" + LimboName(), s);
    AddFailure(0, "RMDIR", "/" + LimboName(), "cannot remove the crawl's limbo: " + ErrText(s) +
                                                 kLimboLeft);
    return Status::Ok();
  }

 private:
  Status EmptyDir(const Gfid& dir, const std::string& path) {
    for (;;) {
      auto page = v_.Readdir(dir, 0, 256, true);
      if (!page.ok()) {
        if (IsGone(page.status())) return Status::Ok();
        if (IsTransport(page.status())) return Transport("listing " + path, page.status());
        AddFailure(0, "READDIR", path, "cannot empty the crawl's limbo: " +
                                           ErrText(page.status()) + kLimboLeft);
        return Status::Ok();
      }
      if (page->entries.empty()) return Status::Ok();
      bool removed_any = false;
      for (const auto& e : page->entries) {
        Status s;
        if (S_ISDIR(e.attr.mode)) {
          DRFS_RETURN_IF_ERROR(EmptyDir(e.gfid, path + "/" + e.name));
          s = v_.Rmdir(dir, e.name);
        } else {
          s = v_.Unlink(dir, e.name);
        }
        if (s.ok()) {
          NoteRemoval(e.attr);
          removed_any = true;
        } else if (IsTransport(s)) {
          return Transport("removing " + path + "/" + e.name, s);
        } else if (!IsGone(s)) {
          AddFailure(0, S_ISDIR(e.attr.mode) ? "RMDIR" : "UNLINK", path + "/" + e.name,
                     "cannot empty the crawl's limbo: " + ErrText(s) + kLimboLeft);
          return Status::Ok();
        }
      }
      if (page->eof) return Status::Ok();
      if (!removed_any) {
        // A listing of entries none of which could be removed (gone already: a replica that
        // lags behind): listing again from the start would go round for ever.
        AddFailure(0, "READDIR", path, "cannot empty the crawl's limbo: its listing keeps "
                                       "naming entries that are gone" + std::string(kLimboLeft));
        return Status::Ok();
      }
    }
  }

  Status Link(const Record& r, bool lenient) {
    Status out;
    auto have = Stat(r.gfid);
    if (!Got(r, have, &out)) return out;
    if (!*have) return Status::Ok();  // the inode is gone: a later record removed it
    auto there = Find(r.parent, r.name);
    if (!Got(r, there, &out)) return out;
    if (*there) {
      if ((*there)->gfid == r.gfid) return Status::Ok();
      if (lenient) return Status::Ok();
      Fail(r, "File exists: the name is taken by " + Describe(*there) +
                  " on the secondary; left as is. Compare the two sites and resolve it by hand");
      return Status::Ok();
    }
    auto made = v_.Link(r.gfid, r.parent, r.name);
    if (made.ok()) return Status::Ok();
    if (IsTransport(made.status())) return Transport(r, made.status());
    if (IsGone(made.status())) {
      if (lenient) return Status::Ok();
      Fail(r, "the parent directory " + r.parent.ToString() +
                  " does not exist on the secondary; resync the session");
      return Status::Ok();
    }
    Fail(r, ErrText(made.status()));
    return Status::Ok();
  }

  // UNLINK/RMDIR remove the entry only while it still names the record's gfid: a name reused
  // since (by a later record) must not lose its new object.
  Status Remove(const Record& r) {
    Status out;
    auto there = Find(r.parent, r.name);
    if (!Got(r, there, &out)) return out;
    if (!*there || (*there)->gfid != r.gfid) return Status::Ok();
    if (ParkInstead(**there)) return Park(r, **there);
    Status s = r.op == OpType::kUnlink ? v_.Unlink(r.parent, r.name) : v_.Rmdir(r.parent, r.name);
    if (s.ok()) NoteRemoval(**there);
    if (s.ok() || IsGone(s)) return Status::Ok();
    if (IsTransport(s)) return Transport(r, s);
    if (s.sys_errno() == ENOTEMPTY) {
      Fail(r, "Directory not empty: the secondary holds entries in it that the primary had "
              "removed before; it is left in place. List it on both sites and remove the extra "
              "entries by hand");
      return Status::Ok();
    }
    Fail(r, ErrText(s));
    return Status::Ok();
  }

  Status Rename(const Record& r, bool lenient) {
    Status out;
    auto src = Find(r.parent, r.name);
    if (!Got(r, src, &out)) return out;
    auto dst = Find(r.new_parent, r.new_name);
    if (!Got(r, dst, &out)) return out;
    const bool src_is = *src && (*src)->gfid == r.gfid;
    const bool dst_is = *dst && (*dst)->gfid == r.gfid;
    if (r.rename_flags & changelog::kRenameExchange) {
      const bool dst_other = *dst && (*dst)->gfid == r.replaced;
      const bool src_other = *src && (*src)->gfid == r.replaced;
      if (dst_is && src_other) return Status::Ok();  // swapped already
      if (!(src_is && dst_other)) {
        if (lenient) return Status::Ok();
        Fail(r, "cannot exchange: " + Entry(r.parent, r.name) + " is " + Describe(*src) + " and " +
                    Entry(r.new_parent, r.new_name) + " is " + Describe(*dst) + ", expected " +
                    r.gfid.ToString() + " and " + r.replaced.ToString() +
                    "; compare the two sites and resolve it by hand");
        return Status::Ok();
      }
    } else if (!src_is) {
      if (dst_is) return Status::Ok();  // renamed already
      if (lenient) {
        // A later record moved or removed the source, but what this rename replaced must still
        // go: replaying the window may have re-created it (its CREATE came first).
        bool dst_free = !*dst;
        if (!r.replaced.is_null() && *dst && (*dst)->gfid == r.replaced) {
          if (ParkInstead(**dst)) {
            DRFS_RETURN_IF_ERROR(Park(r, r.new_parent, r.new_name, **dst));
            auto after = Find(r.new_parent, r.new_name);
            if (!Got(r, after, &out)) return out;
            dst_free = !*after;
          } else {
            Status s = S_ISDIR((*dst)->mode) ? v_.Rmdir(r.new_parent, r.new_name)
                                             : v_.Unlink(r.new_parent, r.new_name);
            if (s.ok()) NoteRemoval(**dst);
            if (!s.ok() && IsTransport(s)) return Transport(r, s);
            dst_free = s.ok();
          }
        }
        // In a crawl's window: the destination still names this object after the rename. A
        // file with several names can be here under another one while the source never was
        // (the walk listed the source's directory after the rename and the destination's
        // before it): give it the destination name. Every later record follows in the window,
        // so one that moved the source on moves or removes this name too (a rename between two
        // names of one file removes the source, see below). Elsewhere (a replay, a retried
        // batch) the later records may not follow, so nothing is added. A directory has one
        // name: a crawl that never saw it ships it whole when it meets the rename.
        // A directory the secondary holds elsewhere (in the limbo, see Park) moves there.
        if (crawl_ && dst_free && !(r.rename_flags & changelog::kRenameExchange)) {
          auto have = Stat(r.gfid);
          if (!Got(r, have, &out)) return out;
          if (*have && S_ISDIR((*have)->mode)) return RelocateTo(r, r.gfid, r.new_parent, r.new_name);
          if (*have) {
            auto made = v_.Link(r.gfid, r.new_parent, r.new_name);
            if (!made.ok() && IsTransport(made.status())) return Transport(r, made.status());
          }
        }
        return Status::Ok();
      }
      Fail(r, "the source entry is " + Describe(*src) + ", not " + r.gfid.ToString() +
                  ", on the secondary; the rename was not applied. Compare the two sites and "
                  "resolve it by hand");
      return Status::Ok();
    } else if (dst_is) {
      // Both names are links of this inode here. The primary never journals a rename between
      // two links of one inode (rename(2) does nothing then), so on the primary the destination
      // did not hold this inode: the link there was put back by re-applying a later LINK or
      // RENAME (a takeover's replay window). The rename's effect is that the source name is
      // gone; the inode lives on under the destination name.
      Status s = v_.Unlink(r.parent, r.name);
      if (s.ok() || IsGone(s)) return Status::Ok();
      if (IsTransport(s)) return Transport(r, s);
      Fail(r, "the source and destination are both links of " + r.gfid.ToString() +
                  " on the secondary; removing the source name failed: " + ErrText(s));
      return Status::Ok();
    } else if (*dst && ((r.rename_flags & changelog::kRenameNoreplace) ||
                        (*dst)->gfid != r.replaced)) {
      // On the primary the destination was empty (NOREPLACE) or held `replaced`. Anything
      // else there is an object the primary kept: replacing it would destroy it. Out of order
      // (re-applying) a later record put it there; otherwise the sites diverged.
      if (lenient) return Status::Ok();
      Fail(r, "the destination is taken by " + Describe(*dst) + " on the secondary, where the "
                  "primary had " + (r.replaced.is_null() ? std::string("nothing") :
                  r.replaced.ToString()) + "; it is not replaced. Compare the two sites and "
                  "resolve it by hand");
      return Status::Ok();
    }
    if (*dst && !(r.rename_flags & changelog::kRenameExchange) && ParkInstead(**dst)) {
      // The file it replaces may have names the window has not brought yet (see Park).
      DRFS_RETURN_IF_ERROR(Park(r, r.new_parent, r.new_name, **dst));
      dst->reset();
    }
    Status s = v_.Rename(r.parent, r.name, r.new_parent, r.new_name, r.rename_flags);
    if (s.ok()) {
      if (*dst && !(r.rename_flags & changelog::kRenameExchange)) NoteRemoval(**dst);
      return Status::Ok();
    }
    if (IsTransport(s)) return Transport(r, s);
    if (crawl_ && lenient && IsGone(s) && src_is && !(r.rename_flags & changelog::kRenameExchange)) {
      // The destination directory is not here: one the walk missed (see Park).
      auto np = Stat(r.new_parent);
      if (!Got(r, np, &out)) return out;
      if (!*np) return Park(r, **src);
    }
    if (lenient) {
      // Re-applied out of order, a directory can be non-empty or an ancestor of the
      // destination for now; later records settle it.
      switch (s.sys_errno()) {
        case ENOENT: case ESTALE: case ENOTDIR: case EISDIR: case ENOTEMPTY: case EINVAL:
        case EEXIST: case EBUSY:
          return Status::Ok();
        default:
          break;
      }
    }
    Fail(r, ErrText(s));
    return Status::Ok();
  }

  Status Write(const georep::Item& it) {
    const Record& r = it.op;
    if (it.gone || it.data.empty()) return Status::Ok();
    auto w = v_.Write(r.gfid, r.offset + it.data_offset, it.data);
    if (w.ok()) {
      std::lock_guard<std::mutex> l(mu_);
      written_.insert(r.gfid);
      return Status::Ok();
    }
    return Check(r, w.status());
  }

  Status Setattr(const Record& r) {
    volume::SetattrArgs a;
    if (r.setattr_valid & changelog::kSetMode) a.valid |= brick_proto::kAttrMode;
    if (r.setattr_valid & changelog::kSetUid) a.valid |= brick_proto::kAttrUid;
    if (r.setattr_valid & changelog::kSetGid) a.valid |= brick_proto::kAttrGid;
    if (r.setattr_valid & changelog::kSetAtime) a.valid |= brick_proto::kAttrAtime;
    if (r.setattr_valid & changelog::kSetMtime) a.valid |= brick_proto::kAttrMtime;
    if (a.valid == 0) return Status::Ok();
    a.mode = r.mode & 07777;
    a.uid = r.uid;
    a.gid = r.gid;
    a.atime_ns = r.atime_ns;
    a.mtime_ns = r.mtime_ns;
    return Check(r, v_.Setattr(r.gfid, a).status());
  }

  // The object `a` loses its last name when its entry goes.
  void NoteRemoval(const Iatt& a) {
    std::lock_guard<std::mutex> l(mu_);
    if (S_ISDIR(a.mode) || a.nlink <= 1) removed_.insert(a.gfid);
  }
  bool WasRemovedHere(const Gfid& g) {
    std::lock_guard<std::mutex> l(mu_);
    return removed_.count(g) != 0;
  }

  VolumeClient& v_;
  uint32_t rs_;
  std::function<bool(const Gfid&)> was_removed_;
  uint64_t crawl_started_ns_ = 0;
  bool crawl_ = false;  // applying a crawl batch
  std::mutex mu_;  // items run on several threads (OrderedExecutor): guards what they share
  std::set<Gfid> removed_;
  std::set<Gfid> written_;
  std::vector<Failure> failures_;
};

// What an item touches, for OrderedExecutor: ops on one object (its gfid), on one directory
// entry (parent gfid + name), and a directory against ops inside it (the parent's gfid, shared
// by the entry ops in it and exclusive for the directory's own mkdir/rmdir/rename) keep the
// primary's order; everything else may overlap. Renames are also ordered among themselves (one
// shared key): a directory rename's effect depends on where its ancestors are, which no
// per-object key captures (a loop check, EINVAL).
std::vector<detail::OrderedExecutor::Resource> ResourcesOf(const Record& r) {
  using Res = detail::OrderedExecutor::Resource;
  auto object = [](const Gfid& g) { return "o" + g.ToString(); };
  auto entry = [](const Gfid& p, const std::string& n) { return "e" + p.ToString() + "/" + n; };
  std::vector<Res> v;
  switch (r.op) {
    case OpType::kCreate: case OpType::kMkdir: case OpType::kMknod: case OpType::kSymlink:
    case OpType::kLink: case OpType::kUnlink: case OpType::kRmdir:
      v.push_back(Res{object(r.gfid), true});
      v.push_back(Res{object(r.parent), false});
      v.push_back(Res{entry(r.parent, r.name), true});
      break;
    case OpType::kRename:
      v.push_back(Res{"renames", true});
      v.push_back(Res{object(r.gfid), true});
      if (!r.replaced.is_null()) v.push_back(Res{object(r.replaced), true});
      v.push_back(Res{object(r.parent), false});
      v.push_back(Res{entry(r.parent, r.name), true});
      if (r.new_parent != r.parent) v.push_back(Res{object(r.new_parent), false});
      if (r.new_parent != r.parent || r.new_name != r.name) {
        v.push_back(Res{entry(r.new_parent, r.new_name), true});
      }
      break;
    default:
      v.push_back(Res{object(r.gfid), true});
      break;
  }
  return v;
}

}  // namespace

struct BatchApplier::Impl {
  std::unique_ptr<Db> db;
  std::string session;
  size_t apply_threads = kDefaultApplyThreads;
  std::mutex mu;  // Db is single-threaded; replica sets apply on their own threads
  // One per replica set (its batches come from one thread): the ops of a batch in flight.
  std::map<uint32_t, std::unique_ptr<detail::OrderedExecutor>> executors;

  detail::OrderedExecutor& ExecutorFor(uint32_t rs) {
    std::lock_guard<std::mutex> l(mu);
    auto& e = executors[rs];
    if (!e) e = std::make_unique<detail::OrderedExecutor>(apply_threads);
    return *e;
  }

  Result<std::optional<Position>> Load(uint32_t rs, uint64_t* replay_until = nullptr) {
    auto row = db->QueryRow("SELECT " + std::string(kPositionColumns) +
                                ", replay_until_ns FROM positions WHERE session = ? AND "
                                "replica_set = ?",
                            {session, int64_t{rs}});
    if (row.ok()) {
      if (replay_until) *replay_until = U(row->Int(12));
      return std::optional<Position>(PositionFromRow(*row));
    }
    if (row.status().code() == Code::kNotFound) return std::optional<Position>();
    return row.status();
  }

  Result<Attempt> LoadAttempt(uint32_t rs) {
    auto row = db->QueryRow(
        "SELECT source_brick, lsn FROM attempts WHERE session = ? AND replica_set = ?",
        {session, int64_t{rs}});
    if (row.ok()) return Attempt{row->Text(0), U(row->Int(1))};
    if (row.status().code() == Code::kNotFound) return Attempt{};
    return row.status();
  }

  Status SaveAttempt(uint32_t rs, const Attempt& a) {
    return db
        ->Exec("INSERT INTO attempts (session, replica_set, source_brick, lsn) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (session, replica_set) DO UPDATE SET source_brick = excluded.source_brick, "
               "lsn = excluded.lsn",
               {session, int64_t{rs}, a.source_brick, I(a.lsn)})
        .status();
  }

  Result<uint64_t> LoadCrawlStart(uint32_t rs) {
    auto row = db->QueryRow("SELECT started_ns FROM crawls WHERE session = ? AND replica_set = ?",
                            {session, int64_t{rs}});
    if (row.ok()) return U(row->Int(0));
    if (row.status().code() == Code::kNotFound) return uint64_t{0};
    return row.status();
  }

  bool WasRemoved(const Gfid& g) {
    std::lock_guard<std::mutex> l(mu);
    auto row = db->QueryRow("SELECT 1 FROM removed WHERE session = ? AND gfid = ?",
                            {session, g.ToString()});
    return row.ok();
  }

  // Stores `p`, `failures` and the gfids destroyed in one transaction.
  Status Save(const Position& p, uint64_t replay_until, const std::vector<Failure>& failures,
              const std::set<Gfid>& removed = {}, uint64_t crawl_started = 0) {
    DRFS_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(db.get()));
    const int64_t now = I(NowNs());
    if (crawl_started != 0) {
      DRFS_RETURN_IF_ERROR(
          db->Exec(
                "INSERT OR REPLACE INTO crawls (session, replica_set, started_ns) VALUES (?, ?, ?)",
                {session, int64_t{p.replica_set}, I(crawl_started)})
              .status());
    }
    for (const Gfid& g : removed) {
      DRFS_RETURN_IF_ERROR(
          db->Exec("INSERT OR REPLACE INTO removed (session, gfid, at_ns) VALUES (?, ?, ?)",
                   {session, g.ToString(), now})
              .status());
    }
    for (const Failure& f : failures) {
      DRFS_RETURN_IF_ERROR(
          db->Exec("INSERT INTO failures (session, replica_set, lsn, op, target, error, at_ns) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   {session, int64_t{f.replica_set}, I(f.lsn), f.op, f.target, f.error, I(f.at_ns)})
              .status());
    }
    DRFS_RETURN_IF_ERROR(
        db->Exec("INSERT OR REPLACE INTO positions (session, " + std::string(kPositionColumns) +
                     ", replay_until_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 {session, int64_t{p.replica_set}, I(p.epoch), I(p.token), p.source_brick, I(p.lsn),
                  I(p.ts_ns), I(p.crawl_seq), int64_t{p.crawl_done ? 1 : 0}, I(p.applied_ops),
                  I(p.failures), p.kafka_offset, I(p.applied_at_ns), I(replay_until)})
            .status());
    return txn->Commit();
  }
};

BatchApplier::BatchApplier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BatchApplier::~BatchApplier() = default;

Result<std::unique_ptr<BatchApplier>> BatchApplier::Open(const std::string& db_path,
                                                         const std::string& session,
                                                         size_t apply_threads) {
  auto impl = std::make_unique<Impl>();
  impl->session = session;
  impl->apply_threads = apply_threads;
  DRFS_ASSIGN_OR_RETURN(impl->db, Db::Open(db_path));
  Status s = impl->db->ExecScript(kSchema);
  if (s.ok()) {
    // Replay windows last minutes; a week of tombstones is plenty and keeps the table small.
    constexpr uint64_t kKeepRemovedNs = 7ull * 24 * 3600 * 1'000'000'000;
    const uint64_t now = NowNs();
    s = impl->db
            ->Exec("DELETE FROM removed WHERE session = ? AND at_ns < ?",
                   {session, I(now > kKeepRemovedNs ? now - kKeepRemovedNs : 0)})
            .status();
  }
  if (!s.ok()) {
    return s.WithContext("georep session " + session + ": cannot set up the applier's database " +
                         db_path);
  }
  return std::unique_ptr<BatchApplier>(new BatchApplier(std::move(impl)));
}

Result<Outcome> BatchApplier::Apply(VolumeClient& volume, const Batch& batch,
                                    int64_t kafka_offset) {
  const BatchHeader& h = batch.header;
  const uint32_t rs = h.replica_set;
  if (!h.session.empty() && h.session != impl_->session) {
    return InvalidArgument("a batch of georep session " + h.session +
                           " reached the applier of session " + impl_->session +
                           " (replica set " + std::to_string(rs) +
                           "); check which topic each session reads");
  }
  std::optional<Position> stored;
  uint64_t replay_until = 0;
  Attempt attempt;
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    DRFS_ASSIGN_OR_RETURN(stored, impl_->Load(rs, &replay_until));
    DRFS_ASSIGN_OR_RETURN(attempt, impl_->LoadAttempt(rs));
  }
  Plan plan = MakePlan(stored, replay_until, batch, rs);
  if (plan.early) {
    // A dropped batch still moves where reading resumes; a gap records nothing (the syncer
    // resends, and a restart then reads the hole again rather than past it).
    if (*plan.early != Outcome::kGap && stored) {
      Position p = *stored;
      p.kafka_offset = kafka_offset;
      std::lock_guard<std::mutex> l(impl_->mu);
      DRFS_RETURN_IF_ERROR(impl_->Save(p, replay_until, {}));
    }
    return *plan.early;
  }

  // Mark how far this attempt may go before touching the volume (see "Re-applying").
  if (!plan.crawl && !plan.lenient_all &&
      (attempt.source_brick != h.source_brick || attempt.lsn < h.last_lsn)) {
    std::lock_guard<std::mutex> l(impl_->mu);
    DRFS_RETURN_IF_ERROR(impl_->SaveAttempt(rs, Attempt{h.source_brick, h.last_lsn}));
  }
  const bool attempted_before = attempt.source_brick == h.source_brick;

  // Crawl items themselves are exempt: a record of the crawl's window may be stamped a little
  // before its start (stamped, then published after the crawl read its start LSN).
  uint64_t crawl_started = 0;
  if (!plan.crawl) {
    std::lock_guard<std::mutex> l(impl_->mu);
    DRFS_ASSIGN_OR_RETURN(crawl_started, impl_->LoadCrawlStart(rs));
  }
  Run run(
      volume, rs, [this](const Gfid& g) { return impl_->WasRemoved(g); }, crawl_started,
      plan.crawl);
  // A crawl batch's items go one by one: a crawl item may move an object from wherever the
  // secondary holds it (Relocate), an entry no resource key of the item names.
  detail::OrderedExecutor one_by_one(1);
  detail::OrderedExecutor& ex = plan.crawl ? one_by_one : impl_->ExecutorFor(rs);
  Status stopped;
  uint64_t applied = 0;
  for (size_t i = 0; i < batch.items.size(); ++i) {
    const Item& it = batch.items[i];
    if (plan.crawl) {
      if (h.crawl_seq + i <= plan.skip_crawl) continue;
    } else if (plan.check_lsn && it.op.lsn <= plan.skip_lsn) {
      continue;
    }
    if (DRFS_FAILPOINT("secondary.apply.item")) {
      stopped = Unavailable("replica set " + std::to_string(rs) + ": failpoint "
                            "secondary.apply.item at LSN " + std::to_string(it.op.lsn));
      break;
    }
    const bool lenient = plan.lenient_all || (h.flags & georep::kBatchReplay) ||
                         it.op.timestamp_ns <= plan.replay_until_ns ||
                         (attempted_before && it.op.lsn <= attempt.lsn);
    if (!ex.Submit(ResourcesOf(it.op), [&run, &it, lenient] { return run.Item(it, lenient); })) {
      break;  // an item failed: Wait() says which
    }
    if (it.op.op != OpType::kWrite || it.last_fragment) ++applied;
  }
  // Always waited for: the items refer to `run` and `batch`.
  Status items = ex.Wait();
  DRFS_RETURN_IF_ERROR(stopped);
  DRFS_RETURN_IF_ERROR(items);
  DRFS_RETURN_IF_ERROR(run.FlushWrites(ex));
  DRFS_RETURN_IF_ERROR(run.Attrs(batch.attrs, h.last_lsn, ex));
  if (plan.crawl && (h.flags & georep::kBatchCrawlDone)) DRFS_RETURN_IF_ERROR(run.EmptyLimbo());
  std::stable_sort(run.failures().begin(), run.failures().end(),
                   [](const Failure& a, const Failure& b) { return a.lsn < b.lsn; });
  if (DRFS_FAILPOINT("secondary.apply.before_commit")) {
    return Unavailable("replica set " + std::to_string(rs) +
                       ": failpoint secondary.apply.before_commit");
  }

  Position next = plan.next;
  next.applied_ops += applied;
  next.failures += run.failures().size();
  next.kafka_offset = kafka_offset;
  next.applied_at_ns = NowNs();
  std::lock_guard<std::mutex> l(impl_->mu);
  Status s =
      impl_->Save(next, plan.replay_until_ns, run.failures(), run.removed(), plan.crawl_started_ns);
  if (!s.ok()) {
    return s.WithContext("georep session " + impl_->session + " replica set " +
                         std::to_string(rs) + ": the batch was applied but its position not stored "
                         "(it is re-applied, harmlessly)");
  }
  return Outcome::kApplied;
}

Result<std::vector<Position>> BatchApplier::Positions() {
  std::lock_guard<std::mutex> l(impl_->mu);
  DRFS_ASSIGN_OR_RETURN(auto rows,
                        impl_->db->Query("SELECT " + std::string(kPositionColumns) +
                                             " FROM positions WHERE session = ? ORDER BY replica_set",
                                         {impl_->session}));
  std::vector<Position> out;
  for (const auto& row : rows) out.push_back(PositionFromRow(row));
  return out;
}

Result<Position> BatchApplier::GetPosition(uint32_t replica_set) {
  std::lock_guard<std::mutex> l(impl_->mu);
  DRFS_ASSIGN_OR_RETURN(auto p, impl_->Load(replica_set));
  if (!p) {
    return NotFound("georep session " + impl_->session + " has applied nothing for replica set " +
                    std::to_string(replica_set) + " yet");
  }
  return *p;
}

Result<std::vector<Failure>> BatchApplier::Failures(int limit) {
  std::lock_guard<std::mutex> l(impl_->mu);
  DRFS_ASSIGN_OR_RETURN(
      auto rows, impl_->db->Query("SELECT id, replica_set, lsn, op, target, error, at_ns FROM "
                                  "failures WHERE session = ? ORDER BY id DESC LIMIT ?",
                                  {impl_->session, int64_t{limit}}));
  std::vector<Failure> out;
  for (const auto& row : rows) {
    Failure f;
    f.id = row.Int(0);
    f.replica_set = static_cast<uint32_t>(row.Int(1));
    f.lsn = U(row.Int(2));
    f.op = row.Text(3);
    f.target = row.Text(4);
    f.error = row.Text(5);
    f.at_ns = U(row.Int(6));
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace drfs::secondary
