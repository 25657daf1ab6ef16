#include "mgmt/config.h"

#include <cctype>
#include <set>

#include <cstdio>

#include "common/crc32c.h"
#include "mgmt/options.h"

namespace drfs::mgmt {

std::string VolumeConf::TypeName() const {
  if (replica <= 1) return "Distribute";
  return bricks.size() > static_cast<size_t>(replica) ? "Distributed-Replicate" : "Replicate";
}

const PeerConf* ClusterConfig::FindPeer(const std::string& uuid) const {
  for (const auto& p : peers) {
    if (p.uuid == uuid) return &p;
  }
  return nullptr;
}

const PeerConf* ClusterConfig::FindPeerByHost(const std::string& host) const {
  for (const auto& p : peers) {
    if (p.host == host) return &p;
  }
  return nullptr;
}

Value ClusterConfig::ToValue() const {
  Value v;
  v["generation"] = generation;
  Value& ps = v["peers"] = Value::EmptyList();
  for (const auto& p : peers) {
    Value e;
    e["uuid"] = p.uuid;
    e["host"] = p.host;
    e["port"] = static_cast<int64_t>(p.port);
    ps.Push(std::move(e));
  }
  Value& vs = v["volumes"] = Value::EmptyList();
  for (const auto& [name, vol] : volumes) {
    Value e;
    e["name"] = vol.name;
    e["uuid"] = vol.uuid;
    e["replica"] = vol.replica;
    e["arbiter"] = vol.arbiter;
    e["state"] = vol.state;
    e["created_ns"] = vol.created_ns;
    Value& bs = e["bricks"] = Value::EmptyList();
    for (const auto& b : vol.bricks) {
      Value be;
      be["host"] = b.host;
      be["node_uuid"] = b.node_uuid;
      be["path"] = b.path;
      be["brick_id"] = b.brick_id;
      bs.Push(std::move(be));
    }
    Value& os = e["options"] = Value::EmptyMap();
    for (const auto& [k, val] : vol.options) os[k] = val;
    vs.Push(std::move(e));
  }
  if (!sessions.empty()) {
    Value& ss = v["sessions"] = Value::EmptyList();
    for (const auto& [name, se] : sessions) ss.Push(SessionToValue(se));
  }
  return v;
}

std::string ClusterConfig::Digest() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", crc32c::Value(EncodeValue(ToValue())));
  return buf;
}

