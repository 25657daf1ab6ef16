// The FUSE mount's inode table: node ids handed to the kernel, their lookup counts, and forget.
#include "volume/detail/inode_table.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

namespace drfs::volume::detail {
namespace {

Gfid G(uint8_t last, uint8_t first = 0xab) {
  Gfid g;
  g.bytes[0] = first;
  g.bytes[15] = last;
  return g;
}

TEST(InodeTableTest, RootIsIdOneAndNeverForgotten) {
  InodeTable t(7);
  EXPECT_EQ(t.Find(InodeTable::kRootId), Gfid::Root());
  EXPECT_EQ(t.IdOf(Gfid::Root()), InodeTable::kRootId);
  t.Forget(InodeTable::kRootId, 100);
  EXPECT_EQ(t.Find(InodeTable::kRootId), Gfid::Root());
  // A lookup that returns the root (say, of "." on an NFS export) gives id 1 again.
  EXPECT_EQ(t.Ref(Gfid::Root()), InodeTable::kRootId);
  EXPECT_EQ(t.generation(), 7u);
}

TEST(InodeTableTest, OneIdPerGfidCountedByLookups) {
  InodeTable t(1);
  const uint64_t a = t.Ref(G(1));
  const uint64_t b = t.Ref(G(2));
  EXPECT_NE(a, b);
  EXPECT_NE(a, InodeTable::kRootId);
  // A hard link found under another name is the same inode.
  EXPECT_EQ(t.Ref(G(1)), a);
  EXPECT_EQ(t.LookupCount(a), 2u);
  EXPECT_EQ(t.Find(a), G(1));
  EXPECT_EQ(t.IdOf(G(2)), b);

  t.Forget(a, 1);
  EXPECT_EQ(t.Find(a), G(1)) << "one lookup is still held";
  t.Forget(a, 1);
  EXPECT_FALSE(t.Find(a).has_value());
  EXPECT_FALSE(t.IdOf(G(1)).has_value());
  // Found again after forget: a new id, never the old one (ids are not reused in a mount).
  const uint64_t again = t.Ref(G(1));
  EXPECT_NE(again, a);
  EXPECT_GT(again, b);
  EXPECT_EQ(t.size(), 3u);  // root, G(2), G(1)
}

TEST(InodeTableTest, ForgetMoreThanHeldAndUnknownIdsAreHarmless) {
  InodeTable t(1);
  const uint64_t a = t.Ref(G(1));
  t.Forget(a, 5);
  EXPECT_FALSE(t.Find(a).has_value());
  t.Forget(a, 1);
  t.Forget(12345, 1);
  EXPECT_EQ(t.size(), 1u);
}

TEST(InodeTableTest, AttrHintsFollowTheObject) {
  InodeTable t(1);
  t.NoteAttr(G(1), 02775, 100);  // unknown to the kernel: not kept
  const uint64_t a = t.Ref(G(1));
  EXPECT_FALSE(t.Attr(a).has_value());
  t.NoteAttr(G(1), 040000 | 02775, 100);
  ASSERT_TRUE(t.Attr(a).has_value());
  EXPECT_EQ(t.Attr(a)->mode, 040000u | 02775u);
  EXPECT_EQ(t.Attr(a)->gid, 100u);
  t.Forget(a, 1);
  EXPECT_FALSE(t.Attr(a).has_value());
}

TEST(InodeTableTest, InodeNumbersComeFromTheGfid) {
  EXPECT_EQ(GfidToIno(Gfid::Root()), 1u);
  Gfid g = *Gfid::Parse("86bbce84-f394-4eec-ad62-e6e2ce5faa5d");
  EXPECT_EQ(GfidToIno(g), 0xad62e6e2ce5faa5dull);
  // Last 8 bytes zero: the first 8 instead, never 0.
  Gfid z = *Gfid::Parse("12345678-9abc-def0-0000-000000000000");
  EXPECT_EQ(GfidToIno(z), 0x123456789abcdef0ull);
}

// Lookups and forgets from many FUSE threads at once: the counts add up.
TEST(InodeTableTest, ConcurrentRefAndForget) {
  InodeTable t(1);
  constexpr int kThreads = 8, kRounds = 2000;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&t] {
      for (int r = 0; r < kRounds; ++r) {
        const uint64_t id = t.Ref(G(static_cast<uint8_t>(r % 16)));
        if (r % 2 == 1) t.Forget(id, 1);
      }
    });
  }
  for (auto& th : threads) th.join();
  // Each thread kept one reference of every even round.
  uint64_t total = 0;
  std::set<uint64_t> ids;
  for (int k = 0; k < 16; ++k) {
    auto id = t.IdOf(G(static_cast<uint8_t>(k)));
    if (id) {
      total += t.LookupCount(*id);
      ids.insert(*id);
    }
  }
  EXPECT_EQ(total, static_cast<uint64_t>(kThreads * kRounds / 2));
}

}  // namespace
}  // namespace drfs::volume::detail
