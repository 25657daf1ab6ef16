// The geo-replication wire format (georep/format.h): round trips at every compression level,
// and every way a message can be damaged, misrouted, from a newer drfs, or hostile.
//
// Messages are built and patched here from the layout docs/georep-format.md documents, not from
// format.cc, so the document and the code cannot drift apart unnoticed.
#include "georep/format.h"

#include <gtest/gtest.h>
#include <zstd.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "changelog/format.h"
#include "common/coding.h"
#include "common/crc32c.h"
#include "tests/changelog/test_records.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DRFS_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DRFS_TEST_SANITIZED 1
#endif
#endif
#ifdef DRFS_TEST_SANITIZED
// From <sanitizer/allocator_interface.h>, which GCC does not install; the runtime has it.
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*,
                                                                             size_t),
                                                         void (*free_hook)(const volatile void*));
#endif

// ---- Allocation tracking: proves a hostile size claim is refused before anything is
// allocated for it. Sanitizers own malloc and offer hooks; elsewhere operator new is replaced.

namespace {
std::atomic<bool> g_tracking{false};
std::atomic<size_t> g_largest{0};

void NoteAllocation(size_t n) {
  if (!g_tracking.load(std::memory_order_relaxed)) return;
  size_t cur = g_largest.load(std::memory_order_relaxed);
  while (n > cur && !g_largest.compare_exchange_weak(cur, n)) {
  }
}

#ifdef DRFS_TEST_SANITIZED
void MallocHook(const volatile void*, size_t n) {
  NoteAllocation(n);
}
void FreeHook(const volatile void*) {}
const bool g_hooks_installed = __sanitizer_install_malloc_and_free_hooks(MallocHook, FreeHook);
#else
const bool g_hooks_installed = true;
#endif

template <typename F>
size_t LargestAllocationDuring(F f) {
  g_largest = 0;
  g_tracking = true;
  f();
  g_tracking = false;
  return g_largest;
}
}  // namespace

#ifndef DRFS_TEST_SANITIZED
void* operator new(std::size_t n) {
  NoteAllocation(n);
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) std::abort();  // a test out of memory has nothing better to do
  return p;
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#endif

