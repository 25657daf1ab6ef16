#include <gtest/gtest.h>
#include <thread>

#include "changelog/cursor.h"
#include "changelog/journal.h"
#include "changelog/reader.h"
#include "tests/changelog/test_records.h"
#include "changelog/writer.h"
#include "tests/common/test_util.h"

namespace drfs::changelog {
namespace {

using drfs::testing::TempDir;
using testing::FullRecord;

// A journal of `n` records in small segments, written by a writer that is closed again.
void Populate(const std::string& dir, int n) {
  WriterOptions o;
  o.segment_max_bytes = 4096;
  auto w = Writer::Open(dir, o);
  ASSERT_OK(w);
  for (int i = 0; i < n; ++i) ASSERT_OK((*w)->Append(FullRecord(OpType::kCreate, i)));
}

TEST(Cursors, RegisterAdvanceRemoveAndRefuseToGoBack) {
  TempDir t;
  CursorStore c(t.path());
  ASSERT_OK(c.Register("syncer-0", 10));
  EXPECT_EQ(c.Register("syncer-0", 5).code(), Code::kAlreadyExists);
  ASSERT_OK(c.Advance("syncer-0", 20));
  auto back = c.Advance("syncer-0", 19);
  EXPECT_EQ(back.code(), Code::kFailedPrecondition);
  EXPECT_NE(back.message().find("cannot move back"), std::string::npos);
  auto got = c.Get("syncer-0");
  ASSERT_OK(got);
  EXPECT_EQ(got->lsn, 20u);
  EXPECT_GT(got->updated_ns, 0u);
  EXPECT_EQ(c.Advance("nobody", 1).code(), Code::kNotFound);
  for (const char* bad : {"", "a/b", ".hidden", "x.tmp", "sp ace"}) {
    EXPECT_EQ(c.Register(bad, 1).code(), Code::kInvalidArgument) << bad;
  }
  ASSERT_OK(c.Remove("syncer-0"));
  EXPECT_EQ(c.Remove("syncer-0").code(), Code::kNotFound);
  auto list = c.List();
  ASSERT_OK(list);
  EXPECT_TRUE(list->empty());
}

TEST(Retention, KeepsEverythingTheSlowestCursorNeedsAndFreesTheRest) {
  TempDir t;
  Populate(t.path(), 300);
  auto before = ListSegments(t.path(), FileSystem::Default());
  ASSERT_OK(before);
  ASSERT_GE(before->size(), 5u);

  // No cursor: nobody said the records are done with, so nothing goes.
  auto none = Purge(t.path());
  ASSERT_OK(none);
  EXPECT_TRUE(none->deleted.empty());

  CursorStore c(t.path());
  ASSERT_OK(c.Register("fast", 290));
  ASSERT_OK(c.Register("slow", 100));
  auto p = Purge(t.path());
  ASSERT_OK(p);
  EXPECT_EQ(p->held_by, "slow");
  EXPECT_FALSE(p->deleted.empty());
  EXPECT_GT(p->bytes_freed, 0u);
  // LSN 101 (the slow cursor's next record) must still be readable, and from it on everything.
  ReaderOptions ro;
  ro.from_lsn = 101;
  auto r = Reader::Open(t.path(), ro);
  ASSERT_OK(r);
  Lsn want = 101;
  for (;;) {
    auto e = (*r)->Next();
    ASSERT_OK(e);
    if (!e->has_value()) break;
    ASSERT_EQ((*e)->record.lsn, want++);
  }
  EXPECT_EQ(want, 301u);
  // Every deleted segment ended at or before LSN 100.
  auto after = ListSegments(t.path(), FileSystem::Default());
  ASSERT_OK(after);
  EXPECT_LE(after->front().first_lsn, 101u);
  EXPECT_EQ(p->oldest_kept_lsn, after->front().first_lsn);

  // Once the slow one catches up, all but the newest segment go.
  ASSERT_OK(c.Advance("slow", 300));
  ASSERT_OK(Purge(t.path()));
  after = ListSegments(t.path(), FileSystem::Default());
  ASSERT_OK(after);
  EXPECT_EQ(after->size(), 1u);
  // And the writer carries on from there.
  auto w = Writer::Open(t.path(), {});
  ASSERT_OK(w);
  auto lsn = (*w)->Append(FullRecord(OpType::kMkdir, 1));
  ASSERT_OK(lsn);
  EXPECT_EQ(*lsn, 301u);
}

TEST(Retention, ACorruptCursorPausesRetentionWithAClearError) {
  TempDir t;
  Populate(t.path(), 100);
  CursorStore c(t.path());
  ASSERT_OK(c.Register("syncer", 100));
  drfs::testing::WriteFile(JoinPath(c.dir(), "syncer"), "drfs-cursor 1\nlsn 99999\n");
  auto p = Purge(t.path());
  EXPECT_EQ(p.status().code(), Code::kDataLoss);
  EXPECT_NE(p.status().message().find("cursors/syncer"), std::string::npos);
  auto segs = ListSegments(t.path(), FileSystem::Default());
  ASSERT_OK(segs);
  EXPECT_EQ(segs->front().first_lsn, 1u);
}

TEST(Retention, ACursorBeyondTheJournalMeansRecordsAreMissing) {
  TempDir t;
  Populate(t.path(), 10);
  ASSERT_OK(CursorStore(t.path()).Register("syncer", 50));
  auto w = Writer::Open(t.path(), {});
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kDataLoss);
  EXPECT_NE(w.status().message().find("cursor 'syncer'"), std::string::npos);
}

TEST(Retention, TheWriterPurgesAfterRolloverOnItsOwn) {
  TempDir t;
  WriterOptions o;
  o.segment_max_bytes = 4096;
  auto w = Writer::Open(t.path(), o);
  ASSERT_OK(w);
  CursorStore c(t.path());
  ASSERT_OK(c.Register("syncer", 0));
  for (int i = 0; i < 100; ++i) ASSERT_OK((*w)->Append(FullRecord(OpType::kCreate, i)));
  ASSERT_OK(c.Advance("syncer", 100));
  for (int i = 0; i < 100; ++i) ASSERT_OK((*w)->Append(FullRecord(OpType::kCreate, i)));
  // Housekeeping runs about once a second after a rollover; poll generously.
  Lsn oldest = 1;
  for (int i = 0; i < 600 && oldest == 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto segs = ListSegments(t.path(), FileSystem::Default());
    ASSERT_OK(segs);
    oldest = segs->front().first_lsn;
  }
  EXPECT_GT(oldest, 1u);
  EXPECT_LE(oldest, 101u);
}

// With no cursor (no session reads the journal), keep_unclaimed_bytes bounds it: the newest
// segments holding at least that much stay, older ones go; 0 keeps everything. A cursor, once
// registered, rules again, however far back it is.
TEST(Retention, WithNoCursorKeepsOnlyTheNewestBytesAskedFor) {
  TempDir t;
  Populate(t.path(), 300);
  auto before = ListSegments(t.path(), FileSystem::Default());
  ASSERT_OK(before);
  ASSERT_GT(before->size(), 6u);
  uint64_t total = 0;
  for (const auto& seg : *before) total += *FileSystem::Default()->FileSize(seg.path);

  auto none = Purge(t.path(), FileSystem::Default(), 0);
  ASSERT_OK(none);
  EXPECT_TRUE(none->deleted.empty());
  EXPECT_EQ(none->held_by, "(no cursor registered)");

  // A cursor far back holds everything, whatever keep_unclaimed_bytes says.
  ASSERT_OK(CursorStore(t.path()).Register("syncer", 0));
  auto held = Purge(t.path(), FileSystem::Default(), 4096);
  ASSERT_OK(held);
  EXPECT_TRUE(held->deleted.empty());
  EXPECT_EQ(held->held_by, "syncer");
  ASSERT_OK(CursorStore(t.path()).Remove("syncer"));

  const uint64_t keep = total / 3;
  auto res = Purge(t.path(), FileSystem::Default(), keep);
  ASSERT_OK(res);
  EXPECT_FALSE(res->deleted.empty());
  auto after = ListSegments(t.path(), FileSystem::Default());
  ASSERT_OK(after);
  uint64_t kept = 0;
  for (const auto& seg : *after) kept += *FileSystem::Default()->FileSize(seg.path);
  EXPECT_GE(kept, keep);
  // Only as much as needed: without its oldest segment, what is left would hold less.
  EXPECT_LT(kept - *FileSystem::Default()->FileSize(after->front().path), keep);
  EXPECT_EQ(res->oldest_kept_lsn, after->front().first_lsn);
  EXPECT_EQ(kept + res->bytes_freed, total);
  // The records kept read back, from the oldest kept on.
  ReaderOptions ro;
  ro.from_lsn = after->front().first_lsn;
  ro.bound = ReaderOptions::Bound::kOnDisk;
  auto r = Reader::Open(t.path(), ro);
  ASSERT_OK(r);
  Lsn n = 0;
  for (;;) {
    auto e = (*r)->Next();
    ASSERT_OK(e);
    if (!e->has_value()) break;
    n = (**e).record.lsn;
  }
  EXPECT_EQ(n, 300u);
}

TEST(Inspect, ReportsSegmentsBytesRangeAndCursors) {
  TempDir t;
  Populate(t.path(), 120);
  ASSERT_OK(CursorStore(t.path()).Register("syncer", 30));
  auto st = Inspect(t.path());
  ASSERT_OK(st);
  EXPECT_FALSE(st->writer.running);
  EXPECT_EQ(st->first_lsn, 1u);
  EXPECT_EQ(st->last_lsn, 120u);
  EXPECT_GT(st->segments.size(), 2u);
  uint64_t records = 0, bytes = 0;
  for (auto& s : st->segments) {
    records += s.last_lsn + 1 - s.first_lsn;
    bytes += s.bytes;
  }
  EXPECT_EQ(records, 120u);
  EXPECT_EQ(bytes, st->total_bytes);
  ASSERT_EQ(st->cursors.size(), 1u);
  EXPECT_EQ(st->cursors[0].lsn, 30u);
  EXPECT_TRUE(st->torn_tail.empty());
}

}  // namespace
}  // namespace drfs::changelog
