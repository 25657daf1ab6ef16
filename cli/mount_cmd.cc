// drfs mount | umount: a volume as a FUSE file system (volume/fuse.h), in a process of its own
// that follows the volume's layout from drfsd.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/file.h"
#include "common/log.h"
#include "mgmt/config.h"
#include "mgmt/layout.h"
#include "mgmt/protocol.h"
#include "volume/client.h"
#include "volume/fuse.h"

namespace drfs::cli {
namespace {

constexpr char kMountUsage[] =
    "usage: drfs mount HOST[:PORT]:/VOLUME MOUNTPOINT [-o OPTION[,OPTION...]] [--foreground]\n"
    "                  [--tls-cert F --tls-key F --tls-ca F] [--timeout S]\n"
    "\n"
    "Mounts VOLUME, whose layout comes from the drfsd at HOST (port 24100 by default), on the\n"
    "existing directory MOUNTPOINT. Returns once the mount answers; the mount process then runs\n"
    "in the background (with --foreground it stays attached and logs to stderr too) and\n"
    "follows the volume's bricks as they move. SIGTERM or 'drfs umount' unmounts it.\n"
    "\n"
    "Options (-o, comma-separated; mount(8) style):\n"
    "  ro                          read-only: writes fail with EROFS\n"
    "  entry_timeout=S             seconds the kernel caches names (default 1)\n"
    "  attr_timeout=S              seconds the kernel caches attributes (default 1)\n"
    "  negative_timeout=S          seconds the kernel caches missing names (default 0)\n"
    "  log-file=F                  default /var/log/drfs/mnt-<mountpoint with / as ->.log\n"
    "  log-level=debug|info|warn|error   (default info)\n"
    "  backup-volfile-servers=H1:H2...   more drfsd hosts to ask for the layout at mount time\n"
    "  layout-interval=S           how often to re-read the layout from drfsd (default 3)\n"
    "  max-threads=N               FUSE request threads (default 16)\n"
    "  tls-cert=F,tls-key=F,tls-ca=F   as --tls-* (a certificate with role 'client')\n"
    "  write-behind-window=BYTES   writes per file answered before the bricks have them\n"
    "                              (default 4194304; 0: write(2) waits for the bricks)\n"
    "  selinux                     pass security.selinux to the bricks (default: absent, as\n"
    "                              GlusterFS's fuse client; ls -l asks for it on every entry)\n"
    "  debug                       log every FUSE request\n"
    "  nosuid nodev noexec noatime relatime ...  passed to the kernel\n"
    "  _netdev defaults auto noauto nofail user users x-* comment=...  (fstab only; ignored)\n";

constexpr char kUmountUsage[] =
    "usage: drfs umount MOUNTPOINT [--lazy] [--timeout S]\n"
    "\n"
    "Unmounts a drfs mount and waits (up to --timeout, default 30 s) for its mount process to\n"
    "finish. A mount in use is refused unless --lazy, which detaches it now; its users get\n"
    "errors once the mount process is gone.\n";

// Options of -o that only mean something to mount(8) and /etc/fstab.
bool IsFstabOnly(const std::string& key) {
  static const std::set<std::string> kKeys = {"_netdev", "defaults", "auto", "noauto", "nofail",
                                              "user", "users", "nouser", "owner", "group",
                                              "comment", "rw", "allow_other", "default_permissions",
                                              "nofail", "sloppy"};
  return kKeys.count(key) > 0 || key.rfind("x-", 0) == 0;
}

// Mount flags libfuse passes on to the kernel.
bool IsKernelFlag(const std::string& key) {
  static const std::set<std::string> kKeys = {
      "nosuid", "suid", "nodev", "dev", "noexec", "exec", "noatime", "atime", "relatime",
      "norelatime", "strictatime", "nostrictatime", "nodiratime", "diratime", "dirsync",
      "sync", "async", "lazytime", "nolazytime"};
  return kKeys.count(key) > 0;
}

// "/mnt/data" -> "mnt-data" (gluster's way of naming a mount's log after its mount point).
std::string EscapePath(const std::string& path) {
  std::string s = path.substr(std::min(path.find_first_not_of('/'), path.size()));
  while (!s.empty() && s.back() == '/') s.pop_back();
  std::replace(s.begin(), s.end(), '/', '-');
  return s.empty() ? "root" : s;
}

std::string DefaultLogFile(const std::string& mp) { return "/var/log/drfs/mnt-" + EscapePath(mp) + ".log"; }
std::string PidFile(const std::string& mp) { return "/run/drfs/mnt-" + EscapePath(mp) + ".pid"; }

// The file system type at `path` per /proc/self/mountinfo ("" when nothing is mounted there).
std::string MountedType(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, type;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, majmin, root, mp, field;
    ls >> id >> parent >> majmin >> root >> mp;
    while (ls >> field && field != "-") {
    }
    std::string fstype;
    ls >> fstype;
    if (mp == path) type = fstype;  // the last mount on a path is the visible one
  }
  return type;
}

// A path made absolute and clean without touching it (a dead FUSE mount cannot be stat'ed).
std::string LexicalAbsolute(const std::string& p) {
  std::string in = p;
  if (in.empty() || in[0] != '/') {
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof cwd)) in = std::string(cwd) + "/" + in;
  }
  std::vector<std::string> parts;
  std::stringstream ss(in);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (const auto& x : parts) out += "/" + x;
  return out.empty() ? "/" : out;
}

