#include "mgmt/georep.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "brick/client.h"
#include "changelog/cursor.h"
#include "common/file.h"
#include "common/log.h"
#include "common/time.h"
#include "georep/format.h"
#include "georep/kafka.h"
#include "secondary/applier.h"
#include "syncer/syncer.h"

namespace drfs::mgmt {

using namespace std::chrono_literals;

namespace {

const char* const kEmbeddedNote =
    "the embedded Kafka broker (in the primary's drfsd) is for a single machine and for tests: it "
    "keeps little data and loses it when drfsd restarts (drfs resends, but use --kafka "
    "HOST:PORT,... with a real Kafka cluster in production)";

bool Running(const SessionConf& s) {
  return s.state == kSessionStarted || s.state == kSessionPaused;
}

std::string OptionOr(const SessionConf& s, const std::string& key) {
  auto it = s.options.find(key);
  if (it != s.options.end()) return it->second;
  for (const auto& d : GeorepOptions()) {
    if (key == d.name) return d.def;
  }
  return "";
}

int64_t IntOption(const SessionConf& s, const std::string& key) {
  return std::stoll(OptionOr(s, key));
}

bool IsArbiterIndex(const VolumeConf& v, size_t i) {
  return v.arbiter && v.replica > 1 && (i % static_cast<size_t>(v.replica)) ==
                                           static_cast<size_t>(v.replica) - 1;
}

}  // namespace

bool IsReadOnlyVolume(const ClusterConfig& c, const std::string& volume) {
  return std::any_of(c.sessions.begin(), c.sessions.end(), [&](const auto& kv) {
    return (kv.second.role == kRoleSecondary || kv.second.fenced) && kv.second.volume == volume;
  });
}

std::string ApplierDbPath(const std::string& state_dir, const std::string& session, uint64_t epoch) {
  return state_dir + "/georep/" + session + (epoch > 1 ? ".e" + std::to_string(epoch) : "") + ".db";
}

std::string ApplierSecretPath(const std::string& state_dir, const std::string& volume) {
  return state_dir + "/georep/" + volume + ".secret";
}

Result<std::string> NewApplierSecret() {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return Internal("OpenSSL RAND_bytes failed");
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char ch : raw) {
    hex += kHex[ch >> 4];
    hex += kHex[ch & 15];
  }
  return hex;
}

Result<std::string> EnsureApplierSecret(const ClusterConfig& c, const std::string& state_dir,
                                        const std::string& volume) {
  const std::string path = ApplierSecretPath(state_dir, volume);
  std::string want;
  for (const auto& [n, s] : c.sessions) {
    if ((s.role == kRoleSecondary || s.fenced) && s.volume == volume && !s.applier_secret.empty()) {
      want = s.applier_secret;
    }
  }
  if (want.empty() && ::access(path.c_str(), F_OK) == 0) return brick::ReadApplierSecretFile(path);
  if (!want.empty()) {
    auto have = brick::ReadApplierSecretFile(path);
    if (have.ok() && *have == want) return want;
  } else {
    DRFS_ASSIGN_OR_RETURN(want, NewApplierSecret());
  }
  DRFS_RETURN_IF_ERROR(FileSystem::Default()->CreateDirs(state_dir + "/georep"));
  // Written whole under a private name (0600 from the start), then renamed into place: a
  // concurrent reader (a brick starting, the applier) never sees half a secret.
  const std::string data = want + "\n";
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + want.substr(0, 8);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(errno, "cannot create " + tmp);
  const bool ok =
      ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) && ::fsync(fd) == 0;
  const int werr = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    return ErrnoStatus(werr, "cannot write the applier secret " + tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus(e, "cannot put the applier secret in place at " + path);
  }
  (void)FileSystem::Default()->SyncDir(state_dir + "/georep");
  DRFS_LOG(Info) << "wrote the applier secret of secondary volume " << volume << " to " << path;
  return brick::ReadApplierSecretFile(path);
}

const std::vector<GeorepOptionDef>& GeorepOptions() {
  static const std::vector<GeorepOptionDef> kDefs = {
      {"batch-bytes", "524288", 4096, 4 << 20, "a batch closes at this many bytes of records and data"},
      {"linger-ms", "20", 0, 10000, "or this long after its first record"},
      {"window-bytes", "4194304", 1 << 20, int64_t{1} << 34,
       "unacknowledged bytes in Kafka, at most (keep under the broker's retention per partition)"},
      {"compression-level", "3", 0, 19, "zstd level for batches (0: none)"},
      {"bandwidth-limit", "0", 0, int64_t{1} << 40, "bytes per second per syncer (0: unlimited)"},
      {"resend-timeout-ms", "15000", 1000, 3600000,
       "resend from the acknowledged position when acknowledgements stall this long"},
      {"replay-overlap-ms", "2000", 0, 600000,
       "a syncer taking over another brick's journal replays this much before its position"},
  };
  return kDefs;
}

Result<std::string> NormalizeGeorepOption(const std::string& key, const std::string& value) {
  for (const auto& d : GeorepOptions()) {
    if (key != d.name) continue;
    int64_t n = 0;
    size_t used = 0;
    try {
      n = std::stoll(value, &used);
    } catch (...) {
      used = 0;
    }
    if (used == 0 || used != value.size() || n < d.min || n > d.max) {
      return InvalidArgument("georep option " + key + " must be an integer from " +
                             std::to_string(d.min) + " to " + std::to_string(d.max) + " (got '" +
                             value + "')");
    }
    return std::to_string(n);
  }
  std::string names;
  for (const auto& d : GeorepOptions()) names += std::string(names.empty() ? "" : ", ") + d.name;
  return InvalidArgument("unknown georep option '" + key + "'; the options are: " + names);
}

struct Georep::SyncerSlot {
  std::string fingerprint;
  std::unique_ptr<syncer::Syncer> syncer;
  std::string session, brick_name, volume;
  bool paused = false;
  int64_t checkpoint_ns = 0;
};

struct Georep::ApplierSlot {
  std::string fingerprint;
  std::unique_ptr<secondary::Applier> applier;
  std::string error;  // why it could not start
};

Georep::Georep(GeorepHost host) : host_(std::move(host)) {
  watcher_ = std::thread([this] { WatchPeers(); });
}

Georep::~Georep() { Stop(); }

void Georep::Stop() {
  {
    std::lock_guard<std::mutex> l(watch_mu_);
    watch_stop_ = true;
  }
  watch_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
  std::map<std::string, std::unique_ptr<SyncerSlot>> syncers;
  std::map<std::string, std::unique_ptr<ApplierSlot>> appliers;
  std::unique_ptr<kafka::EmbeddedBroker> broker;
  {
    std::lock_guard<std::mutex> l(mu_);
    stopped_ = true;
    syncers.swap(syncers_);
    appliers.swap(appliers_);
    broker.swap(broker_);
  }
  syncers.clear();
  appliers.clear();
  broker.reset();
}

