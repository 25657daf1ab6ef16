// Applier: see applier.h. One thread per replica set runs Loop(): read a message, decode it,
// apply it (retrying Unavailable with backoff until it goes through or Stop()), ack. Every wait
// is bounded (polls of at most 200 ms, backoff sleeps on a condition variable) so Stop() joins
// promptly.
#include "secondary/applier.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "common/time.h"
#include "georep/format.h"

namespace drfs::secondary {

namespace {
constexpr std::chrono::milliseconds kPollTimeout{200};
// Unavailable this many times in a row: ask for the layout again and reconnect (a brick may
// have moved to another port).
constexpr int kReopenAfter = 3;
}  // namespace

struct Applier::Impl {
  ApplierOptions opts;
  std::unique_ptr<BatchApplier> applier;
  std::unique_ptr<kafka::Producer> producer;

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool stopped = false;
  std::map<uint32_t, std::string> faults;  // replica set -> why it is Faulty now
  uint64_t batches = 0, bytes = 0, duplicates = 0, stale = 0, gaps = 0, undecodable = 0;
  std::vector<std::thread> threads;

  bool Stopping() {
    std::lock_guard<std::mutex> l(mu);
    return stopping;
  }
  // Sleeps `d` unless Stop() comes first; false when stopping.
  bool Sleep(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> l(mu);
    return !cv.wait_for(l, d, [this] { return stopping; });
  }
  void SetFault(uint32_t rs, const std::string& why) {
    std::lock_guard<std::mutex> l(mu);
    auto& cur = faults[rs];
    if (cur != why) {
      DRFS_LOG(Warn) << "georep " << opts.session << " applier, replica set " << rs << ": " << why;
    }
    cur = why;
  }
  void ClearFault(uint32_t rs) {
    std::lock_guard<std::mutex> l(mu);
    faults.erase(rs);
  }

  // Opens a client of the secondary volume from its current layout, until it works or Stop().
  std::unique_ptr<volume::VolumeClient> OpenVolume(uint32_t rs) {
    while (!Stopping()) {
      Status why;
      if (!opts.layout) {
        why = FailedPrecondition("no way to get the secondary volume's layout");
      } else {
        auto layout = opts.layout();
        if (layout.ok()) {
          auto vc = volume::VolumeClient::Open(*layout, opts.volume);
          if (vc.ok()) return std::move(*vc);
          why = vc.status();
        } else {
          why = layout.status();
        }
      }
      SetFault(rs, "the secondary volume cannot be reached: " + why.message() +
                       "; retrying (check `drfs volume status` on the secondary site)");
      if (!Sleep(opts.retry_backoff)) break;
    }
    return nullptr;
  }

  void SendAck(uint32_t rs, bool gap) {
    georep::Ack a;
    a.session = opts.session;
    a.replica_set = rs;
    auto p = applier->GetPosition(rs);
    if (p.ok()) {
      a.epoch = p->epoch;
      a.token = p->token;
      a.source_brick = p->source_brick;
      a.applied_lsn = p->lsn;
      a.applied_ts_ns = p->ts_ns;
      a.crawl_seq = p->crawl_seq;
      a.crawl_done = p->crawl_done;
      a.applied_ops = p->applied_ops;
      a.failures = p->failures;
    } else if (p.status().code() != Code::kNotFound || !gap) {
      return;  // nothing applied yet: nothing to tell, unless the syncer must resend
    }
    a.gap = gap;
    a.sent_ns = NowNs();
    // A lost ack costs nothing: the next batch or the idle timer sends another.
    Status s = producer->Produce(georep::AckTopic(opts.session), static_cast<int32_t>(rs),
                                 georep::PartitionKey(rs), georep::EncodeAck(a),
                                 [](const Status&, int64_t) {});
    if (!s.ok()) {
      DRFS_LOG(Warn) << "georep " << opts.session << " applier, replica set " << rs
                     << ": ack not sent: " << s.ToString();
    }
  }

  // Applies one batch, retrying while the volume is unreachable. False when stopping.
  bool ApplyWithRetry(uint32_t rs, std::unique_ptr<volume::VolumeClient>& vc,
                      const georep::Batch& batch, int64_t offset, Outcome* outcome) {
    int unavailable = 0;
    while (!Stopping()) {
      if (!vc) {
        vc = OpenVolume(rs);
        if (!vc) return false;
      }
      auto r = applier->Apply(*vc, batch, offset);
      if (r.ok()) {
        *outcome = *r;
        return true;
      }
      if (r.status().code() != Code::kUnavailable) {
        // Not something waiting fixes (a batch of another session, the database): skip it.
        // The position did not move, so the syncer resends what was real when it sees the gap.
        DRFS_LOG(Error) << "georep " << opts.session << " applier, replica set " << rs
                        << ": batch at offset " << offset << " not applied: "
                        << r.status().ToString();
        *outcome = Outcome::kStale;
        return true;
      }
      SetFault(rs, r.status().message());
      if (++unavailable >= kReopenAfter) {
        vc.reset();
        unavailable = 0;
      }
      if (!Sleep(opts.retry_backoff)) return false;
    }
    return false;
  }

