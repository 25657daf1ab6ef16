// Intent: what a multi-step namespace op is about to do, written to a slot of the intent log
// (intent_log.h) before its first step and cleared after it is journaled, so Open() can finish
// or undo an op a crash interrupted (see backend.cc, "Crash consistency").
//
// The text is a few "key value" lines ending in "end"; strings are hex, so any name survives.
#pragma once

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>

#include "changelog/record.h"
#include "common/gfid.h"

namespace drfs::brick::detail {

struct Intent {
  uint64_t seq = 0;             // repair undoes newer intents first
  int slot = -1;                // in the intent log; not encoded
  changelog::Lsn base_lsn = 0;  // journal's last LSN before the op: its record comes later
  changelog::OpType op = changelog::OpType::kCreate;
  Gfid gfid;    // the object created, linked, removed or renamed
  Gfid parent;  // its entry
  std::string name;
  Gfid new_parent;  // RENAME destination
  std::string new_name;
  Gfid replaced;    // RENAME: what was at the destination (null if nothing)
  std::string tmp;  // create-type ops: the object's name under .drfs/tmp while it is built
  // RMDIR: the removed directory's; RENAME: the replaced directory's. To recreate it on undo.
  uint32_t mode = 0, uid = 0, gid = 0;
  bool last = false;      // UNLINK: the last tree name. RENAME: the replaced file's last name
  bool exchange = false;  // RENAME_EXCHANGE
  bool source_dir = false;
  bool replaced_dir = false;

  std::string Encode() const;
  static std::optional<Intent> Decode(const std::string& text);
};

inline std::string HexEncode(const std::string& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2 + 1);
  for (unsigned char c : s) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out.empty() ? "-" : out;  // "-" keeps an empty string a token
}

inline std::optional<std::string> HexDecode(const std::string& s) {
  if (s == "-") return std::string();
  if (s.size() % 2) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < s.size(); i += 2) {
    int hi = nibble(s[i]), lo = nibble(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return out;
}

inline std::string Intent::Encode() const {
  std::ostringstream o;
  o << "op " << static_cast<int>(op) << "\n"
    << "seq " << seq << "\n"
    << "base " << base_lsn << "\n"
    << "gfid " << gfid.ToString() << "\n"
    << "parent " << parent.ToString() << "\n"
    << "name " << HexEncode(name) << "\n"
    << "new_parent " << new_parent.ToString() << "\n"
    << "new_name " << HexEncode(new_name) << "\n"
    << "replaced " << replaced.ToString() << "\n"
    << "tmp " << HexEncode(tmp) << "\n"
    << "owner " << mode << " " << uid << " " << gid << "\n"
    << "flags " << last << " " << exchange << " " << source_dir << " " << replaced_dir << "\n"
    << "end\n";
  return o.str();
}

inline std::optional<Intent> Intent::Decode(const std::string& text) {
  std::istringstream in(text);
  Intent t;
  std::string key, g1, g2, g3, g4, n1, n2, tmp, end;
  int op = 0;
  if (!(in >> key >> op) || key != "op") return std::nullopt;
  if (!(in >> key >> t.seq) || key != "seq") return std::nullopt;
  if (!(in >> key >> t.base_lsn) || key != "base") return std::nullopt;
  if (!(in >> key >> g1) || key != "gfid") return std::nullopt;
  if (!(in >> key >> g2) || key != "parent") return std::nullopt;
  if (!(in >> key >> n1) || key != "name") return std::nullopt;
  if (!(in >> key >> g3) || key != "new_parent") return std::nullopt;
  if (!(in >> key >> n2) || key != "new_name") return std::nullopt;
  if (!(in >> key >> g4) || key != "replaced") return std::nullopt;
  if (!(in >> key >> tmp) || key != "tmp") return std::nullopt;
  if (!(in >> key >> t.mode >> t.uid >> t.gid) || key != "owner") return std::nullopt;
  if (!(in >> key >> t.last >> t.exchange >> t.source_dir >> t.replaced_dir) || key != "flags") {
    return std::nullopt;
  }
  if (!(in >> end) || end != "end") return std::nullopt;  // a torn intent was never acted on
  if (op < static_cast<int>(changelog::OpType::kCreate) ||
      op > static_cast<int>(changelog::OpType::kRename)) {
    return std::nullopt;
  }
  t.op = static_cast<changelog::OpType>(op);
  auto a = Gfid::Parse(g1), b = Gfid::Parse(g2), c = Gfid::Parse(g3), d = Gfid::Parse(g4);
  auto x = HexDecode(n1), y = HexDecode(n2), z = HexDecode(tmp);
  if (!a || !b || !c || !d || !x || !y || !z) return std::nullopt;
  t.gfid = *a;
  t.parent = *b;
  t.new_parent = *c;
  t.replaced = *d;
  t.name = *x;
  t.new_name = *y;
  t.tmp = *z;
  return t;
}

}  // namespace drfs::brick::detail
