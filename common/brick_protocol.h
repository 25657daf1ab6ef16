// The brick protocol: the requests a brick serves and its replies, and their encoding.
//
// Everything above the brick (replication, FUSE, syncer, applier) speaks only this. A request
// names objects by gfid; entry ops take (parent gfid, name); create-type ops carry the gfid the
// caller assigns, which is how replicas and the secondary end up with the same gfids.
//
// Request and Reply are flat structs (like changelog::Record): which fields an op uses is fixed
// per op by the tables in brick_protocol.cc, and only those are encoded. Decoding is
// bounds-checked and rejects trailing bytes, so this and common/wire are the only code that
// parses bytes from the network.
//
// Errors travel as an errno (Reply::err) with a message, and mean what the same call returns
// on a local file system.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/gfid.h"
#include "common/status.h"

namespace drfs::brick_proto {

inline constexpr uint16_t kProtocolVersion = 1;

// A gfid no object has. Entry locks under it are a lock space for cluster services (the
// geo-replication syncers' election): they lock nothing on disk, carry no markers, and
// conflict with no lock on a real directory.
inline const Gfid& ServiceLockSpace() {
  static const Gfid g = *Gfid::Parse("00000000-0000-0000-0000-0000000000e1");
  return g;
}

enum class Op : uint16_t {
  // name = client name; flags = protocol version; xattr_value = the applier secret (optional,
  // encoded last and only when set; see docs/brick.md "Read-only bricks"). Reply: data = brick
  // id. A brick started with an applier secret answers a wrong one with EACCES; a right one
  // lets this connection mutate the read-only brick. The brick handles it on the network
  // thread, so requests sent after it on the connection see its effect.
  kHello = 1,
  kLookup = 2,
  kGetattr = 3,
  kSetattr = 4,
  kMkdir = 5,
  kCreate = 6,
  kMknod = 7,
  kSymlink = 8,
  kReadlink = 9,
  kLink = 10,
  kUnlink = 11,
  kRmdir = 12,
  kRename = 13,
  kRead = 14,
  kWrite = 15,
  kFsync = 16,
  kFallocate = 17,
  kReaddir = 18,
  kStatfs = 19,
  kAccess = 20,
  kGetxattr = 21,
  kSetxattr = 22,
  kListxattr = 23,
  kRemovexattr = 24,
  kLookupGfid = 25,
  kResolveGfid = 26,
  // Replication support (volume/): locks held on the brick, and pending-heal markers. None is
  // journaled; none changes what a user sees.
  kInodelk = 27,    // lock or unlock gfid (whole file) for lock_owner; see kLock* flags
  kEntrylk = 28,    // lock or unlock (parent, name) [and (new_parent, new_name)]; name "" locks
                    // every name of the directory
  kXattrop = 29,    // add `pending` deltas to gfid's markers; reply: the markers after it
  kHealIndex = 30,  // list gfids whose markers are not all zero; offset = cookie, length = max
};
inline constexpr uint16_t kMaxOp = 30;

std::string_view OpName(Op op);
// "mkdir", "LOOKUP_GFID", ... (case-insensitive); nullopt if no such op.
std::optional<Op> ParseOpName(std::string_view name);
bool IsValidOp(uint16_t op);
// Ops that change the brick (refused with EROFS on a read-only brick, journaled on success).
bool IsMutation(Op op);

// File attributes, as stat(2) reports them, plus the gfid.
struct Iatt {
  Gfid gfid;
  uint32_t mode = 0;  // type and permission bits (S_IFMT | 07777)
  uint32_t nlink = 0;
  uint32_t uid = 0, gid = 0;
  uint64_t rdev = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // 512-byte units
  uint32_t blksize = 0;
  int64_t atime_ns = 0, mtime_ns = 0, ctime_ns = 0;
  friend bool operator==(const Iatt&, const Iatt&) = default;
};

// Which Setattr fields to apply (Request::attr_valid).
inline constexpr uint32_t kAttrMode = 1u << 0;
inline constexpr uint32_t kAttrUid = 1u << 1;
inline constexpr uint32_t kAttrGid = 1u << 2;
inline constexpr uint32_t kAttrSize = 1u << 3;
inline constexpr uint32_t kAttrAtime = 1u << 4;
inline constexpr uint32_t kAttrMtime = 1u << 5;
inline constexpr uint32_t kAttrAtimeNow = 1u << 6;  // set atime to the brick's clock
inline constexpr uint32_t kAttrMtimeNow = 1u << 7;
inline constexpr uint32_t kAttrAll = (1u << 8) - 1;

// Request::flags meanings, per op:
//   kCreate: kCreateExclusive (fail with EEXIST if the name exists; otherwise open it)
//   kRename: RENAME_NOREPLACE / RENAME_EXCHANGE from <linux/fs.h>
//   kSetxattr: XATTR_CREATE / XATTR_REPLACE
//   kFsync: 1 = datasync
//   kFallocate: FALLOC_FL_* mode
//   kAccess: R_OK|W_OK|X_OK|F_OK mask
//   kReaddir: kReaddirPlus (return attributes with each entry)
//   kHello: the client's protocol version
//   kInodelk/kEntrylk: kLock* bits below
inline constexpr uint32_t kCreateExclusive = 1;
inline constexpr uint32_t kReaddirPlus = 1;

// Locks (kInodelk, kEntrylk). Every lock is exclusive and belongs to (connection, lock_owner):
// the brick drops all of a connection's locks, granted or waited for, when it closes, so a
// client that dies releases its locks. Without kLockUnlock the request locks: a blocking lock
// is answered when granted (waiters are served first come, first served); a non-blocking one
// gets EAGAIN at once when another owner holds a conflicting lock. An entry lock with name ""
// conflicts with every entry lock of that directory. A request may carry `pending` deltas:
// a lock applies them once granted (the pre-op), an unlock applies them before releasing (the
// post-op). Inodelk applies them to gfid; entrylk to parent, and to new_parent when that is
// set and differs. Unlocking what the owner does not hold is not an error (it also cancels a
// wait), so a client can always clean up after a timeout.
inline constexpr uint32_t kLockUnlock = 1u << 0;
inline constexpr uint32_t kLockBlocking = 1u << 1;

// Pending-heal markers, AFR's model. Each object's markers are a vector of int32 counters
// (stored in the xattr trusted.drfs.pending): [0..2] are "dirty" for data, metadata and entry
// (an op is in flight, or its client died mid-way), then three per brick of the replica set,
// [3 + 3*i + t], meaning "brick i missed changes of type t that this brick has". Xattrop adds
// deltas element-wise (missing elements are zero) and the brick keeps DIR/.drfs/heal/<gfid>
// while any counter is not zero, which is what kHealIndex lists.
inline constexpr int kMarkData = 0;
inline constexpr int kMarkMetadata = 1;
inline constexpr int kMarkEntry = 2;
inline constexpr size_t kMaxPendingCounters = 3 + 3 * 16;
inline size_t PendingIndex(int brick, int type) { return 3 + 3 * static_cast<size_t>(brick) + type; }

struct Request {
  Op op = Op::kHello;
  Gfid gfid;  // the object; for create-type ops, the gfid to give the new object
  Gfid parent;
  std::string name;
  Gfid new_parent;  // kRename destination
  std::string new_name;
  uint32_t mode = 0, uid = 0, gid = 0;
  uint64_t rdev = 0;
  uint32_t flags = 0;
  std::string target;  // kSymlink
  // kRead/kFallocate: range. kWrite: offset (length unused). kReaddir: offset = cookie to
  // continue from (0 = start), length = most entries wanted.
  uint64_t offset = 0, length = 0;
  std::string data;  // kWrite
  uint32_t attr_valid = 0;  // kSetattr: kAttr* bits, values in mode/uid/gid/size/atime/mtime
  uint64_t size = 0;
  int64_t atime_ns = 0, mtime_ns = 0;
  std::string xattr_name, xattr_value;  // kHello: xattr_value = the applier secret, if any
  uint64_t lock_owner = 0;       // kInodelk, kEntrylk
  std::vector<int32_t> pending;  // kInodelk, kEntrylk, kXattrop: deltas to the markers
  friend bool operator==(const Request&, const Request&) = default;
};

struct DirEntry {
  std::string name;
  Gfid gfid;
  uint32_t type = 0;    // DT_* from <dirent.h>
  uint64_t cookie = 0;  // pass as Request::offset to continue after this entry
  bool has_attr = false;
  Iatt attr;            // with kReaddirPlus
  friend bool operator==(const DirEntry&, const DirEntry&) = default;
};

struct StatfsInfo {
  uint64_t bsize = 0, frsize = 0, blocks = 0, bfree = 0, bavail = 0, files = 0, ffree = 0,
           favail = 0, namemax = 0;
  friend bool operator==(const StatfsInfo&, const StatfsInfo&) = default;
};

struct Reply {
  int32_t err = 0;  // errno; 0 = success
  std::string message;
  Iatt attr;          // lookup, getattr, setattr, mkdir, create, mknod, symlink, link, write,
                      // fallocate, lookup-gfid
  std::string data;   // read: bytes; readlink: target; getxattr: value; resolve: path;
                      // hello: brick id
  std::vector<std::string> names;  // listxattr
  std::vector<DirEntry> entries;   // readdir
  bool eof = false;                // readdir
  StatfsInfo statfs;
  uint64_t count = 0;  // write: bytes written
  uint64_t lsn = 0;    // mutations: the changelog LSN that journaled it
  // lookup, getattr, lookup-gfid, xattrop, inodelk, entrylk: the object's markers (empty when
  // it has none, i.e. all zero). Entrylk reports the parent's.
  std::vector<int32_t> pending;
  friend bool operator==(const Reply&, const Reply&) = default;
};

// A failed Reply carrying errno `err` and a message.
Reply ErrorReply(int err, std::string message);
// The Status equivalent of a failed reply (ErrnoStatus mapping, errno kept).
Status ReplyStatus(const Reply& r);

void EncodeRequest(const Request& r, std::string* out);
// InvalidArgument naming what is malformed.
Status DecodeRequest(Op op, std::string_view in, Request* r);
void EncodeReply(Op op, const Reply& r, std::string* out);
Status DecodeReply(Op op, std::string_view in, Reply* r);

// Limits checked by the decoder (a well-formed request never exceeds them).
inline constexpr size_t kMaxName = 255;
inline constexpr size_t kMaxPath = 4096;
inline constexpr size_t kMaxXattrName = 255;
inline constexpr size_t kMaxXattrValue = 64 * 1024;
inline constexpr size_t kMaxIo = 4 * 1024 * 1024;  // read/write size
inline constexpr size_t kMaxDirEntries = 4096;
inline constexpr size_t kMaxMessage = 4096;
// kHealIndex: entries carry the gfid (name = its text form, type 0).

}  // namespace drfs::brick_proto
