#include "changelog/dump.h"

#include <cstdio>

#include "common/json.h"
#include "common/time.h"

namespace drfs::changelog {
namespace {

// Visits the op's fields in order: f(name, kind, value-as-string or number).
// Kinds: 'g' gfid, 's' string, 'o' octal number, 'u' unsigned, 'i' signed, 'x' hex.
template <typename F>
void ForEachField(const Record& r, F&& f) {
  auto entry = [&] {
    f("parent", 'g', r.parent.ToString(), 0);
    f("name", 's', r.name, 0);
  };
  switch (r.op) {
    case OpType::kCreate:
    case OpType::kMkdir:
    case OpType::kMknod:
    case OpType::kSymlink:
      entry();
      f("mode", 'o', "", r.mode);
      f("uid", 'u', "", r.uid);
      f("gid", 'u', "", r.gid);
      f("rdev", 'u', "", r.rdev);
      if (r.op == OpType::kSymlink) f("target", 's', r.symlink_target, 0);
      break;
    case OpType::kLink:
    case OpType::kUnlink:
    case OpType::kRmdir:
      entry();
      break;
    case OpType::kRename:
      entry();
      f("new_parent", 'g', r.new_parent.ToString(), 0);
      f("new_name", 's', r.new_name, 0);
      f("replaced", 'g', r.replaced.is_null() ? std::string() : r.replaced.ToString(), 0);
      f("flags", 'x', "", r.rename_flags);
      break;
    case OpType::kWrite:
      f("offset", 'u', "", r.offset);
      f("length", 'u', "", r.length);
      break;
    case OpType::kTruncate:
      f("size", 'u', "", r.size);
      break;
    case OpType::kFallocate:
      f("mode", 'x', "", r.fallocate_mode);
      f("offset", 'u', "", r.offset);
      f("length", 'u', "", r.length);
      break;
    case OpType::kSetattr:
      if (r.setattr_valid & kSetMode) f("mode", 'o', "", r.mode);
      if (r.setattr_valid & kSetUid) f("uid", 'u', "", r.uid);
      if (r.setattr_valid & kSetGid) f("gid", 'u', "", r.gid);
      if (r.setattr_valid & kSetAtime) f("atime_ns", 'i', "", static_cast<uint64_t>(r.atime_ns));
      if (r.setattr_valid & kSetMtime) f("mtime_ns", 'i', "", static_cast<uint64_t>(r.mtime_ns));
      break;
    case OpType::kSetxattr:
    case OpType::kRemovexattr:
      f("xattr", 's', r.xattr_name, 0);
      break;
  }
}

}  // namespace

std::string FormatEntryLine(const Entry& e) {
  const Record& r = e.record;
  std::string out = std::to_string(r.lsn) + " " + FormatTimeNs(r.timestamp_ns) + " e" +
                    std::to_string(e.epoch) + " " + std::string(OpTypeName(r.op)) +
                    " gfid=" + r.gfid.ToString();
  ForEachField(r, [&](const char* name, char kind, const std::string& s, uint64_t v) {
    out += ' ';
    out += name;
    out += '=';
    char buf[32];
    switch (kind) {
      case 'g': out += s.empty() ? "-" : s; break;
      case 's': JsonWriter::AppendQuoted(&out, s); break;
      case 'o': std::snprintf(buf, sizeof buf, "0%llo", static_cast<unsigned long long>(v)); out += buf; break;
      case 'x': std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v)); out += buf; break;
      case 'i': out += std::to_string(static_cast<int64_t>(v)); break;
      default: out += std::to_string(v);
    }
  });
  return out;
}

std::string FormatEntryJson(const Entry& e) {
  const Record& r = e.record;
  JsonWriter j;
  j.BeginObject()
      .Key("lsn").Uint(r.lsn)
      .Key("time_ns").Uint(r.timestamp_ns)
      .Key("time").String(FormatTimeNs(r.timestamp_ns))
      .Key("epoch").Uint(e.epoch)
      .Key("op").String(OpTypeName(r.op))
      .Key("gfid").String(r.gfid.ToString());
  ForEachField(r, [&](const char* name, char kind, const std::string& s, uint64_t v) {
    j.Key(name);
    switch (kind) {
      case 'g': s.empty() ? j.Null() : j.String(s); break;
      case 's': j.String(s); break;
      case 'i': j.Int(static_cast<int64_t>(v)); break;
      default: j.Uint(v);  // modes are numbers in JSON; scripts format them as they like
    }
  });
  j.Key("segment").String(e.segment).Key("segment_offset").Uint(e.offset);
  j.EndObject();
  return j.Take();
}

}  // namespace drfs::changelog