struct MountConfig {
  std::vector<std::string> servers;  // drfsd "host:port", the one named first
  std::string volume;
  std::string mountpoint;  // canonical
  std::string log_file;
  std::optional<LogLevel> log_level;
  TlsConfig tls;
  std::chrono::seconds layout_interval{3};
  std::chrono::seconds timeout{10};
  bool foreground = false;
  volume::FuseOptions fuse;
};

Result<double> ParseSeconds(const std::string& key, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || errno != 0 || !(d >= 0) || d > 86400) {
    return InvalidArgument("-o " + key + "=" + v + ": expected seconds, 0-86400");
  }
  return d;
}

// Applies one -o option to *c.
Status ApplyOption(const std::string& opt, const std::string& default_port, MountConfig* c) {
  const auto eq = opt.find('=');
  std::string key = opt.substr(0, eq);
  const std::string value = eq == std::string::npos ? "" : opt.substr(eq + 1);
  const bool has_value = eq != std::string::npos;
  std::replace(key.begin(), key.end(), '_', '-');
  auto need_value = [&]() -> Status {
    if (!has_value || value.empty()) return InvalidArgument("-o " + key + " needs a value (" + key + "=...)");
    return Status::Ok();
  };
  if (key == "ro") {
    c->fuse.read_only = true;
  } else if (key == "entry-timeout") {
    DRFS_ASSIGN_OR_RETURN(c->fuse.entry_timeout, ParseSeconds(opt.substr(0, eq), value));
  } else if (key == "attr-timeout" || key == "attribute-timeout") {
    DRFS_ASSIGN_OR_RETURN(c->fuse.attr_timeout, ParseSeconds(opt.substr(0, eq), value));
  } else if (key == "negative-timeout") {
    DRFS_ASSIGN_OR_RETURN(c->fuse.negative_timeout, ParseSeconds(opt.substr(0, eq), value));
  } else if (key == "log-file") {
    DRFS_RETURN_IF_ERROR(need_value());
    c->log_file = value[0] == '/' ? value : LexicalAbsolute(value);
  } else if (key == "log-level") {
    static const std::map<std::string, LogLevel> kLevels = {
        {"debug", LogLevel::kDebug}, {"info", LogLevel::kInfo}, {"warn", LogLevel::kWarn}, {"error", LogLevel::kError}};
    auto it = kLevels.find(value);
    if (it == kLevels.end()) return InvalidArgument("-o log-level must be debug, info, warn or error");
    c->log_level = it->second;
  } else if (key == "backup-volfile-servers") {
    DRFS_RETURN_IF_ERROR(need_value());
    std::stringstream ss(value);
    std::string host;
    while (std::getline(ss, host, ':')) {
      if (host.empty()) continue;
      c->servers.push_back(host + ":" + default_port);
    }
  } else if (key == "layout-interval") {
    DRFS_ASSIGN_OR_RETURN(double s, ParseSeconds(opt.substr(0, eq), value));
    if (s < 1) return InvalidArgument("-o layout-interval must be at least 1 second");
    c->layout_interval = std::chrono::seconds(static_cast<int64_t>(s));
  } else if (key == "max-threads") {
    DRFS_ASSIGN_OR_RETURN(uint64_t n, ParseUint(value, "-o max-threads"));
    if (n < 1 || n > 256) return InvalidArgument("-o max-threads must be 1-256");
    c->fuse.max_threads = static_cast<unsigned>(n);
  } else if (key == "tls-cert" || key == "tls-key" || key == "tls-ca") {
    DRFS_RETURN_IF_ERROR(need_value());
    (key == "tls-cert" ? c->tls.cert_file : key == "tls-key" ? c->tls.key_file : c->tls.ca_file) = value;
  } else if (key == "write-behind-window") {
    DRFS_ASSIGN_OR_RETURN(uint64_t n, ParseUint(value, "-o write-behind-window"));
    if (n > (256u << 20)) {
      return InvalidArgument("-o write-behind-window must be at most 268435456 bytes");
    }
    c->fuse.write_behind_window = static_cast<size_t>(n);
  } else if (key == "selinux") {
    c->fuse.selinux = true;
  } else if (key == "debug") {
    c->fuse.debug = true;
    c->log_level = LogLevel::kDebug;
  } else if (IsKernelFlag(opt)) {
    c->fuse.kernel_options.push_back(opt);
  } else if (IsFstabOnly(opt.substr(0, eq))) {
    // mount(8) and fstab bookkeeping: nothing for the mount itself.
  } else {
    return InvalidArgument("unknown mount option '" + opt + "'");
  }
  return Status::Ok();
}

