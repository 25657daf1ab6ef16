// kill -9 of a process appending from several threads, and crashes at named points.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <sstream>
#include <thread>

#include "changelog/reader.h"
#include "changelog/writer.h"
#include "common/failpoint.h"
#include "tests/common/test_util.h"

namespace drfs::changelog {
namespace {

using drfs::testing::TempDir;
using namespace std::chrono_literals;

struct Child {
  pid_t pid = -1;
  std::string out_path;
};

// Starts journal_child with stdout to a file. `failpoints` goes into DRFS_FAILPOINTS.
Child Start(const std::string& dir, const std::string& out, int threads, const char* policy,
            const std::string& failpoints = "", long count = 0) {
  Child c;
  c.out_path = out;
  const std::string bin = drfs::testing::BinDir() + "/tests/journal_child";
  c.pid = fork();
  if (c.pid == 0) {
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    if (!failpoints.empty()) setenv("DRFS_FAILPOINTS", failpoints.c_str(), 1);
    execl(bin.c_str(), bin.c_str(), dir.c_str(), std::to_string(threads).c_str(), policy, "16384",
          std::to_string(count).c_str(), nullptr);
    _exit(127);
  }
  return c;
}

// (lsn -> record identity) of every acknowledged append the child printed.
std::map<Lsn, uint64_t> Acked(const std::string& out) {
  std::map<Lsn, uint64_t> acked;
  std::istringstream in(drfs::testing::ReadFile(out));
  unsigned long long lsn, seq;
  int thread;
  while (in >> lsn >> thread >> seq) acked[lsn] = static_cast<uint64_t>(thread) << 32 | seq;
  return acked;
}

// Reopens the journal as a writer would after the crash and checks it: dense LSNs from 1,
// every acknowledged record present with the right contents, and appends continue.
void VerifyAfterCrash(const std::string& dir, const std::map<Lsn, uint64_t>& acked) {
  auto w = Writer::Open(dir, {});
  ASSERT_OK(w);
  const Lsn last = (*w)->last_lsn();
  ReaderOptions ro;
  ro.from_lsn = 1;
  auto r = Reader::Open(dir, ro);
  ASSERT_OK(r);
  Lsn want = 1;
  for (;;) {
    auto e = (*r)->Next();
    ASSERT_OK(e);
    if (!e->has_value()) break;
    ASSERT_EQ((*e)->record.lsn, want);
    if (auto it = acked.find(want); it != acked.end()) {
      ASSERT_EQ((*e)->record.offset, it->second) << "LSN " << want << " holds the wrong record";
    }
    ++want;
  }
  EXPECT_EQ(want, last + 1);
  if (!acked.empty()) {
    EXPECT_GE(last, acked.rbegin()->first) << "an acknowledged record was lost";
  }
  Record r2;
  r2.op = OpType::kMkdir;
  r2.gfid.bytes[15] = 7;
  r2.parent.bytes[15] = 1;
  r2.name = "after-crash";
  auto lsn = (*w)->Append(r2);
  ASSERT_OK(lsn);
  EXPECT_EQ(*lsn, last + 1);
}

class CrashTest : public ::testing::TestWithParam<const char*> {};

TEST_P(CrashTest, Kill9WhileEightThreadsAppendLosesNoAcknowledgedRecord) {
  TempDir t;
  const std::string dir = t.Sub("journal");
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::string out = t.Sub("acked-" + std::to_string(round));
    Child c = Start(dir, out, 8, GetParam());
    // Let it run until it has acknowledged some records, then kill it mid-flight.
    auto give_up = std::chrono::steady_clock::now() + 60s;
    while (Acked(out).size() < 300u * (round + 1) && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(20ms);
    }
    kill(c.pid, SIGKILL);
    int status = 0;
    waitpid(c.pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited on its own: " << status;
    auto acked = Acked(out);
    ASSERT_GE(acked.size(), 300u) << "the child made no progress";
    VerifyAfterCrash(dir, acked);
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, CrashTest, ::testing::Values("always", "interval", "never"));

// Crash at each named point of the write path, at the 50th time it is reached.
class FailpointCrashTest : public ::testing::TestWithParam<const char*> {};

TEST_P(FailpointCrashTest, CrashAtNamedPointRecoversCleanly) {
  if (!failpoint::CompiledIn()) GTEST_SKIP() << "failure probes are compiled out of this build";
  TempDir t;
  const std::string dir = t.Sub("journal");
  std::string out = t.Sub("acked");
  std::string probe = std::string(GetParam()) + "=crash@" +
                      (std::string(GetParam()).find("roll") != std::string::npos ? "3" : "50");
  Child c = Start(dir, out, 4, "always", probe, 100000);
  int status = 0;
  waitpid(c.pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 137)
      << "the child did not crash at " << GetParam() << ": status " << status;
  VerifyAfterCrash(dir, Acked(out));
}

INSTANTIATE_TEST_SUITE_P(Points, FailpointCrashTest,
                         ::testing::Values("changelog.flush.after_write",
                                           "changelog.flush.after_sync",
                                           "changelog.roll.after_create",
                                           "changelog.roll.after_rename"));

}  // namespace
}  // namespace drfs::changelog
