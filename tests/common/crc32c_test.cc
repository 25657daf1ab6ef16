#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace drfs::crc32c {
namespace {

TEST(Crc32c, KnownVectors) {
  // RFC 3720 (iSCSI) appendix B.4 and the standard check value.
  EXPECT_EQ(Value("123456789"), 0xe3069283u);
  EXPECT_EQ(Value(std::string(32, '\0')), 0x8a9136aau);
  EXPECT_EQ(Value(std::string(32, '\xff')), 0x62a8ab43u);
  std::string inc(32, 0);
  for (int i = 0; i < 32; ++i) inc[i] = static_cast<char>(i);
  EXPECT_EQ(Value(inc), 0x46dd794eu);
}

TEST(Crc32c, HardwareAndTableAgreeOnEveryLengthAndSplit) {
  std::mt19937 rng(7);
  std::string data(1000, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  for (size_t n = 0; n < data.size(); n += 7) {
    uint32_t whole = Value(data.data(), n);
    EXPECT_EQ(whole, detail::ExtendPortable(0, data.data(), n)) << n;
    size_t cut = n / 3;
    EXPECT_EQ(whole, Extend(Extend(0, data.data(), cut), data.data() + cut, n - cut)) << n;
  }
}

TEST(Crc32c, MaskRoundTripsAndDiffers) {
  uint32_t c = Value("drfs");
  EXPECT_NE(Mask(c), c);
  EXPECT_EQ(Unmask(Mask(c)), c);
  EXPECT_EQ(Unmask(Mask(Mask(c))), Mask(c));
}

}  // namespace
}  // namespace drfs::crc32c
