#include "syncer/syncer.h"

#include <errno.h>
#include <sys/stat.h>

#include <algorithm>
#include <deque>
#include <future>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <unordered_set>
#include <utility>

#include "brick/client.h"
#include "changelog/cursor.h"
#include "changelog/reader.h"
#include "changelog/shared_state.h"
#include "common/brick_protocol.h"
#include "common/gfid.h"
#include "common/log.h"
#include "common/time.h"
#include "georep/format.h"

namespace drfs::syncer {

using changelog::OpType;
using namespace std::chrono_literals;

std::string CursorName(const std::string& session) { return "georep." + session; }

namespace {

enum class OpClass { kEntry, kData, kMeta };

OpClass ClassOf(OpType op) {
  switch (op) {
    case OpType::kWrite:
    case OpType::kTruncate:
    case OpType::kFallocate:
      return OpClass::kData;
    case OpType::kSetattr:
    case OpType::kSetxattr:
    case OpType::kRemovexattr:
      return OpClass::kMeta;
    default:
      return OpClass::kEntry;
  }
}

bool IsGone(const Status& s) {
  return s.sys_errno() == ENOENT || s.sys_errno() == ESTALE || s.code() == Code::kNotFound;
}

// What one message may hold, all told (see SendBatch), and what an item costs besides its
// data and names: its record, fragment fields, and up to three attribute snapshots.
constexpr size_t kMessageCap = 900000;
constexpr size_t kItemOverhead = 256;
// How long a syncer lets the syncer of the brick the applier follows take the lock first.
constexpr uint64_t kHeadStartNs = 5000000000ull;

// A message sent and not yet acknowledged.
struct InFlight {
  uint64_t first = 0, last = 0;
  bool last_complete = true;  // the last record's final fragment is in it
  size_t bytes = 0;
  uint64_t first_ts = 0;
  uint64_t entry = 0, data = 0, meta = 0;
  // Crawl messages are acknowledged by item number (crawl_seq), not LSN: items [seq_first,
  // seq_last], or the CrawlDone. They complete `files` names and `file_bytes` of data.
  bool crawl = false, crawl_done = false;
  uint64_t seq_first = 0, seq_last = 0;
  uint64_t files = 0, file_bytes = 0;
  // The encoded message, kept while a crawl runs: a crawl reads the live tree, which cannot be
  // read again the way a journal can, so a resend produces these same bytes again.
  std::shared_ptr<const std::string> value;
};

// A WRITE being shipped in fragments across messages.
struct PendingWrite {
  changelog::Record op;
  uint64_t end = 0;       // offset + length clamped to the file's size when it started
  uint64_t consumed = 0;  // bytes of the range already put in messages
};

// gfids are random (version 4): their last eight bytes are as good a hash as any.
struct GfidHash {
  size_t operator()(const Gfid& g) const {
    uint64_t v = 0;
    for (size_t i = 8; i < 16; ++i)
      v = (v << 8) | g.bytes[i];
    return static_cast<size_t>(v);
  }
};

// A directory entry the crawl is to ship; for the root, only its xattrs and attributes.
struct CrawlTask {
  Gfid parent;
  std::string name;
  brick_proto::Iatt attr;         // as listed
  brick_proto::Iatt parent_attr;  // null gfid: read the parent's when the batch is sent
  bool root = false;
};

struct CrawlDir {
  Gfid gfid;
  brick_proto::Iatt attr;
};

// The initial crawl of this brick (see "Initial sync" in syncer.h).
struct Crawl {
  uint64_t start_lsn = 0;       // S: the journal records after it are replayed after the walk
  uint64_t start_ns = 0;        // when the crawl began; walk items carry it as their timestamp
  uint64_t next_seq = 1;        // the next item's number
  bool truncate = false;        // the secondary may hold older copies: files are cut to size first
  std::vector<CrawlDir> dirs;   // listed depth first (a stack)
  std::deque<CrawlTask> tasks;  // entries listed, not yet shipped
  std::optional<PendingWrite> write;  // a file's data (or a WRITE record's) going out in fragments
  brick_proto::Iatt write_attr;       // a walked file's listed attributes (null gfid: a record's)
  // Objects the secondary has, by what the crawl shipped: the walk's, the window's creates
  // under known parents, and fix-ups.
  std::unordered_set<Gfid, GfidHash> known;
  bool walk_done = false;
  bool window_closed = false;  // the next batch is the CrawlDone
  bool done_sent = false;
  uint64_t observed_ns = 0;      // wall clock of the newest listing or lookup of the tree
  uint64_t end_lsn = 0;          // E: the last journal record replayed as crawl items
  changelog::Record end_record;  // ... that record
  uint64_t files_total = 0, bytes_total = 0;  // from a count of the tree before the walk
  uint64_t files_done = 0, bytes_done = 0;    // acknowledged
  uint64_t files_sent = 0, bytes_sent = 0;
  uint64_t began_mono = 0;  // when the walk started (after the count)
};

// How long after the crawl last looked at the tree its window of journal records stays open:
// a brick changes its tree first and journals the change just after, so a change the walk saw
// may be journaled a little later than the look.
constexpr uint64_t kCrawlSettleNs = 1000000000ull;

georep::AttrSnapshot SnapOf(const brick_proto::Iatt& a) {
  georep::AttrSnapshot s;
  s.gfid = a.gfid;
  s.mode = a.mode;
  s.uid = a.uid;
  s.gid = a.gid;
  s.size = a.size;
  s.atime_ns = a.atime_ns;
  s.mtime_ns = a.mtime_ns;
  return s;
}

}  // namespace

std::string CrawlCursorName(const std::string& session) {
  return "georep." + session + ".crawl";
}

struct Syncer::Impl {
  explicit Impl(SyncerOptions o) : opts(std::move(o)) {}

  SyncerOptions opts;
  std::string lock_name;
  uint64_t owner = 0;
  std::thread thread;
  std::atomic<bool> stop{false};
  std::atomic<bool> paused{false};

  mutable std::mutex mu;  // guards info, checkpoint fields and deliveries
  SyncerInfo info;
  std::vector<std::pair<Status, InFlight>> deliveries;  // failed deliveries, from the producer
  uint64_t checkpoint_ns = 0, checkpoint_done_ns = 0;
  bool checkpoint_changed = false;

  // Worker thread state.
  std::vector<std::unique_ptr<brick::BrickClient>> lock_clients;
  std::unique_ptr<brick::BrickClient> data;
  std::unique_ptr<kafka::Producer> producer;
  std::unique_ptr<kafka::Consumer> acks;
  std::unique_ptr<changelog::Reader> reader;
  std::unique_ptr<changelog::SharedState> journal_state;  // the journal's published LSN
  std::optional<changelog::Entry> peeked;
  std::optional<PendingWrite> pending_write;
  std::deque<InFlight> inflight;
  bool active = false;
  uint64_t token = 0;
  uint64_t max_seen_token = 0;
  std::optional<georep::Ack> last_ack;  // newest Ack for this replica set
  uint64_t acked_lsn = 0, acked_ts = 0;
  uint64_t last_progress_ns = 0;  // monotonic: when acked_lsn last moved or a resend began
  uint64_t next_election_ns = 0;
  uint64_t started_ns = 0;        // monotonic, when this syncer started
  int own_index = -1;             // this brick's place in replica_bricks
  int own_lock = -1;              // its connection in lock_clients, when it granted the lock
  uint64_t last_sink_check_ns = 0;
  size_t sink_objects = 0;        // objects other bricks say this brick missed, at the last look
  uint64_t last_cursor_ns = 0;
  uint64_t cursor_lsn = 0;
  bool resume_next = false;   // the next batch carries kBatchResume
  bool replay_next = false;   // ... and kBatchReplay
  std::string resume_brick;
  uint64_t resume_lsn = 0;
  bool resend = false;
  bool own_ack_seen = false;      // an ack with this term's token has arrived
  uint64_t resend_backoff_ns = 0; // stalled-ack resends back off (reset on progress)
  uint64_t last_gap_resend_ns = 0;
  uint64_t checkpoint_lsn = 0;
  uint64_t checkpoint_for = 0;  // the checkpoint_ns checkpoint_lsn was computed for
  std::optional<Crawl> crawl;   // while an initial crawl runs (until its CrawlDone is acked)
  // Bandwidth: bytes allowed from now on (token bucket refilled by rate).
  double bucket = 0;
  uint64_t bucket_ns = 0;
  // Throughput over a sliding window.
  std::deque<std::pair<uint64_t, uint64_t>> rate_samples;  // (monotonic ns, bytes)
  std::mt19937_64 rng{std::random_device{}()};

