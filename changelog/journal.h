// Whole-journal operations that need no writer: locating the journal of a brick, listing its
// segments, inspecting it for `drfs changelog status`, and retention.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "changelog/cursor.h"
#include "changelog/format.h"
#include "common/file.h"
#include "common/status.h"

namespace drfs::changelog {

// The writer's lock file in a journal directory (flock'ed while a brick writes).
inline constexpr char kLockFileName[] = "LOCK";

// "<brick>/.drfs/changelog"
std::string JournalDirForBrick(const std::string& brick_dir);
// Accepts a brick directory or a journal directory and returns the journal directory.
std::string ResolveJournalDir(const std::string& dir, FileSystem* fs = FileSystem::Default());

struct SegmentFile {
  std::string name;
  std::string path;
  Lsn first_lsn = 0;
};

// Segment files of the journal, oldest first. NotFound if `dir` does not exist.
Result<std::vector<SegmentFile>> ListSegments(const std::string& dir, FileSystem* fs);

// Whether a process holds the journal's writer lock (a brick is running on it), and its pid.
struct WriterInfo {
  bool running = false;
  uint64_t pid = 0;
};
WriterInfo ProbeWriter(const std::string& dir);

struct SegmentInfo {
  std::string name;
  Lsn first_lsn = 0;
  Lsn last_lsn = 0;  // first_lsn - 1 when empty
  uint64_t bytes = 0;
  uint64_t epoch = 0;
  uint64_t created_ns = 0;
  Gfid brick_id;
};

struct JournalStatus {
  std::string dir;
  WriterInfo writer;
  std::vector<SegmentInfo> segments;
  uint64_t total_bytes = 0;
  Lsn first_lsn = 0;    // oldest record kept
  Lsn last_lsn = 0;     // newest record on disk (0 if none ever)
  Lsn visible_lsn = 0;  // newest record readers may consume
  std::vector<Cursor> cursors;
  std::string torn_tail;  // non-empty if the last segment ends in a torn record
};

// Reads the journal's layout without changing anything. Safe while a writer runs.
Result<JournalStatus> Inspect(const std::string& dir, FileSystem* fs = FileSystem::Default());

struct PurgeResult {
  std::vector<std::string> deleted;
  uint64_t bytes_freed = 0;
  Lsn oldest_kept_lsn = 0;
  std::string held_by;  // the cursor that stops further purging, if any
};

// Deletes every segment, except the newest, whose records all registered cursors have passed.
// With no cursor registered (no consumer, such as a geo-replication session, reads the journal)
// it keeps the newest segments that hold at least `keep_unclaimed_bytes` and deletes the older
// ones; 0 keeps everything (nobody has said the records are no longer needed). Safe to run
// while a writer appends and readers read.
Result<PurgeResult> Purge(const std::string& dir, FileSystem* fs = FileSystem::Default(),
                          uint64_t keep_unclaimed_bytes = 0);

}  // namespace drfs::changelog
