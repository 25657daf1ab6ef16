// BrickServer over loopback: ops through BrickClient, payloads that do not decode, and the cap
// on requests waiting for the disk.
#include "brick/server.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <future>
#include <vector>

#include "brick/client.h"
#include "common/failpoint.h"
#include "common/wire.h"
#include "tests/common/test_util.h"

namespace drfs::brick {
namespace {

using brick_proto::Op;
using brick_proto::Reply;
using brick_proto::Request;
using drfs::testing::TempDir;

std::unique_ptr<BrickServer> Serve(const std::string& dir, size_t max_queued = 256u << 20,
                                   int disk_threads = 4) {
  ::mkdir(dir.c_str(), 0755);
  BrickServerOptions o;
  o.dir = dir;
  o.disk_threads = disk_threads;
  o.max_queued_bytes = max_queued;
  o.backend.journal.fsync_policy = changelog::FsyncPolicy::kNever;
  auto s = BrickServer::Start(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

TEST(BrickServer, ServesOpsAndReportsErrnos) {
  TempDir t;
  auto s = Serve(t.Sub("b"));
  ASSERT_NE(s, nullptr);
  auto c = BrickClient::Connect("127.0.0.1", s->port());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ((*c)->brick_id(), s->backend()->brick_id().ToString());
  Gfid d = Gfid::Random(), f = Gfid::Random();
  ASSERT_TRUE((*c)->Mkdir(Gfid::Root(), "docs", d, 0755).ok());
  ASSERT_TRUE((*c)->Create(d, "a", f, 0644).ok());
  auto n = (*c)->Write(f, 0, "hello");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 5u);
  auto data = (*c)->Read(f, 0, 100);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, "hello");
  auto again = (*c)->Mkdir(Gfid::Root(), "docs", Gfid::Random(), 0755);
  EXPECT_EQ(again.status().sys_errno(), EEXIST);
  EXPECT_NE(again.status().message().find("MKDIR on brick 127.0.0.1:"), std::string::npos)
      << again.status().message();
  auto entries = (*c)->ReaddirAll(Gfid::Root());
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].name, "docs");
}

TEST(BrickServer, APayloadThatDoesNotDecodeGetsEprotoAndTheConnectionStaysUsable) {
  TempDir t;
  auto s = Serve(t.Sub("b"));
  ASSERT_NE(s, nullptr);
  auto rpc = RpcClient::Connect("127.0.0.1", s->port(), {});
  ASSERT_TRUE(rpc.ok());
  auto bad = (*rpc)->Call(static_cast<uint16_t>(Op::kGetattr), std::string("short")).get();
  ASSERT_TRUE(bad.ok()) << bad.status().ToString();
  Reply r;
  ASSERT_TRUE(brick_proto::DecodeReply(Op::kGetattr, bad->payload, &r).ok());
  EXPECT_EQ(r.err, EPROTO);
  std::string ok;
  Request q;
  q.op = Op::kGetattr;
  q.gfid = Gfid::Root();
  brick_proto::EncodeRequest(q, &ok);
  auto good = (*rpc)->Call(static_cast<uint16_t>(Op::kGetattr), ok).get();
  ASSERT_TRUE(good.ok());
  ASSERT_TRUE(brick_proto::DecodeReply(Op::kGetattr, good->payload, &r).ok());
  EXPECT_EQ(r.err, 0);
  EXPECT_EQ(r.attr.gfid, Gfid::Root());
}

TEST(BrickServer, RequestsPastTheQueueCapGetEagainInsteadOfGrowingMemory) {
  if (!failpoint::CompiledIn()) GTEST_SKIP() << "failure probes are compiled out";
  TempDir t;
  // A 3 MiB cap, one disk thread held 300 ms per request: of 12 pipelined 1 MiB writes, only
  // those that fit under the cap are queued; the rest are refused at once.
  auto s = Serve(t.Sub("b"), 3u << 20, 1);
  ASSERT_NE(s, nullptr);
  auto c = BrickClient::Connect("127.0.0.1", s->port());
  ASSERT_TRUE(c.ok());
  Gfid f = Gfid::Random();
  ASSERT_TRUE((*c)->Create(Gfid::Root(), "big", f, 0644).ok());
  ASSERT_TRUE(failpoint::Set("brick.server.execute", "delay(300)"));
  std::vector<std::future<Result<Reply>>> inflight;
  for (int i = 0; i < 12; ++i) {
    Request w;
    w.op = Op::kWrite;
    w.gfid = f;
    w.offset = static_cast<uint64_t>(i) << 20;
    w.data = std::string(1 << 20, 'w');
    inflight.push_back((*c)->Call(w));
  }
  int done = 0, busy = 0;
  for (auto& fut : inflight) {
    auto r = fut.get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    if (r->err == 0) {
      ++done;
    } else if (r->err == EAGAIN) {
      ++busy;
      EXPECT_NE(r->message.find("retry"), std::string::npos) << r->message;
    } else {
      ADD_FAILURE() << r->message;
    }
  }
  EXPECT_GT(done, 0);
  EXPECT_GT(busy, 0) << "nothing was refused: the cap did not hold";
  failpoint::ClearAll();
  // The brick recovers: once the queue drains, writes go through again.
  auto later = (*c)->Write(f, 0, "x");
  EXPECT_TRUE(later.ok()) << later.status().ToString();
}

}  // namespace
}  // namespace drfs::brick