Result<const SessionConf*> Georep::FindSession(const ClusterConfig& c, const std::string& name) const {
  auto it = c.sessions.find(name);
  if (it == c.sessions.end()) {
    std::string names;
    for (const auto& [n, s] : c.sessions) names += (names.empty() ? "" : ", ") + n;
    return NotFound("no geo-replication session '" + name + "' on this site" +
                    (names.empty() ? std::string(" (there are none; create one with 'drfs georep create')")
                                   : " (sessions: " + names + ")"));
  }
  return &it->second;
}

Result<Value> Georep::CallPeerSite(const SessionConf& s, MgmtOp op, const Value& args,
                                   int64_t connect_timeout_ms, int64_t request_timeout_ms) {
  auto c = MgmtClient::Connect(s.peer_host, s.peer_port, host_.tls,
                               std::chrono::milliseconds(connect_timeout_ms),
                               std::chrono::milliseconds(request_timeout_ms));
  if (!c.ok()) {
    return Unavailable("the " + std::string(s.role == kRolePrimary ? "secondary" : "primary") +
                       " site's drfsd at " + s.peer_host + ":" + std::to_string(s.peer_port) +
                       " cannot be reached: " + c.status().message());
  }
  return (*c)->Call(op, args);
}

Result<Value> Georep::Handle(MgmtOp op, const Value& args) {
  switch (op) {
    case MgmtOp::kGeorepCreate: return Create(args);
    case MgmtOp::kGeorepJoin: return Join(args);
    case MgmtOp::kGeorepControl: return Control(args);
    case MgmtOp::kGeorepPeerControl: return PeerControl(args);
    case MgmtOp::kGeorepStatus: return StatusOp(args);
    case MgmtOp::kGeorepLocalStatus: return LocalStatus(args);
    case MgmtOp::kGeorepApplierStatus: return ApplierStatus(args);
    case MgmtOp::kGeorepConfig: return Config(args);
    case MgmtOp::kGeorepCheckpoint: return Checkpoint(args);
    case MgmtOp::kGeorepBroker: return Broker(args);
    case MgmtOp::kGeorepBrokerFault: return BrokerFault(args);
    case MgmtOp::kGeorepSwitch: return Switch(args);
    case MgmtOp::kGeorepPeerSwitch: return PeerSwitch(args);
    case MgmtOp::kGeorepLocalSwitch: return LocalSwitch(args);
    default: break;
  }
  return InvalidArgument("not a georep op");
}

// ------------------------------------------------------------------------------- lifecycle

Result<Value> Georep::Create(const Value& args) {
  const std::string pvol = args.GetString("volume");
  const std::string shost = args.GetString("secondary_host");
  const int64_t sport = args.GetInt("secondary_port", kDefaultDaemonPort);
  const std::string svol = args.GetString("secondary_volume");
  std::string name = args.GetString("name");
  if (name.empty()) name = pvol + "-" + svol;
  if (!IsValidVolumeName(name)) {
    return InvalidArgument("session name '" + name + "' is not valid: 1-64 of [A-Za-z0-9_-]");
  }
  if (shost.empty() || svol.empty() || sport <= 0 || sport > 65535) {
    return InvalidArgument("the secondary must be given as HOST[:PORT]::VOLUME");
  }
  ClusterConfig c = host_.config();
  auto vit = c.volumes.find(pvol);
  if (vit == c.volumes.end()) return NotFound("no volume '" + pvol + "' on this site");
  const VolumeConf& v = vit->second;
  if (c.sessions.count(name)) {
    return AlreadyExists("geo-replication session '" + name + "' already exists; see 'drfs georep status " + name + "'");
  }
  for (const auto& [n, s] : c.sessions) {
    if (s.volume == pvol && s.role == kRoleSecondary) {
      return FailedPrecondition("volume " + pvol + " is the secondary of session '" + n +
                                "'; it cannot also be a primary");
    }
  }
  if (v.replica > 1 && v.bricks.size() / static_cast<size_t>(v.replica) != 1) {
    return FailedPrecondition("volume " + pvol + " has several replica sets; geo-replication of "
                              "distributed volumes is not supported yet");
  }
  SessionConf s;
  s.name = name;
  s.role = kRolePrimary;
  s.home = true;
  s.volume = pvol;
  s.peer_host = shost;
  s.peer_port = static_cast<uint16_t>(sport);
  s.peer_volume = svol;
  s.primary_volume_uuid = v.uuid;
  s.replica_sets = static_cast<int>(v.bricks.size() / static_cast<size_t>(std::max(1, v.replica)));
  s.kafka = args.GetString("kafka");
  if (const Value* kp = args.Find("kafka_props")) {
    for (const auto& [k, val] : kp->AsMap()) s.kafka_props[k] = val.AsString();
  }
  if (!s.kafka_props.empty()) {
    DRFS_RETURN_IF_ERROR(kafka::ValidateProperties(s.kafka_props));
  }
  if (s.kafka.empty()) s.broker_node = host_.node_uuid;
  s.created_ns = static_cast<int64_t>(NowNs());
  if (const Value* os = args.Find("options")) {
    for (const auto& [k, val] : os->AsMap()) {
      DRFS_ASSIGN_OR_RETURN(s.options[k], NormalizeGeorepOption(k, val.AsString()));
    }
  }
  // The secondary first: it checks its volume and records the session.
  Value j;
  j["name"] = s.name;
  j["volume"] = svol;
  j["primary_host"] = host_.hostname;
  j["primary_port"] = static_cast<int64_t>(std::stoi(host_.self_name().substr(host_.self_name().rfind(':') + 1)));
  j["primary_volume"] = pvol;
  j["primary_volume_uuid"] = v.uuid;
  j["replica_sets"] = s.replica_sets;
  j["kafka"] = s.kafka;
  Value& kp = j["kafka_props"] = Value::EmptyMap();
  for (const auto& [k, val] : s.kafka_props) kp[k] = val;
  SessionConf probe = s;
  DRFS_RETURN_IF_ERROR(CallPeerSite(probe, MgmtOp::kGeorepJoin, j).status());
  DRFS_ASSIGN_OR_RETURN(auto warnings, host_.run_txn([&](ClusterConfig* next) -> Status {
    if (next->sessions.count(name)) return AlreadyExists("session '" + name + "' already exists");
    next->sessions[name] = s;
    return Status::Ok();
  }));
  Value r;
  r["message"] = "georep create: session " + name + " (" + pvol + " -> " + shost +
                 "::" + svol + "): success; start it with 'drfs georep start " + name + "'";
  r["warnings"] = Value::EmptyList();
  for (auto& w : warnings) r["warnings"].Push(w);
  if (s.kafka.empty()) r["warnings"].Push(std::string(kEmbeddedNote));
  return r;
}

