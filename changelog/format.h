// The on-disk journal format.
//
// A journal is a directory of segment files named by the LSN of their first record,
// "<first lsn, 20 digits>.clog". Each segment is:
//
//   header (64 bytes): magic "DRFSCLOG" | version u32 | header size u32 | brick id [16] |
//                      epoch u64 | first lsn u64 | created ns u64 | reserved u32 | crc u32
//   records:           masked crc32c u32 | payload length u32 | payload
//
// The record CRC covers the length field and the payload. The payload starts with the LSN
// (see record.h), so records are self-describing and LSNs run +1 with no gaps from a segment's
// first LSN on. All integers are little-endian.
//
// SegmentScanner walks one segment and classifies what it finds, so the writer's recovery, the
// reader and the fuzz target share exactly one parser.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "changelog/record.h"
#include "common/file.h"
#include "common/gfid.h"
#include "common/status.h"

namespace drfs::changelog {

inline constexpr char kSegmentMagic[8] = {'D', 'R', 'F', 'S', 'C', 'L', 'O', 'G'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kSegmentHeaderSize = 64;
inline constexpr size_t kFrameHeaderSize = 8;
inline constexpr size_t kMaxPayloadSize = 64 * 1024;
inline constexpr char kSegmentSuffix[] = ".clog";

struct SegmentHeader {
  uint32_t version = kFormatVersion;
  Gfid brick_id;
  uint64_t epoch = 0;
  Lsn first_lsn = 0;
  uint64_t created_ns = 0;
};

std::string EncodeSegmentHeader(const SegmentHeader& h);
// Parses a header; `why` says what is wrong when it returns false.
bool DecodeSegmentHeader(std::string_view in, SegmentHeader* h, std::string* why);

// Appends the framed record to `out`.
void AppendFrame(const Record& r, std::string* out);

// "00000000000000000042.clog"
std::string SegmentFileName(Lsn first_lsn);
// The first LSN named by a segment file name, or nullopt if it is not one.
std::optional<Lsn> ParseSegmentFileName(std::string_view name);

// Reads records one by one from a segment file. The file may still be growing: at the current
// end, Next() says so, and a later call reads whatever has been appended since.
class SegmentScanner {
 public:
  enum class Outcome {
    kRecord,      // *rec holds the next record
    kEnd,         // no bytes after the last record
    kIncomplete,  // a frame starts but the file ends inside it (a torn tail, or still growing)
    kCorrupt,     // bytes that are not a valid record: *why says what
  };

  // `file` must outlive the scanner.
  explicit SegmentScanner(const RandomAccessFile* file) : file_(file) {}

  // Reads and checks the header; positions at the first record. DataLoss says what is wrong
  // with it; the caller names the segment.
  Status ReadHeader(SegmentHeader* h);
  Outcome Next(Record* rec, std::string* why);

  // Read-ahead and a live writer: bytes read past the writer's published LSN may belong to a
  // batch it later cuts back (a failed write) and writes anew under the same LSNs. A tailing
  // reader therefore tags each read with the published LSN it was made under, and discards the
  // read-ahead before decoding a record above that tag; the record is then read from the file
  // again. Every read starts at offset(), so the tag covers all buffered bytes.
  void set_read_tag(uint64_t tag) { tag_ = tag; }
  uint64_t read_tag() const { return buf_tag_; }
  void DiscardReadAhead() { buf_.resize(std::min<uint64_t>(buf_.size(), offset_ - buf_off_)); }

  // Offset of the next frame (the end of the last record returned).
  uint64_t offset() const { return offset_; }
  // Whether any valid record with an LSN above `last_good` starts after offset(). A bad record
  // with nothing valid behind it is a torn tail (a crash or power loss during the last write:
  // the tail may hold zeros or stale bytes); one with valid records behind it is corruption.
  Result<bool> ValidRecordAfter(Lsn last_good) const;
  const RandomAccessFile* file() const { return file_; }

 private:
  // Ensures buf_ holds at least n bytes starting at offset_, if the file has them.
  Status Fill(size_t n);

  const RandomAccessFile* file_;
  uint64_t offset_ = 0;
  std::string buf_;        // file bytes [buf_off_, buf_off_ + buf_.size())
  uint64_t buf_off_ = 0;
  uint64_t tag_ = ~uint64_t{0};      // tag for the next read
  uint64_t buf_tag_ = ~uint64_t{0};  // tag of the bytes in buf_
};

}  // namespace drfs::changelog
