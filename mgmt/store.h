// Store: drfsd's durable state, in one SQLite database (STATE_DIR/drfsd.db, WAL mode).
//
// It holds the node's identity (a uuid made on first start), the pool configuration
// (mgmt/config.h) and the local brick processes' runtime records (pid, port, restarts), which
// let a restarted drfsd adopt the bricks it left running. Every change is one transaction, so a
// kill -9 at any point leaves either the old state or the new one. Thread-safe: calls are
// serialized on an internal mutex (SQLite's single writer).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/sqlite.h"
#include "common/status.h"
#include "mgmt/config.h"

namespace drfs::mgmt {

struct BrickProcessRecord {
  std::string key;  // "VOLUME:INDEX"
  int64_t pid = 0;
  uint64_t start_ticks = 0;
  int port = 0;
  int restarts = 0;
  std::string state;   // mgmt::ProcStateName()
  std::string reason;  // why it failed, if it did
  std::string last_exit;
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> Open(const std::string& state_dir);

  const std::string& node_uuid() const { return node_uuid_; }
  const std::string& path() const { return db_->path(); }

  Result<ClusterConfig> LoadConfig();
  // Replaces the stored configuration with `c` in one transaction.
  Status SaveConfig(const ClusterConfig& c);

  Result<std::map<std::string, BrickProcessRecord>> LoadProcesses();
  Status SaveProcess(const BrickProcessRecord& r);
  Status DeleteProcess(const std::string& key);

 private:
  explicit Store(std::unique_ptr<Db> db) : db_(std::move(db)) {}
  Status Init();

  std::mutex mu_;
  std::unique_ptr<Db> db_;
  std::string node_uuid_;
};

}  // namespace drfs::mgmt
