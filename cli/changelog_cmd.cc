// drfs changelog dump|status|purge|cursor|append
#include <cinttypes>
#include <cstdio>
#include <iostream>

#include "changelog/cursor.h"
#include "changelog/dump.h"
#include "changelog/journal.h"
#include "changelog/reader.h"
#include "changelog/writer.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "common/json.h"
#include "common/time.h"

namespace drfs::cli {
namespace {

using namespace drfs::changelog;

constexpr char kUsage[] =
    "usage: drfs changelog <command> ...\n"
    "\n"
    "Inspect and manage a brick's changelog journal. DIR is a brick directory or its\n"
    ".drfs/changelog directory.\n"
    "\n"
    "  dump DIR [--from-lsn N] [--json]     print records, one per line (--json: JSON Lines)\n"
    "  status DIR [--json]                  segments, bytes, LSN range, cursors and their lag\n"
    "  purge DIR [--json]                   delete segments every cursor has passed\n"
    "  cursor register DIR NAME LSN         add a consumer cursor that has consumed up to LSN\n"
    "  cursor advance DIR NAME LSN          move a cursor forward\n"
    "  cursor remove DIR NAME               drop a cursor (its consumer is gone for good)\n"
    "  append DIR OP [FIELDS...]            journal one record by hand (debugging and demos;\n"
    "                                       refused while a brick holds the journal)\n"
    "\n"
    "append FIELDS: --gfid G --parent G --name N --mode OCTAL --uid N --gid N --rdev N\n"
    "  --target T --new-parent G --new-name N --replaced G --offset N --length N --size N\n"
    "  --fallocate-mode HEX --atime-ns N --mtime-ns N --xattr NAME\n"
    "  --fsync always|interval|never --epoch N --brick-id G --segment-bytes N\n"
    "OP is one of CREATE MKDIR MKNOD SYMLINK LINK UNLINK RMDIR RENAME WRITE TRUNCATE\n"
    "  FALLOCATE SETATTR SETXATTR REMOVEXATTR. A missing --gfid gets a random one.\n"
    "  SETATTR records the fields given among --mode --uid --gid --atime-ns --mtime-ns.\n";

int Dump(const Args& a) {
  if (a.positional.size() != 1) return UsageError("changelog dump takes one DIR", kUsage);
  std::string dir = ResolveJournalDir(a.positional[0]);
  ReaderOptions ro;
  if (auto v = a.Get("from-lsn")) {
    auto n = ParseUint(*v, "--from-lsn");
    if (!n.ok()) return UsageError(n.status().message(), kUsage);
    ro.from_lsn = *n;
  }
  // While a brick writes, show what it has published; otherwise everything on disk.
  ro.bound = ProbeWriter(dir).running ? ReaderOptions::Bound::kPublished
                                      : ReaderOptions::Bound::kOnDisk;
  auto reader = Reader::Open(dir, ro);
  if (!reader.ok()) return Fail(reader.status());
  const bool json = a.Has("json");
  for (;;) {
    auto e = (*reader)->Next();
    if (!e.ok()) {
      std::cout.flush();
      return Fail(e.status());
    }
    if (!e->has_value()) break;
    std::cout << (json ? FormatEntryJson(**e) : FormatEntryLine(**e)) << '\n';
  }
  std::cout.flush();
  if (!(*reader)->torn_tail().empty()) {
    std::cerr << "drfs: note: " << (*reader)->torn_tail() << "\n";
  }
  return kExitOk;
}

int Status_(const Args& a) {
  if (a.positional.size() != 1) return UsageError("changelog status takes one DIR", kUsage);
  auto st = Inspect(ResolveJournalDir(a.positional[0]));
  if (!st.ok()) return Fail(st.status());
  const JournalStatus& s = *st;
  if (a.Has("json")) {
    JsonWriter j;
    j.BeginObject().Key("dir").String(s.dir);
    j.Key("writer").BeginObject().Key("running").Bool(s.writer.running);
    if (s.writer.pid) j.Key("pid").Uint(s.writer.pid);
    j.EndObject();
    j.Key("brick_id").String(s.segments.empty() ? "" : s.segments.back().brick_id.ToString());
    j.Key("epoch").Uint(s.segments.empty() ? 0 : s.segments.back().epoch);
    j.Key("first_lsn").Uint(s.first_lsn).Key("last_lsn").Uint(s.last_lsn);
    j.Key("visible_lsn").Uint(s.visible_lsn).Key("bytes").Uint(s.total_bytes);
    if (!s.torn_tail.empty()) j.Key("torn_tail").String(s.torn_tail);
    j.Key("segments").BeginArray();
    for (const auto& g : s.segments) {
      j.BeginObject().Key("name").String(g.name).Key("first_lsn").Uint(g.first_lsn);
      j.Key("last_lsn").Uint(g.last_lsn).Key("records").Uint(g.last_lsn + 1 - g.first_lsn);
      j.Key("bytes").Uint(g.bytes).Key("epoch").Uint(g.epoch);
      j.Key("created_ns").Uint(g.created_ns).EndObject();
    }
    j.EndArray().Key("cursors").BeginArray();
    for (const auto& c : s.cursors) {
      j.BeginObject().Key("name").String(c.name).Key("lsn").Uint(c.lsn);
      j.Key("behind").Uint(s.last_lsn > c.lsn ? s.last_lsn - c.lsn : 0);
      j.Key("updated_ns").Uint(c.updated_ns).EndObject();
    }
    j.EndArray().EndObject();
    std::cout << j.str() << '\n';
    return kExitOk;
  }
  std::printf("Changelog:  %s\n", s.dir.c_str());
  if (!s.segments.empty()) {
    std::printf("Brick id:   %s\n", s.segments.back().brick_id.ToString().c_str());
    std::printf("Epoch:      %" PRIu64 "\n", s.segments.back().epoch);
  }
  if (s.writer.running) {
    std::printf("Writer:     running (pid %" PRIu64 ")\n", s.writer.pid);
  } else {
    std::printf("Writer:     not running\n");
  }
  uint64_t kept = s.last_lsn >= s.first_lsn && s.first_lsn ? s.last_lsn - s.first_lsn + 1 : 0;
  std::printf("Records:    LSN %" PRIu64 " .. %" PRIu64 " (%" PRIu64 " kept), published up to %" PRIu64
              "\n",
              s.first_lsn, s.last_lsn, kept, s.visible_lsn);
  std::printf("Size:       %zu segment(s), %s\n", s.segments.size(),
              HumanBytes(s.total_bytes).c_str());
  if (!s.torn_tail.empty()) std::printf("Torn tail:  %s\n", s.torn_tail.c_str());
  std::printf("\n%-26s %12s %12s %10s %11s %6s  %s\n", "SEGMENT", "FIRST LSN", "LAST LSN",
              "RECORDS", "BYTES", "EPOCH", "CREATED");
  for (const auto& g : s.segments) {
    std::printf("%-26s %12" PRIu64 " %12" PRIu64 " %10" PRIu64 " %11s %6" PRIu64 "  %s\n",
                g.name.c_str(), g.first_lsn, g.last_lsn, g.last_lsn + 1 - g.first_lsn,
                HumanBytes(g.bytes).c_str(), g.epoch, FormatTimeMillis(g.created_ns).c_str());
  }
  if (s.cursors.empty()) {
    std::printf("\nCursors:    none registered; retention keeps every segment until a consumer "
                "registers one\n");
  } else {
    std::printf("\n%-26s %12s %12s  %s\n", "CURSOR", "LSN", "BEHIND", "UPDATED");
    for (const auto& c : s.cursors) {
      std::printf("%-26s %12" PRIu64 " %12" PRIu64 "  %s\n", c.name.c_str(), c.lsn,
                  s.last_lsn > c.lsn ? s.last_lsn - c.lsn : 0,
                  FormatTimeMillis(c.updated_ns).c_str());
    }
  }
  return kExitOk;
}

int PurgeCmd(const Args& a) {
  if (a.positional.size() != 1) return UsageError("changelog purge takes one DIR", kUsage);
  auto r = Purge(ResolveJournalDir(a.positional[0]));
  if (!r.ok()) return Fail(r.status());
  if (a.Has("json")) {
    JsonWriter j;
    j.BeginObject().Key("deleted").BeginArray();
    for (const auto& d : r->deleted) j.String(d);
    j.EndArray().Key("bytes_freed").Uint(r->bytes_freed);
    j.Key("oldest_kept_lsn").Uint(r->oldest_kept_lsn).Key("held_by").String(r->held_by);
    j.EndObject();
    std::cout << j.str() << '\n';
    return kExitOk;
  }
  std::printf("Deleted %zu segment(s), freed %s; oldest kept LSN %" PRIu64 "\n",
              r->deleted.size(), HumanBytes(r->bytes_freed).c_str(), r->oldest_kept_lsn);
  if (!r->held_by.empty()) std::printf("Held back by cursor: %s\n", r->held_by.c_str());
  return kExitOk;
}

int CursorCmd(const Args& a) {
  const auto& p = a.positional;
  if (p.empty()) return UsageError("changelog cursor needs register, advance or remove", kUsage);
  const std::string& verb = p[0];
  bool takes_lsn = verb == "register" || verb == "advance";
  if ((!takes_lsn && verb != "remove") || p.size() != (takes_lsn ? 4u : 3u)) {
    return UsageError("usage: changelog cursor register|advance DIR NAME LSN, or remove DIR NAME",
                      kUsage);
  }
  CursorStore store(ResolveJournalDir(p[1]));
  Status s;
  if (takes_lsn) {
    auto lsn = ParseUint(p[3], "LSN");
    if (!lsn.ok()) return UsageError(lsn.status().message(), kUsage);
    s = verb == "register" ? store.Register(p[2], *lsn) : store.Advance(p[2], *lsn);
  } else {
    s = store.Remove(p[2]);
  }
  if (!s.ok()) return Fail(s);
  return kExitOk;
}

// Reads the optional record fields of `append` from the options.
Status FillRecord(const Args& a, Record* r) {
  r->gfid = Gfid::Random();
  DRFS_RETURN_IF_ERROR(GetGfidOption(a, "gfid", &r->gfid));
  DRFS_RETURN_IF_ERROR(GetGfidOption(a, "parent", &r->parent));
  DRFS_RETURN_IF_ERROR(GetGfidOption(a, "new-parent", &r->new_parent));
  DRFS_RETURN_IF_ERROR(GetGfidOption(a, "replaced", &r->replaced));
  r->name = a.Get("name").value_or("");
  r->new_name = a.Get("new-name").value_or("");
  r->symlink_target = a.Get("target").value_or("");
  r->xattr_name = a.Get("xattr").value_or("");
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "mode", &r->mode, 8));
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "uid", &r->uid));
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "gid", &r->gid));
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "rdev", &r->rdev));
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "offset", &r->offset));
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "length", &r->length));
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "size", &r->size));
  DRFS_RETURN_IF_ERROR(GetUintOption(a, "fallocate-mode", &r->fallocate_mode, 16));
  DRFS_RETURN_IF_ERROR(GetIntOption(a, "atime-ns", &r->atime_ns));
  DRFS_RETURN_IF_ERROR(GetIntOption(a, "mtime-ns", &r->mtime_ns));
  if (r->op == OpType::kSetattr) {
    r->setattr_valid = (a.Has("mode") ? kSetMode : 0) | (a.Has("uid") ? kSetUid : 0) |
                       (a.Has("gid") ? kSetGid : 0) | (a.Has("atime-ns") ? kSetAtime : 0) |
                       (a.Has("mtime-ns") ? kSetMtime : 0);
  }
  return ValidateRecord(*r);
}

