// drfs daemon | peer | volume: the management plane, through the node's drfsd.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "cli/args.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "common/log.h"
#include "mgmt/daemon.h"
#include "mgmt/protocol.h"

namespace drfs::cli {
namespace {

using mgmt::MgmtOp;

constexpr char kDaemonUsage[] =
    "usage: drfs daemon [--state-dir DIR] [--listen HOST:PORT] [--hostname NAME]\n"
    "                   [--tls-cert F --tls-key F --tls-ca F] [--foreground] [--pid-file F]\n"
    "                   [--log-level debug|info|warn|error] [--brick-port-min N --brick-port-max N]\n"
    "                   [--restart-backoff-ms N] [--restart-limit N]\n"
    "\n"
    "Runs drfsd, the node daemon: it keeps the node's configuration in STATE_DIR/drfsd.db\n"
    "(default /var/lib/drfs), answers the drfs CLI and its peers on --listen (default\n"
    "127.0.0.1:24100), and starts and supervises the node's bricks. Logs go to\n"
    "STATE_DIR/logs/drfsd.log and, with --foreground, to stderr too. Without --foreground it\n"
    "detaches once it is serving, writing its pid to --pid-file (default STATE_DIR/drfsd.pid).\n"
    "--hostname is the address peers and clients reach this node at (default: the listen\n"
    "host). SIGTERM stops it; brick processes keep running and are adopted at the next start.\n"
    "A brick that dies is restarted after --restart-backoff-ms (default 500, doubling to 30 s);\n"
    "after --restart-limit (default 5) quick deaths in a row it is marked failed, with the\n"
    "reason from its log, until 'drfs volume start NAME force'. Bricks get ports from\n"
    "--brick-port-min..--brick-port-max (default 49152-60999).\n";

constexpr char kPeerUsage[] =
    "usage: drfs peer <command> [--daemon HOST:PORT] [--json]\n"
    "\n"
    "  probe HOST[:PORT]     add the node whose drfsd listens there to this node's pool\n"
    "  detach HOST [force]   remove a node (force: even if it is unreachable)\n"
    "  status                list the other nodes of the pool and whether they answer\n"
    "\n"
    "Common options: --daemon HOST:PORT (default $DRFS_DAEMON or 127.0.0.1:24100),\n"
    "--tls-cert F --tls-key F --tls-ca F (a certificate with role 'daemon'), --json,\n"
    "--timeout S (connecting to drfsd; default 5).\n";

constexpr char kVolumeUsage[] =
    "usage: drfs volume <command> ... [--daemon HOST:PORT] [--json]\n"
    "\n"
    "  create NAME [replica N [arbiter 1]] HOST:/DIR ... [force]\n"
    "      Bricks are grouped into replica sets in the order given. 'force' allows two bricks\n"
    "      of one replica set on the same host.\n"
    "  start NAME [force]    start the bricks (force: also restart bricks marked failed)\n"
    "  stop NAME             stop the bricks; the data stays\n"
    "  delete NAME           forget a stopped volume; brick directories and data stay\n"
    "  info [NAME]           type, bricks, options, uuid\n"
    "  status [NAME] [detail]  per brick: port, pid, online, restarts, disk, inodes, backlog\n"
    "  list                  volume names\n"
    "  set NAME KEY VALUE    set an option ('drfs volume set help' lists them)\n"
    "  get NAME KEY|all      show options and where their values come from\n"
    "  reset NAME [KEY|all]  put options back to their defaults\n"
    "  heal NAME             start a self-heal pass on every node of the volume now\n"
    "  heal NAME info [split-brain]\n"
    "                        per brick, what needs heal (empty when all is healed)\n"
    "\n"
    "Common options: --daemon HOST:PORT (default $DRFS_DAEMON or 127.0.0.1:24100),\n"
    "--tls-cert F --tls-key F --tls-ca F (a certificate with role 'daemon'), --json,\n"
    "--timeout S (connecting to drfsd; default 5).\n";

}  // namespace

// Shared with the other client commands (cli/client.h).
const OptionSpec kClientSpec{{"json"}, {"daemon", "tls-cert", "tls-key", "tls-ca", "timeout"}};

Result<DaemonTarget> ParseDaemonTarget(const Args& a) {
  std::string addr = a.Get("daemon").value_or("");
  if (addr.empty()) {
    const char* env = std::getenv("DRFS_DAEMON");
    addr = env && *env ? env : "127.0.0.1";
  }
  DaemonTarget t;
  DRFS_RETURN_IF_ERROR(mgmt::ParseHostPort(addr, mgmt::kDefaultDaemonPort, &t.host, &t.port)
                           .WithContext("--daemon (or $DRFS_DAEMON)"));
  if (Status s = GetUintOption(a, "timeout", &t.timeout_s); !s.ok() || t.timeout_s == 0 || t.timeout_s > 3600) {
    return InvalidArgument("--timeout must be 1-3600 seconds");
  }
  return t;
}

// A bad --daemon or --timeout is a usage error (exit 2).
std::optional<int> CheckClientOptions(const Args& a, const char* usage) {
  auto t = ParseDaemonTarget(a);
  if (!t.ok()) return UsageError(t.status().message(), usage);
  return std::nullopt;
}

// The common start of `drfs peer|volume CMD ...`: help, options, --daemon and --timeout. An
// exit code when the command ends here; otherwise *out holds the arguments after CMD.
std::optional<int> ParseClientCommand(int argc, char** argv, int first, const char* usage, Args* out) {
  if (auto h = HandleHelp(argc, argv, first, usage)) return *h;
  auto parsed = ParseArgs(argc, argv, first + 1, kClientSpec);
  if (!parsed.ok()) return UsageError(parsed.status().message(), usage);
  *out = std::move(*parsed);
  return CheckClientOptions(*out, usage);
}

// Sends one request to the daemon named by --daemon / $DRFS_DAEMON.
Result<Value> Call(const Args& a, mgmt::MgmtOp op, const Value& args) {
  DRFS_ASSIGN_OR_RETURN(DaemonTarget target, ParseDaemonTarget(a));
  const std::string& host = target.host;
  // The RPC layer's reconnect chatter is not for the operator; errors come back as values.
  SetLogLevel(LogLevel::kError);
  const TlsConfig tls = TlsFromArgs(a);
  auto hint = [&](const Status& s) {
    // Only for this CLI's own connection (MgmtClient prefixes those with "drfsd at"/"cannot
    // reach drfsd"), not for errors the daemon reports about its peers.
    const bool transport = s.message().rfind("drfsd at " + host, 0) == 0 ||
                           s.message().rfind("cannot reach drfsd at " + host, 0) == 0;
    if (s.code() != Code::kUnavailable || tls.enabled() || !transport) return s;
    return Status(s.code(), s.message() +
                                " (if that drfsd uses TLS, pass --tls-cert, --tls-key and --tls-ca "
                                "with this node's daemon certificate)");
  };
  auto c = mgmt::MgmtClient::Connect(host, target.port, tls, std::chrono::seconds(target.timeout_s));
  if (!c.ok()) return hint(c.status());
  auto r = (*c)->Call(op, args);
  if (!r.ok()) return hint(r.status());
  return r;
}

// The list under `key`, or an empty one (a reply from another drfs version may lack it).
const Value::List& ListOf(const Value& v, const std::string& key) {
  static const Value::List kNone;
  const Value* f = v.Find(key);
  return f ? f->AsList() : kNone;
}

void PrintWarnings(const Value& r) {
  if (const Value* ws = r.Find("warnings")) {
    for (const auto& w : ws->AsList()) std::cerr << "warning: " << w.AsString() << "\n";
  }
}

// Prints a reply: JSON with --json, otherwise `human`.
int Output(const Args& a, const Result<Value>& r, const std::function<void(const Value&)>& human) {
  if (!r.ok()) return Fail(r.status());
  if (a.Has("json")) {
    std::cout << r->ToJson() << "\n";
  } else {
    human(*r);
    PrintWarnings(*r);
  }
  return kExitOk;
}

void PrintMessage(const Value& r) { std::cout << r.GetString("message") << "\n"; }

std::string Str(int64_t v) { return std::to_string(v); }

namespace {

// ------------------------------------------------------------------ daemon

int DaemonMain(int argc, char** argv, int first) {
  auto parsed = ParseArgs(argc, argv, first,
                          {{"foreground", "help"},
                           {"state-dir", "listen", "hostname", "tls-cert", "tls-key", "tls-ca",
                            "pid-file", "log-level", "brick-port-min", "brick-port-max",
                            "restart-backoff-ms", "restart-limit"}});
  if (!parsed.ok()) return UsageError(parsed.status().message(), kDaemonUsage);
  const Args& a = *parsed;
  if (a.Has("help")) {
    std::cout << kDaemonUsage;
    return kExitOk;
  }
  if (!a.positional.empty()) return UsageError("daemon takes no positional arguments", kDaemonUsage);
  mgmt::DaemonOptions o;
  o.state_dir = a.Get("state-dir").value_or("/var/lib/drfs");
  if (o.state_dir.empty() || o.state_dir[0] != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd)) o.state_dir = std::string(cwd) + "/" + o.state_dir;
  }
  if (Status s = mgmt::ParseHostPort(a.Get("listen").value_or("127.0.0.1"),
                                     mgmt::kDefaultDaemonPort, &o.listen_host, &o.port);
      !s.ok()) {
    return UsageError("--listen: " + s.message(), kDaemonUsage);
  }
  o.hostname = a.Get("hostname").value_or("");
  auto tls = ServerTlsFromArgs(a);
  if (!tls.ok()) return UsageError(tls.status().message(), kDaemonUsage);
  o.tls = *tls;
  if (Status s = GetUintOption(a, "brick-port-min", &o.brick_port_min); !s.ok()) return UsageError(s.message(), kDaemonUsage);
  if (Status s = GetUintOption(a, "brick-port-max", &o.brick_port_max); !s.ok()) return UsageError(s.message(), kDaemonUsage);
  uint64_t backoff_ms = 500, limit = 5;
  if (Status s = GetUintOption(a, "restart-backoff-ms", &backoff_ms); !s.ok() || backoff_ms == 0 || backoff_ms > 60000) {
    return UsageError("--restart-backoff-ms must be 1-60000", kDaemonUsage);
  }
  if (Status s = GetUintOption(a, "restart-limit", &limit); !s.ok() || limit == 0 || limit > 1000) {
    return UsageError("--restart-limit must be 1-1000", kDaemonUsage);
  }
  o.supervisor.backoff_initial = std::chrono::milliseconds(backoff_ms);
  o.supervisor.max_fast_failures = static_cast<int>(limit);
  if (o.brick_port_min == 0 || o.brick_port_min > o.brick_port_max) {
    return UsageError("--brick-port-min must be 1 or more and at most --brick-port-max", kDaemonUsage);
  }
  if (auto lv = a.Get("log-level")) {
    static const std::map<std::string, LogLevel> kLevels = {
        {"debug", LogLevel::kDebug}, {"info", LogLevel::kInfo}, {"warn", LogLevel::kWarn}, {"error", LogLevel::kError}};
    auto it = kLevels.find(*lv);
    if (it == kLevels.end()) return UsageError("--log-level must be debug, info, warn or error", kDaemonUsage);
    SetLogLevel(it->second);
  }
  const bool foreground = a.Has("foreground");
  const std::string pid_file = a.Get("pid-file").value_or(o.state_dir + "/drfsd.pid");

