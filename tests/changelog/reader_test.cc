#include "changelog/reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "changelog/cursor.h"
#include "changelog/journal.h"
#include "tests/changelog/test_records.h"
#include "changelog/writer.h"
#include "tests/common/fault_injection_fs.h"
#include "tests/common/test_util.h"

namespace drfs::changelog {
namespace {

using drfs::testing::TempDir;
using testing::FullRecord;
using namespace std::chrono_literals;

TEST(Reader, StartsAtAnyLsn) {
  TempDir t;
  WriterOptions o;
  o.segment_max_bytes = 4096;
  auto w = Writer::Open(t.path(), o);
  ASSERT_OK(w);
  for (int i = 0; i < 150; ++i) ASSERT_OK((*w)->Append(FullRecord(OpType::kRename, i)));
  ASSERT_GT((*w)->stats().rollovers, 2u);
  for (Lsn from : {Lsn{1}, Lsn{2}, Lsn{37}, Lsn{100}, Lsn{150}}) {
    ReaderOptions ro;
    ro.from_lsn = from;
    auto r = Reader::Open(t.path(), ro);
    ASSERT_OK(r);
    Lsn want = from;
    for (;;) {
      auto e = (*r)->Next();
      ASSERT_OK(e);
      if (!e->has_value()) break;
      EXPECT_EQ((*e)->record.lsn, want++);
    }
    EXPECT_EQ(want, 151u) << "from " << from;
  }
}

TEST(Reader, TailsWhileAppendersRollTheJournalAndSeesEveryRecordOnceInOrder) {
  TempDir t;
  WriterOptions o;
  o.segment_max_bytes = 4096;  // a rollover every ~40 records
  auto w = Writer::Open(t.path(), o);
  ASSERT_OK(w);
  constexpr int kThreads = 4, kPer = 300;
  constexpr Lsn kTotal = kThreads * kPer;

  std::vector<Lsn> seen;
  std::thread tail([&] {
    ReaderOptions ro;
    ro.from_lsn = 1;
    auto r = Reader::Open(t.path(), ro);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    auto give_up = std::chrono::steady_clock::now() + 120s;
    while (seen.size() < kTotal && std::chrono::steady_clock::now() < give_up) {
      auto e = (*r)->Next(200ms);
      ASSERT_TRUE(e.ok()) << e.status().ToString();
      if (e->has_value()) seen.push_back((*e)->record.lsn);
    }
  });
  std::vector<std::thread> writers;
  for (int th = 0; th < kThreads; ++th) {
    writers.emplace_back([&] {
      for (int i = 0; i < kPer; ++i) ASSERT_TRUE((*w)->Append(FullRecord(OpType::kWrite, i)).ok());
    });
  }
  for (auto& th : writers) th.join();
  tail.join();
  EXPECT_GT((*w)->stats().rollovers, 10u);
  ASSERT_EQ(seen.size(), kTotal);
  for (Lsn i = 0; i < kTotal; ++i) ASSERT_EQ(seen[i], i + 1);
}

TEST(Reader, NextTimesOutWhenNothingIsPublishedAndWakesOnAppend) {
  TempDir t;
  auto w = Writer::Open(t.path(), {});
  ASSERT_OK(w);
  auto r = Reader::Open(t.path(), {});
  ASSERT_OK(r);
  auto none = (*r)->Next(30ms);
  ASSERT_OK(none);
  EXPECT_FALSE(none->has_value());
  std::thread later([&] {
    std::this_thread::sleep_for(50ms);
    ASSERT_TRUE((*w)->Append(FullRecord(OpType::kMkdir, 1)).ok());
  });
  auto one = (*r)->Next(60s);  // wakes on the publish, long before the timeout
  later.join();
  ASSERT_OK(one);
  ASSERT_TRUE(one->has_value());
  EXPECT_EQ((*one)->record.lsn, 1u);
}

TEST(Reader, PurgedLsnIsOutOfRange) {
  TempDir t;
  WriterOptions o;
  o.segment_max_bytes = 4096;
  auto w = Writer::Open(t.path(), o);
  ASSERT_OK(w);
  CursorStore cursors(t.path());
  ASSERT_OK(cursors.Register("syncer", 0));
  for (int i = 0; i < 200; ++i) ASSERT_OK((*w)->Append(FullRecord(OpType::kCreate, i)));
  ASSERT_OK(cursors.Advance("syncer", 150));
  ASSERT_OK((*w)->Purge());  // the writer's housekeeping may have purged already
  auto segs = ListSegments(t.path(), FileSystem::Default());
  ASSERT_OK(segs);
  const Lsn oldest_kept = segs->front().first_lsn;
  ASSERT_GT(oldest_kept, 1u);
  ASSERT_LE(oldest_kept, 151u);
  ReaderOptions ro;
  ro.from_lsn = 1;
  auto r = Reader::Open(t.path(), ro);
  EXPECT_EQ(r.status().code(), Code::kOutOfRange);
  EXPECT_NE(r.status().message().find("purged"), std::string::npos);
  ro.from_lsn = 0;  // the oldest kept
  auto oldest = Reader::Open(t.path(), ro);
  ASSERT_OK(oldest);
  auto e = (*oldest)->Next();
  ASSERT_OK(e);
  ASSERT_TRUE(e->has_value());
  EXPECT_EQ((*e)->record.lsn, oldest_kept);
}

// A record that reached the file but was never published, then cut back and replaced by another
// record under the same LSN (a failed batch), must not be returned from the reader's read-ahead.
TEST(Reader, NeverReturnsReadAheadOfABatchThatWasCutBackAndRewritten) {
  TempDir t;
  drfs::testing::FaultInjectionFs fsi;
  Record first = FullRecord(OpType::kMkdir, 1), stale = FullRecord(OpType::kCreate, 2),
         fresh = FullRecord(OpType::kUnlink, 3);
  uint64_t cut = 0;
  {
    WriterOptions o;
    o.fs = &fsi;
    auto w = Writer::Open(t.path(), o);
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append(first));
    cut = *FileSystem::Default()->FileSize(JoinPath(t.path(), SegmentFileName(1)));
    fsi.FailSyncs(ErrnoStatus(EIO, "fdatasync"));
    EXPECT_FALSE((*w)->Append(stale).ok());  // bytes in the file, LSN 2 never published
    fsi.FailSyncs(Status());
  }
  ReaderOptions ro;
  ro.from_lsn = 1;
  auto r = Reader::Open(t.path(), ro);
  ASSERT_OK(r);
  auto e1 = (*r)->Next(0ms);  // reads LSN 1; its read-ahead holds the stale LSN 2
  ASSERT_OK(e1);
  ASSERT_TRUE(e1->has_value());
  auto none = (*r)->Next(0ms);
  ASSERT_OK(none);
  EXPECT_FALSE(none->has_value()) << "LSN 2 was never published";
  // The stale bytes are cut back (as a writer does after a failed write) and LSN 2 is reused.
  ASSERT_EQ(::truncate(JoinPath(t.path(), SegmentFileName(1)).c_str(), static_cast<off_t>(cut)), 0);
  auto w = Writer::Open(t.path(), {});
  ASSERT_OK(w);
  auto lsn = (*w)->Append(fresh);
  ASSERT_OK(lsn);
  ASSERT_EQ(*lsn, 2u);
  auto e2 = (*r)->Next(60s);
  ASSERT_OK(e2);
  ASSERT_TRUE(e2->has_value());
  EXPECT_EQ((*e2)->record.op, OpType::kUnlink) << "returned the stale read-ahead";
}

// A reader in this process tails a writer in another one: the journal_child binary.
TEST(Reader, TailsAWriterInAnotherProcess) {
  TempDir t;
  const std::string child = drfs::testing::BinDir() + "/tests/journal_child";
  ASSERT_EQ(access(child.c_str(), X_OK), 0) << child;
  constexpr int kCount = 2000;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    execl(child.c_str(), child.c_str(), t.path().c_str(), "4", "always", "8192",
          std::to_string(kCount).c_str(), nullptr);
    _exit(127);
  }
  // The child creates the journal; wait for it, then tail from LSN 1.
  std::unique_ptr<Reader> r;
  for (int i = 0; i < 3000 && !r; ++i) {
    auto o = Reader::Open(t.path(), {.from_lsn = 1});
    if (o.ok()) r = std::move(*o);
    else std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(r) << "the child never created the journal";
  Lsn want = 1;
  auto give_up = std::chrono::steady_clock::now() + 120s;
  while (want <= kCount && std::chrono::steady_clock::now() < give_up) {
    auto e = r->Next(500ms);
    ASSERT_OK(e);
    if (!e->has_value()) continue;
    ASSERT_EQ((*e)->record.lsn, want);
    ++want;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(want, static_cast<Lsn>(kCount + 1));
}

}  // namespace
}  // namespace drfs::changelog
