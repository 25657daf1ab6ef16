#include "tests/common/fault_injection_fs.h"

#include <unistd.h>

#include <optional>

namespace drfs::testing {
namespace {

class FaultFile final : public WritableFile {
 public:
  FaultFile(FaultInjectionFs* fs, std::unique_ptr<WritableFile> base)
      : fs_(fs), base_(std::move(base)) {}
  Status Append(std::string_view data) override {
    Status err;
    size_t partial = 0;
    if (fs_->TakeAppendFailure(&err, &partial)) {
      // A short write: some bytes reach the file, then the error. Size() keeps reporting the
      // size before the call, as the WritableFile contract says.
      uint64_t before = Size();
      if (partial > 0) base_->Append(data.substr(0, std::min(partial, data.size()))).IgnoreError();
      reported_size_ = before;
      return err;
    }
    return base_->Append(data);
  }
  Status Sync() override {
    Status s = fs_->SyncFailure();
    if (!s.ok()) return s;
    DRFS_RETURN_IF_ERROR(base_->Sync());
    fs_->OnSynced(base_->path(), base_->Size());
    return Status::Ok();
  }
  Status Truncate(uint64_t size) override {
    reported_size_.reset();
    return base_->Truncate(size);
  }
  Status Close() override { return base_->Close(); }
  uint64_t Size() const override { return reported_size_ ? *reported_size_ : base_->Size(); }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultInjectionFs* fs_;
  std::unique_ptr<WritableFile> base_;
  std::optional<uint64_t> reported_size_;
};

}  // namespace

Result<std::unique_ptr<WritableFile>> FaultInjectionFs::OpenWritable(const std::string& path,
                                                                     OpenMode mode) {
  bool existed = base_->Exists(path);
  DRFS_ASSIGN_OR_RETURN(auto f, base_->OpenWritable(path, mode));
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!synced_size_.count(path)) synced_size_[path] = existed ? f->Size() : 0;
    if (!existed) unsynced_creates_.insert(path);
  }
  return std::unique_ptr<WritableFile>(new FaultFile(this, std::move(f)));
}

Status FaultInjectionFs::Rename(const std::string& from, const std::string& to) {
  DRFS_RETURN_IF_ERROR(base_->Rename(from, to));
  std::lock_guard<std::mutex> l(mu_);
  auto it = synced_size_.find(from);
  if (it != synced_size_.end()) {
    synced_size_[to] = it->second;
    synced_size_.erase(it);
  }
  unsynced_creates_.erase(from);
  unsynced_creates_.erase(to);
  return Status::Ok();
}

Status FaultInjectionFs::Remove(const std::string& path) {
  DRFS_RETURN_IF_ERROR(base_->Remove(path));
  std::lock_guard<std::mutex> l(mu_);
  synced_size_.erase(path);
  unsynced_creates_.erase(path);
  return Status::Ok();
}

Status FaultInjectionFs::SyncDir(const std::string& path) {
  DRFS_RETURN_IF_ERROR(base_->SyncDir(path));
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = unsynced_creates_.begin(); it != unsynced_creates_.end();) {
    it = DirName(*it) == path ? unsynced_creates_.erase(it) : std::next(it);
  }
  return Status::Ok();
}

void FaultInjectionFs::OnSynced(const std::string& path, uint64_t size) {
  std::lock_guard<std::mutex> l(mu_);
  synced_size_[path] = size;
}

Status FaultInjectionFs::DropUnsyncedData() {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& path : unsynced_creates_) {
    if (base_->Exists(path)) DRFS_RETURN_IF_ERROR(base_->Remove(path));
    synced_size_.erase(path);
  }
  unsynced_creates_.clear();
  for (const auto& [path, size] : synced_size_) {
    if (!base_->Exists(path)) continue;
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) {
      return ErrnoStatus(errno, "truncate " + path);
    }
  }
  return Status::Ok();
}

void FaultInjectionFs::FailNextAppends(int count, Status error, size_t partial_bytes) {
  std::lock_guard<std::mutex> l(mu_);
  fail_appends_ = count;
  append_error_ = std::move(error);
  partial_bytes_ = partial_bytes;
}

void FaultInjectionFs::FailSyncs(Status error) {
  std::lock_guard<std::mutex> l(mu_);
  sync_error_ = std::move(error);
}

bool FaultInjectionFs::TakeAppendFailure(Status* error, size_t* partial) {
  std::lock_guard<std::mutex> l(mu_);
  if (fail_appends_ <= 0) return false;
  --fail_appends_;
  *error = append_error_;
  *partial = partial_bytes_;
  return true;
}

Status FaultInjectionFs::SyncFailure() {
  std::lock_guard<std::mutex> l(mu_);
  return sync_error_;
}

}  // namespace drfs::testing
