// kill -9 of a brick running namespace and data ops from several threads, and crashes at the
// brick's named failure probes. After each crash Backend::Open repairs, and then:
// every acknowledged op is in the journal; the journal's namespace records replay to exactly the
// tree on disk (nothing on disk that is not journaled, nothing journaled that is not on disk);
// the gfid index agrees with the tree; no intents are left.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "brick/backend.h"
#include "common/failpoint.h"
#include "tests/brick/brick_test_util.h"
#include "tests/common/test_util.h"

namespace drfs::brick {
namespace {

using drfs::testing::TempDir;
using testing::Join;
using namespace std::chrono_literals;

struct Acked {
  std::string op;
  Gfid gfid, parent, new_parent;
  std::string name, new_name;
};

pid_t Start(const std::string& dir, const std::string& out, int threads, long ops,
            const std::string& failpoints, unsigned seed, const char* mode = nullptr) {
  const std::string bin = drfs::testing::BinDir() + "/tests/brick_backend_child";
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    if (!failpoints.empty()) setenv("DRFS_FAILPOINTS", failpoints.c_str(), 1);
    execl(bin.c_str(), bin.c_str(), dir.c_str(), std::to_string(threads).c_str(),
          std::to_string(ops).c_str(), std::to_string(seed).c_str(), mode, nullptr);
    _exit(127);
  }
  return pid;
}

std::map<uint64_t, Acked> ReadAcked(const std::string& out) {
  std::map<uint64_t, Acked> acked;
  std::istringstream in(drfs::testing::ReadFile(out));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    uint64_t lsn;
    std::string g, p, np;
    Acked a;
    if (!(l >> lsn >> a.op >> g >> p >> a.name >> np >> a.new_name)) continue;
    a.gfid = Gfid::Parse(g).value_or(Gfid());
    a.parent = Gfid::Parse(p).value_or(Gfid());
    a.new_parent = Gfid::Parse(np).value_or(Gfid());
    acked[lsn] = a;
  }
  return acked;
}

// Reopens the brick after a crash and checks everything the header promises.
void VerifyAfterCrash(const std::string& dir, const std::map<uint64_t, Acked>& acked,
                      Backend::RepairReport* report = nullptr) {
  BackendOptions o;
  o.journal.fsync_policy = changelog::FsyncPolicy::kNever;
  auto b = Backend::Open(dir, o);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  if (report) *report = (*b)->repair_report();
  std::vector<changelog::Record> records;
  testing::TreeModel model, tree;
  EXPECT_EQ(Join(testing::ReplayJournal(dir, &model, &records)), "")
      << "the journal does not replay cleanly";
  EXPECT_EQ(Join(testing::CheckConsistency(dir, &tree)), "");
  EXPECT_EQ(model, tree) << "the tree on disk and the journal disagree";
  ASSERT_EQ(records.size(), (*b)->journal()->last_lsn());
  for (const auto& [lsn, a] : acked) {
    ASSERT_LE(lsn, records.size()) << "acknowledged LSN " << lsn << " is missing";
    const changelog::Record& r = records[lsn - 1];
    SCOPED_TRACE("acknowledged LSN " + std::to_string(lsn) + " " + a.op + " " + a.name);
    EXPECT_EQ(changelog::OpTypeName(r.op), a.op);
    if (!a.gfid.is_null()) {
      EXPECT_EQ(r.gfid, a.gfid);
    }
    if (a.op != "WRITE") {
      EXPECT_EQ(r.parent, a.parent);
      EXPECT_EQ(r.name, a.name);
    }
    if (a.op == "RENAME") {
      EXPECT_EQ(r.new_parent, a.new_parent);
      EXPECT_EQ(r.new_name, a.new_name);
    }
  }
  // The brick still works.
  brick_proto::Request q;
  q.op = brick_proto::Op::kMkdir;
  q.parent = Gfid::Root();
  q.name = "after-crash-" + std::to_string(records.size());
  q.gfid = Gfid::Random();
  q.mode = 0755;
  auto r = (*b)->Execute(q);
  EXPECT_EQ(r.err, 0) << r.message;
  EXPECT_EQ(r.lsn, records.size() + 1);
}