  void Run();
  void SetState(const std::string& state, const std::string& reason);
  void PassiveStep();
  bool TryElect(std::string* why);
  // How many objects the other bricks of the replica set say this brick missed (pending
  // markers against it): while it is a heal sink its journal lacks acknowledged writes.
  Result<size_t> HealSinkObjects();
  uint64_t cursor_file_lsn() {
    changelog::CursorStore cs(opts.changelog_dir);
    auto c = cs.Get(CursorName(opts.session));
    return c.ok() ? c->lsn : 0;
  }
  void StepDown(const std::string& why);
  Status BecomeActive();
  Status ActiveStep();
  Status OpenReader(uint64_t from);
  Result<std::optional<changelog::Entry>> NextEntry(std::chrono::milliseconds timeout);
  void PollAcks(std::chrono::milliseconds timeout);
  void OnAck(const georep::Ack& a);
  void MaybeGapResend(const georep::Ack& a);
  Status EnsureKafka();
  Status EnsureDataClient();
  Status Resend(const std::string& why);
  // A batch whose header names this syncer's stream: session, replica set, epoch, token, brick.
  georep::Batch NewBatch() const {
    georep::Batch b;
    b.header.volume_uuid = opts.volume_uuid;
    b.header.session = opts.session;
    b.header.replica_set = opts.replica_set;
    b.header.epoch = opts.epoch;
    b.header.token = token;
    b.header.source_brick = opts.brick_id;
    return b;
  }
  Status SendBatch();
  // The initial crawl: starts it (start_lsn 0: at the journal's newest record), ships its next
  // batch, follows its acknowledgements, and resends what is unacknowledged.
  Status StartCrawl(std::optional<uint64_t> start_lsn, uint64_t start_ns, bool truncate,
                    const std::string& why);
  Status CountTree();
  Status SendCrawlBatch();
  Status CrawlWindowRecord(const changelog::Entry& e, georep::Batch& b, size_t& approx,
                           size_t& budget, size_t cap, std::set<Gfid>& live, bool* taken);
  Status CrawlFixup(const Gfid& g, const Gfid& parent, const std::string& name);
  void OnCrawlAck(const georep::Ack& a);
  Status ResendCrawl(const std::string& why);
  Status Produce(georep::Batch& b, InFlight f, uint64_t data_bytes);
  // Attributes of `want` as they are now (objects that are gone are left out).
  Status SnapshotAttrs(std::vector<Gfid> want, std::vector<georep::AttrSnapshot>* out);
  void Throttle(size_t bytes);
  void AdvanceCursor(uint64_t lsn, bool force);
  Status PassiveCursor();
  void UpdateCheckpoint();
  Result<uint64_t> LsnAtTime(uint64_t t_ns, uint64_t from);
  void Publish();
};

void Syncer::Impl::SetState(const std::string& state, const std::string& reason) {
  std::lock_guard<std::mutex> l(mu);
  if (info.state != state || info.reason != reason) {
    if (state == "Faulty") {
      DRFS_LOG(Warn) << "georep " << opts.session << " syncer " << opts.brick_name << ": Faulty: "
                     << reason;
    } else {
      DRFS_LOG(Info) << "georep " << opts.session << " syncer " << opts.brick_name << ": " << state
                     << (reason.empty() ? "" : " (" + reason + ")");
    }
  }
  info.state = state;
  info.reason = reason;
}

void Syncer::Impl::Run() {
  while (!stop.load()) {
    if (!active) {
      PassiveStep();
      continue;
    }
    Status s = ActiveStep();
    if (!s.ok()) {
      StepDown(s.ToString());
      SetState("Faulty", s.ToString());
      // Back off before competing again, so a broken syncer does not hold the lock in a loop.
      for (int i = 0; i < 20 && !stop.load(); ++i) std::this_thread::sleep_for(100ms);
    }
  }
  if (active) StepDown("stopped");
  SetState("Stopped", "");
}

void Syncer::Impl::PassiveStep() {
  if (EnsureKafka().ok()) PollAcks(100ms);
  else std::this_thread::sleep_for(100ms);
  if (Status s = PassiveCursor(); !s.ok()) {
    DRFS_LOG(Debug) << "georep " << opts.session << " " << opts.brick_name
                    << ": passive cursor: " << s.ToString();
  }
  Publish();
  if (MonotonicNs() < next_election_ns) return;
  // Keep the journal the applier follows: taking over another brick's journal means a replay
  // by time, which is idempotent but not exact. So when the newest Ack names another brick, give
  // that brick's syncer a head start (its drfsd may be restarting too), and wait for the Ack
  // itself first when the session has history.
  const uint64_t age = MonotonicNs() - started_ns;
  if (!last_ack && !opts.promoted_start && cursor_file_lsn() > 0 &&
      age < 2 * static_cast<uint64_t>(opts.ack_wait.count()) * 1000000ull) {
    SetState("Passive", "waiting for the applier's position");
    return;
  }
  if (last_ack && last_ack->source_brick != opts.brick_id && age < kHeadStartNs) {
    SetState("Passive", "the applier follows brick " + last_ack->source_brick + "; giving its syncer a head start");
    return;
  }
  const uint64_t jitter = rng() % (opts.election_interval.count() * 500000ull + 1);
  next_election_ns = MonotonicNs() + opts.election_interval.count() * 1000000ull + jitter;
  std::string why;
  // A brick that missed writes (it was down, or just restarted) must not ship its journal: the
  // writes it missed are not in it, so the secondary would miss them and a checkpoint could
  // complete without them. It waits Passive until self-heal has brought it up to date.
  auto sink = HealSinkObjects();
  if (!sink.ok() || *sink > 0) {
    SetState("Passive", sink.ok() ? std::string("this brick needs heal (other bricks hold writes "
                                                "it missed); not eligible until healed")
                                  : "cannot check whether this brick needs heal: " + sink.status().message());
    return;
  }
  if (!TryElect(&why)) {
    SetState("Passive", why);
    return;
  }
  Status s = BecomeActive();
  if (!s.ok()) {
    StepDown(s.ToString());
    SetState("Faulty", s.ToString());
  }
}

bool Syncer::Impl::TryElect(std::string* why) {
  lock_clients.clear();
  size_t total = opts.replica_bricks.size();
  size_t granted = 0;
  std::vector<std::string> refused;
  ClientOptions co;
  co.reconnect = false;
  co.connect_timeout = 2000ms;
  co.request_timeout = 5000ms;
  own_lock = -1;
  for (size_t idx = 0; idx < opts.replica_bricks.size(); ++idx) {
    const ReplicaBrick& b = opts.replica_bricks[idx];
    if (b.port == 0) {
      refused.push_back(b.name + " (down)");
      continue;
    }
    auto c = brick::BrickClient::Connect(b.host, b.port, opts.tls, co);
    if (!c.ok()) {
      refused.push_back(b.name + " (unreachable)");
      continue;
    }
    // The election lock lives in the bricks' service lock space (a gfid no object has). Under
    // the root directory (where it was) it conflicted with the whole-directory lock self-heal
    // takes to heal the root's entries, and the Active syncer holds it for as long as it is
    // Active: a root that needed entry heal (a directory made while a brick was down) stayed
    // unhealed.
    auto r = (*c)->Entrylk(brick_proto::ServiceLockSpace(), lock_name, owner, 0);
    if (!r.ok()) {
      refused.push_back(b.name + " (held)");
      continue;
    }
    ++granted;
    if (static_cast<int>(idx) == own_index) own_lock = static_cast<int>(lock_clients.size());
    lock_clients.push_back(std::move(*c));
  }
  // The syncer's own brick must be among them: its journal is what it ships.
  if (granted * 2 > total && (own_index < 0 || own_lock >= 0)) return true;
  lock_clients.clear();  // closing the connections releases what we got
  *why = "another syncer is Active or bricks are down: " + std::to_string(granted) + "/" +
         std::to_string(total) + " bricks granted the lock";
  if (!refused.empty()) {
    *why += "; not granted by";
    for (const auto& r : refused) *why += " " + r;
  }
  return false;
}

Result<size_t> Syncer::Impl::HealSinkObjects() {
  if (own_index < 0) return size_t{0};
  size_t objects = 0;
  size_t asked = 0;
  ClientOptions co;
  co.connect_timeout = 2000ms;
  co.request_timeout = 5000ms;
  co.reconnect = false;
  for (size_t i = 0; i < opts.replica_bricks.size(); ++i) {
    if (static_cast<int>(i) == own_index || opts.replica_bricks[i].port == 0) continue;
    auto c = brick::BrickClient::Connect(opts.replica_bricks[i].host, opts.replica_bricks[i].port,
                                         opts.tls, co);
    if (!c.ok()) continue;  // a brick that is down accuses nobody new
    auto index = (*c)->HealIndexAll();
    if (!index.ok()) continue;
    ++asked;
    for (const Gfid& g : *index) {
      brick_proto::Request q;
      q.op = brick_proto::Op::kGetattr;
      q.gfid = g;
      auto r = (*c)->CallSync(q);
      if (!r.ok()) continue;
      for (int type = 0; type < 3; ++type) {
        const size_t k = brick_proto::PendingIndex(own_index, type);
        if (k < r->pending.size() && r->pending[k] > 0) {
          ++objects;
          break;
        }
      }
      if (objects > 0) break;  // one is enough to say no
    }
    if (objects > 0) break;
  }
  // Without a majority of the replica set (this brick included) answering, "nobody accuses
  // this brick" means nothing: the bricks that did not answer may.
  if (objects == 0 && (asked + 1) * 2 <= opts.replica_bricks.size()) {
    return Unavailable("only " + std::to_string(asked) + " of the other " +
                       std::to_string(opts.replica_bricks.size() - 1) +
                       " bricks of the replica set answered");
  }
  sink_objects = objects;
  last_sink_check_ns = MonotonicNs();
  return objects;
}

void Syncer::Impl::StepDown(const std::string& why) {
  if (active) {
    DRFS_LOG(Info) << "georep " << opts.session << " syncer " << opts.brick_name
                   << ": stepping down (token " << token << "): " << why;
  }
  active = false;
  lock_clients.clear();
  reader.reset();
  peeked.reset();
  pending_write.reset();
  inflight.clear();
  // An unfinished crawl starts over in the next term (see BecomeActive).
  crawl.reset();
  // Outstanding deliveries of this token are moot: the next Active resends from the Ack.
  if (producer) (void)producer->Flush(500ms);
  std::lock_guard<std::mutex> l(mu);
  deliveries.clear();
}

Status Syncer::Impl::EnsureKafka() {
  if (!producer) {
    DRFS_ASSIGN_OR_RETURN(producer, kafka::Producer::Create(opts.kafka));
  }
  if (!acks) {
    kafka::Properties p = opts.kafka;
    p["group.id"] = "drfs-syncer-" + opts.session;
    DRFS_ASSIGN_OR_RETURN(acks, kafka::Consumer::Create(p));
    // Start at the newest Ack: the applier acks its whole position each time.
    Status s = acks->Assign(georep::AckTopic(opts.session, opts.epoch), static_cast<int32_t>(opts.replica_set),
                            kafka::Consumer::kBeginning);
    if (!s.ok()) {
      acks.reset();
      return s;
    }
    auto wm = acks->Watermarks(2000ms);
    if (wm.ok() && wm->second > wm->first) {
      s = acks->Assign(georep::AckTopic(opts.session, opts.epoch), static_cast<int32_t>(opts.replica_set),
                       wm->second - 1);
      if (!s.ok()) {
        acks.reset();
        return s;
      }
    }
  }
  return Status::Ok();
}

Status Syncer::Impl::EnsureDataClient() {
  if (data) return Status::Ok();
  ClientOptions co;
  co.connect_timeout = 3000ms;
  co.request_timeout = 30000ms;
  auto c = brick::BrickClient::Connect(opts.brick_host, opts.brick_port, opts.tls, co);
  if (!c.ok()) {
    return Unavailable("cannot read data from brick " + opts.brick_name + ": " +
                       c.status().ToString());
  }
  data = std::move(*c);
  return Status::Ok();
}

void Syncer::Impl::PollAcks(std::chrono::milliseconds timeout) {
  if (!acks) return;
  for (int i = 0; i < 1000; ++i) {
    auto m = acks->Poll(i == 0 ? timeout : 0ms);
    if (!m.ok()) {
      if (m.status().code() == Code::kOutOfRange) {
        // The broker lost the ack partition (restarted empty): read it from the start again.
        (void)acks->Assign(georep::AckTopic(opts.session, opts.epoch), static_cast<int32_t>(opts.replica_set),
                           kafka::Consumer::kBeginning);
      }
      return;
    }
    if (!m->has_value()) return;
    georep::Ack a;
    Status s = georep::DecodeAck((*m)->value, &a);
    if (!s.ok()) {
      DRFS_LOG(Warn) << "georep " << opts.session << ": ack at offset " << (*m)->offset
                     << " does not decode, ignored: " << s.ToString();
      continue;
    }
    if (a.session != opts.session || a.replica_set != opts.replica_set) continue;
    OnAck(a);
  }
}

void Syncer::Impl::OnAck(const georep::Ack& a) {
  max_seen_token = std::max(max_seen_token, a.token);
  last_ack = a;
  {
    std::lock_guard<std::mutex> l(mu);
    info.failures = a.failures;
  }
  if (!active) return;
  if (a.token > token) {
    StepDown("the applier follows a newer syncer (token " + std::to_string(a.token) + ")");
    SetState("Passive", "a newer syncer (token " + std::to_string(a.token) + ") is Active");
    return;
  }
  if (a.source_brick != opts.brick_id || a.token > token) {
    // Not about this journal yet. A gap reported before the applier took any batch of ours
    // means our run's first batch never reached it: resend (rate-limited below).
    if (a.gap && !own_ack_seen) MaybeGapResend(a);
    return;
  }
  // An ack for this journal, of this term or an earlier one (the applier keeps an older token
  // when it drops our resent batches as duplicates): what it says is applied is applied.
  if (a.token == token) {
    own_ack_seen = true;
    replay_next = false;
  }
  if (crawl) {
    // During the crawl the applier acknowledges crawl items, and its LSN is the crawl's start.
    if (a.token == token) OnCrawlAck(a);
    if (crawl) {
      if (a.gap) MaybeGapResend(a);
      return;
    }
  }
  if (a.applied_lsn > acked_lsn) {
    acked_lsn = a.applied_lsn;
    acked_ts = a.applied_ts_ns;
    last_progress_ns = MonotonicNs();
    resend_backoff_ns = 0;
    while (!inflight.empty() && inflight.front().last <= acked_lsn &&
           (inflight.front().last < acked_lsn || inflight.front().last_complete)) {
      inflight.pop_front();
    }
    AdvanceCursor(acked_lsn, false);
  }
  // A gap: the applier read a batch beyond its position and dropped it. After a resend it
  // still reads the older messages in the partition before it reaches the resent ones, and
  // each of those is a gap too; resending again for them would start over forever. So a gap
  // only triggers a resend once nothing has moved for a while since the last resend or ack.
  if (a.gap) MaybeGapResend(a);
}

void Syncer::Impl::MaybeGapResend(const georep::Ack&) {
  const uint64_t now = MonotonicNs();
  if (now - last_progress_ns > 3000000000ull && now - last_gap_resend_ns > 3000000000ull) {
    last_gap_resend_ns = now;
    resend = true;
  }
}

void Syncer::Impl::AdvanceCursor(uint64_t lsn, bool force) {
  if (lsn <= cursor_lsn) return;
  const uint64_t now = MonotonicNs();
  if (!force && now - last_cursor_ns < 1000000000ull) return;
  changelog::CursorStore cs(opts.changelog_dir);
  Status s = cs.Advance(CursorName(opts.session), lsn);
  if (s.code() == Code::kNotFound) s = cs.Register(CursorName(opts.session), lsn);
  if (s.code() == Code::kFailedPrecondition) {
    // Already further on (an earlier term of this syncer, or a Passive cursor that led by the
    // overlap): keep it where it is.
    auto cur = cs.Get(CursorName(opts.session));
    if (cur.ok()) cursor_lsn = cur->lsn;
    last_cursor_ns = now;
    return;
  }
  if (!s.ok()) {
    DRFS_LOG(Warn) << "georep " << opts.session << " " << opts.brick_name
                   << ": cannot move journal cursor to " << lsn << ": " << s.ToString();
    return;
  }
  cursor_lsn = lsn;
  last_cursor_ns = now;
}

// A Passive syncer keeps its own journal until the Active one's records are applied: it moves
// its cursor to the last record older than the acknowledged time minus the replay overlap
// (which a syncer taking over from this journal would start from).
Status Syncer::Impl::PassiveCursor() {
  if (!last_ack || last_ack->applied_ts_ns == 0) return Status::Ok();
  if (MonotonicNs() - last_cursor_ns < 2000000000ull) return Status::Ok();
  uint64_t overlap = static_cast<uint64_t>(opts.replay_overlap.count()) * 1000000ull;
  // While a crawl runs, a takeover restarts it from the crawl's start minus at least 10 s.
  if (last_ack->crawl_seq > 0 && !last_ack->crawl_done)
    overlap = std::max<uint64_t>(overlap, 10000000000ull);
  if (last_ack->applied_ts_ns <= overlap) return Status::Ok();
  const uint64_t horizon = last_ack->applied_ts_ns - overlap;
  DRFS_ASSIGN_OR_RETURN(uint64_t lsn, LsnAtTime(horizon, cursor_lsn + 1));
  if (lsn > cursor_lsn) AdvanceCursor(lsn, true);
  last_cursor_ns = MonotonicNs();
  // A crawl this brick began and did not finish is moot once the applier stands past a crawl
  // (another brick's finished, or none is running): drop its cursor, which would otherwise hold
  // the journal for good. The session's cursor, just moved, holds what a takeover needs.
  if (cursor_lsn > 0 && !(last_ack->crawl_seq > 0 && !last_ack->crawl_done)) {
    changelog::CursorStore cs(opts.changelog_dir);
    if (cs.Get(CrawlCursorName(opts.session)).ok()) (void)cs.Remove(CrawlCursorName(opts.session));
  }
  return Status::Ok();
}

// The LSN of the newest record at or before `t_ns`, scanning from `from` (0 if none).
Result<uint64_t> Syncer::Impl::LsnAtTime(uint64_t t_ns, uint64_t from) {
  changelog::ReaderOptions ro;
  ro.from_lsn = from;
  auto r = changelog::Reader::Open(opts.changelog_dir, ro);
  if (!r.ok()) {
    if (r.status().code() == Code::kOutOfRange) {
      ro.from_lsn = 0;
      r = changelog::Reader::Open(opts.changelog_dir, ro);
    }
    if (!r.ok()) return r.status();
  }
  uint64_t found = from > 0 ? from - 1 : 0;
  for (;;) {
    auto e = (*r)->Next(0ms);
    if (!e.ok()) return e.status();
    if (!e->has_value()) break;
    if ((*e)->record.timestamp_ns > t_ns) break;
    found = (*e)->record.lsn;
  }
  return found;
}

Status Syncer::Impl::BecomeActive() {
  DRFS_RETURN_IF_ERROR(EnsureKafka());
  DRFS_RETURN_IF_ERROR(EnsureDataClient());
  // Both topics must exist before anything is produced or consumed.
  const uint64_t epoch_ms = NowNs() / 1000000ull;
  // Wait for the newest Ack: the applier acks every second even when idle. A session that has
  // run before (its cursor moved) waits longer: after a broker restart the applier first has
  // to learn the new broker address before its acks arrive, and starting from a cursor instead
  // of the applier's own position means replaying records it already has.
  // (Only this thread moves the cursor, and not while Passive acks are polled here.)
  cursor_lsn = cursor_file_lsn();
  {
    const uint64_t wait_ms = opts.promoted_start ? 500
                             : static_cast<uint64_t>(opts.ack_wait.count()) * (cursor_lsn > 0 ? 4 : 1);
    const uint64_t deadline = MonotonicNs() + wait_ms * 1000000ull;
    while (!last_ack && MonotonicNs() < deadline && !stop.load()) PollAcks(100ms);
  }
  token = std::max(max_seen_token + 1, epoch_ms);
  active = true;
  own_ack_seen = false;
  resend_backoff_ns = 0;
  inflight.clear();
  crawl.reset();
  resend = false;
  uint64_t from = 0;
  std::string how;
  replay_next = false;
  resume_next = true;
  // Where an unfinished initial crawl of this brick started, if one did (its cursor).
  std::optional<uint64_t> crawl_marker;
  {
    changelog::CursorStore cs(opts.changelog_dir);
    auto m = cs.Get(CrawlCursorName(opts.session));
    if (m.ok()) crawl_marker = m->lsn;
  }
  const bool ack_crawling = last_ack && last_ack->crawl_seq > 0 && !last_ack->crawl_done;
  const bool no_position = !last_ack || last_ack->source_brick.empty();
  // A crawl: (re)started by StartCrawl below, from `crawl_from` (none: the journal's newest
  // record); `crawl_ns` is when an interrupted crawl began.
  bool do_crawl = false, truncate = false;
  std::optional<uint64_t> crawl_from;  // none: from the journal's newest record
  uint64_t crawl_ns = 0;
  if (ack_crawling && last_ack->source_brick == opts.brick_id) {
    do_crawl = true;
    truncate = true;
    crawl_from = last_ack->applied_lsn;
    crawl_ns = last_ack->applied_ts_ns;
    how = "restarting the initial crawl this brick began at LSN " + std::to_string(*crawl_from);
  } else if (ack_crawling) {
    // Another brick's crawl did not finish: start this brick's from the time that one began,
    // so the window covers every change since (what it shipped and the primary removed since
    // included). The margin is wider than a takeover's replay overlap: that brick's walk may
    // have seen the tree as a lagging replica had it, seconds behind this journal's stamps, and
    // a longer window costs only records replayed leniently over the new walk.
    const uint64_t overlap =
        std::max<uint64_t>(static_cast<uint64_t>(opts.replay_overlap.count()), 10000) * 1000000ull;
    const uint64_t t = last_ack->applied_ts_ns > overlap ? last_ack->applied_ts_ns - overlap : 0;
    auto lsn = LsnAtTime(t, 0);
    do_crawl = true;
    truncate = true;
    if (lsn.ok() && last_ack->applied_ts_ns > 0) crawl_from = *lsn;  // 0: the whole journal
    crawl_ns = last_ack->applied_ts_ns;
    how = "taking over the initial crawl brick " + last_ack->source_brick + " began";
  } else if (no_position && crawl_marker) {
    // This brick's crawl was interrupted before the applier applied any of it.
    do_crawl = true;
    truncate = true;
    crawl_from = *crawl_marker;
    how = "restarting the initial crawl this brick began at LSN " + std::to_string(*crawl_marker);
  } else if (last_ack && last_ack->source_brick == opts.brick_id) {
    from = last_ack->applied_lsn + 1;
    resume_brick = last_ack->source_brick;
    resume_lsn = last_ack->applied_lsn;
    how = "after the applier's position " + std::to_string(last_ack->applied_lsn);
  } else if (last_ack && !last_ack->source_brick.empty()) {
    const uint64_t overlap = static_cast<uint64_t>(opts.replay_overlap.count()) * 1000000ull;
    const uint64_t t = last_ack->applied_ts_ns > overlap ? last_ack->applied_ts_ns - overlap : 0;
    DRFS_ASSIGN_OR_RETURN(uint64_t lsn, LsnAtTime(t, 0));
    from = lsn + 1;
    replay_next = true;
    resume_brick = last_ack->source_brick;
    resume_lsn = last_ack->applied_lsn;
    how = "taking over from brick " + last_ack->source_brick + " at its time " +
          FormatTimeMillis(last_ack->applied_ts_ns) + " minus the replay overlap (LSN " +
          std::to_string(from) + ")";
  } else if (cursor_lsn > 0) {
    // No Ack to go by (the broker lost the ack topic and the applier has not acked since). The
    // cursor is behind what was applied (a Passive brick's cursor trails by the replay overlap),
    // and the applier may be following another brick's journal: replay, applied idempotently.
    from = cursor_lsn + 1;
    replay_next = true;
    resume_brick = opts.brick_id;
    resume_lsn = cursor_lsn;
    how = "after this journal's cursor " + std::to_string(cursor_lsn) +
          " (no acknowledgement found; replaying from there)";
  } else {
    // A new session: crawl the volume, then follow the journal from where the crawl began.
    // Crawling ships what exists once; replaying the journal from its start would ship its
    // whole history (and the start may be gone to retention).
    do_crawl = true;
    how = "a new session";
  }
  if (!do_crawl) {
    Status s = OpenReader(from);
    if (s.code() == Code::kOutOfRange) {
      // The journal no longer reaches back to where the secondary stands: only a crawl can
      // bring it up to date.
      do_crawl = true;
      truncate = true;
      replay_next = false;
      how += "; but " + s.message() + ", so crawling the volume instead";
    } else if (!s.ok()) {
      return s;
    }
  }
  acked_ts = last_ack ? last_ack->applied_ts_ns : 0;
  if (do_crawl) {
    acked_lsn = 0;
    DRFS_RETURN_IF_ERROR(StartCrawl(crawl_from, crawl_ns, truncate, how));
  } else {
    acked_lsn = from - 1;
    if (crawl_marker) {
      // A crawl this brick ran is over (the applier stands past it): its cursor no longer
      // holds the journal, the session's does.
      AdvanceCursor(acked_lsn, true);
      if (cursor_lsn >= acked_lsn)
        (void)changelog::CursorStore(opts.changelog_dir).Remove(CrawlCursorName(opts.session));
    }
  }
  last_progress_ns = MonotonicNs();
  DRFS_LOG(Info) << "georep " << opts.session << " syncer " << opts.brick_name
                 << ": Active with token " << token << ", " << how;
  {
    std::lock_guard<std::mutex> l(mu);
    info.token = token;
    info.epoch = opts.epoch;
    info.acked_lsn = acked_lsn;
    if (!do_crawl) info.crawl = "Changelog";
  }
  SetState("Active", "");
  return Status::Ok();
}

Status Syncer::Impl::OpenReader(uint64_t from) {
  reader.reset();
  peeked.reset();
  pending_write.reset();
  changelog::ReaderOptions ro;
  ro.from_lsn = from;
  auto r = changelog::Reader::Open(opts.changelog_dir, ro);
  if (!r.ok()) {
    if (r.status().code() == Code::kOutOfRange) {
      // BecomeActive crawls instead; elsewhere the session's cursor keeps these records.
      return Status(Code::kOutOfRange, "brick " + opts.brick_name + ": journal record " +
                                           std::to_string(from) + " is no longer kept (" +
                                           r.status().message() + ")");
    }
    return r.status();
  }
  reader = std::move(*r);
  return Status::Ok();
}

Result<std::optional<changelog::Entry>> Syncer::Impl::NextEntry(std::chrono::milliseconds timeout) {
  if (peeked) {
    std::optional<changelog::Entry> e = std::move(peeked);
    peeked.reset();
    return e;
  }
  auto e = reader->Next(timeout);
  if (!e.ok()) return e.status();
  if (e->has_value()) {
    std::lock_guard<std::mutex> l(mu);
    info.visible_lsn = std::max(info.visible_lsn, (**e).record.lsn);
  }
  return e;
}

Status Syncer::Impl::Resend(const std::string& why) {
  if (crawl) return ResendCrawl(why);
  DRFS_LOG(Info) << "georep " << opts.session << " syncer " << opts.brick_name
                 << ": resending from LSN " << acked_lsn + 1 << ": " << why;
  resend = false;
  inflight.clear();
  resume_next = true;
  resume_brick = opts.brick_id;
  resume_lsn = acked_lsn;
  if (replay_next && last_ack) {
    // Still replaying a takeover: say where the applier stood in the journal we took over.
    resume_brick = last_ack->source_brick;
    resume_lsn = last_ack->applied_lsn;
  }
  last_progress_ns = MonotonicNs();
  {
    std::lock_guard<std::mutex> l(mu);
    ++info.resends;
    deliveries.clear();
  }
  return OpenReader(acked_lsn + 1);
}

void Syncer::Impl::Throttle(size_t bytes) {
  if (opts.bandwidth_bytes_per_s == 0) return;
  const double rate = static_cast<double>(opts.bandwidth_bytes_per_s);
  for (;;) {
    const uint64_t now = MonotonicNs();
    if (bucket_ns == 0) bucket_ns = now;
    bucket = std::min(rate, bucket + rate * static_cast<double>(now - bucket_ns) / 1e9);
    bucket_ns = now;
    if (bucket >= static_cast<double>(bytes) || bucket >= rate || stop.load()) {
      bucket -= static_cast<double>(bytes);
      return;
    }
    std::this_thread::sleep_for(10ms);
  }
}

Status Syncer::Impl::ActiveStep() {
  // Failed deliveries: the broker gave up on a message, so resend from the acknowledged point.
  {
    std::unique_lock<std::mutex> l(mu);
    if (!deliveries.empty()) {
      std::string why = "delivery failed: " + deliveries.front().first.ToString();
      bool fatal = false;
      for (const auto& d : deliveries) fatal |= d.first.code() == Code::kAborted;
      deliveries.clear();
      l.unlock();
      resend = true;
      // A fatal producer error: that producer sends nothing more; a new one resends.
      if (fatal) {
        producer.reset();
        DRFS_RETURN_IF_ERROR(EnsureKafka());
      }
      DRFS_LOG(Warn) << "georep " << opts.session << " " << opts.brick_name << ": " << why;
    }
  }
  PollAcks(0ms);
  if (!active) return Status::Ok();  // an Ack showed a newer syncer
  size_t alive = 0;
  for (const auto& c : lock_clients) alive += c->lost() ? 0 : 1;
  const bool own_lost = own_index >= 0 && (own_lock < 0 || lock_clients[static_cast<size_t>(own_lock)]->lost());
  if (own_lost) {
    // This brick went away (or restarted): writes made meanwhile are only in the other bricks'
    // journals. Hand over; a brick that is up to date takes the lock.
    StepDown("this syncer's brick went away; writes it missed are only in the other journals");
    SetState("Passive", "this brick went away; waiting for it to be healed");
    next_election_ns = MonotonicNs() + 3000000000ull;
    return Status::Ok();
  }
  if (alive * 2 <= opts.replica_bricks.size()) {
    StepDown("lost the lock on a majority of the replica set's bricks");
    SetState("Passive", "lost the lock on a majority of bricks");
    return Status::Ok();
  }
  // A write can fail on this brick alone while its connection stays up (ENOSPC, EIO, a
  // timeout): look again now and then whether other bricks accuse it, and hand over if so.
  if (MonotonicNs() - last_sink_check_ns > 10000000000ull) {
    auto sink = HealSinkObjects();
    last_sink_check_ns = MonotonicNs();
    if (sink.ok() && *sink > 0) {
      StepDown("other bricks hold writes this brick missed");
      SetState("Passive", "this brick needs heal; not eligible until healed");
      return Status::Ok();
    }
  }
  UpdateCheckpoint();
  if (!active) return Status::Ok();  // the checkpoint check found this brick needs heal
  const uint64_t now = MonotonicNs();
  // Acks stalled with messages outstanding: resend, backing off (x2 up to 16x the timeout)
  // while nothing moves, so a secondary that is down for long does not make the topic grow by
  // a window every timeout.
  const uint64_t stall_ns = static_cast<uint64_t>(opts.resend_timeout.count()) * 1000000ull;
  if (!resend && !inflight.empty() && now - last_progress_ns > stall_ns + resend_backoff_ns) {
    resend = true;
    resend_backoff_ns = std::min<uint64_t>(resend_backoff_ns == 0 ? stall_ns : resend_backoff_ns * 2,
                                           16 * stall_ns);
  }
  if (resend) DRFS_RETURN_IF_ERROR(Resend(inflight.empty() ? "the applier reported a gap"
                                                            : "no acknowledgement progress"));
  if (paused.load()) {
    SetState("Paused", "");
    PollAcks(100ms);
    return Status::Ok();
  }
  {
    std::lock_guard<std::mutex> l(mu);
    if (info.state != "Active") {
      info.state = "Active";
      info.reason.clear();
    }
  }
  size_t outstanding = 0;
  for (const auto& f : inflight) outstanding += f.bytes;
  if (outstanding >= opts.window_bytes) {
    PollAcks(50ms);
    Publish();
    return Status::Ok();
  }
  Status s = crawl && !crawl->done_sent ? SendCrawlBatch() : SendBatch();
  Publish();
  return s;
}

Status Syncer::Impl::SendBatch() {
  georep::Batch b = NewBatch();
  // Kafka refuses messages over message.max.bytes (librdkafka's default is 1,000,000 bytes, and
  // brokers cap near 1 MiB), so a message stays under kMessageCap all told: file data, records
  // and attribute snapshots (estimated generously per item).
  const size_t cap = std::min<size_t>(opts.batch_bytes, kMessageCap);
  size_t budget = std::min<size_t>(georep::kMaxMessageData, cap);
  size_t approx = 0;
  InFlight f;
  std::set<Gfid> touched;
  // Reads to make: item index -> (offset, length) or xattr.
  struct Read {
    size_t item;
    bool xattr;
    uint64_t offset, length;
  };
  std::vector<Read> reads;
  const uint64_t start = MonotonicNs();
  const uint64_t linger_ns = static_cast<uint64_t>(opts.linger.count()) * 1000000ull;

  auto add_write_fragment = [&](PendingWrite& pw) {
    const uint64_t left = pw.end - pw.op.offset - pw.consumed;
    const uint64_t n = std::min<uint64_t>(left, budget);
    georep::Item it;
    it.op = pw.op;
    it.data_offset = pw.consumed;
    it.last_fragment = (n == left);
    reads.push_back({b.items.size(), false, pw.op.offset + pw.consumed, n});
    const bool last = it.last_fragment;
    b.items.push_back(std::move(it));
    pw.consumed += n;
    approx += n + kItemOverhead;
    budget = approx < cap ? std::min(budget - n, cap - approx) : 0;
    touched.insert(pw.op.gfid);
    return last;
  };

  uint64_t first_lsn = 0;
  if (pending_write) {
    first_lsn = pending_write->op.lsn;
    if (add_write_fragment(*pending_write)) pending_write.reset();
  }
  while (!pending_write && b.items.size() < opts.max_batch_records && approx < cap &&
         budget > 0 && !stop.load()) {
    const uint64_t elapsed = MonotonicNs() - start;
    std::chrono::milliseconds wait{0};
    if (b.items.empty()) {
      wait = 50ms;
    } else if (elapsed < linger_ns) {
      wait = std::chrono::milliseconds((linger_ns - elapsed) / 1000000ull + 1);
    }
    auto e = NextEntry(wait);
    if (!e.ok()) return e.status().WithContext("reading the journal of brick " + opts.brick_name);
    if (!e->has_value()) {
      if (b.items.empty()) return Status::Ok();  // idle
      if (MonotonicNs() - start >= linger_ns) break;
      continue;
    }
    changelog::Record& r = (*e)->record;
    if (first_lsn == 0) first_lsn = r.lsn;
    if (r.op == OpType::kWrite) {
      // Coalesce with the previous item when it is a whole WRITE of the same file whose range
      // overlaps or touches this one: one read of the union ships both.
      if (!b.items.empty()) {
        georep::Item& prev = b.items.back();
        if (prev.op.op == OpType::kWrite && prev.op.gfid == r.gfid && prev.data_offset == 0 &&
            prev.last_fragment && !reads.empty() && reads.back().item == b.items.size() - 1) {
          const uint64_t a0 = prev.op.offset, a1 = prev.op.offset + prev.op.length;
          const uint64_t b0 = r.offset, b1 = r.offset + r.length;
          const uint64_t u0 = std::min(a0, b0), u1 = std::max(a1, b1);
          if (b0 <= a1 && a0 <= b1 && (u1 - u0) - prev.op.length <= budget) {
            budget -= (u1 - u0) - prev.op.length;
            approx += (u1 - u0) - prev.op.length;
            budget = approx < cap ? std::min(budget, cap - approx) : 0;
            prev.op.lsn = r.lsn;
            prev.op.timestamp_ns = r.timestamp_ns;
            prev.op.offset = u0;
            prev.op.length = u1 - u0;
            reads.back().offset = u0;
            reads.back().length = u1 - u0;
            ++f.data;
            continue;
          }
        }
      }
      // Clamp the range to the file's current size; the bytes past it no longer exist.
      auto st = data->Getattr(r.gfid);
      if (!st.ok() && !IsGone(st.status())) {
        peeked = std::move(*e);
        return st.status().WithContext("brick " + opts.brick_name);
      }
      PendingWrite pw;
      pw.op = r;
      const uint64_t size = st.ok() ? st->size : 0;
      pw.end = std::min(r.offset + r.length, std::max(size, r.offset));
      if (!st.ok() || pw.end == r.offset) {
        georep::Item it;
        it.op = r;
        it.gone = !st.ok();
        b.items.push_back(std::move(it));
        approx += kItemOverhead;
      } else if (!add_write_fragment(pw)) {
        pending_write = pw;
      }
      ++f.data;
    } else {
      georep::Item it;
      it.op = r;
      if (r.op == OpType::kSetxattr) reads.push_back({b.items.size(), true, 0, 0});
      approx += kItemOverhead + r.name.size() + r.new_name.size() + r.symlink_target.size() +
                r.xattr_name.size() + (r.op == OpType::kSetxattr ? 65536 : 0);
      budget = approx < cap ? std::min(budget, cap - approx) : 0;
      switch (ClassOf(r.op)) {
        case OpClass::kEntry: ++f.entry; break;
        case OpClass::kData: ++f.data; break;
        case OpClass::kMeta: ++f.meta; break;
      }
      touched.insert(r.gfid);
      if (!r.parent.is_null()) touched.insert(r.parent);
      if (!r.new_parent.is_null()) touched.insert(r.new_parent);
      b.items.push_back(std::move(it));
    }
    if (b.items.size() == 1 || f.first_ts == 0) f.first_ts = r.timestamp_ns;
  }
  if (b.items.empty()) return Status::Ok();

  // Data and xattr values, read now, all in flight at once.
  std::vector<std::future<Result<brick_proto::Reply>>> futs;
  futs.reserve(reads.size());
  for (const Read& rd : reads) {
    brick_proto::Request q;
    const changelog::Record& r = b.items[rd.item].op;
    q.gfid = r.gfid;
    if (rd.xattr) {
      q.op = brick_proto::Op::kGetxattr;
      q.xattr_name = r.xattr_name;
    } else {
      q.op = brick_proto::Op::kRead;
      q.offset = rd.offset;
      q.length = rd.length;
    }
    futs.push_back(data->Call(q));
  }
  uint64_t data_bytes = 0;
  for (size_t i = 0; i < reads.size(); ++i) {
    auto rep = futs[i].get();
    georep::Item& it = b.items[reads[i].item];
    if (!rep.ok()) return rep.status().WithContext("reading data from brick " + opts.brick_name);
    if (rep->err != 0) {
      if (rep->err == ENOENT || rep->err == ESTALE || rep->err == ENODATA) {
        it.gone = true;
        continue;
      }
      return ErrnoStatus(rep->err, "brick " + opts.brick_name + ": reading " + it.op.gfid.ToString() +
                                       " for LSN " + std::to_string(it.op.lsn) + ": " + rep->message);
    }
    it.data = std::move(rep->data);
    data_bytes += it.data.size();
  }
  DRFS_RETURN_IF_ERROR(SnapshotAttrs(std::vector<Gfid>(touched.begin(), touched.end()), &b.attrs));

  // The batch covers every record it consumed: a WRITE coalesced into a later one carries the
  // later LSN, so the first item's LSN may be above the first record's.
  f.first = first_lsn;
  f.last = b.items.back().op.lsn;
  f.last_complete = b.items.back().last_fragment;
  b.header.first_lsn = f.first;
  b.header.last_lsn = f.last;
  if (resume_next) {
    b.header.flags |= georep::kBatchResume;
    if (replay_next) b.header.flags |= georep::kBatchReplay;
    b.header.resume_brick = resume_brick;
    b.header.resume_lsn = resume_lsn;
  }
  return Produce(b, f, data_bytes);
}

Status Syncer::Impl::SnapshotAttrs(std::vector<Gfid> want, std::vector<georep::AttrSnapshot>* out) {
  // Attributes of every object the batch touched, as they are now. An object that is gone is
  // skipped (a later record removes it), but a directory whose MKDIR was just published may not
  // be resolvable by gfid yet (its brick writes the gfid handle right after journaling it), so
  // a gfid that looks gone is asked again, twice, a few milliseconds later.
  for (int attempt = 0; attempt < 3 && !want.empty(); ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5 * attempt));
    std::vector<std::pair<Gfid, std::future<Result<brick_proto::Reply>>>> attr_futs;
    for (const Gfid& g : want) {
      brick_proto::Request q;
      q.op = brick_proto::Op::kGetattr;
      q.gfid = g;
      attr_futs.emplace_back(g, data->Call(q));
    }
    want.clear();
    for (auto& [g, fut] : attr_futs) {
      auto rep = fut.get();
      if (!rep.ok()) return rep.status().WithContext("reading attributes from brick " + opts.brick_name);
      if (rep->err == ENOENT || rep->err == ESTALE) {
        want.push_back(g);
        continue;
      }
      if (rep->err != 0) {
        return ErrnoStatus(rep->err, "brick " + opts.brick_name + ": attributes of " +
                                         g.ToString() + ": " + rep->message);
      }
      georep::AttrSnapshot a = SnapOf(rep->attr);
      a.gfid = g;
      out->push_back(a);
    }
  }

  return Status::Ok();
}

