#include "changelog/format.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "common/coding.h"
#include "common/crc32c.h"

namespace drfs::changelog {
namespace {
constexpr size_t kReadChunk = 256 * 1024;
}  // namespace

std::string EncodeSegmentHeader(const SegmentHeader& h) {
  std::string out(kSegmentMagic, sizeof kSegmentMagic);
  PutFixed32(&out, h.version);
  PutFixed32(&out, kSegmentHeaderSize);
  out.append(reinterpret_cast<const char*>(h.brick_id.bytes.data()), 16);
  PutFixed64(&out, h.epoch);
  PutFixed64(&out, h.first_lsn);
  PutFixed64(&out, h.created_ns);
  PutFixed32(&out, 0);
  PutFixed32(&out, crc32c::Mask(crc32c::Value(out)));
  return out;
}

bool DecodeSegmentHeader(std::string_view in, SegmentHeader* h, std::string* why) {
  if (in.size() < kSegmentHeaderSize) {
    *why = "header is " + std::to_string(in.size()) + " bytes, need " +
           std::to_string(kSegmentHeaderSize);
    return false;
  }
  if (std::memcmp(in.data(), kSegmentMagic, sizeof kSegmentMagic) != 0) {
    *why = "bad magic (not a drfs changelog segment)";
    return false;
  }
  uint32_t stored = crc32c::Unmask(DecodeFixed32(in.data() + kSegmentHeaderSize - 4));
  if (stored != crc32c::Value(in.data(), kSegmentHeaderSize - 4)) {
    *why = "header checksum mismatch";
    return false;
  }
  Decoder d(in.substr(sizeof kSegmentMagic, kSegmentHeaderSize - sizeof kSegmentMagic));
  uint32_t version, size;
  std::string_view id;
  d.GetFixed32(&version);
  d.GetFixed32(&size);
  d.GetBytes(16, &id);
  d.GetFixed64(&h->epoch);
  d.GetFixed64(&h->first_lsn);
  d.GetFixed64(&h->created_ns);
  if (version != kFormatVersion) {
    *why = "format version " + std::to_string(version) + " is not supported (this drfs reads " +
           std::to_string(kFormatVersion) + ")";
    return false;
  }
  if (size != kSegmentHeaderSize) {
    *why = "header size " + std::to_string(size) + " is not " + std::to_string(kSegmentHeaderSize);
    return false;
  }
  if (h->first_lsn == 0) {
    *why = "first LSN is 0";
    return false;
  }
  h->version = version;
  std::memcpy(h->brick_id.bytes.data(), id.data(), 16);
  return true;
}

void AppendFrame(const Record& r, std::string* out) {
  size_t start = out->size();
  out->append(kFrameHeaderSize, '\0');
  EncodePayload(r, out);
  uint32_t len = static_cast<uint32_t>(out->size() - start - kFrameHeaderSize);
  char* p = out->data() + start;
  EncodeFixed32(p + 4, len);
  EncodeFixed32(p, crc32c::Mask(crc32c::Value(p + 4, len + 4)));
}

std::string SegmentFileName(Lsn first_lsn) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%020" PRIu64 "%s", first_lsn, kSegmentSuffix);
  return buf;
}

std::optional<Lsn> ParseSegmentFileName(std::string_view name) {
  constexpr size_t kDigits = 20;
  if (name.size() != kDigits + std::strlen(kSegmentSuffix) ||
      name.substr(kDigits) != kSegmentSuffix) {
    return std::nullopt;
  }
  Lsn v = 0;
  for (size_t i = 0; i < kDigits; ++i) {
    char c = name[i];
    if (c < '0' || c > '9') return std::nullopt;
    Lsn next = v * 10 + static_cast<Lsn>(c - '0');
    if (next / 10 != v) return std::nullopt;  // overflow
    v = next;
  }
  if (v == 0) return std::nullopt;
  return v;
}

Status SegmentScanner::ReadHeader(SegmentHeader* h) {
  offset_ = 0;
  buf_.clear();
  buf_off_ = 0;
  DRFS_RETURN_IF_ERROR(Fill(kSegmentHeaderSize));
  std::string why;
  if (!DecodeSegmentHeader(buf_, h, &why)) {
    return DataLoss("unreadable segment header: " + why);
  }
  offset_ = kSegmentHeaderSize;
  return Status::Ok();
}

