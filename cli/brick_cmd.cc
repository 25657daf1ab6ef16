// drfs brick serve|op
#include <signal.h>

#include <cinttypes>
#include <cstdio>
#include <iostream>
#include <limits>
#include <thread>

#include "brick/client.h"
#include "brick/server.h"
#include "changelog/writer.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "common/json.h"
#include "common/log.h"

namespace drfs::cli {
namespace {

using namespace drfs::brick_proto;

constexpr char kUsage[] =
    "usage: drfs brick <command> ...\n"
    "\n"
    "  serve --dir DIR --port PORT [--host H] [--tls-cert F --tls-key F --tls-ca F]\n"
    "        [--read-only [--applier-secret-file F]] [--arbiter] [--brick-id UUID]\n"
    "        [--fsync always|interval|never] [--threads N]\n"
    "        [--fsync-interval-ms N] [--rollover-size BYTES] [--rollover-time-ms N]\n"
    "        [--keep-unclaimed BYTES]\n"
    "      (--threads: disk threads, default 32; they mostly wait on the journal's fsync)\n"
    "      Export DIR as a brick, in the foreground, until SIGINT or SIGTERM. Every mutation is\n"
    "      journaled to DIR/.drfs/changelog (see 'drfs changelog'). --port 0 picks a free port\n"
    "      and prints it. With --read-only only the applier may change anything: a client\n"
    "      whose certificate role is 'applier', or one whose hello presents the secret kept in\n"
    "      the --applier-secret-file F (mode 0600, not empty; drfsd makes one per secondary\n"
    "      volume). Every other client's mutation gets EROFS. An --arbiter brick keeps names, attributes and xattrs but no file\n"
    "      data (the tie-breaker of a 'replica 3 arbiter 1' set): writes are journaled but not\n"
    "      stored, and reads fail.\n"
    "\n"
    "  op HOST:PORT OP [--gfid G --parent G --name N --new-parent G --new-name N --mode OCTAL\n"
    "        --uid N --gid N --rdev N --flags N --target T --offset N --length N --data STR\n"
    "        --size N --atime-ns N --mtime-ns N --set mode,uid,gid,size,atime,mtime\n"
    "        --xattr NAME --value STR --owner N --pending N,N,...]\n"
    "        [--tls-cert F --tls-key F --tls-ca F] [--applier-secret-file F] [--json]\n"
    "      Send one brick protocol op and print the reply (debugging and demos). OP is one of\n"
    "      LOOKUP GETATTR SETATTR MKDIR CREATE MKNOD SYMLINK READLINK LINK UNLINK RMDIR RENAME\n"
    "      READ WRITE FSYNC FALLOCATE READDIR STATFS ACCESS GETXATTR SETXATTR LISTXATTR\n"
    "      REMOVEXATTR LOOKUP_GFID RESOLVE_GFID INODELK ENTRYLK XATTROP HEAL_INDEX. Create-type\n"
    "      ops without --gfid get a random one. --parent/--gfid default to the root.\n"
    "      XATTROP adds --pending deltas to an object's pending-heal markers and prints them;\n"
    "      HEAL_INDEX lists the gfids with markers not all zero (--offset cookie, --length max).\n"
    "      INODELK/ENTRYLK take --owner and --flags (1 unlock, 2 block); a lock lasts only as\n"
    "      long as the command's connection, so this is for probing whether one is free.\n"
    "      --applier-secret-file sends the secret in F with the hello, as the applier does.\n";

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

int Serve(const Args& a) {
  if (!a.positional.empty()) return UsageError("brick serve takes no positional arguments", kUsage);
  auto dir = a.Get("dir");
  auto port = a.Get("port");
  if (!dir || !port) return UsageError("brick serve needs --dir and --port", kUsage);
  brick::BrickServerOptions o;
  o.dir = *dir;
  auto p = ParseUint(*port, "--port");
  if (!p.ok() || *p > 65535) return UsageError("--port must be 0-65535", kUsage);
  o.port = static_cast<uint16_t>(*p);
  o.host = a.Get("host").value_or("127.0.0.1");
  auto tls = ServerTlsFromArgs(a);
  if (!tls.ok()) return UsageError(tls.status().message(), kUsage);
  o.tls = *tls;
  o.backend.read_only = a.Has("read-only");
  if (auto f = a.Get("applier-secret-file")) {
    if (!o.backend.read_only) {
      return UsageError("--applier-secret-file only applies to a --read-only brick", kUsage);
    }
    auto secret = brick::ReadApplierSecretFile(*f);
    if (!secret.ok()) return Fail(secret.status().WithContext("brick " + o.dir));
    o.applier_secret = std::move(*secret);
  }
  o.backend.arbiter = a.Has("arbiter");
  o.backend.journal.epoch = 0;  // keep the journal's epoch
  if (auto v = a.Get("fsync")) {
    auto fp = changelog::ParseFsyncPolicy(*v);
    if (!fp) return UsageError("--fsync must be always, interval or never", kUsage);
    o.backend.journal.fsync_policy = *fp;
  }
  if (Status s = GetUintOption(a, "fsync-interval-ms", &o.backend.journal.fsync_interval_ms);
      !s.ok() || o.backend.journal.fsync_interval_ms == 0) {
    return UsageError("--fsync-interval-ms must be a positive number of milliseconds", kUsage);
  }
  if (Status s = GetUintOption(a, "rollover-size", &o.backend.journal.segment_max_bytes);
      !s.ok() || o.backend.journal.segment_max_bytes < 4096) {
    return UsageError("--rollover-size must be a byte count of at least 4096", kUsage);
  }
  if (Status s = GetUintOption(a, "keep-unclaimed", &o.backend.journal.keep_unclaimed_bytes);
      !s.ok()) {
    return UsageError("--keep-unclaimed must be a byte count (0: keep the whole journal while no "
                      "cursor is registered)",
                      kUsage);
  }
  if (Status s = GetUintOption(a, "rollover-time-ms", &o.backend.journal.segment_max_age_ms);
      !s.ok() || o.backend.journal.segment_max_age_ms == 0) {
    return UsageError("--rollover-time-ms must be a positive number of milliseconds", kUsage);
  }
  if (auto v = a.Get("brick-id")) {
    auto g = Gfid::Parse(*v);
    if (!g) return UsageError("--brick-id '" + *v + "' is not a uuid", kUsage);
    o.backend.journal.brick_id = *g;
  }
  if (auto v = a.Get("threads")) {
    auto n = ParseUint(*v, "--threads");
    if (!n.ok() || *n < 1 || *n > 256) return UsageError("--threads must be 1-256", kUsage);
    o.disk_threads = static_cast<int>(*n);
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  auto server = brick::BrickServer::Start(o);
  if (!server.ok()) return Fail(server.status());
  // Scripts that asked for port 0 read the port from this line.
  std::printf("brick %s listening on %s:%u\n", o.dir.c_str(), o.host.c_str(),
              static_cast<unsigned>((*server)->port()));
  std::fflush(stdout);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  DRFS_LOG(Info) << "brick " << o.dir << ": stopping";
  (*server)->Stop();
  return kExitOk;
}

bool SplitHostPort(const std::string& s, std::string* host, uint16_t* port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  auto p = ParseUint(s.substr(colon + 1), "port");
  if (!p.ok() || *p == 0 || *p > 65535) return false;
  *host = s.substr(0, colon);
  *port = static_cast<uint16_t>(*p);
  return true;
}

std::string ModeString(uint32_t m) {
  char b[16];
  std::snprintf(b, sizeof b, "0%o", m);
  return b;
}

void IattJson(JsonWriter& j, const Iatt& a) {
  j.BeginObject().Key("gfid").String(a.gfid.ToString()).Key("mode").Uint(a.mode);
  j.Key("nlink").Uint(a.nlink).Key("uid").Uint(a.uid).Key("gid").Uint(a.gid);
  j.Key("size").Uint(a.size).Key("mtime_ns").Int(a.mtime_ns).EndObject();
}

std::string PendingText(const std::vector<int32_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i)
    s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

std::string IattLine(const Iatt& a) {
  return "gfid=" + a.gfid.ToString() + " mode=" + ModeString(a.mode) +
         " nlink=" + std::to_string(a.nlink) + " uid=" + std::to_string(a.uid) +
         " gid=" + std::to_string(a.gid) + " size=" + std::to_string(a.size);
}

Status FillRequest(const Args& a, Request* q) {
  const bool creates = q->op == Op::kMkdir || q->op == Op::kCreate || q->op == Op::kMknod ||
                       q->op == Op::kSymlink;
  q->gfid = creates ? Gfid::Random() : Gfid::Root();
  q->parent = Gfid::Root();
  DRFS_RETURN_IF_ERROR(GetGfidOption(a, "gfid", &q->gfid));
  DRFS_RETURN_IF_ERROR(GetGfidOption(a, "parent", &q->parent));
  // An ENTRYLK names a second entry only when asked to.
  q->new_parent = q->op == Op::kEntrylk ? Gfid() : q->parent;
  DRFS_RETURN_IF_ERROR(GetGfidOption(a, "new-parent", &q->new_parent));
  q->name = a.Get("name").value_or("");
  q->new_name = a.Get("new-name").value_or("");
  q->target = a.Get("target").value_or("");
  q->data = a.Get("data").value_or("");
  q->xattr_name = a.Get("xattr").value_or("");
  q->xattr_value = a.Get("value").value_or("");
  if (q->op == Op::kCreate) q->flags = kCreateExclusive;
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "mode", &q->mode, 8));
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "uid", &q->uid));
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "gid", &q->gid));
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "rdev", &q->rdev));
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "flags", &q->flags));
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "offset", &q->offset));
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "length", &q->length));
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "size", &q->size));
  DRFS_RETURN_IF_ERROR(GetIntOption(a, "atime-ns", &q->atime_ns));
  DRFS_RETURN_IF_ERROR(GetIntOption(a, "mtime-ns", &q->mtime_ns));
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "owner", &q->lock_owner));
  if (auto v = a.Get("pending")) {
    std::string list = *v + ",";
    for (size_t start = 0, c = list.find(','); c != std::string::npos;
         start = c + 1, c = list.find(',', start)) {
      DRFS_ASSIGN_OR_RETURN(int64_t n, ParseInt(list.substr(start, c - start), "--pending"));
      if (n < std::numeric_limits<int32_t>::min() || n > std::numeric_limits<int32_t>::max()) {
        return InvalidArgument("--pending: " + std::to_string(n) + " does not fit an int32");
      }
      q->pending.push_back(static_cast<int32_t>(n));
    }
    if (q->pending.size() > kMaxPendingCounters) {
      return InvalidArgument("--pending: at most " + std::to_string(kMaxPendingCounters) +
                             " counters");
    }
  }
  if (auto v = a.Get("set")) {
    std::string s = *v + ",";
    size_t start = 0;
    for (size_t c = s.find(','); c != std::string::npos; start = c + 1, c = s.find(',', start)) {
      std::string f = s.substr(start, c - start);
      if (f == "mode") q->attr_valid |= kAttrMode;
      else if (f == "uid") q->attr_valid |= kAttrUid;
      else if (f == "gid") q->attr_valid |= kAttrGid;
      else if (f == "size") q->attr_valid |= kAttrSize;
      else if (f == "atime") q->attr_valid |= kAttrAtime;
      else if (f == "mtime") q->attr_valid |= kAttrMtime;
      else return InvalidArgument("--set: unknown field '" + f + "'");
    }
  }
  if (q->op == Op::kRead && !a.Has("length")) q->length = 1 << 20;
  return Status::Ok();
}

