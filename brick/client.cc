#include "brick/client.h"

#include <cerrno>

namespace drfs::brick {

using namespace brick_proto;

Result<std::unique_ptr<BrickClient>> BrickClient::Connect(const std::string& host, uint16_t port,
                                                          const TlsConfig& tls,
                                                          const ClientOptions& options) {
  DRFS_ASSIGN_OR_RETURN(auto rpc, RpcClient::Connect(host, port, tls, options));
  std::unique_ptr<BrickClient> c(new BrickClient(std::move(rpc)));
  Request hello;
  hello.op = Op::kHello;
  hello.name = "drfs-client";
  hello.flags = kProtocolVersion;
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
