#include "georep/kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/log.h"

// Implementation notes.
//
// Every handle routes librdkafka's log lines to drfs's log (LogLine): errors as warnings,
// warnings as info, the rest as debug, so a healthy process stays quiet. Errors that matter to a
// caller reach it as a Status, named by topic, partition and broker list.
//
// Producer. One thread calls rd_kafka_poll, so every delivery callback runs there. drfs keeps
// its own record of the messages whose callback has not run (Impl::pending): Flush waits on it
// instead of rd_kafka_flush (which would serve callbacks on the caller's thread too), and the
// destructor uses it to call back, as Cancelled, any message librdkafka dropped without a
// report. That is how every accepted message gets exactly one callback. Keys and values are not
// copied: they live in the pending entry until the delivery report says librdkafka is done.
//
// Consumer. An assign()ed consumer needs a group.id in librdkafka 2.0 (assign and
// consumer_poll refuse to work without one), but the group is never joined and nothing is ever
// committed: the position is the caller's. librdkafka still looks up the group's coordinator;
// errors from that are logged and otherwise ignored, so a cluster whose ACLs deny the group
// does not stop the applier. auto.offset.reset=error turns a position the broker no longer has
// into an error (RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) instead of a silent jump. Errors of the
// partition come out of rd_kafka_consumer_poll as messages; the others (brokers unreachable)
// only reach an error callback, which Poll turns into Unavailable when no message came.
//
// Embedded broker. librdkafka 2.0's mock cluster answers no CreateTopics request (an admin
// client times out "waiting for controller"), and it creates any topic a Metadata request names
// with 4 partitions. So EnsureTopic creates topics of a broker hosted in this process through
// rd_kafka_mock_topic_create (found by its listen addresses in a process-wide registry), and
// for a mock cluster elsewhere (its cluster id starts with "mockCluster") it can only let the
// broker auto-create the topic and check that 4 partitions are enough.

#if defined(__SANITIZE_THREAD__)
#define DRFS_KAFKA_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DRFS_KAFKA_TSAN 1
#endif
#endif
#ifdef DRFS_KAFKA_TSAN
// Pulls georep/tsan_thrd_shim.c out of the library into every TSan program that uses this file.
extern "C" int drfs_tsan_thrd_shim_linked;
[[gnu::used]] static int* const kTsanThrdShim = &drfs_tsan_thrd_shim_linked;
// The TSan runtime's dynamic annotations.
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
#endif

namespace drfs::kafka {

namespace {

using Clock = std::chrono::steady_clock;

// ---- Logging ----

void LogLine(const rd_kafka_t* rk, int level, const char* facility, const char* line) {
  // syslog levels: 0-3 emergency..error, 4 warning, 5 notice, 6 info, 7 debug.
  const char* name = rk != nullptr ? rd_kafka_name(rk) : "rdkafka";
  // The embedded broker predates the flag behind this warning, so every consumer would print
  // it; EnsureTopic checks partition counts, whoever created a topic.
  if (level == 4 && std::string_view(facility) == "AUTOCREATE") level = 7;
  if (level <= 3) {
    DRFS_LOG(Warn) << "kafka " << name << " " << facility << ": " << line;
  } else if (level == 4) {
    DRFS_LOG(Info) << "kafka " << name << " " << facility << ": " << line;
  } else {
    DRFS_LOG(Debug) << "kafka " << name << " " << facility << ": " << line;
  }
}

// Reads of memory that librdkafka owns and frees by reference count: a consumed message's key
// and value live in the fetch response, which the broker's thread may free once this thread has
// destroyed the message. librdkafka orders the two with atomics compiled without TSan, so TSan
// would report the free as racing with these reads (georep/tsan_thrd_shim.c covers the cases
// inside librdkafka). In TSan builds the reads in this scope are not recorded; elsewhere this
// is nothing.
class LibrdkafkaMemory {
 public:
#ifdef DRFS_KAFKA_TSAN
  LibrdkafkaMemory() {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
  }
  ~LibrdkafkaMemory() {
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
#else
  LibrdkafkaMemory() = default;
#endif
  LibrdkafkaMemory(const LibrdkafkaMemory&) = delete;
  LibrdkafkaMemory& operator=(const LibrdkafkaMemory&) = delete;
};

// ---- Errors ----

bool IsTransportError(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
      return true;
    default:
      return false;
  }
}

// What the caller should do about a librdkafka error (common/status.h has the split).
Code CodeFor(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
      return Code::kResourceExhausted;
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__DESTROY:
      return Code::kCancelled;
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
      return Code::kOutOfRange;
    case RD_KAFKA_RESP_ERR__FATAL:
      return Code::kAborted;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
      return Code::kInvalidArgument;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
      return Code::kNotFound;
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
      return Code::kPermissionDenied;
    case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
      return Code::kFailedPrecondition;
    default:
      // Broker-side trouble (leader moves, not enough replicas, throttling...): librdkafka
      // already retried what it could, and the call can be retried.
      return Code::kUnavailable;
  }
}

// "kafka: WHERE: WHAT (librdkafka's words); WHAT TO DO".
Status KafkaError(rd_kafka_resp_err_t err, const std::string& where, std::string_view detail) {
  const Code code = IsTransportError(err) ? Code::kUnavailable : CodeFor(err);
  std::string what;
  std::string hint;
  switch (code) {
    case Code::kUnavailable:
      what = IsTransportError(err) ? "brokers unreachable" : "broker error";
      hint = "check kafka.bootstrap.servers and that the brokers run, then retry";
      break;
    case Code::kPermissionDenied:
      what = "not allowed";
      hint = "check the kafka.sasl.* and kafka.ssl.* settings and the cluster's ACLs";
      break;
    case Code::kNotFound:
      what = "no such topic or partition";
      hint = "create the topic with enough partitions (EnsureTopic), or check the session's name";
      break;
    case Code::kFailedPrecondition:
      what = "the brokers cannot do this";
      hint = "check the Kafka version and the cluster's policies";
      break;
    default:
      what = rd_kafka_err2name(err);
      hint = "see the message above";
      break;
  }
  std::string msg = "kafka: " + where + ": " + what + " (" + rd_kafka_err2str(err);
  if (!detail.empty() && detail != rd_kafka_err2str(err)) msg += ": " + std::string(detail);
  msg += "); " + hint;
  return Status(code, std::move(msg));
}

// Errors not tied to a message or partition (a broker went away...), for handles that need
// not act on them: a producer (its messages report their own fate) or a metadata client. The
// transport ones repeat librdkafka's own FAIL log lines, so they stay at debug level.
void LogClientError(rd_kafka_t* rk, int err, const char* reason, void* /*opaque*/) {
  auto code = static_cast<rd_kafka_resp_err_t>(err);
  if (code == RD_KAFKA_RESP_ERR__FATAL) {
    DRFS_LOG(Error) << "kafka " << rd_kafka_name(rk) << ": fatal error: " << reason;
  } else if (IsTransportError(code)) {
    DRFS_LOG(Debug) << "kafka " << rd_kafka_name(rk) << ": " << reason;
  } else {
    DRFS_LOG(Warn) << "kafka " << rd_kafka_name(rk) << ": " << reason;
  }
}

std::string Ms(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

int TimeoutMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, 1 << 30));
}

