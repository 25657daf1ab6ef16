#include "georep/format.h"

#include <zstd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

#include "changelog/format.h"
#include "common/coding.h"
#include "common/crc32c.h"

// Layout (docs/georep-format.md has the byte tables):
//
//   header (20 bytes): magic "DRGR" | version u8 | kind u8 | compression u8 | reserved u8 |
//                      stored length u32 | body length u32 | masked crc32c u32
//   stored body:       the body, or one zstd frame of it
//
// The CRC covers header bytes [0, 16) and the stored body: everything but itself. It is taken
// over the stored bytes, not the uncompressed body, so corruption is caught before any byte
// reaches zstd, and a reader can check a message without decompressing it.

namespace drfs::georep {
namespace {

constexpr char kMagic[4] = {'D', 'R', 'G', 'R'};
constexpr size_t kHeaderSize = 20;
constexpr size_t kCrcOffset = 16;
constexpr size_t kMaxBody = kMaxMessageBytes - kHeaderSize;

constexpr uint8_t kKindBatch = 1;
constexpr uint8_t kKindAck = 2;
constexpr uint8_t kCompressionNone = 0;
constexpr uint8_t kCompressionZstd = 1;

// Volume uuid, session and brick ids. Far above any real one; it only bounds what a reader
// accepts.
constexpr size_t kMaxIdLen = 4096;

constexpr uint32_t kBatchFlagsAll = kBatchResume | kBatchReplay | kBatchCrawl | kBatchCrawlDone;
constexpr uint8_t kItemLastFragment = 1u << 0;
constexpr uint8_t kItemGone = 1u << 1;
constexpr uint8_t kItemFlagsAll = kItemLastFragment | kItemGone;
constexpr uint8_t kAckCrawlDone = 1u << 0;
constexpr uint8_t kAckGap = 1u << 1;
constexpr uint8_t kAckFlagsAll = kAckCrawlDone | kAckGap;

// gfid, mode, uid, gid, size, atime, mtime.
constexpr size_t kAttrSize = 16 + 3 * 4 + 3 * 8;
// The smallest item: payload length, a payload of lsn, timestamp, op and gfid, data offset,
// data length, flags. Bounds how many items the remaining bytes can hold before any is read.
constexpr size_t kMinItemSize = 4 + (8 + 8 + 1 + 16) + 8 + 4 + 1;

// What differs between decoding a batch and an ack: the names in errors, and who to upgrade
// (the reader of batches is the secondary, the reader of acks the primary).
struct KindInfo {
  uint8_t kind;
  const char* name;
  const char* upgrade;
};
constexpr KindInfo kBatchKind{kKindBatch, "batch", "upgrade the secondary"};
constexpr KindInfo kAckKind{kKindAck, "ack", "upgrade the primary"};

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08" PRIx32, v);
  return buf;
}

Status Corrupt(const KindInfo& k, const std::string& what) {
  return DataLoss(std::string("georep ") + k.name + ": " + what + "; the message is corrupt");
}
// Past the CRC the bytes are as the sender wrote them: what is wrong, it wrote wrong.
Status Malformed(const KindInfo& k, const std::string& what) {
  return DataLoss(std::string("georep ") + k.name + ": " + what +
                  "; the sender wrote a malformed message");
}
Status Unknown(const KindInfo& k, const std::string& what) {
  return InvalidArgument(std::string("georep ") + k.name + ": " + what +
                         " unknown to this drfs (format version " + std::to_string(kFormatVersion) +
                         "); " + k.upgrade);
}

void PutGfid(std::string* out, const Gfid& g) {
  out->append(reinterpret_cast<const char*>(g.bytes.data()), g.bytes.size());
}
bool GetGfid(Decoder* d, Gfid* g) {
  std::string_view b;
  if (!d->GetBytes(16, &b)) return false;
  std::memcpy(g->bytes.data(), b.data(), 16);
  return true;
}

// ---- The envelope: header, CRC, compression. ----

uint32_t MessageCrc(std::string_view msg) {
  return crc32c::Extend(crc32c::Value(msg.data(), kCrcOffset), msg.data() + kHeaderSize,
                        msg.size() - kHeaderSize);
}

// `msg` is kHeaderSize bytes of room followed by the stored body; fills in the header.
void SealHeader(std::string* msg, uint8_t kind, uint8_t compression, size_t body_len) {
  char* p = msg->data();
  std::memcpy(p, kMagic, sizeof kMagic);
  p[4] = static_cast<char>(kFormatVersion);
  p[5] = static_cast<char>(kind);
  p[6] = static_cast<char>(compression);
  p[7] = 0;
  EncodeFixed32(p + 8, static_cast<uint32_t>(msg->size() - kHeaderSize));
  EncodeFixed32(p + 12, static_cast<uint32_t>(body_len));
  EncodeFixed32(p + kCrcOffset, crc32c::Mask(MessageCrc(*msg)));
}

// Contexts are reused per thread: a syncer encodes a message every few milliseconds, and a
// fresh context at a high level costs tens of MiB of allocation and zeroing each time.
struct ZstdFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};
ZSTD_CCtx* ThreadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, ZstdFree> ctx(ZSTD_createCCtx());
  return ctx.get();
}
ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, ZstdFree> ctx(ZSTD_createDCtx());
  return ctx.get();
}

