// BatchApplier against three real brick servers over loopback (a replica-3 secondary volume
// through a VolumeClient): every op type, idempotent re-apply (twice, and after a failure
// half-way), duplicate/stale/gap decisions and the stored position, a rename storm checked
// against a model, deleting a tree in the primary's order, a replay window, conflicts recorded
// as failures, and Unavailable while the bricks are down.
#include "secondary/apply.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <set>

#include "brick/client.h"
#include "brick/server.h"
#include "common/crc32c.h"
#include "common/failpoint.h"
#include "tests/common/test_util.h"
#include "tests/secondary/volume_fixture.h"
#include "volume/client.h"

namespace drfs::secondary {
namespace {

using drfs::testing::Cluster;
using drfs::testing::Diff;
using drfs::testing::Tree;
using drfs::testing::TreeOf;

using brick::BrickServer;
using changelog::OpType;
using changelog::Record;
using drfs::testing::TempDir;
using georep::AttrSnapshot;
using georep::Batch;
using georep::Item;
using volume::VolumeClient;

// Builds records as a brick journal would: consecutive LSNs, increasing timestamps.
class Journal {
 public:
  // `skew_lsns`: this journal's clock is as another's whose LSNs were that much lower.
  explicit Journal(uint64_t first_lsn = 1, uint64_t skew_lsns = 0)
      : lsn_(first_lsn), skew_(skew_lsns) {}
  uint64_t next_lsn() const { return lsn_; }

  Item Op(OpType op, const Gfid& gfid) {
    Item it;
    it.op.op = op;
    it.op.gfid = gfid;
    it.op.lsn = lsn_++;
    it.op.timestamp_ns = 1'700'000'000'000'000'000ull + (it.op.lsn - skew_) * 1000;
    return it;
  }
  Item Entry(OpType op, const Gfid& g, const Gfid& parent, const std::string& name,
             uint32_t mode = 0) {
    Item it = Op(op, g);
    it.op.parent = parent;
    it.op.name = name;
    it.op.mode = mode;
    it.op.uid = 1000;
    it.op.gid = 100;
    return it;
  }
  Item Create(const Gfid& g, const Gfid& parent, const std::string& name) {
    return Entry(OpType::kCreate, g, parent, name, S_IFREG | 0644);
  }
  Item Mkdir(const Gfid& g, const Gfid& parent, const std::string& name) {
    return Entry(OpType::kMkdir, g, parent, name, S_IFDIR | 0755);
  }
  Item Mknod(const Gfid& g, const Gfid& parent, const std::string& name) {
    return Entry(OpType::kMknod, g, parent, name, S_IFIFO | 0640);
  }
  Item Symlink(const Gfid& g, const Gfid& parent, const std::string& name,
               const std::string& target) {
    Item it = Entry(OpType::kSymlink, g, parent, name, S_IFLNK | 0777);
    it.op.symlink_target = target;
    return it;
  }
  Item Link(const Gfid& g, const Gfid& parent, const std::string& name) {
    return Entry(OpType::kLink, g, parent, name);
  }
  Item Unlink(const Gfid& g, const Gfid& parent, const std::string& name) {
    return Entry(OpType::kUnlink, g, parent, name);
  }
  Item Rmdir(const Gfid& g, const Gfid& parent, const std::string& name) {
    return Entry(OpType::kRmdir, g, parent, name);
  }
  Item Rename(const Gfid& g, const Gfid& parent, const std::string& name, const Gfid& new_parent,
              const std::string& new_name, const Gfid& replaced = Gfid(), uint32_t flags = 0) {
    Item it = Entry(OpType::kRename, g, parent, name);
    it.op.new_parent = new_parent;
    it.op.new_name = new_name;
    it.op.replaced = replaced;
    it.op.rename_flags = flags;
    return it;
  }
  Item Write(const Gfid& g, uint64_t offset, const std::string& data) {
    Item it = Op(OpType::kWrite, g);
    it.op.offset = offset;
    it.op.length = data.size();
    it.data = data;
    return it;
  }
  // One WRITE split in fragments of `frag` bytes (all share one LSN).
  std::vector<Item> WriteFragments(const Gfid& g, uint64_t offset, const std::string& data,
                                   size_t frag) {
    Item base = Op(OpType::kWrite, g);
    base.op.offset = offset;
    base.op.length = data.size();
    std::vector<Item> out;
    for (size_t at = 0; at < data.size(); at += frag) {
      Item it = base;
      it.data_offset = at;
      it.data = data.substr(at, frag);
      it.last_fragment = at + frag >= data.size();
      out.push_back(it);
    }
    return out;
  }
  Item Truncate(const Gfid& g, uint64_t size) {
    Item it = Op(OpType::kTruncate, g);
    it.op.size = size;
    return it;
  }
  Item Fallocate(const Gfid& g, uint64_t offset, uint64_t length) {
    Item it = Op(OpType::kFallocate, g);
    it.op.offset = offset;
    it.op.length = length;
    return it;
  }
  Item Setattr(const Gfid& g, uint32_t valid, uint32_t mode, uint32_t uid, uint32_t gid,
               int64_t atime_ns = 0, int64_t mtime_ns = 0) {
    Item it = Op(OpType::kSetattr, g);
    it.op.setattr_valid = valid;
    it.op.mode = mode;
    it.op.uid = uid;
    it.op.gid = gid;
    it.op.atime_ns = atime_ns;
    it.op.mtime_ns = mtime_ns;
    return it;
  }
  Item Setxattr(const Gfid& g, const std::string& name, const std::string& value) {
    Item it = Op(OpType::kSetxattr, g);
    it.op.xattr_name = name;
    it.data = value;
    return it;
  }
  Item Removexattr(const Gfid& g, const std::string& name) {
    Item it = Op(OpType::kRemovexattr, g);
    it.op.xattr_name = name;
    return it;
  }

 private:
  uint64_t lsn_;
  uint64_t skew_;
};

struct Stream {
  uint64_t epoch = 1;
  uint64_t token = 1;
  std::string brick = "brick-a";
  uint32_t flags = 0;
  std::string resume_brick;
  uint64_t resume_lsn = 0;
  // Every batch says where its stream resumes, as a syncer's first batch of a run does: the
  // applier enters a stream only there. Tests of a lost first batch turn it off.
  bool resume = true;
};

Batch MakeBatch(std::vector<Item> items, const Stream& s = {}) {
  Batch b;
  b.header.volume_uuid = "00000000-0000-0000-0000-0000000000a1";
  b.header.session = "s1";
  b.header.replica_set = 0;
  b.header.epoch = s.epoch;
  b.header.token = s.token;
  b.header.source_brick = s.brick;
  b.header.flags = s.flags | (s.resume ? georep::kBatchResume : 0u);
  b.header.resume_brick = s.resume_brick;
  b.header.resume_lsn = s.resume_lsn;
  if (!items.empty()) {
    b.header.first_lsn = items.front().op.lsn;
    b.header.last_lsn = items.back().op.lsn;
  }
  b.items = std::move(items);
  return b;
}

// The primary's times for `g` (distinct per object, far from "now").
AttrSnapshot Snap(const Gfid& g, uint32_t mode, int64_t t) {
  AttrSnapshot a;
  a.gfid = g;
  a.mode = mode;
  a.uid = 1000;
  a.gid = 100;
  a.atime_ns = t;
  a.mtime_ns = t + 7;
  return a;
}

class ApplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    vc_ = cluster_.Client();
    ASSERT_NE(vc_, nullptr);
    Reopen();
  }
  void TearDown() override { failpoint::ClearAll(); }
  std::string DbPath() const { return cluster_.tmp().Sub("applier.db"); }
  void Reopen() {
    applier_.reset();
    auto a = BatchApplier::Open(DbPath(), "s1");
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    applier_ = std::move(*a);
  }
  Outcome MustApply(const Batch& b, int64_t offset = 0) {
    auto r = applier_->Apply(*vc_, b, offset);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : Outcome::kStale;
  }
  Position Pos(uint32_t rs = 0) {
    auto p = applier_->GetPosition(rs);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? *p : Position{};
  }
  std::vector<Failure> Failures() {
    auto f = applier_->Failures(100);
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    return f.ok() ? *f : std::vector<Failure>{};
  }
  std::string FailureText() {
    std::string s;
    for (const auto& f : Failures())
      s += "\n  LSN " + std::to_string(f.lsn) + " " + f.op + " " + f.target + ": " + f.error;
    return s;
  }
  bool Exists(const Gfid& g) { return vc_->Getattr(g).ok(); }
  Gfid At(const Gfid& parent, const std::string& name) {
    auto a = vc_->Lookup(parent, name);
    return a.ok() ? a->gfid : Gfid();
  }

