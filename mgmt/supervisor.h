// Supervisor: starts, watches, restarts and stops the processes of one node (its bricks), as
// glusterd does for glusterfsd.
//
// Each process lives under a key ("pvol:0") and is a separate program in its own session
// (setsid), so a signal to drfsd's process group or terminal does not reach it, and it outlives
// drfsd: the destructor stops watching but kills nothing. A restarted drfsd hands the pid and
// /proc start time it persisted to Adopt(), which watches the process again; the start time
// guards against a pid the kernel has since given to another process.
//
// A process that exits without Stop() is restarted after a backoff that doubles from
// backoff_initial up to backoff_max and resets once a run lasts stable_after. After
// max_fast_failures runs in a row that each died within stable_after of starting, it is marked
// kFailed, with the reason and the last line it logged, and left alone until Restart().
//
// Threads: one monitor thread, owned and joined by the Supervisor, waits on a pidfd per process
// and runs the backoff timers and restarts. Every public method is thread-safe. The status
// callback runs on the monitor thread only, never with the Supervisor's lock held, one call at
// a time and in the order the changes happened; it may call Get() and List(), and must not call
// Stop() (which waits for the monitor thread) or destroy the Supervisor. The callback must stay
// callable until the destructor returns: changes still queued are delivered during destruction.
//
// drfsd must not reap children itself (no waitpid(-1), no SIGCHLD set to SIG_IGN): the
// Supervisor reaps its own children, by pidfd.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace drfs::mgmt {

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is the executable's path (no PATH search)
  // The child's stdout and stderr are appended here (created 0644; its directory must exist).
  // Empty: /dev/null.
  std::string log_file;
};

// Called before every start and restart, without the Supervisor's lock, so the caller can pick
// a fresh port each time. An error counts as a failed start (backoff, then kFailed). Restarts
// call it on the monitor thread, so it must be quick; it may call Get() and List().
using SpecMaker = std::function<Result<ProcessSpec>()>;

enum class ProcState {
  kRunning,
  kBackoff,  // exited unexpectedly; restarts when the backoff ends
  kFailed,   // died too often too fast; waits for Restart()
  kStopped,
};
// "running", "restarting", "failed", "stopped".
const char* ProcStateName(ProcState state);

struct ProcStatus {
  ProcState state = ProcState::kStopped;
  pid_t pid = 0;             // 0 when not running
  uint64_t start_ticks = 0;  // /proc/PID/stat starttime of pid; 0 when not running
  // Restarts after unexpected exits since Start()/Adopt(), plus their initial_restarts.
  int restarts = 0;
  int64_t started_at_ms = 0;  // wall clock (ms since the epoch) the current run started
  // How the last run ended: "exited with status 1", "killed by signal 9", "failed to start:
  // ...", "exited (not our child; status unknown)"; "" before the first exit.
  std::string last_exit;
  // kFailed only: why, ending with the last line the process logged in its last run.
  std::string failure_reason;
};

struct SupervisorOptions {
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30000};
  // After this many runs in a row that each lasted less than stable_after, the process is
  // marked kFailed and not restarted any more.
  int max_fast_failures = 5;
  std::chrono::milliseconds stable_after{10000};
  // Stop(): SIGTERM, then SIGKILL once this has passed.
  std::chrono::milliseconds stop_timeout{10000};
};

// Called on the monitor thread whenever a process's status changes: started, exited (and
// restarting), failed, stopped. drfsd persists pid, start_ticks and restarts from it.
using StatusCallback = std::function<void(const std::string& key, const ProcStatus& status)>;

class Supervisor {
 public:
  Supervisor(SupervisorOptions options, StatusCallback callback);
  // Stops watching and joins the monitor thread; does not kill the processes.
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Starts a process under `key` and supervises it. AlreadyExists if `key` is running or
  // waiting to restart; a stopped or failed key is replaced. Returns make_spec's error, or the
  // fork/exec error (the child is reaped), without supervising anything.
  Status Start(const std::string& key, SpecMaker make_spec, int initial_restarts = 0);
  // Watches a process left by a previous drfsd, if `pid` is alive and its start time is
  // `start_ticks`; it is restarted through make_spec when it exits. Otherwise (it has exited,
  // or its pid now belongs to another process) starts a fresh one, as Start() does.
  // *adopted says which happened.
  Status Adopt(const std::string& key, pid_t pid, uint64_t start_ticks, SpecMaker make_spec,
               int initial_restarts, bool* adopted);
  // SIGTERM, SIGKILL after stop_timeout, waits for the exit; no restart. A pending restart is
  // cancelled. OK if already stopped or failed (which become stopped); NotFound if unknown.
  Status Stop(const std::string& key);
  // Drops `key` without signalling its process (a child of ours is still reaped when it exits).
  void Forget(const std::string& key);
  // Starts a failed or stopped process again with its last make_spec and restart count, and
  // forgets past fast failures (the operator's "volume start force"). A process waiting to
  // restart restarts now; a running one is left alone.
  Status Restart(const std::string& key);

  std::optional<ProcStatus> Get(const std::string& key) const;
  std::map<std::string, ProcStatus> List() const;

 private:
  struct Entry;
  struct Run;
  struct Event {
    std::string key;
    ProcStatus status;
  };

  static Result<Run> Spawn(const std::string& key, const ProcessSpec& spec);
  void MonitorLoop();
  // The monitor thread's handlers.
  void HandleExit(const std::shared_ptr<Entry>& e, int pidfd);
  void RestartDue();
  void ReapOrphan(int pidfd);

  // Helpers called with mu_ held.
  bool IsCurrentLocked(const std::shared_ptr<Entry>& e) const;
  void InstallRunLocked(Entry& e, Run run);
  // `how` is the exit ("exited with status 1"), or the error if the run could not start.
  void RunEndedLocked(Entry& e, std::string how, uint64_t run_ns, const std::string& log_line,
                      bool start_failed);
  void PublishLocked(const Entry& e);
  void WakeLocked();

  const SupervisorOptions opts_;
  const StatusCallback callback_;
  int wake_fd_ = -1;  // eventfd: new process, new timer, shutdown

  mutable std::mutex mu_;
  std::condition_variable changed_;  // any state change (Stop() waits on it)
  std::map<std::string, std::shared_ptr<Entry>> entries_;
  std::set<std::string> starting_;  // keys whose Start() is forking without the lock
  std::deque<Event> events_;        // for the callback, in order
  std::vector<int> orphans_;        // pidfds of forgotten children, to reap
  std::vector<int> to_close_;       // pidfds to close between two polls
  bool closing_ = false;

  std::thread monitor_;
};

// /proc/PID/stat starttime (clock ticks since boot); 0 if the process does not exist.
uint64_t ProcessStartTicks(pid_t pid);

}  // namespace drfs::mgmt
