// Backend implementation notes.
//
// Addressing. Every op starts from a gfid. Resolve() opens the object as an O_PATH descriptor:
// a non-directory through its handle (a hard link, opened with O_NOFOLLOW, so a symlink object
// is the symlink itself), a directory by walking its handle's symlink chain with openat2
// (RESOLVE_BENEATH: nothing outside DIR is reachable) and then checking that the directory
// reached carries the gfid asked for. Afterwards the object is only touched through that
// descriptor: *at() calls with AT_EMPTY_PATH, or "/proc/self/fd/N", which the kernel resolves to
// the object itself (for a symlink object: the symlink, never its target). Entry ops use the
// parent's descriptor and a validated name with AT_SYMLINK_NOFOLLOW/O_NOFOLLOW. So no user
// symlink is ever followed.
//
// Concurrency. A striped LockTable serializes ops on one entry (parent gfid + name) and on one
// object (gfid); a lock is held across the change and its journal append, so the journal order
// of two ops on the same entry or object is the order they took effect. Renaming a directory
// rewrites its handle: it does so under `handles_mu_` held exclusively, and resolving a
// directory holds it shared, so nobody resolves through a half-renamed directory.
//
// Crash consistency. Namespace ops (create, mkdir, mknod, symlink, link, unlink, rmdir, rename)
// are multi-step: tree entry, gfid index, pgfid xattr, journal. Each writes an intent (a slot of
// .drfs/intents, see detail/intent_log.h) first and clears it after the journal append. The
// steps are ordered so that "roll back" is always possible until the record is journaled, and
// "complete" is always possible after:
//   create-type  build the object under .drfs/tmp with its gfid, owner and mode; hard-link the
//                handle (non-dirs); rename it into the tree with RENAME_NOREPLACE (the tree
//                name appears complete, or not at all); journal; write the dir handle (so
//                nothing inside a new directory can be journaled before its MKDIR).
//   link         link the handle to the new name; journal.
//   unlink       unlink the name; journal; then drop the handle if that was the last name (the
//                handle lets an unjournaled unlink be undone by linking it back).
//   rmdir        rmdir; journal; then drop the handle.
//   rename       rename; rewrite the dir handle / pgfid; journal; then drop the replaced
//                object's handle if it is gone from the tree.
// Open() looks for each leftover intent's record in the journal: found means finish the
// cleanup ("completed"), not found means undo ("rolled back"). A failed journal append undoes
// the op at once the same way. So after Open() the tree, the index and the journal agree: an
// op is on disk if and only if it is journaled.
//
// Data and metadata ops (write, truncate, setattr, fallocate, xattrs) change the object, then
// append; they write no intent. A crash between the two leaves a change the journal does not
// have; replication heal (which compares replicas) is what catches those.
//
// RENAME_EXCHANGE is journaled as a RENAME with changelog::kRenameExchange in rename_flags and
// the other entry's gfid in `replaced`: the two entries swapped and nothing was removed.
//
// Pending markers (xattrop). The counters live in trusted.drfs.pending as little-endian int32s,
// and an object with any counter not zero has an empty file .drfs/heal/<gfid>. An xattrop runs
// under the object's stripe, so xattrops on one object are serialized, and orders its two
// writes so that a crash anywhere leaves the heal index a superset of the marked objects:
// going non-zero it creates the index entry first, then stores the xattr; going all-zero it
// removes the xattr first, then the index entry. Nothing is fsynced: markers are not journaled
// and a kill -9 keeps the page cache; across a power cut the order holds as far as the file
// system commits its metadata in order (ext4 and xfs journal both in one stream). Listing the
// index (HealIndex) drops the entries such a crash left behind, under the same stripe.
#include "brick/backend.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "brick/detail/intent.h"
#include "brick/detail/intent_log.h"
#include "brick/detail/lock_table.h"
#include "changelog/journal.h"
#include "changelog/reader.h"
#include "common/coding.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "common/time.h"

namespace drfs::brick {

static_assert(changelog::kRenameExchange == RENAME_EXCHANGE &&
                  changelog::kRenameNoreplace == RENAME_NOREPLACE,
              "journal rename flags are the kernel's");
namespace {

using brick_proto::DirEntry;
using brick_proto::ErrorReply;
using brick_proto::Iatt;
using brick_proto::Op;
using brick_proto::Reply;
using brick_proto::Request;
using changelog::Lsn;
using changelog::OpType;
using changelog::Record;
using detail::Intent;
using detail::LockTable;
using detail::StripeLock;

constexpr char kGfidXattr[] = "trusted.drfs.gfid";
// Non-directories: parent gfid (16 bytes) + name of the tree name made last, so ResolveGfid
// can find a path without a search.
constexpr char kPgfidXattr[] = "trusted.drfs.pgfid";
constexpr char kPrivateDir[] = ".drfs";
// Pending-heal markers (see the notes at the top), and the heal index under DIR.
constexpr char kPendingXattr[] = "trusted.drfs.pending";
constexpr char kHealDir[] = ".drfs/heal";
// Every xattr the brick keeps for itself starts with this; clients can neither see nor set them.
constexpr std::string_view kBrickXattrPrefix = "trusted.drfs.";
// The root's handle, relative to its own folder .drfs/gfid/00/00/.
constexpr char kRootHandleTarget[] = "../../../..";
constexpr size_t kDefaultDirEntries = 512;
// How far back Open() looks in the journal for an intent's record at most.
constexpr Lsn kRepairWindow = 1u << 20;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// A descriptor that may be shared with the brick's cache of open files (see OpenFiles).
class SharedFd {
 public:
  SharedFd() = default;
  explicit SharedFd(std::shared_ptr<const Fd> fd) : fd_(std::move(fd)) {}
  int get() const { return fd_ ? fd_->get() : -1; }
  bool valid() const { return get() >= 0; }
  void reset(int fd = -1) { fd_ = fd >= 0 ? std::make_shared<const Fd>(fd) : nullptr; }
  const std::shared_ptr<const Fd>& shared() const { return fd_; }

 private:
  std::shared_ptr<const Fd> fd_;
};

// Regular files opened O_RDWR, by gfid: a data op or getattr on a file touched recently skips
// resolving its handle (an open, a /proc walk to read the gfid xattr, a reopen for I/O). An
// entry is only used after an fstatat of the file's handle shows the same inode, which the
// open descriptor keeps from being reused; so a handle removed or replaced (tampered, stale) is
// noticed exactly as without the cache. Every handle removal erases the entry. Bounded; the
// least recently used entry goes first.
class OpenFiles {
 public:
  explicit OpenFiles(size_t capacity) : capacity_(capacity) {}

  // The cached descriptor of `g`, if any, and the inode it was opened on. The caller checks
  // that the handle still is that inode, and calls Erase() if not.
  std::shared_ptr<const Fd> Get(const Gfid& g, dev_t* dev, ino_t* ino) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = map_.find(g);
    if (it == map_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second.pos);
    *dev = it->second.dev;
    *ino = it->second.ino;
    return it->second.fd;
  }
  void Put(const Gfid& g, std::shared_ptr<const Fd> fd, const struct stat& st) {
    if (capacity_ == 0) return;
    std::lock_guard<std::mutex> l(mu_);
    auto it = map_.find(g);
    if (it != map_.end()) {
      lru_.erase(it->second.pos);
      map_.erase(it);
    }
    while (map_.size() >= capacity_) {
      map_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(g);
    map_.emplace(g, Slot{std::move(fd), st.st_dev, st.st_ino, lru_.begin()});
  }
  void Erase(const Gfid& g) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = map_.find(g);
    if (it == map_.end()) return;
    lru_.erase(it->second.pos);
    map_.erase(it);
  }

 private:
  struct GfidHash {
    size_t operator()(const Gfid& g) const {
      uint64_t a, b;
      std::memcpy(&a, g.bytes.data(), sizeof a);
      std::memcpy(&b, g.bytes.data() + 8, sizeof b);
      return static_cast<size_t>(a * 0x9e3779b97f4a7c15ull ^ b);
    }
  };
  struct Slot {
    std::shared_ptr<const Fd> fd;
    dev_t dev;
    ino_t ino;
    std::list<Gfid>::iterator pos;
  };
  const size_t capacity_;
  std::mutex mu_;
  std::list<Gfid> lru_;
  std::unordered_map<Gfid, Slot, GfidHash> map_;
};

std::string ProcPath(int fd) {
  return "/proc/self/fd/" + std::to_string(fd);
}

// The errno `e` for `what`, as a Status whose sys_errno() the reply carries.
Status SysErr(int e, const std::string& what) {
  return ErrnoStatus(e, what);
}

Reply ToReply(const Status& s) {
  return ErrorReply(s.sys_errno() != 0 ? s.sys_errno() : EIO, s.message());
}

bool IsReserved(std::string_view xattr) {
  return xattr.starts_with(kBrickXattrPrefix);
}

// What clients may set or remove. trusted.* and security.* act on the brick host itself (a
// security.capability on a brick file would give local users on that host privileges), so only
// user attributes and POSIX ACLs pass.
bool ClientMaySet(std::string_view xattr) {
  return xattr.starts_with("user.") || xattr == "system.posix_acl_access" ||
         xattr == "system.posix_acl_default";
}

// The EPERM reply for a setxattr/removexattr a client may not make, or nullopt.
std::optional<Reply> RefuseXattrChange(const std::string& name, const std::string& what) {
  if (IsReserved(name)) return ErrorReply(EPERM, what + ": the attribute is the brick's own");
  if (!ClientMaySet(name)) {
    return ErrorReply(EPERM, what + ": only user.* attributes and POSIX ACLs can be changed "
                                    "through a brick");
  }
  return std::nullopt;
}

// 0 if `name` is a valid entry name, else the errno.
int NameError(std::string_view name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos) {
    return EINVAL;
  }
  if (name.size() > brick_proto::kMaxName) return ENAMETOOLONG;
  return 0;
}

// "ab/cd/<gfid>": the handle's path under .drfs/gfid.
std::string HandleRel(const Gfid& g) {
  std::string s = g.ToString();
  return s.substr(0, 2) + "/" + s.substr(2, 2) + "/" + s;
}

std::string DirHandleTarget(const Gfid& parent, const std::string& name) {
  return "../../" + HandleRel(parent) + "/" + name;
}

// The gfid of the object a /proc/self/fd path or an O_PATH-relative path names (xattr calls
// follow /proc/self/fd to the object itself). Null if it has none or a malformed one.
Result<Gfid> ReadGfid(const std::string& path) {
  Gfid g;
  ssize_t n = ::getxattr(path.c_str(), kGfidXattr, g.bytes.data(), g.bytes.size());
  if (n == static_cast<ssize_t>(g.bytes.size())) return g;
  if (n >= 0 || errno == ENODATA || errno == ERANGE) return Gfid::Null();
  return SysErr(errno, "read the gfid of " + path);
}

Status WriteGfid(const std::string& path, const Gfid& g) {
  if (::setxattr(path.c_str(), kGfidXattr, g.bytes.data(), g.bytes.size(), 0) != 0) {
    return SysErr(errno, "set the gfid " + g.ToString());
  }
  return Status::Ok();
}

Status WritePgfid(const std::string& path, const Gfid& parent, const std::string& name) {
  std::string v(reinterpret_cast<const char*>(parent.bytes.data()), parent.bytes.size());
  v += name;
  if (::setxattr(path.c_str(), kPgfidXattr, v.data(), v.size(), 0) != 0) {
    return SysErr(errno, "set the parent of " + path);
  }
  return Status::Ok();
}

int64_t ToNs(const struct timespec& t) {
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}
struct timespec FromNs(int64_t ns) {
  struct timespec t {};
  t.tv_sec = static_cast<time_t>(ns / 1000000000);
  t.tv_nsec = static_cast<long>(ns % 1000000000);
  if (t.tv_nsec < 0) {
    t.tv_nsec += 1000000000;
    --t.tv_sec;
  }
  return t;
}

