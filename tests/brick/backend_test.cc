// Backend: every op against the same call on a local directory, journaling, concurrency,
// read-only mode, path-escape attempts, and undo when the journal refuses a record.
#include "brick/backend.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include "brick/detail/intent.h"
#include "brick/detail/intent_log.h"
#include "changelog/reader.h"
#include "common/failpoint.h"
#include "tests/brick/brick_test_util.h"
#include "tests/common/fault_injection_fs.h"
#include "tests/common/test_util.h"

namespace drfs::brick {
namespace {

using brick_proto::Op;
using brick_proto::Reply;
using brick_proto::Request;
using changelog::OpType;
using changelog::Record;
using drfs::testing::TempDir;
using testing::CheckConsistency;
using testing::Join;
using testing::ReplayJournal;
using testing::TreeModel;

std::unique_ptr<Backend> OpenBrick(const std::string& dir, bool read_only = false) {
  BackendOptions o;
  o.read_only = read_only;
  o.journal.fsync_policy = changelog::FsyncPolicy::kNever;
  auto b = Backend::Open(dir, o);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b.ok() ? std::move(*b) : nullptr;
}

Gfid G(uint8_t n) {
  Gfid g = Gfid::Random();
  g.bytes[15] = n;
  return g;
}

std::string Err(int e) {
  if (e == -1) return "a different result";
  const char* n = e == 0 ? "OK" : strerrorname_np(e);
  return n ? n : std::to_string(e);
}

// Request builders.
Request Entry(Op op, const Gfid& parent, const std::string& name) {
  Request q;
  q.op = op;
  q.parent = parent;
  q.name = name;
  return q;
}
Request ByGfid(Op op, const Gfid& g) {
  Request q;
  q.op = op;
  q.gfid = g;
  return q;
}

class BackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    old_umask_ = ::umask(0);
    dir_ = t_.Sub("brick");
    local_ = t_.Sub("local");
    ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(local_.c_str(), 0755), 0);
    b_ = OpenBrick(dir_);
    ASSERT_NE(b_, nullptr);
  }
  void TearDown() override {
    failpoint::ClearAll();
    ::umask(old_umask_);
  }

  Reply Do(const Request& q) { return b_->Execute(q); }

  Reply Mkdir(const Gfid& parent, const std::string& name, uint32_t mode = 0755,
              Gfid g = Gfid::Random()) {
    Request q = Entry(Op::kMkdir, parent, name);
    q.gfid = g;
    q.mode = mode;
    return Do(q);
  }
  Reply Create(const Gfid& parent, const std::string& name, uint32_t mode = 0644,
               Gfid g = Gfid::Random(), uint32_t flags = brick_proto::kCreateExclusive) {
    Request q = Entry(Op::kCreate, parent, name);
    q.gfid = g;
    q.mode = mode;
    q.flags = flags;
    return Do(q);
  }
  Reply Write(const Gfid& g, uint64_t off, const std::string& data) {
    Request q = ByGfid(Op::kWrite, g);
    q.offset = off;
    q.data = data;
    return Do(q);
  }
  Reply Rename(const Gfid& p, const std::string& n, const Gfid& np, const std::string& nn,
               uint32_t flags = 0) {
    Request q = Entry(Op::kRename, p, n);
    q.new_parent = np;
    q.new_name = nn;
    q.flags = flags;
    return Do(q);
  }
  std::vector<std::string> Check() { return CheckConsistency(dir_); }

  TempDir t_;
  std::string dir_, local_;
  std::unique_ptr<Backend> b_;
  mode_t old_umask_ = 0;
};

// ---- Each op against the same call on a local directory --------------------------------------

// Runs one call on the local twin and the same op on the brick; both trees must then agree.
class Twin {
 public:
  Twin(Backend* b, std::string local) : b_(b), local_(std::move(local)) {}

  // The brick's gfid of a path, by lookups from the root as a client would; or the errno.
  std::pair<Gfid, int> Walk(const std::string& path) {
    Gfid g = Gfid::Root();
    size_t pos = 0;
    while (pos < path.size()) {
      size_t slash = path.find('/', pos);
      std::string part =
          path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
      pos = slash == std::string::npos ? path.size() : slash + 1;
      Reply r = b_->Execute(Entry(Op::kLookup, g, part));
      if (r.err) return {Gfid(), r.err};
      g = r.attr.gfid;
    }
    return {g, 0};
  }
  static std::pair<std::string, std::string> Split(const std::string& path) {
    size_t s = path.rfind('/');
    if (s == std::string::npos) return {"", path};
    return {path.substr(0, s), path.substr(s + 1)};
  }
  std::string L(const std::string& path) const { return local_ + "/" + path; }
  static int Sys(int rc) { return rc == 0 ? 0 : errno; }

  // Brick side of an entry op on `path`; `fill` completes the request.
  int BrickEntry(Op op, const std::string& path, const std::function<void(Request&)>& fill = {}) {
    auto [dir, name] = Split(path);
    auto [parent, e] = Walk(dir);
    if (e) return e;
    Request q = Entry(op, parent, name);
    q.gfid = Gfid::Random();
    if (fill) fill(q);
    return b_->Execute(q).err;
  }
  // Brick side of an op on the object at `path`.
  Reply BrickObject(Op op, const std::string& path,
                    const std::function<void(Request&)>& fill = {}) {
    auto [g, e] = Walk(path);
    if (e) return brick_proto::ErrorReply(e, "lookup");
    Request q = ByGfid(op, g);
    if (fill) fill(q);
    return b_->Execute(q);
  }

  using Pair = std::pair<int, int>;  // local errno, brick errno

  Pair Mkdir(const std::string& p, uint32_t mode) {
    return {Sys(::mkdir(L(p).c_str(), mode)),
            BrickEntry(Op::kMkdir, p, [&](Request& q) { q.mode = mode; })};
  }
  Pair Create(const std::string& p, uint32_t mode, bool excl) {
    int fd = ::open(L(p).c_str(), O_CREAT | O_WRONLY | (excl ? O_EXCL : 0), mode);
    int le = fd < 0 ? errno : 0;
    if (fd >= 0) ::close(fd);
    return {le, BrickEntry(Op::kCreate, p, [&](Request& q) {
              q.mode = mode;
              q.flags = excl ? brick_proto::kCreateExclusive : 0;
            })};
  }
  Pair Mknod(const std::string& p, uint32_t mode) {
    return {Sys(::mknod(L(p).c_str(), mode, 0)),
            BrickEntry(Op::kMknod, p, [&](Request& q) { q.mode = mode; })};
  }
  Pair Symlink(const std::string& target, const std::string& p) {
    return {Sys(::symlink(target.c_str(), L(p).c_str())),
            BrickEntry(Op::kSymlink, p, [&](Request& q) { q.target = target; })};
  }
  Pair Link(const std::string& from, const std::string& to) {
    int le = Sys(::link(L(from).c_str(), L(to).c_str()));
    auto [g, e] = Walk(from);
    if (e) return {le, e};
    const Gfid target = g;
    return {le, BrickEntry(Op::kLink, to, [&](Request& q) { q.gfid = target; })};
  }
  Pair Unlink(const std::string& p) {
    return {Sys(::unlink(L(p).c_str())), BrickEntry(Op::kUnlink, p)};
  }
  Pair Rmdir(const std::string& p) {
    return {Sys(::rmdir(L(p).c_str())), BrickEntry(Op::kRmdir, p)};
  }
  Pair Rename(const std::string& from, const std::string& to, uint32_t flags = 0) {
    int le = Sys(::renameat2(AT_FDCWD, L(from).c_str(), AT_FDCWD, L(to).c_str(), flags));
    const auto split = Split(to);
    const auto walked = Walk(split.first);
    if (walked.second) return {le, walked.second};
    return {le, BrickEntry(Op::kRename, from, [&](Request& q) {
              q.new_parent = walked.first;
              q.new_name = split.second;
              q.flags = flags;
            })};
  }
  Pair Readlink(const std::string& p) {
    char buf[4096];
    ssize_t n = ::readlink(L(p).c_str(), buf, sizeof buf);
    int le = n < 0 ? errno : 0;
    Reply r = BrickObject(Op::kReadlink, p);
    if (n >= 0 && r.err == 0 && r.data != std::string(buf, static_cast<size_t>(n))) {
      return {0, -1};
    }
    return {le, r.err};
  }
  Pair Lookup(const std::string& p) {
    struct stat st {};
    return {Sys(::lstat(L(p).c_str(), &st)), Walk(p).second};
  }
  Pair Read(const std::string& p, uint64_t off, uint64_t len) {
    int fd = ::open(L(p).c_str(), O_RDONLY);
    int le = 0;
    std::string data(len, '\0');
    if (fd < 0) {
      le = errno;
    } else {
      ssize_t n = ::pread(fd, data.data(), len, static_cast<off_t>(off));
      if (n < 0)
        le = errno;
      else
        data.resize(static_cast<size_t>(n));
      ::close(fd);
    }
    Reply r = BrickObject(Op::kRead, p, [&](Request& q) {
      q.offset = off;
      q.length = len;
    });
    if (le == 0 && r.err == 0 && r.data != data) return {0, -1};
    return {le, r.err};
  }
  Pair Write(const std::string& p, uint64_t off, const std::string& data) {
    int fd = ::open(L(p).c_str(), O_WRONLY);
    int le = 0;
    if (fd < 0) {
      le = errno;
    } else {
      if (::pwrite(fd, data.data(), data.size(), static_cast<off_t>(off)) < 0) le = errno;
      ::close(fd);
    }
    return {le, BrickObject(Op::kWrite, p, [&](Request& q) {
                  q.offset = off;
                  q.data = data;
                }).err};
  }
  Pair Setattr(const std::string& p, uint32_t valid, uint32_t mode, uint32_t uid, uint32_t gid,
               uint64_t size, int64_t atime, int64_t mtime) {
    int le = 0;
    if (valid & (brick_proto::kAttrUid | brick_proto::kAttrGid)) {
      le = Sys(::lchown(L(p).c_str(), (valid & brick_proto::kAttrUid) ? uid : -1u,
                        (valid & brick_proto::kAttrGid) ? gid : -1u));
    }
    if (!le && (valid & brick_proto::kAttrMode)) {
      le = Sys(::fchmodat(AT_FDCWD, L(p).c_str(), mode, 0));
    }
    if (!le && (valid & brick_proto::kAttrSize))
      le = Sys(::truncate(L(p).c_str(), static_cast<off_t>(size)));
    if (!le && (valid & (brick_proto::kAttrAtime | brick_proto::kAttrMtime))) {
      struct timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
      if (valid & brick_proto::kAttrAtime) ts[0] = {atime / 1000000000, atime % 1000000000};
      if (valid & brick_proto::kAttrMtime) ts[1] = {mtime / 1000000000, mtime % 1000000000};
      le = Sys(::utimensat(AT_FDCWD, L(p).c_str(), ts, AT_SYMLINK_NOFOLLOW));
    }
    return {le, BrickObject(Op::kSetattr, p, [&](Request& q) {
                  q.attr_valid = valid;
                  q.mode = mode;
                  q.uid = uid;
                  q.gid = gid;
                  q.size = size;
                  q.atime_ns = atime;
                  q.mtime_ns = mtime;
                }).err};
  }
  Pair Fallocate(const std::string& p, int mode, uint64_t off, uint64_t len) {
    int fd = ::open(L(p).c_str(), O_WRONLY);
    int le = fd < 0 ? errno : 0;
    if (fd >= 0) {
      le = Sys(::fallocate(fd, mode, static_cast<off_t>(off), static_cast<off_t>(len)));
      ::close(fd);
    }
    return {le, BrickObject(Op::kFallocate, p, [&](Request& q) {
                  q.flags = static_cast<uint32_t>(mode);
                  q.offset = off;
                  q.length = len;
                }).err};
  }
  Pair Setxattr(const std::string& p, const std::string& name, const std::string& value,
                int flags) {
    return {Sys(::lsetxattr(L(p).c_str(), name.c_str(), value.data(), value.size(), flags)),
            BrickObject(Op::kSetxattr, p, [&](Request& q) {
              q.xattr_name = name;
              q.xattr_value = value;
              q.flags = static_cast<uint32_t>(flags);
            }).err};
  }
  Pair Getxattr(const std::string& p, const std::string& name) {
    char buf[1024];
    ssize_t n = ::lgetxattr(L(p).c_str(), name.c_str(), buf, sizeof buf);
    int le = n < 0 ? errno : 0;
    Reply r = BrickObject(Op::kGetxattr, p, [&](Request& q) { q.xattr_name = name; });
    if (n >= 0 && r.err == 0 && r.data != std::string(buf, static_cast<size_t>(n))) return {0, -1};
    return {le, r.err};
  }
  Pair Removexattr(const std::string& p, const std::string& name) {
    return {Sys(::lremovexattr(L(p).c_str(), name.c_str())),
            BrickObject(Op::kRemovexattr, p, [&](Request& q) { q.xattr_name = name; }).err};
  }
  Pair Access(const std::string& p, int mask) {
    return {Sys(::access(L(p).c_str(), mask)), BrickObject(Op::kAccess, p, [&](Request& q) {
                                                 q.flags = static_cast<uint32_t>(mask);
                                               }).err};
  }
  Pair Readdir(const std::string& p) {
    std::set<std::string> local;
    int le = 0;
    if (DIR* d = ::opendir(L(p).c_str())) {
      while (struct dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") local.insert(n);
      }
      ::closedir(d);
    } else {
      le = errno;
    }
    Reply r = BrickObject(Op::kReaddir, p);
    std::set<std::string> brick;
    for (const auto& e : r.entries)
      brick.insert(e.name);
    if (le == 0 && r.err == 0 && local != brick) return {0, -1};
    return {le, r.err};
  }

