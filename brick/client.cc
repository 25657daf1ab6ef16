#include "brick/client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/log.h"

namespace drfs::brick {

using namespace brick_proto;

Result<std::string> ReadApplierSecretFile(const std::string& path) {
  const std::string what = "applier secret file " + path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    return Status(Code::kFailedPrecondition,
                  "cannot open " + what + ": " + std::strerror(e) +
                      "; create it with a random secret (mode 0600), e.g. 'openssl rand -hex 32 "
                      "> " +
                      path + " && chmod 600 " + path + "'",
                  e);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return FailedPrecondition(what +
                              " is not a regular file; point --applier-secret-file at "
                              "the file holding the secret");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return FailedPrecondition(what + " has mode " + mode +
                              ": group or others may access it, and whoever reads it can write "
                              "to this read-only brick; run 'chmod 600 " +
                              path + "'");
  }
  std::string secret;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return Status(Code::kFailedPrecondition, "cannot read " + what + ": " + std::strerror(e), e);
    }
    if (n == 0) break;
    secret.append(buf, static_cast<size_t>(n));
    if (secret.size() > brick_proto::kMaxXattrValue) {
      ::close(fd);
      return FailedPrecondition(what + " is larger than " +
                                std::to_string(brick_proto::kMaxXattrValue) +
                                " bytes; is it the right file?");
    }
  }
  ::close(fd);
  const char* ws = " \t\r\n";
  const size_t b = secret.find_first_not_of(ws);
  if (b == std::string::npos) {
    return FailedPrecondition(what +
                              " is empty; put a random secret in it (e.g. 'openssl rand "
                              "-hex 32'), the same one the applier is given");
  }
  secret = secret.substr(b, secret.find_last_not_of(ws) - b + 1);
  return secret;
}

Result<std::unique_ptr<BrickClient>> BrickClient::Connect(const std::string& host, uint16_t port,
                                                          const TlsConfig& tls,
                                                          const ClientOptions& options,
                                                          const std::string& applier_secret) {
  Request hello;
  hello.op = Op::kHello;
  hello.name = "drfs-client";
  hello.flags = kProtocolVersion;
  hello.xattr_value = applier_secret;
  ClientOptions co = options;
  if (!applier_secret.empty()) {
    // The brick remembers the secret per connection: say it again on every reconnect. The
    // first connection also gets the explicit hello below, whose answer Connect reports.
    co.handshake_op = static_cast<uint16_t>(Op::kHello);
    EncodeRequest(hello, &co.handshake_payload);
    const std::string target = host + ":" + std::to_string(port);
    co.on_handshake_reply = [target](Result<Frame> f) {
      Reply r;
      if (f.ok() && DecodeReply(Op::kHello, f->payload, &r).ok() && r.err != 0) {
        DRFS_LOG(Warn) << "brick " << target << " refused this client's applier hello after a "
                       << "reconnect: " << r.message;
      }
    };
  }
  DRFS_ASSIGN_OR_RETURN(auto rpc, RpcClient::Connect(host, port, tls, co));
  std::unique_ptr<BrickClient> c(new BrickClient(std::move(rpc)));
  DRFS_ASSIGN_OR_RETURN(Reply r, c->CallSync(hello));
  c->brick_id_ = r.data;
  return c;
}

void BrickClient::Call(const Request& request, Callback done) {
  std::string payload;
  EncodeRequest(request, &payload);
  const Op op = request.op;
  std::string target = rpc_->target();
  rpc_->Call(static_cast<uint16_t>(op), std::move(payload),
             [op, done = std::move(done), target](Result<Frame> f) {
               if (!f.ok()) {
                 done(f.status().WithContext(std::string(OpName(op)) + " on brick " + target));
                 return;
               }
               Reply r;
               Status s = DecodeReply(op, f->payload, &r);
               if (!s.ok()) {
                 done(Status(Code::kDataLoss, s.message() + " from brick " + target, EPROTO));
                 return;
               }
               done(std::move(r));
             });
}

std::future<Result<Reply>> BrickClient::Call(const Request& request) {
  auto p = std::make_shared<std::promise<Result<Reply>>>();
  auto fut = p->get_future();
  Call(request, [p](Result<Reply> r) { p->set_value(std::move(r)); });
  return fut;
}

Result<Reply> BrickClient::CallSync(const Request& request) {
  DRFS_ASSIGN_OR_RETURN(Reply r, Call(request).get());
  if (r.err != 0) {
    return ReplyStatus(r).WithContext(std::string(OpName(request.op)) + " on brick " + target());
  }
  return r;
}

Result<Iatt> BrickClient::Lookup(const Gfid& parent, const std::string& name) {
  Request q;
  q.op = Op::kLookup;
  q.parent = parent;
  q.name = name;
  DRFS_ASSIGN_OR_RETURN(Reply r, CallSync(q));
  return r.attr;
}

Result<Iatt> BrickClient::Getattr(const Gfid& gfid) {
  Request q;
  q.op = Op::kGetattr;
  q.gfid = gfid;
  DRFS_ASSIGN_OR_RETURN(Reply r, CallSync(q));
  return r.attr;
}

