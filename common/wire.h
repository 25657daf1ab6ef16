// The RPC frame codec: the only code in drfs that parses bytes received from the network.
//
// Every message on an RPC connection is one frame: a 32-byte little-endian header, then an
// opaque payload whose meaning belongs to the service (the brick's ops, drfsd's requests).
//
//   offset size  field
//        0    4  magic "DRFS"
//        4    2  version (1)
//        6    1  kind: 1 request, 2 reply
//        7    1  flags (none defined in version 1; must be 0)
//        8    2  op (service-defined; for a reply, whatever the service puts there)
//       10    2  reserved (must be 0)
//       12    8  request id (chosen by the client; a reply carries its request's id)
//       20    4  payload length
//       24    4  masked CRC32C of the payload
//       28    4  masked CRC32C of header bytes [0, 28)
//
// FrameDecoder is incremental: feed it whatever arrived, in any split, and it hands back every
// frame completed so far. It refuses a bad magic as soon as 4 bytes are in and checks the rest
// of the header as soon as its 32 bytes are in, so a length above the configured maximum is
// refused before a single payload byte is buffered; it never holds more than one header plus
// one payload. An error is final for the decoder (the stream has lost its framing): the
// connection must be closed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace drfs {

inline constexpr size_t kFrameHeaderSize = 32;
inline constexpr uint16_t kWireVersion = 1;
inline constexpr uint8_t kFrameRequest = 1;
inline constexpr uint8_t kFrameReply = 2;
inline constexpr size_t kDefaultMaxPayload = size_t{8} << 20;  // 8 MiB

struct Frame {
  uint8_t kind = kFrameRequest;
  uint16_t op = 0;
  uint64_t id = 0;
  std::string payload;

  bool operator==(const Frame&) const = default;
};

// Appends the encoded frame (header + payload) to *dst. The payload must fit in a u32; callers
// keep it under the peer's max payload, or the peer closes the connection.
void AppendFrame(const Frame& frame, std::string* dst);
std::string EncodeFrame(const Frame& frame);

class FrameDecoder {
 public:
  explicit FrameDecoder(size_t max_payload = kDefaultMaxPayload) : max_payload_(max_payload) {}

  // Consumes all of `data`, appending each completed frame to *out. Returns InvalidArgument for
  // a header that is not a drfs frame of a version we speak (bad magic, unsupported version,
  // unknown kind or flags, length above the maximum) and DataLoss for a checksum mismatch
  // (header or payload). After an error every later call returns the same error.
  Status Feed(std::string_view data, std::vector<Frame>* out);

  // True when some bytes of an unfinished frame are buffered (a close now truncates a frame).
  bool mid_frame() const { return !header_.empty(); }
  // Bytes of the unfinished frame received so far, and the size it will have once complete
  // (0 while the header itself is incomplete).
  size_t partial_bytes() const { return header_.size() + (in_payload_ ? cur_.payload.size() : 0); }
  size_t expected_bytes() const { return in_payload_ ? kFrameHeaderSize + want_ : 0; }
  size_t max_payload() const { return max_payload_; }

 private:
  Status ParseHeader();
  Status BadMagic() const;
  Status Fail(Status s);

  const size_t max_payload_;
  std::string header_;  // the header bytes seen so far, < kFrameHeaderSize unless in_payload_
  bool in_payload_ = false;
  Frame cur_;
  size_t want_ = 0;  // payload length of cur_
  uint32_t payload_crc_ = 0;
  Status error_;
};

}  // namespace drfs