Status SegmentScanner::Fill(size_t n) {
  // buf_ covers [buf_off_, buf_off_+size); keep what is still ahead of offset_.
  if (offset_ >= buf_off_ && offset_ - buf_off_ <= buf_.size()) {
    size_t have = buf_.size() - (offset_ - buf_off_);
    if (have >= n) return Status::Ok();
  }
  // Re-read everything from offset_ (the partial frame too), so all of buf_ carries one tag.
  buf_.clear();
  buf_off_ = offset_;
  size_t want = std::max(n, kReadChunk);
  buf_.resize(want);
  std::string_view got;
  DRFS_RETURN_IF_ERROR(file_->Read(buf_off_, want, buf_.data(), &got));
  buf_.resize(got.size());
  buf_tag_ = tag_;
  return Status::Ok();
}

SegmentScanner::Outcome SegmentScanner::Next(Record* rec, std::string* why) {
  Status s = Fill(kFrameHeaderSize);
  if (!s.ok()) {
    *why = s.ToString();
    return Outcome::kCorrupt;
  }
  size_t have = buf_.size() - (offset_ - buf_off_);
  if (have == 0) return Outcome::kEnd;
  if (have < kFrameHeaderSize) {
    *why = "record header is cut short";
    return Outcome::kIncomplete;
  }
  const char* p = buf_.data() + (offset_ - buf_off_);
  uint32_t len = DecodeFixed32(p + 4);
  if (len > kMaxPayloadSize) {
    *why = "record length " + std::to_string(len) + " exceeds the maximum " +
           std::to_string(kMaxPayloadSize);
    return Outcome::kCorrupt;
  }
  s = Fill(kFrameHeaderSize + len);
  if (!s.ok()) {
    *why = s.ToString();
    return Outcome::kCorrupt;
  }
  have = buf_.size() - (offset_ - buf_off_);
  if (have < kFrameHeaderSize + len) {
    *why = "record of " + std::to_string(len) + " bytes is cut short at " +
           std::to_string(have - kFrameHeaderSize);
    return Outcome::kIncomplete;
  }
  p = buf_.data() + (offset_ - buf_off_);
  uint32_t stored = crc32c::Unmask(DecodeFixed32(p));
  if (stored != crc32c::Value(p + 4, len + 4)) {
    *why = "record checksum mismatch";
    return Outcome::kCorrupt;
  }
  if (!DecodePayload(std::string_view(p + kFrameHeaderSize, len), rec)) {
    *why = "record checksum matches but its fields do not decode (written by a newer drfs?)";
    return Outcome::kCorrupt;
  }
  offset_ += kFrameHeaderSize + len;
  return Outcome::kRecord;
}

Result<bool> SegmentScanner::ValidRecordAfter(Lsn last_good) const {
  DRFS_ASSIGN_OR_RETURN(uint64_t size, file_->Size());
  if (size <= offset_ + 1) return false;
  std::string rest(size - offset_ - 1, '\0');
  std::string_view got;
  DRFS_RETURN_IF_ERROR(file_->Read(offset_ + 1, rest.size(), rest.data(), &got));
  // Smallest payload: lsn, timestamp, op, gfid.
  constexpr size_t kMinPayload = 8 + 8 + 1 + 16;
  for (size_t pos = 0; pos + kFrameHeaderSize + kMinPayload <= got.size(); ++pos) {
    const char* p = got.data() + pos;
    uint32_t len = DecodeFixed32(p + 4);
    if (len < kMinPayload || len > kMaxPayloadSize || pos + kFrameHeaderSize + len > got.size()) {
      continue;
    }
    Lsn lsn = DecodeFixed64(p + kFrameHeaderSize);  // cheap filter before the CRC
    if (lsn <= last_good || lsn - last_good > (1ull << 40)) continue;
    if (crc32c::Unmask(DecodeFixed32(p)) == crc32c::Value(p + 4, len + 4)) return true;
  }
  return false;
}

}  // namespace drfs::changelog