TEST(BackendCrashTest, Kill9WhileFourThreadsMutateLosesNothingAcknowledged) {
  TempDir t;
  const std::string dir = t.Sub("brick");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  int repaired = 0;
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string out = t.Sub("acked-" + std::to_string(round));
    pid_t pid = Start(dir, out, 4, 0, "", static_cast<unsigned>(round + 1));
    // Kill it at a different point of its run each round.
    const size_t target = 150u + 120u * static_cast<size_t>(round);
    auto give_up = std::chrono::steady_clock::now() + 60s;
    while (ReadAcked(out).size() < target && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(5ms);
    }
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited on its own: " << status;
    auto acked = ReadAcked(out);
    ASSERT_GE(acked.size(), target) << "the child made no progress";
    Backend::RepairReport report;
    VerifyAfterCrash(dir, acked, &report);
    repaired += report.intents_completed + report.intents_rolled_back;
  }
  // Not asserted (it depends on where the kill lands), but worth seeing in the log.
  std::printf("intents repaired over all rounds: %d\n", repaired);
}

// ---- Pending markers ----------------------------------------------------------------------

// (file gfid, thread) -> counter value: what the markers child was told, or what was found.
using Counters = std::map<std::pair<Gfid, int>, int32_t>;

Counters ReadAckedMarkers(const std::string& out) {
  Counters acked;
  std::istringstream in(drfs::testing::ReadFile(out));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    std::string tag, g;
    int t;
    int32_t v;
    if (!(l >> tag >> g >> t >> v) || tag != "M") continue;
    acked[{Gfid::Parse(g).value_or(Gfid()), t}] = v;
  }
  return acked;
}

size_t CountLines(const std::string& out) {
  std::string text = drfs::testing::ReadFile(out);
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

// After a crash of the markers child: every object with markers is in the heal index (which
// may hold more), each counter is its last acknowledged value or one step past it (the op in
// flight), and listing the index drops the extras. `known` holds the values found after the
// previous crash, for counters this run never acknowledged; it is updated.
void VerifyMarkersAfterCrash(const std::string& dir, const Counters& acked, int threads,
                             Counters* known, int* extra_entries = nullptr) {
  BackendOptions o;
  o.journal.fsync_policy = changelog::FsyncPolicy::kNever;
  auto b = Backend::Open(dir, o);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  std::set<Gfid> marked;
  for (int i = 0; i < 4; ++i) {
    brick_proto::Request l;
    l.op = brick_proto::Op::kLookup;
    l.parent = Gfid::Root();
    l.name = "m" + std::to_string(i);
    brick_proto::Reply r = (*b)->Execute(l);
    ASSERT_EQ(r.err, 0) << r.message;
    const Gfid g = r.attr.gfid;
    const bool indexed = ::access((dir + "/.drfs/heal/" + g.ToString()).c_str(), F_OK) == 0;
    if (!r.pending.empty()) {
      marked.insert(g);
      EXPECT_TRUE(indexed) << "m" << i << " has markers but no heal index entry";
    } else if (indexed && extra_entries) {
      ++*extra_entries;
    }
    for (int t = 0; t < threads; ++t) {
      const int32_t v = static_cast<size_t>(t) < r.pending.size() ? r.pending[t] : 0;
      EXPECT_TRUE(v == 0 || v == 1) << "m" << i << " counter " << t << " = " << v;
      auto a = acked.find({g, t});
      const bool have = a != acked.end() || known->count({g, t});
      const int32_t last = a != acked.end() ? a->second : have ? known->at({g, t}) : 0;
      // One op in flight per thread, each a single step.
      if (have) {
        EXPECT_LE(std::abs(v - last), 1) << "m" << i << " counter " << t;
      }
      (*known)[{g, t}] = v;
    }
  }
  // Listing drops what the crash left, and lists exactly the marked objects.
  std::set<Gfid> listed;
  brick_proto::Request h;
  h.op = brick_proto::Op::kHealIndex;
  h.length = 2;
  for (int i = 0; i < 100; ++i) {
    brick_proto::Reply r = (*b)->Execute(h);
    ASSERT_EQ(r.err, 0) << r.message;
    for (const auto& e : r.entries) {
      listed.insert(e.gfid);
      h.offset = e.cookie;
    }
    if (r.eof) break;
  }
  EXPECT_EQ(listed, marked);
  EXPECT_EQ(testing::ListDir(dir + "/.drfs/heal").size(), marked.size());
  EXPECT_EQ(Join(testing::CheckConsistency(dir)), "");
}

TEST(BackendCrashTest, Kill9DuringXattropsKeepsTheHealIndexASupersetOfTheMarked) {
  TempDir t;
  const std::string dir = t.Sub("brick");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  Counters known;
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string out = t.Sub("markers-" + std::to_string(round));
    pid_t pid = Start(dir, out, 3, 0, "", static_cast<unsigned>(round + 1), "markers");
    const size_t target = 300u + 250u * static_cast<size_t>(round);
    auto give_up = std::chrono::steady_clock::now() + 60s;
    while (CountLines(out) < target && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(2ms);
    }
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited on its own: " << status;
    ASSERT_GE(CountLines(out), target) << "the child made no progress";
    VerifyMarkersAfterCrash(dir, ReadAckedMarkers(out), 3, &known);
  }
}

