// drfsd in-process: two daemons (each a "host" on its own loopback address) form a pool and
// run a volume whose bricks are real `drfs brick serve` processes. Changes race from both
// nodes at once; the pool must end up with one configuration, the same on both nodes. The TSan
// run covers the daemon's threads (request pool, heartbeat, supervisor callbacks).
#include "mgmt/daemon.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "brick/client.h"
#include "mgmt/layout.h"
#include "mgmt/protocol.h"
#include "tests/common/test_util.h"

namespace drfs::mgmt {
namespace {

using testing::TempDir;

class DaemonTest : public ::testing::Test {
 protected:
  std::unique_ptr<Daemon> StartNode(const std::string& host) {
    DaemonOptions o;
    o.state_dir = dir_.Sub(host);
    o.listen_host = host;
    o.port = 0;
    o.drfs_binary = testing::BinDir() + "/cli/drfs";
    o.heartbeat = std::chrono::milliseconds(200);
    o.supervisor.backoff_initial = std::chrono::milliseconds(50);
    auto d = Daemon::Start(o);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? std::move(*d) : nullptr;
  }

  Result<Value> Call(const std::string& host, const Daemon& d, MgmtOp op, const Value& args) {
    DRFS_ASSIGN_OR_RETURN(auto c, MgmtClient::Connect(host, d.port(), {}, std::chrono::seconds(5)));
    return c->Call(op, args);
  }

  void TearDown() override {
    // Bricks outlive daemons by design; end them here.
    std::string cmd = "pkill -9 -f -- '--dir " + dir_.path() + "/' 2>/dev/null";
    (void)!system(cmd.c_str());
  }