 private:
  Backend* b_;
  std::string local_;
};

// Both trees hold the same names, types, modes, owners, sizes, link counts, contents, targets and
// user xattrs; and the brick's getattr agrees with lstat.
void ExpectSameTree(Backend* b, const std::string& local, const std::string& brick,
                    const std::string& rel = "") {
  Twin twin(b, local);
  auto names = [&](const std::string& d, bool root) {
    std::set<std::string> s;
    for (const auto& n : testing::ListDir(d)) {
      if (!(root && n == ".drfs")) s.insert(n);
    }
    return s;
  };
  const std::string ld = local + (rel.empty() ? "" : "/" + rel);
  const std::string bd = brick + (rel.empty() ? "" : "/" + rel);
  auto ln = names(ld, false), bn = names(bd, rel.empty());
  ASSERT_EQ(ln, bn) << "names differ in /" << rel;
  for (const auto& n : ln) {
    const std::string r = rel.empty() ? n : rel + "/" + n;
    struct stat ls {
    }, bs{};
    ASSERT_EQ(::lstat((local + "/" + r).c_str(), &ls), 0);
    ASSERT_EQ(::lstat((brick + "/" + r).c_str(), &bs), 0);
    SCOPED_TRACE("/" + r);
    EXPECT_EQ(ls.st_mode, bs.st_mode);
    EXPECT_EQ(ls.st_uid, bs.st_uid);
    EXPECT_EQ(ls.st_gid, bs.st_gid);
    EXPECT_EQ(ls.st_rdev, bs.st_rdev);
    if (!S_ISDIR(ls.st_mode)) {
      EXPECT_EQ(ls.st_size, bs.st_size);
      EXPECT_EQ(ls.st_nlink + 1, bs.st_nlink) << "the brick adds exactly the handle link";
    } else {
      EXPECT_EQ(ls.st_nlink, bs.st_nlink);
    }
    if (S_ISREG(ls.st_mode)) {
      EXPECT_EQ(drfs::testing::ReadFile(local + "/" + r), drfs::testing::ReadFile(brick + "/" + r));
      EXPECT_EQ(ls.st_mtim.tv_sec == 1000, bs.st_mtim.tv_sec == 1000);
    }
    if (S_ISLNK(ls.st_mode)) {
      char a[4096], c[4096];
      ssize_t x = ::readlink((local + "/" + r).c_str(), a, sizeof a);
      ssize_t y = ::readlink((brick + "/" + r).c_str(), c, sizeof c);
      EXPECT_EQ(std::string(a, static_cast<size_t>(x)), std::string(c, static_cast<size_t>(y)));
    }
    // The brick's own view matches lstat of the local twin.
    Reply g = twin.BrickObject(Op::kGetattr, r);
    ASSERT_EQ(g.err, 0) << g.message;
    EXPECT_EQ(g.attr.mode, ls.st_mode);
    EXPECT_EQ(g.attr.nlink, ls.st_nlink);
    EXPECT_EQ(g.attr.uid, ls.st_uid);
    EXPECT_EQ(g.attr.gid, ls.st_gid);
    if (!S_ISDIR(ls.st_mode)) {
      EXPECT_EQ(g.attr.size, static_cast<uint64_t>(ls.st_size));
    }
    Reply lx = twin.BrickObject(Op::kListxattr, r);
    char buf[4096];
    ssize_t len = ::llistxattr((local + "/" + r).c_str(), buf, sizeof buf);
    std::set<std::string> want;
    for (ssize_t i = 0; i < len;) {
      std::string x(buf + i);
      want.insert(x);
      i += static_cast<ssize_t>(x.size()) + 1;
    }
    EXPECT_EQ(std::set<std::string>(lx.names.begin(), lx.names.end()), want);
    if (S_ISDIR(ls.st_mode)) ExpectSameTree(b, local, brick, r);
  }
}

struct Step {
  std::string what;
  int want;  // the errno both must give
  std::function<Twin::Pair(Twin&)> run;
};

TEST_F(BackendTest, EveryOpMatchesTheSameCallOnALocalDirectory) {
  Twin t(b_.get(), local_);
  const std::string long_name(256, 'n');
  const std::vector<Step> steps = {
      // mkdir / rmdir
      {"mkdir d", 0, [](Twin& x) { return x.Mkdir("d", 0755); }},
      {"mkdir d again", EEXIST, [](Twin& x) { return x.Mkdir("d", 0700); }},
      {"mkdir in a missing dir", ENOENT, [](Twin& x) { return x.Mkdir("nope/x", 0755); }},
      {"mkdir d/e sticky", 0, [](Twin& x) { return x.Mkdir("d/e", 01777); }},
      {"mkdir d/e/f", 0, [](Twin& x) { return x.Mkdir("d/e/f", 0711); }},
      {"rmdir non-empty", ENOTEMPTY, [](Twin& x) { return x.Rmdir("d/e"); }},
      {"rmdir missing", ENOENT, [](Twin& x) { return x.Rmdir("d/zz"); }},
      {"name too long", ENAMETOOLONG, [&](Twin& x) { return x.Mkdir(long_name, 0755); }},
      // create
      {"create f", 0, [](Twin& x) { return x.Create("f", 0640, true); }},
      {"create f exclusive again", EEXIST, [](Twin& x) { return x.Create("f", 0600, true); }},
      {"create f non-exclusive opens it", 0, [](Twin& x) { return x.Create("f", 0600, false); }},
      {"create over a dir", EISDIR, [](Twin& x) { return x.Create("d", 0600, false); }},
      {"create under a file", ENOTDIR, [](Twin& x) { return x.Create("f/x", 0600, true); }},
      {"create setuid", 0, [](Twin& x) { return x.Create("d/suid", 04755, true); }},
      {"mkdir over a file", EEXIST, [](Twin& x) { return x.Mkdir("f", 0755); }},
      {"rmdir a file", ENOTDIR, [](Twin& x) { return x.Rmdir("f"); }},
      {"unlink a dir", EISDIR, [](Twin& x) { return x.Unlink("d"); }},
      {"lookup missing", ENOENT, [](Twin& x) { return x.Lookup("d/missing"); }},
      {"lookup under a file", ENOTDIR, [](Twin& x) { return x.Lookup("f/x"); }},
      // data
      {"write f", 0, [](Twin& x) { return x.Write("f", 0, "hello world"); }},
      {"write f at 100", 0, [](Twin& x) { return x.Write("f", 100, "tail"); }},
      {"write a dir", EISDIR, [](Twin& x) { return x.Write("d", 0, "x"); }},
      {"read f", 0, [](Twin& x) { return x.Read("f", 0, 200); }},
      {"read f past the end", 0, [](Twin& x) { return x.Read("f", 500, 10); }},
      {"read a dir", EISDIR, [](Twin& x) { return x.Read("d", 0, 10); }},
      {"truncate f", 0,
       [](Twin& x) { return x.Setattr("f", brick_proto::kAttrSize, 0, 0, 0, 5, 0, 0); }},
      {"truncate a dir", EISDIR,
       [](Twin& x) { return x.Setattr("d", brick_proto::kAttrSize, 0, 0, 0, 5, 0, 0); }},
      {"fallocate f", 0, [](Twin& x) { return x.Fallocate("f", 0, 0, 8192); }},
      {"fallocate keep size", 0,
       [](Twin& x) { return x.Fallocate("f", FALLOC_FL_KEEP_SIZE, 8192, 8192); }},
      {"fallocate zero length", EINVAL, [](Twin& x) { return x.Fallocate("f", 0, 0, 0); }},
      {"punch hole", 0,
       [](Twin& x) {
         return x.Fallocate("f", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096);
       }},
      // setattr
      {"chmod f", 0,
       [](Twin& x) { return x.Setattr("f", brick_proto::kAttrMode, 0604, 0, 0, 0, 0, 0); }},
      {"chown f", 0,
       [](Twin& x) {
         return x.Setattr("f", brick_proto::kAttrUid | brick_proto::kAttrGid, 0, 1234, 5678, 0, 0,
                          0);
       }},
      {"chown suid file clears suid; chmod restores", 0,
       [](Twin& x) {
         return x.Setattr("d/suid", brick_proto::kAttrUid | brick_proto::kAttrMode, 04750, 42, 0, 0,
                          0, 0);
       }},
      {"utimes f", 0,
       [](Twin& x) {
         return x.Setattr("f", brick_proto::kAttrMtime | brick_proto::kAttrAtime, 0, 0, 0, 0,
                          999'000'000'000, 1000'000'000'000);
       }},
      {"chmod dir", 0,
       [](Twin& x) { return x.Setattr("d/e/f", brick_proto::kAttrMode, 0750, 0, 0, 0, 0, 0); }},
      // special files and symlinks
      {"mkfifo", 0, [](Twin& x) { return x.Mknod("fifo", S_IFIFO | 0620); }},
      {"mknod chr", 0, [](Twin& x) { return x.Mknod("null2", S_IFCHR | 0600); }},
      {"mknod a dir type", EPERM, [](Twin& x) { return x.Mknod("dd", S_IFDIR | 0600); }},
      {"mknod existing", EEXIST, [](Twin& x) { return x.Mknod("fifo", S_IFIFO | 0620); }},
      {"symlink", 0, [](Twin& x) { return x.Symlink("d/e", "sl"); }},
      {"symlink dangling", 0, [](Twin& x) { return x.Symlink("../nowhere", "d/dangle"); }},
      {"symlink existing", EEXIST, [](Twin& x) { return x.Symlink("x", "f"); }},
      {"symlink empty target", ENOENT, [](Twin& x) { return x.Symlink("", "empty"); }},
      {"readlink", 0, [](Twin& x) { return x.Readlink("sl"); }},
      {"readlink a file", EINVAL, [](Twin& x) { return x.Readlink("f"); }},
      {"readlink a dir", EINVAL, [](Twin& x) { return x.Readlink("d"); }},
      {"lchown a symlink", 0,
       [](Twin& x) { return x.Setattr("sl", brick_proto::kAttrUid, 0, 77, 0, 0, 0, 0); }},
      // hard links
      {"link f", 0, [](Twin& x) { return x.Link("f", "d/f2"); }},
      {"link f again", EEXIST, [](Twin& x) { return x.Link("f", "d/f2"); }},
      {"link a dir", EPERM, [](Twin& x) { return x.Link("d", "d2"); }},
      {"link a symlink", 0, [](Twin& x) { return x.Link("sl", "sl2"); }},
      {"write through the second name", 0, [](Twin& x) { return x.Write("d/f2", 2, "XY"); }},
      {"unlink the first name", 0, [](Twin& x) { return x.Unlink("f"); }},
      {"read via the remaining name", 0, [](Twin& x) { return x.Read("d/f2", 0, 100); }},
      {"unlink missing", ENOENT, [](Twin& x) { return x.Unlink("f"); }},
      // rename
      {"mkdir r", 0, [](Twin& x) { return x.Mkdir("r", 0755); }},
      {"mkdir r/full", 0, [](Twin& x) { return x.Mkdir("r/full", 0755); }},
      {"create r/full/x", 0, [](Twin& x) { return x.Create("r/full/x", 0644, true); }},
      {"mkdir r/empty", 0, [](Twin& x) { return x.Mkdir("r/empty", 0755); }},
      {"create r/file", 0, [](Twin& x) { return x.Create("r/file", 0644, true); }},
      {"create r/file2", 0, [](Twin& x) { return x.Create("r/file2", 0600, true); }},
      {"rename dir over non-empty dir", ENOTEMPTY,
       [](Twin& x) { return x.Rename("r/empty", "r/full"); }},
      {"rename dir over file", ENOTDIR, [](Twin& x) { return x.Rename("r/empty", "r/file"); }},
      {"rename file over dir", EISDIR, [](Twin& x) { return x.Rename("r/file", "r/empty"); }},
      {"rename dir into its own subtree", EINVAL,
       [](Twin& x) { return x.Rename("r", "r/full/r"); }},
      {"rename missing", ENOENT, [](Twin& x) { return x.Rename("r/none", "r/x"); }},
      {"rename noreplace onto existing", EEXIST,
       [](Twin& x) { return x.Rename("r/file", "r/file2", RENAME_NOREPLACE); }},
      {"rename file over file", 0, [](Twin& x) { return x.Rename("r/file", "r/file2"); }},
      {"rename dir over empty dir", 0, [](Twin& x) { return x.Rename("r/full", "r/empty"); }},
      {"rename dir across dirs", 0, [](Twin& x) { return x.Rename("r/empty", "d/moved"); }},
      {"use the moved dir", 0, [](Twin& x) { return x.Create("d/moved/y", 0600, true); }},
      {"exchange file and dir", 0,
       [](Twin& x) { return x.Rename("r/file2", "d/moved", RENAME_EXCHANGE); }},
      {"exchange with missing", ENOENT,
       [](Twin& x) { return x.Rename("r/file2", "r/nothing", RENAME_EXCHANGE); }},
      {"rename onto a hard link of itself", 0, [](Twin& x) { return x.Rename("sl", "sl2"); }},
      {"rename file over its last name's peer", 0,
       [](Twin& x) { return x.Rename("d/f2", "d/moved"); }},
      {"rmdir empty", 0, [](Twin& x) { return x.Rmdir("d/e/f"); }},
      // xattrs
      {"setxattr", 0, [](Twin& x) { return x.Setxattr("d", "user.k", "v1", 0); }},
      {"setxattr create existing", EEXIST,
       [](Twin& x) { return x.Setxattr("d", "user.k", "v2", XATTR_CREATE); }},
      {"setxattr replace missing", ENODATA,
       [](Twin& x) { return x.Setxattr("d", "user.none", "v", XATTR_REPLACE); }},
      {"setxattr replace", 0,
       [](Twin& x) { return x.Setxattr("d", "user.k", "v3", XATTR_REPLACE); }},
      {"getxattr", 0, [](Twin& x) { return x.Getxattr("d", "user.k"); }},
      {"getxattr missing", ENODATA, [](Twin& x) { return x.Getxattr("d", "user.none"); }},
      {"user xattr on a symlink", EPERM,
       [](Twin& x) { return x.Setxattr("sl", "user.k", "v", 0); }},
      // (trusted.* and security.* are refused by the brick on purpose: BackendXattrs below.)
      {"user xattr on a file", 0,
       [](Twin& x) { return x.Setxattr("r/file2", "user.t", "tv", 0); }},
      {"removexattr missing", ENODATA, [](Twin& x) { return x.Removexattr("d", "user.none"); }},
      {"setxattr user.gone", 0, [](Twin& x) { return x.Setxattr("d", "user.gone", "", 0); }},
      {"removexattr", 0, [](Twin& x) { return x.Removexattr("d", "user.gone"); }},
      // access and readdir
      {"access R|W", 0, [](Twin& x) { return x.Access("d", R_OK | W_OK); }},
      {"access X on a 0600 file", EACCES, [](Twin& x) { return x.Access("d/moved", X_OK); }},
      {"access X on a dir", 0, [](Twin& x) { return x.Access("d", X_OK); }},
      {"readdir", 0, [](Twin& x) { return x.Readdir("d"); }},
      {"readdir root", 0, [](Twin& x) { return x.Readdir(""); }},
      {"readdir a file", ENOTDIR, [](Twin& x) { return x.Readdir("d/moved"); }},
  };
  for (const Step& s : steps) {
    auto [local, brick] = s.run(t);
    EXPECT_EQ(Err(local), Err(s.want)) << s.what << " (local)";
    EXPECT_EQ(Err(brick), Err(local)) << s.what << " (brick vs local)";
  }
  ExpectSameTree(b_.get(), local_, dir_);
  EXPECT_EQ(Join(Check()), "");
}

