// InodeTable: the FUSE mount's map between the kernel's inode numbers (FUSE node ids) and gfids.
//
// The kernel names every object by a node id it got from us in a lookup-type reply (lookup,
// create, mkdir, mknod, symlink, link, readdirplus), and counts those replies; it sends the count
// back in forget once it drops the inode. So each entry carries that count (nlookup): Ref() adds
// one reply, Forget() takes the kernel's count off, and the entry goes at zero. One gfid has one
// node id while the kernel knows it, so hard links share an inode, as on a local file system.
//
// Node ids are handed out in increasing order and never reused within a mount; the root is
// FUSE_ROOT_ID (1) = the root gfid and is never forgotten. The generation (fuse_entry_param)
// is fixed per table: the mount picks one that differs from every earlier mount's (its start
// time), so a (node id, generation) pair never names two objects, as FUSE asks of exportable
// file systems.
//
// Each entry also keeps the mode and gid last seen for it, which is what new objects inherit
// from a setgid parent directory. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "common/gfid.h"

namespace drfs::volume::detail {

struct GfidHash {
  size_t operator()(const Gfid& g) const noexcept;
};

// The st_ino a stat(2) of the object shows: the gfid's last 8 bytes (as GlusterFS), the same on
// every mount and every client; 1 for the root. Zero (a gfid whose last 8 bytes are zero) maps
// to its first 8 bytes instead, since an inode number 0 hides files from some tools.
uint64_t GfidToIno(const Gfid& gfid);

class InodeTable {
 public:
  static constexpr uint64_t kRootId = 1;

  explicit InodeTable(uint64_t generation);

  // One more lookup-type reply for gfid: returns its node id (a new one for a gfid the kernel
  // does not know).
  uint64_t Ref(const Gfid& gfid);
  // The kernel dropped `nlookup` references (FUSE forget). The entry goes when none is left.
  // Unknown ids, and the root, are ignored.
  void Forget(uint64_t id, uint64_t nlookup);

  std::optional<Gfid> Find(uint64_t id) const;
  // The node id the kernel knows gfid by, if it knows it.
  std::optional<uint64_t> IdOf(const Gfid& gfid) const;
  uint64_t LookupCount(uint64_t id) const;  // 0 for an unknown id
  size_t size() const;
  uint64_t generation() const { return generation_; }

  // The mode and gid last seen for gfid (from any reply carrying its attributes); ignored
  // when the kernel does not know gfid.
  void NoteAttr(const Gfid& gfid, uint32_t mode, uint32_t gid);
  struct AttrHint {
    uint32_t mode = 0;
    uint32_t gid = 0;
  };
  std::optional<AttrHint> Attr(uint64_t id) const;

 private:
  struct Entry {
    Gfid gfid;
    uint64_t nlookup = 0;
    bool attr_known = false;
    AttrHint attr;
  };

  const uint64_t generation_;
  mutable std::mutex mu_;
  uint64_t next_id_ = kRootId + 1;
  std::unordered_map<uint64_t, Entry> by_id_;
  std::unordered_map<Gfid, uint64_t, GfidHash> by_gfid_;
};

}  // namespace drfs::volume::detail
