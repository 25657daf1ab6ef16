#include "common/cert.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/stat.h>

#include <cstdio>

#include "tests/common/test_util.h"

namespace drfs::cert {
namespace {

using drfs::testing::TempDir;

X509* LoadPem(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return nullptr;
  X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  return x;
}

// X509_V_OK when `leaf` chains to `ca` for TLS client and server use, else the error.
int Verify(const std::string& ca, const std::string& leaf) {
  X509* ca_cert = LoadPem(ca);
  X509* leaf_cert = LoadPem(leaf);
  EXPECT_NE(ca_cert, nullptr) << ca;
  EXPECT_NE(leaf_cert, nullptr) << leaf;
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca_cert);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf_cert, nullptr);
  int ok = X509_verify_cert(ctx);
  int err = X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  X509_free(leaf_cert);
  X509_free(ca_cert);
  return ok == 1 ? X509_V_OK : (err == X509_V_OK ? -1 : err);
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(Cert, CaAndLeafVerifyAndCarryNameRoleAndSans) {
  TempDir t;
  const std::string ca = t.Sub("ca");
  ASSERT_OK(CreateCa(ca, {}));
  EXPECT_EQ(ModeOf(ca + "/ca.key"), 0600u);
  EXPECT_EQ(ModeOf(ca + "/ca.crt"), 0644u);
  auto ca_info = ReadCertInfo(ca + "/ca.crt");
  ASSERT_OK(ca_info);
  EXPECT_TRUE(ca_info->is_ca);
  EXPECT_EQ(ca_info->common_name, "drfs site CA");
  EXPECT_EQ(ca_info->subject, ca_info->issuer);

  LeafOptions o;
  o.name = "brick-1";
  o.role = "brick";
  o.days = 30;
  ASSERT_OK(IssueCert(ca, t.Sub("out"), o));
  const std::string crt = t.Sub("out/brick-1.crt");
  EXPECT_EQ(ModeOf(t.Sub("out/brick-1.key")), 0600u);
  EXPECT_EQ(Verify(ca + "/ca.crt", crt), X509_V_OK);

  auto info = ReadCertInfo(crt);
  ASSERT_OK(info);
  EXPECT_FALSE(info->is_ca);
  EXPECT_EQ(info->common_name, "brick-1");
  EXPECT_EQ(info->role, "brick");
  EXPECT_EQ(info->issuer, ca_info->subject);
  EXPECT_EQ(info->sans, (std::vector<std::string>{"DNS:brick-1", "DNS:localhost", "IP:127.0.0.1"}));
  EXPECT_EQ(info->serial.size(), 32u);  // 128 bits in hex
  EXPECT_EQ(info->sha256_fingerprint.size(), 32u * 3 - 1);
  EXPECT_NEAR(static_cast<double>(info->not_after - info->not_before), 30.0 * 86400, 600);

  // Serials are random: a second certificate gets another one.
  o.name = "brick-2";
  ASSERT_OK(IssueCert(ca, t.Sub("out"), o));
  auto info2 = ReadCertInfo(t.Sub("out/brick-2.crt"));
  ASSERT_OK(info2);
  EXPECT_NE(info2->serial, info->serial);
}

TEST(Cert, ExplicitSansAreDnsOrIp) {
  TempDir t;
  ASSERT_OK(CreateCa(t.path(), {}));
  LeafOptions o;
  o.name = "d1";
  o.role = "daemon";
  o.sans = {"node1.example.com", "10.0.0.5", "::1"};
  ASSERT_OK(IssueCert(t.path(), t.path(), o));
  auto info = ReadCertInfo(t.Sub("d1.crt"));
  ASSERT_OK(info);
  EXPECT_EQ(info->sans,
            (std::vector<std::string>{"DNS:node1.example.com", "IP:10.0.0.5", "IP:::1"}));
  EXPECT_EQ(Verify(t.Sub("ca.crt"), t.Sub("d1.crt")), X509_V_OK);
}

TEST(Cert, ExpiredLeafFailsVerification) {
  TempDir t;
  ASSERT_OK(CreateCa(t.path(), {}));
  LeafOptions o;
  o.name = "old";
  o.role = "client";
  o.days = 1;
  o.not_before_offset_days = -10;
  ASSERT_OK(IssueCert(t.path(), t.path(), o));
  EXPECT_EQ(Verify(t.Sub("ca.crt"), t.Sub("old.crt")), X509_V_ERR_CERT_HAS_EXPIRED);
}

TEST(Cert, LeafFromAnotherCaFailsVerification) {
  TempDir t;
  ASSERT_OK(CreateCa(t.Sub("a"), {}));
  ASSERT_OK(CreateCa(t.Sub("b"), {}));
  LeafOptions o;
  o.name = "x";
  o.role = "client";
  ASSERT_OK(IssueCert(t.Sub("b"), t.path(), o));
  EXPECT_NE(Verify(t.Sub("a/ca.crt"), t.Sub("x.crt")), X509_V_OK);
}

TEST(Cert, RefusesToOverwriteWithoutForce) {
  TempDir t;
  ASSERT_OK(CreateCa(t.path(), {}));
  const std::string before = drfs::testing::ReadFile(t.Sub("ca.crt"));
  Status s = CreateCa(t.path(), {});
  EXPECT_EQ(s.code(), Code::kAlreadyExists);
  EXPECT_TRUE(Contains(s.message(), t.Sub("ca.crt"))) << s.message();
  EXPECT_EQ(drfs::testing::ReadFile(t.Sub("ca.crt")), before);

  LeafOptions o;
  o.name = "c1";
  o.role = "client";
  ASSERT_OK(IssueCert(t.path(), t.path(), o));
  EXPECT_EQ(IssueCert(t.path(), t.path(), o).code(), Code::kAlreadyExists);
  o.force = true;
  ASSERT_OK(IssueCert(t.path(), t.path(), o));

  CaOptions force;
  force.force = true;
  ASSERT_OK(CreateCa(t.path(), force));
  EXPECT_NE(drfs::testing::ReadFile(t.Sub("ca.crt")), before);
  // Certificates of the replaced CA no longer verify.
  EXPECT_NE(Verify(t.Sub("ca.crt"), t.Sub("c1.crt")), X509_V_OK);
}

TEST(Cert, RejectsBadInputWithMessagesNamingIt) {
  TempDir t;
  LeafOptions o;
  o.name = "n1";
  o.role = "brick";
  Status s = IssueCert(t.Sub("noca"), t.path(), o);
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_TRUE(Contains(s.message(), "drfs cert create-ca")) << s.message();

  ASSERT_OK(CreateCa(t.path(), {}));
  o.role = "admin";
  s = IssueCert(t.path(), t.path(), o);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "role 'admin'")) << s.message();
  o.role = "brick";
  o.name = "../evil";
  EXPECT_EQ(IssueCert(t.path(), t.path(), o).code(), Code::kInvalidArgument);
  o.name = "n1";
  o.sans = {"ok.example", "a,IP:1.2.3.4"};
  s = IssueCert(t.path(), t.path(), o);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "'a,IP:1.2.3.4'")) << s.message();
  o.sans = {};
  o.days = 0;
  EXPECT_EQ(IssueCert(t.path(), t.path(), o).code(), Code::kInvalidArgument);

  drfs::testing::WriteFile(t.Sub("junk.crt"), "not a certificate\n");
  auto r = ReadCertInfo(t.Sub("junk.crt"));
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(r.status().message(), t.Sub("junk.crt"))) << r.status().message();
  EXPECT_EQ(ReadCertInfo(t.Sub("missing.crt")).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace drfs::cert
