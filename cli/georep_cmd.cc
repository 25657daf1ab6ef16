// drfs georep: geo-replication sessions, through the primary site's drfsd.
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <map>
#include <thread>

#include "cli/args.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "common/time.h"
#include "mgmt/config.h"
#include "mgmt/layout.h"
#include "mgmt/protocol.h"
#include "volume/client.h"

namespace drfs::cli {
namespace {

using mgmt::MgmtOp;

constexpr char kGeorepUsage[] =
    "usage: drfs georep <command> ... [--daemon HOST:PORT] [--json]\n"
    "\n"
    "  create PVOL SHOST[:PORT]::SVOL [--name SESSION] [--kafka HOST:PORT,...]\n"
    "         [--kafka-prop KEY=VALUE,...] [--option KEY=VALUE,...]\n"
    "      Make a session shipping primary volume PVOL to volume SVOL of the site whose drfsd\n"
    "      listens at SHOST:PORT. SESSION defaults to PVOL-SVOL. Without --kafka the primary's\n"
    "      drfsd hosts an embedded broker (single machine and tests only). --kafka-prop passes\n"
    "      librdkafka properties through (SASL, SSL...).\n"
    "  start|stop|pause|resume SESSION [force]\n"
    "  delete SESSION        forget a stopped session (its Kafka topics are left to the broker)\n"
    "  status [SESSION] [detail]\n"
    "      One row per primary brick: Active/Passive/Faulty/Stopped, crawl, last synced,\n"
    "      pending entry/data/meta ops, failures, checkpoint, lag, rate, compression, epoch.\n"
    "  config SESSION [KEY [VALUE|reset]]   show or change session options\n"
    "  checkpoint SESSION set [now|TIME]    TIME: unix seconds or YYYY-MM-DDTHH:MM:SSZ\n"
    "  checkpoint SESSION wait [--timeout S]\n"
    "      Wait until the secondary has applied every write acknowledged before the checkpoint\n"
    "      (exit 1 on timeout, default 600 s).\n"
    "  verify SESSION | verify PVOL SHOST[:PORT]::SVOL\n"
    "      Compare both volumes (names, types, gfids, sizes, content, modes, owners, mtimes,\n"
    "      symlink targets, xattrs) and print every difference. Exit 0 when identical.\n"
    "      mtimes may differ by --mtime-tolerance-ms (default 1000): the primary's own replicas\n"
    "      stamp writes and entry ops each with its own clock reading.\n"
    "  failover SESSION [--force]\n"
    "      Make the secondary site the primary. Planned (both sites up): checkpoint, fence the\n"
    "      primary (read-only, its mounts get EROFS), drain its last writes, raise the epoch,\n"
    "      promote the secondary, make the old primary its secondary. No acknowledged write is\n"
    "      lost. --force (the primary is lost): promote at once at the last position applied;\n"
    "      the old primary fences itself when it comes back. Prints each step and its time;\n"
    "      run it again after an interruption and it finishes the job (--timeout S, default 600).\n"
    "  failback SESSION\n"
    "      Make the site the session was created on the primary again, the same way.\n"
    "  broker-fault SESSION down|up|produce-errors N\n"
    "      Drill an outage of the embedded broker: it stops answering, answers again, or refuses\n"
    "      the next N produce requests. Nothing is lost; drfs resends (embedded broker only).\n"
    "\n"
    "Common options: --daemon HOST:PORT (the primary's drfsd; default $DRFS_DAEMON or\n"
    "127.0.0.1:24100), --tls-cert F --tls-key F --tls-ca F, --json, --timeout S.\n";

const OptionSpec kGeorepSpec{{"json", "force"},
                             {"daemon", "tls-cert", "tls-key", "tls-ca", "timeout", "name",
                              "kafka", "kafka-prop", "option", "mtime-tolerance-ms"}};

// "HOST[:PORT]::VOL"
Status ParseSecondary(const std::string& s, std::string* host, uint16_t* port, std::string* vol) {
  const size_t sep = s.find("::");
  if (sep == std::string::npos || sep == 0 || sep + 2 >= s.size()) {
    return InvalidArgument("the secondary must be HOST[:PORT]::VOLUME (got '" + s + "')");
  }
  *vol = s.substr(sep + 2);
  return mgmt::ParseHostPort(s.substr(0, sep), mgmt::kDefaultDaemonPort, host, port);
}

// "K=V,K=V" into a map.
Status ParsePairs(const std::string& s, const std::string& what, Value* out) {
  *out = Value::EmptyMap();
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    const std::string kv = s.substr(i, j - i);
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return InvalidArgument(what + " takes KEY=VALUE[,KEY=VALUE...] (got '" + kv + "')");
    (*out)[kv.substr(0, eq)] = kv.substr(eq + 1);
    i = j + 1;
  }
  return Status::Ok();
}

std::string When(int64_t ns) { return ns > 0 ? FormatTimeMillis(static_cast<uint64_t>(ns)) : "N/A"; }

std::string Bytes(int64_t n) {
  char buf[32];
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string Duration(int64_t s) {
  if (s < 0) return "unknown";
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  }
  return buf;
}

// "Initial sync 42%" in the table; the counts and ETA in detail.
std::string CrawlCell(const Value& row) {
  std::string c = row.GetString("crawl");
  if (c != "Initial sync" || !row.Find("crawl_files_total")) return c;
  const int64_t bt = row.GetInt("crawl_bytes_total"), bd = row.GetInt("crawl_bytes_done");
  const int64_t ft = row.GetInt("crawl_files_total"), fd = row.GetInt("crawl_files_done");
  const double frac = bt > 0   ? static_cast<double>(bd) / static_cast<double>(bt)
                      : ft > 0 ? static_cast<double>(fd) / static_cast<double>(ft)
                               : 0.0;
  char buf[16];
  std::snprintf(buf, sizeof buf, " %d%%", static_cast<int>(std::min(1.0, frac) * 100));
  return c + buf;
}

std::string CrawlDetail(const Value& row) {
  return "initial sync from journal LSN " + Str(row.GetInt("crawl_start_lsn")) + ": " +
         Str(row.GetInt("crawl_files_done")) + " of " + Str(row.GetInt("crawl_files_total")) +
         " files, " + Bytes(row.GetInt("crawl_bytes_done")) + " of " +
         Bytes(row.GetInt("crawl_bytes_total")) + " applied, ETA " +
         Duration(row.GetInt("crawl_eta_s"));
}

void PrintGeorepStatus(const Value& r, bool detail) {
  for (const auto& s : ListOf(r, "sessions")) {
    std::cout << "Session " << s.GetString("name") << " (" << s.GetString("role") << "): "
              << s.GetString("primary_volume") << " -> " << s.GetString("secondary")
              << "  state " << s.GetString("state") << ", epoch " << s.GetInt("epoch")
              << ", kafka " << s.GetString("kafka") << "\n";
    // Roles: this site's, whether it is fenced, and a failover or failback under way.
    std::cout << "  This site: " << s.GetString("role") << (s.GetBool("fenced") ? " (FENCED: read-only)" : "")
              << (s.GetBool("home") ? ", where the session was created" : ", failover target")
              << (s.GetInt("promoted_ns") ? ", promoted " + When(s.GetInt("promoted_ns")) : "") << "\n";
    if (!s.GetString("switch_step").empty()) {
      std::cout << "  " << s.GetString("switch_kind") << " to epoch " << s.GetInt("switch_epoch")
                << " in progress since " << When(s.GetInt("switch_started_ns")) << ", at step "
                << s.GetString("switch_step") << " (run 'drfs georep " << s.GetString("switch_kind")
                << " " << s.GetString("name") << "' to go on)\n";
    }
    Table t({"PRIMARY NODE", "PRIMARY VOL", "PRIMARY BRICK", "SECONDARY", "STATUS", "CRAWL STATUS",
             "LAST_SYNCED", "ENTRY", "DATA", "META", "FAILURES", "CHECKPOINT TIME",
             "CHECKPOINT COMPLETED", "CHECKPOINT COMPLETION TIME", "LAG", "LAG LSN", "RATE",
             "RATIO", "TOKEN"});
    for (const auto& row : ListOf(s, "rows")) {
      const std::string st = row.GetString("status");
      const bool active = st == "Active" || st == "Paused";
      char lag[32], ratio[32];
      std::snprintf(lag, sizeof lag, "%.2fs", static_cast<double>(row.GetInt("lag_ms")) / 1000.0);
      const int64_t sent = row.GetInt("bytes_sent");
      std::snprintf(ratio, sizeof ratio, "%.2f",
                    sent > 0 ? static_cast<double>(row.GetInt("bytes_uncompressed")) / static_cast<double>(sent) : 0.0);
      const int64_t cp = row.GetInt("checkpoint_ns");
      const int64_t cpd = row.GetInt("checkpoint_done_ns");
      t.Add({row.GetString("node"), row.GetString("volume"), row.GetString("brick"),
             row.GetString("secondary"),
             st + (st == "Faulty" && !row.GetString("reason").empty()
                       ? " (" + row.GetString("reason") + ")"
                       : ""),
             active ? CrawlCell(row) : "N/A", When(row.GetInt("last_synced_ns")),
             active ? Str(row.GetInt("pending_entry")) : "N/A",
             active ? Str(row.GetInt("pending_data")) : "N/A",
             active ? Str(row.GetInt("pending_meta")) : "N/A", Str(row.GetInt("failures")),
             active ? When(cp) : "N/A", active && cp ? (cpd ? "Yes" : "No") : "N/A",
             active ? When(cpd) : "N/A", active ? lag : "N/A",
             active ? Str(row.GetInt("lag_lsn")) : "N/A",
             active ? Bytes(row.GetInt("bytes_per_s")) + "/s" : "N/A", active ? ratio : "N/A",
             row.GetInt("token") ? Str(row.GetInt("token")) : "-"});
    }
    t.Print(std::cout);
    if (s.GetInt("checkpoint_ns")) {
      std::cout << "Checkpoint " << When(s.GetInt("checkpoint_ns")) << ": "
                << (s.GetBool("checkpoint_completed") ? "completed at " + When(s.GetInt("checkpoint_completed_ns"))
                                                      : std::string("not completed"))
                << "\n";
    }
    if (detail) {
      for (const auto& row : ListOf(s, "rows")) {
        std::cout << "  " << row.GetString("brick") << ": " << row.GetString("status");
        if (!row.GetString("reason").empty()) std::cout << " (" << row.GetString("reason") << ")";
        std::cout << "; journal LSN " << row.GetInt("visible_lsn") << ", sent " << row.GetInt("sent_lsn")
                  << ", applied " << row.GetInt("acked_lsn") << "; " << row.GetInt("messages")
                  << " messages, " << Bytes(row.GetInt("bytes_sent")) << " sent ("
                  << Bytes(row.GetInt("data_bytes")) << " file data), " << row.GetInt("resends")
                  << " resends\n";
        if (row.Find("crawl_files_total")) std::cout << "    " << CrawlDetail(row) << "\n";
      }
    }
    if (const Value* a = s.Find("applier")) {
      std::cout << "Applier on " << a->GetString("node") << ": " << a->GetString("state");
      if (!a->GetString("reason").empty()) std::cout << " (" << a->GetString("reason") << ")";
      std::cout << ", " << a->GetInt("batches") << " batches, " << Bytes(a->GetInt("bytes")) << "\n";
      for (const auto& p : ListOf(*a, "positions")) {
        std::cout << "  replica set " << p.GetInt("replica_set") << ": applied LSN " << p.GetInt("lsn")
                  << " of brick " << p.GetString("source_brick") << " (token " << p.GetInt("token")
                  << ", epoch " << p.GetInt("epoch") << "), " << p.GetInt("applied_ops")
                  << " ops applied, " << p.GetInt("failures") << " failures\n";
      }
      const auto& fails = ListOf(*a, "failures");
      if (!fails.empty()) {
        std::cout << "Failures (newest first" << (detail ? "" : "; 'status SESSION detail' shows more") << "):\n";
        for (const auto& f : fails) {
          std::cout << "  " << When(f.GetInt("at_ns")) << " LSN " << f.GetInt("lsn") << " " << f.GetString("op")
                    << " " << f.GetString("target") << ": " << f.GetString("error") << "\n";
        }
      }
    }
    for (const auto& e : ListOf(s, "errors")) std::cout << "warning: " << e.AsString() << "\n";
    std::cout << "\n";
  }
}

Result<int64_t> ParseTime(const std::string& s) {
  // "now" is the primary drfsd's clock, not this host's: 0 asks it to stamp the time.
  if (s == "now") return int64_t{0};
  if (!s.empty() && std::all_of(s.begin(), s.end(), ::isdigit)) {
    DRFS_ASSIGN_OR_RETURN(uint64_t v, ParseUint(s, "TIME"));
    return static_cast<int64_t>(v) * 1000000000;
  }
  struct tm tm = {};
  const char* end = ::strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr || (*end != 'Z' && *end != '\0') || (*end == 'Z' && end[1] != '\0')) {
    return InvalidArgument("TIME must be 'now', unix seconds or YYYY-MM-DDTHH:MM:SSZ (got '" + s + "')");
  }
  return static_cast<int64_t>(::timegm(&tm)) * 1000000000;
}