Status Syncer::Impl::Produce(georep::Batch& b, InFlight f, uint64_t data_bytes) {
  b.header.sent_ns = NowNs();
  // The applier refuses a batch that breaks the format's rules; find our own mistake here, with
  // the syncer's name on it, instead.
  if (Status v = georep::ValidateBatch(b); !v.ok()) {
    return Internal(
        "syncer " + opts.brick_name + " built an invalid batch (" +
        (f.crawl ? "crawl items " + std::to_string(f.seq_first) + "-" + std::to_string(f.seq_last)
                 : "LSN " + std::to_string(f.first) + "-" + std::to_string(f.last)) +
        "): " + v.message());
  }
  auto value = std::make_shared<const std::string>(georep::EncodeBatch(b, opts.zstd_level));
  const size_t uncompressed = georep::UncompressedSize(*value);
  f.bytes = value->size();
  Throttle(value->size());
  InFlight copy = f;
  auto done = [this, copy](const Status& st, int64_t) {
    if (st.ok() || st.code() == Code::kCancelled) return;
    std::lock_guard<std::mutex> l(mu);
    deliveries.emplace_back(st, copy);
  };
  for (;;) {
    Status s =
        producer->Produce(georep::BatchTopic(opts.session, opts.epoch), static_cast<int32_t>(opts.replica_set),
                          georep::PartitionKey(opts.replica_set), *value, done);
    if (s.ok()) break;
    if (s.code() == Code::kAborted) {
      producer.reset();  // fatal: a new producer resends from the acknowledged position
      resend = true;
      if (crawl) {
        // Crawl items cannot be read again: the resend produces this message with the others.
        resume_next = false;
        f.value = std::move(value);
        inflight.push_back(f);
      }
      return EnsureKafka();
    }
    if (s.code() != Code::kResourceExhausted || stop.load()) return s;
    std::this_thread::sleep_for(10ms);
  }
  resume_next = false;
  if (crawl) f.value = std::move(value);
  inflight.push_back(f);
  {
    std::lock_guard<std::mutex> l(mu);
    if (!f.crawl) info.sent_lsn = f.last;
    ++info.messages;
    info.bytes_sent += f.bytes;
    info.bytes_uncompressed += uncompressed;
    info.data_bytes += data_bytes;
    const uint64_t now = MonotonicNs();
    rate_samples.emplace_back(now, f.bytes);
  }
  return Status::Ok();
}