Iatt ToIatt(const struct stat& st, const Gfid& g) {
  Iatt a;
  a.gfid = g;
  a.mode = st.st_mode;
  a.nlink = static_cast<uint32_t>(st.st_nlink);
  // A non-directory's handle is a hard link of its own: do not show it.
  if (!S_ISDIR(st.st_mode) && !g.is_null() && a.nlink >= 2) --a.nlink;
  a.uid = st.st_uid;
  a.gid = st.st_gid;
  a.rdev = st.st_rdev;
  a.size = static_cast<uint64_t>(st.st_size);
  a.blocks = static_cast<uint64_t>(st.st_blocks);
  a.blksize = static_cast<uint32_t>(st.st_blksize);
  a.atime_ns = ToNs(st.st_atim);
  a.mtime_ns = ToNs(st.st_mtim);
  a.ctime_ns = ToNs(st.st_ctim);
  return a;
}

Result<struct stat> StatFd(int fd) {
  struct stat st {};
  if (::fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    return SysErr(errno, "stat");
  }
  return st;
}

// An object opened O_PATH, with its attributes as of opening.
struct Object {
  SharedFd fd;  // O_PATH, or O_RDWR when it came from OpenFiles (rdwr)
  struct stat st {};
  Gfid gfid;
  bool rdwr = false;
  bool is_dir() const { return S_ISDIR(st.st_mode); }
  std::string proc() const { return ProcPath(fd.get()); }
};

// A name in a directory: whether it exists, and what it is.
struct Entry {
  bool exists = false;
  Object obj;
};