// ---- Properties ----

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

// Secrets stay out of error messages and logs.
std::string Shown(const std::string& name, const std::string& value) {
  for (const char* secret : {"password", "secret", "ssl.key", ".pem", "oauthbearer.config"}) {
    if (name.find(secret) != std::string::npos) return name + "=<redacted>";
  }
  return name + "=" + value;
}

Status SetProperty(rd_kafka_conf_t* conf, const std::string& name, const std::string& value) {
  char err[512] = {0};
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    return InvalidArgument("kafka property " + Shown(name, value) + " is invalid: " + err +
                           "; fix or remove it in the kafka.* settings");
  }
  return Status::Ok();
}

// The value librdkafka holds for `name` after aliases and parsing ("" when unset).
std::string ReadBack(const rd_kafka_conf_t* conf, const char* name) {
  char buf[512];
  size_t size = sizeof buf;
  if (rd_kafka_conf_get(conf, name, buf, &size) != RD_KAFKA_CONF_OK) return "";
  return buf;
}

// What drfs's guarantees rest on. `value` nullptr: must stay unset.
struct Guard {
  const char* name;
  const char* value;
  const char* why;
};
constexpr Guard kGuards[] = {
    {"enable.idempotence", "true",
     "so that a retried send can neither duplicate nor reorder a partition's messages"},
    {"acks", "all", "so that a message counts as delivered only once every in-sync replica has it"},
    {"delivery.report.only.error", "false", "so that every message's delivery is reported"},
    {"queuing.strategy", "fifo", "so that messages leave in the order they were queued"},
    {"enable.auto.commit", "false", "because the applier keeps its position in SQLite, not Kafka"},
    {"auto.commit.enable", "false", "because the applier keeps its position in SQLite, not Kafka"},
    {"auto.offset.reset", "error",
     "so that a position the broker no longer has is reported (OutOfRange), never skipped"},
    {"test.mock.num.brokers", "0",
     "because it replaces the brokers by a private in-memory mock cluster"},
    {"transactional.id", nullptr,
     "because drfs does not use Kafka transactions (the producer would send nothing outside one)"},
};

ConfPtr GuardBase() {
  ConfPtr base(rd_kafka_conf_new());
  for (const Guard& g : kGuards) {
    if (g.value != nullptr) SetProperty(base.get(), g.name, g.value).IgnoreError();  // valid
  }
  return base;
}

std::string BootstrapServers(const rd_kafka_conf_t* conf) {
  return ReadBack(conf, "bootstrap.servers");
}

