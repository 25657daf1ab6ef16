// The FUSE file system over a VolumeClient. See fuse.h for what it promises; the notes here are
// about how the kernel's protocol maps onto the client.
#define FUSE_USE_VERSION 312
#include "volume/fuse.h"

#include <dirent.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fs.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "common/log.h"
#include "common/thread_pool.h"
#include "volume/detail/inode_table.h"

namespace drfs::volume {

using detail::GfidToIno;
using detail::InodeTable;

namespace {

// libfuse reports why a mount failed only through its log; keep the last error for the Status.
std::mutex g_fuse_log_mu;
std::string g_fuse_last_error;

void FuseLog(enum fuse_log_level level, const char* fmt, va_list ap) {
  char buf[1024];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  std::string msg(buf);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  if (level <= FUSE_LOG_ERR) {
    std::lock_guard<std::mutex> l(g_fuse_log_mu);
    g_fuse_last_error = msg;
  }
  if (level <= FUSE_LOG_ERR) {
    DRFS_LOG(Error) << "libfuse: " << msg;
  } else if (level <= FUSE_LOG_NOTICE) {
    DRFS_LOG(Info) << "libfuse: " << msg;
  } else {
    DRFS_LOG(Debug) << "libfuse: " << msg;
  }
}

std::string TakeFuseError() {
  std::lock_guard<std::mutex> l(g_fuse_log_mu);
  std::string s = std::move(g_fuse_last_error);
  g_fuse_last_error.clear();
  return s;
}

int ErrnoOf(const Status& s) { return s.sys_errno() > 0 ? s.sys_errno() : EIO; }

timespec ToTimespec(int64_t ns) {
  timespec t;
  t.tv_sec = static_cast<time_t>(ns / 1000000000);
  t.tv_nsec = static_cast<long>(ns % 1000000000);
  if (t.tv_nsec < 0) {
    t.tv_nsec += 1000000000;
    --t.tv_sec;
  }
  return t;
}

int64_t ToNs(const timespec& t) { return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; }

struct stat ToStat(const Iatt& a) {
  struct stat st;
  std::memset(&st, 0, sizeof st);
  st.st_ino = GfidToIno(a.gfid);
  st.st_mode = a.mode;
  st.st_nlink = a.nlink;
  st.st_uid = a.uid;
  st.st_gid = a.gid;
  st.st_rdev = a.rdev;
  st.st_size = static_cast<off_t>(a.size);
  st.st_blocks = static_cast<blkcnt_t>(a.blocks);
  st.st_blksize = a.blksize ? a.blksize : 4096;
  st.st_atim = ToTimespec(a.atime_ns);
  st.st_mtim = ToTimespec(a.mtime_ns);
  st.st_ctim = ToTimespec(a.ctime_ns);
  return st;
}

// The kernel hands FUSE every xattr name; a local file system knows user., trusted. and
// security. and refuses other namespaces with EOPNOTSUPP. system.* is POSIX ACLs, which would be
// stored on the bricks as xattrs of the backend files, where they mean nothing to the kernel
// of the mount (it checks permissions from mode bits): refused openly too.
bool XattrNamespaceOk(const char* name) {
  return std::strncmp(name, "user.", 5) == 0 || std::strncmp(name, "trusted.", 8) == 0 ||
         std::strncmp(name, "security.", 9) == 0;
}

constexpr char kSelinuxXattr[] = "security.selinux";

// Escapes a value for libfuse's comma-separated -o list.
std::string EscapeOpt(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ',' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// The device number of the drfs mount at `mountpoint` (from /proc/self/mountinfo): the name of
// its connection under /sys/fs/fuse/connections.
std::optional<dev_t> MountDevice(const std::string& mountpoint) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::optional<dev_t> dev;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, majmin, root, mp;
    ls >> id >> parent >> majmin >> root >> mp;
    std::string field;
    while (ls >> field && field != "-") {
    }
    std::string fstype;
    ls >> fstype;
    if (mp != mountpoint || fstype != "fuse.drfs") continue;
    unsigned ma = 0, mi = 0;
    if (std::sscanf(majmin.c_str(), "%u:%u", &ma, &mi) == 2) dev = makedev(ma, mi);  // the last wins
  }
  return dev;
}

}  // namespace

struct FuseMount::Impl {
  // What fi->fh holds for an open file.
  struct FileHandle {
    Gfid gfid;
    bool writable = false;
    std::atomic<bool> wrote{false};
  };
  // Files open through this mount. A file unlinked (or renamed over) while open here is renamed
  // to a hidden name instead, and removed at its last close, as NFS clients do: the bricks
  // address files by gfid and drop a gfid with its last name, so an open file must keep one.
  struct OpenFile {
    int count = 0;
    bool hidden = false;
    Gfid hidden_parent;
    std::string hidden_name;
  };
  static constexpr char kHiddenPrefix[] = ".drfs-unlinked-";

  // Open files and directories, by the id in fi->fh. The kernel may send release while a
  // request on the handle is still being served here (one it gave up waiting for, or one whose
  // reply we just sent), so each request holds a reference of its own.
  template <typename T>
  class Handles {
   public:
    uint64_t Add(std::shared_ptr<T> h) {
      std::lock_guard<std::mutex> l(mu_);
      const uint64_t id = next_++;
      map_[id] = std::move(h);
      return id;
    }
    std::shared_ptr<T> Get(uint64_t id) const {
      std::lock_guard<std::mutex> l(mu_);
      auto it = map_.find(id);
      return it == map_.end() ? nullptr : it->second;
    }
    std::shared_ptr<T> Remove(uint64_t id) {
      std::lock_guard<std::mutex> l(mu_);
      auto it = map_.find(id);
      if (it == map_.end()) return nullptr;
      auto h = std::move(it->second);
      map_.erase(it);
      return h;
    }

   private:
    mutable std::mutex mu_;
    uint64_t next_ = 1;
    std::unordered_map<uint64_t, std::shared_ptr<T>> map_;
  };
  // What fi->fh holds for an open directory. The kernel continues a listing from the offset it
  // got with the last entry it consumed. Offsets here are positions: 1 after ".", 2 after "..",
  // 2+k after the k-th entry from the volume, whose client cookie is cookies[k-1]. (The
  // client's cookies are the bricks' own directory offsets, which may take any value, so they
  // cannot double as offsets next to "." and "..".)
  struct DirHandle {
    Gfid gfid;
    std::mutex mu;
    std::vector<uint64_t> cookies;
  };

