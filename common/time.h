// Clocks and timestamp formatting.
#pragma once

#include <cstdint>
#include <string>

namespace drfs {

// Wall clock, nanoseconds since the Unix epoch (CLOCK_REALTIME). Journal timestamps use this.
uint64_t NowNs();
// Monotonic clock in nanoseconds, for timeouts and measurements.
uint64_t MonotonicNs();

// "2026-11-21T12:00:00.123456789Z" (UTC, nanoseconds).
std::string FormatTimeNs(uint64_t ns);
// "2026-11-21T12:00:00.123Z" (UTC, milliseconds).
std::string FormatTimeMillis(uint64_t ns);

}  // namespace drfs
