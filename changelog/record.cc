#include "changelog/record.h"

#include <strings.h>

#include "common/coding.h"

namespace drfs::changelog {
namespace {

void PutGfid(std::string* out, const Gfid& g) {
  out->append(reinterpret_cast<const char*>(g.bytes.data()), g.bytes.size());
}
bool GetGfid(Decoder* d, Gfid* g) {
  std::string_view b;
  if (!d->GetBytes(16, &b)) return false;
  std::copy(b.begin(), b.end(), g->bytes.begin());
  return true;
}

bool IsEntryCreate(OpType op) {
  return op == OpType::kCreate || op == OpType::kMkdir || op == OpType::kMknod ||
         op == OpType::kSymlink;
}

Status ValidName(std::string_view what, std::string_view n) {
  if (n.empty() || n.size() > kMaxNameLen || n == "." || n == ".." ||
      n.find('/') != std::string_view::npos || n.find('\0') != std::string_view::npos) {
    return InvalidArgument(std::string(what) + " '" + std::string(n) +
                           "' is not a valid entry name (1-255 bytes, no '/' or NUL, not . or ..)");
  }
  return Status::Ok();
}

}  // namespace

std::string_view OpTypeName(OpType op) {
  switch (op) {
    case OpType::kCreate: return "CREATE";
    case OpType::kMkdir: return "MKDIR";
    case OpType::kMknod: return "MKNOD";
    case OpType::kSymlink: return "SYMLINK";
    case OpType::kLink: return "LINK";
    case OpType::kUnlink: return "UNLINK";
    case OpType::kRmdir: return "RMDIR";
    case OpType::kRename: return "RENAME";
    case OpType::kWrite: return "WRITE";
    case OpType::kTruncate: return "TRUNCATE";
    case OpType::kFallocate: return "FALLOCATE";
    case OpType::kSetattr: return "SETATTR";
    case OpType::kSetxattr: return "SETXATTR";
    case OpType::kRemovexattr: return "REMOVEXATTR";
  }
  return "UNKNOWN";
}

std::optional<OpType> ParseOpType(std::string_view name) {
  for (OpType op : kAllOpTypes) {
    std::string_view n = OpTypeName(op);
    if (n.size() == name.size() && strncasecmp(n.data(), name.data(), n.size()) == 0) return op;
  }
  return std::nullopt;
}

Status ValidateRecord(const Record& r) {
  bool known = false;
  for (OpType op : kAllOpTypes) known |= op == r.op;
  if (!known) {
    return InvalidArgument("unknown op type " + std::to_string(static_cast<int>(r.op)));
  }
  if (r.gfid.is_null()) {
    return InvalidArgument(std::string(OpTypeName(r.op)) + " record has a null gfid");
  }
  switch (r.op) {
    case OpType::kCreate:
    case OpType::kMkdir:
    case OpType::kMknod:
    case OpType::kSymlink:
    case OpType::kLink:
    case OpType::kUnlink:
    case OpType::kRmdir:
    case OpType::kRename:
      if (r.parent.is_null()) {
        return InvalidArgument(std::string(OpTypeName(r.op)) + " record has a null parent gfid");
      }
      DRFS_RETURN_IF_ERROR(ValidName("name", r.name));
      break;
    default:
      break;
  }
  if (r.op == OpType::kSymlink && (r.symlink_target.empty() ||
                                   r.symlink_target.size() > kMaxTargetLen ||
                                   r.symlink_target.find('\0') != std::string::npos)) {
    return InvalidArgument("SYMLINK target must be 1-4095 bytes without NUL");
  }
  if (r.op == OpType::kRename) {
    if (r.new_parent.is_null()) return InvalidArgument("RENAME record has a null new parent");
    DRFS_RETURN_IF_ERROR(ValidName("new name", r.new_name));
    if (r.rename_flags & ~(kRenameNoreplace | kRenameExchange)) {
      return InvalidArgument("RENAME record has unknown flags " + std::to_string(r.rename_flags));
    }
    if ((r.rename_flags & kRenameExchange) && r.replaced.is_null()) {
      return InvalidArgument("RENAME exchange record must name the gfid it swapped with");
    }
  }
  if (r.op == OpType::kSetattr && (r.setattr_valid == 0 || (r.setattr_valid & ~kSetattrAll))) {
    return InvalidArgument("SETATTR record must name which of mode/uid/gid/atime/mtime changed");
  }
  if ((r.op == OpType::kSetxattr || r.op == OpType::kRemovexattr) &&
      (r.xattr_name.empty() || r.xattr_name.size() > kMaxXattrNameLen ||
       r.xattr_name.find('\0') != std::string::npos)) {
    return InvalidArgument("xattr name must be 1-255 bytes without NUL");
  }
  return Status::Ok();
}

void EncodePayload(const Record& r, std::string* out) {
  PutFixed64(out, r.lsn);
  PutFixed64(out, r.timestamp_ns);
  PutU8(out, static_cast<uint8_t>(r.op));
  PutGfid(out, r.gfid);
  if (IsEntryCreate(r.op)) {
    PutGfid(out, r.parent);
    PutLengthPrefixed(out, r.name);
    PutFixed32(out, r.mode);
    PutFixed32(out, r.uid);
    PutFixed32(out, r.gid);
    PutFixed64(out, r.rdev);
    if (r.op == OpType::kSymlink) PutLengthPrefixed(out, r.symlink_target);
    return;
  }
  switch (r.op) {
    case OpType::kLink:
    case OpType::kUnlink:
    case OpType::kRmdir:
      PutGfid(out, r.parent);
      PutLengthPrefixed(out, r.name);
      break;
    case OpType::kRename:
      PutGfid(out, r.parent);
      PutLengthPrefixed(out, r.name);
      PutGfid(out, r.new_parent);
      PutLengthPrefixed(out, r.new_name);
      PutGfid(out, r.replaced);
      PutFixed32(out, r.rename_flags);
      break;
    case OpType::kWrite:
      PutFixed64(out, r.offset);
      PutFixed64(out, r.length);
      break;
    case OpType::kTruncate:
      PutFixed64(out, r.size);
      break;
    case OpType::kFallocate:
      PutFixed32(out, r.fallocate_mode);
      PutFixed64(out, r.offset);
      PutFixed64(out, r.length);
      break;
    case OpType::kSetattr:
      PutFixed32(out, r.setattr_valid);
      PutFixed32(out, r.mode);
      PutFixed32(out, r.uid);
      PutFixed32(out, r.gid);
      PutFixed64(out, static_cast<uint64_t>(r.atime_ns));
      PutFixed64(out, static_cast<uint64_t>(r.mtime_ns));
      break;
    case OpType::kSetxattr:
    case OpType::kRemovexattr:
      PutLengthPrefixed(out, r.xattr_name);
      break;
    default:
      break;
  }
}

bool DecodePayload(std::string_view in, Record* out) {
  Decoder d(in);
  Record r;
  uint8_t op;
  if (!d.GetFixed64(&r.lsn) || !d.GetFixed64(&r.timestamp_ns) || !d.GetU8(&op) ||
      !GetGfid(&d, &r.gfid)) {
    return false;
  }
  if (op < static_cast<uint8_t>(OpType::kCreate) || op > static_cast<uint8_t>(OpType::kRemovexattr)) {
    return false;
  }
  r.op = static_cast<OpType>(op);
  if (IsEntryCreate(r.op)) {
    GetGfid(&d, &r.parent);
    d.GetLengthPrefixed(&r.name, kMaxNameLen);
    d.GetFixed32(&r.mode);
    d.GetFixed32(&r.uid);
    d.GetFixed32(&r.gid);
    d.GetFixed64(&r.rdev);
    if (r.op == OpType::kSymlink) d.GetLengthPrefixed(&r.symlink_target, kMaxTargetLen);
  } else {
    uint64_t a = 0, m = 0;
    switch (r.op) {
      case OpType::kLink:
      case OpType::kUnlink:
      case OpType::kRmdir:
        GetGfid(&d, &r.parent);
        d.GetLengthPrefixed(&r.name, kMaxNameLen);
        break;
      case OpType::kRename:
        GetGfid(&d, &r.parent);
        d.GetLengthPrefixed(&r.name, kMaxNameLen);
        GetGfid(&d, &r.new_parent);
        d.GetLengthPrefixed(&r.new_name, kMaxNameLen);
        GetGfid(&d, &r.replaced);
        d.GetFixed32(&r.rename_flags);
        break;
      case OpType::kWrite:
        d.GetFixed64(&r.offset);
        d.GetFixed64(&r.length);
        break;
      case OpType::kTruncate:
        d.GetFixed64(&r.size);
        break;
      case OpType::kFallocate:
        d.GetFixed32(&r.fallocate_mode);
        d.GetFixed64(&r.offset);
        d.GetFixed64(&r.length);
        break;
      case OpType::kSetattr:
        d.GetFixed32(&r.setattr_valid);
        d.GetFixed32(&r.mode);
        d.GetFixed32(&r.uid);
        d.GetFixed32(&r.gid);
        d.GetFixed64(&a);
        d.GetFixed64(&m);
        r.atime_ns = static_cast<int64_t>(a);
        r.mtime_ns = static_cast<int64_t>(m);
        break;
      case OpType::kSetxattr:
      case OpType::kRemovexattr:
        d.GetLengthPrefixed(&r.xattr_name, kMaxXattrNameLen);
        break;
      default:
        return false;
    }
  }
  if (!d.ok() || !d.empty()) return false;
  *out = std::move(r);
  return true;
}

}  // namespace drfs::changelog
