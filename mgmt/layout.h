// Fetching a volume's layout (volume/layout.h) from drfsd, for mounts and other clients.
//
// Any drfsd of the pool answers (MgmtOp::kVolumeLayout): it reads the volume's bricks from the
// pool configuration and asks each node that runs one for the brick's current port. The reply's
// schema is in docs/cli.md ("The volume layout").
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/rpc.h"
#include "common/status.h"
#include "common/value.h"
#include "volume/layout.h"

namespace drfs::mgmt {

// Asks the drfsd at `daemon` ("host[:port]") for VOLUME's layout, with each brick's current
// port. NotFound when there is no such volume; FailedPrecondition when it is not started;
// Unavailable when that drfsd cannot be reached. With `pool_daemons`, also returns every pool
// member's drfsd address ("host:port"), for asking another one when this one is down.
Result<volume::Layout> FetchLayout(const std::string& daemon, const std::string& volume,
                                   const TlsConfig& tls, std::chrono::milliseconds timeout,
                                   std::vector<std::string>* pool_daemons = nullptr);

// The layout in a kVolumeLayout reply. InvalidArgument when a field is missing or malformed.
Result<volume::Layout> LayoutFromValue(const Value& v, std::vector<std::string>* pool_daemons = nullptr);

}  // namespace drfs::mgmt
