// drfsd: the node daemon (Gluster's glusterd).
//
// One runs on every node. It keeps the node's state in SQLite (mgmt/store.h), answers the drfs
// CLI and its peers over the management protocol (mgmt/protocol.h), and starts, supervises and
// stops the node's brick processes (mgmt/supervisor.h).
//
// Pool configuration changes (peer probe/detach, volume create/start/stop/delete/set/reset) run
// as a transaction across every node of the pool, driven by the node the CLI talked to:
//   lock every node -> stage (each node validates the new config, and prepares its own brick
//   directories) -> commit (each node stores it and starts or stops its bricks) -> unlock.
// A change is refused, before anything is changed anywhere, when a peer cannot be reached or
// another change holds a node's lock. Each committed config has a generation one higher than
// the last; a node that missed a commit (it crashed half-way) pulls the newer config from a
// peer at its next heartbeat, so the pool converges.
//
// Brick processes outlive the daemon: Stop() and a crash leave them running, and the next
// start adopts them (by pid and /proc start time) instead of starting second copies.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/rpc.h"
#include "common/status.h"
#include "mgmt/supervisor.h"

namespace drfs::mgmt {

struct DaemonOptions {
  std::string state_dir = "/var/lib/drfs";
  std::string listen_host = "127.0.0.1";
  uint16_t port = 24100;  // 0 picks a free port (tests)
  // The name peers and bricks know this node by; default listen_host. Must be set when
  // listening on a wildcard address.
  std::string hostname;
  TlsConfig tls;  // the daemon's own certificate (role "daemon"); also given to its bricks
  std::string drfs_binary;  // runs bricks as `drfs brick serve`; default /proc/self/exe
  uint16_t brick_port_min = 49152;
  uint16_t brick_port_max = 60999;
  std::chrono::milliseconds heartbeat{2000};
  std::chrono::milliseconds peer_timeout{3000};
  // How long `volume start` waits for each new brick to answer before reporting it offline.
  std::chrono::milliseconds brick_start_wait{15000};
  SupervisorOptions supervisor;
  int request_threads = 8;
};

class Daemon {
 public:
  // Opens the state dir (creating it), refuses a second daemon on it, adopts or starts the
  // bricks of started volumes, and starts serving.
  static Result<std::unique_ptr<Daemon>> Start(const DaemonOptions& options);
  ~Daemon();  // Stop()
  // Stops serving and supervising. Brick processes keep running.
  void Stop();

  uint16_t port() const;
  const std::string& node_uuid() const;

  class Impl;

 private:
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drfs::mgmt