// ------------------------------------------------------------------ verify

int64_t g_mtime_tolerance_ns = 1000000000;

struct Obj {
  brick_proto::Iatt attr;
  Gfid gfid;
  std::string target;
  std::map<std::string, std::string> xattrs;
  uint32_t crc = 0;
};

Result<Obj> Describe(volume::VolumeClient& vc, const Gfid& g, const brick_proto::Iatt& attr) {
  Obj o;
  o.gfid = g;
  o.attr = attr;
  const uint32_t type = attr.mode & S_IFMT;
  if (type == S_IFLNK) {
    DRFS_ASSIGN_OR_RETURN(o.target, vc.Readlink(g));
  }
  if (type == S_IFREG) {
    uint32_t crc = 0;
    for (uint64_t off = 0; off < attr.size;) {
      DRFS_ASSIGN_OR_RETURN(std::string d, vc.Read(g, off, 1 << 20));
      if (d.empty()) break;
      crc = crc32c::Extend(crc, d.data(), d.size());
      off += d.size();
    }
    o.crc = crc;
  }
  if (type == S_IFREG || type == S_IFDIR) {
    auto names = vc.Listxattr(g);
    if (names.ok()) {
      for (const auto& n : *names) {
        auto v = vc.Getxattr(g, n);
        if (v.ok()) o.xattrs[n] = *v;
      }
    }
  }
  return o;
}

