#include "mgmt/options.h"

#include <gtest/gtest.h>

#include "tests/common/test_util.h"

namespace drfs::mgmt {
namespace {

std::string Norm(const std::string& key, const std::string& value) {
  const OptionDef* d = FindOption(key);
  EXPECT_NE(d, nullptr) << key;
  auto r = NormalizeOption(*d, value);
  return r.ok() ? *r : "ERROR: " + r.status().message();
}

TEST(Options, EveryDefaultIsValidAndCanonical) {
  ASSERT_FALSE(AllOptions().empty());
  for (const auto& d : AllOptions()) {
    auto r = NormalizeOption(d, d.default_value);
    ASSERT_OK(r);
    EXPECT_EQ(*r, d.default_value) << d.key;
    EXPECT_FALSE(d.help.empty()) << d.key;
    EXPECT_FALSE(d.applies_to.empty()) << d.key;
  }
}

TEST(Options, ValuesAreNormalized) {
  EXPECT_EQ(Norm("changelog.fsync", "INTERVAL"), "interval");
  EXPECT_EQ(Norm("changelog.rollover-size", "8m"), "8MiB");
  EXPECT_EQ(Norm("changelog.rollover-size", "1048576"), "1MiB");
  EXPECT_EQ(Norm("changelog.rollover-size", "1536KiB"), "1536KiB");
  EXPECT_EQ(Norm("changelog.rollover-time", "900"), "15m");
  EXPECT_EQ(Norm("changelog.rollover-time", "90s"), "90s");
  EXPECT_EQ(Norm("changelog.fsync-interval", "250ms"), "250ms");
  EXPECT_EQ(Norm("changelog.rollover-time", "2h"), "2h");
  EXPECT_EQ(Norm("brick.threads", "8"), "8");
}

TEST(Options, BadValuesSayWhatIsAllowed) {
  EXPECT_NE(Norm("changelog.fsync", "sometimes").find("not one of always, interval, never"), std::string::npos);
  EXPECT_NE(Norm("changelog.rollover-size", "1k").find("outside 1MiB-4GiB"), std::string::npos);
  EXPECT_NE(Norm("changelog.rollover-size", "lots").find("not a size"), std::string::npos);
  EXPECT_NE(Norm("changelog.rollover-time", "5 fortnights").find("not a duration"), std::string::npos);
  EXPECT_NE(Norm("brick.threads", "0").find("outside 1-256"), std::string::npos);
  EXPECT_NE(Norm("brick.threads", "-3").find("not a whole number"), std::string::npos);
  EXPECT_NE(Norm("brick.threads", "99999999999999999999").find("not a whole number"), std::string::npos);
  EXPECT_NE(Norm("changelog.rollover-size", "99999999999T").find("too large"), std::string::npos);
}

TEST(Options, EffectiveValueFallsBackToDefault) {
  std::map<std::string, std::string> set = {{"changelog.fsync", "never"}};
  EXPECT_EQ(EffectiveOption(set, "changelog.fsync"), "never");
  EXPECT_EQ(EffectiveOption(set, "cluster.quorum-type"), "auto");
  EXPECT_EQ(FindOption("no.such.option"), nullptr);
}

}  // namespace
}  // namespace drfs::mgmt
