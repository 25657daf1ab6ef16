// The whole geo-replication pipeline in one process, for the sanitizers (TSan above all): a
// primary replica-3 volume of in-process bricks written through a VolumeClient, one Syncer per
// brick (one becomes Active), the embedded Kafka broker, an Applier onto a secondary replica-3
// volume. The secondary must end up with the primary's tree, by gfid; then the Active syncer is
// stopped, a Passive one takes over with a newer token, and later writes arrive too.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <thread>

#include "brick/client.h"
#include "georep/format.h"
#include "georep/kafka.h"
#include "secondary/applier.h"
#include "syncer/syncer.h"
#include "tests/common/test_util.h"
#include "tests/secondary/volume_fixture.h"

namespace drfs {
namespace {

using namespace std::chrono_literals;
using testing::Cluster;
using testing::Diff;
using testing::TreeOf;

constexpr char kSession[] = "pipe";

class Pipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    auto b = kafka::EmbeddedBroker::Start(1);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    broker_ = std::move(*b);
    ASSERT_TRUE(broker_->CreateTopic(georep::BatchTopic(kSession), 1).ok());
    ASSERT_TRUE(broker_->CreateTopic(georep::AckTopic(kSession), 1).ok());
    primary_ = pri_.Client();
    ASSERT_NE(primary_, nullptr);
    secondary::ApplierOptions ao;
    ao.session = kSession;
    ao.db_path = dir_.Sub("applier.db");
    ao.kafka["bootstrap.servers"] = broker_->bootstrap_servers();
    ao.replica_sets = 1;
    Cluster* sec = &sec_;
    ao.layout = [sec]() -> Result<volume::Layout> { return sec->MakeLayout(); };
    ao.idle_ack_interval = 200ms;
    auto ap = secondary::Applier::Start(ao);
    ASSERT_TRUE(ap.ok()) << ap.status().ToString();
    applier_ = std::move(*ap);
    for (int i = 0; i < 3; ++i) StartSyncer(i);
  }
  void TearDown() override {
    for (auto& s : syncers_) s.reset();
    applier_.reset();
    primary_.reset();
    broker_.reset();
  }

  struct PrimaryCluster : Cluster {
    PrimaryCluster() : Cluster("pvol") {}
  };

  void StartSyncer(int i) {
    syncer::SyncerOptions o;
    o.session = kSession;
    o.volume_uuid = "00000000-0000-0000-0000-0000000000a1";
    o.brick_id = BrickId(i);
    o.brick_name = "brick" + std::to_string(i);
    o.changelog_dir = pri_.Dir(i) + "/.drfs/changelog";
    volume::Layout l = pri_.MakeLayout();
    o.brick_host = l.bricks[static_cast<size_t>(i)].host;
    o.brick_port = l.bricks[static_cast<size_t>(i)].port;
    for (const auto& b : l.bricks) o.replica_bricks.push_back({b.name, b.host, b.port});
    o.kafka["bootstrap.servers"] = broker_->bootstrap_servers();
    o.linger = 5ms;
    o.election_interval = 200ms;
    o.ack_wait = 500ms;
    o.resend_timeout = 5000ms;
    auto s = syncer::Syncer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    syncers_[static_cast<size_t>(i)] = std::move(*s);
  }

  std::string BrickId(int i) {
    auto c = brick::BrickClient::Connect("127.0.0.1", pri_.MakeLayout().bricks[static_cast<size_t>(i)].port);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? (*c)->brick_id() : "";
  }

  // The Active syncer's index, waiting for one.
  int Active() {
    for (int t = 0; t < 300; ++t) {
      for (int i = 0; i < 3; ++i) {
        if (syncers_[static_cast<size_t>(i)] && syncers_[static_cast<size_t>(i)]->Info().state == "Active") return i;
      }
      std::this_thread::sleep_for(50ms);
    }
    return -1;
  }

