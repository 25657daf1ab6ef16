// brick_bench: a brick served over loopback, against the same ops on a local directory.
//
// For 1, 4 and 16 concurrent clients (each its own connection and thread) it measures:
//   small files: create + write 4 KiB (+ close, locally), files/s
//   stat: getattr (GETATTR by gfid / stat(2) by path), ops/s
//   1 MiB writes and 1 MiB reads, MB/s
// The brick journals every mutation with the chosen fsync policy (default `always`). The local
// baseline runs the same ops with plain syscalls in a directory on the same file system, and the
// ratio column is brick / local. It prints numbers; it never passes or fails.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "brick/client.h"
#include "brick/server.h"
#include "common/log.h"

namespace {

using namespace drfs;
using Clock = std::chrono::steady_clock;

constexpr char kUsage[] =
    "usage: brick_bench [--dir DIR] [--seconds N] [--clients 1,4,16] [--fsync POLICY]\n"
    "  --dir DIR        parent directory for the brick and the local baseline (default /var/tmp)\n"
    "  --seconds N      seconds per case (default 3)\n"
    "  --clients LIST   concurrent client counts (default 1,4,16)\n"
    "  --fsync POLICY   the brick journal's fsync policy: always (default), interval, never\n"
    "  --cases LIST     any of small,stat,io (default all)\n"
    "  --disk-threads N the brick's disk thread pool (default 32, as drfs brick serve)\n"
    "  --io-threads N   the brick's network threads (default as drfs brick serve)\n";

struct Options {
  std::string parent = "/var/tmp";
  double seconds = 3;
  std::vector<int> clients = {1, 4, 16};
  changelog::FsyncPolicy fsync = changelog::FsyncPolicy::kAlways;
  std::string cases = "small,stat,io";
  int disk_threads = 32;
  int io_threads = brick::BrickServerOptions().io_threads;
  bool Want(const char* c) const { return ("," + cases + ",").find(std::string(",") + c + ",") != std::string::npos; }
};

// Prints the first failure of a run, so a partial rate says why.
bool Ok(const Status& s) {
  static std::atomic<bool> reported{false};
  if (!s.ok() && !reported.exchange(true)) {
    std::fprintf(stderr, "brick_bench: %s\n", s.ToString().c_str());
  }
  return s.ok();
}
template <typename T>
bool Ok(const Result<T>& r) {
  return Ok(r.status());
}
// For the local baseline's syscalls.
bool Ok(bool ok, const char* what) {
  return ok || Ok(ErrnoStatus(errno, std::string("local ") + what));
}

// CPU seconds and context switches of this whole process so far.
std::pair<double, double> Usage() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  auto s = [](const struct timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return {s(ru.ru_utime) + s(ru.ru_stime), static_cast<double>(ru.ru_nvcsw + ru.ru_nivcsw)};
}

// CPU time (microseconds) and context switches of this process (clients and brick alike) per op
// of the last Run(). Less at the mercy of a busy machine than the rates: they count work, not
// waiting.
double last_cpu_us = 0;
double last_cs = 0;

// Runs `op(thread, iteration)` from `threads` threads for `seconds`; returns completed ops/s.
double Run(int threads, double seconds, const std::function<bool(int, uint64_t)>& op) {
  const auto usage0 = Usage();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> total{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> ts;
  auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (!op(t, n)) {
          failed = true;
          break;
        }
        ++n;
      }
      total += n;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : ts) th.join();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const auto usage1 = Usage();
  const double ops = std::max<double>(1, static_cast<double>(total.load()));
  last_cpu_us = (usage1.first - usage0.first) * 1e6 / ops;
  last_cs = (usage1.second - usage0.second) / ops;
  if (failed) std::fprintf(stderr, "brick_bench: an op failed; the rate below is partial\n");
  return static_cast<double>(total.load()) / secs;
}

