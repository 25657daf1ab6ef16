// Human and JSON renderings of journal records, for `drfs changelog dump`.
//
// Line format, one record per line, fields in a fixed order and only those the op uses:
//   42 2026-11-21T12:00:00.123456789Z e1 RENAME gfid=... parent=... name="a" new_parent=...
// JSON format: one object per line (JSON Lines), with the same field names; see docs/cli.md.
#pragma once

#include <string>

#include "changelog/reader.h"

namespace drfs::changelog {

std::string FormatEntryLine(const Entry& e);
std::string FormatEntryJson(const Entry& e);

}  // namespace drfs::changelog
