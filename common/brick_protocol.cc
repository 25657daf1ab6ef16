#include "common/brick_protocol.h"

#include <algorithm>
#include <cstring>

#include "common/coding.h"

namespace drfs::brick_proto {
namespace {

// Field groups of a request, in encoding order.
enum : uint32_t {
  kFGfid = 1u << 0,
  kFEntry = 1u << 1,     // parent, name
  kFNewEntry = 1u << 2,  // new_parent, new_name
  kFOwner = 1u << 3,     // mode, uid, gid
  kFRdev = 1u << 4,
  kFFlags = 1u << 5,
  kFTarget = 1u << 6,
  kFRange = 1u << 7,  // offset, length
  kFData = 1u << 8,
  kFAttr = 1u << 9,  // attr_valid, mode, uid, gid, size, atime, mtime
  kFXName = 1u << 10,
  kFXValue = 1u << 11,
  kFName = 1u << 12,  // name alone (hello)
  kFLock = 1u << 13,  // lock_owner
  kFPending = 1u << 14,
  // xattr_value, last and optional: encoded only when not empty, decoded when bytes remain.
  // The hello's applier secret, so a hello without one keeps the layout it always had.
  kFOptXValue = 1u << 15,
};

// Reply groups on success.
enum : uint32_t {
  kRAttr = 1u << 0,
  kRData = 1u << 1,
  kRNames = 1u << 2,
  kREntries = 1u << 3,
  kRStatfs = 1u << 4,
  kRCount = 1u << 5,
  kRLsn = 1u << 6,
  kRPending = 1u << 7,
};

struct OpInfo {
  std::string_view name;
  uint32_t request;
  uint32_t reply;
  bool mutation;
};

const OpInfo& Info(Op op) {
  static const OpInfo kTable[kMaxOp + 1] = {
      {"INVALID", 0, 0, false},
      /* kHello */ {"HELLO", kFName | kFFlags | kFOptXValue, kRData, false},
      /* kLookup */ {"LOOKUP", kFEntry, kRAttr | kRPending, false},
      /* kGetattr */ {"GETATTR", kFGfid, kRAttr | kRPending, false},
      /* kSetattr */ {"SETATTR", kFGfid | kFAttr, kRAttr | kRLsn, true},
      /* kMkdir */ {"MKDIR", kFGfid | kFEntry | kFOwner, kRAttr | kRLsn, true},
      /* kCreate */ {"CREATE", kFGfid | kFEntry | kFOwner | kFFlags, kRAttr | kRLsn, true},
      /* kMknod */ {"MKNOD", kFGfid | kFEntry | kFOwner | kFRdev, kRAttr | kRLsn, true},
      /* kSymlink */ {"SYMLINK", kFGfid | kFEntry | kFOwner | kFTarget, kRAttr | kRLsn, true},
      /* kReadlink */ {"READLINK", kFGfid, kRData, false},
      /* kLink */ {"LINK", kFGfid | kFEntry, kRAttr | kRLsn, true},
      /* kUnlink */ {"UNLINK", kFEntry, kRLsn, true},
      /* kRmdir */ {"RMDIR", kFEntry, kRLsn, true},
      /* kRename */ {"RENAME", kFEntry | kFNewEntry | kFFlags, kRLsn, true},
      /* kRead */ {"READ", kFGfid | kFRange, kRData, false},
      /* kWrite */ {"WRITE", kFGfid | kFRange | kFData, kRAttr | kRCount | kRLsn, true},
      /* kFsync */ {"FSYNC", kFGfid | kFFlags, 0, false},
      /* kFallocate */ {"FALLOCATE", kFGfid | kFFlags | kFRange, kRAttr | kRLsn, true},
      /* kReaddir */ {"READDIR", kFGfid | kFRange | kFFlags, kREntries, false},
      /* kStatfs */ {"STATFS", kFGfid, kRStatfs, false},
      /* kAccess */ {"ACCESS", kFGfid | kFFlags, 0, false},
      /* kGetxattr */ {"GETXATTR", kFGfid | kFXName, kRData, false},
      /* kSetxattr */ {"SETXATTR", kFGfid | kFXName | kFXValue | kFFlags, kRLsn, true},
      /* kListxattr */ {"LISTXATTR", kFGfid, kRNames, false},
      /* kRemovexattr */ {"REMOVEXATTR", kFGfid | kFXName, kRLsn, true},
      /* kLookupGfid */ {"LOOKUP_GFID", kFGfid, kRAttr | kRPending, false},
      /* kResolveGfid */ {"RESOLVE_GFID", kFGfid, kRData, false},
      /* kInodelk */ {"INODELK", kFGfid | kFFlags | kFLock | kFPending, kRPending, false},
      /* kEntrylk */
      {"ENTRYLK", kFEntry | kFNewEntry | kFFlags | kFLock | kFPending, kRPending, false},
      /* kXattrop */ {"XATTROP", kFGfid | kFPending, kRPending, false},
      /* kHealIndex */ {"HEAL_INDEX", kFRange, kREntries, false},
  };
  uint16_t i = static_cast<uint16_t>(op);
  return kTable[i <= kMaxOp ? i : 0];
}

void PutGfid(std::string* out, const Gfid& g) {
  out->append(reinterpret_cast<const char*>(g.bytes.data()), g.bytes.size());
}
bool GetGfid(Decoder* d, Gfid* g) {
  std::string_view b;
  if (!d->GetBytes(16, &b)) return false;
  std::memcpy(g->bytes.data(), b.data(), 16);
  return true;
}
void PutI64(std::string* out, int64_t v) { PutFixed64(out, static_cast<uint64_t>(v)); }
bool GetI64(Decoder* d, int64_t* v) {
  uint64_t u;
  if (!d->GetFixed64(&u)) return false;
  *v = static_cast<int64_t>(u);
  return true;
}

void PutIatt(std::string* out, const Iatt& a) {
  PutGfid(out, a.gfid);
  PutFixed32(out, a.mode);
  PutFixed32(out, a.nlink);
  PutFixed32(out, a.uid);
  PutFixed32(out, a.gid);
  PutFixed64(out, a.rdev);
  PutFixed64(out, a.size);
  PutFixed64(out, a.blocks);
  PutFixed32(out, a.blksize);
  PutI64(out, a.atime_ns);
  PutI64(out, a.mtime_ns);
  PutI64(out, a.ctime_ns);
}
bool GetIatt(Decoder* d, Iatt* a) {
  return GetGfid(d, &a->gfid) && d->GetFixed32(&a->mode) && d->GetFixed32(&a->nlink) &&
         d->GetFixed32(&a->uid) && d->GetFixed32(&a->gid) && d->GetFixed64(&a->rdev) &&
         d->GetFixed64(&a->size) && d->GetFixed64(&a->blocks) && d->GetFixed32(&a->blksize) &&
         GetI64(d, &a->atime_ns) && GetI64(d, &a->mtime_ns) && GetI64(d, &a->ctime_ns);
}

void PutCounters(std::string* out, const std::vector<int32_t>& v) {
  PutFixed32(out, static_cast<uint32_t>(v.size()));
  for (int32_t x : v) PutFixed32(out, static_cast<uint32_t>(x));
}
bool GetCounters(Decoder* d, std::vector<int32_t>* v) {
  uint32_t n = 0;
  if (!d->GetFixed32(&n)) return false;
  if (n > kMaxPendingCounters || n > d->remaining() / 4) return false;
  v->resize(n);
  for (auto& x : *v) {
    uint32_t u = 0;
    if (!d->GetFixed32(&u)) return false;
    x = static_cast<int32_t>(u);
  }
  return true;
}

Status Malformed(std::string_view what, Op op) {
  return InvalidArgument("malformed " + std::string(what) + " for " + std::string(OpName(op)));
}

}  // namespace

std::string_view OpName(Op op) { return Info(op).name; }

std::optional<Op> ParseOpName(std::string_view name) {
  for (uint16_t o = 1; o <= kMaxOp; ++o) {
    std::string_view n = Info(static_cast<Op>(o)).name;
    if (n.size() == name.size() &&
        std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
          return a == (b >= 'a' && b <= 'z' ? static_cast<char>(b - 'a' + 'A') : b);
        })) {
      return static_cast<Op>(o);
    }
  }
  return std::nullopt;
}
bool IsValidOp(uint16_t op) { return op >= 1 && op <= kMaxOp; }
bool IsMutation(Op op) { return Info(op).mutation; }

