// Self-heal: repairs what the pending markers say a brick missed, from a good replica onto the
// stale one, by gfid. drfsd runs one Healer per started volume (the self-heal daemon) and
// `drfs volume heal` asks it for a pass or for the list of what needs heal.
//
// For each gfid in a brick's heal index it locks the object on every brick (entrylk on the
// whole directory for entry heal, inodelk for data and metadata, in chunks so client I/O goes
// on between them), reads every brick's markers and decides:
// - sources: bricks no other brick accuses; sinks: the accused ones;
// - only "dirty" (a client died mid-op): the majority's view is the source;
// - every data brick accused: split brain. Reported, never resolved by overwriting.
// Entry heal makes the sink's names match the source (creating missing objects with the same
// gfid, with their data and metadata, and removing names the source does not have); data heal
// copies the file; metadata heal copies mode, owner, times and user xattrs. Then it subtracts
// the markers it acted on, so changes that raced with it stay marked.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "common/gfid.h"
#include "common/status.h"
#include "volume/client.h"

namespace drfs::volume {

struct HealEntry {
  size_t brick = 0;        // the brick whose index lists it
  std::string brick_name;  // "host:/path"
  Gfid gfid;
  std::string path;         // resolved on that brick ("" when it no longer exists there)
  std::string needs;        // "data", "metadata", "entry", joined by ','; "dirty" for dirty-only
  bool split_brain = false;
};

struct HealStats {
  int examined = 0;
  int healed = 0;
  int split_brain = 0;
  int failed = 0;  // could not be healed now (a brick down, lock timeout): tried again later
  int64_t bytes_copied = 0;
};

class Healer {
 public:
  // index_bricks: the bricks whose heal index this healer works through (a node's self-heal
  // daemon takes its local bricks, as Gluster's does); empty = every brick.
  explicit Healer(VolumeClient* client, std::vector<size_t> index_bricks = {})
      : client_(client), index_bricks_(std::move(index_bricks)) {}

  // Makes HealOnce() return soon (between objects and between data chunks). Thread-safe.
  void Stop() { stop_ = true; }

  // One pass over the heal index of every brick that is up. Entry heals first, so objects
  // exist before their data is copied.
  Result<HealStats> HealOnce();
  // What needs heal now, per brick. split_brain_only: only entries in split brain.
  Result<std::vector<HealEntry>> Info(bool split_brain_only);

 private:
  VolumeClient* client_;
  std::vector<size_t> index_bricks_;
  std::atomic<bool> stop_{false};
};

}  // namespace drfs::volume