// ------------------------------------------------------------------ initial crawl
//
// The walk lists directories depth first through the brick protocol (by gfid) and ships each
// entry as the record that would have made it: MKDIR, CREATE (then the file's data as WRITE
// fragments), SYMLINK, MKNOD, or LINK for a name of a file already shipped (a hard link), each
// followed by the object's xattrs (SETXATTR). A directory is listed only after its own MKDIR
// went into a batch, so parents always precede their children. Then the window: the journal
// records after the crawl's start S, until the journal has settled past the walk's last look at
// the tree, go out as crawl items too (applied leniently: the walk may have seen their effect
// already). A RENAME or LINK in the window of an object the crawl never shipped means the walk
// missed it (it moved from a directory not yet listed into one already listed): the object is
// shipped there and then, at the record's destination, its subtree as it is now. Finally a
// CrawlDone says journal batches follow after E, the last record of the window.

Status Syncer::Impl::StartCrawl(std::optional<uint64_t> start_lsn, uint64_t start_ns, bool truncate,
                                const std::string& why) {
  if (start_lsn) {
    // An interrupted crawl starts over from the same point, so the window still holds every
    // change since the first run began, removals of what that run shipped included.
    Status s = OpenReader(*start_lsn + 1);
    if (s.code() == Code::kOutOfRange) {
      DRFS_LOG(Warn) << "georep " << opts.session << " syncer " << opts.brick_name
                     << ": the journal no longer holds the records after LSN " << *start_lsn
                     << ", where the interrupted crawl started (" << s.message()
                     << "); crawling from its newest record instead. Objects the earlier run "
                        "shipped that the primary removed since stay on the secondary; 'drfs "
                        "georep verify' lists them";
      start_lsn.reset();
    } else if (!s.ok()) {
      return s;
    }
  }
  if (!start_lsn) {
    if (!journal_state) {
      auto js = changelog::SharedState::OpenForReader(opts.changelog_dir);
      if (js.ok()) journal_state = std::move(*js);
    }
    // Everything journaled up to here is already in the tree the walk will see (a brick
    // changes its tree before it journals the change); everything after is replayed.
    start_lsn = journal_state ? journal_state->visible() : 0;
    start_ns = NowNs();
  }
  const uint64_t S = *start_lsn;
  // Record the start before the walk begins: the cursor keeps the journal from S + 1 (retention
  // cannot delete it however long the crawl takes), and says after a restart that a crawl from
  // S did not finish.
  changelog::CursorStore cs(opts.changelog_dir);
  const std::string marker = CrawlCursorName(opts.session);
  auto cur = cs.Get(marker);
  if (cur.ok() && cur->lsn != S) (void)cs.Remove(marker);
  if (!cur.ok() || cur->lsn != S) {
    Status s = cs.Register(marker, S);
    if (!s.ok() && s.code() != Code::kAlreadyExists) {
      return s.WithContext("brick " + opts.brick_name +
                           ": cannot record where the initial crawl "
                           "starts (journal cursor " +
                           marker + ")");
    }
  }
  DRFS_RETURN_IF_ERROR(OpenReader(S + 1));
  auto root = data->Getattr(Gfid::Root());
  if (!root.ok()) return root.status().WithContext("brick " + opts.brick_name + ": the root");
  crawl.emplace();
  Crawl& c = *crawl;
  c.start_lsn = S;
  c.end_lsn = S;
  c.start_ns = start_ns;
  c.truncate = truncate;
  c.known.insert(Gfid::Root());
  c.dirs.push_back({Gfid::Root(), *root});
  CrawlTask t;
  t.root = true;
  t.attr = *root;
  t.parent_attr = *root;
  t.parent = Gfid::Root();
  c.tasks.push_back(t);
  {
    std::lock_guard<std::mutex> l(mu);
    info.crawl = "Initial sync";
    info.crawl_start_lsn = S;
    info.crawl_files_done = info.crawl_files_total = 0;
    info.crawl_bytes_done = info.crawl_bytes_total = 0;
    info.crawl_eta_s = -1;
  }
  DRFS_LOG(Info) << "georep " << opts.session << " syncer " << opts.brick_name
                 << ": initial crawl from journal LSN " << S << " (" << why << ")";
  DRFS_RETURN_IF_ERROR(CountTree());
  c.began_mono = MonotonicNs();
  c.observed_ns = NowNs();
  return Status::Ok();
}

