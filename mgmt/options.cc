#include "mgmt/options.h"

#include <algorithm>
#include <cctype>

namespace drfs::mgmt {
namespace {

constexpr int64_t kMiB = 1 << 20;
constexpr int64_t kSecond = 1000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;

std::vector<OptionDef> MakeOptions() {
  std::vector<OptionDef> v = {
      {"brick.threads", OptionType::kInt, "32", 1, 256, {}, "brick restart",
       "disk threads per brick process; they mostly wait on the changelog's fsync"},
      {"changelog.fsync", OptionType::kEnum, "always", 0, 0, {"always", "interval", "never"},
       "brick restart",
       "when a brick fsyncs its changelog: before every reply (always), every "
       "changelog.fsync-interval, or never"},
      {"changelog.fsync-interval", OptionType::kDuration, "100ms", 1, 10 * kSecond, {},
       "brick restart", "how often the changelog is fsynced under changelog.fsync=interval"},
      {"changelog.keep-unclaimed", OptionType::kSize, "1GiB", 0, int64_t{1} << 40, {},
       "brick restart",
       "while no geo-replication session reads a brick's changelog (no journal cursor: a volume "
       "without a session, a secondary's bricks), keep only its newest segments holding this "
       "much and delete the older ones; 0 keeps it all (it then grows without bound). A "
       "session created later starts with a crawl, which does not need the old records"},
      {"changelog.rollover-size", OptionType::kSize, "64MiB", kMiB, int64_t{4} << 30, {},
       "brick restart", "a changelog segment is closed and a new one started past this size"},
      {"changelog.rollover-time", OptionType::kDuration, "15m", kSecond, 24 * kHour, {},
       "brick restart", "a changelog segment is closed and a new one started past this age"},
      {"cluster.heal-interval", OptionType::kDuration, "2s", kSecond, 24 * kHour, {},
       "self-heal daemon",
       "how often the self-heal daemon reads its bricks' heal index and heals what it lists "
       "(reading an empty index costs one request per brick)"},
      {"cluster.quorum-count", OptionType::kInt, "2", 1, 16, {}, "client",
       "replicas that must be up for writes when cluster.quorum-type=fixed"},
      {"cluster.quorum-type", OptionType::kEnum, "auto", 0, 0, {"auto", "fixed", "none"},
       "client",
       "client quorum: more than half the replicas (auto), cluster.quorum-count (fixed), or "
       "none"},
  };
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  return v;
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Splits "64MiB" into 64 and "mib"; false when there is no leading number.
bool SplitNumber(const std::string& s, uint64_t* n, std::string* unit) {
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0 || i > 18) return false;
  *n = std::stoull(s.substr(0, i));
  *unit = Lower(s.substr(i));
  while (!unit->empty() && unit->front() == ' ') unit->erase(0, 1);
  return true;
}

}  // namespace

const std::vector<OptionDef>& AllOptions() {
  static const std::vector<OptionDef> options = MakeOptions();
  return options;
}

const OptionDef* FindOption(const std::string& key) {
  for (const auto& o : AllOptions()) {
    if (o.key == key) return &o;
  }
  return nullptr;
}

const char* OptionTypeName(OptionType t) {
  switch (t) {
    case OptionType::kBool:
      return "bool";
    case OptionType::kInt:
      return "integer";
    case OptionType::kSize:
      return "size";
    case OptionType::kDuration:
      return "duration";
    case OptionType::kEnum:
      return "choice";
  }
  return "?";
}

Result<uint64_t> ParseSize(const std::string& s) {
  uint64_t n;
  std::string unit;
  if (!SplitNumber(s, &n, &unit)) return InvalidArgument("'" + s + "' is not a size");
  static const std::map<std::string, int> kShift = {
      {"", 0},    {"b", 0},    {"k", 10},  {"kb", 10}, {"kib", 10}, {"m", 20}, {"mb", 20},
      {"mib", 20}, {"g", 30},  {"gb", 30}, {"gib", 30}, {"t", 40},  {"tb", 40}, {"tib", 40}};
  auto it = kShift.find(unit);
  if (it == kShift.end()) {
    return InvalidArgument("'" + s + "' is not a size (use a number with B, KiB, MiB, GiB or TiB)");
  }
  if (it->second > 0 && n > (~uint64_t{0} >> it->second)) {
    return InvalidArgument("'" + s + "' is too large");
  }
  return n << it->second;
}

Result<int64_t> ParseDurationMs(const std::string& s) {
  uint64_t n;
  std::string unit;
  if (!SplitNumber(s, &n, &unit)) return InvalidArgument("'" + s + "' is not a duration");
  static const std::map<std::string, int64_t> kUnit = {
      {"ms", 1},  {"", kSecond}, {"s", kSecond}, {"sec", kSecond}, {"m", kMinute},
      {"min", kMinute}, {"h", kHour}};
  auto it = kUnit.find(unit);
  if (it == kUnit.end()) {
    return InvalidArgument("'" + s + "' is not a duration (use ms, s, m or h, e.g. 30s)");
  }
  if (n > static_cast<uint64_t>(INT64_MAX / it->second)) {
    return InvalidArgument("'" + s + "' is too long");
  }
  return static_cast<int64_t>(n) * it->second;
}

std::string FormatSize(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (u < 4 && bytes != 0 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++u;
  }
  return std::to_string(bytes) + kUnits[u];
}

std::string FormatDurationMs(int64_t ms) {
  if (ms != 0 && ms % kHour == 0) return std::to_string(ms / kHour) + "h";
  if (ms != 0 && ms % kMinute == 0) return std::to_string(ms / kMinute) + "m";
  if (ms != 0 && ms % kSecond == 0) return std::to_string(ms / kSecond) + "s";
  return std::to_string(ms) + "ms";
}

Result<std::string> NormalizeOption(const OptionDef& def, const std::string& value) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument(def.key + ": " + why + "; see 'drfs volume set help'");
  };
  switch (def.type) {
    case OptionType::kBool: {
      std::string v = Lower(value);
      if (v == "on" || v == "true" || v == "yes" || v == "1" || v == "enable") return std::string("on");
      if (v == "off" || v == "false" || v == "no" || v == "0" || v == "disable") return std::string("off");
      return bad("'" + value + "' is not on or off");
    }
    case OptionType::kEnum: {
      std::string v = Lower(value);
      for (const auto& c : def.choices) {
        if (c == v) return c;
      }
      std::string all;
      for (const auto& c : def.choices) all += (all.empty() ? "" : ", ") + c;
      return bad("'" + value + "' is not one of " + all);
    }
    case OptionType::kInt: {
      uint64_t n;
      std::string unit;
      if (!SplitNumber(value, &n, &unit) || !unit.empty()) return bad("'" + value + "' is not a whole number");
      if (static_cast<int64_t>(n) < def.min || static_cast<int64_t>(n) > def.max) {
        return bad(value + " is outside " + std::to_string(def.min) + "-" + std::to_string(def.max));
      }
      return std::to_string(n);
    }
    case OptionType::kSize: {
      auto n = ParseSize(value);
      if (!n.ok()) return bad(n.status().message());
      if (static_cast<int64_t>(*n) < def.min || static_cast<int64_t>(*n) > def.max) {
        return bad(value + " is outside " + FormatSize(def.min) + "-" + FormatSize(def.max));
      }
      return FormatSize(*n);
    }
    case OptionType::kDuration: {
      auto ms = ParseDurationMs(value);
      if (!ms.ok()) return bad(ms.status().message());
      if (*ms < def.min || *ms > def.max) {
        return bad(value + " is outside " + FormatDurationMs(def.min) + "-" +
                   FormatDurationMs(def.max));
      }
      return FormatDurationMs(*ms);
    }
  }
  return bad("unknown type");
}

std::string EffectiveOption(const std::map<std::string, std::string>& set, const std::string& key) {
  auto it = set.find(key);
  if (it != set.end()) return it->second;
  const OptionDef* def = FindOption(key);
  return def ? def->default_value : "";
}

}  // namespace drfs::mgmt
