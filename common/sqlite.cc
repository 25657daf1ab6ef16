#include "common/sqlite.h"

#include "common/log.h"

namespace drfs {

int64_t SqlRow::Int(size_t i) const {
  const auto& v = values_.at(i);
  if (auto* n = std::get_if<int64_t>(&v)) return *n;
  if (auto* s = std::get_if<std::string>(&v)) return std::strtoll(s->c_str(), nullptr, 10);
  return 0;
}

std::string SqlRow::Text(size_t i) const {
  const auto& v = values_.at(i);
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  if (auto* n = std::get_if<int64_t>(&v)) return std::to_string(*n);
  return "";
}

Result<std::unique_ptr<Db>> Db::Open(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close(raw);
    return FailedPrecondition("cannot open database " + path + ": " + msg +
                              "; check the state directory's permissions and free space");
  }
  std::unique_ptr<Db> db(new Db(raw, path));
  sqlite3_busy_timeout(raw, 5000);
  sqlite3_extended_result_codes(raw, 1);
  // journal_mode returns a row, so it goes through Query.
  auto mode = db->QueryRow("PRAGMA journal_mode=WAL");
  if (!mode.ok()) return mode.status();
  if (mode->Text(0) != "wal") {
    return FailedPrecondition("database " + path + " cannot use WAL mode (got '" + mode->Text(0) +
                              "'); put the state directory on a local file system");
  }
  DRFS_RETURN_IF_ERROR(db->ExecScript("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"));
  // A read of a database that is not one fails here, not at the first real query.
  auto check = db->Query("SELECT count(*) FROM sqlite_master");
  if (!check.ok()) return check.status();
  return db;
}

Db::~Db() { sqlite3_close_v2(db_); }

Status Db::Error(int rc, std::string_view what) const {
  std::string msg = "database " + path_ + ": " + std::string(what) + ": " + sqlite3_errmsg(db_);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Unavailable(msg + " (another process holds the database; retry)");
    case SQLITE_FULL:
      return Unavailable(msg + " (disk full; free space in the state directory)");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return DataLoss(msg + " (restore the state directory from a peer or backup)");
    case SQLITE_CONSTRAINT:
      return AlreadyExists(msg);
    default:
      return Status(Code::kInternal, msg);
  }
}

Status Db::ExecScript(std::string_view sql) {
  char* err = nullptr;
  std::string s(sql);
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string m = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return Error(rc, m);
  }
  return Status::Ok();
}

Result<std::vector<SqlRow>> Db::Query(std::string_view sql, const std::vector<SqlValue>& params) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(rc, "preparing '" + std::string(sql) + "'");
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(stmt, sqlite3_finalize);
  for (size_t i = 0; i < params.size(); ++i) {
    const int idx = static_cast<int>(i + 1);
    const auto& p = params[i];
    if (auto* n = std::get_if<int64_t>(&p)) {
      rc = sqlite3_bind_int64(stmt, idx, *n);
    } else if (auto* s = std::get_if<std::string>(&p)) {
      rc = sqlite3_bind_text(stmt, idx, s->data(), static_cast<int>(s->size()), SQLITE_TRANSIENT);
    } else {
      rc = sqlite3_bind_null(stmt, idx);
    }
    if (rc != SQLITE_OK) return Error(rc, "binding parameter " + std::to_string(idx));
  }
  std::vector<SqlRow> rows;
  for (;;) {
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return Error(rc, "running '" + std::string(sql) + "'");
    const int n = sqlite3_column_count(stmt);
    std::vector<SqlValue> values;
    values.reserve(n);
    for (int c = 0; c < n; ++c) {
      switch (sqlite3_column_type(stmt, c)) {
        case SQLITE_NULL:
          values.emplace_back(nullptr);
          break;
        case SQLITE_INTEGER:
          values.emplace_back(static_cast<int64_t>(sqlite3_column_int64(stmt, c)));
          break;
        default: {
          const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
          values.emplace_back(std::string(t ? t : "", sqlite3_column_bytes(stmt, c)));
        }
      }
    }
    rows.emplace_back(std::move(values));
  }
  return rows;
}

Result<int64_t> Db::Exec(std::string_view sql, const std::vector<SqlValue>& params) {
  auto rows = Query(sql, params);
  if (!rows.ok()) return rows.status();
  return static_cast<int64_t>(sqlite3_changes(db_));
}

Result<SqlRow> Db::QueryRow(std::string_view sql, const std::vector<SqlValue>& params) {
  auto rows = Query(sql, params);
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return NotFound("database " + path_ + ": no row for '" + std::string(sql) + "'");
  return std::move(rows->front());
}

Result<std::unique_ptr<Transaction>> Transaction::Begin(Db* db) {
  DRFS_RETURN_IF_ERROR(db->ExecScript("BEGIN IMMEDIATE"));
  return std::unique_ptr<Transaction>(new Transaction(db));
}

Transaction::~Transaction() {
  if (!done_) {
    Status s = db_->ExecScript("ROLLBACK");
    if (!s.ok()) DRFS_LOG(Warn) << "rollback failed: " << s.ToString();
  }
}

Status Transaction::Commit() {
  DRFS_RETURN_IF_ERROR(db_->ExecScript("COMMIT"));
  done_ = true;
  return Status::Ok();
}

}  // namespace drfs
