#include "mgmt/store.h"

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "common/failpoint.h"
#include "tests/common/test_util.h"

namespace drfs::mgmt {
namespace {

using testing::TempDir;

ClusterConfig SampleConfig(int64_t generation, const std::string& fsync) {
  ClusterConfig c;
  c.generation = generation;
  c.peers = {{"u1", "127.0.0.1", 24100}, {"u2", "127.0.0.2", 24100}};
  VolumeConf v;
  v.name = "pvol";
  v.uuid = "vol-uuid";
  v.replica = 2;
  v.state = kVolumeStarted;
  v.created_ns = 123;
  v.bricks = {{"127.0.0.1", "u1", "/b1", "id1"}, {"127.0.0.2", "u2", "/b2", "id2"}};
  v.options = {{"changelog.fsync", fsync}};
  c.volumes["pvol"] = v;
  return c;
}

TEST(Store, KeepsIdentityConfigAndProcessesAcrossReopen) {
  TempDir dir;
  std::string uuid;
  {
    auto s = Store::Open(dir.path());
    ASSERT_OK(s);
    uuid = (*s)->node_uuid();
    EXPECT_EQ(uuid.size(), 36u);
    auto empty = (*s)->LoadConfig();
    ASSERT_OK(empty);
    EXPECT_EQ(empty->generation, 0);
    ASSERT_OK((*s)->SaveConfig(SampleConfig(4, "never")));
    ASSERT_OK((*s)->SaveProcess({"pvol:0", 4242, 99, 49152, 2, "running", "", "killed by signal 9"}));
  }
  auto s = Store::Open(dir.path());
  ASSERT_OK(s);
  EXPECT_EQ((*s)->node_uuid(), uuid);
  auto c = (*s)->LoadConfig();
  ASSERT_OK(c);
  EXPECT_EQ(*c, SampleConfig(4, "never"));
  auto procs = (*s)->LoadProcesses();
  ASSERT_OK(procs);
  ASSERT_EQ(procs->size(), 1u);
  EXPECT_EQ(procs->at("pvol:0").pid, 4242);
  EXPECT_EQ(procs->at("pvol:0").restarts, 2);
  ASSERT_OK((*s)->DeleteProcess("pvol:0"));
  EXPECT_TRUE((*s)->LoadProcesses()->empty());
}

TEST(Store, ConfigRoundTripsThroughItsWireForm) {
  ClusterConfig c = SampleConfig(7, "interval");
  auto back = ClusterConfig::FromValue(*DecodeValue(EncodeValue(c.ToValue())));
  ASSERT_OK(back);
  EXPECT_EQ(*back, c);
  Value bad = c.ToValue();
  bad["volumes"].MutableList()[0]["name"] = "bad name!";
  EXPECT_FALSE(ClusterConfig::FromValue(bad).ok());
}

// A process killed in the middle of a save (after the old rows are deleted, before the new
// ones are in) leaves the old configuration, whole.
TEST(Store, CrashMidSaveKeepsTheOldState) {
  TempDir dir;
  {
    auto s = Store::Open(dir.path());
    ASSERT_OK(s);
    ASSERT_OK((*s)->SaveConfig(SampleConfig(3, "always")));
  }
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto s = Store::Open(dir.path());
    if (!s.ok()) _exit(3);
    failpoint::Set("mgmt.store.save_config", "crash");
    (void)(*s)->SaveConfig(SampleConfig(4, "never"));
    _exit(4);  // not reached when probes are compiled in
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
#if defined(DRFS_FAILPOINTS_ENABLED)
  ASSERT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 4 && WEXITSTATUS(status) != 3))
      << "status " << status;
  auto s = Store::Open(dir.path());
  ASSERT_OK(s);
  auto c = s->get()->LoadConfig();
  ASSERT_OK(c);
  EXPECT_EQ(*c, SampleConfig(3, "always"));
#else
  GTEST_SKIP() << "failure probes are compiled out";
#endif
}

TEST(Store, RefusesANewerSchema) {
  TempDir dir;
  {
    auto s = Store::Open(dir.path());
    ASSERT_OK(s);
  }
  {
    auto db = Db::Open(dir.Sub("drfsd.db"));
    ASSERT_OK(db);
    ASSERT_OK((*db)->Exec("UPDATE meta SET value='99' WHERE key='schema_version'"));
  }
  auto s = Store::Open(dir.path());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("newer than this drfsd"), std::string::npos);
}

}  // namespace
}  // namespace drfs::mgmt