Result<Entry> StatEntry(int dirfd, const std::string& name) {
  Entry e;
  int fd = ::openat(dirfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return e;
    return SysErr(errno, "open " + name);
  }
  e.obj.fd.reset(fd);
  if (::fstatat(fd, "", &e.obj.st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    return SysErr(errno, "stat " + name);
  }
  DRFS_ASSIGN_OR_RETURN(e.obj.gfid, ReadGfid(ProcPath(fd)));
  e.exists = true;
  return e;
}

bool SameInode(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

bool AllZero(const std::vector<int32_t>& v) {
  return std::all_of(v.begin(), v.end(), [](int32_t x) { return x == 0; });
}

std::string EncodePending(const std::vector<int32_t>& v) {
  std::string out;
  for (int32_t x : v)
    PutFixed32(&out, static_cast<uint32_t>(x));
  return out;
}

// The markers of an object (empty when it has none). One getxattr.
Result<std::vector<int32_t>> ReadPending(const Object& o, const std::string& where) {
  char buf[brick_proto::kMaxPendingCounters * 4];
  ssize_t n = o.rdwr ? ::fgetxattr(o.fd.get(), kPendingXattr, buf, sizeof buf)
                     : ::getxattr(o.proc().c_str(), kPendingXattr, buf, sizeof buf);
  if (n < 0 && errno == ENODATA) return std::vector<int32_t>();
  if (n < 0 && errno != ERANGE) return SysErr(errno, "read the pending markers of " + where);
  if (n < 0 || n % 4 != 0) {
    return SysErr(EIO, "the pending markers (" + std::string(kPendingXattr) + ") of " + where +
                           " are malformed; remove that xattr from the object on the brick "
                           "and run heal");
  }
  std::vector<int32_t> v(static_cast<size_t>(n) / 4);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<int32_t>(DecodeFixed32(buf + 4 * i));
  return v;
}

// Writes all of `data` at `offset`; returns the bytes written and the errno that stopped it.
std::pair<size_t, int> PwriteAll(int fd, std::string_view data, uint64_t offset) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n =
        ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return {done, errno};
    }
    if (n == 0) return {done, EIO};
    done += static_cast<size_t>(n);
  }
  return {done, 0};
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct Backend::Impl {
  std::string dir;
  std::string real_dir;  // canonical, for ResolveGfid
  BackendOptions options;
  Fd root_fd;     // DIR, O_RDONLY|O_DIRECTORY
  Fd index_fd;    // DIR/.drfs/gfid
  detail::IntentLog intents;  // DIR/.drfs/intents
  Fd tmp_fd;      // DIR/.drfs/tmp
  Fd heal_fd;     // DIR/.drfs/heal
  std::unique_ptr<changelog::Writer> journal;
  RepairReport repair;
  LockTable locks;
  std::shared_mutex handles_mu;  // exclusive: rewriting dir handles; shared: resolving dirs
  std::atomic<uint64_t> seq{0};  // intent and temp names
  std::vector<std::atomic<bool>> index_dirs = std::vector<std::atomic<bool>>(65536);
  OpenFiles open_files{OpenFilesCapacity()};

  static size_t OpenFilesCapacity() {
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    return static_cast<size_t>(std::min<rlim_t>(1024, rl.rlim_cur / 4));
  }

  // --- addressing ----------------------------------------------------------------------------

  std::string Where(const Gfid& parent, const std::string& name) const {
    return parent.ToString() + "/" + name + " on brick " + dir;
  }
  std::string Where(const Gfid& g) const { return "gfid " + g.ToString() + " on brick " + dir; }

  // Validates an entry name for an op that creates or removes it.
  Status CheckName(const Gfid& parent, const std::string& name) const {
    if (int e = NameError(name)) return SysErr(e, "name '" + name + "' in " + Where(parent));
    if (parent == Gfid::Root() && name == kPrivateDir) {
      return SysErr(EPERM, Where(parent, name) + " is the brick's private folder");
    }
    return Status::Ok();
  }

  Result<Object> OpenRoot() {
    Object o;
    o.fd.reset(::openat(root_fd.get(), ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!o.fd.valid()) return SysErr(errno, "open the root of brick " + dir);
    DRFS_ASSIGN_OR_RETURN(o.st, StatFd(o.fd.get()));
    o.gfid = Gfid::Root();
    return o;
  }

  // Checks that an opened directory is `g`.
  Status Verify(Object& o, const Gfid& g) {
    DRFS_ASSIGN_OR_RETURN(o.gfid, ReadGfid(o.proc()));
    if (o.gfid != g) {
      return SysErr(ESTALE, "the index entry of " + Where(g) + " leads to another object (" +
                                (o.gfid.is_null() ? "no gfid" : o.gfid.ToString()) + "); run heal");
    }
    DRFS_ASSIGN_OR_RETURN(o.st, StatFd(o.fd.get()));
    return Status::Ok();
  }

  // Directory handles past the kernel's symlink limit: follows the chain one handle at a time.
  // Each step opens one validated name with O_NOFOLLOW and checks its gfid. handles_mu held.
  // Resolves a directory by reading its chain of handles up to the root, then opening each
  // name downward from the root, verifying every step. Iterative, with one fd held at a time, so
  // a very deep tree costs memory for its names, not stack.
  Result<Object> WalkDirHandle(const Gfid& g) {
    constexpr size_t kMaxDepth = 4096;
    std::vector<std::pair<Gfid, std::string>> chain;  // (gfid, name in its parent), leaf first
    Gfid at = g;
    while (at != Gfid::Root()) {
      if (chain.size() >= kMaxDepth) {
        return SysErr(ELOOP, "resolve " + Where(g) + ": more than 4096 directory levels");
      }
      char buf[PATH_MAX];
      ssize_t n = ::readlinkat(index_fd.get(), HandleRel(at).c_str(), buf, sizeof buf);
      if (n < 0) return SysErr(errno == ENOENT ? ENOENT : errno, "resolve " + Where(at));
      std::string_view t(buf, static_cast<size_t>(n));
      // "../../pp/qq/<parent gfid>/<name>"
      constexpr size_t kPrefix = 6 + 6 + 36 + 1;
      std::optional<Gfid> parent;
      if (t.size() > kPrefix && t.starts_with("../../")) parent = Gfid::Parse(t.substr(12, 36));
      std::string name(t.size() > kPrefix ? t.substr(kPrefix) : std::string_view());
      if (!parent || t.substr(6, 6) != HandleRel(*parent).substr(0, 6) || t[kPrefix - 1] != '/' ||
          NameError(name) != 0) {
        return SysErr(ESTALE, "the index entry of " + Where(at) + " is malformed; run heal");
      }
      chain.emplace_back(at, std::move(name));
      at = *parent;
    }
    DRFS_ASSIGN_OR_RETURN(Object o, OpenRoot());
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      Object next;
      next.fd.reset(
          ::openat(o.fd.get(), it->second.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!next.fd.valid()) {
        int e = errno == ENOTDIR || errno == ELOOP ? ESTALE : errno;
        return SysErr(e, "resolve " + Where(it->first));
      }
      DRFS_RETURN_IF_ERROR(Verify(next, it->first));
      o = std::move(next);
    }
    return o;
  }

  Result<Object> ResolveDirHandle(const Gfid& g) {
    std::shared_lock l(handles_mu);
    std::string path = std::string(kPrivateDir) + "/gfid/" + HandleRel(g);
    struct open_how how {};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    long fd;
    int tries = 0;
    // EAGAIN: a rename somewhere raced with a ".." step, and the kernel cannot prove the walk
    // stayed beneath DIR. Retry; if renames keep racing, walk one handle at a time instead.
    do {
      fd = ::syscall(SYS_openat2, root_fd.get(), path.c_str(), &how, sizeof how);
    } while (fd < 0 && errno == EAGAIN && ++tries < 16);
    if (fd < 0) {
      switch (errno) {
        case EAGAIN:
        case ELOOP:
          return WalkDirHandle(g);
        case ENOENT:
          return SysErr(ENOENT, "no directory with " + Where(g));
        case EXDEV:
          return SysErr(ESTALE, "the index entry of " + Where(g) +
                                    " points outside the brick; refused. Run heal");
        case ENOTDIR:
          return SysErr(ESTALE, "the index entry of " + Where(g) + " is stale; run heal");
        default:
          return SysErr(errno, "resolve " + Where(g));
      }
    }
    Object o;
    o.fd.reset(static_cast<int>(fd));
    DRFS_RETURN_IF_ERROR(Verify(o, g));
    return o;
  }

  // Opens the object `g` (see the notes at the top).
  Result<Object> Resolve(const Gfid& g) {
    if (g.is_null()) return SysErr(EINVAL, "null gfid on brick " + dir);
    if (g == Gfid::Root()) return OpenRoot();
    const std::string rel = HandleRel(g);
    dev_t dev;
    ino_t ino;
    if (auto fd = open_files.Get(g, &dev, &ino)) {
      Object o;
      if (::fstatat(index_fd.get(), rel.c_str(), &o.st, AT_SYMLINK_NOFOLLOW) == 0 &&
          o.st.st_dev == dev && o.st.st_ino == ino) {
        o.fd = SharedFd(std::move(fd));
        o.gfid = g;
        o.rdwr = true;
        return o;
      }
      open_files.Erase(g);  // the handle is gone or another inode now: resolve afresh
    }
    Object o;
    o.fd.reset(::openat(index_fd.get(), rel.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!o.fd.valid()) {
      if (errno == ENOENT) return SysErr(ENOENT, "no object with " + Where(g));
      return SysErr(errno, "open the index entry of " + Where(g));
    }
    DRFS_ASSIGN_OR_RETURN(o.st, StatFd(o.fd.get()));
    DRFS_ASSIGN_OR_RETURN(o.gfid, ReadGfid(o.proc()));
    if (o.gfid == g && !S_ISDIR(o.st.st_mode)) return o;  // a file, symlink or special file
    if (S_ISLNK(o.st.st_mode) && o.gfid.is_null()) return ResolveDirHandle(g);
    return SysErr(ESTALE, "the index entry of " + Where(g) + " is not that object; run heal");
  }

  Result<Object> ResolveDir(const Gfid& g) {
    DRFS_ASSIGN_OR_RETURN(Object o, Resolve(g));
    if (!o.is_dir()) return SysErr(ENOTDIR, Where(g) + " is not a directory");
    return o;
  }

  bool HandleExists(const Gfid& g) {
    struct stat st {};
    return g == Gfid::Root() ||
           ::fstatat(index_fd.get(), HandleRel(g).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  }

  Status EnsureIndexDirs(const Gfid& g) {
    size_t slot = static_cast<size_t>(g.bytes[0]) << 8 | g.bytes[1];
    if (index_dirs[slot].load(std::memory_order_acquire)) return Status::Ok();
    // The leaf first: its parent exists unless this is the first gfid starting with that byte.
    const std::string leaf = HandleRel(g).substr(0, 5);
    if (::mkdirat(index_fd.get(), leaf.c_str(), 0700) != 0 && errno != EEXIST) {
      if (errno != ENOENT ||
          (::mkdirat(index_fd.get(), leaf.substr(0, 2).c_str(), 0700) != 0 && errno != EEXIST) ||
          (::mkdirat(index_fd.get(), leaf.c_str(), 0700) != 0 && errno != EEXIST)) {
        return SysErr(errno, "create index folder .drfs/gfid/" + leaf + " on brick " + dir);
      }
    }
    index_dirs[slot].store(true, std::memory_order_release);
    return Status::Ok();
  }

  std::string TmpName() { return "t" + std::to_string(seq.fetch_add(1)); }

  // Points the handle of directory `g` at parent/name, atomically.
  Status WriteDirHandle(const Gfid& g, const Gfid& parent, const std::string& name) {
    DRFS_RETURN_IF_ERROR(EnsureIndexDirs(g));
    std::string tmp = TmpName();
    std::string target = DirHandleTarget(parent, name);
    if (::symlinkat(target.c_str(), tmp_fd.get(), tmp.c_str()) != 0) {
      return SysErr(errno, "write the index entry of " + Where(g));
    }
    if (::renameat(tmp_fd.get(), tmp.c_str(), index_fd.get(), HandleRel(g).c_str()) != 0) {
      int e = errno;
      ::unlinkat(tmp_fd.get(), tmp.c_str(), 0);
      return SysErr(e, "write the index entry of " + Where(g));
    }
    return Status::Ok();
  }

  void RemoveHandle(const Gfid& g) {
    open_files.Erase(g);
    if (::unlinkat(index_fd.get(), HandleRel(g).c_str(), 0) != 0 && errno != ENOENT) {
      DRFS_LOG(Error) << "cannot remove the index entry of " << Where(g) << ": "
                      << std::strerror(errno) << "; it leaks until heal";
    }
  }

  // The link count of a non-directory's handle, or 0 if there is none.
  nlink_t HandleLinks(const Gfid& g) {
    struct stat st {};
    if (::fstatat(index_fd.get(), HandleRel(g).c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return 0;
    return st.st_nlink;
  }

  void SetPgfid(const Gfid& g, const Gfid& parent, const std::string& name) {
    // Best effort: ResolveGfid checks the hint and searches the parent if it is stale. The
    // handle may be (a link to) a user's symlink: open it without following, and write through
    // the fd's /proc path, which names exactly that inode.
    Fd h(::openat(index_fd.get(), HandleRel(g).c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (h.valid()) WritePgfid(ProcPath(h.get()), parent, name).IgnoreError();
  }

  // --- journal and intents --------------------------------------------------------------------

  Result<Lsn> Journal(const Record& r) {
    // Definite failures (the record is not in the journal) are kInternal with EIO; only an
    // unknown outcome is kDataLoss (see JournalFailed).
    if (DRFS_FAILPOINT("brick.journal.append")) {
      return Status(Code::kInternal,
                    "journal of brick " + dir + " refused the " +
                        std::string(changelog::OpTypeName(r.op)) +
                        " record (failure probe brick.journal.append); the op was undone",
                    EIO);
    }
    auto lsn = journal->Append(r);
    if (!lsn.ok() && lsn.status().code() == Code::kDataLoss) {
      // Written but not made durable: after a restart the record may or may not be there.
      return Status(Code::kDataLoss,
                    "journal of brick " + dir + " could not make the " +
                        std::string(changelog::OpTypeName(r.op)) + " record durable (" +
                        lsn.status().message() +
                        "); whether the op stands is settled when the brick restarts. Check the "
                        "disk holding " + dir + "/.drfs/changelog and restart the brick",
                    EIO);
    }
    if (!lsn.ok()) {
      return Status(Code::kInternal,
                    "journal of brick " + dir + " refused the " +
                        std::string(changelog::OpTypeName(r.op)) + " record (" +
                        lsn.status().ToString() +
                        "); the op was undone. Check the disk holding " + dir +
                        "/.drfs/changelog: if it is full, free space and the journal takes "
                        "appends again by itself; for anything else, fix it and restart the brick",
                    EIO);
    }
    return *lsn;
  }

  // After a failed Journal() of a namespace op: undo it, unless the record may have reached the
  // journal anyway (DataLoss); then the op and its intent stay as they are and Open() settles
  // it from what the journal holds, so disk and journal never disagree.
  Reply JournalFailed(const Intent& in, const Status& s, const std::string& what) {
    if (s.code() != Code::kDataLoss) {
      Rollback(in);
      RemoveIntent(in);
    }
    return ToReply(s.WithContext(what));
  }

  Status WriteIntent(Intent* in) {
    in->seq = seq.fetch_add(1);
    in->base_lsn = journal->written_lsn();  // never moves back; the op's record comes later
    DRFS_ASSIGN_OR_RETURN(in->slot, intents.Put(in->Encode()));
    return Status::Ok();
  }

  void RemoveIntent(const Intent& in) {
    Status s = intents.Clear(in.slot);
    if (!s.ok()) {
      DRFS_LOG(Error) << "brick " << dir << ": cannot clear an intent (" << s.message()
                      << "); the next open will look at it again";
    }
  }

  // --- undo / finish (used by Open() and when a journal append fails) --------------------------

  // Removes the tree entry parent/name if it is the object `g`.
  void RemoveEntryIf(const Gfid& parent, const std::string& name, const Gfid& g) {
    auto p = ResolveDir(parent);
    if (!p.ok()) return;
    auto e = StatEntry(p->fd.get(), name);
    if (!e.ok() || !e->exists || e->obj.gfid != g) return;
    if (::unlinkat(p->fd.get(), name.c_str(), e->obj.is_dir() ? AT_REMOVEDIR : 0) != 0) {
      DRFS_LOG(Error) << "undo: cannot remove " << Where(parent, name) << ": "
                      << std::strerror(errno);
    }
  }

  // Recreates an empty directory `g` at parent/name (undo of rmdir, or of a rename that
  // replaced it) and points its handle there.
  void RecreateDir(const Intent& in, const Gfid& g, const Gfid& parent, const std::string& name) {
    auto p = ResolveDir(parent);
    if (!p.ok()) {
      DRFS_LOG(Error) << "undo: cannot recreate " << Where(parent, name) << ": "
                      << p.status().ToString();
      return;
    }
    auto e = StatEntry(p->fd.get(), name);
    if (e.ok() && !e->exists) {
      std::string tmp = TmpName();
      Status s;
      if (::mkdirat(tmp_fd.get(), tmp.c_str(), 0700) != 0) {
        s = SysErr(errno, "mkdir");
      } else {
        std::string path = ProcPath(tmp_fd.get()) + "/" + tmp;
        s = WriteGfid(path, g);
        if (s.ok() && (::lchown(path.c_str(), in.uid, in.gid) != 0 ||
                       ::chmod(path.c_str(), in.mode & 07777) != 0)) {
          s = SysErr(errno, "chown/chmod");
        }
        if (s.ok() && ::renameat2(tmp_fd.get(), tmp.c_str(), p->fd.get(), name.c_str(),
                                  RENAME_NOREPLACE) != 0) {
          s = SysErr(errno, "rename into place");
        }
        if (!s.ok()) ::unlinkat(tmp_fd.get(), tmp.c_str(), AT_REMOVEDIR);
      }
      if (!s.ok()) {
        DRFS_LOG(Error) << "undo: cannot recreate directory " << Where(parent, name) << ": "
                        << s.ToString();
        return;
      }
    }
    WriteDirHandle(g, parent, name).IgnoreError();
  }

  void Rollback(const Intent& in) {
    switch (in.op) {
      case OpType::kCreate:
      case OpType::kMkdir:
      case OpType::kMknod:
      case OpType::kSymlink:
        // The gfid was new, so whatever carries it is this op's.
        RemoveEntryIf(in.parent, in.name, in.gfid);
        RemoveHandle(in.gfid);
        if (!in.tmp.empty()) {
          ::unlinkat(tmp_fd.get(), in.tmp.c_str(), in.op == OpType::kMkdir ? AT_REMOVEDIR : 0);
        }
        return;
      case OpType::kLink: {
        auto p = ResolveDir(in.parent);
        if (!p.ok()) return;
        auto e = StatEntry(p->fd.get(), in.name);
        struct stat h {};
        if (e.ok() && e->exists && e->obj.gfid == in.gfid &&
            ::fstatat(index_fd.get(), HandleRel(in.gfid).c_str(), &h, AT_SYMLINK_NOFOLLOW) == 0 &&
            SameInode(h, e->obj.st) && h.st_nlink > 2) {
          ::unlinkat(p->fd.get(), in.name.c_str(), 0);
        }
        return;
      }
      case OpType::kUnlink: {
        auto p = ResolveDir(in.parent);
        if (!p.ok()) return;
        auto e = StatEntry(p->fd.get(), in.name);
        if (e.ok() && !e->exists &&
            ::linkat(index_fd.get(), HandleRel(in.gfid).c_str(), p->fd.get(), in.name.c_str(), 0) !=
                0 &&
            errno != ENOENT) {
          DRFS_LOG(Error) << "undo: cannot relink " << Where(in.parent, in.name) << ": "
                          << std::strerror(errno);
        }
        return;
      }
      case OpType::kRmdir:
        RecreateDir(in, in.gfid, in.parent, in.name);
        return;
      case OpType::kRename:
        RollbackRename(in);
        return;
      default:
        return;
    }
  }

  void RollbackRename(const Intent& in) {
    auto p = ResolveDir(in.parent);
    auto q = ResolveDir(in.new_parent);
    if (!p.ok() || !q.ok()) {
      DRFS_LOG(Error) << "undo: cannot resolve the parents of rename " << Where(in.parent, in.name)
                      << " -> " << Where(in.new_parent, in.new_name);
      return;
    }
    {
      std::unique_lock l(handles_mu);
      auto at_new = StatEntry(q->fd.get(), in.new_name);
      auto at_old = StatEntry(p->fd.get(), in.name);
      if (at_new.ok() && at_old.ok() && at_new->exists && at_new->obj.gfid == in.gfid) {
        int r = 0;
        if (in.exchange) {
          if (at_old->exists && at_old->obj.gfid == in.replaced) {
            r = ::renameat2(q->fd.get(), in.new_name.c_str(), p->fd.get(), in.name.c_str(),
                            RENAME_EXCHANGE);
          }
        } else if (!at_old->exists) {
          r = ::renameat2(q->fd.get(), in.new_name.c_str(), p->fd.get(), in.name.c_str(),
                          RENAME_NOREPLACE);
        }
        if (r != 0) {
          DRFS_LOG(Error) << "undo: cannot rename " << Where(in.new_parent, in.new_name)
                          << " back: " << std::strerror(errno);
        }
      }
      if (in.source_dir) {
        WriteDirHandle(in.gfid, in.parent, in.name).IgnoreError();
      } else {
        SetPgfid(in.gfid, in.parent, in.name);
      }
      if (in.exchange) {
        if (in.replaced_dir) {
          WriteDirHandle(in.replaced, in.new_parent, in.new_name).IgnoreError();
        } else {
          SetPgfid(in.replaced, in.new_parent, in.new_name);
        }
      }
    }
    if (!in.exchange && !in.replaced.is_null()) {
      // The replaced object's handle is dropped only after journaling, so it can come back.
      if (in.replaced_dir) {
        RecreateDir(in, in.replaced, in.new_parent, in.new_name);
      } else {
        auto e = StatEntry(q->fd.get(), in.new_name);
        if (e.ok() && !e->exists &&
            ::linkat(index_fd.get(), HandleRel(in.replaced).c_str(), q->fd.get(),
                     in.new_name.c_str(), 0) != 0) {
          DRFS_LOG(Error) << "undo: cannot relink " << Where(in.new_parent, in.new_name) << ": "
                          << std::strerror(errno);
        }
      }
    }
  }

  // Finishes an op whose record is in the journal.
  void Complete(const Intent& in) {
    switch (in.op) {
      case OpType::kCreate:
      case OpType::kMkdir:
      case OpType::kMknod:
      case OpType::kSymlink:
        if (!in.tmp.empty()) {
          ::unlinkat(tmp_fd.get(), in.tmp.c_str(), in.op == OpType::kMkdir ? AT_REMOVEDIR : 0);
        }
        // A journaled mkdir's handle is written after its record: redo it if the crash won.
        if (in.op == OpType::kMkdir) {
          Status h = WriteDirHandle(in.gfid, in.parent, in.name);
          if (!h.ok()) DRFS_LOG(Error) << "brick " << dir << ": " << h.ToString();
        }
        return;
      case OpType::kUnlink:
        if (HandleLinks(in.gfid) == 1) RemoveHandle(in.gfid);
        return;
      case OpType::kRmdir: {
        auto p = ResolveDir(in.parent);
        if (p.ok()) {
          auto e = StatEntry(p->fd.get(), in.name);
          if (e.ok() && e->exists && e->obj.gfid == in.gfid) return;  // cannot happen: journaled
        }
        RemoveHandle(in.gfid);
        return;
      }
      case OpType::kRename: {
        {
          std::unique_lock l(handles_mu);
          if (in.source_dir) {
            WriteDirHandle(in.gfid, in.new_parent, in.new_name).IgnoreError();
          } else {
            SetPgfid(in.gfid, in.new_parent, in.new_name);
          }
          if (in.exchange) {
            if (in.replaced_dir) {
              WriteDirHandle(in.replaced, in.parent, in.name).IgnoreError();
            } else {
              SetPgfid(in.replaced, in.parent, in.name);
            }
          }
        }
        DropReplaced(in);
        return;
      }
      default:
        return;
    }
  }

  // After a journaled rename: the object it replaced is gone if that was its last tree name.
  void DropReplaced(const Intent& in) {
    if (in.exchange || in.replaced.is_null()) return;
    if (in.replaced_dir || HandleLinks(in.replaced) == 1) RemoveHandle(in.replaced);
  }

  static bool Matches(const Intent& in, const Record& r) {
    if (r.op != in.op || r.gfid != in.gfid || r.parent != in.parent || r.name != in.name) {
      return false;
    }
    return in.op != OpType::kRename || (r.new_parent == in.new_parent && r.new_name == in.new_name);
  }

  Status Repair();

  // --- ops -----------------------------------------------------------------------------------

  Reply Lookup(const Request& q);
  Reply Getattr(const Request& q);
  Reply Setattr(const Request& q);
  Reply CreateObject(const Request& q);
  Reply Link(const Request& q);
  Reply Unlink(const Request& q);
  Reply Rmdir(const Request& q);
  Reply Rename(const Request& q);
  Reply Readlink(const Request& q);
  Reply Read(const Request& q);
  Reply Write(const Request& q);
  Reply Fsync(const Request& q);
  Reply Fallocate(const Request& q);
  Reply Readdir(const Request& q);
  Reply Statfs(const Request& q);
  Reply Access(const Request& q);
  Reply Getxattr(const Request& q);
  Reply Setxattr(const Request& q);
  Reply Listxattr(const Request& q);
  Reply Removexattr(const Request& q);
  Reply ResolveGfid(const Request& q);
  Reply Xattrop(const Request& q, bool allow_when_read_only);
  Reply HealIndex(const Request& q);
  // Drops the heal index entry of `g` if its object is gone or has no markers (what a crash
  // between the two steps of an xattrop leaves); true if it did.
  bool DropStaleHealEntry(const Gfid& g);

  std::string ArbiterNote() const {
    return "brick " + dir + " is an arbiter: it keeps names and attributes but no file data";
  }

  Result<std::string> DirPath(const Object& o);
  // A tree path of a non-directory inode, by walking the whole tree.
  Result<std::string> FindInode(const struct stat& want);
  // Opens the object for I/O (a regular file, or a directory for fsync) through its O_PATH fd.
  // A regular file is opened O_RDWR when it can be, and kept in open_files.
  Result<SharedFd> Reopen(const Object& o, int flags, const Gfid& g);
};

namespace {

// The file type a create-type op makes.
mode_t CreateType(Op op, uint32_t mode) {
  switch (op) {
    case Op::kMkdir:
      return S_IFDIR;
    case Op::kSymlink:
      return S_IFLNK;
    case Op::kMknod:
      return (mode & S_IFMT) == 0 ? S_IFREG : (mode & S_IFMT);
    default:
      return S_IFREG;
  }
}

OpType RecordType(Op op) {
  switch (op) {
    case Op::kMkdir:
      return OpType::kMkdir;
    case Op::kMknod:
      return OpType::kMknod;
    case Op::kSymlink:
      return OpType::kSymlink;
    default:
      return OpType::kCreate;
  }
}

const char* CrashProbe(Op op) {
  switch (op) {
    case Op::kMkdir:
      return "brick.mkdir.after_mkdir";
    case Op::kMknod:
      return "brick.mknod.after_mknod";
    case Op::kSymlink:
      return "brick.symlink.after_symlink";
    default:
      return "brick.create.after_link";
  }
}

}  // namespace

Status Backend::Impl::Repair() {
  std::vector<std::pair<int, std::optional<Intent>>> live;  // (slot, intent)
  {
    DRFS_ASSIGN_OR_RETURN(auto slots, intents.ReadAll());
    for (auto& [slot, text] : slots) live.emplace_back(slot, Intent::Decode(text));
  }
  Lsn from = std::numeric_limits<Lsn>::max();
  for (auto& [slot, in] : live) {
    if (in) from = std::min(from, in->base_lsn + 1);
  }
  std::vector<Record> tail;
  const Lsn last = journal->last_lsn();
  if (from <= last) {
    if (last - from > kRepairWindow) from = last - kRepairWindow;
    changelog::ReaderOptions ro;
    ro.from_lsn = from;
    ro.bound = changelog::ReaderOptions::Bound::kOnDisk;
    auto r = changelog::Reader::Open(journal->dir(), ro);
    if (!r.ok() && r.status().code() == Code::kOutOfRange) {
      ro.from_lsn = 0;
      r = changelog::Reader::Open(journal->dir(), ro);
    }
    if (!r.ok()) return r.status().WithContext("read the journal to repair intents");
    for (;;) {
      auto e = (*r)->Next();
      if (!e.ok()) return e.status().WithContext("read the journal to repair intents");
      if (!e->has_value()) break;
      tail.push_back(std::move((*e)->record));
    }
  }
  // Undo newest first, so each op sees the state it left.
  std::sort(live.begin(), live.end(), [](const auto& a, const auto& b) {
    uint64_t x = a.second ? a.second->seq : 0, y = b.second ? b.second->seq : 0;
    return x > y;
  });
  for (auto& [slot, in] : live) {
    if (!in) {
      // Its checksum matched but it does not parse (written by another version?): the op cannot
      // be settled safely, so keep it and refuse to start.
      return DataLoss("brick " + dir + ": intent slot " + std::to_string(slot) + " of " + dir +
                      "/.drfs/intents does not parse; an interrupted op cannot be settled. "
                      "Start the brick with the drfs version that wrote it");
    }
    const Record* rec = nullptr;
    for (const Record& r : tail) {
      if (r.lsn > in->base_lsn && Matches(*in, r)) rec = &r;
    }
    std::string what = std::string(changelog::OpTypeName(in->op)) + " " +
                       Where(in->parent, in->name) + " (gfid " + in->gfid.ToString() + ")";
    if (rec) {
      Complete(*in);
      ++repair.intents_completed;
      DRFS_LOG(Warn) << "brick " << dir << ": finished " << what
                     << " interrupted by a crash after it was journaled at LSN " << rec->lsn;
    } else {
      Rollback(*in);
      ++repair.intents_rolled_back;
      DRFS_LOG(Warn) << "brick " << dir << ": rolled back " << what
                     << " interrupted by a crash before it was journaled";
    }
    in->slot = slot;
    RemoveIntent(*in);
  }
  // Anything left in .drfs/tmp belonged to an op that is now undone or finished.
  Fd d(::openat(tmp_fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (DIR* dp = d.valid() ? ::fdopendir(d.get()) : nullptr) {
    d.release();
    std::vector<std::string> names;
    while (struct dirent* de = ::readdir(dp)) {
      std::string name = de->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(dp);
    for (const auto& name : names) {
      if (::unlinkat(tmp_fd.get(), name.c_str(), 0) != 0 && errno == EISDIR) {
        ::unlinkat(tmp_fd.get(), name.c_str(), AT_REMOVEDIR);
      }
    }
  }
  return Status::Ok();
}

// --- read ops --------------------------------------------------------------------------------

Reply Backend::Impl::Lookup(const Request& q) {
  if (int e = NameError(q.name))
    return ErrorReply(e, "lookup '" + q.name + "' in " + Where(q.parent));
  if (q.parent == Gfid::Root() && q.name == kPrivateDir) {
    return ErrorReply(ENOENT, "lookup " + Where(q.parent, q.name) + ": no such entry");
  }
  auto p = ResolveDir(q.parent);
  if (!p.ok()) return ToReply(p.status());
  auto e = StatEntry(p->fd.get(), q.name);
  if (!e.ok()) return ToReply(e.status());
  if (!e->exists)
    return ErrorReply(ENOENT, "lookup " + Where(q.parent, q.name) + ": no such entry");
  auto pending = ReadPending(e->obj, Where(q.parent, q.name));
  if (!pending.ok()) return ToReply(pending.status());
  Reply r;
  r.attr = ToIatt(e->obj.st, e->obj.gfid);
  if (!AllZero(*pending)) r.pending = std::move(*pending);
  return r;
}

Reply Backend::Impl::Getattr(const Request& q) {
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status());
  auto pending = ReadPending(*o, Where(q.gfid));
  if (!pending.ok()) return ToReply(pending.status());
  Reply r;
  r.attr = ToIatt(o->st, o->gfid);
  if (!AllZero(*pending)) r.pending = std::move(*pending);
  return r;
}

Reply Backend::Impl::Readlink(const Request& q) {
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status());
  if (!S_ISLNK(o->st.st_mode)) {
    return ErrorReply(EINVAL, "readlink " + Where(q.gfid) + ": not a symbolic link");
  }
  std::string buf(PATH_MAX, '\0');
  ssize_t n = ::readlinkat(o->fd.get(), "", buf.data(), buf.size());
  if (n < 0) return ToReply(SysErr(errno, "readlink " + Where(q.gfid)));
  buf.resize(static_cast<size_t>(n));
  Reply r;
  r.data = std::move(buf);
  return r;
}

Result<SharedFd> Backend::Impl::Reopen(const Object& o, int flags, const Gfid& g) {
  if (o.is_dir() && (flags & O_ACCMODE) != O_RDONLY) {
    return SysErr(EISDIR, Where(g) + " is a directory");
  }
  if (!o.is_dir() && !S_ISREG(o.st.st_mode)) {
    // Opening a device or a FIFO could block or touch hardware; a brick only does file I/O.
    return SysErr(EINVAL, Where(g) + " is not a regular file");
  }
  if (o.rdwr) return o.fd;  // already O_RDWR (from open_files)
  // /proc/self/fd/N reopens exactly the inode resolved, never a symlink's target.
  const std::string proc = o.proc();
  if (!o.is_dir()) {
    Fd rw(::open(proc.c_str(), O_RDWR | O_CLOEXEC));
    if (rw.valid()) {
      auto shared = std::make_shared<const Fd>(std::move(rw));
      open_files.Put(g, shared, o.st);
      return SharedFd(std::move(shared));
    }
    // Not writable (a read-only mount, say): open just for what the op needs, uncached.
  }
  SharedFd f;
  f.reset(::open(proc.c_str(), flags | O_CLOEXEC));
  if (!f.valid()) return SysErr(errno, "open " + Where(g));
  return f;
}

Reply Backend::Impl::Read(const Request& q) {
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status());
  if (o->is_dir()) return ErrorReply(EISDIR, "read " + Where(q.gfid) + ": is a directory");
  if (options.arbiter) {
    return ErrorReply(EIO, "read " + Where(q.gfid) + ": " + ArbiterNote() +
                               "; read from a data brick of its replica set");
  }
  auto f = Reopen(*o, O_RDONLY, q.gfid);
  if (!f.ok()) return ToReply(f.status());
  size_t want = static_cast<size_t>(std::min<uint64_t>(q.length, brick_proto::kMaxIo));
  Reply r;
  r.data.resize(want);
  size_t got = 0;
  while (got < want) {
    ssize_t n =
        ::pread(f->get(), r.data.data() + got, want - got, static_cast<off_t>(q.offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ToReply(SysErr(errno, "read " + Where(q.gfid)));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  r.data.resize(got);
  return r;
}

Reply Backend::Impl::Fsync(const Request& q) {
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status());
  auto f = Reopen(*o, o->is_dir() ? O_RDONLY | O_DIRECTORY : O_RDONLY, q.gfid);
  if (!f.ok()) return ToReply(f.status());
  int rc = q.flags == 1 ? ::fdatasync(f->get()) : ::fsync(f->get());
  if (rc != 0) return ToReply(SysErr(errno, "fsync " + Where(q.gfid)));
  return Reply{};
}

Reply Backend::Impl::Readdir(const Request& q) {
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status());
  if (!o->is_dir()) return ErrorReply(ENOTDIR, "readdir " + Where(q.gfid) + ": not a directory");
  Fd d(::openat(o->fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d.valid()) return ToReply(SysErr(errno, "open directory " + Where(q.gfid)));
  if (q.offset != 0 && ::lseek(d.get(), static_cast<off_t>(q.offset), SEEK_SET) < 0) {
    return ToReply(SysErr(
        errno, "seek directory " + Where(q.gfid) + " to cookie " + std::to_string(q.offset)));
  }
  const size_t max = q.length == 0 ? kDefaultDirEntries
                                   : std::min<uint64_t>(q.length, brick_proto::kMaxDirEntries);
  const bool plus = (q.flags & brick_proto::kReaddirPlus) != 0;
  const bool root = q.gfid == Gfid::Root();
  Reply r;
  alignas(8) char buf[32 * 1024];
  while (r.entries.size() < max) {
    ssize_t n = ::getdents64(d.get(), buf, sizeof buf);
    if (n < 0) return ToReply(SysErr(errno, "read directory " + Where(q.gfid)));
    if (n == 0) {
      r.eof = true;
      break;
    }
    for (ssize_t pos = 0; pos < n;) {
      const auto* de = reinterpret_cast<const struct dirent64*>(buf + pos);
      pos += de->d_reclen;
      std::string name = de->d_name;
      if (name == "." || name == ".." || (root && name == kPrivateDir)) continue;
      DirEntry e;
      e.name = name;
      e.type = de->d_type;
      e.cookie = static_cast<uint64_t>(de->d_off);
      auto st = StatEntry(d.get(), name);
      if (st.ok() && !st->exists) continue;  // removed since getdents
      if (st.ok()) {
        e.gfid = st->obj.gfid;
        if (plus) {
          e.has_attr = true;
          e.attr = ToIatt(st->obj.st, st->obj.gfid);
        }
      }
      r.entries.push_back(std::move(e));
      if (r.entries.size() == max) {
        // Continue after this entry next time; what is left of the buffer is read again then.
        break;
      }
    }
  }
  return r;
}

Reply Backend::Impl::Statfs(const Request& q) {
  auto o = Resolve(q.gfid.is_null() ? Gfid::Root() : q.gfid);
  if (!o.ok()) return ToReply(o.status());
  struct statvfs s {};
  if (::fstatvfs(o->fd.get(), &s) != 0) return ToReply(SysErr(errno, "statfs " + dir));
  Reply r;
  r.statfs.bsize = s.f_bsize;
  r.statfs.frsize = s.f_frsize;
  r.statfs.blocks = s.f_blocks;
  r.statfs.bfree = s.f_bfree;
  r.statfs.bavail = s.f_bavail;
  r.statfs.files = s.f_files;
  r.statfs.ffree = s.f_ffree;
  r.statfs.favail = s.f_favail;
  r.statfs.namemax = s.f_namemax;
  return r;
}

Reply Backend::Impl::Access(const Request& q) {
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status());
  if (::faccessat(AT_FDCWD, o->proc().c_str(), static_cast<int>(q.flags), 0) != 0) {
    return ToReply(SysErr(errno, "access " + Where(q.gfid)));
  }
  return Reply{};
}

Reply Backend::Impl::Getxattr(const Request& q) {
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status());
  const std::string what = "getxattr " + q.xattr_name + " of " + Where(q.gfid);
  if (IsReserved(q.xattr_name)) return ErrorReply(ENODATA, what + ": no such attribute");
  const std::string path = o->proc();
  for (int attempt = 0; attempt < 8; ++attempt) {
    ssize_t n = ::getxattr(path.c_str(), q.xattr_name.c_str(), nullptr, 0);
    if (n < 0) return ToReply(SysErr(errno, what));
    Reply r;
    r.data.resize(static_cast<size_t>(n));
    n = ::getxattr(path.c_str(), q.xattr_name.c_str(), r.data.data(), r.data.size());
    if (n < 0 && errno == ERANGE) continue;  // grew meanwhile
    if (n < 0) return ToReply(SysErr(errno, what));
    r.data.resize(static_cast<size_t>(n));
    return r;
  }
  return ErrorReply(EAGAIN, what + ": the value keeps changing; retry");
}

Reply Backend::Impl::Listxattr(const Request& q) {
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status());
  const std::string what = "listxattr " + Where(q.gfid);
  const std::string path = o->proc();
  for (int attempt = 0; attempt < 8; ++attempt) {
    ssize_t n = ::listxattr(path.c_str(), nullptr, 0);
    if (n < 0) return ToReply(SysErr(errno, what));
    std::string buf(static_cast<size_t>(n), '\0');
    n = ::listxattr(path.c_str(), buf.data(), buf.size());
    if (n < 0 && errno == ERANGE) continue;
    if (n < 0) return ToReply(SysErr(errno, what));
    buf.resize(static_cast<size_t>(n));
    Reply r;
    for (size_t pos = 0; pos < buf.size();) {
      size_t end = buf.find('\0', pos);
      if (end == std::string::npos) end = buf.size();
      std::string name = buf.substr(pos, end - pos);
      if (!name.empty() && !IsReserved(name)) r.names.push_back(std::move(name));
      pos = end + 1;
    }
    return r;
  }
  return ErrorReply(EAGAIN, what + ": the list keeps changing; retry");
}

Result<std::string> Backend::Impl::DirPath(const Object& o) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink(o.proc().c_str(), buf, sizeof buf);
  if (n < 0) return SysErr(errno, "resolve the path of " + Where(o.gfid));
  std::string p(buf, static_cast<size_t>(n));
  if (p == real_dir) return std::string("/");
  if (!p.starts_with(real_dir + "/") || p.ends_with(" (deleted)")) {
    return SysErr(ESTALE, Where(o.gfid) + " is not in the brick's tree");
  }
  return p.substr(real_dir.size());
}

Reply Backend::Impl::ResolveGfid(const Request& q) {
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status());
  Reply r;
  if (o->is_dir()) {
    auto p = DirPath(*o);
    if (!p.ok()) return ToReply(p.status());
    r.data = *p;
    return r;
  }
  const std::string what = "resolve " + Where(q.gfid);
  if (o->st.st_nlink < 2) return ErrorReply(ENOENT, what + ": it has no name in the tree");
  std::string v(16 + brick_proto::kMaxName + 1, '\0');
  ssize_t n = ::getxattr(o->proc().c_str(), kPgfidXattr, v.data(), v.size());
  Gfid parent;
  std::string name;
  if (n >= 17) {
    std::memcpy(parent.bytes.data(), v.data(), 16);
    name = v.substr(16, static_cast<size_t>(n) - 16);
  }
  auto p = n >= 17 ? ResolveDir(parent) : Result<Object>(SysErr(ENOENT, "no parent recorded"));
  if (p.ok()) {
    auto e = StatEntry(p->fd.get(), name);
    if (e.ok() && e->exists && SameInode(e->obj.st, o->st)) {
      auto pp = DirPath(*p);
      if (!pp.ok()) return ToReply(pp.status());
      r.data = (*pp == "/" ? "" : *pp) + "/" + name;
      return r;
    }
  }
  // The recorded name was unlinked or renamed away while other links remain (rare): search.
  auto found = FindInode(o->st);
  if (!found.ok()) return ToReply(found.status().WithContext(what));
  r.data = *found;
  return r;
}

Result<std::string> Backend::Impl::FindInode(const struct stat& want) {
  std::vector<std::pair<Fd, std::string>> todo;
  todo.emplace_back(Fd(::openat(root_fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)), "");
  while (!todo.empty()) {
    auto [d, path] = std::move(todo.back());
    todo.pop_back();
    if (!d.valid()) continue;
    alignas(8) char buf[16 * 1024];
    ssize_t got;
    while ((got = ::getdents64(d.get(), buf, sizeof buf)) > 0) {
      for (ssize_t pos = 0; pos < got;) {
        const auto* de = reinterpret_cast<const struct dirent64*>(buf + pos);
        pos += de->d_reclen;
        std::string name = de->d_name;
        if (name == "." || name == ".." || (path.empty() && name == kPrivateDir)) continue;
        if (de->d_ino == want.st_ino && de->d_type != DT_DIR) return path + "/" + name;
        if (de->d_type == DT_DIR) {
          todo.emplace_back(
              Fd(::openat(d.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)),
              path + "/" + name);
        }
      }
    }
  }
  return SysErr(ENOENT, "no tree name holds the object");
}

// --- mutations -------------------------------------------------------------------------------

Reply Backend::Impl::CreateObject(const Request& q) {
  const char* verb = q.op == Op::kMkdir     ? "mkdir"
                     : q.op == Op::kMknod   ? "mknod"
                     : q.op == Op::kSymlink ? "symlink"
                                            : "create";
  const std::string what = std::string(verb) + " " + Where(q.parent, q.name);
  if (Status s = CheckName(q.parent, q.name); !s.ok()) return ToReply(s);
  if (q.gfid.is_null() || q.gfid == Gfid::Root()) {
    return ErrorReply(EINVAL, what + ": the request carries no gfid for the new object");
  }
  if (q.op == Op::kSymlink) {
    if (q.target.empty()) return ErrorReply(ENOENT, what + ": empty symlink target");
    if (q.target.find('\0') != std::string::npos) {
      return ErrorReply(EINVAL, what + ": symlink target holds a NUL byte");
    }
    if (q.target.size() > changelog::kMaxTargetLen) {
      return ErrorReply(ENAMETOOLONG, what + ": symlink target is longer than 4095 bytes");
    }
  }
  const mode_t type = CreateType(q.op, q.mode);
  const bool is_dir = q.op == Op::kMkdir, is_link = q.op == Op::kSymlink;

  StripeLock lock(locks, {LockTable::EntrySlot(q.parent, q.name), LockTable::ObjectSlot(q.gfid)});
  auto p = ResolveDir(q.parent);
  if (!p.ok()) return ToReply(p.status().WithContext(what));
  auto existing = StatEntry(p->fd.get(), q.name);
  if (!existing.ok()) return ToReply(existing.status().WithContext(what));
  if (existing->exists) {
    const Object& e = existing->obj;
    if (q.op == Op::kCreate && !(q.flags & brick_proto::kCreateExclusive)) {
      // open(O_CREAT) without O_EXCL on an existing name opens it.
      if (e.is_dir()) return ErrorReply(EISDIR, what + ": is a directory");
      if (S_ISLNK(e.st.st_mode)) {
        return ErrorReply(ELOOP, what + ": is a symbolic link (not followed)");
      }
      Reply r;
      r.attr = ToIatt(e.st, e.gfid);
      return r;
    }
    return ErrorReply(EEXIST, what + ": File exists");
  }
  if (HandleExists(q.gfid)) {
    return ErrorReply(EEXIST, what + ": gfid " + q.gfid.ToString() +
                                  " already exists on this brick (under another name)");
  }

  // What the kernel would give a local mkdir/create in this parent.
  uint32_t gid = q.gid;
  uint32_t perm = is_dir ? (q.mode & 01777) : (q.mode & 07777);
  if (p->st.st_mode & S_ISGID) {
    gid = p->st.st_gid;
    if (is_dir) perm |= S_ISGID;
  }

  Intent in;
  in.op = RecordType(q.op);
  in.gfid = q.gfid;
  in.parent = q.parent;
  in.name = q.name;
  in.tmp = TmpName();
  if (Status s = WriteIntent(&in); !s.ok()) return ToReply(s.WithContext(what));
  auto fail = [&](const Status& s) {
    Rollback(in);
    RemoveIntent(in);
    return ToReply(s.WithContext(what));
  };

  // Build the object under .drfs/tmp, complete with gfid, owner and mode. Regular files and
  // directories are opened for real, so xattrs, owner and mode are set through the descriptor
  // (no /proc path walk), and owner and mode are only changed when the kernel did not already
  // give the wanted ones (running as that owner, umask not in the way). Special files and
  // symlinks cannot be opened that way: they go through an O_PATH descriptor's /proc path.
  const bool real_fd = is_dir || S_ISREG(type);
  Fd obj;
  if (is_dir) {
    if (::mkdirat(tmp_fd.get(), in.tmp.c_str(), perm & 0777) != 0) return fail(SysErr(errno, verb));
    obj.reset(::openat(tmp_fd.get(), in.tmp.c_str(),
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  } else if (S_ISREG(type)) {
    obj.reset(::openat(tmp_fd.get(), in.tmp.c_str(),
                       O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, perm & 0777));
    if (!obj.valid()) return fail(SysErr(errno, verb));
  } else {
    int rc = is_link ? ::symlinkat(q.target.c_str(), tmp_fd.get(), in.tmp.c_str())
                     : ::mknodat(tmp_fd.get(), in.tmp.c_str(), type | 0600,
                                 static_cast<dev_t>(q.rdev));
    if (rc != 0) return fail(SysErr(errno, verb));
    obj.reset(::openat(tmp_fd.get(), in.tmp.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  }
  if (!obj.valid()) return fail(SysErr(errno, "open the new object"));
  const std::string path = real_fd ? std::string() : ProcPath(obj.get());
  auto set_xattr = [&](const char* name, std::string_view v, const char* what_set) -> Status {
    int rc = real_fd ? ::fsetxattr(obj.get(), name, v.data(), v.size(), 0)
                     : ::setxattr(path.c_str(), name, v.data(), v.size(), 0);
    return rc == 0 ? Status::Ok() : SysErr(errno, what_set);
  };
  const std::string_view gfid_bytes(reinterpret_cast<const char*>(q.gfid.bytes.data()),
                                    q.gfid.bytes.size());
  if (Status s = set_xattr(kGfidXattr, gfid_bytes, "set the gfid"); !s.ok()) return fail(s);
  if (!is_dir) {
    std::string v(reinterpret_cast<const char*>(q.parent.bytes.data()), q.parent.bytes.size());
    v += q.name;
    if (Status s = set_xattr(kPgfidXattr, v, "set the parent"); !s.ok()) return fail(s);
  }
  auto built = StatFd(obj.get());
  if (!built.ok()) return fail(built.status());
  // chown before chmod: chown clears set-id bits.
  if (built->st_uid != q.uid || built->st_gid != gid) {
    if (::fchownat(obj.get(), "", q.uid, gid, AT_EMPTY_PATH) != 0)
      return fail(SysErr(errno, "chown"));
    built = StatFd(obj.get());
    if (!built.ok()) return fail(built.status());
  }
  if (!is_link && (built->st_mode & 07777) != perm) {
    int rc = real_fd ? ::fchmod(obj.get(), perm) : ::chmod(path.c_str(), perm);
    if (rc != 0) return fail(SysErr(errno, "chmod"));
  }
  if (!is_dir) {
    if (Status s = EnsureIndexDirs(q.gfid); !s.ok()) return fail(s);
    if (::linkat(tmp_fd.get(), in.tmp.c_str(), index_fd.get(), HandleRel(q.gfid).c_str(), 0) != 0) {
      return fail(SysErr(errno, "link the index entry"));
    }
  }
  // The tree name appears complete or not at all.
  if (::renameat2(tmp_fd.get(), in.tmp.c_str(), p->fd.get(), q.name.c_str(), RENAME_NOREPLACE) !=
      0) {
    return fail(SysErr(errno, verb));
  }
  // A new directory's handle is written only once its MKDIR is journaled: until then nothing
  // can resolve it, so no op inside it can be journaled before it.
  auto st = StatFd(obj.get());
  if (!st.ok()) return fail(st.status());
  DRFS_FAILPOINT(CrashProbe(q.op));

  Record rec;
  rec.op = in.op;
  rec.gfid = q.gfid;
  rec.parent = q.parent;
  rec.name = q.name;
  rec.mode = st->st_mode;
  rec.uid = st->st_uid;
  rec.gid = st->st_gid;
  rec.rdev = st->st_rdev;
  if (is_link) rec.symlink_target = q.target;
  auto lsn = Journal(rec);
  if (!lsn.ok()) return JournalFailed(in, lsn.status(), what);
  if (is_dir) {
    if (Status s = WriteDirHandle(q.gfid, q.parent, q.name); !s.ok()) {
      // Journaled, so it stands; the intent stays and the next Open() writes the handle.
      return ToReply(s.WithContext(what + " (journaled as LSN " + std::to_string(*lsn) +
                                   "; restart the brick to finish indexing it)"));
    }
  }
  RemoveIntent(in);
  if (S_ISREG(type)) open_files.Put(q.gfid, std::make_shared<const Fd>(std::move(obj)), *st);
  Reply r;
  r.attr = ToIatt(*st, q.gfid);
  r.lsn = *lsn;
  return r;
}

Reply Backend::Impl::Link(const Request& q) {
  const std::string what = "link " + Where(q.gfid) + " as " + Where(q.parent, q.name);
  if (Status s = CheckName(q.parent, q.name); !s.ok()) return ToReply(s);
  StripeLock lock(locks, {LockTable::EntrySlot(q.parent, q.name), LockTable::ObjectSlot(q.gfid)});
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status().WithContext(what));
  if (o->is_dir()) return ErrorReply(EPERM, what + ": cannot hard-link a directory");
  auto p = ResolveDir(q.parent);
  if (!p.ok()) return ToReply(p.status().WithContext(what));
  auto existing = StatEntry(p->fd.get(), q.name);
  if (!existing.ok()) return ToReply(existing.status().WithContext(what));
  if (existing->exists) return ErrorReply(EEXIST, what + ": File exists");

  Intent in;
  in.op = OpType::kLink;
  in.gfid = q.gfid;
  in.parent = q.parent;
  in.name = q.name;
  if (Status s = WriteIntent(&in); !s.ok()) return ToReply(s.WithContext(what));
  if (::linkat(index_fd.get(), HandleRel(q.gfid).c_str(), p->fd.get(), q.name.c_str(), 0) != 0) {
    Status s = SysErr(errno, what);
    RemoveIntent(in);
    return ToReply(s);
  }
  SetPgfid(q.gfid, q.parent, q.name);
  DRFS_FAILPOINT("brick.link.after_link");
  Record rec;
  rec.op = OpType::kLink;
  rec.gfid = q.gfid;
  rec.parent = q.parent;
  rec.name = q.name;
  auto lsn = Journal(rec);
  if (!lsn.ok()) return JournalFailed(in, lsn.status(), what);
  RemoveIntent(in);
  Reply r;
  auto st = StatFd(o->fd.get());
  if (st.ok()) r.attr = ToIatt(*st, q.gfid);
  r.lsn = *lsn;
  return r;
}

Reply Backend::Impl::Unlink(const Request& q) {
  const bool is_rmdir = q.op == Op::kRmdir;
  const std::string what = std::string(is_rmdir ? "rmdir " : "unlink ") + Where(q.parent, q.name);
  if (Status s = CheckName(q.parent, q.name); !s.ok()) return ToReply(s);
  auto p = ResolveDir(q.parent);
  if (!p.ok()) return ToReply(p.status().WithContext(what));
  // Which object the name holds decides the second stripe: look, lock, look again.
  for (;;) {
    auto peek = StatEntry(p->fd.get(), q.name);
    if (!peek.ok()) return ToReply(peek.status().WithContext(what));
    if (!peek->exists) return ErrorReply(ENOENT, what + ": No such file or directory");
    StripeLock lock(
        locks, {LockTable::EntrySlot(q.parent, q.name), LockTable::ObjectSlot(peek->obj.gfid)});
    auto e = StatEntry(p->fd.get(), q.name);
    if (!e.ok()) return ToReply(e.status().WithContext(what));
    if (!e->exists) return ErrorReply(ENOENT, what + ": No such file or directory");
    if (e->obj.gfid != peek->obj.gfid || !SameInode(e->obj.st, peek->obj.st)) continue;
    const Object& victim = e->obj;
    if (is_rmdir && !victim.is_dir()) return ErrorReply(ENOTDIR, what + ": Not a directory");
    if (!is_rmdir && victim.is_dir()) return ErrorReply(EISDIR, what + ": Is a directory");
    if (victim.gfid.is_null()) {
      return ErrorReply(EIO, what +
                                 ": the entry has no gfid (it was made behind the brick's "
                                 "back); remove it on the brick by hand or run heal");
    }
    Intent in;
    in.op = is_rmdir ? OpType::kRmdir : OpType::kUnlink;
    in.gfid = victim.gfid;
    in.parent = q.parent;
    in.name = q.name;
    in.mode = victim.st.st_mode & 07777;
    in.uid = victim.st.st_uid;
    in.gid = victim.st.st_gid;
    in.last = !is_rmdir && victim.st.st_nlink <= 2;  // this name + the handle
    if (Status s = WriteIntent(&in); !s.ok()) return ToReply(s.WithContext(what));
    if (::unlinkat(p->fd.get(), q.name.c_str(), is_rmdir ? AT_REMOVEDIR : 0) != 0) {
      Status s = SysErr(errno, what);
      RemoveIntent(in);
      return ToReply(s);
    }
    DRFS_FAILPOINT(is_rmdir ? "brick.rmdir.after_rmdir" : "brick.unlink.after_unlink");
    Record rec;
    rec.op = in.op;
    rec.gfid = in.gfid;
    rec.parent = q.parent;
    rec.name = q.name;
    auto lsn = Journal(rec);
    if (!lsn.ok()) return JournalFailed(in, lsn.status(), what);
    if (is_rmdir || in.last) RemoveHandle(in.gfid);
    RemoveIntent(in);
    Reply r;
    r.lsn = *lsn;
    return r;
  }
}

Reply Backend::Impl::Rename(const Request& q) {
  const std::string what =
      "rename " + Where(q.parent, q.name) + " to " + q.new_parent.ToString() + "/" + q.new_name;
  if (Status s = CheckName(q.parent, q.name); !s.ok()) return ToReply(s);
  if (Status s = CheckName(q.new_parent, q.new_name); !s.ok()) return ToReply(s);
  const uint32_t known = RENAME_NOREPLACE | RENAME_EXCHANGE;
  if ((q.flags & ~known) != 0 || q.flags == known) {
    return ErrorReply(EINVAL, what + ": invalid flags " + std::to_string(q.flags));
  }
  const bool exchange = (q.flags & RENAME_EXCHANGE) != 0;
  auto p = ResolveDir(q.parent);
  if (!p.ok()) return ToReply(p.status().WithContext(what));
  auto np = ResolveDir(q.new_parent);
  if (!np.ok()) return ToReply(np.status().WithContext(what));
  for (;;) {
    auto s0 = StatEntry(p->fd.get(), q.name);
    if (!s0.ok()) return ToReply(s0.status().WithContext(what));
    if (!s0->exists) return ErrorReply(ENOENT, what + ": No such file or directory");
    auto t0 = StatEntry(np->fd.get(), q.new_name);
    if (!t0.ok()) return ToReply(t0.status().WithContext(what));
    StripeLock lock(
        locks,
        {LockTable::EntrySlot(q.parent, q.name), LockTable::EntrySlot(q.new_parent, q.new_name),
         LockTable::ObjectSlot(s0->obj.gfid), LockTable::ObjectSlot(t0->obj.gfid)});
    auto src = StatEntry(p->fd.get(), q.name);
    if (!src.ok()) return ToReply(src.status().WithContext(what));
    if (!src->exists) return ErrorReply(ENOENT, what + ": No such file or directory");
    auto dst = StatEntry(np->fd.get(), q.new_name);
    if (!dst.ok()) return ToReply(dst.status().WithContext(what));
    if (src->obj.gfid != s0->obj.gfid || !SameInode(src->obj.st, s0->obj.st) ||
        dst->exists != t0->exists ||
        (dst->exists && (dst->obj.gfid != t0->obj.gfid || !SameInode(dst->obj.st, t0->obj.st)))) {
      continue;  // changed between the look and the lock
    }
    const Object& s = src->obj;
    const Object& t = dst->obj;
    if (dst->exists && SameInode(s.st, t.st)) {
      // Two names of one inode (or one entry): the kernel does nothing, or refuses.
      if (::renameat2(p->fd.get(), q.name.c_str(), np->fd.get(), q.new_name.c_str(), q.flags) !=
          0) {
        return ToReply(SysErr(errno, what));
      }
      return Reply{};
    }
    if (s.gfid.is_null() || (dst->exists && t.gfid.is_null())) {
      return ErrorReply(EIO, what +
                                 ": an entry has no gfid (it was made behind the brick's "
                                 "back); run heal");
    }
    Intent in;
    in.op = OpType::kRename;
    in.gfid = s.gfid;
    in.parent = q.parent;
    in.name = q.name;
    in.new_parent = q.new_parent;
    in.new_name = q.new_name;
    in.exchange = exchange;
    in.source_dir = s.is_dir();
    if (dst->exists) {
      in.replaced = t.gfid;
      in.replaced_dir = t.is_dir();
      in.last = !t.is_dir() && t.st.st_nlink <= 2;
      in.mode = t.st.st_mode & 07777;
      in.uid = t.st.st_uid;
      in.gid = t.st.st_gid;
    }
    if (Status st = WriteIntent(&in); !st.ok()) return ToReply(st.WithContext(what));
    {
      // Directory handles change with the rename: nobody may resolve through them meanwhile.
      std::unique_lock<std::shared_mutex> handles(handles_mu, std::defer_lock);
      if (in.source_dir || (exchange && in.replaced_dir)) handles.lock();
      if (::renameat2(p->fd.get(), q.name.c_str(), np->fd.get(), q.new_name.c_str(), q.flags) !=
          0) {
        Status st = SysErr(errno, what);
        RemoveIntent(in);
        return ToReply(st);
      }
      Status hs;
      if (in.source_dir) {
        hs = WriteDirHandle(s.gfid, q.new_parent, q.new_name);
      } else {
        SetPgfid(s.gfid, q.new_parent, q.new_name);
      }
      if (exchange && hs.ok()) {
        if (in.replaced_dir) {
          hs = WriteDirHandle(t.gfid, q.parent, q.name);
        } else {
          SetPgfid(t.gfid, q.parent, q.name);
        }
      }
      if (!hs.ok()) {
        if (handles.owns_lock()) handles.unlock();
        Rollback(in);
        RemoveIntent(in);
        return ToReply(hs.WithContext(what));
      }
    }
    DRFS_FAILPOINT("brick.rename.after_rename");
    Record rec;
    rec.op = OpType::kRename;
    rec.gfid = s.gfid;
    rec.parent = q.parent;
    rec.name = q.name;
    rec.new_parent = q.new_parent;
    rec.new_name = q.new_name;
    rec.replaced = in.replaced;
    rec.rename_flags = exchange ? changelog::kRenameExchange : 0;
    auto lsn = Journal(rec);
    if (!lsn.ok()) return JournalFailed(in, lsn.status(), what);
    DropReplaced(in);
    RemoveIntent(in);
    Reply r;
    r.lsn = *lsn;
    return r;
  }
}

Reply Backend::Impl::Write(const Request& q) {
  const std::string what = "write " + Where(q.gfid);
  StripeLock lock(locks, {LockTable::ObjectSlot(q.gfid)});
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status());
  size_t done = q.data.size();
  if (options.arbiter) {
    // No data: only what a write would be refused for is checked, and the write is journaled
    // (the journal still tells which files changed) and answered as if it had been stored.
    if (o->is_dir()) return ErrorReply(EISDIR, what + ": is a directory");
    if (!S_ISREG(o->st.st_mode)) return ErrorReply(EINVAL, what + ": not a regular file");
  } else {
    auto f = Reopen(*o, O_WRONLY, q.gfid);
    if (!f.ok()) return ToReply(f.status().WithContext("write"));
    int err = 0;
    std::tie(done, err) = PwriteAll(f->get(), q.data, q.offset);
    if (done == 0 && err != 0) return ToReply(SysErr(err, what));
  }
  Reply r;
  r.count = done;
  if (done > 0) {
    // A crash before the append leaves an unjournaled write; replica heal catches it.
    Record rec;
    rec.op = OpType::kWrite;
    rec.gfid = q.gfid;
    rec.offset = q.offset;
    rec.length = done;
    auto lsn = Journal(rec);
    if (!lsn.ok()) return ToReply(lsn.status().WithContext(what));
    r.lsn = *lsn;
  }
  auto st = StatFd(o->fd.get());
  if (st.ok()) r.attr = ToIatt(*st, q.gfid);
  return r;
}

Reply Backend::Impl::Fallocate(const Request& q) {
  const std::string what = "fallocate " + Where(q.gfid);
  StripeLock lock(locks, {LockTable::ObjectSlot(q.gfid)});
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status());
  if (options.arbiter) {
    // Nothing to allocate; journaled like a write.
    if (o->is_dir()) return ErrorReply(EISDIR, what + ": is a directory");
    if (!S_ISREG(o->st.st_mode)) return ErrorReply(EINVAL, what + ": not a regular file");
  } else {
    auto f = Reopen(*o, O_WRONLY, q.gfid);
    if (!f.ok()) return ToReply(f.status().WithContext("fallocate"));
    if (::fallocate(f->get(), static_cast<int>(q.flags), static_cast<off_t>(q.offset),
                    static_cast<off_t>(q.length)) != 0) {
      return ToReply(SysErr(errno, what));
    }
  }
  Record rec;
  rec.op = OpType::kFallocate;
  rec.gfid = q.gfid;
  rec.fallocate_mode = q.flags;
  rec.offset = q.offset;
  rec.length = q.length;
  auto lsn = Journal(rec);
  if (!lsn.ok()) return ToReply(lsn.status().WithContext(what));
  Reply r;
  r.lsn = *lsn;
  auto st = StatFd(o->fd.get());
  if (st.ok()) r.attr = ToIatt(*st, q.gfid);
  return r;
}

Reply Backend::Impl::Setattr(const Request& q) {
  using namespace brick_proto;
  const std::string what = "setattr " + Where(q.gfid);
  if (q.attr_valid & ~kAttrAll) return ErrorReply(EINVAL, what + ": unknown attribute bits");
  StripeLock lock(locks, {LockTable::ObjectSlot(q.gfid)});
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status());
  const uint32_t v = q.attr_valid;
  SharedFd trunc;
  if ((v & kAttrSize) && options.arbiter && !S_ISREG(o->st.st_mode)) {
    return ErrorReply(o->is_dir() ? EISDIR : EINVAL, what + ": not a regular file");
  }
  if ((v & kAttrSize) && !options.arbiter) {
    // Open first so a truncate that cannot happen fails before anything changed.
    auto f = Reopen(*o, O_WRONLY, q.gfid);
    if (!f.ok()) return ToReply(f.status().WithContext("truncate"));
    trunc = std::move(*f);
  }
  // Apply owner, mode, size, times, in that order (chown clears set-id bits; truncate moves
  // mtime). Journal TRUNCATE then SETATTR, which replays to the same result. If a later step
  // fails, what was applied is still journaled and the error returned.
  Record sa;
  sa.op = OpType::kSetattr;
  sa.gfid = q.gfid;
  Status err;
  if (v & (kAttrUid | kAttrGid)) {
    uid_t uid = (v & kAttrUid) ? q.uid : static_cast<uid_t>(-1);
    gid_t gid = (v & kAttrGid) ? q.gid : static_cast<gid_t>(-1);
    if (::fchownat(o->fd.get(), "", uid, gid, AT_EMPTY_PATH) != 0) {
      err = SysErr(errno, what + " (owner)");
    } else {
      if (v & kAttrUid) {
        sa.setattr_valid |= changelog::kSetUid;
        sa.uid = q.uid;
      }
      if (v & kAttrGid) {
        sa.setattr_valid |= changelog::kSetGid;
        sa.gid = q.gid;
      }
    }
  }
  if (err.ok() && (v & kAttrMode)) {
    if (::chmod(o->proc().c_str(), q.mode & 07777) != 0) {
      err = SysErr(errno, what + " (mode)");
    } else {
      sa.setattr_valid |= changelog::kSetMode;
      sa.mode = q.mode & 07777;
    }
  }
  bool truncated = false;
  if (err.ok() && (v & kAttrSize)) {
    if (options.arbiter) {
      truncated = true;  // the size is data: kept at 0, but journaled like a write
    } else if (::ftruncate(trunc.get(), static_cast<off_t>(q.size)) != 0) {
      err = SysErr(errno, what + " (size)");
    } else {
      truncated = true;
    }
  }
  if (err.ok() && (v & (kAttrAtime | kAttrMtime | kAttrAtimeNow | kAttrMtimeNow))) {
    struct timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    struct timespec ts[2];
    ts[0].tv_nsec = ts[1].tv_nsec = UTIME_OMIT;
    ts[0].tv_sec = ts[1].tv_sec = 0;
    if (v & kAttrAtimeNow) {
      ts[0] = now;
    } else if (v & kAttrAtime) {
      ts[0] = FromNs(q.atime_ns);
    }
    if (v & kAttrMtimeNow) {
      ts[1] = now;
    } else if (v & kAttrMtime) {
      ts[1] = FromNs(q.mtime_ns);
    }
    if (::utimensat(o->fd.get(), "", ts, AT_EMPTY_PATH) != 0) {
      err = SysErr(errno, what + " (times)");
    } else {
      if (ts[0].tv_nsec != UTIME_OMIT) {
        sa.setattr_valid |= changelog::kSetAtime;
        sa.atime_ns = ToNs(ts[0]);
      }
      if (ts[1].tv_nsec != UTIME_OMIT) {
        sa.setattr_valid |= changelog::kSetMtime;
        sa.mtime_ns = ToNs(ts[1]);
      }
    }
  }
  Reply r;
  if (truncated) {
    Record tr;
    tr.op = OpType::kTruncate;
    tr.gfid = q.gfid;
    tr.size = q.size;
    auto lsn = Journal(tr);
    if (!lsn.ok()) return ToReply(lsn.status().WithContext(what));
    r.lsn = *lsn;
  }
  if (sa.setattr_valid != 0) {
    auto lsn = Journal(sa);
    if (!lsn.ok()) return ToReply(lsn.status().WithContext(what));
    r.lsn = *lsn;
  }
  if (!err.ok()) {
    Reply e = ToReply(err);
    e.lsn = r.lsn;
    return e;
  }
  auto st = StatFd(o->fd.get());
  if (st.ok()) r.attr = ToIatt(*st, q.gfid);
  return r;
}

Reply Backend::Impl::Setxattr(const Request& q) {
  const std::string what = "setxattr " + q.xattr_name + " on " + Where(q.gfid);
  if (auto refused = RefuseXattrChange(q.xattr_name, what)) return *refused;
  StripeLock lock(locks, {LockTable::ObjectSlot(q.gfid)});
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status());
  if (::setxattr(o->proc().c_str(), q.xattr_name.c_str(), q.xattr_value.data(),
                 q.xattr_value.size(), static_cast<int>(q.flags)) != 0) {
    return ToReply(SysErr(errno, what));
  }
  Record rec;
  rec.op = OpType::kSetxattr;
  rec.gfid = q.gfid;
  rec.xattr_name = q.xattr_name;
  auto lsn = Journal(rec);
  if (!lsn.ok()) return ToReply(lsn.status().WithContext(what));
  Reply r;
  r.lsn = *lsn;
  return r;
}

Reply Backend::Impl::Removexattr(const Request& q) {
  const std::string what = "removexattr " + q.xattr_name + " on " + Where(q.gfid);
  if (auto refused = RefuseXattrChange(q.xattr_name, what)) return *refused;
  StripeLock lock(locks, {LockTable::ObjectSlot(q.gfid)});
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status());
  if (::removexattr(o->proc().c_str(), q.xattr_name.c_str()) != 0) {
    return ToReply(SysErr(errno, what));
  }
  Record rec;
  rec.op = OpType::kRemovexattr;
  rec.gfid = q.gfid;
  rec.xattr_name = q.xattr_name;
  auto lsn = Journal(rec);
  if (!lsn.ok()) return ToReply(lsn.status().WithContext(what));
  Reply r;
  r.lsn = *lsn;
  return r;
}

// --- markers ---------------------------------------------------------------------------------

Reply Backend::Impl::Xattrop(const Request& q, bool allow_when_read_only) {
  const std::string what = "xattrop " + Where(q.gfid);
  if (q.pending.size() > brick_proto::kMaxPendingCounters) {
    return ErrorReply(EINVAL, what + ": more than " +
                                  std::to_string(brick_proto::kMaxPendingCounters) + " counters");
  }
  const bool changes = !AllZero(q.pending);
  if (changes && options.read_only && !allow_when_read_only) {
    return ErrorReply(EROFS, what + " refused: brick " + dir +
                                 " is read-only (this site is a secondary; only its applier may "
                                 "change it)");
  }
  StripeLock lock(locks, {LockTable::ObjectSlot(q.gfid)});
  auto o = Resolve(q.gfid);
  if (!o.ok()) return ToReply(o.status());
  auto cur = ReadPending(*o, Where(q.gfid));
  if (!cur.ok()) return ToReply(cur.status());
  Reply r;
  if (!changes) {
    if (!AllZero(*cur)) r.pending = std::move(*cur);
    return r;
  }
  std::vector<int32_t> next(std::max(cur->size(), q.pending.size()), 0);
  for (size_t i = 0; i < next.size(); ++i) {
    const int64_t sum = static_cast<int64_t>(i < cur->size() ? (*cur)[i] : 0) +
                        (i < q.pending.size() ? q.pending[i] : 0);
    if (sum > std::numeric_limits<int32_t>::max() || sum < std::numeric_limits<int32_t>::min()) {
      return ErrorReply(EOVERFLOW, what + ": counter " + std::to_string(i) +
                                       " would overflow; nothing was changed");
    }
    next[i] = static_cast<int32_t>(sum);
  }
  const std::string index_name = q.gfid.ToString();
  const std::string path = o->proc();
  if (AllZero(next)) {
    DRFS_FAILPOINT("brick.xattrop.before_clear");  // tests: a post-op that lands late (delay)
    // The xattr goes first, then the index entry: a crash in between leaves an extra entry.
    if (::removexattr(path.c_str(), kPendingXattr) != 0 && errno != ENODATA) {
      return ToReply(SysErr(errno, what + ": remove the markers"));
    }
    DRFS_FAILPOINT("brick.xattrop.before_index_remove");
    if (::unlinkat(heal_fd.get(), index_name.c_str(), 0) != 0 && errno != ENOENT) {
      // Harmless (the index may list more than is marked); the next listing retries.
      DRFS_LOG(Warn) << "brick " << dir << ": cannot remove heal index entry " << index_name << ": "
                     << std::strerror(errno);
    }
    return r;
  }
  // The index entry goes first, then the xattr: a crash in between leaves an extra entry.
  const bool was_zero = AllZero(*cur);
  if (::mknodat(heal_fd.get(), index_name.c_str(), S_IFREG | 0600, 0) != 0 && errno != EEXIST) {
    return ToReply(SysErr(errno, what + ": add it to the heal index " + dir + "/" + kHealDir));
  }
  const std::string value = EncodePending(next);
  Status st;
  if (DRFS_FAILPOINT("brick.xattrop.after_index")) {
    st = SysErr(EIO, what + ": failure probe brick.xattrop.after_index");
  } else if (::setxattr(path.c_str(), kPendingXattr, value.data(), value.size(), 0) != 0) {
    st = SysErr(errno, what + ": store the markers");
  }
  if (!st.ok()) {
    if (was_zero) ::unlinkat(heal_fd.get(), index_name.c_str(), 0);
    return ToReply(st);
  }
  r.pending = std::move(next);
  return r;
}

bool Backend::Impl::DropStaleHealEntry(const Gfid& g) {
  StripeLock lock(locks, {LockTable::ObjectSlot(g)});
  auto o = Resolve(g);
  bool stale = false;
  if (!o.ok()) {
    stale = o.status().sys_errno() == ENOENT;
  } else {
    auto p = ReadPending(*o, Where(g));
    stale = p.ok() && AllZero(*p);
  }
  if (stale) ::unlinkat(heal_fd.get(), g.ToString().c_str(), 0);
  return stale;
}

Reply Backend::Impl::HealIndex(const Request& q) {
  const std::string what = "list the heal index " + dir + "/" + kHealDir;
  Fd d(::openat(heal_fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d.valid()) return ToReply(SysErr(errno, what));
  if (q.offset != 0 && ::lseek(d.get(), static_cast<off_t>(q.offset), SEEK_SET) < 0) {
    return ToReply(SysErr(errno, what + " from cookie " + std::to_string(q.offset)));
  }
  const size_t max = q.length == 0 ? kDefaultDirEntries
                                   : std::min<uint64_t>(q.length, brick_proto::kMaxDirEntries);
  Reply r;
  alignas(8) char buf[32 * 1024];
  while (r.entries.size() < max) {
    ssize_t n = ::getdents64(d.get(), buf, sizeof buf);
    if (n < 0) return ToReply(SysErr(errno, what));
    if (n == 0) {
      r.eof = true;
      break;
    }
    for (ssize_t pos = 0; pos < n;) {
      const auto* de = reinterpret_cast<const struct dirent64*>(buf + pos);
      pos += de->d_reclen;
      const std::string_view name = de->d_name;
      if (name == "." || name == "..") continue;
      auto g = Gfid::Parse(name);
      if (!g || g->ToString() != name || DropStaleHealEntry(*g)) continue;
      DirEntry e;
      e.name = std::string(name);
      e.gfid = *g;
      e.type = 0;
      e.cookie = static_cast<uint64_t>(de->d_off);
      r.entries.push_back(std::move(e));
      if (r.entries.size() == max) break;  // the rest of the buffer is read again next time
    }
  }
  return r;
}

// --- Backend ---------------------------------------------------------------------------------

Backend::Backend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Backend::~Backend() {
  if (impl_->journal) {
    Status s = impl_->journal->Close();
    if (!s.ok()) DRFS_LOG(Error) << "brick " << impl_->dir << ": " << s.ToString();
  }
}

Result<std::unique_ptr<Backend>> Backend::Open(const std::string& dir,
                                               const BackendOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->options = options;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return FailedPrecondition("brick directory " + dir + " is unusable (" + std::strerror(errno) +
                              "); create it or fix the volume's bricks");
  }
  if (!S_ISDIR(st.st_mode)) {
    return FailedPrecondition("brick directory " + dir +
                              " is not a directory; fix the volume's bricks");
  }
  char* real = ::realpath(dir.c_str(), nullptr);
  if (!real) return ErrnoStatus(errno, "resolve brick directory " + dir);
  impl->real_dir = real;
  ::free(real);
  if (::access("/proc/self/fd", R_OK) != 0) {
    return FailedPrecondition("brick " + dir + " needs /proc mounted");
  }
  impl->root_fd.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!impl->root_fd.valid()) return ErrnoStatus(errno, "open brick directory " + dir);
  const int root = impl->root_fd.get();
  for (const char* d :
       {".drfs", ".drfs/gfid", ".drfs/gfid/00", ".drfs/gfid/00/00", ".drfs/tmp", kHealDir}) {
    if (::mkdirat(root, d, 0700) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, "create " + dir + "/" + d);
    }
  }
  auto open_dir = [&](const char* d, Fd* out) -> Status {
    out->reset(::openat(root, d, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    return out->valid() ? Status::Ok() : ErrnoStatus(errno, "open " + dir + "/" + d);
  };
  DRFS_RETURN_IF_ERROR(open_dir(".drfs/gfid", &impl->index_fd));
  DRFS_RETURN_IF_ERROR(impl->intents.Open(root, ".drfs/intents", dir + "/.drfs/intents"));
  DRFS_RETURN_IF_ERROR(open_dir(".drfs/tmp", &impl->tmp_fd));
  DRFS_RETURN_IF_ERROR(open_dir(kHealDir, &impl->heal_fd));

  // The root's gfid, which also proves the file system keeps trusted xattrs.
  const std::string root_path = ProcPath(root);
  auto g = ReadGfid(root_path);
  if (!g.ok()) return g.status();
  if (g->is_null()) {
    Status s = WriteGfid(root_path, Gfid::Root());
    if (!s.ok()) {
      return FailedPrecondition("brick " + dir + " cannot keep trusted xattrs (" + s.message() +
                                "); use ext4 or xfs and run the brick as root");
    }
  } else if (*g != Gfid::Root()) {
    return FailedPrecondition("brick " + dir + " has gfid " + g->ToString() +
                              " instead of the root gfid: it is a subfolder of another brick, "
                              "not a brick root");
  }
  const std::string root_handle = HandleRel(Gfid::Root());
  char buf[64];
  ssize_t n = ::readlinkat(impl->index_fd.get(), root_handle.c_str(), buf, sizeof buf);
  if (n < 0 || std::string_view(buf, static_cast<size_t>(n)) != kRootHandleTarget) {
    ::unlinkat(impl->index_fd.get(), root_handle.c_str(), 0);
    if (::symlinkat(kRootHandleTarget, impl->index_fd.get(), root_handle.c_str()) != 0) {
      return ErrnoStatus(errno, "create the root's index entry on brick " + dir);
    }
  }

  auto journal = changelog::Writer::Open(changelog::JournalDirForBrick(dir), options.journal);
  if (!journal.ok()) return journal.status().WithContext("brick " + dir);
  impl->journal = std::move(*journal);
  impl->seq = NowNs();  // intent and temp names stay unique across restarts
  DRFS_RETURN_IF_ERROR(impl->Repair().WithContext("brick " + dir + ": repair after a crash"));
  return std::unique_ptr<Backend>(new Backend(std::move(impl)));
}

Reply Backend::Execute(const Request& q, bool allow_when_read_only) {
  if (!brick_proto::IsValidOp(static_cast<uint16_t>(q.op))) {
    return ErrorReply(ENOSYS, "unknown op " + std::to_string(static_cast<int>(q.op)));
  }
  if (impl_->options.read_only && brick_proto::IsMutation(q.op) && !allow_when_read_only) {
    return ErrorReply(EROFS, std::string(brick_proto::OpName(q.op)) + " refused: brick " +
                                 impl_->dir +
                                 " is read-only (this site is a secondary; only "
                                 "its applier may change it)");
  }
  Impl& b = *impl_;
  switch (q.op) {
    case Op::kHello: {
      Reply r;
      r.data = brick_id().ToString();
      return r;
    }
    case Op::kLookup:
      return b.Lookup(q);
    case Op::kGetattr:
    case Op::kLookupGfid:
      return b.Getattr(q);
    case Op::kSetattr:
      return b.Setattr(q);
    case Op::kMkdir:
    case Op::kCreate:
    case Op::kMknod:
    case Op::kSymlink:
      return b.CreateObject(q);
    case Op::kReadlink:
      return b.Readlink(q);
    case Op::kLink:
      return b.Link(q);
    case Op::kUnlink:
    case Op::kRmdir:
      return b.Unlink(q);
    case Op::kRename:
      return b.Rename(q);
    case Op::kRead:
      return b.Read(q);
    case Op::kWrite:
      return b.Write(q);
    case Op::kFsync:
      return b.Fsync(q);
    case Op::kFallocate:
      return b.Fallocate(q);
    case Op::kReaddir:
      return b.Readdir(q);
    case Op::kStatfs:
      return b.Statfs(q);
    case Op::kAccess:
      return b.Access(q);
    case Op::kGetxattr:
      return b.Getxattr(q);
    case Op::kSetxattr:
      return b.Setxattr(q);
    case Op::kListxattr:
      return b.Listxattr(q);
    case Op::kRemovexattr:
      return b.Removexattr(q);
    case Op::kResolveGfid:
      return b.ResolveGfid(q);
    case Op::kXattrop:
      return b.Xattrop(q, allow_when_read_only);
    case Op::kHealIndex:
      return b.HealIndex(q);
    case Op::kInodelk:
    case Op::kEntrylk:
      // Locks belong to connections, which only the server knows.
      return ErrorReply(EOPNOTSUPP, std::string(brick_proto::OpName(q.op)) +
                                        " is served by the brick server's lock manager, not by "
                                        "the backend of brick " +
                                        impl_->dir);
  }
  return ErrorReply(ENOSYS, "unknown op");
}

const std::string& Backend::dir() const {
  return impl_->dir;
}
const Gfid& Backend::brick_id() const {
  return impl_->journal->brick_id();
}
changelog::Writer* Backend::journal() {
  return impl_->journal.get();
}
bool Backend::read_only() const {
  return impl_->options.read_only;
}
bool Backend::arbiter() const {
  return impl_->options.arbiter;
}
const Backend::RepairReport& Backend::repair_report() const {
  return impl_->repair;
}

}  // namespace drfs::brick
