#include "mgmt/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "common/log.h"
#include "common/time.h"

namespace drfs::mgmt {
namespace {

// Where the child failed, sent back over the CLOEXEC pipe with its errno.
constexpr int kStageSetsid = 1;
constexpr int kStageRedirect = 2;
constexpr int kStageExec = 3;
// How much of the end of a log the failure reason looks at for the last line.
constexpr off_t kLogTailBytes = 64 * 1024;
constexpr size_t kMaxLogLine = 500;
// Stop(): how long to wait for the exit once SIGKILL was sent, before giving up.
constexpr std::chrono::milliseconds kKillWait{10000};

// Set on the monitor thread, so Stop() can refuse to be called from the status callback.
thread_local const void* tls_monitor_of = nullptr;

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int PidfdSendSignal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

void CloseFd(int fd) {
  if (fd >= 0) ::close(fd);
}

// Owns one file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { CloseFd(fd_); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    CloseFd(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Moves `fd` above 2, so the child's dup2() onto 0-2 never overwrites a descriptor it still
// needs (drfsd may run with stdin/stdout/stderr closed). Keeps O_CLOEXEC.
int AboveStdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int saved = errno;
  ::close(fd);
  errno = saved;
  return moved;
}

int64_t WallMs() { return static_cast<int64_t>(NowNs() / 1000000); }

std::string FormatDuration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// "exited with status 1", "killed by signal 9".
std::string DescribeExit(const siginfo_t& info) {
  switch (info.si_code) {
    case CLD_EXITED:
      return "exited with status " + std::to_string(info.si_status);
    case CLD_KILLED:
      return "killed by signal " + std::to_string(info.si_status);
    case CLD_DUMPED:
      return "killed by signal " + std::to_string(info.si_status) + " (core dumped)";
    default:
      return "exited (code " + std::to_string(info.si_code) + ")";
  }
}

// The last non-empty line written to `path` at or after `offset`; "" if none.
std::string LastLogLine(const std::string& path, off_t offset) {
  if (path.empty()) return "";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st;
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0 || st.st_size <= offset) return "";
  off_t from = std::max(offset, st.st_size - kLogTailBytes);
  std::string tail(static_cast<size_t>(st.st_size - from), '\0');
  ssize_t n = ::pread(fd.get(), tail.data(), tail.size(), from);
  if (n <= 0) return "";
  tail.resize(static_cast<size_t>(n));
  auto is_space = [](char c) { return c == '\n' || c == '\r' || c == ' ' || c == '\t'; };
  size_t end = tail.size();
  while (end > 0 && is_space(tail[end - 1])) --end;
  if (end == 0) return "";
  size_t begin = tail.rfind('\n', end - 1);
  begin = begin == std::string::npos ? 0 : begin + 1;
  std::string line = tail.substr(begin, end - begin);
  if (line.size() > kMaxLogLine) line = line.substr(0, kMaxLogLine) + "...";
  return line;
}

// Boot time in ms since the epoch, to turn a /proc start time into a wall clock time.
int64_t BootTimeMs() {
  std::ifstream in("/proc/stat");
  std::string word;
  while (in >> word) {
    if (word == "btime") {
      int64_t secs = 0;
      in >> secs;
      return secs * 1000;
    }
  }
  return 0;
}

int64_t StartTicksToWallMs(uint64_t ticks) {
  long hz = ::sysconf(_SC_CLK_TCK);
  int64_t boot = BootTimeMs();
  if (hz <= 0 || boot == 0) return 0;
  return boot + static_cast<int64_t>(ticks * 1000 / static_cast<uint64_t>(hz));
}

// Closes every descriptor from 3 up except `keep`. Async-signal-safe.
void CloseFdsExcept(int keep, int max_fd) {
  auto close_range = [max_fd](unsigned first, unsigned last) {
    if (first > last) return;
    if (::syscall(SYS_close_range, first, last, 0) == 0) return;
    unsigned top = std::min(last, static_cast<unsigned>(max_fd));
    for (unsigned fd = first; fd <= top; ++fd) ::close(static_cast<int>(fd));
  };
  close_range(3, static_cast<unsigned>(keep) - 1);
  close_range(static_cast<unsigned>(keep) + 1, ~0U);
}