  Cluster cluster_;
  std::unique_ptr<VolumeClient> vc_;
  std::unique_ptr<BatchApplier> applier_;
};

// A batch with every op type, and what it should leave behind.
struct Mixed {
  Gfid dir = Gfid::Random(), sub = Gfid::Random(), f = Gfid::Random(), g = Gfid::Random(),
       fifo = Gfid::Random(), link = Gfid::Random(), gone = Gfid::Random(),
       x = Gfid::Random(), y = Gfid::Random(), tmpdir = Gfid::Random();
  Batch batch;
};

Mixed MakeMixed(Journal& j) {
  Mixed m;
  const Gfid root = Gfid::Root();
  std::vector<Item> v;
  v.push_back(j.Mkdir(m.dir, root, "dir"));
  v.push_back(j.Mkdir(m.sub, m.dir, "sub"));
  v.push_back(j.Create(m.f, m.dir, "f"));
  v.push_back(j.Write(m.f, 0, "hello, secondary"));
  v.push_back(j.Write(m.f, 7, "SECONDARY"));
  v.push_back(j.Create(m.g, m.dir, "g"));
  v.push_back(j.Write(m.g, 0, std::string(10000, 'g')));
  v.push_back(j.Truncate(m.g, 4000));
  v.push_back(j.Fallocate(m.g, 0, 8192));
  v.push_back(j.Mknod(m.fifo, m.sub, "fifo"));
  v.push_back(j.Symlink(m.link, m.dir, "ln", "f"));
  v.push_back(j.Link(m.f, m.sub, "f-hard"));
  v.push_back(j.Setattr(m.f, changelog::kSetMode | changelog::kSetUid | changelog::kSetGid,
                        0600, 2000, 200));
  v.push_back(j.Setxattr(m.f, "user.color", "blue"));
  v.push_back(j.Setxattr(m.f, "user.size", "big"));
  v.push_back(j.Removexattr(m.f, "user.size"));
  v.push_back(j.Removexattr(m.f, "user.never-set"));  // ENODATA: fine
  // An object created, written and removed inside the batch (its data was gone at send time).
  v.push_back(j.Create(m.gone, m.dir, "gone"));
  Item w = j.Write(m.gone, 0, "");
  w.gone = true;
  v.push_back(w);
  v.push_back(j.Unlink(m.gone, m.dir, "gone"));
  // Renames: plain, over an existing file, NOREPLACE, EXCHANGE, and a directory.
  v.push_back(j.Create(m.x, root, "x"));
  v.push_back(j.Create(m.y, root, "y"));
  v.push_back(j.Write(m.x, 0, "xx"));
  v.push_back(j.Rename(m.x, root, "x", root, "x2", Gfid(), changelog::kRenameNoreplace));
  v.push_back(j.Rename(m.x, root, "x2", root, "y", m.y));  // y is replaced (removed)
  v.push_back(j.Rename(m.g, m.dir, "g", m.dir, "f", m.f, changelog::kRenameExchange));
  v.push_back(j.Mkdir(m.tmpdir, root, "tmpdir"));
  v.push_back(j.Rename(m.tmpdir, root, "tmpdir", m.dir, "moved-dir"));
  v.push_back(j.Setattr(m.g, changelog::kSetAtime | changelog::kSetMtime, 0, 0, 0,
                        1'500'000'000'000'000'000, 1'500'000'000'000'000'001));
  m.batch = MakeBatch(std::move(v));
  // The primary's times of the objects that entry ops and writes touched.
  m.batch.attrs = {Snap(m.dir, S_IFDIR | 0755, 1'600'000'000'000'000'000),
                   Snap(m.f, S_IFREG | 0600, 1'600'000'000'000'000'100),
                   Snap(m.x, S_IFREG | 0644, 1'600'000'000'000'000'200),
                   Snap(m.gone, S_IFREG | 0644, 1'600'000'000'000'000'300),
                   Snap(m.sub, S_IFDIR | 0755, 1'600'000'000'000'000'400),
                   Snap(m.fifo, S_IFIFO | 0640, 1'600'000'000'000'000'500),
                   Snap(m.link, S_IFLNK | 0777, 1'600'000'000'000'000'600),
                   Snap(m.tmpdir, S_IFDIR | 0755, 1'600'000'000'000'000'700),
                   Snap(m.g, S_IFREG | 0644, 1'500'000'000'000'000'000)};
  m.batch.attrs[1].uid = 2000;
  m.batch.attrs[1].gid = 200;
  m.batch.attrs.back().mtime_ns = 1'500'000'000'000'000'001;  // as its SETATTR left it
  return m;
}

TEST_F(ApplyTest, EveryOpType) {
  Journal j;
  Mixed m = MakeMixed(j);
  EXPECT_EQ(MustApply(m.batch, 5), Outcome::kApplied);
  EXPECT_EQ(Failures().size(), 0u) << FailureText();
  const Gfid root = Gfid::Root();

  // The exchange swapped f and g: "f" is now the 4000-byte file (fallocated to 8192), "g" the
  // text.
  EXPECT_EQ(At(m.dir, "f"), m.g);
  EXPECT_EQ(At(m.dir, "g"), m.f);
  auto text = vc_->Read(m.f, 0, 100);
  ASSERT_OK(text);
  EXPECT_EQ(*text, "hello, SECONDARY");
  auto ga = vc_->Getattr(m.g);
  ASSERT_OK(ga);
  EXPECT_EQ(ga->size, 8192u);
  EXPECT_EQ(ga->mtime_ns, 1'500'000'000'000'000'001);
  auto gd = vc_->Read(m.g, 0, 5000);
  ASSERT_OK(gd);
  EXPECT_EQ(*gd, std::string(4000, 'g') + std::string(1000, '\0'));
  // Setattr, ownership from the record, xattrs.
  auto fa = vc_->Getattr(m.f);
  ASSERT_OK(fa);
  EXPECT_EQ(fa->mode & 07777, 0600u);
  EXPECT_EQ(fa->uid, 2000u);
  EXPECT_EQ(fa->gid, 200u);
  EXPECT_EQ(fa->nlink, 2u);
  EXPECT_EQ(fa->mtime_ns, 1'600'000'000'000'000'107);  // the snapshot's, after the writes
  EXPECT_EQ(At(m.sub, "f-hard"), m.f);
  auto color = vc_->Getxattr(m.f, "user.color");
  ASSERT_OK(color);
  EXPECT_EQ(*color, "blue");
  EXPECT_EQ(vc_->Getxattr(m.f, "user.size").status().sys_errno(), ENODATA);
  // Mknod, symlink, mkdir with the record's mode and owner.
  auto fifo = vc_->Getattr(m.fifo);
  ASSERT_OK(fifo);
  EXPECT_TRUE(S_ISFIFO(fifo->mode));
  EXPECT_EQ(fifo->mode & 07777, 0640u);
  EXPECT_EQ(fifo->uid, 1000u);
  EXPECT_EQ(fifo->gid, 100u);
  auto target = vc_->Readlink(m.link);
  ASSERT_OK(target);
  EXPECT_EQ(*target, "f");
  auto sub = vc_->Getattr(m.sub);
  ASSERT_OK(sub);
  EXPECT_EQ(sub->mode & 07777, 0755u);
  auto dir = vc_->Getattr(m.dir);
  ASSERT_OK(dir);
  EXPECT_EQ(dir->mtime_ns, 1'600'000'000'000'000'007);
  EXPECT_EQ(dir->atime_ns, 1'600'000'000'000'000'000);
  // Unlink; renames (x over y, the directory).
  EXPECT_FALSE(Exists(m.gone));
  EXPECT_FALSE(Exists(m.y));
  EXPECT_EQ(At(root, "y"), m.x);
  EXPECT_TRUE(At(root, "x").is_null());
  EXPECT_TRUE(At(root, "x2").is_null());
  EXPECT_EQ(At(m.dir, "moved-dir"), m.tmpdir);
  EXPECT_TRUE(At(root, "tmpdir").is_null());

  Position p = Pos();
  EXPECT_EQ(p.lsn, j.next_lsn() - 1);
  EXPECT_EQ(p.token, 1u);
  EXPECT_EQ(p.source_brick, "brick-a");
  EXPECT_EQ(p.kafka_offset, 5);
  EXPECT_EQ(p.applied_ops, m.batch.items.size());
  EXPECT_EQ(p.failures, 0u);
  EXPECT_EQ(p.ts_ns, m.batch.items.back().op.timestamp_ns);
}

