#include "common/gfid.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdlib>

namespace drfs {

Gfid Gfid::Random() {
  Gfid g;
  size_t got = 0;
  while (got < g.bytes.size()) {
    ssize_t n = getrandom(g.bytes.data() + got, g.bytes.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::abort();  // no entropy source: identities would collide; crash loudly
    }
    got += static_cast<size_t>(n);
  }
  g.bytes[6] = static_cast<uint8_t>((g.bytes[6] & 0x0f) | 0x40);
  g.bytes[8] = static_cast<uint8_t>((g.bytes[8] & 0x3f) | 0x80);
  return g;
}

std::string Gfid::ToString() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(kHex[bytes[i] >> 4]);
    s.push_back(kHex[bytes[i] & 0xf]);
  }
  return s;
}

std::optional<Gfid> Gfid::Parse(std::string_view s) {
  if (s.size() != 36) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Gfid g;
  size_t j = 0;
  for (size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int hi = nibble(s[i]), lo = nibble(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    g.bytes[j++] = static_cast<uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return g;
}

}  // namespace drfs
