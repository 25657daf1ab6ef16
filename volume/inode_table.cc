#include "volume/detail/inode_table.h"

#include <cstring>

namespace drfs::volume::detail {

size_t GfidHash::operator()(const Gfid& g) const noexcept {
  uint64_t a, b;
  std::memcpy(&a, g.bytes.data(), 8);
  std::memcpy(&b, g.bytes.data() + 8, 8);
  return static_cast<size_t>(a * 0x9e3779b97f4a7c15ull ^ b);
}

uint64_t GfidToIno(const Gfid& gfid) {
  uint64_t v = 0;
  for (size_t i = 8; i < 16; ++i) v = (v << 8) | gfid.bytes[i];
  if (v != 0) return v;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | gfid.bytes[i];
  return v;
}

InodeTable::InodeTable(uint64_t generation) : generation_(generation) {
  by_id_[kRootId] = Entry{Gfid::Root(), 1, false, {}};
  by_gfid_[Gfid::Root()] = kRootId;
}

uint64_t InodeTable::Ref(const Gfid& gfid) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = by_gfid_.find(gfid);
  if (it != by_gfid_.end()) {
    ++by_id_[it->second].nlookup;
    return it->second;
  }
  const uint64_t id = next_id_++;
  by_id_[id] = Entry{gfid, 1, false, {}};
  by_gfid_[gfid] = id;
  return id;
}

void InodeTable::Forget(uint64_t id, uint64_t nlookup) {
  if (id == kRootId) return;
  std::lock_guard<std::mutex> l(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  if (it->second.nlookup > nlookup) {
    it->second.nlookup -= nlookup;
    return;
  }
  by_gfid_.erase(it->second.gfid);
  by_id_.erase(it);
}

std::optional<Gfid> InodeTable::Find(uint64_t id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  return it->second.gfid;
}

std::optional<uint64_t> InodeTable::IdOf(const Gfid& gfid) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = by_gfid_.find(gfid);
  if (it == by_gfid_.end()) return std::nullopt;
  return it->second;
}

uint64_t InodeTable::LookupCount(uint64_t id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = by_id_.find(id);
  return it == by_id_.end() ? 0 : it->second.nlookup;
}

size_t InodeTable::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return by_id_.size();
}

void InodeTable::NoteAttr(const Gfid& gfid, uint32_t mode, uint32_t gid) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = by_gfid_.find(gfid);
  if (it == by_gfid_.end()) return;
  Entry& e = by_id_[it->second];
  e.attr_known = true;
  e.attr = AttrHint{mode, gid};
}

std::optional<InodeTable::AttrHint> InodeTable::Attr(uint64_t id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end() || !it->second.attr_known) return std::nullopt;
  return it->second.attr;
}

}  // namespace drfs::volume::detail