// HOST[:PORT]:/VOLUME (or HOST[:PORT]:VOLUME, as gluster accepts).
Status ParseSpec(const std::string& spec, std::string* server, std::string* volume,
                 std::string* port) {
  std::string addr, vol;
  if (auto i = spec.rfind(":/"); i != std::string::npos) {
    addr = spec.substr(0, i);
    vol = spec.substr(i + 2);
  } else if (auto j = spec.rfind(':'); j != std::string::npos && spec.back() != ']') {
    addr = spec.substr(0, j);
    vol = spec.substr(j + 1);
  } else {
    return InvalidArgument("'" + spec + "' is not HOST[:PORT]:/VOLUME");
  }
  if (!mgmt::IsValidVolumeName(vol)) {
    return InvalidArgument("'" + spec + "': '" + vol + "' is not a volume name");
  }
  std::string host;
  uint16_t p = 0;
  DRFS_RETURN_IF_ERROR(mgmt::ParseHostPort(addr, mgmt::kDefaultDaemonPort, &host, &p)
                           .WithContext("'" + spec + "'"));
  *port = std::to_string(p);
  *server = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + *port;
  *volume = vol;
  return Status::Ok();
}

// ------------------------------------------------------------------ the mount process

class MountProcess {
 public:
  explicit MountProcess(MountConfig c) : c_(std::move(c)) {}

  // Runs the mount until it is unmounted. `ready` is called once: with "" when the mount
  // answers, or with why it could not be mounted.
  int Run(const std::function<void(const std::string&)>& ready);

 private:
  Result<volume::Layout> Fetch(bool quiet);
  void FollowLayout();
  void WaitForSignals();
  void Stop();

  MountConfig c_;
  std::vector<std::string> pool_;  // drfsd addresses from the last layout
  std::unique_ptr<volume::VolumeClient> client_;
  std::unique_ptr<volume::FuseMount> mount_;
  volume::Layout layout_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool unmounting_ = false;  // the signal thread's
};

Result<volume::Layout> MountProcess::Fetch(bool quiet) {
  std::vector<std::string> order = c_.servers;
  for (const auto& p : pool_) {
    if (std::find(order.begin(), order.end(), p) == order.end()) order.push_back(p);
  }
  Status last;
  for (const auto& server : order) {
    std::vector<std::string> pool;
    auto l = mgmt::FetchLayout(server, c_.volume, c_.tls, c_.timeout, &pool);
    if (l.ok()) {
      if (!pool.empty()) pool_ = std::move(pool);
      return l;
    }
    // Only an unreachable daemon is a reason to ask another: the others would say the same.
    if (l.status().code() != Code::kUnavailable && l.status().code() != Code::kDeadlineExceeded) {
      return l.status();
    }
    if (!quiet) DRFS_LOG(Warn) << "layout of " << c_.volume << ": " << l.status().message();
    last = l.status();
  }
  return last;
}

