// Volume options: the typed, validated settings of `drfs volume set|get|reset`.
//
// Each option has a type, a default, a range or set of choices, and one line of help. Values
// are stored in their canonical form ("64MiB", "15m", "always"), so `volume get` prints what
// the daemon will use whatever spelling the operator typed. Options that brick processes read
// take effect when a brick (re)starts; options that the volume client reads take effect at
// the next mount or reconnect. `applies_to` says which.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace drfs::mgmt {

enum class OptionType { kBool, kInt, kSize, kDuration, kEnum };

struct OptionDef {
  std::string key;
  OptionType type;
  std::string default_value;  // canonical
  int64_t min = 0;            // kInt, kSize (bytes), kDuration (ms)
  int64_t max = 0;
  std::vector<std::string> choices;  // kEnum
  std::string applies_to;            // "brick restart", "client", "self-heal daemon"
  std::string help;
};

// Every option, in key order.
const std::vector<OptionDef>& AllOptions();
const OptionDef* FindOption(const std::string& key);

// Checks `value` against the option and returns its canonical form. InvalidArgument says what
// is allowed, e.g. "changelog.fsync: 'sometimes' is not one of always, interval, never".
Result<std::string> NormalizeOption(const OptionDef& def, const std::string& value);

// The effective value of `key` given a volume's explicitly set options.
std::string EffectiveOption(const std::map<std::string, std::string>& set, const std::string& key);

// Parsers for the canonical forms (also used by the daemon to turn options into brick flags).
Result<uint64_t> ParseSize(const std::string& s);      // "4096", "64KiB", "64MiB", "1G", ...
Result<int64_t> ParseDurationMs(const std::string& s);  // "100ms", "30s", "15m", "2h", "45" (s)
std::string FormatSize(uint64_t bytes);                  // largest exact unit: "64MiB"
std::string FormatDurationMs(int64_t ms);                // largest exact unit: "15m"
const char* OptionTypeName(OptionType t);

}  // namespace drfs::mgmt
