#include "common/wire.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "common/coding.h"
#include "common/crc32c.h"
#include "tests/common/test_util.h"

namespace drfs {
namespace {

Frame MakeFrame(uint64_t id, size_t payload_size, uint8_t kind = kFrameRequest) {
  Frame f;
  f.kind = kind;
  f.op = static_cast<uint16_t>(id * 7 + 1);
  f.id = id;
  for (size_t i = 0; i < payload_size; ++i)
    f.payload.push_back(static_cast<char>(i * 31 + id));
  return f;
}

// Recomputes the header checksum after a test edits header fields, so that the field check
// (not the checksum) is what rejects the frame.
void FixHeaderCrc(std::string* bytes) {
  EncodeFixed32(bytes->data() + 28, crc32c::Mask(crc32c::Value(bytes->data(), 28)));
}

Status DecodeAll(const std::string& bytes, std::vector<Frame>* out,
                 size_t max_payload = kDefaultMaxPayload) {
  FrameDecoder d(max_payload);
  return d.Feed(bytes, out);
}

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(Wire, HeaderLayoutIsAsDocumented) {
  Frame f = MakeFrame(0x0102030405060708ull, 5, kFrameReply);
  f.op = 0xabcd;
  std::string b = EncodeFrame(f);
  ASSERT_EQ(b.size(), kFrameHeaderSize + 5);
  EXPECT_EQ(b.substr(0, 4), "DRFS");
  EXPECT_EQ(b[4], 1);
  EXPECT_EQ(b[5], 0);
  EXPECT_EQ(b[6], 2);
  EXPECT_EQ(b[7], 0);
  EXPECT_EQ(static_cast<uint8_t>(b[8]), 0xcd);
  EXPECT_EQ(static_cast<uint8_t>(b[9]), 0xab);
  EXPECT_EQ(DecodeFixed64(b.data() + 12), 0x0102030405060708ull);
  EXPECT_EQ(DecodeFixed32(b.data() + 20), 5u);
  EXPECT_EQ(crc32c::Unmask(DecodeFixed32(b.data() + 24)), crc32c::Value(f.payload));
  EXPECT_EQ(crc32c::Unmask(DecodeFixed32(b.data() + 28)), crc32c::Value(b.data(), 28));
}

TEST(Wire, RoundTripsEmptySmallAndLargePayloads) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{100}, size_t{1} << 20}) {
    Frame f = MakeFrame(42, size, kFrameReply);
    std::vector<Frame> out;
    ASSERT_OK(DecodeAll(EncodeFrame(f), &out));
    ASSERT_EQ(out.size(), 1u) << size;
    EXPECT_EQ(out[0], f) << size;
  }
}

TEST(Wire, ManyFramesInOneBuffer) {
  std::string all;
  std::vector<Frame> want;
  for (uint64_t i = 0; i < 100; ++i) {
    want.push_back(MakeFrame(i, i * 13 % 257));
    AppendFrame(want.back(), &all);
  }
  std::vector<Frame> got;
  ASSERT_OK(DecodeAll(all, &got));
  EXPECT_EQ(got, want);
}

TEST(Wire, FrameSplitByteByByteAndAtRandomPoints) {
  std::string all;
  std::vector<Frame> want;
  std::set<size_t> boundaries;
  for (uint64_t i = 0; i < 5; ++i) {
    want.push_back(MakeFrame(i, 40 * i));
    AppendFrame(want.back(), &all);
    boundaries.insert(all.size());
  }
  {
    FrameDecoder d;
    std::vector<Frame> got;
    for (size_t i = 0; i < all.size(); ++i) {
      ASSERT_OK(d.Feed(std::string_view(all).substr(i, 1), &got));
      EXPECT_EQ(d.mid_frame(), boundaries.count(i + 1) == 0) << i;
    }
    EXPECT_EQ(got, want);
    EXPECT_FALSE(d.mid_frame());
  }
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    FrameDecoder d;
    std::vector<Frame> got;
    size_t pos = 0;
    while (pos < all.size()) {
      size_t n = std::uniform_int_distribution<size_t>(0, 70)(rng);
      n = std::min(n, all.size() - pos);
      ASSERT_OK(d.Feed(std::string_view(all).substr(pos, n), &got));
      pos += n;
    }
    EXPECT_EQ(got, want);
  }
}

TEST(Wire, ReportsPartialFrameProgress) {
  std::string b = EncodeFrame(MakeFrame(1, 100));
  FrameDecoder d;
  std::vector<Frame> got;
  ASSERT_OK(d.Feed(std::string_view(b).substr(0, 10), &got));
  EXPECT_TRUE(d.mid_frame());
  EXPECT_EQ(d.partial_bytes(), 10u);
  EXPECT_EQ(d.expected_bytes(), 0u);
  ASSERT_OK(d.Feed(std::string_view(b).substr(10, 40), &got));
  EXPECT_EQ(d.partial_bytes(), 50u);
  EXPECT_EQ(d.expected_bytes(), b.size());
  EXPECT_TRUE(got.empty());
}

