#include "common/json.h"

#include <gtest/gtest.h>

namespace drfs {
namespace {

TEST(JsonWriter, NestsAndSeparates) {
  JsonWriter j;
  j.BeginObject().Key("a").Uint(1).Key("b").BeginArray().Int(-2).Bool(true).Null().EndArray();
  j.Key("c").BeginObject().EndObject().EndObject();
  EXPECT_EQ(j.str(), R"({"a":1,"b":[-2,true,null],"c":{}})");
}

TEST(JsonWriter, EscapesControlQuotesAndInvalidUtf8) {
  std::string out;
  JsonWriter::AppendQuoted(&out, std::string("a\"b\\c\n\x01", 7));
  EXPECT_EQ(out, R"("a\"b\\c\n\u0001")");
  out.clear();
  JsonWriter::AppendQuoted(&out, "caf\xc3\xa9");  // valid UTF-8 passes through
  EXPECT_EQ(out, "\"caf\xc3\xa9\"");
  out.clear();
  JsonWriter::AppendQuoted(&out, "x\xff" "y\xc3");  // invalid bytes become escapes
  EXPECT_EQ(out, R"("x\u00ffy\u00c3")");
}

}  // namespace
}  // namespace drfs