// `msg` holds the header room and the body. Replaces it with a compressed message when zstd
// makes the body smaller, and seals the header either way.
void Finish(std::string* msg, uint8_t kind, int zstd_level) {
  const size_t body_len = msg->size() - kHeaderSize;
  ZSTD_CCtx* cctx = zstd_level != 0 && body_len > 1 ? ThreadCCtx() : nullptr;
  if (cctx != nullptr) {
    int level = std::clamp(zstd_level, ZSTD_minCLevel(), ZSTD_maxCLevel());
    // Room for one byte less than the body: a frame that does not fit saved nothing, and zstd
    // reports dstSize_tooSmall instead of writing it.
    std::string z(kHeaderSize + body_len - 1, '\0');
    size_t n = ZSTD_compressCCtx(cctx, z.data() + kHeaderSize, body_len - 1,
                                 msg->data() + kHeaderSize, body_len, level);
    if (!ZSTD_isError(n)) {
      z.resize(kHeaderSize + n);
      SealHeader(&z, kind, kCompressionZstd, body_len);
      *msg = std::move(z);
      return;
    }
  }
  SealHeader(msg, kind, kCompressionNone, body_len);
}

struct Envelope {
  uint8_t compression = kCompressionNone;
  uint32_t body_len = 0;
  std::string_view stored;
};

