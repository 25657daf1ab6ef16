// drfsd implementation. See daemon.h for the contract; the transaction protocol is described in
// docs/cli.md ("How a configuration change runs").
#include "mgmt/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "brick/client.h"
#include "changelog/journal.h"
#include "common/file.h"
#include "common/gfid.h"
#include "common/log.h"
#include "common/thread_pool.h"
#include "common/time.h"
#include "mgmt/config.h"
#include "mgmt/georep.h"
#include "mgmt/options.h"
#include "mgmt/layout.h"
#include "mgmt/protocol.h"
#include "mgmt/shd.h"
#include "mgmt/store.h"

namespace drfs::mgmt {
namespace {

constexpr char kVolumeIdXattr[] = "trusted.drfs.volume-id";
constexpr auto kLockLease = std::chrono::seconds(120);

std::string ErrnoText(int e) { return std::strerror(e); }

// Brick processes are keyed by brick id, which is unique across volumes and re-creations: a
// volume deleted and made again under the same name while a node was down gets new ids, so
// that node never mistakes the old volume's brick process for the new one's.
const BrickConf* FindBrick(const ClusterConfig& c, const std::string& id, const VolumeConf** vol,
                           size_t* idx) {
  for (const auto& [n, v] : c.volumes) {
    for (size_t i = 0; i < v.bricks.size(); ++i) {
      if (v.bricks[i].brick_id == id) {
        if (vol) *vol = &v;
        if (idx) *idx = i;
        return &v.bricks[i];
      }
    }
  }
  return nullptr;
}

// Whether brick `index` of `v` is an arbiter: the last brick of each replica set of a
// 'replica 3 arbiter 1' volume. It is served with --arbiter (no file data).
bool IsArbiter(const VolumeConf& v, size_t index) {
  return v.arbiter && v.replica > 1 &&
         index % static_cast<size_t>(v.replica) == static_cast<size_t>(v.replica - 1);
}

// "/srv/bricks/b1" -> "srv-bricks-b1", as gluster names brick logs.
std::string MangledPath(const std::string& path) {
  std::string s = path.substr(path.find_first_not_of('/') == std::string::npos ? path.size() : path.find_first_not_of('/'));
  std::replace(s.begin(), s.end(), '/', '-');
  return s.empty() ? "root" : s;
}

bool PortFree(const std::string& host, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) a.sin_addr.s_addr = htonl(INADDR_ANY);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

std::string ReadMarker(const std::string& path) {
  char buf[128];
  ssize_t n = ::getxattr(path.c_str(), kVolumeIdXattr, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

}  // namespace

class Daemon::Impl {
 public:
  explicit Impl(const DaemonOptions& o) : opt_(o) {}

  Status Init();
  void Stop();
  uint16_t port() const { return server_.port(); }
  const std::string& uuid() const { return store_->node_uuid(); }

 private:
  struct Txn {
    std::string owner;
    std::string id;
  };
  struct PeerTarget {
    PeerConf peer;
    std::unique_ptr<MgmtClient> client;
  };

  // --- request handling
  void OnRequest(std::shared_ptr<const PeerInfo> peer, Frame req, Responder reply);
  Result<Value> Dispatch(MgmtOp op, const Value& args);

  // --- daemon to daemon
  Result<Value> Hello();
  Result<Value> LockOp(const Value& args, bool lock);
  Result<Value> StageOp(const Value& args);
  Result<Value> CommitOp(const Value& args);
  Result<Value> LocalStatus(const Value& args);
  Result<Value> LocalRestart(const Value& args);
  Result<Value> PushConfig(const Value& args);

  // --- CLI
  Result<Value> PeerProbe(const Value& args);
  Result<Value> PeerDetach(const Value& args);
  Result<Value> PeerStatus();
  Result<Value> VolumeCreate(const Value& args);
  Result<Value> VolumeStart(const Value& args);
  Result<Value> VolumeStop(const Value& args);
  Result<Value> VolumeDelete(const Value& args);
  Result<Value> VolumeInfo(const Value& args);
  Result<Value> VolumeStatus(const Value& args);
  Result<Value> VolumeSet(const Value& args);
  Result<Value> VolumeGet(const Value& args);
  Result<Value> VolumeReset(const Value& args);
  Result<Value> VolumeList();
  Result<Value> OptionHelp();
  Result<Value> VolumeLayout(const Value& args);
  Result<Value> LocalHeal(const Value& args);
  Result<Value> VolumeHeal(const Value& args);
  // Self-heal daemons: one per started replicated volume with a brick on this node.
  void ReconcileShd(const ClusterConfig& c);
  struct ShdWant {
    std::chrono::milliseconds poll;
    // Not empty for a geo-replication secondary's volume: heal writes to its read-only bricks
    // as a trusted internal client, like the applier (Gluster's shd is one too).
    std::string applier_secret;
  };
  void ReconcileShdLocked(const std::map<std::string, ShdWant>& want,
                          std::vector<std::shared_ptr<SelfHealDaemon>>* retired);
  std::shared_ptr<SelfHealDaemon> FindShd(const std::string& volume);
  std::mutex shd_mu_;
  std::map<std::string, std::shared_ptr<SelfHealDaemon>> shds_;
  // Geo-replication sessions and workers (mgmt/georep.h).
  std::unique_ptr<Georep> georep_;
  std::atomic<bool> georep_pending_{false};
  void ReconcileGeorepSoon();

  // --- transactions
  // Runs a pool-wide change: `mutate` edits a copy of the config; then lock, stage and commit
  // on every node. `joining` is a node being probed in; `may_skip` a node that may be left
  // out when unreachable (peer detach force). Returns the warnings the nodes reported.
  Result<std::vector<std::string>> RunTxn(const std::function<Status(ClusterConfig*)>& mutate,
                                          const std::string& joining = "",
                                          const std::string& may_skip = "");
  // A connection to a peer. Quick calls (hello, lock, stage, status) give up a few seconds
  // after the peer timeout: a peer that accepts but does not answer is as good as down. Slow
  // ones (commit, which waits for bricks to start or stop) get the client's long default.
  Result<std::unique_ptr<MgmtClient>> ConnectPeer(const PeerConf& p, bool slow = false);
  Result<Value> CallPeer(const PeerConf& p, MgmtOp op, const Value& args);
  // A node-local op (LocalStatus, LocalRestart, LocalHeal) on node `node`: answered here when
  // it is this node, else by that peer.
  Result<Value> CallNode(const ClusterConfig& c, const std::string& node, MgmtOp op,
                         const Value& args);
  Status CheckLock(const Value& args);
  Status StageLocal(const ClusterConfig& next, const std::string& joining);
  Status ApplyConfig(const ClusterConfig& next, std::vector<std::string>* warnings);

  // --- bricks
  ClusterConfig Config() {
    std::lock_guard<std::mutex> l(mu_);
    return config_;
  }
  bool IsLocal(const BrickConf& b) const { return b.node_uuid == uuid(); }
  std::set<std::string> DesiredBricks(const ClusterConfig& c) const;
  // Stops local bricks the config does not want running; with `start`, also starts (or adopts)
  // the ones it wants, adding the keys it started to *started.
  void Reconcile(const ClusterConfig& c, std::set<std::string>* started, bool start = true);
  Result<ProcessSpec> MakeSpec(const std::string& key);
  // The volume brick `key` belongs to in `c` ("" if none).
  static std::string VolumeOf(const ClusterConfig& c, const std::string& key);
  // Whether running brick `key` was started read-only or writable and `c` wants the other.
  bool ReadOnlyFlipDue(const ClusterConfig& c, const std::string& key, const ProcStatus& st);
  // This node's running bricks of `volume`, and whether each runs writable (no --read-only).
  std::vector<std::pair<std::string, bool>> BrickModes(const std::string& volume);
  // After restarting brick `key`: waits (up to 5 s) until it takes connections, then a little.
  void WaitBrickServing(const ClusterConfig& c, const std::string& key);
  std::string BrickLog(const BrickConf& b) const;
  // "127.0.0.1:/srv/b1 of pvol" for logs; the id itself when the brick is no longer configured.
  std::string Label(const std::string& key) {
    const VolumeConf* v = nullptr;
    ClusterConfig c = Config();
    const BrickConf* b = FindBrick(c, key, &v, nullptr);
    return b ? b->Name() + " of " + v->name : "id " + key;
  }
  void OnProcessStatus(const std::string& key, const ProcStatus& s);
  // Whether the brick answers on its port; *why when it does not.
  bool BrickOnline(const BrickConf& b, int port, std::string* why);
  Value LocalBrickStatus(const VolumeConf& v, size_t idx);
  // Only what a client needs to reach the brick: no probe of the port, no disk statistics.
  Value LocalBrickPort(const VolumeConf& v, size_t idx);
  Value VolumeInfoValue(const VolumeConf& v) const;
  Result<const VolumeConf*> FindVolume(const ClusterConfig& c, const std::string& name) const;
  std::string SelfName() const { return opt_.hostname + ":" + std::to_string(port()); }

  // --- heartbeat
  void HeartbeatLoop();

  DaemonOptions opt_;
  int lock_fd_ = -1;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<ThreadPool> quick_pool_;
  RpcServer server_;

  std::mutex mu_;  // config_, ports_, records_, lock_*, peer_state_
  ClusterConfig config_;
  std::map<std::string, int> ports_;
  std::map<std::string, BrickProcessRecord> records_;
  Txn lock_;
  std::chrono::steady_clock::time_point lock_expiry_;
  std::map<std::string, std::string> peer_state_;  // uuid -> "" (connected) or the error
  std::map<std::string, std::string> start_errors_;  // brick id -> why it could not be started

  std::mutex op_mu_;     // one transaction at a time from this node
  std::mutex apply_mu_;  // one ApplyConfig at a time

  std::mutex hb_mu_;
  std::condition_variable hb_cv_;
  bool stopping_ = false;
  std::thread heartbeat_;
  std::atomic<bool> stopped_{false};
  bool serving_ = false;
};

// ---------------------------------------------------------------------------------------------
// Startup and shutdown

Status Daemon::Impl::Init() {
  if (opt_.hostname.empty()) opt_.hostname = opt_.listen_host;
  if (opt_.hostname == "0.0.0.0" || opt_.hostname == "::") {
    return InvalidArgument("listening on a wildcard address needs --hostname: the address peers and clients reach this node at");
  }
  if (opt_.drfs_binary.empty()) {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return Status(Code::kInternal, "cannot find the drfs binary (/proc/self/exe)");
    opt_.drfs_binary.assign(buf, static_cast<size_t>(n));
  }
  DRFS_RETURN_IF_ERROR(FileSystem::Default()->CreateDirs(opt_.state_dir + "/logs/bricks")
                           .WithContext("cannot create state directory " + opt_.state_dir));
  const std::string lock_path = opt_.state_dir + "/drfsd.lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) return FailedPrecondition("cannot open " + lock_path + ": " + ErrnoText(errno));
  // A daemon that was just killed releases the lock as it exits, which may take a moment:
  // wait a little before calling it a second daemon (systemd restarts at once).
  bool locked = false;
  for (int i = 0; i < 60 && !(locked = ::flock(lock_fd_, LOCK_EX | LOCK_NB) == 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!locked) {
    char buf[32] = {};
    ssize_t n = ::pread(lock_fd_, buf, sizeof buf - 1, 0);
    std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
    while (!pid.empty() && (pid.back() == '\n')) pid.pop_back();
    return FailedPrecondition("another drfsd (pid " + pid + ") is using state directory " +
                              opt_.state_dir + "; stop it first, or give this one its own --state-dir");
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0) {
    DRFS_LOG(Warn) << "cannot write pid to " << lock_path << ": " << ErrnoText(errno);
  }

  DRFS_ASSIGN_OR_RETURN(store_, Store::Open(opt_.state_dir));
  DRFS_ASSIGN_OR_RETURN(config_, store_->LoadConfig());
  DRFS_ASSIGN_OR_RETURN(records_, store_->LoadProcesses());
  for (const auto& [key, r] : records_) ports_[key] = r.port;

  supervisor_ = std::make_unique<Supervisor>(
      opt_.supervisor, [this](const std::string& key, const ProcStatus& s) { OnProcessStatus(key, s); });
  pool_ = std::make_unique<ThreadPool>(opt_.request_threads, "drfsd-req");
  quick_pool_ = std::make_unique<ThreadPool>(2, "drfsd-quick");

  // Bricks first (adopting the ones a previous run left), so `volume status` right after start
  // sees them.
  const ClusterConfig loaded = config_;
  Reconcile(loaded, nullptr);

  ServerOptions so;
  so.io_threads = 2;
  so.max_payload = size_t{1} << 20;  // configurations are kilobytes
  GeorepHost gh;
  gh.node_uuid = uuid();
  gh.hostname = opt_.hostname;
  gh.state_dir = opt_.state_dir;
  gh.tls = opt_.tls;
  gh.config = [this] { return Config(); };
  gh.run_txn = [this](const std::function<Status(ClusterConfig*)>& m) { return RunTxn(m); };
  gh.call_node = [this](const std::string& node, MgmtOp op, const Value& a) {
    return CallNode(Config(), node, op, a);
  };
  gh.layout = [this](const std::string& vol) -> Result<volume::Layout> {
    Value a;
    a["volume"] = vol;
    DRFS_ASSIGN_OR_RETURN(Value v, VolumeLayout(a));
    return LayoutFromValue(v);
  };
  gh.self_name = [this] { return SelfName(); };
  gh.brick_modes = [this](const std::string& vol) { return BrickModes(vol); };
  // Made before serving: request threads and commits read georep_ without a lock.
  georep_ = std::make_unique<Georep>(std::move(gh));
  DRFS_RETURN_IF_ERROR(server_.Start(
      opt_.listen_host, opt_.port, opt_.tls,
      [this](std::shared_ptr<const PeerInfo> peer, Frame req, Responder reply) {
        OnRequest(std::move(peer), std::move(req), std::move(reply));
      },
      so));
  DRFS_LOG(Info) << "drfsd " << uuid() << " serving on " << opt_.listen_host << ":" << port()
                 << " as " << opt_.hostname << ", state in " << opt_.state_dir << " (generation "
                 << loaded.generation << ", " << loaded.peers.size() << " peers, "
                 << loaded.volumes.size() << " volumes)";
  ReconcileGeorepSoon();
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  serving_ = true;
  return Status::Ok();
}

void Daemon::Impl::Stop() {
  if (stopped_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> l(hb_mu_);
    stopping_ = true;
  }
  hb_cv_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  if (georep_) georep_->Stop();
  {
    std::map<std::string, std::shared_ptr<SelfHealDaemon>> shds;
    {
      std::lock_guard<std::mutex> l(shd_mu_);
      shds.swap(shds_);
    }
    shds.clear();  // joins each heal loop
  }
  server_.Stop();
  if (quick_pool_) quick_pool_->Shutdown();
  if (pool_) pool_->Shutdown();
  supervisor_.reset();  // stops watching; the bricks keep running
  if (lock_fd_ >= 0) ::close(lock_fd_);
  lock_fd_ = -1;
  if (serving_) DRFS_LOG(Info) << "drfsd stopped; brick processes keep running and are adopted at next start";
}

// ---------------------------------------------------------------------------------------------
// Requests

void Daemon::Impl::OnRequest(std::shared_ptr<const PeerInfo> peer, Frame req, Responder reply) {
  // A volume's layout is what any client of the volume needs to mount it, and changes nothing:
  // client and applier certificates may ask for it too.
  const bool layout_reader = static_cast<MgmtOp>(req.op) == MgmtOp::kVolumeLayout &&
                             (peer->role == "client" || peer->role == "applier");
  if (opt_.tls.enabled() && peer->role != "daemon" && !layout_reader) {
    reply.Send(0, EncodeReply(Status(Code::kPermissionDenied,
                                     "drfsd at " + SelfName() + " takes management requests only "
                                     "from certificates with role 'daemon' (this one has '" +
                                         peer->role + "'); use the node's daemon certificate")));
    return;
  }
  const auto op = static_cast<MgmtOp>(req.op);
  auto task = [this, req = std::move(req), reply]() {
    Result<Value> r = [&]() -> Result<Value> {
      try {
        DRFS_ASSIGN_OR_RETURN(Value args, DecodeValue(req.payload));
        return Dispatch(static_cast<MgmtOp>(req.op), args);
      } catch (const std::exception& e) {
        // Nothing here should throw; if something does (out of memory), fail this request,
        // not the daemon.
        DRFS_LOG(Error) << "management request " << req.op << " failed: " << e.what();
        return Status(Code::kInternal, std::string("drfsd at ") + SelfName() +
                                           " could not handle the request: " + e.what());
      }
    }();
    reply.Send(0, EncodeReply(r));
  };
  // Short questions from peers get their own threads, so they are answered while long
  // transactions occupy the main pool (a peer's lock request must never wait behind ours).
  const bool quick = op == MgmtOp::kHello || op == MgmtOp::kLock || op == MgmtOp::kUnlock ||
                     op == MgmtOp::kGetConfig || op == MgmtOp::kPushConfig;
  if (!(quick ? quick_pool_ : pool_)->Submit(std::move(task))) {
    reply.Send(0, EncodeReply(Unavailable("drfsd at " + SelfName() + " is shutting down; retry")));
  }
}

Result<Value> Daemon::Impl::Dispatch(MgmtOp op, const Value& args) {
  switch (op) {
    case MgmtOp::kHello: return Hello();
    case MgmtOp::kGetConfig: return Config().ToValue();
    case MgmtOp::kLock: return LockOp(args, true);
    case MgmtOp::kUnlock: return LockOp(args, false);
    case MgmtOp::kStage: return StageOp(args);
    case MgmtOp::kCommit: return CommitOp(args);
    case MgmtOp::kLocalStatus: return LocalStatus(args);
    case MgmtOp::kLocalRestart: return LocalRestart(args);
    case MgmtOp::kPushConfig: return PushConfig(args);
    case MgmtOp::kPeerProbe: return PeerProbe(args);
    case MgmtOp::kPeerDetach: return PeerDetach(args);
    case MgmtOp::kPeerStatus: return PeerStatus();
    case MgmtOp::kVolumeCreate: return VolumeCreate(args);
    case MgmtOp::kVolumeStart: return VolumeStart(args);
    case MgmtOp::kVolumeStop: return VolumeStop(args);
    case MgmtOp::kVolumeDelete: return VolumeDelete(args);
    case MgmtOp::kVolumeInfo: return VolumeInfo(args);
    case MgmtOp::kVolumeStatus: return VolumeStatus(args);
    case MgmtOp::kVolumeSet: return VolumeSet(args);
    case MgmtOp::kVolumeGet: return VolumeGet(args);
    case MgmtOp::kVolumeReset: return VolumeReset(args);
    case MgmtOp::kVolumeList: return VolumeList();
    case MgmtOp::kOptionHelp: return OptionHelp();
    case MgmtOp::kVolumeLayout: return VolumeLayout(args);
    case MgmtOp::kLocalHeal: return LocalHeal(args);
    case MgmtOp::kVolumeHeal: return VolumeHeal(args);
    case MgmtOp::kGeorepCreate:
    case MgmtOp::kGeorepJoin:
    case MgmtOp::kGeorepControl:
    case MgmtOp::kGeorepPeerControl:
    case MgmtOp::kGeorepStatus:
    case MgmtOp::kGeorepLocalStatus:
    case MgmtOp::kGeorepApplierStatus:
    case MgmtOp::kGeorepConfig:
    case MgmtOp::kGeorepCheckpoint:
    case MgmtOp::kGeorepBroker:
    case MgmtOp::kGeorepBrokerFault:
    case MgmtOp::kGeorepSwitch:
    case MgmtOp::kGeorepPeerSwitch:
    case MgmtOp::kGeorepLocalSwitch:
      if (!georep_) return Unavailable("drfsd is starting; retry");
      return georep_->Handle(op, args);
  }
  return InvalidArgument("unknown management op " + std::to_string(static_cast<int>(op)) +
                         "; is the drfs CLI newer than this drfsd?");
}

// ---------------------------------------------------------------------------------------------
// Daemon to daemon

Result<Value> Daemon::Impl::Hello() {
  ClusterConfig c = Config();
  Value v;
  v["uuid"] = uuid();
  v["host"] = opt_.hostname;
  v["port"] = static_cast<int64_t>(port());
  v["generation"] = c.generation;
  v["digest"] = c.Digest();
  v["peers"] = static_cast<int64_t>(c.peers.size());
  v["volumes"] = static_cast<int64_t>(c.volumes.size());
  return v;
}

Status Daemon::Impl::CheckLock(const Value& args) {
  std::lock_guard<std::mutex> l(mu_);
  if (lock_.owner != args.GetString("owner") || lock_.id != args.GetString("txn")) {
    return Aborted("node " + SelfName() + " is not locked by this transaction (its lock expired or was taken); retry the command");
  }
  return Status::Ok();
}

Result<Value> Daemon::Impl::LockOp(const Value& args, bool lock) {
  const std::string owner = args.GetString("owner");
  const std::string id = args.GetString("txn");
  std::lock_guard<std::mutex> l(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (!lock) {
    if (lock_.owner == owner && lock_.id == id) lock_ = Txn{};
    return Value();
  }
  if (!lock_.owner.empty() && now < lock_expiry_ && !(lock_.owner == owner && lock_.id == id)) {
    const PeerConf* p = config_.FindPeer(lock_.owner);
    return Unavailable("another configuration change (from " +
                       (p ? p->host + ":" + std::to_string(p->port) : lock_.owner) +
                       ") is in progress on " + SelfName() + "; retry in a moment");
  }
  lock_ = Txn{owner, id};
  lock_expiry_ = now + kLockLease;
  return Value();
}

Result<Value> Daemon::Impl::StageOp(const Value& args) {
  DRFS_RETURN_IF_ERROR(CheckLock(args));
  const Value* cv = args.Find("config");
  if (!cv) return InvalidArgument("stage request without a config");
  DRFS_ASSIGN_OR_RETURN(ClusterConfig next, ClusterConfig::FromValue(*cv));
  DRFS_RETURN_IF_ERROR(StageLocal(next, args.GetString("joining")));
  return Value();
}

Status Daemon::Impl::StageLocal(const ClusterConfig& next, const std::string& joining) {
  ClusterConfig cur = Config();
  if (joining == uuid()) {
    if (!cur.peers.empty() || !cur.volumes.empty()) {
      return FailedPrecondition("node " + SelfName() + " is already part of a pool (" +
                                std::to_string(cur.peers.size()) + " peers, " +
                                std::to_string(cur.volumes.size()) +
                                " volumes); run 'drfs peer detach' there first");
    }
  } else if (cur.generation != next.generation - 1) {
    return Aborted("node " + SelfName() + " has configuration generation " +
                   std::to_string(cur.generation) + ", but the change was made against " +
                   std::to_string(next.generation - 1) + "; the pool is syncing, retry in a few seconds");
  }
  // Prepare the directories of bricks this node gains.
  for (const auto& [name, v] : next.volumes) {
    auto old = cur.volumes.find(name);
    for (const auto& b : v.bricks) {
      if (!IsLocal(b)) continue;
      if (old != cur.volumes.end() &&
          std::find(old->second.bricks.begin(), old->second.bricks.end(), b) != old->second.bricks.end()) {
        continue;
      }
      if (PathOverlaps(b.path, opt_.state_dir)) {
        return FailedPrecondition("brick " + b.Name() + " overlaps drfsd's state directory " + opt_.state_dir + "; choose another directory");
      }
      // Only check here: a change refused by any node must leave no directory behind. The
      // commit creates it.
      std::string existing = b.path;
      struct stat st;
      while (::stat(existing.c_str(), &st) != 0) {
        if (errno != ENOENT && errno != ENOTDIR) {
          return FailedPrecondition("brick directory " + b.Name() + ": cannot stat " + existing + ": " + ErrnoText(errno));
        }
        const size_t slash = existing.rfind('/');
        if (slash == std::string::npos || existing == "/") {
          return FailedPrecondition("brick directory " + b.Name() + " is not an absolute path");
        }
        existing = slash == 0 ? "/" : existing.substr(0, slash);
      }
      if (!S_ISDIR(st.st_mode)) {
        return FailedPrecondition("brick directory " + b.Name() + " cannot be created: " + existing + " is not a directory");
      }
      if (::access(existing.c_str(), W_OK | X_OK) != 0) {
        return FailedPrecondition("brick directory " + b.Name() + " cannot be created: " + existing + " is not writable (" + ErrnoText(errno) + ")");
      }
      if (existing != b.path) continue;
      std::string marker = ReadMarker(b.path);
      if (!marker.empty() && marker != v.uuid) {
        return FailedPrecondition("brick " + b.Name() + " is already part of volume " + marker +
                                  " (its " + kVolumeIdXattr + " says so); use another directory, "
                                  "or if that volume is gone run 'setfattr -x " + kVolumeIdXattr + " " + b.path + "'");
      }
      if (::access(b.path.c_str(), W_OK) != 0) {
        return FailedPrecondition("brick directory " + b.Name() + " is not writable: " + ErrnoText(errno));
      }
    }
  }
  return Status::Ok();
}

Result<Value> Daemon::Impl::CommitOp(const Value& args) {
  DRFS_RETURN_IF_ERROR(CheckLock(args));
  const Value* cv = args.Find("config");
  if (!cv) return InvalidArgument("commit request without a config");
  DRFS_ASSIGN_OR_RETURN(ClusterConfig next, ClusterConfig::FromValue(*cv));
  std::vector<std::string> warnings;
  DRFS_RETURN_IF_ERROR(ApplyConfig(next, &warnings));
  Value r;
  r["warnings"] = Value::EmptyList();
  for (auto& w : warnings) r["warnings"].Push(w);
  return r;
}

Status Daemon::Impl::ApplyConfig(const ClusterConfig& in, std::vector<std::string>* warnings) {
  std::lock_guard<std::mutex> apply(apply_mu_);
  const ClusterConfig old = Config();
  if (in.generation <= old.generation) {
    return Aborted("node " + SelfName() + " already has configuration generation " +
                   std::to_string(old.generation) + " (offered " + std::to_string(in.generation) +
                   "); retry the command");
  }
  ClusterConfig next = in;
  if (!next.peers.empty() && !next.FindPeer(uuid())) {
    DRFS_LOG(Info) << "this node was detached from its pool; it is on its own now";
    next = ClusterConfig{};
  }
  DRFS_RETURN_IF_ERROR(store_->SaveConfig(next));
  DRFS_LOG(Info) << "configuration generation " << next.generation << " in effect ("
                 << next.peers.size() << " peers, " << next.volumes.size() << " volumes)";
  {
    std::lock_guard<std::mutex> l(mu_);
    config_ = next;
  }
  // Volume-id markers: gained bricks get one, lost bricks lose theirs.
  auto local_bricks = [this](const ClusterConfig& c) {
    std::map<std::string, std::string> m;  // path -> volume uuid
    for (const auto& [n, v] : c.volumes) {
      for (const auto& b : v.bricks) {
        if (IsLocal(b)) m[b.path] = v.uuid;
      }
    }
    return m;
  };
  auto before = local_bricks(old);
  auto after = local_bricks(next);
  std::set<std::string> started;
  // Stop what is no longer wanted before the marks of deleted bricks go; start only after new
  // brick directories exist.
  Reconcile(next, &started, /*start=*/false);
  for (const auto& [path, vid] : before) {
    if (after.count(path) == 0 && ReadMarker(path) == vid) ::removexattr(path.c_str(), kVolumeIdXattr);
  }
  for (const auto& [path, vid] : after) {
    // Only bricks this change adds. An existing brick without its mark is most likely an
    // unmounted disk's mount point: marking it here would defeat the check that keeps drfsd
    // from serving it (MakeSpec).
    // (A path that now belongs to a different volume, deleted and re-created while this node
    // was down, is new to it: it gets the new volume's mark, as it would have online.)
    if (auto it = before.find(path); it != before.end() && it->second == vid) continue;
    if (Status made = FileSystem::Default()->CreateDirs(path).WithContext(
            "cannot create brick directory " + opt_.hostname + ":" + path);
        !made.ok()) {
      if (warnings) warnings->push_back(made.message());
      continue;
    }
    const std::string mark = ReadMarker(path);
    if (!mark.empty() && mark != vid && !(before.count(path) && before.at(path) == mark)) {
      // Someone else's mark (not the volume this node just dropped): leave it; the brick will
      // not start and says why.
      if (warnings) warnings->push_back("brick " + opt_.hostname + ":" + path + " carries volume id " + mark + "; not re-marking it");
      continue;
    }
    if (mark != vid &&
        ::setxattr(path.c_str(), kVolumeIdXattr, vid.data(), vid.size(), 0) != 0) {
      if (warnings) warnings->push_back("cannot mark brick " + opt_.hostname + ":" + path + " with its volume id: " + ErrnoText(errno));
    }
  }
  Reconcile(next, &started, /*start=*/true);
  ReconcileGeorepSoon();
  if (warnings == nullptr || started.empty()) return Status::Ok();
  // Wait for the bricks this commit started to answer, so `volume start` reports the truth.
  const auto deadline = std::chrono::steady_clock::now() + opt_.brick_start_wait;
  for (const auto& key : started) {
    const BrickConf* bp = FindBrick(next, key, nullptr, nullptr);
    if (!bp) continue;
    const BrickConf& b = *bp;
    std::string why;
    for (;;) {
      auto st = supervisor_->Get(key);
      int p;
      {
        std::lock_guard<std::mutex> l(mu_);
        p = ports_.count(key) ? ports_[key] : 0;
      }
      if (st && st->state == ProcState::kFailed) {
        why = st->failure_reason;
        break;
      }
      if (p != 0 && BrickOnline(b, p, &why)) {
        why.clear();
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!why.empty()) {
      warnings->push_back("brick " + b.Name() + " is not online: " + why + " (log: " + BrickLog(b) + ")");
    }
  }
  return Status::Ok();
}

Result<Value> Daemon::Impl::LocalStatus(const Value& args) {
  ClusterConfig c = Config();
  DRFS_ASSIGN_OR_RETURN(const VolumeConf* v, FindVolume(c, args.GetString("volume")));
  const bool ports_only = args.GetBool("ports_only");
  Value r;
  r["bricks"] = Value::EmptyList();
  for (size_t i = 0; i < v->bricks.size(); ++i) {
    if (!IsLocal(v->bricks[i])) continue;
    r["bricks"].Push(ports_only ? LocalBrickPort(*v, i) : LocalBrickStatus(*v, i));
  }
  return r;
}

Result<Value> Daemon::Impl::LocalRestart(const Value& args) {
  ClusterConfig c = Config();
  DRFS_ASSIGN_OR_RETURN(const VolumeConf* v, FindVolume(c, args.GetString("volume")));
  Value r;
  r["restarted"] = Value::EmptyList();
  for (size_t i = 0; i < v->bricks.size(); ++i) {
    if (!IsLocal(v->bricks[i])) continue;
    const std::string& key = v->bricks[i].brick_id;
    auto st = supervisor_->Get(key);
    if (st && st->state == ProcState::kFailed) {
      DRFS_RETURN_IF_ERROR(supervisor_->Restart(key));
      r["restarted"].Push(v->bricks[i].Name());
    }
    bool had_error;
    {
      std::lock_guard<std::mutex> l(mu_);
      had_error = start_errors_.erase(key) > 0;
    }
    if (had_error) r["restarted"].Push(v->bricks[i].Name());
  }
  // Bricks that could not even be started (say, a missing volume-id mark) try again now.
  std::lock_guard<std::mutex> apply(apply_mu_);
  Reconcile(Config(), nullptr);
  return r;
}

Result<Value> Daemon::Impl::PushConfig(const Value& args) {
  const Value* cv = args.Find("config");
  if (!cv) return InvalidArgument("push request without a config");
  DRFS_ASSIGN_OR_RETURN(ClusterConfig next, ClusterConfig::FromValue(*cv));
  const std::string from = args.GetString("from");
  ClusterConfig cur = Config();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!lock_.owner.empty() && std::chrono::steady_clock::now() < lock_expiry_) {
      return Unavailable("a configuration change is in progress on " + SelfName());
    }
  }
  if (next.generation <= cur.generation || !next.FindPeer(uuid()) || !next.FindPeer(from)) {
    return Value();  // nothing newer for this node
  }
  // Only from a node of this node's own pool, or, for a node that is alone (a probe whose
  // commit never reached it), from the pool that lists it.
  const bool alone = cur.peers.empty() && cur.volumes.empty();
  if (!alone && !cur.FindPeer(from)) {
    return FailedPrecondition("node " + SelfName() + " is in another pool; not taking its configuration from " + from);
  }
  DRFS_LOG(Info) << "peer " << from << " sent configuration generation " << next.generation
                 << " (this node had " << cur.generation << ")";
  DRFS_RETURN_IF_ERROR(ApplyConfig(next, nullptr));
  return Value();
}

// ---------------------------------------------------------------------------------------------
// Transactions

Result<std::unique_ptr<MgmtClient>> Daemon::Impl::ConnectPeer(const PeerConf& p, bool slow) {
  if (slow) return MgmtClient::Connect(p.host, p.port, opt_.tls, opt_.peer_timeout);
  return MgmtClient::Connect(p.host, p.port, opt_.tls, opt_.peer_timeout,
                             opt_.peer_timeout + std::chrono::seconds(5));
}

Result<Value> Daemon::Impl::CallPeer(const PeerConf& p, MgmtOp op, const Value& args) {
  DRFS_ASSIGN_OR_RETURN(auto c, ConnectPeer(p));
  return c->Call(op, args);
}

Result<Value> Daemon::Impl::CallNode(const ClusterConfig& c, const std::string& node, MgmtOp op,
                                     const Value& args) {
  if (node == uuid()) return Dispatch(op, args);
  const PeerConf* p = c.FindPeer(node);
  if (!p) return NotFound("node " + node + " is not in the pool");
  return CallPeer(*p, op, args);
}

Result<std::vector<std::string>> Daemon::Impl::RunTxn(
    const std::function<Status(ClusterConfig*)>& mutate, const std::string& joining,
    const std::string& may_skip) {
  std::unique_lock<std::mutex> op(op_mu_, std::try_to_lock);
  if (!op.owns_lock()) {
    return Unavailable("another configuration change is running from " + SelfName() +
                       "; retry when it is done");
  }
  const ClusterConfig old = Config();
  ClusterConfig next = old;
  DRFS_RETURN_IF_ERROR(mutate(&next));
  next.generation = old.generation + 1;

  // Every other node of the pool, before and after the change.
  std::vector<PeerConf> nodes;
  for (const std::vector<PeerConf>* list : std::vector<const std::vector<PeerConf>*>{&old.peers, &next.peers}) {
    for (const auto& p : *list) {
      if (p.uuid == uuid()) continue;
      if (std::none_of(nodes.begin(), nodes.end(), [&](const PeerConf& q) { return q.uuid == p.uuid; })) {
        nodes.push_back(p);
      }
    }
  }
  Value lock_args;
  lock_args["owner"] = uuid();
  lock_args["txn"] = Gfid::Random().ToString();

  std::vector<PeerTarget> targets;
  auto unlock_all = [&] {
    for (auto& t : targets) {
      auto r = t.client->Call(MgmtOp::kUnlock, lock_args);
      if (!r.ok()) DRFS_LOG(Warn) << "unlock of " << t.client->target() << ": " << r.status().ToString();
    }
    (void)LockOp(lock_args, false);
  };
  DRFS_RETURN_IF_ERROR(LockOp(lock_args, true).status());
  for (const auto& p : nodes) {
    auto c = ConnectPeer(p);  // lock and stage are quick
    Result<Value> locked = c.ok() ? (*c)->Call(MgmtOp::kLock, lock_args) : Result<Value>(c.status());
    if (!locked.ok()) {
      const Code code = locked.status().code();
      if (p.uuid == may_skip && (code == Code::kUnavailable || code == Code::kDeadlineExceeded)) {
        DRFS_LOG(Warn) << "peer " << p.host << " is unreachable; detaching it anyway (force)";
        continue;
      }
      unlock_all();
      if (!c.ok()) {
        return Unavailable("peer " + p.host + ":" + std::to_string(p.port) + " is unreachable (" +
                           c.status().message() + "); configuration changes need every peer of the "
                           "pool. Start drfsd there, or remove it with 'drfs peer detach " + p.host + " force'");
      }
      return Status(locked.status().code(), locked.status().message());
    }
    targets.push_back({p, std::move(*c)});
  }

  Value txn_args = lock_args;
  txn_args["config"] = next.ToValue();
  txn_args["joining"] = joining;
  // Stage everywhere: any node may refuse, and nothing has changed yet.
  for (auto& t : targets) {
    auto r = t.client->Call(MgmtOp::kStage, txn_args);
    if (!r.ok()) {
      unlock_all();
      return Status(r.status().code(), "peer " + t.peer.host + " refused the change: " + r.status().message());
    }
  }
  if (Status s = StageLocal(next, joining); !s.ok()) {
    unlock_all();
    return s;
  }
  // Commit everywhere, this node last. A node that fails here catches up from a peer at its
  // next heartbeat (it sees the newer generation).
  std::vector<std::string> warnings;
  for (auto& t : targets) {
    // Renew the lock (its lease may be running out after a long stage elsewhere); a node whose
    // lock was taken meanwhile is skipped and catches up by the heartbeat.
    Result<Value> r = t.client->Call(MgmtOp::kLock, lock_args);
    if (r.ok()) {
      auto c = ConnectPeer(t.peer, /*slow=*/true);
      r = c.ok() ? (*c)->Call(MgmtOp::kCommit, txn_args) : Result<Value>(c.status());
    }
    if (!r.ok()) {
      warnings.push_back("peer " + t.peer.host + " did not confirm the commit (" + r.status().message() +
                         "); it will pull the new configuration when it is reachable");
      continue;
    }
    if (const Value* ws = r->Find("warnings")) {
      for (const auto& w : ws->AsList()) warnings.push_back(w.AsString());
    }
  }
  Status s = LockOp(lock_args, true).status();
  if (s.ok()) s = ApplyConfig(next, &warnings);
  unlock_all();
  if (!s.ok()) {
    if (targets.empty()) return s;
    return Status(s.code(), "the change is committed on the other " + std::to_string(targets.size()) +
                                " node(s) but not on this one (" + s.message() +
                                "); this node catches up from a peer once that is fixed");
  }
  return warnings;
}

// ---------------------------------------------------------------------------------------------
// Peers

Result<Value> Daemon::Impl::PeerProbe(const Value& args) {
  PeerConf target;
  target.host = args.GetString("host");
  target.port = static_cast<uint16_t>(args.GetInt("port", kDefaultDaemonPort));
  if (target.host.empty()) return InvalidArgument("peer probe needs a host");
  DRFS_ASSIGN_OR_RETURN(auto client, ConnectPeer(target));
  DRFS_ASSIGN_OR_RETURN(Value hello, client->Call(MgmtOp::kHello, Value::EmptyMap()));
  target.uuid = hello.GetString("uuid");
  const std::string name = target.host + ":" + std::to_string(target.port);
  if (target.uuid == uuid()) {
    return InvalidArgument(name + " is this node; probe another node");
  }
  ClusterConfig c = Config();
  Value r;
  r["peer"]["uuid"] = target.uuid;
  r["peer"]["host"] = target.host;
  r["peer"]["port"] = static_cast<int64_t>(target.port);
  if (c.FindPeer(target.uuid)) {
    r["message"] = "peer probe: " + name + " is already in the pool";
    return r;
  }
  if (c.FindPeerByHost(target.host)) {
    return AlreadyExists("another node of the pool is already known as " + target.host +
                         "; each node needs its own address");
  }
  auto loopback = [](const std::string& h) { return h == "localhost" || h.rfind("127.", 0) == 0 || h == "::1"; };
  if (c.peers.empty() && loopback(opt_.hostname) && !loopback(target.host)) {
    return FailedPrecondition("this node is known as " + opt_.hostname + ", which " + target.host +
                              " cannot reach; restart drfsd with --hostname (and --listen) set to an "
                              "address the other nodes can reach, then probe again");
  }
  if (hello.GetInt("peers") > 0 || hello.GetInt("volumes") > 0) {
    return FailedPrecondition(name + " is already part of another pool (" +
                              std::to_string(hello.GetInt("peers")) + " peers, " +
                              std::to_string(hello.GetInt("volumes")) +
                              " volumes); run 'drfs peer detach' on that pool first");
  }
  client.reset();
  DRFS_ASSIGN_OR_RETURN(auto warnings, RunTxn([&](ClusterConfig* n) -> Status {
    if (n->FindPeer(target.uuid) || n->FindPeerByHost(target.host)) {
      return AlreadyExists(name + " joined the pool meanwhile");
    }
    if (n->peers.empty()) n->peers.push_back({uuid(), opt_.hostname, port()});
    n->peers.push_back(target);
    return Status::Ok();
  }, target.uuid));
  r["message"] = "peer probe: success";
  r["warnings"] = Value::EmptyList();
  for (auto& w : warnings) r["warnings"].Push(w);
  return r;
}

Result<Value> Daemon::Impl::PeerDetach(const Value& args) {
  const std::string host = args.GetString("host");
  const bool force = args.GetBool("force");
  ClusterConfig c = Config();
  const PeerConf* p = c.FindPeerByHost(host);
  if (!p) return NotFound("peer " + host + " is not in the pool; 'drfs peer status' lists it");
  if (p->uuid == uuid()) {
    return FailedPrecondition(host + " is this node; run the detach from another node of the pool");
  }
  std::set<std::string> vols;
  for (const auto& [n, v] : c.volumes) {
    for (const auto& b : v.bricks) {
      if (b.node_uuid == p->uuid) vols.insert(n);
    }
  }
  if (!vols.empty()) {
    std::string list;
    for (const auto& n : vols) list += (list.empty() ? "" : ", ") + n;
    return FailedPrecondition("peer " + host + " has bricks in volume(s) " + list +
                              "; delete those volumes first");
  }
  const std::string gone = p->uuid;
  DRFS_ASSIGN_OR_RETURN(auto warnings, RunTxn([&](ClusterConfig* n) -> Status {
    for (const auto& [vn, v] : n->volumes) {
      for (const auto& b : v.bricks) {
        if (b.node_uuid == gone) return FailedPrecondition("peer " + host + " has bricks in volume " + vn + "; delete it first");
      }
    }
    if (!n->FindPeer(gone)) return NotFound("peer " + host + " is no longer in the pool");
    std::erase_if(n->peers, [&](const PeerConf& q) { return q.uuid == gone; });
    if (n->peers.size() == 1) n->peers.clear();  // alone again
    return Status::Ok();
  }, "", force ? gone : ""));
  Value r;
  r["message"] = "peer detach: success";
  r["warnings"] = Value::EmptyList();
  for (auto& w : warnings) r["warnings"].Push(w);
  return r;
}

Result<Value> Daemon::Impl::PeerStatus() {
  ClusterConfig c = Config();
  Value r;
  r["self"]["uuid"] = uuid();
  r["self"]["host"] = opt_.hostname;
  r["self"]["port"] = static_cast<int64_t>(port());
  r["generation"] = c.generation;
  r["peers"] = Value::EmptyList();
  for (const auto& p : c.peers) {
    if (p.uuid == uuid()) continue;
    Value e;
    e["uuid"] = p.uuid;
    e["host"] = p.host;
    e["port"] = static_cast<int64_t>(p.port);
    auto hello = CallPeer(p, MgmtOp::kHello, Value::EmptyMap());
    e["connected"] = hello.ok();
    e["state"] = hello.ok() ? "Connected" : "Disconnected";
    e["error"] = hello.ok() ? "" : hello.status().message();
    e["generation"] = hello.ok() ? hello->GetInt("generation") : -1;
    // false: same generation as this node but other content (see the heartbeat), or behind.
    e["config_in_sync"] = hello.ok() && hello->GetInt("generation") == c.generation &&
                          hello->GetString("digest") == c.Digest();
    r["peers"].Push(std::move(e));
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Volumes

Result<const VolumeConf*> Daemon::Impl::FindVolume(const ClusterConfig& c, const std::string& name) const {
  auto it = c.volumes.find(name);
  if (it == c.volumes.end()) {
    return NotFound("volume " + name + " does not exist; 'drfs volume list' shows the volumes");
  }
  return &it->second;
}

Result<Value> Daemon::Impl::VolumeCreate(const Value& args) {
  const std::string name = args.GetString("name");
  const int replica = static_cast<int>(args.GetInt("replica", 1));
  const bool arbiter = args.GetBool("arbiter");
  const bool force = args.GetBool("force");
  if (!IsValidVolumeName(name)) {
    return InvalidArgument("'" + name + "' is not a valid volume name: use 1-64 letters, digits, '_' or '-', not starting with '-'");
  }
  const Value* list = args.Find("bricks");
  if (!list || list->AsList().empty()) return InvalidArgument("volume create needs at least one brick (HOST:/DIR)");
  if (replica < 1 || replica > 16) return InvalidArgument("replica count " + std::to_string(replica) + " is out of range (2-16)");
  if (arbiter && replica != 3) return InvalidArgument("an arbiter needs 'replica 3 arbiter 1'");
  const size_t n = list->AsList().size();
  if (n % static_cast<size_t>(replica) != 0) {
    return InvalidArgument("brick count " + std::to_string(n) + " is not a multiple of the replica count " +
                           std::to_string(replica));
  }
  // Checked against the current config first (a quick refusal, no locks), then again inside the
  // transaction against the config it commits on top of, which a concurrent change from
  // another node may have moved.
  VolumeConf v;
  auto build = [&](const ClusterConfig& c) -> Status {
  if (c.volumes.count(name)) return AlreadyExists("volume " + name + " already exists");
  v = VolumeConf{};
  v.name = name;
  v.uuid = Gfid::Random().ToString();
  v.replica = replica;
  v.arbiter = arbiter;
  v.state = kVolumeCreated;
  v.created_ns = static_cast<int64_t>(NowNs());
  for (const auto& item : list->AsList()) {
    const std::string spec = item.AsString();
    auto sep = spec.find(":/");
    if (sep == std::string::npos || sep == 0) {
      return InvalidArgument("brick '" + spec + "' is not HOST:/ABSOLUTE/DIR");
    }
    BrickConf b;
    b.host = spec.substr(0, sep);
    DRFS_ASSIGN_OR_RETURN(b.path, NormalizeBrickPath(spec.substr(sep + 1)));
    if (c.peers.empty()) {
      if (b.host != opt_.hostname) {
        return FailedPrecondition("host " + b.host + " of brick " + spec + " is not in the pool (this node is " +
                                  opt_.hostname + "); add it with 'drfs peer probe " + b.host + "'");
      }
      b.node_uuid = uuid();
    } else {
      const PeerConf* p = c.FindPeerByHost(b.host);
      if (!p) {
        return FailedPrecondition("host " + b.host + " of brick " + spec +
                                  " is not in the pool; add it with 'drfs peer probe " + b.host + "'");
      }
      b.node_uuid = p->uuid;
    }
    b.brick_id = Gfid::Random().ToString();
    for (const auto& o : v.bricks) {
      if (o.node_uuid != b.node_uuid) continue;
      if (o.path == b.path) return InvalidArgument("brick " + b.Name() + " is listed twice");
      if (PathOverlaps(o.path, b.path)) {
        return InvalidArgument("bricks " + o.Name() + " and " + b.Name() + " are nested; bricks must not contain each other");
      }
    }
    for (const auto& [vn, ov] : c.volumes) {
      for (const auto& o : ov.bricks) {
        if (o.node_uuid == b.node_uuid && PathOverlaps(o.path, b.path)) {
          return FailedPrecondition("brick " + b.Name() + (o.path == b.path ? " is already used by" : " overlaps brick " + o.Name() + " of") +
                                    " volume " + vn + "; choose another directory");
        }
      }
    }
    v.bricks.push_back(std::move(b));
  }
  if (replica > 1 && !force) {
    for (size_t s = 0; s < v.bricks.size(); s += replica) {
      std::set<std::string> nodes;
      for (int k = 0; k < replica; ++k) {
        if (!nodes.insert(v.bricks[s + k].node_uuid).second) {
          return FailedPrecondition("replica set " + std::to_string(s / replica) + " has two bricks on host " +
                                    v.bricks[s + k].host + "; losing that host would lose both copies. "
                                    "Put each replica on its own host, or add 'force' to accept this");
        }
      }
    }
  }
  return Status::Ok();
  };
  DRFS_RETURN_IF_ERROR(build(Config()));
  DRFS_ASSIGN_OR_RETURN(auto warnings, RunTxn([&](ClusterConfig* next) {
    DRFS_RETURN_IF_ERROR(build(*next));
    next->volumes[name] = v;
    return Status::Ok();
  }));
  Value r;
  r["volume"] = VolumeInfoValue(v);
  r["message"] = "volume create: " + name + ": success: please start the volume to access data";
  r["warnings"] = Value::EmptyList();
  for (auto& w : warnings) r["warnings"].Push(w);
  return r;
}

Result<Value> Daemon::Impl::VolumeStart(const Value& args) {
  const std::string name = args.GetString("name");
  const bool force = args.GetBool("force");
  ClusterConfig c = Config();
  DRFS_ASSIGN_OR_RETURN(const VolumeConf* v, FindVolume(c, name));
  Value r;
  r["warnings"] = Value::EmptyList();
  if (v->state == kVolumeStarted) {
    if (!force) {
      return FailedPrecondition("volume " + name + " is already started; 'drfs volume start " + name +
                                " force' restarts bricks that failed");
    }
    std::set<std::string> nodes;
    for (const auto& b : v->bricks) nodes.insert(b.node_uuid);
    Value a;
    a["volume"] = name;
    for (const auto& node : nodes) {
      Result<Value> res = CallNode(c, node, MgmtOp::kLocalRestart, a);
      if (!res.ok()) r["warnings"].Push(res.status().message());
    }
    r["message"] = "volume start: " + name + ": success";
    return r;
  }
  DRFS_ASSIGN_OR_RETURN(auto warnings, RunTxn([&](ClusterConfig* next) -> Status {
    DRFS_ASSIGN_OR_RETURN(const VolumeConf* cur, FindVolume(*next, name));
    if (cur->state == kVolumeStarted) return FailedPrecondition("volume " + name + " is already started");
    next->volumes[name].state = kVolumeStarted;
    return Status::Ok();
  }));
  for (auto& w : warnings) r["warnings"].Push(w);
  r["message"] = "volume start: " + name + ": success";
  return r;
}

Result<Value> Daemon::Impl::VolumeStop(const Value& args) {
  const std::string name = args.GetString("name");
  DRFS_ASSIGN_OR_RETURN(auto warnings, RunTxn([&](ClusterConfig* next) -> Status {
    DRFS_ASSIGN_OR_RETURN(const VolumeConf* cur, FindVolume(*next, name));
    if (cur->state != kVolumeStarted) {
      return FailedPrecondition("volume " + name + " is not started (it is " + cur->state + ")");
    }
    for (const auto& [sn, se] : next->sessions) {
      if (se.volume == name && (se.state == kSessionStarted || se.state == kSessionPaused) &&
          !args.GetBool("force")) {
        return FailedPrecondition("volume " + name + " has a running geo-replication session '" + sn +
                                  "'; stop it first with 'drfs georep stop " + sn +
                                  "' (add 'force' there if the secondary site cannot be reached)");
      }
    }
    next->volumes[name].state = kVolumeStopped;
    return Status::Ok();
  }));
  Value r;
  r["message"] = "volume stop: " + name + ": success";
  r["warnings"] = Value::EmptyList();
  for (auto& w : warnings) r["warnings"].Push(w);
  return r;
}

Result<Value> Daemon::Impl::VolumeDelete(const Value& args) {
  const std::string name = args.GetString("name");
  DRFS_ASSIGN_OR_RETURN(auto warnings, RunTxn([&](ClusterConfig* next) -> Status {
    DRFS_ASSIGN_OR_RETURN(const VolumeConf* cur, FindVolume(*next, name));
    if (cur->state == kVolumeStarted) {
      return FailedPrecondition("volume " + name + " is started; stop it first with 'drfs volume stop " + name + "'");
    }
    for (const auto& [sn, se] : next->sessions) {
      if (se.volume == name) {
        return FailedPrecondition("volume " + name + " is in geo-replication session '" + sn +
                                  "'; delete the session first with 'drfs georep delete " + sn + "'");
      }
    }
    next->volumes.erase(name);
    return Status::Ok();
  }));
  Value r;
  r["message"] = "volume delete: " + name + ": success (brick directories and their data are kept)";
  r["warnings"] = Value::EmptyList();
  for (auto& w : warnings) r["warnings"].Push(w);
  return r;
}

Value Daemon::Impl::VolumeInfoValue(const VolumeConf& v) const {
  Value e;
  e["name"] = v.name;
  e["uuid"] = v.uuid;
  e["type"] = v.TypeName();
  e["state"] = v.state;
  e["replica"] = v.replica;
  e["arbiter"] = v.arbiter;
  e["brick_count"] = static_cast<int64_t>(v.bricks.size());
  e["created_ns"] = v.created_ns;
  e["bricks"] = Value::EmptyList();
  for (size_t i = 0; i < v.bricks.size(); ++i) {
    const auto& b = v.bricks[i];
    Value be;
    be["index"] = static_cast<int64_t>(i);
    be["name"] = b.Name();
    be["host"] = b.host;
    be["path"] = b.path;
    be["node_uuid"] = b.node_uuid;
    be["brick_id"] = b.brick_id;
    be["replica_set"] = static_cast<int64_t>(i / static_cast<size_t>(v.replica));
    be["arbiter"] = IsArbiter(v, i);
    e["bricks"].Push(std::move(be));
  }
  e["options"] = Value::EmptyMap();
  for (const auto& [k, val] : v.options) e["options"][k] = val;
  return e;
}

Result<Value> Daemon::Impl::VolumeInfo(const Value& args) {
  ClusterConfig c = Config();
  const std::string name = args.GetString("name");
  Value r;
  r["volumes"] = Value::EmptyList();
  if (!name.empty()) {
    DRFS_ASSIGN_OR_RETURN(const VolumeConf* v, FindVolume(c, name));
    r["volumes"].Push(VolumeInfoValue(*v));
    return r;
  }
  for (const auto& [n, v] : c.volumes) r["volumes"].Push(VolumeInfoValue(v));
  return r;
}

Result<Value> Daemon::Impl::VolumeList() {
  Value r;
  r["volumes"] = Value::EmptyList();
  for (const auto& [n, v] : Config().volumes) r["volumes"].Push(n);
  return r;
}

bool Daemon::Impl::BrickOnline(const BrickConf& b, int port, std::string* why) {
  ClientOptions o;
  o.connect_timeout = std::chrono::milliseconds(1000);
  o.request_timeout = std::chrono::milliseconds(2000);
  auto c = brick::BrickClient::Connect(b.host, static_cast<uint16_t>(port), opt_.tls, o);
  if (!c.ok()) {
    *why = c.status().message();
    return false;
  }
  if ((*c)->brick_id() != b.brick_id) {
    *why = "port " + std::to_string(port) + " is served by another brick (" + (*c)->brick_id() + ")";
    return false;
  }
  return true;
}

Value Daemon::Impl::LocalBrickPort(const VolumeConf& v, size_t idx) {
  const BrickConf& b = v.bricks[idx];
  auto st = supervisor_->Get(b.brick_id);
  int port = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (ports_.count(b.brick_id)) port = ports_[b.brick_id];
  }
  const bool running = st && st->state == ProcState::kRunning && st->pid > 0;
  Value e;
  e["index"] = static_cast<int64_t>(idx);
  e["name"] = b.Name();
  e["state"] = st ? ProcStateName(st->state) : "stopped";
  e["port"] = static_cast<int64_t>(running ? port : 0);
  return e;
}

Value Daemon::Impl::LocalBrickStatus(const VolumeConf& v, size_t idx) {
  const BrickConf& b = v.bricks[idx];
  const std::string& key = b.brick_id;
  Value e;
  e["index"] = static_cast<int64_t>(idx);
  e["name"] = b.Name();
  e["host"] = b.host;
  e["path"] = b.path;
  e["node_uuid"] = b.node_uuid;
  e["node_reachable"] = true;
  auto st = supervisor_->Get(key);
  BrickProcessRecord rec;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (records_.count(key)) rec = records_[key];
    if (ports_.count(key)) rec.port = ports_[key];
  }
  std::string start_error;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!st && start_errors_.count(key)) start_error = start_errors_[key];
  }
  e["state"] = st ? ProcStateName(st->state) : (start_error.empty() ? "stopped" : "failed");
  e["pid"] = static_cast<int64_t>(st ? st->pid : 0);
  e["restarts"] = static_cast<int64_t>(st ? st->restarts : rec.restarts);
  const std::string reason = st ? st->failure_reason : start_error;
  e["failure_reason"] = reason.empty() ? "" : reason + "; fix the cause, then run 'drfs volume start " +
                                                  v.name + " force'";
  e["last_exit"] = st ? st->last_exit : rec.last_exit;
  e["log"] = BrickLog(b);
  std::string why;
  const bool running = st && st->state == ProcState::kRunning && st->pid > 0;
  const bool online = running && rec.port > 0 && BrickOnline(b, rec.port, &why);
  e["port"] = static_cast<int64_t>(running ? rec.port : 0);
  e["online"] = online;
  e["offline_reason"] = online ? "" : (running ? why : (v.state == kVolumeStarted ? "not running" : "volume not started"));
  struct statvfs sv;
  Value disk, inodes;
  if (::statvfs(b.path.c_str(), &sv) == 0) {
    const uint64_t bs = sv.f_frsize;
    disk["total_bytes"] = static_cast<uint64_t>(sv.f_blocks * bs);
    disk["free_bytes"] = static_cast<uint64_t>(sv.f_bavail * bs);
    disk["used_bytes"] = static_cast<uint64_t>((sv.f_blocks - sv.f_bfree) * bs);
    inodes["total"] = static_cast<uint64_t>(sv.f_files);
    inodes["free"] = static_cast<uint64_t>(sv.f_favail);
    inodes["used"] = static_cast<uint64_t>(sv.f_files - sv.f_ffree);
  } else {
    disk["error"] = "statvfs " + b.path + ": " + ErrnoText(errno);
  }
  e["disk"] = disk;
  e["inodes"] = inodes;
  Value cl;
  auto js = changelog::Inspect(changelog::JournalDirForBrick(b.path));
  if (js.ok()) {
    cl["segments"] = static_cast<int64_t>(js->segments.size());
    cl["bytes"] = js->total_bytes;
    cl["first_lsn"] = js->first_lsn;
    cl["last_lsn"] = js->last_lsn;
    // Records kept on disk that some consumer has not confirmed yet. With no consumer
    // registered (no geo-replication session), every record kept counts.
    uint64_t consumed = js->first_lsn > 0 ? js->first_lsn - 1 : 0;
    if (!js->cursors.empty()) {
      consumed = js->cursors.front().lsn;
      for (const auto& cur : js->cursors) consumed = std::min<uint64_t>(consumed, cur.lsn);
    }
    cl["backlog_records"] = js->last_lsn > consumed ? js->last_lsn - consumed : 0;
    cl["consumers"] = static_cast<int64_t>(js->cursors.size());
  } else {
    cl["error"] = js.status().message();
  }
  e["changelog"] = cl;
  return e;
}

Result<Value> Daemon::Impl::VolumeStatus(const Value& args) {
  ClusterConfig c = Config();
  std::vector<const VolumeConf*> vols;
  const std::string name = args.GetString("name");
  if (!name.empty()) {
    DRFS_ASSIGN_OR_RETURN(const VolumeConf* v, FindVolume(c, name));
    vols.push_back(v);
  } else {
    for (const auto& [n, v] : c.volumes) vols.push_back(&v);
  }
  Value r;
  r["volumes"] = Value::EmptyList();
  for (const VolumeConf* v : vols) {
    std::map<size_t, Value> bricks;
    std::set<std::string> nodes;
    for (const auto& b : v->bricks) nodes.insert(b.node_uuid);
    Value a;
    a["volume"] = v->name;
    for (const auto& node : nodes) {
      Result<Value> res = CallNode(c, node, MgmtOp::kLocalStatus, a);
      if (res.ok()) {
        if (const Value* bs = res->Find("bricks")) {
          for (const auto& b : bs->AsList()) bricks[static_cast<size_t>(b.GetInt("index"))] = b;
        }
        continue;
      }
      for (size_t i = 0; i < v->bricks.size(); ++i) {
        if (v->bricks[i].node_uuid != node) continue;
        Value e;
        e["index"] = static_cast<int64_t>(i);
        e["name"] = v->bricks[i].Name();
        e["host"] = v->bricks[i].host;
        e["path"] = v->bricks[i].path;
        e["node_uuid"] = node;
        e["node_reachable"] = false;
        e["online"] = false;
        e["state"] = "unknown";
        e["offline_reason"] = "node unreachable: " + res.status().message();
        e["port"] = 0;
        e["pid"] = 0;
        bricks[i] = std::move(e);
      }
    }
    Value ve;
    ve["name"] = v->name;
    ve["state"] = v->state;
    ve["type"] = v->TypeName();
    ve["bricks"] = Value::EmptyList();
    int online = 0;
    for (auto& [i, b] : bricks) {
      online += b.GetBool("online") ? 1 : 0;
      ve["bricks"].Push(std::move(b));
    }
    ve["bricks_online"] = online;
    ve["brick_count"] = static_cast<int64_t>(v->bricks.size());
    r["volumes"].Push(std::move(ve));
  }
  return r;
}

Result<Value> Daemon::Impl::VolumeLayout(const Value& args) {
  ClusterConfig c = Config();
  const std::string name = args.GetString("volume");
  DRFS_ASSIGN_OR_RETURN(const VolumeConf* v, FindVolume(c, name));
  if (v->state != kVolumeStarted) {
    return FailedPrecondition("volume " + name + " is not started (it is " + v->state +
                              "); start it with 'drfs volume start " + name + "'");
  }
  // Each node knows the ports of its own bricks: ask every node that runs one, as `volume
  // status` does, but only for ports (no probe of the brick, no disk statistics).
  std::map<size_t, Value> local;
  std::map<std::string, std::string> node_error;
  std::set<std::string> nodes;
  for (const auto& b : v->bricks) nodes.insert(b.node_uuid);
  Value a;
  a["volume"] = v->name;
  a["ports_only"] = true;
  for (const auto& node : nodes) {
    Result<Value> res = CallNode(c, node, MgmtOp::kLocalStatus, a);
    if (!res.ok()) {
      node_error[node] = res.status().message();
      continue;
    }
    if (const Value* bs = res->Find("bricks")) {
      for (const auto& b : bs->AsList()) local[static_cast<size_t>(b.GetInt("index"))] = b;
    }
  }
  Value r;
  r["volume"] = v->name;
  r["uuid"] = v->uuid;
  r["type"] = v->TypeName();
  r["generation"] = c.generation;
  r["replica"] = v->replica;
  r["arbiter"] = v->arbiter;
  r["quorum_type"] = EffectiveOption(v->options, "cluster.quorum-type");
  r["quorum_count"] = static_cast<int64_t>(std::stoi(EffectiveOption(v->options, "cluster.quorum-count")));
  r["bricks"] = Value::EmptyList();
  const size_t replica = static_cast<size_t>(v->replica);
  for (size_t i = 0; i < v->bricks.size(); ++i) {
    const BrickConf& b = v->bricks[i];
    Value e;
    e["index"] = static_cast<int64_t>(i);
    e["name"] = b.Name();
    e["host"] = b.host;
    e["path"] = b.path;
    e["node_uuid"] = b.node_uuid;
    e["brick_id"] = b.brick_id;
    e["replica_set"] = static_cast<int64_t>(i / replica);
    e["arbiter"] = v->arbiter && i % replica == replica - 1;
    auto it = local.find(i);
    const bool reachable = node_error.count(b.node_uuid) == 0;
    e["node_reachable"] = reachable;
    e["port"] = it != local.end() ? it->second.GetInt("port") : 0;
    e["state"] = it != local.end() ? it->second.GetString("state") : "unknown";
    if (!reachable) e["error"] = "node unreachable: " + node_error[b.node_uuid];
    r["bricks"].Push(std::move(e));
  }
  // Where else a client can ask, should this daemon go away.
  r["daemons"] = Value::EmptyList();
  if (c.peers.empty()) {
    Value d;
    d["uuid"] = uuid();
    d["host"] = opt_.hostname;
    d["port"] = static_cast<int64_t>(port());
    r["daemons"].Push(std::move(d));
  }
  for (const auto& p : c.peers) {
    Value d;
    d["uuid"] = p.uuid;
    d["host"] = p.host;
    d["port"] = static_cast<int64_t>(p.port);
    r["daemons"].Push(std::move(d));
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Self-heal

void Daemon::Impl::ReconcileShd(const ClusterConfig& c) {
  std::map<std::string, ShdWant> want;
  for (const auto& [name, v] : c.volumes) {
    if (v.state != kVolumeStarted || v.replica < 2 ||
        v.bricks.size() != static_cast<size_t>(v.replica)) {
      continue;  // the volume client serves one replica set (volume/client.h)
    }
    auto every = ParseDurationMs(EffectiveOption(v.options, "cluster.heal-interval"));
    if (std::none_of(v.bricks.begin(), v.bricks.end(),
                     [&](const BrickConf& b) { return b.node_uuid == uuid(); })) {
      continue;
    }
    ShdWant w{std::chrono::milliseconds(every.ok() ? *every : 2000), ""};
    if (IsReadOnlyVolume(c, name)) {
      auto secret = EnsureApplierSecret(c, opt_.state_dir, name);
      if (!secret.ok()) {
        DRFS_LOG(Error) << "self-heal of secondary volume " << name
                        << " cannot write to its read-only bricks: " << secret.status().ToString();
      } else {
        w.applier_secret = *secret;
      }
    }
    want[name] = std::move(w);
  }
  // Retired daemons are destroyed (their loops joined) after shd_mu_ is released.
  std::vector<std::shared_ptr<SelfHealDaemon>> retired;
  std::lock_guard<std::mutex> l(shd_mu_);
  ReconcileShdLocked(want, &retired);
}

void Daemon::Impl::ReconcileShdLocked(const std::map<std::string, ShdWant>& want,
                                      std::vector<std::shared_ptr<SelfHealDaemon>>* retired) {
  for (auto it = shds_.begin(); it != shds_.end();) {
    auto w = want.find(it->first);
    if (w != want.end() && w->second.poll == it->second->poll() &&
        w->second.applier_secret == it->second->applier_secret()) {
      ++it;
      continue;
    }
    DRFS_LOG(Info) << "self-heal daemon of volume " << it->first
                   << (w == want.end() ? " stops"
                       : w->second.poll != it->second->poll()
                           ? " restarts with a new heal interval"
                           : " restarts: the volume became or stopped being a geo-replication "
                             "secondary");
    retired->push_back(std::move(it->second));
    it = shds_.erase(it);
  }
  for (const auto& [vol, w] : want) {
    const std::string name = vol;  // a lambda cannot capture a structured binding (C++20 clang)
    if (shds_.count(name)) continue;
    ShdOptions o;
    o.volume = name;
    o.poll = w.poll;
    o.client.applier_secret = w.applier_secret;
    o.layout = [this, name]() -> Result<volume::Layout> {
      Value a;
      a["volume"] = name;
      DRFS_ASSIGN_OR_RETURN(Value v, VolumeLayout(a));
      return LayoutFromValue(v);
    };
    o.local_bricks = [this, name](const volume::Layout&) {
      std::vector<size_t> mine;
      ClusterConfig now = Config();
      auto it = now.volumes.find(name);
      if (it == now.volumes.end()) return mine;
      for (size_t i = 0; i < it->second.bricks.size(); ++i)
        if (it->second.bricks[i].node_uuid == uuid()) mine.push_back(i);
      return mine;
    };
    o.client.tls = opt_.tls;
    o.client.client_name = "drfsd-shd";
    o.client.rpc.connect_timeout = std::chrono::milliseconds(2000);
    o.client.rpc.request_timeout = std::chrono::milliseconds(30000);
    DRFS_LOG(Info) << "self-heal daemon of volume " << name << " starts";
    shds_[name] = std::make_shared<SelfHealDaemon>(std::move(o));
  }
}

std::shared_ptr<SelfHealDaemon> Daemon::Impl::FindShd(const std::string& volume) {
  std::lock_guard<std::mutex> l(shd_mu_);
  auto it = shds_.find(volume);
  return it == shds_.end() ? nullptr : it->second;
}

Result<Value> Daemon::Impl::LocalHeal(const Value& args) {
  ClusterConfig c = Config();
  const std::string name = args.GetString("volume");
  ReconcileShd(c);
  auto shd = FindShd(name);
  Value r;
  r["node"] = opt_.hostname;
  r["running"] = shd != nullptr;
  if (shd) {
    shd->Trigger();
    ShdStatus st = shd->status();
    r["passes"] = st.passes;
    r["healed"] = st.healed;
    r["last_error"] = st.last_error;
  }
  return r;
}

Result<Value> Daemon::Impl::VolumeHeal(const Value& args) {
  ClusterConfig c = Config();
  const std::string name = args.GetString("name");
  DRFS_ASSIGN_OR_RETURN(const VolumeConf* v, FindVolume(c, name));
  if (v->replica < 2) {
    return FailedPrecondition("volume " + name + " is not replicated; there is nothing to heal");
  }
  if (v->state != kVolumeStarted) {
    return FailedPrecondition("volume " + name + " is not started; start it with 'drfs volume start " + name + "'");
  }
  Value r;
  r["volume"] = name;
  if (!args.GetBool("info")) {
    // Wake the self-heal daemon of every node that has a brick of the volume.
    std::set<std::string> nodes;
    for (const auto& b : v->bricks) nodes.insert(b.node_uuid);
    r["nodes"] = Value::EmptyList();
    Value a;
    a["volume"] = name;
    for (const auto& node : nodes) {
      Result<Value> res = CallNode(c, node, MgmtOp::kLocalHeal, a);
      Value e;
      e["node_uuid"] = node;
      if (res.ok()) {
        e = *res;
        e["node_uuid"] = node;
      } else {
        e["error"] = res.status().message();
      }
      r["nodes"].Push(std::move(e));
    }
    r["message"] = "Heal of volume " + name + " has been started; 'drfs volume heal " + name +
                   " info' shows what is left";
    return r;
  }
  const bool split = args.GetBool("split_brain");
  std::vector<volume::HealEntry> entries;
  auto shd = FindShd(name);
  if (shd) {
    DRFS_ASSIGN_OR_RETURN(entries, shd->Info(split));
  } else {
    // No brick of the volume here: look with a client of our own.
    Value a;
    a["volume"] = name;
    DRFS_ASSIGN_OR_RETURN(Value lv, VolumeLayout(a));
    DRFS_ASSIGN_OR_RETURN(volume::Layout layout, LayoutFromValue(lv));
    volume::VolumeClientOptions o;
    o.tls = opt_.tls;
    o.rpc.connect_timeout = std::chrono::milliseconds(2000);
    DRFS_ASSIGN_OR_RETURN(auto client, volume::VolumeClient::Open(layout, o));
    volume::Healer h(client.get());
    DRFS_ASSIGN_OR_RETURN(entries, h.Info(split));
  }
  r["bricks"] = Value::EmptyList();
  int64_t total = 0;
  for (size_t i = 0; i < v->bricks.size(); ++i) {
    Value b;
    b["index"] = static_cast<int64_t>(i);
    b["name"] = v->bricks[i].Name();
    b["entries"] = Value::EmptyList();
    int64_t count = 0;
    for (const auto& e : entries) {
      if (e.brick != i) continue;
      Value x;
      x["gfid"] = e.gfid.ToString();
      x["path"] = e.path.empty() ? "<gfid:" + e.gfid.ToString() + ">" : e.path;
      x["needs"] = e.needs;
      x["split_brain"] = e.split_brain;
      b["entries"].Push(std::move(x));
      ++count;
    }
    b["count"] = count;
    total += count;
    r["bricks"].Push(std::move(b));
  }
  r["total"] = total;
  r["split_brain_only"] = split;
  return r;
}

Result<Value> Daemon::Impl::VolumeSet(const Value& args) {
  const std::string name = args.GetString("name");
  const std::string key = args.GetString("key");
  const OptionDef* def = FindOption(key);
  if (!def) return InvalidArgument("unknown option '" + key + "'; 'drfs volume set help' lists the options");
  DRFS_ASSIGN_OR_RETURN(std::string value, NormalizeOption(*def, args.GetString("value")));
  DRFS_ASSIGN_OR_RETURN(auto warnings, RunTxn([&](ClusterConfig* next) -> Status {
    DRFS_ASSIGN_OR_RETURN(const VolumeConf* cur, FindVolume(*next, name));
    if (key == "cluster.quorum-count" && std::stoi(value) > cur->replica) {
      return InvalidArgument("cluster.quorum-count " + value + " is more than volume " + name +
                             "'s replica count " + std::to_string(cur->replica));
    }
    next->volumes[name].options[key] = value;
    return Status::Ok();
  }));
  Value r;
  r["volume"] = name;
  r["key"] = key;
  r["value"] = value;
  r["applies_to"] = def->applies_to;
  r["message"] = "volume set: " + name + ": " + key + " = " + value + " (takes effect at " + def->applies_to + ")";
  r["warnings"] = Value::EmptyList();
  for (auto& w : warnings) r["warnings"].Push(w);
  return r;
}

Result<Value> Daemon::Impl::VolumeReset(const Value& args) {
  const std::string name = args.GetString("name");
  const std::string key = args.GetString("key", "all");
  if (key != "all" && !FindOption(key)) {
    return InvalidArgument("unknown option '" + key + "'; 'drfs volume set help' lists the options");
  }
  DRFS_ASSIGN_OR_RETURN(auto warnings, RunTxn([&](ClusterConfig* next) -> Status {
    DRFS_ASSIGN_OR_RETURN(const VolumeConf* cur, FindVolume(*next, name));
    (void)cur;
    auto& opts = next->volumes[name].options;
    if (key == "all") {
      opts.clear();
    } else {
      opts.erase(key);
    }
    return Status::Ok();
  }));
  Value r;
  r["volume"] = name;
  r["key"] = key;
  r["message"] = "volume reset: " + name + ": " + (key == "all" ? "every option is" : key + " is") + " back to its default";
  r["warnings"] = Value::EmptyList();
  for (auto& w : warnings) r["warnings"].Push(w);
  return r;
}

Result<Value> Daemon::Impl::VolumeGet(const Value& args) {
  ClusterConfig c = Config();
  DRFS_ASSIGN_OR_RETURN(const VolumeConf* v, FindVolume(c, args.GetString("name")));
  const std::string key = args.GetString("key", "all");
  if (key != "all" && !FindOption(key)) {
    return InvalidArgument("unknown option '" + key + "'; 'drfs volume set help' lists the options");
  }
  Value r;
  r["volume"] = v->name;
  r["options"] = Value::EmptyList();
  for (const auto& def : AllOptions()) {
    if (key != "all" && def.key != key) continue;
    Value e;
    e["key"] = def.key;
    e["value"] = EffectiveOption(v->options, def.key);
    e["default"] = def.default_value;
    e["source"] = v->options.count(def.key) ? "set" : "default";
    r["options"].Push(std::move(e));
  }
  return r;
}

Result<Value> Daemon::Impl::OptionHelp() {
  Value r;
  r["options"] = Value::EmptyList();
  for (const auto& def : AllOptions()) {
    Value e;
    e["key"] = def.key;
    e["type"] = OptionTypeName(def.type);
    e["default"] = def.default_value;
    std::string allowed;
    switch (def.type) {
      case OptionType::kEnum:
        for (const auto& ch : def.choices) allowed += (allowed.empty() ? "" : "|") + ch;
        break;
      case OptionType::kBool:
        allowed = "on|off";
        break;
      case OptionType::kInt:
        allowed = std::to_string(def.min) + "-" + std::to_string(def.max);
        break;
      case OptionType::kSize:
        allowed = FormatSize(static_cast<uint64_t>(def.min)) + "-" + FormatSize(static_cast<uint64_t>(def.max));
        break;
      case OptionType::kDuration:
        allowed = FormatDurationMs(def.min) + "-" + FormatDurationMs(def.max);
        break;
    }
    e["allowed"] = allowed;
    e["applies_to"] = def.applies_to;
    e["help"] = def.help;
    r["options"].Push(std::move(e));
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Bricks

std::set<std::string> Daemon::Impl::DesiredBricks(const ClusterConfig& c) const {
  std::set<std::string> keys;
  for (const auto& [n, v] : c.volumes) {
    if (v.state != kVolumeStarted) continue;
    for (size_t i = 0; i < v.bricks.size(); ++i) {
      if (IsLocal(v.bricks[i])) keys.insert(v.bricks[i].brick_id);
    }
  }
  return keys;
}

void Daemon::Impl::Reconcile(const ClusterConfig& c, std::set<std::string>* started, bool start) {
  const std::set<std::string> desired = DesiredBricks(c);
  for (const auto& [key, st] : supervisor_->List()) {
    if (desired.count(key)) continue;
    Status s = supervisor_->Stop(key);
    if (!s.ok() && s.code() != Code::kNotFound) DRFS_LOG(Warn) << "stopping brick " << Label(key) << ": " << s.ToString();
    supervisor_->Forget(key);
    std::lock_guard<std::mutex> l(mu_);
    start_errors_.erase(key);
    records_.erase(key);
    (void)store_->DeleteProcess(key);
  }
  // Records of bricks nobody wants any more (volume deleted while this daemon was down).
  std::vector<BrickProcessRecord> leftovers;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [key, r] : records_) {
      if (!desired.count(key) && !supervisor_->Get(key)) leftovers.push_back(r);
    }
  }
  for (const auto& r : leftovers) {
    if (r.pid > 0 && ProcessStartTicks(static_cast<pid_t>(r.pid)) == r.start_ticks && r.start_ticks != 0) {
      DRFS_LOG(Info) << "stopping brick process " << r.pid << " (" << r.key << ") left by an earlier run";
      ::kill(static_cast<pid_t>(r.pid), SIGTERM);
    }
    std::lock_guard<std::mutex> l(mu_);
    records_.erase(r.key);
    (void)store_->DeleteProcess(r.key);
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    std::erase_if(start_errors_, [&](const auto& kv) { return desired.count(kv.first) == 0; });
  }
  if (!start) return;
  ReconcileShd(c);
  for (const auto& key : desired) {
    bool flipped = false;
    if (auto st = supervisor_->Get(key)) {
      if (!ReadOnlyFlipDue(c, key, *st)) continue;
      flipped = true;
      // The flags are fixed for a process's life: a volume that became, or stopped being, a
      // geo-replication secondary needs its bricks restarted (writes to this brick fail for
      // the second or so it is down; the port is kept, so clients reconnect by themselves).
      DRFS_LOG(Info) << "restarting brick " << Label(key) << " to make it "
                     << (IsReadOnlyVolume(c, VolumeOf(c, key)) ? "read-only (its volume is now a "
                                                                  "geo-replication secondary, or fenced)"
                                                                : "writable (its volume is no "
                                                                  "longer a geo-replication "
                                                                  "secondary)");
      if (Status s = supervisor_->Stop(key); !s.ok()) {
        DRFS_LOG(Warn) << "cannot stop brick " << Label(key) << " to restart it: " << s.ToString();
        continue;
      }
    }
    BrickProcessRecord rec;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (records_.count(key)) rec = records_[key];
    }
    auto make = [this, key]() { return MakeSpec(key); };
    Status s;
    if (rec.pid > 0) {
      bool adopted = false;
      s = supervisor_->Adopt(key, static_cast<pid_t>(rec.pid), rec.start_ticks, make, rec.restarts, &adopted);
      if (s.ok() && adopted) {
        DRFS_LOG(Info) << "adopted brick " << Label(key) << " (pid " << rec.pid << ", port " << rec.port << ")";
        {
          std::lock_guard<std::mutex> l(mu_);
          start_errors_.erase(key);
        }
        continue;
      }
    } else {
      s = supervisor_->Start(key, make, rec.restarts);
    }
    if (!s.ok()) {
      bool changed;
      {
        std::lock_guard<std::mutex> l(mu_);
        changed = start_errors_[key] != s.message();
        start_errors_[key] = s.message();
      }
      // The heartbeat retries every few seconds: say it once, not every time.
      if (changed) DRFS_LOG(Error) << "cannot start brick " << Label(key) << ": " << s.message();
      continue;
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      start_errors_.erase(key);
    }
    // Record pid and port now, not only from the supervisor's (asynchronous) callback, so a
    // drfsd killed right after this still finds the brick to adopt.
    if (auto st = supervisor_->Get(key)) OnProcessStatus(key, *st);
    if (started) started->insert(key);
    // A rolling restart: the next brick goes down only once this one takes connections again
    // and its clients had a moment to reconnect, so the replica set keeps its write quorum
    // (a fence or a promotion restarts every brick of a volume).
    if (flipped) WaitBrickServing(c, key);
  }
}

void Daemon::Impl::WaitBrickServing(const ClusterConfig& c, const std::string& key) {
  const BrickConf* b = FindBrick(c, key, nullptr, nullptr);
  if (!b) return;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    int port = 0;
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = records_.find(key);
      if (it != records_.end()) port = it->second.port;
    }
    if (port > 0) {
      auto conn = brick::BrickClient::Connect(b->host, static_cast<uint16_t>(port), opt_.tls, [] {
        ClientOptions co;
        co.reconnect = false;
        co.connect_timeout = std::chrono::milliseconds(500);
        co.request_timeout = std::chrono::milliseconds(1000);
        return co;
      }());
      if (conn.ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(400));  // clients reconnect
        return;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  DRFS_LOG(Warn) << "brick " << Label(key) << " does not take connections 5 s after its restart; "
                 << "restarting the next one anyway";
}

std::string Daemon::Impl::VolumeOf(const ClusterConfig& c, const std::string& key) {
  const VolumeConf* v = nullptr;
  return FindBrick(c, key, &v, nullptr) ? v->name : "";
}

namespace {
// Whether brick process `pid` runs with --read-only; none when it is gone. Asks the process
// itself rather than remember what we started it with: a brick adopted from an earlier drfsd
// run carries whatever flags that run gave it. (/proc files report size 0: read as a stream.)
std::optional<bool> RunsReadOnly(int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  if (!in) return std::nullopt;
  bool ro = false;
  for (std::string arg; std::getline(in, arg, '\0');) {
    if (arg == "--read-only") ro = true;
  }
  return ro;
}
}  // namespace

bool Daemon::Impl::ReadOnlyFlipDue(const ClusterConfig& c, const std::string& key,
                                   const ProcStatus& st) {
  // A brick waiting to restart or failed gets a fresh spec when it starts again.
  if (st.state != ProcState::kRunning || st.pid <= 0) return false;
  const std::string vol = VolumeOf(c, key);
  if (vol.empty()) return false;
  auto ro = RunsReadOnly(st.pid);
  if (!ro) return false;  // gone: the supervisor restarts it with a fresh spec
  return *ro != IsReadOnlyVolume(c, vol);
}

std::vector<std::pair<std::string, bool>> Daemon::Impl::BrickModes(const std::string& volume) {
  const ClusterConfig c = Config();
  std::vector<std::pair<std::string, bool>> out;
  auto vit = c.volumes.find(volume);
  if (vit == c.volumes.end()) return out;
  for (const auto& b : vit->second.bricks) {
    if (b.node_uuid != uuid()) continue;
    auto st = supervisor_->Get(b.brick_id);
    if (!st || st->state != ProcState::kRunning || st->pid <= 0) continue;
    auto ro = RunsReadOnly(st->pid);
    if (ro) out.emplace_back(b.Name(), !*ro);
  }
  return out;
}

std::string Daemon::Impl::BrickLog(const BrickConf& b) const {
  return opt_.state_dir + "/logs/bricks/" + MangledPath(b.path) + ".log";
}

Result<ProcessSpec> Daemon::Impl::MakeSpec(const std::string& key) {
  ClusterConfig c = Config();
  const VolumeConf* vp = nullptr;
  size_t index = 0;
  const BrickConf* bp = FindBrick(c, key, &vp, &index);
  if (!bp) return NotFound("brick " + key + " is no longer in the configuration");
  const VolumeConf& v = *vp;
  const BrickConf& b = *bp;
  // As gluster's volume-id check: a brick directory without its mark is most likely a mount
  // point whose file system is not mounted. Serving it would start an empty brick on the wrong
  // disk.
  if (const std::string mark = ReadMarker(b.path); mark != v.uuid) {
    return FailedPrecondition(
        "brick directory " + b.Name() +
        (mark.empty() ? " lacks its volume id mark (" + std::string(kVolumeIdXattr) + ")"
                      : " is marked for another volume (" + mark + ")") +
        "; is its file system mounted? If it is the right directory, restore the mark with "
        "'setfattr -n " + kVolumeIdXattr + " -v " + v.uuid + " " + b.path + "'");
  }
  // Keep the brick's previous port when it is free, so clients find it where it was.
  int port = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    std::set<int> taken;
    for (const auto& [k, p] : ports_) {
      if (k != key) taken.insert(p);
    }
    int prev = ports_.count(key) ? ports_[key] : 0;
    if (prev > 0 && PortFree(b.host, static_cast<uint16_t>(prev))) {
      port = prev;
    } else {
      for (int p = opt_.brick_port_min; p <= opt_.brick_port_max; ++p) {
        if (!taken.count(p) && PortFree(b.host, static_cast<uint16_t>(p))) {
          port = p;
          break;
        }
      }
    }
    if (port == 0) {
      return Unavailable("no free port for brick " + b.Name() + " in " + std::to_string(opt_.brick_port_min) +
                         "-" + std::to_string(opt_.brick_port_max));
    }
    ports_[key] = port;
    records_[key].key = key;
    records_[key].port = port;
  }
  auto opt = [&](const std::string& k) { return EffectiveOption(v.options, k); };
  // Options were checked when set and when received (ClusterConfig::FromValue); check again
  // rather than trust that here.
  DRFS_ASSIGN_OR_RETURN(int64_t interval_ms, ParseDurationMs(opt("changelog.fsync-interval")));
  DRFS_ASSIGN_OR_RETURN(uint64_t roll_bytes, ParseSize(opt("changelog.rollover-size")));
  DRFS_ASSIGN_OR_RETURN(int64_t roll_ms, ParseDurationMs(opt("changelog.rollover-time")));
  DRFS_ASSIGN_OR_RETURN(uint64_t keep_bytes, ParseSize(opt("changelog.keep-unclaimed")));
  ProcessSpec spec;
  spec.log_file = BrickLog(b);
  spec.argv = {opt_.drfs_binary, "brick", "serve", "--dir", b.path, "--host", b.host,
               "--port", std::to_string(port), "--brick-id", b.brick_id,
               "--fsync", opt("changelog.fsync"),
               "--fsync-interval-ms", std::to_string(interval_ms),
               "--rollover-size", std::to_string(roll_bytes),
               "--rollover-time-ms", std::to_string(roll_ms),
               "--keep-unclaimed", std::to_string(keep_bytes),
               "--threads", opt("brick.threads")};
  if (IsArbiter(v, index)) spec.argv.push_back("--arbiter");
  if (IsReadOnlyVolume(c, v.name)) {
    // Guarantee 5: a secondary's volume changes only through its applier (and self-heal),
    // which present the secret in this file. Reconcile restarts the brick when this flips.
    DRFS_RETURN_IF_ERROR(EnsureApplierSecret(c, opt_.state_dir, v.name).status().WithContext(
        "brick " + b.Name() + " of secondary volume " + v.name));
    spec.argv.insert(spec.argv.end(), {"--read-only", "--applier-secret-file",
                                       ApplierSecretPath(opt_.state_dir, v.name)});
  }
  if (opt_.tls.enabled()) {
    spec.argv.insert(spec.argv.end(), {"--tls-cert", opt_.tls.cert_file, "--tls-key",
                                       opt_.tls.key_file, "--tls-ca", opt_.tls.ca_file});
  }
  return spec;
}

void Daemon::Impl::OnProcessStatus(const std::string& key, const ProcStatus& s) {
  BrickProcessRecord rec;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto& r = records_[key];
    r.key = key;
    r.pid = s.pid;
    r.start_ticks = s.start_ticks;
    r.restarts = s.restarts;
    r.state = ProcStateName(s.state);
    r.reason = s.failure_reason;
    r.last_exit = s.last_exit;
    if (ports_.count(key)) r.port = ports_[key];
    rec = r;
  }
  if (s.state == ProcState::kFailed) {
    DRFS_LOG(Error) << "brick " << Label(key) << " failed: " << s.failure_reason;
  } else if (s.state == ProcState::kBackoff) {
    DRFS_LOG(Warn) << "brick " << Label(key) << " " << s.last_exit << "; restarting it";
  } else if (s.state == ProcState::kRunning) {
    DRFS_LOG(Info) << "brick " << Label(key) << " running as pid " << s.pid << " on port " << rec.port;
  }
  Status st = store_->SaveProcess(rec);
  if (!st.ok()) DRFS_LOG(Error) << "cannot record brick " << key << " state: " << st.ToString();
}

// ---------------------------------------------------------------------------------------------
// Heartbeat: peer liveness, catching up on missed commits, and keeping bricks running.

void Daemon::Impl::ReconcileGeorepSoon() {
  if (!georep_ || georep_pending_.exchange(true)) return;
  if (!pool_->Submit([this] {
        georep_pending_.store(false);
        georep_->Reconcile(Config());
      })) {
    georep_pending_.store(false);
  }
}

void Daemon::Impl::HeartbeatLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> l(hb_mu_);
      if (hb_cv_.wait_for(l, opt_.heartbeat, [this] { return stopping_; })) return;
    }
    ReconcileGeorepSoon();  // follows bricks that moved, brokers that restarted
    ClusterConfig c = Config();
    for (const auto& p : c.peers) {
      if (p.uuid == uuid()) continue;
      auto hello = CallPeer(p, MgmtOp::kHello, Value::EmptyMap());
      {
        std::lock_guard<std::mutex> l(mu_);
        const std::string before = peer_state_.count(p.uuid) ? peer_state_[p.uuid] : "";
        const std::string now = hello.ok() ? "" : hello.status().message();
        if (before.empty() != now.empty()) {
          DRFS_LOG(Info) << "peer " << p.host << ":" << p.port << (now.empty() ? " is connected" : " is unreachable: " + now);
        }
        peer_state_[p.uuid] = now;
      }
      if (!hello.ok()) continue;
      if (hello->GetInt("generation") == c.generation) {
        // Same generation, different content: two changes were committed over each other
        // (a lock lease ran out mid-commit). Nothing here can tell which one the operator
        // meant; say so loudly, and in `peer status`.
        const std::string theirs = hello->GetString("digest");
        if (!theirs.empty() && theirs != c.Digest()) {
          std::lock_guard<std::mutex> l(mu_);
          if (peer_state_[p.uuid].empty()) {
            DRFS_LOG(Error) << "peer " << p.host << " holds a different configuration at the same generation "
                            << c.generation << "; compare 'drfs volume info --json' on both nodes";
          }
          peer_state_[p.uuid] = "configuration differs at generation " + std::to_string(c.generation);
        }
        continue;
      }
      if (hello->GetInt("generation") < c.generation) {
        // The peer missed a commit, and may have no way to learn of it (a node being probed in
        // knows no peers yet): send it ours.
        // Not while a change is running here: this node's config is about to move, and a
        // node being detached must not be handed the config it is leaving.
        {
          std::lock_guard<std::mutex> l(mu_);
          if (!lock_.owner.empty() && std::chrono::steady_clock::now() < lock_expiry_) continue;
        }
        const ClusterConfig now = Config();
        if (now.generation != c.generation) continue;
        Value push;
        push["from"] = uuid();
        push["config"] = now.ToValue();
        auto pushed = CallPeer(p, MgmtOp::kPushConfig, push);
        if (!pushed.ok()) DRFS_LOG(Warn) << "cannot bring peer " << p.host << " up to date: " << pushed.status().ToString();
        continue;
      }
      // The peer has a newer configuration: this node missed a commit. Pull it, unless a
      // transaction is running here right now.
      {
        std::lock_guard<std::mutex> l(mu_);
        if (!lock_.owner.empty() && std::chrono::steady_clock::now() < lock_expiry_) continue;
      }
      auto cv = CallPeer(p, MgmtOp::kGetConfig, Value::EmptyMap());
      if (!cv.ok()) continue;
      auto next = ClusterConfig::FromValue(*cv);
      if (!next.ok()) {
        DRFS_LOG(Warn) << "peer " << p.host << " sent a configuration this node refuses: " << next.status().message();
        continue;
      }
      if (next->generation <= Config().generation) continue;
      DRFS_LOG(Info) << "pulling configuration generation " << next->generation << " from peer " << p.host;
      Status s = ApplyConfig(*next, nullptr);
      if (!s.ok()) DRFS_LOG(Warn) << "cannot apply configuration from " << p.host << ": " << s.ToString();
      break;  // `c` is stale now; the next round compares against the new generation
    }
    // Bricks that should run but are not supervised (e.g. a start failed to fork).
    std::lock_guard<std::mutex> apply(apply_mu_);
    Reconcile(Config(), nullptr);
  }
}

// ---------------------------------------------------------------------------------------------

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Daemon::~Daemon() { Stop(); }
void Daemon::Stop() { impl_->Stop(); }
uint16_t Daemon::port() const { return impl_->port(); }
const std::string& Daemon::node_uuid() const { return impl_->uuid(); }

Result<std::unique_ptr<Daemon>> Daemon::Start(const DaemonOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  Status s = impl->Init();
  if (!s.ok()) {
    impl->Stop();
    return s;
  }
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

}  // namespace drfs::mgmt
