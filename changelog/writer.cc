#include "changelog/writer.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <strings.h>

#include "changelog/cursor.h"
#include "changelog/journal.h"
#include "changelog/shared_state.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "common/time.h"

namespace drfs::changelog {

namespace {

Status Injected(std::string_view probe, const std::string& what) {
  return Status(Code::kUnavailable,
                what + ": I/O error injected by failure probe " + std::string(probe), EIO);
}

}  // namespace

// An appender waiting for its record. Each has its own condition variable, so that a finished
// flush wakes exactly the appenders it finished plus the one that leads the next flush, not
// every appender waiting (with 16 appenders and a batch of 6, that was 10 wake-ups for nothing).
struct Writer::Waiter {
  Lsn lsn = 0;
  bool done = false;
  Status status;
  std::condition_variable cv;
};

std::string_view FsyncPolicyName(FsyncPolicy p) {
  switch (p) {
    case FsyncPolicy::kAlways: return "always";
    case FsyncPolicy::kInterval: return "interval";
    case FsyncPolicy::kNever: return "never";
  }
  return "?";
}

std::optional<FsyncPolicy> ParseFsyncPolicy(std::string_view s) {
  for (auto p : {FsyncPolicy::kAlways, FsyncPolicy::kInterval, FsyncPolicy::kNever}) {
    if (s == FsyncPolicyName(p)) return p;
  }
  return std::nullopt;
}

Writer::Writer(std::string dir, const WriterOptions& options)
    : dir_(std::move(dir)), opts_(options), fs_(options.fs) {}

Result<std::unique_ptr<Writer>> Writer::Open(const std::string& dir,
                                             const WriterOptions& options) {
  if (options.segment_max_bytes < 4096) {
    return InvalidArgument("changelog segment size limit must be at least 4096 bytes");
  }
  if (options.fsync_policy == FsyncPolicy::kInterval &&
      (options.fsync_interval_ms < 1 || options.fsync_interval_ms > 60000)) {
    return InvalidArgument("changelog fsync interval must be 1-60000 ms");
  }
  if (options.segment_max_age_ms < 1) {
    return InvalidArgument("changelog segment age limit must be at least 1 ms");
  }
  std::unique_ptr<Writer> w(new Writer(dir, options));
  Status s = w->Recover();
  if (!s.ok()) return s;
  w->interval_thread_ = std::thread(&Writer::IntervalSyncLoop, w.get());
  return w;
}

Writer::~Writer() {
  Status s = Close();
  if (!s.ok()) DRFS_LOG(Error) << "changelog " << dir_ << ": close failed: " << s.ToString();
}

Status Writer::Recover() {
  DRFS_RETURN_IF_ERROR(fs_->CreateDirs(dir_));
  std::string lock_path = JoinPath(dir_, kLockFileName);
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) return ErrnoStatus(errno, "open " + lock_path);
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    if (err == EWOULDBLOCK) {
      WriterInfo other = ProbeWriter(dir_);
      return FailedPrecondition("changelog " + dir_ + " is in use by another process" +
                                (other.pid ? " (pid " + std::to_string(other.pid) + ")" : "") +
                                "; stop that brick first, or give this one its own directory");
    }
    return ErrnoStatus(err, "lock " + lock_path);
  }

  // A crash in the middle of a rollover can leave a half-made segment under a .tmp name.
  DRFS_ASSIGN_OR_RETURN(auto names, fs_->ListDir(dir_));
  for (const auto& n : names) {
    if (n.ends_with(std::string(kSegmentSuffix) + ".tmp")) {
      DRFS_LOG(Warn) << "changelog " << dir_ << ": removing unfinished segment " << n;
      DRFS_RETURN_IF_ERROR(fs_->Remove(JoinPath(dir_, n)));
    }
  }

  DRFS_ASSIGN_OR_RETURN(auto segs, ListSegments(dir_, fs_));
  recovery_.segments = segs.size();
  if (segs.empty()) {
    brick_id_ = opts_.brick_id.is_null() ? Gfid::Random() : opts_.brick_id;
    epoch_ = opts_.epoch == 0 ? 1 : opts_.epoch;
    DRFS_RETURN_IF_ERROR(Roll(1, epoch_));
    recovery_.segments = 1;
  } else {
    Lsn expect = 0;
    uint64_t prev_epoch = 0;
    for (size_t i = 0; i < segs.size(); ++i) {
      const bool last = i + 1 == segs.size();
      DRFS_ASSIGN_OR_RETURN(auto file, fs_->OpenReadable(segs[i].path));
      SegmentScanner scan(file.get());
      SegmentHeader h;
      auto corrupt = [&](const std::string& what) {
        return DataLoss("changelog segment " + segs[i].path + " is corrupt at offset " +
                        std::to_string(scan.offset()) + ": " + what + "; last good LSN " +
                        std::to_string(expect == 0 ? 0 : expect - 1) +
                        ". The journal was not opened and nothing was changed: copy " + dir_ +
                        " aside for analysis, then resync this brick's geo-replication from a "
                        "full crawl");
      };
      if (Status hs = scan.ReadHeader(&h); !hs.ok()) return corrupt(hs.message());
      if (h.first_lsn != segs[i].first_lsn) {
        return corrupt("header says first LSN " + std::to_string(h.first_lsn) +
                       " but the file is named for " + std::to_string(segs[i].first_lsn));
      }
      if (i == 0) {
        brick_id_ = h.brick_id;
        if (!opts_.brick_id.is_null() && opts_.brick_id != h.brick_id) {
          return FailedPrecondition("changelog " + dir_ + " belongs to brick " +
                                    h.brick_id.ToString() + ", not " +
                                    opts_.brick_id.ToString() +
                                    "; is this directory exported by another brick?");
        }
      } else {
        if (h.brick_id != brick_id_) {
          return corrupt("segment belongs to brick " + h.brick_id.ToString() + ", the journal to " +
                         brick_id_.ToString());
        }
        if (h.first_lsn != expect) {
          return corrupt("LSNs " + std::to_string(expect) + ".." +
                         std::to_string(h.first_lsn - 1) + " are missing before this segment");
        }
        if (h.epoch < prev_epoch) {
          return corrupt("epoch " + std::to_string(h.epoch) + " is older than the previous " +
                         "segment's " + std::to_string(prev_epoch));
        }
      }
      prev_epoch = h.epoch;
      expect = h.first_lsn;
      if (!last && !opts_.verify_all_segments) {
        expect = segs[i + 1].first_lsn;
        continue;
      }
      Record r;
      std::string why;
      SegmentScanner::Outcome o;
      while ((o = scan.Next(&r, &why)) == SegmentScanner::Outcome::kRecord) {
        if (r.lsn != expect) {
          return corrupt("record has LSN " + std::to_string(r.lsn) + " where " +
                         std::to_string(expect) + " was expected");
        }
        ++expect;
        ++recovery_.records_verified;
      }
      uint64_t good_end = scan.offset();
      if (o != SegmentScanner::Outcome::kEnd) {
        if (!last) return corrupt(why);
        DRFS_ASSIGN_OR_RETURN(bool more, scan.ValidRecordAfter(expect - 1));
        if (more) return corrupt(why + ", and valid records follow it");
        DRFS_ASSIGN_OR_RETURN(uint64_t size, file->Size());
        recovery_.torn_bytes_truncated = size - good_end;
        recovery_.torn_segment = segs[i].path;
        recovery_.torn_reason = why;
      }
      if (last) {
        DRFS_ASSIGN_OR_RETURN(file_, fs_->OpenWritable(segs[i].path,
                                                        FileSystem::OpenMode::kAppendExisting));
        if (recovery_.torn_bytes_truncated > 0) {
          DRFS_LOG(Warn) << "changelog " << dir_ << ": cut a torn tail of "
                         << recovery_.torn_bytes_truncated << " bytes off " << segs[i].name
                         << " at offset " << good_end << " (" << recovery_.torn_reason
                         << "); the last complete record is LSN " << expect - 1;
          DRFS_RETURN_IF_ERROR(file_->Truncate(good_end));
        }
        // Records that survived a kill -9 may sit only in the page cache; make them durable
        // before anyone may read them.
        DRFS_RETURN_IF_ERROR(file_->Sync());
        segment_first_lsn_ = h.first_lsn;
        segment_epoch_ = h.epoch;
        segment_created_ns_ = h.created_ns;
        segment_has_records_ = expect > h.first_lsn;
      }
    }
    next_lsn_ = expect;
    written_lsn_ = synced_lsn_ = expect - 1;
    if (opts_.epoch != 0 && opts_.epoch < segment_epoch_) {
      return FailedPrecondition("changelog " + dir_ + " is already at epoch " +
                                std::to_string(segment_epoch_) + "; refusing to write as epoch " +
                                std::to_string(opts_.epoch) + " (this brick has been fenced)");
    }
    epoch_ = opts_.epoch == 0 ? segment_epoch_ : opts_.epoch;
  }

  auto cursors = CursorStore(dir_, fs_).List();
  if (!cursors.ok()) {
    DRFS_LOG(Warn) << "changelog " << dir_ << ": " << cursors.status().message();
  } else {
    for (const auto& c : *cursors) {
      if (c.lsn > written_lsn_) {
        return DataLoss("changelog " + dir_ + " ends at LSN " + std::to_string(written_lsn_) +
                        " but cursor '" + c.name + "' has already consumed up to LSN " +
                        std::to_string(c.lsn) +
                        ": journal records are missing (segments deleted or restored from an "
                        "old copy?). Resync this brick's geo-replication from a full crawl");
      }
    }
  }

  DRFS_ASSIGN_OR_RETURN(state_, SharedState::CreateForWriter(dir_, written_lsn_,
                                                             static_cast<uint64_t>(::getpid())));
  published_lsn_ = written_lsn_;
  return Status::Ok();
}

