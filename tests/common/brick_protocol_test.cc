#include "common/brick_protocol.h"

#include <gtest/gtest.h>

#include "common/coding.h"

namespace drfs::brick_proto {
namespace {

Gfid G(uint8_t b) {
  Gfid g;
  g.bytes.fill(b);
  return g;
}

// A request of `op` with every field set: only the op's own fields must survive a round trip.
Request Full(Op op) {
  Request r;
  r.op = op;
  r.gfid = G(1);
  r.parent = G(2);
  r.name = "entry-name";
  r.new_parent = G(3);
  r.new_name = "new-name";
  r.mode = 0100644;
  r.uid = 1000;
  r.gid = 1001;
  r.rdev = 0x0801;
  r.flags = 3;
  r.target = "../some/target";
  r.offset = 4096;
  r.length = 8192;
  r.data = std::string(5000, 'd');
  r.attr_valid = kAttrMode | kAttrSize | kAttrMtimeNow;
  r.size = 12345;
  r.atime_ns = -5;
  r.mtime_ns = 1'700'000'000'000'000'000;
  r.xattr_name = "user.x";
  r.xattr_value = std::string("v\0v", 3);
  r.lock_owner = 0xfeedfacecafebeefull;
  r.pending = {1, -1, 0, 7, -2147483647 - 1, 2147483647};
  return r;
}

TEST(BrickProtocol, EveryRequestRoundTripsItsOwnFields) {
  for (uint16_t o = 1; o <= kMaxOp; ++o) {
    Op op = static_cast<Op>(o);
    Request r = Full(op);
    std::string enc;
    EncodeRequest(r, &enc);
    Request back;
    ASSERT_TRUE(DecodeRequest(op, enc, &back).ok()) << OpName(op);
    // Re-encoding what was decoded gives the same bytes: nothing the op uses was dropped.
    std::string again;
    EncodeRequest(back, &again);
    EXPECT_EQ(enc, again) << OpName(op);
    EXPECT_EQ(back.op, op);
  }
  Request w = Full(Op::kWrite);
  std::string enc;
  EncodeRequest(w, &enc);
  Request back;
  ASSERT_TRUE(DecodeRequest(Op::kWrite, enc, &back).ok());
  EXPECT_EQ(back.gfid, w.gfid);
  EXPECT_EQ(back.offset, 4096u);
  EXPECT_EQ(back.data, w.data);
  EXPECT_TRUE(back.name.empty()) << "WRITE carries no name";
}

TEST(BrickProtocol, TruncatedOrPaddedRequestsAreRejected) {
  for (uint16_t o = 1; o <= kMaxOp; ++o) {
    Op op = static_cast<Op>(o);
    std::string enc;
    EncodeRequest(Full(op), &enc);
    Request back;
    // HELLO's applier secret is optional and last: cut just before it, it is a hello without.
    size_t without_secret = 0;
    if (op == Op::kHello) {
      Request plain = Full(op);
      plain.xattr_value.clear();
      std::string penc;
      EncodeRequest(plain, &penc);
      without_secret = penc.size();
    }
    for (size_t n = 0; n < enc.size(); n += (enc.size() > 200 ? 97 : 1)) {
      Status s = DecodeRequest(op, std::string_view(enc).substr(0, n), &back);
      if (op == Op::kHello && n == without_secret) {
        EXPECT_TRUE(s.ok()) << s.ToString();
        EXPECT_TRUE(back.xattr_value.empty());
        continue;
      }
      EXPECT_EQ(s.code(), Code::kInvalidArgument) << OpName(op) << " cut at " << n;
    }
    Status s = DecodeRequest(op, enc + "z", &back);
    EXPECT_NE(s.message().find("trailing"), std::string::npos) << OpName(op);
  }
  Request back;
  EXPECT_FALSE(DecodeRequest(static_cast<Op>(0), "", &back).ok());
  EXPECT_FALSE(DecodeRequest(static_cast<Op>(kMaxOp + 1), "", &back).ok());
}

TEST(BrickProtocol, HelloCarriesTheApplierSecretOnlyWhenSet) {
  Request h;
  h.op = Op::kHello;
  h.name = "drfs-client";
  h.flags = kProtocolVersion;
  std::string plain;
  EncodeRequest(h, &plain);
  // Without a secret the layout is what it always was: flags, name.
  std::string expect;
  PutFixed32(&expect, kProtocolVersion);
  PutLengthPrefixed(&expect, "drfs-client");
  EXPECT_EQ(plain, expect);
  h.xattr_value = "s3cret";
  std::string with;
  EncodeRequest(h, &with);
  PutLengthPrefixed(&expect, "s3cret");
  EXPECT_EQ(with, expect);
  Request back;
  ASSERT_TRUE(DecodeRequest(Op::kHello, with, &back).ok());
  EXPECT_EQ(back.xattr_value, "s3cret");
  EXPECT_EQ(back.name, "drfs-client");
  ASSERT_TRUE(DecodeRequest(Op::kHello, plain, &back).ok());
  EXPECT_TRUE(back.xattr_value.empty());
}

TEST(BrickProtocol, RepliesRoundTrip) {
  Reply r;
  r.attr.gfid = G(9);
  r.attr.mode = 040755;
  r.attr.nlink = 2;
  r.attr.size = 4096;
  r.attr.mtime_ns = 77;
  r.data = "payload";
  r.names = {"user.a", "user.b"};
  DirEntry e;
  e.name = "x";
  e.gfid = G(4);
  e.type = 4;
  e.cookie = 99;
  e.has_attr = true;
  e.attr = r.attr;
  r.entries = {e, DirEntry{"y", G(5), 8, 100, false, {}}};
  r.eof = true;
  r.statfs = {4096, 4096, 100, 50, 40, 1000, 900, 900, 255};
  r.count = 5000;
  r.lsn = 42;
  r.pending = {0, 3, -4};
  for (uint16_t o = 1; o <= kMaxOp; ++o) {
    Op op = static_cast<Op>(o);
    std::string enc;
    EncodeReply(op, r, &enc);
    Reply back;
    ASSERT_TRUE(DecodeReply(op, enc, &back).ok()) << OpName(op);
    std::string again;
    EncodeReply(op, back, &again);
    EXPECT_EQ(enc, again) << OpName(op);
  }
  std::string enc;
  EncodeReply(Op::kReaddir, r, &enc);
  Reply back;
  ASSERT_TRUE(DecodeReply(Op::kReaddir, enc, &back).ok());
  EXPECT_EQ(back.entries, r.entries);
  EXPECT_TRUE(back.eof);

  Reply err = ErrorReply(ENOTEMPTY, "rmdir docs: directory not empty");
  enc.clear();
  EncodeReply(Op::kRmdir, err, &enc);
  ASSERT_TRUE(DecodeReply(Op::kRmdir, enc, &back).ok());
  EXPECT_EQ(back.err, ENOTEMPTY);
  EXPECT_EQ(back.message, err.message);
  EXPECT_EQ(ReplyStatus(back).sys_errno(), ENOTEMPTY);
}

TEST(BrickProtocol, LockAndMarkerRequestsCarryExactlyTheirFields) {
  const Request full = Full(Op::kInodelk);
  auto round_trip = [&](Op op) {
    Request r = full;
    r.op = op;
    std::string enc;
    EncodeRequest(r, &enc);
    Request back;
    EXPECT_TRUE(DecodeRequest(op, enc, &back).ok()) << OpName(op);
    return back;
  };
  Request in = round_trip(Op::kInodelk);
  EXPECT_EQ(in.gfid, full.gfid);
  EXPECT_EQ(in.flags, full.flags);
  EXPECT_EQ(in.lock_owner, full.lock_owner);
  EXPECT_EQ(in.pending, full.pending);
  EXPECT_TRUE(in.name.empty());
  EXPECT_TRUE(in.parent.is_null());

  Request en = round_trip(Op::kEntrylk);
  EXPECT_TRUE(en.gfid.is_null()) << "ENTRYLK names entries, not a gfid";
  EXPECT_EQ(en.parent, full.parent);
  EXPECT_EQ(en.name, full.name);
  EXPECT_EQ(en.new_parent, full.new_parent);
  EXPECT_EQ(en.new_name, full.new_name);
  EXPECT_EQ(en.flags, full.flags);
  EXPECT_EQ(en.lock_owner, full.lock_owner);
  EXPECT_EQ(en.pending, full.pending);

  Request xo = round_trip(Op::kXattrop);
  EXPECT_EQ(xo.gfid, full.gfid);
  EXPECT_EQ(xo.pending, full.pending);
  EXPECT_EQ(xo.flags, 0u);
  EXPECT_EQ(xo.lock_owner, 0u);

  Request hi = round_trip(Op::kHealIndex);
  EXPECT_EQ(hi.offset, full.offset);
  EXPECT_EQ(hi.length, full.length);
  EXPECT_TRUE(hi.gfid.is_null());
  EXPECT_TRUE(hi.pending.empty());

  // Ops that do not carry pending deltas drop them; an empty vector round-trips as empty.
  EXPECT_TRUE(round_trip(Op::kGetattr).pending.empty());
  Request none = full;
  none.pending.clear();
  std::string enc;
  EncodeRequest(none, &enc);
  Request back;
  ASSERT_TRUE(DecodeRequest(Op::kInodelk, enc, &back).ok());
  EXPECT_TRUE(back.pending.empty());

  EXPECT_EQ(ParseOpName("heal_index"), Op::kHealIndex);
  EXPECT_EQ(ParseOpName("INODELK"), Op::kInodelk);
  EXPECT_EQ(ParseOpName("entrylk"), Op::kEntrylk);
  EXPECT_EQ(ParseOpName("XattrOp"), Op::kXattrop);
}

TEST(BrickProtocol, MarkersTravelInLookupAndLockReplies) {
  Reply r;
  r.attr.gfid = G(7);
  r.pending = {0, 0, 0, 1, 0, 0};
  for (Op op :
       {Op::kLookup, Op::kGetattr, Op::kLookupGfid, Op::kXattrop, Op::kInodelk, Op::kEntrylk}) {
    std::string enc;
    EncodeReply(op, r, &enc);
    Reply back;
    ASSERT_TRUE(DecodeReply(op, enc, &back).ok()) << OpName(op);
    EXPECT_EQ(back.pending, r.pending) << OpName(op);
  }
  for (Op op : {Op::kSetattr, Op::kRead, Op::kReaddir, Op::kHealIndex}) {
    std::string enc;
    EncodeReply(op, r, &enc);
    Reply back;
    ASSERT_TRUE(DecodeReply(op, enc, &back).ok()) << OpName(op);
    EXPECT_TRUE(back.pending.empty()) << OpName(op) << " carries no markers";
  }
  // HEAL_INDEX: entries (gfid, its text as the name, type 0, cookie) and eof.
  Reply h;
  for (uint8_t i = 1; i <= 3; ++i) {
    h.entries.push_back(DirEntry{G(i).ToString(), G(i), 0, 10u * i, false, {}});
  }
  h.eof = true;
  std::string enc;
  EncodeReply(Op::kHealIndex, h, &enc);
  Reply back;
  ASSERT_TRUE(DecodeReply(Op::kHealIndex, enc, &back).ok());
  EXPECT_EQ(back.entries, h.entries);
  EXPECT_TRUE(back.eof);
}

TEST(BrickProtocol, TooManyPendingCountersAreRejected) {
  Request q;
  q.op = Op::kXattrop;
  q.gfid = G(1);
  q.pending.assign(kMaxPendingCounters, 1);
  std::string enc;
  EncodeRequest(q, &enc);
  Request back;
  ASSERT_TRUE(DecodeRequest(Op::kXattrop, enc, &back).ok());
  EXPECT_EQ(back.pending.size(), kMaxPendingCounters);
  q.pending.push_back(1);
  enc.clear();
  EncodeRequest(q, &enc);
  EXPECT_EQ(DecodeRequest(Op::kXattrop, enc, &back).code(), Code::kInvalidArgument);
  // A reply claiming a huge count is refused before allocating (XATTROP's reply is err, then
  // the counters).
  std::string rep;
  PutFixed32(&rep, 0);
  PutFixed32(&rep, 0x40000000);
  Reply rb;
  Status s = DecodeReply(Op::kXattrop, rep, &rb);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("pending counters"), std::string::npos) << s.message();
}

TEST(BrickProtocol, HostileCountsAreRejectedBeforeAllocating) {
  std::string enc;
  PutFixed32(&enc, 0);           // err = 0
  PutFixed32(&enc, 0xffffffff);  // 4 billion names
  Reply back;
  EXPECT_EQ(DecodeReply(Op::kListxattr, enc, &back).code(), Code::kInvalidArgument);
  EXPECT_EQ(DecodeReply(Op::kReaddir, enc, &back).code(), Code::kInvalidArgument);
}

TEST(BrickProtocol, MutationsAreMarked) {
  EXPECT_TRUE(IsMutation(Op::kWrite));
  EXPECT_TRUE(IsMutation(Op::kRename));
  EXPECT_TRUE(IsMutation(Op::kSetxattr));
  EXPECT_FALSE(IsMutation(Op::kRead));
  EXPECT_FALSE(IsMutation(Op::kFsync));
  EXPECT_FALSE(IsMutation(Op::kLookup));
  // Locks and markers are not journaled.
  EXPECT_FALSE(IsMutation(Op::kInodelk));
  EXPECT_FALSE(IsMutation(Op::kEntrylk));
  EXPECT_FALSE(IsMutation(Op::kXattrop));
  EXPECT_FALSE(IsMutation(Op::kHealIndex));
}

}  // namespace
}  // namespace drfs::brick_proto
