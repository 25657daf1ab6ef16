// Helpers for brick tests: an independent checker of a brick directory's on-disk invariants,
// and a replay of the journal's namespace records into a model of the tree.
//
// Both read the brick with plain syscalls, never through Backend, so they check what is on disk.
#pragma once

#include "brick/detail/intent_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "changelog/reader.h"
#include "common/gfid.h"

namespace drfs::brick::testing {

inline std::string HandleRel(const Gfid& g) {
  std::string s = g.ToString();
  return s.substr(0, 2) + "/" + s.substr(2, 2) + "/" + s;
}

inline std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(path.c_str())) {
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
  }
  return out;
}

inline Gfid GfidOfPath(const std::string& path) {
  Gfid g;
  if (::lgetxattr(path.c_str(), "trusted.drfs.gfid", g.bytes.data(), 16) != 16) return Gfid();
  return g;
}

// (parent gfid, name) -> gfid of every entry in the tree.
using TreeModel = std::map<std::pair<Gfid, std::string>, Gfid>;

struct TreeObject {
  std::string path;
  bool is_dir = false;
  ino_t ino = 0;
  nlink_t nlink = 0;
  int names = 0;
  Gfid parent;  // dirs: their one parent
  std::string name;
};

// Checks the invariants a brick directory must hold when no op is in flight. Returns the
// problems found (empty when consistent). Fills `model` with the tree, if given.
inline std::vector<std::string> CheckConsistency(const std::string& dir,
                                                 TreeModel* model = nullptr) {
  std::vector<std::string> problems;
  std::map<Gfid, TreeObject> objects;
  TreeModel tree;
  objects[Gfid::Root()] = TreeObject{dir, true, 0, 0, 1, Gfid(), ""};
  if (GfidOfPath(dir) != Gfid::Root()) problems.push_back("the root has no root gfid");
  // Walk the tree.
  std::vector<std::pair<std::string, Gfid>> todo{{dir, Gfid::Root()}};
  while (!todo.empty()) {
    auto [path, g] = todo.back();
    todo.pop_back();
    for (const std::string& name : ListDir(path)) {
      if (g == Gfid::Root() && name == ".drfs") continue;
      std::string p = path + "/" + name;
      struct stat st {};
      if (::lstat(p.c_str(), &st) != 0) {
        problems.push_back("cannot stat " + p);
        continue;
      }
      Gfid c = GfidOfPath(p);
      if (c.is_null()) {
        problems.push_back(p + " has no gfid");
        continue;
      }
      tree[{g, name}] = c;
      auto it = objects.find(c);
      if (it != objects.end()) {
        if (S_ISDIR(st.st_mode) || it->second.is_dir || it->second.ino != st.st_ino) {
          problems.push_back(p + " and " + it->second.path + " share gfid " + c.ToString());
        }
        ++it->second.names;
        continue;
      }
      objects[c] = TreeObject{p, S_ISDIR(st.st_mode), st.st_ino, st.st_nlink, 1, g, name};
      if (S_ISDIR(st.st_mode)) todo.emplace_back(p, c);
    }
  }
  // Every tree object has a handle that leads to it.
  const std::string index = dir + "/.drfs/gfid/";
  for (const auto& [g, o] : objects) {
    std::string h = index + HandleRel(g);
    struct stat st {};
    if (::lstat(h.c_str(), &st) != 0) {
      problems.push_back(o.path + " (" + g.ToString() + ") has no handle");
      continue;
    }
    if (o.is_dir) {
      char buf[4096];
      ssize_t n = ::readlink(h.c_str(), buf, sizeof buf);
      std::string want =
          g == Gfid::Root() ? "../../../.." : "../../" + HandleRel(o.parent) + "/" + o.name;
      if (n < 0 || std::string(buf, static_cast<size_t>(n)) != want) {
        problems.push_back("the handle of directory " + o.path + " does not point at it");
      }
    } else {
      if (st.st_ino != o.ino) {
        problems.push_back("the handle of " + o.path + " is another inode");
      } else if (st.st_nlink != static_cast<nlink_t>(o.names + 1)) {
        problems.push_back(o.path + " has " + std::to_string(st.st_nlink) + " links, expected " +
                           std::to_string(o.names + 1));
      }
    }
  }
  // Every handle leads to a tree object.
  for (const std::string& a : ListDir(index)) {
    for (const std::string& b : ListDir(index + a)) {
      for (const std::string& h : ListDir(index + a + "/" + b)) {
        auto g = Gfid::Parse(h);
        if (!g || HandleRel(*g) != a + "/" + b + "/" + h) {
          problems.push_back("stray file in the index: " + a + "/" + b + "/" + h);
        } else if (!objects.count(*g)) {
          problems.push_back("handle " + h + " has no object in the tree");
        }
      }
    }
  }
  auto left = ListDir(dir + "/.drfs/tmp");
  if (!left.empty()) {
    problems.push_back(std::to_string(left.size()) + " file(s) left in /.drfs/tmp, e.g. " +
                       left.front());
  }
  {
    int root = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    brick::detail::IntentLog log;
    if (log.Open(root, ".drfs/intents", "intents").ok()) {
      auto live = log.ReadAll();
      if (live.ok() && !live->empty()) {
        problems.push_back(std::to_string(live->size()) + " intent(s) left in /.drfs/intents");
      }
    }
    ::close(root);
  }
  if (model) *model = std::move(tree);
  return problems;
}