  TempDir dir_;
};

TEST_F(DaemonTest, PoolVolumeLifecycleAndRacingChanges) {
  auto d1 = StartNode("127.0.0.1");
  auto d2 = StartNode("127.0.0.2");
  ASSERT_TRUE(d1 && d2);
  Value probe;
  probe["host"] = "127.0.0.2";
  probe["port"] = static_cast<int64_t>(d2->port());
  ASSERT_OK(Call("127.0.0.1", *d1, MgmtOp::kPeerProbe, probe));

  Value create;
  create["name"] = "v";
  create["replica"] = 2;
  create["bricks"].Push("127.0.0.1:" + dir_.Sub("b1"));
  create["bricks"].Push("127.0.0.2:" + dir_.Sub("b2"));
  ASSERT_OK(Call("127.0.0.1", *d1, MgmtOp::kVolumeCreate, create));
  Value name;
  name["name"] = "v";
  ASSERT_OK(Call("127.0.0.2", *d2, MgmtOp::kVolumeStart, name));
  auto status = Call("127.0.0.1", *d1, MgmtOp::kVolumeStatus, name);
  ASSERT_OK(status);
  EXPECT_EQ(status->Find("volumes")->AsList()[0].GetInt("bricks_online"), 2) << status->ToJson();

  // Changes from both nodes at once: each either commits or is refused as busy (Unavailable);
  // none may half-apply.
  std::atomic<int> committed{0}, busy{0}, other{0};
  auto hammer = [&](const std::string& host, const Daemon& d, const std::string& value) {
    for (int i = 0; i < 8; ++i) {
      Value set;
      set["name"] = "v";
      set["key"] = "brick.threads";
      set["value"] = value;
      auto r = Call(host, d, MgmtOp::kVolumeSet, set);
      if (r.ok()) {
        ++committed;
      } else if (r.status().code() == Code::kUnavailable || r.status().code() == Code::kAborted) {
        ++busy;
      } else {
        ++other;
        ADD_FAILURE() << r.status().ToString();
      }
    }
  };
  std::thread t1(hammer, "127.0.0.1", std::cref(*d1), "4");
  std::thread t2(hammer, "127.0.0.2", std::cref(*d2), "8");
  t1.join();
  t2.join();
  EXPECT_GT(committed.load(), 0);
  EXPECT_EQ(other.load(), 0);
  // Give a node that missed a commit time to pull it, then both must agree.
  std::string c1, c2;
  for (int i = 0; i < 50; ++i) {
    c1 = Call("127.0.0.1", *d1, MgmtOp::kGetConfig, Value::EmptyMap())->ToJson();
    c2 = Call("127.0.0.2", *d2, MgmtOp::kGetConfig, Value::EmptyMap())->ToJson();
    if (c1 == c2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(c1, c2);

  // A daemon restart keeps the state and adopts the bricks.
  auto before = Call("127.0.0.2", *d2, MgmtOp::kVolumeStatus, name);
  ASSERT_OK(before);
  const int64_t pid = before->Find("volumes")->AsList()[0].Find("bricks")->AsList()[1].GetInt("pid");
  d2->Stop();
  d2.reset();
  d2 = StartNode("127.0.0.2");
  ASSERT_TRUE(d2);
  // d1 knows d2 by its old port; the restarted daemon picked a new one (port 0), so ask d2 itself.
  auto after = Call("127.0.0.2", *d2, MgmtOp::kLocalStatus, [] { Value v; v["volume"] = "v"; return v; }());
  ASSERT_OK(after);
  EXPECT_EQ(after->Find("bricks")->AsList()[0].GetInt("pid"), pid) << after->ToJson();
  EXPECT_TRUE(after->Find("bricks")->AsList()[0].GetBool("online"));
}

// 'replica 3 arbiter 1': drfsd serves the last brick of each replica set with --arbiter, and
// that brick keeps no file data while the others do.
TEST_F(DaemonTest, TheLastBrickOfEachReplicaSetIsServedAsAnArbiter) {
  auto d = StartNode("127.0.0.1");
  ASSERT_TRUE(d);
  Value create;
  create["name"] = "arb";
  create["replica"] = 3;
  create["arbiter"] = true;
  create["force"] = true;  // one host for the test
  for (int i = 0; i < 6; ++i)
    create["bricks"].Push("127.0.0.1:" + dir_.Sub("a" + std::to_string(i)));
  ASSERT_OK(Call("127.0.0.1", *d, MgmtOp::kVolumeCreate, create));
  Value name;
  name["name"] = "arb";
  ASSERT_OK(Call("127.0.0.1", *d, MgmtOp::kVolumeStart, name));
  auto info = Call("127.0.0.1", *d, MgmtOp::kVolumeInfo, name);
  ASSERT_OK(info);
  auto status = Call("127.0.0.1", *d, MgmtOp::kLocalStatus, [] {
    Value v;
    v["volume"] = "arb";
    return v;
  }());
  ASSERT_OK(status);
  const auto& bricks = status->Find("bricks")->AsList();
  ASSERT_EQ(bricks.size(), 6u) << status->ToJson();
  for (size_t i = 0; i < bricks.size(); ++i) {
    const int64_t pid = bricks[i].GetInt("pid");
    ASSERT_GT(pid, 0) << status->ToJson();
    std::string cmdline = testing::ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    const bool arbiter = cmdline.find(" --arbiter") != std::string::npos;
    EXPECT_EQ(arbiter, i % 3 == 2) << "brick " << i << ": " << cmdline;
    const auto& conf = info->Find("volumes")->AsList()[0].Find("bricks")->AsList()[i];
    EXPECT_EQ(conf.GetBool("arbiter"), arbiter) << info->ToJson();
    // What a client sees: a data brick keeps what is written; an arbiter acknowledges it but
    // keeps nothing to read back.
    ASSERT_TRUE(bricks[i].GetBool("online")) << status->ToJson();
    auto c =
        brick::BrickClient::Connect("127.0.0.1", static_cast<uint16_t>(bricks[i].GetInt("port")));
    ASSERT_OK(c);
    const Gfid f = Gfid::Random();
    ASSERT_OK((*c)->Create(Gfid::Root(), "f", f, 0644));
    auto n = (*c)->Write(f, 0, "data");
    ASSERT_OK(n);
    EXPECT_EQ(*n, 4u);
    auto back = (*c)->Read(f, 0, 4);
    if (arbiter) {
      EXPECT_EQ(back.status().sys_errno(), EIO) << back.status().ToString();
    } else {
      ASSERT_OK(back);
      EXPECT_EQ(*back, "data");
    }
  }
}


// What a mount asks for: the bricks with their ids and current ports, the arbiter, the quorum
// options, and the pool's daemons to ask next time.
TEST_F(DaemonTest, VolumeLayoutForClients) {
  auto d1 = StartNode("127.0.0.1");
  auto d2 = StartNode("127.0.0.2");
  auto d3 = StartNode("127.0.0.3");
  ASSERT_TRUE(d1 && d2 && d3);
  for (auto [host, d] : {std::pair{"127.0.0.2", d2.get()}, std::pair{"127.0.0.3", d3.get()}}) {
    Value probe;
    probe["host"] = host;
    probe["port"] = static_cast<int64_t>(d->port());
    ASSERT_OK(Call("127.0.0.1", *d1, MgmtOp::kPeerProbe, probe));
  }
  const std::string at1 = "127.0.0.1:" + std::to_string(d1->port());
  const std::string at2 = "127.0.0.2:" + std::to_string(d2->port());
  auto missing = FetchLayout(at1, "nosuch", {}, std::chrono::seconds(5));
  EXPECT_EQ(missing.status().code(), Code::kNotFound) << missing.status().ToString();

  Value create;
  create["name"] = "arb";
  create["replica"] = 3;
  create["arbiter"] = true;
  for (int n = 1; n <= 3; ++n) {
    create["bricks"].Push("127.0.0." + std::to_string(n) + ":" + dir_.Sub("a" + std::to_string(n)));
  }
  ASSERT_OK(Call("127.0.0.1", *d1, MgmtOp::kVolumeCreate, create));
  auto stopped = FetchLayout(at2, "arb", {}, std::chrono::seconds(5));
  EXPECT_EQ(stopped.status().code(), Code::kFailedPrecondition) << stopped.status().ToString();

  Value name;
  name["name"] = "arb";
  ASSERT_OK(Call("127.0.0.1", *d1, MgmtOp::kVolumeStart, name));
  std::vector<std::string> daemons;
  auto layout = FetchLayout(at2, "arb", {}, std::chrono::seconds(5), &daemons);
  ASSERT_OK(layout);
  auto info = Call("127.0.0.1", *d1, MgmtOp::kVolumeInfo, name);
  auto status = Call("127.0.0.1", *d1, MgmtOp::kVolumeStatus, name);
  ASSERT_OK(info);
  ASSERT_OK(status);
  const Value& vi = info->Find("volumes")->AsList()[0];
  const Value& vs = status->Find("volumes")->AsList()[0];
  EXPECT_EQ(layout->volume, "arb");
  EXPECT_EQ(layout->volume_uuid, vi.GetString("uuid"));
  EXPECT_EQ(layout->replica, 3);
  EXPECT_EQ(layout->quorum_type, "auto");
  EXPECT_EQ(layout->quorum_count, 2);
  ASSERT_EQ(layout->bricks.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const auto& b = layout->bricks[i];
    EXPECT_EQ(b.name, vi.Find("bricks")->AsList()[i].GetString("name"));
    EXPECT_EQ(b.host, "127.0.0." + std::to_string(i + 1));
    EXPECT_EQ(b.brick_id, vi.Find("bricks")->AsList()[i].GetString("brick_id"));
    EXPECT_EQ(b.port, vs.Find("bricks")->AsList()[i].GetInt("port"));
    EXPECT_GT(b.port, 0);
    EXPECT_EQ(b.arbiter, i == 2);
  }
  EXPECT_EQ(daemons.size(), 3u);
  EXPECT_NE(std::find(daemons.begin(), daemons.end(), at1), daemons.end());

  // Options and the generation follow changes, on every node.
  const int64_t gen = layout->generation;
  for (auto [k, v] : {std::pair{"cluster.quorum-type", "fixed"}, std::pair{"cluster.quorum-count", "1"}}) {
    Value set;
    set["name"] = "arb";
    set["key"] = k;
    set["value"] = v;
    ASSERT_OK(Call("127.0.0.1", *d1, MgmtOp::kVolumeSet, set));
  }
  auto later = FetchLayout("127.0.0.3:" + std::to_string(d3->port()), "arb", {}, std::chrono::seconds(5));
  ASSERT_OK(later);
  EXPECT_EQ(later->generation, gen + 2);
  EXPECT_EQ(later->quorum_type, "fixed");
  EXPECT_EQ(later->quorum_count, 1);
  EXPECT_EQ(later->bricks, layout->bricks);

  // A node that is down: its brick has no port, the rest of the layout still comes.
  d3->Stop();
  d3.reset();
  auto partial = FetchLayout(at1, "arb", {}, std::chrono::seconds(5));
  ASSERT_OK(partial);
  EXPECT_EQ(partial->bricks[2].port, 0);
  EXPECT_EQ(partial->bricks[0].port, layout->bricks[0].port);
}

TEST_F(DaemonTest, SecondDaemonOnAStateDirIsRefused) {
  auto d1 = StartNode("127.0.0.1");
  ASSERT_TRUE(d1);
  DaemonOptions o;
  o.state_dir = dir_.Sub("127.0.0.1");
  o.listen_host = "127.0.0.1";
  o.port = 0;
  auto second = Daemon::Start(o);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("another drfsd"), std::string::npos);
}

TEST_F(DaemonTest, GarbageRequestsGetErrorsNotCrashes) {
  auto d1 = StartNode("127.0.0.1");
  ASSERT_TRUE(d1);
  auto rpc = RpcClient::Connect("127.0.0.1", d1->port(), {});
  ASSERT_OK(rpc);
  auto r = (*rpc)->Call(static_cast<uint16_t>(MgmtOp::kVolumeCreate), std::string("\x05\xff\xff", 3)).get();
  ASSERT_OK(r);
  auto reply = DecodeReply(r->payload);
  EXPECT_EQ(reply.status().code(), Code::kInvalidArgument);
  r = (*rpc)->Call(999, EncodeValue(Value::EmptyMap())).get();
  ASSERT_OK(r);
  EXPECT_EQ(DecodeReply(r->payload).status().code(), Code::kInvalidArgument);
  // A commit without holding the lock is refused.
  Value commit;
  commit["owner"] = "someone";
  commit["txn"] = "t";
  commit["config"] = Value::EmptyMap();
  r = (*rpc)->Call(static_cast<uint16_t>(MgmtOp::kCommit), EncodeValue(commit)).get();
  ASSERT_OK(r);
  EXPECT_EQ(DecodeReply(r->payload).status().code(), Code::kAborted);
  // Still serving.
  EXPECT_OK(Call("127.0.0.1", *d1, MgmtOp::kVolumeList, Value::EmptyMap()));
}

}  // namespace
}  // namespace drfs::mgmt