TEST_F(BackendTest, RejectsBadNamesAndGuardsThePrivateFolder) {
  const Gfid root = Gfid::Root();
  for (std::string bad : {std::string(""), std::string("."), std::string(".."), std::string("a/b"),
                          std::string("/abs"), std::string("x\0y", 3)}) {
    SCOPED_TRACE("name '" + bad + "'");
    EXPECT_EQ(Mkdir(root, bad).err, EINVAL);
    EXPECT_EQ(Create(root, bad).err, EINVAL);
    EXPECT_EQ(Do(Entry(Op::kLookup, root, bad)).err, EINVAL);
    EXPECT_EQ(Do(Entry(Op::kUnlink, root, bad)).err, EINVAL);
    EXPECT_EQ(Do(Entry(Op::kRmdir, root, bad)).err, EINVAL);
    EXPECT_EQ(Rename(root, bad, root, "x").err, EINVAL);
  }
  ASSERT_EQ(Mkdir(root, "a").err, 0);
  Reply f = Create(root, "f");
  ASSERT_EQ(f.err, 0);
  for (const char* bad : {"..", "a/../../etc"}) {
    EXPECT_EQ(Rename(root, "a", root, bad).err, EINVAL);
    Request l = Entry(Op::kLink, root, bad);
    l.gfid = f.attr.gfid;
    EXPECT_EQ(Do(l).err, EINVAL);
  }
  // .drfs in the root: invisible and untouchable.
  EXPECT_EQ(Do(Entry(Op::kLookup, root, ".drfs")).err, ENOENT);
  EXPECT_EQ(Mkdir(root, ".drfs").err, EPERM);
  EXPECT_EQ(Create(root, ".drfs").err, EPERM);
  EXPECT_EQ(Do(Entry(Op::kRmdir, root, ".drfs")).err, EPERM);
  EXPECT_EQ(Do(Entry(Op::kUnlink, root, ".drfs")).err, EPERM);
  EXPECT_EQ(Rename(root, ".drfs", root, "x").err, EPERM);
  EXPECT_EQ(Rename(root, "a", root, ".drfs").err, EPERM);
  Request l = Entry(Op::kLink, root, ".drfs");
  l.gfid = f.attr.gfid;
  EXPECT_EQ(Do(l).err, EPERM);
  Reply rd = Do(ByGfid(Op::kReaddir, root));
  ASSERT_EQ(rd.err, 0);
  for (const auto& e : rd.entries)
    EXPECT_NE(e.name, ".drfs");
  // ... but ".drfs" is an ordinary name below the root.
  ASSERT_EQ(Mkdir(root, "sub").err, 0);
  EXPECT_EQ(Mkdir(Do(Entry(Op::kLookup, root, "sub")).attr.gfid, ".drfs").err, 0);
  // The brick's own xattrs are hidden and protected.
  Request gx = ByGfid(Op::kGetxattr, f.attr.gfid);
  gx.xattr_name = "trusted.drfs.gfid";
  EXPECT_EQ(Do(gx).err, ENODATA);
  Request sx = ByGfid(Op::kSetxattr, f.attr.gfid);
  sx.xattr_name = "trusted.drfs.gfid";
  sx.xattr_value = std::string(16, 'x');
  EXPECT_EQ(Do(sx).err, EPERM);
  Request rx = ByGfid(Op::kRemovexattr, f.attr.gfid);
  rx.xattr_name = "trusted.drfs.gfid";
  EXPECT_EQ(Do(rx).err, EPERM);
  EXPECT_EQ(Join(Check()), "");
}

TEST_F(BackendTest, CreateWithAGfidThatExistsIsRefused) {
  Gfid g = Gfid::Random();
  ASSERT_EQ(Create(Gfid::Root(), "a", 0644, g).err, 0);
  Reply r = Create(Gfid::Root(), "b", 0644, g);
  EXPECT_EQ(r.err, EEXIST);
  EXPECT_NE(r.message.find("already exists"), std::string::npos) << r.message;
  EXPECT_EQ(Mkdir(Gfid::Root(), "c", 0755, g).err, EEXIST);
  EXPECT_EQ(Mkdir(Gfid::Root(), "c", 0755, Gfid::Root()).err, EINVAL);
  EXPECT_EQ(Mkdir(Gfid::Root(), "c", 0755, Gfid()).err, EINVAL);
  EXPECT_EQ(Do(Entry(Op::kLookup, Gfid::Root(), "b")).err, ENOENT);
  EXPECT_EQ(Join(Check()), "");
}

// The brick keeps recently used files open (by gfid); a file whose last name is gone must still
// be gone by gfid at once, however it went.
TEST_F(BackendTest, AFileGoneFromTheTreeIsGoneByGfidThoughItWasJustUsed) {
  const Gfid root = Gfid::Root();
  Gfid a = Gfid::Random(), b = Gfid::Random(), c = Gfid::Random();
  ASSERT_EQ(Create(root, "a", 0644, a).err, 0);
  ASSERT_EQ(Create(root, "b", 0644, b).err, 0);
  ASSERT_EQ(Create(root, "c", 0644, c).err, 0);
  for (const Gfid& g : {a, b, c}) {
    ASSERT_EQ(Write(g, 0, "data").err, 0);
    ASSERT_EQ(Do(ByGfid(Op::kGetattr, g)).attr.size, 4u);
  }
  ASSERT_EQ(Do(Entry(Op::kUnlink, root, "a")).err, 0);
  ASSERT_EQ(Rename(root, "b", root, "c").err, 0);  // replaces c
  EXPECT_EQ(Write(a, 0, "x").err, ENOENT);
  EXPECT_EQ(Do(ByGfid(Op::kGetattr, a)).err, ENOENT);
  EXPECT_EQ(Write(c, 0, "x").err, ENOENT);
  EXPECT_EQ(Do(ByGfid(Op::kGetattr, c)).err, ENOENT);
  Reply moved = Write(b, 4, "more");
  EXPECT_EQ(moved.err, 0);
  EXPECT_EQ(moved.attr.size, 8u);
  EXPECT_EQ(Do(Entry(Op::kLookup, root, "c")).attr.gfid, b);
  EXPECT_EQ(Join(Check()), "");
}

