// Command-line parsing shared by every drfs subcommand: positionals plus --options, each
// subcommand declaring which options it takes. A usage error exits 2, as the CLI promises.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/gfid.h"
#include "common/rpc.h"
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

// Reads option --opt into *out when it was given, and leaves *out alone otherwise.
// InvalidArgument names the option and the bad value.
Status GetGfidOption(const Args& a, const std::string& opt, Gfid* out);
Status GetIntOption(const Args& a, const std::string& opt, int64_t* out);
template <typename T>
Status GetUintOption(const Args& a, const std::string& opt, T* out, int base = 10) {
  auto v = a.Get(opt);
  if (!v) return Status::Ok();
  DRFS_ASSIGN_OR_RETURN(uint64_t n, ParseUint(*v, "--" + opt, base));
  if (n > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
    return InvalidArgument("--" + opt + " " + *v + " is out of range");
  }
  *out = static_cast<T>(n);
  return Status::Ok();
}

// For a command group: with no command, or with --help/-h/help, prints `usage` and returns the
// exit code (2 without a command, 0 when help was asked for); otherwise nullopt.
std::optional<int> HandleHelp(int argc, char** argv, int first, const char* usage);

// --tls-cert/--tls-key/--tls-ca as a TlsConfig (empty: plain TCP).
TlsConfig TlsFromArgs(const Args& a);
// The same for a server, which needs all three files or none: InvalidArgument otherwise.
Result<TlsConfig> ServerTlsFromArgs(const Args& a);

// "12.3 KiB"
std::string HumanBytes(uint64_t n);

// Prints "drfs: <message>" to stderr and returns the exit code for the status.
int Fail(const Status& s);
// Prints "drfs: <message>\n<usage>" and returns kExitUsage.
int UsageError(const std::string& message, const std::string& usage);

}  // namespace drfs::cli