int AppendCmd(const Args& a) {
  if (a.positional.size() != 2) return UsageError("changelog append takes DIR and OP", kUsage);
  Record r;
  auto op = ParseOpType(a.positional[1]);
  if (!op) return UsageError("unknown op '" + a.positional[1] + "'", kUsage);
  r.op = *op;
  Status s = FillRecord(a, &r);
  if (!s.ok()) return UsageError(s.message(), kUsage);
  WriterOptions wo;
  wo.epoch = 0;  // keep the journal's own epoch unless --epoch says otherwise
  if (auto v = a.Get("fsync")) {
    auto p = ParseFsyncPolicy(*v);
    if (!p) return UsageError("--fsync must be always, interval or never", kUsage);
    wo.fsync_policy = *p;
  }
  if (auto v = a.Get("epoch")) {
    auto n = ParseUint(*v, "--epoch");
    if (!n.ok()) return UsageError(n.status().message(), kUsage);
    wo.epoch = *n;
  }
  if (auto v = a.Get("segment-bytes")) {
    auto n = ParseUint(*v, "--segment-bytes");
    if (!n.ok()) return UsageError(n.status().message(), kUsage);
    wo.segment_max_bytes = *n;
  }
  if (auto v = a.Get("brick-id")) {
    auto g = Gfid::Parse(*v);
    if (!g) return UsageError("--brick-id '" + *v + "' is not a uuid", kUsage);
    wo.brick_id = *g;
  }
  // A brick directory gets its journal in .drfs/changelog, as the brick itself would put it.
  std::string dir = a.positional[0];
  if (!dir.ends_with("changelog") && !dir.ends_with("changelog/")) dir = JournalDirForBrick(dir);
  auto w = Writer::Open(dir, wo);
  if (!w.ok()) return Fail(w.status());
  auto lsn = (*w)->Append(r);
  if (!lsn.ok()) return Fail(lsn.status());
  s = (*w)->Close();
  if (!s.ok()) return Fail(s);
  std::printf("%" PRIu64 " %s %s\n", *lsn, std::string(OpTypeName(r.op)).c_str(),
              r.gfid.ToString().c_str());
  return kExitOk;
}

}  // namespace

