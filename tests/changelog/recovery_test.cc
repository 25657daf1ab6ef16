// Opening a journal after crashes, power loss and corruption.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "changelog/journal.h"
#include "changelog/reader.h"
#include "tests/changelog/test_records.h"
#include "changelog/writer.h"
#include "tests/common/fault_injection_fs.h"
#include "tests/common/test_util.h"

namespace drfs::changelog {
namespace {

using drfs::testing::ReadFile;
using drfs::testing::TempDir;
using drfs::testing::WriteFile;
using testing::FullRecord;
namespace fs = std::filesystem;

// Writes `n` records of assorted ops; returns them with their LSNs.
std::vector<Record> Populate(const std::string& dir, int n, WriterOptions o = {}) {
  auto w = Writer::Open(dir, o);
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  std::vector<Record> out;
  for (int i = 0; i < n; ++i) {
    Record r = FullRecord(kAllOpTypes[i % std::size(kAllOpTypes)], i + 1);
    auto lsn = (*w)->Append(r);
    EXPECT_TRUE(lsn.ok());
    r.lsn = *lsn;
    out.push_back(r);
  }
  return out;
}

struct ReadResult {
  Status status;
  std::vector<Entry> entries;
};

ReadResult ReadAll(const std::string& dir) {
  ReadResult res;
  ReaderOptions ro;
  ro.bound = ReaderOptions::Bound::kOnDisk;
  auto r = Reader::Open(dir, ro);
  if (!r.ok()) {
    res.status = r.status();
    return res;
  }
  for (;;) {
    auto e = (*r)->Next();
    if (!e.ok()) {
      res.status = e.status();
      break;
    }
    if (!e->has_value()) break;
    res.entries.push_back(std::move(**e));
  }
  return res;
}

std::string OnlySegment(const std::string& dir) {
  auto segs = ListSegments(dir, FileSystem::Default());
  EXPECT_TRUE(segs.ok());
  EXPECT_EQ(segs->size(), 1u);
  return segs->back().path;
}

void CopyDir(const std::string& from, const std::string& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

TEST(Recovery, TornTailAtEveryByteOfTheLastRecord) {
  TempDir t;
  std::string orig = t.Sub("orig");
  auto records = Populate(orig, 6);
  std::string seg_name = fs::path(OnlySegment(orig)).filename();
  auto all = ReadAll(orig);
  ASSERT_OK(all.status);
  const uint64_t last_start = all.entries.back().offset;
  const std::string bytes = ReadFile(JoinPath(orig, seg_name));
  ASSERT_GT(bytes.size(), last_start);

  std::mt19937 rng(1);
  for (uint64_t cut = last_start; cut < bytes.size(); ++cut) {
    // Two kinds of tear: the file ends at `cut`, or the bytes after `cut` are stale garbage.
    for (bool garbage : {false, true}) {
      SCOPED_TRACE("cut at " + std::to_string(cut) + (garbage ? " with garbage" : ""));
      std::string dir = t.Sub("torn");
      CopyDir(orig, dir);
      std::string torn = bytes.substr(0, cut);
      if (garbage) {
        for (uint64_t i = cut; i < bytes.size(); ++i) torn.push_back(static_cast<char>(rng()));
        if (torn == bytes) continue;
      }
      WriteFile(JoinPath(dir, seg_name), torn);

      auto w = Writer::Open(dir, {});
      ASSERT_OK(w);
      const RecoveryReport& rep = (*w)->recovery();
      EXPECT_EQ(rep.torn_bytes_truncated, torn.size() - last_start);
      // The LSNs continue right after the last complete record.
      auto lsn = (*w)->Append(FullRecord(OpType::kMkdir, 77));
      ASSERT_OK(lsn);
      EXPECT_EQ(*lsn, records.size());
      ASSERT_OK((*w)->Close());
      auto after = ReadAll(dir);
      ASSERT_OK(after.status);
      ASSERT_EQ(after.entries.size(), records.size());
      for (size_t i = 0; i + 1 < records.size(); ++i) EXPECT_EQ(after.entries[i].record, records[i]);
    }
  }
}

TEST(Recovery, DumpReportsATornTailWithoutChangingTheFile) {
  TempDir t;
  auto records = Populate(t.path(), 3);
  std::string seg = OnlySegment(t.path());
  std::string bytes = ReadFile(seg);
  WriteFile(seg, bytes.substr(0, bytes.size() - 5));
  auto res = ReadAll(t.path());
  ASSERT_OK(res.status);
  EXPECT_EQ(res.entries.size(), 2u);
  EXPECT_EQ(ReadFile(seg).size(), bytes.size() - 5);
}

TEST(Recovery, CorruptionBeforeValidRecordsIsDataLossNamingThePlace) {
  TempDir t;
  auto records = Populate(t.path(), 10);
  std::string seg = OnlySegment(t.path());
  auto all = ReadAll(t.path());
  ASSERT_OK(all.status);
  std::string bytes = ReadFile(seg);
  const uint64_t off = all.entries[4].offset;  // record LSN 5
  bytes[off + 12] ^= 0x40;
  WriteFile(seg, bytes);

  auto w = Writer::Open(t.path(), {});
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kDataLoss);
  const std::string& m = w.status().message();
  EXPECT_NE(m.find(seg), std::string::npos) << m;
  EXPECT_NE(m.find("offset " + std::to_string(off)), std::string::npos) << m;
  EXPECT_NE(m.find("last good LSN 4"), std::string::npos) << m;
  EXPECT_EQ(ReadFile(seg), bytes) << "a refused open must not change the journal";

  auto res = ReadAll(t.path());
  EXPECT_EQ(res.status.code(), Code::kDataLoss);
  EXPECT_EQ(res.entries.size(), 4u);
  EXPECT_NE(res.status.message().find("last good LSN 4"), std::string::npos);
}

TEST(Recovery, DamageInAnOlderSegmentIsDataLoss) {
  TempDir t;
  WriterOptions o;
  o.segment_max_bytes = 4096;
  Populate(t.path(), 120, o);
  auto segs = ListSegments(t.path(), FileSystem::Default());
  ASSERT_OK(segs);
  ASSERT_GE(segs->size(), 3u);
  // Cut the end off the first segment: in a segment that is not the newest that is corruption,
  // not a torn tail.
  std::string first = ReadFile(segs->front().path);
  WriteFile(segs->front().path, first.substr(0, first.size() - 3));
  auto w = Writer::Open(t.path(), o);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kDataLoss);
  EXPECT_NE(w.status().message().find(segs->front().name), std::string::npos);
  EXPECT_EQ(ReadAll(t.path()).status.code(), Code::kDataLoss);

