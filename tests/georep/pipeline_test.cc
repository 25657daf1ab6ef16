// The whole geo-replication pipeline in one process, for the sanitizers (TSan above all): a
// primary replica-3 volume of in-process bricks written through a VolumeClient, one Syncer per
// brick (one becomes Active), the embedded Kafka broker, an Applier onto a secondary replica-3
// volume. The secondary must end up with the primary's tree, by gfid; then the Active syncer is
// stopped, a Passive one takes over with a newer token, and later writes arrive too. The initial
// sync of a volume that already holds a tree: a crawl, with a mutator changing the tree while
// it runs, and a takeover in its middle.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <thread>

#include "brick/client.h"
#include "changelog/reader.h"
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
  }
  // The session starts when its syncers do: what the volume holds then is crawled.
  void StartSyncers() {
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
    o.bandwidth_bytes_per_s = bandwidth_;
    o.crawl_listed = crawl_listed_;
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
    EXPECT_TRUE(a == b) << Diff(a, b) << History(a, b);
  }

  // For a failure: what brick 0's journal says about each object the two trees disagree on.
  std::string History(const testing::Tree& a, const testing::Tree& b) {
    if (a == b) return "";
    std::set<Gfid> gfids;
    auto collect = [&](const testing::Tree& x, const testing::Tree& y) {
      for (const auto& [p, d] : x) {
        auto it = y.find(p);
        if (it != y.end() && it->second == d) continue;
        auto g = Gfid::Parse(d.substr(d.find(' ', d.find(' ') + 1) + 1, 36));
        if (g) gfids.insert(*g);
      }
    };
    collect(a, b);
    collect(b, a);
    changelog::ReaderOptions ro;
    ro.bound = changelog::ReaderOptions::Bound::kOnDisk;
    auto rd = changelog::Reader::Open(pri_.Dir(0) + "/.drfs/changelog", ro);
    if (!rd.ok()) return "\n  (journal: " + rd.status().ToString() + ")";
    std::string out = "\n  brick 0's journal on them:";
    for (;;) {
      auto e = (*rd)->Next();
      if (!e.ok() || !e->has_value()) break;
      const changelog::Record& r = (**e).record;
      if (!gfids.count(r.gfid) && !gfids.count(r.replaced) && !gfids.count(r.parent) &&
          !gfids.count(r.new_parent)) {
        continue;
      }
      out += "\n    " + std::to_string(r.lsn) + " " + std::to_string(r.timestamp_ns / 1000000 % 100000) +
             " " + std::string(changelog::OpTypeName(r.op)) + " " + r.gfid.ToString().substr(0, 8) +
             " " + r.parent.ToString().substr(0, 8) + "/" + r.name;
      if (r.op == changelog::OpType::kRename) {
        out += " -> " + r.new_parent.ToString().substr(0, 8) + "/" + r.new_name;
      }
    }
    return out;
  }

  // A tree of what a crawl must carry: nested directories, files of a few bytes to several
  // MiB (more than one message), hard links across directories, symlinks, user xattrs on files
  // and directories, modes and times.
  void Populate() {
    std::mt19937 rng(7);
    std::vector<Gfid> dirs = {Gfid::Root()};
    for (int i = 0; i < 4; ++i) {
      auto d = primary_->Mkdir(Gfid::Root(), "top" + std::to_string(i), 0755, 0, 0);
      ASSERT_TRUE(d.ok()) << d.status().ToString();
      dirs.push_back(d->gfid);
      for (int j = 0; j < 3; ++j) {
        auto e = primary_->Mkdir(d->gfid, "mid" + std::to_string(j), j == 1 ? 0700 : 0755, 0, 0);
        ASSERT_TRUE(e.ok()) << e.status().ToString();
        dirs.push_back(e->gfid);
        auto f = primary_->Mkdir(e->gfid, "deep", 0755, 0, 0);
        ASSERT_TRUE(f.ok()) << f.status().ToString();
        dirs.push_back(f->gfid);
      }
    }
    ASSERT_TRUE(primary_->Setxattr(dirs[1], "user.dir", "top0", 0).ok());
    std::vector<Gfid> files;
    for (size_t d = 0; d < dirs.size(); ++d) {
      for (int k = 0; k < 6; ++k) {
        auto f = primary_->Create(dirs[d], "f" + std::to_string(k), k % 3 == 0 ? 0600 : 0644, 0, 0,
                                  true);
        ASSERT_TRUE(f.ok()) << f.status().ToString();
        files.push_back(f->gfid);
        size_t size = rng() % 20000;
        if (k == 5 && d % 5 == 0) size = (5u << 19) + rng() % 100000;  // ~2.5 MiB: fragments
        if (size > 0) {
          std::string data(size, '\0');
          for (auto& ch : data)
            ch = static_cast<char>('a' + rng() % 26);
          ASSERT_TRUE(primary_->Write(f->gfid, 0, data).ok());
          ASSERT_TRUE(primary_->Flush(f->gfid).ok());
        }
        if (k == 1) {
          ASSERT_TRUE(primary_->Setxattr(f->gfid, "user.k", "v" + std::to_string(d), 0).ok());
        }
        if (k == 2) {
          volume::SetattrArgs a;
          a.valid = brick_proto::kAttrMtime | brick_proto::kAttrAtime;
          a.mtime_ns = a.atime_ns = 1'500'000'000'000'000'000ll + static_cast<int64_t>(d);
          ASSERT_TRUE(primary_->Setattr(f->gfid, a).ok());
        }
      }
      ASSERT_TRUE(primary_->Symlink(dirs[d], "link", "../f" + std::to_string(d), 0, 0).ok());
      ASSERT_TRUE(primary_->Mkdir(dirs[d], "empty", 0711, 0, 0).ok());
    }
    // Hard links: a second name in another directory, and a third in the same one.
    for (size_t i = 0; i + 7 < files.size(); i += 7) {
      ASSERT_TRUE(
          primary_->Link(files[i], dirs[(i / 7 + 3) % dirs.size()], "hl" + std::to_string(i)).ok());
    }
    ASSERT_TRUE(primary_->Link(files[1], dirs[0], "f1-again").ok());
  }

  // Changes the tree from its own client until `stop`: creates, writes, truncates, renames of
  // files and of whole directories (across the tree, so some move from where a crawl has not
  // been yet to where it has), hard links, unlinks, rmdirs, chmods and xattrs. Errors are
  // expected (a name taken, a directory moved into itself) and ignored.
  void Mutate(uint32_t seed, std::atomic<bool>* stop, std::atomic<int>* done_ops) {
    auto c = pri_.Client();
    ASSERT_NE(c, nullptr);
    std::mt19937 rng(seed);
    struct Obj {
      Gfid parent;
      std::string name;
    };
    std::map<Gfid, Obj> dirs, files;
    // What is there now (from the top two levels, which is enough to pick from).
    std::vector<std::pair<Gfid, std::string>> todo = {{Gfid::Root(), ""}};
    for (size_t i = 0; i < todo.size() && i < 20; ++i) {
      auto page = c->Readdir(todo[i].first, 0, 4096, true);
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      for (const auto& e : page->entries) {
        if (S_ISDIR(e.attr.mode)) {
          dirs[e.gfid] = {todo[i].first, e.name};
          todo.emplace_back(e.gfid, e.name);
        } else if (S_ISREG(e.attr.mode)) {
          files[e.gfid] = {todo[i].first, e.name};
        }
      }
    }
    auto pick = [&](std::map<Gfid, Obj>& m) {
      auto it = m.begin();
      std::advance(it, static_cast<long>(rng() % m.size()));
      return it;
    };
    auto any_dir = [&]() {
      return dirs.empty() || rng() % 5 == 0 ? Gfid::Root() : pick(dirs)->first;
    };
    int n = 0;
    while (!stop->load()) {
      const std::string name = "m" + std::to_string(seed) + "-" + std::to_string(n++);
      switch (rng() % 10) {
        case 0: {
          const Gfid p = any_dir();
          auto d = c->Mkdir(p, name, 0755, 0, 0);
          if (d.ok()) dirs[d->gfid] = {p, name};
          break;
        }
        case 1: {
          const Gfid p = any_dir();
          auto f = c->Create(p, name, 0644, 0, 0, true);
          if (f.ok()) {
            (void)c->Write(f->gfid, 0, std::string(rng() % 50000, 'c'));
            (void)c->Flush(f->gfid);
            files[f->gfid] = {p, name};
          }
          break;
        }
        case 2:
          if (!files.empty()) {
            auto f = pick(files);
            (void)c->Write(f->first, rng() % 30000, std::string(rng() % 40000 + 1, 'w'));
            (void)c->Flush(f->first);
          }
          break;
        case 3:
          if (!files.empty()) {
            auto f = pick(files);
            volume::SetattrArgs a;
            a.valid = brick_proto::kAttrSize;
            a.size = rng() % 10000;
            (void)c->Setattr(f->first, a);
          }
          break;
        case 4:
          if (!files.empty()) {
            auto f = pick(files);
            const Gfid to = any_dir();
            if (c->Rename(f->second.parent, f->second.name, to, name).ok()) f->second = {to, name};
          }
          break;
        case 5:
          if (!dirs.empty()) {
            // A whole subtree moves.
            auto d = pick(dirs);
            const Gfid to = any_dir();
            if (to != d->first && c->Rename(d->second.parent, d->second.name, to, name).ok()) {
              d->second = {to, name};
            }
          }
          break;
        case 6:
          if (!files.empty()) {
            auto f = pick(files);
            if (c->Unlink(f->second.parent, f->second.name).ok()) files.erase(f);
          }
          break;
        case 7:
          if (!files.empty()) {
            auto f = pick(files);
            (void)c->Link(f->first, any_dir(), name);
          }
          break;
        case 8:
          if (!files.empty()) {
            auto f = pick(files);
            volume::SetattrArgs a;
            a.valid = brick_proto::kAttrMode;
            a.mode = rng() % 2 ? 0640 : 0604;
            (void)c->Setattr(f->first, a);
            (void)c->Setxattr(f->first, "user.m", name, 0);
          }
          break;
        case 9:
          if (!dirs.empty()) {
            auto d = pick(dirs);
            if (c->Rmdir(d->second.parent, d->second.name).ok()) dirs.erase(d);
          }
          break;
      }
      done_ops->fetch_add(1);
      std::this_thread::sleep_for(2ms);
    }
  }

  // The Active syncer's info once it shows the initial sync with some of it applied.
  int WaitCrawlProgress() {
    for (int t = 0; t < 600; ++t) {
      const int a = Active();
      if (a >= 0) {
        auto in = syncers_[static_cast<size_t>(a)]->Info();
        if (in.crawl == "Initial sync" && in.crawl_files_done > 0) return a;
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }

  void ExpectNoFailures() {
    auto failures = applier_->Failures(10);
    ASSERT_TRUE(failures.ok());
    EXPECT_TRUE(failures->empty())
        << (*failures)[0].op << " " << (*failures)[0].target << ": " << (*failures)[0].error;
  }

  void ExpectCrawled() {
    auto info = applier_->Info();
    ASSERT_EQ(info.positions.size(), 1u);
    EXPECT_TRUE(info.positions[0].crawl_done);
    EXPECT_GT(info.positions[0].crawl_seq, 0u);
  }

  uint64_t bandwidth_ = 0;
  std::function<void(const Gfid&)> crawl_listed_;
  testing::TempDir dir_;
  PrimaryCluster pri_;
  Cluster sec_;
  std::unique_ptr<kafka::EmbeddedBroker> broker_;
  std::unique_ptr<volume::VolumeClient> primary_;
  std::unique_ptr<secondary::Applier> applier_;
  std::unique_ptr<syncer::Syncer> syncers_[3];
};

TEST_F(Pipeline, ReplicatesAndSurvivesATakeover) {
  StartSyncers();
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

// A session created on a volume that holds a tree crawls it, while a mutator keeps changing it;
// the changes made during the crawl arrive too, and the trees end identical by gfid.
TEST_F(Pipeline, InitialSyncCrawlsWhileTheTreeChanges) {
  Populate();
  // Slow enough (about 3 s for the tree) that the mutator overlaps the whole walk.
  bandwidth_ = 3u << 20;
  StartSyncers();
  std::atomic<bool> stop{false};
  std::atomic<int> ops{0};
  std::thread mutator([&] { Mutate(11, &stop, &ops); });
  const int a = WaitCrawlProgress();
  // Keep changing until the crawl is over (its window closes after the tree settles).
  for (int t = 0; t < 600 && a >= 0; ++t) {
    if (syncers_[static_cast<size_t>(a)]->Info().crawl != "Initial sync") break;
    std::this_thread::sleep_for(20ms);
  }
  stop.store(true);
  mutator.join();
  ASSERT_GE(a, 0) << "the initial sync never showed progress";
  EXPECT_GT(ops.load(), 50);
  WaitCaughtUp();
  ExpectSame();
  ExpectCrawled();
  ExpectNoFailures();
  // And the changelog follows it.
  Workload(3, 100);
  WaitCaughtUp();
  ExpectSame();
  ExpectNoFailures();
}

// The walk misses a directory that moves from where it has not been yet to where it has been
// (the window ships it when it meets that rename), and objects the walk had shipped moved into
// it before: the secondary cannot put them there when it replays those renames. None may stay
// under its old name: a file unlinked since goes, a file with another name keeps only its
// names, and a directory that moved on out of the missed one arrives where it went. A file
// whose only name the walk saw goes from there, and lives on under the name in the missed one.
// A file made later with a name in the missed directory keeps the name it was made with.
TEST_F(Pipeline, InitialSyncFollowsObjectsIntoADirectoryTheWalkMissed) {
  std::map<Gfid, std::string> tops;
  for (const char* n : {"x1", "x2"}) {
    auto d = primary_->Mkdir(Gfid::Root(), n, 0755, 0, 0);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    tops[d->gfid] = n;
    ASSERT_TRUE(primary_->Mkdir(d->gfid, "d", 0755, 0, 0).ok());
  }
  auto make_file = [&](const Gfid& parent, const std::string& name, size_t size) {
    auto f = primary_->Create(parent, name, 0644, 0, 0, true);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_TRUE(primary_->Write(f->gfid, 0, std::string(size, name[0])).ok());
    ASSERT_TRUE(primary_->Flush(f->gfid).ok());
  };
  make_file(Gfid::Root(), "f", 70000);
  make_file(Gfid::Root(), "k", 3000);
  auto k = primary_->Lookup(Gfid::Root(), "k");
  ASSERT_TRUE(k.ok());
  ASSERT_TRUE(primary_->Link(k->gfid, Gfid::Root(), "k2").ok());
  auto g = primary_->Mkdir(Gfid::Root(), "g", 0755, 0, 0);
  ASSERT_TRUE(g.ok());
  make_file(g->gfid, "h", 5000);
  // /q also lives as /x1/d/q and /x2/d/q.
  make_file(Gfid::Root(), "q", 4000);
  auto q = primary_->Lookup(Gfid::Root(), "q");
  ASSERT_TRUE(q.ok());
  for (const auto& [top, name] : tops) {
    auto d = primary_->Lookup(top, "d");
    ASSERT_TRUE(d.ok());
    ASSERT_TRUE(primary_->Link(q->gfid, d->gfid, "q").ok());
  }

  // Right after the walk lists one of /x1 and /x2 (L), before the other (Y): everything moves
  // into Y/d, Y/d moves to L/d2 (so the walk never lists it), then the file goes and the
  // directory moves on to the root.
  std::atomic<bool> done{false};
  std::atomic<int> errors{0};
  crawl_listed_ = [&](const Gfid& listed) {
    if (!tops.count(listed) || done.exchange(true)) return;
    auto c = pri_.Client();
    if (c == nullptr) {
      ++errors;
      return;
    }
    const std::string l = tops[listed], y = l == "x1" ? "x2" : "x1";
    auto L = c->Lookup(Gfid::Root(), l);
    auto Y = c->Lookup(Gfid::Root(), y);
    if (!L.ok() || !Y.ok()) {
      ++errors;
      return;
    }
    auto yd = c->Lookup(Y->gfid, "d");
    if (!yd.ok()) {
      ++errors;
      return;
    }
    auto count = [&](const Status& s) {
      if (!s.ok()) {
        ADD_FAILURE() << s.ToString();
        ++errors;
      }
    };
    count(c->Rename(Gfid::Root(), "f", yd->gfid, "f", 0));
    count(c->Rename(Gfid::Root(), "g", yd->gfid, "g", 0));
    count(c->Rename(Gfid::Root(), "k", yd->gfid, "k", 0));
    auto ld = c->Lookup(L->gfid, "d");
    count(ld.status());
    if (ld.ok()) count(c->Unlink(ld->gfid, "q"));
    // The only name of /q the secondary has goes; the one left is in the missed directory.
    count(c->Unlink(Gfid::Root(), "q"));
    count(c->Rename(Y->gfid, "d", L->gfid, "d2", 0));
    count(c->Unlink(yd->gfid, "f"));
    count(c->Rename(yd->gfid, "g", Gfid::Root(), "g2", 0));
    // A file made after the move with a name in the missed directory too: shipping the
    // directory (listed as it is by then) ships the file before the window's CREATE of it.
    auto r = c->Create(Gfid::Root(), "r", 0644, 0, 0, true);
    count(r.status());
    if (r.ok()) count(c->Link(r->gfid, yd->gfid, "r2").status());
  };
  StartSyncers();
  for (int t = 0; t < 600 && !done.load(); ++t) std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(done.load()) << "the walk never listed /x1 or /x2";
  EXPECT_EQ(errors.load(), 0);
  WaitCaughtUp();
  ExpectSame();
  ExpectCrawled();
  ExpectNoFailures();
  for (auto& s : syncers_) s.reset();  // the hook refers to this test's locals
}

// The Active syncer goes away in the middle of the initial crawl: another brick's syncer takes
// over and crawls again from when the first crawl began, and the result is the same.
TEST_F(Pipeline, InitialSyncSurvivesATakeoverMidCrawl) {
  Populate();
  bandwidth_ = 2u << 20;
  StartSyncers();
  std::atomic<bool> stop{false};
  std::atomic<int> ops{0};
  std::thread mutator([&] { Mutate(12, &stop, &ops); });
  const int first = WaitCrawlProgress();
  if (first >= 0) {
    const auto info = syncers_[static_cast<size_t>(first)]->Info();
    EXPECT_LT(info.crawl_files_done, info.crawl_files_total);
    EXPECT_GT(info.crawl_files_total, 100u);
    EXPECT_GT(info.crawl_bytes_total, 5u << 20);
    syncers_[static_cast<size_t>(first)].reset();
  }
  std::this_thread::sleep_for(1500ms);
  stop.store(true);
  mutator.join();
  ASSERT_GE(first, 0) << "the initial sync never showed progress";
  const int second = Active();
  ASSERT_GE(second, 0);
  EXPECT_NE(second, first);
  WaitCaughtUp();
  ExpectSame();
  ExpectCrawled();
  ExpectNoFailures();
}

}  // namespace
}  // namespace drfs