TEST(Wire, RejectsBadMagic) {
  std::string b = EncodeFrame(MakeFrame(1, 10));
  b[0] = 'X';
  std::vector<Frame> out;
  Status s = DecodeAll(b, &out);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "bad frame magic \"XRFS\"")) << s.message();
  EXPECT_TRUE(out.empty());
  // Plain text (an HTTP request, say) is named as such, not as a checksum problem.
  s = DecodeAll("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &out);
  EXPECT_TRUE(Contains(s.message(), "bad frame magic \"GET \"")) << s.message();
}

TEST(Wire, RejectsUnsupportedVersion) {
  std::string b = EncodeFrame(MakeFrame(1, 10));
  b[4] = 2;
  FixHeaderCrc(&b);
  std::vector<Frame> out;
  Status s = DecodeAll(b, &out);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "unsupported frame version 2")) << s.message();
  // Version is checked before the checksum: a newer peer gets the version message even if
  // its header layout (and so its checksum position) changed.
  b[28] ^= 1;
  s = DecodeAll(b, &out);
  EXPECT_TRUE(Contains(s.message(), "unsupported frame version 2")) << s.message();
}

TEST(Wire, RejectsHeaderChecksumMismatchAtEveryHeaderByte) {
  const std::string good = EncodeFrame(MakeFrame(9, 10));
  for (size_t i = 6; i < kFrameHeaderSize; ++i) {  // bytes 0-5 are magic and version
    std::string b = good;
    b[i] ^= 0x10;
    std::vector<Frame> out;
    Status s = DecodeAll(b, &out);
    EXPECT_EQ(s.code(), Code::kDataLoss) << "byte " << i << ": " << s.ToString();
    EXPECT_TRUE(Contains(s.message(), "frame header checksum mismatch")) << s.message();
    EXPECT_TRUE(out.empty());
  }
}

TEST(Wire, RejectsUnknownKindAndFlags) {
  std::vector<Frame> out;
  std::string b = EncodeFrame(MakeFrame(1, 3));
  b[6] = 3;
  FixHeaderCrc(&b);
  Status s = DecodeAll(b, &out);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "unknown frame kind 3")) << s.message();
  b = EncodeFrame(MakeFrame(1, 3));
  b[7] = 1;
  FixHeaderCrc(&b);
  s = DecodeAll(b, &out);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "unsupported frame flags")) << s.message();
}

TEST(Wire, RejectsPayloadChecksumMismatchAtEveryPayloadByte) {
  const Frame f = MakeFrame(77, 20);
  const std::string good = EncodeFrame(f);
  for (size_t i = kFrameHeaderSize; i < good.size(); ++i) {
    std::string b = good;
    b[i] ^= 0x01;
    std::vector<Frame> out;
    Status s = DecodeAll(b, &out);
    EXPECT_EQ(s.code(), Code::kDataLoss);
    EXPECT_TRUE(Contains(s.message(), "frame payload checksum mismatch for request id 77"))
        << s.message();
    EXPECT_TRUE(out.empty());
  }
}

TEST(Wire, RejectsOversizedLengthFromTheHeaderAlone) {
  Frame f = MakeFrame(1, 0);
  std::string header = EncodeFrame(f);
  EncodeFixed32(header.data() + 20, 4096);
  FixHeaderCrc(&header);
  FrameDecoder d(/*max_payload=*/1024);
  std::vector<Frame> out;
  // All but the last header byte: nothing to judge yet.
  ASSERT_OK(d.Feed(std::string_view(header).substr(0, kFrameHeaderSize - 1), &out));
  // The last header byte, and no payload at all: refused now.
  Status s = d.Feed(std::string_view(header).substr(kFrameHeaderSize - 1), &out);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "oversized frame: payload length 4096 > max 1024"))
      << s.message();
  // The error is final.
  EXPECT_EQ(d.Feed(EncodeFrame(MakeFrame(2, 1)), &out).message(), s.message());
  EXPECT_TRUE(out.empty());

  // The default limit is 8 MiB; a 4 GiB claim is refused without allocating it.
  EncodeFixed32(header.data() + 20, 0xffffffffu);
  FixHeaderCrc(&header);
  s = DecodeAll(header, &out);
  EXPECT_TRUE(Contains(s.message(), "payload length 4294967295 > max 8388608")) << s.message();

  // Exactly the maximum is fine.
  std::vector<Frame> ok;
  ASSERT_OK(DecodeAll(EncodeFrame(MakeFrame(3, 1024)), &ok, 1024));
  EXPECT_EQ(ok.size(), 1u);
}

TEST(Wire, FramesBeforeACorruptOneAreDelivered) {
  std::string b = EncodeFrame(MakeFrame(1, 5)) + EncodeFrame(MakeFrame(2, 5));
  b[kFrameHeaderSize + 5 + 1] = 'Z';  // magic of the second frame
  std::vector<Frame> out;
  Status s = DecodeAll(b, &out);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].id, 1u);
}

}  // namespace
}  // namespace drfs