// Properties for a handle: drfs's defaults, then the caller's (validated), then what drfs needs.
Result<ConfPtr> BuildConf(const Properties& defaults, const Properties& props,
                          const Properties& required) {
  DRFS_RETURN_IF_ERROR(ValidateProperties(props));
  ConfPtr conf(rd_kafka_conf_new());
  for (const Properties* set : {&defaults, &props, &required}) {
    for (const auto& [name, value] : *set)
      DRFS_RETURN_IF_ERROR(SetProperty(conf.get(), name, value));
  }
  if (BootstrapServers(conf.get()).empty()) {
    return InvalidArgument(
        "kafka: no brokers configured; set kafka.bootstrap.servers (host:port,...)");
  }
  rd_kafka_conf_set_log_cb(conf.get(), LogLine);
  rd_kafka_conf_set_error_cb(conf.get(), LogClientError);
  return conf;
}

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;

// rd_kafka_new takes the configuration only when it succeeds.
Result<rd_kafka_t*> NewHandle(rd_kafka_type_t type, ConfPtr conf, const std::string& what) {
  char err[512] = {0};
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err, sizeof err);
  if (rk == nullptr) {
    return InvalidArgument("kafka: cannot create a " + what + ": " + err +
                           "; check the kafka.* settings");
  }
  (void)conf.release();
  return rk;
}

// ---- Embedded brokers of this process ----

// "PLAINTEXT://h:p, h2:p2" -> {"h:p", "h2:p2"}.
std::vector<std::string> SplitBrokers(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string item = list.substr(start, end - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (size_t scheme = item.find("://"); scheme != std::string::npos) item.erase(0, scheme + 3);
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

struct Registry {
  std::mutex mu;
  std::vector<std::pair<std::vector<std::string>, rd_kafka_mock_cluster_t*>> clusters;
};

Registry& Embedded() {
  static Registry* registry = new Registry;  // never destroyed: brokers may outlive statics
  return *registry;
}

// The in-process mock cluster one of `bootstrap`'s addresses belongs to. Embedded().mu held.
rd_kafka_mock_cluster_t* FindEmbedded(const std::string& bootstrap) {
  for (const std::string& addr : SplitBrokers(bootstrap)) {
    for (auto& [addrs, cluster] : Embedded().clusters) {
      if (std::find(addrs.begin(), addrs.end(), addr) != addrs.end()) return cluster;
    }
  }
  return nullptr;
}

// ---- Topics ----

Status ValidateTopicName(const std::string& topic) {
  // Kafka's own rule, so the embedded broker refuses what a real cluster would.
  bool ok = !topic.empty() && topic.size() <= 249 && topic != "." && topic != "..";
  for (char c : topic) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-');
  }
  if (!ok) {
    return InvalidArgument("kafka: '" + topic +
                           "' is not a valid topic name (1 to 249 of a-z A-Z 0-9 . _ -)");
  }
  return Status::Ok();
}

// The topic's partition count, or nullopt when the cluster does not list it (yet).
Result<std::optional<int>> PartitionCount(rd_kafka_t* rk, const std::string& topic,
                                          const std::string& where, int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  // All topics: asking for one by name would make a broker that auto-creates topics create it
  // with its default partition count.
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, nullptr, &md, std::max(timeout_ms, 1));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaError(err, where, "");
  std::optional<int> count;
  for (int i = 0; i < md->topic_cnt; i++) {
    const rd_kafka_metadata_topic_t& t = md->topics[i];
    if (topic == t.topic && t.err == RD_KAFKA_RESP_ERR_NO_ERROR) count = t.partition_cnt;
  }
  rd_kafka_metadata_destroy(md);
  return count;
}

Status CreateTopicByRequest(rd_kafka_t* rk, const std::string& topic, int partitions,
                            const std::string& where, int timeout_ms) {
  char err[512] = {0};
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, -1, err, sizeof err);
  if (nt == nullptr) return InvalidArgument("kafka: " + where + ": " + err);
  rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  timeout_ms = std::max(timeout_ms, 1);
  rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, err, sizeof err);
  rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, err, sizeof err);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, opts, queue);
  // The request times out on its own; the margin only covers the result's trip to this queue.
  rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, timeout_ms + 5000);
  Status s;
  if (ev == nullptr) {
    s = KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, where, "no answer to CreateTopics");
  } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    s = KafkaError(rd_kafka_event_error(ev), where, rd_kafka_event_error_string(ev));
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n; i++) {
      rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) continue;
      const char* detail = rd_kafka_topic_result_error_string(results[i]);
      Status e_status = KafkaError(e, where, detail != nullptr ? detail : "");
      s = Status(e_status.code(), e_status.message() + "; or create it by hand: kafka-topics.sh " +
                                      "--create --topic " + topic + " --partitions " +
                                      std::to_string(partitions));
    }
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(queue);
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_NewTopic_destroy(nt);
  return s;
}

bool IsMockCluster(rd_kafka_t* rk, int timeout_ms) {
  char* id = rd_kafka_clusterid(rk, std::max(timeout_ms, 1));
  if (id == nullptr) return false;
  bool mock = std::string_view(id).starts_with("mockCluster");
  rd_kafka_mem_free(rk, id);
  return mock;
}