  // Waits until the Active syncer's journal is applied to its newest record.
  void WaitCaughtUp() {
    for (int t = 0; t < 1200; ++t) {
      const int a = Active();
      ASSERT_GE(a, 0) << "no Active syncer";
      auto in = syncers_[static_cast<size_t>(a)]->Info();
      if (in.visible_lsn > 0 && in.acked_lsn >= in.visible_lsn) return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "the secondary did not catch up";
  }

  // A random mix of namespace and data ops through the primary's client.
  void Workload(uint32_t seed, int ops) {
    std::mt19937 rng(seed);
    std::vector<Gfid> dirs = {Gfid::Root()};
    std::vector<std::pair<Gfid, std::string>> files;  // (parent, name)
    auto name = [&] { return "n" + std::to_string(rng() % 30); };
    for (int i = 0; i < ops; ++i) {
      const Gfid& d = dirs[rng() % dirs.size()];
      switch (rng() % 8) {
        case 0: {
          auto r = primary_->Mkdir(d, "d" + name(), 0755, 0, 0);
          if (r.ok()) dirs.push_back(r->gfid);
          break;
        }
        case 1:
        case 2: {
          const std::string n = name();
          auto r = primary_->Create(d, n, 0644, 0, 0, false);
          if (r.ok()) {
            std::string data(rng() % 70000, static_cast<char>('a' + rng() % 26));
            (void)primary_->Write(r->gfid, rng() % 4096, data);
            (void)primary_->Flush(r->gfid);
            files.emplace_back(d, n);
          }
          break;
        }
        case 3:
          if (!files.empty()) {
            auto& f = files[rng() % files.size()];
            const Gfid& to = dirs[rng() % dirs.size()];
            const std::string n = name();
            if (primary_->Rename(f.first, f.second, to, n).ok()) f = {to, n};
          }
          break;
        case 4:
          if (!files.empty()) {
            const size_t k = rng() % files.size();
            (void)primary_->Unlink(files[k].first, files[k].second);
            files.erase(files.begin() + static_cast<long>(k));
          }
          break;
        case 5:
          if (!files.empty()) {
            auto& f = files[rng() % files.size()];
            auto a = primary_->Lookup(f.first, f.second);
            if (a.ok()) {
              volume::SetattrArgs s;
              s.valid = brick_proto::kAttrMode | brick_proto::kAttrMtime | brick_proto::kAttrAtime;
              s.mode = 0600 | (rng() % 2 ? 040 : 0);
              s.mtime_ns = 1'600'000'000'000'000'000ll + static_cast<int64_t>(rng());
              s.atime_ns = s.mtime_ns;
              (void)primary_->Setattr(a->gfid, s);
            }
          }
          break;
        case 6:
          if (!files.empty()) {
            auto& f = files[rng() % files.size()];
            auto a = primary_->Lookup(f.first, f.second);
            if (a.ok()) (void)primary_->Setxattr(a->gfid, "user.k" + std::to_string(rng() % 3), name(), 0);
          }
          break;
        case 7:
          (void)primary_->Symlink(d, "l" + name(), "target-" + name(), 0, 0);
          break;
      }
    }
  }

  void ExpectSame() {
    auto sec = sec_.Client();
    ASSERT_NE(sec, nullptr);
    // Not mtimes: each of the primary's own bricks stamps entry ops with its own clock reading.
    auto a = TreeOf(*primary_, /*with_times=*/false);
    auto b = TreeOf(*sec, /*with_times=*/false);
    EXPECT_EQ(a.size(), b.size());
    EXPECT_TRUE(a == b) << Diff(a, b);
  }

  testing::TempDir dir_;
  PrimaryCluster pri_;
  Cluster sec_;
  std::unique_ptr<kafka::EmbeddedBroker> broker_;
  std::unique_ptr<volume::VolumeClient> primary_;
  std::unique_ptr<secondary::Applier> applier_;
  std::unique_ptr<syncer::Syncer> syncers_[3];
};

TEST_F(Pipeline, ReplicatesAndSurvivesATakeover) {
  Workload(1, 300);
  WaitCaughtUp();
  ExpectSame();

  // Stop the Active syncer: its connections (and locks) go; a Passive one takes over with a
  // newer fencing token and resumes from the applier's position in its own journal.
  const int first = Active();
  ASSERT_GE(first, 0);
  const uint64_t token = syncers_[static_cast<size_t>(first)]->Info().token;
  syncers_[static_cast<size_t>(first)].reset();
  Workload(2, 200);
  const int second = Active();
  ASSERT_GE(second, 0);
  EXPECT_NE(second, first);
  EXPECT_GT(syncers_[static_cast<size_t>(second)]->Info().token, token);
  WaitCaughtUp();
  ExpectSame();
  auto info = applier_->Info();
  EXPECT_EQ(info.state, "Active") << info.reason;
  auto failures = applier_->Failures(10);
  ASSERT_TRUE(failures.ok());
  EXPECT_TRUE(failures->empty()) << (*failures)[0].op << " " << (*failures)[0].target << ": "
                                 << (*failures)[0].error;
}

}  // namespace
}  // namespace drfs