TEST_F(ApplyTest, ApplyingTheSameBatchTwiceHasNoVisibleEffect) {
  Journal j;
  Mixed m = MakeMixed(j);
  ASSERT_EQ(MustApply(m.batch), Outcome::kApplied);
  const Tree once = TreeOf(*vc_);
  ASSERT_FALSE(once.empty());
  // The same applier drops it by LSN.
  EXPECT_EQ(MustApply(m.batch, 1), Outcome::kDuplicate);
  EXPECT_EQ(Diff(once, TreeOf(*vc_)), "");
  // A fresh database knows nothing: every op runs again against the volume, and each must see
  // its effect is already there.
  ASSERT_OK(::unlink(DbPath().c_str()) == 0 ? Status::Ok() : Internal("unlink"));
  ::unlink((DbPath() + "-wal").c_str());
  ::unlink((DbPath() + "-shm").c_str());
  Reopen();
  EXPECT_EQ(MustApply(m.batch), Outcome::kApplied);
  EXPECT_EQ(Diff(once, TreeOf(*vc_)), "");
  EXPECT_EQ(Failures().size(), 0u) << FailureText();
  // And once more as a replay from another brick with a newer token.
  Stream replay;
  replay.token = 2;
  replay.brick = "brick-b";
  replay.flags = georep::kBatchReplay;
  Batch again = m.batch;
  again.header = MakeBatch({}, replay).header;
  again.header.first_lsn = m.batch.header.first_lsn;
  again.header.last_lsn = m.batch.header.last_lsn;
  EXPECT_EQ(MustApply(again), Outcome::kApplied);
  EXPECT_EQ(Diff(once, TreeOf(*vc_)), "");
  EXPECT_EQ(Failures().size(), 0u) << FailureText();
  EXPECT_EQ(Pos().source_brick, "brick-b");
}

// The applier fails half-way through a batch (the volume went away, or the process died after
// some ops): the retry re-applies the whole batch, and the result is what one clean apply gives.
TEST(ApplyCrash, ReApplyAfterPartialApplicationConverges) {
  Journal j;
  Mixed m = MakeMixed(j);
  // A second batch that reuses names the first one freed and moves things again.
  const Gfid root = Gfid::Root();
  const Gfid z = Gfid::Random();
  std::vector<Item> v;
  v.push_back(j.Create(z, root, "x"));  // "x" was renamed away in the first batch
  v.push_back(j.Write(z, 0, "new x"));
  v.push_back(j.Rename(m.x, root, "y", m.dir, "y-moved"));
  v.push_back(j.Rename(z, root, "x", root, "y"));
  v.push_back(j.Unlink(m.fifo, m.sub, "fifo"));
  v.push_back(j.Unlink(m.f, m.sub, "f-hard"));
  v.push_back(j.Rmdir(m.sub, m.dir, "sub"));
  Batch second = MakeBatch(std::move(v));
  second.attrs = {Snap(m.dir, S_IFDIR | 0755, 1'610'000'000'000'000'000),
                  Snap(z, S_IFREG | 0644, 1'610'000'000'000'000'100)};

  Tree want;
  {
    Cluster ref;
    auto vc = ref.Client();
    ASSERT_NE(vc, nullptr);
    auto a = BatchApplier::Open(ref.tmp().Sub("db"), "s1");
    ASSERT_OK(a);
    ASSERT_OK((*a)->Apply(*vc, m.batch, 0));
    ASSERT_OK((*a)->Apply(*vc, second, 1));
    want = TreeOf(*vc);
  }
  const size_t n1 = m.batch.items.size(), n2 = second.items.size();
  // Fail before item k of the first batch, of the second, and just before the commit.
  std::vector<std::pair<int, int>> points = {{1, 2}, {2, 3}, {1, static_cast<int>(n1 / 2)},
                                              {1, static_cast<int>(n1)}, {2, static_cast<int>(n2)},
                                              {2, 0}};
  for (auto [which, k] : points) {
    SCOPED_TRACE("fail in batch " + std::to_string(which) + " before item " + std::to_string(k));
    Cluster c;
    auto vc = c.Client();
    ASSERT_NE(vc, nullptr);
    const std::string db = c.tmp().Sub("db");
    auto a = BatchApplier::Open(db, "s1");
    ASSERT_OK(a);
    if (which == 2) ASSERT_OK((*a)->Apply(*vc, m.batch, 0));
    const Batch& b = which == 1 ? m.batch : second;
    if (k == 0) {
      ASSERT_TRUE(failpoint::Set("secondary.apply.before_commit", "error"));
    } else {
      ASSERT_TRUE(failpoint::Set("secondary.apply.item", "error@" + std::to_string(k)));
    }
    auto r = (*a)->Apply(*vc, b, which - 1);
    failpoint::ClearAll();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kUnavailable);
    // As after a crash: a new process opens the database and gets the batch again.
    a->reset();
    auto a2 = BatchApplier::Open(db, "s1");
    ASSERT_OK(a2);
    auto again = (*a2)->Apply(*vc, b, which - 1);
    ASSERT_OK(again);
    EXPECT_EQ(*again, Outcome::kApplied);
    if (which == 1) ASSERT_OK((*a2)->Apply(*vc, second, 1));
    EXPECT_EQ(Diff(want, TreeOf(*vc)), "");
    auto f = (*a2)->Failures(10);
    ASSERT_OK(f);
    EXPECT_TRUE(f->empty()) << f->front().op << " " << f->front().target << ": "
                            << f->front().error;
    auto p = (*a2)->GetPosition(0);
    ASSERT_OK(p);
    EXPECT_EQ(p->lsn, second.header.last_lsn);
    EXPECT_EQ(p->applied_ops, n1 + n2);
  }
}