// Replays every namespace record of the journal in DIR/.drfs/changelog onto an empty tree.
// Records that do not apply (removing a missing entry, ...) are reported as problems.
inline std::vector<std::string> ReplayJournal(const std::string& dir, TreeModel* model,
                                              std::vector<changelog::Record>* records = nullptr) {
  using changelog::OpType;
  std::vector<std::string> problems;
  changelog::ReaderOptions ro;
  ro.from_lsn = 1;
  ro.bound = changelog::ReaderOptions::Bound::kOnDisk;
  auto r = changelog::Reader::Open(dir + "/.drfs/changelog", ro);
  if (!r.ok()) return {"cannot open the journal: " + r.status().ToString()};
  changelog::Lsn want = 1;
  for (;;) {
    auto e = (*r)->Next();
    if (!e.ok()) {
      problems.push_back("journal: " + e.status().ToString());
      break;
    }
    if (!e->has_value()) break;
    const changelog::Record& rec = (*e)->record;
    if (rec.lsn != want) problems.push_back("LSN " + std::to_string(rec.lsn) + " out of order");
    want = rec.lsn + 1;
    if (records) records->push_back(rec);
    const auto at = std::make_pair(rec.parent, rec.name);
    const std::string where = "LSN " + std::to_string(rec.lsn) + " " +
                              std::string(changelog::OpTypeName(rec.op)) + " " + rec.name;
    switch (rec.op) {
      case OpType::kCreate:
      case OpType::kMkdir:
      case OpType::kMknod:
      case OpType::kSymlink:
      case OpType::kLink:
        if (model->count(at)) problems.push_back(where + ": the name exists");
        (*model)[at] = rec.gfid;
        break;
      case OpType::kUnlink:
      case OpType::kRmdir: {
        auto it = model->find(at);
        if (it == model->end() || it->second != rec.gfid) {
          problems.push_back(where + ": no such entry");
        } else {
          model->erase(it);
        }
        break;
      }
      case OpType::kRename: {
        auto it = model->find(at);
        if (it == model->end() || it->second != rec.gfid) {
          problems.push_back(where + ": no such source");
          break;
        }
        const auto to = std::make_pair(rec.new_parent, rec.new_name);
        if (rec.rename_flags & changelog::kRenameExchange) {
          auto jt = model->find(to);
          if (jt == model->end()) {
            problems.push_back(where + ": exchange with a missing entry");
          } else if (jt->second != rec.replaced) {
            problems.push_back(where + ": exchange names the wrong gfid");
          } else {
            std::swap(it->second, jt->second);
          }
          break;
        }
        auto jt = model->find(to);
        Gfid replaced = jt == model->end() ? Gfid() : jt->second;
        if (replaced != rec.replaced) problems.push_back(where + ": wrong replaced gfid");
        model->erase(it);
        (*model)[to] = rec.gfid;
        break;
      }
      default:
        break;
    }
  }
  return problems;
}

inline std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v)
    s += "\n  " + x;
  return s;
}

}  // namespace drfs::brick::testing