// Checks everything about a message that needs no decompression: header, CRC, kind, and that
// a zstd frame is one whole frame claiming the header's body length. Allocates nothing.
Status OpenEnvelope(std::string_view v, const KindInfo& k, Envelope* env) {
  // Magic and version first: the version decides where everything after byte 5 is, the CRC
  // included, so a newer message must be recognised as newer, not reported as corrupt.
  size_t magic_seen = std::min(v.size(), sizeof kMagic);
  if (magic_seen > 0 && std::memcmp(v.data(), kMagic, magic_seen) != 0) {
    std::string start;
    for (size_t i = 0; i < magic_seen; ++i) {
      char b[4];
      std::snprintf(b, sizeof b, "%02x", static_cast<unsigned char>(v[i]));
      start += b;
    }
    return InvalidArgument(std::string("georep ") + k.name +
                           ": not a drfs geo-replication message (it starts with 0x" + start +
                           ", not \"DRGR\"); check which topic this consumer reads");
  }
  if (v.size() > 4) {
    uint8_t version = static_cast<uint8_t>(v[4]);
    if (version > kFormatVersion) {
      return InvalidArgument(std::string("georep ") + k.name + ": format version " +
                             std::to_string(version) + " is newer than this drfs (" +
                             std::to_string(kFormatVersion) + "); " + k.upgrade);
    }
    if (version != kFormatVersion) {
      return Corrupt(k, "format version " + std::to_string(version) + " was never written");
    }
  }
  if (v.size() < kHeaderSize) {
    return Corrupt(k, "message is " + std::to_string(v.size()) + " bytes, shorter than the " +
                          std::to_string(kHeaderSize) + "-byte header");
  }
  if (v.size() > kMaxMessageBytes) {
    return Corrupt(k, "message is " + std::to_string(v.size()) + " bytes, more than any drfs " +
                          "writes (" + std::to_string(kMaxMessageBytes) + ")");
  }
  const uint32_t stored_len = DecodeFixed32(v.data() + 8);
  if (stored_len != v.size() - kHeaderSize) {
    return Corrupt(k, "header says " + std::to_string(stored_len) + " bytes follow it, but " +
                          std::to_string(v.size() - kHeaderSize) + " do (cut short or extended)");
  }
  const uint32_t stored_crc = crc32c::Unmask(DecodeFixed32(v.data() + kCrcOffset));
  const uint32_t crc = MessageCrc(v);
  if (stored_crc != crc) {
    return DataLoss(std::string("georep ") + k.name + ": CRC mismatch (stored " +
                    Hex32(stored_crc) + ", computed " + Hex32(crc) + "); the message is corrupt");
  }
  // The bytes are as the sender wrote them from here on: what is wrong now, the sender meant.
  const uint8_t kind = static_cast<uint8_t>(v[5]);
  if (kind != k.kind) {
    if (kind == kKindAck) {
      return InvalidArgument(
          "georep batch: this message is an ack, not a batch (acks belong on drfs.SESSION.acks); "
          "check which topic this consumer reads");
    }
    if (kind == kKindBatch) {
      return InvalidArgument(
          "georep ack: this message is a batch, not an ack (batches belong on drfs.SESSION); "
          "check which topic this consumer reads");
    }
    return Unknown(k, "message kind " + std::to_string(kind) + " is");
  }
  const uint8_t compression = static_cast<uint8_t>(v[6]);
  if (compression != kCompressionNone && compression != kCompressionZstd) {
    return Unknown(k, "compression " + std::to_string(compression) + " is");
  }
  if (k.kind == kKindAck && compression != kCompressionNone) {
    return InvalidArgument("georep ack: compression " + std::to_string(compression) +
                           " is not used for acks in format version " +
                           std::to_string(kFormatVersion) + "; " + k.upgrade);
  }
  if (v[7] != 0) {
    return Unknown(k, "header flags " + Hex32(static_cast<uint8_t>(v[7])) + " are");
  }
  const uint32_t body_len = DecodeFixed32(v.data() + 12);
  if (body_len > kMaxBody) {
    return Malformed(k, "body of " + std::to_string(body_len) + " bytes is over the limit of " +
                            std::to_string(kMaxBody));
  }
  std::string_view stored = v.substr(kHeaderSize);
  if (compression == kCompressionNone && stored.size() != body_len) {
    return Malformed(k, "uncompressed body is " + std::to_string(stored.size()) +
                            " bytes, header says " + std::to_string(body_len));
  }
  if (compression == kCompressionZstd) {
    // A hostile frame may claim any size: check its claim before allocating for it.
    unsigned long long claimed = ZSTD_getFrameContentSize(stored.data(), stored.size());
    if (claimed == ZSTD_CONTENTSIZE_ERROR) return Malformed(k, "stored body is not a zstd frame");
    if (claimed == ZSTD_CONTENTSIZE_UNKNOWN) {
      return Malformed(k, "zstd frame does not record its content size (drfs always writes it)");
    }
    if (claimed > kMaxBody) {
      return Malformed(k, "zstd frame claims " + std::to_string(claimed) +
                              " bytes, over the body limit of " + std::to_string(kMaxBody));
    }
    if (claimed != body_len) {
      return Malformed(k, "zstd frame holds " + std::to_string(claimed) + " bytes, header says " +
                              std::to_string(body_len));
    }
    size_t frame = ZSTD_findFrameCompressedSize(stored.data(), stored.size());
    if (ZSTD_isError(frame) || frame != stored.size()) {
      return Malformed(k, "stored body is not exactly one zstd frame");
    }
  }
  env->compression = compression;
  env->body_len = body_len;
  env->stored = stored;
  return Status::Ok();
}