TEST_F(ApplyTest, DuplicateStaleGapAndThePositionSurvivesReopen) {
  Journal j;
  const Gfid root = Gfid::Root();
  const Gfid a = Gfid::Random(), b = Gfid::Random(), c = Gfid::Random(), d = Gfid::Random();
  Item i1 = j.Create(a, root, "a");     // 1
  Item i2 = j.Write(a, 0, "aaaa");      // 2
  Item i3 = j.Create(b, root, "b");     // 3
  Item i4 = j.Create(c, root, "c");     // 4
  Item i5 = j.Create(d, root, "d");     // 5
  Item i6 = j.Write(d, 0, "dddd");      // 6
  Item i7 = j.Unlink(b, root, "b");     // 7

  EXPECT_EQ(MustApply(MakeBatch({i1, i2, i3}), 10), Outcome::kApplied);
  EXPECT_EQ(Pos().lsn, 3u);
  EXPECT_EQ(Pos().applied_ops, 3u);
  // The same batch again, and one inside what was applied: dropped, offset remembered.
  EXPECT_EQ(MustApply(MakeBatch({i1, i2, i3}), 11), Outcome::kDuplicate);
  EXPECT_EQ(MustApply(MakeBatch({i2}), 12), Outcome::kDuplicate);
  EXPECT_EQ(Pos().kafka_offset, 12);
  EXPECT_EQ(Pos().applied_ops, 3u);
  // Overlapping: only record 4 is new.
  EXPECT_EQ(MustApply(MakeBatch({i2, i3, i4}), 13), Outcome::kApplied);
  EXPECT_EQ(Pos().lsn, 4u);
  EXPECT_EQ(Pos().applied_ops, 4u);
  EXPECT_TRUE(Exists(c));
  // A gap (5 missing): nothing applied, nothing recorded.
  EXPECT_EQ(MustApply(MakeBatch({i6, i7}), 14), Outcome::kGap);
  EXPECT_TRUE(Exists(b));
  EXPECT_EQ(Pos().lsn, 4u);
  EXPECT_EQ(Pos().kafka_offset, 13);
  // Older token, older epoch: refused.
  Stream old_token;
  old_token.token = 0;
  EXPECT_EQ(MustApply(MakeBatch({i5, i6, i7}, old_token), 15), Outcome::kStale);
  Stream old_epoch;
  old_epoch.epoch = 0;
  old_epoch.token = 9;
  EXPECT_EQ(MustApply(MakeBatch({i5, i6, i7}, old_epoch), 16), Outcome::kStale);
  EXPECT_FALSE(Exists(d));
  EXPECT_TRUE(Exists(b));

  // The position is durable.
  Reopen();
  Position p = Pos();
  EXPECT_EQ(p.lsn, 4u);
  EXPECT_EQ(p.token, 1u);
  EXPECT_EQ(p.epoch, 1u);
  EXPECT_EQ(p.source_brick, "brick-a");
  EXPECT_EQ(p.kafka_offset, 16);
  EXPECT_EQ(p.applied_ops, 4u);
  EXPECT_EQ(p.ts_ns, i4.op.timestamp_ns);

  // The resend after the gap.
  EXPECT_EQ(MustApply(MakeBatch({i5, i6, i7}), 17), Outcome::kApplied);
  EXPECT_FALSE(Exists(b));
  auto dd = vc_->Read(d, 0, 10);
  ASSERT_OK(dd);
  EXPECT_EQ(*dd, "dddd");
  EXPECT_EQ(Pos().lsn, 7u);
  EXPECT_EQ(Pos().applied_ops, 7u);

  // A new syncer (token 2) resumes on the same brick after LSN 5, behind the position: records
  // up to 7 are dropped by LSN, 8 applies.
  const Gfid e = Gfid::Random();
  Item i8 = j.Create(e, root, "e");
  Stream resume;
  resume.token = 2;
  resume.flags = georep::kBatchResume;
  resume.resume_brick = "brick-a";
  resume.resume_lsn = 5;
  EXPECT_EQ(MustApply(MakeBatch({i6, i7, i8}, resume), 18), Outcome::kApplied);
  EXPECT_EQ(Pos().token, 2u);
  EXPECT_EQ(Pos().lsn, 8u);
  EXPECT_EQ(Pos().applied_ops, 8u);
  EXPECT_TRUE(Exists(e));
  // Token 1 is now deposed.
  Item i9 = j.Unlink(e, root, "e");
  EXPECT_EQ(MustApply(MakeBatch({i9}), 19), Outcome::kStale);
  EXPECT_TRUE(Exists(e));

  // A syncer on another brick (its own LSNs) resumes: applied whole, idempotently.
  Journal other(500);
  const Gfid f = Gfid::Random();
  Stream moved;
  moved.token = 3;
  moved.brick = "brick-b";
  moved.flags = georep::kBatchResume;
  moved.resume_brick = "brick-b";
  moved.resume_lsn = 499;
  Item o1 = other.Create(e, root, "e");  // already there: skipped
  Item o2 = other.Create(f, root, "f");
  EXPECT_EQ(MustApply(MakeBatch({o1, o2}, moved), 20), Outcome::kApplied);
  EXPECT_TRUE(Exists(f));
  p = Pos();
  EXPECT_EQ(p.source_brick, "brick-b");
  EXPECT_EQ(p.lsn, 501u);
  EXPECT_EQ(p.token, 3u);
  EXPECT_EQ(Failures().size(), 0u) << FailureText();

  // Replica sets have separate positions.
  Batch rs1 = MakeBatch({other.Create(Gfid::Random(), root, "rs1-file")});
  rs1.header.replica_set = 1;
  EXPECT_EQ(MustApply(rs1, 3), Outcome::kApplied);
  auto all = applier_->Positions();
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[1].replica_set, 1u);
  EXPECT_EQ((*all)[1].kafka_offset, 3);
  EXPECT_EQ((*all)[0].kafka_offset, 20);
  EXPECT_EQ(applier_->GetPosition(7).status().code(), Code::kNotFound);
}

TEST_F(ApplyTest, WriteFragmentsMoveThePositionOnlyWithTheLastOne) {
  Journal j;
  const Gfid g = Gfid::Random();
  std::string data;
  for (int i = 0; i < 3000; ++i) data += static_cast<char>('a' + i % 26);
  Item c = j.Create(g, Gfid::Root(), "big");
  auto frags = j.WriteFragments(g, 100, data, 1000);
  ASSERT_EQ(frags.size(), 3u);
  EXPECT_EQ(MustApply(MakeBatch({c, frags[0]})), Outcome::kApplied);
  EXPECT_EQ(Pos().lsn, 1u);  // LSN 2 is not complete yet
  // The middle fragment, twice (a resend): harmless.
  EXPECT_EQ(MustApply(MakeBatch({frags[1]})), Outcome::kApplied);
  EXPECT_EQ(MustApply(MakeBatch({frags[1]})), Outcome::kApplied);
  EXPECT_EQ(Pos().lsn, 1u);
  EXPECT_EQ(MustApply(MakeBatch({frags[2]})), Outcome::kApplied);
  EXPECT_EQ(Pos().lsn, 2u);
  EXPECT_EQ(Pos().applied_ops, 2u);
  EXPECT_EQ(MustApply(MakeBatch({frags[2]})), Outcome::kDuplicate);
  auto got = vc_->Read(g, 0, 10000);
  ASSERT_OK(got);
  EXPECT_EQ(*got, std::string(100, '\0') + data);
}

TEST_F(ApplyTest, CrawlBatchesAreOrderedByCrawlSeq) {
  const Gfid root = Gfid::Root();
  const Gfid d = Gfid::Random(), f1 = Gfid::Random(), f2 = Gfid::Random();
  Journal crawl(0);  // crawl items carry no journal LSN
  auto item = [&](Item it) {
    it.op.lsn = 0;
    return it;
  };
  Stream s;
  s.flags = georep::kBatchCrawl;
  auto batch = [&](std::vector<Item> items, uint64_t seq, uint32_t extra = 0) {
    Stream t = s;
    t.flags |= extra;
    Batch b = MakeBatch(std::move(items), t);
    b.header.first_lsn = b.header.last_lsn = 0;
    b.header.crawl_seq = seq;
    return b;
  };
  EXPECT_EQ(MustApply(batch({item(crawl.Mkdir(d, root, "d")), item(crawl.Create(f1, d, "f1"))}, 1)),
            Outcome::kApplied);
  EXPECT_EQ(Pos().crawl_seq, 2u);
  EXPECT_FALSE(Pos().crawl_done);
  EXPECT_EQ(MustApply(batch({item(crawl.Create(f1, d, "f1"))}, 2)), Outcome::kDuplicate);
  EXPECT_EQ(MustApply(batch({item(crawl.Create(f2, d, "f2"))}, 5)), Outcome::kGap);
  EXPECT_FALSE(Exists(f2));
  EXPECT_EQ(MustApply(batch({item(crawl.Create(f1, d, "f1")), item(crawl.Create(f2, d, "f2")),
                             item(crawl.Write(f2, 0, "two"))},
                            2)),
            Outcome::kApplied);
  EXPECT_EQ(Pos().crawl_seq, 4u);
  auto two = vc_->Read(f2, 0, 10);
  ASSERT_OK(two);
  EXPECT_EQ(*two, "two");
  // The crawl ends: journal batches follow after LSN 41.
  Batch done = batch({}, 5, georep::kBatchCrawlDone);
  done.header.resume_brick = "brick-a";
  done.header.resume_lsn = 41;
  EXPECT_EQ(MustApply(done), Outcome::kApplied);
  EXPECT_TRUE(Pos().crawl_done);
  EXPECT_EQ(Pos().lsn, 41u);
  Journal j(43);
  EXPECT_EQ(MustApply(MakeBatch({j.Unlink(f1, d, "f1")})), Outcome::kGap);
  Journal j2(42);
  EXPECT_EQ(MustApply(MakeBatch({j2.Unlink(f1, d, "f1")})), Outcome::kApplied);
  EXPECT_FALSE(Exists(f1));
  EXPECT_EQ(Failures().size(), 0u) << FailureText();
}