// Asks for the topic by name, which makes an auto-creating broker create it.
void RequestAutoCreate(rd_kafka_t* rk, const std::string& topic, int timeout_ms) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  if (rkt == nullptr) return;
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(rk, 0, rkt, &md, std::max(timeout_ms, 1)) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_topic_destroy(rkt);
}

}  // namespace

std::string LibraryVersion() {
  return rd_kafka_version_str();
}

Status ValidateProperties(const Properties& props) {
  ConfPtr base = GuardBase();
  for (const auto& [name, value] : props) {
    ConfPtr conf(rd_kafka_conf_dup(base.get()));
    DRFS_RETURN_IF_ERROR(SetProperty(conf.get(), name, value));
    // Compare what librdkafka holds, not the text: that catches aliases
    // (request.required.acks) and every spelling of a value.
    for (const Guard& g : kGuards) {
      if (ReadBack(conf.get(), g.name) == ReadBack(base.get(), g.name)) continue;
      std::string needs =
          g.value != nullptr ? std::string(g.name) + "=" + g.value : std::string(g.name) + " unset";
      std::string sets = name == g.name ? "" : "it sets " + std::string(g.name) + ", and ";
      return InvalidArgument("kafka property " + Shown(name, value) + " is refused: " + sets +
                             "drfs needs " + needs + ", " + g.why +
                             "; remove it from the kafka.* settings");
    }
  }
  return Status::Ok();
}

// ---- EnsureTopic ----

Status EnsureTopic(const Properties& props, const std::string& topic, int partitions,
                   std::chrono::milliseconds timeout) {
  DRFS_RETURN_IF_ERROR(ValidateTopicName(topic));
  if (partitions < 1) {
    return InvalidArgument("kafka: topic " + topic + ": asked for " + std::to_string(partitions) +
                           " partitions; it needs at least 1");
  }
  DRFS_ASSIGN_OR_RETURN(ConfPtr conf, BuildConf({}, props, {}));
  const std::string brokers = BootstrapServers(conf.get());
  const std::string where = "topic " + topic + " at " + brokers;
  const auto deadline = Clock::now() + timeout;

  bool requested = false;
  bool embedded = false;
  {
    std::lock_guard lock(Embedded().mu);
    if (rd_kafka_mock_cluster_t* cluster = FindEmbedded(brokers)) {
      rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster, topic.c_str(), partitions, 1);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        return KafkaError(err, where, "the embedded broker cannot create it");
      }
      requested = true;  // or it existed: the count is checked below either way
      embedded = true;
    }
  }

  DRFS_ASSIGN_OR_RETURN(rd_kafka_t * raw,
                        NewHandle(RD_KAFKA_PRODUCER, std::move(conf), "client for " + where));
  HandlePtr rk(raw);
  bool mock = false;
  Status last = KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, where, "no metadata yet");
  while (true) {
    auto count = PartitionCount(rk.get(), topic, where, TimeoutMs(deadline));
    if (!count.ok()) {
      if (count.status().code() != Code::kUnavailable) return count.status();
      last = count.status();
    } else if (!count->has_value() && requested) {
      last = Unavailable("kafka: " + where +
                         ": created, but the brokers do not list it yet; retry, and see the "
                         "brokers' logs if it persists");
    } else if (count->has_value()) {
      if (**count >= partitions) return Status::Ok();
      std::string msg = "kafka: " + where + " has " + std::to_string(**count) +
                        " partitions; drfs needs " + std::to_string(partitions) +
                        " (one per replica set)";
      if (embedded) {
        msg +=
            ". The embedded broker already had it (made earlier, or made with 4 partitions "
            "when a client named it first); use a new session, or restart the embedded "
            "broker (it keeps data in memory only)";
      } else if (mock) {
        msg +=
            ". It is an embedded broker in another process (librdkafka's mock cluster), which "
            "gives every topic 4 partitions unless the process hosting it creates the topic; "
            "create it there (EmbeddedBroker::CreateTopic)";
      } else {
        msg += "; add partitions (kafka-topics.sh --alter --topic " + topic + " --partitions " +
               std::to_string(partitions) + ") or use a new session";
      }
      return FailedPrecondition(msg);
    } else if (!requested) {
      requested = true;
      mock = IsMockCluster(rk.get(), TimeoutMs(deadline));
      if (mock) {
        RequestAutoCreate(rk.get(), topic, TimeoutMs(deadline));
      } else {
        DRFS_RETURN_IF_ERROR(
            CreateTopicByRequest(rk.get(), topic, partitions, where, TimeoutMs(deadline)));
      }
      continue;  // check what it created
    }
    if (Clock::now() >= deadline) break;
    // A created topic takes a moment to show in every broker's metadata.
    std::this_thread::sleep_for(
        std::min(std::chrono::milliseconds(100), std::chrono::milliseconds(TimeoutMs(deadline))));
  }
  if (last.code() != Code::kUnavailable) return last;
  return Status(Code::kUnavailable, last.message() + " (gave up after " + Ms(timeout) + ")");
}

// ---- EmbeddedBroker ----