Result<ClusterConfig> ClusterConfig::FromValue(const Value& v) {
  auto bad = [](const std::string& why) { return InvalidArgument("malformed pool configuration: " + why); };
  if (!v.is_map()) return bad("not a map");
  ClusterConfig c;
  c.generation = v.GetInt("generation", -1);
  if (c.generation < 0) return bad("no generation");
  for (const auto& p : v.Find("peers") ? v.Find("peers")->AsList() : Value::List{}) {
    const int64_t port = p.GetInt("port");
    PeerConf pc{p.GetString("uuid"), p.GetString("host"), static_cast<uint16_t>(port)};
    if (pc.uuid.empty() || pc.host.empty() || port <= 0 || port > 65535) {
      return bad("peer without uuid, host or a valid port");
    }
    if (c.FindPeer(pc.uuid) || c.FindPeerByHost(pc.host)) return bad("peer " + pc.host + " listed twice");
    c.peers.push_back(std::move(pc));
  }
  for (const auto& e : v.Find("volumes") ? v.Find("volumes")->AsList() : Value::List{}) {
    VolumeConf vol;
    vol.name = e.GetString("name");
    vol.uuid = e.GetString("uuid");
    vol.replica = static_cast<int>(e.GetInt("replica", 1));
    vol.arbiter = e.GetBool("arbiter");
    vol.state = e.GetString("state", kVolumeCreated);
    vol.created_ns = e.GetInt("created_ns");
    if (!IsValidVolumeName(vol.name) || vol.uuid.empty() || vol.replica < 1 || vol.replica > 16) {
      return bad("volume '" + vol.name + "' lacks a valid name, uuid or replica count");
    }
    if (vol.state != kVolumeCreated && vol.state != kVolumeStarted && vol.state != kVolumeStopped) {
      return bad("volume '" + vol.name + "' has unknown state '" + vol.state + "'");
    }
    if (c.volumes.count(vol.name)) return bad("volume '" + vol.name + "' listed twice");
    for (const auto& b : e.Find("bricks") ? e.Find("bricks")->AsList() : Value::List{}) {
      BrickConf bc{b.GetString("host"), b.GetString("node_uuid"), b.GetString("path"),
                   b.GetString("brick_id")};
      if (bc.host.empty() || bc.node_uuid.empty() || bc.brick_id.empty()) {
        return bad("volume '" + vol.name + "' has a brick without host, node or id");
      }
      auto path = NormalizeBrickPath(bc.path);
      if (!path.ok() || *path != bc.path) return bad("volume '" + vol.name + "' has brick path '" + bc.path + "'");
      if (!c.peers.empty() && !c.FindPeer(bc.node_uuid)) {
        return bad("brick " + bc.Name() + " of volume '" + vol.name + "' is on a node outside the pool");
      }
      vol.bricks.push_back(std::move(bc));
    }
    if (vol.bricks.empty() || vol.bricks.size() % static_cast<size_t>(vol.replica) != 0) {
      return bad("volume '" + vol.name + "' has a brick count that is not a multiple of its replica count");
    }
    if (const Value* os = e.Find("options")) {
      for (const auto& [k, val] : os->AsMap()) {
        const OptionDef* def = FindOption(k);
        if (!def) return bad("volume '" + vol.name + "' has unknown option '" + k + "' (is a peer running a newer drfs?)");
        auto norm = NormalizeOption(*def, val.AsString());
        if (!norm.ok() || *norm != val.AsString()) {
          return bad("volume '" + vol.name + "' has option " + k + " = '" + val.AsString() + "'");
        }
        vol.options[k] = val.AsString();
      }
    }
    std::string name = vol.name;
    c.volumes.emplace(std::move(name), std::move(vol));
  }
  for (const auto& e : v.Find("sessions") ? v.Find("sessions")->AsList() : Value::List{}) {
    auto se = SessionFromValue(e);
    if (!se.ok()) return bad(se.status().message());
    if (!c.volumes.count(se->volume)) {
      return bad("geo-replication session '" + se->name + "' names volume '" + se->volume + "', which does not exist");
    }
    if (c.sessions.count(se->name)) return bad("geo-replication session '" + se->name + "' listed twice");
    std::string name = se->name;
    c.sessions.emplace(std::move(name), std::move(*se));
  }
  return c;
}

Value SessionToValue(const SessionConf& se) {
  Value e;
  e["name"] = se.name;
  e["role"] = se.role;
  e["volume"] = se.volume;
  e["peer_host"] = se.peer_host;
  e["peer_port"] = static_cast<int64_t>(se.peer_port);
  e["peer_volume"] = se.peer_volume;
  e["primary_volume_uuid"] = se.primary_volume_uuid;
  e["replica_sets"] = se.replica_sets;
  e["kafka"] = se.kafka;
  Value& kp = e["kafka_props"] = Value::EmptyMap();
  for (const auto& [k, val] : se.kafka_props) kp[k] = val;
  e["broker_node"] = se.broker_node;
  e["applier_node"] = se.applier_node;
  e["applier_secret"] = se.applier_secret;
  e["state"] = se.state;
  e["epoch"] = static_cast<int64_t>(se.epoch);
  e["created_ns"] = se.created_ns;
  e["checkpoint_ns"] = se.checkpoint_ns;
  Value& os = e["options"] = Value::EmptyMap();
  for (const auto& [k, val] : se.options) os[k] = val;
  e["fenced"] = se.fenced;
  e["switch_kind"] = se.switch_kind;
  e["switch_step"] = se.switch_step;
  e["switch_started_ns"] = se.switch_started_ns;
  e["switch_epoch"] = static_cast<int64_t>(se.switch_epoch);
  Value& sl = e["start_lsns"] = Value::EmptyMap();
  for (const auto& [k, val] : se.start_lsns) sl[k] = val;
  Value& dv = e["divergence"] = Value::EmptyMap();
  for (const auto& [k, val] : se.divergence) dv[k] = val;
  e["promoted_ns"] = se.promoted_ns;
  e["home"] = se.home;
  return e;
}

