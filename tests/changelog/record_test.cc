#include "changelog/record.h"

#include <gtest/gtest.h>

#include "changelog/format.h"
#include "tests/changelog/test_records.h"

namespace drfs::changelog {
namespace {

using testing::FullRecord;

TEST(Record, EveryOpRoundTripsWithEveryField) {
  for (OpType op : kAllOpTypes) {
    for (uint64_t i = 1; i < 4; ++i) {
      Record r = FullRecord(op, i);
      r.lsn = 1000 + i;
      ASSERT_TRUE(ValidateRecord(r).ok()) << OpTypeName(op) << ": " << ValidateRecord(r).ToString();
      std::string payload;
      EncodePayload(r, &payload);
      Record back;
      ASSERT_TRUE(DecodePayload(payload, &back)) << OpTypeName(op);
      EXPECT_EQ(back, r) << OpTypeName(op);
    }
  }
}

TEST(Record, EveryTruncationAndTrailingByteIsRejected) {
  for (OpType op : kAllOpTypes) {
    Record r = FullRecord(op, 5);
    std::string payload;
    EncodePayload(r, &payload);
    Record back;
    for (size_t n = 0; n < payload.size(); ++n) {
      EXPECT_FALSE(DecodePayload(std::string_view(payload).substr(0, n), &back))
          << OpTypeName(op) << " cut at " << n;
    }
    EXPECT_FALSE(DecodePayload(payload + "x", &back)) << OpTypeName(op);
  }
}

TEST(Record, OpNamesParseBack) {
  for (OpType op : kAllOpTypes) EXPECT_EQ(ParseOpType(OpTypeName(op)), op);
  EXPECT_EQ(ParseOpType("rename"), OpType::kRename);
  EXPECT_FALSE(ParseOpType("DELETE").has_value());
}

TEST(Record, ValidationNamesWhatIsWrong) {
  Record r = FullRecord(OpType::kCreate, 1);
  r.name = "a/b";
  EXPECT_EQ(ValidateRecord(r).code(), Code::kInvalidArgument);
  EXPECT_NE(ValidateRecord(r).message().find("a/b"), std::string::npos);
  r.name = "..";
  EXPECT_FALSE(ValidateRecord(r).ok());
  r.name = std::string(256, 'x');
  EXPECT_FALSE(ValidateRecord(r).ok());
  r.name = std::string(255, 'x');
  EXPECT_TRUE(ValidateRecord(r).ok());
  r.parent = Gfid::Null();
  EXPECT_FALSE(ValidateRecord(r).ok());

  Record s = FullRecord(OpType::kSymlink, 1);
  s.symlink_target.clear();
  EXPECT_FALSE(ValidateRecord(s).ok());
  Record a = FullRecord(OpType::kSetattr, 1);
  a.setattr_valid = 0;
  EXPECT_FALSE(ValidateRecord(a).ok());
  a.setattr_valid = 1u << 9;
  EXPECT_FALSE(ValidateRecord(a).ok());
  Record w = FullRecord(OpType::kWrite, 1);
  w.gfid = Gfid::Null();
  EXPECT_FALSE(ValidateRecord(w).ok());
}

TEST(Format, SegmentHeaderRoundTripsAndDetectsDamage) {
  SegmentHeader h;
  h.brick_id = Gfid::Random();
  h.epoch = 3;
  h.first_lsn = 42;
  h.created_ns = 99;
  std::string enc = EncodeSegmentHeader(h);
  ASSERT_EQ(enc.size(), kSegmentHeaderSize);
  SegmentHeader back;
  std::string why;
  ASSERT_TRUE(DecodeSegmentHeader(enc, &back, &why)) << why;
  EXPECT_EQ(back.brick_id, h.brick_id);
  EXPECT_EQ(back.epoch, 3u);
  EXPECT_EQ(back.first_lsn, 42u);
  for (size_t i = 0; i < enc.size(); ++i) {
    std::string bad = enc;
    bad[i] ^= 0x10;
    EXPECT_FALSE(DecodeSegmentHeader(bad, &back, &why)) << "flip at " << i;
    EXPECT_FALSE(why.empty());
  }
}

TEST(Format, SegmentFileNames) {
  EXPECT_EQ(SegmentFileName(42), "00000000000000000042.clog");
  EXPECT_EQ(ParseSegmentFileName("00000000000000000042.clog"), 42u);
  EXPECT_FALSE(ParseSegmentFileName("00000000000000000042.clog.tmp"));
  EXPECT_FALSE(ParseSegmentFileName("0000000000000000004x.clog"));
  EXPECT_FALSE(ParseSegmentFileName("00000000000000000000.clog"));
  EXPECT_FALSE(ParseSegmentFileName("99999999999999999999.clog"));  // overflows u64
}

}  // namespace
}  // namespace drfs::changelog
