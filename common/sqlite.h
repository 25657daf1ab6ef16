// A thin wrapper over SQLite for drfs's durable state (drfsd's configuration, later the
// applier's offsets). Errors are Status values naming the database file and the statement.
//
// Every database is opened in WAL mode with synchronous=FULL, so a committed transaction
// survives kill -9 and power loss, and foreign keys are enforced. One Db is used by one thread
// at a time (the owner serializes; drfsd has one writer). Statements are prepared per call:
// drfsd's state changes are rare and small, so clarity wins over caching.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"

namespace drfs {

// A value bound to or read from a statement.
using SqlValue = std::variant<std::nullptr_t, int64_t, std::string>;

class SqlRow {
 public:
  explicit SqlRow(std::vector<SqlValue> v) : values_(std::move(v)) {}
  size_t size() const { return values_.size(); }
  bool IsNull(size_t i) const { return std::holds_alternative<std::nullptr_t>(values_.at(i)); }
  // NULL reads as 0 / "".
  int64_t Int(size_t i) const;
  std::string Text(size_t i) const;

 private:
  std::vector<SqlValue> values_;
};

class Db {
 public:
  // Opens (creating if needed) the database at `path`. FailedPrecondition when the file cannot
  // be opened or is not a database, naming the file.
  static Result<std::unique_ptr<Db>> Open(const std::string& path);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Runs one or more statements without parameters (schema, pragmas).
  Status ExecScript(std::string_view sql);
  // Runs one statement with `?` parameters; returns the rows it produced.
  Result<std::vector<SqlRow>> Query(std::string_view sql, const std::vector<SqlValue>& params = {});
  // Query() for statements that return nothing; returns the number of rows changed.
  Result<int64_t> Exec(std::string_view sql, const std::vector<SqlValue>& params = {});
  // The single row of a query; NotFound when it returns none.
  Result<SqlRow> QueryRow(std::string_view sql, const std::vector<SqlValue>& params = {});

  const std::string& path() const { return path_; }

 private:
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  Status Error(int rc, std::string_view what) const;

  sqlite3* db_;
  std::string path_;
};

// BEGIN IMMEDIATE on construction (taking the write lock at once, so a transaction never fails
// half-way on a lock upgrade); ROLLBACK on destruction unless Commit() succeeded.
class Transaction {
 public:
  static Result<std::unique_ptr<Transaction>> Begin(Db* db);
  ~Transaction();
  Status Commit();

 private:
  explicit Transaction(Db* db) : db_(db) {}
  Db* db_;
  bool done_ = false;
};

}  // namespace drfs
