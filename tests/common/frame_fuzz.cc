// libFuzzer target for the RPC frame decoder: any bytes from the network, in any split, must
// give frames or a clean error, never a crash, an out-of-bounds read or an allocation beyond
// the configured maximum. Build and run: see docs/testing.md.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/coding.h"
#include "common/crc32c.h"
#include "common/wire.h"

namespace {

// A fuzzer cannot forge CRC32Cs, so without help it never gets past the header checksum. In
// repair mode the harness walks the input as a sequence of frames and fixes their magic and
// checksums, leaving version, kind, flags, length and payload to the fuzzer.
void RepairFrames(std::string* s, bool fix_payload_crc) {
  size_t p = 0;
  while (s->size() - p >= drfs::kFrameHeaderSize) {
    char* h = s->data() + p;
    h[0] = 'D';
    h[1] = 'R';
    h[2] = 'F';
    h[3] = 'S';
    uint32_t len = drfs::DecodeFixed32(h + 20) % 4096;  // keep frames small enough to chain
    drfs::EncodeFixed32(h + 20, len);
    size_t avail = s->size() - p - drfs::kFrameHeaderSize;
    if (fix_payload_crc && len <= avail) {
      drfs::EncodeFixed32(h + 24, drfs::crc32c::Mask(drfs::crc32c::Value(h + 32, len)));
    }
    drfs::EncodeFixed32(h + 28, drfs::crc32c::Mask(drfs::crc32c::Value(h, 28)));
    if (len > avail) break;
    p += drfs::kFrameHeaderSize + len;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drfs;
  if (size < 3) return 0;
  // Byte 0: read size the bytes arrive in (1..256). Byte 1: payload limit. Byte 2: mode.
  const size_t chunk = 1 + data[0];
  const size_t max_payload = size_t{data[1]} * 64;
  const uint8_t mode = data[2];
  std::string in(reinterpret_cast<const char*>(data) + 3, size - 3);
  if (mode & 1) RepairFrames(&in, (mode & 2) != 0);

  FrameDecoder split(max_payload);
  FrameDecoder whole(max_payload);
  std::vector<Frame> a, b;
  Status sa;
  for (size_t pos = 0; pos < in.size() && sa.ok(); pos += chunk) {
    sa = split.Feed(std::string_view(in).substr(pos, chunk), &a);
  }
  Status sb = whole.Feed(in, &b);
  // How the bytes are split must not change the outcome.
  if (sa.ok() != sb.ok() || sa.message() != sb.message() || a != b) __builtin_trap();
  for (const Frame& f : a) {
    if (f.payload.size() > max_payload) __builtin_trap();
    // Whatever decoded re-encodes to a frame that decodes to itself.
    std::vector<Frame> again;
    FrameDecoder d(max_payload);
    if (!d.Feed(EncodeFrame(f), &again).ok() || again.size() != 1 || again[0] != f) {
      __builtin_trap();
    }
  }
  return 0;
}