// A crawl run is entered only at its first batch; until its CrawlDone the position is the
// crawl's start (journal batches of the stream wait), a redelivered CrawlDone does not move the
// position back, and a new run (a takeover) starts over from its first item.
TEST_F(ApplyTest, CrawlRunsAreEnteredAtTheirStartAndEndOnce) {
  const Gfid root = Gfid::Root();
  const Gfid d = Gfid::Random(), f1 = Gfid::Random(), f2 = Gfid::Random();
  Journal crawl(0);
  const uint64_t began = 1'700'000'000'123'000'000ull;
  auto item = [&](Item it) {
    it.op.lsn = 0;
    it.op.timestamp_ns = began;
    return it;
  };
  auto batch = [&](std::vector<Item> items, uint64_t seq, uint64_t token, bool resume,
                   uint32_t extra = 0) {
    Stream t;
    t.token = token;
    t.flags = georep::kBatchCrawl | extra;
    t.resume = resume;
    t.resume_brick = "brick-a";
    t.resume_lsn = (extra & georep::kBatchCrawlDone) ? 45 : 40;
    Batch b = MakeBatch(std::move(items), t);
    b.header.first_lsn = b.header.last_lsn = 0;
    b.header.crawl_seq = seq;
    return b;
  };
  // Not at the run's start: the items before would be missing.
  EXPECT_EQ(MustApply(batch({item(crawl.Mkdir(d, root, "d"))}, 3, 1, true)), Outcome::kGap);
  EXPECT_EQ(MustApply(batch({item(crawl.Mkdir(d, root, "d"))}, 1, 1, false)), Outcome::kGap);
  EXPECT_FALSE(Exists(d));
  EXPECT_EQ(MustApply(batch({item(crawl.Mkdir(d, root, "d")), item(crawl.Create(f1, d, "f1"))}, 1,
                            1, true)),
            Outcome::kApplied);
  Position p = Pos();
  EXPECT_EQ(p.crawl_seq, 2u);
  EXPECT_FALSE(p.crawl_done);
  EXPECT_EQ(p.lsn, 40u);  // the crawl's start
  EXPECT_EQ(p.ts_ns, began);
  EXPECT_EQ(p.source_brick, "brick-a");
  // Journal records of this stream come after its CrawlDone.
  Journal j(41);
  EXPECT_EQ(MustApply(MakeBatch({j.Create(f2, d, "f2")})), Outcome::kGap);
  EXPECT_FALSE(Exists(f2));
  EXPECT_EQ(MustApply(batch({}, 3, 1, false, georep::kBatchCrawlDone)), Outcome::kApplied);
  EXPECT_TRUE(Pos().crawl_done);
  EXPECT_EQ(Pos().lsn, 45u);
  Journal j2(46);
  EXPECT_EQ(MustApply(MakeBatch({j2.Create(f2, d, "f2")})), Outcome::kApplied);
  EXPECT_EQ(Pos().lsn, 46u);
  // A resend delivers the CrawlDone again: the position stays.
  EXPECT_EQ(MustApply(batch({}, 3, 1, false, georep::kBatchCrawlDone)), Outcome::kDuplicate);
  EXPECT_EQ(Pos().lsn, 46u);
  // A new run (a takeover with a newer token) crawls again from its first item, over what is
  // there: nothing fails, and the position is the new crawl's start until it ends.
  EXPECT_EQ(MustApply(batch({item(crawl.Mkdir(d, root, "d")), item(crawl.Create(f1, d, "f1")),
                             item(crawl.Create(f2, d, "f2"))},
                            1, 2, true)),
            Outcome::kApplied);
  EXPECT_FALSE(Pos().crawl_done);
  EXPECT_EQ(Pos().crawl_seq, 3u);
  EXPECT_EQ(Pos().token, 2u);
  EXPECT_EQ(Pos().lsn, 40u);
  EXPECT_EQ(Failures().size(), 0u) << FailureText();
}

// What a crawl states wins over where the secondary has an object: a directory or single-name
// file the walk saw elsewhere moves there, a file with several names gets the name a window
// RENAME gave it even when its source name was never here, and a journal replay after the
// crawl does not bring back an object made before the crawl began.
TEST_F(ApplyTest, CrawlItemsPlaceObjectsAndLaterReplaysDoNotResurrect) {
  const Gfid root = Gfid::Root();
  const Gfid x = Gfid::Random(), f = Gfid::Random(), g = Gfid::Random(), d2 = Gfid::Random();
  Journal j;
  ASSERT_EQ(MustApply(MakeBatch({j.Mkdir(x, root, "x"), j.Create(f, root, "f"),
                                 j.Create(g, root, "g"), j.Link(g, root, "g2")})),
            Outcome::kApplied);
  const uint64_t began = 1'700'000'000'000'000'000ull + 1'000'000;
  auto walk = [&](Item it) {
    it.op.lsn = 0;
    it.op.timestamp_ns = began;
    return it;
  };
  Stream s;
  s.token = 2;
  s.flags = georep::kBatchCrawl;
  s.resume_brick = "brick-a";
  s.resume_lsn = 4;
  Journal crawl(0);
  Journal window(5);
  Item rename_g = window.Rename(g, root, "gone", root, "g3");  // a name of g the walk missed
  rename_g.op.timestamp_ns = began + 10;
  Batch b = MakeBatch({walk(crawl.Mkdir(d2, root, "d2")), walk(crawl.Mkdir(x, d2, "x2")),
                       walk(crawl.Create(f, d2, "f2")), rename_g},
                      s);
  b.header.first_lsn = b.header.last_lsn = 0;
  b.header.crawl_seq = 1;
  ASSERT_EQ(MustApply(b), Outcome::kApplied);
  auto at = [&](const Gfid& p, const std::string& n) {
    auto a = vc_->Lookup(p, n);
    return a.ok() ? a->gfid : Gfid();
  };
  EXPECT_EQ(at(d2, "x2"), x);
  EXPECT_EQ(at(root, "x"), Gfid());
  EXPECT_EQ(at(d2, "f2"), f);
  EXPECT_EQ(at(root, "f"), Gfid());
  EXPECT_EQ(at(root, "g3"), g);
  EXPECT_EQ(at(root, "g"), g);
  Stream done = s;
  done.flags |= georep::kBatchCrawlDone;
  done.resume = false;
  done.resume_lsn = 5;
  Batch end = MakeBatch({}, done);
  end.header.crawl_seq = 5;
  ASSERT_EQ(MustApply(end), Outcome::kApplied);
  EXPECT_TRUE(Pos().crawl_done);
  // Another brick's journal replayed by time (a takeover): a CREATE from before the crawl
  // began is of an object that died before it; one from after is applied.
  Stream replay;
  replay.token = 3;
  replay.brick = "brick-b";
  replay.flags = georep::kBatchReplay;
  replay.resume_brick = "brick-a";
  replay.resume_lsn = 5;
  Journal other(1);
  const Gfid dead = Gfid::Random(), alive = Gfid::Random();
  Item old_create = other.Create(dead, root, "dead");
  old_create.op.timestamp_ns = began - 1000;
  Item new_create = other.Create(alive, root, "alive");
  new_create.op.timestamp_ns = began + 1000;
  ASSERT_EQ(MustApply(MakeBatch({old_create, new_create}, replay)), Outcome::kApplied);
  EXPECT_FALSE(Exists(dead));
  EXPECT_TRUE(Exists(alive));
  EXPECT_EQ(Failures().size(), 0u) << FailureText();
}

// A simple model of the primary's namespace: (parent, name) -> gfid, and which gfids are dirs.
struct Model {
  std::map<std::pair<Gfid, std::string>, Gfid> entries;
  std::set<Gfid> dirs;
  Gfid Get(const Gfid& p, const std::string& n) const {
    auto it = entries.find({p, n});
    return it == entries.end() ? Gfid() : it->second;
  }
  bool Empty(const Gfid& dir) const {
    for (const auto& [k, v] : entries)
      if (k.first == dir) return false;
    return true;
  }
  // Is `a` `b` or an ancestor of it?
  bool Contains(const Gfid& a, const Gfid& b) const {
    Gfid cur = b;
    for (int depth = 0; depth < 100; ++depth) {
      if (cur == a) return true;
      if (cur == Gfid::Root()) return false;
      bool found = false;
      for (const auto& [k, v] : entries) {
        if (v == cur) {
          cur = k.first;
          found = true;
          break;
        }
      }
      if (!found) return false;
    }
    return false;
  }
};