Result<SessionConf> SessionFromValue(const Value& e) {
  SessionConf se;
  se.name = e.GetString("name");
  se.role = e.GetString("role");
  se.volume = e.GetString("volume");
  se.peer_host = e.GetString("peer_host");
  const int64_t port = e.GetInt("peer_port");
  se.peer_port = static_cast<uint16_t>(port);
  se.peer_volume = e.GetString("peer_volume");
  se.primary_volume_uuid = e.GetString("primary_volume_uuid");
  se.replica_sets = static_cast<int>(e.GetInt("replica_sets", 1));
  se.kafka = e.GetString("kafka");
  if (const Value* kp = e.Find("kafka_props")) {
    for (const auto& [k, val] : kp->AsMap()) se.kafka_props[k] = val.AsString();
  }
  se.broker_node = e.GetString("broker_node");
  se.applier_node = e.GetString("applier_node");
  se.applier_secret = e.GetString("applier_secret");
  se.state = e.GetString("state", kSessionCreated);
  se.epoch = static_cast<uint64_t>(e.GetInt("epoch", 1));
  se.created_ns = e.GetInt("created_ns");
  se.checkpoint_ns = e.GetInt("checkpoint_ns");
  if (const Value* os = e.Find("options")) {
    for (const auto& [k, val] : os->AsMap()) se.options[k] = val.AsString();
  }
  // Absent in configurations written before failover existed: none of it happened then.
  se.fenced = e.GetBool("fenced");
  se.switch_kind = e.GetString("switch_kind");
  se.switch_step = e.GetString("switch_step");
  se.switch_started_ns = e.GetInt("switch_started_ns");
  se.switch_epoch = static_cast<uint64_t>(e.GetInt("switch_epoch"));
  if (const Value* sl = e.Find("start_lsns")) {
    for (const auto& [k, val] : sl->AsMap()) se.start_lsns[k] = val.AsInt();
  }
  if (const Value* dv = e.Find("divergence")) {
    for (const auto& [k, val] : dv->AsMap()) se.divergence[k] = val.AsString();
  }
  se.promoted_ns = e.GetInt("promoted_ns");
  // Written before failover existed: the site that holds it as primary is where it was made.
  se.home = e.Find("home") ? e.GetBool("home") : se.role == kRolePrimary;
  if (se.epoch < 1) {
    return InvalidArgument("geo-replication session '" + se.name + "' has epoch 0; epochs start at 1");
  }
  if (!IsValidVolumeName(se.name) || (se.role != kRolePrimary && se.role != kRoleSecondary) ||
      se.volume.empty() || se.peer_host.empty() || port <= 0 || port > 65535 || se.replica_sets < 1) {
    return InvalidArgument("geo-replication session '" + se.name +
                           "' lacks a valid name, role, volume, peer or replica set count");
  }
  if (se.state != kSessionCreated && se.state != kSessionStarted && se.state != kSessionStopped &&
      se.state != kSessionPaused) {
    return InvalidArgument("geo-replication session '" + se.name + "' has unknown state '" + se.state + "'");
  }
  return se;
}

bool IsValidVolumeName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '-') return false;
  for (char ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-') return false;
  }
  return true;
}

Result<std::string> NormalizeBrickPath(const std::string& p) {
  if (p.empty() || p[0] != '/') return InvalidArgument("brick directory '" + p + "' is not an absolute path");
  std::string out;
  size_t i = 0;
  while (i < p.size()) {
    while (i < p.size() && p[i] == '/') ++i;
    size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    std::string comp = p.substr(i, j - i);
    if (comp == "." || comp == "..") {
      return InvalidArgument("brick directory '" + p + "' has a '" + comp +
                             "' component; give a plain absolute path");
    }
    if (!comp.empty()) out += "/" + comp;
    i = j;
  }
  if (out.empty()) return InvalidArgument("the root directory cannot be a brick");
  return out;
}

bool PathOverlaps(const std::string& a, const std::string& b) {
  if (a == b) return true;
  auto inside = [](const std::string& x, const std::string& y) {
    return x.size() > y.size() && x.compare(0, y.size(), y) == 0 && x[y.size()] == '/';
  };
  return inside(a, b) || inside(b, a);
}

}  // namespace drfs::mgmt
