// Syncer: ships one brick's changelog to Kafka for a geo-replication session, acknowledged end
// to end by the secondary's applier.
//
// drfsd runs one per (session, data brick) on the primary site. Of the syncers of a replica
// set, one is Active and ships; the others are Passive and only move their journal's cursor as
// the Active one's acknowledgements come in.
//
// Who is Active. A syncer becomes Active by taking an entry lock, named after the session and
// replica set, in the service lock space (brick_proto::ServiceLockSpace(): a gfid no object
// has) of a majority of the replica set's bricks (non-blocking; Passive
// syncers retry every election_interval). Locks are bound to connections, so when an Active
// syncer, its process or its host dies, its locks go with its connections and a Passive one
// takes over. An Active syncer that loses the connections to a majority steps down at once.
// Each time a syncer becomes Active it takes a new fencing token, above every token it has
// seen acknowledged and above the wall clock in milliseconds; the applier refuses batches from
// older tokens, so a deposed syncer whose messages are still in Kafka cannot be applied over a
// newer one. The token is shown in status.
//
// Where it starts. From the latest Ack in the session's ack topic: after the acknowledged LSN
// when the Ack is for this brick's journal; from the acknowledged time minus `replay_overlap`
// (re-applied idempotently, kBatchReplay) when it is for another brick's journal; from its own
// cursor when there is no Ack (the broker lost it). A new session, and a journal that no longer
// reaches back to where the applier stands, start with an initial crawl.
//
// Initial sync. The syncer records the journal's newest LSN S in the journal cursor
// "georep.SESSION.crawl" (durably, before anything else: it keeps the records after S from
// retention, and marks the crawl unfinished), then walks its brick's tree by gfid and ships
// what exists as crawl items (kBatchCrawl, numbered by crawl_seq): directories before their
// entries, file data in fragments, symlinks, hard links as links, xattrs, attributes. Then it
// ships the journal records after S as crawl items too, applied leniently (the walk may have
// seen their effect), until the journal has settled past the walk's last look at the tree; a
// RENAME or LINK there of an object the walk never shipped (it moved from a directory not yet
// listed into one already listed) ships that object, with its subtree, at the destination.
// A CrawlDone (resume_lsn E, the last record so shipped) ends it; journal batches follow from
// E + 1. The crawl's messages stay in memory until acknowledged, and a resend produces them
// again. A crawl that did not finish (the syncer stepped down, its process died) is started
// over by the next Active syncer from the same S (another brick's syncer: from the time it
// began, in its own journal), so nothing the first run shipped escapes the window.
//
// Flow control. At most `window_bytes` of unacknowledged messages are in Kafka at once, so the
// broker never has to keep more than it can (the embedded broker keeps ~5 MiB per partition).
// When acknowledgements stall for `resend_timeout` with messages outstanding, when a delivery
// fails, or when the applier reports a gap, it resends from the acknowledged position.
//
// Journal retention moves only on the applier's acknowledgements: the cursor
// "georep.SESSION" of this brick's journal follows the acknowledged LSN (Active) or the
// acknowledged time minus `replay_overlap` (Passive).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/gfid.h"
#include "common/rpc.h"
#include "common/status.h"
#include "georep/kafka.h"

namespace drfs::syncer {

struct ReplicaBrick {
  std::string name;  // host:/path
  std::string host;
  uint16_t port = 0;  // 0: not running
};

struct SyncerOptions {
  std::string session;
  std::string volume_uuid;
  uint32_t replica_set = 0;
  uint64_t epoch = 1;
  std::string brick_id;        // this brick's id (its journal's)
  std::string brick_name;      // host:/path, for status and logs
  std::string changelog_dir;   // BRICK/.drfs/changelog
  std::string brick_host;      // this brick's address, for reading data by gfid
  uint16_t brick_port = 0;
  std::vector<ReplicaBrick> replica_bricks;  // every brick of the replica set (this one too)
  TlsConfig tls;
  kafka::Properties kafka;