// The totals progress is measured against: names (directories aside) and bytes of file data,
// counted by a walk of listings alone before the crawl. It costs one listing per directory and
// no reads; changes during the crawl make it an estimate.
Status Syncer::Impl::CountTree() {
  Crawl& c = *crawl;
  std::vector<Gfid> todo{Gfid::Root()};
  std::unordered_set<Gfid, GfidHash> linked;  // files with several names: their bytes count once
  while (!todo.empty() && !stop.load()) {
    const Gfid d = todo.back();
    todo.pop_back();
    auto list = data->ReaddirAll(d, true);
    if (!list.ok()) {
      if (IsGone(list.status())) continue;
      return list.status().WithContext("brick " + opts.brick_name + ": counting the tree to crawl");
    }
    for (const auto& e : *list) {
      if (S_ISDIR(e.attr.mode)) {
        todo.push_back(e.gfid);
        continue;
      }
      ++c.files_total;
      if (S_ISREG(e.attr.mode) && (e.attr.nlink <= 1 || linked.insert(e.gfid).second)) {
        c.bytes_total += e.attr.size;
      }
    }
  }
  std::lock_guard<std::mutex> l(mu);
  info.crawl_files_total = c.files_total;
  info.crawl_bytes_total = c.bytes_total;
  return Status::Ok();
}