Result<Value> Georep::Join(const Value& args) {
  const std::string name = args.GetString("name");
  const std::string svol = args.GetString("volume");
  ClusterConfig c = host_.config();
  auto vit = c.volumes.find(svol);
  if (vit == c.volumes.end()) {
    return NotFound("secondary site " + host_.self_name() + ": no volume '" + svol +
                    "'; create and start it there first");
  }
  if (vit->second.replica > 1 && vit->second.bricks.size() / static_cast<size_t>(vit->second.replica) != 1) {
    return FailedPrecondition("secondary volume " + svol + " has several replica sets; not supported yet");
  }
  for (const auto& [n, s] : c.sessions) {
    if (s.volume == svol && n != name) {
      return FailedPrecondition("secondary volume " + svol + " is already used by session '" + n + "'");
    }
  }
  if (c.sessions.count(name)) {
    return AlreadyExists("the secondary site already has a session '" + name +
                         "'; delete it there or choose another --name");
  }
  SessionConf s;
  s.name = name;
  s.role = kRoleSecondary;
  s.volume = svol;
  s.peer_host = args.GetString("primary_host");
  s.peer_port = static_cast<uint16_t>(args.GetInt("primary_port"));
  s.peer_volume = args.GetString("primary_volume");
  s.primary_volume_uuid = args.GetString("primary_volume_uuid");
  s.replica_sets = static_cast<int>(args.GetInt("replica_sets", 1));
  s.kafka = args.GetString("kafka");
  if (const Value* kp = args.Find("kafka_props")) {
    for (const auto& [k, val] : kp->AsMap()) s.kafka_props[k] = val.AsString();
  }
  s.applier_node = host_.node_uuid;
  s.created_ns = static_cast<int64_t>(NowNs());
  DRFS_ASSIGN_OR_RETURN(s.applier_secret, NewApplierSecret());
  DRFS_RETURN_IF_ERROR(host_.run_txn([&](ClusterConfig* next) -> Status {
    next->sessions[name] = s;
    return Status::Ok();
  }).status());
  Value r;
  r["node"] = host_.node_uuid;
  return r;
}

Result<Value> Georep::Control(const Value& args) {
  const std::string name = args.GetString("name");
  const std::string action = args.GetString("action");
  const bool force = args.GetBool("force");
  ClusterConfig c = host_.config();
  DRFS_ASSIGN_OR_RETURN(const SessionConf* sp, FindSession(c, name));
  const SessionConf s = *sp;
  if (s.role != kRolePrimary) {
    return FailedPrecondition("session '" + name + "' is a secondary here; run the command on the primary site (" +
                              s.peer_host + ":" + std::to_string(s.peer_port) + ")");
  }
  std::string next_state;
  if (action == "start") {
    if (s.state == kSessionStarted || s.state == kSessionPaused) {
      return FailedPrecondition("session '" + name + "' is already " + s.state);
    }
    auto v = c.volumes.find(s.volume);
    if (v == c.volumes.end() || v->second.state != kVolumeStarted) {
      return FailedPrecondition("volume " + s.volume + " is not started; start it first");
    }
    next_state = kSessionStarted;
  } else if (action == "stop") {
    if (!Running(s)) return FailedPrecondition("session '" + name + "' is not running (it is " + s.state + ")");
    next_state = kSessionStopped;
  } else if (action == "pause") {
    if (s.state != kSessionStarted) return FailedPrecondition("session '" + name + "' is not started (it is " + s.state + ")");
    next_state = kSessionPaused;
  } else if (action == "resume") {
    if (s.state != kSessionPaused) return FailedPrecondition("session '" + name + "' is not paused (it is " + s.state + ")");
    next_state = kSessionStarted;
  } else if (action == "delete") {
    if (Running(s)) {
      return FailedPrecondition("session '" + name + "' is " + s.state + "; stop it first with 'drfs georep stop " + name + "'");
    }
  } else {
    return InvalidArgument("unknown georep action '" + action + "'");
  }
  // The secondary's applier starts before the syncers and stops after them.
  Value pc;
  pc["name"] = name;
  pc["action"] = action;
  std::vector<std::string> notes;
  auto tell_secondary = [&]() -> Status {
    auto r = CallPeerSite(s, MgmtOp::kGeorepPeerControl, pc);
    if (r.ok()) return Status::Ok();
    if (force) {
      notes.push_back("the secondary site was not told: " + r.status().message());
      return Status::Ok();
    }
    return Status(r.status().code(), r.status().message() + " (add 'force' to go ahead on this site only)");
  };
  if (action == "start" || action == "resume") DRFS_RETURN_IF_ERROR(tell_secondary());
  DRFS_ASSIGN_OR_RETURN(auto warnings, host_.run_txn([&](ClusterConfig* next) -> Status {
    auto it = next->sessions.find(name);
    if (it == next->sessions.end()) return NotFound("session '" + name + "' is gone");
    if (action == "delete") {
      next->sessions.erase(it);
    } else {
      it->second.state = next_state;
    }
    return Status::Ok();
  }));
  if (action == "stop" || action == "pause" || action == "delete") {
    // Done here whatever the secondary says: it is told if it can be.
    auto told = CallPeerSite(s, MgmtOp::kGeorepPeerControl, pc);
    if (!told.ok()) {
      const std::string done = action == "delete" ? "deleted" : action == "stop" ? "stopped" : "paused";
      notes.push_back("the session is " + done + " on this site, but the secondary site was not told (" +
                      told.status().message() + "); it still has the session as it was" +
                      (action == "delete" ? ", and its volume stays read-only" : ""));
    }
  }
  Value r;
  r["message"] = "georep " + action + ": session " + name + ": success";
  r["warnings"] = Value::EmptyList();
  for (auto& w : warnings) r["warnings"].Push(w);
  for (auto& w : notes) r["warnings"].Push(w);
  return r;
}

