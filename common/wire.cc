#include "common/wire.h"

#include <algorithm>
#include <cstdio>

#include "common/coding.h"
#include "common/crc32c.h"

namespace drfs {
namespace {

constexpr char kMagic[4] = {'D', 'R', 'F', 'S'};
constexpr std::string_view kMagicView(kMagic, 4);

void PutFixed16(std::string* dst, uint16_t v) {
  dst->push_back(static_cast<char>(v & 0xff));
  dst->push_back(static_cast<char>(v >> 8));
}

uint16_t DecodeFixed16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) |
                               (static_cast<uint16_t>(static_cast<uint8_t>(p[1])) << 8));
}

std::string Hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

// Renders up to 4 bytes that should have been the magic, printable or as \xNN.
std::string ShowBytes(std::string_view b) {
  std::string out;
  for (char c : b.substr(0, 4)) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && c != '"' && c != '\\') {
      out.push_back(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    }
  }
  return out;
}

}  // namespace

void AppendFrame(const Frame& frame, std::string* dst) {
  const size_t start = dst->size();
  dst->append(kMagic, 4);
  PutFixed16(dst, kWireVersion);
  PutU8(dst, frame.kind);
  PutU8(dst, 0);  // flags
  PutFixed16(dst, frame.op);
  PutFixed16(dst, 0);  // reserved
  PutFixed64(dst, frame.id);
  PutFixed32(dst, static_cast<uint32_t>(frame.payload.size()));
  PutFixed32(dst, crc32c::Mask(crc32c::Value(frame.payload)));
  PutFixed32(dst, crc32c::Mask(crc32c::Value(dst->data() + start, kFrameHeaderSize - 4)));
  dst->append(frame.payload);
}

std::string EncodeFrame(const Frame& frame) {
  std::string out;
  out.reserve(kFrameHeaderSize + frame.payload.size());
  AppendFrame(frame, &out);
  return out;
}

Status FrameDecoder::BadMagic() const {
  return InvalidArgument("bad frame magic \"" + ShowBytes(header_) +
                         "\" (expected \"DRFS\"): the peer is not speaking the drfs protocol");
}

Status FrameDecoder::Fail(Status s) {
  error_ = s;
  return s;
}

Status FrameDecoder::ParseHeader() {
  const char* h = header_.data();
  if (std::string_view(h, 4) != kMagicView) return BadMagic();
  uint16_t version = DecodeFixed16(h + 4);
  if (version != kWireVersion) {
    return InvalidArgument("unsupported frame version " + std::to_string(version) +
                           " (this build speaks version " + std::to_string(kWireVersion) +
                           "); upgrade the older side");
  }
  uint32_t want_hcrc = crc32c::Unmask(DecodeFixed32(h + 28));
  uint32_t got_hcrc = crc32c::Value(h, kFrameHeaderSize - 4);
  if (want_hcrc != got_hcrc) {
    return DataLoss("frame header checksum mismatch (stored " + Hex(want_hcrc) + ", computed " +
                    Hex(got_hcrc) + "): the stream is corrupt");
  }
  uint8_t kind = static_cast<uint8_t>(h[6]);
  uint8_t flags = static_cast<uint8_t>(h[7]);
  uint16_t reserved = DecodeFixed16(h + 10);
  if (kind != kFrameRequest && kind != kFrameReply) {
    return InvalidArgument("unknown frame kind " + std::to_string(kind) +
                           " (expected 1 request or 2 reply)");
  }
  if (flags != 0 || reserved != 0) {
    return InvalidArgument("unsupported frame flags " + std::to_string(flags) + "/reserved " +
                           std::to_string(reserved) + " (version 1 defines none)");
  }
  uint32_t len = DecodeFixed32(h + 20);
  if (len > max_payload_) {
    return InvalidArgument("oversized frame: payload length " + std::to_string(len) + " > max " +
                           std::to_string(max_payload_) + " bytes");
  }
  cur_.kind = kind;
  cur_.op = DecodeFixed16(h + 8);
  cur_.id = DecodeFixed64(h + 12);
  cur_.payload.clear();
  want_ = len;
  payload_crc_ = crc32c::Unmask(DecodeFixed32(h + 24));
  in_payload_ = true;
  return Status::Ok();
}

Status FrameDecoder::Feed(std::string_view data, std::vector<Frame>* out) {
  if (!error_.ok()) return error_;
  for (;;) {
    if (!in_payload_) {
      size_t take = std::min(kFrameHeaderSize - header_.size(), data.size());
      header_.append(data.data(), take);
      data.remove_prefix(take);
      if (header_.size() < kFrameHeaderSize) {
        // Garbage is refused as soon as the magic can be judged, not after 32 bytes.
        if (header_.size() >= 4 && std::string_view(header_).substr(0, 4) != kMagicView) {
          return Fail(BadMagic());
        }
        return Status::Ok();
      }
      if (Status s = ParseHeader(); !s.ok()) return Fail(s);
    }
    // Grow with what arrives instead of reserving `want_` up front: a header alone must not
    // make us allocate the maximum payload.
    size_t take = std::min(want_ - cur_.payload.size(), data.size());
    cur_.payload.append(data.data(), take);
    data.remove_prefix(take);
    if (cur_.payload.size() < want_) return Status::Ok();
    uint32_t got = crc32c::Value(cur_.payload);
    if (got != payload_crc_) {
      return Fail(DataLoss("frame payload checksum mismatch for request id " +
                           std::to_string(cur_.id) + " op " + std::to_string(cur_.op) + " (" +
                           std::to_string(want_) + " bytes, stored " + Hex(payload_crc_) +
                           ", computed " + Hex(got) + "): the stream is corrupt"));
    }
    out->push_back(std::move(cur_));
    cur_ = Frame{};
    header_.clear();
    in_payload_ = false;
    want_ = 0;
    if (data.empty()) return Status::Ok();
  }
}

}  // namespace drfs