// Compares the two trees under (p, s); `path` names it. Returns the number of differences.
uint64_t CompareDir(volume::VolumeClient& pc, volume::VolumeClient& sc, const Gfid& pdir,
                    const Gfid& sdir, const std::string& path, uint64_t* objects, Status* err) {
  auto list = [&](volume::VolumeClient& vc, const Gfid& dir) -> Result<std::map<std::string, brick_proto::DirEntry>> {
    std::map<std::string, brick_proto::DirEntry> out;
    uint64_t cookie = 0;
    for (;;) {
      DRFS_ASSIGN_OR_RETURN(volume::ReaddirPage page, vc.Readdir(dir, cookie, 1024, true));
      for (auto& e : page.entries) {
        cookie = e.cookie;
        if (e.name == "." || e.name == "..") continue;
        out[e.name] = e;
      }
      if (page.eof || page.entries.empty()) break;
    }
    return out;
  };
  auto pl = list(pc, pdir);
  auto sl = list(sc, sdir);
  if (!pl.ok() || !sl.ok()) {
    *err = !pl.ok() ? pl.status().WithContext("primary " + path) : sl.status().WithContext("secondary " + path);
    return 0;
  }
  uint64_t diffs = 0;
  auto report = [&](const std::string& p, const std::string& what) {
    std::cout << p << ": " << what << "\n";
    ++diffs;
  };
  for (const auto& [name, pe] : *pl) {
    const std::string p = (path == "/" ? "" : path) + "/" + name;
    ++*objects;
    auto it = sl->find(name);
    if (it == sl->end()) {
      report(p, "only on the primary");
      continue;
    }
    const auto& se = it->second;
    if (pe.gfid != se.gfid) {
      report(p, "gfid differs (primary " + pe.gfid.ToString() + ", secondary " + se.gfid.ToString() + ")");
      continue;
    }
    auto pa = pc.Getattr(pe.gfid);
    auto sa = sc.Getattr(se.gfid);
    if (!pa.ok() || !sa.ok()) {
      report(p, "cannot stat: " + (!pa.ok() ? pa.status().message() : sa.status().message()));
      continue;
    }
    if ((pa->mode & S_IFMT) != (sa->mode & S_IFMT)) {
      report(p, "type differs");
      continue;
    }
    auto po = Describe(pc, pe.gfid, *pa);
    auto so = Describe(sc, se.gfid, *sa);
    if (!po.ok() || !so.ok()) {
      report(p, "cannot read: " + (!po.ok() ? po.status().message() : so.status().message()));
      continue;
    }
    char buf[128];
    if (pa->mode != sa->mode) {
      std::snprintf(buf, sizeof buf, "mode differs (%o vs %o)", pa->mode & 07777, sa->mode & 07777);
      report(p, buf);
    }
    if (pa->uid != sa->uid || pa->gid != sa->gid) {
      report(p, "owner differs (" + std::to_string(pa->uid) + ":" + std::to_string(pa->gid) + " vs " +
                    std::to_string(sa->uid) + ":" + std::to_string(sa->gid) + ")");
    }
    const bool dir = (pa->mode & S_IFMT) == S_IFDIR;
    if (!dir && pa->size != sa->size) {
      report(p, "size differs (" + std::to_string(pa->size) + " vs " + std::to_string(sa->size) + ")");
    } else if (po->crc != so->crc) {
      report(p, "content differs");
    }
    // The primary's own replicas do not agree on an mtime to the nanosecond: each brick stamps
    // "now" when it applies a write or an entry op (explicit utimes are exact everywhere). So an
    // mtime counts as different only beyond the tolerance (--mtime-tolerance-ms, default 1000).
    const int64_t dt = pa->mtime_ns > sa->mtime_ns ? pa->mtime_ns - sa->mtime_ns : sa->mtime_ns - pa->mtime_ns;
    if (dt > g_mtime_tolerance_ns) {
      report(p, "mtime differs (" + FormatTimeNs(static_cast<uint64_t>(pa->mtime_ns)) + " vs " +
                    FormatTimeNs(static_cast<uint64_t>(sa->mtime_ns)) + ")");
    }
    if (po->target != so->target) report(p, "symlink target differs ('" + po->target + "' vs '" + so->target + "')");
    if (po->xattrs != so->xattrs) report(p, "xattrs differ");
    if (dir) diffs += CompareDir(pc, sc, pe.gfid, se.gfid, p, objects, err);
    if (!err->ok()) return diffs;
  }
  for (const auto& [name, se] : *sl) {
    if (!pl->count(name)) report((path == "/" ? "" : path) + "/" + name, "only on the secondary");
  }
  return diffs;
}