  Impl(VolumeClient* c, std::string mp, const FuseOptions& o)
      : client(c),
        mountpoint(std::move(mp)),
        opt(o),
        inodes(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count())) {
    if (opt.write_behind_window > 0) wb_pool = std::make_unique<ThreadPool>(4, "fuse-wb");
  }

  VolumeClient* client;
  std::string mountpoint;
  FuseOptions opt;
  InodeTable inodes;
  fuse_session* se = nullptr;
  std::optional<dev_t> device;
  std::atomic<bool> unmount_requested{false};
  std::atomic<bool> served{false};
  std::mutex open_mu;
  std::unordered_map<Gfid, OpenFile, detail::GfidHash> open_files;
  std::condition_variable open_cv;  // an entry of open_files went
  std::atomic<size_t> open_entries{0};  // open_files.size(), read without the lock
  std::mutex caps_mu;
  std::unordered_map<Gfid, std::chrono::steady_clock::time_point, detail::GfidHash> no_caps;
  Handles<FileHandle> files;
  Handles<DirHandle> dirs;

  // Write-behind (FuseOptions::write_behind_window): writes of one file answered to the kernel
  // before the bricks have them, by file. A write waits for those it overlaps (so replicas
  // apply overlapping writes in the application's order) and for room in the window; reads,
  // attributes, listings, xattrs, flush, fsync and release of the file wait for them all, so
  // nothing this mount shows is older than what it answered. The first error of a write that
  // failed after its answer is returned by the file's next write, flush or fsync (NFS's and
  // GlusterFS's write-behind behave so).
  struct Behind {
    int inflight = 0;
    size_t bytes = 0;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [start, end) in flight
    Status error;
  };
  std::mutex wb_mu;
  std::condition_variable wb_cv;
  std::unordered_map<Gfid, Behind, detail::GfidHash> behind;
  // Last: destroyed first, so writes still queued finish while the rest is alive.
  std::unique_ptr<ThreadPool> wb_pool;

  static Impl* Self(fuse_req_t req) { return static_cast<Impl*>(fuse_req_userdata(req)); }

  // Waits until no write of g is in flight. `take_error`: returns the first error such a write
  // met since the last time one was taken (and forgets it).
  Status DrainWrites(const Gfid& g, bool take_error) {
    if (!wb_pool) return Status::Ok();
    std::unique_lock<std::mutex> l(wb_mu);
    auto it = behind.find(g);
    if (it == behind.end()) return Status::Ok();
    wb_cv.wait(l, [&] {
      auto i = behind.find(g);
      return i == behind.end() || i->second.inflight == 0;
    });
    it = behind.find(g);
    if (it == behind.end() || !take_error) return Status::Ok();
    Status e = std::move(it->second.error);
    behind.erase(it);
    return e;
  }
  bool WritesInFlight(const Gfid& g) {
    if (!wb_pool) return false;
    std::lock_guard<std::mutex> l(wb_mu);
    auto it = behind.find(g);
    return it != behind.end() && it->second.inflight > 0;
  }

  std::optional<Gfid> GfidOf(fuse_req_t req, fuse_ino_t ino) {
    auto g = inodes.Find(ino);
    if (!g) fuse_reply_err(req, ESTALE);
    return g;
  }

  void Fail(fuse_req_t req, const char* op, const Status& s) {
    const int e = ErrnoOf(s);
    // ENOENT and friends are answers, not trouble.
    if (e == EIO || e == ENOTCONN || e == EROFS) {
      DRFS_LOG(Warn) << op << ": " << s.message();
    } else {
      DRFS_LOG(Debug) << op << ": " << s.message();
    }
    fuse_reply_err(req, e);
  }

  void Note(const Iatt& a) { inodes.NoteAttr(a.gfid, a.mode, a.gid); }

  fuse_entry_param Entry(const Iatt& a, uint64_t id) const {
    fuse_entry_param e;
    std::memset(&e, 0, sizeof e);
    e.ino = id;
    e.generation = inodes.generation();
    e.attr = ToStat(a);
    e.attr_timeout = opt.attr_timeout;
    e.entry_timeout = opt.entry_timeout;
    return e;
  }

  void ReplyEntry(fuse_req_t req, const Iatt& a) {
    const uint64_t id = inodes.Ref(a.gfid);
    Note(a);
    fuse_entry_param e = Entry(a, id);
    // The request was interrupted: the kernel never saw this reference.
    if (fuse_reply_entry(req, &e) != 0) inodes.Forget(id, 1);
  }

  void ReplyAttr(fuse_req_t req, const Iatt& a) {
    Note(a);
    struct stat st = ToStat(a);
    // An unlinked open file: its hidden name is not a link anyone made.
    if (open_entries > 0 && st.st_nlink > 0) {
      std::lock_guard<std::mutex> l(open_mu);
      auto it = open_files.find(a.gfid);
      if (it != open_files.end() && it->second.hidden) --st.st_nlink;
    }
    fuse_reply_attr(req, &st, opt.attr_timeout);
  }

  // The owner and mode of a new object in `parent`, as a local file system gives them.
  struct NewOwner {
    uint32_t uid, gid, mode;
  };
  Result<NewOwner> OwnerFor(fuse_req_t req, fuse_ino_t parent, const Gfid& pg, uint32_t mode,
                            bool is_dir) {
    const fuse_ctx* ctx = fuse_req_ctx(req);
    NewOwner o{ctx->uid, ctx->gid, mode};
    // The kernel applies the umask itself unless told not to (FUSE_CAP_DONT_MASK, which we
    // leave off); applying it again changes nothing and keeps this right either way.
    o.mode &= ~(static_cast<uint32_t>(ctx->umask) & 0777u);
    auto hint = inodes.Attr(parent);
    uint32_t pmode, pgid;
    if (hint) {
      pmode = hint->mode;
      pgid = hint->gid;
    } else {
      DRFS_ASSIGN_OR_RETURN(Iatt pa, client->Getattr(pg));
      Note(pa);
      pmode = pa.mode;
      pgid = pa.gid;
    }
    if (pmode & S_ISGID) {
      o.gid = pgid;
      if (is_dir) o.mode |= S_ISGID;
    }
    // As inode_init_owner(): a setgid file for a group the creator is not in loses the bit.
    if (!is_dir && (o.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) && o.uid != 0 &&
        !InGroup(req, o.gid)) {
      o.mode &= ~static_cast<uint32_t>(S_ISGID);
    }
    return o;
  }

  static bool InGroup(fuse_req_t req, uint32_t gid) {
    if (fuse_req_ctx(req)->gid == gid) return true;
    gid_t groups[256];
    const int n = fuse_req_getgroups(req, 256, groups);
    for (int i = 0; i < std::min(n, 256); ++i) {
      if (groups[i] == gid) return true;
    }
    return false;
  }

  static bool BadName(fuse_req_t req, const char* name) {
    if (std::strlen(name) > 255) {
      fuse_reply_err(req, ENAMETOOLONG);
      return true;
    }
    return false;
  }

  // ------------------------------------------------------------------ session

  static void Init(void* userdata, fuse_conn_info* conn) {
    auto* self = static_cast<Impl*>(userdata);
    // libfuse caps this to its buffer (FUSE_MAX_MAX_PAGES pages) and asks the kernel for
    // max_pages to match, so one write(2) of 1 MiB arrives as one request.
    conn->max_write = self->opt.max_write;
    // Correctness between mounts first: every write goes through (no writeback cache), and
    // truncation on open and clearing setuid bits on write are left to the kernel, which
    // sends them as setattr.
    conn->want &= ~static_cast<unsigned>(FUSE_CAP_WRITEBACK_CACHE);
    conn->want &= ~static_cast<unsigned>(FUSE_CAP_ATOMIC_O_TRUNC);
    conn->want &= ~static_cast<unsigned>(FUSE_CAP_HANDLE_KILLPRIV);
    conn->want &= ~static_cast<unsigned>(FUSE_CAP_DONT_MASK);
    if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
    // Cached pages of a file are dropped when its size or mtime is seen to change.
    if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA) conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
    DRFS_LOG(Info) << "FUSE connection ready: protocol " << conn->proto_major << "."
                   << conn->proto_minor << ", max_write " << conn->max_write;
  }

  // ------------------------------------------------------------------ names

  static void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    Impl* self = Self(req);
    if (BadName(req, name)) return;
    auto pg = self->GfidOf(req, parent);
    if (!pg) return;
    auto r = self->client->Lookup(*pg, name);
    if (!r.ok()) {
      if (ErrnoOf(r.status()) == ENOENT && self->opt.negative_timeout > 0) {
        fuse_entry_param e;
        std::memset(&e, 0, sizeof e);
        e.entry_timeout = self->opt.negative_timeout;
        fuse_reply_entry(req, &e);
        return;
      }
      return self->Fail(req, "lookup", r.status());
    }
    if (self->WritesInFlight(r->gfid)) {
      // Its size is about to change: answer with what this mount already acknowledged.
      (void)self->DrainWrites(r->gfid, false);
      r = self->client->Getattr(r->gfid);
      if (!r.ok()) return self->Fail(req, "lookup", r.status());
    }
    self->ReplyEntry(req, *r);
  }

  static void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    Self(req)->inodes.Forget(ino, nlookup);
    fuse_reply_none(req);
  }

  static void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
    Impl* self = Self(req);
    for (size_t i = 0; i < count; ++i) self->inodes.Forget(forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
  }

  static void Getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    Impl* self = Self(req);
    auto g = self->GfidOf(req, ino);
    if (!g) return;
    (void)self->DrainWrites(*g, false);
    auto r = self->client->Getattr(*g);
    if (!r.ok()) return self->Fail(req, "getattr", r.status());
    self->ReplyAttr(req, *r);
  }

  static void Setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                      fuse_file_info*) {
    Impl* self = Self(req);
    auto g = self->GfidOf(req, ino);
    if (!g) return;
    SetattrArgs a;
    if (to_set & FUSE_SET_ATTR_MODE) {
      a.valid |= brick_proto::kAttrMode;
      a.mode = attr->st_mode & 07777;
    }
    if (to_set & FUSE_SET_ATTR_UID) {
      a.valid |= brick_proto::kAttrUid;
      a.uid = attr->st_uid;
    }
    if (to_set & FUSE_SET_ATTR_GID) {
      a.valid |= brick_proto::kAttrGid;
      a.gid = attr->st_gid;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
      a.valid |= brick_proto::kAttrSize;
      a.size = static_cast<uint64_t>(attr->st_size);
    }
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
      a.valid |= brick_proto::kAttrAtimeNow;
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
      a.valid |= brick_proto::kAttrAtime;
      a.atime_ns = ToNs(attr->st_atim);
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
      a.valid |= brick_proto::kAttrMtimeNow;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
      a.valid |= brick_proto::kAttrMtime;
      a.mtime_ns = ToNs(attr->st_mtim);
    }
    // Only a ctime update (the kernel sends one with some changes it makes itself): the
    // bricks set ctime on every change anyway.
    (void)self->DrainWrites(*g, false);
    auto r = a.valid == 0 ? self->client->Getattr(*g) : self->client->Setattr(*g, a);
    if (!r.ok()) return self->Fail(req, "setattr", r.status());
    self->ReplyAttr(req, *r);
  }

  static void Readlink(fuse_req_t req, fuse_ino_t ino) {
    Impl* self = Self(req);
    auto g = self->GfidOf(req, ino);
    if (!g) return;
    auto r = self->client->Readlink(*g);
    if (!r.ok()) return self->Fail(req, "readlink", r.status());
    fuse_reply_readlink(req, r->c_str());
  }

  static void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
    Impl* self = Self(req);
    if (BadName(req, name)) return;
    auto pg = self->GfidOf(req, parent);
    if (!pg) return;
    auto o = self->OwnerFor(req, parent, *pg, mode & 07777, false);
    if (!o.ok()) return self->Fail(req, "mknod", o.status());
    auto r = self->client->Mknod(*pg, name, (mode & S_IFMT) | o->mode, rdev, o->uid, o->gid);
    if (!r.ok()) return self->Fail(req, "mknod", r.status());
    self->ReplyEntry(req, *r);
  }

  static void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    Impl* self = Self(req);
    if (BadName(req, name)) return;
    auto pg = self->GfidOf(req, parent);
    if (!pg) return;
    auto o = self->OwnerFor(req, parent, *pg, mode & 07777, true);
    if (!o.ok()) return self->Fail(req, "mkdir", o.status());
    auto r = self->client->Mkdir(*pg, name, o->mode, o->uid, o->gid);
    if (!r.ok()) return self->Fail(req, "mkdir", r.status());
    if ((o->mode & S_ISGID) && !(r->mode & S_ISGID)) {
      // A brick that made the directory without the setgid bit (mkdir(2) ignores it): set it,
      // so the directory passes its group on as its parent did.
      SetattrArgs a;
      a.valid = brick_proto::kAttrMode;
      a.mode = (r->mode & 07777) | S_ISGID;
      auto fixed = self->client->Setattr(r->gfid, a);
      if (!fixed.ok()) return self->Fail(req, "mkdir (setgid)", fixed.status());
      r = std::move(fixed);
    }
    self->ReplyEntry(req, *r);
  }

  static void Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
    Impl* self = Self(req);
    if (BadName(req, name)) return;
    auto pg = self->GfidOf(req, parent);
    if (!pg) return;
    auto o = self->OwnerFor(req, parent, *pg, 0777, false);
    if (!o.ok()) return self->Fail(req, "symlink", o.status());
    auto r = self->client->Symlink(*pg, name, link, o->uid, o->gid);
    if (!r.ok()) return self->Fail(req, "symlink", r.status());
    self->ReplyEntry(req, *r);
  }

  static void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
    Impl* self = Self(req);
    if (BadName(req, newname)) return;
    auto g = self->GfidOf(req, ino);
    if (!g) return;
    auto npg = self->GfidOf(req, newparent);
    if (!npg) return;
    auto r = self->client->Link(*g, *npg, newname);
    if (!r.ok()) return self->Fail(req, "link", r.status());
    self->ReplyEntry(req, *r);
  }

  // If (parent, name) is the last name of a file open through this mount, renames it to its
  // hidden name and returns the file's gfid (null otherwise); an error when it is that hidden
  // name already (EBUSY, as NFS).
  Result<Gfid> HideIfOpen(const Gfid& parent, const std::string& name) {
    if (open_entries == 0) return Gfid();
    auto r = client->Lookup(parent, name);
    if (!r.ok() || !S_ISREG(r->mode) || r->nlink > 1) return Gfid();  // the op itself will tell
    {
      std::unique_lock<std::mutex> l(open_mu);
      auto it = open_files.find(r->gfid);
      if (it == open_files.end()) return Gfid();
      if (it->second.hidden) {
        // Its hidden name. The kernel sends the release of a file after close(2) returns, so
        // `rm -rf` right after the last close can meet a hidden file on its way out: wait for
        // that release a moment (it removes the name) before calling the file busy.
        const Gfid g = r->gfid;
        if (open_cv.wait_for(l, std::chrono::seconds(2),
                             [&] { return open_files.find(g) == open_files.end(); })) {
          return g;
        }
        return Status(Code::kFailedPrecondition, name + " is a file still open here", EBUSY);
      }
    }
    const std::string hidden = kHiddenPrefix + r->gfid.ToString();
    DRFS_RETURN_IF_ERROR(client->Rename(parent, name, parent, hidden, 0));
    bool closed = false;
    {
      std::lock_guard<std::mutex> l(open_mu);
      auto it = open_files.find(r->gfid);
      if (it == open_files.end()) {
        closed = true;
      } else {
        it->second.hidden = true;
        it->second.hidden_parent = parent;
        it->second.hidden_name = hidden;
      }
    }
    if (closed) {  // its last close came meanwhile
      Status s = client->Unlink(parent, hidden);
      if (!s.ok()) DRFS_LOG(Warn) << "cannot remove " << hidden << ": " << s.message();
    }
    return r->gfid;
  }

  static void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    Impl* self = Self(req);
    auto pg = self->GfidOf(req, parent);
    if (!pg) return;
    auto hid = self->HideIfOpen(*pg, name);
    if (!hid.ok()) return self->Fail(req, "unlink", hid.status());
    if (!hid->is_null()) {
      fuse_reply_err(req, 0);
      return;
    }
    Status s = self->client->Unlink(*pg, name);
    if (!s.ok()) return self->Fail(req, "unlink", s);
    fuse_reply_err(req, 0);
  }

  static void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    Impl* self = Self(req);
    auto pg = self->GfidOf(req, parent);
    if (!pg) return;
    Status s = self->client->Rmdir(*pg, name);
    if (!s.ok()) return self->Fail(req, "rmdir", s);
    fuse_reply_err(req, 0);
  }

  static void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
                     const char* newname, unsigned int flags) {
    Impl* self = Self(req);
    if (BadName(req, newname)) return;
    // RENAME_WHITEOUT is for overlay file systems' upper layers; not supported.
    if (flags & ~static_cast<unsigned>(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
      fuse_reply_err(req, EINVAL);
      return;
    }
    auto pg = self->GfidOf(req, parent);
    if (!pg) return;
    auto npg = self->GfidOf(req, newparent);
    if (!npg) return;
    // A target open here is kept under its hidden name (see OpenFile).
    Gfid hid;
    if (flags == 0) {
      auto h = self->HideIfOpen(*npg, newname);
      if (!h.ok()) return self->Fail(req, "rename", h.status());
      hid = *h;
    }
    Status s = self->client->Rename(*pg, name, *npg, newname, flags);
    if (!s.ok() && !hid.is_null()) self->Unhide(hid, *npg, newname);
    if (!s.ok()) return self->Fail(req, "rename", s);
    fuse_reply_err(req, 0);
  }

  // ------------------------------------------------------------------ files

  // A rename over a file open here failed after its target was hidden: put it back.
  void Unhide(const Gfid& gfid, const Gfid& parent, const std::string& name) {
    const std::string hidden = kHiddenPrefix + gfid.ToString();
    // NOREPLACE: if the name was taken meanwhile, the file stays hidden (and goes at its close).
    Status s = client->Rename(parent, hidden, parent, name, RENAME_NOREPLACE);
    if (!s.ok()) {
      DRFS_LOG(Warn) << "cannot give " << hidden << " back its name " << name << ": " << s.message();
      return;
    }
    std::lock_guard<std::mutex> l(open_mu);
    auto it = open_files.find(gfid);
    if (it != open_files.end()) it->second.hidden = false;
  }

  void FillOpen(fuse_file_info* fi, const Gfid& g) {
    {
      std::lock_guard<std::mutex> l(open_mu);
      ++open_files[g].count;
      open_entries = open_files.size();
    }
    auto h = std::make_shared<FileHandle>();
    h->gfid = g;
    h->writable = (fi->flags & O_ACCMODE) != O_RDONLY;
    fi->fh = files.Add(std::move(h));
    // Drop cached pages at open: another mount may have changed the file.
    fi->keep_cache = 0;
    fi->direct_io = 0;
  }

  std::shared_ptr<FileHandle> Handle(fuse_file_info* fi) {
    return fi ? files.Get(fi->fh) : nullptr;
  }

  // The end of one open: at the last one, a hidden (unlinked) file goes for good.
  void CloseHandle(std::shared_ptr<FileHandle> h) {
    if (!h) return;
    OpenFile gone;
    {
      std::lock_guard<std::mutex> l(open_mu);
      auto it = open_files.find(h->gfid);
      if (it == open_files.end() || --it->second.count > 0) return;
      gone = it->second;
      // A hidden file keeps its entry until its name is gone (HideIfOpen waits for that).
      if (!gone.hidden) {
        open_files.erase(it);
        open_entries = open_files.size();
        return;
      }
    }
    Status s = client->Unlink(gone.hidden_parent, gone.hidden_name);
    if (!s.ok()) DRFS_LOG(Warn) << "cannot remove " << gone.hidden_name << ": " << s.message();
    {
      std::lock_guard<std::mutex> l(open_mu);
      auto it = open_files.find(h->gfid);
      if (it != open_files.end() && it->second.count == 0) {
        open_files.erase(it);
        open_entries = open_files.size();
      }
    }
    open_cv.notify_all();
  }

  static void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                     fuse_file_info* fi) {
    Impl* self = Self(req);
    if (BadName(req, name)) return;
    auto pg = self->GfidOf(req, parent);
    if (!pg) return;
    auto o = self->OwnerFor(req, parent, *pg, mode & 07777, false);
    if (!o.ok()) return self->Fail(req, "create", o.status());
    const bool exclusive = (fi->flags & O_EXCL) != 0;
    const Gfid fresh = Gfid::Random();
    auto r = self->client->Create(*pg, name, S_IFREG | o->mode, o->uid, o->gid, exclusive, fresh);
    if (!r.ok()) return self->Fail(req, "create", r.status());
    // Our gfid back: the file is new and has no security.capability, which the kernel asks
    // for before the first write (a round trip to a brick). A file that was there already
    // comes back with its own gfid and is asked about as usual.
    if (r->gfid == fresh) self->SetNoCaps(fresh, true);
    // A file someone else made just before us is opened as it is; O_TRUNC still applies.
    if ((fi->flags & O_TRUNC) && r->size > 0) {
      SetattrArgs a;
      a.valid = brick_proto::kAttrSize;
      auto t = self->client->Setattr(r->gfid, a);
      if (!t.ok()) return self->Fail(req, "create (truncate)", t.status());
      r = std::move(t);
    }
    self->FillOpen(fi, r->gfid);
    const uint64_t id = self->inodes.Ref(r->gfid);
    self->Note(*r);
    fuse_entry_param e = self->Entry(*r, id);
    if (fuse_reply_create(req, &e, fi) != 0) {
      self->inodes.Forget(id, 1);
      self->CloseHandle(self->files.Remove(fi->fh));
    }
  }

  static void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    Impl* self = Self(req);
    auto g = self->GfidOf(req, ino);
    if (!g) return;
    if (self->opt.read_only && (fi->flags & O_ACCMODE) != O_RDONLY) {
      fuse_reply_err(req, EROFS);
      return;
    }
    self->FillOpen(fi, *g);
    if (fuse_reply_open(req, fi) != 0) self->CloseHandle(self->files.Remove(fi->fh));
  }

  static void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
    Impl* self = Self(req);
    auto h = self->Handle(fi);
    std::optional<Gfid> g = h ? std::optional<Gfid>(h->gfid) : self->GfidOf(req, ino);
    if (!g) return;
    (void)self->DrainWrites(*g, false);
    auto r = self->client->Read(*g, static_cast<uint64_t>(off), size);
    if (!r.ok()) return self->Fail(req, "read", r.status());
    fuse_reply_buf(req, r->data(), r->size());
  }

  static void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                    fuse_file_info* fi) {
    Impl* self = Self(req);
    auto h = self->Handle(fi);
    std::optional<Gfid> g = h ? std::optional<Gfid>(h->gfid) : self->GfidOf(req, ino);
    if (!g) return;
    // O_APPEND: with writeback caching off the kernel takes the offset from its own i_size
    // under the inode lock and passes it here, so appends through this mount never overlap.
    if (h && self->wb_pool && size <= self->opt.write_behind_window) {
      Status s = self->WriteBehind(*g, static_cast<uint64_t>(off), std::string(buf, size));
      if (!s.ok()) return self->Fail(req, "write", s);
      h->wrote = true;
      fuse_reply_write(req, size);
      return;
    }
    auto r = self->client->Write(*g, static_cast<uint64_t>(off), std::string(buf, size));
    if (!r.ok()) return self->Fail(req, "write", r.status());
    if (h) h->wrote = true;
    self->Note(*r);
    fuse_reply_write(req, size);
  }

  // Queues a write to the volume (see Behind). Fails with the error of an earlier write of g
  // that failed after its answer; this one is then not made.
  Status WriteBehind(const Gfid& g, uint64_t off, std::string data) {
    const uint64_t end = off + data.size();
    const size_t len = data.size();
    {
      std::unique_lock<std::mutex> l(wb_mu);
      wb_cv.wait(l, [&] {
        Behind& b = behind[g];
        if (!b.error.ok()) return true;
        if (b.inflight > 0 && b.bytes + len > opt.write_behind_window) return false;
        for (auto& [s, e] : b.ranges)
          if (s < end && off < e) return false;
        return true;
      });
      Behind& b = behind[g];
      if (!b.error.ok()) {
        Status e = std::move(b.error);
        if (b.inflight == 0) {
          behind.erase(g);
        } else {
          b.error = Status::Ok();
        }
        return e;
      }
      ++b.inflight;
      b.bytes += len;
      b.ranges.emplace_back(off, end);
    }
    auto done = [this, g, off, end, len](const Status& st) {
      std::lock_guard<std::mutex> l(wb_mu);
      Behind& b = behind[g];
      if (!st.ok() && b.error.ok()) b.error = st;
      --b.inflight;
      b.bytes -= len;
      auto it = std::find(b.ranges.begin(), b.ranges.end(), std::make_pair(off, end));
      if (it != b.ranges.end()) b.ranges.erase(it);
      if (b.inflight == 0 && b.error.ok()) behind.erase(g);
      wb_cv.notify_all();
    };
    auto shared = std::make_shared<std::string>(std::move(data));
    bool queued = wb_pool->Submit([this, g, off, shared, done] {
      auto r = client->Write(g, off, std::move(*shared));
      if (r.ok()) Note(*r);
      done(r.status());
    });
    if (!queued) {  // shutting down: write it here
      auto r = client->Write(g, off, std::move(*shared));
      done(r.status());
      return r.status();
    }
    return Status::Ok();
  }

  static void Flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    Impl* self = Self(req);
    auto h = self->Handle(fi);
    std::optional<Gfid> g = h ? std::optional<Gfid>(h->gfid) : self->GfidOf(req, ino);
    if (!g) return;
    // close(2) reports what this returns: errors of writes still settling show up here.
    Status s = self->DrainWrites(*g, true);
    if (s.ok()) s = self->client->Flush(*g);
    if (!s.ok()) return self->Fail(req, "flush", s);
    fuse_reply_err(req, 0);
  }

  static void Release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    Impl* self = Self(req);
    auto h = self->files.Remove(fi->fh);
    if (h && h->wrote) {
      Status s = self->DrainWrites(h->gfid, true);
      if (s.ok()) s = self->client->Flush(h->gfid);
      if (!s.ok()) DRFS_LOG(Warn) << "release " << h->gfid.ToString() << ": " << s.message();
    }
    self->CloseHandle(std::move(h));
    fuse_reply_err(req, 0);
  }

  static void Fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
    Impl* self = Self(req);
    auto h = self->Handle(fi);
    std::optional<Gfid> g = h ? std::optional<Gfid>(h->gfid) : self->GfidOf(req, ino);
    if (!g) return;
    Status s = self->DrainWrites(*g, true);
    if (s.ok()) s = self->client->Fsync(*g, datasync != 0);
    if (!s.ok()) return self->Fail(req, "fsync", s);
    fuse_reply_err(req, 0);
  }

  static void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                        fuse_file_info* fi) {
    Impl* self = Self(req);
    auto h = self->Handle(fi);
    std::optional<Gfid> g = h ? std::optional<Gfid>(h->gfid) : self->GfidOf(req, ino);
    if (!g) return;
    (void)self->DrainWrites(*g, false);
    auto r = self->client->Fallocate(*g, static_cast<uint32_t>(mode), static_cast<uint64_t>(offset),
                                     static_cast<uint64_t>(length));
    if (!r.ok()) return self->Fail(req, "fallocate", r.status());
    if (h) h->wrote = true;
    self->Note(*r);
    fuse_reply_err(req, 0);
  }

  // ------------------------------------------------------------------ directories

  static void Opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    Impl* self = Self(req);
    auto g = self->GfidOf(req, ino);
    if (!g) return;
    auto d = std::make_shared<DirHandle>();
    d->gfid = *g;
    fi->fh = self->dirs.Add(std::move(d));
    if (fuse_reply_open(req, fi) != 0) self->dirs.Remove(fi->fh);
  }

  static void Releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    Self(req)->dirs.Remove(fi->fh);
    fuse_reply_err(req, 0);
  }

  static void Fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
    Impl* self = Self(req);
    auto d = self->dirs.Get(fi->fh);
    std::optional<Gfid> g = d ? std::optional<Gfid>(d->gfid) : self->GfidOf(req, ino);
    if (!g) return;
    Status s = self->client->Fsync(*g, datasync != 0);
    if (!s.ok()) return self->Fail(req, "fsyncdir", s);
    fuse_reply_err(req, 0);
  }

  static void Readdir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
    Self(req)->ListDir(req, size, off, fi, false);
  }
  static void Readdirplus(fuse_req_t req, fuse_ino_t, size_t size, off_t off,
                          fuse_file_info* fi) {
    Self(req)->ListDir(req, size, off, fi, true);
  }

  void ListDir(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi, bool plus) {
    auto d = dirs.Get(fi->fh);
    if (!d) {
      fuse_reply_err(req, EBADF);
      return;
    }
    std::lock_guard<std::mutex> l(d->mu);
    std::string buf(size, '\0');
    size_t used = 0;
    std::vector<uint64_t> refs;  // lookups this reply gives the kernel
    uint64_t pos = off < 0 ? 0 : static_cast<uint64_t>(off);
    // Adds one entry; false when it does not fit. `id` 0: no attributes for the kernel.
    auto add = [&](const char* name, const struct stat& st, uint64_t next, const Iatt* attr) {
      if (!plus) {
        const size_t need = fuse_add_direntry(req, nullptr, 0, name, nullptr, 0);
        if (used + need > size) return false;
        fuse_add_direntry(req, &buf[used], size - used, name, &st, static_cast<off_t>(next));
        used += need;
        return true;
      }
      const size_t need = fuse_add_direntry_plus(req, nullptr, 0, name, nullptr, 0);
      if (used + need > size) return false;
      fuse_entry_param e;
      std::memset(&e, 0, sizeof e);
      e.attr = st;
      if (attr && WritesInFlight(attr->gfid)) {
        // Its size is about to change: leave its attributes out rather than show an old size.
        attr = nullptr;
      }
      if (attr) {
        // The kernel counts these as lookups; the count goes up only once the entry is in.
        refs.push_back(inodes.Ref(attr->gfid));
        e = Entry(*attr, refs.back());
        Note(*attr);
      }
      fuse_add_direntry_plus(req, &buf[used], size - used, name, &e, static_cast<off_t>(next));
      used += need;
      return true;
    };
    struct stat dot;
    std::memset(&dot, 0, sizeof dot);
    dot.st_mode = S_IFDIR;
    dot.st_ino = GfidToIno(d->gfid);
    // "." and ".." are never lookups for the kernel (it skips them in readdirplus), so they carry
    // no node id. ".." shows the directory's own inode number: the parent is not tracked.
    auto reply = [&] {
      if (fuse_reply_buf(req, buf.data(), used) != 0) {
        for (uint64_t id : refs) inodes.Forget(id, 1);  // interrupted: the kernel saw none
      }
    };
    if (pos == 0) {
      if (!add(".", dot, 1, nullptr)) return reply();
      pos = 1;
    }
    if (pos == 1) {
      if (!add("..", dot, 2, nullptr)) return reply();
      pos = 2;
    }
    uint64_t k = pos - 2;  // entries from the volume already returned
    if (k > d->cookies.size()) {
      fuse_reply_err(req, EINVAL);  // an offset this handle never gave out
      return;
    }
    uint64_t cookie = k == 0 ? 0 : d->cookies[k - 1];
    for (;;) {
      const size_t per_entry = plus ? 160 : 48;
      const uint32_t want = static_cast<uint32_t>(std::clamp<size_t>((size - used) / per_entry + 1, 8, 512));
      auto page = client->Readdir(d->gfid, cookie, want, plus);
      if (!page.ok()) {
        // What fits already is good: the kernel comes back for the rest and gets the error.
        if (used > 0) return reply();
        return Fail(req, "readdir", page.status());
      }
      for (const DirEntry& de : page->entries) {
        struct stat st;
        std::memset(&st, 0, sizeof st);
        st.st_ino = GfidToIno(de.gfid);
        st.st_mode = DTTOIF(de.type);
        if (de.has_attr) st = ToStat(de.attr);
        if (!add(de.name.c_str(), st, k + 3, plus && de.has_attr ? &de.attr : nullptr)) {
          return reply();
        }
        if (d->cookies.size() <= k) d->cookies.resize(k + 1);
        d->cookies[k] = de.cookie;
        ++k;
        cookie = de.cookie;
      }
      if (page->eof || page->entries.empty()) return reply();
    }
  }

  // ------------------------------------------------------------------ the rest

  static void Statfs(fuse_req_t req, fuse_ino_t) {
    Impl* self = Self(req);
    auto r = self->client->Statfs();
    if (!r.ok()) return self->Fail(req, "statfs", r.status());
    struct statvfs sv;
    std::memset(&sv, 0, sizeof sv);
    sv.f_bsize = r->bsize;
    sv.f_frsize = r->frsize;
    sv.f_blocks = r->blocks;
    sv.f_bfree = r->bfree;
    sv.f_bavail = r->bavail;
    sv.f_files = r->files;
    sv.f_ffree = r->ffree;
    sv.f_favail = r->favail;
    sv.f_namemax = r->namemax ? r->namemax : 255;
    fuse_reply_statfs(req, &sv);
  }

  static void Access(fuse_req_t req, fuse_ino_t ino, int mask) {
    Impl* self = Self(req);
    auto g = self->GfidOf(req, ino);
    if (!g) return;
    Status s = self->client->Access(*g, static_cast<uint32_t>(mask));
    if (!s.ok()) return self->Fail(req, "access", s);
    fuse_reply_err(req, 0);
  }

  static void Setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                       size_t size, int flags) {
    Impl* self = Self(req);
    if (!XattrNamespaceOk(name) || (!self->opt.selinux && std::strcmp(name, kSelinuxXattr) == 0)) {
      fuse_reply_err(req, EOPNOTSUPP);
      return;
    }
    auto g = self->GfidOf(req, ino);
    if (!g) return;
    self->SetNoCaps(*g, false);
    Status s = self->client->Setxattr(*g, name, std::string_view(value, size),
                                      static_cast<uint32_t>(flags));
    if (!s.ok()) return self->Fail(req, "setxattr", s);
    fuse_reply_err(req, 0);
  }

  // getxattr(2) and listxattr(2) with size 0 ask how big the value is; a buffer too small for it
  // is ERANGE.
  static void ReplySized(fuse_req_t req, const std::string& v, size_t size) {
    if (size == 0) {
      fuse_reply_xattr(req, v.size());
    } else if (v.size() > size) {
      fuse_reply_err(req, ERANGE);
    } else {
      fuse_reply_buf(req, v.data(), v.size());
    }
  }

  static void Getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
    Impl* self = Self(req);
    if (!XattrNamespaceOk(name)) {
      fuse_reply_err(req, EOPNOTSUPP);
      return;
    }
    if (!self->opt.selinux && std::strcmp(name, kSelinuxXattr) == 0) {
      fuse_reply_err(req, ENODATA);  // see FuseOptions::selinux
      return;
    }
    auto g = self->GfidOf(req, ino);
    if (!g) return;
    const bool caps = std::strcmp(name, kCapsXattr) == 0;
    if (caps && self->NoCaps(*g)) {
      fuse_reply_err(req, ENODATA);
      return;
    }
    auto r = self->client->Getxattr(*g, name);
    if (!r.ok()) {
      if (caps && r.status().sys_errno() == ENODATA) self->SetNoCaps(*g, true);
      return self->Fail(req, "getxattr", r.status());
    }
    ReplySized(req, *r, size);
  }

  // The kernel asks for security.capability before every write (to drop file capabilities
  // when a file is written), a round trip to a brick each time. That it is absent is kept for
  // attr_timeout, like the rest of a file's attributes; a change through this mount forgets it.
  static constexpr char kCapsXattr[] = "security.capability";
  bool NoCaps(const Gfid& g) {
    std::lock_guard<std::mutex> l(caps_mu);
    auto it = no_caps.find(g);
    if (it == no_caps.end()) return false;
    if (std::chrono::steady_clock::now() < it->second) return true;
    no_caps.erase(it);
    return false;
  }
  void SetNoCaps(const Gfid& g, bool absent) {
    if (opt.attr_timeout <= 0) return;
    std::lock_guard<std::mutex> l(caps_mu);
    if (!absent) {
      no_caps.erase(g);
      return;
    }
    if (no_caps.size() > 100000) no_caps.clear();  // a cache: forgetting costs a round trip
    no_caps[g] = std::chrono::steady_clock::now() +
                 std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                     std::chrono::duration<double>(opt.attr_timeout));
  }

  static void Listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    Impl* self = Self(req);
    auto g = self->GfidOf(req, ino);
    if (!g) return;
    auto r = self->client->Listxattr(*g);
    if (!r.ok()) return self->Fail(req, "listxattr", r.status());
    std::string names;
    for (const auto& n : *r) {
      if (!self->opt.selinux && n == kSelinuxXattr) continue;
      names += n;
      names += '\0';
    }
    ReplySized(req, names, size);
  }

  static void Removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
    Impl* self = Self(req);
    if (!XattrNamespaceOk(name)) {
      fuse_reply_err(req, EOPNOTSUPP);
      return;
    }
    if (!self->opt.selinux && std::strcmp(name, kSelinuxXattr) == 0) {
      fuse_reply_err(req, ENODATA);
      return;
    }
    auto g = self->GfidOf(req, ino);
    if (!g) return;
    self->SetNoCaps(*g, false);
    Status s = self->client->Removexattr(*g, name);
    if (!s.ok()) return self->Fail(req, "removexattr", s);
    fuse_reply_err(req, 0);
  }

  static fuse_lowlevel_ops Ops() {
    fuse_lowlevel_ops ops;
    std::memset(&ops, 0, sizeof ops);
    ops.init = Init;
    ops.lookup = Lookup;
    ops.forget = Forget;
    ops.forget_multi = ForgetMulti;
    ops.getattr = Getattr;
    ops.setattr = Setattr;
    ops.readlink = Readlink;
    ops.mknod = Mknod;
    ops.mkdir = Mkdir;
    ops.symlink = Symlink;
    ops.link = Link;
    ops.unlink = Unlink;
    ops.rmdir = Rmdir;
    ops.rename = Rename;
    ops.create = Create;
    ops.open = Open;
    ops.read = Read;
    ops.write = Write;
    ops.flush = Flush;
    ops.release = Release;
    ops.fsync = Fsync;
    ops.fallocate = Fallocate;
    ops.opendir = Opendir;
    ops.readdir = Readdir;
    ops.readdirplus = Readdirplus;
    ops.releasedir = Releasedir;
    ops.fsyncdir = Fsyncdir;
    ops.statfs = Statfs;
    ops.access = Access;
    ops.setxattr = Setxattr;
    ops.getxattr = Getxattr;
    ops.listxattr = Listxattr;
    ops.removexattr = Removexattr;
    return ops;
  }

  Status DoUnmount();
};

