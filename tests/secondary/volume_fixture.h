// Test fixture shared by the geo-replication tests: a replica-3 volume of three in-process brick
// servers on loopback (restartable on the same ports), and a walk of a volume into comparable
// lines (path -> type, mode, owner, gfid, links, size, content CRC, mtime, symlink target, user
// xattrs).
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "brick/server.h"
#include "common/crc32c.h"
#include "tests/common/test_util.h"
#include "volume/client.h"

namespace drfs::testing {

using brick::BrickServer;
using volume::VolumeClient;

// Three brick servers on loopback, restartable on the same ports.
class Cluster {
 public:
  explicit Cluster(std::string volume = "svol") : volume_(std::move(volume)) {
    for (int i = 0; i < 3; ++i) Start(i);
  }
  std::string Dir(int i) const { return tmp_.Sub("b" + std::to_string(i)); }
  void Start(int i) {
    ::mkdir(Dir(i).c_str(), 0755);
    brick::BrickServerOptions o;
    o.dir = Dir(i);
    o.port = ports_[static_cast<size_t>(i)];
    o.disk_threads = 2;
    o.backend.journal.fsync_policy = changelog::FsyncPolicy::kNever;
    auto s = BrickServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    servers_[static_cast<size_t>(i)] = std::move(*s);
    ports_[static_cast<size_t>(i)] = servers_[static_cast<size_t>(i)]->port();
  }
  void Stop(int i) { servers_[static_cast<size_t>(i)].reset(); }
  volume::Layout MakeLayout() const {
    volume::Layout l;
    l.volume = volume_;
    l.volume_uuid = "00000000-0000-0000-0000-0000000000b1";
    l.replica = 3;
    for (int i = 0; i < 3; ++i) {
      volume::BrickAddress b;
      b.name = "127.0.0.1:" + Dir(i);
      b.host = "127.0.0.1";
      b.port = ports_[static_cast<size_t>(i)];
      l.bricks.push_back(b);
    }
    return l;
  }
  std::unique_ptr<VolumeClient> Client() {
    volume::VolumeClientOptions o;
    o.rpc.request_timeout = std::chrono::milliseconds(10000);
    auto c = VolumeClient::Open(MakeLayout(), o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }
  const TempDir& tmp() const { return tmp_; }

 private:
  std::string volume_;
  TempDir tmp_;
  std::unique_ptr<BrickServer> servers_[3];
  uint16_t ports_[3] = {0, 0, 0};
};

// What a user sees of the volume: path -> type, mode, owner, gfid, size, content hash, mtime,
// symlink target and user xattrs.
using Tree = std::map<std::string, std::string>;

inline void Walk(VolumeClient& v, const Gfid& dir, const std::string& path, Tree* out,
          bool with_times) {
  uint64_t cookie = 0;
  for (;;) {
    auto page = v.Readdir(dir, cookie, 256, true);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const auto& e : page->entries) {
      cookie = e.cookie;
      const std::string p = path + "/" + e.name;
      auto a = v.Getattr(e.gfid);
      ASSERT_TRUE(a.ok()) << p << ": " << a.status().ToString();
      std::string d = std::to_string(a->mode) + " " + std::to_string(a->uid) + ":" +
                      std::to_string(a->gid) + " " + e.gfid.ToString() + " n" +
                      std::to_string(a->nlink);
      // Not atime: this walk's own reads move it (relatime).
      if (with_times) d += " t" + std::to_string(a->mtime_ns);
      if (S_ISREG(a->mode)) {
        auto data = v.Read(e.gfid, 0, a->size + 1);
        ASSERT_TRUE(data.ok()) << p << ": " << data.status().ToString();
        d += " size " + std::to_string(a->size) + " crc " +
             std::to_string(crc32c::Value(data->data(), data->size()));
      }
      if (S_ISLNK(a->mode)) {
        auto t = v.Readlink(e.gfid);
        d += " -> " + (t.ok() ? *t : "?");
      }
      if (!S_ISLNK(a->mode)) {
        auto names = v.Listxattr(e.gfid);
        ASSERT_TRUE(names.ok()) << p << ": " << names.status().ToString();
        std::set<std::string> sorted(names->begin(), names->end());
        for (const auto& n : sorted) {
          if (n.rfind("user.", 0) != 0) continue;
          auto val = v.Getxattr(e.gfid, n);
          d += " " + n + "=" + (val.ok() ? *val : "?");
        }
      }
      (*out)[p] = d;
      if (S_ISDIR(a->mode)) Walk(v, e.gfid, p, out, with_times);
    }
    if (page->eof || page->entries.empty()) break;
  }
}

inline Tree TreeOf(VolumeClient& v, bool with_times = true) {
  Tree t;
  Walk(v, Gfid::Root(), "", &t, with_times);
  return t;
}

inline std::string Diff(const Tree& a, const Tree& b) {
  std::string out;
  for (const auto& [p, d] : a) {
    auto it = b.find(p);
    if (it == b.end()) out += "\n  only in first: " + p + " " + d;
    else if (it->second != d) out += "\n  differs: " + p + "\n    " + d + "\n    " + it->second;
  }
  for (const auto& [p, d] : b)
    if (!a.count(p)) out += "\n  only in second: " + p + " " + d;
  return out;
}

}  // namespace drfs::testing