struct EmbeddedBroker::Impl {
  rd_kafka_t* host = nullptr;  // librdkafka needs a client to host a mock cluster
  rd_kafka_mock_cluster_t* cluster = nullptr;
  int brokers = 0;
};

Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::Start(int brokers) {
  if (brokers < 1 || brokers > 32) {
    return InvalidArgument("embedded Kafka broker: " + std::to_string(brokers) +
                           " brokers asked for; use 1 to 32");
  }
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, LogLine);
  char err[512] = {0};
  rd_kafka_t* host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (host == nullptr) {
    rd_kafka_conf_destroy(conf);
    return Internal(std::string("embedded Kafka broker: cannot create its host client: ") + err);
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(host, brokers);
  if (cluster == nullptr) {
    rd_kafka_destroy(host);
    return Internal(
        "embedded Kafka broker: librdkafka's mock cluster did not start (see the kafka log "
        "lines before this one; is 127.0.0.1 configured?)");
  }
  std::unique_ptr<EmbeddedBroker> broker(new EmbeddedBroker());
  broker->impl_ = std::make_unique<Impl>();
  broker->impl_->host = host;
  broker->impl_->cluster = cluster;
  broker->impl_->brokers = brokers;
  broker->bootstrap_ = rd_kafka_mock_cluster_bootstraps(cluster);
  {
    std::lock_guard lock(Embedded().mu);
    Embedded().clusters.emplace_back(SplitBrokers(broker->bootstrap_), cluster);
  }
  DRFS_LOG(Info) << "embedded Kafka broker (librdkafka " << LibraryVersion() << ", " << brokers
                 << " broker(s)) listening on " << broker->bootstrap_
                 << "; it keeps data in memory only";
  return broker;
}

EmbeddedBroker::~EmbeddedBroker() {
  if (impl_ == nullptr) return;
  {
    std::lock_guard lock(Embedded().mu);
    auto& clusters = Embedded().clusters;
    std::erase_if(clusters, [&](const auto& c) { return c.second == impl_->cluster; });
  }
  rd_kafka_mock_cluster_destroy(impl_->cluster);
  rd_kafka_destroy(impl_->host);
}

Status EmbeddedBroker::CreateTopic(const std::string& topic, int partitions) {
  // EnsureTopic finds this broker in the registry and creates the topic directly.
  return EnsureTopic({{"bootstrap.servers", bootstrap_}}, topic, partitions,
                     std::chrono::seconds(30));
}

Status EmbeddedBroker::SetBrokerDown(int broker_id, bool down) {
  rd_kafka_resp_err_t err = down ? rd_kafka_mock_broker_set_down(impl_->cluster, broker_id)
                                 : rd_kafka_mock_broker_set_up(impl_->cluster, broker_id);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return InvalidArgument("embedded Kafka broker " + bootstrap_ + ": cannot set broker " +
                           std::to_string(broker_id) + (down ? " down" : " up") + " (" +
                           rd_kafka_err2str(err) + "); broker ids are 1.." +
                           std::to_string(impl_->brokers));
  }
  return Status::Ok();
}

Status EmbeddedBroker::PushRequestErrors(int16_t api_key, int count, int err) {
  if (count < 0) return InvalidArgument("embedded Kafka broker: negative error count");
  std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(count),
                                          static_cast<rd_kafka_resp_err_t>(err));
  rd_kafka_mock_push_request_errors_array(impl_->cluster, api_key, errors.size(), errors.data());
  return Status::Ok();
}

// ---- Producer ----

namespace {

// librdkafka backs off up to 10 s between attempts to reach a broker that went away, which
// after a 2 s broker restart leaves replication idle for seconds more; an attempt every 2 s at
// most costs a down broker nothing.
constexpr const char* kReconnectBackoffMaxMs = "2000";

// A message whose delivery callback has not run. It owns the key and value librdkafka sends
// from (no copy), until the delivery report.
struct Pending {
  Producer::DeliveryFn done;
  std::string key;
  std::string value;
};

}  // namespace

struct Producer::Impl {
  rd_kafka_t* rk = nullptr;
  std::string brokers;
  std::thread poller;
  std::atomic<bool> stop{false};

  mutable std::mutex mu;
  std::condition_variable idle;  // in_flight reached 0
  // Messages whose callback nobody has claimed yet; whoever erases one runs its callback.
  std::unordered_set<Pending*> pending;
  int in_flight = 0;  // accepted messages whose callback has not returned

  void Deliver(Pending* p, const Status& status, int64_t offset) {
    {
      std::lock_guard lock(mu);
      if (pending.erase(p) == 0) return;  // already called back
    }
    p->done(status, offset);
    delete p;
    std::lock_guard lock(mu);
    if (--in_flight == 0) idle.notify_all();
  }

