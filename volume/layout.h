// Layout: which bricks make a volume, and where they serve. The mount client (and the self-heal
// daemon, and later the applier) gets it from any drfsd of the pool and follows its changes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace drfs::volume {

struct BrickAddress {
  std::string name;      // "host:/path", for messages
  std::string host;
  uint16_t port = 0;     // 0: the brick is not running
  std::string brick_id;  // what the brick answers in hello; a client checks it
  bool arbiter = false;  // stores names and metadata, no file data
  bool operator==(const BrickAddress&) const = default;
};

struct Layout {
  std::string volume;
  std::string volume_uuid;
  int64_t generation = 0;  // the pool configuration's generation it came from
  int replica = 1;         // bricks per replica set (the client serves one replica set)
  std::vector<BrickAddress> bricks;
  // Client quorum (cluster.quorum-type / cluster.quorum-count).
  std::string quorum_type = "auto";  // auto | fixed | none
  int quorum_count = 0;              // with "fixed"
  bool operator==(const Layout&) const = default;
};

// mgmt/layout.h fetches one from a drfsd (mgmt::FetchLayout); volume/ knows nothing of drfsd.

}  // namespace drfs::volume