// A crash exactly between the two writes of an XATTROP, going either way, leaves an index entry
// the markers do not need, and never the reverse.
class MarkerProbeCrashTest : public ::testing::TestWithParam<const char*> {};

TEST_P(MarkerProbeCrashTest, CrashBetweenIndexAndMarkersLeavesOnlyAnExtraEntry) {
  if (!failpoint::CompiledIn()) GTEST_SKIP() << "failure probes are compiled out of this build";
  TempDir t;
  const std::string dir = t.Sub("brick");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  Counters known;
  int extra = 0;
  for (int hit : {5, 40}) {
    const std::string out = t.Sub("acked-" + std::to_string(hit));
    pid_t pid = Start(dir, out, 1, 0, std::string(GetParam()) + "=crash@" + std::to_string(hit),
                      static_cast<unsigned>(hit), "markers");
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 137)
        << "the child did not crash at " << GetParam() << ": status " << status;
    VerifyMarkersAfterCrash(dir, ReadAckedMarkers(out), 1, &known, &extra);
  }
  // One thread, one op in flight: with a single counter per file, the crashed op left that
  // file's markers all zero and its entry behind (found before the listing dropped it).
  EXPECT_EQ(extra, 2);
}

INSTANTIATE_TEST_SUITE_P(Probes, MarkerProbeCrashTest,
                         ::testing::Values("brick.xattrop.after_index",
                                           "brick.xattrop.before_index_remove"),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           std::string n = p.param;
                           for (char& c : n) {
                             if (c == '.') c = '_';
                           }
                           return n;
                         });

// Crash just before journaling, at each named probe: the op must be rolled back.
class BackendProbeCrashTest : public ::testing::TestWithParam<const char*> {};

TEST_P(BackendProbeCrashTest, CrashBeforeJournalingRollsTheOpBack) {
  if (!failpoint::CompiledIn()) GTEST_SKIP() << "failure probes are compiled out of this build";
  TempDir t;
  const std::string dir = t.Sub("brick");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::string out = t.Sub("acked");
  pid_t pid = Start(dir, out, 3, 0, std::string(GetParam()) + "=crash@25", 7);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 137)
      << "the child did not crash at " << GetParam() << ": status " << status;
  Backend::RepairReport report;
  VerifyAfterCrash(dir, ReadAcked(out), &report);
  EXPECT_GE(report.intents_rolled_back, 1) << "the op at the probe was not journaled";
}

INSTANTIATE_TEST_SUITE_P(Probes, BackendProbeCrashTest,
                         ::testing::Values("brick.create.after_link", "brick.rename.after_rename",
                                           "brick.unlink.after_unlink", "brick.mkdir.after_mkdir",
                                           "brick.rmdir.after_rmdir", "brick.link.after_link"),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           std::string n = p.param;
                           for (char& c : n) {
                             if (c == '.') c = '_';
                           }
                           return n;
                         });

// Crash right after the journal append, before the intent is removed: the op is completed.
TEST(BackendCrashTest, CrashAfterJournalingCompletesTheOp) {
  if (!failpoint::CompiledIn()) GTEST_SKIP() << "failure probes are compiled out of this build";
  TempDir t;
  const std::string dir = t.Sub("brick");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::string out = t.Sub("acked");
  // The writer's own probe fires after the record is written, inside Append.
  pid_t pid = Start(dir, out, 3, 0, "changelog.flush.after_write=crash@200", 11);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 137) << "status " << status;
  Backend::RepairReport report;
  VerifyAfterCrash(dir, ReadAcked(out), &report);
  std::printf("completed %d, rolled back %d\n", report.intents_completed,
              report.intents_rolled_back);
}

}  // namespace
}  // namespace drfs::brick