  static void OnDelivery(rd_kafka_t* rk, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    auto* p = static_cast<Pending*>(m->_private);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      self->Deliver(p, Status::Ok(), m->offset);
      return;
    }
    std::string topic;
    {
      [[maybe_unused]] LibrdkafkaMemory scope;
      topic = rd_kafka_topic_name(m->rkt);
    }
    std::string where =
        "topic " + topic + " partition " + std::to_string(m->partition) + " at " + self->brokers;
    Status s;
    switch (m->err) {
      case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
      case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
        s = Status(Code::kCancelled,
                   "kafka: " + where +
                       ": message dropped because the producer was closed before the brokers "
                       "acknowledged it (it may or may not have been written); resend it");
        break;
      case RD_KAFKA_RESP_ERR__FATAL: {
        char why[512] = {0};
        rd_kafka_fatal_error(rk, why, sizeof why);
        s = Aborted("kafka: " + where + ": the producer hit a fatal error (" + why +
                    "); create a new Producer and resend from the last acknowledged message");
        break;
      }
      case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
        s = Unavailable("kafka: " + where +
                        ": message not acknowledged within message.timeout.ms (" +
                        rd_kafka_message_errstr(m) +
                        "); check kafka.bootstrap.servers and that the brokers run, then resend");
        break;
      default:
        s = KafkaError(m->err, where, rd_kafka_message_errstr(m));
        break;
    }
    self->Deliver(p, s, -1);
  }
};

Result<std::unique_ptr<Producer>> Producer::Create(const Properties& props) {
  // Defaults the caller may change; syncer/ batches by itself, so librdkafka should send at once.
  const Properties defaults = {{"message.timeout.ms", "30000"},
                               {"linger.ms", "5"},
                               {"reconnect.backoff.max.ms", kReconnectBackoffMaxMs},
                               {"client.id", "drfs-syncer"}};
  const Properties required = {{"enable.idempotence", "true"}, {"acks", "all"}};
  DRFS_ASSIGN_OR_RETURN(ConfPtr conf, BuildConf(defaults, props, required));
  std::unique_ptr<Producer> producer(new Producer());
  producer->impl_ = std::make_unique<Impl>();
  Impl* impl = producer->impl_.get();
  impl->brokers = BootstrapServers(conf.get());
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &Impl::OnDelivery);
  rd_kafka_conf_set_opaque(conf.get(), impl);
  DRFS_ASSIGN_OR_RETURN(
      impl->rk, NewHandle(RD_KAFKA_PRODUCER, std::move(conf), "producer for " + impl->brokers));
  impl->poller = std::thread([impl] {
    while (!impl->stop.load())
      rd_kafka_poll(impl->rk, 100);
  });
  return producer;
}

Producer::~Producer() {
  if (impl_ == nullptr || impl_->rk == nullptr) return;  // Create failed
  Impl* impl = impl_.get();
  if (!Flush(std::chrono::seconds(2)).ok()) {
    int left = InFlight();
    rd_kafka_purge(impl->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    DRFS_LOG(Warn) << "kafka producer for " << impl->brokers << " closed with " << left
                   << " message(s) not acknowledged after 2 s; dropped them (their senders get "
                      "Cancelled and resend)";
    // The purged messages' reports come through the poller; this bound only guards against a
    // librdkafka that loses one (the sweep below covers it).
    std::unique_lock lock(impl->mu);
    impl->idle.wait_for(lock, std::chrono::seconds(5), [impl] { return impl->in_flight == 0; });
  }
  impl->stop.store(true);
  impl->poller.join();
  rd_kafka_destroy(impl->rk);
  // Anything still unclaimed never got a report: call it back here, once.
  std::vector<Pending*> left;
  {
    std::lock_guard lock(impl->mu);
    left.assign(impl->pending.begin(), impl->pending.end());
  }
  for (Pending* p : left) {
    impl->Deliver(p,
                  Status(Code::kCancelled, "kafka: producer for " + impl->brokers +
                                               " closed before the message was acknowledged; "
                                               "resend it"),
                  -1);
  }
}

Status Producer::Produce(const std::string& topic, int32_t partition, std::string key,
                         std::string value, DeliveryFn done) {
  auto* p = new Pending{std::move(done), std::move(key), std::move(value)};
  {
    std::lock_guard lock(impl_->mu);
    impl_->pending.insert(p);
    impl_->in_flight++;
  }
  rd_kafka_vu_t vus[5];
  vus[0].vtype = RD_KAFKA_VTYPE_TOPIC;
  vus[0].u.cstr = topic.c_str();
  vus[1].vtype = RD_KAFKA_VTYPE_PARTITION;
  vus[1].u.i32 = partition;
  vus[2].vtype = RD_KAFKA_VTYPE_KEY;
  vus[2].u.mem.ptr = p->key.data();
  vus[2].u.mem.size = p->key.size();
  vus[3].vtype = RD_KAFKA_VTYPE_VALUE;
  vus[3].u.mem.ptr = p->value.data();
  vus[3].u.mem.size = p->value.size();
  vus[4].vtype = RD_KAFKA_VTYPE_OPAQUE;
  vus[4].u.ptr = p;
  // No RD_KAFKA_MSG_F_COPY: librdkafka reads key and value from `p` until the report.
  rd_kafka_error_t* error = rd_kafka_produceva(impl_->rk, vus, 5);
  if (error == nullptr) return Status::Ok();

  rd_kafka_resp_err_t err = rd_kafka_error_code(error);
  std::string detail = rd_kafka_error_string(error);
  rd_kafka_error_destroy(error);
  size_t bytes = p->key.size() + p->value.size();
  {
    std::lock_guard lock(impl_->mu);
    impl_->pending.erase(p);
    if (--impl_->in_flight == 0) impl_->idle.notify_all();
  }
  delete p;
  const std::string where =
      "topic " + topic + " partition " + std::to_string(partition) + " at " + impl_->brokers;
  switch (err) {
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
      return Status(Code::kResourceExhausted, "kafka: " + where +
                                                  ": the producer's queue is full (" + detail +
                                                  "); wait for deliveries, then retry");
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
      return InvalidArgument("kafka: " + where + ": a message of " + std::to_string(bytes) +
                             " bytes is larger than message.max.bytes (" +
                             ReadBack(rd_kafka_conf(impl_->rk), "message.max.bytes") +
                             "); raise kafka.message.max.bytes (and the brokers' limit)");
    case RD_KAFKA_RESP_ERR__FATAL: {
      char why[512] = {0};
      rd_kafka_fatal_error(impl_->rk, why, sizeof why);
      return Aborted("kafka: " + where + ": the producer hit a fatal error (" + why +
                     "); create a new Producer and resend from the last acknowledged message");
    }
    default:
      return KafkaError(err, where, detail);
  }
}

Status Producer::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  if (impl_->idle.wait_for(lock, timeout, [this] { return impl_->in_flight == 0; })) {
    return Status::Ok();
  }
  return DeadlineExceeded("kafka: " + std::to_string(impl_->in_flight) + " message(s) to " +
                          impl_->brokers + " not acknowledged after " + Ms(timeout) +
                          "; check kafka.bootstrap.servers and that the brokers run (librdkafka "
                          "keeps retrying until message.timeout.ms)");
}

