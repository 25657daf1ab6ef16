// A child process for the brick's crash tests.
//
//   backend_child DIR THREADS OPS SEED [markers]
//
// Opens a Backend on DIR and runs OPS random ops per thread (0: until killed) from THREADS
// threads on a small, overlapping set of names: create, write, rename, unlink, mkdir, rmdir,
// link. Prints one line per acknowledged mutation, with one write() each so a kill -9 never
// leaves half a line:
//   <lsn> <OP> <gfid> <parent> <name> <new parent> <new name>
// ("-" or the null gfid for fields an op does not have or cannot know: an unlink names an entry,
// not the object it removes). The parent checks each against the journal and the tree.
//
// With "markers", the threads run XATTROPs instead, on four files m0..m3 in the root (made once
// and kept across restarts): thread t adds +1 or -1 to counter t only, so each counter flips
// between 0 and 1 and the objects' markers keep going from all-zero to not and back (the index
// entry comes and goes). It prints one line per acknowledged XATTROP:
//   M <gfid> <t> <counter t after it>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "brick/backend.h"

using namespace drfs;
using brick_proto::Op;
using brick_proto::Reply;
using brick_proto::Request;

namespace {

void Print(const Reply& r, const char* op, const Gfid& g, const Gfid& parent,
           const std::string& name, const Gfid& new_parent = Gfid(),
           const std::string& new_name = "-") {
  if (r.err != 0 || r.lsn == 0) return;
  std::string line = std::to_string(r.lsn) + " " + op + " " + g.ToString() + " " +
                     parent.ToString() + " " + (name.empty() ? "-" : name) + " " +
                     new_parent.ToString() + " " + new_name + "\n";
  if (::write(1, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::_Exit(1);
}

Reply Check(const Reply& r, std::initializer_list<int> allowed) {
  if (r.err == 0) return r;
  for (int a : allowed) {
    if (r.err == a) return r;
  }
  std::fprintf(stderr, "backend_child: unexpected error: %s\n", r.message.c_str());
  std::_Exit(3);
}

int RunMarkers(brick::Backend& be, int threads, long ops, unsigned seed) {
  std::vector<Gfid> files;
  for (int i = 0; i < 4; ++i) {
    Request l;
    l.op = Op::kLookup;
    l.parent = Gfid::Root();
    l.name = "m" + std::to_string(i);
    Reply r = be.Execute(l);
    if (r.err == ENOENT) {
      Request c = l;
      c.op = Op::kCreate;
      c.gfid = Gfid::Random();
      c.mode = 0644;
      c.flags = brick_proto::kCreateExclusive;
      r = be.Execute(c);
    }
    if (r.err != 0) {
      std::fprintf(stderr, "backend_child: %s\n", r.message.c_str());
      return 1;
    }
    files.push_back(r.attr.gfid);
  }
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::mt19937 rng(seed * 131u + static_cast<unsigned>(t));
      const size_t me = static_cast<size_t>(t);
      std::vector<int32_t> mine(files.size());  // counter t of each file, as last seen
      for (size_t i = 0; i < files.size(); ++i) {
        Request g;
        g.op = Op::kGetattr;
        g.gfid = files[i];
        Reply r = Check(be.Execute(g), {});
        mine[i] = me < r.pending.size() ? r.pending[me] : 0;
      }
      for (long n = 0; ops == 0 || n < ops; ++n) {
        const size_t i = static_cast<size_t>(rng() % files.size());
        Request x;
        x.op = Op::kXattrop;
        x.gfid = files[i];
        x.pending.assign(me + 1, 0);
        x.pending[me] = mine[i] > 0 ? -1 : 1;
        Reply r = Check(be.Execute(x), {});
        mine[i] = me < r.pending.size() ? r.pending[me] : 0;
        std::string line = "M " + files[i].ToString() + " " + std::to_string(t) + " " +
                           std::to_string(mine[i]) + "\n";
        if (::write(1, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
          std::_Exit(1);
        }
      }
    });
  }
  for (auto& t : ts)
    t.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 && !(argc == 6 && std::string(argv[5]) == "markers")) {
    std::fprintf(stderr, "usage: backend_child DIR THREADS OPS SEED [markers]\n");
    return 2;
  }
  brick::BackendOptions o;
  o.journal.fsync_policy = changelog::FsyncPolicy::kNever;  // kill -9 keeps the page cache
  auto b = brick::Backend::Open(argv[1], o);
  if (!b.ok()) {
    std::fprintf(stderr, "backend_child: %s\n", b.status().ToString().c_str());
    return 1;
  }
  brick::Backend& be = **b;
  const int threads = std::atoi(argv[2]);
  const long ops = std::atol(argv[3]);
  const unsigned seed = static_cast<unsigned>(std::atol(argv[4]));
  if (argc == 6) return RunMarkers(be, threads, ops, seed);
  // Top-level directories, made once and kept across restarts.
  std::vector<Gfid> dirs;
  for (int i = 0; i < 3; ++i) {
    Request l;
    l.op = Op::kLookup;
    l.parent = Gfid::Root();
    l.name = "d" + std::to_string(i);
    Reply r = be.Execute(l);
    if (r.err == ENOENT) {
      Request m = l;
      m.op = Op::kMkdir;
      m.gfid = Gfid::Random();
      m.mode = 0755;
      r = be.Execute(m);
      Print(r, "MKDIR", m.gfid, m.parent, m.name);
      r.attr.gfid = m.gfid;
    }
    if (r.err != 0) {
      std::fprintf(stderr, "backend_child: %s\n", r.message.c_str());
      return 1;
    }
    dirs.push_back(r.attr.gfid);
  }
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::mt19937 rng(seed * 131u + static_cast<unsigned>(t));
      auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
      for (long i = 0; ops == 0 || i < ops; ++i) {
        const Gfid p = dirs[pick(dirs.size())];
        const std::string name = "n" + std::to_string(pick(10));
        Request q;
        q.parent = p;
        q.name = name;
        switch (pick(8)) {
          case 0:
          case 1: {
            q.op = Op::kCreate;
            q.gfid = Gfid::Random();
            q.mode = 0644;
            q.flags = brick_proto::kCreateExclusive;
            Print(Check(be.Execute(q), {EEXIST}), "CREATE", q.gfid, p, name);
            break;
          }
          case 2: {
            q.op = Op::kLookup;
            Reply l = be.Execute(q);
            if (l.err != 0) break;
            Request w;
            w.op = Op::kWrite;
            w.gfid = l.attr.gfid;
            w.offset = pick(8192);
            w.data = std::string(64, static_cast<char>('a' + t));
            Print(Check(be.Execute(w), {ENOENT, EISDIR}), "WRITE", w.gfid, Gfid(), "-");
            break;
          }
          case 3: {
            q.op = Op::kRename;
            q.new_parent = dirs[pick(dirs.size())];
            q.new_name = "n" + std::to_string(pick(10));
            Print(Check(be.Execute(q), {ENOENT, EISDIR, ENOTDIR, ENOTEMPTY}), "RENAME", Gfid(), p,
                  name, q.new_parent, q.new_name);
            break;
          }
          case 4: {
            q.op = Op::kUnlink;
            Print(Check(be.Execute(q), {ENOENT, EISDIR}), "UNLINK", Gfid(), p, name);
            break;
          }
          case 5: {
            q.op = Op::kMkdir;
            q.gfid = Gfid::Random();
            q.mode = 0755;
            Print(Check(be.Execute(q), {EEXIST}), "MKDIR", q.gfid, p, name);
            break;
          }
          case 6: {
            q.op = Op::kRmdir;
            Print(Check(be.Execute(q), {ENOENT, ENOTDIR, ENOTEMPTY}), "RMDIR", Gfid(), p, name);
            break;
          }
          case 7: {
            Request l = q;
            l.op = Op::kLookup;
            Reply lr = be.Execute(l);
            if (lr.err != 0 || S_ISDIR(lr.attr.mode)) break;
            q.op = Op::kLink;
            q.gfid = lr.attr.gfid;
            q.parent = dirs[pick(dirs.size())];
            q.name = "n" + std::to_string(pick(10));
            Print(Check(be.Execute(q), {EEXIST, ENOENT}), "LINK", q.gfid, q.parent, q.name);
            break;
          }
        }
      }
    });
  }
  for (auto& t : ts)
    t.join();
  return 0;
}
