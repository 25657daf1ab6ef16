// The narrow file interface that all durable drfs state goes through.
//
// Journals and other on-disk state use these calls and nothing else, so a test can swap in a
// FileSystem that remembers what was fsynced and, on a simulated power loss, drops every byte
// that was not (see tests/common/fault_injection_fs.h). Every call returns a Status whose
// message names the file and the OS error.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace drfs {

// A file opened for appending. Not thread-safe: one owner writes it.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Writes all of `data` at the end of the file. On error some prefix may have been written;
  // Size() still reports the size before the call, and the caller may Truncate() back to it.
  virtual Status Append(std::string_view data) = 0;
  // Makes everything appended so far durable (fdatasync).
  virtual Status Sync() = 0;
  virtual Status Truncate(uint64_t size) = 0;
  virtual Status Close() = 0;
  // Bytes in the file as this handle has written them.
  virtual uint64_t Size() const = 0;
  virtual const std::string& path() const = 0;
};

// A file opened for positional reads. Safe to use from several threads.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Reads up to n bytes at offset into scratch; *out points into scratch and is shorter than n
  // only at the end of the file.
  virtual Status Read(uint64_t offset, size_t n, char* scratch, std::string_view* out) const = 0;
  virtual Result<uint64_t> Size() const = 0;
  virtual const std::string& path() const = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // The real, POSIX file system. Never null; lives for the whole process.
  static FileSystem* Default();

  // Creates `path` (failing if it exists) or opens it for appending at its current end.
  enum class OpenMode { kCreateNew, kAppendExisting };
  virtual Result<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path,
                                                             OpenMode mode) = 0;
  virtual Result<std::unique_ptr<RandomAccessFile>> OpenReadable(const std::string& path) = 0;
  // Atomically replaces `to` with `from` (rename(2)); durable once SyncDir() of the parent.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Remove(const std::string& path) = 0;
  // Creates the directory and any missing parents; OK if it exists.
  virtual Status CreateDirs(const std::string& path) = 0;
  // fsyncs a directory so that creates, renames and removes in it are durable.
  virtual Status SyncDir(const std::string& path) = 0;
  // Names in a directory, without "." and "..".
  virtual Result<std::vector<std::string>> ListDir(const std::string& path) = 0;
  virtual Result<uint64_t> FileSize(const std::string& path) = 0;
  virtual bool Exists(const std::string& path) = 0;
};

// Helpers on top of FileSystem.
Result<std::string> ReadFileToString(FileSystem* fs, const std::string& path);
// Writes `data` to path.tmp, fsyncs it, renames it over `path` and fsyncs the directory: after a
// crash the file holds either the old or the new contents, never a mix.
Status WriteFileAtomically(FileSystem* fs, const std::string& path, std::string_view data);

std::string JoinPath(std::string_view dir, std::string_view name);
std::string DirName(std::string_view path);

}  // namespace drfs