  // Detach before any thread exists; the parent waits on a pipe until the daemon serves (or
  // says why it cannot), so `drfs daemon` returns only once the CLI can talk to it.
  int ready[2] = {-1, -1};
  if (!foreground) {
    if (::pipe2(ready, O_CLOEXEC) != 0) return Fail(Status(Code::kInternal, "pipe failed"));
    pid_t child = ::fork();
    if (child < 0) return Fail(Status(Code::kInternal, std::string("fork failed: ") + std::strerror(errno)));
    if (child > 0) {
      ::close(ready[1]);
      std::string msg;
      char buf[512];
      ssize_t n;
      while ((n = ::read(ready[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
      if (msg.rfind("ok ", 0) == 0) {
        std::cout << "drfsd started (pid " << msg.substr(3) << ")\n";
        return kExitOk;
      }
      std::cerr << "drfs: " << (msg.empty() ? "drfsd exited during start; see " + o.state_dir + "/logs/drfsd.log" : msg) << "\n";
      return kExitError;
    }
    ::close(ready[0]);
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
      if (null > 2) ::close(null);
    }
    SetLogToStderr(false);
  }
  auto report = [&](const std::string& msg) {
    if (ready[1] >= 0) {
      (void)!::write(ready[1], msg.data(), msg.size());
      ::close(ready[1]);
      ready[1] = -1;
    }
  };

  ::mkdir(o.state_dir.c_str(), 0755);
  ::mkdir((o.state_dir + "/logs").c_str(), 0755);
  if (Status s = SetLogFile(o.state_dir + "/logs/drfsd.log"); !s.ok()) {
    report(s.message());
    return Fail(s);
  }
  // Signals are taken by this thread alone: block them before any thread starts.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto daemon = mgmt::Daemon::Start(o);
  if (!daemon.ok()) {
    report(daemon.status().message());
    return Fail(daemon.status());
  }
  if (!foreground || a.Get("pid-file")) {
    std::string pid = std::to_string(::getpid()) + "\n";
    int fd = ::open(pid_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || ::write(fd, pid.data(), pid.size()) < 0) {
      DRFS_LOG(Warn) << "cannot write pid file " << pid_file << ": " << std::strerror(errno);
    }
    if (fd >= 0) ::close(fd);
  }
  // Tests and scripts that asked for port 0 read it from this line.
  std::printf("drfsd %s listening on %s:%u\n", (*daemon)->node_uuid().c_str(), o.listen_host.c_str(),
              static_cast<unsigned>((*daemon)->port()));
  std::fflush(stdout);
  report("ok " + std::to_string(::getpid()));
  int sig = 0;
  sigwait(&set, &sig);
  DRFS_LOG(Info) << "drfsd: signal " << sig << ", stopping";
  (*daemon)->Stop();
  if (!foreground || a.Get("pid-file")) ::unlink(pid_file.c_str());
  return kExitOk;
}

// ------------------------------------------------------------------ peer

int PeerMain(int argc, char** argv, int first) {
  Args a;
  if (auto exit = ParseClientCommand(argc, argv, first, kPeerUsage, &a)) return *exit;
  const std::string cmd = argv[first];
  const auto& pos = a.positional;
  if (cmd == "probe") {
    if (pos.size() != 1) return UsageError("peer probe takes HOST[:PORT]", kPeerUsage);
    std::string host;
    uint16_t port;
    if (Status s = mgmt::ParseHostPort(pos[0], mgmt::kDefaultDaemonPort, &host, &port); !s.ok()) {
      return UsageError(s.message(), kPeerUsage);
    }
    Value args;
    args["host"] = host;
    args["port"] = static_cast<int64_t>(port);
    return Output(a, Call(a, MgmtOp::kPeerProbe, args), PrintMessage);
  }
  if (cmd == "detach") {
    if (pos.empty() || pos.size() > 2 || (pos.size() == 2 && pos[1] != "force")) {
      return UsageError("peer detach takes HOST [force]", kPeerUsage);
    }
    Value args;
    std::string host;
    uint16_t port;
    if (Status s = mgmt::ParseHostPort(pos[0], mgmt::kDefaultDaemonPort, &host, &port); !s.ok()) {
      return UsageError(s.message(), kPeerUsage);
    }
    args["host"] = host;
    args["force"] = pos.size() == 2;
    return Output(a, Call(a, MgmtOp::kPeerDetach, args), PrintMessage);
  }
  if (cmd == "status") {
    if (!pos.empty()) return UsageError("peer status takes no arguments", kPeerUsage);
    return Output(a, Call(a, MgmtOp::kPeerStatus, Value::EmptyMap()), [](const Value& r) {
      const auto& peers = ListOf(r, "peers");
      std::cout << "Number of Peers: " << peers.size() << "\n";
      if (peers.empty()) return;
      std::cout << "\n";
      Table t({"Hostname", "Port", "Uuid", "State"});
      for (const auto& p : peers) {
        std::string state = p.GetString("state");
        if (!p.GetBool("connected")) {
          state += " (" + p.GetString("error") + ")";
        } else if (!p.GetBool("config_in_sync", true)) {
          state += " (configuration generation " + Str(p.GetInt("generation")) + " differs from this node's " +
                   Str(r.GetInt("generation")) + ")";
        }
        t.Add({p.GetString("host"), Str(p.GetInt("port")), p.GetString("uuid"), state});
      }
      t.Print(std::cout);
    });
  }
  return UsageError("unknown peer command '" + cmd + "'", kPeerUsage);
}

// ------------------------------------------------------------------ volume

void PrintInfo(const Value& r) {
  bool first = true;
  for (const auto& v : ListOf(r, "volumes")) {
    if (!first) std::cout << "\n";
    first = false;
    const int64_t n = v.GetInt("brick_count");
    const int64_t rep = v.GetInt("replica");
    std::cout << "Volume Name: " << v.GetString("name") << "\n"
              << "Type: " << v.GetString("type") << "\n"
              << "Volume ID: " << v.GetString("uuid") << "\n"
              << "Status: " << v.GetString("state") << "\n"
              << "Number of Bricks: ";
    if (rep > 1) {
      std::cout << n / rep << " x " << (v.GetBool("arbiter") ? "(2 + 1)" : Str(rep)) << " = " << n << "\n";
    } else {
      std::cout << n << "\n";
    }
    std::cout << "Bricks:\n";
    for (const auto& b : ListOf(v, "bricks")) {
      std::cout << "Brick" << b.GetInt("index") + 1 << ": " << b.GetString("name")
                << (b.GetBool("arbiter") ? " (arbiter)" : "") << "\n";
    }
    const Value* optv = v.Find("options");
    const auto& opts = optv ? optv->AsMap() : Value::Map{};
    if (!opts.empty()) {
      std::cout << "Options Reconfigured:\n";
      for (const auto& [k, val] : opts) std::cout << k << ": " << val.AsString() << "\n";
    }
  }
  if (first) std::cout << "No volumes present\n";
}

std::string Human(int64_t bytes) { return bytes < 0 ? "N/A" : HumanBytes(static_cast<uint64_t>(bytes)); }

void PrintStatus(const Value& r, bool detail) {
  bool first = true;
  for (const auto& v : ListOf(r, "volumes")) {
    if (!first) std::cout << "\n";
    first = false;
    std::cout << "Status of volume: " << v.GetString("name") << " (" << v.GetString("state") << ", "
              << v.GetInt("bricks_online") << " of " << v.GetInt("brick_count") << " bricks online)\n";
    const auto& bricks = ListOf(v, "bricks");
    if (!detail) {
      Table t({"Brick", "Port", "Online", "Pid", "Restarts", "Disk free", "Inodes free", "Backlog"});
      for (const auto& b : bricks) {
        const Value* disk = b.Find("disk");
        const Value* in = b.Find("inodes");
        const Value* cl = b.Find("changelog");
        t.Add({b.GetString("name"), b.GetInt("port") ? Str(b.GetInt("port")) : "N/A",
               b.GetBool("online") ? "Y" : "N", b.GetInt("pid") ? Str(b.GetInt("pid")) : "N/A",
               Str(b.GetInt("restarts")),
               disk && disk->Find("free_bytes") ? Human(disk->GetInt("free_bytes")) : "N/A",
               in && in->Find("free") ? Str(in->GetInt("free")) : "N/A",
               cl && cl->Find("backlog_records") ? Str(cl->GetInt("backlog_records")) : "N/A"});
      }
      t.Print(std::cout);
      for (const auto& b : bricks) {
        if (!b.GetBool("online") && !b.GetString("offline_reason").empty() && v.GetString("state") == "Started") {
          std::cout << "  " << b.GetString("name") << ": " << b.GetString("offline_reason") << "\n";
        }
        if (!b.GetString("failure_reason").empty()) {
          std::cout << "  " << b.GetString("name") << " failed: " << b.GetString("failure_reason") << "\n";
        }
      }
      continue;
    }
    for (const auto& b : bricks) {
      const Value* disk = b.Find("disk");
      const Value* in = b.Find("inodes");
      const Value* cl = b.Find("changelog");
      std::cout << "------------------------------------------------------------------------------\n";
      Table t({"Brick", ": " + b.GetString("name")});
      t.Add({"Node", ": " + b.GetString("node_uuid") + (b.GetBool("node_reachable", true) ? "" : " (unreachable)")});
      t.Add({"Port", ": " + (b.GetInt("port") ? Str(b.GetInt("port")) : std::string("N/A"))});
      t.Add({"Online", ": " + std::string(b.GetBool("online") ? "Y" : "N") +
                            (b.GetBool("online") ? "" : " (" + b.GetString("offline_reason") + ")")});
      t.Add({"Pid", ": " + (b.GetInt("pid") ? Str(b.GetInt("pid")) : std::string("N/A"))});
      t.Add({"Process state", ": " + b.GetString("state")});
      t.Add({"Restarts", ": " + Str(b.GetInt("restarts"))});
      if (!b.GetString("last_exit").empty()) t.Add({"Last exit", ": " + b.GetString("last_exit")});
      if (!b.GetString("failure_reason").empty()) t.Add({"Failure", ": " + b.GetString("failure_reason")});
      if (disk && disk->Find("total_bytes")) {
        t.Add({"Disk space free", ": " + Human(disk->GetInt("free_bytes"))});
        t.Add({"Disk space used", ": " + Human(disk->GetInt("used_bytes"))});
        t.Add({"Total disk space", ": " + Human(disk->GetInt("total_bytes"))});
      }
      if (in && in->Find("total")) {
        t.Add({"Inode count", ": " + Str(in->GetInt("total"))});
        t.Add({"Free inodes", ": " + Str(in->GetInt("free"))});
        t.Add({"Used inodes", ": " + Str(in->GetInt("used"))});
      }
      if (cl && cl->Find("last_lsn")) {
        t.Add({"Changelog last LSN", ": " + Str(cl->GetInt("last_lsn"))});
        t.Add({"Changelog segments", ": " + Str(cl->GetInt("segments")) + " (" + Human(cl->GetInt("bytes")) + ")"});
        t.Add({"Changelog backlog", ": " + Str(cl->GetInt("backlog_records")) + " records (" +
                                        Str(cl->GetInt("consumers")) + " consumers)"});
      } else if (cl && cl->Find("error")) {
        t.Add({"Changelog", ": " + cl->GetString("error")});
      }
      if (!b.GetString("log").empty()) t.Add({"Log", ": " + b.GetString("log")});
      t.Print(std::cout);
    }
  }
  if (first) std::cout << "No volumes present\n";
}

int VolumeCreateCmd(const Args& a) {
  const auto& pos = a.positional;
  if (pos.empty()) return UsageError("volume create needs a NAME and bricks", kVolumeUsage);
  Value args;
  args["name"] = pos[0];
  size_t i = 1;
  if (i < pos.size() && pos[i] == "replica") {
    if (i + 1 >= pos.size()) return UsageError("'replica' needs a count", kVolumeUsage);
    auto n = ParseUint(pos[i + 1], "replica count");
    if (!n.ok() || *n < 2 || *n > 16) return UsageError("replica count '" + pos[i + 1] + "' must be 2-16", kVolumeUsage);
    args["replica"] = static_cast<int64_t>(*n);
    i += 2;
    if (i < pos.size() && pos[i] == "arbiter") {
      if (i + 1 >= pos.size() || pos[i + 1] != "1") return UsageError("'arbiter' takes the count 1", kVolumeUsage);
      args["arbiter"] = true;
      i += 2;
    }
  }
  size_t end = pos.size();
  if (end > i && pos[end - 1] == "force") {
    args["force"] = true;
    --end;
  }
  if (i >= end) return UsageError("volume create needs at least one brick HOST:/DIR", kVolumeUsage);
  args["bricks"] = Value::EmptyList();
  for (; i < end; ++i) {
    if (pos[i].find(":/") == std::string::npos) {
      return UsageError("'" + pos[i] + "' is not a brick (HOST:/ABSOLUTE/DIR)", kVolumeUsage);
    }
    args["bricks"].Push(pos[i]);
  }
  return Output(a, Call(a, MgmtOp::kVolumeCreate, args), PrintMessage);
}

int VolumeMain(int argc, char** argv, int first) {
  Args a;
  if (auto exit = ParseClientCommand(argc, argv, first, kVolumeUsage, &a)) return *exit;
  const std::string cmd = argv[first];
  const auto& pos = a.positional;
  auto need = [&](size_t lo, size_t hi, const char* what) -> std::optional<int> {
    if (pos.size() < lo || pos.size() > hi) return UsageError(std::string("volume ") + cmd + " takes " + what, kVolumeUsage);
    return std::nullopt;
  };
  Value args;
  if (cmd == "create") return VolumeCreateCmd(a);
  if (cmd == "start" || cmd == "stop" || cmd == "delete") {
    if (auto e = need(1, cmd == "start" ? 2 : 1, cmd == "start" ? "NAME [force]" : "NAME")) return *e;
    args["name"] = pos[0];
    if (pos.size() == 2) {
      if (pos[1] != "force") return UsageError("unexpected '" + pos[1] + "' (only 'force' may follow)", kVolumeUsage);
      args["force"] = true;
    }
    MgmtOp op = cmd == "start" ? MgmtOp::kVolumeStart : cmd == "stop" ? MgmtOp::kVolumeStop : MgmtOp::kVolumeDelete;
    return Output(a, Call(a, op, args), PrintMessage);
  }
  if (cmd == "info") {
    if (auto e = need(0, 1, "[NAME]")) return *e;
    if (!pos.empty()) args["name"] = pos[0];
    return Output(a, Call(a, MgmtOp::kVolumeInfo, args), PrintInfo);
  }
  if (cmd == "status") {
    if (auto e = need(0, 2, "[NAME] [detail]")) return *e;
    bool detail = !pos.empty() && pos.back() == "detail";
    size_t names = pos.size() - (detail ? 1 : 0);
    if (names > 1) return UsageError("volume status takes [NAME] [detail]", kVolumeUsage);
    if (names == 1) args["name"] = pos[0];
    return Output(a, Call(a, MgmtOp::kVolumeStatus, args), [detail](const Value& r) { PrintStatus(r, detail); });
  }
  if (cmd == "heal") {
    if (auto e = need(1, 3, "NAME [info [split-brain]]")) return *e;
    args["name"] = pos[0];
    if (pos.size() >= 2) {
      if (pos[1] != "info") return UsageError("unexpected '" + pos[1] + "' (only 'info' may follow)", kVolumeUsage);
      args["info"] = true;
    }
    if (pos.size() == 3) {
      if (pos[2] != "split-brain") return UsageError("unexpected '" + pos[2] + "' (only 'split-brain' may follow 'info')", kVolumeUsage);
      args["split_brain"] = true;
    }
    if (pos.size() == 1) return Output(a, Call(a, MgmtOp::kVolumeHeal, args), PrintMessage);
    return Output(a, Call(a, MgmtOp::kVolumeHeal, args), [](const Value& r) {
      for (const auto& b : ListOf(r, "bricks")) {
        std::cout << "Brick " << b.GetString("name") << "\n";
        for (const auto& e : ListOf(b, "entries")) {
          std::cout << e.GetString("path") << "  (" << e.GetString("needs")
                    << (e.GetBool("split_brain") ? ", split brain" : "") << ")\n";
        }
        std::cout << "Number of entries" << (r.GetBool("split_brain_only") ? " in split-brain" : "")
                  << ": " << b.GetInt("count") << "\n\n";
      }
    });
  }
  if (cmd == "list") {
    if (auto e = need(0, 0, "no arguments")) return *e;
    return Output(a, Call(a, MgmtOp::kVolumeList, args), [](const Value& r) {
      const auto& vols = ListOf(r, "volumes");
      if (vols.empty()) std::cout << "No volumes present in cluster\n";
      for (const auto& v : vols) std::cout << v.AsString() << "\n";
    });
  }
  if (cmd == "set") {
    if (pos.size() == 1 && pos[0] == "help") {
      return Output(a, Call(a, MgmtOp::kOptionHelp, args), [](const Value& r) {
        for (const auto& o : ListOf(r, "options")) {
          std::cout << "Option: " << o.GetString("key") << "\n"
                    << "Default: " << o.GetString("default") << "\n"
                    << "Allowed: " << o.GetString("allowed") << " (" << o.GetString("type") << ")\n"
                    << "Applies: at " << o.GetString("applies_to") << "\n"
                    << "Description: " << o.GetString("help") << "\n\n";
        }
      });
    }
    if (auto e = need(3, 3, "NAME KEY VALUE (or 'help')")) return *e;
    args["name"] = pos[0];
    args["key"] = pos[1];
    args["value"] = pos[2];
    return Output(a, Call(a, MgmtOp::kVolumeSet, args), PrintMessage);
  }
  if (cmd == "get") {
    if (auto e = need(2, 2, "NAME KEY|all")) return *e;
    args["name"] = pos[0];
    args["key"] = pos[1];
    return Output(a, Call(a, MgmtOp::kVolumeGet, args), [](const Value& r) {
      Table t({"Option", "Value", "Source"});
      for (const auto& o : ListOf(r, "options")) {
        t.Add({o.GetString("key"), o.GetString("value"), o.GetString("source")});
      }
      t.Print(std::cout);
    });
  }
  if (cmd == "reset") {
    if (auto e = need(1, 2, "NAME [KEY|all]")) return *e;
    args["name"] = pos[0];
    args["key"] = pos.size() == 2 ? pos[1] : "all";
    return Output(a, Call(a, MgmtOp::kVolumeReset, args), PrintMessage);
  }
  return UsageError("unknown volume command '" + cmd + "'", kVolumeUsage);
}

}  // namespace

int DaemonCommand(int argc, char** argv, int first) { return DaemonMain(argc, argv, first); }
int PeerCommand(int argc, char** argv, int first) { return PeerMain(argc, argv, first); }
int VolumeCommand(int argc, char** argv, int first) { return VolumeMain(argc, argv, first); }

}  // namespace drfs::cli