Result<Value> Georep::PeerControl(const Value& args) {
  const std::string name = args.GetString("name");
  const std::string action = args.GetString("action");
  ClusterConfig c = host_.config();
  DRFS_ASSIGN_OR_RETURN(const SessionConf* sp, FindSession(c, name));
  if (sp->role != kRoleSecondary) return FailedPrecondition("session '" + name + "' is not a secondary here");
  bool drop_db = false;
  DRFS_RETURN_IF_ERROR(host_.run_txn([&](ClusterConfig* next) -> Status {
    auto it = next->sessions.find(name);
    if (it == next->sessions.end()) return NotFound("session '" + name + "' is gone");
    if (action == "delete") {
      next->sessions.erase(it);
      drop_db = true;
    } else if (action == "start" || action == "resume") {
      it->second.state = kSessionStarted;
    } else if (action == "stop") {
      it->second.state = kSessionStopped;
    } else if (action == "pause") {
      it->second.state = kSessionPaused;
    }
    return Status::Ok();
  }).status());
  if (drop_db) {
    // A session made again under this name must not resume from this one's positions.
    Reconcile(host_.config());  // stops the applier first
    for (uint64_t e = 1; e <= sp->epoch; ++e) {
      const std::string db = ApplierDbPath(host_.state_dir, name, e);
      for (const char* suffix : {"", "-wal", "-shm", ".broker"}) (void)::unlink((db + suffix).c_str());
    }
  }
  return Value::EmptyMap();
}

Result<Value> Georep::Config(const Value& args) {
  const std::string name = args.GetString("name");
  const std::string key = args.GetString("key");
  ClusterConfig c = host_.config();
  DRFS_ASSIGN_OR_RETURN(const SessionConf* sp, FindSession(c, name));
  if (args.Find("value") || args.GetBool("reset")) {
    if (sp->role != kRolePrimary) return FailedPrecondition("change session options on the primary site");
    std::string value;
    if (!args.GetBool("reset")) {
      DRFS_ASSIGN_OR_RETURN(value, NormalizeGeorepOption(key, args.GetString("value")));
    } else {
      DRFS_RETURN_IF_ERROR(NormalizeGeorepOption(key, OptionOr(*sp, key)).status());
    }
    DRFS_RETURN_IF_ERROR(host_.run_txn([&](ClusterConfig* next) -> Status {
      auto it = next->sessions.find(name);
      if (it == next->sessions.end()) return NotFound("session '" + name + "' is gone");
      if (args.GetBool("reset")) {
        it->second.options.erase(key);
      } else {
        it->second.options[key] = value;
      }
      return Status::Ok();
    }).status());
    Value r;
    r["message"] = "georep config: " + name + ": " + key + (args.GetBool("reset") ? " reset" : " = " + value);
    return r;
  }
  Value r;
  Value& os = r["options"] = Value::EmptyList();
  for (const auto& d : GeorepOptions()) {
    if (!key.empty() && key != d.name) continue;
    Value e;
    e["key"] = d.name;
    e["value"] = OptionOr(*sp, d.name);
    e["default"] = d.def;
    e["set"] = sp->options.count(d.name) > 0;
    e["help"] = d.help;
    os.Push(std::move(e));
  }
  if (!key.empty() && os.AsList().empty()) return NormalizeGeorepOption(key, "").status();
  return r;
}

Result<Value> Georep::Checkpoint(const Value& args) {
  const std::string name = args.GetString("name");
  int64_t t = args.GetInt("time_ns");
  if (t <= 0) t = static_cast<int64_t>(NowNs());
  ClusterConfig c = host_.config();
  DRFS_ASSIGN_OR_RETURN(const SessionConf* sp, FindSession(c, name));
  if (sp->role != kRolePrimary) return FailedPrecondition("set checkpoints on the primary site");
  if (t > static_cast<int64_t>(NowNs()) + 1000000000) {
    return InvalidArgument("a checkpoint cannot be in the future");
  }
  DRFS_RETURN_IF_ERROR(host_.run_txn([&](ClusterConfig* next) -> Status {
    auto it = next->sessions.find(name);
    if (it == next->sessions.end()) return NotFound("session '" + name + "' is gone");
    it->second.checkpoint_ns = t;
    return Status::Ok();
  }).status());
  Reconcile(host_.config());
  Value r;
  r["message"] = "georep checkpoint: " + name + ": set at " + FormatTimeMillis(static_cast<uint64_t>(t));
  r["checkpoint_ns"] = t;
  return r;
}

Result<Value> Georep::Broker(const Value& args) {
  const std::string name = args.GetString("name");
  ClusterConfig c = host_.config();
  DRFS_ASSIGN_OR_RETURN(const SessionConf* sp, FindSession(c, name));
  if (!sp->kafka.empty()) {
    Value r;
    r["bootstrap"] = sp->kafka;
    return r;
  }
  if (sp->role == kRolePrimary && sp->broker_node != host_.node_uuid) {
    return host_.call_node(sp->broker_node, MgmtOp::kGeorepBroker, args);
  }
  std::lock_guard<std::mutex> l(mu_);
  if (!broker_) return Unavailable("the embedded broker is not running on " + host_.self_name() + " (is session '" + name + "' started?)");
  Value r;
  r["bootstrap"] = broker_->bootstrap_servers();
  return r;
}

// Outage drills on the embedded broker (tests, and operators rehearsing a broker failure): the
// broker stops answering / answers again, or refuses the next produce requests.
Result<Value> Georep::BrokerFault(const Value& args) {
  const std::string name = args.GetString("name");
  const std::string action = args.GetString("action");
  ClusterConfig c = host_.config();
  DRFS_ASSIGN_OR_RETURN(const SessionConf* sp, FindSession(c, name));
  if (!sp->kafka.empty()) {
    return FailedPrecondition("session '" + name + "' uses Kafka at " + sp->kafka +
                              "; fault drills work on the embedded broker only");
  }
  if (sp->role == kRolePrimary && sp->broker_node != host_.node_uuid) {
    return host_.call_node(sp->broker_node, MgmtOp::kGeorepBrokerFault, args);
  }
  std::lock_guard<std::mutex> l(mu_);
  if (!broker_) return Unavailable("the embedded broker is not running here (is session '" + name + "' started?)");
  Status st;
  if (action == "down" || action == "up") {
    st = broker_->SetBrokerDown(1, action == "down");
  } else if (action == "produce-errors") {
    const int64_t n = args.GetInt("count", 10);
    if (n < 1 || n > 100000) return InvalidArgument("produce-errors takes a count of 1-100000");
    // NOT_LEADER_FOR_PARTITION (6): a retriable error, as an election would give.
    st = broker_->PushRequestErrors(0, static_cast<int>(n), 6);
  } else {
    return InvalidArgument("broker fault must be down, up or produce-errors N (got '" + action + "')");
  }
  DRFS_RETURN_IF_ERROR(st);
  DRFS_LOG(Warn) << "georep " << name << ": embedded broker fault drill: " << action;
  Value r;
  r["message"] = "georep broker-fault: " + name + ": " + action;
  return r;
}