// Modes come out as asked whatever the brick process's umask, with owner and set-id bits too.
TEST_F(BackendTest, CreateModesDoNotDependOnTheUmask) {
  const Gfid root = Gfid::Root();
  ::umask(077);
  Reply f = Create(root, "f", 0666);
  Reply s = Create(root, "s", 02755);
  Reply d = Mkdir(root, "d", 01777);
  Request q = Entry(Op::kCreate, root, "owned");
  q.gfid = Gfid::Random();
  q.mode = 04750;
  q.uid = 4321;
  q.gid = 8765;
  q.flags = brick_proto::kCreateExclusive;
  Reply o = Do(q);
  ASSERT_EQ(f.err, 0);
  ASSERT_EQ(s.err, 0);
  ASSERT_EQ(d.err, 0);
  ASSERT_EQ(o.err, 0);
  EXPECT_EQ(f.attr.mode, S_IFREG | 0666u);
  EXPECT_EQ(s.attr.mode, S_IFREG | 02755u);
  EXPECT_EQ(d.attr.mode, S_IFDIR | 01777u);
  EXPECT_EQ(o.attr.mode, S_IFREG | 04750u);
  EXPECT_EQ(o.attr.uid, 4321u);
  EXPECT_EQ(o.attr.gid, 8765u);
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/owned").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFREG | 04750u);
  EXPECT_EQ(st.st_uid, 4321u);
  ASSERT_EQ(::stat((dir_ + "/d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFDIR | 01777u);
  EXPECT_EQ(Join(Check()), "");
}

TEST_F(BackendTest, JournalHoldsExactlyTheMutationsInOrder) {
  const Gfid root = Gfid::Root();
  const Gfid d = G(1), f = G(2), s = G(3), n = G(4), e = G(5);
  std::vector<uint64_t> lsns;
  auto ok = [&](const Reply& r) {
    EXPECT_EQ(r.err, 0) << r.message;
    if (r.lsn) lsns.push_back(r.lsn);
  };
  ok(Mkdir(root, "d", 0750, d));
  ok(Create(d, "f", 0640, f));
  ok(Write(f, 10, "abc"));
  Request sa = ByGfid(Op::kSetattr, f);
  sa.attr_valid = brick_proto::kAttrSize | brick_proto::kAttrMode | brick_proto::kAttrMtimeNow;
  sa.size = 2;
  sa.mode = 0600;
  Reply sar = Do(sa);
  ok(sar);
  {
    Request q = Entry(Op::kSymlink, d, "s");
    q.gfid = s;
    q.target = "f";
    ok(Do(q));
  }
  {
    Request q = Entry(Op::kMknod, root, "n");
    q.gfid = n;
    q.mode = S_IFIFO | 0600;
    ok(Do(q));
  }
  {
    Request q = Entry(Op::kLink, root, "f-link");
    q.gfid = f;
    ok(Do(q));
  }
  ok(Create(root, "e", 0600, e));
  ok(Rename(root, "e", d, "f"));  // replaces f's name in d; f keeps f-link
  {
    Request q = ByGfid(Op::kSetxattr, d);
    q.xattr_name = "user.x";
    q.xattr_value = "1";
    ok(Do(q));
    q.op = Op::kRemovexattr;
    ok(Do(q));
  }
  {
    Request q = ByGfid(Op::kFallocate, e);
    q.length = 4096;
    ok(Do(q));
  }
  ok(Do(Entry(Op::kUnlink, root, "f-link")));
  ok(Do(Entry(Op::kUnlink, d, "s")));
  ok(Do(Entry(Op::kUnlink, d, "f")));
  ok(Do(Entry(Op::kRmdir, root, "d")));
  // Reads and no-op creates journal nothing.
  EXPECT_EQ(Create(root, "n", 0600, G(9), 0).lsn, 0u);
  EXPECT_EQ(Do(ByGfid(Op::kGetattr, n)).lsn, 0u);

  std::vector<Record> recs;
  TreeModel model;
  EXPECT_EQ(Join(ReplayJournal(dir_, &model, &recs)), "");
  struct Want {
    OpType op;
    Gfid gfid;
    Gfid parent;
    std::string name;
  };
  const std::vector<Want> want = {
      {OpType::kMkdir, d, root, "d"},  {OpType::kCreate, f, d, "f"},
      {OpType::kWrite, f, {}, ""},     {OpType::kTruncate, f, {}, ""},
      {OpType::kSetattr, f, {}, ""},   {OpType::kSymlink, s, d, "s"},
      {OpType::kMknod, n, root, "n"},  {OpType::kLink, f, root, "f-link"},
      {OpType::kCreate, e, root, "e"}, {OpType::kRename, e, root, "e"},
      {OpType::kSetxattr, d, {}, ""},  {OpType::kRemovexattr, d, {}, ""},
      {OpType::kFallocate, e, {}, ""}, {OpType::kUnlink, f, root, "f-link"},
      {OpType::kUnlink, s, d, "s"},    {OpType::kUnlink, e, d, "f"},
      {OpType::kRmdir, d, root, "d"},
  };
  ASSERT_EQ(recs.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE("record " + std::to_string(i));
    EXPECT_EQ(recs[i].lsn, i + 1);
    EXPECT_EQ(recs[i].op, want[i].op);
    EXPECT_EQ(recs[i].gfid, want[i].gfid);
    EXPECT_EQ(recs[i].parent, want[i].parent);
    EXPECT_EQ(recs[i].name, want[i].name);
  }
  // Field details.
  EXPECT_EQ(recs[0].mode, S_IFDIR | 0750u);
  EXPECT_EQ(recs[1].mode, S_IFREG | 0640u);
  EXPECT_EQ(recs[2].offset, 10u);
  EXPECT_EQ(recs[2].length, 3u);
  EXPECT_EQ(recs[3].size, 2u);
  EXPECT_EQ(recs[4].setattr_valid, changelog::kSetMode | changelog::kSetMtime);
  EXPECT_EQ(recs[4].mode, 0600u);
  EXPECT_EQ(recs[4].mtime_ns, sar.attr.mtime_ns) << "the journal holds the time applied";
  EXPECT_EQ(sar.lsn, 5u) << "a setattr replies with its last record";
  EXPECT_EQ(recs[5].symlink_target, "f");
  EXPECT_EQ(recs[6].mode, S_IFIFO | 0600u);
  EXPECT_EQ(recs[9].new_parent, d);
  EXPECT_EQ(recs[9].new_name, "f");
  EXPECT_EQ(recs[9].replaced, f);
  EXPECT_EQ(recs[10].xattr_name, "user.x");
  EXPECT_EQ(recs[12].length, 4096u);
  EXPECT_EQ(lsns, std::vector<uint64_t>({1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}));
  TreeModel tree;
  EXPECT_EQ(Join(CheckConsistency(dir_, &tree)), "");
  EXPECT_EQ(model, tree);
}

TEST_F(BackendTest, ExchangeIsJournaledAsARenameWithTheExchangeFlag) {
  const Gfid root = Gfid::Root();
  Gfid a = G(1), b = G(2);
  ASSERT_EQ(Mkdir(root, "a", 0755, a).err, 0);
  ASSERT_EQ(Create(root, "b", 0644, b).err, 0);
  ASSERT_EQ(Mkdir(a, "inside").err, 0);
  Reply r = Rename(root, "a", root, "b", RENAME_EXCHANGE);
  ASSERT_EQ(r.err, 0) << r.message;
  EXPECT_EQ(Do(Entry(Op::kLookup, root, "a")).attr.gfid, b);
  EXPECT_EQ(Do(Entry(Op::kLookup, root, "b")).attr.gfid, a);
  EXPECT_EQ(Do(Entry(Op::kLookup, a, "inside")).err, 0) << "the dir handle follows the exchange";
  std::vector<Record> recs;
  TreeModel model, tree;
  EXPECT_EQ(Join(ReplayJournal(dir_, &model, &recs)), "");
  ASSERT_EQ(recs.back().op, OpType::kRename);
  EXPECT_EQ(recs.back().gfid, a);
  EXPECT_EQ(recs.back().replaced, b);
  EXPECT_EQ(recs.back().rename_flags, changelog::kRenameExchange);
  EXPECT_EQ(Join(CheckConsistency(dir_, &tree)), "");
  EXPECT_EQ(model, tree);
}

TEST_F(BackendTest, DirectoryRenameKeepsEveryDescendantAddressable) {
  const Gfid root = Gfid::Root();
  Gfid a = G(1), b = G(2), c = G(3), f = G(4);
  ASSERT_EQ(Mkdir(root, "a", 0755, a).err, 0);
  ASSERT_EQ(Mkdir(a, "b", 0755, b).err, 0);
  ASSERT_EQ(Mkdir(b, "c", 0755, c).err, 0);
  ASSERT_EQ(Create(c, "f", 0644, f).err, 0);
  ASSERT_EQ(Mkdir(root, "x").err, 0);
  Gfid x = Do(Entry(Op::kLookup, root, "x")).attr.gfid;
  ASSERT_EQ(Rename(root, "a", x, "renamed").err, 0);
  ASSERT_EQ(Rename(a, "b", root, "top").err, 0);
  for (const Gfid& g : {a, b, c, f})
    EXPECT_EQ(Do(ByGfid(Op::kGetattr, g)).err, 0);
  Request q = ByGfid(Op::kResolveGfid, f);
  EXPECT_EQ(Do(q).data, "/top/c/f");
  q.gfid = a;
  EXPECT_EQ(Do(q).data, "/x/renamed");
  q.gfid = root;
  EXPECT_EQ(Do(q).data, "/");
  EXPECT_EQ(Join(Check()), "");
}

TEST_F(BackendTest, ResolveGfidFindsFilesThroughLinksAndRenames) {
  const Gfid root = Gfid::Root();
  Gfid d = G(1), f = G(2);
  ASSERT_EQ(Mkdir(root, "d", 0755, d).err, 0);
  ASSERT_EQ(Create(d, "f", 0644, f).err, 0);
  Request q = ByGfid(Op::kResolveGfid, f);
  EXPECT_EQ(Do(q).data, "/d/f");
  Request l = Entry(Op::kLink, root, "other");
  l.gfid = f;
  ASSERT_EQ(Do(l).err, 0);
  EXPECT_EQ(Do(q).data, "/other");
  ASSERT_EQ(Do(Entry(Op::kUnlink, root, "other")).err, 0);
  EXPECT_EQ(Do(q).data, "/d/f") << "the recorded name is gone: found by a search";
  ASSERT_EQ(Rename(d, "f", root, "g").err, 0);
  EXPECT_EQ(Do(q).data, "/g");
  ASSERT_EQ(Do(Entry(Op::kUnlink, root, "g")).err, 0);
  EXPECT_EQ(Do(q).err, ENOENT);
}

TEST_F(BackendTest, ReaddirPagesWithCookiesAndFillsAttributes) {
  const Gfid root = Gfid::Root();
  Gfid d = G(1);
  ASSERT_EQ(Mkdir(root, "d", 0755, d).err, 0);
  std::map<std::string, Gfid> made;
  for (int i = 0; i < 300; ++i) {
    Gfid g = Gfid::Random();
    std::string name = "f" + std::to_string(i);
    ASSERT_EQ((i % 3 ? Create(d, name, 0644, g) : Mkdir(d, name, 0755, g)).err, 0);
    made[name] = g;
  }
  // One made behind the brick's back: listed, with a null gfid.
  ASSERT_EQ(::mkdir((dir_ + "/d/foreign").c_str(), 0755), 0);
  std::map<std::string, Gfid> seen;
  uint64_t cookie = 0;
  int calls = 0;
  for (bool eof = false; !eof; ++calls) {
    Request q = ByGfid(Op::kReaddir, d);
    q.offset = cookie;
    q.length = 64;
    q.flags = brick_proto::kReaddirPlus;
    Reply r = Do(q);
    ASSERT_EQ(r.err, 0) << r.message;
    ASSERT_LE(r.entries.size(), 64u);
    for (const auto& e : r.entries) {
      EXPECT_TRUE(seen.emplace(e.name, e.gfid).second) << "listed twice: " << e.name;
      EXPECT_TRUE(e.has_attr);
      EXPECT_EQ(e.attr.gfid, e.gfid);
      EXPECT_EQ(S_ISDIR(e.attr.mode), e.type == DT_DIR);
      cookie = e.cookie;
    }
    eof = r.eof;
    ASSERT_LT(calls, 20);
  }
  EXPECT_GE(calls, 5);
  EXPECT_EQ(seen.size(), 301u);
  EXPECT_TRUE(seen.at("foreign").is_null());
  seen.erase("foreign");
  EXPECT_EQ(seen, made);
  // Plain readdir carries no attributes; the default page is 512.
  Reply r = Do(ByGfid(Op::kReaddir, d));
  EXPECT_EQ(r.entries.size(), 301u);
  EXPECT_TRUE(r.eof);
  EXPECT_FALSE(r.entries.front().has_attr);
  ::rmdir((dir_ + "/d/foreign").c_str());
}

TEST_F(BackendTest, StatfsAccessHelloAndUnknownGfids) {
  Reply s = Do(ByGfid(Op::kStatfs, Gfid::Root()));
  ASSERT_EQ(s.err, 0);
  struct statvfs v {};
  ASSERT_EQ(::statvfs(dir_.c_str(), &v), 0);
  EXPECT_EQ(s.statfs.blocks, v.f_blocks);
  EXPECT_EQ(s.statfs.namemax, 255u);
  Reply h = Do(Request{});
  EXPECT_EQ(h.data, b_->brick_id().ToString());
  const Gfid ghost = Gfid::Random();
  for (Op op : {Op::kGetattr, Op::kRead, Op::kWrite, Op::kReaddir, Op::kSetattr, Op::kGetxattr,
                Op::kReadlink, Op::kResolveGfid}) {
    EXPECT_EQ(Do(ByGfid(op, ghost)).err, ENOENT) << brick_proto::OpName(op);
  }
  EXPECT_EQ(Do(Entry(Op::kLookup, ghost, "x")).err, ENOENT);
  EXPECT_EQ(Mkdir(ghost, "x").err, ENOENT);
}

// ---- Path escapes ------------------------------------------------------------------------------

TEST_F(BackendTest, UserSymlinksAreNeverFollowed) {
  const Gfid root = Gfid::Root();
  TempDir outside;
  const std::string secret = outside.Sub("secret");
  drfs::testing::WriteFile(secret, "do not touch");
  ASSERT_EQ(::mkdir(outside.Sub("d").c_str(), 0755), 0);
  struct stat before {};
  ASSERT_EQ(::stat(secret.c_str(), &before), 0);
  for (const std::string& target :
       {outside.path(), secret, std::string("../../.."), std::string("/etc"), std::string("..")}) {
    SCOPED_TRACE("symlink to " + target);
    Gfid sl = Gfid::Random();
    Request q = Entry(Op::kSymlink, root, "esc");
    q.gfid = sl;
    q.target = target;
    ASSERT_EQ(Do(q).err, 0);
    // As a parent, it is not a directory.
    EXPECT_EQ(Do(Entry(Op::kLookup, sl, "secret")).err, ENOTDIR);
    EXPECT_EQ(Do(Entry(Op::kLookup, sl, "passwd")).err, ENOTDIR);
    EXPECT_EQ(Mkdir(sl, "d").err, ENOTDIR);
    EXPECT_EQ(Create(sl, "new").err, ENOTDIR);
    EXPECT_EQ(Do(Entry(Op::kUnlink, sl, "secret")).err, ENOTDIR);
    EXPECT_EQ(Rename(sl, "secret", root, "stolen").err, ENOTDIR);
    EXPECT_EQ(Do(ByGfid(Op::kReaddir, sl)).err, ENOTDIR);
    // By its gfid, it is the symlink itself.
    Reply a = Do(ByGfid(Op::kGetattr, sl));
    ASSERT_EQ(a.err, 0);
    EXPECT_TRUE(S_ISLNK(a.attr.mode));
    EXPECT_EQ(a.attr.size, target.size());
    EXPECT_EQ(Write(sl, 0, "pwned").err, EINVAL);
    Request rd = ByGfid(Op::kRead, sl);
    rd.length = 100;
    EXPECT_EQ(Do(rd).err, EINVAL);
    Request tr = ByGfid(Op::kSetattr, sl);
    tr.attr_valid = brick_proto::kAttrSize;
    EXPECT_EQ(Do(tr).err, EINVAL);
    Request ch = ByGfid(Op::kSetattr, sl);
    ch.attr_valid = brick_proto::kAttrMode;
    ch.mode = 0777;
    EXPECT_EQ(Do(ch).err, EOPNOTSUPP);
    ch.attr_valid = brick_proto::kAttrUid | brick_proto::kAttrMtime;
    ch.uid = 4321;
    ch.mtime_ns = 5'000'000'000;
    EXPECT_EQ(Do(ch).err, 0);
    struct stat ls {};
    ASSERT_EQ(::lstat((dir_ + "/esc").c_str(), &ls), 0);
    EXPECT_EQ(ls.st_uid, 4321u) << "the symlink itself changed";
    Request sx = ByGfid(Op::kSetxattr, sl);
    sx.xattr_name = "trusted.mark";  // refused (namespace), and never reaches the target
    sx.xattr_value = "m";
    EXPECT_EQ(Do(sx).err, EPERM);
    EXPECT_LT(
        ::getxattr(target.starts_with("/") ? target.c_str() : "/", "trusted.mark", nullptr, 0), 0);
    Request fa = ByGfid(Op::kFallocate, sl);
    fa.length = 10;
    EXPECT_EQ(Do(fa).err, EINVAL);
    Request ac = ByGfid(Op::kAccess, sl);
    ac.flags = F_OK;
    EXPECT_EQ(Do(ac).err, 0);
    Request rl = ByGfid(Op::kReadlink, sl);
    EXPECT_EQ(Do(rl).data, target);
    // Linking to it links the symlink.
    Request l = Entry(Op::kLink, root, "esc2");
    l.gfid = sl;
    ASSERT_EQ(Do(l).err, 0);
    ASSERT_EQ(::lstat((dir_ + "/esc2").c_str(), &ls), 0);
    EXPECT_TRUE(S_ISLNK(ls.st_mode));
    ASSERT_EQ(Do(Entry(Op::kUnlink, root, "esc2")).err, 0);
    ASSERT_EQ(Do(Entry(Op::kUnlink, root, "esc")).err, 0);
  }
  struct stat after {};
  ASSERT_EQ(::stat(secret.c_str(), &after), 0);
  EXPECT_EQ(drfs::testing::ReadFile(secret), "do not touch");
  EXPECT_EQ(before.st_uid, after.st_uid);
  EXPECT_EQ(before.st_mode, after.st_mode);
  EXPECT_EQ(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
  EXPECT_EQ(testing::ListDir(outside.Sub("d")).size(), 0u);
  EXPECT_EQ(Join(Check()), "");
}

TEST_F(BackendTest, TamperedHandlesAreRefusedNotFollowed) {
  const Gfid root = Gfid::Root();
  Gfid d = G(1), other = G(2), f = G(3);
  ASSERT_EQ(Mkdir(root, "d", 0755, d).err, 0);
  ASSERT_EQ(Mkdir(root, "other", 0755, other).err, 0);
  ASSERT_EQ(Create(root, "f", 0644, f).err, 0);
  TempDir outside;
  ASSERT_EQ(::mkdir(outside.Sub("x").c_str(), 0755), 0);
  const std::string h = dir_ + "/.drfs/gfid/" + testing::HandleRel(d);
  const std::string fh = dir_ + "/.drfs/gfid/" + testing::HandleRel(f);
  auto tamper = [](const std::string& handle, const std::string& target) {
    ASSERT_EQ(::unlink(handle.c_str()), 0);
    ASSERT_EQ(::symlink(target.c_str(), handle.c_str()), 0);
  };
  for (const std::string& target :
       {outside.path(), std::string("/etc"), std::string("../../../../.."),
        std::string("../../../../../x"), "../../00/00/" + root.ToString() + "/other",
        "../../00/00/" + root.ToString() + "/f", std::string("../../../../d/../../etc")}) {
    SCOPED_TRACE("dir handle -> " + target);
    tamper(h, target);
    Reply a = Do(ByGfid(Op::kGetattr, d));
    EXPECT_TRUE(a.err == ESTALE || a.err == EINVAL || a.err == ENOENT) << Err(a.err);
    EXPECT_NE(a.err, 0);
    EXPECT_NE(Do(Entry(Op::kLookup, d, "x")).err, 0);
    EXPECT_NE(Mkdir(d, "planted").err, 0);
    EXPECT_NE(Do(ByGfid(Op::kReaddir, d)).err, 0);
  }
  EXPECT_EQ(testing::ListDir(outside.path()), std::vector<std::string>{"x"});
  EXPECT_EQ(testing::ListDir(dir_ + "/other").size(), 0u);
  tamper(h, "../../00/00/" + root.ToString() + "/d");
  EXPECT_EQ(Do(ByGfid(Op::kGetattr, d)).err, 0) << "restored";
  // A file's handle swapped for a symlink out of the brick.
  for (const std::string& target : {std::string("/etc/passwd"), outside.path()}) {
    tamper(fh, target);
    EXPECT_NE(Do(ByGfid(Op::kGetattr, f)).err, 0);
    EXPECT_NE(Write(f, 0, "x").err, 0);
  }
}

// ---- Read-only ---------------------------------------------------------------------------------

TEST_F(BackendTest, ReadOnlyRefusesEveryMutationUnlessAllowed) {
  const Gfid root = Gfid::Root();
  Gfid d = G(1), f = G(2);
  ASSERT_EQ(Mkdir(root, "d", 0755, d).err, 0);
  ASSERT_EQ(Create(d, "f", 0644, f).err, 0);
  ASSERT_EQ(Write(f, 0, "data").err, 0);
  b_.reset();
  b_ = OpenBrick(dir_, /*read_only=*/true);
  ASSERT_NE(b_, nullptr);
  EXPECT_TRUE(b_->read_only());
  const uint64_t last = b_->journal()->last_lsn();
  for (uint16_t i = 1; i <= brick_proto::kMaxOp; ++i) {
    Op op = static_cast<Op>(i);
    Request q;
    q.op = op;
    q.gfid = brick_proto::IsMutation(op) && op != Op::kWrite && op != Op::kSetattr &&
                     op != Op::kFallocate && op != Op::kSetxattr && op != Op::kRemovexattr &&
                     op != Op::kLink
                 ? Gfid::Random()
                 : f;
    q.parent = d;
    q.name = "n";
    q.new_parent = d;
    q.new_name = "m";
    q.target = "t";
    q.data = "x";
    q.length = 4;
    q.attr_valid = brick_proto::kAttrMode;
    q.mode = 0600;
    q.xattr_name = "user.x";
    Reply r = b_->Execute(q);
    if (brick_proto::IsMutation(op)) {
      EXPECT_EQ(r.err, EROFS) << brick_proto::OpName(op);
      EXPECT_NE(r.message.find("read-only"), std::string::npos);
    } else {
      EXPECT_NE(r.err, EROFS) << brick_proto::OpName(op);
    }
  }
  Request rd = ByGfid(Op::kRead, f);
  rd.length = 10;
  EXPECT_EQ(Do(rd).data, "data");
  EXPECT_EQ(Do(Entry(Op::kLookup, d, "f")).attr.gfid, f);
  EXPECT_EQ(b_->journal()->last_lsn(), last) << "nothing journaled";
  // The applier's path.
  Request mk = Entry(Op::kMkdir, d, "applied");
  mk.gfid = Gfid::Random();
  mk.mode = 0755;
  Reply r = b_->Execute(mk, /*allow_when_read_only=*/true);
  EXPECT_EQ(r.err, 0) << r.message;
  EXPECT_EQ(r.lsn, last + 1);
  EXPECT_EQ(Join(Check()), "");
}

TEST_F(BackendTest, OpenRefusesNonDirectoriesAndASecondBrickOnTheSameDirectory) {
  drfs::testing::WriteFile(t_.Sub("file"), "x");
  auto f = Backend::Open(t_.Sub("file"), {});
  EXPECT_EQ(f.status().code(), Code::kFailedPrecondition);
  auto m = Backend::Open(t_.Sub("missing"), {});
  EXPECT_EQ(m.status().code(), Code::kFailedPrecondition);
  auto second = Backend::Open(dir_, {});
  EXPECT_EQ(second.status().code(), Code::kFailedPrecondition) << second.status().ToString();
}

// ---- The journal refuses: each namespace op is undone ------------------------------------------

TEST_F(BackendTest, FailedJournalAppendUndoesTheOp) {
  if (!failpoint::CompiledIn()) GTEST_SKIP() << "failure probes are compiled out";
  const Gfid root = Gfid::Root();
  Gfid d = G(1), f = G(2), e = G(3), g2 = G(4);
  ASSERT_EQ(Mkdir(root, "d", 0750, d).err, 0);
  ASSERT_EQ(Create(d, "f", 0640, f).err, 0);
  ASSERT_EQ(Write(f, 0, "keep").err, 0);
  ASSERT_EQ(Mkdir(root, "e", 0700, e).err, 0);
  ASSERT_EQ(Create(root, "g", 0600, g2).err, 0);
  TreeModel before;
  ASSERT_EQ(Join(CheckConsistency(dir_, &before)), "");
  const uint64_t last = b_->journal()->last_lsn();

  failpoint::Set("brick.journal.append", "error");
  auto refused = [&](const Reply& r, const char* what) {
    EXPECT_EQ(r.err, EIO) << what;
    EXPECT_NE(r.message.find("journal"), std::string::npos) << r.message;
    TreeModel now;
    EXPECT_EQ(Join(CheckConsistency(dir_, &now)), "") << what;
    EXPECT_EQ(now, before) << what << " was not undone";
  };
  refused(Mkdir(root, "new"), "mkdir");
  refused(Create(d, "new"), "create");
  {
    Request q = Entry(Op::kSymlink, d, "sl");
    q.gfid = Gfid::Random();
    q.target = "x";
    refused(Do(q), "symlink");
    q = Entry(Op::kMknod, d, "fifo");
    q.gfid = Gfid::Random();
    q.mode = S_IFIFO | 0600;
    refused(Do(q), "mknod");
    q = Entry(Op::kLink, root, "f2");
    q.gfid = f;
    refused(Do(q), "link");
  }
  refused(Do(Entry(Op::kUnlink, d, "f")), "unlink");
  refused(Do(Entry(Op::kRmdir, root, "e")), "rmdir");
  refused(Rename(d, "f", root, "moved"), "rename");
  refused(Rename(d, "f", root, "g"), "rename over a file");
  refused(Rename(root, "e", root, "d2"), "rename a dir");
  refused(Rename(root, "d", root, "e"), "rename a dir over an empty dir");
  refused(Rename(d, "f", root, "e", RENAME_EXCHANGE), "exchange");
  failpoint::ClearAll();

  EXPECT_EQ(b_->journal()->last_lsn(), last);
  // What was undone still works as before.
  Request rd = ByGfid(Op::kRead, f);
  rd.length = 10;
  EXPECT_EQ(Do(rd).data, "keep");
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/e").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u) << "the recreated directory keeps its mode";
  EXPECT_EQ(Do(Entry(Op::kLookup, root, "e")).attr.gfid, e);
  EXPECT_EQ(Mkdir(e, "child").err, 0);
  EXPECT_EQ(Do(Entry(Op::kLookup, d, "f")).attr.gfid, f);
  TreeModel model, tree;
  EXPECT_EQ(Join(ReplayJournal(dir_, &model)), "");
  EXPECT_EQ(Join(CheckConsistency(dir_, &tree)), "");
  EXPECT_EQ(model, tree);
}

TEST_F(BackendTest, OpenRepairsLeftoverIntents) {
  const Gfid root = Gfid::Root();
  Gfid d = G(1), f = G(2);
  ASSERT_EQ(Mkdir(root, "d", 0755, d).err, 0);
  ASSERT_EQ(Create(d, "f", 0644, f).err, 0);
  b_.reset();
  // Fake a crash after an unlink's first step: the name is gone, the handle and intent remain.
  ASSERT_EQ(::unlink((dir_ + "/d/f").c_str()), 0);
  detail::Intent in;
  in.seq = 5;
  in.base_lsn = 2;
  in.op = OpType::kUnlink;
  in.gfid = f;
  in.parent = d;
  in.name = "f";
  in.last = true;
  {
    int brick_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
    detail::IntentLog log;
    ASSERT_TRUE(log.Open(brick_fd, ".drfs/intents", "intents").ok());
    ASSERT_TRUE(log.Put(in.Encode()).ok());
    // And a torn intent (the crash came while writing it): its checksum fails.
    auto torn = log.Put(in.Encode());
    ASSERT_TRUE(torn.ok());
    int log_fd = ::openat(brick_fd, ".drfs/intents", O_WRONLY);
    const off_t at = static_cast<off_t>(*torn) * detail::IntentLog::kSlotSize + 40;
    ASSERT_EQ(::pwrite(log_fd, "XX", 2, at), 2);
    ::close(log_fd);
    ::close(brick_fd);
  }
  b_ = OpenBrick(dir_);
  ASSERT_NE(b_, nullptr);
  EXPECT_EQ(b_->repair_report().intents_rolled_back, 1);
  EXPECT_EQ(b_->repair_report().intents_completed, 0);
  EXPECT_EQ(Do(Entry(Op::kLookup, d, "f")).attr.gfid, f) << "the unlink was undone";
  EXPECT_EQ(Join(Check()), "");

  // Journaled, then the crash: the cleanup (dropping the handle) is finished.
  ASSERT_EQ(Do(Entry(Op::kUnlink, d, "f")).err, 0);
  b_.reset();
  ASSERT_EQ(::mknod((dir_ + "/.drfs/gfid/" + testing::HandleRel(f)).c_str(), S_IFREG | 0600, 0), 0);
  Gfid fg = f;
  ASSERT_EQ(::setxattr((dir_ + "/.drfs/gfid/" + testing::HandleRel(f)).c_str(), "trusted.drfs.gfid",
                       fg.bytes.data(), 16, 0),
            0);
  in.seq = 7;
  in.base_lsn = 2;
  {
    int brick_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
    detail::IntentLog log;
    ASSERT_TRUE(log.Open(brick_fd, ".drfs/intents", "intents").ok());
    ASSERT_TRUE(log.Put(in.Encode()).ok());
    ::close(brick_fd);
  }
  b_ = OpenBrick(dir_);
  ASSERT_NE(b_, nullptr);
  EXPECT_EQ(b_->repair_report().intents_completed, 1);
  EXPECT_EQ(Do(ByGfid(Op::kGetattr, f)).err, ENOENT) << "the handle was dropped";
  EXPECT_EQ(Join(Check()), "");
}

// ---- Concurrency -------------------------------------------------------------------------------

TEST_F(BackendTest, ConcurrentOpsOnOverlappingNamesKeepIndexTreeAndJournalInStep) {
  const Gfid root = Gfid::Root();
  constexpr int kDirs = 3, kThreads = 6, kOps = 400, kNames = 8;
  std::vector<Gfid> dirs;
  for (int i = 0; i < kDirs; ++i) {
    dirs.push_back(Gfid::Random());
    ASSERT_EQ(Mkdir(root, "d" + std::to_string(i), 0755, dirs.back()).err, 0);
  }
  // Movable directories, renamed among names in the root while others work inside them.
  std::vector<Gfid> movers;
  for (int i = 0; i < 2; ++i) {
    movers.push_back(Gfid::Random());
    ASSERT_EQ(Mkdir(root, "m" + std::to_string(i), 0755, movers.back()).err, 0);
  }
  std::atomic<uint64_t> records{b_->journal()->last_lsn()};
  std::atomic<int> unexpected{0};
  std::mutex mu;
  std::vector<std::string> errors;
  auto note = [&](const char* op, const Reply& r, std::initializer_list<int> allowed) {
    if (r.err == 0) {
      if (r.lsn) records.fetch_add(1);
      return;
    }
    for (int a : allowed) {
      if (r.err == a) return;
    }
    unexpected.fetch_add(1);
    std::lock_guard l(mu);
    errors.push_back(std::string(op) + ": " + r.message);
  };
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1);
      auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
      for (int i = 0; i < kOps; ++i) {
        std::vector<Gfid> parents = dirs;
        parents.insert(parents.end(), movers.begin(), movers.end());
        const Gfid p = parents[static_cast<size_t>(pick(static_cast<int>(parents.size())))];
        const std::string name = "n" + std::to_string(pick(kNames));
        switch (pick(8)) {
          case 0:
          case 1: {
            Request q = Entry(Op::kCreate, p, name);
            q.gfid = Gfid::Random();
            q.mode = 0644;
            q.flags = brick_proto::kCreateExclusive;
            note("create", b_->Execute(q), {EEXIST, ENOENT});
            break;
          }
          case 2: {
            Reply l = b_->Execute(Entry(Op::kLookup, p, name));
            if (l.err) break;
            Request q = ByGfid(Op::kWrite, l.attr.gfid);
            q.offset = static_cast<uint64_t>(pick(4096));
            q.data = std::string(100, static_cast<char>('a' + t));
            note("write", b_->Execute(q), {ENOENT, EISDIR});
            break;
          }
          case 3: {
            Request q = Entry(Op::kRename, p, name);
            q.new_parent = parents[static_cast<size_t>(pick(static_cast<int>(parents.size())))];
            q.new_name = "n" + std::to_string(pick(kNames));
            note("rename", b_->Execute(q), {ENOENT, EISDIR, ENOTDIR, ENOTEMPTY, EINVAL});
            break;
          }
          case 4:
            note("unlink", b_->Execute(Entry(Op::kUnlink, p, name)), {ENOENT, EISDIR});
            break;
          case 5: {
            Request q = Entry(Op::kMkdir, p, name);
            q.gfid = Gfid::Random();
            q.mode = 0755;
            note("mkdir", b_->Execute(q), {EEXIST, ENOENT});
            break;
          }
          case 6:
            note("rmdir", b_->Execute(Entry(Op::kRmdir, p, name)), {ENOENT, ENOTDIR, ENOTEMPTY});
            break;
          case 7: {
            // Rename a mover between two names in the root (both exist or one does).
            int m = pick(2);
            Request q = Entry(Op::kRename, root, "m" + std::to_string(m));
            q.new_parent = root;
            q.new_name = "m" + std::to_string(m) + "x";
            Reply r = b_->Execute(q);
            if (r.err == ENOENT) {
              q.name.swap(q.new_name);
              r = b_->Execute(q);
            }
            note("rename mover", r, {ENOENT});
            break;
          }
        }
      }
    });
  }
  for (auto& t : ts)
    t.join();
  EXPECT_EQ(unexpected.load(), 0) << Join(errors);
  EXPECT_EQ(b_->journal()->last_lsn(), records.load()) << "one record per acknowledged change";
  TreeModel model, tree;
  EXPECT_EQ(Join(ReplayJournal(dir_, &model)), "");
  EXPECT_EQ(Join(CheckConsistency(dir_, &tree)), "");
  EXPECT_EQ(model, tree) << "the journal replays to the tree on disk";
  // Close and reopen: nothing to repair after a clean close.
  b_.reset();
  b_ = OpenBrick(dir_);
  ASSERT_NE(b_, nullptr);
  EXPECT_EQ(b_->repair_report().intents_completed + b_->repair_report().intents_rolled_back, 0);
}

}  // namespace
}  // namespace drfs::brick