Status Syncer::Impl::CrawlFixup(const Gfid& g, const Gfid& parent, const std::string& name) {
  Crawl& c = *crawl;
  // Under a parent the secondary does not have either, the parent's own fix-up ships it.
  if (!c.known.count(parent)) return Status::Ok();
  auto a = data->Getattr(g);
  c.observed_ns = NowNs();
  if (!a.ok()) {
    if (IsGone(a.status())) return Status::Ok();  // removed since: nothing to ship
    return a.status().WithContext("brick " + opts.brick_name + ": crawl fix-up of " + g.ToString());
  }
  CrawlTask t;
  t.parent = parent;
  t.name = name;
  t.attr = *a;
  t.attr.gfid = g;
  c.tasks.push_back(std::move(t));
  DRFS_LOG(Debug) << "georep " << opts.session << " " << opts.brick_name
                  << ": crawl fix-up: " << g.ToString()
                  << " moved where the walk had already been; shipping it as " << parent.ToString()
                  << "/" << name;
  return Status::Ok();
}

// One journal record of the crawl's window as a crawl item. *taken is false when the batch has
// no room for it (the caller keeps it for the next batch).
Status Syncer::Impl::CrawlWindowRecord(const changelog::Entry& e, georep::Batch& b, size_t& approx,
                                       size_t& budget, size_t cap, std::set<Gfid>& live,
                                       bool* taken) {
  Crawl& c = *crawl;
  const changelog::Record& r = e.record;
  *taken = false;
  const size_t cost = kItemOverhead + r.name.size() + r.new_name.size() + r.symlink_target.size() +
                      r.xattr_name.size();
  if (!b.items.empty() && (approx + cost > cap || (r.op == OpType::kWrite && budget == 0))) {
    return Status::Ok();
  }
  georep::Item it;
  it.op = r;
  live.insert(r.gfid);
  if (!r.parent.is_null()) live.insert(r.parent);
  if (!r.new_parent.is_null()) live.insert(r.new_parent);
  switch (r.op) {
    case OpType::kWrite: {
      auto st = data->Getattr(r.gfid);
      if (!st.ok() && !IsGone(st.status()))
        return st.status().WithContext("brick " + opts.brick_name);
      PendingWrite pw;
      pw.op = r;
      const uint64_t size = st.ok() ? st->size : 0;
      pw.end = std::min(r.offset + r.length, std::max(size, r.offset));
      *taken = true;
      if (st.ok() && pw.end > r.offset) {
        c.write = pw;  // its fragments go next
        c.write_attr = brick_proto::Iatt();
        return Status::Ok();
      }
      it.gone = !st.ok();
      break;
    }
    case OpType::kSetxattr: {
      brick_proto::Request q;
      q.op = brick_proto::Op::kGetxattr;
      q.gfid = r.gfid;
      q.xattr_name = r.xattr_name;
      auto rep = data->Call(q).get();
      if (!rep.ok())
        return rep.status().WithContext("reading an xattr from brick " + opts.brick_name);
      if (rep->err == ENOENT || rep->err == ESTALE || rep->err == ENODATA) {
        it.gone = true;
      } else if (rep->err != 0) {
        return ErrnoStatus(rep->err, "brick " + opts.brick_name + ": xattr " + r.xattr_name +
                                         " of " + r.gfid.ToString() + ": " + rep->message);
      } else {
        if (rep->data.size() > budget && !b.items.empty()) return Status::Ok();
        it.data = std::move(rep->data);
      }
      break;
    }
    case OpType::kCreate:
    case OpType::kMkdir:
    case OpType::kMknod:
    case OpType::kSymlink:
      if (c.known.count(r.parent)) c.known.insert(r.gfid);
      break;
    case OpType::kLink:
      if (!c.known.count(r.gfid)) DRFS_RETURN_IF_ERROR(CrawlFixup(r.gfid, r.parent, r.name));
      break;
    case OpType::kRename:
      if (!c.known.count(r.gfid))
        DRFS_RETURN_IF_ERROR(CrawlFixup(r.gfid, r.new_parent, r.new_name));
      if ((r.rename_flags & changelog::kRenameExchange) && !c.known.count(r.replaced)) {
        DRFS_RETURN_IF_ERROR(CrawlFixup(r.replaced, r.parent, r.name));
      }
      break;
    default:
      break;
  }
  approx += cost + it.data.size();
  budget = approx < cap ? std::min(budget - std::min(budget, it.data.size()), cap - approx) : 0;
  b.items.push_back(std::move(it));
  *taken = true;
  return Status::Ok();
}