Result<std::string> Georep::Bootstrap(const SessionConf& s) {
  if (!s.kafka.empty()) return s.kafka;
  Value a;
  a["name"] = s.name;
  if (s.role == kRolePrimary) {
    DRFS_ASSIGN_OR_RETURN(Value r, Broker(a));
    return r.GetString("bootstrap");
  }
  // Asked of the primary's drfsd at every reconcile. When it does not answer (its site is lost
  // or partitioned: a call hangs until its timeout), it is not asked again for 10 s: reconciles
  // hold reconcile_mu_, and a failover waits for them.
  constexpr uint64_t kRetryNs = 10'000'000'000ull;
  {
    std::lock_guard<std::mutex> l(boot_mu_);
    auto it = boot_failed_.find(s.name);
    if (it != boot_failed_.end() && MonotonicNs() - it->second.first < kRetryNs) {
      return Status(Code::kUnavailable, it->second.second + " (not asked again for a few seconds)");
    }
  }
  Result<Value> r = CallPeerSite(s, MgmtOp::kGeorepBroker, a, 2000, 5000);
  std::lock_guard<std::mutex> l(boot_mu_);
  if (!r.ok()) {
    boot_failed_[s.name] = {MonotonicNs(), r.status().message()};
    return r.status();
  }
  boot_failed_.erase(s.name);
  return r->GetString("bootstrap");
}

// ------------------------------------------------------------------------------- workers

