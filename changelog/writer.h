// Writer: appends records to a brick's journal.
//
// Contract:
// - Append() returns the record's LSN only once the record is durable under the fsync policy:
//     kAlways   - fdatasync'd before Append returns. Concurrent appenders share one fdatasync
//                 (group commit): the first waiting appender writes and syncs everything queued,
//                 the others wait for it.
//     kInterval - written before Append returns, fdatasync'd within interval_ms.
//     kNever    - written before Append returns; the OS decides when it reaches the disk.
//   LSNs increase by exactly one, in file order, across restarts too.
// - Readers (in any process) see a record once it is published: when it is durable under
//   kAlways and kInterval, when it is written under kNever. See shared_state.h for why.
// - Open() recovers the journal: a torn tail (an incomplete or damaged record at the end of the
//   newest segment, with no valid record after it) is cut off, and every complete record before
//   it is kept.
//   Anything else that does not check out is DataLoss naming the segment, offset and last good
//   LSN, and the journal is not opened.
// - One writer per journal: Open() takes DIR/LOCK with flock, so a second brick process on the
//   same directory gets FailedPrecondition instead of interleaving records.
// - After a failed write (say ENOSPC) the records of that batch are not acknowledged and the
//   file is cut back, so later appends can succeed once there is space. After a failed fsync the
//   writer refuses all further appends: the kernel may have dropped the dirty pages, so only a
//   restart, which re-reads the journal from disk, can say what is durable.
// - Append errors say whether the record is in the journal. kDataLoss: unknown (it was written
//   but its fsync, or cutting back a failed write, failed; after a restart it may be there).
//   Any other code: it is not, and never will be.
// - Thread-safe. Close() (or the destructor) refuses new appends, waits for those in flight, and
//   syncs; no thread outlives the Writer.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "changelog/format.h"
#include "changelog/record.h"
#include "common/file.h"
#include "common/gfid.h"
#include "common/status.h"

namespace drfs::changelog {

class SharedState;

enum class FsyncPolicy { kAlways, kInterval, kNever };
std::string_view FsyncPolicyName(FsyncPolicy p);
std::optional<FsyncPolicy> ParseFsyncPolicy(std::string_view s);

struct WriterOptions {
  FsyncPolicy fsync_policy = FsyncPolicy::kAlways;
  uint32_t fsync_interval_ms = 100;  // kInterval only
  // A new segment starts at the first flush after the current one reaches either limit.
  uint64_t segment_max_bytes = 64ull << 20;
  uint64_t segment_max_age_ms = 15 * 60 * 1000;
  // The brick this journal belongs to. Null: adopt the journal's own id (a new journal gets a
  // random one). Non-null: an existing journal with another id is refused.
  Gfid brick_id;
  // Epoch stamped on new segments. Opening with an epoch older than the journal's is refused
  // (the caller is fenced); a newer one starts a new segment. 0 keeps the journal's epoch
  // (1 for a new journal).
  uint64_t epoch = 1;
  // Retention with no cursor registered: keep the newest segments holding at least this many
  // bytes (see Purge); 0 keeps everything.
  uint64_t keep_unclaimed_bytes = 0;
  // Check every record of every segment on open, not just the newest segment.
  bool verify_all_segments = true;
  FileSystem* fs = FileSystem::Default();
};

// What Open() found and did.
struct RecoveryReport {
  size_t segments = 0;
  uint64_t records_verified = 0;
  uint64_t torn_bytes_truncated = 0;
  std::string torn_segment;  // the segment whose tail was cut, if any
  std::string torn_reason;
};

class Writer {
 public:
  static Result<std::unique_ptr<Writer>> Open(const std::string& dir,
                                              const WriterOptions& options);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Appends `record` (its lsn is assigned; timestamp_ns too when 0). Returns the LSN.
  Result<Lsn> Append(const Record& record);
  // Makes every record appended so far durable, whatever the policy.
  Status Sync();
  // Stamps later records with `epoch` (starting a new segment). Refuses to go backwards.
  Status SetEpoch(uint64_t epoch);
  // Runs retention now (it also runs after every rollover).
  Result<struct PurgeResult> Purge();
  Status Close();

  const std::string& dir() const { return dir_; }
  const Gfid& brick_id() const { return brick_id_; }
  const RecoveryReport& recovery() const { return recovery_; }
  // Highest LSN assigned (may move back after a failed batch), written to the file (never moves
  // back: every LSN assigned later is above it), and published to readers.
  Lsn last_lsn() const;
  Lsn written_lsn() const;
  Lsn visible_lsn() const;
  uint64_t epoch() const;

  struct Stats {
    uint64_t appends = 0;
    uint64_t flushes = 0;  // write() calls carrying one or more records
    uint64_t syncs = 0;
    uint64_t rollovers = 0;
  };
  Stats stats() const;

 private:
  struct Waiter;
  Writer(std::string dir, const WriterOptions& options);

  Status Recover();
  // Starts a new segment whose first record will be `first_lsn`. Only the flush owner calls it.
  Status Roll(Lsn first_lsn, uint64_t epoch);
  bool NeedsRollLocked() const;
  // Writes (and maybe syncs) everything queued. Called with mu_ held and flushing_ false; drops
  // and retakes mu_ around the I/O.
  void FlushLocked(std::unique_lock<std::mutex>& l, bool sync);
  void PublishLocked();
  void IntervalSyncLoop();

  const std::string dir_;
  const WriterOptions opts_;
  FileSystem* const fs_;
  int lock_fd_ = -1;
  Gfid brick_id_;
  RecoveryReport recovery_;
  std::unique_ptr<SharedState> state_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Status fatal_;     // set once the journal can no longer be trusted to append
  bool closed_ = false;
  bool flushing_ = false;  // a thread owns the file (writing, syncing or rolling)
  Lsn next_lsn_ = 1;
  Lsn written_lsn_ = 0;
  Lsn synced_lsn_ = 0;
  Lsn published_lsn_ = 0;
  uint64_t epoch_ = 0;
  std::string buf_;               // framed records not yet written, LSN order
  std::deque<Waiter*> pending_;   // their appenders
  Stats stats_;

  // Owned by the thread with flushing_ set (or by Open/Close).
  std::unique_ptr<WritableFile> file_;
  Lsn segment_first_lsn_ = 0;
  uint64_t segment_epoch_ = 0;
  uint64_t segment_created_ns_ = 0;
  bool segment_has_records_ = false;

  std::thread interval_thread_;
};

}  // namespace drfs::changelog