Reply ErrorReply(int err, std::string message) {
  Reply r;
  r.err = err;
  r.message = std::move(message);
  return r;
}

Status ReplyStatus(const Reply& r) {
  if (r.err == 0) return Status::Ok();
  Status s = ErrnoStatus(r.err, r.message);
  return s;
}

void EncodeRequest(const Request& r, std::string* out) {
  const uint32_t f = Info(r.op).request;
  if (f & kFGfid) PutGfid(out, r.gfid);
  if (f & kFEntry) {
    PutGfid(out, r.parent);
    PutLengthPrefixed(out, r.name);
  }
  if (f & kFNewEntry) {
    PutGfid(out, r.new_parent);
    PutLengthPrefixed(out, r.new_name);
  }
  if (f & kFOwner) {
    PutFixed32(out, r.mode);
    PutFixed32(out, r.uid);
    PutFixed32(out, r.gid);
  }
  if (f & kFRdev) PutFixed64(out, r.rdev);
  if (f & kFFlags) PutFixed32(out, r.flags);
  if (f & kFTarget) PutLengthPrefixed(out, r.target);
  if (f & kFRange) {
    PutFixed64(out, r.offset);
    PutFixed64(out, r.length);
  }
  if (f & kFData) PutLengthPrefixed(out, r.data);
  if (f & kFAttr) {
    PutFixed32(out, r.attr_valid);
    PutFixed32(out, r.mode);
    PutFixed32(out, r.uid);
    PutFixed32(out, r.gid);
    PutFixed64(out, r.size);
    PutI64(out, r.atime_ns);
    PutI64(out, r.mtime_ns);
  }
  if (f & kFXName) PutLengthPrefixed(out, r.xattr_name);
  if (f & kFXValue) PutLengthPrefixed(out, r.xattr_value);
  if (f & kFName) PutLengthPrefixed(out, r.name);
  if (f & kFLock) PutFixed64(out, r.lock_owner);
  if (f & kFPending) PutCounters(out, r.pending);
  if ((f & kFOptXValue) && !r.xattr_value.empty()) PutLengthPrefixed(out, r.xattr_value);
}

