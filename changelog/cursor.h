// Named consumer cursors: how far each consumer of a journal is done with it.
//
// A cursor at LSN L says "this consumer will never again need records at or below L". Retention
// deletes a segment only when every registered cursor has passed its last record, so a slow or
// stopped consumer holds the journal back instead of losing data. A consumer that is gone for
// good must be removed, or it holds the journal forever; `drfs changelog status` shows each
// cursor's lag so that an operator can see which one it is.
//
// Each cursor is one small file DIR/cursors/NAME, replaced atomically (write, fsync, rename), so
// consumers in other processes can update theirs while the brick runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "changelog/record.h"
#include "common/file.h"
#include "common/status.h"

namespace drfs::changelog {

struct Cursor {
  std::string name;
  Lsn lsn = 0;
  uint64_t updated_ns = 0;
};

class CursorStore {
 public:
  // `journal_dir` is the changelog directory; cursors live in its cursors/ subdirectory.
  explicit CursorStore(std::string journal_dir, FileSystem* fs = FileSystem::Default());

  // Names are 1-64 characters of [A-Za-z0-9._-].
  static Status ValidateName(const std::string& name);

  // Creates cursor `name` at `lsn`. AlreadyExists if it exists (its position is kept).
  Status Register(const std::string& name, Lsn lsn);
  // Moves an existing cursor forward. Moving it backwards is refused (FailedPrecondition):
  // the segments it would need may already be gone.
  Status Advance(const std::string& name, Lsn lsn);
  Status Remove(const std::string& name);
  Result<Cursor> Get(const std::string& name) const;
  // All cursors, by name. A cursor file that does not parse is DataLoss, naming the file:
  // retention must not guess where its consumer is.
  Result<std::vector<Cursor>> List() const;

  const std::string& dir() const { return dir_; }

 private:
  Status Write(const Cursor& c);
  std::string PathOf(const std::string& name) const;

  std::string dir_;
  FileSystem* fs_;
};

}  // namespace drfs::changelog
