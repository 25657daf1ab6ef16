#include "common/cert.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <memory>

#include "common/file.h"

namespace drfs::cert {
namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;

constexpr long kSecondsPerDay = 86400;
// Backdate notBefore a little so that a peer whose clock runs slightly behind accepts a
// certificate minted a moment ago.
constexpr long kClockSkewSeconds = 300;

// OpenSSL's error queue as text ("" when empty), and cleared.
std::string SslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

Status SslFailure(const std::string& what) {
  return Internal(what + ": " + SslErrors());
}

std::string BioToString(BIO* bio) {
  std::string out(BIO_ctrl_pending(bio), '\0');
  int n = out.empty() ? 0 : BIO_read(bio, out.data(), static_cast<int>(out.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Like WriteFileAtomically, but the file is created with `mode` from the start, so a key is
// never readable by others, not even as a temporary file.
Status WriteFileWithMode(const std::string& path, std::string_view data, mode_t mode) {
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoStatus(errno, "create " + tmp);
  Status s = WriteAll(fd, data, tmp);
  if (s.ok() && ::fchmod(fd, mode) != 0) s = ErrnoStatus(errno, "chmod " + tmp);
  if (s.ok() && ::fsync(fd) != 0) s = ErrnoStatus(errno, "fsync " + tmp);
  if (::close(fd) != 0 && s.ok()) s = ErrnoStatus(errno, "close " + tmp);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = ErrnoStatus(errno, "rename " + tmp + " to " + path);
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  return FileSystem::Default()->SyncDir(DirName(path));
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

Result<PkeyPtr> NewP256Key() {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) <= 0 ||
      EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256") <= 0) {
    return SslFailure("cannot set up EC P-256 key generation");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_generate(ctx.get(), &raw) <= 0) return SslFailure("cannot generate an EC key");
  return PkeyPtr(raw);
}

Status AddNameEntry(X509_NAME* name, int nid, const std::string& value) {
  if (X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                 0) != 1) {
    return SslFailure("cannot set certificate subject field to '" + value + "'");
  }
  return Status::Ok();
}

Status AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return SslFailure("cannot build certificate extension '" + value + "'");
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return SslFailure("cannot add certificate extension '" + value + "'");
  return Status::Ok();
}

// A new v3 certificate with a random positive 128-bit serial, the given subject and validity.
Result<X509Ptr> NewCert(const std::string& cn, const std::string& ou, long not_before_s,
                        long not_after_s, EVP_PKEY* key) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return SslFailure("cannot create X509");
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return SslFailure("cannot draw a random serial");
  serial[0] &= 0x7f;  // positive
  serial[0] |= 0x40;  // and a full 16 bytes long
  BnPtr bn(BN_bin2bn(serial, sizeof serial, nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return SslFailure("cannot set the serial number");
  }
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), not_before_s) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), not_after_s) == nullptr) {
    return SslFailure("cannot set the validity period");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  DRFS_RETURN_IF_ERROR(AddNameEntry(name, NID_commonName, cn));
  if (!ou.empty()) DRFS_RETURN_IF_ERROR(AddNameEntry(name, NID_organizationalUnitName, ou));
  if (X509_set_pubkey(cert.get(), key) != 1) return SslFailure("cannot set the public key");
  return cert;
}

Result<std::string> PemOfCert(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return SslFailure("cannot encode PEM");
  return BioToString(bio.get());
}

Result<std::string> PemOfKey(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return SslFailure("cannot encode the private key as PEM");
  }
  return BioToString(bio.get());
}

// Key first, then certificate: a crash in between leaves a key without its certificate, never
// a certificate whose key is gone.
Status WritePair(const std::string& crt_path, const std::string& key_path, X509* cert,
                 EVP_PKEY* key) {
  DRFS_ASSIGN_OR_RETURN(std::string key_pem, PemOfKey(key));
  DRFS_ASSIGN_OR_RETURN(std::string crt_pem, PemOfCert(cert));
  DRFS_RETURN_IF_ERROR(WriteFileWithMode(key_path, key_pem, 0600));
  return WriteFileWithMode(crt_path, crt_pem, 0644);
}

Result<std::string> ReadWhole(const std::string& path) {
  return ReadFileToString(FileSystem::Default(), path);
}

Result<X509Ptr> LoadCert(const std::string& path) {
  DRFS_ASSIGN_OR_RETURN(std::string pem, ReadWhole(path));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) {
    ERR_clear_error();
    return InvalidArgument(path +
                           " holds no PEM certificate (expected '-----BEGIN CERTIFICATE"
                           "-----'); pass a .crt file written by 'drfs cert'");
  }
  return cert;
}

