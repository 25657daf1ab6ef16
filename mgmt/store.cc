#include "mgmt/store.h"

#include "common/failpoint.h"
#include "common/gfid.h"

namespace drfs::mgmt {
namespace {

constexpr int kSchemaVersion = 1;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS peers(uuid TEXT PRIMARY KEY, host TEXT NOT NULL, port INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS volumes(
  name TEXT PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, replica INTEGER NOT NULL,
  arbiter INTEGER NOT NULL, state TEXT NOT NULL, created_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bricks(
  volume TEXT NOT NULL REFERENCES volumes(name) ON DELETE CASCADE, idx INTEGER NOT NULL,
  host TEXT NOT NULL, node_uuid TEXT NOT NULL, path TEXT NOT NULL, brick_id TEXT NOT NULL,
  PRIMARY KEY(volume, idx));
CREATE TABLE IF NOT EXISTS volume_options(
  volume TEXT NOT NULL REFERENCES volumes(name) ON DELETE CASCADE, key TEXT NOT NULL,
  value TEXT NOT NULL, PRIMARY KEY(volume, key));
CREATE TABLE IF NOT EXISTS georep_sessions(name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS brick_processes(
  key TEXT PRIMARY KEY, pid INTEGER NOT NULL, start_ticks INTEGER NOT NULL, port INTEGER NOT NULL,
  restarts INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, last_exit TEXT NOT NULL);
)sql";

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const std::string& state_dir) {
  DRFS_ASSIGN_OR_RETURN(auto db, Db::Open(state_dir + "/drfsd.db"));
  std::unique_ptr<Store> s(new Store(std::move(db)));
  DRFS_RETURN_IF_ERROR(s->Init());
  return s;
}

Status Store::Init() {
  std::lock_guard<std::mutex> l(mu_);
  DRFS_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(db_.get()));
  DRFS_RETURN_IF_ERROR(db_->ExecScript(kSchema));
  auto version = db_->QueryRow("SELECT value FROM meta WHERE key='schema_version'");
  if (version.ok() && version->Int(0) > kSchemaVersion) {
    return FailedPrecondition("state database " + db_->path() + " has schema version " +
                              version->Text(0) + ", newer than this drfsd understands (" +
                              std::to_string(kSchemaVersion) + "); run a newer drfs");
  }
  DRFS_RETURN_IF_ERROR(db_->Exec("INSERT OR REPLACE INTO meta VALUES('schema_version', ?)",
                                 {std::to_string(kSchemaVersion)})
                           .status());
  auto uuid = db_->QueryRow("SELECT value FROM meta WHERE key='node_uuid'");
  if (uuid.ok()) {
    node_uuid_ = uuid->Text(0);
  } else {
    node_uuid_ = Gfid::Random().ToString();
    DRFS_RETURN_IF_ERROR(
        db_->Exec("INSERT INTO meta VALUES('node_uuid', ?)", {node_uuid_}).status());
    DRFS_RETURN_IF_ERROR(
        db_->Exec("INSERT INTO meta VALUES('generation', '0')").status());
  }
  return tx->Commit();
}

Result<ClusterConfig> Store::LoadConfig() {
  std::lock_guard<std::mutex> l(mu_);
  ClusterConfig c;
  DRFS_ASSIGN_OR_RETURN(auto gen, db_->QueryRow("SELECT value FROM meta WHERE key='generation'"));
  c.generation = gen.Int(0);
  DRFS_ASSIGN_OR_RETURN(auto peers, db_->Query("SELECT uuid, host, port FROM peers ORDER BY host, port"));
  for (const auto& r : peers) {
    c.peers.push_back({r.Text(0), r.Text(1), static_cast<uint16_t>(r.Int(2))});
  }
  DRFS_ASSIGN_OR_RETURN(
      auto vols, db_->Query("SELECT name, uuid, replica, arbiter, state, created_ns FROM volumes"));
  for (const auto& r : vols) {
    VolumeConf v;
    v.name = r.Text(0);
    v.uuid = r.Text(1);
    v.replica = static_cast<int>(r.Int(2));
    v.arbiter = r.Int(3) != 0;
    v.state = r.Text(4);
    v.created_ns = r.Int(5);
    DRFS_ASSIGN_OR_RETURN(
        auto bricks, db_->Query("SELECT host, node_uuid, path, brick_id FROM bricks WHERE volume=? "
                                "ORDER BY idx",
                                {v.name}));
    for (const auto& b : bricks) v.bricks.push_back({b.Text(0), b.Text(1), b.Text(2), b.Text(3)});
    DRFS_ASSIGN_OR_RETURN(auto opts,
                          db_->Query("SELECT key, value FROM volume_options WHERE volume=?", {v.name}));
    for (const auto& o : opts) v.options[o.Text(0)] = o.Text(1);
    c.volumes.emplace(v.name, std::move(v));
  }
  DRFS_ASSIGN_OR_RETURN(auto sessions, db_->Query("SELECT name, value FROM georep_sessions"));
  for (const auto& r : sessions) {
    auto v = DecodeValue(r.Text(1));
    Result<SessionConf> se = v.ok() ? SessionFromValue(*v) : Result<SessionConf>(v.status());
    if (!se.ok()) {
      return DataLoss("state database " + db_->path() + ": geo-replication session '" + r.Text(0) +
                      "' does not decode (" + se.status().message() + ")");
    }
    c.sessions.emplace(se->name, std::move(*se));
  }
  return c;
}

Status Store::SaveConfig(const ClusterConfig& c) {
  std::lock_guard<std::mutex> l(mu_);
  DRFS_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(db_.get()));
  DRFS_RETURN_IF_ERROR(
      db_->ExecScript("DELETE FROM volume_options; DELETE FROM bricks; DELETE FROM volumes; "
                      "DELETE FROM peers; DELETE FROM georep_sessions;"));
  if (DRFS_FAILPOINT("mgmt.store.save_config")) {
    return Unavailable("database " + db_->path() + ": failure probe mgmt.store.save_config");
  }
  for (const auto& p : c.peers) {
    DRFS_RETURN_IF_ERROR(db_->Exec("INSERT INTO peers VALUES(?, ?, ?)",
                                   {p.uuid, p.host, static_cast<int64_t>(p.port)})
                             .status());
  }
  for (const auto& [name, v] : c.volumes) {
    DRFS_RETURN_IF_ERROR(db_->Exec("INSERT INTO volumes VALUES(?, ?, ?, ?, ?, ?)",
                                   {v.name, v.uuid, static_cast<int64_t>(v.replica),
                                    static_cast<int64_t>(v.arbiter), v.state, v.created_ns})
                             .status());
    for (size_t i = 0; i < v.bricks.size(); ++i) {
      const auto& b = v.bricks[i];
      DRFS_RETURN_IF_ERROR(db_->Exec("INSERT INTO bricks VALUES(?, ?, ?, ?, ?, ?)",
                                     {v.name, static_cast<int64_t>(i), b.host, b.node_uuid, b.path,
                                      b.brick_id})
                               .status());
    }
    for (const auto& [k, val] : v.options) {
      DRFS_RETURN_IF_ERROR(
          db_->Exec("INSERT INTO volume_options VALUES(?, ?, ?)", {v.name, k, val}).status());
    }
  }
  for (const auto& [name, se] : c.sessions) {
    DRFS_RETURN_IF_ERROR(db_->Exec("INSERT INTO georep_sessions VALUES(?, ?)",
                                   {name, EncodeValue(SessionToValue(se))})
                             .status());
  }
  DRFS_RETURN_IF_ERROR(db_->Exec("UPDATE meta SET value=? WHERE key='generation'",
                                 {std::to_string(c.generation)})
                           .status());
  return tx->Commit();
}

Result<std::map<std::string, BrickProcessRecord>> Store::LoadProcesses() {
  std::lock_guard<std::mutex> l(mu_);
  DRFS_ASSIGN_OR_RETURN(auto rows, db_->Query("SELECT key, pid, start_ticks, port, restarts, state, "
                                              "reason, last_exit FROM brick_processes"));
  std::map<std::string, BrickProcessRecord> out;
  for (const auto& r : rows) {
    BrickProcessRecord p{r.Text(0), r.Int(1), static_cast<uint64_t>(r.Int(2)),
                         static_cast<int>(r.Int(3)), static_cast<int>(r.Int(4)), r.Text(5),
                         r.Text(6), r.Text(7)};
    out.emplace(p.key, std::move(p));
  }
  return out;
}

Status Store::SaveProcess(const BrickProcessRecord& r) {
  std::lock_guard<std::mutex> l(mu_);
  return db_
      ->Exec("INSERT OR REPLACE INTO brick_processes VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
             {r.key, r.pid, static_cast<int64_t>(r.start_ticks), static_cast<int64_t>(r.port),
              static_cast<int64_t>(r.restarts), r.state, r.reason, r.last_exit})
      .status();
}

Status Store::DeleteProcess(const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  return db_->Exec("DELETE FROM brick_processes WHERE key=?", {key}).status();
}

}  // namespace drfs::mgmt
