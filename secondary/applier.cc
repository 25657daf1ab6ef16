#include "secondary/applier.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "common/file.h"
#include "common/log.h"
#include "common/time.h"
#include "georep/format.h"

namespace drfs::secondary {

using namespace std::chrono_literals;

struct Applier::Impl {
  explicit Impl(ApplierOptions o) : opts(std::move(o)) {}

  ApplierOptions opts;
  std::unique_ptr<BatchApplier> batches;
  std::mutex producer_mu;  // producer: shared by the replica sets' threads, replaced on Aborted
  std::unique_ptr<kafka::Producer> producer;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;

  std::atomic<bool> broker_same{true};  // the broker is the one the stored offsets come from
  std::mutex vol_mu;  // the shared volume client: (re)opened by whichever thread needs it
  std::shared_ptr<volume::VolumeClient> vol;

  std::mutex mu;  // the counters and state below
  ApplierInfo info;
  std::map<uint32_t, std::string> faulty;  // replica set -> why

  void Run(uint32_t rs);
  std::shared_ptr<volume::VolumeClient> Volume(Status* why);
  void DropVolume(const std::shared_ptr<volume::VolumeClient>& bad);
  void SetFaulty(uint32_t rs, const std::string& why);
  void Ack(uint32_t rs, bool gap);
  bool Sleep(std::chrono::milliseconds d) {
    for (auto left = d; left.count() > 0 && !stop.load(); left -= 50ms) {
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(left, 50ms));
    }
    return !stop.load();
  }
};

std::shared_ptr<volume::VolumeClient> Applier::Impl::Volume(Status* why) {
  std::lock_guard<std::mutex> l(vol_mu);
  if (vol) return vol;
  auto layout = opts.layout();
  if (!layout.ok()) {
    *why = layout.status().WithContext("the secondary volume's layout");
    return nullptr;
  }
  auto v = volume::VolumeClient::Open(*layout, opts.volume);
  if (!v.ok()) {
    *why = v.status().WithContext("opening the secondary volume " + layout->volume);
    return nullptr;
  }
  vol = std::shared_ptr<volume::VolumeClient>(std::move(*v));
  return vol;
}

void Applier::Impl::DropVolume(const std::shared_ptr<volume::VolumeClient>& bad) {
  std::lock_guard<std::mutex> l(vol_mu);
  if (vol == bad) vol.reset();
}

void Applier::Impl::SetFaulty(uint32_t rs, const std::string& why) {
  std::lock_guard<std::mutex> l(mu);
  auto& cur = faulty[rs];
  if (cur != why && !why.empty()) {
    DRFS_LOG(Warn) << "georep " << opts.session << " applier, replica set " << rs << ": " << why;
  }
  cur = why;
}

// Tells the syncers how far this replica set is applied.
void Applier::Impl::Ack(uint32_t rs, bool gap) {
  auto pos = batches->GetPosition(rs);
  if (!pos.ok()) return;
  georep::Ack a;
  a.session = opts.session;
  a.replica_set = rs;
  a.epoch = pos->epoch;
  a.token = pos->token;
  a.source_brick = pos->source_brick;
  a.applied_lsn = pos->lsn;
  a.applied_ts_ns = pos->ts_ns;
  a.crawl_seq = pos->crawl_seq;
  a.crawl_done = pos->crawl_done;
  a.gap = gap;
  a.applied_ops = pos->applied_ops;
  a.failures = pos->failures;
  a.sent_ns = NowNs();
  std::lock_guard<std::mutex> l(producer_mu);
  if (!producer) {
    auto p = kafka::Producer::Create(opts.kafka);
    if (!p.ok()) {
      SetFaulty(rs, "Kafka producer for acks: " + p.status().ToString());
      return;
    }
    producer = std::move(*p);
  }
  Status s = producer->Produce(georep::AckTopic(opts.session, opts.epoch), static_cast<int32_t>(rs),
                               georep::PartitionKey(rs), georep::EncodeAck(a),
                               [](const Status&, int64_t) {});
  if (s.code() == Code::kAborted) {
    // A fatal producer error: this producer sends nothing more; the next ack makes a new one.
    DRFS_LOG(Warn) << "georep " << opts.session << ": ack producer failed for good ("
                   << s.ToString() << "); making a new one";
    producer.reset();
  } else if (!s.ok()) {
    DRFS_LOG(Debug) << "georep " << opts.session << ": ack not queued: " << s.ToString();
  }
}

