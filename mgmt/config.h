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

struct ClusterConfig {
  int64_t generation = 0;
  std::vector<PeerConf> peers;  // every node of the pool, this one included (empty: alone)
  std::map<std::string, VolumeConf> volumes;
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

// Valid volume names: 1-64 of [A-Za-z0-9_-], not starting with '-'.
bool IsValidVolumeName(const std::string& name);

// A brick directory in canonical form: absolute, no "." or ".." components, no doubled or
// trailing slashes, not "/". InvalidArgument otherwise.
Result<std::string> NormalizeBrickPath(const std::string& path);
// Whether one of two canonical paths is, or is inside, the other.
bool PathOverlaps(const std::string& a, const std::string& b);

}  // namespace drfs::mgmt
