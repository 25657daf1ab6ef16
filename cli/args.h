// Command-line parsing shared by every drfs subcommand: positionals plus --options, each
// subcommand declaring which options it takes. A usage error exits 2, as the CLI promises.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"

namespace drfs::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

struct OptionSpec {
  std::set<std::string> flags;          // --json
  std::set<std::string> with_value;     // --from-lsn N
};

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;
  std::set<std::string> flags;

  bool Has(const std::string& f) const { return flags.count(f) > 0 || values.count(f) > 0; }
  std::optional<std::string> Get(const std::string& k) const {
    auto it = values.find(k);
    if (it == values.end()) return std::nullopt;
    return it->second;
  }
};

// Parses argv[first..argc). InvalidArgument names the offending option.
Result<Args> ParseArgs(int argc, char** argv, int first, const OptionSpec& spec);

// Strict number parsing: the whole string, in range. `what` names the value in the error.
Result<uint64_t> ParseUint(const std::string& s, const std::string& what, int base = 10);
Result<int64_t> ParseInt(const std::string& s, const std::string& what);

// "12.3 KiB"
std::string HumanBytes(uint64_t n);

// Prints "drfs: <message>" to stderr and returns the exit code for the status.
int Fail(const Status& s);
// Prints "drfs: <message>\n<usage>" and returns kExitUsage.
int UsageError(const std::string& message, const std::string& usage);

}  // namespace drfs::cli