Status Writer::Roll(Lsn first_lsn, uint64_t epoch) {
  SegmentHeader h;
  h.brick_id = brick_id_;
  h.epoch = epoch;
  h.first_lsn = first_lsn;
  h.created_ns = NowNs();
  std::string path = JoinPath(dir_, SegmentFileName(first_lsn));
  std::string tmp = path + ".tmp";
  if (fs_->Exists(tmp)) DRFS_RETURN_IF_ERROR(fs_->Remove(tmp));
  {
    DRFS_ASSIGN_OR_RETURN(auto f, fs_->OpenWritable(tmp, FileSystem::OpenMode::kCreateNew));
    Status s = f->Append(EncodeSegmentHeader(h));
    if (s.ok()) s = f->Sync();
    if (s.ok()) s = f->Close();
    if (s.ok() && DRFS_FAILPOINT("changelog.roll.after_create")) {
      s = Injected("changelog.roll.after_create", "create segment " + tmp);
    }
    if (!s.ok()) {
      fs_->Remove(tmp).IgnoreError();
      return s;
    }
  }
  DRFS_RETURN_IF_ERROR(fs_->Rename(tmp, path));
  DRFS_RETURN_IF_ERROR(fs_->SyncDir(dir_));
  DRFS_FAILPOINT("changelog.roll.after_rename");
  DRFS_ASSIGN_OR_RETURN(auto nf, fs_->OpenWritable(path, FileSystem::OpenMode::kAppendExisting));
  if (file_) {
    Status s = file_->Close();
    if (!s.ok()) DRFS_LOG(Warn) << "changelog " << dir_ << ": " << s.ToString();
  }
  file_ = std::move(nf);
  segment_first_lsn_ = first_lsn;
  segment_epoch_ = epoch;
  segment_created_ns_ = h.created_ns;
  segment_has_records_ = false;
  return Status::Ok();
}