void Georep::Reconcile(const ClusterConfig& requested) {
  // Reconciles may be asked for from several threads (commits, heartbeats, checkpoints). One
  // runs at a time, on the configuration as it is when it starts: an older one finishing last
  // would restart what was just stopped, or sweep the cursor of a session just created.
  std::lock_guard<std::mutex> serial(reconcile_mu_);
  const ClusterConfig fresh = host_.config();
  const ClusterConfig& c = fresh.generation >= requested.generation ? fresh : requested;
  std::unique_lock<std::mutex> l(mu_);
  if (stopped_) return;
  // The embedded broker: on the node that created a running session without --kafka.
  bool want_broker = false;
  for (const auto& [n, s] : c.sessions) {
    if (s.role == kRolePrimary && Running(s) && s.kafka.empty() && s.broker_node == host_.node_uuid) {
      want_broker = true;
    }
  }
  if (want_broker && !broker_) {
    auto b = kafka::EmbeddedBroker::Start(1);
    if (!b.ok()) {
      DRFS_LOG(Error) << "georep: cannot start the embedded Kafka broker: " << b.status().ToString();
    } else {
      broker_ = std::move(*b);
      topics_.clear();
      DRFS_LOG(Info) << "georep: embedded Kafka broker at " << broker_->bootstrap_servers()
                     << " (" << kEmbeddedNote << ")";
    }
  }
  std::set<std::string> want_syncers, want_appliers;
  std::vector<std::pair<std::string, std::function<void()>>> todo;
  for (const auto& [n, s] : c.sessions) {
    if (!Running(s)) continue;
    auto vit = c.volumes.find(s.volume);
    if (vit == c.volumes.end() || vit->second.state != kVolumeStarted) continue;
    const VolumeConf& v = vit->second;
    kafka::Properties props = s.kafka_props;
    l.unlock();
    auto boot = Bootstrap(s);
    l.lock();
    if (stopped_) return;
    if (!boot.ok()) {
      DRFS_LOG(Warn) << "georep " << s.name << ": no Kafka broker address: " << boot.status().ToString();
      // Keep what runs: a broker that is briefly unreachable is not a reason to stop workers.
      for (const auto& [k, slot] : syncers_) if (k.rfind(s.name + "/", 0) == 0) want_syncers.insert(k);
      if (appliers_.count(s.name)) want_appliers.insert(s.name);
      continue;
    }
    props["bootstrap.servers"] = *boot;
    if (s.role == kRolePrimary) {
      // Both topics, once: on the embedded broker directly, on a real cluster by admin request.
      const bool embedded = s.kafka.empty();
      for (const std::string& t : {georep::BatchTopic(s.name, s.epoch), georep::AckTopic(s.name, s.epoch)}) {
        if ((embedded && !broker_) || topics_[t] >= s.replica_sets) continue;
        Status st;
        if (embedded) {
          st = broker_->CreateTopic(t, s.replica_sets);
        } else {
          // A real cluster may take up to the timeout to answer (or be down): not under mu_,
          // or `georep status` would hang with it. topics_ is only written here, and
          // reconciles run one at a time.
          l.unlock();
          st = kafka::EnsureTopic(props, t, s.replica_sets, 10000ms);
          l.lock();
          if (stopped_) return;
        }
        if (st.ok()) topics_[t] = s.replica_sets;
        else DRFS_LOG(Warn) << "georep: topic " << t << ": " << st.ToString();
      }
      bool any_local = false;
      for (size_t i = 0; i < v.bricks.size(); ++i) any_local |= v.bricks[i].node_uuid == host_.node_uuid;
      if (!any_local) continue;
      l.unlock();
      auto layout = host_.layout(v.name);
      l.lock();
      if (stopped_) return;
      if (!layout.ok()) {
        for (const auto& [k, slot] : syncers_) if (k.rfind(s.name + "/", 0) == 0) want_syncers.insert(k);
        continue;
      }
      const size_t replica = static_cast<size_t>(std::max(1, v.replica));
      for (size_t i = 0; i < v.bricks.size(); ++i) {
        const BrickConf& b = v.bricks[i];
        if (b.node_uuid != host_.node_uuid || IsArbiterIndex(v, i)) continue;
        if (i >= layout->bricks.size()) continue;
        syncer::SyncerOptions o;
        o.session = s.name;
        o.volume_uuid = v.uuid;
        o.replica_set = static_cast<uint32_t>(i / replica);
        o.epoch = s.epoch;
        o.brick_id = b.brick_id;
        o.brick_name = b.Name();
        o.changelog_dir = b.path + "/.drfs/changelog";
        o.brick_host = layout->bricks[i].host;
        o.brick_port = layout->bricks[i].port;
        if (o.brick_port == 0) continue;  // the brick is down: its syncer stops with it
        const size_t first = (i / replica) * replica;
        for (size_t k = first; k < first + replica && k < layout->bricks.size(); ++k) {
          o.replica_bricks.push_back({layout->bricks[k].name, layout->bricks[k].host, layout->bricks[k].port});
        }
        o.tls = host_.tls;
        o.kafka = props;
        o.batch_bytes = static_cast<size_t>(IntOption(s, "batch-bytes"));
        o.linger = std::chrono::milliseconds(IntOption(s, "linger-ms"));
        o.window_bytes = static_cast<size_t>(IntOption(s, "window-bytes"));
        o.zstd_level = static_cast<int>(IntOption(s, "compression-level"));
        o.bandwidth_bytes_per_s = static_cast<uint64_t>(IntOption(s, "bandwidth-limit"));
        o.resend_timeout = std::chrono::milliseconds(IntOption(s, "resend-timeout-ms"));
        o.replay_overlap = std::chrono::milliseconds(IntOption(s, "replay-overlap-ms"));
        std::ostringstream fp;
        fp << *boot << "|" << o.brick_port << "|" << o.epoch << "|" << o.batch_bytes << "|"
           << o.linger.count() << "|" << o.window_bytes << "|" << o.zstd_level << "|"
           << o.bandwidth_bytes_per_s << "|" << o.resend_timeout.count() << "|"
           << o.replay_overlap.count();
        for (const auto& rb : o.replica_bricks) fp << "|" << rb.host << ":" << rb.port;
        const std::string key = s.name + "/" + b.brick_id;
        want_syncers.insert(key);
        auto& slot = syncers_[key];
        if (slot && slot->fingerprint == fp.str()) {
          if (slot->paused != (s.state == kSessionPaused)) {
            slot->paused = s.state == kSessionPaused;
            slot->syncer->SetPaused(slot->paused);
          }
          if (slot->checkpoint_ns != s.checkpoint_ns) {
            slot->checkpoint_ns = s.checkpoint_ns;
            slot->syncer->SetCheckpoint(static_cast<uint64_t>(s.checkpoint_ns));
          }
          continue;
        }
        // Keep the journal until this session is done with it, from the first start on.
        // A promoted site's syncers start after what the brick had journaled when it was
        // promoted (start_lsns): the old primary, which became the secondary, has all of that.
        changelog::CursorStore cs(o.changelog_dir);
        auto sl = s.start_lsns.find(b.brick_id);
        const uint64_t start = sl == s.start_lsns.end() ? 0 : static_cast<uint64_t>(sl->second);
        auto cur = cs.Get(syncer::CursorName(s.name));
        Status st;
        if (!cur.ok()) {
          st = cs.Register(syncer::CursorName(s.name), start);
        } else if (cur->lsn < start) {
          st = cs.Advance(syncer::CursorName(s.name), start);
        }
        if (!st.ok() && st.code() != Code::kAlreadyExists) {
          DRFS_LOG(Warn) << "georep " << s.name << ": cursor on " << b.Name() << ": " << st.ToString();
        }
        o.promoted_start = sl != s.start_lsns.end() && (!cur.ok() || cur->lsn <= start);
        if (slot) slot->syncer.reset();  // options changed: restart it
        auto sy = syncer::Syncer::Start(o);
        if (!sy.ok()) {
          DRFS_LOG(Error) << "georep " << s.name << ": cannot start the syncer of " << b.Name()
                          << ": " << sy.status().ToString();
          syncers_.erase(key);
          continue;
        }
        slot = std::make_unique<SyncerSlot>();
        slot->fingerprint = fp.str();
        slot->syncer = std::move(*sy);
        slot->session = s.name;
        slot->brick_name = b.Name();
        slot->volume = v.name;
        slot->paused = s.state == kSessionPaused;
        slot->syncer->SetPaused(slot->paused);
        slot->checkpoint_ns = s.checkpoint_ns;
        if (s.checkpoint_ns) slot->syncer->SetCheckpoint(static_cast<uint64_t>(s.checkpoint_ns));
      }
    } else if (s.applier_node == host_.node_uuid) {
      want_appliers.insert(s.name);
      const std::string fp = *boot + "|" + std::to_string(s.replica_sets) + "|" + std::to_string(s.epoch);
      auto& slot = appliers_[s.name];
      if (slot && slot->fingerprint == fp && slot->applier) continue;
      if (slot) slot->applier.reset();
      secondary::ApplierOptions ao;
      ao.session = s.name;
      ao.epoch = s.epoch;
      ao.db_path = ApplierDbPath(host_.state_dir, s.name, s.epoch);
      ao.kafka = props;
      ao.replica_sets = s.replica_sets;
      const std::string vol = s.volume;
      auto layout_fn = host_.layout;
      ao.layout = [layout_fn, vol]() { return layout_fn(vol); };
      ao.volume.tls = host_.tls;
      ao.volume.client_name = "drfs-applier-" + s.name;
      // The volume's bricks are read-only to everyone but us (guarantee 5); the secret is
      // what sets us apart (the same file the bricks of this node were started with).
      auto secret = EnsureApplierSecret(c, host_.state_dir, s.volume);
      if (!secret.ok()) {
        slot = std::make_unique<ApplierSlot>();  // no fingerprint: try again next time
        slot->error = secret.status().ToString();
        DRFS_LOG(Error) << "georep " << s.name << ": cannot start the applier: " << slot->error;
        continue;
      }
      ao.volume.applier_secret = *secret;
      Status mk = FileSystem::Default()->CreateDirs(host_.state_dir + "/georep");
      if (!mk.ok()) DRFS_LOG(Warn) << "georep: " << mk.ToString();
      slot = std::make_unique<ApplierSlot>();
      slot->fingerprint = fp;
      auto ap = secondary::Applier::Start(ao);
      if (!ap.ok()) {
        slot->error = ap.status().ToString();
        slot->fingerprint.clear();  // try again at the next reconcile
        DRFS_LOG(Error) << "georep " << s.name << ": cannot start the applier: " << slot->error;
        continue;
      }
      slot->applier = std::move(*ap);
      DRFS_LOG(Info) << "georep " << s.name << ": applier started (Kafka " << *boot << ")";
    }
  }
  std::vector<std::unique_ptr<SyncerSlot>> dead_syncers;
  std::vector<std::unique_ptr<ApplierSlot>> dead_appliers;
  for (auto it = syncers_.begin(); it != syncers_.end();) {
    if (want_syncers.count(it->first) && it->second) {
      ++it;
      continue;
    }
    dead_syncers.push_back(std::move(it->second));
    it = syncers_.erase(it);
  }
  for (auto it = appliers_.begin(); it != appliers_.end();) {
    if (want_appliers.count(it->first)) {
      ++it;
      continue;
    }
    dead_appliers.push_back(std::move(it->second));
    it = appliers_.erase(it);
  }
  if (!want_broker && broker_ && syncers_.empty()) {
    DRFS_LOG(Info) << "georep: stopping the embedded Kafka broker (no running session needs it)";
    broker_.reset();
    topics_.clear();
  }
  // Sessions deleted here: drop their journal cursors so retention is not held forever.
  for (const auto& [n, v] : c.volumes) {
    for (const auto& b : v.bricks) {
      if (b.node_uuid != host_.node_uuid) continue;
      changelog::CursorStore cs(b.path + "/.drfs/changelog");
      auto list = cs.List();
      if (!list.ok()) continue;
      for (const auto& cur : *list) {
        if (cur.name.rfind("georep.", 0) != 0) continue;
        std::string sname = cur.name.substr(7);
        // "georep.SESSION.crawl" marks SESSION's unfinished initial crawl (syncer.h).
        const std::string crawl_suffix = ".crawl";
        if (c.sessions.find(sname) == c.sessions.end() && sname.size() > crawl_suffix.size() &&
            sname.compare(sname.size() - crawl_suffix.size(), crawl_suffix.size(), crawl_suffix) ==
                0) {
          sname.resize(sname.size() - crawl_suffix.size());
        }
        auto sit = c.sessions.find(sname);
        if (sit == c.sessions.end() || sit->second.volume != n || sit->second.role != kRolePrimary) {
          DRFS_LOG(Info) << "georep: removing cursor " << cur.name << " of " << b.Name()
                         << " (no such session)";
          (void)cs.Remove(cur.name);
        }
      }
    }
  }
  l.unlock();
  dead_syncers.clear();  // joins outside the lock
  dead_appliers.clear();
}