// The body of an opened envelope: the stored bytes themselves, or decompressed into *buf
// (at most kMaxBody bytes, checked by OpenEnvelope).
Status Body(const Envelope& env, const KindInfo& k, std::string* buf, std::string_view* body) {
  if (env.compression == kCompressionNone) {
    *body = env.stored;
    return Status::Ok();
  }
  ZSTD_DCtx* dctx = ThreadDCtx();
  if (dctx == nullptr) {
    return Unavailable(std::string("georep ") + k.name + ": out of memory for a zstd context");
  }
  buf->resize(env.body_len);
  size_t n =
      ZSTD_decompressDCtx(dctx, buf->data(), buf->size(), env.stored.data(), env.stored.size());
  if (ZSTD_isError(n)) {
    return Malformed(k,
                     std::string("zstd cannot decompress the body (") + ZSTD_getErrorName(n) + ")");
  }
  if (n != env.body_len) {
    return Malformed(k, "zstd frame decompressed to " + std::to_string(n) + " bytes, header says " +
                            std::to_string(env.body_len));
  }
  *body = *buf;
  return Status::Ok();
}

// ---- Batch body. ----

void AppendItem(const Item& it, std::string* out) {
  size_t at = out->size();
  PutFixed32(out, 0);
  changelog::EncodePayload(it.op, out);
  EncodeFixed32(out->data() + at, static_cast<uint32_t>(out->size() - at - 4));
  PutFixed64(out, it.data_offset);
  PutLengthPrefixed(out, it.data);
  PutU8(out, static_cast<uint8_t>((it.last_fragment ? kItemLastFragment : 0) |
                                  (it.gone ? kItemGone : 0)));
}

void AppendAttr(const AttrSnapshot& a, std::string* out) {
  PutGfid(out, a.gfid);
  PutFixed32(out, a.mode);
  PutFixed32(out, a.uid);
  PutFixed32(out, a.gid);
  PutFixed64(out, a.size);
  PutFixed64(out, static_cast<uint64_t>(a.atime_ns));
  PutFixed64(out, static_cast<uint64_t>(a.mtime_ns));
}

size_t HeaderFieldsSize(const BatchHeader& h) {
  return 4 + h.volume_uuid.size() + 4 + h.session.size() + 4 + 8 + 8 + 4 + h.source_brick.size() +
         8 + 8 + 4 + 4 + h.resume_brick.size() + 8 + 8 + 8;
}

std::string ItemName(size_t i, const Item& it) {
  return "item " + std::to_string(i) + " (" + std::string(changelog::OpTypeName(it.op.op)) +
         " lsn " + std::to_string(it.op.lsn) + ")";
}