namespace drfs::brick {
namespace {

// A journal fsync that fails leaves the op's outcome unknown: the brick must neither undo it
// (its record may survive) nor forget it; the next Open() settles it from the journal.
TEST(BackendJournalFailure, FailedFsyncLeavesTheOpForOpenToSettle) {
  drfs::testing::TempDir t;
  const std::string dir = t.Sub("brick");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  drfs::testing::FaultInjectionFs fsi;
  const Gfid d = Gfid::Random();
  {
    BackendOptions o;
    o.journal.fs = &fsi;
    auto b = Backend::Open(dir, o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    fsi.FailSyncs(ErrnoStatus(EIO, "fdatasync"));
    Request q = Entry(Op::kMkdir, Gfid::Root(), "docs");
    q.gfid = d;
    q.mode = 0755;
    Reply r = (*b)->Execute(q);
    EXPECT_EQ(r.err, EIO);
    EXPECT_NE(r.message.find("settled when the brick restarts"), std::string::npos) << r.message;
    struct stat st;
    EXPECT_EQ(::stat((dir + "/docs").c_str(), &st), 0) << "the op must not be undone";
    // Further mutations are refused (the journal stopped) and undone.
    Request q2 = Entry(Op::kMkdir, Gfid::Root(), "later");
    q2.gfid = Gfid::Random();
    q2.mode = 0755;
    EXPECT_EQ((*b)->Execute(q2).err, EIO);
    EXPECT_NE(::stat((dir + "/later").c_str(), &st), 0);
    fsi.FailSyncs(Status());
  }
  // The record did reach the file, so on reopen the mkdir stands, fully indexed.
  auto b = Backend::Open(dir, BackendOptions{});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ((*b)->repair_report().intents_completed, 1);
  Request look;
  look.op = Op::kLookupGfid;
  look.gfid = d;
  EXPECT_EQ((*b)->Execute(look).err, 0) << "reachable by gfid after the repair";
  TreeModel model, tree;
  EXPECT_EQ(Join(ReplayJournal(dir, &model)), "");
  EXPECT_EQ(Join(CheckConsistency(dir, &tree)), "");
  EXPECT_EQ(model, tree);
}

// The pgfid hint is written on the object itself; for a symlink object that is the symlink, never
// what it points to (the brick runs as root).
TEST(BackendSymlinkObjects, LinkAndRenameNeverWriteThroughAUserSymlink) {
  drfs::testing::TempDir t;
  const std::string dir = t.Sub("brick");
  const std::string outside = t.Sub("outside-target");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  drfs::testing::WriteFile(outside, "not the brick's");
  auto b = Backend::Open(dir, BackendOptions{});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  const Gfid s = Gfid::Random();
  Request q = Entry(Op::kSymlink, Gfid::Root(), "evil");
  q.gfid = s;
  q.target = outside;
  ASSERT_EQ((*b)->Execute(q).err, 0);
  Request l = Entry(Op::kLink, Gfid::Root(), "evil2");
  l.gfid = s;
  ASSERT_EQ((*b)->Execute(l).err, 0);
  Request r = Entry(Op::kRename, Gfid::Root(), "evil");
  r.new_parent = Gfid::Root();
  r.new_name = "evil3";
  ASSERT_EQ((*b)->Execute(r).err, 0);
  char buf[256];
  EXPECT_LT(::getxattr(outside.c_str(), "trusted.drfs.pgfid", buf, sizeof buf), 0);
  EXPECT_LT(::getxattr(outside.c_str(), "trusted.drfs.gfid", buf, sizeof buf), 0);
  EXPECT_EQ(drfs::testing::ReadFile(outside), "not the brick's");
}

// Directories deeper than the kernel's 40-symlink limit resolve through the iterative walk.
TEST(BackendDeepTrees, DirectoriesFarBelowTheSymlinkLimitResolve) {
  drfs::testing::TempDir t;
  const std::string dir = t.Sub("brick");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  BackendOptions o;
  o.journal.fsync_policy = changelog::FsyncPolicy::kNever;
  auto b = Backend::Open(dir, o);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  Gfid parent = Gfid::Root();
  for (int i = 0; i < 120; ++i) {
    Request q = Entry(Op::kMkdir, parent, "d");
    q.gfid = Gfid::Random();
    q.mode = 0755;
    Reply r = (*b)->Execute(q);
    ASSERT_EQ(r.err, 0) << "level " << i << ": " << r.message;
    parent = q.gfid;
  }
  Request c = Entry(Op::kCreate, parent, "leaf");
  c.gfid = Gfid::Random();
  c.mode = 0644;
  c.flags = brick_proto::kCreateExclusive;
  Reply r = (*b)->Execute(c);
  ASSERT_EQ(r.err, 0) << r.message;
  Request res;
  res.op = Op::kResolveGfid;
  res.gfid = parent;
  Reply p = (*b)->Execute(res);
  ASSERT_EQ(p.err, 0) << p.message;
  EXPECT_EQ(std::count(p.data.begin(), p.data.end(), '/'), 120);
}

}  // namespace
}  // namespace drfs::brick

namespace drfs::brick {
namespace {

TEST(BackendXattrs, OnlyUserAttributesAndAclsCanBeChanged) {
  drfs::testing::TempDir t;
  const std::string dir = t.Sub("brick");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  auto b = Backend::Open(dir, BackendOptions{});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  const Gfid f = Gfid::Random();
  Request c = Entry(Op::kCreate, Gfid::Root(), "tool");
  c.gfid = f;
  c.mode = 0755;
  c.flags = brick_proto::kCreateExclusive;
  ASSERT_EQ((*b)->Execute(c).err, 0);
  for (const char* name : {"security.capability", "trusted.overlay.opaque", "security.selinux"}) {
    Request q;
    q.op = Op::kSetxattr;
    q.gfid = f;
    q.xattr_name = name;
    q.xattr_value = "x";
    Reply r = (*b)->Execute(q);
    EXPECT_EQ(r.err, EPERM) << name;
    char buf[64];
    EXPECT_LT(::getxattr((dir + "/tool").c_str(), name, buf, sizeof buf), 0) << name;
    q.op = Op::kRemovexattr;
    EXPECT_EQ((*b)->Execute(q).err, EPERM) << name;
  }
  Request ok;
  ok.op = Op::kSetxattr;
  ok.gfid = f;
  ok.xattr_name = "user.label";
  ok.xattr_value = "fine";
  EXPECT_EQ((*b)->Execute(ok).err, 0);
}

// ---- Pending markers and the heal index --------------------------------------------------------

// The markers as stored on disk (little-endian int32s), read beside the backend.
std::vector<int32_t> RawMarkers(const std::string& path, int* err = nullptr) {
  char buf[1024];
  ssize_t n = ::lgetxattr(path.c_str(), "trusted.drfs.pending", buf, sizeof buf);
  if (err) *err = n < 0 ? errno : 0;
  std::vector<int32_t> v;
  for (ssize_t i = 0; i + 4 <= n; i += 4) {
    int32_t x;
    std::memcpy(&x, buf + i, 4);
    v.push_back(x);
  }
  return v;
}

bool InHealIndex(const std::string& dir, const Gfid& g) {
  return ::access((dir + "/.drfs/heal/" + g.ToString()).c_str(), F_OK) == 0;
}

Reply Xattrop(Backend& b, const Gfid& g, std::vector<int32_t> deltas, bool allow = false) {
  Request q = ByGfid(Op::kXattrop, g);
  q.pending = std::move(deltas);
  return b.Execute(q, allow);
}

std::vector<Gfid> ListHealIndex(Backend& b, uint64_t page, int* calls = nullptr) {
  std::vector<Gfid> all;
  Request q;
  q.op = Op::kHealIndex;
  q.length = page;
  for (int i = 0; i < 1000; ++i) {
    Reply r = b.Execute(q);
    EXPECT_EQ(r.err, 0) << r.message;
    if (calls) ++*calls;
    EXPECT_LE(r.entries.size(), page == 0 ? 512u : page);
    for (const auto& e : r.entries) {
      EXPECT_EQ(e.name, e.gfid.ToString());
      EXPECT_EQ(e.type, 0u);
      all.push_back(e.gfid);
      q.offset = e.cookie;
    }
    if (r.eof || r.err) break;
  }
  return all;
}

TEST_F(BackendTest, XattropAddsDeltasAndKeepsTheObjectInTheHealIndexWhileMarked) {
  const Gfid f = G(1);
  ASSERT_EQ(Create(Gfid::Root(), "f", 0644, f).err, 0);
  ASSERT_EQ(Write(f, 0, "abc").err, 0);
  const std::string path = dir_ + "/f";
  struct stat before {};
  ASSERT_EQ(::lstat(path.c_str(), &before), 0);
  const uint64_t lsn = b_->journal()->last_lsn();

  Reply r = Xattrop(*b_, f, {1, 0, 0});
  ASSERT_EQ(r.err, 0) << r.message;
  EXPECT_EQ(r.pending, (std::vector<int32_t>{1, 0, 0}));
  EXPECT_EQ(RawMarkers(path), (std::vector<int32_t>{1, 0, 0}));
  EXPECT_TRUE(InHealIndex(dir_, f));
  // Missing elements count as zero, and the vector grows to the longer of the two.
  r = Xattrop(*b_, f, {0, 0, 0, 0, 0, 2});
  EXPECT_EQ(r.pending, (std::vector<int32_t>{1, 0, 0, 0, 0, 2}));
  // All-zero deltas only read.
  r = Xattrop(*b_, f, {});
  EXPECT_EQ(r.err, 0);
  EXPECT_EQ(r.pending, (std::vector<int32_t>{1, 0, 0, 0, 0, 2}));
  r = Xattrop(*b_, f, {-1});
  EXPECT_EQ(r.pending, (std::vector<int32_t>{0, 0, 0, 0, 0, 2}));
  EXPECT_TRUE(InHealIndex(dir_, f));
  // Lookups report them.
  Reply l = Do(Entry(Op::kLookup, Gfid::Root(), "f"));
  EXPECT_EQ(l.pending, (std::vector<int32_t>{0, 0, 0, 0, 0, 2}));
  EXPECT_EQ(Do(ByGfid(Op::kGetattr, f)).pending, l.pending);
  EXPECT_EQ(Do(ByGfid(Op::kLookupGfid, f)).pending, l.pending);
  // Back to zero: the xattr and the index entry are gone, and the reply is empty.
  r = Xattrop(*b_, f, {0, 0, 0, 0, 0, -2});
  ASSERT_EQ(r.err, 0) << r.message;
  EXPECT_TRUE(r.pending.empty());
  int err = 0;
  RawMarkers(path, &err);
  EXPECT_EQ(err, ENODATA) << "an all-zero vector is not stored";
  EXPECT_FALSE(InHealIndex(dir_, f));
  EXPECT_TRUE(Do(Entry(Op::kLookup, Gfid::Root(), "f")).pending.empty());
  EXPECT_TRUE(Do(ByGfid(Op::kGetattr, f)).pending.empty());

  // Nothing a user sees changed, and nothing was journaled.
  struct stat after {};
  ASSERT_EQ(::lstat(path.c_str(), &after), 0);
  EXPECT_EQ(after.st_size, before.st_size);
  EXPECT_EQ(after.st_mode, before.st_mode);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  EXPECT_EQ(b_->journal()->last_lsn(), lsn);
  EXPECT_EQ(Join(Check()), "");
}

TEST_F(BackendTest, XattropOnDirectoriesSymlinksAndMissingObjects) {
  const Gfid d = G(1), s = G(2);
  ASSERT_EQ(Mkdir(Gfid::Root(), "d", 0755, d).err, 0);
  Request sl = Entry(Op::kSymlink, Gfid::Root(), "s");
  sl.gfid = s;
  sl.target = "d";
  ASSERT_EQ(Do(sl).err, 0);
  for (const Gfid& g : {Gfid::Root(), d, s}) {
    Reply r = Xattrop(*b_, g, {0, 0, 1});
    EXPECT_EQ(r.err, 0) << g.ToString() << ": " << r.message;
    EXPECT_EQ(r.pending, (std::vector<int32_t>{0, 0, 1}));
    EXPECT_TRUE(InHealIndex(dir_, g));
  }
  // The symlink's own inode carries them, not its target.
  EXPECT_EQ(RawMarkers(dir_ + "/s"), (std::vector<int32_t>{0, 0, 1}));
  EXPECT_EQ(Do(Entry(Op::kLookup, Gfid::Root(), "s")).pending, (std::vector<int32_t>{0, 0, 1}));
  EXPECT_EQ(Do(Entry(Op::kLookup, Gfid::Root(), "d")).pending, (std::vector<int32_t>{0, 0, 1}));
  Reply missing = Xattrop(*b_, Gfid::Random(), {1});
  EXPECT_EQ(missing.err, ENOENT) << missing.message;
  EXPECT_EQ(Xattrop(*b_, Gfid(), {1}).err, EINVAL);
  // Overflow changes nothing.
  ASSERT_EQ(Xattrop(*b_, d, {0, 0, 2147483646}).err, 0);
  Reply over = Xattrop(*b_, d, {0, 0, 1});
  EXPECT_EQ(over.err, EOVERFLOW) << over.message;
  EXPECT_EQ(RawMarkers(dir_ + "/d"), (std::vector<int32_t>{0, 0, 2147483647}));
  // Tampered markers (a length that is not whole counters) are reported, not misread.
  const char junk[3] = {1, 2, 3};
  ASSERT_EQ(::lsetxattr((dir_ + "/d").c_str(), "trusted.drfs.pending", junk, 3, 0), 0);
  Reply bad = Xattrop(*b_, d, {1});
  EXPECT_EQ(bad.err, EIO);
  EXPECT_NE(bad.message.find("malformed"), std::string::npos) << bad.message;
}

TEST_F(BackendTest, ConcurrentXattropsOnOneObjectAddUp) {
  const Gfid f = G(1);
  ASSERT_EQ(Create(Gfid::Root(), "f", 0644, f).err, 0);
  constexpr int kThreads = 4, kOps = 200;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        // Each thread adds to counter t and to the shared counter 0, and sometimes takes back.
        std::vector<int32_t> d(static_cast<size_t>(kThreads) + 1, 0);
        d[0] = i % 3 == 2 ? -1 : 1;
        d[static_cast<size_t>(t) + 1] = 1;
        Reply r = Xattrop(*b_, f, d);
        ASSERT_EQ(r.err, 0) << r.message;
      }
    });
  }
  for (auto& t : ts)
    t.join();
  std::vector<int32_t> want(kThreads + 1, kOps);
  want[0] = kThreads * (kOps - 2 * (kOps / 3));
  EXPECT_EQ(RawMarkers(dir_ + "/f"), want);
  EXPECT_TRUE(InHealIndex(dir_, f));
}