// The child between fork and exec: async-signal-safe calls only, no allocation.
[[noreturn]] void ExecChild(char* const* argv, int devnull, int logfd, int errfd, int max_fd) {
  auto fail = [errfd](int stage) {
    int msg[2] = {stage, errno};
    ssize_t n = ::write(errfd, msg, sizeof msg);
    (void)n;
    ::_exit(127);
  };
  // A session of its own: a signal to drfsd's process group or terminal must not reach it.
  if (::setsid() < 0) fail(kStageSetsid);
  // Default dispositions first, then unblock (the parent blocked everything around fork), so
  // no drfsd handler runs here and ignored signals (SIGPIPE) are not ignored by the program.
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (::dup2(devnull, 0) < 0 || ::dup2(logfd, 1) < 0 || ::dup2(logfd, 2) < 0) {
    fail(kStageRedirect);
  }
  CloseFdsExcept(errfd, max_fd);
  ::execv(argv[0], argv);
  fail(kStageExec);
  ::_exit(127);  // not reached
}

int WaitPidNoIntr(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

}  // namespace

const char* ProcStateName(ProcState state) {
  switch (state) {
    case ProcState::kRunning:
      return "running";
    case ProcState::kBackoff:
      return "restarting";
    case ProcState::kFailed:
      return "failed";
    case ProcState::kStopped:
      return "stopped";
  }
  return "unknown";
}

uint64_t ProcessStartTicks(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so count fields from
  // the last ')'. The field after it is field 3; starttime is field 22.
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(fields >> field)) return 0;
  }
  try {
    return std::stoull(field);
  } catch (...) {
    return 0;
  }
}

// One run of a process, as Spawn() or Adopt() found it.
struct Supervisor::Run {
  pid_t pid = 0;
  int pidfd = -1;
  bool child = false;  // ours to reap
  uint64_t start_ticks = 0;
  int64_t started_at_ms = 0;
  uint64_t started_mono_ns = 0;
  std::string log_file;
  off_t log_offset = 0;  // size of log_file when the run started
};

struct Supervisor::Entry {
  std::string key;
  SpecMaker make_spec;
  ProcStatus status;
  int pidfd = -1;  // while a run is being watched
  bool child = false;
  bool stopping = false;  // Stop() asked: report the exit as kStopped, do not restart
  bool spawning = false;  // the monitor is restarting it without the lock
  std::string log_file;
  off_t log_offset = 0;
  uint64_t run_started_mono_ns = 0;
  uint64_t restart_at_mono_ns = 0;  // kBackoff
  std::chrono::milliseconds backoff{0};
  int fast_failures = 0;  // runs in a row shorter than stable_after
};

