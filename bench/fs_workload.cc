// fs_workload: one timed file-system workload on a directory, for scripts/bench-fs. It makes
// the system calls itself, so that what is timed is the file system (local, FUSE, GlusterFS,
// drfs), not process start-up. Prints one line: "<workload> <value> <unit> (<detail>)".
//
//   fs_workload create DIR FILES SIZE DIRS   FILES files of SIZE bytes in DIRS subdirectories
//                                            (DIR/dNN/fNNNNN, file i in directory i % DIRS);
//                                            files/s, open+write+close each
//   fs_workload stat DIR N DIRS              stat the first N of those files; ops/s
//   fs_workload rename DIR N DIRS            rename them to rNNNNN in the same directory; ops/s
//   fs_workload unlink DIR N DIRS            unlink the renamed files; ops/s
//   fs_workload seqwrite FILE MIB            MIB 1 MiB writes, then fsync; MB/s (1e6 B/s)
//   fs_workload seqread FILE                 read it in 1 MiB blocks; MB/s
//
// Any failing call ends the run with exit status 1 and the call, path and errno on stderr.
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const char* what, const std::string& path) {
  fprintf(stderr, "fs_workload: %s %s: %s\n", what, path.c_str(), strerror(errno));
  exit(1);
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::string FilePath(const std::string& dir, long i, long dirs, char prefix) {
  char buf[64];
  snprintf(buf, sizeof buf, "/d%02ld/%c%05ld", i % dirs, prefix, i);
  return dir + buf;
}

long Arg(char** argv, int i) {
  char* end = nullptr;
  long v = strtol(argv[i], &end, 10);
  if (!end || *end != '\0' || v <= 0) {
    fprintf(stderr, "fs_workload: '%s' is not a positive number\n", argv[i]);
    exit(2);
  }
  return v;
}

void Report(const char* workload, double ops, double secs, const char* unit) {
  printf("%s %.1f %s (%.0f in %.3f s)\n", workload, ops / secs, unit, ops, secs);
}

int Usage() {
  fprintf(stderr,
          "usage: fs_workload create DIR FILES SIZE DIRS | stat|rename|unlink DIR N DIRS |\n"
          "                   seqwrite FILE MIB | seqread FILE\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Usage();
  std::string cmd = argv[1], dir = argv[2];
  if (cmd == "create" && argc == 6) {
    long files = Arg(argv, 3), size = Arg(argv, 4), dirs = Arg(argv, 5);
    for (long d = 0; d < dirs; d++) {
      char buf[32];
      snprintf(buf, sizeof buf, "/d%02ld", d);
      if (mkdir((dir + buf).c_str(), 0755) != 0 && errno != EEXIST) Die("mkdir", dir + buf);
    }
    std::string data(static_cast<size_t>(size), 'x');
    auto t0 = Clock::now();
    for (long i = 0; i < files; i++) {
      std::string p = FilePath(dir, i, dirs, 'f');
      int fd = open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      if (fd < 0) Die("open(O_CREAT)", p);
      if (write(fd, data.data(), data.size()) != size) Die("write", p);
      if (close(fd) != 0) Die("close", p);
    }
    Report("create", static_cast<double>(files), Seconds(t0), "files/s");
  } else if ((cmd == "stat" || cmd == "rename" || cmd == "unlink") && argc == 5) {
    long n = Arg(argv, 3), dirs = Arg(argv, 4);
    auto t0 = Clock::now();
    for (long i = 0; i < n; i++) {
      std::string f = FilePath(dir, i, dirs, 'f'), r = FilePath(dir, i, dirs, 'r');
      if (cmd == "stat") {
        struct stat st;
        if (stat(f.c_str(), &st) != 0) Die("stat", f);
      } else if (cmd == "rename") {
        if (rename(f.c_str(), r.c_str()) != 0) Die("rename", f);
      } else if (unlink(r.c_str()) != 0) {
        Die("unlink", r);
      }
    }
    Report(cmd.c_str(), static_cast<double>(n), Seconds(t0), "ops/s");
  } else if (cmd == "seqwrite" && argc == 4) {
    long mib = Arg(argv, 3);
    std::vector<char> block(1 << 20);
    std::mt19937_64 rng(12345);
    for (size_t i = 0; i + 8 <= block.size(); i += 8) {
      uint64_t v = rng();
      memcpy(&block[i], &v, 8);
    }
    auto t0 = Clock::now();
    int fd = open(dir.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0) Die("open", dir);
    for (long i = 0; i < mib; i++) {
      block[0] = static_cast<char>(i);  // no two blocks alike
      ssize_t n = write(fd, block.data(), block.size());
      if (n != static_cast<ssize_t>(block.size())) Die("write", dir);
    }
    if (fsync(fd) != 0) Die("fsync", dir);
    if (close(fd) != 0) Die("close", dir);
    double secs = Seconds(t0);
    printf("seqwrite %.1f MB/s (%ld MiB with fsync in %.3f s)\n",
           static_cast<double>(mib << 20) / 1e6 / secs, mib, secs);
  } else if (cmd == "seqread" && argc == 3) {
    std::vector<char> block(1 << 20);
    auto t0 = Clock::now();
    int fd = open(dir.c_str(), O_RDONLY);
    if (fd < 0) Die("open", dir);
    long long total = 0;
    for (;;) {
      ssize_t n = read(fd, block.data(), block.size());
      if (n < 0) Die("read", dir);
      if (n == 0) break;
      total += n;
    }
    close(fd);
    double secs = Seconds(t0);
    printf("seqread %.1f MB/s (%lld MiB in %.3f s)\n", static_cast<double>(total) / 1e6 / secs,
           total >> 20, secs);
  } else {
    return Usage();
  }
  return 0;
}
