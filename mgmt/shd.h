// SelfHealDaemon: drfsd's self-heal daemon for one started volume, as Gluster's glustershd.
//
// It keeps a VolumeClient open on the volume (following layout changes) and works through the
// heal index of this node's bricks: at once when started, every `poll` after that (the index
// is cheap to read, so a brick that comes back is healed within seconds), and whenever
// Trigger() asks (`drfs volume heal VOL`). Healing never blocks client I/O for long: data is
// copied in 1 MiB steps under the inode lock (volume/heal.h).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "volume/client.h"
#include "volume/heal.h"

namespace drfs::mgmt {

struct ShdOptions {
  std::string volume;
  // Returns the volume's current layout and which of its bricks are this node's.
  std::function<Result<volume::Layout>()> layout;
  std::function<std::vector<size_t>(const volume::Layout&)> local_bricks;
  volume::VolumeClientOptions client;
  std::chrono::milliseconds poll{2000};
};

struct ShdStatus {
  bool connected = false;
  int64_t passes = 0;
  int64_t healed = 0;
  int64_t split_brain = 0;  // in the last pass
  int64_t pending = 0;      // entries left after the last pass
  std::string last_error;
};

class SelfHealDaemon {
 public:
  explicit SelfHealDaemon(ShdOptions options);
  ~SelfHealDaemon();  // stops and joins
  SelfHealDaemon(const SelfHealDaemon&) = delete;
  SelfHealDaemon& operator=(const SelfHealDaemon&) = delete;

  // Runs a pass as soon as possible.
  void Trigger();
  ShdStatus status() const;
  std::chrono::milliseconds poll() const { return opts_.poll; }
  const std::string& applier_secret() const { return opts_.client.applier_secret; }
  // What needs heal (every brick's index, not only this node's).
  Result<std::vector<volume::HealEntry>> Info(bool split_brain_only);

 private:
  void Run();
  Status EnsureClient();

  const ShdOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool triggered_ = true;
  ShdStatus status_;
  std::shared_ptr<volume::VolumeClient> client_;
  volume::Healer* running_ = nullptr;  // the pass in progress, stopped by the destructor
  std::vector<size_t> local_;
  std::thread thread_;
};

}  // namespace drfs::mgmt
