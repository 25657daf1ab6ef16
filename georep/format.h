// The geo-replication wire format: what a syncer puts in a Kafka message, and what an applier
// sends back. docs/georep-format.md documents it byte by byte, so other tools (kcat, scripts)
// can read a session's topic. This codec is the only code that parses these bytes; it lives in georep/, the library the
// syncer (syncer/) and the applier (secondary/) share, with the Kafka client (georep/kafka.h).
//
// Topics. A session SESSION uses two topics per epoch (BatchTopic, AckTopic below):
//   drfs.SESSION        - batches (Batch), one partition per replica set, key "rs<N>".
//   drfs.SESSION.acks   - acknowledgements from the applier (Ack), same partitioning.
//
// A Batch carries the changelog records [first_lsn, last_lsn] of one brick journal (the Active
// syncer's), in journal order, with what the applier cannot get from the record itself: the
// bytes of WRITE ranges and SETXATTR values, read from the brick when the batch was sent. A
// WRITE larger than one message is split into fragments (Item::data_offset); the applier moves
// its position past a WRITE only with its last fragment. Every message holds at most
// kMaxMessageData bytes of file data, so the embedded broker (about 5 MiB per partition) never
// holds more than a few.
//
// Identity. A batch is identified by (volume uuid, replica set, epoch, token, source brick,
// first LSN, last LSN). The epoch is the site's (it goes up on failover); the token is the
// fencing token of the syncer that sent it (it goes up every time a syncer becomes Active). An
// applier refuses anything older than what it has seen and drops what it has already applied.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "changelog/record.h"
#include "common/gfid.h"
#include "common/status.h"