namespace drfs::georep {
namespace {

using changelog::OpType;
using changelog::Record;
using changelog::testing::FullRecord;
using changelog::testing::GfidFor;

// ---- The documented layout. ----

constexpr size_t kHeader = 20;
constexpr uint8_t kBatchKindByte = 1, kAckKindByte = 2;

// A message from its parts, exactly as docs/georep-format.md describes it.
std::string Message(uint8_t kind, uint8_t compression, uint32_t body_len, std::string_view stored,
                    uint8_t version = kFormatVersion, uint8_t reserved = 0) {
  std::string m = "DRGR";
  PutU8(&m, version);
  PutU8(&m, kind);
  PutU8(&m, compression);
  PutU8(&m, reserved);
  PutFixed32(&m, static_cast<uint32_t>(stored.size()));
  PutFixed32(&m, body_len);
  PutFixed32(&m, 0);
  m.append(stored);
  uint32_t crc = crc32c::Extend(crc32c::Value(m.data(), 16), m.data() + kHeader, stored.size());
  EncodeFixed32(m.data() + 16, crc32c::Mask(crc));
  return m;
}

// After patching a message: its stored length and CRC made right again, so a decoder gets past
// them to the part under test.
void Reseal(std::string* m) {
  *m = Message(static_cast<uint8_t>((*m)[5]), static_cast<uint8_t>((*m)[6]),
               DecodeFixed32(m->data() + 12), std::string_view(*m).substr(kHeader),
               static_cast<uint8_t>((*m)[4]), static_cast<uint8_t>((*m)[7]));
}

std::string Pattern(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s)
    c = static_cast<char>(rng());
  return s;
}

// Text-like bytes: what zstd is for.
std::string Repetitive(size_t n) {
  std::string s;
  for (int i = 0; s.size() < n; ++i) {
    s += "2026-01-0" + std::to_string(i % 7) + " INFO request served in 3ms\n";
  }
  s.resize(n);
  return s;
}

Item ItemOf(Record r, std::string data = {}) {
  Item it;
  it.op = std::move(r);
  it.data = std::move(data);
  return it;
}

BatchHeader FullHeader(uint32_t flags) {
  BatchHeader h;
  h.volume_uuid = "6f1c2a9e-4b1d-4c55-9d0e-1b2f3a4c5d6e";
  h.session = "pvol-dr";
  h.replica_set = 2;
  h.epoch = 3;
  h.token = 41;
  h.source_brick = "d5000000-0000-0000-0000-00000000002a";
  h.first_lsn = 100;
  h.last_lsn = 100 + 20;
  h.flags = flags;
  h.resume_brick = flags & kBatchResume ? "d5000000-0000-0000-0000-000000000029" : "";
  h.resume_lsn = flags & kBatchResume ? 99 : 0;
  h.crawl_seq = flags & kBatchCrawl ? 12345 : 0;
  h.sent_ns = 1'760'000'000'123'456'789ull;
  return h;
}

// One item of every op (WRITEs and SETXATTRs with their bytes), a WRITE in two fragments, a
// WRITE and a SETXATTR whose objects were gone, and attr snapshots.
Batch FullBatch(uint32_t flags = kBatchResume | kBatchReplay | kBatchCrawl | kBatchCrawlDone) {
  Batch b;
  b.header = FullHeader(flags);
  uint64_t lsn = 100;
  for (OpType op : changelog::kAllOpTypes) {
    Record r = FullRecord(op, lsn);
    r.lsn = lsn++;
    std::string data;
    if (op == OpType::kWrite) data = Repetitive(r.length);
    if (op == OpType::kSetxattr) data = "value of " + r.xattr_name;
    b.items.push_back(ItemOf(r, data));
  }
  Record w = FullRecord(OpType::kWrite, 7);
  w.lsn = lsn++;
  w.length = 10'000;
  Item first = ItemOf(w, Pattern(6'000, 1));
  first.last_fragment = false;
  Item second = ItemOf(w, Pattern(4'000, 2));
  second.data_offset = 6'000;
  b.items.push_back(first);
  b.items.push_back(second);
  Record gone_write = FullRecord(OpType::kWrite, 8);
  gone_write.lsn = lsn++;
  Item gw = ItemOf(gone_write);
  gw.gone = true;
  b.items.push_back(gw);
  Record gone_xattr = FullRecord(OpType::kSetxattr, 9);
  gone_xattr.lsn = lsn++;
  Item gx = ItemOf(gone_xattr);
  gx.gone = true;
  b.items.push_back(gx);
  for (uint64_t i = 0; i < 3; ++i) {
    AttrSnapshot a;
    a.gfid = GfidFor(1000 + i);
    a.mode = 0100644;
    a.uid = 1000;
    a.gid = 100 + static_cast<uint32_t>(i);
    a.size = 4096 * i + 1;
    a.atime_ns = -1'000'000'007 * static_cast<int64_t>(i);  // before 1970 is legal
    a.mtime_ns = 1'760'000'000'000'000'000 + static_cast<int64_t>(i);
    b.attrs.push_back(a);
  }
  return b;
}

// A few small items: small enough to corrupt byte by byte.
Batch SmallBatch() {
  Batch b;
  b.header = FullHeader(kBatchResume);
  b.header.first_lsn = 7;
  b.header.last_lsn = 9;
  Record c = FullRecord(OpType::kCreate, 7);
  c.lsn = 7;
  Record w = FullRecord(OpType::kWrite, 8);
  w.lsn = 8;
  w.length = 64;
  Record s = FullRecord(OpType::kSetxattr, 9);
  s.lsn = 9;
  b.items = {ItemOf(c), ItemOf(w, Repetitive(64)), ItemOf(s, "v")};
  AttrSnapshot a;
  a.gfid = c.gfid;
  a.mode = 0100644;
  a.mtime_ns = 1;
  b.attrs = {a};
  return b;
}

Ack FullAck() {
  Ack a;
  a.session = "pvol-dr";
  a.replica_set = 2;
  a.epoch = 3;
  a.token = 41;
  a.source_brick = "d5000000-0000-0000-0000-00000000002a";
  a.applied_lsn = 120;
  a.applied_ts_ns = 1'760'000'000'000'000'120ull;
  a.crawl_seq = 12345;
  a.crawl_done = true;
  a.gap = true;
  a.applied_ops = 987'654;
  a.failures = 2;
  a.sent_ns = 1'760'000'000'500'000'000ull;
  return a;
}

bool Refused(const Status& s) {
  return s.code() == Code::kDataLoss || s.code() == Code::kInvalidArgument;
}

// ---- Round trips. ----

TEST(GeorepFormat, BatchOfEveryOpRoundTripsAtEveryLevel) {
  Batch b = FullBatch();
  ASSERT_TRUE(ValidateBatch(b).ok()) << ValidateBatch(b).ToString();
  const size_t plain_size = EncodedBatchSize(b);
  for (int level : {0, 1, 3, 19, -5}) {
    SCOPED_TRACE("zstd level " + std::to_string(level));
    std::string m = EncodeBatch(b, level);
    EXPECT_EQ(m.substr(0, 4), "DRGR");
    EXPECT_EQ(m[4], 1);                   // version
    EXPECT_EQ(m[5], kBatchKindByte);      // kind
    EXPECT_EQ(m[6], level == 0 ? 0 : 1);  // compression: this batch compresses
    if (level == 0) {
      EXPECT_EQ(m.size(), plain_size);
    } else {
      EXPECT_LT(m.size(), plain_size);
    }
    EXPECT_EQ(UncompressedSize(m), plain_size - kHeader);
    Batch got;
    Status s = DecodeBatch(m, &got);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(got, b);
  }
}

TEST(GeorepFormat, EveryHeaderFlagRoundTrips) {
  for (uint32_t flags : {0u, kBatchResume, kBatchReplay, kBatchCrawl, kBatchCrawlDone,
                         kBatchResume | kBatchReplay | kBatchCrawl | kBatchCrawlDone}) {
    Batch b = FullBatch(flags);
    Batch got;
    ASSERT_TRUE(DecodeBatch(EncodeBatch(b, 3), &got).ok());
    EXPECT_EQ(got.header, b.header);
  }
}

TEST(GeorepFormat, EmptyBatchRoundTrips) {
  Batch b;
  b.header.session = "s";  // no records: first and last LSN 0
  for (int level : {0, 3}) {
    Batch got = FullBatch();
    ASSERT_TRUE(DecodeBatch(EncodeBatch(b, level), &got).ok());
    EXPECT_EQ(got, b);
  }
}

TEST(GeorepFormat, LargeWriteTravelsInFragmentsOfAtMostOneMiB) {
  const size_t length = 2 * kMaxMessageData + kMaxMessageData / 2;
  const std::string file = Pattern(length / 2, 3) + Repetitive(length - length / 2);
  Record w = FullRecord(OpType::kWrite, 5);
  w.lsn = 5;
  w.offset = 1 << 20;
  w.length = length;
  std::vector<std::string> messages;
  for (size_t off = 0; off < length; off += kMaxMessageData) {
    Batch b;
    b.header = FullHeader(0);
    b.header.first_lsn = b.header.last_lsn = 5;
    Item it = ItemOf(w, file.substr(off, kMaxMessageData));
    it.data_offset = off;
    it.last_fragment = off + kMaxMessageData >= length;
    b.items.push_back(it);
    ASSERT_TRUE(ValidateBatch(b).ok()) << ValidateBatch(b).ToString();
    messages.push_back(EncodeBatch(b, 3));
    EXPECT_LE(messages.back().size(), kMaxMessageBytes);
  }
  ASSERT_EQ(messages.size(), 3u);
  std::string reassembled;
  for (size_t i = 0; i < messages.size(); ++i) {
    Batch got;
    ASSERT_TRUE(DecodeBatch(messages[i], &got).ok());
    ASSERT_EQ(got.items.size(), 1u);
    const Item& it = got.items[0];
    EXPECT_EQ(it.op, w);
    EXPECT_EQ(it.data_offset, reassembled.size());
    EXPECT_EQ(it.last_fragment, i + 1 == messages.size());
    reassembled += it.data;
  }
  EXPECT_EQ(reassembled, file);
}

TEST(GeorepFormat, GoneItemsKeepTheirRecordsWithoutData) {
  Batch got;
  ASSERT_TRUE(DecodeBatch(EncodeBatch(FullBatch(), 1), &got).ok());
  int gone = 0;
  for (const Item& it : got.items) {
    if (!it.gone) continue;
    ++gone;
    EXPECT_TRUE(it.data.empty());
    EXPECT_TRUE(it.op.op == OpType::kWrite || it.op.op == OpType::kSetxattr);
  }
  EXPECT_EQ(gone, 2);
}

TEST(GeorepFormat, RepetitiveDataCompressesMuchSmaller) {
  Batch b;
  b.header = FullHeader(0);
  b.header.first_lsn = b.header.last_lsn = 1;
  Record w = FullRecord(OpType::kWrite, 1);
  w.lsn = 1;
  w.length = kMaxMessageData;
  b.items.push_back(ItemOf(w, Repetitive(kMaxMessageData)));
  std::string plain = EncodeBatch(b, 0);
  std::string z = EncodeBatch(b, 1);
  EXPECT_EQ(z[6], 1);
  EXPECT_LT(z.size() * 20, plain.size()) << z.size() << " vs " << plain.size();
  EXPECT_EQ(UncompressedSize(z), plain.size() - kHeader);
  EXPECT_EQ(UncompressedSize(plain), plain.size() - kHeader);
  Batch got;
  ASSERT_TRUE(DecodeBatch(z, &got).ok());
  EXPECT_EQ(got, b);
}

TEST(GeorepFormat, IncompressibleBodyIsStoredUncompressed) {
  Batch b;
  b.header.first_lsn = b.header.last_lsn = 1;
  Record w = FullRecord(OpType::kWrite, 1);
  w.lsn = 1;
  w.length = 65536;
  b.items.push_back(ItemOf(w, Pattern(65536, 9)));
  std::string m = EncodeBatch(b, 19);
  EXPECT_EQ(m[6], 0);
  EXPECT_EQ(m, EncodeBatch(b, 0));
  Batch got;
  ASSERT_TRUE(DecodeBatch(m, &got).ok());
  EXPECT_EQ(got, b);
}

TEST(GeorepFormat, AcksRoundTrip) {
  for (int flags = 0; flags < 4; ++flags) {
    Ack a = FullAck();
    a.crawl_done = flags & 1;
    a.gap = flags & 2;
    std::string m = EncodeAck(a);
    EXPECT_EQ(m.substr(0, 4), "DRGR");
    EXPECT_EQ(m[5], kAckKindByte);
    EXPECT_EQ(m[6], 0);  // never compressed
    Ack got;
    Status s = DecodeAck(m, &got);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(got, a);
  }
  Ack empty, got = FullAck();
  ASSERT_TRUE(DecodeAck(EncodeAck(empty), &got).ok());
  EXPECT_EQ(got, empty);
}

// ---- The bytes are the documented ones. ----

TEST(GeorepFormat, AckBytesAreTheDocumentedLayout) {
  Ack a = FullAck();
  std::string body;
  PutLengthPrefixed(&body, a.session);
  PutFixed32(&body, a.replica_set);
  PutFixed64(&body, a.epoch);
  PutFixed64(&body, a.token);
  PutLengthPrefixed(&body, a.source_brick);
  PutFixed64(&body, a.applied_lsn);
  PutFixed64(&body, a.applied_ts_ns);
  PutFixed64(&body, a.crawl_seq);
  PutU8(&body, 1 | 2);  // crawl_done, gap
  PutFixed64(&body, a.applied_ops);
  PutFixed64(&body, a.failures);
  PutFixed64(&body, a.sent_ns);
  EXPECT_EQ(EncodeAck(a), Message(kAckKindByte, 0, static_cast<uint32_t>(body.size()), body));
}

TEST(GeorepFormat, BatchBytesAreTheDocumentedLayout) {
  Batch b = SmallBatch();
  const BatchHeader& h = b.header;
  std::string body;
  PutLengthPrefixed(&body, h.volume_uuid);
  PutLengthPrefixed(&body, h.session);
  PutFixed32(&body, h.replica_set);
  PutFixed64(&body, h.epoch);
  PutFixed64(&body, h.token);
  PutLengthPrefixed(&body, h.source_brick);
  PutFixed64(&body, h.first_lsn);
  PutFixed64(&body, h.last_lsn);
  PutFixed32(&body, h.flags);
  PutLengthPrefixed(&body, h.resume_brick);
  PutFixed64(&body, h.resume_lsn);
  PutFixed64(&body, h.crawl_seq);
  PutFixed64(&body, h.sent_ns);
  PutFixed32(&body, static_cast<uint32_t>(b.items.size()));
  for (const Item& it : b.items) {
    std::string payload;
    changelog::EncodePayload(it.op, &payload);
    PutLengthPrefixed(&body, payload);
    PutFixed64(&body, it.data_offset);
    PutLengthPrefixed(&body, it.data);
    PutU8(&body, (it.last_fragment ? 1 : 0) | (it.gone ? 2 : 0));
  }
  PutFixed32(&body, static_cast<uint32_t>(b.attrs.size()));
  for (const AttrSnapshot& a : b.attrs) {
    body.append(reinterpret_cast<const char*>(a.gfid.bytes.data()), 16);
    PutFixed32(&body, a.mode);
    PutFixed32(&body, a.uid);
    PutFixed32(&body, a.gid);
    PutFixed64(&body, a.size);
    PutFixed64(&body, static_cast<uint64_t>(a.atime_ns));
    PutFixed64(&body, static_cast<uint64_t>(a.mtime_ns));
  }
  const std::string m = EncodeBatch(b, 0);
  EXPECT_EQ(m, Message(kBatchKindByte, 0, static_cast<uint32_t>(body.size()), body));
  EXPECT_EQ(m.size(), EncodedBatchSize(b));
  size_t items = 0;
  for (const Item& it : b.items)
    items += EncodedItemSize(it);
  EXPECT_EQ(EncodedBatchSize(b), EncodedBatchSize(Batch{b.header, {}, b.attrs}) + items);

  // Compressed: the same body in one zstd frame that records its size.
  b.items[1].data = Repetitive(64);
  const std::string z = EncodeBatch(b, 3);
  ASSERT_EQ(z[6], 1);
  std::string_view frame = std::string_view(z).substr(kHeader);
  ASSERT_EQ(ZSTD_getFrameContentSize(frame.data(), frame.size()), DecodeFixed32(z.data() + 12));
  std::string plain(DecodeFixed32(z.data() + 12), '\0');
  ASSERT_EQ(ZSTD_decompress(plain.data(), plain.size(), frame.data(), frame.size()), plain.size());
  EXPECT_EQ(plain, EncodeBatch(b, 0).substr(kHeader));
}

TEST(GeorepFormat, TopicsAndKeys) {
  EXPECT_EQ(BatchTopic("pvol-dr"), "drfs.pvol-dr");
  EXPECT_EQ(AckTopic("pvol-dr"), "drfs.pvol-dr.acks");
  EXPECT_EQ(BatchTopic("pvol-dr", 1), "drfs.pvol-dr");
  EXPECT_EQ(BatchTopic("pvol-dr", 3), "drfs.pvol-dr.e3");
  EXPECT_EQ(AckTopic("pvol-dr", 3), "drfs.pvol-dr.e3.acks");
  EXPECT_EQ(PartitionKey(0), "rs0");
  EXPECT_EQ(PartitionKey(12), "rs12");
}

// ---- Damage. ----

TEST(GeorepFormat, EverySingleByteCorruptionIsRefused) {
  Batch b = SmallBatch();
  Ack a = FullAck();
  const std::string batch_z = EncodeBatch(b, 3);
  ASSERT_EQ(batch_z[6], 1) << "the small batch should compress";
  const Batch sentinel = FullBatch();
  for (const std::string& m : {EncodeBatch(b, 0), batch_z}) {
    Batch ok;
    ASSERT_TRUE(DecodeBatch(m, &ok).ok());
    for (size_t i = 0; i < m.size(); ++i) {
      for (uint8_t x : {0x01, 0x80, 0xff}) {
        std::string bad = m;
        bad[i] = static_cast<char>(bad[i] ^ x);
        Batch got = sentinel;
        Status s = DecodeBatch(bad, &got);
        ASSERT_TRUE(Refused(s)) << "byte " << i << " ^ " << int{x} << ": " << s.ToString();
        ASSERT_EQ(got, sentinel) << "a refused decode changed its output";
        // Past magic and version, everything is under the CRC.
        if (i >= 5) {
          EXPECT_EQ(s.code(), Code::kDataLoss) << "byte " << i << ": " << s.ToString();
        }
      }
    }
  }
  const std::string ack = EncodeAck(a);
  for (size_t i = 0; i < ack.size(); ++i) {
    std::string bad = ack;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    Ack got;
    Status s = DecodeAck(bad, &got);
    ASSERT_TRUE(Refused(s)) << "byte " << i << ": " << s.ToString();
    ASSERT_EQ(got, Ack{});
  }
}

TEST(GeorepFormat, CorruptionReportsTheCrcMismatch) {
  std::string m = EncodeBatch(SmallBatch(), 0);
  m[m.size() / 2] ^= 0x04;
  Batch got;
  Status s = DecodeBatch(m, &got);
  EXPECT_EQ(s.code(), Code::kDataLoss);
  EXPECT_NE(s.message().find("georep batch: CRC mismatch (stored 0x"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("the message is corrupt"), std::string::npos) << s.message();
}

TEST(GeorepFormat, EveryTruncationAndExtensionIsRefused) {
  for (int level : {0, 3}) {
    const std::string m = EncodeBatch(SmallBatch(), level);
    for (size_t n = 0; n < m.size(); ++n) {
      Batch got;
      Status s = DecodeBatch(std::string_view(m).substr(0, n), &got);
      ASSERT_TRUE(Refused(s)) << n << " of " << m.size() << " bytes: " << s.ToString();
      EXPECT_EQ(UncompressedSize(std::string_view(m).substr(0, n)), 0u);
    }
    Batch got;
    EXPECT_EQ(DecodeBatch(m + '\0', &got).code(), Code::kDataLoss);
  }
  const std::string ack = EncodeAck(FullAck());
  for (size_t n = 0; n < ack.size(); ++n) {
    Ack got;
    ASSERT_TRUE(Refused(DecodeAck(std::string_view(ack).substr(0, n), &got))) << n;
  }
}

TEST(GeorepFormat, TrailingAndHostileCountsInsideAnIntactMessageAreRefused) {
  Batch b;
  b.header.session = "s";
  const std::string m = EncodeBatch(b, 0);  // the body ends with item count 0, attr count 0
  Batch got;

  std::string trailing = m + "x";
  EncodeFixed32(trailing.data() + 12, DecodeFixed32(trailing.data() + 12) + 1);
  Reseal(&trailing);
  Status s = DecodeBatch(trailing, &got);
  EXPECT_EQ(s.code(), Code::kDataLoss);
  EXPECT_NE(s.message().find("trailing"), std::string::npos) << s.message();

  std::string items = m;
  EncodeFixed32(items.data() + items.size() - 8, 0xffffffff);
  Reseal(&items);
  s = DecodeBatch(items, &got);
  EXPECT_EQ(s.code(), Code::kDataLoss);
  EXPECT_NE(s.message().find("item count 4294967295 cannot fit"), std::string::npos) << s.message();

  std::string attrs = m;
  EncodeFixed32(attrs.data() + attrs.size() - 4, 0xffffffff);
  Reseal(&attrs);
  EXPECT_EQ(DecodeBatch(attrs, &got).code(), Code::kDataLoss);

  // The body length in the header disagrees with the uncompressed body.
  std::string len = m;
  EncodeFixed32(len.data() + 12, DecodeFixed32(len.data() + 12) + 1);
  Reseal(&len);
  EXPECT_EQ(DecodeBatch(len, &got).code(), Code::kDataLoss);
}

// A zstd frame header that claims `content_size` bytes, with one empty last block.
std::string ClaimingFrame(uint64_t content_size) {
  std::string f;
  PutFixed32(&f, 0xFD2FB528);  // zstd magic
  PutU8(&f, 0xE0);             // frame header: 8-byte content size, single segment
  PutFixed64(&f, content_size);
  f.append("\x01\x00\x00", 3);  // last block, raw, 0 bytes
  return f;
}

TEST(GeorepFormat, ZstdFrameClaimingFourGiBIsRefusedWithoutAllocating) {
  ASSERT_TRUE(g_hooks_installed);
  const std::string frame = ClaimingFrame(4ull << 30);
  ASSERT_EQ(ZSTD_getFrameContentSize(frame.data(), frame.size()), 4ull << 30);

  for (uint32_t header_claim : {4096u, 0xffffffffu}) {
    const std::string m = Message(kBatchKindByte, 1, header_claim, frame);
    Status s;
    Batch got;
    size_t largest = LargestAllocationDuring([&] { s = DecodeBatch(m, &got); });
    EXPECT_EQ(s.code(), Code::kDataLoss) << s.ToString();
    EXPECT_LT(largest, size_t{1} << 20) << s.ToString();
    EXPECT_EQ(UncompressedSize(m), 0u);
  }
  Batch got;
  Status s = DecodeBatch(Message(kBatchKindByte, 1, 4096, frame), &got);
  EXPECT_NE(s.message().find("zstd frame claims 4294967296 bytes"), std::string::npos)
      << s.message();

  // The tracker does see a body being allocated.
  Batch big;
  big.header.first_lsn = big.header.last_lsn = 1;
  Record w = FullRecord(OpType::kWrite, 1);
  w.lsn = 1;
  w.length = kMaxMessageData;
  big.items.push_back(ItemOf(w, Repetitive(kMaxMessageData)));
  const std::string z = EncodeBatch(big, 1);
  size_t largest = LargestAllocationDuring([&] { ASSERT_TRUE(DecodeBatch(z, &got).ok()); });
  EXPECT_GE(largest, kMaxMessageData);
}

TEST(GeorepFormat, ZstdFramesThatAreNotExactlyOneSizedFrameAreRefused) {
  Batch b = SmallBatch();
  const std::string good = EncodeBatch(b, 3);
  ASSERT_EQ(good[6], 1);
  const std::string frame = good.substr(kHeader);
  const uint32_t body_len = DecodeFixed32(good.data() + 12);
  Batch got;
  // Two frames back to back, and a frame then garbage.
  EXPECT_EQ(DecodeBatch(Message(kBatchKindByte, 1, body_len, frame + frame), &got).code(),
            Code::kDataLoss);
  EXPECT_EQ(DecodeBatch(Message(kBatchKindByte, 1, body_len, frame + "zz"), &got).code(),
            Code::kDataLoss);
  // A frame whose header does not record its content size.
  std::string unsized;
  PutFixed32(&unsized, 0xFD2FB528);
  PutU8(&unsized, 0x00);  // no content size, window descriptor follows
  PutU8(&unsized, 0x00);  // window 1 KiB
  unsized.append("\x01\x00\x00", 3);
  Status s = DecodeBatch(Message(kBatchKindByte, 1, 0, unsized), &got);
  EXPECT_EQ(s.code(), Code::kDataLoss);
  EXPECT_NE(s.message().find("content size"), std::string::npos) << s.message();
  // Bytes that are no zstd frame at all, marked compressed.
  EXPECT_EQ(
      DecodeBatch(Message(kBatchKindByte, 1, body_len, good.substr(kHeader + 4)), &got).code(),
      Code::kDataLoss);
  // A frame that claims the right size but whose blocks hold less.
  EXPECT_EQ(DecodeBatch(Message(kBatchKindByte, 1, 4096, ClaimingFrame(4096)), &got).code(),
            Code::kDataLoss);
}

// ---- Versions, kinds, compression, flags. ----

TEST(GeorepFormat, NewerVersionSaysToUpgrade) {
  std::string batch = EncodeBatch(SmallBatch(), 0);
  batch[4] = 7;
  Reseal(&batch);
  Batch got;
  Status s = DecodeBatch(batch, &got);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "georep batch: format version 7 is newer than this drfs (1); upgrade the secondary");
  // Known before the rest of the header arrives: a newer version may lay it out differently.
  EXPECT_EQ(DecodeBatch(batch.substr(0, 5), &got).code(), Code::kInvalidArgument);

  std::string ack = EncodeAck(FullAck());
  ack[4] = 2;
  Ack a;
  s = DecodeAck(ack, &a);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "georep ack: format version 2 is newer than this drfs (1); upgrade the primary");

  batch[4] = 0;
  Reseal(&batch);
  EXPECT_EQ(DecodeBatch(batch, &got).code(), Code::kDataLoss);  // never written by any drfs
}

TEST(GeorepFormat, MisroutedMessagesAreRefused) {
  Batch b;
  Ack a;
  Status s = DecodeBatch(EncodeAck(FullAck()), &b);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("this message is an ack, not a batch"), std::string::npos)
      << s.message();
  s = DecodeAck(EncodeBatch(SmallBatch(), 0), &a);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("this message is a batch, not an ack"), std::string::npos)
      << s.message();
  s = DecodeAck(EncodeBatch(SmallBatch(), 3), &a);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(UncompressedSize(EncodeAck(FullAck())), 0u);

  // Something else entirely on the topic.
  s = DecodeBatch("{\"hello\": \"kafka\"}", &b);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("not a drfs geo-replication message"), std::string::npos)
      << s.message();
  EXPECT_EQ(DecodeBatch("", &b).code(), Code::kDataLoss);
}

TEST(GeorepFormat, UnknownKindCompressionAndFlagsAreInvalidArgument) {
  const std::string m = EncodeBatch(SmallBatch(), 0);
  Batch got;
  auto patched = [&](size_t at, uint8_t v) {
    std::string p = m;
    p[at] = static_cast<char>(v);
    Reseal(&p);
    return DecodeBatch(p, &got);
  };
  Status s = patched(5, 3);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("message kind 3 is unknown"), std::string::npos) << s.message();
  s = patched(6, 2);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("compression 2 is unknown"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("upgrade the secondary"), std::string::npos) << s.message();
  EXPECT_EQ(patched(7, 1).code(), Code::kInvalidArgument);