int MountProcess::Run(const std::function<void(const std::string&)>& ready) {
  // Layout, with a few rounds for drfsd coming up at boot along with this mount.
  Result<volume::Layout> layout = Unavailable("no drfsd to ask");
  for (int round = 0; round < 3; ++round) {
    layout = Fetch(round < 2);
    if (layout.ok() || (layout.status().code() != Code::kUnavailable &&
                        layout.status().code() != Code::kDeadlineExceeded)) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  if (!layout.ok()) {
    std::string hint;
    if (!c_.tls.enabled() && layout.status().code() == Code::kUnavailable) {
      hint = " (if that drfsd uses TLS, pass -o tls-cert=F,tls-key=F,tls-ca=F with a "
             "certificate of role 'client')";
    }
    ready("cannot get the layout of volume " + c_.volume + ": " + layout.status().message() + hint);
    return kExitError;
  }
  layout_ = *layout;
  DRFS_LOG(Info) << "volume " << layout_.volume << " (" << layout_.volume_uuid << "), generation "
                 << layout_.generation << ", replica " << layout_.replica << ", "
                 << layout_.bricks.size() << " bricks";
  volume::VolumeClientOptions co;
  co.tls = c_.tls;
  co.read_only = c_.fuse.read_only;
  char host[256] = "";
  ::gethostname(host, sizeof host - 1);
  co.client_name = std::string("fuse:") + host + ":" + c_.mountpoint + ":" + std::to_string(::getpid());
  auto client = volume::VolumeClient::Open(layout_, co);
  if (!client.ok()) {
    ready("cannot reach the bricks of volume " + c_.volume + ": " + client.status().message());
    return kExitError;
  }
  client_ = std::move(*client);
  auto mount = volume::FuseMount::Mount(client_.get(), c_.mountpoint, c_.fuse);
  if (!mount.ok()) {
    ready(mount.status().message());
    return kExitError;
  }
  mount_ = std::move(*mount);

  std::thread signals([this] { WaitForSignals(); });
  std::thread follow([this] { FollowLayout(); });
  // The mount is ready when a stat(2) of it is answered by us, through the kernel.
  std::thread check([this, &ready] {
    struct statfs sf;
    struct stat st;
    if (::statfs(c_.mountpoint.c_str(), &sf) == 0 && sf.f_type == 0x65735546 /* FUSE */ &&
        ::stat(c_.mountpoint.c_str(), &st) == 0 && st.st_ino == 1) {
      const std::string pid = std::to_string(::getpid()) + "\n";
      (void)FileSystem::Default()->CreateDirs("/run/drfs");
      int fd = ::open(PidFile(c_.mountpoint).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0 || ::write(fd, pid.data(), pid.size()) < 0) {
        DRFS_LOG(Warn) << "cannot write " << PidFile(c_.mountpoint) << ": " << std::strerror(errno);
      }
      if (fd >= 0) ::close(fd);
      ready("");
      return;
    }
    ready("the mount at " + c_.mountpoint + " does not answer: " + std::strerror(errno));
    Status s = mount_->Unmount();
    if (!s.ok()) DRFS_LOG(Error) << s.message();
  });
  Status served = mount_->Serve();
  check.join();
  Stop();
  follow.join();
  signals.join();
  mount_.reset();
  client_.reset();  // ends open write transactions on the bricks
  ::unlink(PidFile(c_.mountpoint).c_str());
  if (!served.ok()) {
    DRFS_LOG(Error) << served.message();
    return kExitError;
  }
  DRFS_LOG(Info) << "drfs mount of " << c_.volume << " on " << c_.mountpoint << " ended";
  return kExitOk;
}

void MountProcess::Stop() {
  std::lock_guard<std::mutex> l(mu_);
  stop_ = true;
  cv_.notify_all();
}

void MountProcess::WaitForSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  const timespec tick{0, 200 * 1000 * 1000};
  for (;;) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return;
    }
    const int sig = ::sigtimedwait(&set, nullptr, &tick);
    if (sig < 0) continue;
    if (sig == SIGHUP) {
      DRFS_LOG(Info) << "SIGHUP: re-reading the layout";
      std::lock_guard<std::mutex> l(mu_);
      cv_.notify_all();
      continue;
    }
    // The first signal unmounts (detaching a mount in use, whose users keep it); the next
    // one aborts what is left, so the process ends now.
    if (!unmounting_) {
      DRFS_LOG(Info) << "signal " << sig << ": unmounting " << c_.mountpoint;
      unmounting_ = true;
      Status s = mount_->Unmount();
      if (!s.ok()) DRFS_LOG(Error) << "cannot unmount " << c_.mountpoint << ": " << s.message();
    } else {
      DRFS_LOG(Info) << "signal " << sig << " again: aborting " << c_.mountpoint;
      Status s = mount_->Abort();
      if (!s.ok()) DRFS_LOG(Error) << s.message();
    }
  }
}

