// Gfid: the 128-bit identity of a file or directory, the same on every replica and on the
// secondary site. The root directory has the fixed gfid 00000000-0000-0000-0000-000000000001,
// as in GlusterFS. The all-zero gfid means "none" (for example: a rename that replaced nothing).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace drfs {

struct Gfid {
  std::array<uint8_t, 16> bytes{};

  static Gfid Null() { return Gfid{}; }
  static Gfid Root() {
    Gfid g;
    g.bytes[15] = 1;
    return g;
  }
  // A random (version 4) gfid from the OS's CSPRNG.
  static Gfid Random();
  // Parses the canonical 8-4-4-4-12 hex form.
  static std::optional<Gfid> Parse(std::string_view s);

  bool is_null() const { return *this == Gfid{}; }
  std::string ToString() const;

  friend bool operator==(const Gfid&, const Gfid&) = default;
  friend auto operator<=>(const Gfid&, const Gfid&) = default;
};

}  // namespace drfs
