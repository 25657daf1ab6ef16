// drfs_posix_suite: POSIX behaviour of any directory (a drfs FUSE mount, a GlusterFS mount, a
// plain local directory), checked against what Linux local file systems (ext4, xfs, tmpfs)
// return for the same calls: results, errnos, link counts, timestamps, permissions, xattrs.
//
//   drfs_posix_suite DIR [--filter SUBSTRING] [--list] [--quiet] [--keep] [--allow-no-exchange]
//
// Written for drfs in the spirit of pjdfstest (one call, one expected outcome), not derived
// from it. Every case runs in its own fresh directory DIR/posix-suite.PID/CASE, with the
// process's working directory there, so every path in a check is relative and short. Each case
// prints PASS, FAIL or SKIP and, below it, every check with what the call returned against
// what Linux returns ("-> EEXIST (expected EEXIST)"). Exit status: 0 when nothing failed, 1
// when a case failed, 2 on a usage error.
//
// Run it as root: the permission, sticky, setgid and ownership cases fork a child that drops
// to uid 65534 or 1000 (setgroups, setgid, setuid) and are skipped when not root. The suite
// sets its own umask (0, and other values where a case checks the umask).
//
// Timestamps are compared coarsely: "strictly later than before" after a 20 ms pause (kernel
// timestamps tick with the jiffy, 4 ms at HZ=250), never exact values except where the test
// itself set them with utimensat.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

// --- options and the current case's context -----------------------------------------------

struct Options {
  std::string dir;
  std::string filter;
  bool list = false;
  bool quiet = false;
  bool keep = false;
  bool allow_no_exchange = false;
};
Options g_opt;

struct CaseAborted {};  // a step later checks depend on failed: the case stops (FAIL)
struct CaseSkipped {
  std::string why;
};

std::string ErrName(int e) {
  if (e == 0) return "OK";
  const char* n = strerrorname_np(e);
  return n ? n : "errno " + std::to_string(e);
}

// Printable form of bytes: quoted, escaped, long strings cut with their length.
std::string Quote(std::string_view s) {
  std::string out = "\"";
  size_t shown = std::min<size_t>(s.size(), 48);
  for (size_t i = 0; i < shown; i++) {
    unsigned char ch = static_cast<unsigned char>(s[i]);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch >= 0x20 && ch < 0x7f) {
      out += static_cast<char>(ch);
    } else {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    }
  }
  out += '"';
  if (shown < s.size()) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string ShowTime(const timespec& t) {
  char buf[48];
  snprintf(buf, sizeof buf, "%lld.%09ld", static_cast<long long>(t.tv_sec), t.tv_nsec);
  return buf;
}

template <class T>
std::string Show(const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_integral_v<T>) {
    return std::to_string(v);
  } else if constexpr (std::is_convertible_v<T, std::string_view>) {
    return Quote(std::string_view(v));
  } else if constexpr (std::is_same_v<T, timespec>) {
    return ShowTime(v);
  } else if constexpr (std::is_same_v<T, std::set<std::string>>) {
    std::string s = "{";
    size_t n = 0;
    for (const auto& e : v) {
      if (n++ == 8) {
        s += ", ... (" + std::to_string(v.size()) + " names)";
        break;
      }
      s += (n > 1 ? ", " : "") + Quote(e);
    }
    return s + "}";
  } else {
    static_assert(sizeof(T) == 0, "no Show for this type");
  }
}

// The result of one system call: its return value and errno right after it.
struct Sys {
  long rc;
  int err;
};

class Ctx {
 public:
  explicit Ctx(int pipe_fd = -1, std::string prefix = "")
      : pipe_fd_(pipe_fd), prefix_(std::move(prefix)) {}

  // A system call that must succeed; the case stops if it does not.
  long Ok(Sys s, const char* what, int line) {
    bool ok = s.rc != -1;
    Record(ok, line,
           std::string(what) + " -> " + (ok ? std::to_string(s.rc) : ErrName(s.err)) +
               " (expected success)");
    if (!ok) throw CaseAborted{};
    return s.rc;
  }
  // A step inside a helper (its own checks are the caller's): silent when it works; when it
  // fails, a failure naming the call and the case stops.
  long Step(Sys s, const std::string& what, int line) {
    if (s.rc != -1) return s.rc;
    Record(false, line, what + " -> " + ErrName(s.err) + " (expected success)");
    throw CaseAborted{};
  }
  // A system call that must fail with `want`.
  void Err(Sys s, const char* what, int want, int line) {
    bool ok = s.rc == -1 && s.err == want;
    std::string got = s.rc == -1 ? ErrName(s.err) : "success (" + std::to_string(s.rc) + ")";
    Record(ok, line, std::string(what) + " -> " + got + " (expected " + ErrName(want) + ")");
  }
  template <class A, class B>
  void Eq(const A& a, const B& b, const char* ea, const char* eb, int line, int err = 0) {
    bool ok;
    std::string why;
    if constexpr (std::is_integral_v<A> && std::is_integral_v<B>) {
      ok = std::cmp_equal(a, b);
      if constexpr (std::is_signed_v<A>) {
        if (!ok && a == -1 && err != 0) why = " (" + ErrName(err) + ")";
      }
    } else {
      ok = a == b;
    }
    Record(ok, line, std::string(ea) + " == " + eb + ": " + Show(a) + why + " vs " + Show(b));
  }
  void Oct(unsigned got, unsigned want, const char* what, int line) {
    char buf[64];
    snprintf(buf, sizeof buf, ": 0%o vs 0%o", got, want);
    Record(got == want, line, std::string(what) + buf);
  }
  void True(bool v, const char* what, int line) { Record(v, line, what); }
  void Later(const timespec& a, const timespec& b, const char* ea, const char* eb, int line) {
    bool ok = a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
    Record(ok, line,
           std::string(ea) + " later than " + eb + ": " + ShowTime(a) + " vs " + ShowTime(b));
  }
  void Note(const std::string& text) { Emit('N', text, 0); }
  [[noreturn]] void Skip(const std::string& why) {
    if (pipe_fd_ >= 0) Emit('S', why, 0);
    throw CaseSkipped{why};
  }
  // Lines a child sent through its pipe: KIND SRC_LINE TAB TEXT.
  void Absorb(const std::string& data, std::string* skip_reason) {
    size_t pos = 0;
    while (pos < data.size()) {
      size_t nl = data.find('\n', pos);
      if (nl == std::string::npos) nl = data.size();
      std::string line = data.substr(pos, nl - pos);
      pos = nl + 1;
      size_t tab = line.find('\t');
      if (line.empty() || tab == std::string::npos) continue;
      char kind = line[0];
      int src = atoi(line.c_str() + 1);
      std::string text = line.substr(tab + 1);
      if (kind == 'S') {
        *skip_reason = text;
      } else {
        Add(kind, src, text);
      }
    }
  }
  void Fail(const std::string& text) { Emit('F', text, 0); }

  int checks() const { return checks_; }
  int fails() const { return fails_; }
  struct Line {
    bool ok;
    int src;  // source line of the check; 0 for notes and failures outside a check
    std::string text;
  };
  const std::vector<Line>& lines() const { return lines_; }

 private:
  void Record(bool ok, int line, const std::string& text) {
    Emit(ok ? 'P' : 'F', text + (ok ? "" : "  [posix_suite.cc:" + std::to_string(line) + "]"),
         line);
  }
  void Emit(char kind, const std::string& text, int src) {
    std::string t = prefix_ + text;
    std::replace(t.begin(), t.end(), '\n', ' ');
    if (pipe_fd_ >= 0) {
      std::string wire = kind + std::to_string(src) + "\t" + t + "\n";
      ssize_t n = write(pipe_fd_, wire.data(), wire.size());
      (void)n;  // the parent counts a child that could not report as a failure
      return;
    }
    Add(kind, src, t);
  }
  void Add(char kind, int src, const std::string& text) {
    if (kind == 'P' || kind == 'F') checks_++;
    if (kind == 'F') fails_++;
    lines_.push_back({kind != 'F', kind == 'N' ? 0 : src, kind == 'N' ? "note: " + text : text});
  }

  int pipe_fd_;
  std::string prefix_;
  int checks_ = 0;
  int fails_ = 0;
  std::vector<Line> lines_;
};

Ctx* g_ctx = nullptr;   // the case (or child) being run; the suite is single-threaded
struct stat g_scratch;  // for calls whose stat result is not looked at

#define SYS(call)                      \
  ([&]() {                             \
    errno = 0;                         \
    long r_ = static_cast<long>(call); \
    return Sys{r_, errno};             \
  }())
