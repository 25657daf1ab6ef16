// libFuzzer target for DecodeValue, the parser of every management message drfsd receives:
// any bytes must decode or fail cleanly, never crash, read out of bounds, recurse without limit
// or allocate beyond the input's size. What decodes must survive an encode/decode round trip
// unchanged (not byte for byte: map keys come back sorted).
// Build and run: see docs/testing.md.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/value.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto v = drfs::DecodeValue(in);
  if (v.ok()) {
    auto again = drfs::DecodeValue(drfs::EncodeValue(*v));
    if (!again.ok() || !(*again == *v)) std::abort();
    (void)v->ToJson();
  }
  return 0;
}