void Producer::Discard() {
  rd_kafka_purge(impl_->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
}

int Producer::InFlight() const {
  std::lock_guard lock(impl_->mu);
  return impl_->in_flight;
}

// ---- Consumer ----

namespace {

// Errors about the consumer group, which drfs never joins (see the top of this file).
bool IsGroupError(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED:
      return true;
    default:
      return false;
  }
}

}  // namespace

struct Consumer::Impl {
  rd_kafka_t* rk = nullptr;
  std::string brokers;
  std::string topic;
  int32_t partition = -1;
  // Set once the position fell out of the partition; librdkafka stops fetching then, so every
  // Poll reports it until the next Assign.
  std::optional<Status> out_of_range;
  // The last error librdkafka raised outside any partition (a broker unreachable...), for Poll
  // to report when it has no message. librdkafka raises these only to an error callback, which
  // it calls from inside rd_kafka_consumer_poll; the mutex is for safety, not contention.
  std::mutex mu;
  std::optional<Status> client_error;

  static void OnError(rd_kafka_t* /*rk*/, int err, const char* reason, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    auto code = static_cast<rd_kafka_resp_err_t>(err);
    if (IsGroupError(code)) {
      DRFS_LOG(Debug) << "kafka consumer for " << self->brokers
                      << ": ignoring a group error: " << reason;
      return;
    }
    DRFS_LOG(Debug) << "kafka consumer for " << self->brokers << ": " << reason;
    std::lock_guard lock(self->mu);
    self->client_error = KafkaError(code, self->Where(), reason);
  }

  std::string Where() const {
    return "topic " + topic + " partition " + std::to_string(partition) + " at " + brokers;
  }
};

Result<std::unique_ptr<Consumer>> Consumer::Create(const Properties& props) {
  // group.id only unlocks assign(): the group is never joined and nothing is committed.
  const Properties defaults = {{"group.id", "drfs-applier"},
                               {"client.id", "drfs-applier"},
                               {"enable.partition.eof", "false"},
                               // Replication lag is the point: a fetch waits at most 25 ms for
                               // new data at the broker (librdkafka's default is 500 ms, which
                               // alone would put half a second on every hop and every ack).
                               {"fetch.wait.max.ms", "25"},
                               {"fetch.error.backoff.ms", "50"},
                               {"reconnect.backoff.max.ms", kReconnectBackoffMaxMs},
                               {"allow.auto.create.topics", "false"}};
  const Properties required = {{"enable.auto.commit", "false"},
                               {"enable.auto.offset.store", "false"},
                               {"auto.offset.reset", "error"}};
  DRFS_ASSIGN_OR_RETURN(ConfPtr conf, BuildConf(defaults, props, required));
  std::unique_ptr<Consumer> consumer(new Consumer());
  consumer->impl_ = std::make_unique<Impl>();
  Impl* impl = consumer->impl_.get();
  impl->brokers = BootstrapServers(conf.get());
  rd_kafka_conf_set_error_cb(conf.get(), &Impl::OnError);
  rd_kafka_conf_set_opaque(conf.get(), impl);
  DRFS_ASSIGN_OR_RETURN(
      impl->rk, NewHandle(RD_KAFKA_CONSUMER, std::move(conf), "consumer for " + impl->brokers));
  rd_kafka_poll_set_consumer(impl->rk);
  return consumer;
}