  size_t batch_bytes = 512 << 10;         // a batch closes at this much (records and data)
  std::chrono::milliseconds linger{20};   // or this long after its first record
  size_t max_batch_records = 4096;
  size_t window_bytes = 4 << 20;          // unacknowledged message bytes in Kafka, at most
  int zstd_level = 3;                     // 0: no compression
  uint64_t bandwidth_bytes_per_s = 0;     // 0: unlimited
  std::chrono::milliseconds resend_timeout{15000};
  std::chrono::milliseconds election_interval{1000};
  std::chrono::milliseconds replay_overlap{2000};
  std::chrono::milliseconds ack_wait{3000};  // for the first Ack after becoming Active
  // The session was just promoted here (failover) and this brick's cursor still stands where the
  // promotion put it: the applier (on the old primary) has no position in this epoch to wait
  // for, so the syncers start at once from the cursor.
  bool promoted_start = false;
  // Tests: called on the syncer's thread right after the initial crawl lists directory `dir`
  // (to change the tree at a chosen point of the walk).
  std::function<void(const Gfid& dir)> crawl_listed;
};

// What status shows for one syncer.
struct SyncerInfo {
  std::string state = "Initializing";  // Initializing, Active, Passive, Faulty, Stopped
  std::string reason;                  // for Faulty (and Passive: who holds the lock)
  std::string crawl = "Changelog";     // "Initial sync" while the initial crawl runs
  // The initial crawl's progress: names (directories aside) and file bytes the applier has
  // applied, against totals counted before the walk (an estimate: the tree changes meanwhile),
  // and the estimated seconds left (-1: not known yet).
  uint64_t crawl_start_lsn = 0;
  uint64_t crawl_files_done = 0, crawl_files_total = 0;
  uint64_t crawl_bytes_done = 0, crawl_bytes_total = 0;
  int64_t crawl_eta_s = -1;
  uint64_t token = 0;
  uint64_t epoch = 0;
  uint64_t visible_lsn = 0;   // the journal's newest published record
  uint64_t sent_lsn = 0;      // newest record sent
  uint64_t acked_lsn = 0;     // newest record the applier applied (this journal)
  uint64_t acked_ts_ns = 0;   // its journal time: "last synced"
  uint64_t oldest_unacked_ts_ns = 0;  // 0: nothing outstanding
  uint64_t pending_entry = 0, pending_data = 0, pending_meta = 0;  // sent, not yet applied
  uint64_t failures = 0;      // reported by the applier
  uint64_t messages = 0, bytes_sent = 0, bytes_uncompressed = 0, data_bytes = 0;
  uint64_t resends = 0;
  double bytes_per_s = 0;     // over the last few seconds
  // Checkpoint: set time, the LSN it needs, and when it completed (0: not yet).
  uint64_t checkpoint_ns = 0, checkpoint_lsn = 0, checkpoint_done_ns = 0;
};

class Syncer {
 public:
  static Result<std::unique_ptr<Syncer>> Start(const SyncerOptions& options);
  ~Syncer();  // Stop()
  Syncer(const Syncer&) = delete;
  Syncer& operator=(const Syncer&) = delete;

  void Stop();
  SyncerInfo Info() const;
  // A checkpoint at wall-clock time `t_ns` (0 clears it): complete once every record this
  // journal published before t_ns is acknowledged. `done_ns` restores a completion recorded
  // earlier.
  void SetCheckpoint(uint64_t t_ns, uint64_t done_ns = 0);
  // Pauses shipping (the syncer stays Active and keeps its lock) or resumes it.
  void SetPaused(bool paused);

  struct Impl;

 private:
  explicit Syncer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The journal cursor a session keeps on every brick: "georep.SESSION".
std::string CursorName(const std::string& session);

}  // namespace drfs::syncer