int OpCmd(const Args& a) {
  if (a.positional.size() != 2) return UsageError("brick op takes HOST:PORT and OP", kUsage);
  std::string host;
  uint16_t port;
  if (!SplitHostPort(a.positional[0], &host, &port)) {
    return UsageError("'" + a.positional[0] + "' is not HOST:PORT", kUsage);
  }
  auto op = ParseOpName(a.positional[1]);
  if (!op || *op == Op::kHello) return UsageError("unknown op '" + a.positional[1] + "'", kUsage);
  Request q;
  q.op = *op;
  if (Status s = FillRequest(a, &q); !s.ok()) return UsageError(s.message(), kUsage);
  ClientOptions co;
  co.connect_timeout = std::chrono::milliseconds(5000);
  std::string secret;
  if (auto f = a.Get("applier-secret-file")) {
    auto s = brick::ReadApplierSecretFile(*f);
    if (!s.ok()) return Fail(s.status());
    secret = std::move(*s);
  }
  auto client = brick::BrickClient::Connect(host, port, TlsFromArgs(a), co, secret);
  if (!client.ok()) return Fail(client.status());
  auto r = (*client)->Call(q).get();
  if (!r.ok()) return Fail(r.status());
  if (r->err != 0) {
    std::cerr << "drfs: " << OpName(q.op) << " on brick " << a.positional[0]
              << " failed: " << r->message << " (errno " << r->err << ")\n";
    return kExitError;
  }
  if (a.Has("json")) {
    JsonWriter j;
    j.BeginObject().Key("op").String(OpName(q.op)).Key("lsn").Uint(r->lsn);
    j.Key("attr");
    IattJson(j, r->attr);
    j.Key("data").String(r->data).Key("count").Uint(r->count);
    j.Key("entries").BeginArray();
    for (const auto& e : r->entries) {
      j.BeginObject().Key("name").String(e.name).Key("gfid").String(e.gfid.ToString());
      j.Key("type").Uint(e.type).Key("cookie").Uint(e.cookie).EndObject();
    }
    j.EndArray().Key("eof").Bool(r->eof).Key("names").BeginArray();
    for (const auto& n : r->names) j.String(n);
    j.EndArray().Key("pending").BeginArray();
    for (int32_t x : r->pending) j.Int(x);
    j.EndArray().EndObject();
    std::cout << j.str() << "\n";
    return kExitOk;
  }
  switch (q.op) {
    case Op::kRead:
    case Op::kReadlink:
    case Op::kGetxattr:
    case Op::kResolveGfid:
      std::cout << r->data << (q.op == Op::kRead ? "" : "\n");
      break;
    case Op::kReaddir:
      for (const auto& e : r->entries) std::cout << e.gfid.ToString() << "  " << e.name << "\n";
      break;
    case Op::kHealIndex:
      for (const auto& e : r->entries) std::cout << e.gfid.ToString() << "\n";
      if (!r->eof && !r->entries.empty()) {
        std::cerr << "(more: --offset " << r->entries.back().cookie << ")\n";
      }
      break;
    case Op::kListxattr:
      for (const auto& n : r->names) std::cout << n << "\n";
      break;
    case Op::kStatfs:
      std::printf("blocks=%" PRIu64 " bfree=%" PRIu64 " files=%" PRIu64 " ffree=%" PRIu64 "\n",
                  r->statfs.blocks, r->statfs.bfree, r->statfs.files, r->statfs.ffree);
      break;
    default:
      std::cout << "ok";
      if (r->lsn) std::cout << " lsn=" << r->lsn;
      if (r->count) std::cout << " written=" << r->count;
      if (!r->attr.gfid.is_null()) std::cout << " " << IattLine(r->attr);
      if (!r->pending.empty()) std::cout << " pending=" << PendingText(r->pending);
      std::cout << "\n";
  }
  return kExitOk;
}

}  // namespace

