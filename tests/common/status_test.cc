#include "common/status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace drfs {
namespace {

TEST(Status, OkAndErrorsCarryCodeMessageAndErrno) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = ErrnoStatus(ENOSPC, "write /b1/x");
  EXPECT_EQ(s.code(), Code::kUnavailable);  // a full disk is retryable once space is freed
  EXPECT_EQ(s.sys_errno(), ENOSPC);
  EXPECT_NE(s.message().find("write /b1/x"), std::string::npos);
  EXPECT_NE(s.message().find("free space"), std::string::npos);
  EXPECT_EQ(ErrnoStatus(EIO, "x").code(), Code::kDataLoss);
  EXPECT_EQ(ErrnoStatus(ENOENT, "x").code(), Code::kNotFound);
  EXPECT_EQ(s.WithContext("changelog /b1").message().rfind("changelog /b1: write /b1/x", 0), 0u);
  EXPECT_EQ(DataLoss("seg").ToString(), "DataLoss: seg");
}

Result<int> Half(int v) {
  if (v % 2) return InvalidArgument("odd");
  return v / 2;
}

Result<int> Quarter(int v) {
  DRFS_ASSIGN_OR_RETURN(int h, Half(v));
  DRFS_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(Result, PropagatesTheFirstError) {
  ASSERT_TRUE(Quarter(8).ok());
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Result<int>(3).status().ok());
}

}  // namespace
}  // namespace drfs