Result<Supervisor::Run> Supervisor::Spawn(const std::string& key, const ProcessSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return InvalidArgument("process " + key + " has an empty command line");
  }
  const std::string what = "start " + key + " (" + spec.argv[0] + ")";
  // Everything the child needs is made here: between fork and exec it may not allocate.
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  UniqueFd devnull(AboveStdio(::open("/dev/null", O_RDWR | O_CLOEXEC)));
  if (devnull.get() < 0) return ErrnoStatus(errno, what + ": open /dev/null");
  UniqueFd log;
  if (spec.log_file.empty()) {
    log.reset(AboveStdio(::fcntl(devnull.get(), F_DUPFD_CLOEXEC, 3)));
  } else {
    log.reset(AboveStdio(
        ::open(spec.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)));
  }
  if (log.get() < 0) return ErrnoStatus(errno, what + ": open log file " + spec.log_file);
  struct stat st;
  if (::fstat(log.get(), &st) != 0) return ErrnoStatus(errno, what + ": stat " + spec.log_file);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, what + ": pipe");
  UniqueFd err_read(AboveStdio(pipe_fds[0]));
  UniqueFd err_write(AboveStdio(pipe_fds[1]));
  if (err_read.get() < 0 || err_write.get() < 0) return ErrnoStatus(errno, what + ": pipe");
  long open_max = ::sysconf(_SC_OPEN_MAX);
  int max_fd = open_max > 0 && open_max < (1 << 20) ? static_cast<int>(open_max) : (1 << 16);

  Run run;
  run.log_file = spec.log_file;
  run.log_offset = st.st_size;
  run.child = true;
  // Block every signal across fork, so none reaches a drfsd handler in the child before the
  // child has reset them.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = ::fork();
  if (pid == 0) ExecChild(argv.data(), devnull.get(), log.get(), err_write.get(), max_fd);
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return ErrnoStatus(fork_errno, what + ": fork");
  err_write.reset();

  // The pipe closes on a successful exec; a failing child writes {stage, errno} first.
  int msg[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(err_read.get(), msg, sizeof msg);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof msg)) {
    WaitPidNoIntr(pid);
    std::string stage = msg[0] == kStageSetsid     ? "setsid"
                        : msg[0] == kStageRedirect ? "redirect output to " + spec.log_file
                                                   : "exec";
    return ErrnoStatus(msg[1], what + ": " + stage);
  }
  run.pid = pid;
  run.pidfd = PidfdOpen(pid);
  if (run.pidfd < 0) {
    int e = errno;
    ::kill(pid, SIGKILL);
    WaitPidNoIntr(pid);
    return ErrnoStatus(e, what + ": pidfd_open");
  }
  run.start_ticks = ProcessStartTicks(pid);
  run.started_at_ms = WallMs();
  run.started_mono_ns = MonotonicNs();
  return run;
}

Supervisor::Supervisor(SupervisorOptions options, StatusCallback callback)
    : opts_(options), callback_(std::move(callback)) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    // Without it the monitor cannot be woken or stopped; nothing sensible can run.
    DRFS_LOG(Error) << "supervisor: eventfd: " << std::strerror(errno);
    std::abort();
  }
  monitor_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "drfs-supervise");
    tls_monitor_of = this;
    MonitorLoop();
  });
}

Supervisor::~Supervisor() {
  {
    std::lock_guard<std::mutex> l(mu_);
    closing_ = true;
    WakeLocked();
  }
  monitor_.join();
  // The processes live on; only our handles on them go.
  for (auto& [key, e] : entries_) CloseFd(e->pidfd);
  for (int fd : orphans_) {
    // Reap what has already exited; the rest stay zombies until drfsd exits.
    siginfo_t info;
    ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(fd), &info, WEXITED | WNOHANG);
    CloseFd(fd);
  }
  for (int fd : to_close_) CloseFd(fd);
  CloseFd(wake_fd_);
}

void Supervisor::WakeLocked() {
  uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof one);
  (void)n;  // EAGAIN: the counter is already non-zero, the monitor will wake anyway
}

bool Supervisor::IsCurrentLocked(const std::shared_ptr<Entry>& e) const {
  auto it = entries_.find(e->key);
  return it != entries_.end() && it->second == e;
}

void Supervisor::PublishLocked(const Entry& e) {
  events_.push_back(Event{e.key, e.status});
  changed_.notify_all();
  WakeLocked();
}

void Supervisor::InstallRunLocked(Entry& e, Run run) {
  e.pidfd = run.pidfd;
  e.child = run.child;
  e.log_file = std::move(run.log_file);
  e.log_offset = run.log_offset;
  e.run_started_mono_ns = run.started_mono_ns;
  e.status.state = ProcState::kRunning;
  e.status.pid = run.pid;
  e.status.start_ticks = run.start_ticks;
  e.status.started_at_ms = run.started_at_ms;
  e.status.failure_reason.clear();
  PublishLocked(e);
}

