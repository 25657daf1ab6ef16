// A changelog record: one mutation a brick made, in the order it made them.
//
// Records carry what a replayer needs to redo the operation by gfid. WRITE records carry only
// the range; the syncer reads the current bytes from the brick when it ships them. Which fields
// are meaningful depends on the op (see the table in docs/changelog.md); the others stay zero.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/gfid.h"
#include "common/status.h"

namespace drfs::changelog {

using Lsn = uint64_t;

enum class OpType : uint8_t {
  kCreate = 1,
  kMkdir = 2,
  kMknod = 3,
  kSymlink = 4,
  kLink = 5,
  kUnlink = 6,
  kRmdir = 7,
  kRename = 8,
  kWrite = 9,
  kTruncate = 10,
  kFallocate = 11,
  kSetattr = 12,
  kSetxattr = 13,
  kRemovexattr = 14,
};
inline constexpr OpType kAllOpTypes[] = {
    OpType::kCreate,  OpType::kMkdir,     OpType::kMknod,     OpType::kSymlink, OpType::kLink,
    OpType::kUnlink,  OpType::kRmdir,     OpType::kRename,    OpType::kWrite,   OpType::kTruncate,
    OpType::kFallocate, OpType::kSetattr, OpType::kSetxattr, OpType::kRemovexattr,
};

// "CREATE", "RENAME", ...
std::string_view OpTypeName(OpType op);
std::optional<OpType> ParseOpType(std::string_view name);  // case-insensitive

// Bits of Record::setattr_valid.
inline constexpr uint32_t kSetMode = 1u << 0;
inline constexpr uint32_t kSetUid = 1u << 1;
inline constexpr uint32_t kSetGid = 1u << 2;
inline constexpr uint32_t kSetAtime = 1u << 3;
inline constexpr uint32_t kSetMtime = 1u << 4;
inline constexpr uint32_t kSetattrAll = kSetMode | kSetUid | kSetGid | kSetAtime | kSetMtime;

// Bits of Record::rename_flags (the values of Linux's RENAME_NOREPLACE and RENAME_EXCHANGE).
inline constexpr uint32_t kRenameNoreplace = 1u << 0;
inline constexpr uint32_t kRenameExchange = 1u << 1;

// Limits enforced on append (and trusted on read only after the CRC matched).
inline constexpr size_t kMaxNameLen = 255;      // NAME_MAX
inline constexpr size_t kMaxTargetLen = 4095;   // PATH_MAX - 1
inline constexpr size_t kMaxXattrNameLen = 255;  // XATTR_NAME_MAX

struct Record {
  Lsn lsn = 0;                // assigned by the writer
  uint64_t timestamp_ns = 0;  // wall clock; assigned by the writer when 0
  OpType op = OpType::kCreate;
  Gfid gfid;  // the object the op is about (for UNLINK/RMDIR: the removed entry)

  // Entry ops. CREATE/MKDIR/MKNOD/SYMLINK/LINK/UNLINK/RMDIR: the entry. RENAME: the source.
  Gfid parent;
  std::string name;
  // CREATE/MKDIR/MKNOD/SYMLINK.
  uint32_t mode = 0, uid = 0, gid = 0;
  uint64_t rdev = 0;
  std::string symlink_target;  // SYMLINK
  // RENAME: destination, and the gfid of the entry it replaced (null if none). With
  // kRenameExchange in rename_flags the two entries swapped: `replaced` now sits at (parent,
  // name) and nothing was removed.
  Gfid new_parent;
  std::string new_name;
  Gfid replaced;
  uint32_t rename_flags = 0;
  // WRITE/FALLOCATE: the byte range. FALLOCATE: its mode flags (FALLOC_FL_*).
  uint64_t offset = 0, length = 0;
  uint32_t fallocate_mode = 0;
  // TRUNCATE: the new size.
  uint64_t size = 0;
  // SETATTR: which fields changed (kSet* bits) and their new values. mode/uid/gid above.
  uint32_t setattr_valid = 0;
  int64_t atime_ns = 0, mtime_ns = 0;
  // SETXATTR/REMOVEXATTR.
  std::string xattr_name;

  friend bool operator==(const Record&, const Record&) = default;
};

// Checks the fields an op needs are present and within limits. InvalidArgument otherwise.
Status ValidateRecord(const Record& r);

// Payload encoding: lsn, timestamp, op, gfid, then the op's own fields.
void EncodePayload(const Record& r, std::string* out);
// Parses a payload; false if it is malformed or has trailing bytes. Never reads out of bounds.
bool DecodePayload(std::string_view in, Record* r);

}  // namespace drfs::changelog