// ------------------------------------------------------------------------------- status

Result<Value> Georep::LocalStatus(const Value& args) {
  const std::string name = args.GetString("name");
  ClusterConfig c = host_.config();
  DRFS_ASSIGN_OR_RETURN(const SessionConf* sp, FindSession(c, name));
  Value r;
  Value& rows = r["rows"] = Value::EmptyList();
  auto vit = c.volumes.find(sp->volume);
  if (vit == c.volumes.end()) return r;
  const VolumeConf& v = vit->second;
  std::lock_guard<std::mutex> l(mu_);
  for (size_t i = 0; i < v.bricks.size(); ++i) {
    const BrickConf& b = v.bricks[i];
    if (b.node_uuid != host_.node_uuid) continue;
    Value e;
    e["node"] = host_.hostname;
    e["brick"] = b.Name();
    e["brick_index"] = static_cast<int64_t>(i);
    e["replica_set"] = static_cast<int64_t>(i / static_cast<size_t>(std::max(1, v.replica)));
    auto it = syncers_.find(name + "/" + b.brick_id);
    if (IsArbiterIndex(v, i)) {
      e["status"] = "Passive";
      e["reason"] = "arbiter brick (holds no data)";
    } else if (!Running(*sp)) {
      e["status"] = "Stopped";
    } else if (it == syncers_.end() || !it->second) {
      e["status"] = "Faulty";
      e["reason"] = v.state != kVolumeStarted ? "volume is not started" : "the brick is not running";
    } else {
      syncer::SyncerInfo in = it->second->syncer->Info();
      e["status"] = in.state;
      e["reason"] = in.reason;
      e["crawl"] = in.crawl;
      if (in.crawl == "Initial sync") {
        e["crawl_start_lsn"] = static_cast<int64_t>(in.crawl_start_lsn);
        e["crawl_files_done"] = static_cast<int64_t>(in.crawl_files_done);
        e["crawl_files_total"] = static_cast<int64_t>(in.crawl_files_total);
        e["crawl_bytes_done"] = static_cast<int64_t>(in.crawl_bytes_done);
        e["crawl_bytes_total"] = static_cast<int64_t>(in.crawl_bytes_total);
        e["crawl_eta_s"] = in.crawl_eta_s;
      }
      e["token"] = static_cast<int64_t>(in.token);
      e["epoch"] = static_cast<int64_t>(in.epoch);
      e["visible_lsn"] = static_cast<int64_t>(in.visible_lsn);
      e["sent_lsn"] = static_cast<int64_t>(in.sent_lsn);
      e["acked_lsn"] = static_cast<int64_t>(in.acked_lsn);
      e["last_synced_ns"] = static_cast<int64_t>(in.acked_ts_ns);
      e["oldest_unacked_ns"] = static_cast<int64_t>(in.oldest_unacked_ts_ns);
      e["pending_entry"] = static_cast<int64_t>(in.pending_entry);
      e["pending_data"] = static_cast<int64_t>(in.pending_data);
      e["pending_meta"] = static_cast<int64_t>(in.pending_meta);
      e["failures"] = static_cast<int64_t>(in.failures);
      e["messages"] = static_cast<int64_t>(in.messages);
      e["bytes_sent"] = static_cast<int64_t>(in.bytes_sent);
      e["bytes_uncompressed"] = static_cast<int64_t>(in.bytes_uncompressed);
      e["data_bytes"] = static_cast<int64_t>(in.data_bytes);
      e["resends"] = static_cast<int64_t>(in.resends);
      e["bytes_per_s"] = static_cast<int64_t>(in.bytes_per_s);
      e["checkpoint_ns"] = static_cast<int64_t>(in.checkpoint_ns);
      e["checkpoint_lsn"] = static_cast<int64_t>(in.checkpoint_lsn);
      e["checkpoint_done_ns"] = static_cast<int64_t>(in.checkpoint_done_ns);
      const uint64_t now = NowNs();
      e["lag_ms"] = static_cast<int64_t>(in.oldest_unacked_ts_ns ? (now - std::min(now, in.oldest_unacked_ts_ns)) / 1000000 : 0);
      e["lag_lsn"] = static_cast<int64_t>(in.visible_lsn > in.acked_lsn && in.state == "Active" ? in.visible_lsn - in.acked_lsn : 0);
    }
    rows.Push(std::move(e));
  }
  return r;
}