void Supervisor::RunEndedLocked(Entry& e, std::string how, uint64_t run_ns,
                                const std::string& log_line, bool start_failed) {
  e.status.pid = 0;
  e.status.start_ticks = 0;
  const std::string start_error = start_failed ? how : "";
  e.status.last_exit = start_failed ? "failed to start: " + how : std::move(how);
  if (e.stopping) {
    e.status.state = ProcState::kStopped;
    DRFS_LOG(Info) << "supervisor: " << e.key << " stopped (" << e.status.last_exit << ")";
    PublishLocked(e);
    return;
  }
  const uint64_t stable_ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(opts_.stable_after).count());
  if (run_ns >= stable_ns) {
    e.fast_failures = 0;
    e.backoff = opts_.backoff_initial;
  } else {
    ++e.fast_failures;
  }
  if (e.fast_failures > 0 && e.fast_failures >= opts_.max_fast_failures) {
    e.status.state = ProcState::kFailed;
    const std::string times = std::to_string(e.fast_failures) +
                              (e.fast_failures == 1 ? " time" : " times") + " in a row";
    if (start_failed) {
      e.status.failure_reason = "failed to start (" + start_error + "); " + times +
                                " it failed to start or died within " +
                                FormatDuration(opts_.stable_after) + " of starting";
    } else {
      e.status.failure_reason = e.status.last_exit + " " + times + " within " +
                                FormatDuration(opts_.stable_after) + " of starting";
      if (!log_line.empty()) e.status.failure_reason += "; last log line: " + log_line;
    }
    DRFS_LOG(Error) << "supervisor: " << e.key << " failed, not restarting it: "
                    << e.status.failure_reason;
    PublishLocked(e);
    return;
  }
  if (e.backoff.count() <= 0) e.backoff = opts_.backoff_initial;
  e.status.state = ProcState::kBackoff;
  e.restart_at_mono_ns =
      MonotonicNs() + static_cast<uint64_t>(
                          std::chrono::duration_cast<std::chrono::nanoseconds>(e.backoff).count());
  DRFS_LOG(Warn) << "supervisor: " << e.key << " " << e.status.last_exit << "; restarting in "
                 << FormatDuration(e.backoff)
                 << (log_line.empty() ? "" : " (last log line: " + log_line + ")");
  e.backoff = std::min(e.backoff * 2, opts_.backoff_max);
  PublishLocked(e);
}

Status Supervisor::Start(const std::string& key, SpecMaker make_spec, int initial_restarts) {
  if (!make_spec) return InvalidArgument("process " + key + " has no spec");
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closing_) return FailedPrecondition("supervisor is shutting down; cannot start " + key);
    if (starting_.count(key)) {
      return AlreadyExists("process " + key + " is being started");
    }
    auto it = entries_.find(key);
    if (it != entries_.end() && (it->second->status.state == ProcState::kRunning ||
                                 it->second->status.state == ProcState::kBackoff)) {
      const ProcStatus& s = it->second->status;
      return AlreadyExists("process " + key + " is already supervised (" +
                           ProcStateName(s.state) +
                           (s.pid ? ", pid " + std::to_string(s.pid) : std::string()) +
                           "); stop it first");
    }
    starting_.insert(key);
  }
  Result<ProcessSpec> spec = make_spec();
  Result<Run> run = spec.ok() ? Spawn(key, *spec) : Result<Run>(spec.status());
  std::lock_guard<std::mutex> l(mu_);
  starting_.erase(key);
  if (!run.ok()) return run.status();
  auto e = std::make_shared<Entry>();
  e->key = key;
  e->make_spec = std::move(make_spec);
  e->backoff = opts_.backoff_initial;
  e->status.restarts = initial_restarts;
  DRFS_LOG(Info) << "supervisor: started " << key << " (pid " << run->pid << ")";
  InstallRunLocked(*e, std::move(run).value());
  entries_[key] = std::move(e);
  return Status::Ok();
}