  // A missing middle segment is a gap.
  TempDir t2;
  Populate(t2.path(), 120, o);
  auto segs2 = ListSegments(t2.path(), FileSystem::Default());
  ASSERT_OK(segs2);
  fs::remove((*segs2)[1].path);
  auto w2 = Writer::Open(t2.path(), o);
  ASSERT_FALSE(w2.ok());
  EXPECT_EQ(w2.status().code(), Code::kDataLoss);
  EXPECT_NE(w2.status().message().find("missing"), std::string::npos);
}

TEST(Recovery, RandomByteFlipsGiveACleanErrorOrAConsistentJournal) {
  TempDir t;
  std::string orig = t.Sub("orig");
  WriterOptions o;
  o.segment_max_bytes = 8192;
  auto records = Populate(orig, 150, o);
  auto segs = ListSegments(orig, FileSystem::Default());
  ASSERT_OK(segs);
  ASSERT_GE(segs->size(), 2u);
  std::mt19937 rng(42);
  int data_loss = 0, opened = 0;
  for (int iter = 0; iter < 300; ++iter) {
    std::string dir = t.Sub("flip");
    CopyDir(orig, dir);
    const auto& victim = (*segs)[rng() % segs->size()];
    std::string path = JoinPath(dir, victim.name);
    std::string bytes = ReadFile(path);
    int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
    WriteFile(path, bytes);

    // The reader and the writer both either report DataLoss naming the segment, or read a
    // consistent prefix; neither crashes (this test runs under ASan and UBSan).
    auto res = ReadAll(dir);
    if (!res.status.ok()) {
      EXPECT_EQ(res.status.code(), Code::kDataLoss) << res.status.ToString();
      EXPECT_NE(res.status.message().find(victim.name), std::string::npos);
    }
    for (size_t i = 0; i < res.entries.size(); ++i) EXPECT_EQ(res.entries[i].record, records[i]);

    auto w = Writer::Open(dir, o);
    if (!w.ok()) {
      ++data_loss;
      EXPECT_EQ(w.status().code(), Code::kDataLoss) << w.status().ToString();
      EXPECT_NE(w.status().message().find(victim.name), std::string::npos);
      EXPECT_NE(w.status().message().find("last good LSN"), std::string::npos);
      continue;
    }
    ++opened;
    // Opened: only a damaged final record can have been dropped, and LSNs continue.
    Lsn last = (*w)->last_lsn();
    EXPECT_GE(last + 1, records.size());
    auto lsn = (*w)->Append(FullRecord(OpType::kMkdir, 1));
    ASSERT_OK(lsn);
    EXPECT_EQ(*lsn, last + 1);
  }
  EXPECT_GT(data_loss, 0);
}

TEST(Recovery, PowerLossKeepsEveryAcknowledgedRecordUnderAlways) {
  TempDir t;
  drfs::testing::FaultInjectionFs fsi;
  WriterOptions o;
  o.fs = &fsi;
  o.segment_max_bytes = 4096;
  std::vector<Record> acked;
  {
    auto w = Writer::Open(t.path(), o);
    ASSERT_OK(w);
    for (int i = 0; i < 100; ++i) {
      Record r = FullRecord(OpType::kCreate, i);
      auto lsn = (*w)->Append(r);
      ASSERT_OK(lsn);
      r.lsn = *lsn;
      acked.push_back(r);
    }
    ASSERT_OK(fsi.DropUnsyncedData());  // the power goes out with the writer still open
  }
  o.fs = FileSystem::Default();
  auto w = Writer::Open(t.path(), o);
  ASSERT_OK(w);
  EXPECT_EQ((*w)->last_lsn(), acked.size());
  auto res = ReadAll(t.path());
  ASSERT_OK(res.status);
  ASSERT_EQ(res.entries.size(), acked.size());
  for (size_t i = 0; i < acked.size(); ++i) EXPECT_EQ(res.entries[i].record, acked[i]);
}

TEST(Recovery, PowerLossUnderNeverLosesOnlyTheUnsyncedTailAndLsnsStayDense) {
  TempDir t;
  drfs::testing::FaultInjectionFs fsi;
  WriterOptions o;
  o.fs = &fsi;
  o.fsync_policy = FsyncPolicy::kNever;
  {
    auto w = Writer::Open(t.path(), o);
    ASSERT_OK(w);
    for (int i = 0; i < 20; ++i) ASSERT_OK((*w)->Append(FullRecord(OpType::kCreate, i)));
    ASSERT_OK((*w)->Sync());
    for (int i = 0; i < 20; ++i) ASSERT_OK((*w)->Append(FullRecord(OpType::kCreate, i)));
    ASSERT_OK(fsi.DropUnsyncedData());
  }
  o.fs = FileSystem::Default();
  auto w = Writer::Open(t.path(), o);
  ASSERT_OK(w);
  EXPECT_EQ((*w)->last_lsn(), 20u);
  auto lsn = (*w)->Append(FullRecord(OpType::kCreate, 1));
  ASSERT_OK(lsn);
  EXPECT_EQ(*lsn, 21u);
}

TEST(Recovery, LeftoverHalfMadeSegmentFromACrashedRollIsRemoved) {
  TempDir t;
  Populate(t.path(), 3);
  WriteFile(JoinPath(t.path(), SegmentFileName(4) + ".tmp"), "DRFSCLOG partial");
  auto w = Writer::Open(t.path(), {});
  ASSERT_OK(w);
  EXPECT_FALSE(fs::exists(JoinPath(t.path(), SegmentFileName(4) + ".tmp")));
  auto lsn = (*w)->Append(FullRecord(OpType::kCreate, 9));
  ASSERT_OK(lsn);
  EXPECT_EQ(*lsn, 4u);
}

TEST(Recovery, ANonJournalFileIsRefusedWithAClearMessage) {
  TempDir t;
  WriteFile(JoinPath(t.path(), SegmentFileName(1)), std::string(100, 'x'));
  auto w = Writer::Open(t.path(), {});
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kDataLoss);
  EXPECT_NE(w.status().message().find("not a drfs changelog segment"), std::string::npos);
  EXPECT_NE(w.status().message().find(SegmentFileName(1)), std::string::npos);
}

}  // namespace
}  // namespace drfs::changelog
