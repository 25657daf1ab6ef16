// Named failure probes: test hooks at the points where a crash or an I/O error matters most
// (append, sync, roll, truncate, apply). They compile to nothing unless DRFS_FAILPOINTS_ENABLED
// (on by default except in Release builds), so production binaries carry no test code.
//
// A probe is armed in-process with failpoint::Set(), or for a whole process through the
// environment, which is how end-to-end tests kill a daemon at an exact point:
//   DRFS_FAILPOINTS="changelog.flush.after_write=crash;changelog.roll.after_create=error@2"
// Actions:
//   crash      _exit the process at once with status 137, as kill -9 would (no destructors,
//              no flushing of user-space buffers)
//   error      DRFS_FAILPOINT() evaluates to true; the caller fails as if the I/O had failed
//   delay(MS)  sleep MS milliseconds, then continue
//   off        disarm
// "@N" fires only from the Nth hit on (1-based); without it, every hit fires.
#pragma once

#include <string>
#include <string_view>

namespace drfs::failpoint {

// Returns true when an armed "error" action fires. Crash and delay act here.
bool Hit(std::string_view name);
// Arms `name` with an action spec ("crash", "error@3", "delay(50)", "off").
// Returns false when the spec does not parse.
bool Set(std::string_view name, std::string_view spec);
// Disarms every probe (tests call it in TearDown).
void ClearAll();
// How many times `name` was hit since it was armed.
int HitCount(std::string_view name);
bool CompiledIn();

// What a probe is when probes are compiled out: a call, so it is fine as a statement.
inline constexpr bool Off() { return false; }

}  // namespace drfs::failpoint

#if defined(DRFS_FAILPOINTS_ENABLED)
#define DRFS_FAILPOINT(name) (::drfs::failpoint::Hit(name))
#else
// The name stays referenced (unevaluated), so helpers that compute it are not "unused".
#define DRFS_FAILPOINT(name) (static_cast<void>(sizeof(name)), ::drfs::failpoint::Off())
#endif