Status Supervisor::Adopt(const std::string& key, pid_t pid, uint64_t start_ticks,
                         SpecMaker make_spec, int initial_restarts, bool* adopted) {
  if (adopted) *adopted = false;
  if (!make_spec) return InvalidArgument("process " + key + " has no spec");
  if (pid > 0 && start_ticks != 0 && ProcessStartTicks(pid) == start_ticks) {
    UniqueFd pidfd(PidfdOpen(pid));
    // Checked again with the pidfd held: it pins the process we verified, not a later
    // holder of the pid.
    if (pidfd.get() >= 0 && ProcessStartTicks(pid) == start_ticks) {
      std::lock_guard<std::mutex> l(mu_);
      if (closing_) return FailedPrecondition("supervisor is shutting down; cannot adopt " + key);
      auto it = entries_.find(key);
      if (starting_.count(key) ||
          (it != entries_.end() && (it->second->status.state == ProcState::kRunning ||
                                    it->second->status.state == ProcState::kBackoff))) {
        return AlreadyExists("process " + key + " is already supervised; forget it first");
      }
      Run run;
      run.pid = pid;
      run.pidfd = pidfd.release();
      run.child = false;
      run.start_ticks = start_ticks;
      run.started_at_ms = StartTicksToWallMs(start_ticks);
      // Its age counts toward stable_after, so a long-lived brick that dies is not a fast
      // failure.
      uint64_t age_ns =
          static_cast<uint64_t>(std::max<int64_t>(0, WallMs() - run.started_at_ms)) * 1000000;
      uint64_t now = MonotonicNs();
      run.started_mono_ns = now > age_ns ? now - age_ns : 0;
      auto e = std::make_shared<Entry>();
      e->key = key;
      e->make_spec = std::move(make_spec);
      e->backoff = opts_.backoff_initial;
      e->status.restarts = initial_restarts;
      DRFS_LOG(Info) << "supervisor: adopted " << key << " (pid " << pid << ")";
      InstallRunLocked(*e, std::move(run));
      entries_[key] = std::move(e);
      if (adopted) *adopted = true;
      return Status::Ok();
    }
  }
  if (pid > 0) {
    DRFS_LOG(Info) << "supervisor: " << key << " (pid " << pid
                   << ") is gone or its pid was reused; starting it afresh";
  }
  return Start(key, std::move(make_spec), initial_restarts);
}

