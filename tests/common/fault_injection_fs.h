// FaultInjectionFs: a FileSystem for tests that remembers what was made durable, so a test can
// simulate a power loss, and that can fail writes or syncs on demand.
//
// It passes every call through to the real file system and tracks, per file, how many bytes
// were fsynced. DropUnsyncedData() then truncates each file to that size and deletes files
// whose creation was never made durable by a SyncDir() of their directory: what a machine that
// lost power would find on reboot. Renames are treated as durable at once (the journal always
// syncs the directory right after one).
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>

#include "common/file.h"

namespace drfs::testing {

class FaultInjectionFs : public FileSystem {
 public:
  explicit FaultInjectionFs(FileSystem* base = FileSystem::Default()) : base_(base) {}

  Result<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path,
                                                     OpenMode mode) override;
  Result<std::unique_ptr<RandomAccessFile>> OpenReadable(const std::string& path) override {
    return base_->OpenReadable(path);
  }
  Status Rename(const std::string& from, const std::string& to) override;
  Status Remove(const std::string& path) override;
  Status CreateDirs(const std::string& path) override { return base_->CreateDirs(path); }
  Status SyncDir(const std::string& path) override;
  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    return base_->ListDir(path);
  }
  Result<uint64_t> FileSize(const std::string& path) override { return base_->FileSize(path); }
  bool Exists(const std::string& path) override { return base_->Exists(path); }

  // Simulated power loss: see the class comment. Call it with every writer closed or abandoned.
  Status DropUnsyncedData();
  // The next `count` Append calls fail with `error` after writing `partial_bytes` of their data.
  void FailNextAppends(int count, Status error, size_t partial_bytes = 0);
  // Every Sync fails with `error` from now on (empty status: stop failing).
  void FailSyncs(Status error);

  // Called by the files it hands out.
  void OnSynced(const std::string& path, uint64_t size);
  bool TakeAppendFailure(Status* error, size_t* partial);
  Status SyncFailure();

 private:
  FileSystem* base_;
  std::mutex mu_;
  std::map<std::string, uint64_t> synced_size_;  // files we have seen opened for writing
  std::set<std::string> unsynced_creates_;
  int fail_appends_ = 0;
  Status append_error_;
  size_t partial_bytes_ = 0;
  Status sync_error_;
};

}  // namespace drfs::testing
