#include "changelog/reader.h"

#include <thread>

#include "changelog/journal.h"
#include "changelog/shared_state.h"
#include "common/time.h"

namespace drfs::changelog {

Reader::Reader(std::string dir, const ReaderOptions& options)
    : dir_(std::move(dir)), opts_(options), fs_(options.fs) {}

Reader::~Reader() = default;

Result<std::unique_ptr<Reader>> Reader::Open(const std::string& dir,
                                             const ReaderOptions& options) {
  std::unique_ptr<Reader> r(new Reader(dir, options));
  DRFS_RETURN_IF_ERROR(r->Position(options.from_lsn));
  return r;
}

Status Reader::CorruptAt(const std::string& why) const {
  return DataLoss("changelog segment " + JoinPath(dir_, segment_name_) + " is corrupt at offset " +
                  std::to_string(scan_ ? scan_->offset() : 0) + ": " + why + "; last good LSN " +
                  std::to_string(next_lsn_ - 1));
}

Status Reader::OpenSegment(const std::string& name, Lsn expect_first) {
  DRFS_ASSIGN_OR_RETURN(auto file, fs_->OpenReadable(JoinPath(dir_, name)));
  auto scan = std::make_unique<SegmentScanner>(file.get());
  SegmentHeader h;
  if (Status s = scan->ReadHeader(&h); !s.ok()) {
    return DataLoss("changelog segment " + JoinPath(dir_, name) + " is corrupt at offset 0: " +
                    s.message() + "; last good LSN " +
                    std::to_string(next_lsn_ == 0 ? 0 : next_lsn_ - 1));
  }
  if (expect_first != 0 && h.first_lsn != expect_first) {
    return DataLoss("changelog segment " + JoinPath(dir_, name) + " starts at LSN " +
                    std::to_string(h.first_lsn) + " where " + std::to_string(expect_first) +
                    " was expected");
  }
  // The header read also read ahead, untagged: let the first record be read again under a tag.
  scan->DiscardReadAhead();
  file_ = std::move(file);
  scan_ = std::move(scan);
  segment_name_ = name;
  segment_epoch_ = h.epoch;
  return Status::Ok();
}

Status Reader::Position(Lsn from) {
  DRFS_ASSIGN_OR_RETURN(auto segs, ListSegments(dir_, fs_));
  if (segs.empty()) return NotFound("changelog " + dir_ + " has no segments");
  if (from == 0) from = segs.front().first_lsn;
  if (from < segs.front().first_lsn) {
    return OutOfRange("changelog " + dir_ + ": LSN " + std::to_string(from) +
                      " was already purged; the oldest kept is " +
                      std::to_string(segs.front().first_lsn) +
                      ". A consumer this far behind must resync from a full crawl");
  }
  size_t i = segs.size() - 1;
  while (segs[i].first_lsn > from) --i;
  Status s = OpenSegment(segs[i].name, segs[i].first_lsn);
  if (s.code() == Code::kNotFound) {
    return OutOfRange("changelog " + dir_ + ": segment " + segs[i].name +
                      " was purged while opening it; LSN " + std::to_string(from) +
                      " is no longer kept");
  }
  DRFS_RETURN_IF_ERROR(s);
  next_lsn_ = segs[i].first_lsn;
  skip_until_ = from;  // records before it are read past, not returned
  return Status::Ok();
}

bool Reader::HaveState() {
  if (!state_) {
    auto st = SharedState::OpenForReader(dir_);
    if (st.ok()) state_ = std::move(*st);
  }
  return state_ != nullptr;
}

Result<std::optional<Entry>> Reader::Next(std::chrono::milliseconds timeout) {
  const uint64_t deadline = MonotonicNs() + static_cast<uint64_t>(timeout.count()) * 1000000ull;
  for (;;) {
    if (at_end_) return std::optional<Entry>();
    // Take the sequence before reading the bound, so a publish between the two ends the wait.
    uint32_t seq = 0;
    Lsn limit = ~Lsn{0};
    const bool bounded = opts_.bound == ReaderOptions::Bound::kPublished;
    if (bounded) {
      limit = 0;
      if (HaveState()) {
        seq = state_->Sequence();
        limit = state_->visible();
      }
      // Read-ahead made under an older limit is trusted only up to it (format.h).
      if (scan_->read_tag() < next_lsn_) scan_->DiscardReadAhead();
      scan_->set_read_tag(limit);
    }
    if (next_lsn_ <= limit) {
      Entry e;
      uint64_t offset = scan_->offset();
      std::string why;
      auto o = scan_->Next(&e.record, &why);
      if (o == SegmentScanner::Outcome::kRecord) {
        if (e.record.lsn != next_lsn_) {
          return CorruptAt("record has LSN " + std::to_string(e.record.lsn) + " where " +
                           std::to_string(next_lsn_) + " was expected");
        }
        ++next_lsn_;
        if (e.record.lsn < skip_until_) continue;
        e.epoch = segment_epoch_;
        e.segment = segment_name_;
        e.offset = offset;
        return std::optional<Entry>(std::move(e));
      }
      // No record here: it is in the next segment if the writer rolled over.
      std::string next_name = SegmentFileName(next_lsn_);
      if (o == SegmentScanner::Outcome::kEnd && next_name != segment_name_ &&
          fs_->Exists(JoinPath(dir_, next_name))) {
        Status s = OpenSegment(next_name, next_lsn_);
        if (s.code() == Code::kNotFound) {
          return OutOfRange("changelog " + dir_ + ": segment " + next_name +
                            " was purged before this reader got to it");
        }
        DRFS_RETURN_IF_ERROR(s);
        continue;
      }
      if (bounded) {
        // The writer published this LSN, so its bytes are complete on disk.
        if (o == SegmentScanner::Outcome::kCorrupt) return CorruptAt(why);
        return CorruptAt("LSN " + std::to_string(next_lsn_) +
                         " was published but is missing from the journal (" +
                         (o == SegmentScanner::Outcome::kEnd ? std::string("end of segment")
                                                             : why) +
                         ")");
      }
      // kOnDisk: the end, a torn tail, or corruption.
      if (o != SegmentScanner::Outcome::kEnd) {
        DRFS_ASSIGN_OR_RETURN(bool more, scan_->ValidRecordAfter(next_lsn_ - 1));
        if (more) return CorruptAt(why + ", and valid records follow it");
        DRFS_ASSIGN_OR_RETURN(auto segs, ListSegments(dir_, fs_));
        if (!segs.empty() && segs.back().name != segment_name_) {
          return CorruptAt(why + ", in a segment that is not the newest");
        }
      }
      if (o != SegmentScanner::Outcome::kEnd) {
        torn_tail_ = "segment " + segment_name_ + " ends in an incomplete record at offset " +
                     std::to_string(scan_->offset()) + " after LSN " +
                     std::to_string(next_lsn_ - 1) + " (" + why +
                     "); the writer cuts it off when it next opens the journal";
      }
      at_end_ = true;
      return std::optional<Entry>();
    }
    uint64_t now = MonotonicNs();
    if (now >= deadline) return std::optional<Entry>();
    auto left = std::chrono::milliseconds((deadline - now + 999999) / 1000000);
    if (bounded && state_) {
      state_->WaitForChange(seq, left);
    } else {
      // No writer has opened the journal yet; look again shortly.
      std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(10)));
    }
  }
}

}  // namespace drfs::changelog
