// Site certificates: a site CA and the leaf certificates it issues, so that operators never need
// the openssl command line (`drfs cert` wraps these calls).
//
// The CA is an EC P-256 key with a self-signed certificate (CA:TRUE, keyCertSign/cRLSign), kept
// as DIR/ca.crt and DIR/ca.key. A leaf certificate names one node or process: CN is its name,
// OU its role ("brick", "client", "daemon", "applier"; the RPC layer reports it as the peer's
// role), subjectAltName lists the DNS names and IPs it may be reached at, and extendedKeyUsage
// allows both serverAuth and clientAuth, since every drfs process both serves and dials.
// Serial numbers are random 128-bit. Private keys are written unencrypted, mode 0600, and every
// file is written atomically (temporary file, fsync, rename, fsync of the directory), so a
// crash leaves the old file or the new one. Errors name the file involved.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace drfs::cert {

inline constexpr char kCaCertFile[] = "ca.crt";
inline constexpr char kCaKeyFile[] = "ca.key";

// The roles a leaf certificate may carry.
const std::vector<std::string>& Roles();

struct CaOptions {
  std::string name = "drfs site CA";  // subject CN
  int days = 3650;
  bool force = false;  // replace an existing CA (every certificate it issued stops verifying)
};

// Writes DIR/ca.crt and DIR/ca.key, creating DIR if needed. AlreadyExists when either file is
// there and !force.
Status CreateCa(const std::string& dir, const CaOptions& options);

struct LeafOptions {
  std::string name;  // CN and file stem: OUT/NAME.crt, OUT/NAME.key
  std::string role;  // one of Roles()
  std::vector<std::string>
      sans;  // DNS names and IP addresses; empty = {name, localhost, 127.0.0.1}
  int days = 825;
  bool force = false;  // replace existing NAME.crt/NAME.key
  // Test only: shift the validity window by this many days (negative mints an expired
  // certificate). The CLI does not expose it.
  int not_before_offset_days = 0;
};

// Signs a leaf certificate with the CA in ca_dir and writes out_dir/NAME.crt and NAME.key.
// InvalidArgument for a bad name, role or SAN; NotFound/FailedPrecondition for a missing or
// unusable CA; AlreadyExists when the files exist and !force.
Status IssueCert(const std::string& ca_dir, const std::string& out_dir, const LeafOptions& options);

struct CertInfo {
  std::string subject;  // RFC 2253, "CN=b1,OU=brick"
  std::string issuer;
  std::string common_name;
  std::string role;               // subject OU
  std::vector<std::string> sans;  // "DNS:localhost", "IP:127.0.0.1"
  bool is_ca = false;
  std::string serial;      // hex
  int64_t not_before = 0;  // seconds since the epoch
  int64_t not_after = 0;
  std::string sha256_fingerprint;  // "AB:CD:..."
};

// Reads the first certificate of a PEM file.
Result<CertInfo> ReadCertInfo(const std::string& path);

}  // namespace drfs::cert