Result<std::unique_ptr<FuseMount>> FuseMount::Mount(VolumeClient* client,
                                                    const std::string& mountpoint,
                                                    const FuseOptions& options) {
  fuse_set_log_func(FuseLog);
  // The mount must work when this returns: a volume whose root cannot be read is not mounted.
  auto root = client->Getattr(Gfid::Root());
  if (!root.ok()) {
    return Status(root.status().code(),
                  "cannot read the root directory of " + options.fsname + ": " + root.status().message());
  }
  auto impl = std::make_unique<Impl>(client, mountpoint, options);
  impl->Note(*root);

  std::string o = "fsname=" + EscapeOpt(options.fsname) + ",subtype=drfs,default_permissions";
  if (options.allow_other) o += ",allow_other";
  if (options.read_only) o += ",ro";
  for (const auto& k : options.kernel_options) o += "," + EscapeOpt(k);
  std::vector<std::string> argv = {"drfs", "-o", o};
  if (options.debug) argv.push_back("-d");
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(cargv.size()), cargv.data());
  const fuse_lowlevel_ops ops = Impl::Ops();
  TakeFuseError();
  impl->se = fuse_session_new(&args, &ops, sizeof ops, impl.get());
  fuse_opt_free_args(&args);
  if (impl->se == nullptr) {
    return InvalidArgument("cannot set up the FUSE session (options '" + o + "'): " + TakeFuseError());
  }
  if (fuse_session_mount(impl->se, mountpoint.c_str()) != 0) {
    const std::string why = TakeFuseError();
    fuse_session_destroy(impl->se);
    impl->se = nullptr;
    return FailedPrecondition("cannot mount " + options.fsname + " on " + mountpoint + ": " +
                              (why.empty() ? "the kernel refused (is /dev/fuse there?)" : why));
  }
  impl->device = MountDevice(mountpoint);
  DRFS_LOG(Info) << "mounted " << options.fsname << " on " << mountpoint
                 << (options.read_only ? " (read-only)" : "") << ", entry_timeout "
                 << options.entry_timeout << " s, attr_timeout " << options.attr_timeout
                 << " s, negative_timeout " << options.negative_timeout << " s";
  return std::unique_ptr<FuseMount>(new FuseMount(std::move(impl)));
}

