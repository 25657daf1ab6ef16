// changelog_bench: journal append rate and latency, measured against the disk's own limit.
//
// For each fsync policy and thread count it appends realistic records (CREATE with a 20-40 byte
// name, and WRITE) to a fresh journal with Writer::Append. On the same file system it writes the
// same framed bytes with plain write()+fdatasync() per record, from one thread (the physical
// limit every "always" row is compared with) and from several threads sharing one O_APPEND file
// (a journal without group commit). It prints numbers; it never passes or fails.
#include <fcntl.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "changelog/format.h"
#include "changelog/record.h"
#include "changelog/writer.h"
#include "common/crc32c.h"
#include "common/gfid.h"
#include "common/status.h"
#include "common/time.h"

namespace {

using drfs::Result;
using drfs::Status;
using drfs::changelog::FsyncPolicy;
using Clock = std::chrono::steady_clock;

constexpr char kUsage[] =
    "usage: changelog_bench [--dir DIR] [--seconds N] [--threads-list 1,8] [--quick]\n"
    "  --dir DIR          parent directory for the test files (default /var/tmp); a fresh\n"
    "                     subdirectory is made in it and removed at the end\n"
    "  --seconds N        seconds per case (default 3)\n"
    "  --threads-list L   comma-separated appender thread counts (default 1,8)\n"
    "  --quick            0.5 s per case, for smoke tests\n";
constexpr size_t kRecordsPerThread = 1024;  // cycled through; generated before timing

struct Options {
  std::string parent = "/var/tmp";
  double seconds = 3;
  std::vector<int> threads = {1, 8};
};

// One thread's records, and the same records framed as the journal stores them.
struct Workload {
  std::vector<drfs::changelog::Record> records;
  std::vector<std::string> frames;
};

struct CaseResult {
  std::string name;
  int threads = 0;
  uint64_t ops = 0, bytes = 0;
  double seconds = 0, p50_us = 0, p99_us = 0;
  double records_per_sync = 0;  // 0: not applicable
  std::string note;             // printed under the table
};

Workload MakeWorkload(uint32_t seed) {
  using drfs::changelog::OpType;
  static constexpr char kAlnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::mt19937 rng(seed);
  const drfs::Gfid parent = drfs::Gfid::Random();
  Workload w;
  for (size_t i = 0; i < kRecordsPerThread; ++i) {
    drfs::changelog::Record r;
    r.gfid = drfs::Gfid::Random();
    if (i % 4 == 3) {  // one WRITE for every three CREATEs
      r.op = OpType::kWrite;
      r.offset = uint64_t{rng() % 4096} * 4096;
      r.length = uint64_t{1 + rng() % 32} * 4096;
    } else {
      r.op = OpType::kCreate;
      r.parent = parent;
      r.name.resize(20 + rng() % 21);
      for (char& c : r.name)
        c = kAlnum[rng() % (sizeof kAlnum - 1)];
      r.mode = 0100644;
      r.uid = r.gid = 1000;
    }
    drfs::changelog::Record stamped = r;  // the writer assigns these two; same size either way
    stamped.lsn = i + 1;
    stamped.timestamp_ns = drfs::NowNs();
    std::string frame;
    drfs::changelog::AppendFrame(stamped, &frame);
    w.records.push_back(std::move(r));
    w.frames.push_back(std::move(frame));
  }
  return w;
}

double Percentile(std::vector<int64_t>& v, double q) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return static_cast<double>(v[k]) / 1000.0;
}

