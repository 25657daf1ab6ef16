#include "common/failpoint.h"

#include <gtest/gtest.h>

namespace drfs {
namespace {

TEST(Failpoint, ErrorFiresFromTheNthHitAndClears) {
  if (!failpoint::CompiledIn()) GTEST_SKIP() << "failure probes are compiled out of this build";
  failpoint::ClearAll();
  EXPECT_FALSE(DRFS_FAILPOINT("test.point"));
  ASSERT_TRUE(failpoint::Set("test.point", "error@3"));
  EXPECT_FALSE(DRFS_FAILPOINT("test.point"));
  EXPECT_FALSE(DRFS_FAILPOINT("test.point"));
  EXPECT_TRUE(DRFS_FAILPOINT("test.point"));
  EXPECT_TRUE(DRFS_FAILPOINT("test.point"));
  EXPECT_EQ(failpoint::HitCount("test.point"), 4);
  ASSERT_TRUE(failpoint::Set("test.point", "off"));
  EXPECT_FALSE(DRFS_FAILPOINT("test.point"));
  failpoint::ClearAll();
}

TEST(Failpoint, RejectsBadSpecs) {
  EXPECT_FALSE(failpoint::Set("x", "explode"));
  EXPECT_FALSE(failpoint::Set("x", "error@0"));
  EXPECT_FALSE(failpoint::Set("x", "delay(abc)"));
  EXPECT_TRUE(failpoint::Set("x", "delay(1)"));
  failpoint::ClearAll();
}

TEST(FailpointDeathTest, CrashExitsLikeKill9) {
  if (!failpoint::CompiledIn()) GTEST_SKIP() << "failure probes are compiled out of this build";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        failpoint::Set("test.crash", "crash");
        DRFS_FAILPOINT("test.crash");
      },
      ::testing::ExitedWithCode(137), "failpoint test.crash");
}

}  // namespace
}  // namespace drfs
