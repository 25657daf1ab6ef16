// The pool's shared configuration: its peers and volumes. Every node of a trusted pool holds the
// same ClusterConfig; `generation` goes up by one with every committed change, so a node that
// missed a change (it was down) sees a newer generation at a peer and pulls it.
//
// ToValue()/FromValue() carry it between daemons; Store (mgmt/store.h) keeps it in SQLite.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/value.h"

namespace drfs::mgmt {

struct PeerConf {
  std::string uuid;
  std::string host;  // the address the pool reaches the node's drfsd at; also its bricks' host
  uint16_t port = 0;
  bool operator==(const PeerConf&) const = default;
};

struct BrickConf {
  std::string host;       // as given in `volume create` (a pool member's host)
  std::string node_uuid;  // the node that runs it
  std::string path;       // absolute
  std::string brick_id;   // uuid stamped on the brick's changelog
  bool operator==(const BrickConf&) const = default;
  std::string Name() const { return host + ":" + path; }
};

inline constexpr char kVolumeCreated[] = "Created";
inline constexpr char kVolumeStarted[] = "Started";
inline constexpr char kVolumeStopped[] = "Stopped";

struct VolumeConf {
  std::string name;
  std::string uuid;
  int replica = 1;
  bool arbiter = false;
  std::string state = kVolumeCreated;
  int64_t created_ns = 0;
  std::vector<BrickConf> bricks;  // replica sets are consecutive groups of `replica`
  std::map<std::string, std::string> options;  // explicitly set, canonical values
  bool operator==(const VolumeConf&) const = default;

  // "Replicate", "Distributed-Replicate", "Distribute"
  std::string TypeName() const;
};

// A geo-replication session, as each site's pool knows it. The primary pool holds it with
// role "primary" (its syncers ship `volume`); the secondary pool with role "secondary" (its
// applier writes `volume`, which is read-only to everyone else).
inline constexpr char kRolePrimary[] = "primary";
inline constexpr char kRoleSecondary[] = "secondary";
inline constexpr char kSessionCreated[] = "Created";
inline constexpr char kSessionStarted[] = "Started";
inline constexpr char kSessionStopped[] = "Stopped";
inline constexpr char kSessionPaused[] = "Paused";

struct SessionConf {
  std::string name;
  std::string role;            // kRolePrimary | kRoleSecondary
  std::string volume;          // this site's volume
  std::string peer_host;       // the other site's drfsd
  uint16_t peer_port = 0;
  std::string peer_volume;
  std::string primary_volume_uuid;
  int replica_sets = 1;        // of the primary volume: partitions of the session's topics
  // Kafka bootstrap servers; empty: the embedded broker hosted by the primary's drfsd on node
  // `broker_node` (the secondary asks it for the address: it changes when that drfsd restarts).
  std::string kafka;
  std::map<std::string, std::string> kafka_props;  // other kafka.* properties, passed through
  std::string broker_node;     // primary: node uuid hosting the embedded broker
  std::string applier_node;    // secondary: node uuid running the applier
  // Secondary: the secret the applier and self-heal present to the volume's read-only bricks
  // (32 random bytes in hex). In the pool's configuration so that every node's bricks and the
  // applier on any node share it, as glusterd shares a volume's trusted-client credentials.
  std::string applier_secret;
  std::string state = kSessionCreated;
  uint64_t epoch = 1;
  int64_t created_ns = 0;
  int64_t checkpoint_ns = 0;   // 0: none set
  std::map<std::string, std::string> options;  // validated georep options (mgmt/georep.h)
  // Failover (mgmt/georep.h, "Failover"). A primary that is `fenced` keeps its role and its
  // syncers (they drain what is left) but its bricks run read-only, as a secondary's do.
  bool fenced = false;
  // A switch of roles under way on this site, recorded before each of its steps so that running
  // the command again resumes it: the kind ("failover", "failover --force", "failback"), the
  // step it is at, when it began, and the epoch it brings the session to. Empty when none is.
  std::string switch_kind;
  std::string switch_step;
  int64_t switch_started_ns = 0;
  uint64_t switch_epoch = 0;
  // A promoted site: per brick id, the journal LSN its syncers start after (what it had when it
  // was promoted: the old primary has all of that already).
  std::map<std::string, int64_t> start_lsns;
  // Per replica set ("rsN"), where this site stood in the old primary's stream when it was last
  // promoted: "EPOCH/LSN/SOURCE_BRICK/TS_NS" (the divergence point of a forced failover).
  std::map<std::string, std::string> divergence;
  int64_t promoted_ns = 0;  // when this site last became the primary (0: it was created so)
  // Whether the session was created on this site (as its primary): failback makes this site
  // the primary again, failover the other one.
  bool home = false;
  bool operator==(const SessionConf&) const = default;
};

struct ClusterConfig {
  int64_t generation = 0;
  std::vector<PeerConf> peers;  // every node of the pool, this one included (empty: alone)
  std::map<std::string, VolumeConf> volumes;
  std::map<std::string, SessionConf> sessions;
  bool operator==(const ClusterConfig&) const = default;

  const PeerConf* FindPeer(const std::string& uuid) const;
  const PeerConf* FindPeerByHost(const std::string& host) const;

  Value ToValue() const;
  // A fingerprint of the whole configuration (CRC32C of its encoding, in hex). Two nodes at
  // the same generation must have the same one.
  std::string Digest() const;
  // InvalidArgument when the value is not a well-formed config: every field present, brick
  // paths canonical, brick counts a multiple of the replica count, option values valid, peer
  // uuids and hosts unique. A config from a peer is checked as strictly as one typed in.
  static Result<ClusterConfig> FromValue(const Value& v);
};

// A session's wire and storage form. SessionFromValue checks the session on its own (a valid
// name, role, peer...); ClusterConfig::FromValue also checks that its volume exists.
Value SessionToValue(const SessionConf& s);
Result<SessionConf> SessionFromValue(const Value& v);

// Valid volume names: 1-64 of [A-Za-z0-9_-], not starting with '-'.
bool IsValidVolumeName(const std::string& name);

// A brick directory in canonical form: absolute, no "." or ".." components, no doubled or
// trailing slashes, not "/". InvalidArgument otherwise.
Result<std::string> NormalizeBrickPath(const std::string& path);
// Whether one of two canonical paths is, or is inside, the other.
bool PathOverlaps(const std::string& a, const std::string& b);

}  // namespace drfs::mgmt