// Runs op(thread, record index) in `threads` threads for `seconds`, timing every call.
template <typename Op>
Result<CaseResult> RunThreads(int threads, double seconds, const std::vector<Workload>& work,
                              const Op& op) {
  struct PerThread {
    std::vector<int64_t> lat_ns;
    uint64_t bytes = 0;
    Status status;
  };
  std::vector<PerThread> per(static_cast<size_t>(threads));
  std::atomic<bool> go{false}, stop{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      PerThread& me = per[static_cast<size_t>(t)];
      const Workload& w = work[static_cast<size_t>(t)];
      me.lat_ns.reserve(1 << 20);
      while (!go.load(std::memory_order_acquire))
        std::this_thread::yield();
      for (size_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        const size_t k = i % w.records.size();
        const Clock::time_point t0 = Clock::now();
        Status s = op(t, k);
        const Clock::time_point t1 = Clock::now();
        if (!s.ok()) {
          me.status = s;
          stop.store(true);
          break;
        }
        me.lat_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
        me.bytes += w.frames[k].size();
      }
    });
  }
  const Clock::time_point start = Clock::now();
  go.store(true, std::memory_order_release);
  while (!stop.load() && Clock::now() - start < std::chrono::duration<double>(seconds)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop.store(true);
  for (auto& th : pool)
    th.join();
  CaseResult c;
  c.threads = threads;
  c.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<int64_t> all;
  for (auto& p : per) {
    if (!p.status.ok()) return p.status;
    all.insert(all.end(), p.lat_ns.begin(), p.lat_ns.end());
    c.bytes += p.bytes;
  }
  c.ops = all.size();
  c.p50_us = Percentile(all, 0.50);
  c.p99_us = Percentile(all, 0.99);
  return c;
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return drfs::ErrnoStatus(errno, "write " + path);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// `threads` threads each doing write(record)+fdatasync() on one shared O_APPEND file.
Result<CaseResult> RunRaw(const std::string& dir, int threads, double seconds,
                          const std::vector<Workload>& work) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return drfs::ErrnoStatus(ec.value(), "mkdir " + dir);
  const std::string path = dir + "/raw.log";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return drfs::ErrnoStatus(errno, "open " + path);
  auto res = RunThreads(threads, seconds, work, [&](int t, size_t k) -> Status {
    DRFS_RETURN_IF_ERROR(WriteAll(fd, work[static_cast<size_t>(t)].frames[k], path));
    if (::fdatasync(fd) != 0) return drfs::ErrnoStatus(errno, "fdatasync " + path);
    return Status::Ok();
  });
  ::close(fd);
  if (res.ok()) {
    res->name = threads == 1 ? "raw write+fdatasync" : "raw shared O_APPEND";
    res->records_per_sync = 1;
  }
  return res;
}

Result<CaseResult> RunJournal(const std::string& dir, FsyncPolicy policy, int threads,
                              double seconds, const std::vector<Workload>& work) {
  drfs::changelog::WriterOptions opts;
  opts.fsync_policy = policy;
  auto opened = drfs::changelog::Writer::Open(dir, opts);
  if (!opened.ok()) return opened.status();
  drfs::changelog::Writer* writer = opened->get();
  auto res = RunThreads(threads, seconds, work, [&](int t, size_t k) -> Status {
    auto lsn = writer->Append(work[static_cast<size_t>(t)].records[k]);
    return lsn.ok() ? Status::Ok() : lsn.status();
  });
  const drfs::changelog::Writer::Stats st = writer->stats();  // before Close's final sync
  Status closed = writer->Close();
  if (!res.ok()) return res;
  if (!closed.ok()) return closed;
  res->name = "journal " + std::string(drfs::changelog::FsyncPolicyName(policy));
  if (st.syncs > 0) {
    res->records_per_sync = static_cast<double>(st.appends) / static_cast<double>(st.syncs);
  }
  if (policy == FsyncPolicy::kAlways) {
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "%s x%d: %llu appends, %llu write() calls, %llu fdatasyncs -> %.1f records "
                  "per fdatasync",
                  res->name.c_str(), threads, static_cast<unsigned long long>(st.appends),
                  static_cast<unsigned long long>(st.flushes),
                  static_cast<unsigned long long>(st.syncs), res->records_per_sync);
    res->note = buf;
  }
  return res;
}

std::string FsName(const std::string& dir) {
  struct statfs st {};
  if (::statfs(dir.c_str(), &st) != 0) return "unknown (statfs failed)";
  const auto magic = static_cast<uint32_t>(st.f_type);
  static constexpr struct {
    uint32_t type;
    const char* label;
  } kKnown[] = {{0xEF53, "ext4"},
                {0x58465342, "xfs"},
                {0x9123683E, "btrfs"},
                {0x794C7630, "overlayfs"},
                {0x2FC12FC1, "zfs"},
                {0xF2F52010, "f2fs"},
                {0x6969, "nfs"},
                {0x65735546, "fuse"},
                {0x01021994, "tmpfs: fdatasync is a no-op, these are not disk numbers"}};
  const char* name = "unknown";
  for (const auto& k : kKnown) {
    if (k.type == magic) name = k.label;
  }
  char buf[128];
  std::snprintf(buf, sizeof buf, "%s, f_type 0x%x", name, magic);
  return buf;
}