Consumer::~Consumer() {
  if (impl_ == nullptr || impl_->rk == nullptr) return;  // Create failed
  // Nothing to leave or commit; a close could wait on an unreachable coordinator.
  rd_kafka_destroy_flags(impl_->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

Status Consumer::Assign(const std::string& topic, int32_t partition, int64_t offset) {
  DRFS_RETURN_IF_ERROR(ValidateTopicName(topic));
  if (partition < 0 || (offset < 0 && offset != kBeginning && offset != kEnd)) {
    return InvalidArgument("kafka: cannot read topic " + topic + " partition " +
                           std::to_string(partition) + " at offset " + std::to_string(offset) +
                           " (partitions count from 0; offsets too, or kBeginning/kEnd)");
  }
  // Drop the old assignment first, so that a new offset on the same partition takes effect.
  rd_kafka_resp_err_t err = rd_kafka_assign(impl_->rk, nullptr);
  impl_->topic = topic;
  impl_->partition = partition;
  impl_->out_of_range.reset();
  {
    std::lock_guard lock(impl_->mu);
    impl_->client_error.reset();
  }
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic.c_str(), partition)->offset = offset;
    err = rd_kafka_assign(impl_->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    impl_->partition = -1;
    return KafkaError(err, impl_->Where(), "cannot assign");
  }
  return Status::Ok();
}

Result<std::optional<Message>> Consumer::Poll(std::chrono::milliseconds timeout) {
  if (impl_->partition < 0) {
    return FailedPrecondition("kafka consumer for " + impl_->brokers + ": Poll before Assign");
  }
  if (impl_->out_of_range) return *impl_->out_of_range;
  {
    std::lock_guard lock(impl_->mu);
    impl_->client_error.reset();  // report only what happens during this call
  }
  // No message: report a client error raised meanwhile, if any.
  auto nothing = [this]() -> Result<std::optional<Message>> {
    std::lock_guard lock(impl_->mu);
    if (impl_->client_error) return *std::exchange(impl_->client_error, std::nullopt);
    return std::optional<Message>();
  };
  const auto deadline = Clock::now() + timeout;
  while (true) {
    rd_kafka_message_t* raw = rd_kafka_consumer_poll(impl_->rk, TimeoutMs(deadline));
    if (raw == nullptr) return nothing();
    std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> m(raw,
                                                                         rd_kafka_message_destroy);
    bool ours = m->rkt == nullptr || m->partition == impl_->partition;
    if (ours && m->rkt != nullptr) {
      [[maybe_unused]] LibrdkafkaMemory scope;
      ours = impl_->topic == rd_kafka_topic_name(m->rkt);
    }
    if (ours && m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      Message out;
      out.offset = m->offset;
      {
        [[maybe_unused]] LibrdkafkaMemory scope;
        if (m->key != nullptr) out.key.assign(static_cast<const char*>(m->key), m->key_len);
        if (m->payload != nullptr) out.value.assign(static_cast<const char*>(m->payload), m->len);
      }
      rd_kafka_timestamp_type_t type;
      out.timestamp_ms = rd_kafka_message_timestamp(m.get(), &type);
      return std::optional<Message>(std::move(out));
    }
    if (ours) {
      switch (m->err) {
        case RD_KAFKA_RESP_ERR__PARTITION_EOF:
          return std::optional<Message>();
        case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
        case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
          impl_->out_of_range = OutOfRange(
              "kafka: " + impl_->Where() + ": offset " + std::to_string(m->offset) +
              " is not in the partition (" + rd_kafka_message_errstr(m.get()) +
              "): the broker lost or expired that data, or restarted empty; assign again, "
              "usually at the beginning");
          return *impl_->out_of_range;
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
          // Unavailable, not NotFound: the syncer may simply not have created it yet.
          return Unavailable("kafka: " + impl_->Where() + ": no such topic or partition (" +
                             rd_kafka_message_errstr(m.get()) +
                             "); it appears when the primary's syncer starts; check the "
                             "session's name and that the syncer runs");
        default:
          if (IsGroupError(m->err)) break;
          return KafkaError(m->err, impl_->Where(), rd_kafka_message_errstr(m.get()));
      }
    }
    // A message or error of an earlier assignment, or an ignored error: keep waiting.
    if (Clock::now() >= deadline) return nothing();
  }
}

Result<std::pair<int64_t, int64_t>> Consumer::Watermarks(std::chrono::milliseconds timeout) {
  if (impl_->partition < 0) {
    return FailedPrecondition("kafka consumer for " + impl_->brokers +
                              ": Watermarks before Assign");
  }
  int64_t low = 0;
  int64_t high = 0;
  rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
      impl_->rk, impl_->topic.c_str(), impl_->partition, &low, &high,
      static_cast<int>(std::clamp<int64_t>(timeout.count(), 1, 1 << 30)));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return KafkaError(err, impl_->Where(), "cannot read the watermarks");
  }
  return std::make_pair(low, high);
}

}  // namespace drfs::kafka