Status Supervisor::Stop(const std::string& key) {
  if (tls_monitor_of == this) {
    return FailedPrecondition("cannot stop " + key + " from the supervisor's status callback");
  }
  std::unique_lock<std::mutex> l(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return NotFound("no process is supervised under " + key);
  std::shared_ptr<Entry> e = it->second;
  if (!e->spawning && e->pidfd < 0) {
    // Not running: waiting to restart, failed or stopped.
    if (e->status.state != ProcState::kStopped) {
      e->status.state = ProcState::kStopped;
      DRFS_LOG(Info) << "supervisor: " << key << " stopped (was not running)";
      PublishLocked(*e);
    }
    return Status::Ok();
  }
  e->stopping = true;
  if (e->pidfd >= 0) PidfdSendSignal(e->pidfd, SIGTERM);
  auto done = [&] {
    return e->status.state == ProcState::kStopped || (e->pidfd < 0 && !e->spawning);
  };
  auto kill_at = std::chrono::steady_clock::now() + opts_.stop_timeout;
  bool killed = false;
  std::chrono::steady_clock::time_point give_up_at;
  while (!done()) {
    auto now = std::chrono::steady_clock::now();
    if (!killed && now >= kill_at && e->pidfd >= 0) {
      DRFS_LOG(Warn) << "supervisor: " << key << " (pid " << e->status.pid
                     << ") did not exit within " << FormatDuration(opts_.stop_timeout)
                     << " of SIGTERM; sending SIGKILL";
      PidfdSendSignal(e->pidfd, SIGKILL);
      killed = true;
      give_up_at = now + kKillWait;
    }
    if (killed && now >= give_up_at) {
      return DeadlineExceeded("process " + key + " (pid " + std::to_string(e->status.pid) +
                              ") has not exited " + FormatDuration(kKillWait) +
                              " after SIGKILL; it may be stuck in the kernel (check its "
                              "state in /proc)");
    }
    // A restart that lands while stopping is signalled by the monitor; wake up now and then
    // to SIGKILL it on time.
    changed_.wait_until(l, killed ? give_up_at : std::min(kill_at, now + kKillWait));
  }
  return Status::Ok();
}

void Supervisor::Forget(const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& e = *it->second;
  if (e.pidfd >= 0) {
    // Closed by the monitor between two polls, never while it may be polling it.
    (e.child ? orphans_ : to_close_).push_back(e.pidfd);
    e.pidfd = -1;
  }
  entries_.erase(it);
  changed_.notify_all();
  WakeLocked();
}

Status Supervisor::Restart(const std::string& key) {
  SpecMaker make_spec;
  int restarts = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return NotFound("no process is supervised under " + key);
    Entry& e = *it->second;
    switch (e.status.state) {
      case ProcState::kRunning:
        if (e.stopping) {
          return FailedPrecondition("process " + key + " is being stopped; retry when it is");
        }
        return Status::Ok();
      case ProcState::kBackoff:
        e.fast_failures = 0;
        e.backoff = opts_.backoff_initial;
        e.restart_at_mono_ns = 0;
        WakeLocked();
        return Status::Ok();
      case ProcState::kFailed:
      case ProcState::kStopped:
        break;
    }
    make_spec = e.make_spec;
    restarts = e.status.restarts;
  }
  return Start(key, std::move(make_spec), restarts);
}

std::optional<ProcStatus> Supervisor::Get(const std::string& key) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second->status;
}

std::map<std::string, ProcStatus> Supervisor::List() const {
  std::lock_guard<std::mutex> l(mu_);
  std::map<std::string, ProcStatus> out;
  for (const auto& [key, e] : entries_) out.emplace(key, e->status);
  return out;
}

void Supervisor::MonitorLoop() {
  std::vector<pollfd> fds;
  std::vector<std::shared_ptr<Entry>> watched;  // fds[i + 1] is watched[i]'s pidfd
  size_t orphans_at = 0;
  for (;;) {
    std::deque<Event> events;
    bool closing;
    int timeout_ms = -1;
    {
      std::lock_guard<std::mutex> l(mu_);
      for (int fd : to_close_) CloseFd(fd);
      to_close_.clear();
      events.swap(events_);
      closing = closing_;
      fds.assign(1, pollfd{wake_fd_, POLLIN, 0});
      watched.clear();
      uint64_t now = MonotonicNs();
      for (const auto& [key, e] : entries_) {
        if (e->pidfd >= 0) {
          fds.push_back(pollfd{e->pidfd, POLLIN, 0});
          watched.push_back(e);
        }
        if (e->status.state == ProcState::kBackoff && !e->spawning) {
          uint64_t wait_ns = e->restart_at_mono_ns > now ? e->restart_at_mono_ns - now : 0;
          int ms = static_cast<int>(std::min<uint64_t>((wait_ns + 999999) / 1000000, 60000));
          timeout_ms = timeout_ms < 0 ? ms : std::min(timeout_ms, ms);
        }
      }
      orphans_at = fds.size();
      for (int fd : orphans_) fds.push_back(pollfd{fd, POLLIN, 0});
    }
    for (const Event& ev : events) {
      if (callback_) callback_(ev.key, ev.status);
    }
    if (closing) return;
    if (!events.empty()) continue;  // the callback may have changed things; look again

    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) {
      DRFS_LOG(Error) << "supervisor: poll: " << std::strerror(errno);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (n > 0) {
      if (fds[0].revents) {
        uint64_t count;
        ssize_t r = ::read(wake_fd_, &count, sizeof count);
        (void)r;
      }
      for (size_t i = 1; i < orphans_at; ++i) {
        if (fds[i].revents) HandleExit(watched[i - 1], fds[i].fd);
      }
      for (size_t i = orphans_at; i < fds.size(); ++i) {
        if (fds[i].revents) ReapOrphan(fds[i].fd);
      }
    }
    RestartDue();
  }
}

