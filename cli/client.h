// What the drfs subcommands that talk to drfsd share: --daemon/--timeout/--tls-* handling, the
// call, and printing replies (JSON with --json). Defined in cli/mgmt_cmd.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "cli/args.h"
#include "common/status.h"
#include "common/value.h"
#include "mgmt/protocol.h"

namespace drfs::cli {

// --json, --daemon, --tls-*, --timeout.
extern const OptionSpec kClientSpec;

// Where the CLI's requests go: --daemon (or $DRFS_DAEMON, or 127.0.0.1:24100) and --timeout.
struct DaemonTarget {
  std::string host;
  uint16_t port = 0;
  uint64_t timeout_s = 5;
};
Result<DaemonTarget> ParseDaemonTarget(const Args& a);
// A bad --daemon or --timeout is a usage error (exit 2).
std::optional<int> CheckClientOptions(const Args& a, const char* usage);
// The common start of `drfs GROUP CMD ...`: help, options, --daemon and --timeout. An exit code
// when the command ends here; otherwise *out holds the arguments after CMD.
std::optional<int> ParseClientCommand(int argc, char** argv, int first, const char* usage, Args* out);
// Sends one request to the daemon named by --daemon / $DRFS_DAEMON.
Result<Value> Call(const Args& a, mgmt::MgmtOp op, const Value& args);
// The list under `key`, or an empty one.
const Value::List& ListOf(const Value& v, const std::string& key);
void PrintWarnings(const Value& r);
// Prints a reply: JSON with --json, otherwise `human`.
int Output(const Args& a, const Result<Value>& r, const std::function<void(const Value&)>& human);
void PrintMessage(const Value& r);
std::string Str(int64_t v);

}  // namespace drfs::cli
