#include "common/value.h"

#include <gtest/gtest.h>

#include "tests/common/test_util.h"

namespace drfs {
namespace {

Value Sample() {
  Value v;
  v["name"] = "pvol";
  v["replica"] = 3;
  v["negative"] = int64_t{-42};
  v["arbiter"] = false;
  v["nothing"] = Value();
  v["bricks"].Push("127.0.0.1:/b1");
  v["bricks"].Push(Value::EmptyMap());
  v["bytes"] = std::string("a\0b\xff", 4);
  v["nested"]["deeper"]["x"] = true;
  return v;
}

TEST(Value, RoundTripsEveryType) {
  Value v = Sample();
  auto back = DecodeValue(EncodeValue(v));
  ASSERT_OK(back);
  EXPECT_EQ(*back, v);
  EXPECT_EQ(back->GetString("name"), "pvol");
  EXPECT_EQ(back->GetInt("replica"), 3);
  EXPECT_EQ(back->GetInt("negative"), -42);
  EXPECT_FALSE(back->GetBool("arbiter", true));
  EXPECT_TRUE(back->Find("nothing")->is_null());
  EXPECT_EQ(back->Find("bricks")->AsList().size(), 2u);
  EXPECT_EQ(back->GetString("bytes").size(), 4u);
}

TEST(Value, TypedReadsOfTheWrongTypeAreEmpty) {
  Value v = Sample();
  EXPECT_EQ(v.GetString("replica", "def"), "def");
  EXPECT_EQ(v.GetInt("name", 7), 7);
  EXPECT_EQ(v.Find("missing"), nullptr);
  EXPECT_TRUE(Value("x").AsList().empty());
  EXPECT_TRUE(Value(5).AsString().empty());
}

TEST(Value, JsonIsStableAndEscaped) {
  Value v;
  v["b"] = 1;
  v["a"] = "x\"y";
  v["c"] = Value::EmptyList();
  v["c"].Push(Value());
  v["c"].Push(true);
  EXPECT_EQ(v.ToJson(), R"({"a":"x\"y","b":1,"c":[null,true]})");
}

TEST(Value, EveryTruncationIsRefused) {
  const std::string bytes = EncodeValue(Sample());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = DecodeValue(std::string_view(bytes).substr(0, n));
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes decoded";
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  }
}

TEST(Value, MalformedInputIsRefusedWithoutHugeAllocations) {
  EXPECT_FALSE(DecodeValue(std::string("\x09", 1)).ok());  // unknown tag
  EXPECT_FALSE(DecodeValue(std::string("\x00\x00", 2)).ok());  // trailing byte
  // A list claiming 4 billion items in a 5-byte message.
  EXPECT_FALSE(DecodeValue(std::string("\x05\xff\xff\xff\xff", 5)).ok());
  EXPECT_FALSE(DecodeValue(std::string("\x06\xff\xff\xff\x7f", 5)).ok());
  // A string longer than the message.
  EXPECT_FALSE(DecodeValue(std::string("\x04\x10\x00\x00\x00" "abc", 8)).ok());
  // Duplicate map keys.
  Value m;
  std::string dup = std::string("\x06\x02\x00\x00\x00", 5);
  for (int i = 0; i < 2; ++i) dup += std::string("\x01\x00\x00\x00k\x00", 6);
  EXPECT_FALSE(DecodeValue(dup).ok());
}

TEST(Value, DeepNestingIsRefused) {
  std::string deep;
  for (int i = 0; i < kMaxValueDepth + 2; ++i) deep += std::string("\x05\x01\x00\x00\x00", 5);
  deep += std::string("\x00", 1);
  auto r = DecodeValue(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nesting"), std::string::npos);
  // Within the limit decodes.
  std::string ok;
  for (int i = 0; i < kMaxValueDepth; ++i) ok += std::string("\x05\x01\x00\x00\x00", 5);
  ok += std::string("\x00", 1);
  EXPECT_OK(DecodeValue(ok));
}

TEST(Value, TooManyValuesAreRefused) {
  // A list of (kMaxValueCount + 1) nulls: each a single byte on the wire.
  std::string many = std::string("\x05", 1);
  const uint32_t n = static_cast<uint32_t>(kMaxValueCount) + 1;
  many.append(reinterpret_cast<const char*>(&n), 4);
  many.append(n, '\0');
  auto r = DecodeValue(many);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("values"), std::string::npos);
}

TEST(Value, RandomByteFlipsNeverCrash) {
  const std::string good = EncodeValue(Sample());
  uint32_t seed = 12345;
  for (int round = 0; round < 2000; ++round) {
    std::string b = good;
    for (int k = 0; k < 3; ++k) {
      seed = seed * 1103515245 + 12345;
      b[(seed >> 8) % b.size()] = static_cast<char>(seed >> 16);
    }
    auto r = DecodeValue(b);  // may succeed or fail; must not crash or over-allocate
    if (r.ok()) (void)r->ToJson();
  }
}

}  // namespace
}  // namespace drfs
