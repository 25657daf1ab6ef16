// BrickClient: the C++ client of the brick protocol, used by the volume layer and the applier.
//
// Call() is asynchronous: the callback (or future) gets a Result whose error is a transport
// failure (Unavailable when the connection was lost: retry; DeadlineExceeded), while a file
// system error comes back in Reply::err. The typed helpers below are synchronous conveniences
// that fold both into one Status whose sys_errno() is the brick's errno.
//
// The connection reconnects by itself on the next call after a failure (common/rpc.h).
// Thread-safe.
#pragma once

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "common/brick_protocol.h"
#include "common/rpc.h"

namespace drfs::brick {

// The applier secret kept in `path` (the brick's --applier-secret-file, which the applier
// reads too): its content without surrounding whitespace. FailedPrecondition, naming the file
// and the fix, when it is missing, empty, not a regular file, or accessible to group or others
// (the secret is what keeps everyone else off a secondary's bricks).
Result<std::string> ReadApplierSecretFile(const std::string& path);

class BrickClient {
 public:
  using Callback = std::function<void(Result<brick_proto::Reply>)>;

  // Connects and says hello; the brick's id is then brick_id(). A non-empty `applier_secret`
  // goes in the hello of every connection (reconnects included), which makes this client the
  // applier of a read-only brick started with that secret; a brick with another secret
  // refuses it (PermissionDenied, errno EACCES), and one without a secret ignores it.
  static Result<std::unique_ptr<BrickClient>> Connect(const std::string& host, uint16_t port,
                                                      const TlsConfig& tls = {},
                                                      const ClientOptions& options = {},
                                                      const std::string& applier_secret = "");

  void Call(const brick_proto::Request& request, Callback done);
  std::future<Result<brick_proto::Reply>> Call(const brick_proto::Request& request);
  // Waits for the reply; a failed reply (err != 0) becomes an error Status naming the op.
  Result<brick_proto::Reply> CallSync(const brick_proto::Request& request);

  // Typed helpers (synchronous).
  Result<brick_proto::Iatt> Lookup(const Gfid& parent, const std::string& name);
  Result<brick_proto::Iatt> Getattr(const Gfid& gfid);
  Result<brick_proto::Iatt> Mkdir(const Gfid& parent, const std::string& name, const Gfid& gfid,
                                  uint32_t mode, uint32_t uid = 0, uint32_t gid = 0);
  Result<brick_proto::Iatt> Create(const Gfid& parent, const std::string& name,
                                   const Gfid& gfid, uint32_t mode, bool exclusive = true,
                                   uint32_t uid = 0, uint32_t gid = 0);
  Result<uint64_t> Write(const Gfid& gfid, uint64_t offset, std::string data);
  Result<std::string> Read(const Gfid& gfid, uint64_t offset, uint64_t length);
  Status Unlink(const Gfid& parent, const std::string& name);
  Status Rename(const Gfid& parent, const std::string& name, const Gfid& new_parent,
                const std::string& new_name, uint32_t flags = 0);
  Result<std::vector<brick_proto::DirEntry>> ReaddirAll(const Gfid& dir, bool plus = false);

  // Replication support. Each returns the object's pending markers after the op (empty: all
  // zero). A blocking lock waits here until granted; use Call() to wait without a thread.
  Result<std::vector<int32_t>> Xattrop(const Gfid& gfid, std::vector<int32_t> deltas);
  // flags: brick_proto::kLock* bits; deltas: the pre-op (lock) or post-op (unlock).
  Result<std::vector<int32_t>> Inodelk(const Gfid& gfid, uint64_t owner, uint32_t flags,
                                       std::vector<int32_t> deltas = {});
  // name "" locks the whole directory; a non-null new_parent adds (new_parent, new_name).
  Result<std::vector<int32_t>> Entrylk(const Gfid& parent, const std::string& name, uint64_t owner,
                                       uint32_t flags, std::vector<int32_t> deltas = {},
                                       const Gfid& new_parent = Gfid(),
                                       const std::string& new_name = "");
  // Every gfid in the brick's heal index, `page` entries per call.
  Result<std::vector<Gfid>> HealIndexAll(uint64_t page = 512);

  const std::string& brick_id() const { return brick_id_; }
  const std::string& target() const { return rpc_->target(); }
  // With ClientOptions::reconnect = false: the connection is gone for good (locks with it).
  bool lost() const { return rpc_->lost(); }

 private:
  explicit BrickClient(std::unique_ptr<RpcClient> rpc) : rpc_(std::move(rpc)) {}
  std::unique_ptr<RpcClient> rpc_;
  std::string brick_id_;
};

}  // namespace drfs::brick