int BrickCommand(int argc, char** argv, int first) {
  if (auto rc = HandleHelp(argc, argv, first, kUsage)) return *rc;
  std::string cmd = argv[first];
  OptionSpec spec;
  if (cmd == "serve") {
    spec = {{"read-only", "arbiter"},
            {"dir", "port", "host", "tls-cert", "tls-key", "tls-ca", "fsync", "brick-id",
             "fsync-interval-ms", "rollover-size", "rollover-time-ms", "keep-unclaimed", "threads",
             "applier-secret-file"}};
  } else if (cmd == "op") {
    spec = {{"json"},
            {"gfid", "parent", "name", "new-parent", "new-name", "mode", "uid", "gid", "rdev",
             "flags", "target", "offset", "length", "data", "size", "atime-ns", "mtime-ns", "set",
             "xattr", "value", "owner", "pending", "tls-cert", "tls-key", "tls-ca",
             "applier-secret-file"}};
  } else {
    return UsageError("unknown brick command '" + cmd + "'", kUsage);
  }
  auto args = ParseArgs(argc, argv, first + 1, spec);
  if (!args.ok()) return UsageError(args.status().message(), kUsage);
  return cmd == "serve" ? Serve(*args) : OpCmd(*args);
}

}  // namespace drfs::cli