Result<PkeyPtr> LoadKey(const std::string& path) {
  DRFS_ASSIGN_OR_RETURN(std::string pem, ReadWhole(path));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) {
    ERR_clear_error();
    return InvalidArgument(path + " holds no unencrypted PEM private key");
  }
  return key;
}

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 64 || n[0] == '.' || n[0] == '-') return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
  });
}

bool IsIp(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool ValidDnsName(const std::string& s) {
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.front() == '-') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '*';
  });
}

int64_t AsnTimeToEpoch(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

std::string NameToString(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "";
  return BioToString(bio.get());
}

std::string FirstEntry(const X509_NAME* name, int nid) {
  int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return "";
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

}  // namespace

const std::vector<std::string>& Roles() {
  static const std::vector<std::string> kRoles = {"brick", "client", "daemon", "applier"};
  return kRoles;
}

Status CreateCa(const std::string& dir, const CaOptions& options) {
  if (options.days < 1) {
    return InvalidArgument("CA validity must be at least 1 day, got " +
                           std::to_string(options.days));
  }
  if (options.name.empty() || options.name.size() > 64) {
    return InvalidArgument("CA name must be 1 to 64 characters");
  }
  const std::string crt = JoinPath(dir, kCaCertFile);
  const std::string key = JoinPath(dir, kCaKeyFile);
  if (!options.force && (Exists(crt) || Exists(key))) {
    return AlreadyExists("a CA already exists in " + dir + " (" + crt +
                         "); replacing it invalidates every certificate it issued, so pass "
                         "--force only if that is intended");
  }
  DRFS_RETURN_IF_ERROR(FileSystem::Default()->CreateDirs(dir));
  DRFS_ASSIGN_OR_RETURN(PkeyPtr pkey, NewP256Key());
  DRFS_ASSIGN_OR_RETURN(X509Ptr cert,
                        NewCert(options.name, "", -kClockSkewSeconds,
                                static_cast<long>(options.days) * kSecondsPerDay, pkey.get()));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1) {
    return SslFailure("cannot set the CA issuer");
  }
  DRFS_RETURN_IF_ERROR(AddExt(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE"));
  DRFS_RETURN_IF_ERROR(
      AddExt(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  DRFS_RETURN_IF_ERROR(AddExt(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(cert.get(), pkey.get(), EVP_sha256()) <= 0) {
    return SslFailure("cannot self-sign the CA certificate");
  }
  return WritePair(crt, key, cert.get(), pkey.get());
}

Status IssueCert(const std::string& ca_dir, const std::string& out_dir,
                 const LeafOptions& options) {
  if (!ValidName(options.name)) {
    return InvalidArgument("certificate name '" + options.name +
                           "' must be 1 to 64 of [A-Za-z0-9._-], not starting with '.' or '-'");
  }
  const auto& roles = Roles();
  if (std::find(roles.begin(), roles.end(), options.role) == roles.end()) {
    return InvalidArgument("role '" + options.role +
                           "' is not one of brick, client, daemon, applier");
  }
  if (options.days < 1) {
    return InvalidArgument("certificate validity must be at least 1 day, got " +
                           std::to_string(options.days));
  }
  std::vector<std::string> sans = options.sans;
  if (sans.empty()) sans = {options.name, "localhost", "127.0.0.1"};
  std::string san_value;
  for (const auto& s : sans) {
    std::string entry;
    if (IsIp(s)) {
      entry = "IP:" + s;
    } else if (ValidDnsName(s)) {
      entry = "DNS:" + s;
    } else {
      return InvalidArgument("subjectAltName '" + s + "' is neither an IP address nor a DNS name");
    }
    if (!san_value.empty()) san_value += ",";
    san_value += entry;
  }

  const std::string ca_crt_path = JoinPath(ca_dir, kCaCertFile);
  const std::string ca_key_path = JoinPath(ca_dir, kCaKeyFile);
  if (!Exists(ca_crt_path) || !Exists(ca_key_path)) {
    return NotFound("no CA in " + ca_dir + " (" + ca_crt_path + " or " + ca_key_path +
                    " is missing); create one with 'drfs cert create-ca --dir " + ca_dir + "'");
  }
  DRFS_ASSIGN_OR_RETURN(X509Ptr ca, LoadCert(ca_crt_path));
  DRFS_ASSIGN_OR_RETURN(PkeyPtr ca_key, LoadKey(ca_key_path));
  if (X509_check_private_key(ca.get(), ca_key.get()) != 1) {
    ERR_clear_error();
    return FailedPrecondition("CA key " + ca_key_path + " does not match " + ca_crt_path +
                              "; restore the pair from the same 'drfs cert create-ca' run");
  }
  if (X509_check_ca(ca.get()) != 1) {
    return FailedPrecondition(ca_crt_path + " is not a CA certificate");
  }
  if (X509_cmp_current_time(X509_get0_notAfter(ca.get())) <= 0) {
    return FailedPrecondition("CA " + ca_crt_path + " has expired; create a new CA and reissue");
  }

  const std::string crt = JoinPath(out_dir, options.name + ".crt");
  const std::string key = JoinPath(out_dir, options.name + ".key");
  if (!options.force && (Exists(crt) || Exists(key))) {
    return AlreadyExists(crt + " or " + key + " already exists; pass --force to replace it");
  }
  DRFS_RETURN_IF_ERROR(FileSystem::Default()->CreateDirs(out_dir));

  DRFS_ASSIGN_OR_RETURN(PkeyPtr pkey, NewP256Key());
  const long offset = static_cast<long>(options.not_before_offset_days) * kSecondsPerDay;
  DRFS_ASSIGN_OR_RETURN(
      X509Ptr cert, NewCert(options.name, options.role, offset - kClockSkewSeconds,
                            offset + static_cast<long>(options.days) * kSecondsPerDay, pkey.get()));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.get())) != 1) {
    return SslFailure("cannot set the issuer");
  }
  DRFS_RETURN_IF_ERROR(AddExt(cert.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE"));
  DRFS_RETURN_IF_ERROR(
      AddExt(cert.get(), ca.get(), NID_key_usage, "critical,digitalSignature,keyAgreement"));
  DRFS_RETURN_IF_ERROR(AddExt(cert.get(), ca.get(), NID_ext_key_usage, "serverAuth,clientAuth"));
  DRFS_RETURN_IF_ERROR(AddExt(cert.get(), ca.get(), NID_subject_alt_name, san_value));
  DRFS_RETURN_IF_ERROR(AddExt(cert.get(), ca.get(), NID_subject_key_identifier, "hash"));
  DRFS_RETURN_IF_ERROR(AddExt(cert.get(), ca.get(), NID_authority_key_identifier, "keyid"));
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) <= 0) {
    return SslFailure("cannot sign the certificate for " + options.name);
  }
  return WritePair(crt, key, cert.get(), pkey.get());
}

Result<CertInfo> ReadCertInfo(const std::string& path) {
  DRFS_ASSIGN_OR_RETURN(X509Ptr cert, LoadCert(path));
  CertInfo info;
  const X509_NAME* subject = X509_get_subject_name(cert.get());
  info.subject = NameToString(subject);
  info.issuer = NameToString(X509_get_issuer_name(cert.get()));
  info.common_name = FirstEntry(subject, NID_commonName);
  info.role = FirstEntry(subject, NID_organizationalUnitName);
  info.is_ca = X509_check_ca(cert.get()) == 1;
  info.not_before = AsnTimeToEpoch(X509_get0_notBefore(cert.get()));
  info.not_after = AsnTimeToEpoch(X509_get0_notAfter(cert.get()));

  BnPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  if (serial) {
    char* hex = BN_bn2hex(serial.get());
    if (hex != nullptr) {
      info.serial = hex;
      OPENSSL_free(hex);
    }
  }

  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_digest(cert.get(), EVP_sha256(), md, &md_len) == 1) {
    for (unsigned int i = 0; i < md_len; ++i) {
      char b[4];
      std::snprintf(b, sizeof b, i ? ":%02X" : "%02X", md[i]);
      info.sha256_fingerprint += b;
    }
  }

  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
      if (gn->type == GEN_DNS) {
        const ASN1_STRING* s = gn->d.dNSName;
        info.sans.push_back("DNS:" +
                            std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                        static_cast<size_t>(ASN1_STRING_length(s))));
      } else if (gn->type == GEN_IPADD) {
        const ASN1_STRING* s = gn->d.iPAddress;
        char buf[INET6_ADDRSTRLEN] = {};
        int len = ASN1_STRING_length(s);
        int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
        if (af != 0 && inet_ntop(af, ASN1_STRING_get0_data(s), buf, sizeof buf) != nullptr) {
          info.sans.push_back(std::string("IP:") + buf);
        }
      }
    }
    GENERAL_NAMES_free(names);
  }
  return info;
}

}  // namespace drfs::cert
