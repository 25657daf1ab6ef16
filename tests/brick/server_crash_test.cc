// kill -9 of a real `drfs brick serve` process while several clients create, write and rename
// over TCP. After a restart, every acknowledged op is on disk and in the journal, and nothing in
// the journal claims an op that is not on disk.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "brick/client.h"
#include "changelog/journal.h"
#include "changelog/reader.h"
#include "tests/common/test_util.h"

namespace drfs::brick {
namespace {

using drfs::testing::TempDir;
using namespace std::chrono_literals;
using brick_proto::Op;

struct Server {
  pid_t pid = -1;
  uint16_t port = 0;
};

Server StartBrick(const std::string& dir, const std::string& out) {
  Server s;
  const std::string bin = drfs::testing::BinDir() + "/cli/drfs";
  s.pid = fork();
  if (s.pid == 0) {
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    int devnull = ::open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    execl(bin.c_str(), bin.c_str(), "brick", "serve", "--dir", dir.c_str(), "--port", "0", nullptr);
    _exit(127);
  }
  const std::string marker = "listening on 127.0.0.1:";
  for (int i = 0; i < 1000 && s.port == 0; ++i) {
    std::string text = drfs::testing::ReadFile(out);
    auto at = text.find(marker);
    if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
      s.port = static_cast<uint16_t>(std::stoi(text.substr(at + marker.size())));
    } else {
      std::this_thread::sleep_for(10ms);
    }
  }
  return s;
}

// What a client was told succeeded, per file.
struct FileState {
  std::string name;
  size_t written = 0;  // bytes acknowledged (each write appends a fixed block)
};

TEST(BrickServerCrash, Kill9DuringConcurrentCreateWriteRenameKeepsEveryAcknowledgedOp) {
  TempDir t;
  const std::string dir = t.Sub("brick");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::string block(1000, 'k');
  std::map<Gfid, FileState> acked;  // across rounds
  std::set<uint64_t> acked_lsns;
  std::mutex mu;
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Server s = StartBrick(dir, t.Sub("out" + std::to_string(round)));
    ASSERT_GT(s.port, 0) << "brick did not start";
    std::atomic<bool> stop{false};
    std::atomic<int> ops{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c) {
      clients.emplace_back([&, c] {
        ClientOptions co;
        co.request_timeout = 10s;
        auto cl = BrickClient::Connect("127.0.0.1", s.port, {}, co);
        if (!cl.ok()) return;
        for (int i = 0; !stop; ++i) {
          Gfid g = Gfid::Random();
          std::string name =
              "r" + std::to_string(round) + "c" + std::to_string(c) + "f" + std::to_string(i);
          brick_proto::Request q;
          q.op = Op::kCreate;
          q.parent = Gfid::Root();
          q.name = name;
          q.gfid = g;
          q.mode = 0100644;
          q.flags = brick_proto::kCreateExclusive;
          auto r = (*cl)->CallSync(q);
          if (!r.ok()) return;  // the brick is gone
          {
            std::lock_guard<std::mutex> l(mu);
            acked[g] = {name, 0};
            acked_lsns.insert(r->lsn);
          }
          for (int w = 0; w < 3; ++w) {
            brick_proto::Request wq;
            wq.op = Op::kWrite;
            wq.gfid = g;
            wq.offset = static_cast<uint64_t>(w) * block.size();
            wq.data = block;
            auto wr = (*cl)->CallSync(wq);
            if (!wr.ok()) return;
            std::lock_guard<std::mutex> l(mu);
            acked[g].written = (w + 1) * block.size();
            acked_lsns.insert(wr->lsn);
          }
          brick_proto::Request rq;
          rq.op = Op::kRename;
          rq.parent = Gfid::Root();
          rq.name = name;
          rq.new_parent = Gfid::Root();
          rq.new_name = name + ".done";
          auto rr = (*cl)->CallSync(rq);
          if (!rr.ok()) return;
          std::lock_guard<std::mutex> l(mu);
          acked[g].name = name + ".done";
          acked_lsns.insert(rr->lsn);
          ++ops;
        }
      });
    }
    // Let the clients get going, then kill the brick mid-flight.
    for (int i = 0; i < 3000 && ops < 40 * (round + 1); ++i)
      std::this_thread::sleep_for(5ms);
    kill(s.pid, SIGKILL);
    int status = 0;
    waitpid(s.pid, &status, 0);
    stop = true;
    for (auto& th : clients)
      th.join();
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_GT(ops.load(), 0) << "no client made progress";
  }

  // Restart and check.
  Server s = StartBrick(dir, t.Sub("out-final"));
  ASSERT_GT(s.port, 0);
  auto cl = BrickClient::Connect("127.0.0.1", s.port);
  ASSERT_TRUE(cl.ok()) << cl.status().ToString();
  for (const auto& [g, st] : acked) {
    auto a = (*cl)->Lookup(Gfid::Root(), st.name);
    if (!a.ok() && !st.name.ends_with(".done")) {
      // The rename was in flight: it may have happened without being acknowledged.
      a = (*cl)->Lookup(Gfid::Root(), st.name + ".done");
    }
    ASSERT_TRUE(a.ok()) << st.name << ": " << a.status().ToString();
    EXPECT_EQ(a->gfid, g) << st.name;
    EXPECT_GE(a->size, st.written) << st.name;
    if (st.written) {
      auto data = (*cl)->Read(g, 0, st.written);
      ASSERT_TRUE(data.ok());
      EXPECT_EQ(*data, std::string(st.written, 'k')) << st.name;
    }
  }
  kill(s.pid, SIGTERM);
  waitpid(s.pid, nullptr, 0);

  // The journal: every acknowledged LSN is there, LSNs are dense, and every CREATE in it
  // names a file that exists (this loop never unlinks).
  std::string jdir = changelog::JournalDirForBrick(dir);
  changelog::ReaderOptions ro;
  ro.from_lsn = 1;
  ro.bound = changelog::ReaderOptions::Bound::kOnDisk;
  auto reader = changelog::Reader::Open(jdir, ro);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  std::set<uint64_t> in_journal;
  std::set<Gfid> created;
  uint64_t want = 1;
  for (;;) {
    auto e = (*reader)->Next();
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    if (!e->has_value()) break;
    ASSERT_EQ((*e)->record.lsn, want++);
    in_journal.insert((*e)->record.lsn);
    if ((*e)->record.op == changelog::OpType::kCreate) created.insert((*e)->record.gfid);
  }
  for (uint64_t lsn : acked_lsns)
    EXPECT_TRUE(in_journal.count(lsn)) << "acked LSN " << lsn;
  for (const Gfid& g : created) {
    // Reached through the gfid index on disk.
    std::string hex = g.ToString();
    std::string handle =
        dir + "/.drfs/gfid/" + hex.substr(0, 2) + "/" + hex.substr(2, 2) + "/" + hex;
    EXPECT_EQ(access(handle.c_str(), F_OK), 0) << "journal claims CREATE of " << hex;
  }
}

}  // namespace
}  // namespace drfs::brick
