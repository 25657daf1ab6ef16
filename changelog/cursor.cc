#include "changelog/cursor.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>

#include "common/crc32c.h"
#include "common/time.h"

namespace drfs::changelog {
namespace {

constexpr char kCursorDir[] = "cursors";

std::string Encode(const Cursor& c) {
  char body[128];
  std::snprintf(body, sizeof body, "drfs-cursor 1\nlsn %" PRIu64 "\nupdated %" PRIu64 "\n", c.lsn,
                c.updated_ns);
  char crc[32];
  std::snprintf(crc, sizeof crc, "crc %08x\n", crc32c::Value(body));
  return std::string(body) + crc;
}

bool Decode(const std::string& text, Cursor* c) {
  auto crc_pos = text.rfind("crc ");
  if (crc_pos == std::string::npos) return false;
  std::string body = text.substr(0, crc_pos);
  unsigned crc = 0;
  unsigned long long lsn = 0, updated = 0;
  if (std::sscanf(text.c_str() + crc_pos, "crc %8x\n", &crc) != 1) return false;
  if (crc != crc32c::Value(body)) return false;
  if (std::sscanf(body.c_str(), "drfs-cursor 1\nlsn %llu\nupdated %llu\n", &lsn, &updated) != 2) {
    return false;
  }
  c->lsn = lsn;
  c->updated_ns = updated;
  return true;
}

}  // namespace

CursorStore::CursorStore(std::string journal_dir, FileSystem* fs)
    : dir_(JoinPath(journal_dir, kCursorDir)), fs_(fs) {}

Status CursorStore::ValidateName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64 && name[0] != '.' && !name.ends_with(".tmp");
  for (char ch : name) {
    ok &= (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '.' || ch == '_' || ch == '-';
  }
  if (!ok) {
    return InvalidArgument("cursor name '" + name +
                           "' is invalid: use 1-64 characters of A-Z a-z 0-9 . _ - "
                           "(not starting with '.' nor ending in .tmp)");
  }
  return Status::Ok();
}

std::string CursorStore::PathOf(const std::string& name) const { return JoinPath(dir_, name); }

Status CursorStore::Write(const Cursor& c) {
  DRFS_RETURN_IF_ERROR(fs_->CreateDirs(dir_));
  return WriteFileAtomically(fs_, PathOf(c.name), Encode(c));
}

Status CursorStore::Register(const std::string& name, Lsn lsn) {
  DRFS_RETURN_IF_ERROR(ValidateName(name));
  if (fs_->Exists(PathOf(name))) {
    return AlreadyExists("cursor '" + name + "' is already registered in " + dir_ +
                         "; advance it, or remove it first to start over");
  }
  return Write(Cursor{name, lsn, NowNs()});
}

Status CursorStore::Advance(const std::string& name, Lsn lsn) {
  DRFS_ASSIGN_OR_RETURN(Cursor c, Get(name));
  if (lsn < c.lsn) {
    return FailedPrecondition("cursor '" + name + "' is at LSN " + std::to_string(c.lsn) +
                              " and cannot move back to " + std::to_string(lsn) +
                              " (segments before it may be deleted); remove and re-register it "
                              "to start over");
  }
  if (lsn == c.lsn) return Status::Ok();
  c.lsn = lsn;
  c.updated_ns = NowNs();
  return Write(c);
}

Status CursorStore::Remove(const std::string& name) {
  DRFS_RETURN_IF_ERROR(ValidateName(name));
  Status s = fs_->Remove(PathOf(name));
  if (s.code() == Code::kNotFound) {
    return NotFound("cursor '" + name + "' is not registered in " + dir_);
  }
  DRFS_RETURN_IF_ERROR(s);
  return fs_->SyncDir(dir_);
}

Result<Cursor> CursorStore::Get(const std::string& name) const {
  DRFS_RETURN_IF_ERROR(ValidateName(name));
  auto text = ReadFileToString(fs_, PathOf(name));
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound) {
      return NotFound("cursor '" + name + "' is not registered in " + dir_);
    }
    return text.status();
  }
  Cursor c;
  c.name = name;
  if (!Decode(*text, &c)) {
    return DataLoss("cursor file " + PathOf(name) +
                    " is corrupt; retention is paused until it is fixed: re-register the "
                    "consumer's cursor at its last applied LSN");
  }
  return c;
}

Result<std::vector<Cursor>> CursorStore::List() const {
  std::vector<Cursor> out;
  if (!fs_->Exists(dir_)) return out;
  DRFS_ASSIGN_OR_RETURN(auto names, fs_->ListDir(dir_));
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    if (!ValidateName(n).ok()) continue;  // leftover .tmp files and the like
    DRFS_ASSIGN_OR_RETURN(Cursor c, Get(n));
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace drfs::changelog