void Supervisor::HandleExit(const std::shared_ptr<Entry>& e, int pidfd) {
  std::string log_file;
  off_t log_offset;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!IsCurrentLocked(e) || e->pidfd != pidfd) return;  // forgotten meanwhile
    log_file = e->log_file;
    log_offset = e->log_offset;
  }
  // The pidfd is readable: the process has exited. Only this thread closes pidfds, so it stays
  // valid while unlocked (Stop() may still signal it, harmlessly).
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  std::string how;
  int r;
  do {
    r = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info,
                 WEXITED | WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0 && info.si_pid != 0) {
    how = DescribeExit(info);
  } else if (r < 0 && errno == ECHILD) {
    how = "exited (not our child; status unknown)";
  } else if (r == 0) {
    // Readable but not yet waitable: cannot happen for an exited child; look again next poll.
    return;
  } else {
    how = std::string("exited (waitid: ") + std::strerror(errno) + ")";
  }
  std::string log_line = LastLogLine(log_file, log_offset);

  std::lock_guard<std::mutex> l(mu_);
  if (!IsCurrentLocked(e) || e->pidfd != pidfd) {
    // Forgotten while we reaped: its pidfd is queued for closing already.
    return;
  }
  CloseFd(e->pidfd);
  e->pidfd = -1;
  uint64_t now = MonotonicNs();
  uint64_t run_ns = now > e->run_started_mono_ns ? now - e->run_started_mono_ns : 0;
  RunEndedLocked(*e, std::move(how), run_ns, log_line, /*start_failed=*/false);
}

void Supervisor::ReapOrphan(int pidfd) {
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  int r = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info,
                   WEXITED | WNOHANG);
  if (r == 0 && info.si_pid == 0) return;  // not waitable yet
  std::lock_guard<std::mutex> l(mu_);
  auto it = std::find(orphans_.begin(), orphans_.end(), pidfd);
  if (it != orphans_.end()) {
    orphans_.erase(it);
    CloseFd(pidfd);
  }
}

void Supervisor::RestartDue() {
  std::vector<std::shared_ptr<Entry>> due;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closing_) return;
    uint64_t now = MonotonicNs();
    for (const auto& [key, e] : entries_) {
      if (e->status.state == ProcState::kBackoff && !e->spawning && !e->stopping &&
          e->restart_at_mono_ns <= now) {
        e->spawning = true;
        due.push_back(e);
      }
    }
  }
  for (const auto& e : due) {
    // make_spec and spec are only touched by the thread that set `spawning`.
    Result<ProcessSpec> spec = e->make_spec();
    Result<Run> run = spec.ok() ? Spawn(e->key, *spec) : Result<Run>(spec.status());
    std::lock_guard<std::mutex> l(mu_);
    e->spawning = false;
    ++e->status.restarts;
    if (!IsCurrentLocked(e)) {
      // Forgotten while starting: leave the process be, but reap it when it exits.
      if (run.ok()) orphans_.push_back(run->pidfd);
      changed_.notify_all();
      continue;
    }
    if (!run.ok()) {
      RunEndedLocked(*e, run.status().ToString(), 0, "", /*start_failed=*/true);
      continue;
    }
    DRFS_LOG(Info) << "supervisor: restarted " << e->key << " (pid " << run->pid << ", restart "
                   << e->status.restarts << ")";
    InstallRunLocked(*e, std::move(run).value());
    // Stop() came while it was starting: it waits for this run to end.
    if (e->stopping) PidfdSendSignal(e->pidfd, SIGTERM);
  }
}

}  // namespace drfs::mgmt