  void Loop(uint32_t rs) {
    const std::string topic = georep::BatchTopic(opts.session);
    std::unique_ptr<volume::VolumeClient> vc = OpenVolume(rs);
    std::unique_ptr<kafka::Consumer> consumer;
    auto last_ack = std::chrono::steady_clock::now();
    while (!Stopping()) {
      if (!vc) {
        vc = OpenVolume(rs);
        continue;
      }
      if (!consumer) {
        Status st = kafka::EnsureTopic(opts.kafka, topic, opts.replica_sets, kPollTimeout * 10);
        if (st.ok()) st = kafka::EnsureTopic(opts.kafka, georep::AckTopic(opts.session),
                                             opts.replica_sets, kPollTimeout * 10);
        int64_t from = kafka::Consumer::kBeginning;
        auto p = applier->GetPosition(rs);
        if (p.ok() && p->kafka_offset >= 0) from = p->kafka_offset + 1;
        if (st.ok()) {
          auto c = kafka::Consumer::Create(opts.kafka);
          if (c.ok()) {
            st = (*c)->Assign(topic, static_cast<int32_t>(rs), from);
            if (st.ok()) consumer = std::move(*c);
          } else {
            st = c.status();
          }
        }
        if (!consumer) {
          SetFault(rs, "cannot read topic " + topic + ": " + st.message() + "; retrying");
          Sleep(opts.retry_backoff);
          continue;
        }
      }
      auto m = consumer->Poll(kPollTimeout);
      if (!m.ok()) {
        if (m.status().code() == Code::kOutOfRange) {
          // The broker lost data or restarted empty: read what it has; LSNs drop the repeats.
          DRFS_LOG(Warn) << "georep " << opts.session << " applier, replica set " << rs
                         << ": its position is no longer in " << topic
                         << " (the broker lost data or restarted); reading from the beginning";
          Status st = consumer->Assign(topic, static_cast<int32_t>(rs), kafka::Consumer::kBeginning);
          if (!st.ok()) consumer.reset();
          continue;
        }
        SetFault(rs, "reading " + topic + ": " + m.status().message() + "; retrying");
        Sleep(opts.retry_backoff);
        continue;
      }
      const auto now = std::chrono::steady_clock::now();
      if (!m->has_value()) {
        if (now - last_ack >= opts.idle_ack_interval) {
          SendAck(rs, false);
          last_ack = now;
        }
        continue;
      }
      const kafka::Message& msg = **m;
      {
        std::lock_guard<std::mutex> l(mu);
        ++batches;
        bytes += msg.value.size();
      }
      georep::Batch batch;
      Status d = georep::DecodeBatch(msg.value, &batch);
      if (!d.ok()) {
        DRFS_LOG(Error) << "georep " << opts.session << " applier, replica set " << rs
                        << ": message at offset " << msg.offset << " of " << topic
                        << " does not decode, skipped: " << d.ToString();
        std::lock_guard<std::mutex> l(mu);
        ++undecodable;
        continue;
      }
      Outcome outcome = Outcome::kApplied;
      if (!ApplyWithRetry(rs, vc, batch, msg.offset, &outcome)) break;
      ClearFault(rs);
      {
        std::lock_guard<std::mutex> l(mu);
        if (outcome == Outcome::kDuplicate) ++duplicates;
        if (outcome == Outcome::kStale) ++stale;
        if (outcome == Outcome::kGap) ++gaps;
      }
      SendAck(rs, outcome == Outcome::kGap);
      last_ack = std::chrono::steady_clock::now();
    }
  }
};

Applier::Applier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Applier::~Applier() { Stop(); }

Result<std::unique_ptr<Applier>> Applier::Start(const ApplierOptions& options) {
  if (options.replica_sets < 1) {
    return InvalidArgument("georep session " + options.session + ": replica_sets must be >= 1");
  }
  DRFS_RETURN_IF_ERROR(kafka::ValidateProperties(options.kafka));
  auto impl = std::make_unique<Impl>();
  impl->opts = options;
  DRFS_ASSIGN_OR_RETURN(impl->applier, BatchApplier::Open(options.db_path, options.session));
  DRFS_ASSIGN_OR_RETURN(impl->producer, kafka::Producer::Create(options.kafka));
  Impl* p = impl.get();
  for (int rs = 0; rs < options.replica_sets; ++rs) {
    const uint32_t r = static_cast<uint32_t>(rs);
    p->threads.emplace_back([p, r] { p->Loop(r); });
  }
  return std::unique_ptr<Applier>(new Applier(std::move(impl)));
}

void Applier::Stop() {
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  if (impl_->producer) impl_->producer->Flush(std::chrono::milliseconds(1000)).IgnoreError();
  std::lock_guard<std::mutex> l(impl_->mu);
  impl_->stopped = true;
}

ApplierInfo Applier::Info() {
  ApplierInfo info;
  auto positions = impl_->applier->Positions();
  if (positions.ok()) info.positions = std::move(*positions);
  std::lock_guard<std::mutex> l(impl_->mu);
  if (impl_->stopping) {
    info.state = "Stopped";
  } else if (!impl_->faults.empty()) {
    info.state = "Faulty";
    for (const auto& f : impl_->faults) {
      info.reason += (info.reason.empty() ? "" : "; ") + std::string("replica set ") +
                     std::to_string(f.first) + ": " + f.second;
    }
  } else {
    info.state = "Active";
  }
  info.batches = impl_->batches;
  info.bytes = impl_->bytes;
  info.duplicates = impl_->duplicates;
  info.stale = impl_->stale;
  info.gaps = impl_->gaps;
  info.undecodable = impl_->undecodable;
  return info;
}

Result<std::vector<Failure>> Applier::Failures(int limit) { return impl_->applier->Failures(limit); }

}  // namespace drfs::secondary