// brick_cpu, brick_cs: last_cpu_us and last_cs of the brick's run.
void Row(const char* what, int clients, double brick, double local, const char* unit,
         double brick_cpu, double brick_cs) {
  std::printf("%-22s %7d %14.0f %14.0f %8.2f  %-8s %9.1f %9.1f %7.1f\n", what, clients, brick,
              local, local > 0 ? brick / local : 0.0, unit, brick_cpu, last_cpu_us, brick_cs);
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--dir") {
      const char* v = next();
      if (!v) return false;
      o->parent = v;
    } else if (a == "--seconds") {
      const char* v = next();
      if (!v || (o->seconds = std::atof(v)) <= 0) return false;
    } else if (a == "--clients") {
      const char* v = next();
      if (!v) return false;
      o->clients.clear();
      std::string s = std::string(v) + ",";
      for (size_t p = 0, c; (c = s.find(',', p)) != std::string::npos; p = c + 1) {
        int n = std::atoi(s.substr(p, c - p).c_str());
        if (n < 1 || n > 256) return false;
        o->clients.push_back(n);
      }
    } else if (a == "--disk-threads") {
      const char* v = next();
      if (!v || (o->disk_threads = std::atoi(v)) < 1 || o->disk_threads > 256) return false;
    } else if (a == "--io-threads") {
      const char* v = next();
      if (!v || (o->io_threads = std::atoi(v)) < 1 || o->io_threads > 64) return false;
    } else if (a == "--cases") {
      const char* v = next();
      if (!v) return false;
      o->cases = v;
    } else if (a == "--fsync") {
      const char* v = next();
      auto p = v ? changelog::ParseFsyncPolicy(v) : std::nullopt;
      if (!p) return false;
      o->fsync = *p;
    } else {
      return false;
    }
  }
  return !o->clients.empty();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, &o)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  SetLogLevel(LogLevel::kWarn);
  std::string tmpl = o.parent + "/brick_bench.XXXXXX";
  if (!mkdtemp(tmpl.data())) {
    std::perror("brick_bench: mkdtemp");
    return 1;
  }
  const std::string root = tmpl;
  const std::string brick_dir = root + "/brick", local_dir = root + "/local";
  std::filesystem::create_directories(brick_dir);
  std::filesystem::create_directories(local_dir);
  {
    brick::BrickServerOptions so;
    so.dir = brick_dir;
    so.disk_threads = o.disk_threads;
    so.io_threads = o.io_threads;
    so.backend.journal.fsync_policy = o.fsync;
    auto server = brick::BrickServer::Start(so);
    if (!server.ok()) {
      std::fprintf(stderr, "brick_bench: %s\n", server.status().ToString().c_str());
      std::filesystem::remove_all(root);
      return 1;
    }
    const int max_clients = *std::max_element(o.clients.begin(), o.clients.end());
    std::vector<std::unique_ptr<brick::BrickClient>> clients;
    for (int i = 0; i < max_clients; ++i) {
      auto c = brick::BrickClient::Connect("127.0.0.1", (*server)->port());
      if (!c.ok()) {
        std::fprintf(stderr, "brick_bench: %s\n", c.status().ToString().c_str());
        return 1;
      }
      clients.push_back(std::move(*c));
    }
    std::printf("brick_bench: a brick over loopback vs the same ops on a local directory\n");
    std::printf("machine:  nproc %u; brick journal fsync=%s; %.1f s per case; directory %s\n",
                std::thread::hardware_concurrency(),
                std::string(changelog::FsyncPolicyName(o.fsync)).c_str(), o.seconds,
                root.c_str());
    std::printf("cpu us:   CPU time of the whole process (clients and brick) per op, brick and "
                "local;\n          cs: its context switches per brick op\n");
    std::printf("\n%-22s %7s %14s %14s %8s  %-8s %9s %9s %7s\n", "case", "clients", "brick",
                "local", "ratio", "unit", "cpu us", "local", "cs");

    const std::string block4k(4096, 'x'), block1m(1 << 20, 'y');
    int round = 0;
    for (int n : o.clients) {
      ++round;
      // Small files: each client creates files in its own directory.
      std::vector<Gfid> dirs(n);
      for (int t = 0; t < n; ++t) {
        dirs[t] = Gfid::Random();
        auto d = clients[t]->Mkdir(Gfid::Root(), "d" + std::to_string(round) + "-" +
                                                     std::to_string(t), dirs[t], 040755);
        if (!d.ok()) std::fprintf(stderr, "brick_bench: %s\n", d.status().ToString().c_str());
        std::filesystem::create_directories(local_dir + "/d" + std::to_string(round) + "-" +
                                            std::to_string(t));
      }
      std::vector<std::vector<Gfid>> made(n);
      if (o.Want("small") || o.Want("stat")) {
      double bf = Run(n, o.Want("small") ? o.seconds : 0.2, [&](int t, uint64_t i) {
        Gfid g = Gfid::Random();
        auto c = clients[t]->Create(dirs[t], "f" + std::to_string(i), g, 0100644);
        if (!Ok(c)) return false;
        if (made[t].size() < 1000) made[t].push_back(g);
        return Ok(clients[t]->Write(g, 0, block4k));
      });
      const double bf_cpu = last_cpu_us, bf_cs = last_cs;
      double lf = Run(n, o.seconds, [&](int t, uint64_t i) {
        std::string p = local_dir + "/d" + std::to_string(round) + "-" + std::to_string(t) +
                        "/f" + std::to_string(i);
        int fd = ::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (!Ok(fd >= 0, "create")) return false;
        bool ok = ::write(fd, block4k.data(), block4k.size()) == 4096;
        return Ok(::close(fd) == 0 && ok, "write");
      });
      if (o.Want("small")) Row("small files (4 KiB)", n, bf, lf, "files/s", bf_cpu, bf_cs);
      }
      if (o.Want("stat")) {

      double bs = Run(n, o.seconds, [&](int t, uint64_t i) {
        return Ok(clients[t]->Getattr(made[t][i % made[t].size()]));
      });
      const double bs_cpu = last_cpu_us, bs_cs = last_cs;
      double ls = Run(n, o.seconds, [&](int t, uint64_t i) {
        struct stat st;
        std::string p = local_dir + "/d" + std::to_string(round) + "-" + std::to_string(t) +
                        "/f" + std::to_string(i % 1000);
        return Ok(::stat(p.c_str(), &st) == 0, "stat");
      });
      Row("stat", n, bs, ls, "ops/s", bs_cpu, bs_cs);
      }
      if (!o.Want("io")) continue;

      // 1 MiB writes and reads: each client its own 64 MiB file (sized up front, so every
      // read finds data), cycled through.
      constexpr uint64_t kSlots = 64;
      std::vector<Gfid> big(n);
      std::vector<int> lfd(n);
      for (int t = 0; t < n; ++t) {
        big[t] = Gfid::Random();
        if (!Ok(clients[t]->Create(dirs[t], "big", big[t], 0100644))) return 1;
        brick_proto::Request sz;
        sz.op = brick_proto::Op::kSetattr;
        sz.gfid = big[t];
        sz.attr_valid = brick_proto::kAttrSize;
        sz.size = kSlots << 20;
        if (!Ok(clients[t]->CallSync(sz))) return 1;
        lfd[t] = ::open((local_dir + "/big-" + std::to_string(round) + "-" + std::to_string(t))
                            .c_str(),
                        O_CREAT | O_RDWR | O_TRUNC, 0644);
        if (!Ok(lfd[t] >= 0 && ::ftruncate(lfd[t], kSlots << 20) == 0, "create big")) return 1;
      }
      double bw = Run(n, o.seconds, [&](int t, uint64_t i) {
        return Ok(clients[t]->Write(big[t], (i % kSlots) << 20, block1m));
      });
      const double bw_cpu = last_cpu_us, bw_cs = last_cs;
      double lw = Run(n, o.seconds, [&](int t, uint64_t i) {
        return Ok(::pwrite(lfd[t], block1m.data(), block1m.size(),
                           static_cast<off_t>((i % kSlots) << 20)) == (1 << 20),
                  "pwrite");
      });
      Row("1 MiB writes", n, bw, lw, "MiB/s", bw_cpu, bw_cs);
      double br = Run(n, o.seconds, [&](int t, uint64_t i) {
        auto r = clients[t]->Read(big[t], (i % kSlots) << 20, 1 << 20);
        return Ok(r) && !r->empty();
      });
      const double br_cpu = last_cpu_us, br_cs = last_cs;
      std::vector<std::string> buf(n, std::string(1 << 20, '\0'));
      double lr = Run(n, o.seconds, [&](int t, uint64_t i) {
        return ::pread(lfd[t], buf[t].data(), buf[t].size(),
                       static_cast<off_t>((i % kSlots) << 20)) > 0;
      });
      Row("1 MiB reads", n, br, lr, "MiB/s", br_cpu, br_cs);
      for (int fd : lfd) ::close(fd);
    }
    auto st = (*server)->backend()->journal()->stats();
    std::printf("\nbrick journal: %llu appends, %llu fdatasyncs (%.1f records per fdatasync)\n",
                static_cast<unsigned long long>(st.appends),
                static_cast<unsigned long long>(st.syncs),
                st.syncs ? static_cast<double>(st.appends) / static_cast<double>(st.syncs) : 0.0);
    clients.clear();
    (*server)->Stop();
  }
  std::filesystem::remove_all(root);
  return 0;
}