int Verify(const Args& a) {
  const auto& pos = a.positional;
  std::string pvol, shost, svol;
  uint16_t sport = 0;
  auto target = ParseDaemonTarget(a);
  if (!target.ok()) return UsageError(target.status().message(), kGeorepUsage);
  std::string pdaemon = target->host + ":" + std::to_string(target->port);
  if (pos.size() == 2) {
    Value args;
    args["name"] = pos[1];
    auto r = Call(a, MgmtOp::kGeorepStatus, args);
    if (!r.ok()) return Fail(r.status());
    const auto& ss = ListOf(*r, "sessions");
    if (ss.empty()) return Fail(NotFound("no session " + pos[1]));
    pvol = ss[0].GetString("primary_volume");
    std::string sec = ss[0].GetString("secondary");
    const size_t sep = sec.find("::");
    svol = sec.substr(sep + 2);
    if (ss[0].GetString("role") == mgmt::kRoleSecondary) {
      // Asked of the secondary's drfsd: the secondary volume is its own, and the session
      // names the primary's drfsd.
      shost = target->host;
      sport = target->port;
      pdaemon = ss[0].GetString("primary");
    } else {
      shost = sec.substr(0, sep);
      sport = static_cast<uint16_t>(ss[0].GetInt("secondary_port", mgmt::kDefaultDaemonPort));
    }
  } else if (pos.size() == 3) {
    pvol = pos[1];
    if (Status s = ParseSecondary(pos[2], &shost, &sport, &svol); !s.ok()) return UsageError(s.message(), kGeorepUsage);
  } else {
    return UsageError("verify takes SESSION, or PVOL SHOST[:PORT]::SVOL", kGeorepUsage);
  }
  uint64_t tol_ms = 1000;
  if (Status s = GetUintOption(a, "mtime-tolerance-ms", &tol_ms); !s.ok() || tol_ms > 86400000) {
    return UsageError("--mtime-tolerance-ms must be 0-86400000", kGeorepUsage);
  }
  g_mtime_tolerance_ns = static_cast<int64_t>(tol_ms) * 1000000;
  SetLogLevel(LogLevel::kError);
  const TlsConfig tls = TlsFromArgs(a);
  const auto timeout = std::chrono::seconds(target->timeout_s);
  auto pl = mgmt::FetchLayout(pdaemon, pvol, tls, timeout);
  if (!pl.ok()) return Fail(pl.status().WithContext("primary volume " + pvol));
  auto sl = mgmt::FetchLayout(shost + ":" + std::to_string(sport), svol, tls, timeout);
  if (!sl.ok()) return Fail(sl.status().WithContext("secondary volume " + svol));
  volume::VolumeClientOptions vo;
  vo.tls = tls;
  vo.read_only = true;
  vo.client_name = "drfs-verify";
  auto pc = volume::VolumeClient::Open(*pl, vo);
  if (!pc.ok()) return Fail(pc.status().WithContext("primary volume " + pvol));
  auto sc = volume::VolumeClient::Open(*sl, vo);
  if (!sc.ok()) return Fail(sc.status().WithContext("secondary volume " + svol));
  uint64_t objects = 0;
  Status err;
  uint64_t diffs = 0;
  {
    auto pa = (*pc)->Getattr(Gfid::Root());
    auto sa = (*sc)->Getattr(Gfid::Root());
    if (pa.ok() && sa.ok()) {
      if (pa->mode != sa->mode || pa->uid != sa->uid || pa->gid != sa->gid) {
        std::cout << "/: mode or owner differs\n";
        ++diffs;
      }
    }
  }
  diffs += CompareDir(**pc, **sc, Gfid::Root(), Gfid::Root(), "/", &objects, &err);
  if (!err.ok()) return Fail(err.WithContext("verify"));
  if (diffs == 0) {
    std::cout << "verify: " << pvol << " and " << shost << "::" << svol << " are identical ("
              << objects << " objects)\n";
    return kExitOk;
  }
  std::cout << "verify: " << diffs << " difference(s) in " << objects << " objects\n";
  return kExitError;
}

