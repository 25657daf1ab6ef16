// Records with every field of their op filled in, for changelog tests.
#pragma once

#include <string>

#include "changelog/record.h"

namespace drfs::changelog::testing {

inline Gfid GfidFor(uint64_t n) {
  Gfid g;
  for (int i = 0; i < 8; ++i) g.bytes[8 + i] = static_cast<uint8_t>(n >> (8 * (7 - i)));
  g.bytes[0] = 0xd5;  // never null, never the root
  return g;
}

// A record of `op` whose every meaningful field depends on `i`.
inline Record FullRecord(OpType op, uint64_t i) {
  Record r;
  r.op = op;
  r.gfid = GfidFor(i * 3 + 1);
  r.timestamp_ns = 1'700'000'000'000'000'000ull + i;
  switch (op) {
    case OpType::kCreate:
    case OpType::kMkdir:
    case OpType::kMknod:
    case OpType::kSymlink:
      r.parent = GfidFor(i * 3 + 2);
      r.name = "file-" + std::to_string(i) + (i % 2 ? "-\xc3\xa9t\xc3\xa9" : "");
      r.mode = op == OpType::kMkdir ? 040755 : 0100644 + static_cast<uint32_t>(i % 8);
      r.uid = 1000 + static_cast<uint32_t>(i);
      r.gid = 2000 + static_cast<uint32_t>(i);
      r.rdev = op == OpType::kMknod ? (8ull << 8 | i % 256) : 0;
      if (op == OpType::kSymlink) r.symlink_target = "../target/" + std::to_string(i);
      break;
    case OpType::kLink:
    case OpType::kUnlink:
    case OpType::kRmdir:
      r.parent = GfidFor(i * 3 + 2);
      r.name = "entry " + std::to_string(i);
      break;
    case OpType::kRename:
      r.parent = GfidFor(i * 3 + 2);
      r.name = "old-" + std::to_string(i);
      r.new_parent = GfidFor(i * 3 + 3);
      r.new_name = "new-" + std::to_string(i);
      if (i % 2) r.replaced = GfidFor(i * 5 + 9);
      if (i % 4 == 1) r.rename_flags = kRenameExchange;
      break;
    case OpType::kWrite:
      r.offset = i * 4096;
      r.length = 4096 + i;
      break;
    case OpType::kTruncate:
      r.size = i * 1000 + 7;
      break;
    case OpType::kFallocate:
      r.fallocate_mode = 0x3;  // KEEP_SIZE | PUNCH_HOLE
      r.offset = i;
      r.length = i * 2 + 1;
      break;
    case OpType::kSetattr:
      r.setattr_valid = kSetattrAll;
      r.mode = 0100600;
      r.uid = 7;
      r.gid = 8;
      r.atime_ns = -static_cast<int64_t>(i);  // times before 1970 are legal
      r.mtime_ns = static_cast<int64_t>(i) * 1'000'000'007;
      break;
    case OpType::kSetxattr:
    case OpType::kRemovexattr:
      r.xattr_name = "user.drfs-test." + std::to_string(i);
      break;
  }
  return r;
}

}  // namespace drfs::changelog::testing