Status Syncer::Impl::SendCrawlBatch() {
  Crawl& c = *crawl;
  georep::Batch b = NewBatch();
  b.header.flags = georep::kBatchCrawl;
  b.header.crawl_seq = c.next_seq;
  // The same limits as journal batches (see SendBatch).
  const size_t cap = std::min<size_t>(opts.batch_bytes, kMessageCap);
  size_t budget = std::min<size_t>(georep::kMaxMessageData, cap);
  size_t approx = 0;
  InFlight f;
  f.crawl = true;
  std::map<Gfid, brick_proto::Iatt> listed;  // attributes from the listings
  std::set<Gfid> live;                       // attributes to read as the batch goes
  uint64_t data_bytes = 0;
  auto add = [&](georep::Item it, size_t extra) {
    approx += kItemOverhead + extra + it.data.size();
    budget = approx < cap ? std::min(budget - std::min(budget, it.data.size()), cap - approx) : 0;
    switch (ClassOf(it.op.op)) {
      case OpClass::kEntry:
        ++f.entry;
        break;
      case OpClass::kData:
        ++f.data;
        break;
      case OpClass::kMeta:
        ++f.meta;
        break;
    }
    b.items.push_back(std::move(it));
  };

  while (!stop.load() && b.items.size() < opts.max_batch_records && approx < cap) {
    // 1. The data of the file (or WRITE record) being shipped.
    if (c.write) {
      PendingWrite& pw = *c.write;
      const uint64_t left = pw.end - pw.op.offset - pw.consumed;
      const uint64_t n = std::min<uint64_t>(left, budget);
      if (n == 0 && left > 0) break;  // no room for data left in this message
      georep::Item it;
      it.op = pw.op;
      it.data_offset = pw.consumed;
      if (n > 0) {
        auto rd = data->Read(pw.op.gfid, pw.op.offset + pw.consumed, n);
        if (rd.ok()) {
          it.data = std::move(*rd);
        } else if (IsGone(rd.status())) {
          it.gone = true;  // removed since: its UNLINK is in the window
        } else {
          return rd.status().WithContext("brick " + opts.brick_name + ": reading " +
                                         pw.op.gfid.ToString() + " for the initial crawl");
        }
      }
      // A short read: the file shrank since; the window's TRUNCATE says so.
      it.last_fragment = it.gone || it.data.size() == left || it.data.size() < n;
      pw.consumed += it.data.size();
      data_bytes += it.data.size();
      f.file_bytes += it.data.size();
      // Every batch with a part of the data puts the times back (writing moved them).
      if (pw.op.lsn != 0 || c.write_attr.gfid.is_null()) {
        live.insert(pw.op.gfid);
      } else {
        listed[pw.op.gfid] = c.write_attr;
      }
      const bool last = it.last_fragment;
      add(std::move(it), 0);
      if (last) c.write.reset();
      continue;
    }
    // 2. Entries listed (or fixed up), in order.
    if (!c.tasks.empty()) {
      const CrawlTask t = c.tasks.front();
      const Gfid g = t.attr.gfid;
      const bool dir = S_ISDIR(t.attr.mode), reg = S_ISREG(t.attr.mode), lnk = S_ISLNK(t.attr.mode);
      const bool link = !t.root && reg && c.known.count(g) > 0;
      changelog::Record r;
      r.timestamp_ns = c.start_ns;
      r.gfid = g;
      r.parent = t.parent;
      r.name = t.name;
      r.mode = t.attr.mode;
      r.uid = t.attr.uid;
      r.gid = t.attr.gid;
      bool gone = false;
      if (link) {
        r.op = OpType::kLink;
      } else if (dir) {
        r.op = OpType::kMkdir;
      } else if (reg) {
        r.op = OpType::kCreate;
      } else if (lnk) {
        r.op = OpType::kSymlink;
        brick_proto::Request q;
        q.op = brick_proto::Op::kReadlink;
        q.gfid = g;
        auto rep = data->Call(q).get();
        if (!rep.ok()) return rep.status().WithContext("brick " + opts.brick_name);
        if (rep->err != 0) {
          if (rep->err != ENOENT && rep->err != ESTALE) {
            return ErrnoStatus(rep->err, "brick " + opts.brick_name + ": readlink " + g.ToString() +
                                             ": " + rep->message);
          }
          gone = true;
        }
        r.symlink_target = rep->data;
      } else {
        r.op = OpType::kMknod;
        r.rdev = t.attr.rdev;
      }
      // Its xattrs (a hard link's went with its first name; a symlink has none users can set).
      std::vector<georep::Item> xattrs;
      size_t xattr_bytes = 0;
      if (!gone && !link && !lnk) {
        brick_proto::Request q;
        q.op = brick_proto::Op::kListxattr;
        q.gfid = g;
        auto names = data->Call(q).get();
        if (!names.ok()) return names.status().WithContext("brick " + opts.brick_name);
        if (names->err == ENOENT || names->err == ESTALE) {
          gone = true;
        } else if (names->err != 0) {
          return ErrnoStatus(names->err, "brick " + opts.brick_name + ": listxattr " +
                                             g.ToString() + ": " + names->message);
        }
        for (size_t i = 0; !gone && i < names->names.size(); ++i) {
          brick_proto::Request x;
          x.op = brick_proto::Op::kGetxattr;
          x.gfid = g;
          x.xattr_name = names->names[i];
          auto v = data->Call(x).get();
          if (!v.ok()) return v.status().WithContext("brick " + opts.brick_name);
          if (v->err == ENODATA) continue;  // removed since
          if (v->err != 0) {
            return ErrnoStatus(v->err, "brick " + opts.brick_name + ": xattr " + x.xattr_name +
                                           " of " + g.ToString() + ": " + v->message);
          }
          georep::Item xi;
          xi.op.op = OpType::kSetxattr;
          xi.op.timestamp_ns = c.start_ns;
          xi.op.gfid = g;
          xi.op.xattr_name = x.xattr_name;
          xi.data = std::move(v->data);
          xattr_bytes += xi.data.size() + x.xattr_name.size();
          xattrs.push_back(std::move(xi));
        }
      }
      if (gone) {
        // Removed since it was listed; the window's record of that removes it from the secondary
        // too, if an earlier run shipped it.
        c.tasks.pop_front();
        continue;
      }
      const bool cut = reg && !link && c.truncate;
      const size_t n_items = 1 + (cut ? 1 : 0) + xattrs.size();
      const size_t cost =
          n_items * kItemOverhead + r.name.size() + r.symlink_target.size() + xattr_bytes;
      if (!b.items.empty() && (xattr_bytes > budget || approx + cost > cap ||
                               b.items.size() + n_items > opts.max_batch_records)) {
        break;  // the next batch ships it
      }
      if (xattr_bytes > budget) {
        return FailedPrecondition("brick " + opts.brick_name + ": " + g.ToString() + " (" +
                                  t.parent.ToString() + "/" + t.name + ") has " +
                                  std::to_string(xattr_bytes) +
                                  " bytes of xattrs, more than one "
                                  "geo-replication message holds; remove some of them");
      }
      if (t.root) {
        // The root exists on the secondary already: its owner and mode. This is also always
        // the crawl's first item, whose timestamp tells the applier when the crawl began.
        changelog::Record sa;
        sa.op = OpType::kSetattr;
        sa.timestamp_ns = c.start_ns;
        sa.gfid = g;
        sa.setattr_valid = changelog::kSetMode | changelog::kSetUid | changelog::kSetGid;
        sa.mode = t.attr.mode;
        sa.uid = t.attr.uid;
        sa.gid = t.attr.gid;
        add(georep::Item{sa, 0, "", true, false}, 0);
      } else {
        add(georep::Item{r, 0, "", true, false}, r.name.size() + r.symlink_target.size());
      }
      if (cut) {
        georep::Item tr;
        tr.op.op = OpType::kTruncate;
        tr.op.timestamp_ns = c.start_ns;
        tr.op.gfid = g;
        tr.op.size = t.attr.size;
        add(std::move(tr), 0);
      }
      for (auto& xi : xattrs) {
        const size_t name_size = xi.op.xattr_name.size();
        add(std::move(xi), name_size);
      }
      listed[g] = t.attr;
      if (!t.parent_attr.gfid.is_null()) {
        listed[t.parent] = t.parent_attr;
      } else {
        live.insert(t.parent);
      }
      if (!t.root) {
        c.known.insert(g);
        if (!dir) {
          ++f.files;
          ++c.files_sent;
        }
      }
      if (dir && !t.root) c.dirs.push_back({g, t.attr});
      if (reg && !link && t.attr.size > 0) {
        PendingWrite pw;
        pw.op.op = OpType::kWrite;
        pw.op.timestamp_ns = c.start_ns;
        pw.op.gfid = g;
        pw.op.offset = 0;
        pw.op.length = t.attr.size;
        pw.end = t.attr.size;
        c.write = pw;
        c.write_attr = t.attr;
      }
      c.tasks.pop_front();
      continue;
    }
    // 3. The next directory to list.
    if (!c.dirs.empty()) {
      const CrawlDir d = c.dirs.back();
      c.dirs.pop_back();
      auto list = data->ReaddirAll(d.gfid, true);
      c.observed_ns = NowNs();
      if (!list.ok()) {
        if (IsGone(list.status())) continue;  // removed since: its RMDIR is in the window
        return list.status().WithContext("brick " + opts.brick_name + ": listing " +
                                         d.gfid.ToString() + " for the initial crawl");
      }
      if (opts.crawl_listed) opts.crawl_listed(d.gfid);
      for (auto& e : *list) {
        CrawlTask t;
        t.parent = d.gfid;
        t.name = std::move(e.name);
        t.attr = e.attr;
        t.attr.gfid = e.gfid;
        t.parent_attr = d.attr;
        c.tasks.push_back(std::move(t));
      }
      continue;
    }
    // 4. The window: journal records after the crawl's start.
    if (!c.walk_done) {
      c.walk_done = true;
      DRFS_LOG(Info) << "georep " << opts.session << " syncer " << opts.brick_name
                     << ": initial crawl walked " << c.files_sent << " files, "
                     << c.bytes_sent + data_bytes << " bytes in "
                     << (MonotonicNs() - c.began_mono) / 1000000 << " ms; replaying the journal "
                     << "from LSN " << c.start_lsn + 1;
    }
    if (c.window_closed) break;
    auto e = NextEntry(b.items.empty() ? 20ms : 0ms);
    if (!e.ok()) return e.status().WithContext("reading the journal of brick " + opts.brick_name);
    if (e->has_value()) {
      // A record journaled well after the crawl's last look at the tree changes what the
      // secondary already has exactly as the primary had it: the window ends before it.
      if ((**e).record.timestamp_ns > c.observed_ns + kCrawlSettleNs) {
        peeked = std::move(*e);
        c.window_closed = true;
        break;
      }
      bool taken = false;
      DRFS_RETURN_IF_ERROR(CrawlWindowRecord(**e, b, approx, budget, cap, live, &taken));
      if (!taken) {
        peeked = std::move(*e);
        break;
      }
      c.end_lsn = (**e).record.lsn;
      c.end_record = (**e).record;
      continue;
    }
    if (NowNs() > c.observed_ns + kCrawlSettleNs) {
      c.window_closed = true;
      break;
    }
    if (!b.items.empty()) break;
    return Status::Ok();  // waiting for the journal to settle
  }
  if (stop.load()) return Status::Ok();
  if (c.window_closed && c.tasks.empty() && c.dirs.empty() && !c.write) {
    // The end: journal batches follow after E. The batch carries record E, so the applier
    // learns E's journal time (where a takeover by another brick would replay from): this
    // batch's own, or a copy without data (applied again, leniently, it changes nothing: no
    // record after it has been applied yet).
    bool has_end = c.end_lsn == c.start_lsn;
    for (const auto& it : b.items)
      has_end |= it.op.lsn == c.end_lsn;
    if (!has_end) {
      georep::Item it;
      it.op = c.end_record;
      it.gone = it.op.op == OpType::kWrite || it.op.op == OpType::kSetxattr;
      add(std::move(it), 0);
    }
    b.header.flags |= georep::kBatchCrawlDone;
    b.header.resume_brick = opts.brick_id;
    b.header.resume_lsn = c.end_lsn;
    f.crawl_done = true;
  }
  if (b.items.empty() && !f.crawl_done) return Status::Ok();
  f.seq_first = c.next_seq;
  f.seq_last = c.next_seq + b.items.size() - (b.items.empty() ? 0 : 1);
  f.first_ts = b.items.empty() ? c.start_ns : b.items.front().op.timestamp_ns;
  if (resume_next) {
    b.header.flags |= georep::kBatchResume;
    b.header.resume_brick = opts.brick_id;
    b.header.resume_lsn = f.crawl_done ? c.end_lsn : c.start_lsn;
  }
  // Attributes: as listed, or read now for what the window's records touched.
  for (const Gfid& g : live)
    listed.erase(g);
  for (const auto& kv : listed)
    b.attrs.push_back(SnapOf(kv.second));
  DRFS_RETURN_IF_ERROR(SnapshotAttrs(std::vector<Gfid>(live.begin(), live.end()), &b.attrs));
  const size_t items = b.items.size();
  DRFS_RETURN_IF_ERROR(Produce(b, f, data_bytes));
  c.next_seq += items;
  c.bytes_sent += data_bytes;
  if (f.crawl_done) {
    c.done_sent = true;
    DRFS_LOG(Info) << "georep " << opts.session << " syncer " << opts.brick_name
                   << ": initial crawl sent (" << c.next_seq - 1 << " items, journal records "
                   << c.start_lsn + 1 << "-" << c.end_lsn << " among them); changelog from LSN "
                   << c.end_lsn + 1;
  }
  return Status::Ok();
}