// The rules of ValidateBatch that a decoded batch can break (ids and size are bounded by the
// parser already).
Status ValidateContent(const Batch& b) {
  const BatchHeader& h = b.header;
  if (h.first_lsn > h.last_lsn) {
    return InvalidArgument("first LSN " + std::to_string(h.first_lsn) + " is after last LSN " +
                           std::to_string(h.last_lsn));
  }
  if (h.flags & ~kBatchFlagsAll) {
    return InvalidArgument("unknown flags " + Hex32(h.flags & ~kBatchFlagsAll));
  }
  size_t data = 0;
  for (size_t i = 0; i < b.items.size(); ++i) {
    const Item& it = b.items[i];
    Status s = changelog::ValidateRecord(it.op);
    if (!s.ok()) return InvalidArgument("item " + std::to_string(i) + ": " + s.message());
    const bool write = it.op.op == changelog::OpType::kWrite;
    if (!write && !it.data.empty() && it.op.op != changelog::OpType::kSetxattr) {
      return InvalidArgument(ItemName(i, it) + " carries " + std::to_string(it.data.size()) +
                             " data bytes; only WRITE and SETXATTR do");
    }
    if (it.gone && !it.data.empty()) {
      return InvalidArgument(ItemName(i, it) + " is marked gone but carries data");
    }
    if (!write && (!it.last_fragment || it.data_offset != 0)) {
      return InvalidArgument(ItemName(i, it) + " is a fragment; only WRITEs are split");
    }
    if (write &&
        (it.data_offset > it.op.length || it.data.size() > it.op.length - it.data_offset)) {
      return InvalidArgument(ItemName(i, it) + ": data at " + std::to_string(it.data_offset) +
                             " + " + std::to_string(it.data.size()) +
                             " bytes runs past the write's length " + std::to_string(it.op.length));
    }
    data += it.data.size();
    if (data > kMaxMessageData) {
      return InvalidArgument("items carry more than " + std::to_string(kMaxMessageData) +
                             " data bytes (at " + ItemName(i, it) + "); split the batch");
    }
  }
  for (size_t i = 0; i < b.attrs.size(); ++i) {
    if (b.attrs[i].gfid.is_null()) {
      return InvalidArgument("attr snapshot " + std::to_string(i) + " has a null gfid");
    }
  }
  return Status::Ok();
}

// ---- Ack body. ----

size_t AckBodySize(const Ack& a) {
  return 4 + a.session.size() + 4 + 8 + 8 + 4 + a.source_brick.size() + 8 * 3 + 1 + 8 * 3;
}

}  // namespace

size_t EncodedItemSize(const Item& item) {
  std::string payload;
  changelog::EncodePayload(item.op, &payload);
  return 4 + payload.size() + 8 + 4 + item.data.size() + 1;
}

size_t EncodedBatchSize(const Batch& b) {
  size_t n = kHeaderSize + HeaderFieldsSize(b.header) + 4 + 4 + b.attrs.size() * kAttrSize;
  for (const Item& it : b.items)
    n += EncodedItemSize(it);
  return n;
}

Status ValidateBatch(const Batch& b) {
  const BatchHeader& h = b.header;
  const std::pair<const char*, const std::string*> ids[] = {{"volume uuid", &h.volume_uuid},
                                                            {"session", &h.session},
                                                            {"source brick", &h.source_brick},
                                                            {"resume brick", &h.resume_brick}};
  for (const auto& [name, id] : ids) {
    if (id->size() > kMaxIdLen) {
      return InvalidArgument(std::string(name) + " is " + std::to_string(id->size()) +
                             " bytes, over the limit of " + std::to_string(kMaxIdLen));
    }
  }
  DRFS_RETURN_IF_ERROR(ValidateContent(b));
  size_t size = EncodedBatchSize(b);
  if (size > kMaxMessageBytes) {
    return InvalidArgument("batch encodes to " + std::to_string(size) +
                           " bytes, over the limit of " + std::to_string(kMaxMessageBytes) +
                           "; split it");
  }
  return Status::Ok();
}

std::string EncodeBatch(const Batch& b, int zstd_level) {
  const BatchHeader& h = b.header;
  std::string msg(kHeaderSize, '\0');
  // Most of a batch is its data; records and attrs add a little.
  size_t guess = kHeaderSize + HeaderFieldsSize(h) + 8 + b.attrs.size() * kAttrSize;
  for (const Item& it : b.items)
    guess += 128 + it.data.size();
  msg.reserve(guess);
  PutLengthPrefixed(&msg, h.volume_uuid);
  PutLengthPrefixed(&msg, h.session);
  PutFixed32(&msg, h.replica_set);
  PutFixed64(&msg, h.epoch);
  PutFixed64(&msg, h.token);
  PutLengthPrefixed(&msg, h.source_brick);
  PutFixed64(&msg, h.first_lsn);
  PutFixed64(&msg, h.last_lsn);
  PutFixed32(&msg, h.flags);
  PutLengthPrefixed(&msg, h.resume_brick);
  PutFixed64(&msg, h.resume_lsn);
  PutFixed64(&msg, h.crawl_seq);
  PutFixed64(&msg, h.sent_ns);
  PutFixed32(&msg, static_cast<uint32_t>(b.items.size()));
  for (const Item& it : b.items)
    AppendItem(it, &msg);
  PutFixed32(&msg, static_cast<uint32_t>(b.attrs.size()));
  for (const AttrSnapshot& a : b.attrs)
    AppendAttr(a, &msg);
  Finish(&msg, kKindBatch, zstd_level);
  return msg;
}