// Re-reads the layout every layout_interval, and every second for a while after a brick
// connection fails (its brick may be back on another port), and hands changes to the client.
void MountProcess::FollowLayout() {
  using Clock = std::chrono::steady_clock;
  auto next = Clock::now() + c_.layout_interval;
  auto down_since = Clock::time_point();
  bool was_down = false;
  bool warned_uuid = false;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      if (cv_.wait_for(l, std::chrono::milliseconds(500), [this] { return stop_; })) return;
    }
    const auto now = Clock::now();
    bool down = false;
    for (const auto& h : client_->Health()) down = down || !h.connected;
    if (down && !was_down) {
      down_since = now;
      next = now;  // a brick just went away: maybe it moved
    }
    was_down = down;
    if (now < next) continue;
    const bool fast = down && now - down_since < std::chrono::seconds(15);
    next = now + (fast ? std::chrono::seconds(1) : c_.layout_interval);
    auto fetched = Fetch(true);
    if (!fetched.ok()) {
      DRFS_LOG(Debug) << "cannot re-read the layout of " << c_.volume << ": " << fetched.status().message();
      continue;
    }
    volume::Layout l = *fetched;
    if (l.volume_uuid != layout_.volume_uuid) {
      if (!warned_uuid) {
        DRFS_LOG(Error) << "volume " << c_.volume << " now has uuid " << l.volume_uuid << ", not "
                        << layout_.volume_uuid << " (deleted and created again?); this mount keeps "
                           "its old bricks. Unmount and mount again to use the new volume";
      }
      warned_uuid = true;
      continue;
    }
    // A brick whose node's drfsd cannot tell its port (port 0) may well still be serving
    // (bricks outlive their daemon): keep the port we know.
    for (size_t i = 0; i < l.bricks.size(); ++i) {
      for (const auto& old : layout_.bricks) {
        if (l.bricks[i].port == 0 && old.brick_id == l.bricks[i].brick_id) l.bricks[i].port = old.port;
      }
    }
    if (l == layout_) continue;
    std::string what;
    if (l.generation != layout_.generation) {
      what += " generation " + std::to_string(layout_.generation) + " -> " + std::to_string(l.generation) + ";";
    }
    for (const auto& b : l.bricks) {
      for (const auto& old : layout_.bricks) {
        if (old.brick_id == b.brick_id && old.port != b.port) {
          what += " " + b.name + " port " + std::to_string(old.port) + " -> " + std::to_string(b.port) + ";";
        }
      }
    }
    Status s = client_->UpdateLayout(l);
    if (!s.ok()) {
      DRFS_LOG(Error) << "cannot apply the new layout of " << c_.volume << ":" << what << " " << s.message();
      continue;
    }
    DRFS_LOG(Info) << "layout of " << c_.volume << " changed:" << (what.empty() ? " options" : what);
    layout_ = l;
  }
}