Result<Iatt> BrickClient::Mkdir(const Gfid& parent, const std::string& name, const Gfid& gfid,
                                uint32_t mode, uint32_t uid, uint32_t gid) {
  Request q;
  q.op = Op::kMkdir;
  q.parent = parent;
  q.name = name;
  q.gfid = gfid;
  q.mode = mode;
  q.uid = uid;
  q.gid = gid;
  DRFS_ASSIGN_OR_RETURN(Reply r, CallSync(q));
  return r.attr;
}

Result<Iatt> BrickClient::Create(const Gfid& parent, const std::string& name, const Gfid& gfid,
                                 uint32_t mode, bool exclusive, uint32_t uid, uint32_t gid) {
  Request q;
  q.op = Op::kCreate;
  q.parent = parent;
  q.name = name;
  q.gfid = gfid;
  q.mode = mode;
  q.uid = uid;
  q.gid = gid;
  q.flags = exclusive ? kCreateExclusive : 0;
  DRFS_ASSIGN_OR_RETURN(Reply r, CallSync(q));
  return r.attr;
}

Result<uint64_t> BrickClient::Write(const Gfid& gfid, uint64_t offset, std::string data) {
  Request q;
  q.op = Op::kWrite;
  q.gfid = gfid;
  q.offset = offset;
  q.data = std::move(data);
  DRFS_ASSIGN_OR_RETURN(Reply r, CallSync(q));
  return r.count;
}

Result<std::string> BrickClient::Read(const Gfid& gfid, uint64_t offset, uint64_t length) {
  Request q;
  q.op = Op::kRead;
  q.gfid = gfid;
  q.offset = offset;
  q.length = length;
  DRFS_ASSIGN_OR_RETURN(Reply r, CallSync(q));
  return std::move(r.data);
}

Status BrickClient::Unlink(const Gfid& parent, const std::string& name) {
  Request q;
  q.op = Op::kUnlink;
  q.parent = parent;
  q.name = name;
  return CallSync(q).status();
}

Status BrickClient::Rename(const Gfid& parent, const std::string& name, const Gfid& new_parent,
                           const std::string& new_name, uint32_t flags) {
  Request q;
  q.op = Op::kRename;
  q.parent = parent;
  q.name = name;
  q.new_parent = new_parent;
  q.new_name = new_name;
  q.flags = flags;
  return CallSync(q).status();
}

Result<std::vector<DirEntry>> BrickClient::ReaddirAll(const Gfid& dir, bool plus) {
  std::vector<DirEntry> all;
  Request q;
  q.op = Op::kReaddir;
  q.gfid = dir;
  q.flags = plus ? kReaddirPlus : 0;
  q.length = 512;
  for (;;) {
    DRFS_ASSIGN_OR_RETURN(Reply r, CallSync(q));
    for (auto& e : r.entries) {
      q.offset = e.cookie;
      all.push_back(std::move(e));
    }
    if (r.eof || r.entries.empty()) break;
  }
  return all;
}

Result<std::vector<int32_t>> BrickClient::Xattrop(const Gfid& gfid, std::vector<int32_t> deltas) {
  Request q;
  q.op = Op::kXattrop;
  q.gfid = gfid;
  q.pending = std::move(deltas);
  DRFS_ASSIGN_OR_RETURN(Reply r, CallSync(q));
  return std::move(r.pending);
}

Result<std::vector<int32_t>> BrickClient::Inodelk(const Gfid& gfid, uint64_t owner, uint32_t flags,
                                                  std::vector<int32_t> deltas) {
  Request q;
  q.op = Op::kInodelk;
  q.gfid = gfid;
  q.lock_owner = owner;
  q.flags = flags;
  q.pending = std::move(deltas);
  DRFS_ASSIGN_OR_RETURN(Reply r, CallSync(q));
  return std::move(r.pending);
}

Result<std::vector<int32_t>> BrickClient::Entrylk(const Gfid& parent, const std::string& name,
                                                  uint64_t owner, uint32_t flags,
                                                  std::vector<int32_t> deltas,
                                                  const Gfid& new_parent,
                                                  const std::string& new_name) {
  Request q;
  q.op = Op::kEntrylk;
  q.parent = parent;
  q.name = name;
  q.new_parent = new_parent;
  q.new_name = new_name;
  q.lock_owner = owner;
  q.flags = flags;
  q.pending = std::move(deltas);
  DRFS_ASSIGN_OR_RETURN(Reply r, CallSync(q));
  return std::move(r.pending);
}

Result<std::vector<Gfid>> BrickClient::HealIndexAll(uint64_t page) {
  std::vector<Gfid> all;
  Request q;
  q.op = Op::kHealIndex;
  q.length = page;
  for (;;) {
    DRFS_ASSIGN_OR_RETURN(Reply r, CallSync(q));
    for (const auto& e : r.entries) {
      q.offset = e.cookie;
      all.push_back(e.gfid);
    }
    if (r.eof || r.entries.empty()) break;
  }
  return all;
}

}  // namespace drfs::brick