bool Writer::NeedsRollLocked() const {
  if (epoch_ != segment_epoch_) return true;
  if (!segment_has_records_) return false;
  if (file_->Size() >= opts_.segment_max_bytes) return true;
  uint64_t now = NowNs();
  return now > segment_created_ns_ &&
         now - segment_created_ns_ >= opts_.segment_max_age_ms * 1000000ull;
}

void Writer::PublishLocked() {
  Lsn visible = opts_.fsync_policy == FsyncPolicy::kNever ? written_lsn_ : synced_lsn_;
  if (visible > published_lsn_) {
    published_lsn_ = visible;
    state_->Publish(visible);
  }
}

void Writer::FlushLocked(std::unique_lock<std::mutex>& l, bool sync) {
  flushing_ = true;
  std::string data;
  data.swap(buf_);
  std::deque<Waiter*> batch;
  batch.swap(pending_);
  const Lsn last = next_lsn_ - 1;
  const bool roll = !data.empty() && NeedsRollLocked();
  const bool sync_old = roll && synced_lsn_ < written_lsn_;
  const uint64_t epoch = epoch_;
  const bool do_sync = sync && (!data.empty() || synced_lsn_ < written_lsn_);
  const Lsn first = written_lsn_ + 1;
  l.unlock();

  Status s;
  bool fatal = false;
  bool rolled = false;
  bool bytes_in_file = false;  // some of this batch reached the file and may survive a restart
  if (sync_old) {
    s = file_->Sync();
    fatal = !s.ok();
  }
  if (s.ok() && roll) {
    s = Roll(first, epoch);
    rolled = s.ok();
  }
  if (s.ok() && !data.empty()) {
    uint64_t before = file_->Size();
    s = DRFS_FAILPOINT("changelog.flush.write")
            ? Injected("changelog.flush.write", "write " + file_->path())
            : file_->Append(data);
    bytes_in_file = true;
    if (!s.ok()) {
      Status t = file_->Truncate(before);
      if (!t.ok()) {
        fatal = true;
        s = t.WithContext("after a failed write (" + s.message() + "), cutting it back failed");
      } else {
        bytes_in_file = false;
      }
    }
  }
  if (s.ok()) DRFS_FAILPOINT("changelog.flush.after_write");
  if (s.ok() && do_sync) {
    s = DRFS_FAILPOINT("changelog.flush.sync")
            ? Injected("changelog.flush.sync", "fdatasync " + file_->path())
            : file_->Sync();
    fatal = !s.ok();
  }
  if (s.ok()) DRFS_FAILPOINT("changelog.flush.after_sync");

  l.lock();
  flushing_ = false;
  if (rolled) ++stats_.rollovers;
  if (s.ok()) {
    if (!data.empty()) {
      written_lsn_ = last;
      segment_has_records_ = true;
      ++stats_.flushes;
    }
    if (do_sync) {
      synced_lsn_ = written_lsn_;
      ++stats_.syncs;
    }
    PublishLocked();
    for (Waiter* w : batch) {
      w->done = true;
      w->cv.notify_one();  // under mu_: the waiter cannot return (and destroy w) before we unlock
    }
  } else {
    Status err = s.WithContext("changelog " + dir_);
    if (fatal) {
      fatal_ = Status(Code::kFailedPrecondition,
                      err.message() + "; the journal refuses appends until the brick restarts " +
                          "and re-reads it from disk",
                      s.sys_errno());
      err = fatal_;
      DRFS_LOG(Error) << fatal_.message();
    } else {
      DRFS_LOG(Warn) << err.message() << "; " << batch.size() + pending_.size()
                     << " append(s) failed and were not journaled";
    }
    // This batch's bytes may still be read back after a restart: its outcome is unknown.
    const Status batch_err =
        bytes_in_file ? Status(Code::kDataLoss,
                               err.message() + " (the records were written but not made "
                                               "durable: whether they survive is unknown until "
                                               "the journal is reopened)",
                               s.sys_errno())
                      : err;
    // Records queued behind the failed batch would leave an LSN gap: fail them too. They were
    // never written, so for them the failure is definite.
    for (Waiter* w : batch) w->status = batch_err, w->done = true, w->cv.notify_one();
    for (Waiter* w : pending_) w->status = err, w->done = true, w->cv.notify_one();
    pending_.clear();
    buf_.clear();
    next_lsn_ = written_lsn_ + 1;
  }
  // The oldest appender still waiting leads the next flush.
  if (!pending_.empty()) pending_.front()->cv.notify_one();
  cv_.notify_all();  // Sync(), Close() and the interval thread wait on cv_
}