void Syncer::Impl::OnCrawlAck(const georep::Ack& a) {
  Crawl& c = *crawl;
  bool moved = false;
  while (!inflight.empty() && inflight.front().crawl &&
         (inflight.front().crawl_done ? a.crawl_done : inflight.front().seq_last <= a.crawl_seq)) {
    c.files_done += inflight.front().files;
    c.bytes_done += inflight.front().file_bytes;
    inflight.pop_front();
    moved = true;
  }
  if (moved) {
    last_progress_ns = MonotonicNs();
    resend_backoff_ns = 0;
  }
  {
    std::lock_guard<std::mutex> l(mu);
    info.crawl_files_done = c.files_done;
    info.crawl_bytes_done = c.bytes_done;
  }
  if (!a.crawl_done || !c.done_sent) return;
  // The crawl is applied: from here on this journal's cursor follows the acknowledgements, from
  // E, and the crawl's own cursor goes.
  DRFS_LOG(Info) << "georep " << opts.session << " syncer " << opts.brick_name
                 << ": initial sync done: " << c.files_done << " files, " << c.bytes_done
                 << " bytes in " << (MonotonicNs() - c.began_mono) / 1000000 << " ms; changelog "
                 << "from LSN " << c.end_lsn + 1;
  acked_lsn = a.applied_lsn;
  acked_ts = a.applied_ts_ns;
  AdvanceCursor(acked_lsn, true);
  changelog::CursorStore cs(opts.changelog_dir);
  if (cursor_lsn >= acked_lsn) (void)cs.Remove(CrawlCursorName(opts.session));
  crawl.reset();
  for (auto& f : inflight)
    f.value.reset();
  std::lock_guard<std::mutex> l(mu);
  info.crawl = "Changelog";
  info.crawl_eta_s = 0;
}

// A crawl cannot be read again like a journal: what is unacknowledged goes out again as the
// same bytes (the window keeps it small), and the applier drops what it has by item number.
Status Syncer::Impl::ResendCrawl(const std::string& why) {
  DRFS_LOG(Info) << "georep " << opts.session << " syncer " << opts.brick_name << ": resending "
                 << inflight.size() << " unacknowledged crawl messages: " << why;
  resend = false;
  last_progress_ns = MonotonicNs();
  {
    std::lock_guard<std::mutex> l(mu);
    ++info.resends;
    deliveries.clear();
  }
  for (const InFlight& f : inflight) {
    if (!f.value) continue;
    InFlight copy = f;
    copy.value.reset();
    auto done = [this, copy](const Status& st, int64_t) {
      if (st.ok() || st.code() == Code::kCancelled) return;
      std::lock_guard<std::mutex> l(mu);
      deliveries.emplace_back(st, copy);
    };
    for (;;) {
      Status s = producer->Produce(georep::BatchTopic(opts.session, opts.epoch),
                                   static_cast<int32_t>(opts.replica_set),
                                   georep::PartitionKey(opts.replica_set), *f.value, done);
      if (s.ok()) break;
      if (s.code() == Code::kAborted) {
        producer.reset();
        resend = true;
        return EnsureKafka();
      }
      if (s.code() != Code::kResourceExhausted || stop.load()) return s;
      std::this_thread::sleep_for(10ms);
    }
  }
  return Status::Ok();
}

void Syncer::Impl::UpdateCheckpoint() {
  uint64_t cp_ns, done_ns;
  {
    std::lock_guard<std::mutex> l(mu);
    cp_ns = checkpoint_ns;
    done_ns = checkpoint_done_ns;
  }
  if (cp_ns == 0 || done_ns != 0) return;
  if (crawl) return;  // the secondary is not a copy of anything until the crawl is applied
  if (checkpoint_for != cp_ns) {
    // Every record acknowledged to a client before cp_ns was published before it: find the
    // newest record stamped at or before cp_ns (stamps are taken before the record is durable).
    auto lsn = LsnAtTime(cp_ns, acked_lsn > 0 ? acked_lsn : 1);
    if (!lsn.ok()) return;
    checkpoint_lsn = *lsn;
    checkpoint_for = cp_ns;
  }
  // Records stamped before cp_ns may still be on their way to being published (the writer
  // stamps, then syncs): wait until the journal has been read past cp_ns or is idle since.
  if (acked_lsn >= checkpoint_lsn && NowNs() > cp_ns + 200000000ull) {
    // Writes this brick missed are not in its journal: no completion while it is a heal sink
    // (it then steps down and an up-to-date brick's syncer finishes the checkpoint).
    if (MonotonicNs() - last_sink_check_ns > 1000000000ull) {
      auto sink = HealSinkObjects();
      if (!sink.ok() || *sink > 0) {
        if (sink.ok()) {
          StepDown("this brick needs heal (" + std::to_string(*sink) + " objects)");
          SetState("Passive", "this brick needs heal; not eligible until healed");
        }
        return;
      }
    } else if (sink_objects > 0) {
      return;
    }
    // Re-scan once: a record stamped before cp_ns but published after the first scan.
    auto lsn = LsnAtTime(cp_ns, checkpoint_lsn + 1);
    if (lsn.ok() && *lsn > checkpoint_lsn) {
      checkpoint_lsn = *lsn;
      return;
    }
    std::lock_guard<std::mutex> l(mu);
    if (checkpoint_ns == cp_ns) checkpoint_done_ns = NowNs();
  }
}

void Syncer::Impl::Publish() {
  if (!journal_state) {
    auto js = changelog::SharedState::OpenForReader(opts.changelog_dir);
    if (js.ok()) journal_state = std::move(*js);
  }
  const uint64_t visible = journal_state ? journal_state->visible() : 0;
  std::lock_guard<std::mutex> l(mu);
  info.visible_lsn = std::max(info.visible_lsn, visible);
  info.acked_lsn = active ? acked_lsn : 0;
  info.acked_ts_ns = active ? acked_ts : (last_ack ? last_ack->applied_ts_ns : 0);
  info.token = token;
  info.epoch = opts.epoch;
  info.oldest_unacked_ts_ns = inflight.empty() ? 0 : inflight.front().first_ts;
  info.pending_entry = info.pending_data = info.pending_meta = 0;
  for (const auto& f : inflight) {
    info.pending_entry += f.entry;
    info.pending_data += f.data;
    info.pending_meta += f.meta;
  }
  if (crawl) {
    // ETA from the acknowledged rate so far: bytes when there are some to go, else names.
    const Crawl& c = *crawl;
    info.crawl_files_total = std::max(c.files_total, c.files_done);
    info.crawl_bytes_total = std::max(c.bytes_total, c.bytes_done);
    const double secs = static_cast<double>(MonotonicNs() - c.began_mono) / 1e9;
    const uint64_t bytes_left = info.crawl_bytes_total - c.bytes_done;
    const uint64_t files_left = info.crawl_files_total - c.files_done;
    if (c.began_mono == 0 || secs < 1) {
      info.crawl_eta_s = -1;
    } else if (bytes_left > 0 && c.bytes_done > 0) {
      info.crawl_eta_s = static_cast<int64_t>(static_cast<double>(bytes_left) * secs /
                                              static_cast<double>(c.bytes_done));
    } else if (files_left > 0 && c.files_done > 0) {
      info.crawl_eta_s = static_cast<int64_t>(static_cast<double>(files_left) * secs /
                                              static_cast<double>(c.files_done));
    } else {
      info.crawl_eta_s = files_left == 0 && bytes_left == 0 ? 0 : -1;
    }
  }
  const uint64_t now = MonotonicNs();
  while (!rate_samples.empty() && now - rate_samples.front().first > 5000000000ull) {
    rate_samples.pop_front();
  }
  uint64_t sum = 0;
  for (const auto& s : rate_samples) sum += s.second;
  info.bytes_per_s = static_cast<double>(sum) / 5.0;
  info.checkpoint_ns = checkpoint_ns;
  info.checkpoint_lsn = checkpoint_lsn;
  info.checkpoint_done_ns = checkpoint_done_ns;
}

Syncer::Syncer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Syncer::~Syncer() { Stop(); }

void Syncer::Stop() {
  impl_->stop.store(true);
  if (impl_->thread.joinable()) impl_->thread.join();
}

SyncerInfo Syncer::Info() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->info;
}

void Syncer::SetCheckpoint(uint64_t t_ns, uint64_t done_ns) {
  std::lock_guard<std::mutex> l(impl_->mu);
  if (impl_->checkpoint_ns == t_ns && done_ns == 0) return;
  impl_->checkpoint_ns = t_ns;
  impl_->checkpoint_done_ns = done_ns;
  impl_->info.checkpoint_ns = t_ns;
  impl_->info.checkpoint_done_ns = done_ns;
}

void Syncer::SetPaused(bool paused) { impl_->paused.store(paused); }

Result<std::unique_ptr<Syncer>> Syncer::Start(const SyncerOptions& options) {
  if (options.session.empty() || options.changelog_dir.empty() || options.brick_id.empty()) {
    return InvalidArgument("syncer: session, brick id and changelog directory are required");
  }
  if (options.replica_bricks.empty()) {
    return InvalidArgument("syncer " + options.session + ": no bricks in the replica set");
  }
  auto impl = std::make_unique<Impl>(options);
  impl->lock_name = ".drfs-georep-" + options.session + "-rs" + std::to_string(options.replica_set);
  impl->owner = impl->rng() | 1;
  impl->started_ns = MonotonicNs();
  for (size_t i = 0; i < options.replica_bricks.size(); ++i) {
    if (options.replica_bricks[i].name == options.brick_name ||
        (options.replica_bricks[i].host == options.brick_host &&
         options.replica_bricks[i].port == options.brick_port)) {
      impl->own_index = static_cast<int>(i);
    }
  }
  impl->info.epoch = options.epoch;
  Impl* p = impl.get();
  impl->thread = std::thread([p] { p->Run(); });
  return std::unique_ptr<Syncer>(new Syncer(std::move(impl)));
}

}  // namespace drfs::syncer
