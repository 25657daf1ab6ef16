// Geo-replication in drfsd: sessions, the embedded broker, and the workers a node runs.
//
// A session lives in both sites' pool configurations (mgmt/config.h SessionConf): with role
// "primary" on the site whose volume is shipped, "secondary" on the one that receives it.
// `drfs georep create` on the primary asks the secondary's drfsd to join first, so neither site
// has a half-made session it does not know about.
//
// What runs where:
//   - the embedded broker (no kafka.bootstrap.servers given): in the drfsd of the primary node
//     where the session was created (broker_node). The secondary asks that node for its address,
//     which changes when that drfsd restarts (the broker then starts empty, and the syncers
//     resend from the applier's acknowledged position).
//   - syncers (syncer/syncer.h): one per data brick of the primary volume, in the drfsd of the
//     brick's node; one per replica set is Active.
//   - the applier (secondary/applier.h): in the drfsd of the secondary node that joined
//     (applier_node).
// Reconcile() brings the workers in line with the configuration; drfsd calls it after every
// configuration change and at every heartbeat (which also follows bricks that moved ports).
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/rpc.h"
#include "common/status.h"
#include "common/value.h"
#include "mgmt/config.h"
#include "mgmt/protocol.h"
#include "volume/layout.h"

namespace drfs::kafka {
class EmbeddedBroker;
}
namespace drfs::syncer {
class Syncer;
}
namespace drfs::secondary {
class Applier;
}

namespace drfs::mgmt {

// What the georep service needs from its drfsd.
struct GeorepHost {
  std::string node_uuid;
  std::function<std::string()> self_name;  // "host:port" this drfsd is reached at
  std::string hostname;
  std::string state_dir;
  TlsConfig tls;
  std::function<ClusterConfig()> config;
  std::function<Result<std::vector<std::string>>(const std::function<Status(ClusterConfig*)>&)> run_txn;
  // A node-local op on a node of this pool (this one or a peer).
  std::function<Result<Value>(const std::string& node, MgmtOp op, const Value& args)> call_node;
  // The volume's layout with current brick ports (volume must be started).
  std::function<Result<volume::Layout>(const std::string& volume)> layout;
  // This node's running bricks of `volume`, and whether each runs writable: a fence waits for
  // none to be, a promotion for all.
  std::function<std::vector<std::pair<std::string, bool>>(const std::string& volume)> brick_modes;
};

// Georep options (`drfs georep config`): name, default, and what is allowed.
struct GeorepOptionDef {
  const char* name;
  const char* def;
  int64_t min, max;
  const char* help;
};
const std::vector<GeorepOptionDef>& GeorepOptions();
// The canonical value of `value` for option `key`; InvalidArgument naming what is allowed.
Result<std::string> NormalizeGeorepOption(const std::string& key, const std::string& value);

// Whether `volume` is the secondary of a session (any session state) or a fenced primary: its
// bricks then run read-only, writable only by the applier and self-heal (guarantee 5).
bool IsReadOnlyVolume(const ClusterConfig& c, const std::string& volume);
// The applier's positions database of `session` in `epoch` (each epoch reads its own topics,
// georep::BatchTopic, so its Kafka offsets are its own): STATE_DIR/georep/SESSION[.eEPOCH].db.
std::string ApplierDbPath(const std::string& state_dir, const std::string& session, uint64_t epoch);
// STATE_DIR/georep/VOLUME.secret: the secret the read-only bricks of `volume` on this node
// accept from the applier and self-heal (brick/server.h), given to them as
// --applier-secret-file.
std::string ApplierSecretPath(const std::string& state_dir, const std::string& volume);
// The applier secret of secondary volume `volume`, from its session in `c` (every node of the
// secondary pool shares it), written to ApplierSecretPath (mode 0600) when the file is missing
// or holds another one. A session recorded before secrets were shared has none in `c`: the
// file's is used, made first (32 random bytes in hex) when missing.
Result<std::string> EnsureApplierSecret(const ClusterConfig& c, const std::string& state_dir,
                                        const std::string& volume);
// 32 random bytes in hex, for a new session's applier secret.
Result<std::string> NewApplierSecret();

class Georep {
 public:
  explicit Georep(GeorepHost host);
  ~Georep();  // Stop()
  // Stops every worker and the embedded broker.
  void Stop();

  // Handles the kGeorep* management ops.
  Result<Value> Handle(MgmtOp op, const Value& args);
  // Starts and stops this node's workers to match `c`.
  void Reconcile(const ClusterConfig& c);

 private:
  struct SyncerSlot;
  struct ApplierSlot;

  Result<Value> Create(const Value& args);
  Result<Value> Join(const Value& args);
  Result<Value> Control(const Value& args);
  Result<Value> PeerControl(const Value& args);
  Result<Value> StatusOp(const Value& args);
  Result<Value> LocalStatus(const Value& args);
  Result<Value> ApplierStatus(const Value& args);
  Result<Value> Config(const Value& args);
  Result<Value> Checkpoint(const Value& args);
  Result<Value> Broker(const Value& args);
  Result<Value> BrokerFault(const Value& args);

  // Failover and failback (mgmt/georep_switch.cc).
  Result<Value> Switch(const Value& args);
  Result<Value> PeerSwitch(const Value& args);
  Result<Value> PeerSwitchLocked(const Value& args);  // switch_mu_ held
  Result<Value> LocalSwitch(const Value& args);
  Result<Value> SwitchStep(const SessionConf& s, const std::string& kind, bool force);
  // Every node of this site with bricks of `s`'s volume: `op` on each, the answers in order.
  Result<std::vector<Value>> OnVolumeNodes(const ClusterConfig& c, const SessionConf& s,
                                           const Value& args);
  // This site's bricks of `s`'s volume that run writable (or read-only), as "a, b".
  Result<std::string> BricksInMode(const SessionConf& s, bool writable);
  // Each of this site's bricks of `s`'s volume: its journal's newest LSN, by brick id.
  Result<std::map<std::string, int64_t>> JournalEnds(const SessionConf& s);
  // Whether every Active syncer of primary session `s` completed its checkpoint (and a line
  // saying how far they are).
  std::pair<bool, std::string> CheckpointDone(const ClusterConfig& c, const SessionConf& s);
  // A primary that finds the other site promoted past its epoch fences itself (a thread).
  void WatchPeers();

  Result<Value> CallPeerSite(const SessionConf& s, MgmtOp op, const Value& args,
                             int64_t connect_timeout_ms = 5000, int64_t request_timeout_ms = 60000);
  Result<std::string> Bootstrap(const SessionConf& s);
  Result<const SessionConf*> FindSession(const ClusterConfig& c, const std::string& name) const;

  GeorepHost host_;
  std::mutex switch_mu_;     // one failover/failback step at a time
  std::mutex boot_mu_;       // boot_failed_
  // Secondary sessions whose broker lookup at the primary failed: when, and why.
  std::map<std::string, std::pair<uint64_t, std::string>> boot_failed_;
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool watch_stop_ = false;
  std::thread watcher_;
  std::mutex reconcile_mu_;  // one Reconcile at a time, each on the newest configuration
  std::mutex mu_;  // the members below
  bool stopped_ = false;
  std::unique_ptr<kafka::EmbeddedBroker> broker_;
  std::map<std::string, int> topics_;  // created on the embedded broker: topic -> partitions
  std::map<std::string, std::unique_ptr<SyncerSlot>> syncers_;   // "SESSION/BRICK_ID"
  std::map<std::string, std::unique_ptr<ApplierSlot>> appliers_;  // SESSION
};

}  // namespace drfs::mgmt