#define OK(call) g_ctx->Ok(SYS(call), #call, __LINE__)
#define STEP(call, what) g_ctx->Step(SYS(call), (what), __LINE__)
#define ERR(call, e) g_ctx->Err(SYS(call), #call, e, __LINE__)
// errno is taken right after `a`, so that a failed call compared with EQ says why it failed.
#define EQ(a, b)                              \
  do {                                        \
    errno = 0;                                \
    auto a_ = (a);                            \
    int e_ = errno;                           \
    g_ctx->Eq(a_, (b), #a, #b, __LINE__, e_); \
  } while (0)
#define MODE_EQ(st, m) g_ctx->Oct((st).st_mode & 07777, (m), "mode of " #st, __LINE__)
#define TYPE_EQ(st, t) g_ctx->Oct((st).st_mode& S_IFMT, (t), "type of " #st, __LINE__)
#define CHECK(cond) g_ctx->True((cond), #cond, __LINE__)
#define LATER(a, b) g_ctx->Later((a), (b), #a, #b, __LINE__)
#define SAME_TIME(a, b) CHECK(SameTime((a), (b)))

bool SameTime(const timespec& a, const timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// --- helpers ---------------------------------------------------------------------------------

class Fd {
 public:
  Fd() = default;
  explicit Fd(long fd) : fd_(static_cast<int>(fd)) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  int get() const { return fd_; }
  operator int() const { return fd_; }  // NOLINT: used as a plain descriptor in calls
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string Q(const char* path) {
  return Quote(path);
}

struct stat Lstat(const char* path) {
  struct stat st {};
  STEP(lstat(path, &st), "lstat(" + Q(path) + ")");
  return st;
}
struct stat Stat(const char* path) {
  struct stat st {};
  STEP(stat(path, &st), "stat(" + Q(path) + ")");
  return st;
}
struct stat Fstat(int fd) {
  struct stat st {};
  STEP(fstat(fd, &st), "fstat(" + std::to_string(fd) + ")");
  return st;
}

// Creates (or truncates) a file with `data`.
void Put(const char* path, std::string_view data, mode_t mode = 0644) {
  Fd fd(STEP(open(path, O_WRONLY | O_CREAT | O_TRUNC, mode), "open(" + Q(path) + ", O_CREAT)"));
  if (data.empty()) return;
  ssize_t n = write(fd, data.data(), data.size());
  if (n != static_cast<ssize_t>(data.size())) {
    g_ctx->Fail("write of " + std::to_string(data.size()) + " bytes to " + Q(path) + " -> " +
                (n < 0 ? ErrName(errno) : std::to_string(n)));
    throw CaseAborted{};
  }
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      g_ctx->Fail("read() during ReadAll -> " + ErrName(errno));
      throw CaseAborted{};
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

std::string Get(const char* path) {
  Fd fd(STEP(open(path, O_RDONLY), "open(" + Q(path) + ", O_RDONLY)"));
  return ReadAll(fd);
}

struct Entry {
  std::string name;
  unsigned char type;
  ino_t ino;
};

// Every entry of a directory except "." and "..", in readdir order.
std::vector<Entry> ReadDir(const char* path) {
  DIR* d = opendir(path);
  if (!d) {
    g_ctx->Fail(std::string("opendir(\"") + path + "\") -> " + ErrName(errno) +
                " (expected success)");
    throw CaseAborted{};
  }
  std::vector<Entry> out;
  errno = 0;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back({n, e->d_type, e->d_ino});
    errno = 0;
  }
  int err = errno;
  closedir(d);
  if (err != 0) {
    g_ctx->Fail(std::string("readdir(\"") + path + "\") -> " + ErrName(err));
    throw CaseAborted{};
  }
  return out;
}

std::set<std::string> Names(const char* path) {
  std::set<std::string> s;
  for (auto& e : ReadDir(path))
    s.insert(e.name);
  return s;
}

void Nap() {
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s[i] = static_cast<char>(x);
  }
  return s;
}

bool IsRoot() {
  return geteuid() == 0;
}

constexpr uid_t kUser = 1000;  // an ordinary user
constexpr gid_t kGroup = 1000;
constexpr uid_t kNobody = 65534;  // another user
constexpr gid_t kNogroup = 65534;

// Runs `fn` in a child process as uid/gid with exactly `groups` as supplementary groups. Its
// checks are reported through a pipe and count in the current case. Only for root.
void As(uid_t uid, gid_t gid, std::vector<gid_t> groups, const std::function<void()>& fn) {
  int p[2];
  STEP(pipe2(p, O_CLOEXEC), "pipe2()");
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    g_ctx->Fail("fork() -> " + ErrName(errno));
    throw CaseAborted{};
  }
  if (pid == 0) {
    close(p[0]);
    std::string who = "[uid " + std::to_string(uid) + " gid " + std::to_string(gid) + " groups {";
    for (size_t i = 0; i < groups.size(); i++)
      who += (i ? "," : "") + std::to_string(groups[i]);
    who += "}] ";
    Ctx child(p[1], who);
    g_ctx = &child;
    if (setgroups(groups.size(), groups.data()) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
      child.Fail("could not become this user: " + ErrName(errno));
      _exit(0);
    }
    try {
      fn();
    } catch (const CaseAborted&) {
    } catch (const CaseSkipped&) {
    }
    _exit(0);
  }
  close(p[1]);
  std::string data;
  char buf[4096];
  for (;;) {
    ssize_t n = read(p[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  close(p[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string skip;
  g_ctx->Absorb(data, &skip);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    g_ctx->Fail("child as uid " + std::to_string(uid) + " ended abnormally (status " +
                std::to_string(status) + ")");
  }
  if (!skip.empty()) throw CaseSkipped{skip};
}

void Chown(const char* path, uid_t uid, gid_t gid) {
  STEP(lchown(path, uid, gid),
       "lchown(" + Q(path) + ", " + std::to_string(uid) + ", " + std::to_string(gid) + ")");
}

// --- the cases -------------------------------------------------------------------------------

struct Case {
  const char* name;
  bool needs_root;
  void (*fn)();
};
std::vector<Case>& Registry() {
  static std::vector<Case> r;
  return r;
}
struct Register {
  Register(const char* name, bool root, void (*fn)()) { Registry().push_back({name, root, fn}); }
};
#define CASE_IMPL(id, name, root)               \
  void id();                                    \
  const Register register_##id(name, root, id); \
  void id()
#define CASE(id, name) CASE_IMPL(id, name, false)
#define ROOT_CASE(id, name) CASE_IMPL(id, name, true)

// ---- open / creat

CASE(OpenCreate, "open.create") {
  umask(022);
  Fd fd(OK(open("f", O_CREAT | O_WRONLY, 0666)));
  umask(0);
  struct stat st = Lstat("f");
  TYPE_EQ(st, S_IFREG);
  MODE_EQ(st, 0644u);  // 0666 & ~022
  EQ(st.st_uid, geteuid());
  EQ(st.st_gid, getegid());
  EQ(st.st_size, 0);
  EQ(st.st_nlink, 1);
  EQ(write(fd, "hello", 5), 5);
  fd.Close();
  // O_CREAT without O_EXCL on an existing file opens it as it is: content and mode stay.
  Fd again(OK(open("f", O_CREAT | O_RDWR, 0600)));
  MODE_EQ(Fstat(again), 0644u);
  EQ(ReadAll(again), "hello");
  // O_CREAT|O_EXCL on a new name creates it with exactly the mode (umask 0).
  Fd ex(OK(open("g", O_CREAT | O_EXCL | O_WRONLY, 0640)));
  MODE_EQ(Lstat("g"), 0640u);
  umask(027);
  OK(mkdir("d", 0777));
  Fd h(OK(open("h", O_CREAT | O_WRONLY, 0666)));
  umask(0);
  MODE_EQ(Lstat("d"), 0750u);
  MODE_EQ(Lstat("h"), 0640u);
}

CASE(OpenCreat, "open.creat") {
  Put("f", "old content");
  // creat() is open(O_CREAT|O_WRONLY|O_TRUNC): it truncates and the descriptor is write-only.
  Fd fd(OK(creat("f", 0600)));
  EQ(Fstat(fd).st_size, 0);
  MODE_EQ(Fstat(fd), 0644u);  // existing file: the mode argument is ignored
  char b;
  ERR(read(fd, &b, 1), EBADF);
  EQ(write(fd, "new", 3), 3);
  fd.Close();
  EQ(Get("f"), "new");
  Fd n(OK(creat("n", 0604)));
  MODE_EQ(Lstat("n"), 0604u);
}

CASE(OpenExcl, "open.excl") {
  Put("f", "x");
  OK(mkdir("d", 0755));
  OK(symlink("f", "lf"));
  OK(symlink("missing", "dangling"));
  ERR(open("f", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
  ERR(open("d", O_CREAT | O_EXCL | O_RDONLY, 0644), EEXIST);
  ERR(open("lf", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
  // O_EXCL does not follow a symlink, dangling or not: the name exists.
  ERR(open("dangling", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
  ERR(lstat("missing", &g_scratch), ENOENT);
  EQ(Get("f"), "x");
}

CASE(OpenTrunc, "open.trunc") {
  Put("f", std::string(10000, 'a'));
  Fd fd(OK(open("f", O_WRONLY | O_TRUNC)));
  EQ(Fstat(fd).st_size, 0);
  EQ(Lstat("f").st_size, 0);
  EQ(write(fd, "bc", 2), 2);
  fd.Close();
  EQ(Get("f"), "bc");
  // A directory cannot be opened for writing, O_TRUNC or not.
  OK(mkdir("d", 0755));
  ERR(open("d", O_WRONLY | O_TRUNC), EISDIR);
}

CASE(OpenAppend, "open.append") {
  Put("f", "0123456789");
  Fd fd(OK(open("f", O_WRONLY | O_APPEND)));
  OK(lseek(fd, 0, SEEK_SET));
  EQ(write(fd, "ab", 2), 2);
  EQ(lseek(fd, 0, SEEK_CUR), 12);  // the offset follows the append
  // On Linux pwrite() on an O_APPEND descriptor appends, whatever the offset (BUGS in pwrite(2)).
  EQ(pwrite(fd, "cd", 2, 0), 2);
  fd.Close();
  EQ(Get("f"), "0123456789abcd");
}

CASE(OpenTwoAppenders, "open.append_two_fds") {
  Fd a(OK(open("f", O_CREAT | O_WRONLY | O_APPEND, 0644)));
  Fd b(OK(open("f", O_WRONLY | O_APPEND)));
  std::string want;
  for (int i = 0; i < 50; i++) {
    std::string x = "a" + std::to_string(i) + std::string(static_cast<size_t>(i % 7), 'x') + ";";
    std::string y =
        "B" + std::to_string(i * 3) + std::string(static_cast<size_t>(i % 5), 'y') + ";";
    EQ(write(a, x.data(), x.size()), x.size());
    EQ(write(b, y.data(), y.size()), y.size());
    want += x + y;
  }
  EQ(Fstat(a).st_size, want.size());
  EQ(Get("f"), want);
}

CASE(OpenErrors, "open.errors") {
  Put("f", "x");
  OK(mkdir("d", 0755));
  OK(symlink("d", "ld"));
  OK(symlink("f", "lf"));
  ERR(open("missing", O_RDONLY), ENOENT);
  ERR(open("nodir/f", O_CREAT | O_WRONLY, 0644), ENOENT);
  ERR(open("f/x", O_RDONLY), ENOTDIR);
  ERR(open("f/x", O_CREAT | O_WRONLY, 0644), ENOTDIR);
  ERR(open("f/", O_RDONLY), ENOTDIR);
  ERR(open("new/", O_CREAT | O_WRONLY, 0644), EISDIR);  // Linux: a trailing slash means a dir
  ERR(open("d", O_WRONLY), EISDIR);
  ERR(open("d", O_RDWR), EISDIR);
  ERR(open("d", O_CREAT | O_RDONLY, 0644), EISDIR);
  ERR(open("f", O_RDONLY | O_DIRECTORY), ENOTDIR);
  ERR(open("lf", O_RDONLY | O_DIRECTORY), ENOTDIR);
  Fd dd(OK(open("d", O_RDONLY | O_DIRECTORY)));
  Fd dl(OK(open("ld", O_RDONLY | O_DIRECTORY)));  // follows the link to the directory
  EQ(Fstat(dd).st_ino, Fstat(dl).st_ino);
  Fd r(OK(open("f", O_RDONLY)));
  ERR(write(r, "x", 1), EBADF);
  Fd w(OK(open("f", O_WRONLY)));
  char c;
  ERR(read(w, &c, 1), EBADF);
  ERR(lstat("new", &g_scratch), ENOENT);
}

// ---- mkdir / rmdir

CASE(MkdirBasic, "mkdir.basic") {
  nlink_t before = Lstat(".").st_nlink;
  OK(mkdir("d", 0750));
  struct stat st = Lstat("d");
  TYPE_EQ(st, S_IFDIR);
  MODE_EQ(st, 0750u);
  EQ(st.st_nlink, 2);
  EQ(st.st_uid, geteuid());
  EQ(Lstat(".").st_nlink, before + 1);  // the new dir's ".." links to the parent
  EQ(Names("d").size(), 0u);
  OK(mkdir("d/sub", 0700));
  EQ(Lstat("d").st_nlink, 3);
  OK(mkdir("trailing/", 0755));  // a trailing slash is fine for mkdir
  TYPE_EQ(Lstat("trailing"), S_IFDIR);
  // mkdir keeps the sticky bit but not setgid (which only comes from a setgid parent).
  OK(mkdir("sticky", 01777));
  MODE_EQ(Lstat("sticky"), 01777u);
  OK(mkdir("sgid", 02755));
  MODE_EQ(Lstat("sgid"), 0755u);
  EQ(Lstat("d/sub/..").st_ino, Lstat("d").st_ino);
}

CASE(MkdirErrors, "mkdir.errors") {
  Put("f", "");
  OK(mkdir("d", 0755));
  OK(symlink("d", "ld"));
  OK(symlink("missing", "dangling"));
  ERR(mkdir("d", 0755), EEXIST);
  ERR(mkdir("f", 0755), EEXIST);
  ERR(mkdir("ld", 0755), EEXIST);
  ERR(mkdir("dangling", 0755), EEXIST);  // mkdir does not follow the last component
  ERR(lstat("missing", &g_scratch), ENOENT);
  ERR(mkdir(".", 0755), EEXIST);
  ERR(mkdir("d/.", 0755), EEXIST);
  ERR(mkdir("nodir/x", 0755), ENOENT);
  ERR(mkdir("f/x", 0755), ENOTDIR);
  OK(mkdir("ld/viaLink", 0755));  // a symlink in the middle of a path is followed
  TYPE_EQ(Lstat("d/viaLink"), S_IFDIR);
}

CASE(RmdirBasic, "rmdir.basic") {
  OK(mkdir("d", 0755));
  nlink_t before = Lstat(".").st_nlink;
  OK(rmdir("d"));
  ERR(lstat("d", &g_scratch), ENOENT);
  EQ(Lstat(".").st_nlink, before - 1);
  EQ(Names(".").count("d"), 0u);
  // A directory removed while open: nothing can be created in it any more.
  OK(mkdir("gone", 0755));
  Fd fd(OK(open("gone", O_RDONLY | O_DIRECTORY)));
  OK(rmdir("gone"));
  ERR(openat(fd, "x", O_CREAT | O_WRONLY, 0644), ENOENT);
  ERR(mkdirat(fd, "x", 0755), ENOENT);
}

CASE(RmdirErrors, "rmdir.errors") {
  OK(mkdir("d", 0755));
  Put("d/f", "");
  OK(mkdir("e", 0755));
  OK(mkdir("e/sub", 0755));
  Put("f", "");
  OK(mkdir("empty", 0755));
  OK(symlink("empty", "lempty"));
  ERR(rmdir("d"), ENOTEMPTY);
  ERR(rmdir("e"), ENOTEMPTY);
  ERR(rmdir("f"), ENOTDIR);
  ERR(rmdir("lempty"), ENOTDIR);  // rmdir does not follow a symlink
  ERR(rmdir("lempty/"), ENOTDIR);
  ERR(rmdir("."), EINVAL);
  ERR(rmdir("empty/."), EINVAL);
  ERR(rmdir(".."), ENOTEMPTY);  // Linux; POSIX also allows EEXIST or EBUSY
  ERR(rmdir("e/sub/.."), ENOTEMPTY);
  ERR(rmdir("missing"), ENOENT);
  ERR(rmdir("f/x"), ENOTDIR);
  TYPE_EQ(Lstat("empty"), S_IFDIR);
  TYPE_EQ(Lstat("d/f"), S_IFREG);
}

// ---- unlink

CASE(UnlinkBasic, "unlink.basic") {
  Put("f", "data");
  Put("g", "");
  OK(unlink("f"));
  ERR(lstat("f", &g_scratch), ENOENT);
  EQ(Names("."), std::set<std::string>{"g"});
  // A symlink is removed, not its target.
  OK(symlink("g", "lg"));
  OK(unlink("lg"));
  TYPE_EQ(Lstat("g"), S_IFREG);
  ERR(lstat("lg", &g_scratch), ENOENT);
}

CASE(UnlinkOpen, "unlink.open_file") {
  Fd fd(OK(open("f", O_CREAT | O_RDWR, 0644)));
  EQ(write(fd, "still here", 10), 10);
  OK(unlink("f"));
  ERR(lstat("f", &g_scratch), ENOENT);
  struct stat st = Fstat(fd);
  EQ(st.st_nlink, 0);
  EQ(st.st_size, 10);
  EQ(pwrite(fd, "!", 1, 10), 1);
  char buf[16] = {};
  EQ(pread(fd, buf, sizeof buf, 0), 11);
  EQ(std::string(buf, 11), "still here!");
  // The name is free again, for a new file.
  Put("f", "new");
  EQ(Get("f"), "new");
  CHECK(Lstat("f").st_ino != st.st_ino);
}

CASE(UnlinkErrors, "unlink.errors") {
  OK(mkdir("d", 0755));
  Put("f", "");
  ERR(unlink("d"), EISDIR);  // Linux; POSIX says EPERM
  ERR(unlink("d/"), EISDIR);
  ERR(unlink("f/"), ENOTDIR);
  ERR(unlink("missing"), ENOENT);
  ERR(unlink("f/x"), ENOTDIR);
  ERR(unlink("nodir/x"), ENOENT);
  TYPE_EQ(Lstat("d"), S_IFDIR);
}

// ---- rename

CASE(RenameFileOverFile, "rename.file_over_file") {
  Put("a", "AAA");
  Put("b", "B");
  OK(link("b", "b2"));
  ino_t ia = Lstat("a").st_ino;
  EQ(Lstat("b2").st_nlink, 2);
  OK(rename("a", "b"));
  ERR(lstat("a", &g_scratch), ENOENT);
  EQ(Lstat("b").st_ino, ia);
  EQ(Get("b"), "AAA");
  EQ(Lstat("b2").st_nlink, 1);  // the replaced file lost one name
  EQ(Get("b2"), "B");
  EQ(Names("."), (std::set<std::string>{"b", "b2"}));
  // Plain rename to a new name, and across directories.
  OK(mkdir("d", 0755));
  OK(rename("b", "d/c"));
  EQ(Lstat("d/c").st_ino, ia);
  EQ(Names("."), (std::set<std::string>{"b2", "d"}));
}

CASE(RenameOpenFile, "rename.open_file") {
  Fd fd(OK(open("a", O_CREAT | O_RDWR, 0644)));
  OK(rename("a", "b"));
  EQ(write(fd, "via fd", 6), 6);
  fd.Close();
  EQ(Get("b"), "via fd");
}

CASE(RenameDirs, "rename.dirs") {
  OK(mkdir("d1", 0755));
  Put("d1/inner", "i");
  OK(mkdir("empty", 0755));
  OK(mkdir("full", 0755));
  Put("full/x", "");
  nlink_t before = Lstat(".").st_nlink;
  ERR(rename("d1", "full"), ENOTEMPTY);  // Linux; POSIX also allows EEXIST
  EQ(Get("d1/inner"), "i");
  TYPE_EQ(Lstat("full/x"), S_IFREG);
  ino_t i1 = Lstat("d1").st_ino;
  OK(rename("d1", "empty"));  // over an empty directory: replaces it
  ERR(lstat("d1", &g_scratch), ENOENT);
  EQ(Lstat("empty").st_ino, i1);
  EQ(Get("empty/inner"), "i");
  EQ(Lstat(".").st_nlink, before - 1);
  // Moving a directory to another parent moves its "..".
  OK(mkdir("p1", 0755));
  OK(mkdir("p2", 0755));
  OK(mkdir("p1/m", 0755));
  OK(rename("p1/m", "p2/m"));
  EQ(Lstat("p1").st_nlink, 2);
  EQ(Lstat("p2").st_nlink, 3);
  EQ(Lstat("p2/m/..").st_ino, Lstat("p2").st_ino);
}

CASE(RenameErrors, "rename.errors") {
  Put("f", "F");
  OK(mkdir("d", 0755));
  OK(mkdir("d/sub", 0755));
  OK(mkdir("e", 0755));
  ERR(rename("f", "d"), EISDIR);
  ERR(rename("d", "f"), ENOTDIR);
  ERR(rename("d", "d/sub/x"), EINVAL);  // into its own subtree
  ERR(rename("d", "d/x"), EINVAL);
  ERR(rename("e", "d/sub/.."), EBUSY);  // Linux refuses "." and ".." as either name
  ERR(rename(".", "x"), EBUSY);
  ERR(rename("missing", "x"), ENOENT);
  ERR(rename("f", "nodir/x"), ENOENT);
  ERR(rename("f", "f/x"), ENOTDIR);
  ERR(rename("f/x", "y"), ENOTDIR);
  ERR(rename("f", "y/"), ENOTDIR);  // a trailing slash on a non-directory
  EQ(Get("f"), "F");
  EQ(Names("."), (std::set<std::string>{"d", "e", "f"}));
}

CASE(RenameSame, "rename.same_file") {
  Put("a", "A");
  OK(rename("a", "a"));
  EQ(Get("a"), "A");
  // Two names of one file: rename does nothing and both names stay (POSIX).
  OK(link("a", "b"));
  OK(rename("a", "b"));
  EQ(Lstat("a").st_nlink, 2);
  EQ(Lstat("b").st_ino, Lstat("a").st_ino);
  OK(mkdir("d", 0755));
  OK(rename("d", "d"));
  TYPE_EQ(Lstat("d"), S_IFDIR);
}

CASE(RenameSymlink, "rename.symlink") {
  Put("target", "T");
  OK(symlink("target", "l"));
  OK(rename("l", "l2"));
  char buf[64];
  EQ(readlink("l2", buf, sizeof buf), 6);
  TYPE_EQ(Lstat("target"), S_IFREG);
  ERR(lstat("l", &g_scratch), ENOENT);
}

CASE(RenameNoreplace, "rename.noreplace") {
  Put("a", "A");
  Put("b", "B");
  ERR(renameat2(AT_FDCWD, "a", AT_FDCWD, "b", RENAME_NOREPLACE), EEXIST);
  EQ(Get("a"), "A");
  EQ(Get("b"), "B");
  OK(renameat2(AT_FDCWD, "a", AT_FDCWD, "c", RENAME_NOREPLACE));
  ERR(lstat("a", &g_scratch), ENOENT);
  EQ(Get("c"), "A");
  OK(mkdir("d", 0755));
  ERR(renameat2(AT_FDCWD, "c", AT_FDCWD, "d", RENAME_NOREPLACE), EEXIST);
}

CASE(RenameExchange, "rename.exchange") {
  Put("a", "A");
  OK(mkdir("d", 0755));
  Put("d/inner", "I");
  ino_t ia = Lstat("a").st_ino, id = Lstat("d").st_ino;
  Sys s = SYS(renameat2(AT_FDCWD, "a", AT_FDCWD, "d", RENAME_EXCHANGE));
  if (s.rc == -1 && (s.err == EINVAL || s.err == EOPNOTSUPP) && g_opt.allow_no_exchange) {
    g_ctx->Skip("RENAME_EXCHANGE -> " + ErrName(s.err) + " (allowed by --allow-no-exchange)");
  }
  g_ctx->Ok(s, "renameat2(\"a\", \"d\", RENAME_EXCHANGE)", __LINE__);
  EQ(Lstat("a").st_ino, id);
  EQ(Lstat("d").st_ino, ia);
  EQ(Get("a/inner"), "I");
  EQ(Get("d"), "A");
  // Across directories, and with a missing side.
  OK(mkdir("p", 0755));
  Put("p/x", "X");
  OK(renameat2(AT_FDCWD, "d", AT_FDCWD, "p/x", RENAME_EXCHANGE));
  EQ(Get("d"), "X");
  EQ(Get("p/x"), "A");
  ERR(renameat2(AT_FDCWD, "d", AT_FDCWD, "missing", RENAME_EXCHANGE), ENOENT);
  ERR(renameat2(AT_FDCWD, "d", AT_FDCWD, "p/y", RENAME_EXCHANGE | RENAME_NOREPLACE), EINVAL);
  EQ(Names("."), (std::set<std::string>{"a", "d", "p"}));
}

// ---- link

CASE(LinkBasic, "link.basic") {
  Put("f", "one");
  struct stat before = Lstat("f");
  Nap();
  OK(link("f", "g"));
  struct stat sf = Lstat("f"), sg = Lstat("g");
  EQ(sf.st_nlink, 2);
  EQ(sg.st_nlink, 2);
  EQ(sf.st_ino, sg.st_ino);
  LATER(sf.st_ctim, before.st_ctim);  // a link changes the inode's ctime
  Put("g", "two");                    // O_TRUNC through the other name: same file
  EQ(Get("f"), "two");
  OK(mkdir("d", 0755));
  OK(link("f", "d/h"));
  EQ(Lstat("f").st_nlink, 3);
  OK(unlink("f"));
  EQ(Lstat("g").st_nlink, 2);
  OK(unlink("g"));
  EQ(Lstat("d/h").st_nlink, 1);
  EQ(Get("d/h"), "two");
}

CASE(LinkMany, "link.many") {
  Put("f", "x");
  for (int i = 0; i < 20; i++)
    OK(link("f", ("l" + std::to_string(i)).c_str()));
  EQ(Lstat("f").st_nlink, 21);
  EQ(Names(".").size(), 21u);
  for (int i = 0; i < 20; i += 2)
    OK(unlink(("l" + std::to_string(i)).c_str()));
  EQ(Lstat("l1").st_nlink, 11);
  OK(unlink("f"));
  EQ(Lstat("l19").st_nlink, 10);
  EQ(Get("l19"), "x");
}

CASE(LinkErrors, "link.errors") {
  Put("f", "");
  Put("g", "");
  OK(mkdir("d", 0755));
  OK(symlink("missing", "dangling"));
  ERR(link("f", "g"), EEXIST);
  ERR(link("f", "d"), EEXIST);
  ERR(link("f", "dangling"), EEXIST);
  ERR(link("d", "d2"), EPERM);  // no hard links to directories
  ERR(link("missing", "x"), ENOENT);
  ERR(link("f", "nodir/x"), ENOENT);
  ERR(link("f", "g/x"), ENOTDIR);
  EQ(Lstat("f").st_nlink, 1);
}

CASE(LinkSymlink, "link.symlink") {
  Put("f", "x");
  OK(symlink("f", "s"));
  // link() does not follow a symlink on Linux: the new name is a second link to the symlink.
  OK(link("s", "s2"));
  TYPE_EQ(Lstat("s2"), S_IFLNK);
  EQ(Lstat("s").st_nlink, 2);
  EQ(Lstat("f").st_nlink, 1);
  OK(linkat(AT_FDCWD, "s", AT_FDCWD, "f2", AT_SYMLINK_FOLLOW));
  TYPE_EQ(Lstat("f2"), S_IFREG);
  EQ(Lstat("f").st_nlink, 2);
}

// ---- symlink / readlink

CASE(SymlinkBasic, "symlink.basic") {
  const std::string target = "some/where/../over there";
  OK(symlink(target.c_str(), "l"));
  struct stat st = Lstat("l");
  TYPE_EQ(st, S_IFLNK);
  MODE_EQ(st, 0777u);
  EQ(st.st_size, target.size());
  EQ(st.st_uid, geteuid());
  char buf[256];
  long n = OK(readlink("l", buf, sizeof buf));
  EQ(std::string(buf, static_cast<size_t>(n)), target);
  EQ(readlink("l", buf, 4), 4);  // a short buffer: truncated, no error
  EQ(std::string(buf, 4), "some");
  ERR(stat("l", &st), ENOENT);  // dangling
  // Long and non-ASCII targets round-trip byte for byte.
  std::string lng(1024, 'x');
  for (size_t i = 0; i < lng.size(); i += 10)
    lng[i] = '/';
  OK(symlink(lng.c_str(), "long"));
  std::string b(2048, '\0');
  n = OK(readlink("long", b.data(), b.size()));
  EQ(b.substr(0, static_cast<size_t>(n)), lng);
  const char* odd = "\xc3\xbc\xff tab\tnewline\n";
  OK(symlink(odd, "odd"));
  n = OK(readlink("odd", buf, sizeof buf));
  EQ(std::string(buf, static_cast<size_t>(n)), std::string(odd));
}

CASE(SymlinkFollow, "symlink.follow") {
  Put("f", "content");
  OK(mkdir("d", 0755));
  OK(symlink("../f", "d/up"));  // relative to the link's own directory
  OK(symlink("d", "ld"));
  EQ(Get("d/up"), "content");
  EQ(Get("ld/up"), "content");
  EQ(Stat("d/up").st_ino, Lstat("f").st_ino);
  // A chain of 40 links resolves; the 41st hop is ELOOP (MAXSYMLINKS).
  std::string prev = "f";
  for (int i = 0; i < 41; i++) {
    std::string name = "c" + std::to_string(i);
    OK(symlink(prev.c_str(), name.c_str()));
    prev = name;
  }
  EQ(Stat("c39").st_ino, Lstat("f").st_ino);
  struct stat st;
  ERR(stat("c40", &st), ELOOP);
  // O_CREAT through a dangling link creates its target; O_EXCL refuses.
  OK(symlink("made", "dl"));
  ERR(open("dl", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
  Fd fd(OK(open("dl", O_CREAT | O_WRONLY, 0644)));
  TYPE_EQ(Lstat("made"), S_IFREG);
  TYPE_EQ(Lstat("dl"), S_IFLNK);
}

CASE(SymlinkLoop, "symlink.loop") {
  OK(symlink("b", "a"));
  OK(symlink("a", "b"));
  OK(symlink("self", "self"));
  struct stat st;
  ERR(open("a", O_RDONLY), ELOOP);
  ERR(open("self", O_RDONLY), ELOOP);
  ERR(open("a", O_CREAT | O_WRONLY, 0644), ELOOP);
  ERR(stat("a", &st), ELOOP);
  ERR(stat("self/x", &st), ELOOP);
  TYPE_EQ(Lstat("a"), S_IFLNK);
  // O_NOFOLLOW on any symlink as the last component is ELOOP.
  Put("f", "");
  OK(symlink("f", "lf"));
  ERR(open("lf", O_RDONLY | O_NOFOLLOW), ELOOP);
  Fd fd(OK(open("f", O_RDONLY | O_NOFOLLOW)));
  OK(unlink("a"));  // a loop is removed like any link
}

CASE(SymlinkErrors, "symlink.errors") {
  Put("f", "");
  OK(mkdir("d", 0755));
  char buf[16];
  ERR(symlink("x", "f"), EEXIST);
  ERR(symlink("x", "d"), EEXIST);
  ERR(symlink("", "empty"), ENOENT);  // Linux refuses an empty target
  ERR(symlink("x", "nodir/l"), ENOENT);
  ERR(symlink("x", "f/l"), ENOTDIR);
  ERR(symlink(std::string(4096, 'a').c_str(), "toolong"), ENAMETOOLONG);  // PATH_MAX with NUL
  ERR(readlink("f", buf, sizeof buf), EINVAL);
  ERR(readlink("d", buf, sizeof buf), EINVAL);
  ERR(readlink("missing", buf, sizeof buf), ENOENT);
  EQ(Names("."), (std::set<std::string>{"d", "f"}));
}

// ---- truncate

CASE(TruncateSizes, "truncate.grow_shrink") {
  const std::string data = Pattern(10000, 1);
  Put("f", data);
  OK(truncate("f", 20000));  // grow: old bytes kept, new bytes zero
  EQ(Lstat("f").st_size, 20000);
  EQ(Get("f"), data + std::string(10000, '\0'));
  Fd fd(OK(open("f", O_RDWR)));
  OK(ftruncate(fd, 3001));  // shrink in the middle of a block
  EQ(Fstat(fd).st_size, 3001);
  EQ(Get("f"), data.substr(0, 3001));
  OK(ftruncate(fd, 8192));  // grow again: the cut bytes must not come back
  EQ(Get("f"), data.substr(0, 3001) + std::string(8192 - 3001, '\0'));
  OK(ftruncate(fd, 0));
  EQ(Fstat(fd).st_size, 0);
  EQ(pwrite(fd, "z", 1, 5000), 1);  // a write past the end leaves a hole of zeros
  EQ(Get("f"), std::string(5000, '\0') + "z");
  OK(truncate("f", 1L << 32));  // 4 GiB, sparse
  EQ(Lstat("f").st_size, 1L << 32);
  char c = 1;
  EQ(pread(fd, &c, 1, (1L << 32) - 1), 1);
  EQ(static_cast<int>(c), 0);
}

CASE(TruncateErrors, "truncate.errors") {
  Put("f", "abc");
  OK(mkdir("d", 0755));
  ERR(truncate("d", 0), EISDIR);
  ERR(truncate("f", -1), EINVAL);
  ERR(truncate("missing", 0), ENOENT);
  ERR(truncate("f/x", 0), ENOTDIR);
  Fd r(OK(open("f", O_RDONLY)));
  ERR(ftruncate(r, 0), EINVAL);  // Linux: a descriptor not open for writing is EINVAL
  Fd w(OK(open("f", O_WRONLY)));
  ERR(ftruncate(w, -1), EINVAL);
  EQ(Get("f"), "abc");
}

// ---- chmod / chown / utimensat

CASE(ChmodBasic, "chmod.basic") {
  Put("f", "");
  for (mode_t m : {0000u, 0644u, 0777u, 04755u, 02755u, 01777u, 07777u, 0400u}) {
    OK(chmod("f", m));
    MODE_EQ(Lstat("f"), m);
  }
  Fd fd(OK(open("f", O_RDONLY)));
  OK(fchmod(fd, 0600));
  MODE_EQ(Lstat("f"), 0600u);
  OK(symlink("f", "l"));
  OK(chmod("l", 0640));  // follows the link
  MODE_EQ(Lstat("f"), 0640u);
  MODE_EQ(Lstat("l"), 0777u);
  OK(mkdir("d", 0755));
  OK(chmod("d", 0700));
  MODE_EQ(Lstat("d"), 0700u);
  ERR(chmod("missing", 0644), ENOENT);
  ERR(chmod("f/x", 0644), ENOTDIR);
}

ROOT_CASE(ChownBasic, "chown.basic") {
  Put("f", "");
  OK(chown("f", kUser, kGroup));
  struct stat st = Lstat("f");
  EQ(st.st_uid, kUser);
  EQ(st.st_gid, kGroup);
  OK(chown("f", static_cast<uid_t>(-1), kNogroup));  // -1 leaves that id alone
  st = Lstat("f");
  EQ(st.st_uid, kUser);
  EQ(st.st_gid, kNogroup);
  OK(chown("f", kNobody, static_cast<gid_t>(-1)));
  EQ(Lstat("f").st_uid, kNobody);
  EQ(Lstat("f").st_gid, kNogroup);
  // chown follows a symlink; lchown changes the link itself.
  OK(symlink("f", "l"));
  OK(chown("l", 0, 0));
  EQ(Lstat("f").st_uid, 0u);
  OK(lchown("l", kUser, kGroup));
  EQ(Lstat("l").st_uid, kUser);
  EQ(Lstat("l").st_gid, kGroup);
  EQ(Lstat("f").st_uid, 0u);
  // A chown of a regular file clears setuid, and setgid when group-executable (root too).
  OK(chmod("f", 06755));
  OK(chown("f", kUser, kGroup));
  MODE_EQ(Lstat("f"), 0755u);
  Put("g", "");
  OK(chmod("g", 02745));  // setgid without group exec is mandatory locking: kept
  OK(chown("g", kUser, kGroup));
  MODE_EQ(Lstat("g"), 02745u);
  // ... but not of a directory.
  OK(mkdir("d", 0755));
  OK(chmod("d", 02775));
  OK(chown("d", kUser, kGroup));
  MODE_EQ(Lstat("d"), 02775u);
  ERR(chown("missing", 0, 0), ENOENT);
}

CASE(UtimensatBasic, "utimensat.basic") {
  Put("f", "");
  struct stat before = Lstat("f");
  Nap();
  timespec t[2] = {{1000000000, 123456789}, {1500000000, 987654321}};
  OK(utimensat(AT_FDCWD, "f", t, 0));
  struct stat st = Lstat("f");
  EQ(st.st_atim.tv_sec, t[0].tv_sec);
  EQ(st.st_atim.tv_nsec, t[0].tv_nsec);
  EQ(st.st_mtim.tv_sec, t[1].tv_sec);
  EQ(st.st_mtim.tv_nsec, t[1].tv_nsec);
  LATER(st.st_ctim, before.st_ctim);  // setting times is a change of the inode
  // UTIME_OMIT leaves one alone; UTIME_NOW takes the current time.
  timespec t2[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  OK(utimensat(AT_FDCWD, "f", t2, 0));
  st = Lstat("f");
  EQ(st.st_atim.tv_sec, t[0].tv_sec);
  EQ(st.st_atim.tv_nsec, t[0].tv_nsec);
  CHECK(st.st_mtim.tv_sec >= now.tv_sec - 1 && st.st_mtim.tv_sec <= now.tv_sec + 5);
  // Both omitted: nothing changes, not even ctime.
  struct stat s1 = Lstat("f");
  Nap();
  timespec omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
  OK(utimensat(AT_FDCWD, "f", omit, 0));
  struct stat s2 = Lstat("f");
  SAME_TIME(s2.st_ctim, s1.st_ctim);
  SAME_TIME(s2.st_mtim, s1.st_mtim);
  // NULL means both now.
  Nap();
  OK(utimensat(AT_FDCWD, "f", nullptr, 0));
  LATER(Lstat("f").st_mtim, s2.st_mtim);
  LATER(Lstat("f").st_atim, s2.st_atim);
  // futimens on a descriptor.
  Fd fd(OK(open("f", O_RDONLY)));
  timespec t3[2] = {{2000000000, 5}, {2000000001, 6}};
  OK(futimens(fd, t3));
  EQ(Lstat("f").st_mtim.tv_sec, 2000000001);
  EQ(Lstat("f").st_mtim.tv_nsec, 6);
  // AT_SYMLINK_NOFOLLOW sets the link's own times.
  OK(symlink("f", "l"));
  timespec t4[2] = {{1200000000, 0}, {1200000000, 0}};
  OK(utimensat(AT_FDCWD, "l", t4, AT_SYMLINK_NOFOLLOW));
  EQ(Lstat("l").st_mtim.tv_sec, 1200000000);
  EQ(Lstat("f").st_mtim.tv_sec, 2000000001);
  ERR(utimensat(AT_FDCWD, "missing", nullptr, 0), ENOENT);
  timespec bad[2] = {{0, 1000000000}, {0, 0}};
  ERR(utimensat(AT_FDCWD, "f", bad, 0), EINVAL);
}

// ---- timestamps

CASE(TimesWrite, "times.write") {
  Put("f", "abc");
  struct stat before = Lstat("f");
  Nap();
  Fd fd(OK(open("f", O_WRONLY)));
  EQ(write(fd, "x", 1), 1);
  fd.Close();
  struct stat after = Lstat("f");
  LATER(after.st_mtim, before.st_mtim);
  LATER(after.st_ctim, before.st_ctim);
  // Reading changes neither mtime nor ctime.
  Nap();
  EQ(Get("f"), "xbc");
  struct stat again = Lstat("f");
  SAME_TIME(again.st_mtim, after.st_mtim);
  SAME_TIME(again.st_ctim, after.st_ctim);
  // Truncation and O_TRUNC are writes too.
  Nap();
  OK(truncate("f", 1));
  struct stat t1 = Lstat("f");
  LATER(t1.st_mtim, again.st_mtim);
  LATER(t1.st_ctim, again.st_ctim);
  Nap();
  Fd tr(OK(open("f", O_WRONLY | O_TRUNC)));
  LATER(Lstat("f").st_mtim, t1.st_mtim);
}

CASE(TimesDir, "times.dir") {
  OK(mkdir("d", 0755));
  OK(mkdir("e", 0755));
  auto step = [](const char* what, const std::function<void()>& op,
                 std::initializer_list<const char*> dirs) {
    std::vector<struct stat> before;
    for (const char* d : dirs)
      before.push_back(Lstat(d));
    Nap();
    op();
    size_t i = 0;
    for (const char* d : dirs) {
      struct stat now = Lstat(d);
      g_ctx->Later(now.st_mtim, before[i].st_mtim,
                   (std::string("mtime of ") + d + " after " + what).c_str(), "before", __LINE__);
      g_ctx->Later(now.st_ctim, before[i].st_ctim,
                   (std::string("ctime of ") + d + " after " + what).c_str(), "before", __LINE__);
      i++;
    }
  };
  step("create", [] { Put("d/f", ""); }, {"d"});
  step("mkdir", [] { OK(mkdir("d/sub", 0755)); }, {"d"});
  step("symlink", [] { OK(symlink("x", "d/l")); }, {"d"});
  step("link", [] { OK(link("d/f", "d/f2")); }, {"d"});
  step("mknod", [] { OK(mknod("d/p", S_IFIFO | 0644, 0)); }, {"d"});
  step("rename within", [] { OK(rename("d/f2", "d/f3")); }, {"d"});
  step("rename across", [] { OK(rename("d/f3", "e/f3")); }, {"d", "e"});
  step("unlink", [] { OK(unlink("e/f3")); }, {"e"});
  step("rmdir", [] { OK(rmdir("d/sub")); }, {"d"});
  // A rename changes the moved object's ctime too (ext4, xfs, tmpfs, btrfs all do).
  struct stat f = Lstat("d/f");
  Nap();
  OK(rename("d/f", "e/moved"));
  LATER(Lstat("e/moved").st_ctim, f.st_ctim);
  // Writing a file changes its directory's times not at all.
  struct stat d = Lstat("e");
  Nap();
  Put("e/moved", "data");
  SAME_TIME(Lstat("e").st_mtim, d.st_mtim);
}

CASE(TimesMetadata, "times.metadata") {
  Put("f", "x");
  struct stat b = Lstat("f");
  Nap();
  OK(chmod("f", 0600));
  struct stat a = Lstat("f");
  LATER(a.st_ctim, b.st_ctim);
  SAME_TIME(a.st_mtim, b.st_mtim);  // chmod is not a data change
  Nap();
  OK(setxattr("f", "user.t", "v", 1, 0));
  struct stat x = Lstat("f");
  LATER(x.st_ctim, a.st_ctim);
  SAME_TIME(x.st_mtim, b.st_mtim);
  if (IsRoot()) {
    Nap();
    OK(chown("f", kUser, kGroup));
    struct stat c = Lstat("f");
    LATER(c.st_ctim, x.st_ctim);
    SAME_TIME(c.st_mtim, b.st_mtim);
  }
  // Unlinking one of two names changes the file's ctime.
  OK(link("f", "g"));
  struct stat l = Lstat("f");
  Nap();
  OK(unlink("g"));
  LATER(Lstat("f").st_ctim, l.st_ctim);
}

// ---- names

CASE(NameTooLong, "name.too_long") {
  const std::string n255(255, 'n'), n256(256, 'n');
  const char* ok = n255.c_str();
  const char* bad = n256.c_str();
  Put(ok, "255");
  EQ(Get(ok), "255");
  EQ(Names("."), std::set<std::string>{n255});
  OK(mkdir("d", 0755));
  std::string dok = "d/" + n255;
  OK(mkdir(dok.c_str(), 0755));
  OK(rmdir(dok.c_str()));
  struct stat st;
  char buf[8];
  ERR(open(bad, O_CREAT | O_WRONLY, 0644), ENAMETOOLONG);
  ERR(open(bad, O_RDONLY), ENAMETOOLONG);
  ERR(stat(bad, &st), ENAMETOOLONG);
  ERR(mkdir(bad, 0755), ENAMETOOLONG);
  ERR(rmdir(bad), ENAMETOOLONG);
  ERR(unlink(bad), ENAMETOOLONG);
  ERR(symlink("x", bad), ENAMETOOLONG);
  ERR(link(ok, bad), ENAMETOOLONG);
  ERR(rename(ok, bad), ENAMETOOLONG);
  ERR(rename(bad, "x"), ENAMETOOLONG);
  ERR(mknod(bad, S_IFIFO | 0644, 0), ENAMETOOLONG);
  ERR(readlink(bad, buf, sizeof buf), ENAMETOOLONG);
  ERR(setxattr(bad, "user.a", "v", 1, 0), ENAMETOOLONG);
  EQ(Names("."), (std::set<std::string>{n255, "d"}));
  OK(unlink(ok));
}

CASE(NameBytes, "name.bytes") {
  // Any byte but '/' and NUL is a valid name byte; names need not be UTF-8.
  const std::vector<std::string> names = {
      "a b",          " lead", "trail ", "tab\there", "new\nline", "\xc3\xbc\xc3\xa9",
      "\xff\xfe\x80", "-",     "...",    ".hidden",   "x\x01y",    "quote\"'",
      "back\\slash",  "*?[]",  "#%&"};
  std::set<std::string> want;
  for (const auto& n : names) {
    Put(n.c_str(), n);
    want.insert(n);
  }
  EQ(Names("."), want);
  for (const auto& n : names)
    EQ(Get(n.c_str()), n);
  OK(rename("\xff\xfe\x80", "\xfe\xff"));
  EQ(Get("\xfe\xff"), std::string("\xff\xfe\x80"));
  for (const auto& n : names) {
    if (n != "\xff\xfe\x80") OK(unlink(n.c_str()));
  }
  EQ(Names("."), std::set<std::string>{"\xfe\xff"});
}

// ---- permissions (root forks a child that drops to another user)

ROOT_CASE(StickyDir, "sticky.dir") {
  OK(mkdir("t", 01777));
  As(kUser, kGroup, {}, [] {
    Put("t/users", "mine");
    OK(mkdir("t/usersdir", 0755));
  });
  As(kNobody, kNogroup, {}, [] {
    Put("t/nobodys", "n");
    ERR(unlink("t/users"), EPERM);
    ERR(rename("t/users", "t/stolen"), EPERM);
    ERR(rename("t/nobodys", "t/users"), EPERM);  // replacing another's file is removing it
    ERR(rmdir("t/usersdir"), EPERM);
    OK(rename("t/nobodys", "t/nobodys2"));  // one's own file: fine
    OK(unlink("t/nobodys2"));
  });
  EQ(Get("t/users"), "mine");
  As(kUser, kGroup, {}, [] { OK(unlink("t/users")); });
  // The directory's owner may remove anyone's file in it.
  OK(mkdir("u", 01777));
  Chown("u", kUser, kGroup);
  As(kNobody, kNogroup, {}, [] { Put("u/nobodys", ""); });
  As(kUser, kGroup, {}, [] { OK(unlink("u/nobodys")); });
  // Without the sticky bit anyone with write permission on the directory may.
  OK(mkdir("w", 0777));
  As(kUser, kGroup, {}, [] { Put("w/users", ""); });
  As(kNobody, kNogroup, {}, [] { OK(unlink("w/users")); });
  EQ(Names("t"), std::set<std::string>{"usersdir"});
}

ROOT_CASE(PermDirWrite, "perm.dir_write") {
  OK(mkdir("d", 0755));
  Put("d/f", "root's");
  As(kNobody, kNogroup, {}, [] {
    ERR(open("d/new", O_CREAT | O_WRONLY, 0644), EACCES);
    ERR(mkdir("d/nd", 0755), EACCES);
    ERR(mknod("d/p", S_IFIFO | 0644, 0), EACCES);
    ERR(symlink("x", "d/s"), EACCES);
    ERR(unlink("d/f"), EACCES);
    ERR(rename("d/f", "d/g"), EACCES);
    ERR(open("d/f", O_WRONLY), EACCES);
    ERR(truncate("d/f", 0), EACCES);
    Fd fd(OK(open("d/f", O_RDONLY)));
    EQ(ReadAll(fd), "root's");
  });
  EQ(Names("d"), std::set<std::string>{"f"});
}

ROOT_CASE(PermDirSearch, "perm.dir_search") {
  OK(mkdir("x", 0700));
  Put("x/f", "secret");
  As(kNobody, kNogroup, {}, [] {
    struct stat st;
    ERR(stat("x/f", &st), EACCES);
    ERR(open("x/f", O_RDONLY), EACCES);
    ERR(open("x", O_RDONLY | O_DIRECTORY), EACCES);
  });
  OK(chmod("x", 0711));  // search but not read: known names work, listing does not
  As(kNobody, kNogroup, {}, [] {
    EQ(Stat("x/f").st_size, 6);
    ERR(open("x", O_RDONLY | O_DIRECTORY), EACCES);
  });
  OK(chmod("x", 0744));  // read but not search: names list, but cannot be looked up
  As(kNobody, kNogroup, {}, [] {
    EQ(Names("x"), std::set<std::string>{"f"});
    struct stat st;
    ERR(stat("x/f", &st), EACCES);
  });
  // Root needs no permission bits on directories (CAP_DAC_OVERRIDE).
  OK(chmod("x", 0000));
  Put("x/g", "");
  EQ(Names("x"), (std::set<std::string>{"f", "g"}));
}

ROOT_CASE(PermOwner, "perm.owner") {
  OK(mkdir("o", 0755));
  Chown("o", kUser, kGroup);
  As(kUser, kGroup, {kGroup}, [] {
    Put("o/f", "u");
    struct stat st = Lstat("o/f");
    EQ(st.st_uid, kUser);
    EQ(st.st_gid, kGroup);
    OK(mkdir("o/d", 0700));
    OK(symlink("f", "o/l"));
    OK(rename("o/f", "o/d/f"));
    OK(link("o/d/f", "o/f2"));
    OK(unlink("o/d/f"));
    OK(rmdir("o/d"));
    // A file created with mode 0 still gives its creator the descriptor it asked for.
    Fd fd(OK(open("o/zero", O_CREAT | O_RDWR, 0)));
    EQ(write(fd, "w", 1), 1);
    ERR(open("o/zero", O_RDONLY), EACCES);
  });
  As(kNobody, kNogroup, {}, [] {
    ERR(open("o/new", O_CREAT | O_WRONLY, 0644), EACCES);
    ERR(unlink("o/f2"), EACCES);
  });
  EQ(Names("o"), (std::set<std::string>{"f2", "l", "zero"}));
}

ROOT_CASE(PermFileBits, "perm.file_bits") {
  Put("f", "data");
  Chown("f", kUser, kGroup);
  // The owner class wins even when group or other would allow: 0066 locks out the owner.
  OK(chmod("f", 0066));
  As(kUser, kGroup, {kGroup}, [] {
    ERR(open("f", O_RDONLY), EACCES);
    ERR(open("f", O_WRONLY), EACCES);
  });
  As(kNobody, kNogroup, {}, [] { Fd fd(OK(open("f", O_RDWR))); });
  As(kNobody, kNogroup, {kGroup}, [] { Fd fd(OK(open("f", O_RDWR))); });
  // The group class wins over other: 0604 and a member of the file's group cannot read.
  OK(chmod("f", 0604));
  As(kNobody, kNogroup, {kGroup}, [] { ERR(open("f", O_RDONLY), EACCES); });
  As(kNobody, kNogroup, {}, [] { Fd fd(OK(open("f", O_RDONLY))); });
  // A supplementary group is enough for the group class.
  OK(chmod("f", 0640));
  As(kNobody, kNogroup, {kNogroup, kGroup}, [] { EQ(Get("f"), "data"); });
  As(kNobody, kNogroup, {}, [] {
    ERR(open("f", O_RDONLY), EACCES);
    ERR(access("f", R_OK), EACCES);
    OK(access("f", F_OK));
  });
  // Root reads and writes whatever the bits say.
  OK(chmod("f", 0000));
  Fd fd(OK(open("f", O_RDWR)));
}

ROOT_CASE(PermChmodChown, "perm.chmod_chown") {
  Put("f", "");
  Chown("f", kUser, kGroup);
  As(kNobody, kNogroup, {}, [] {
    ERR(chmod("f", 0777), EPERM);
    ERR(chown("f", kNobody, static_cast<gid_t>(-1)), EPERM);
    timespec t[2] = {{1, 0}, {1, 0}};
    ERR(utimensat(AT_FDCWD, "f", t, 0), EPERM);
  });
  As(kUser, kGroup, {kGroup}, [] {
    OK(chmod("f", 0600));
    ERR(chown("f", kNobody, static_cast<gid_t>(-1)), EPERM);   // giving a file away
    ERR(chown("f", static_cast<uid_t>(-1), kNogroup), EPERM);  // to a group not one's own
    OK(chown("f", kUser, kGroup));                             // a no-op is allowed
    timespec t[2] = {{1, 0}, {2, 0}};
    OK(utimensat(AT_FDCWD, "f", t, 0));
  });
  EQ(Lstat("f").st_mtim.tv_sec, 2);
  MODE_EQ(Lstat("f"), 0600u);
  // Setting the time to "now" needs only write permission; explicit times need ownership.
  OK(chmod("f", 0666));
  As(kNobody, kNogroup, {}, [] {
    OK(utimensat(AT_FDCWD, "f", nullptr, 0));
    timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
    OK(utimensat(AT_FDCWD, "f", now, 0));
  });
  OK(chmod("f", 0644));
  As(kNobody, kNogroup, {}, [] { ERR(utimensat(AT_FDCWD, "f", nullptr, 0), EACCES); });
}

ROOT_CASE(PermSetgidClear, "perm.sgid_suid_clear") {
  // A non-member sets setgid on its own file: Linux clears the bit silently.
  Put("f", "");
  Chown("f", kUser, 0);
  As(kUser, kGroup, {kGroup}, [] {
    OK(chmod("f", 02755));
    MODE_EQ(Lstat("f"), 0755u);
  });
  Put("g", "");
  Chown("g", kUser, kGroup);
  As(kUser, kGroup, {kGroup}, [] {
    OK(chmod("g", 02755));
    MODE_EQ(Lstat("g"), 02755u);
  });
  // A write by someone else clears setuid and (group-executable) setgid.
  Put("h", "");
  Chown("h", kUser, kGroup);
  OK(chmod("h", 06777));
  As(kNobody, kNogroup, {}, [] {
    Fd fd(OK(open("h", O_WRONLY)));
    EQ(write(fd, "x", 1), 1);
  });
  MODE_EQ(Lstat("h"), 0777u);
  // Truncation by someone else, too.
  OK(chmod("h", 04777));
  As(kNobody, kNogroup, {}, [] { OK(truncate("h", 0)); });
  MODE_EQ(Lstat("h"), 0777u);
}

ROOT_CASE(SetgidDir, "sgid.inherit") {
  OK(mkdir("s", 0777));
  Chown("s", 0, kGroup);
  OK(chmod("s", 02777));
  MODE_EQ(Lstat("s"), 02777u);
  Put("s/f", "");
  EQ(Lstat("s/f").st_gid, kGroup);
  OK(mkdir("s/sub", 0755));
  struct stat sub = Lstat("s/sub");
  EQ(sub.st_gid, kGroup);
  MODE_EQ(sub, 02755u);  // subdirectories inherit the setgid bit
  OK(symlink("x", "s/l"));
  EQ(Lstat("s/l").st_gid, kGroup);
  OK(mknod("s/p", S_IFIFO | 0644, 0));
  EQ(Lstat("s/p").st_gid, kGroup);
  EQ(Lstat("s/sub").st_gid, kGroup);
  OK(mkdir("s/sub/deeper", 0700));
  EQ(Lstat("s/sub/deeper").st_gid, kGroup);
  // A user outside the group gets the group too, but not a setgid bit it asked for.
  As(kNobody, kNogroup, {}, [] {
    Fd fd(OK(open("s/nobodys", O_CREAT | O_WRONLY, 02755)));
    struct stat st = Lstat("s/nobodys");
    EQ(st.st_uid, kNobody);
    EQ(st.st_gid, kGroup);
    MODE_EQ(st, 0755u);
  });
  // Outside a setgid directory the creator's group is used.
  Put("plain", "");
  EQ(Lstat("plain").st_gid, getegid());
}

// ---- xattrs

CASE(XattrBasic, "xattr.basic") {
  Put("f", "");
  OK(setxattr("f", "user.a", "value-a", 7, 0));
  OK(setxattr("f", "user.b", "", 0, 0));  // an empty value is a value
  const std::string bin("\0\x01\xff\0z", 5);
  OK(setxattr("f", "user.bin", bin.data(), bin.size(), 0));
  char buf[256];
  EQ(getxattr("f", "user.a", nullptr, 0), 7);  // size query
  long n = OK(getxattr("f", "user.a", buf, sizeof buf));
  EQ(std::string(buf, static_cast<size_t>(n)), "value-a");
  EQ(getxattr("f", "user.b", buf, sizeof buf), 0);
  n = OK(getxattr("f", "user.bin", buf, sizeof buf));
  EQ(std::string(buf, static_cast<size_t>(n)), bin);
  auto user_names = [](const char* path) {
    char list[4096];
    long len = OK(listxattr(path, list, sizeof list));
    std::set<std::string> out;
    for (long i = 0; i < len;) {
      std::string name(list + i);
      if (name.rfind("user.", 0) == 0) out.insert(name);
      i += static_cast<long>(name.size()) + 1;
    }
    return out;
  };
  EQ(user_names("f"), (std::set<std::string>{"user.a", "user.b", "user.bin"}));
  long need = OK(listxattr("f", nullptr, 0));
  CHECK(need >= static_cast<long>(sizeof "user.a" + sizeof "user.b" + sizeof "user.bin"));
  OK(setxattr("f", "user.a", "second", 6, 0));  // plain set replaces
  n = OK(getxattr("f", "user.a", buf, sizeof buf));
  EQ(std::string(buf, static_cast<size_t>(n)), "second");
  OK(removexattr("f", "user.a"));
  ERR(getxattr("f", "user.a", buf, sizeof buf), ENODATA);
  EQ(user_names("f"), (std::set<std::string>{"user.b", "user.bin"}));
  // Directories carry user xattrs; fsetxattr works on a descriptor.
  OK(mkdir("d", 0755));
  OK(setxattr("d", "user.dir", "D", 1, 0));
  EQ(getxattr("d", "user.dir", buf, sizeof buf), 1);
  Fd fd(OK(open("f", O_RDONLY)));
  OK(fsetxattr(fd, "user.fd", "F", 1, 0));
  EQ(fgetxattr(fd, "user.fd", buf, sizeof buf), 1);
  // A value of 64 KiB - 1 bytes is allowed by the VFS; ext4 without ea_inode refuses more than a
  // block, so the big-value check stays at 1 KiB.
  const std::string big = Pattern(1024, 7);
  OK(setxattr("f", "user.big", big.data(), big.size(), 0));
  std::string back(2048, '\0');
  n = OK(getxattr("f", "user.big", back.data(), back.size()));
  EQ(back.substr(0, static_cast<size_t>(n)), big);
}

CASE(XattrErrors, "xattr.errors") {
  Put("f", "");
  OK(setxattr("f", "user.a", "12345", 5, 0));
  char buf[256];
  ERR(getxattr("f", "user.none", buf, sizeof buf), ENODATA);
  ERR(removexattr("f", "user.none"), ENODATA);
  ERR(setxattr("f", "user.a", "x", 1, XATTR_CREATE), EEXIST);
  ERR(setxattr("f", "user.none", "x", 1, XATTR_REPLACE), ENODATA);
  OK(setxattr("f", "user.new", "x", 1, XATTR_CREATE));
  OK(setxattr("f", "user.new", "yy", 2, XATTR_REPLACE));
  EQ(getxattr("f", "user.new", buf, sizeof buf), 2);
  ERR(getxattr("f", "user.a", buf, 2), ERANGE);  // buffer smaller than the value
  ERR(listxattr("f", buf, 3), ERANGE);           // ... than the list
  const std::string huge(65537, 'h');            // over XATTR_SIZE_MAX
  ERR(setxattr("f", "user.huge", huge.data(), huge.size(), 0), E2BIG);
  ERR(setxattr("f", ("user." + std::string(251, 'n')).c_str(), "x", 1, 0), ERANGE);  // name > 255
  ERR(setxattr("f", "user.", "x", 1, 0), EINVAL);
  ERR(setxattr("f", "nonamespace.x", "x", 1, 0), EOPNOTSUPP);
  ERR(getxattr("missing", "user.a", buf, sizeof buf), ENOENT);
  // user.* is only for regular files and directories: not on a symlink itself.
  OK(symlink("f", "l"));
  ERR(lsetxattr("l", "user.a", "x", 1, 0), EPERM);
  ERR(lgetxattr("l", "user.a", buf, sizeof buf), ENODATA);
  EQ(getxattr("l", "user.a", buf, sizeof buf), 5);  // follows the link to f
  OK(mknod("p", S_IFIFO | 0644, 0));
  ERR(setxattr("p", "user.a", "x", 1, 0), EPERM);
}

ROOT_CASE(XattrPerm, "xattr.perm") {
  Put("f", "");
  Chown("f", kUser, kGroup);
  OK(chmod("f", 0644));
  OK(setxattr("f", "user.a", "v", 1, 0));
  As(kNobody, kNogroup, {}, [] {
    char buf[8];
    EQ(getxattr("f", "user.a", buf, sizeof buf), 1);  // read permission is enough to read
    ERR(setxattr("f", "user.b", "v", 1, 0), EACCES);
    ERR(removexattr("f", "user.a"), EACCES);
  });
  OK(chmod("f", 0600));
  As(kNobody, kNogroup, {}, [] {
    char buf[8];
    ERR(getxattr("f", "user.a", buf, sizeof buf), EACCES);
  });
  As(kUser, kGroup, {}, [] { OK(setxattr("f", "user.c", "v", 1, 0)); });
}

// ---- special files

CASE(MknodFifo, "mknod.fifo") {
  OK(mkfifo("p", 0640));
  struct stat st = Lstat("p");
  TYPE_EQ(st, S_IFIFO);
  MODE_EQ(st, 0640u);
  EQ(st.st_size, 0);
  ERR(mkfifo("p", 0644), EEXIST);
  ERR(open("p", O_WRONLY | O_NONBLOCK), ENXIO);  // no reader
  {
    Fd r(OK(open("p", O_RDONLY | O_NONBLOCK)));
    Fd w(OK(open("p", O_WRONLY | O_NONBLOCK)));
    EQ(write(w, "through", 7), 7);
    char buf[16];
    EQ(read(r, buf, sizeof buf), 7);
    EQ(std::string(buf, 7), "through");
    ERR(lseek(r, 0, SEEK_SET), ESPIPE);
    ERR(fsync(r), EINVAL);  // Linux: a pipe has nothing to sync
  }
  EQ(Lstat("p").st_size, 0);
  OK(mknod("q", S_IFIFO | 0600, 0));
  TYPE_EQ(Lstat("q"), S_IFIFO);
  OK(mknod("r", S_IFREG | 0600, 0));  // mknod also makes regular files
  TYPE_EQ(Lstat("r"), S_IFREG);
  OK(mknod("sock", S_IFSOCK | 0600, 0));
  TYPE_EQ(Lstat("sock"), S_IFSOCK);
  ERR(mknod("dir", S_IFDIR | 0755, 0), EPERM);  // Linux: directories only through mkdir
  OK(rename("p", "p2"));
  TYPE_EQ(Lstat("p2"), S_IFIFO);
  OK(unlink("p2"));
  EQ(Names("."), (std::set<std::string>{"q", "r", "sock"}));
}

ROOT_CASE(MknodDevices, "mknod.devices") {
  OK(mknod("c", S_IFCHR | 0600, makedev(1, 3)));
  struct stat st = Lstat("c");
  TYPE_EQ(st, S_IFCHR);
  EQ(major(st.st_rdev), 1u);
  EQ(minor(st.st_rdev), 3u);
  OK(mknod("b", S_IFBLK | 0600, makedev(7, 200)));
  st = Lstat("b");
  TYPE_EQ(st, S_IFBLK);
  EQ(major(st.st_rdev), 7u);
  EQ(minor(st.st_rdev), 200u);
  // Without CAP_MKNOD: EPERM (in a directory it may write to; else EACCES comes first).
  OK(mkdir("w", 0777));
  As(kUser, kGroup, {}, [] {
    ERR(mknod("w/x", S_IFCHR | 0600, makedev(1, 3)), EPERM);
    OK(mknod("w/fifo", S_IFIFO | 0600, 0));
  });
}

// ---- statfs

CASE(Statfs, "statfs.sane") {
  struct statvfs v {};
  OK(statvfs(".", &v));
  CHECK(v.f_bsize > 0);
  CHECK(v.f_frsize > 0);
  CHECK(v.f_blocks > 0);
  CHECK(v.f_bfree <= v.f_blocks);
  CHECK(v.f_bavail <= v.f_bfree);
  CHECK(v.f_ffree <= v.f_files);
  CHECK(v.f_namemax >= 255);
  struct statfs s {};
  Put("f", "x");
  Fd fd(OK(open("f", O_RDONLY)));
  OK(fstatfs(fd, &s));
  struct statfs s2 {};
  OK(statfs(".", &s2));
  EQ(s.f_type, s2.f_type);
  EQ(s.f_bsize, s2.f_bsize);
  EQ(s.f_blocks, s2.f_blocks);
  g_ctx->Note("f_type 0x" +
              [&] {
                char b[16];
                snprintf(b, sizeof b, "%lx", static_cast<unsigned long>(s.f_type));
                return std::string(b);
              }() +
              ", " + std::to_string(v.f_blocks * v.f_frsize >> 20) + " MiB, " +
              std::to_string(v.f_bavail * v.f_frsize >> 20) + " MiB available");
}

// ---- readdir

CASE(ReaddirTypes, "readdir.types") {
  EQ(Names(".").size(), 0u);
  struct stat dot = Lstat(".");
  EQ(dot.st_nlink, 2);
  Put("file", "");
  OK(mkdir("dir", 0755));
  OK(symlink("file", "link"));
  OK(mkfifo("fifo", 0644));
  OK(link("file", "hard"));
  std::map<std::string, unsigned char> want = {
      {"file", DT_REG}, {"dir", DT_DIR}, {"link", DT_LNK}, {"fifo", DT_FIFO}, {"hard", DT_REG}};
  auto entries = ReadDir(".");
  EQ(entries.size(), want.size());
  for (const auto& e : entries) {
    auto it = want.find(e.name);
    CHECK(it != want.end());
    if (it == want.end()) continue;
    g_ctx->True(e.type == it->second, ("d_type of " + e.name).c_str(), __LINE__);
    g_ctx->True(e.ino == Lstat(e.name.c_str()).st_ino,
                ("d_ino of " + e.name + " == st_ino").c_str(), __LINE__);
  }
  // "." and ".." are listed, with the right inodes.
  DIR* d = opendir(".");
  CHECK(d != nullptr);
  if (d) {
    std::map<std::string, ino_t> dots;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") dots[n] = e->d_ino;
    }
    closedir(d);
    EQ(dots.size(), 2u);
    EQ(dots["."], dot.st_ino);
  }
}

CASE(ReaddirMany, "readdir.many") {
  constexpr int kFiles = 1500;
  std::set<std::string> want;
  char name[64];
  for (int i = 0; i < kFiles; i++) {
    snprintf(name, sizeof name, "file-%05d-%s", i, i % 3 ? "x" : "a-longer-name-for-variety");
    Fd fd(OK(open(name, O_CREAT | O_EXCL | O_WRONLY, 0644)));
    want.insert(name);
  }
  for (int i = 0; i < 20; i++) {
    snprintf(name, sizeof name, "dir-%02d", i);
    OK(mkdir(name, 0755));
    want.insert(name);
  }
  auto entries = ReadDir(".");
  EQ(entries.size(), want.size());  // no entry twice
  std::set<std::string> got;
  for (auto& e : entries)
    got.insert(e.name);
  EQ(got, want);
  EQ(Lstat(".").st_nlink, 22);
  // Remove every other file; the listing follows.
  for (int i = 0; i < kFiles; i += 2) {
    snprintf(name, sizeof name, "file-%05d-%s", i, i % 3 ? "x" : "a-longer-name-for-variety");
    OK(unlink(name));
    want.erase(name);
  }
  EQ(Names("."), want);
}

CASE(ReaddirWhileUnlinking, "readdir.unlink_during") {
  // POSIX: an entry neither removed nor added since opendir is returned exactly once.
  constexpr int kFiles = 600;
  char name[64];
  for (int i = 0; i < kFiles; i++) {
    snprintf(name, sizeof name, "f%04d", i);
    Put(name, "");
  }
  DIR* d = opendir(".");
  CHECK(d != nullptr);
  if (!d) return;
  std::map<std::string, int> seen;
  int read_count = 0;
  bool removed = false;
  errno = 0;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") {
      seen[n]++;
      if (++read_count == 100 && !removed) {
        for (int i = 1; i < kFiles; i += 2) {
          snprintf(name, sizeof name, "f%04d", i);
          OK(unlink(name));
        }
        removed = true;
      }
    }
    errno = 0;
  }
  int end_errno = errno;  // readdir() returns NULL at the end and on an error
  g_ctx->Eq(ErrName(end_errno), std::string("OK"), "errno when readdir() returned NULL", "OK",
            __LINE__);
  int dups = 0, missing = 0;
  for (int i = 0; i < kFiles; i += 2) {
    snprintf(name, sizeof name, "f%04d", i);
    if (seen[name] == 0) missing++;
  }
  for (auto& [n, count] : seen)
    dups += count > 1;
  EQ(missing, 0);
  EQ(dups, 0);
  rewinddir(d);  // after a rewind the listing is current
  std::set<std::string> after;
  errno = 0;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") after.insert(n);
    errno = 0;
  }
  end_errno = errno;
  closedir(d);
  g_ctx->Eq(ErrName(end_errno), std::string("OK"), "errno at the end after rewinddir()", "OK",
            __LINE__);
  EQ(after.size(), static_cast<size_t>(kFiles / 2));
}

// ---- data

CASE(IoLarge, "io.large_write") {
  constexpr size_t kSize = 4 << 20;
  const std::string data = Pattern(kSize, 42);
  Fd fd(OK(open("big", O_CREAT | O_RDWR, 0644)));
  EQ(write(fd, data.data(), data.size()), kSize);  // one 4 MiB write, not short
  EQ(Fstat(fd).st_size, kSize);
  OK(fsync(fd));
  fd.Close();
  Fd r(OK(open("big", O_RDONLY)));
  std::string back(kSize, '\0');
  EQ(read(r, back.data(), back.size()), kSize);
  CHECK(back == data);
  char buf[64];
  const size_t offsets[] = {0, 4095, 4096, 131071, (1 << 20) - 3, kSize - 10};
  for (size_t off : offsets) {
    long n = OK(pread(r, buf, 10, static_cast<off_t>(off)));
    EQ(std::string(buf, static_cast<size_t>(n)), data.substr(off, 10));
  }
  EQ(pread(r, buf, sizeof buf, static_cast<off_t>(kSize)), 0);        // at EOF
  EQ(pread(r, buf, sizeof buf, static_cast<off_t>(kSize) + 100), 0);  // past EOF
  EQ(pread(r, buf, sizeof buf, static_cast<off_t>(kSize) - 5), 5);    // short at the end
  // Overwrite a range that crosses block boundaries.
  Fd w(OK(open("big", O_WRONLY)));
  const std::string patch = Pattern(10000, 9);
  EQ(pwrite(w, patch.data(), patch.size(), 12345), patch.size());
  w.Close();
  std::string want = data;
  want.replace(12345, patch.size(), patch);
  CHECK(Get("big") == want);
}

CASE(IoSparse, "io.sparse") {
  Fd fd(OK(open("s", O_CREAT | O_RDWR, 0644)));
  EQ(pwrite(fd, "end", 3, 8 << 20), 3);
  struct stat st = Fstat(fd);
  EQ(st.st_size, (8 << 20) + 3);
  CHECK(st.st_blocks * 512 < (1 << 20));  // the hole takes no space
  char buf[4096];
  EQ(pread(fd, buf, sizeof buf, 4 << 20), 4096);
  CHECK(std::all_of(buf, buf + sizeof buf, [](char c) { return c == 0; }));
  EQ(pread(fd, buf, 3, 8 << 20), 3);
  EQ(std::string(buf, 3), "end");
}

CASE(Fallocate, "fallocate.modes") {
  Fd fd(OK(open("f", O_CREAT | O_RDWR, 0644)));
  Sys s = SYS(fallocate(fd, 0, 0, 1 << 20));
  if (s.rc == -1 && (s.err == EOPNOTSUPP || s.err == ENOSYS)) {
    g_ctx->Skip("fallocate(mode 0) -> " + ErrName(s.err) + ": the file system does not support it");
  }
  g_ctx->Ok(s, "fallocate(fd, 0, 0, 1 MiB)", __LINE__);
  struct stat st = Fstat(fd);
  EQ(st.st_size, 1 << 20);
  CHECK(st.st_blocks * 512 >= (1 << 20));
  EQ(Get("f"), std::string(1 << 20, '\0'));
  // KEEP_SIZE past the end: blocks but no size.
  s = SYS(fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20));
  if (s.rc == -1 && s.err == EOPNOTSUPP) {
    g_ctx->Note("FALLOC_FL_KEEP_SIZE -> EOPNOTSUPP: skipped");
  } else {
    g_ctx->Ok(s, "fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 MiB, 1 MiB)", __LINE__);
    EQ(Fstat(fd).st_size, 1 << 20);
    CHECK(Fstat(fd).st_blocks * 512 >= (2 << 20));
  }
  // PUNCH_HOLE zeroes a range of written data; the size stays.
  const std::string data = Pattern(1 << 20, 3);
  EQ(pwrite(fd, data.data(), data.size(), 0), data.size());
  s = SYS(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8192, 65536));
  if (s.rc == -1 && s.err == EOPNOTSUPP) {
    g_ctx->Note("FALLOC_FL_PUNCH_HOLE -> EOPNOTSUPP: skipped");
  } else {
    g_ctx->Ok(s, "fallocate(fd, PUNCH_HOLE|KEEP_SIZE, 8192, 65536)", __LINE__);
    std::string want = data;
    want.replace(8192, 65536, std::string(65536, '\0'));
    EQ(Fstat(fd).st_size, 1 << 20);
    CHECK(Get("f") == want);
  }
  ERR(fallocate(fd, 0, 0, 0), EINVAL);
  ERR(fallocate(fd, 0, -1, 10), EINVAL);
  ERR(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 10), EOPNOTSUPP);  // punch needs KEEP_SIZE
  Fd r(OK(open("f", O_RDONLY)));
  ERR(fallocate(r, 0, 0, 10), EBADF);
}

CASE(Fsync, "fsync.basic") {
  Fd fd(OK(open("f", O_CREAT | O_WRONLY, 0644)));
  EQ(write(fd, "durable", 7), 7);
  OK(fsync(fd));
  OK(fdatasync(fd));
  Fd r(OK(open("f", O_RDONLY)));
  OK(fsync(r));  // allowed on a read-only descriptor
  EQ(ReadAll(r), "durable");
  OK(mkdir("d", 0755));
  Fd d(OK(open("d", O_RDONLY | O_DIRECTORY)));
  OK(fsync(d));
  OK(syncfs(fd));
  OK(sync_file_range(
      fd, 0, 7, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER));
}

// --- the runner ------------------------------------------------------------------------------

void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) fprintf(stderr, "note: could not remove %s: %s\n", path.c_str(), ec.message().c_str());
}

int Usage() {
  fprintf(stderr,
          "usage: drfs_posix_suite DIR [--filter SUBSTRING] [--list] [--quiet] [--keep]\n"
          "                        [--allow-no-exchange]\n"
          "  runs POSIX behaviour checks in a fresh subdirectory of DIR (run as root for the\n"
          "  permission cases); exit 0 when nothing failed, 1 when a case failed\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--filter" && i + 1 < argc) {
      g_opt.filter = argv[++i];
    } else if (a == "--list") {
      g_opt.list = true;
    } else if (a == "--quiet" || a == "-q") {
      g_opt.quiet = true;
    } else if (a == "--keep") {
      g_opt.keep = true;
    } else if (a == "--allow-no-exchange") {
      g_opt.allow_no_exchange = true;
    } else if (a == "-h" || a == "--help") {
      Usage();
      return 0;
    } else if (!a.empty() && a[0] != '-' && g_opt.dir.empty()) {
      g_opt.dir = a;
    } else {
      fprintf(stderr, "drfs_posix_suite: unknown argument '%s'\n", a.c_str());
      return Usage();
    }
  }
  std::vector<const Case*> selected;
  for (const Case& c : Registry()) {
    if (std::string_view(c.name).find(g_opt.filter) != std::string_view::npos) {
      selected.push_back(&c);
    }
  }
  if (g_opt.list) {
    for (const Case* c : selected)
      printf("%s%s\n", c->name, c->needs_root ? "  (root)" : "");
    return 0;
  }
  if (g_opt.dir.empty()) return Usage();
  if (selected.empty()) {
    fprintf(stderr, "drfs_posix_suite: no case matches '%s' (see --list)\n", g_opt.filter.c_str());
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  umask(0);
  std::string work = g_opt.dir + "/posix-suite." + std::to_string(getpid());
  if (mkdir(work.c_str(), 0755) != 0) {
    fprintf(stderr, "drfs_posix_suite: cannot create %s: %s; is DIR a writable directory?\n",
            work.c_str(), strerror(errno));
    return 2;
  }
  // A setgid or default-ACL parent must not leak into the cases: own the work dir outright.
  if (IsRoot() && (chown(work.c_str(), 0, 0) != 0 || chmod(work.c_str(), 0755) != 0)) {
    fprintf(stderr, "drfs_posix_suite: cannot chown/chmod %s: %s\n", work.c_str(), strerror(errno));
    return 2;
  }
  struct statfs sf {};
  statfs(work.c_str(), &sf);
  printf("drfs_posix_suite: %s (f_type 0x%lx), uid %u, %zu cases%s\n", work.c_str(),
         static_cast<unsigned long>(sf.f_type), geteuid(), selected.size(),
         IsRoot() ? "" : " (not root: permission and ownership cases are skipped)");

  int passed = 0, failed = 0, skipped = 0, checks = 0;
  std::vector<std::string> failed_names;
  auto start = std::chrono::steady_clock::now();
  for (const Case* c : selected) {
    std::string dir = work + "/" + c->name;
    Ctx ctx;
    g_ctx = &ctx;
    std::string skip;
    bool aborted = false;
    auto t0 = std::chrono::steady_clock::now();
    if (c->needs_root && !IsRoot()) {
      skip = "needs root (it changes owners or runs as other users)";
    } else if (mkdir(dir.c_str(), 0755) != 0 || chdir(dir.c_str()) != 0) {
      ctx.Fail("cannot create or enter " + dir + ": " + ErrName(errno));
    } else {
      try {
        c->fn();
      } catch (const CaseAborted&) {
        aborted = true;
      } catch (const CaseSkipped& s) {
        skip = s.why;
      }
      umask(0);
      if (chdir(work.c_str()) != 0) {
        fprintf(stderr, "drfs_posix_suite: cannot return to %s: %s\n", work.c_str(),
                strerror(errno));
        return 2;
      }
      if (!g_opt.keep) RemoveTree(dir);
    }
    g_ctx = nullptr;
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const char* verdict = ctx.fails() > 0 ? "FAIL" : !skip.empty() ? "SKIP" : "PASS";
    if (ctx.fails() > 0) {
      failed++;
      failed_names.push_back(c->name);
    } else if (!skip.empty()) {
      skipped++;
    } else {
      passed++;
    }
    checks += ctx.checks();
    printf("%s  %-26s %3d checks, %d failed%s  (%.0f ms)%s%s\n", verdict, c->name, ctx.checks(),
           ctx.fails(), aborted ? ", stopped at the first failed step" : "", ms,
           skip.empty() ? "" : "  skipped: ", skip.c_str());
    // Passing checks repeated from one source line (a loop) print once, with a count.
    const auto& lines = ctx.lines();
    for (size_t i = 0; i < lines.size(); i++) {
      const auto& l = lines[i];
      size_t same = 0;
      while (l.ok && l.src != 0 && i + same + 1 < lines.size() && lines[i + same + 1].ok &&
             lines[i + same + 1].src == l.src) {
        same++;
      }
      if (!(g_opt.quiet && l.ok)) {
        printf("      %s  %s", l.ok ? "ok  " : "FAIL", l.text.c_str());
        if (same > 0) printf("  (and %zu more passes of this check)", same);
        printf("\n");
      }
      i += same;
    }
    fflush(stdout);
  }
  if (!g_opt.keep) RemoveTree(work);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  printf("\nsummary: %d passed, %d failed, %d skipped (%d checks) in %.1f s\n", passed, failed,
         skipped, checks, secs);
  for (const auto& n : failed_names)
    printf("failed: %s\n", n.c_str());
  return failed > 0 ? 1 : 0;
}
