// BatchApplier: applies geo-replication batches (georep/format.h) to the secondary volume, in
// order, by gfid, exactly once in effect.
//
// Position. For each replica set it keeps, in SQLite (WAL, one transaction per batch), the
// position it has applied: (epoch, token, source brick, LSN, journal timestamp), the crawl
// sequence during an initial sync, and counters. A batch is:
//   - refused (kStale) when its epoch or token is older than the stored one: it comes from a
//     fenced site or a deposed syncer;
//   - dropped (kDuplicate) when every record in it is at or below the stored LSN (same token
//     and brick); records at or below it inside a batch that goes further are skipped;
//   - held back (kGap) when it starts after stored LSN + 1 (same token and brick): nothing is
//     applied, the syncer is told to resend;
//   - applied otherwise. A batch with kBatchResume from a newer token continues from its
//     resume position; one with kBatchReplay is applied idempotently without LSN checks.
//
// Idempotence. The volume and SQLite cannot commit together, so the position is stored after
// the batch's effects; a crash in between re-applies the batch. Every op is therefore applied
// so that doing it twice has no visible effect: it first checks, by gfid, whether the effect is
// already there (the object exists, the entry already names that gfid, the rename is done...)
// and skips it if so. An op whose object is gone for good (a later record removes it) is
// skipped as superseded.
//
// How the header's fields are read (docs/georep-format.md says the same):
//   - resume_lsn (kBatchResume, kBatchCrawlDone) is the last LSN of resume_brick's journal that
//     is covered; the records that follow start at resume_lsn + 1.
//   - crawl_seq (kBatchCrawl) is the sequence number of the batch's first item; its items are
//     numbered crawl_seq, crawl_seq + 1, ... from 1, so Position::crawl_seq (the last applied)
//     is also how many crawl items were applied. Crawl batches are deduplicated and checked for
//     gaps by these numbers instead of LSNs; their items are applied idempotently. A crawl run
//     (a token's crawl) is entered only at its first batch: crawl_seq 1 with kBatchResume, whose
//     resume_lsn is where the crawl starts in the journal. Until its CrawlDone the position is
//     that start (lsn = resume_lsn, ts_ns = the crawl items' timestamp, which is when the crawl
//     began), journal batches of the same stream are held back as a gap, and crawl batches of
//     a stream whose crawl is done are duplicates.
//   - A WRITE's fragments share its LSN: the position passes it only with its last fragment.
//
// Re-applying. Before it touches the volume for records beyond the position, Apply stores
// how far it is about to go (same transaction rules). Records up to there may already be
// applied when a batch is retried (after Unavailable or a crash), so for them an op whose
// precondition is gone (the parent or the source entry missing, the name taken by another
// gfid) is skipped as superseded instead of recorded as a failure. A kBatchReplay batch and
// the records of its run journaled up to the old position's time (plus 5 s for the bricks'
// clocks; only the run's first batch carries the flag), a batch applied without LSN checks (a
// resume from another brick, a crawl, the very first batch) is treated the same way. A RENAME never
// replaces anything but the entry the primary's rename replaced (`replaced`): out of order, what
// sits at the destination may be an object the primary still has. And a CREATE never brings back a
// gfid the applier destroyed before (the database keeps those for a week; gfids are never reused):
// replaying, the record that destroyed it may no longer apply. For the same reason a replayed
// CREATE journaled before the newest initial crawl began never creates: the crawl shipped every
// object that lived on past its start, so one that is missing died before it. In a crawl batch, a
// RENAME whose source name is missing still gives an existing file its destination name (a crawl
// can miss one name of a file with several).
//
// Failures. An op that cannot be applied for a reason that retrying will not fix (a conflict
// the primary cannot have had, EINVAL, EISDIR...) is recorded in the failures
// table with its LSN, op, path on the primary's terms (parent gfid/name) and errno text, and
// counted; the batch goes on. Transport errors (EIO, ENOTCONN, EROFS without quorum or from a
// read-only brick, timeouts) are not failures: Apply returns Unavailable and the batch is
// retried whole later. So are ENOSPC and EDQUOT: a full secondary stalls (the worker shows it
// Faulty) rather than diverge from the primary op by op.
//
// Concurrency. A batch's ops are applied by a few threads at once (apply_threads), so their
// round trips to the secondary's bricks overlap: each op waits only for the earlier ops of the
// batch that touch the same object, the same directory entry, or (for a directory's own mkdir,
// rmdir or rename) anything inside that directory; renames also wait for each other. So every
// op still sees what the primary's order left for it, and the checks above work unchanged.
// The position is stored only after all of them (and the attributes) are done.
//
// Thread-safety: Apply may run for different replica sets on different threads at once (the
// database is serialized inside); one replica set's batches must come from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/sqlite.h"
#include "common/status.h"
#include "georep/format.h"

namespace drfs::volume {
class VolumeClient;
}

namespace drfs::secondary {

struct Position {
  uint32_t replica_set = 0;
  uint64_t epoch = 0;
  uint64_t token = 0;
  std::string source_brick;
  uint64_t lsn = 0;
  uint64_t ts_ns = 0;
  uint64_t crawl_seq = 0;
  bool crawl_done = false;
  uint64_t applied_ops = 0;
  uint64_t failures = 0;
  int64_t kafka_offset = -1;  // of the last batch applied or dropped (where to resume reading)
  uint64_t applied_at_ns = 0;  // wall clock of the last apply
};

struct Failure {
  int64_t id = 0;
  uint32_t replica_set = 0;
  uint64_t lsn = 0;
  std::string op;       // "RENAME"
  std::string target;   // "<parent gfid>/<name>" or "<gfid>", and for renames " -> <new>"
  std::string error;    // errno text and what was found
  uint64_t at_ns = 0;
};

enum class Outcome { kApplied, kDuplicate, kStale, kGap };

inline constexpr size_t kDefaultApplyThreads = 4;
const char* OutcomeName(Outcome o);

class BatchApplier {
 public:
  // Opens (creating) the database at `db_path`. Up to `apply_threads` ops of a batch go to the
  // volume at once (see "Concurrency"); 1 applies them one by one.
  static Result<std::unique_ptr<BatchApplier>> Open(const std::string& db_path,
                                                    const std::string& session,
                                                    size_t apply_threads = kDefaultApplyThreads);
  ~BatchApplier();

  // Applies `batch` (read at `kafka_offset`) through `volume`. Unavailable: nothing recorded,
  // retry the same batch later.
  Result<Outcome> Apply(volume::VolumeClient& volume, const georep::Batch& batch,
                        int64_t kafka_offset);

  // Every replica set's position (those seen so far).
  Result<std::vector<Position>> Positions();
  Result<Position> GetPosition(uint32_t replica_set);
  // The newest `limit` failures, newest first.
  Result<std::vector<Failure>> Failures(int limit);

  struct Impl;

 private:
  explicit BatchApplier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drfs::secondary