Result<Lsn> Writer::Append(const Record& record) {
  DRFS_RETURN_IF_ERROR(ValidateRecord(record).WithContext("changelog " + dir_));
  Record r = record;
  std::unique_lock<std::mutex> l(mu_);
  if (closed_) return FailedPrecondition("changelog " + dir_ + " is closed");
  if (!fatal_.ok()) return fatal_;
  Waiter w;
  w.lsn = r.lsn = next_lsn_++;
  if (r.timestamp_ns == 0) r.timestamp_ns = NowNs();
  AppendFrame(r, &buf_);
  pending_.push_back(&w);
  ++stats_.appends;
  const bool sync = opts_.fsync_policy == FsyncPolicy::kAlways;
  while (!w.done) {
    if (!flushing_) {
      FlushLocked(l, sync);
    } else {
      w.cv.wait(l);
    }
  }
  if (!w.status.ok()) return w.status;
  return w.lsn;
}

Status Writer::Sync() {
  std::unique_lock<std::mutex> l(mu_);
  Lsn target = next_lsn_ - 1;
  while (synced_lsn_ < target) {
    if (!fatal_.ok()) return fatal_;
    if (!flushing_) {
      FlushLocked(l, true);
    } else {
      cv_.wait(l);
    }
    target = std::min(target, next_lsn_ - 1);  // failed appends drop out of the target
  }
  return fatal_;
}

