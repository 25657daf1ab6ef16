// libFuzzer target for the segment reader: any bytes, as a segment file, must give records, an
// end, a torn tail or a clean corruption report, never a crash or an out-of-bounds read.
// Build and run: see docs/testing.md.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "changelog/format.h"

namespace {

class MemoryFile final : public drfs::RandomAccessFile {
 public:
  explicit MemoryFile(std::string data) : data_(std::move(data)) {}
  drfs::Status Read(uint64_t offset, size_t n, char* scratch,
                    std::string_view* out) const override {
    if (offset >= data_.size()) {
      *out = {};
      return {};
    }
    size_t len = std::min(n, data_.size() - static_cast<size_t>(offset));
    std::copy_n(data_.data() + offset, len, scratch);
    *out = std::string_view(scratch, len);
    return {};
  }
  drfs::Result<uint64_t> Size() const override { return data_.size(); }
  const std::string& path() const override { return path_; }

 private:
  std::string data_;
  std::string path_ = "fuzz.clog";
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drfs::changelog;
  MemoryFile file(std::string(reinterpret_cast<const char*>(data), size));
  SegmentScanner scan(&file);
  SegmentHeader h;
  // Also fuzz past a valid header: the first byte chooses whether to prepend one.
  if (!scan.ReadHeader(&h).ok()) {
    SegmentHeader good;
    good.first_lsn = 1;
    MemoryFile with_header(EncodeSegmentHeader(good) +
                           std::string(reinterpret_cast<const char*>(data), size));
    SegmentScanner s2(&with_header);
    if (!s2.ReadHeader(&h).ok()) __builtin_trap();
    Record r;
    std::string why;
    Lsn last = 0;
    while (s2.Next(&r, &why) == SegmentScanner::Outcome::kRecord) last = r.lsn;
    (void)s2.ValidRecordAfter(last);
    return 0;
  }
  Record r;
  std::string why;
  Lsn last = 0;
  while (scan.Next(&r, &why) == SegmentScanner::Outcome::kRecord) last = r.lsn;
  (void)scan.ValidRecordAfter(last);
  return 0;
}
