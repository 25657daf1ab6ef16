// Kafka for geo-replication: a thin, synchronous-where-it-helps layer over librdkafka, and the
// embedded broker.
//
// Properties are librdkafka's, passed through unchanged (bootstrap.servers, security.protocol,
// sasl.*, ssl.*...): drfs sets only what its guarantees need (the producer is idempotent with
// acks=all; the consumer never commits offsets to Kafka, the applier keeps its position in
// SQLite) and refuses a property that would break them (InvalidArgument naming it).
//
// The embedded broker is librdkafka's mock cluster, hosted in-process. It speaks the real Kafka
// protocol over TCP on 127.0.0.1, so kcat and any client can use it, but it is for a single
// machine and for tests: it keeps only about 5 MiB or 100k batches per partition and drops
// older data silently, and it loses everything when its process exits. drfs is built so that
// none of this loses data (see georep/format.h and docs/architecture.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"

namespace drfs::kafka {

using Properties = std::map<std::string, std::string>;

// librdkafka's version string, for logs and `drfs version`.
std::string LibraryVersion();

class EmbeddedBroker {
 public:
  // Starts a mock cluster of `brokers` brokers listening on 127.0.0.1 (random ports).
  static Result<std::unique_ptr<EmbeddedBroker>> Start(int brokers = 1);
  ~EmbeddedBroker();
  EmbeddedBroker(const EmbeddedBroker&) = delete;
  EmbeddedBroker& operator=(const EmbeddedBroker&) = delete;

  // "127.0.0.1:PORT,..." for bootstrap.servers.
  const std::string& bootstrap_servers() const { return bootstrap_; }
  // Creates a topic with `partitions` partitions (replication factor 1). Ok if it exists.
  Status CreateTopic(const std::string& topic, int partitions);
  // Fault injection (tests): a broker stops answering / answers again (broker ids are 1..N).
  Status SetBrokerDown(int broker_id, bool down);
  // The next `count` requests of Kafka API `api_key` (0 = Produce, 1 = Fetch) fail with
  // librdkafka error `err` (e.g. RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION).
  Status PushRequestErrors(int16_t api_key, int count, int err);

 private:
  EmbeddedBroker() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string bootstrap_;
};

// Creates `topic` with `partitions` partitions if it does not exist (Kafka's admin API; the
// replication factor is the cluster's default). Ok when it exists with at least that many;
// FailedPrecondition when it has fewer. An embedded broker of this process creates it directly.
// One in another process cannot create topics by request: it gives any topic a client names 4
// partitions, so there this is Ok only for up to 4.
Status EnsureTopic(const Properties& props, const std::string& topic, int partitions,
                   std::chrono::milliseconds timeout);

// Checks properties for a producer or consumer: librdkafka must accept each, and none may
// override what drfs relies on. InvalidArgument naming the property and why.
Status ValidateProperties(const Properties& props);

class Producer {
 public:
  // Called once per message from the producer's delivery thread: Ok with the message's offset,
  // or the error after librdkafka gave up (message.timeout.ms).
  using DeliveryFn = std::function<void(const Status& status, int64_t offset)>;

  // An idempotent producer (enable.idempotence=true, acks=all) with its own thread serving
  // delivery reports.
  static Result<std::unique_ptr<Producer>> Create(const Properties& props);
  ~Producer();  // waits up to 2 s for messages in flight, then drops them (their callbacks run
                // with Cancelled)
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Queues a message for (topic, partition). ResourceExhausted when librdkafka's queue is full
  // (the caller waits and retries); the callback then never runs, as for any other error.
  // Otherwise `done` runs exactly once. Aborted (here or in a callback): the producer hit a
  // fatal error and sends nothing more; destroy it and resend from the last acknowledged
  // message with a new one. Produce, Flush and InFlight may be called from any thread, but not
  // Flush or the destructor from a DeliveryFn (they wait for the callbacks).
  Status Produce(const std::string& topic, int32_t partition, std::string key, std::string value,
                 DeliveryFn done);
  // Waits until every queued message was delivered or failed, up to `timeout`.
  Status Flush(std::chrono::milliseconds timeout);
  // Messages queued or in flight.
  int InFlight() const;
  // Gives up on every message queued or in flight (their callbacks get Cancelled), so that
  // destroying the producer does not wait for a broker that does not answer: for messages
  // that are sent again anyway (an applier's acks).
  void Discard();

 private:
  Producer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct Message {
  int64_t offset = 0;
  std::string key;
  std::string value;
  int64_t timestamp_ms = 0;
};

// A consumer of one partition, positioned by the caller (no consumer group, no commits).
// One thread at a time.
class Consumer {
 public:
  static constexpr int64_t kBeginning = -2;
  static constexpr int64_t kEnd = -1;

  static Result<std::unique_ptr<Consumer>> Create(const Properties& props);
  ~Consumer();
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  // Starts (or moves) reading topic/partition at `offset` (an offset, kBeginning or kEnd).
  Status Assign(const std::string& topic, int32_t partition, int64_t offset);
  // The next message, or nullopt after `timeout` with none. OutOfRange when the position is
  // no longer in the partition (the broker lost or expired data, or restarted empty): the
  // caller re-assigns, usually at kBeginning. Unavailable for transport trouble (retry).
  Result<std::optional<Message>> Poll(std::chrono::milliseconds timeout);
  // {low, high} watermarks of the assigned partition, from the broker.
  Result<std::pair<int64_t, int64_t>> Watermarks(std::chrono::milliseconds timeout);

 private:
  Consumer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace drfs::kafka
