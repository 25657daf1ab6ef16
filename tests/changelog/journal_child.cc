// A child process for crash and cross-process tests.
//
//   journal_child DIR THREADS POLICY SEGMENT_BYTES COUNT
//
// Appends COUNT records (0: until killed) from THREADS threads to the journal in DIR and prints
// "<lsn> <thread> <seq>" for every acknowledged append, written with one write() each so a
// kill -9 never leaves a half line. The record's offset field holds (thread << 32 | seq) so the
// parent can check that each LSN holds the record that was acknowledged for it.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "changelog/writer.h"

using namespace drfs::changelog;

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: journal_child DIR THREADS POLICY SEGMENT_BYTES COUNT\n");
    return 2;
  }
  WriterOptions o;
  auto policy = ParseFsyncPolicy(argv[3]);
  if (!policy) return 2;
  o.fsync_policy = *policy;
  o.fsync_interval_ms = 5;
  o.segment_max_bytes = std::strtoull(argv[4], nullptr, 10);
  const int threads = std::atoi(argv[2]);
  const long count = std::atol(argv[5]);
  auto w = Writer::Open(argv[1], o);
  if (!w.ok()) {
    std::fprintf(stderr, "journal_child: %s\n", w.status().ToString().c_str());
    return 1;
  }
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (uint64_t seq = 0; count == 0 || static_cast<long>(seq) < count / threads; ++seq) {
        Record r;
        r.op = OpType::kWrite;
        r.gfid.bytes[15] = 9;
        r.offset = static_cast<uint64_t>(t) << 32 | seq;
        r.length = 4096;
        auto lsn = (*w)->Append(r);
        if (!lsn.ok()) {
          std::fprintf(stderr, "journal_child: %s\n", lsn.status().ToString().c_str());
          std::_Exit(1);
        }
        char line[64];
        int n = std::snprintf(line, sizeof line, "%llu %d %llu\n",
                              static_cast<unsigned long long>(*lsn), t,
                              static_cast<unsigned long long>(seq));
        if (::write(1, line, static_cast<size_t>(n)) != n) std::_Exit(1);
      }
    });
  }
  for (auto& t : ts) t.join();
  return (*w)->Close().ok() ? 0 : 1;
}
