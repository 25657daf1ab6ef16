#include "common/sqlite.h"

#include <gtest/gtest.h>

#include "tests/common/test_util.h"

namespace drfs {
namespace {

using testing::TempDir;

TEST(Sqlite, OpensInWalModeAndRoundTrips) {
  TempDir dir;
  auto db = Db::Open(dir.Sub("x.db"));
  ASSERT_OK(db);
  auto mode = (*db)->QueryRow("PRAGMA journal_mode");
  ASSERT_OK(mode);
  EXPECT_EQ(mode->Text(0), "wal");
  ASSERT_OK((*db)->ExecScript("CREATE TABLE t(k TEXT PRIMARY KEY, v INTEGER, n TEXT)"));
  ASSERT_OK((*db)->Exec("INSERT INTO t VALUES(?, ?, ?)", {std::string("a"), int64_t{-5}, nullptr}));
  auto row = (*db)->QueryRow("SELECT k, v, n FROM t WHERE k=?", {std::string("a")});
  ASSERT_OK(row);
  EXPECT_EQ(row->Text(0), "a");
  EXPECT_EQ(row->Int(1), -5);
  EXPECT_TRUE(row->IsNull(2));
  auto none = (*db)->QueryRow("SELECT k FROM t WHERE k='zz'");
  EXPECT_EQ(none.status().code(), Code::kNotFound);
  auto changed = (*db)->Exec("UPDATE t SET v=1");
  ASSERT_OK(changed);
  EXPECT_EQ(*changed, 1);
}

TEST(Sqlite, TransactionRollsBackUnlessCommitted) {
  TempDir dir;
  auto db = Db::Open(dir.Sub("x.db"));
  ASSERT_OK(db);
  ASSERT_OK((*db)->ExecScript("CREATE TABLE t(k INTEGER)"));
  {
    auto tx = Transaction::Begin(db->get());
    ASSERT_OK(tx);
    ASSERT_OK((*db)->Exec("INSERT INTO t VALUES(1)"));
  }  // no commit
  EXPECT_EQ((*db)->QueryRow("SELECT count(*) FROM t")->Int(0), 0);
  {
    auto tx = Transaction::Begin(db->get());
    ASSERT_OK(tx);
    ASSERT_OK((*db)->Exec("INSERT INTO t VALUES(1)"));
    ASSERT_OK((*tx)->Commit());
  }
  EXPECT_EQ((*db)->QueryRow("SELECT count(*) FROM t")->Int(0), 1);
}

TEST(Sqlite, ErrorsNameTheDatabase) {
  TempDir dir;
  testing::WriteFile(dir.Sub("junk.db"), std::string(8192, 'x'));
  auto bad = Db::Open(dir.Sub("junk.db"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("junk.db"), std::string::npos) << bad.status().ToString();
  auto db = Db::Open(dir.Sub("x.db"));
  ASSERT_OK(db);
  auto r = (*db)->Exec("INSERT INTO missing VALUES(1)");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("x.db"), std::string::npos);
  ASSERT_OK((*db)->ExecScript("CREATE TABLE u(k TEXT PRIMARY KEY)"));
  ASSERT_OK((*db)->Exec("INSERT INTO u VALUES('a')"));
  EXPECT_EQ((*db)->Exec("INSERT INTO u VALUES('a')").status().code(), Code::kAlreadyExists);
  auto nodir = Db::Open(dir.Sub("no/such/dir/x.db"));
  EXPECT_EQ(nodir.status().code(), Code::kFailedPrecondition);
}

}  // namespace
}  // namespace drfs
