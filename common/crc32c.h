// CRC32C (Castagnoli), the checksum on every journal record and wire frame.
//
// Uses the SSE4.2 crc32 instruction when the CPU has it, a table otherwise; both give the same
// value. Mask()/Unmask() follow LevelDB: a CRC stored next to data it covers is masked so that
// CRCs of strings that themselves contain CRCs stay well distributed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace drfs::crc32c {

// Extends `crc` (the CRC32C of some prefix A) to the CRC32C of A followed by data[0, n).
uint32_t Extend(uint32_t crc, const void* data, size_t n);

inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }
inline uint32_t Value(std::string_view s) { return Extend(0, s.data(), s.size()); }

constexpr uint32_t kMaskDelta = 0xa282ead8u;
inline uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }
inline uint32_t Unmask(uint32_t masked) {
  uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

// True when the hardware path is in use (for benchmarks and logs).
bool HardwareAccelerated();

namespace detail {
// The table-driven path, exposed so tests can check it against the hardware one.
uint32_t ExtendPortable(uint32_t crc, const void* data, size_t n);
}  // namespace detail

}  // namespace drfs::crc32c
