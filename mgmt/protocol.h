// The management protocol spoken by drfsd: CLI -> daemon, and daemon -> daemon within a pool.
//
// It rides the generic RPC layer (common/rpc.h). A request frame's op is an MgmtOp; its payload
// is an encoded Value (common/value.h), a map of named arguments. The reply's payload is an
// encoded Value map: {"code": status code, "message": text, "result": Value}. Status codes are
// drfs::Code numbers, so an error keeps its meaning (Unavailable: retry; FailedPrecondition:
// the operator must act) across the wire.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/rpc.h"
#include "common/status.h"
#include "common/value.h"

namespace drfs::mgmt {

inline constexpr uint16_t kDefaultDaemonPort = 24100;

enum class MgmtOp : uint16_t {
  // Daemon to daemon.
  kHello = 1,         // -> {uuid, host, port, generation, peers, volumes}
  kGetConfig = 2,     // -> ClusterConfig value
  kLock = 3,          // {owner, txn} -> {}; Unavailable when held by another transaction
  kUnlock = 4,        // {owner, txn}
  kStage = 5,         // {owner, txn, config} -> {} or why this node refuses it
  kCommit = 6,        // {owner, txn, config} -> {warnings: [...]}
  kLocalStatus = 7,   // {volume[, ports_only]} -> {bricks: [...]} for this node's bricks
  kLocalRestart = 8,  // {volume} restarts this node's failed bricks of the volume
  kPushConfig = 9,    // {from, config}: a peer found this node behind and sends the newer config
  kLocalHeal = 10,    // {volume} wakes this node's self-heal daemon -> {running}
  // CLI to its local daemon.
  kPeerProbe = 20,
  kPeerDetach = 21,
  kPeerStatus = 22,
  kVolumeCreate = 30,
  kVolumeStart = 31,
  kVolumeStop = 32,
  kVolumeDelete = 33,
  kVolumeInfo = 34,
  kVolumeStatus = 35,
  kVolumeSet = 36,
  kVolumeGet = 37,
  kVolumeReset = 38,
  kVolumeList = 39,
  kOptionHelp = 40,
  // Clients (mounts, self-heal, applier) to any drfsd of the pool.
  kVolumeLayout = 41,  // {volume} -> the layout a client needs (mgmt/layout.h, docs/cli.md)
  kVolumeHeal = 42,    // {name[, info, split_brain]} -> heal started on nodes / entries per brick
  // Geo-replication (mgmt/georep.h). CLI to the primary's drfsd unless noted.
  kGeorepCreate = 50,        // {volume, secondary_host, secondary_port, secondary_volume[, name, kafka, kafka_props]}
  kGeorepJoin = 51,          // primary drfsd -> secondary drfsd: {session} -> {node}
  kGeorepControl = 52,       // {name, action: start|stop|pause|resume|delete[, force]}
  kGeorepPeerControl = 53,   // primary drfsd -> secondary drfsd: {name, action}
  kGeorepStatus = 54,        // {[name], [detail]} -> {sessions: [...]}
  kGeorepLocalStatus = 55,   // {name} -> {rows: [...]} for this node's bricks
  kGeorepApplierStatus = 56, // to the secondary: {name[, failures]} -> the applier's positions
  kGeorepConfig = 57,        // {name[, key[, value | reset]]}
  kGeorepCheckpoint = 58,    // {name, time_ns (0: now)}
  kGeorepBroker = 59,        // {name} -> {bootstrap}: the embedded broker's address
  kGeorepBrokerFault = 60,   // {name, action: down|up|produce-errors[, count]}: embedded broker only
  // Failover and failback (mgmt/georep.h): one step of a switch of roles, at the site being
  // promoted: {name, kind: failover|failback[, force]} -> {step, done, message, waiting}.
  kGeorepSwitch = 61,
  // The promoted site -> the other site: {name, action: probe|checkpoint|fence|demote, epoch
  // [, after_ns]}.
  kGeorepPeerSwitch = 62,
  // To each node of a site: {name, action: writable|journal_ends} -> this node's bricks of the
  // session's volume that still run writable / each one's newest journal LSN.
  kGeorepLocalSwitch = 63,
};

// Encodes a handler's outcome as a reply payload.
std::string EncodeReply(const Result<Value>& r);
// Decodes a reply payload back into the daemon's Result.
Result<Value> DecodeReply(const std::string& payload);

// A synchronous client for one daemon. Errors reaching the daemon name it and say what to do.
class MgmtClient {
 public:
  // `timeout` bounds the connection; `request_timeout` each call (changes wait for bricks on
  // every node, so the default is generous).
  static Result<std::unique_ptr<MgmtClient>> Connect(
      const std::string& host, uint16_t port, const TlsConfig& tls,
      std::chrono::milliseconds timeout,
      std::chrono::milliseconds request_timeout = std::chrono::milliseconds(120000));
  Result<Value> Call(MgmtOp op, const Value& args);
  const std::string& target() const { return rpc_->target(); }

 private:
  explicit MgmtClient(std::unique_ptr<RpcClient> rpc) : rpc_(std::move(rpc)) {}
  std::unique_ptr<RpcClient> rpc_;
};

// "HOST" or "HOST:PORT" (IPv6 as [addr]:port). InvalidArgument for a bad port.
Status ParseHostPort(const std::string& s, uint16_t default_port, std::string* host, uint16_t* port);

}  // namespace drfs::mgmt