FuseMount::FuseMount(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FuseMount::~FuseMount() {
  if (impl_->se == nullptr) return;
  // Does nothing when the kernel already ended the connection (the usual case: unmounted).
  fuse_session_unmount(impl_->se);
  fuse_session_destroy(impl_->se);
}

const std::string& FuseMount::mountpoint() const { return impl_->mountpoint; }

Status FuseMount::Serve() {
  if (impl_->served.exchange(true)) return FailedPrecondition("FuseMount::Serve called twice");
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(cfg, 0);
  fuse_loop_cfg_set_max_threads(cfg, impl_->opt.max_threads);
  fuse_loop_cfg_set_idle_threads(cfg, std::max(1u, impl_->opt.max_threads / 2));
  const int rc = fuse_session_loop_mt(impl_->se, cfg);
  fuse_loop_cfg_destroy(cfg);
  DRFS_LOG(Info) << impl_->mountpoint << " is unmounted; " << impl_->inodes.size()
                 << " inodes were still known";
  if (rc != 0 && !impl_->unmount_requested) {
    return Status(Code::kInternal, "the FUSE session of " + impl_->mountpoint + " ended with error " +
                                       std::to_string(rc), rc < 0 ? -rc : 0);
  }
  return Status::Ok();
}

Status FuseMount::Unmount() { return impl_->DoUnmount(); }

Status FuseMount::Abort() {
  if (!impl_->device) return FailedPrecondition("the FUSE device of " + impl_->mountpoint + " is not known");
  const std::string dir = "/sys/fs/fuse/connections/" + std::to_string(static_cast<uint32_t>(*impl_->device));
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    return FailedPrecondition("cannot abort the FUSE connection of " + impl_->mountpoint + ": " + dir +
                              " is missing (is fusectl mounted on /sys/fs/fuse/connections?)");
  }
  std::ofstream f(dir + "/abort");
  f << "1";
  if (!f.flush()) return ErrnoStatus(errno, "write " + dir + "/abort");
  DRFS_LOG(Warn) << "aborted the FUSE connection of " << impl_->mountpoint;
  return Status::Ok();
}

Status FuseMount::Impl::DoUnmount() {
  if (unmount_requested.exchange(true)) return Status::Ok();
  if (::geteuid() == 0) {
    if (::umount2(mountpoint.c_str(), UMOUNT_NOFOLLOW) == 0) return Status::Ok();
    const int e = errno;
    if (e == EINVAL) return Status::Ok();  // not mounted any more
    if (e != EBUSY) return ErrnoStatus(e, "unmount " + mountpoint);
    if (::umount2(mountpoint.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
      return ErrnoStatus(errno, "detach " + mountpoint);
    }
    DRFS_LOG(Warn) << mountpoint << " is in use: detached; the processes still using it keep "
                      "it until they let go (a second SIGTERM aborts it)";
    return Status::Ok();
  }
  // Not root: the setuid helper unmounts (lazily: a mount in use is detached, as above).
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoStatus(errno, "fork for fusermount3");
  if (pid == 0) {
    ::execlp("fusermount3", "fusermount3", "-u", "-z", mountpoint.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    return Status(Code::kInternal, "fusermount3 -u " + mountpoint + " failed (status " + std::to_string(st) + ")");
  }
  return Status::Ok();
}

}  // namespace drfs::volume