// (parent, name) -> gfid of the whole volume.
std::map<std::pair<Gfid, std::string>, Gfid> Names(VolumeClient& v) {
  std::map<std::pair<Gfid, std::string>, Gfid> out;
  std::vector<Gfid> todo{Gfid::Root()};
  while (!todo.empty()) {
    Gfid d = todo.back();
    todo.pop_back();
    uint64_t cookie = 0;
    for (;;) {
      auto page = v.Readdir(d, cookie, 256, true);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) return out;
      for (const auto& e : page->entries) {
        cookie = e.cookie;
        out[{d, e.name}] = e.gfid;
        if (S_ISDIR(e.attr.mode)) todo.push_back(e.gfid);
      }
      if (page->eof || page->entries.empty()) break;
    }
  }
  return out;
}

// Renames over a handful of names in a few directories (over existing files, across dirs,
// directories too), with creates and unlinks mixed in, generated against a model of the primary
// and shipped in batches. The secondary must end up exactly as the model.
TEST_F(ApplyTest, RenameStormMatchesTheModel) {
  std::mt19937_64 rng(20260117);
  Model m;
  Journal j;
  const Gfid root = Gfid::Root();
  std::vector<Gfid> dirs{root};
  std::vector<Item> all;
  for (int i = 0; i < 3; ++i) {
    Gfid d = Gfid::Random();
    all.push_back(j.Mkdir(d, root, "d" + std::to_string(i)));
    m.entries[{root, "d" + std::to_string(i)}] = d;
    m.dirs.insert(d);
    dirs.push_back(d);
  }
  const std::vector<std::string> names{"a", "b", "c", "e", "sub"};
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  int renames = 0;
  while (renames < 2000) {
    const Gfid p = dirs[pick(dirs.size())];
    const std::string n = names[pick(names.size())];
    const Gfid g = m.Get(p, n);
    const int what = static_cast<int>(pick(10));
    if (g.is_null()) {
      if (what < 7) continue;
      Gfid ng = Gfid::Random();
      if (n == "sub" && what == 9) {
        all.push_back(j.Mkdir(ng, p, n));
        m.dirs.insert(ng);
        dirs.push_back(ng);
      } else {
        all.push_back(j.Create(ng, p, n));
        all.push_back(j.Write(ng, 0, "v" + std::to_string(all.size())));
      }
      m.entries[{p, n}] = ng;
      continue;
    }
    if (what == 0) {  // remove
      if (m.dirs.count(g)) {
        if (!m.Empty(g)) continue;
        all.push_back(j.Rmdir(g, p, n));
        m.dirs.erase(g);
        dirs.erase(std::find(dirs.begin(), dirs.end(), g));
      } else {
        all.push_back(j.Unlink(g, p, n));
      }
      m.entries.erase({p, n});
      continue;
    }
    const Gfid np = dirs[pick(dirs.size())];
    const std::string nn = names[pick(names.size())];
    const Gfid victim = m.Get(np, nn);
    if (victim == g) continue;
    const bool is_dir = m.dirs.count(g) > 0;
    if (is_dir && m.Contains(g, np)) continue;  // into itself
    if (!victim.is_null()) {
      const bool vdir = m.dirs.count(victim) > 0;
      if (vdir != is_dir) continue;  // EISDIR / ENOTDIR
      if (vdir && !m.Empty(victim)) continue;
      if (vdir && m.Contains(victim, p)) continue;
    }
    all.push_back(j.Rename(g, p, n, np, nn, victim));
    m.entries.erase({p, n});
    m.entries[{np, nn}] = g;
    if (!victim.is_null() && m.dirs.count(victim)) {
      m.dirs.erase(victim);
      dirs.erase(std::find(dirs.begin(), dirs.end(), victim));
    }
    ++renames;
  }
  // Ship in batches of 64.
  int64_t offset = 0;
  for (size_t at = 0; at < all.size(); at += 64) {
    std::vector<Item> part(all.begin() + static_cast<long>(at),
                           all.begin() + static_cast<long>(std::min(all.size(), at + 64)));
    ASSERT_EQ(MustApply(MakeBatch(std::move(part)), offset++), Outcome::kApplied);
  }
  EXPECT_EQ(Failures().size(), 0u) << FailureText();
  auto names_now = Names(*vc_);
  EXPECT_EQ(names_now, m.entries);
  EXPECT_EQ(Pos().lsn, all.back().op.lsn);
  const Tree first = TreeOf(*vc_, /*with_times=*/false);

  // A replay of the last third from another brick (as after a takeover at a time): the result
  // must not change.
  Stream replay;
  replay.token = 2;
  replay.brick = "brick-b";
  replay.flags = georep::kBatchReplay;
  std::vector<Item> tail(all.begin() + static_cast<long>(all.size() * 2 / 3), all.end());
  for (size_t at = 0; at < tail.size(); at += 64) {
    std::vector<Item> part(tail.begin() + static_cast<long>(at),
                           tail.begin() + static_cast<long>(std::min(tail.size(), at + 64)));
    ASSERT_EQ(MustApply(MakeBatch(std::move(part), replay), offset++), Outcome::kApplied);
  }
  EXPECT_EQ(Failures().size(), 0u) << FailureText();
  EXPECT_EQ(Names(*vc_), m.entries);
  EXPECT_EQ(Diff(first, TreeOf(*vc_, false)), "");
}