namespace drfs::georep {

inline constexpr uint8_t kFormatVersion = 1;
// File data bytes per message, at most (Item::data of all items: WRITE bytes and xattr values).
inline constexpr size_t kMaxMessageData = 1u << 20;
// A whole encoded message, at most (data, records and headers; before compression).
inline constexpr size_t kMaxMessageBytes = 4u << 20;

// BatchHeader::flags.
// The first batch a syncer sends after it became Active (or restarted): `resume_brick` and
// `resume_lsn` say where it resumed, after the applier's acknowledged position.
inline constexpr uint32_t kBatchResume = 1u << 0;
// The syncer took over from another brick's journal and resumed at a time, not an LSN: the
// records up to the end of this run may repeat ones already applied. The applier applies them
// idempotently (by gfid) instead of requiring LSN continuity.
inline constexpr uint32_t kBatchReplay = 1u << 1;
// Items made by the initial crawl, not read from a journal. `crawl_seq` orders them.
inline constexpr uint32_t kBatchCrawl = 1u << 2;
// The crawl has ended; changelog batches follow from `resume_lsn`.
inline constexpr uint32_t kBatchCrawlDone = 1u << 3;

struct BatchHeader {
  std::string volume_uuid;  // primary volume
  std::string session;
  uint32_t replica_set = 0;
  uint64_t epoch = 0;
  uint64_t token = 0;
  std::string source_brick;  // brick_id of the journal the records come from
  uint64_t first_lsn = 0;    // records [first_lsn, last_lsn]; both 0 in a batch with no records
  uint64_t last_lsn = 0;
  uint32_t flags = 0;
  std::string resume_brick;  // kBatchResume
  uint64_t resume_lsn = 0;
  uint64_t crawl_seq = 0;    // kBatchCrawl
  uint64_t sent_ns = 0;      // primary's wall clock when the batch was sent
  friend bool operator==(const BatchHeader&, const BatchHeader&) = default;
};

// One journal record, or one fragment of a WRITE.
struct Item {
  changelog::Record op;
  // WRITE: this fragment's bytes at op.offset + data_offset. SETXATTR: the value. Empty for
  // other ops.
  uint64_t data_offset = 0;
  std::string data;
  // WRITE: the op's last fragment. Always true for other ops.
  bool last_fragment = true;
  // The object (or the xattr) was gone when the batch was sent, so there are no bytes: the
  // applier skips the data part. A later record in the journal removes it.
  bool gone = false;
  friend bool operator==(const Item&, const Item&) = default;
};

// An object's attributes as the primary had them when the batch was sent. The applier sets
// the times after applying the batch's items (creating entries and writing data moves a
// secondary object's mtime to "now"; this puts back the primary's).
struct AttrSnapshot {
  Gfid gfid;
  uint32_t mode = 0, uid = 0, gid = 0;
  uint64_t size = 0;
  int64_t atime_ns = 0, mtime_ns = 0;
  friend bool operator==(const AttrSnapshot&, const AttrSnapshot&) = default;
};

struct Batch {
  BatchHeader header;
  std::vector<Item> items;
  std::vector<AttrSnapshot> attrs;
  friend bool operator==(const Batch&, const Batch&) = default;
};

// Checks a batch against what DecodeBatch accepts, so a syncer finds its own mistakes before
// the applier does. InvalidArgument naming the item and the rule:
//   - first_lsn <= last_lsn; no flag bits beyond kBatch*; ids at most 4096 bytes;
//   - every item's record passes changelog::ValidateRecord;
//   - only WRITE and SETXATTR items carry data, none when `gone`; only a WRITE may be a
//     non-last fragment or have a data_offset, and its data stays inside the op's range
//     (data_offset + data.size() <= op.length);
//   - the data of all items together is at most kMaxMessageData; no attr snapshot has a null
//     gfid; EncodedBatchSize(b) <= kMaxMessageBytes.
Status ValidateBatch(const Batch& b);
// The size of EncodeBatch(b, 0), header included: a syncer adds items to a batch while this
// stays within kMaxMessageBytes. EncodedItemSize is what one item adds to it.
size_t EncodedBatchSize(const Batch& b);
size_t EncodedItemSize(const Item& item);

// Encodes a batch as a message value: version, compression, CRC32C, then the body, compressed
// with zstd at `zstd_level` (0: not compressed; stored uncompressed too when zstd does not make
// it smaller). Never fails for a batch that validates; one that does not is encoded anyway, and
// DecodeBatch refuses it.
std::string EncodeBatch(const Batch& b, int zstd_level);
// Decodes a message value. DataLoss on a CRC mismatch, a body that does not parse or a batch
// that does not validate; InvalidArgument for an unknown version, kind, compression or flag, and
// for an ack (a message on the wrong topic). Never reads out of bounds and never allocates more
// than kMaxMessageBytes for a body, whatever the input claims. *out is left alone on error.
Status DecodeBatch(std::string_view value, Batch* out);
// The body size before compression (for the compression ratio in status); 0 if not parsable.
size_t UncompressedSize(std::string_view value);

// The applier's acknowledgement for one replica set: how far it has applied.
struct Ack {
  std::string session;
  uint32_t replica_set = 0;
  uint64_t epoch = 0;
  uint64_t token = 0;          // of the batches it is applying
  std::string source_brick;
  uint64_t applied_lsn = 0;    // every record up to here from source_brick is applied
  uint64_t applied_ts_ns = 0;  // the journal timestamp of that record
  uint64_t crawl_seq = 0;      // during an initial sync: the crawl items applied so far
  bool crawl_done = false;
  // The applier saw a record after a gap (first_lsn > applied_lsn + 1, same token and brick)
  // and dropped it: the syncer should resend from applied_lsn + 1 now rather than wait.
  bool gap = false;
  uint64_t applied_ops = 0;    // records applied since the session began
  uint64_t failures = 0;       // ops that could not be applied (listed on the secondary)
  uint64_t sent_ns = 0;        // the applier's wall clock
  friend bool operator==(const Ack&, const Ack&) = default;
};

// Acks are never compressed. DecodeAck's errors are DecodeBatch's; a batch is InvalidArgument.
std::string EncodeAck(const Ack& a);
Status DecodeAck(std::string_view value, Ack* out);

// "drfs.SESSION" and "drfs.SESSION.acks" in epoch 1; from epoch 2 on (after a failover)
// "drfs.SESSION.eEPOCH" and "drfs.SESSION.eEPOCH.acks": every epoch streams from another site's
// journals, on topics of its own, so nothing of an older epoch (batches, acks, offsets) is ever
// taken for the new one's. The Kafka key of replica set N: "rs<N>".
std::string BatchTopic(std::string_view session, uint64_t epoch = 1);
std::string AckTopic(std::string_view session, uint64_t epoch = 1);
std::string PartitionKey(uint32_t replica_set);

}  // namespace drfs::georep
