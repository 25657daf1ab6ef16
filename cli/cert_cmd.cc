// drfs cert create-ca|issue|show
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/cert.h"
#include "common/file.h"

namespace drfs::cli {
namespace {

constexpr char kUsage[] =
    "usage: drfs cert <command> ...\n"
    "\n"
    "Mint the site CA and the certificates drfs processes use for TLS with mutual\n"
    "authentication (no openssl command line needed).\n"
    "\n"
    "  create-ca --dir DIR [--name NAME] [--days N] [--force]\n"
    "        write DIR/ca.crt and DIR/ca.key (EC P-256, default 3650 days); refuses to\n"
    "        replace an existing CA unless --force\n"
    "  issue --ca-dir DIR --name NAME --role brick|client|daemon|applier [--out-dir DIR]\n"
    "        [--days N] [--san NAME_OR_IP ...] [--force]\n"
    "        write NAME.crt and NAME.key (default: into --ca-dir, 825 days). CN is NAME, OU\n"
    "        the role; SANs default to NAME, localhost and 127.0.0.1. --san repeats, or takes\n"
    "        a comma-separated list\n"
    "  show FILE\n"
    "        print a certificate's subject, issuer, role, SANs, validity and fingerprint\n";

std::string FormatUtc(int64_t s) {
  time_t t = static_cast<time_t>(s);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<int> ParseDays(const Args& a, int def) {
  auto v = a.Get("days");
  if (!v) return def;
  DRFS_ASSIGN_OR_RETURN(int64_t n, ParseInt(*v, "--days"));
  if (n < 1 || n > 36500) return InvalidArgument("--days " + *v + " must be between 1 and 36500");
  return static_cast<int>(n);
}

// --san may repeat (ParseArgs keeps the last value), so the raw argv is scanned for all of them.
std::vector<std::string> CollectSans(int argc, char** argv, int first) {
  std::vector<std::string> out;
  auto add_list = [&](const std::string& list) {
    size_t pos = 0;
    while (pos <= list.size()) {
      size_t comma = list.find(',', pos);
      if (comma == std::string::npos) comma = list.size();
      if (comma > pos) out.push_back(list.substr(pos, comma - pos));
      pos = comma + 1;
    }
  };
  for (int i = first; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--") break;
    if (s == "--san" && i + 1 < argc) {
      add_list(argv[++i]);
    } else if (s.rfind("--san=", 0) == 0) {
      add_list(s.substr(6));
    }
  }
  return out;
}

int CreateCaCmd(const Args& a) {
  if (!a.positional.empty())
    return UsageError("cert create-ca takes no positional arguments", kUsage);
  auto dir = a.Get("dir");
  if (!dir) return UsageError("cert create-ca needs --dir DIR", kUsage);
  cert::CaOptions o;
  if (auto n = a.Get("name")) o.name = *n;
  auto days = ParseDays(a, o.days);
  if (!days.ok()) return UsageError(days.status().message(), kUsage);
  o.days = *days;
  o.force = a.Has("force");
  Status s = cert::CreateCa(*dir, o);
  if (!s.ok()) return Fail(s);
  std::printf(
      "Created CA '%s' valid %d days:\n  %s\n  %s (private key, mode 0600; keep it "
      "offline if you can)\n",
      o.name.c_str(), o.days, JoinPath(*dir, cert::kCaCertFile).c_str(),
      JoinPath(*dir, cert::kCaKeyFile).c_str());
  return kExitOk;
}

int IssueCmd(const Args& a, std::vector<std::string> sans) {
  if (!a.positional.empty()) return UsageError("cert issue takes no positional arguments", kUsage);
  auto ca_dir = a.Get("ca-dir");
  auto name = a.Get("name");
  auto role = a.Get("role");
  if (!ca_dir || !name || !role) {
    return UsageError("cert issue needs --ca-dir DIR, --name NAME and --role ROLE", kUsage);
  }
  cert::LeafOptions o;
  o.name = *name;
  o.role = *role;
  o.sans = std::move(sans);
  o.force = a.Has("force");
  auto days = ParseDays(a, o.days);
  if (!days.ok()) return UsageError(days.status().message(), kUsage);
  o.days = *days;
  std::string out_dir = a.Get("out-dir").value_or(*ca_dir);
  Status s = cert::IssueCert(*ca_dir, out_dir, o);
  if (s.code() == Code::kInvalidArgument) return UsageError(s.message(), kUsage);
  if (!s.ok()) return Fail(s);
  std::printf("Issued '%s' (role %s) valid %d days:\n  %s\n  %s (private key, mode 0600)\n",
              o.name.c_str(), o.role.c_str(), o.days, JoinPath(out_dir, o.name + ".crt").c_str(),
              JoinPath(out_dir, o.name + ".key").c_str());
  return kExitOk;
}

int ShowCmd(const Args& a) {
  if (a.positional.size() != 1) return UsageError("cert show takes one FILE", kUsage);
  auto info = cert::ReadCertInfo(a.positional[0]);
  if (!info.ok()) return Fail(info.status());
  const cert::CertInfo& c = *info;
  std::printf("File:        %s\n", a.positional[0].c_str());
  std::printf("Subject:     %s\n", c.subject.c_str());
  std::printf("Issuer:      %s\n", c.issuer.c_str());
  std::printf("Kind:        %s\n", c.is_ca ? "CA" : "leaf");
  std::printf("Role:        %s\n", c.role.empty() ? "-" : c.role.c_str());
  std::string sans;
  for (const auto& s : c.sans)
    sans += (sans.empty() ? "" : ", ") + s;
  std::printf("SANs:        %s\n", sans.empty() ? "-" : sans.c_str());
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  const char* state = now < c.not_before  ? "NOT YET VALID"
                      : now > c.not_after ? "EXPIRED"
                                          : "valid";
  std::printf("Valid:       %s .. %s (%s)\n", FormatUtc(c.not_before).c_str(),
              FormatUtc(c.not_after).c_str(), state);
  std::printf("Serial:      %s\n", c.serial.c_str());
  std::printf("SHA-256:     %s\n", c.sha256_fingerprint.c_str());
  return kExitOk;
}

}  // namespace

int CertCommand(int argc, char** argv, int first) {
  if (auto rc = HandleHelp(argc, argv, first, kUsage)) return *rc;
  std::string cmd = argv[first];
  OptionSpec spec;
  if (cmd == "create-ca") {
    spec.with_value = {"dir", "name", "days"};
    spec.flags = {"force"};
  } else if (cmd == "issue") {
    spec.with_value = {"ca-dir", "name", "role", "out-dir", "days", "san"};
    spec.flags = {"force"};
  } else if (cmd == "show") {
  } else {
    return UsageError("unknown cert command '" + cmd + "'", kUsage);
  }
  auto args = ParseArgs(argc, argv, first + 1, spec);
  if (!args.ok()) return UsageError(args.status().message(), kUsage);
  if (cmd == "create-ca") return CreateCaCmd(*args);
  if (cmd == "issue") return IssueCmd(*args, CollectSans(argc, argv, first + 1));
  return ShowCmd(*args);
}

}  // namespace drfs::cli