Status DecodeRequest(Op op, std::string_view in, Request* out) {
  if (!IsValidOp(static_cast<uint16_t>(op))) {
    return InvalidArgument("unknown brick op " + std::to_string(static_cast<int>(op)));
  }
  const uint32_t f = Info(op).request;
  Decoder d(in);
  Request r;
  r.op = op;
  if (f & kFGfid) GetGfid(&d, &r.gfid);
  if (f & kFEntry) {
    GetGfid(&d, &r.parent);
    d.GetLengthPrefixed(&r.name, kMaxName);
  }
  if (f & kFNewEntry) {
    GetGfid(&d, &r.new_parent);
    d.GetLengthPrefixed(&r.new_name, kMaxName);
  }
  if (f & kFOwner) {
    d.GetFixed32(&r.mode);
    d.GetFixed32(&r.uid);
    d.GetFixed32(&r.gid);
  }
  if (f & kFRdev) d.GetFixed64(&r.rdev);
  if (f & kFFlags) d.GetFixed32(&r.flags);
  if (f & kFTarget) d.GetLengthPrefixed(&r.target, kMaxPath);
  if (f & kFRange) {
    d.GetFixed64(&r.offset);
    d.GetFixed64(&r.length);
  }
  if (f & kFData) d.GetLengthPrefixed(&r.data, kMaxIo);
  if (f & kFAttr) {
    d.GetFixed32(&r.attr_valid);
    d.GetFixed32(&r.mode);
    d.GetFixed32(&r.uid);
    d.GetFixed32(&r.gid);
    d.GetFixed64(&r.size);
    GetI64(&d, &r.atime_ns);
    GetI64(&d, &r.mtime_ns);
  }
  if (f & kFXName) d.GetLengthPrefixed(&r.xattr_name, kMaxXattrName);
  if (f & kFXValue) d.GetLengthPrefixed(&r.xattr_value, kMaxXattrValue);
  if (f & kFName) d.GetLengthPrefixed(&r.name, kMaxName);
  if (f & kFLock) d.GetFixed64(&r.lock_owner);
  if ((f & kFPending) && d.ok() && !GetCounters(&d, &r.pending)) {
    return Malformed("request (pending counters)", op);
  }
  if ((f & kFOptXValue) && d.ok() && !d.empty()) {
    d.GetLengthPrefixed(&r.xattr_value, kMaxXattrValue);
  }
  if (!d.ok()) return Malformed("request (a field is cut short or over its limit)", op);
  if (!d.empty()) return Malformed("request (trailing bytes)", op);
  *out = std::move(r);
  return Status::Ok();
}

