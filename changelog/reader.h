// Reader: reads a journal from any LSN, and tails it.
//
// A reader works in the writer's process or in any other process on the host: it needs only the
// journal directory. It follows rollover, and it never returns a record twice or skips one:
// LSNs come out as first, first+1, ... Corruption is reported as DataLoss naming the segment,
// offset and last good LSN; a record that retention already deleted is OutOfRange.
//
// Two bounds:
//   kPublished - only records the writer has published (durable, under the `always` and
//                `interval` policies). Consumers that ship records elsewhere use this. With no
//                writer running, the last published position still holds.
//   kOnDisk    - everything complete on disk, for inspection (`drfs changelog dump`). A torn
//                tail ends the read and is described by torn_tail().
// Not thread-safe: one reader per consuming thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "changelog/format.h"
#include "changelog/record.h"
#include "common/file.h"
#include "common/status.h"

namespace drfs::changelog {

class SharedState;

struct ReaderOptions {
  // First LSN to return. 0 means the oldest record still kept.
  Lsn from_lsn = 0;
  enum class Bound { kPublished, kOnDisk } bound = Bound::kPublished;
  FileSystem* fs = FileSystem::Default();
};

struct Entry {
  Record record;
  uint64_t epoch = 0;       // from the segment header
  std::string segment;      // file name
  uint64_t offset = 0;      // of the record's frame in the segment
};

class Reader {
 public:
  static Result<std::unique_ptr<Reader>> Open(const std::string& dir,
                                              const ReaderOptions& options);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // The next record. If none is available yet, waits up to `timeout` for the writer to publish
  // one, then returns nullopt. With Bound::kOnDisk, nullopt means the end of the journal.
  Result<std::optional<Entry>> Next(std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

  // LSN the next call to Next() will return.
  Lsn next_lsn() const { return next_lsn_; }
  // With Bound::kOnDisk, set when the journal ended in an incomplete record.
  const std::string& torn_tail() const { return torn_tail_; }

 private:
  Reader(std::string dir, const ReaderOptions& options);
  Status OpenSegment(const std::string& name, Lsn expect_first);
  Status Position(Lsn from);
  Status CorruptAt(const std::string& why) const;
  // Maps the writer's shared state once a writer has created it.
  bool HaveState();

  const std::string dir_;
  const ReaderOptions opts_;
  FileSystem* fs_;
  std::unique_ptr<SharedState> state_;
  std::unique_ptr<RandomAccessFile> file_;
  std::unique_ptr<SegmentScanner> scan_;
  std::string segment_name_;
  uint64_t segment_epoch_ = 0;
  Lsn next_lsn_ = 0;
  Lsn skip_until_ = 0;   // records below this are read but not returned
  bool at_end_ = false;  // kOnDisk: reached a torn tail or the end
  std::string torn_tail_;
};

}  // namespace drfs::changelog