  Batch flagged = SmallBatch();
  flagged.header.flags |= 1u << 9;
  EXPECT_FALSE(ValidateBatch(flagged).ok());
  s = DecodeBatch(EncodeBatch(flagged, 3), &got);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("batch flags 0x00000200"), std::string::npos) << s.message();

  // Item flags: the last byte of the first item, found from the documented layout.
  Batch one;
  one.header.first_lsn = one.header.last_lsn = 7;
  Record c = FullRecord(OpType::kCreate, 7);
  c.lsn = 7;
  one.items.push_back(ItemOf(c));
  std::string im = EncodeBatch(one, 0);
  const size_t flags_at = im.size() - 4 /* attr count */ - 1;
  ASSERT_EQ(im[flags_at], 1);
  im[flags_at] = static_cast<char>(1 | 0x40);
  Reseal(&im);
  EXPECT_EQ(DecodeBatch(im, &got).code(), Code::kInvalidArgument);

  std::string ack = EncodeAck(FullAck());
  ack[ack.size() - 25] = static_cast<char>(0x07);  // ack flags: crawl_done, gap, and bit 2
  Reseal(&ack);
  Ack a;
  EXPECT_EQ(DecodeAck(ack, &a).code(), Code::kInvalidArgument);
  std::string zack = EncodeAck(FullAck());
  zack[6] = 1;
  Reseal(&zack);
  EXPECT_EQ(DecodeAck(zack, &a).code(), Code::kInvalidArgument);
}