int ChangelogCommand(int argc, char** argv, int first) {
  if (auto rc = HandleHelp(argc, argv, first, kUsage)) return *rc;
  std::string cmd = argv[first];
  OptionSpec spec;
  if (cmd == "dump") {
    spec = {{"json"}, {"from-lsn"}};
  } else if (cmd == "status" || cmd == "purge") {
    spec = {{"json"}, {}};
  } else if (cmd == "cursor") {
    spec = {{}, {}};
  } else if (cmd == "append") {
    spec = {{},
            {"gfid", "parent", "name", "mode", "uid", "gid", "rdev", "target", "new-parent",
             "new-name", "replaced", "offset", "length", "size", "fallocate-mode", "atime-ns",
             "mtime-ns", "xattr", "fsync", "epoch", "brick-id", "segment-bytes"}};
  } else {
    return UsageError("unknown changelog command '" + cmd + "'", kUsage);
  }
  auto args = ParseArgs(argc, argv, first + 1, spec);
  if (!args.ok()) return UsageError(args.status().message(), kUsage);
  if (cmd == "dump") return Dump(*args);
  if (cmd == "status") return Status_(*args);
  if (cmd == "purge") return PurgeCmd(*args);
  if (cmd == "cursor") return CursorCmd(*args);
  return AppendCmd(*args);
}

}  // namespace drfs::cli