Status DecodeBatch(std::string_view value, Batch* out) {
  const KindInfo& k = kBatchKind;
  Envelope env;
  DRFS_RETURN_IF_ERROR(OpenEnvelope(value, k, &env));
  std::string buf;
  std::string_view body;
  DRFS_RETURN_IF_ERROR(Body(env, k, &buf, &body));

  Batch b;
  BatchHeader& h = b.header;
  Decoder d(body);
  auto malformed = [&](const std::string& where) {
    return Malformed(k, "the body does not parse (" + where + ", " +
                            std::to_string(body.size() - d.remaining()) + " bytes in)");
  };
  d.GetLengthPrefixed(&h.volume_uuid, kMaxIdLen);
  d.GetLengthPrefixed(&h.session, kMaxIdLen);
  d.GetFixed32(&h.replica_set);
  d.GetFixed64(&h.epoch);
  d.GetFixed64(&h.token);
  d.GetLengthPrefixed(&h.source_brick, kMaxIdLen);
  d.GetFixed64(&h.first_lsn);
  d.GetFixed64(&h.last_lsn);
  d.GetFixed32(&h.flags);
  d.GetLengthPrefixed(&h.resume_brick, kMaxIdLen);
  d.GetFixed64(&h.resume_lsn);
  d.GetFixed64(&h.crawl_seq);
  d.GetFixed64(&h.sent_ns);
  uint32_t count = 0;
  if (!d.GetFixed32(&count)) return malformed("batch header");
  if (h.flags & ~kBatchFlagsAll) {
    return Unknown(k, "batch flags " + Hex32(h.flags & ~kBatchFlagsAll) + " are");
  }
  // Allocate for no more items than the bytes left could hold, whatever the count says.
  if (count > d.remaining() / kMinItemSize) {
    return malformed("item count " + std::to_string(count) + " cannot fit in " +
                     std::to_string(d.remaining()) + " bytes");
  }
  b.items.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    Item& it = b.items[i];
    const std::string where = "item " + std::to_string(i) + " of " + std::to_string(count);
    uint32_t payload_len = 0;
    std::string_view payload;
    if (!d.GetFixed32(&payload_len) || payload_len > changelog::kMaxPayloadSize ||
        !d.GetBytes(payload_len, &payload)) {
      return malformed(where + ": record length");
    }
    if (!changelog::DecodePayload(payload, &it.op)) return malformed(where + ": record");
    uint8_t flags = 0;
    if (!d.GetFixed64(&it.data_offset) || !d.GetLengthPrefixed(&it.data, kMaxMessageData) ||
        !d.GetU8(&flags)) {
      return malformed(where + ": data");
    }
    if (flags & ~kItemFlagsAll) {
      return Unknown(k, where + ": flags " + Hex32(flags & ~kItemFlagsAll) + " are");
    }
    it.last_fragment = (flags & kItemLastFragment) != 0;
    it.gone = (flags & kItemGone) != 0;
  }
  uint32_t attrs = 0;
  if (!d.GetFixed32(&attrs)) return malformed("attr count");
  if (attrs > d.remaining() / kAttrSize) {
    return malformed("attr count " + std::to_string(attrs) + " cannot fit in " +
                     std::to_string(d.remaining()) + " bytes");
  }
  b.attrs.resize(attrs);
  for (AttrSnapshot& a : b.attrs) {
    uint64_t at = 0, mt = 0;
    GetGfid(&d, &a.gfid);
    d.GetFixed32(&a.mode);
    d.GetFixed32(&a.uid);
    d.GetFixed32(&a.gid);
    d.GetFixed64(&a.size);
    d.GetFixed64(&at);
    d.GetFixed64(&mt);
    a.atime_ns = static_cast<int64_t>(at);
    a.mtime_ns = static_cast<int64_t>(mt);
  }
  if (!d.ok()) return malformed("attr snapshots");
  if (!d.empty()) {
    return malformed(std::to_string(d.remaining()) + " trailing bytes after the attr snapshots");
  }
  Status s = ValidateContent(b);
  if (!s.ok()) {
    return DataLoss("georep batch: " + s.message() + "; the sender wrote an invalid batch");
  }
  *out = std::move(b);
  return Status::Ok();
}