// ---- Batches that are well-formed bytes but say something impossible. ----

TEST(GeorepFormat, InvalidBatchesAreRefusedOnBothSides) {
  struct Case {
    const char* what;
    std::function<void(Batch*)> spoil;
  };
  const std::vector<Case> cases = {
      {"record that fails ValidateRecord", [](Batch* b) { b->items[0].op.name = ""; }},
      {"data on a CREATE", [](Batch* b) { b->items[0].data = "x"; }},
      {"data on a gone WRITE", [](Batch* b) { b->items[1].gone = true; }},
      {"a SETXATTR fragment", [](Batch* b) { b->items[2].last_fragment = false; }},
      {"a data offset on a CREATE", [](Batch* b) { b->items[0].data_offset = 1; }},
      {"WRITE data past its length", [](Batch* b) { b->items[1].data += "!"; }},
      {"WRITE data offset past its length", [](Batch* b) { b->items[1].data_offset = 1; }},
      {"more than 1 MiB of data",
       [](Batch* b) {
         b->items[1].op.length = kMaxMessageData;  // and the SETXATTR's value on top
         b->items[1].data = Repetitive(kMaxMessageData);
       }},
      {"first LSN after last", [](Batch* b) { b->header.first_lsn = 10; }},
      {"null attr gfid", [](Batch* b) { b->attrs[0].gfid = Gfid{}; }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Batch b = SmallBatch();
    c.spoil(&b);
    Status v = ValidateBatch(b);
    EXPECT_EQ(v.code(), Code::kInvalidArgument) << v.ToString();
    Batch got;
    Status s = DecodeBatch(EncodeBatch(b, 3), &got);
    EXPECT_EQ(s.code(), Code::kDataLoss) << s.ToString();
    EXPECT_NE(s.message().find("the sender wrote an invalid batch"), std::string::npos)
        << s.message();
  }
}

TEST(GeorepFormat, OverlongIdsAreRefused) {
  Batch b = SmallBatch();
  b.header.source_brick = std::string(4097, 'b');
  Status v = ValidateBatch(b);
  EXPECT_EQ(v.code(), Code::kInvalidArgument);
  EXPECT_EQ(v.message(), "source brick is 4097 bytes, over the limit of 4096");
  Batch got;
  EXPECT_EQ(DecodeBatch(EncodeBatch(b, 0), &got).code(), Code::kDataLoss);
  Ack a = FullAck();
  a.session = std::string(5000, 's');
  Ack got_ack;
  EXPECT_EQ(DecodeAck(EncodeAck(a), &got_ack).code(), Code::kDataLoss);
}

TEST(GeorepFormat, OversizedBatchFailsValidationAndDecode) {
  Batch b;
  b.header.first_lsn = 1;
  for (uint64_t i = 1, size = EncodedBatchSize(b); size <= kMaxMessageBytes; ++i) {
    Record r = FullRecord(OpType::kSymlink, i);
    r.lsn = i;
    r.name = std::string(200, 'n') + std::to_string(i);
    r.symlink_target = std::string(4000, 't');
    b.items.push_back(ItemOf(r));
    b.header.last_lsn = i;
    size += EncodedItemSize(b.items.back());
  }
  EXPECT_GT(EncodedBatchSize(b), kMaxMessageBytes);
  Status v = ValidateBatch(b);
  EXPECT_EQ(v.code(), Code::kInvalidArgument);
  EXPECT_NE(v.message().find("split it"), std::string::npos) << v.message();
  b.items.pop_back();
  b.header.last_lsn--;
  EXPECT_TRUE(ValidateBatch(b).ok()) << ValidateBatch(b).ToString();

  Batch over = b;
  Record r = FullRecord(OpType::kSymlink, 999'999);
  r.lsn = over.header.last_lsn;
  r.symlink_target = std::string(4000, 't');
  over.items.push_back(ItemOf(r));
  Batch got;
  EXPECT_EQ(DecodeBatch(EncodeBatch(over, 0), &got).code(), Code::kDataLoss);
  EXPECT_EQ(DecodeBatch(EncodeBatch(over, 3), &got).code(), Code::kDataLoss);
  ASSERT_TRUE(DecodeBatch(EncodeBatch(b, 3), &got).ok());
  EXPECT_EQ(got, b);
}

}  // namespace
}  // namespace drfs::georep
