#include "common/time.h"

#include <time.h>

#include <cstdio>

namespace drfs {
namespace {

uint64_t ClockNs(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

std::string Format(uint64_t ns, int digits) {
  time_t secs = static_cast<time_t>(ns / 1000000000ull);
  uint64_t frac = ns % 1000000000ull;
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  if (digits == 9) {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lluZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<unsigned long long>(frac));
  } else {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03lluZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<unsigned long long>(frac / 1000000));
  }
  return buf;
}

}  // namespace

uint64_t NowNs() { return ClockNs(CLOCK_REALTIME); }
uint64_t MonotonicNs() { return ClockNs(CLOCK_MONOTONIC); }
std::string FormatTimeNs(uint64_t ns) { return Format(ns, 9); }
std::string FormatTimeMillis(uint64_t ns) { return Format(ns, 3); }

}  // namespace drfs