Status Writer::SetEpoch(uint64_t epoch) {
  std::lock_guard<std::mutex> l(mu_);
  if (epoch < epoch_) {
    return FailedPrecondition("changelog " + dir_ + " is at epoch " + std::to_string(epoch_) +
                              "; refusing to go back to epoch " + std::to_string(epoch));
  }
  epoch_ = epoch;
  return Status::Ok();
}

Result<PurgeResult> Writer::Purge() {
  return changelog::Purge(dir_, fs_, opts_.keep_unclaimed_bytes);
}

void Writer::IntervalSyncLoop() {
  std::unique_lock<std::mutex> l(mu_);
  const bool interval = opts_.fsync_policy == FsyncPolicy::kInterval;
  uint64_t rollovers_seen = stats_.rollovers;
  while (!closed_) {
    // Wake for the next interval sync, or (any policy) every second to run retention after a
    // rollover; retention runs here so that no appender waits for it.
    auto wait = std::chrono::milliseconds(interval ? opts_.fsync_interval_ms : 1000);
    cv_.wait_for(l, wait, [&] { return closed_; });
    if (closed_) break;
    if (interval && fatal_.ok() && (synced_lsn_ < written_lsn_ || !buf_.empty())) {
      while (flushing_ && !closed_) cv_.wait(l);
      if (!closed_ && fatal_.ok()) FlushLocked(l, true);
    }
    if (stats_.rollovers != rollovers_seen) {
      rollovers_seen = stats_.rollovers;
      l.unlock();
      auto res = Purge();
      if (!res.ok()) {
        DRFS_LOG(Warn) << "changelog " << dir_ << ": retention failed: "
                       << res.status().ToString();
      }
      l.lock();
    }
  }
}

Status Writer::Close() {
  std::unique_lock<std::mutex> l(mu_);
  if (closed_) return Status::Ok();
  closed_ = true;
  cv_.notify_all();
  while (flushing_ || !pending_.empty()) cv_.wait(l);
  l.unlock();
  if (interval_thread_.joinable()) interval_thread_.join();
  l.lock();
  Status s = fatal_;
  if (s.ok() && synced_lsn_ < written_lsn_) {
    FlushLocked(l, true);
    s = fatal_;
  }
  if (file_) {
    Status c = file_->Close();
    if (s.ok()) s = c;
  }
  if (lock_fd_ >= 0) {
    ::close(lock_fd_);  // releases the flock
    lock_fd_ = -1;
  }
  return s;
}

Lsn Writer::last_lsn() const {
  std::lock_guard<std::mutex> l(mu_);
  return next_lsn_ - 1;
}

Lsn Writer::written_lsn() const {
  std::lock_guard<std::mutex> l(mu_);
  return written_lsn_;
}

Lsn Writer::visible_lsn() const {
  std::lock_guard<std::mutex> l(mu_);
  return published_lsn_;
}

uint64_t Writer::epoch() const {
  std::lock_guard<std::mutex> l(mu_);
  return epoch_;
}

Writer::Stats Writer::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

}  // namespace drfs::changelog