TEST_F(BackendTest, TheBricksOwnXattrsAreHiddenFromClients) {
  const Gfid f = G(1);
  ASSERT_EQ(Create(Gfid::Root(), "f", 0644, f).err, 0);
  ASSERT_EQ(Xattrop(*b_, f, {1}).err, 0);
  // The root carries drfsd's volume id mark.
  ASSERT_EQ(::setxattr(dir_.c_str(), "trusted.drfs.volume-id", "v", 1, 0), 0);
  for (const Gfid& g : {f, Gfid::Root()}) {
    for (const char* name : {"trusted.drfs.pending", "trusted.drfs.gfid", "trusted.drfs.pgfid",
                             "trusted.drfs.volume-id", "trusted.drfs.future"}) {
      Request q = ByGfid(Op::kGetxattr, g);
      q.xattr_name = name;
      EXPECT_EQ(Do(q).err, ENODATA) << name;
      q.op = Op::kSetxattr;
      q.xattr_value = "x";
      EXPECT_EQ(Do(q).err, EPERM) << name;
      q.op = Op::kRemovexattr;
      EXPECT_EQ(Do(q).err, EPERM) << name;
    }
    Reply l = Do(ByGfid(Op::kListxattr, g));
    ASSERT_EQ(l.err, 0);
    for (const auto& n : l.names)
      EXPECT_NE(n.rfind("trusted.drfs.", 0), 0u) << n;
  }
  EXPECT_EQ(RawMarkers(dir_ + "/f"), (std::vector<int32_t>{1}));
}

