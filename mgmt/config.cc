#include "mgmt/config.h"

#include <cctype>

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
  return v;
}

Result<ClusterConfig> ClusterConfig::FromValue(const Value& v) {
  auto bad = [](const std::string& why) { return InvalidArgument("malformed pool configuration: " + why); };
  if (!v.is_map()) return bad("not a map");
  ClusterConfig c;
  c.generation = v.GetInt("generation", -1);
  if (c.generation < 0) return bad("no generation");
  for (const auto& p : v.Find("peers") ? v.Find("peers")->AsList() : Value::List{}) {
    PeerConf pc{p.GetString("uuid"), p.GetString("host"),
                static_cast<uint16_t>(p.GetInt("port"))};
    if (pc.uuid.empty() || pc.host.empty() || pc.port == 0) return bad("peer without uuid, host or port");
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
    if (!IsValidVolumeName(vol.name) || vol.uuid.empty() || vol.replica < 1) {
      return bad("volume '" + vol.name + "' lacks a valid name, uuid or replica count");
    }
    for (const auto& b : e.Find("bricks") ? e.Find("bricks")->AsList() : Value::List{}) {
      BrickConf bc{b.GetString("host"), b.GetString("node_uuid"), b.GetString("path"),
                   b.GetString("brick_id")};
      if (bc.host.empty() || bc.path.empty() || bc.node_uuid.empty()) {
        return bad("volume '" + vol.name + "' has a brick without host, node or path");
      }
      vol.bricks.push_back(std::move(bc));
    }
    if (const Value* os = e.Find("options")) {
      for (const auto& [k, val] : os->AsMap()) vol.options[k] = val.AsString();
    }
    std::string name = vol.name;
    c.volumes.emplace(std::move(name), std::move(vol));
  }
  return c;
}

bool IsValidVolumeName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '-') return false;
  for (char ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-') return false;
  }
  return true;
}

}  // namespace drfs::mgmt
