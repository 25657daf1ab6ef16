// Applier: the secondary site's worker for one geo-replication session. It consumes the
// session's batch topic (one thread per replica set's partition), applies each batch through a
// VolumeClient of the secondary volume (secondary/apply.h), and produces an Ack (georep/format.h)
// to the session's ack topic after every batch it applied or dropped, and every second while
// idle, so a syncer that lost its broker state learns the position again.
//
// Where it reads. It resumes at the Kafka offset after the last batch it recorded. When that
// offset is gone (OutOfRange: the broker lost or expired data, or restarted empty), it reads
// from the beginning of the partition and relies on LSN dedup. A gap (a batch beyond its
// position) is never skipped: it acks with `gap` set, and the syncer resends.
//
// Errors. Kafka trouble and an unreachable secondary volume are retried with backoff and shown
// in Info() (state "Faulty" with the reason while it lasts); a batch that does not decode is
// logged with its offset and skipped (it can only be garbage: the syncer resends anything real
// that is then missing, because the position does not move past it).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "georep/kafka.h"
#include "secondary/apply.h"
#include "volume/client.h"
#include "volume/layout.h"

namespace drfs::secondary {

struct ApplierOptions {
  std::string session;
  uint64_t epoch = 1;  // the session's: which topics it reads (georep::BatchTopic)
  std::string db_path;
  kafka::Properties kafka;  // bootstrap.servers and any other librdkafka property
  int replica_sets = 1;
  // The secondary volume's current layout (from its drfsd). Called at start and whenever the
  // volume cannot be reached, to follow bricks that moved.
  std::function<Result<volume::Layout>()> layout;
  volume::VolumeClientOptions volume;
  std::chrono::milliseconds idle_ack_interval{1000};
  std::chrono::milliseconds retry_backoff{500};
};

struct ApplierInfo {
  std::string state;  // "Active", "Faulty", "Stopped"
  std::string reason; // why Faulty
  std::vector<Position> positions;
  uint64_t batches = 0;         // consumed
  uint64_t bytes = 0;           // message bytes consumed
  uint64_t duplicates = 0, stale = 0, gaps = 0, undecodable = 0;
};

class Applier {
 public:
  static Result<std::unique_ptr<Applier>> Start(const ApplierOptions& options);
  ~Applier();  // Stop()
  void Stop();
  ApplierInfo Info();
  Result<std::vector<Failure>> Failures(int limit);

  struct Impl;

 private:
  explicit Applier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drfs::secondary