int CheckpointWait(const Args& a, const std::string& name) {
  uint64_t timeout_s = 600;
  if (Status s = GetUintOption(a, "timeout", &timeout_s); !s.ok()) return UsageError(s.message(), kGeorepUsage);
  Args conn = a;
  conn.values.erase("timeout");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  std::string last;
  for (;;) {
    Value args;
    args["name"] = name;
    auto r = Call(conn, MgmtOp::kGeorepStatus, args);
    if (r.ok()) {
      const auto& ss = ListOf(*r, "sessions");
      if (ss.empty()) return Fail(NotFound("no session " + name));
      const Value& s = ss[0];
      if (s.GetInt("checkpoint_ns") == 0) {
        return Fail(FailedPrecondition("session " + name + " has no checkpoint; set one with 'drfs georep checkpoint " + name + " set'"));
      }
      if (s.GetBool("checkpoint_completed")) {
        std::cout << "checkpoint " << When(s.GetInt("checkpoint_ns")) << " of session " << name
                  << " completed at " << When(s.GetInt("checkpoint_completed_ns")) << "\n";
        return kExitOk;
      }
      last.clear();
      for (const auto& row : ListOf(s, "rows")) {
        if (row.GetString("status") == "Active") {
          last = "applied LSN " + Str(row.GetInt("acked_lsn")) + " of " + Str(row.GetInt("checkpoint_lsn")) +
                 " needed on " + row.GetString("brick");
        }
      }
      if (last.empty()) last = "no Active syncer";
    } else {
      last = r.status().message();
    }
    if (std::chrono::steady_clock::now() > deadline) {
      std::cerr << "drfs: checkpoint of session " << name << " not completed after " << timeout_s
                << " s (" << last << "); see 'drfs georep status " << name << " detail'\n";
      return kExitError;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// failover/failback: one step per request to the site being promoted, until done. Every step
// is recorded there first, so after an interruption running the command again finishes it.
int Switch(const Args& a, const std::string& kind, const std::string& name) {
  uint64_t timeout_s = 600;
  if (Status s = GetUintOption(a, "timeout", &timeout_s); !s.ok()) return UsageError(s.message(), kGeorepUsage);
  Args conn = a;
  conn.values.erase("timeout");
  const bool force = a.Has("force");
  const bool json = a.Has("json");
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::seconds(timeout_s);
  auto since = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  auto step_start = start;
  std::string last_wait;
  Value steps = Value::EmptyList();
  int transient = 0;
  for (;;) {
    Value args;
    args["name"] = name;
    args["kind"] = kind;
    args["force"] = force;
    auto r = Call(conn, MgmtOp::kGeorepSwitch, args);
    if (!r.ok()) {
      // A drfsd restarting mid-way (killed, or its bricks restarting) is retried; anything
      // else stops here, and the switch resumes when the command is run again.
      if (r.status().code() == Code::kUnavailable && ++transient < 50 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      std::cerr << "drfs: " << kind << " of session " << name << " stopped after " << std::fixed
                << std::setprecision(1) << since() << " s: " << r.status().message() << "\n";
      if (r.status().code() != Code::kFailedPrecondition && r.status().code() != Code::kInvalidArgument) {
        std::cerr << "What was done is recorded; run 'drfs georep " << kind << " " << name
                  << (force ? " --force" : "") << "' again to go on.\n";
      }
      return kExitError;
    }
    transient = 0;
    const std::string step = r->GetString("step");
    const std::string msg = r->GetString("message");
    if (r->GetBool("waiting")) {
      if (msg != last_wait && !json) std::cout << "  ... " << msg << "\n" << std::flush;
      last_wait = msg;
      if (std::chrono::steady_clock::now() > deadline) {
        std::cerr << "drfs: " << kind << " of session " << name << " still at step '" << step << "' after "
                  << timeout_s << " s (" << msg << ")\nrun the command again to go on waiting\n";
        return kExitError;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    last_wait.clear();
    const auto now = std::chrono::steady_clock::now();
    const double took = std::chrono::duration<double>(now - step_start).count();
    step_start = now;
    Value e;
    e["step"] = step;
    e["message"] = msg;
    e["ms"] = static_cast<int64_t>(took * 1000);
    steps.Push(e);
    if (!json) {
      std::cout << "[" << std::fixed << std::setprecision(2) << std::setw(6) << since() << " s] "
                << std::left << std::setw(12) << step << std::right << " " << msg << " ("
                << std::setprecision(2) << took << " s)\n" << std::flush;
    }
    if (r->GetBool("done")) {
      if (json) {
        Value out;
        out["steps"] = steps;
        out["ms"] = static_cast<int64_t>(since() * 1000);
        out["message"] = msg;
        std::cout << out.ToJson() << "\n";
      } else {
        std::cout << kind << " of session " << name << " took " << std::setprecision(2) << since() << " s\n";
      }
      return kExitOk;
    }
  }
}

int GeorepMain(int argc, char** argv, int first) {
  if (auto h = HandleHelp(argc, argv, first, kGeorepUsage)) return *h;
  auto parsed = ParseArgs(argc, argv, first + 1, kGeorepSpec);
  if (!parsed.ok()) return UsageError(parsed.status().message(), kGeorepUsage);
  Args a = std::move(*parsed);
  const std::string cmd = argv[first];
  const auto& pos = a.positional;
  const bool checkpoint_wait = (cmd == "checkpoint" && pos.size() >= 2 && pos[1] == "wait") ||
                               cmd == "failover" || cmd == "failback";
  if (!checkpoint_wait) {
    if (auto e = CheckClientOptions(a, kGeorepUsage)) return *e;
  }
  if (a.Has("force") && cmd != "failover" && cmd != "failback") {
    return UsageError("--force is for failover only (start/stop/pause/resume/delete take 'force')", kGeorepUsage);
  }
  Value args;
  if (cmd == "create") {
    if (pos.size() != 2) return UsageError("create takes PVOL SHOST[:PORT]::SVOL", kGeorepUsage);
    std::string host, vol;
    uint16_t port = 0;
    if (Status s = ParseSecondary(pos[1], &host, &port, &vol); !s.ok()) return UsageError(s.message(), kGeorepUsage);
    args["volume"] = pos[0];
    args["secondary_host"] = host;
    args["secondary_port"] = static_cast<int64_t>(port);
    args["secondary_volume"] = vol;
    if (auto n = a.Get("name")) args["name"] = *n;
    if (auto k = a.Get("kafka")) args["kafka"] = *k;
    if (auto kp = a.Get("kafka-prop")) {
      Value m;
      if (Status s = ParsePairs(*kp, "--kafka-prop", &m); !s.ok()) return UsageError(s.message(), kGeorepUsage);
      args["kafka_props"] = m;
    }
    if (auto op = a.Get("option")) {
      Value m;
      if (Status s = ParsePairs(*op, "--option", &m); !s.ok()) return UsageError(s.message(), kGeorepUsage);
      args["options"] = m;
    }
    return Output(a, Call(a, MgmtOp::kGeorepCreate, args), PrintMessage);
  }
  if (cmd == "start" || cmd == "stop" || cmd == "pause" || cmd == "resume" || cmd == "delete") {
    if (pos.empty() || pos.size() > 2 || (pos.size() == 2 && pos[1] != "force")) {
      return UsageError(cmd + " takes SESSION [force]", kGeorepUsage);
    }
    args["name"] = pos[0];
    args["action"] = cmd;
    args["force"] = pos.size() == 2;
    return Output(a, Call(a, MgmtOp::kGeorepControl, args), PrintMessage);
  }
  if (cmd == "status") {
    bool detail = !pos.empty() && pos.back() == "detail";
    const size_t names = pos.size() - (detail ? 1 : 0);
    if (names > 1) return UsageError("status takes [SESSION] [detail]", kGeorepUsage);
    if (names == 1) args["name"] = pos[0];
    args["detail"] = detail;
    return Output(a, Call(a, MgmtOp::kGeorepStatus, args), [detail](const Value& r) {
      if (ListOf(r, "sessions").empty()) std::cout << "No geo-replication sessions.\n";
      PrintGeorepStatus(r, detail);
    });
  }
  if (cmd == "config") {
    if (pos.empty() || pos.size() > 3) return UsageError("config takes SESSION [KEY [VALUE|reset]]", kGeorepUsage);
    args["name"] = pos[0];
    if (pos.size() >= 2) args["key"] = pos[1];
    if (pos.size() == 3) {
      if (pos[2] == "reset") args["reset"] = true;
      else args["value"] = pos[2];
    }
    return Output(a, Call(a, MgmtOp::kGeorepConfig, args), [](const Value& r) {
      if (r.Find("message")) {
        PrintMessage(r);
        return;
      }
      Table t({"OPTION", "VALUE", "DEFAULT", "DESCRIPTION"});
      for (const auto& o : ListOf(r, "options")) {
        t.Add({o.GetString("key"), o.GetString("value") + (o.GetBool("set") ? " (set)" : ""),
               o.GetString("default"), o.GetString("help")});
      }
      t.Print(std::cout);
    });
  }
  if (cmd == "checkpoint") {
    if (pos.size() < 2) return UsageError("checkpoint takes SESSION set [now|TIME] or SESSION wait", kGeorepUsage);
    if (pos[1] == "wait") {
      if (pos.size() != 2) return UsageError("checkpoint SESSION wait takes no more arguments", kGeorepUsage);
      return CheckpointWait(a, pos[0]);
    }
    if (pos[1] != "set" || pos.size() > 3) return UsageError("checkpoint takes SESSION set [now|TIME] or SESSION wait", kGeorepUsage);
    auto t = ParseTime(pos.size() == 3 ? pos[2] : "now");
    if (!t.ok()) return UsageError(t.status().message(), kGeorepUsage);
    args["name"] = pos[0];
    args["time_ns"] = *t;
    return Output(a, Call(a, MgmtOp::kGeorepCheckpoint, args), PrintMessage);
  }
  if (cmd == "failover" || cmd == "failback") {
    if (pos.size() != 1) return UsageError(cmd + " takes SESSION", kGeorepUsage);
    if (cmd == "failback" && a.Has("force")) {
      return UsageError("failback takes no --force: it needs both sites (use failover --force when the primary is lost)", kGeorepUsage);
    }
    return Switch(a, cmd, pos[0]);
  }
  if (cmd == "broker-fault") {
    if (pos.size() < 2 || pos.size() > 3 || (pos[1] == "produce-errors") != (pos.size() == 3)) {
      return UsageError("broker-fault takes SESSION down|up|produce-errors N", kGeorepUsage);
    }
    args["name"] = pos[0];
    args["action"] = pos[1];
    if (pos.size() == 3) {
      auto n = ParseUint(pos[2], "N");
      if (!n.ok()) return UsageError(n.status().message(), kGeorepUsage);
      args["count"] = static_cast<int64_t>(*n);
    }
    return Output(a, Call(a, MgmtOp::kGeorepBrokerFault, args), PrintMessage);
  }
  if (cmd == "verify") {
    Args b = a;
    b.positional.insert(b.positional.begin(), "verify");
    return Verify(b);
  }
  return UsageError("unknown georep command '" + cmd + "'", kGeorepUsage);
}

}  // namespace

int GeorepCommand(int argc, char** argv, int first) { return GeorepMain(argc, argv, first); }

}  // namespace drfs::cli