Result<Value> Georep::ApplierStatus(const Value& args) {
  const std::string name = args.GetString("name");
  ClusterConfig c = host_.config();
  DRFS_ASSIGN_OR_RETURN(const SessionConf* sp, FindSession(c, name));
  if (sp->role != kRoleSecondary) return FailedPrecondition("session '" + name + "' is not a secondary here");
  if (sp->applier_node != host_.node_uuid) {
    return host_.call_node(sp->applier_node, MgmtOp::kGeorepApplierStatus, args);
  }
  Value r;
  r["node"] = host_.hostname;
  r["volume"] = sp->volume;
  std::lock_guard<std::mutex> l(mu_);
  auto it = appliers_.find(name);
  if (it == appliers_.end() || !it->second || !it->second->applier) {
    r["state"] = Running(*sp) ? "Faulty" : "Stopped";
    r["reason"] = it != appliers_.end() && it->second ? it->second->error : "";
    // Not running: where it stopped, from its database (a failover records it).
    Value& ps = r["positions"] = Value::EmptyList();
    const std::string db = ApplierDbPath(host_.state_dir, name, sp->epoch);
    if (::access(db.c_str(), F_OK) == 0) {
      auto ba = secondary::BatchApplier::Open(db, name, 1);
      auto pos = ba.ok() ? (*ba)->Positions() : Result<std::vector<secondary::Position>>(ba.status());
      if (!pos.ok()) {
        r["reason"] = "cannot read the applied positions in " + db + ": " + pos.status().message();
      } else {
        for (const auto& p : *pos) {
          Value e;
          e["replica_set"] = static_cast<int64_t>(p.replica_set);
          e["epoch"] = static_cast<int64_t>(p.epoch);
          e["source_brick"] = p.source_brick;
          e["lsn"] = static_cast<int64_t>(p.lsn);
          e["ts_ns"] = static_cast<int64_t>(p.ts_ns);
          ps.Push(std::move(e));
        }
      }
    }
    return r;
  }
  secondary::ApplierInfo in = it->second->applier->Info();
  r["state"] = in.state;
  r["reason"] = in.reason;
  r["batches"] = static_cast<int64_t>(in.batches);
  r["bytes"] = static_cast<int64_t>(in.bytes);
  r["duplicates"] = static_cast<int64_t>(in.duplicates);
  r["stale"] = static_cast<int64_t>(in.stale);
  r["gaps"] = static_cast<int64_t>(in.gaps);
  Value& ps = r["positions"] = Value::EmptyList();
  for (const auto& p : in.positions) {
    Value e;
    e["replica_set"] = static_cast<int64_t>(p.replica_set);
    e["epoch"] = static_cast<int64_t>(p.epoch);
    e["token"] = static_cast<int64_t>(p.token);
    e["source_brick"] = p.source_brick;
    e["lsn"] = static_cast<int64_t>(p.lsn);
    e["ts_ns"] = static_cast<int64_t>(p.ts_ns);
    e["crawl_seq"] = static_cast<int64_t>(p.crawl_seq);
    e["crawl_done"] = p.crawl_done;
    e["applied_ops"] = static_cast<int64_t>(p.applied_ops);
    e["failures"] = static_cast<int64_t>(p.failures);
    ps.Push(std::move(e));
  }
  Value& fs = r["failures"] = Value::EmptyList();
  auto failures = it->second->applier->Failures(static_cast<int>(args.GetInt("failures", 20)));
  if (failures.ok()) {
    for (const auto& f : *failures) {
      Value e;
      e["replica_set"] = static_cast<int64_t>(f.replica_set);
      e["lsn"] = static_cast<int64_t>(f.lsn);
      e["op"] = f.op;
      e["target"] = f.target;
      e["error"] = f.error;
      e["at_ns"] = static_cast<int64_t>(f.at_ns);
      fs.Push(std::move(e));
    }
  }
  return r;
}

Result<Value> Georep::StatusOp(const Value& args) {
  const std::string only = args.GetString("name");
  ClusterConfig c = host_.config();
  if (!only.empty()) DRFS_RETURN_IF_ERROR(FindSession(c, only).status());
  Value r;
  Value& out = r["sessions"] = Value::EmptyList();
  for (const auto& [n, s] : c.sessions) {
    if (!only.empty() && n != only) continue;
    Value e;
    e["name"] = n;
    e["role"] = s.role;
    e["state"] = s.state;
    e["epoch"] = static_cast<int64_t>(s.epoch);
    e["kafka"] = s.kafka.empty() ? "embedded" : s.kafka;
    e["checkpoint_ns"] = s.checkpoint_ns;
    e["fenced"] = s.fenced;
    e["home"] = s.home;
    e["promoted_ns"] = s.promoted_ns;
    e["switch_kind"] = s.switch_kind;
    e["switch_step"] = s.switch_step;
    e["switch_epoch"] = static_cast<int64_t>(s.switch_epoch);
    e["switch_started_ns"] = s.switch_started_ns;
    Value& dv = e["divergence"] = Value::EmptyMap();
    for (const auto& [k, v] : s.divergence) dv[k] = v;
    if (s.role == kRolePrimary) {
      e["primary_volume"] = s.volume;
      e["secondary"] = s.peer_host + "::" + s.peer_volume;
      e["secondary_port"] = static_cast<int64_t>(s.peer_port);
    } else {
      e["primary_volume"] = s.peer_volume;
      e["primary"] = s.peer_host + ":" + std::to_string(s.peer_port);
      e["secondary"] = host_.hostname + "::" + s.volume;
    }
    Value& rows = e["rows"] = Value::EmptyList();
    std::vector<std::string> errors;
    if (s.role == kRolePrimary) {
      std::set<std::string> nodes;
      auto vit = c.volumes.find(s.volume);
      if (vit != c.volumes.end()) {
        for (const auto& b : vit->second.bricks) nodes.insert(b.node_uuid);
      }
      Value a;
      a["name"] = n;
      for (const auto& node : nodes) {
        auto lr = host_.call_node(node, MgmtOp::kGeorepLocalStatus, a);
        if (!lr.ok()) {
          errors.push_back(lr.status().message());
          continue;
        }
        for (const auto& row : lr->Find("rows") ? lr->Find("rows")->AsList() : Value::List{}) {
          Value x = row;
          x["volume"] = s.volume;
          x["secondary"] = s.peer_host + "::" + s.peer_volume;
          rows.Push(std::move(x));
        }
      }
      Value aa;
      aa["name"] = n;
      aa["failures"] = args.GetBool("detail") ? 100 : 10;
      // Briefly: status must answer while the other site is partitioned (its drfsd hangs).
      auto ar = CallPeerSite(s, MgmtOp::kGeorepApplierStatus, aa, 2000, 5000);
      if (ar.ok()) {
        e["applier"] = *ar;
      } else {
        errors.push_back(ar.status().message());
      }
    } else {
      Value aa;
      aa["name"] = n;
      auto ar = ApplierStatus(aa);
      if (ar.ok()) e["applier"] = *ar;
    }
    // The checkpoint is complete when every Active syncer has completed it.
    int64_t done = 0;
    bool all = s.checkpoint_ns != 0;
    bool any_active = false;
    for (const auto& row : rows.AsList()) {
      if (row.GetString("status") != "Active" && row.GetString("status") != "Paused") continue;
      any_active = true;
      const int64_t d = row.GetInt("checkpoint_done_ns");
      if (row.GetInt("checkpoint_ns") != s.checkpoint_ns || d == 0) all = false;
      done = std::max(done, d);
    }
    e["checkpoint_completed"] = all && any_active;
    e["checkpoint_completed_ns"] = all && any_active ? done : 0;
    Value& errs = e["errors"] = Value::EmptyList();
    for (auto& x : errors) errs.Push(x);
    out.Push(std::move(e));
  }
  return r;
}

}  // namespace drfs::mgmt