void EncodeReply(Op op, const Reply& r, std::string* out) {
  PutFixed32(out, static_cast<uint32_t>(r.err));
  if (r.err != 0) {
    PutLengthPrefixed(out, std::string_view(r.message).substr(0, kMaxMessage));
    return;
  }
  const uint32_t f = Info(op).reply;
  if (f & kRAttr) PutIatt(out, r.attr);
  if (f & kRData) PutLengthPrefixed(out, r.data);
  if (f & kRNames) {
    PutFixed32(out, static_cast<uint32_t>(r.names.size()));
    for (const auto& n : r.names) PutLengthPrefixed(out, n);
  }
  if (f & kREntries) {
    PutFixed32(out, static_cast<uint32_t>(r.entries.size()));
    for (const auto& e : r.entries) {
      PutLengthPrefixed(out, e.name);
      PutGfid(out, e.gfid);
      PutFixed32(out, e.type);
      PutFixed64(out, e.cookie);
      PutU8(out, e.has_attr ? 1 : 0);
      if (e.has_attr) PutIatt(out, e.attr);
    }
    PutU8(out, r.eof ? 1 : 0);
  }
  if (f & kRStatfs) {
    const StatfsInfo& s = r.statfs;
    for (uint64_t v : {s.bsize, s.frsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.favail,
                       s.namemax}) {
      PutFixed64(out, v);
    }
  }
  if (f & kRCount) PutFixed64(out, r.count);
  if (f & kRLsn) PutFixed64(out, r.lsn);
  if (f & kRPending) PutCounters(out, r.pending);
}

Status DecodeReply(Op op, std::string_view in, Reply* out) {
  if (!IsValidOp(static_cast<uint16_t>(op))) {
    return InvalidArgument("unknown brick op " + std::to_string(static_cast<int>(op)));
  }
  Decoder d(in);
  Reply r;
  uint32_t err = 0;
  d.GetFixed32(&err);
  r.err = static_cast<int32_t>(err);
  if (d.ok() && r.err != 0) {
    d.GetLengthPrefixed(&r.message, kMaxMessage);
  } else if (d.ok()) {
    const uint32_t f = Info(op).reply;
    if (f & kRAttr) GetIatt(&d, &r.attr);
    if (f & kRData) d.GetLengthPrefixed(&r.data, std::max(kMaxIo, kMaxPath));
    if (f & kRNames) {
      uint32_t n = 0;
      d.GetFixed32(&n);
      // Each name takes at least 4 bytes, which bounds n by what is actually there.
      if (n > d.remaining() / 4) return Malformed("reply (name count)", op);
      r.names.resize(n);
      for (auto& s : r.names) d.GetLengthPrefixed(&s, kMaxXattrName);
    }
    if (f & kREntries) {
      uint32_t n = 0;
      d.GetFixed32(&n);
      if (n > kMaxDirEntries || n > d.remaining() / 33) return Malformed("reply (entry count)", op);
      r.entries.resize(n);
      for (auto& e : r.entries) {
        uint8_t has = 0;
        d.GetLengthPrefixed(&e.name, kMaxName);
        GetGfid(&d, &e.gfid);
        d.GetFixed32(&e.type);
        d.GetFixed64(&e.cookie);
        d.GetU8(&has);
        e.has_attr = has != 0;
        if (e.has_attr) GetIatt(&d, &e.attr);
      }
      uint8_t eof = 0;
      d.GetU8(&eof);
      r.eof = eof != 0;
    }
    if (f & kRStatfs) {
      StatfsInfo& s = r.statfs;
      for (uint64_t* v : {&s.bsize, &s.frsize, &s.blocks, &s.bfree, &s.bavail, &s.files, &s.ffree,
                          &s.favail, &s.namemax}) {
        d.GetFixed64(v);
      }
    }
    if (f & kRCount) d.GetFixed64(&r.count);
    if (f & kRLsn) d.GetFixed64(&r.lsn);
    if ((f & kRPending) && d.ok() && !GetCounters(&d, &r.pending)) {
      return Malformed("reply (pending counters)", op);
    }
  }
  if (!d.ok()) return Malformed("reply (a field is cut short or over its limit)", op);
  if (!d.empty()) return Malformed("reply (trailing bytes)", op);
  *out = std::move(r);
  return Status::Ok();
}

}  // namespace drfs::brick_proto
