// Value: a small self-describing data tree (null, bool, integer, string, list, map) and its
// binary codec. drfsd's management messages are Values: the CLI sends one as a request, the
// daemon answers with one, and `--json` output is the answer written as JSON, so what scripts
// parse is exactly what the daemon said.
//
// Wire encoding (little-endian), one tag byte then the body:
//   0 null | 1 false | 2 true | 3 int: 8-byte two's complement | 4 string: u32 length + bytes
//   5 list: u32 count + items | 6 map: u32 count + (u32 key length + key bytes + value) each
// DecodeValue() is the only parser of these bytes. It refuses, with InvalidArgument, a bad tag,
// a length or count past the end of the input, a nesting deeper than kMaxValueDepth, more than
// kMaxValueCount values, duplicate map keys and trailing bytes, so a hostile peer can make it fail but never misbehave.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace drfs {

inline constexpr int kMaxValueDepth = 32;
// At most this many values in one decoded message (a Value is ~100 bytes in memory, so a
// message of a million one-byte nulls would otherwise cost 100 MB).
inline constexpr size_t kMaxValueCount = size_t{1} << 18;

class Value {
 public:
  enum class Type : uint8_t { kNull, kBool, kInt, kString, kList, kMap };
  using List = std::vector<Value>;
  using Map = std::map<std::string, Value>;  // ordered: stable JSON key order

  Value() = default;
  Value(bool b) : type_(Type::kBool), int_(b) {}                     // NOLINT
  Value(int v) : type_(Type::kInt), int_(v) {}                       // NOLINT
  Value(int64_t v) : type_(Type::kInt), int_(v) {}                   // NOLINT
  Value(uint64_t v) : type_(Type::kInt), int_(static_cast<int64_t>(v)) {}  // NOLINT
  Value(std::string s) : type_(Type::kString), str_(std::move(s)) {}  // NOLINT
  Value(const char* s) : type_(Type::kString), str_(s) {}            // NOLINT
  Value(List l) : type_(Type::kList), list_(std::move(l)) {}         // NOLINT
  Value(Map m) : type_(Type::kMap), map_(std::move(m)) {}            // NOLINT
  static Value EmptyList() { return Value(List{}); }
  static Value EmptyMap() { return Value(Map{}); }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_map() const { return type_ == Type::kMap; }
  bool is_list() const { return type_ == Type::kList; }

  // Typed reads; a value of another type reads as false / 0 / "" / empty.
  bool AsBool() const { return (type_ == Type::kBool || type_ == Type::kInt) && int_ != 0; }
  int64_t AsInt() const { return (type_ == Type::kInt || type_ == Type::kBool) ? int_ : 0; }
  const std::string& AsString() const;
  const List& AsList() const;
  const Map& AsMap() const;

  // Map access. operator[] turns a null into an empty map first.
  Value& operator[](const std::string& key);
  const Value* Find(const std::string& key) const;
  std::string GetString(const std::string& key, const std::string& def = "") const;
  int64_t GetInt(const std::string& key, int64_t def = 0) const;
  bool GetBool(const std::string& key, bool def = false) const;
  // List append; turns a null into an empty list first.
  void Push(Value v);
  List& MutableList();

  bool operator==(const Value& o) const = default;

  void WriteJson(JsonWriter* j) const;
  std::string ToJson() const;

 private:
  Type type_ = Type::kNull;
  int64_t int_ = 0;
  std::string str_;
  List list_;
  Map map_;
};

void AppendValue(const Value& v, std::string* dst);
std::string EncodeValue(const Value& v);
Result<Value> DecodeValue(std::string_view bytes);

}  // namespace drfs
