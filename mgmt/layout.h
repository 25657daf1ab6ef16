// Fetching a volume's layout (volume/layout.h) from drfsd, for mounts and other clients.
#pragma once

#include <chrono>
#include <string>

#include "common/rpc.h"
#include "common/status.h"
#include "volume/layout.h"

namespace drfs::mgmt {

// Asks the drfsd at `daemon` ("host[:port]") for VOLUME's layout, with each brick's current
// port. NotFound when there is no such volume; FailedPrecondition when it is not started.
Result<volume::Layout> FetchLayout(const std::string& daemon, const std::string& volume,
                                   const TlsConfig& tls, std::chrono::milliseconds timeout);

}  // namespace drfs::mgmt