void PrintRow(const CaseResult& c, double raw_rate) {
  const double rate = c.seconds > 0 ? static_cast<double>(c.ops) / c.seconds : 0;
  const double mbps = c.seconds > 0 ? static_cast<double>(c.bytes) / c.seconds / 1e6 : 0;
  char ratio[16] = "-", per_sync[16] = "-";
  if (raw_rate > 0) std::snprintf(ratio, sizeof ratio, "%.2fx", rate / raw_rate);
  if (c.records_per_sync > 0) std::snprintf(per_sync, sizeof per_sync, "%.1f", c.records_per_sync);
  std::printf("%-22s %7d %11.0f %8.2f %9.1f %9.1f %9s %9s\n", c.name.c_str(), c.threads, rate, mbps,
              c.p50_us, c.p99_us, ratio, per_sync);
  std::fflush(stdout);
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--quick") {
      o->seconds = 0.5;
      continue;
    }
    if (i + 1 >= argc || argv[i + 1][0] == '\0') return false;
    const std::string val = argv[++i];
    char* end = nullptr;
    if (arg == "--dir") {
      o->parent = val;
    } else if (arg == "--seconds") {
      o->seconds = std::strtod(val.c_str(), &end);
      if (*end != '\0' || !(o->seconds > 0 && o->seconds <= 3600)) return false;
    } else if (arg == "--threads-list") {
      o->threads.clear();
      for (size_t pos = 0; pos <= val.size();) {
        size_t comma = std::min(val.find(',', pos), val.size());
        std::string item = val.substr(pos, comma - pos);
        long n = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || n < 1 || n > 256) return false;
        o->threads.push_back(static_cast<int>(n));
        pos = comma + 1;
      }
    } else {
      return false;
    }
  }
  return true;
}

int Run(const Options& opts, const std::string& root) {
  utsname un{};
  ::uname(&un);
  std::vector<Workload> work;
  const int max_threads = *std::max_element(opts.threads.begin(), opts.threads.end());
  size_t frame_bytes = 0;
  for (int t = 0; t < max_threads; ++t) {
    work.push_back(MakeWorkload(static_cast<uint32_t>(t + 1)));
    for (const auto& f : work.back().frames)
      frame_bytes += f.size();
  }
  std::string list;
  for (int t : opts.threads) {
    if (!list.empty()) list.push_back(',');
    list.append(std::to_string(t));
  }
  std::printf("changelog_bench: drfs changelog appends vs raw write+fdatasync\n");
  std::printf("machine:   nproc %ld, kernel %s %s %s\n", ::sysconf(_SC_NPROCESSORS_ONLN),
              un.sysname, un.release, un.machine);
  std::printf("directory: %s (%s)\n", root.c_str(), FsName(root).c_str());
  std::printf("crc32c:    %s\n", drfs::crc32c::HardwareAccelerated() ? "hardware" : "software");
  std::printf(
      "records:   3 CREATE (20-40 byte name) : 1 WRITE, %.1f framed bytes on average\n",
      static_cast<double>(frame_bytes) / static_cast<double>(work.size() * kRecordsPerThread));
  std::printf("cases:     %.1f s each, threads %s, interval policy syncs every %u ms; MB = 1e6 B\n",
              opts.seconds, list.c_str(), drfs::changelog::WriterOptions{}.fsync_interval_ms);
  std::printf("vs raw:    appends/s divided by the 1-thread raw write+fdatasync rate\n\n");
  std::printf("%-22s %7s %11s %8s %9s %9s %9s %9s\n", "case", "threads", "appends/s", "MB/s",
              "p50 us", "p99 us", "vs raw", "rec/fsync");

  int run = 0;
  double raw_rate = 0;
  std::vector<std::string> notes;
  auto finish = [&](Result<CaseResult> res, const std::string& dir) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (!res.ok()) {
      std::fprintf(stderr, "changelog_bench: %s\n", res.status().ToString().c_str());
      return false;
    }
    if (raw_rate == 0) raw_rate = static_cast<double>(res->ops) / res->seconds;
    PrintRow(*res, raw_rate);
    if (!res->note.empty()) notes.push_back(res->note);
    return true;
  };
  std::vector<int> raw_threads = {1};
  for (int t : opts.threads) {
    if (t > 1) raw_threads.push_back(t);
  }
  for (int t : raw_threads) {
    const std::string dir = root + "/run" + std::to_string(++run);
    if (!finish(RunRaw(dir, t, opts.seconds, work), dir)) return 1;
  }
  for (FsyncPolicy p : {FsyncPolicy::kAlways, FsyncPolicy::kInterval, FsyncPolicy::kNever}) {
    for (int t : opts.threads) {
      const std::string dir = root + "/run" + std::to_string(++run);
      if (!finish(RunJournal(dir, p, t, opts.seconds, work), dir)) return 1;
    }
  }
  std::printf(
      "\nwriter stats, fsync=always (group commit at work when records per fdatasync > 1):\n");
  for (const auto& n : notes)
    std::printf("  %s\n", n.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  if (argc == 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!ParseArgs(argc, argv, &opts)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string tmpl = opts.parent + "/changelog_bench.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::fprintf(stderr, "changelog_bench: cannot make a directory under %s: %s\n",
                 opts.parent.c_str(), std::strerror(errno));
    return 1;
  }
  const int rc = Run(opts, tmpl);
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  if (ec) {
    std::fprintf(stderr, "changelog_bench: could not remove %s: %s\n", tmpl.c_str(),
                 ec.message().c_str());
  }
  return rc;
}
