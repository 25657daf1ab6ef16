// libFuzzer target for the geo-replication message decoder (georep/format.h): any Kafka message
// value must decode or be refused cleanly (DataLoss or InvalidArgument), never crash, read out
// of bounds or allocate for a size it merely claims; what decodes must re-encode to itself.
//
// Build and run (clang):
//   CXX=clang++ CC=clang cmake -S . -B build/fuzz -G Ninja -DDRFS_FUZZ=ON -DDRFS_BUILD_BENCH=OFF \
//     -DDRFS_SANITIZE=address -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link
//   cmake --build build/fuzz --target georep_format_fuzz
//   build/fuzz/tests/georep_format_fuzz -max_total_time=60 -max_len=65536 CORPUS_DIR
// fuzzer-no-link instruments the libraries too: without it only this file's branches guide the
// fuzzer, and it never learns its way into the decoder (coverage 128 edges against 947).
// Seed CORPUS_DIR with a mode byte 0 followed by EncodeBatch/EncodeAck output.
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/coding.h"
#include "common/crc32c.h"
#include "georep/format.h"

namespace {

constexpr size_t kHeader = 20;

// A fuzzer cannot forge CRC32Cs, so without help it never gets past the header. The first input
// byte picks a mode:
//   0: the rest is a message value as is;
//   1: the rest is a message whose magic, version, stored length and CRC are repaired (kind,
//      compression, flags and body length stay the fuzzer's);
//   2: the rest is an uncompressed body, wrapped in a valid header;
//   3: the rest is a stored zstd body, wrapped in a valid header claiming the frame's size.
// Bit 2 picks the kind for modes 2 and 3 (batch or ack).
std::string Wrap(uint8_t kind, uint8_t compression, uint32_t body_len, std::string_view stored) {
  std::string m = "DRGR";
  drfs::PutU8(&m, drfs::georep::kFormatVersion);
  drfs::PutU8(&m, kind);
  drfs::PutU8(&m, compression);
  drfs::PutU8(&m, 0);
  drfs::PutFixed32(&m, static_cast<uint32_t>(stored.size()));
  drfs::PutFixed32(&m, body_len);
  drfs::PutFixed32(&m, 0);
  m.append(stored);
  uint32_t crc =
      drfs::crc32c::Extend(drfs::crc32c::Value(m.data(), 16), m.data() + kHeader, stored.size());
  drfs::EncodeFixed32(m.data() + 16, drfs::crc32c::Mask(crc));
  return m;
}

std::string Prepare(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const uint8_t mode = data[0] & 3;
  const uint8_t kind = (data[0] & 4) ? 2 : 1;
  switch (mode) {
    case 1:
      if (in.size() < kHeader) return std::string(in);
      return Wrap(static_cast<uint8_t>(in[5]), static_cast<uint8_t>(in[6]),
                  drfs::DecodeFixed32(in.data() + 12), in.substr(kHeader));
    case 2:
      return Wrap(kind, 0, static_cast<uint32_t>(in.size()), in);
    case 3: {
      unsigned long long n = ZSTD_getFrameContentSize(in.data(), in.size());
      return Wrap(kind, 1, static_cast<uint32_t>(n), in);
    }
    default:
      return std::string(in);
  }
}

bool Clean(const drfs::Status& s) {
  return s.ok() || s.code() == drfs::Code::kDataLoss || s.code() == drfs::Code::kInvalidArgument;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drfs::georep;
  if (size < 1) return 0;
  const std::string value = Prepare(data, size);

  Batch b;
  drfs::Status s = DecodeBatch(value, &b);
  if (!Clean(s)) __builtin_trap();
  const size_t body = UncompressedSize(value);
  if (s.ok()) {
    if (!ValidateBatch(b).ok() || body == 0 || body > kMaxMessageBytes) __builtin_trap();
    // What decodes is a batch the encoder would write: it survives a round trip unchanged.
    for (int level : {0, 1}) {
      std::string again = EncodeBatch(b, level);
      Batch b2;
      if (!DecodeBatch(again, &b2).ok() || !(b2 == b)) __builtin_trap();
      if (UncompressedSize(again) != body) __builtin_trap();
    }
  }

  Ack a;
  s = DecodeAck(value, &a);
  if (!Clean(s)) __builtin_trap();
  if (s.ok()) {
    Ack a2;
    if (!DecodeAck(EncodeAck(a), &a2).ok() || !(a2 == a)) __builtin_trap();
  }
  return 0;
}