// Applying a batch's ops on several threads (the default) must end exactly where applying them
// one by one does: a random mix of every op type over a few directories, with many independent
// ops per batch (where the threads overlap) and many that depend on each other (a file created,
// written, linked, renamed and removed in one batch; a directory emptied, then removed).
TEST_F(ApplyTest, ConcurrentApplyEndsWhereOneByOneDoes) {
  std::mt19937_64 rng(20261121);
  Model m;
  Journal j;
  const Gfid root = Gfid::Root();
  std::vector<Gfid> dirs{root};
  std::vector<Item> all;
  std::vector<AttrSnapshot> snaps;
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  std::map<Gfid, uint64_t> sizes;  // regular files
  std::set<Gfid> symlinks;         // no mode or user xattrs on these
  while (all.size() < 3000) {
    const Gfid p = dirs[pick(dirs.size())];
    const std::string n = "n" + std::to_string(pick(12));
    const Gfid g = m.Get(p, n);
    const int what = static_cast<int>(pick(20));
    if (g.is_null()) {
      Gfid ng = Gfid::Random();
      if (what < 4 && dirs.size() < 12) {
        all.push_back(j.Mkdir(ng, p, n));
        m.dirs.insert(ng);
        dirs.push_back(ng);
      } else if (what < 6) {
        all.push_back(j.Symlink(ng, p, n, "target-" + std::to_string(all.size())));
        symlinks.insert(ng);
      } else {
        all.push_back(j.Create(ng, p, n));
        all.push_back(j.Write(ng, 0, std::string(1 + pick(5000), static_cast<char>('a' + pick(26)))));
        sizes[ng] = 1;
      }
      m.entries[{p, n}] = ng;
      continue;
    }
    const bool is_dir = m.dirs.count(g) > 0;
    if (what < 3) {  // remove
      if (is_dir) {
        if (!m.Empty(g)) continue;
        all.push_back(j.Rmdir(g, p, n));
        m.dirs.erase(g);
        dirs.erase(std::find(dirs.begin(), dirs.end(), g));
      } else {
        all.push_back(j.Unlink(g, p, n));
      }
      m.entries.erase({p, n});
    } else if (what < 6 && !is_dir && sizes.count(g)) {
      all.push_back(j.Write(g, pick(8192), std::string(1 + pick(3000), 'w')));
    } else if (what < 7 && !is_dir && sizes.count(g)) {
      all.push_back(j.Truncate(g, pick(4000)));
    } else if (what < 11 && symlinks.count(g)) {
      continue;
    } else if (what < 9) {
      all.push_back(j.Setattr(g, changelog::kSetMode | changelog::kSetUid, 0600 | pick(0100),
                              static_cast<uint32_t>(pick(3)), 100));
    } else if (what < 11) {
      all.push_back(j.Setxattr(g, "user.k" + std::to_string(pick(3)), "v" + std::to_string(all.size())));
    } else if (what < 13 && !is_dir && sizes.count(g)) {
      const Gfid np = dirs[pick(dirs.size())];
      const std::string nn = "l" + std::to_string(pick(6));
      if (!m.Get(np, nn).is_null()) continue;
      all.push_back(j.Link(g, np, nn));
      m.entries[{np, nn}] = g;
    } else if (what < 16) {
      const Gfid np = dirs[pick(dirs.size())];
      const std::string nn = "n" + std::to_string(pick(12));
      const Gfid victim = m.Get(np, nn);
      if (victim == g) continue;
      if (is_dir && m.Contains(g, np)) continue;
      if (!victim.is_null()) {
        const bool vdir = m.dirs.count(victim) > 0;
        if (vdir != is_dir) continue;
        if (vdir && (!m.Empty(victim) || m.Contains(victim, p))) continue;
        // A file replaced while it has other names (links) keeps them: fine for the model.
      }
      all.push_back(j.Rename(g, p, n, np, nn, victim));
      m.entries.erase({p, n});
      m.entries[{np, nn}] = g;
      if (!victim.is_null() && m.dirs.count(victim)) {
        m.dirs.erase(victim);
        dirs.erase(std::find(dirs.begin(), dirs.end(), victim));
      }
    }
  }
  // Every surviving object gets the primary's times at the end of its batch.
  auto ship = [&](VolumeClient& vc, BatchApplier& ap) {
    int64_t offset = 0;
    for (size_t at = 0; at < all.size(); at += 200) {
      std::vector<Item> part(all.begin() + static_cast<long>(at),
                             all.begin() + static_cast<long>(std::min(all.size(), at + 200)));
      Batch b = MakeBatch(std::move(part));
      for (const auto& it : b.items) {
        if (it.op.op == OpType::kCreate || it.op.op == OpType::kMkdir) {
          b.attrs.push_back(Snap(it.op.gfid, 0, 1'600'000'000'000'000'000 + static_cast<int64_t>(it.op.lsn)));
        }
      }
      auto r = ap.Apply(vc, b, offset++);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      ASSERT_EQ(*r, Outcome::kApplied);
    }
  };
  auto t0 = std::chrono::steady_clock::now();
  ship(*vc_, *applier_);  // the default: several threads
  const double threaded_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(Failures().size(), 0u) << FailureText();
  EXPECT_EQ(Names(*vc_), m.entries);

  Cluster one("svol-one");
  auto vc1 = one.Client();
  ASSERT_NE(vc1, nullptr);
  auto a1 = BatchApplier::Open(one.tmp().Sub("one.db"), "s1", /*apply_threads=*/1);
  ASSERT_TRUE(a1.ok()) << a1.status().ToString();
  t0 = std::chrono::steady_clock::now();
  ship(*vc1, **a1);
  const double one_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Printed, not asserted (a loaded machine is slow either way).
  std::cout << all.size() << " ops: " << kDefaultApplyThreads << " threads " << threaded_s
            << " s, one by one " << one_s << " s\n";
  auto f1 = (*a1)->Failures(100);
  ASSERT_TRUE(f1.ok());
  EXPECT_EQ(f1->size(), 0u);
  // Not times: later batches' entry ops and writes stamp "now" on each volume.
  const Tree threaded = TreeOf(*vc_, /*with_times=*/false);
  EXPECT_GT(threaded.size(), 20u);
  EXPECT_EQ(Diff(TreeOf(*vc1, /*with_times=*/false), threaded), "");
}

TEST_F(ApplyTest, DeletingANonEmptyTreeInThePrimarysOrder) {
  Journal j;
  const Gfid root = Gfid::Root();
  const Gfid a = Gfid::Random(), b = Gfid::Random(), c = Gfid::Random();
  std::vector<Item> build{j.Mkdir(a, root, "a"), j.Mkdir(b, a, "b"), j.Mkdir(c, b, "c")};
  std::vector<std::pair<Gfid, Gfid>> files;  // (parent, gfid)
  for (const Gfid& d : {a, b, c}) {
    for (int i = 0; i < 5; ++i) {
      Gfid f = Gfid::Random();
      build.push_back(j.Create(f, d, "f" + std::to_string(i)));
      build.push_back(j.Write(f, 0, std::string(100, 'x')));
      files.emplace_back(d, f);
    }
  }
  const Gfid s = Gfid::Random();
  build.push_back(j.Symlink(s, c, "ln", "../f0"));
  ASSERT_EQ(MustApply(MakeBatch(build)), Outcome::kApplied);
  // rm -rf a: children first, deepest first.
  std::vector<Item> del{j.Unlink(s, c, "ln")};
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    int idx = static_cast<int>((files.rend() - it - 1) % 5);
    del.push_back(j.Unlink(it->second, it->first, "f" + std::to_string(idx)));
  }
  del.push_back(j.Rmdir(c, b, "c"));
  del.push_back(j.Rmdir(b, a, "b"));
  del.push_back(j.Rmdir(a, root, "a"));
  Batch db = MakeBatch(del);
  ASSERT_EQ(MustApply(db), Outcome::kApplied);
  EXPECT_EQ(Failures().size(), 0u) << FailureText();
  EXPECT_TRUE(TreeOf(*vc_).empty());
  EXPECT_FALSE(Exists(a));
  EXPECT_FALSE(Exists(files[0].second));
  // Again, as a replay: nothing left to do, nothing to complain about.
  Stream replay;
  replay.token = 2;
  replay.flags = georep::kBatchReplay;
  std::vector<Item> everything = build;
  everything.insert(everything.end(), del.begin(), del.end());
  ASSERT_EQ(MustApply(MakeBatch(everything, replay)), Outcome::kApplied);
  EXPECT_TRUE(TreeOf(*vc_).empty());
  EXPECT_EQ(Failures().size(), 0u) << FailureText();
}

// A replay window: a takeover resumed at a time, so the new syncer's first batches repeat
// records already applied (with another brick's LSNs), then go on with new ones.
TEST_F(ApplyTest, ReplayWindowConvergesToTheSameTree) {
  const Gfid root = Gfid::Root();
  const Gfid d = Gfid::Random(), f = Gfid::Random(), g = Gfid::Random(), h = Gfid::Random();
  // The ops, journaled on two bricks with different LSNs.
  auto ops = [&](Journal& j) {
    std::vector<Item> v;
    v.push_back(j.Mkdir(d, root, "d"));
    v.push_back(j.Create(f, d, "f"));
    v.push_back(j.Write(f, 0, "one"));
    v.push_back(j.Rename(f, d, "f", root, "f"));
    v.push_back(j.Create(g, d, "f"));  // the name is reused
    v.push_back(j.Write(g, 0, "two"));
    v.push_back(j.Unlink(f, root, "f"));
    v.push_back(j.Rename(g, d, "f", root, "f"));
    v.push_back(j.Setxattr(g, "user.k", "v1"));
    v.push_back(j.Setattr(g, changelog::kSetMode, 0640, 0, 0));
    // -- the primary had shipped up to here when it failed over --
    v.push_back(j.Create(h, d, "h"));
    v.push_back(j.Write(h, 0, "three"));
    v.push_back(j.Rename(h, d, "h", root, "f", g));  // over g
    v.push_back(j.Rmdir(d, root, "d"));
    return v;
  };
  Journal ja(1), jb(900, 899);  // the same ops at the same times on both bricks
  auto va = ops(ja), vb = ops(jb);
  ASSERT_EQ(MustApply(MakeBatch({va.begin(), va.begin() + 10})), Outcome::kApplied);
  const Tree before = TreeOf(*vc_, false);
  // Brick b's syncer takes over from brick a's acknowledged position (LSN 10 of a's journal)
  // at that time minus an overlap: records 902.. of its journal. As the syncer does, only the
  // run's first batch says so; the repeats go on in the next batch.
  Stream replay;
  replay.token = 2;
  replay.brick = "brick-b";
  replay.flags = georep::kBatchReplay | georep::kBatchResume;
  replay.resume_brick = "brick-a";
  replay.resume_lsn = 10;
  ASSERT_EQ(MustApply(MakeBatch({vb.begin() + 2, vb.begin() + 3}, replay)), Outcome::kApplied);
  EXPECT_EQ(Diff(before, TreeOf(*vc_, false)), "");  // nothing visible changed
  Stream run = replay;
  run.flags = 0;
  ASSERT_EQ(MustApply(MakeBatch({vb.begin() + 3, vb.begin() + 9}, run)), Outcome::kApplied);
  EXPECT_EQ(Diff(before, TreeOf(*vc_, false)), "");
  ASSERT_EQ(MustApply(MakeBatch({vb.begin() + 9, vb.end()}, run)), Outcome::kApplied);
  // The same ops applied once, cleanly, on a fresh secondary give the same tree.
  Cluster ref;
  auto rvc = ref.Client();
  ASSERT_NE(rvc, nullptr);
  auto ra = BatchApplier::Open(ref.tmp().Sub("db"), "s1");
  ASSERT_OK(ra);
  ASSERT_OK((*ra)->Apply(*rvc, MakeBatch(va), 0));
  EXPECT_EQ(Diff(TreeOf(*rvc, false), TreeOf(*vc_, false)), "");
  EXPECT_EQ(Failures().size(), 0u) << FailureText();
  EXPECT_EQ(At(root, "f"), h);
  EXPECT_FALSE(Exists(g));
  Position p = Pos();
  EXPECT_EQ(p.source_brick, "brick-b");
  EXPECT_EQ(p.lsn, vb.back().op.lsn);
  // The next batch of the run continues by LSN: a gap is still a gap.
  Stream next = replay;
  next.flags = 0;
  Journal later(jb.next_lsn() + 1);
  EXPECT_EQ(MustApply(MakeBatch({later.Create(Gfid::Random(), root, "late")}, next)),
            Outcome::kGap);
}

