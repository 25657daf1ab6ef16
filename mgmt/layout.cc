#include "mgmt/layout.h"

#include "mgmt/protocol.h"

namespace drfs::mgmt {

Result<volume::Layout> LayoutFromValue(const Value& v, std::vector<std::string>* pool_daemons) {
  volume::Layout l;
  l.volume = v.GetString("volume");
  l.volume_uuid = v.GetString("uuid");
  l.generation = v.GetInt("generation", -1);
  l.replica = static_cast<int>(v.GetInt("replica"));
  l.quorum_type = v.GetString("quorum_type", "auto");
  l.quorum_count = static_cast<int>(v.GetInt("quorum_count"));
  const Value* bricks = v.Find("bricks");
  if (l.volume.empty() || l.volume_uuid.empty() || l.generation < 0 || l.replica < 1 ||
      bricks == nullptr || !bricks->is_list() || bricks->AsList().empty()) {
    return InvalidArgument("drfsd sent a volume layout without its name, uuid, generation, "
                           "replica count or bricks; is drfsd older than this client?");
  }
  if (l.quorum_type != "auto" && l.quorum_type != "fixed" && l.quorum_type != "none") {
    return InvalidArgument("volume " + l.volume + ": unknown quorum type '" + l.quorum_type + "'");
  }
  const auto& list = bricks->AsList();
  l.bricks.resize(list.size());
  std::vector<bool> seen(list.size(), false);
  for (const auto& b : list) {
    const int64_t i = b.GetInt("index", -1);
    const int64_t port = b.GetInt("port", -1);
    if (i < 0 || static_cast<size_t>(i) >= list.size() || seen[static_cast<size_t>(i)] ||
        port < 0 || port > 65535 || b.GetString("host").empty() ||
        b.GetString("brick_id").empty()) {
      return InvalidArgument("volume " + l.volume + ": drfsd sent a malformed brick entry in its layout");
    }
    seen[static_cast<size_t>(i)] = true;
    auto& a = l.bricks[static_cast<size_t>(i)];
    a.name = b.GetString("name");
    a.host = b.GetString("host");
    a.port = static_cast<uint16_t>(port);
    a.brick_id = b.GetString("brick_id");
    a.arbiter = b.GetBool("arbiter");
  }
  if (pool_daemons) {
    pool_daemons->clear();
    if (const Value* ds = v.Find("daemons"); ds && ds->is_list()) {
      for (const auto& d : ds->AsList()) {
        const int64_t port = d.GetInt("port");
        if (d.GetString("host").empty() || port <= 0 || port > 65535) continue;
        const std::string host = d.GetString("host");
        // IPv6 literals need brackets before the port.
        pool_daemons->push_back((host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                                ":" + std::to_string(port));
      }
    }
  }
  return l;
}

Result<volume::Layout> FetchLayout(const std::string& daemon, const std::string& volume,
                                   const TlsConfig& tls, std::chrono::milliseconds timeout,
                                   std::vector<std::string>* pool_daemons) {
  std::string host;
  uint16_t port = 0;
  DRFS_RETURN_IF_ERROR(ParseHostPort(daemon, kDefaultDaemonPort, &host, &port));
  // The daemon asks each node for its bricks' ports; a node that is down costs it a connection
  // timeout, so allow for that on top of our own.
  DRFS_ASSIGN_OR_RETURN(auto client, MgmtClient::Connect(host, port, tls, timeout,
                                                         timeout + std::chrono::seconds(10)));
  Value args;
  args["volume"] = volume;
  DRFS_ASSIGN_OR_RETURN(Value v, client->Call(MgmtOp::kVolumeLayout, args));
  return LayoutFromValue(v, pool_daemons);
}

}  // namespace drfs::mgmt