void Applier::Impl::Run(uint32_t rs) {
  const std::string topic = georep::BatchTopic(opts.session, opts.epoch);
  std::unique_ptr<kafka::Consumer> consumer;
  uint64_t last_ack_ns = 0;
  bool same_log = broker_same.load();  // once assigned, the offsets stored from now on are this log's
  while (!stop.load()) {
    if (!consumer) {
      kafka::Properties p = opts.kafka;
      p["group.id"] = "drfs-applier-" + opts.session;
      auto c = kafka::Consumer::Create(p);
      if (!c.ok()) {
        SetFaulty(rs, "Kafka consumer: " + c.status().ToString());
        Sleep(opts.retry_backoff);
        continue;
      }
      auto pos = batches->GetPosition(rs);
      // A stored offset means something only in the log it was read from: after the broker
      // changed (the embedded one restarted empty on a new address), read from the start and
      // let LSN dedup drop what was applied.
      const int64_t from = same_log && pos.ok() && pos->kafka_offset >= 0 ? pos->kafka_offset + 1
                                                                          : kafka::Consumer::kBeginning;
      Status s = (*c)->Assign(topic, static_cast<int32_t>(rs), from);
      if (!s.ok()) {
        SetFaulty(rs, "Kafka: " + s.ToString());
        Sleep(opts.retry_backoff);
        continue;
      }
      consumer = std::move(*c);
      same_log = true;
    }
    auto m = consumer->Poll(200ms);
    if (!m.ok()) {
      if (m.status().code() == Code::kOutOfRange) {
        // The broker no longer has our position (it restarted empty, or expired data): read
        // the partition from its start; LSN dedup drops what was applied already.
        DRFS_LOG(Info) << "georep " << opts.session << " applier, replica set " << rs
                       << ": position gone from the broker (" << m.status().message()
                       << "); reading from the start of the partition";
        (void)consumer->Assign(topic, static_cast<int32_t>(rs), kafka::Consumer::kBeginning);
        continue;
      }
      SetFaulty(rs, "Kafka: " + m.status().ToString());
      Sleep(opts.retry_backoff);
      continue;
    }
    SetFaulty(rs, "");  // Kafka answered
    if (!m->has_value()) {
      if (MonotonicNs() - last_ack_ns > static_cast<uint64_t>(opts.idle_ack_interval.count()) * 1000000ull) {
        Ack(rs, false);
        last_ack_ns = MonotonicNs();
      }
      continue;
    }
    const kafka::Message& msg = **m;
    {
      std::lock_guard<std::mutex> l(mu);
      ++info.batches;
      info.bytes += msg.value.size();
    }
    georep::Batch b;
    Status ds = georep::DecodeBatch(msg.value, &b);
    if (!ds.ok()) {
      DRFS_LOG(Warn) << "georep " << opts.session << " applier: message at offset " << msg.offset
                     << " of " << topic << "/" << rs << " skipped: " << ds.ToString();
      std::lock_guard<std::mutex> l(mu);
      ++info.undecodable;
      continue;
    }
    if (b.header.session != opts.session || b.header.replica_set != rs) {
      DRFS_LOG(Warn) << "georep " << opts.session << " applier: message at offset " << msg.offset
                     << " belongs to session " << b.header.session << " replica set "
                     << b.header.replica_set << "; skipped";
      continue;
    }
    // Apply, retrying while the secondary volume cannot take it.
    Outcome out = Outcome::kApplied;
    for (int attempt = 0; !stop.load(); ++attempt) {
      Status why;
      auto v = Volume(&why);
      if (!v) {
        SetFaulty(rs, why.ToString());
        Sleep(opts.retry_backoff);
        continue;
      }
      auto r = batches->Apply(*v, b, msg.offset);
      if (r.ok()) {
        out = *r;
        SetFaulty(rs, "");
        break;
      }
      SetFaulty(rs, "applying LSN " + std::to_string(b.header.first_lsn) + "-" +
                        std::to_string(b.header.last_lsn) + ": " + r.status().ToString());
      if (attempt >= 3) DropVolume(v);  // follow bricks that moved
      Sleep(opts.retry_backoff);
    }
    if (stop.load()) break;
    {
      std::lock_guard<std::mutex> l(mu);
      if (out == Outcome::kDuplicate) ++info.duplicates;
      if (out == Outcome::kStale) ++info.stale;
      if (out == Outcome::kGap) ++info.gaps;
    }
    Ack(rs, out == Outcome::kGap);
    last_ack_ns = MonotonicNs();
  }
}

