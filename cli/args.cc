#include "cli/args.h"

#include <charconv>
#include <cstdio>
#include <iostream>

namespace drfs::cli {

Result<Args> ParseArgs(int argc, char** argv, int first, const OptionSpec& spec) {
  Args a;
  bool only_positional = false;
  for (int i = first; i < argc; ++i) {
    std::string s = argv[i];
    if (only_positional || s.size() < 2 || s[0] != '-' || s == "-") {
      a.positional.push_back(s);
      continue;
    }
    if (s == "--") {
      only_positional = true;
      continue;
    }
    std::string name = s.substr(s[1] == '-' ? 2 : 1);
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (spec.flags.count(name)) {
      if (inline_value) return InvalidArgument("option --" + name + " takes no value");
      a.flags.insert(name);
    } else if (spec.with_value.count(name)) {
      if (inline_value) {
        a.values[name] = *inline_value;
      } else if (i + 1 < argc) {
        a.values[name] = argv[++i];
      } else {
        return InvalidArgument("option --" + name + " needs a value");
      }
    } else {
      return InvalidArgument("unknown option '" + s + "'");
    }
  }
  return a;
}

Result<uint64_t> ParseUint(const std::string& s, const std::string& what, int base) {
  uint64_t v = 0;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (base == 16 && s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) b += 2;
  auto [p, ec] = std::from_chars(b, e, v, base);
  if (s.empty() || ec != std::errc() || p != e) {
    return InvalidArgument(what + " '" + s + "' is not a valid " +
                           (base == 8 ? "octal " : base == 16 ? "hex " : "") +
                           "non-negative number");
  }
  return v;
}

Result<int64_t> ParseInt(const std::string& s, const std::string& what) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) {
    return InvalidArgument(what + " '" + s + "' is not a valid number");
  }
  return v;
}

Status GetGfidOption(const Args& a, const std::string& opt, Gfid* out) {
  auto v = a.Get(opt);
  if (!v) return Status::Ok();
  auto g = Gfid::Parse(*v);
  if (!g) return InvalidArgument("--" + opt + " '" + *v + "' is not a gfid (8-4-4-4-12 hex)");
  *out = *g;
  return Status::Ok();
}

Status GetIntOption(const Args& a, const std::string& opt, int64_t* out) {
  auto v = a.Get(opt);
  if (!v) return Status::Ok();
  DRFS_ASSIGN_OR_RETURN(*out, ParseInt(*v, "--" + opt));
  return Status::Ok();
}

std::optional<int> HandleHelp(int argc, char** argv, int first, const char* usage) {
  if (first >= argc) {
    std::cerr << usage;
    return kExitUsage;
  }
  std::string_view cmd = argv[first];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << usage;
    return kExitOk;
  }
  return std::nullopt;
}

std::string HumanBytes(uint64_t n) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  }
  return buf;
}

TlsConfig TlsFromArgs(const Args& a) {
  TlsConfig t;
  t.cert_file = a.Get("tls-cert").value_or("");
  t.key_file = a.Get("tls-key").value_or("");
  t.ca_file = a.Get("tls-ca").value_or("");
  return t;
}

Result<TlsConfig> ServerTlsFromArgs(const Args& a) {
  TlsConfig t = TlsFromArgs(a);
  if (t.enabled() && (t.cert_file.empty() || t.key_file.empty() || t.ca_file.empty())) {
    return InvalidArgument("TLS needs all of --tls-cert, --tls-key and --tls-ca");
  }
  return t;
}

int Fail(const Status& s) {
  std::cerr << "drfs: " << s.message() << "\n";
  return kExitError;
}

int UsageError(const std::string& message, const std::string& usage) {
  std::cerr << "drfs: " << message << "\n\n" << usage;
  return kExitUsage;
}

}  // namespace drfs::cli