TEST_F(BackendTest, HealIndexPagesThroughMarkedObjectsAndDropsWhatACrashLeft) {
  std::set<Gfid> marked;
  for (int i = 0; i < 25; ++i) {
    Gfid g = Gfid::Random();
    ASSERT_EQ(Create(Gfid::Root(), "f" + std::to_string(i), 0644, g).err, 0);
    ASSERT_EQ(Xattrop(*b_, g, {0, 0, 0, i % 2, 1 - i % 2}).err, 0);
    marked.insert(g);
  }
  // Unmarked objects are not listed.
  ASSERT_EQ(Create(Gfid::Root(), "clean", 0644, G(9)).err, 0);
  // What a crash can leave: an entry for an object that has no markers (between the index and
  // the xattr), one for an object removed since, and a stray file.
  const Gfid unmarked = G(10), gone = Gfid::Random();
  ASSERT_EQ(Create(Gfid::Root(), "unmarked", 0644, unmarked).err, 0);
  for (const std::string& n : {unmarked.ToString(), gone.ToString(), std::string("junk")}) {
    drfs::testing::WriteFile(dir_ + "/.drfs/heal/" + n, "");
  }
  int calls = 0;
  std::vector<Gfid> listed = ListHealIndex(*b_, 7, &calls);
  EXPECT_EQ(std::set<Gfid>(listed.begin(), listed.end()), marked);
  EXPECT_EQ(listed.size(), marked.size()) << "an entry was listed twice";
  EXPECT_GE(calls, 4);
  EXPECT_FALSE(InHealIndex(dir_, unmarked));
  EXPECT_FALSE(InHealIndex(dir_, gone));
  // A page of one, and the default page size.
  EXPECT_EQ(ListHealIndex(*b_, 1).size(), marked.size());
  EXPECT_EQ(ListHealIndex(*b_, 0).size(), marked.size());
  // Removing a marked file leaves its entry until a listing finds the object gone.
  const Gfid first = *marked.begin();
  for (int i = 0; i < 25; ++i) {
    Reply l = Do(Entry(Op::kLookup, Gfid::Root(), "f" + std::to_string(i)));
    if (l.attr.gfid == first) {
      ASSERT_EQ(Do(Entry(Op::kUnlink, Gfid::Root(), "f" + std::to_string(i))).err, 0);
    }
  }
  marked.erase(first);
  listed = ListHealIndex(*b_, 100);
  EXPECT_EQ(std::set<Gfid>(listed.begin(), listed.end()), marked);
  // Clearing every marker empties it.
  for (const Gfid& g : marked) {
    Reply r = Do(ByGfid(Op::kGetattr, g));
    std::vector<int32_t> back;
    for (int32_t x : r.pending)
      back.push_back(-x);
    ASSERT_EQ(Xattrop(*b_, g, back).err, 0);
  }
  EXPECT_TRUE(ListHealIndex(*b_, 10).empty());
}

