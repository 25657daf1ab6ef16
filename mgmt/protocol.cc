#include "mgmt/protocol.h"

namespace drfs::mgmt {

std::string EncodeReply(const Result<Value>& r) {
  Value v;
  v["code"] = static_cast<int64_t>(r.status().code());
  v["message"] = r.status().message();
  if (r.ok()) v["result"] = *r;
  return EncodeValue(v);
}

Result<Value> DecodeReply(const std::string& payload) {
  DRFS_ASSIGN_OR_RETURN(Value v, DecodeValue(payload));
  const int64_t code = v.GetInt("code", -1);
  if (code < 0 || code > static_cast<int64_t>(Code::kDataLoss)) {
    return Status(Code::kInternal, "daemon sent a reply without a valid status code");
  }
  if (code != 0) return Status(static_cast<Code>(code), v.GetString("message"));
  const Value* result = v.Find("result");
  return result ? *result : Value();
}

Result<std::unique_ptr<MgmtClient>> MgmtClient::Connect(const std::string& host, uint16_t port,
                                                        const TlsConfig& tls,
                                                        std::chrono::milliseconds timeout,
                                                        std::chrono::milliseconds request_timeout) {
  ClientOptions o;
  o.connect_timeout = timeout;
  o.request_timeout = request_timeout;
  o.reconnect_backoff_max = std::chrono::milliseconds(500);
  auto rpc = RpcClient::Connect(host, port, tls, o);
  if (!rpc.ok()) {
    return Status(rpc.status().code(), "cannot reach drfsd at " + host + ":" +
                                           std::to_string(port) + ": " + rpc.status().message() +
                                           "; is 'drfs daemon' running there?");
  }
  return std::unique_ptr<MgmtClient>(new MgmtClient(std::move(*rpc)));
}

Result<Value> MgmtClient::Call(MgmtOp op, const Value& args) {
  auto reply = rpc_->Call(static_cast<uint16_t>(op), EncodeValue(args)).get();
  if (!reply.ok()) {
    return Status(reply.status().code(),
                  "drfsd at " + rpc_->target() + ": " + reply.status().message());
  }
  return DecodeReply(reply->payload);
}

Status ParseHostPort(const std::string& s, uint16_t default_port, std::string* host,
                     uint16_t* port) {
  if (s.empty()) return InvalidArgument("empty address");
  std::string h = s;
  std::string p;
  if (s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string::npos) return InvalidArgument("'" + s + "': missing ']'");
    h = s.substr(1, close - 1);
    if (close + 1 < s.size()) {
      if (s[close + 1] != ':') return InvalidArgument("'" + s + "': expected ':' after ']'");
      p = s.substr(close + 2);
    }
  } else if (auto colon = s.rfind(':'); colon != std::string::npos && s.find(':') == colon) {
    h = s.substr(0, colon);
    p = s.substr(colon + 1);
  }
  if (h.empty()) return InvalidArgument("'" + s + "': no host");
  *host = h;
  *port = default_port;
  if (!p.empty()) {
    char* end = nullptr;
    unsigned long n = std::strtoul(p.c_str(), &end, 10);
    if (*end != '\0' || n == 0 || n > 65535) {
      return InvalidArgument("'" + s + "': port must be 1-65535");
    }
    *port = static_cast<uint16_t>(n);
  }
  return Status::Ok();
}

}  // namespace drfs::mgmt