size_t UncompressedSize(std::string_view value) {
  Envelope env;
  if (!OpenEnvelope(value, kBatchKind, &env).ok()) return 0;
  return env.body_len;
}

std::string EncodeAck(const Ack& a) {
  std::string msg(kHeaderSize, '\0');
  msg.reserve(kHeaderSize + AckBodySize(a));
  PutLengthPrefixed(&msg, a.session);
  PutFixed32(&msg, a.replica_set);
  PutFixed64(&msg, a.epoch);
  PutFixed64(&msg, a.token);
  PutLengthPrefixed(&msg, a.source_brick);
  PutFixed64(&msg, a.applied_lsn);
  PutFixed64(&msg, a.applied_ts_ns);
  PutFixed64(&msg, a.crawl_seq);
  PutU8(&msg, static_cast<uint8_t>((a.crawl_done ? kAckCrawlDone : 0) | (a.gap ? kAckGap : 0)));
  PutFixed64(&msg, a.applied_ops);
  PutFixed64(&msg, a.failures);
  PutFixed64(&msg, a.sent_ns);
  Finish(&msg, kKindAck, 0);
  return msg;
}

Status DecodeAck(std::string_view value, Ack* out) {
  const KindInfo& k = kAckKind;
  Envelope env;
  DRFS_RETURN_IF_ERROR(OpenEnvelope(value, k, &env));
  Ack a;
  Decoder d(env.stored);
  uint8_t flags = 0;
  d.GetLengthPrefixed(&a.session, kMaxIdLen);
  d.GetFixed32(&a.replica_set);
  d.GetFixed64(&a.epoch);
  d.GetFixed64(&a.token);
  d.GetLengthPrefixed(&a.source_brick, kMaxIdLen);
  d.GetFixed64(&a.applied_lsn);
  d.GetFixed64(&a.applied_ts_ns);
  d.GetFixed64(&a.crawl_seq);
  d.GetU8(&flags);
  d.GetFixed64(&a.applied_ops);
  d.GetFixed64(&a.failures);
  d.GetFixed64(&a.sent_ns);
  if (!d.ok() || !d.empty()) {
    return Malformed(k, "the body does not parse (" + std::to_string(env.stored.size()) +
                            " bytes, " + (d.ok() ? "with trailing bytes" : "cut short") + ")");
  }
  if (flags & ~kAckFlagsAll)
    return Unknown(k, "ack flags " + Hex32(flags & ~kAckFlagsAll) + " are");
  a.crawl_done = (flags & kAckCrawlDone) != 0;
  a.gap = (flags & kAckGap) != 0;
  *out = std::move(a);
  return Status::Ok();
}

std::string BatchTopic(std::string_view session, uint64_t epoch) {
  std::string t = "drfs." + std::string(session);
  if (epoch > 1) t += ".e" + std::to_string(epoch);
  return t;
}
std::string AckTopic(std::string_view session, uint64_t epoch) {
  return BatchTopic(session, epoch) + ".acks";
}
std::string PartitionKey(uint32_t replica_set) {
  return "rs" + std::to_string(replica_set);
}

}  // namespace drfs::georep