// Conflicts the primary cannot have had are recorded, not forced; the batch goes on.
TEST_F(ApplyTest, ConflictsAreRecordedAsFailures) {
  const Gfid root = Gfid::Root();
  Journal j;
  const Gfid d = Gfid::Random();
  ASSERT_EQ(MustApply(MakeBatch({j.Mkdir(d, root, "d")})), Outcome::kApplied);
  // Someone wrote to the secondary behind the applier's back.
  auto intruder = vc_->Create(d, "taken", 0644, 0, 0, true);
  ASSERT_OK(intruder);
  ASSERT_OK(vc_->Write(intruder->gfid, 0, "not yours"));
  ASSERT_OK(vc_->Flush(intruder->gfid));
  const Gfid f = Gfid::Random(), ok = Gfid::Random(), lost = Gfid::Random();
  Item conflict = j.Create(f, d, "taken");
  Item missing_parent = j.Create(Gfid::Random(), lost, "orphan");
  Item bad_rename = j.Rename(Gfid::Random(), d, "nothing-here", d, "dest");
  Item fine = j.Create(ok, d, "fine");
  ASSERT_EQ(MustApply(MakeBatch({conflict, missing_parent, bad_rename, fine}), 4),
            Outcome::kApplied);
  EXPECT_TRUE(Exists(ok));
  EXPECT_FALSE(Exists(f));
  auto left = vc_->Read(intruder->gfid, 0, 100);
  ASSERT_OK(left);
  EXPECT_EQ(*left, "not yours");
  auto fs = Failures();
  ASSERT_EQ(fs.size(), 3u) << FailureText();
  // Newest first.
  EXPECT_EQ(fs[2].lsn, conflict.op.lsn);
  EXPECT_EQ(fs[2].op, "CREATE");
  EXPECT_EQ(fs[2].target, d.ToString() + "/taken (" + f.ToString() + ")");
  EXPECT_NE(fs[2].error.find("File exists"), std::string::npos) << fs[2].error;
  EXPECT_NE(fs[2].error.find(intruder->gfid.ToString()), std::string::npos) << fs[2].error;
  EXPECT_EQ(fs[1].op, "CREATE");
  EXPECT_NE(fs[1].error.find("parent directory"), std::string::npos) << fs[1].error;
  EXPECT_EQ(fs[0].op, "RENAME");
  EXPECT_NE(fs[0].target.find(" -> " + d.ToString() + "/dest"), std::string::npos);
  Position p = Pos();
  EXPECT_EQ(p.failures, 3u);
  EXPECT_EQ(p.lsn, fine.op.lsn);
  EXPECT_EQ(p.applied_ops, 5u);
  // The failures are stored with the position.
  Reopen();
  EXPECT_EQ(Failures().size(), 3u);
  EXPECT_EQ(Pos().failures, 3u);
}

TEST_F(ApplyTest, UnavailableWhileTheBricksAreDownRecordsNothing) {
  const Gfid root = Gfid::Root();
  Journal j;
  const Gfid a = Gfid::Random(), b = Gfid::Random();
  ASSERT_EQ(MustApply(MakeBatch({j.Create(a, root, "a")}), 1), Outcome::kApplied);
  const Position before = Pos();
  Batch next = MakeBatch({j.Write(a, 0, "data"), j.Create(b, root, "b")});
  // One brick down: quorum holds, the batch applies.
  // All three down: nothing can be applied.
  for (int i = 0; i < 3; ++i) cluster_.Stop(i);
  auto r = applier_->Apply(*vc_, next, 2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
  Position p = Pos();
  EXPECT_EQ(p.lsn, before.lsn);
  EXPECT_EQ(p.kafka_offset, before.kafka_offset);
  EXPECT_EQ(p.applied_ops, before.applied_ops);
  EXPECT_EQ(p.failures, 0u);
  EXPECT_TRUE(Failures().empty());
  // Two of three back: quorum, the retry applies it.
  cluster_.Start(0);
  cluster_.Start(1);
  vc_ = cluster_.Client();
  ASSERT_NE(vc_, nullptr);
  EXPECT_EQ(MustApply(next, 2), Outcome::kApplied);
  EXPECT_TRUE(Exists(b));
  EXPECT_EQ(Pos().lsn, 3u);
  EXPECT_TRUE(Failures().empty()) << FailureText();
}

TEST_F(ApplyTest, ABatchOfAnotherSessionIsRefused) {
  Journal j;
  Batch b = MakeBatch({j.Create(Gfid::Random(), Gfid::Root(), "x")});
  b.header.session = "other";
  auto r = applier_->Apply(*vc_, b, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("other"), std::string::npos);
}

// The first batch of a stream (the one that says where it resumes) was lost, e.g. evicted by
// the broker before the applier read it: a later batch of that stream must not be entered
// (that would skip the records before it); it is a gap, and the syncer resends from the start.
TEST_F(ApplyTest, AStreamIsEnteredOnlyWhereItResumes) {
  Journal j;
  const Gfid a = Gfid::Random(), b = Gfid::Random();
  Item first = j.Create(a, Gfid::Root(), "first");
  Item second = j.Create(b, Gfid::Root(), "second");
  Stream later;
  later.resume = false;
  EXPECT_EQ(MustApply(MakeBatch({second}, later), 1), Outcome::kGap);
  EXPECT_FALSE(vc_->Lookup(Gfid::Root(), "second").ok());
  // The resend starts at the beginning, saying so.
  Stream start;
  start.resume_brick = start.brick;
  start.resume_lsn = 0;
  EXPECT_EQ(MustApply(MakeBatch({first, second}, start), 2), Outcome::kApplied);
  EXPECT_TRUE(vc_->Lookup(Gfid::Root(), "first").ok());
  EXPECT_TRUE(vc_->Lookup(Gfid::Root(), "second").ok());
  // A takeover's run on another brick is entered only at its flagged first batch too.
  Journal k(100);
  Stream other;
  other.token = 2;
  other.brick = "brick-b";
  other.resume = false;
  EXPECT_EQ(MustApply(MakeBatch({k.Create(Gfid::Random(), Gfid::Root(), "third")}, other), 3),
            Outcome::kGap);
  EXPECT_FALSE(vc_->Lookup(Gfid::Root(), "third").ok());
}

}  // namespace
}  // namespace drfs::secondary
