// A small streaming JSON writer for `--json` output. It handles commas and escaping; callers
// only say what comes next. Strings are written as UTF-8; bytes that are not valid UTF-8 (file
// names may hold any bytes) are written as \u00XX escapes of the raw byte.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace drfs {

class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view k);
  JsonWriter& String(std::string_view s);
  JsonWriter& Int(int64_t v);
  JsonWriter& Uint(uint64_t v);
  JsonWriter& Bool(bool v);
  JsonWriter& Null();

  const std::string& str() const { return out_; }
  std::string Take() { return std::move(out_); }

  // Appends `s` as a quoted, escaped JSON string.
  static void AppendQuoted(std::string* out, std::string_view s);

 private:
  void Separate();

  std::string out_;
  // One entry per open container: whether it already has an element.
  std::vector<bool> has_elem_;
  bool after_key_ = false;
};

}  // namespace drfs