int MountMain(int argc, char** argv, int first) {
  // -o may repeat (and may be glued: -oro); the rest is the usual --option syntax.
  std::vector<std::string> opts;
  std::vector<char*> rest = {argv[0]};
  for (int i = first; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "-o") {
      if (i + 1 >= argc) return UsageError("-o needs a value", kMountUsage);
      opts.push_back(argv[++i]);
    } else if (s.size() > 2 && s.rfind("-o", 0) == 0) {
      opts.push_back(s.substr(2));
    } else {
      rest.push_back(argv[i]);
    }
  }
  auto parsed = ParseArgs(static_cast<int>(rest.size()), rest.data(), 1,
                          {{"foreground", "help"}, {"tls-cert", "tls-key", "tls-ca", "timeout"}});
  if (!parsed.ok()) return UsageError(parsed.status().message(), kMountUsage);
  const Args& a = *parsed;
  if (a.Has("help")) {
    std::cout << kMountUsage;
    return kExitOk;
  }
  if (a.positional.size() != 2) {
    return UsageError(a.positional.size() < 2 ? "mount takes HOST[:PORT]:/VOLUME and MOUNTPOINT"
                                              : "too many arguments: '" + a.positional[2] + "'",
                      kMountUsage);
  }
  MountConfig c;
  std::string server, port;
  if (Status s = ParseSpec(a.positional[0], &server, &c.volume, &port); !s.ok()) {
    return UsageError(s.message(), kMountUsage);
  }
  c.servers.push_back(server);
  c.tls = TlsFromArgs(a);
  for (const auto& o : opts) {
    std::stringstream ss(o);
    std::string one;
    while (std::getline(ss, one, ',')) {
      if (one.empty()) continue;
      if (Status s = ApplyOption(one, port, &c); !s.ok()) return UsageError(s.message(), kMountUsage);
    }
  }
  if (c.tls.enabled() && (c.tls.cert_file.empty() || c.tls.key_file.empty() || c.tls.ca_file.empty())) {
    return UsageError("TLS needs all of tls-cert, tls-key and tls-ca", kMountUsage);
  }
  uint64_t timeout = 10;
  if (Status s = GetUintOption(a, "timeout", &timeout); !s.ok() || timeout == 0 || timeout > 3600) {
    return UsageError("--timeout must be 1-3600 seconds", kMountUsage);
  }
  c.timeout = std::chrono::seconds(timeout);
  c.foreground = a.Has("foreground");

  // The mount point: an existing directory, not already a drfs mount.
  char real[PATH_MAX];
  if (::realpath(a.positional[1].c_str(), real) == nullptr) {
    return Fail(ErrnoStatus(errno, "mount point " + a.positional[1]));
  }
  c.mountpoint = real;
  struct stat st;
  if (::stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Fail(FailedPrecondition("mount point " + c.mountpoint + " is not a directory"));
  }
  if (MountedType(c.mountpoint) == "fuse.drfs") {
    return Fail(FailedPrecondition(c.mountpoint + " is already a drfs mount; 'drfs umount " +
                                   c.mountpoint + "' first"));
  }
  if (c.log_file.empty()) c.log_file = DefaultLogFile(c.mountpoint);
  c.fuse.fsname = a.positional[0];
  if (c.fuse.fsname.find(":/") == std::string::npos) {
    c.fuse.fsname = a.positional[0].substr(0, a.positional[0].rfind(':')) + ":/" + c.volume;
  }

  // Detach before any thread exists; the parent waits on a pipe until the mount answers (or
  // says why it cannot), so the exit status of `drfs mount` tells whether it worked.
  int ready_pipe[2] = {-1, -1};
  if (!c.foreground) {
    if (::pipe2(ready_pipe, O_CLOEXEC) != 0) return Fail(ErrnoStatus(errno, "pipe"));
    pid_t child = ::fork();
    if (child < 0) return Fail(ErrnoStatus(errno, "fork"));
    if (child > 0) {
      ::close(ready_pipe[1]);
      std::string msg;
      char buf[512];
      ssize_t n;
      while ((n = ::read(ready_pipe[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
      int wst = 0;
      ::waitpid(child, &wst, 0);
      if (msg == "ok") return kExitOk;
      std::cerr << "drfs: mount of " << c.fuse.fsname << " on " << c.mountpoint << " failed: "
                << (msg.empty() ? "the mount process exited during start; see " + c.log_file : msg)
                << "\n";
      return kExitError;
    }
    ::close(ready_pipe[0]);
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    if (::chdir("/") != 0) {
      // Harmless: only keeps the directory we started in busy.
    }
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
      if (null > 2) ::close(null);
    }
    SetLogToStderr(false);
  }
  // `c` moves into the mount process below; the report keeps its own copies.
  const std::string fsname = c.fuse.fsname, mountpoint = c.mountpoint;
  const bool foreground = c.foreground;
  auto report = [&ready_pipe, fsname, mountpoint, foreground](const std::string& error) {
    if (!error.empty()) DRFS_LOG(Error) << "mount of " << fsname << " on " << mountpoint << " failed: " << error;
    if (ready_pipe[1] >= 0) {
      const std::string msg = error.empty() ? "ok" : error;
      (void)!::write(ready_pipe[1], msg.data(), msg.size());
      ::close(ready_pipe[1]);
      ready_pipe[1] = -1;
    } else if (!error.empty() && foreground) {
      std::cerr << "drfs: mount of " << fsname << " on " << mountpoint << " failed: " << error << "\n";
    }
  };
  if (c.log_level) SetLogLevel(*c.log_level);
  const size_t slash = c.log_file.rfind('/');
  Status log_ok = FileSystem::Default()->CreateDirs(slash == 0 ? "/" : c.log_file.substr(0, slash));
  if (log_ok.ok()) log_ok = SetLogFile(c.log_file);
  if (!log_ok.ok()) {
    report("cannot open the log file " + c.log_file + ": " + log_ok.message());
    return kExitError;
  }
  DRFS_LOG(Info) << "mounting " << c.fuse.fsname << " on " << c.mountpoint << " (pid " << ::getpid() << ")";
  // Signals are for the signal thread alone: block them before any thread starts.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  MountProcess p(std::move(c));
  const int rc = p.Run(report);
  return rc;
}

// ------------------------------------------------------------------ umount

// Whether pid is a live process (a zombie is not: it has finished, only nobody reaped it yet).
bool ProcessAlive(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return false;
  const size_t close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'Z';
}

int UmountMain(int argc, char** argv, int first) {
  auto parsed = ParseArgs(argc, argv, first, {{"lazy", "help"}, {"timeout"}});
  if (!parsed.ok()) return UsageError(parsed.status().message(), kUmountUsage);
  const Args& a = *parsed;
  if (a.Has("help")) {
    std::cout << kUmountUsage;
    return kExitOk;
  }
  if (a.positional.size() != 1) return UsageError("umount takes MOUNTPOINT", kUmountUsage);
  uint64_t timeout = 30;
  if (Status s = GetUintOption(a, "timeout", &timeout); !s.ok() || timeout == 0 || timeout > 3600) {
    return UsageError("--timeout must be 1-3600 seconds", kUmountUsage);
  }
  // realpath fails on a mount whose process died (ENOTCONN): use the path as given.
  char real[PATH_MAX];
  const std::string mp = ::realpath(a.positional[0].c_str(), real) ? std::string(real)
                                                                   : LexicalAbsolute(a.positional[0]);
  const std::string type = MountedType(mp);
  if (type != "fuse.drfs") {
    return Fail(FailedPrecondition(mp + " is not a drfs mount" +
                                   (type.empty() ? "" : " (it is " + type + ")")));
  }
  pid_t pid = 0;
  {
    std::ifstream f(PidFile(mp));
    long v = 0;
    if (f >> v) pid = static_cast<pid_t>(v);
  }
  // A pid file left by a mount process that died is stale, and its pid may be someone
  // else's by now: only wait for a drfs mount process of this mount point.
  if (pid > 0) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(" mount ") == std::string::npos) pid = 0;
  }
  if (::geteuid() == 0) {
    if (::umount2(mp.c_str(), UMOUNT_NOFOLLOW) != 0) {
      if (errno == EBUSY && a.Has("lazy")) {
        if (::umount2(mp.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
          return Fail(ErrnoStatus(errno, "detach " + mp));
        }
      } else if (errno == EBUSY) {
        return Fail(Status(Code::kFailedPrecondition,
                           mp + " is busy: a process has a file open or its working directory "
                                "there ('fuser -vm " + mp + "' lists them); close them, or "
                                "use 'drfs umount --lazy " + mp + "' to detach it now"));
      } else {
        return Fail(ErrnoStatus(errno, "unmount " + mp));
      }
    }
  } else {
    std::vector<const char*> args = {"fusermount3", "-u"};
    if (a.Has("lazy")) args.push_back("-z");
    args.push_back(mp.c_str());
    args.push_back(nullptr);
    pid_t child = ::fork();
    if (child == 0) {
      ::execvp("fusermount3", const_cast<char* const*>(args.data()));
      ::_exit(127);
    }
    int st = 0;
    if (child < 0 || ::waitpid(child, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      return Fail(Status(Code::kFailedPrecondition, "fusermount3 -u " + mp + " failed"));
    }
  }
  // Wait for the mount process to end its write transactions on the bricks and exit, so that
  // a mount right after this one finds the bricks unlocked.
  if (pid > 0) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout);
    while (ProcessAlive(pid)) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::cerr << "drfs: warning: " << mp << " is unmounted, but its mount process (pid " << pid
                  << ") has not exited after " << timeout << " s\n";
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return kExitOk;
}

}  // namespace

int MountCommand(int argc, char** argv, int first) {
  if (auto h = HandleHelp(argc, argv, first, kMountUsage)) return *h;
  return MountMain(argc, argv, first);
}

int UmountCommand(int argc, char** argv, int first) {
  if (auto h = HandleHelp(argc, argv, first, kUmountUsage)) return *h;
  return UmountMain(argc, argv, first);
}

}  // namespace drfs::cli