TEST_F(BackendTest, AFailedMarkerStoreLeavesNoIndexEntry) {
  if (!failpoint::CompiledIn()) GTEST_SKIP() << "failure probes are compiled out";
  const Gfid f = G(1);
  ASSERT_EQ(Create(Gfid::Root(), "f", 0644, f).err, 0);
  ASSERT_TRUE(failpoint::Set("brick.xattrop.after_index", "error"));
  Reply r = Xattrop(*b_, f, {1});
  EXPECT_EQ(r.err, EIO);
  EXPECT_FALSE(InHealIndex(dir_, f));
  int err = 0;
  RawMarkers(dir_ + "/f", &err);
  EXPECT_EQ(err, ENODATA);
  failpoint::ClearAll();
  ASSERT_EQ(Xattrop(*b_, f, {1}).err, 0);
  // Already marked: a failure keeps the entry, which the stored markers still need.
  ASSERT_TRUE(failpoint::Set("brick.xattrop.after_index", "error"));
  EXPECT_EQ(Xattrop(*b_, f, {1}).err, EIO);
  EXPECT_TRUE(InHealIndex(dir_, f));
  EXPECT_EQ(RawMarkers(dir_ + "/f"), (std::vector<int32_t>{1}));
}

TEST_F(BackendTest, ReadOnlyRefusesMarkerChangesButServesMarkerReads) {
  const Gfid f = G(1);
  ASSERT_EQ(Create(Gfid::Root(), "f", 0644, f).err, 0);
  ASSERT_EQ(Xattrop(*b_, f, {1}).err, 0);
  b_.reset();
  b_ = OpenBrick(dir_, /*read_only=*/true);
  ASSERT_NE(b_, nullptr);
  Reply r = Xattrop(*b_, f, {1});
  EXPECT_EQ(r.err, EROFS);
  EXPECT_NE(r.message.find("read-only"), std::string::npos) << r.message;
  r = Xattrop(*b_, f, {0, 0});
  EXPECT_EQ(r.err, 0) << r.message;
  EXPECT_EQ(r.pending, (std::vector<int32_t>{1}));
  EXPECT_EQ(ListHealIndex(*b_, 10), std::vector<Gfid>{f});
  // The applier may.
  r = Xattrop(*b_, f, {-1}, /*allow=*/true);
  EXPECT_EQ(r.err, 0) << r.message;
  EXPECT_TRUE(r.pending.empty());
  // Locks are the server's business.
  Request lk = ByGfid(Op::kInodelk, f);
  EXPECT_EQ(Do(lk).err, EOPNOTSUPP);
}

// ---- Arbiter -----------------------------------------------------------------------------------

TEST(BackendArbiter, KeepsNamesAndAttributesButNoDataAndStillJournalsDataOps) {
  drfs::testing::TempDir t;
  const std::string dir = t.Sub("arbiter");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  BackendOptions o;
  o.arbiter = true;
  o.journal.fsync_policy = changelog::FsyncPolicy::kNever;
  auto opened = Backend::Open(dir, o);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Backend& b = **opened;
  EXPECT_TRUE(b.arbiter());
  const Gfid f = Gfid::Random(), d = Gfid::Random();
  Request c = Entry(Op::kCreate, Gfid::Root(), "f");
  c.gfid = f;
  c.mode = 0644;
  c.flags = brick_proto::kCreateExclusive;
  ASSERT_EQ(b.Execute(c).err, 0);
  Request mk = Entry(Op::kMkdir, Gfid::Root(), "d");
  mk.gfid = d;
  mk.mode = 0755;
  ASSERT_EQ(b.Execute(mk).err, 0);

  Request w = ByGfid(Op::kWrite, f);
  w.offset = 100;
  w.data = "hello";
  Reply wr = b.Execute(w);
  ASSERT_EQ(wr.err, 0) << wr.message;
  EXPECT_EQ(wr.count, 5u) << "answered as if stored";
  EXPECT_EQ(wr.attr.gfid, f);
  EXPECT_EQ(wr.attr.size, 0u);
  EXPECT_GT(wr.lsn, 0u);
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);

  Request rd = ByGfid(Op::kRead, f);
  rd.length = 10;
  Reply rr = b.Execute(rd);
  EXPECT_EQ(rr.err, EIO);
  EXPECT_NE(rr.message.find("arbiter"), std::string::npos) << rr.message;
  EXPECT_NE(rr.message.find("no file data"), std::string::npos) << rr.message;

  Request fa = ByGfid(Op::kFallocate, f);
  fa.offset = 0;
  fa.length = 1 << 20;
  Reply far = b.Execute(fa);
  ASSERT_EQ(far.err, 0) << far.message;
  EXPECT_EQ(far.attr.size, 0u);
  EXPECT_GT(far.lsn, wr.lsn);

  Request sa = ByGfid(Op::kSetattr, f);
  sa.attr_valid = brick_proto::kAttrSize | brick_proto::kAttrMode;
  sa.size = 4096;
  sa.mode = 0600;
  Reply sar = b.Execute(sa);
  ASSERT_EQ(sar.err, 0) << sar.message;
  EXPECT_EQ(sar.attr.size, 0u);
  EXPECT_EQ(sar.attr.mode & 07777, 0600u);
  ASSERT_EQ(::stat((dir + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  // What a data brick would refuse, an arbiter refuses too.
  Request wd = ByGfid(Op::kWrite, d);
  wd.data = "x";
  EXPECT_EQ(b.Execute(wd).err, EISDIR);
  Request td = ByGfid(Op::kSetattr, d);
  td.attr_valid = brick_proto::kAttrSize;
  EXPECT_EQ(b.Execute(td).err, EISDIR);
  Request rdd = ByGfid(Op::kRead, d);
  EXPECT_EQ(b.Execute(rdd).err, EISDIR);

  // The journal has every data op, as a data brick's would.
  std::vector<Record> records;
  TreeModel model;
  EXPECT_EQ(Join(ReplayJournal(dir, &model, &records)), "");
  std::vector<OpType> ops;
  for (const auto& r : records) {
    if (r.gfid == f) ops.push_back(r.op);
  }
  EXPECT_EQ(ops, (std::vector<OpType>{OpType::kCreate, OpType::kWrite, OpType::kFallocate,
                                      OpType::kTruncate, OpType::kSetattr}));
  for (const auto& r : records) {
    if (r.op == OpType::kWrite) {
      EXPECT_EQ(r.offset, 100u);
      EXPECT_EQ(r.length, 5u);
    }
  }
}

}  // namespace
}  // namespace drfs::brick