Applier::Applier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Applier::~Applier() { Stop(); }

void Applier::Stop() {
  impl_->stop.store(true);
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  impl_->threads.clear();
  {
    // Acks are sent again every second by whoever applies next: do not wait for a broker that
    // no longer answers (the primary's, when its site is lost and this site is promoted).
    std::lock_guard<std::mutex> l(impl_->producer_mu);
    if (impl_->producer) impl_->producer->Discard();
    impl_->producer.reset();
  }
  std::lock_guard<std::mutex> l(impl_->mu);
  impl_->info.state = "Stopped";
}

ApplierInfo Applier::Info() {
  ApplierInfo out;
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    out = impl_->info;
    if (out.state != "Stopped") {
      out.state = "Active";
      out.reason.clear();
      for (const auto& [rs, why] : impl_->faulty) {
        if (why.empty()) continue;
        out.state = "Faulty";
        out.reason = "replica set " + std::to_string(rs) + ": " + why;
      }
    }
  }
  auto ps = impl_->batches->Positions();
  if (ps.ok()) out.positions = *ps;
  return out;
}

Result<std::vector<Failure>> Applier::Failures(int limit) { return impl_->batches->Failures(limit); }

Result<std::unique_ptr<Applier>> Applier::Start(const ApplierOptions& options) {
  if (options.session.empty() || options.db_path.empty() || !options.layout) {
    return InvalidArgument("applier: session, database path and layout source are required");
  }
  auto impl = std::make_unique<Impl>(options);
  DRFS_ASSIGN_OR_RETURN(impl->batches, BatchApplier::Open(options.db_path, options.session));
  DRFS_ASSIGN_OR_RETURN(impl->producer, kafka::Producer::Create(options.kafka));
  // Which broker the stored offsets belong to: DB_PATH.broker holds its bootstrap address.
  {
    const std::string path = options.db_path + ".broker";
    auto it = options.kafka.find("bootstrap.servers");
    const std::string now = it == options.kafka.end() ? "" : it->second;
    auto before = ReadFileToString(FileSystem::Default(), path);
    impl->broker_same.store(before.ok() && *before == now);
    if (!before.ok() || *before != now) {
      Status w = WriteFileAtomically(FileSystem::Default(), path, now);
      if (!w.ok()) DRFS_LOG(Warn) << "georep " << options.session << ": " << w.ToString();
    }
  }
  impl->info.state = "Active";
  Impl* p = impl.get();
  for (int rs = 0; rs < std::max(1, options.replica_sets); ++rs) {
    p->threads.emplace_back([p, rs] { p->Run(static_cast<uint32_t>(rs)); });
  }
  return std::unique_ptr<Applier>(new Applier(std::move(impl)));
}

}  // namespace drfs::secondary
