#include "changelog/journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>

#include "changelog/shared_state.h"
#include "common/log.h"

namespace drfs::changelog {

std::string JournalDirForBrick(const std::string& brick_dir) {
  return JoinPath(JoinPath(brick_dir, ".drfs"), "changelog");
}

std::string ResolveJournalDir(const std::string& dir, FileSystem* fs) {
  std::string inner = JournalDirForBrick(dir);
  return fs->Exists(inner) ? inner : dir;
}

Result<std::vector<SegmentFile>> ListSegments(const std::string& dir, FileSystem* fs) {
  auto names = fs->ListDir(dir);
  if (!names.ok()) {
    if (names.status().code() == Code::kNotFound) {
      return NotFound("no changelog at " + dir + " (give a brick directory or its " +
                      ".drfs/changelog directory)");
    }
    return names.status();
  }
  std::vector<SegmentFile> out;
  for (const auto& n : *names) {
    if (auto lsn = ParseSegmentFileName(n)) out.push_back({n, JoinPath(dir, n), *lsn});
  }
  std::sort(out.begin(), out.end(),
            [](const SegmentFile& a, const SegmentFile& b) { return a.first_lsn < b.first_lsn; });
  return out;
}

WriterInfo ProbeWriter(const std::string& dir) {
  WriterInfo info;
  std::string path = JoinPath(dir, kLockFileName);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return info;
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0) {
    info.running = true;
  } else {
    ::flock(fd, LOCK_UN);
  }
  ::close(fd);
  if (info.running) {
    if (auto st = SharedState::OpenForReader(dir); st.ok()) info.pid = (*st)->writer_pid();
  }
  return info;
}

Result<JournalStatus> Inspect(const std::string& dir, FileSystem* fs) {
  JournalStatus js;
  js.dir = dir;
  js.writer = ProbeWriter(dir);
  DRFS_ASSIGN_OR_RETURN(auto segs, ListSegments(dir, fs));
  for (size_t i = 0; i < segs.size(); ++i) {
    SegmentInfo si;
    si.name = segs[i].name;
    DRFS_ASSIGN_OR_RETURN(auto file, fs->OpenReadable(segs[i].path));
    DRFS_ASSIGN_OR_RETURN(si.bytes, file->Size());
    SegmentScanner scan(file.get());
    SegmentHeader h;
    if (Status hs = scan.ReadHeader(&h); !hs.ok()) {
      return hs.WithContext("changelog segment " + segs[i].path);
    }
    si.first_lsn = h.first_lsn;
    si.epoch = h.epoch;
    si.created_ns = h.created_ns;
    si.brick_id = h.brick_id;
    if (i + 1 < segs.size()) {
      si.last_lsn = segs[i + 1].first_lsn - 1;
    } else {
      // The newest segment: count its records (bounded by what a running writer published).
      si.last_lsn = h.first_lsn - 1;
      Record r;
      std::string why;
      for (;;) {
        auto o = scan.Next(&r, &why);
        if (o != SegmentScanner::Outcome::kRecord) {
          if (o != SegmentScanner::Outcome::kEnd && !js.writer.running) {
            js.torn_tail = "after LSN " + std::to_string(si.last_lsn) + " at offset " +
                           std::to_string(scan.offset()) + ": " + why;
          }
          break;
        }
        si.last_lsn = r.lsn;
      }
    }
    js.total_bytes += si.bytes;
    js.segments.push_back(si);
  }
  if (!js.segments.empty()) {
    js.first_lsn = js.segments.front().first_lsn;
    js.last_lsn = js.segments.back().last_lsn;
  }
  js.visible_lsn = js.last_lsn;
  if (js.writer.running) {
    if (auto st = SharedState::OpenForReader(dir); st.ok()) js.visible_lsn = (*st)->visible();
  }
  DRFS_ASSIGN_OR_RETURN(js.cursors, CursorStore(dir, fs).List());
  return js;
}

Result<PurgeResult> Purge(const std::string& dir, FileSystem* fs, uint64_t keep_unclaimed_bytes) {
  // One purge at a time per process; purges from other processes only race to delete the same
  // files, which is harmless.
  static std::mutex mu;
  std::lock_guard<std::mutex> l(mu);
  PurgeResult res;
  DRFS_ASSIGN_OR_RETURN(auto cursors, CursorStore(dir, fs).List());
  DRFS_ASSIGN_OR_RETURN(auto segs, ListSegments(dir, fs));
  if (segs.empty()) return res;
  res.oldest_kept_lsn = segs.front().first_lsn;
  // What bounds the purge: the slowest cursor's LSN, or with none, the first record of the
  // oldest segment that must stay for the newer ones to hold keep_unclaimed_bytes.
  Lsn keep_from = 0;
  std::string held_by;
  if (!cursors.empty()) {
    auto slowest = std::min_element(cursors.begin(), cursors.end(), [](auto& a, auto& b) {
      return a.lsn < b.lsn;
    });
    keep_from = slowest->lsn + 1;
    held_by = slowest->name;
  } else if (keep_unclaimed_bytes == 0) {
    res.held_by = "(no cursor registered)";
    return res;
  } else {
    uint64_t newer = 0;
    keep_from = segs.back().first_lsn;
    for (size_t i = segs.size(); i-- > 0;) {
      auto size = fs->FileSize(segs[i].path);
      newer += size.ok() ? *size : 0;
      keep_from = segs[i].first_lsn;
      if (newer >= keep_unclaimed_bytes) break;
    }
    held_by = "(no cursor registered: keeping the newest " + std::to_string(keep_unclaimed_bytes) +
              " bytes)";
  }
  bool deleted_any = false;
  // Never the newest segment: the writer appends to it. Every other one has a successor
  // whose first LSN bounds its last record.
  for (size_t i = 0; i + 1 < segs.size(); ++i) {
    Lsn last = segs[i + 1].first_lsn - 1;
    if (last >= keep_from) {
      res.held_by = held_by;
      break;
    }
    auto size = fs->FileSize(segs[i].path);
    Status s = fs->Remove(segs[i].path);
    if (!s.ok() && s.code() != Code::kNotFound) return s.WithContext("purge changelog segment");
    if (s.ok()) {
      deleted_any = true;
      res.deleted.push_back(segs[i].name);
      if (size.ok()) res.bytes_freed += *size;
    }
    res.oldest_kept_lsn = segs[i + 1].first_lsn;
  }
  if (deleted_any) {
    DRFS_RETURN_IF_ERROR(fs->SyncDir(dir));
    DRFS_LOG(Info) << "changelog " << dir << ": purged " << res.deleted.size() << " segment(s), "
                   << res.bytes_freed << " bytes; oldest kept LSN " << res.oldest_kept_lsn;
  }
  return res;
}

}  // namespace drfs::changelog
