#include "mgmt/shd.h"

#include "common/log.h"

namespace drfs::mgmt {

SelfHealDaemon::SelfHealDaemon(ShdOptions options) : opts_(std::move(options)) {
  thread_ = std::thread([this] { Run(); });
}

SelfHealDaemon::~SelfHealDaemon() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
    if (running_) running_->Stop();  // a long data heal ends at its next chunk
  }
  cv_.notify_all();
  thread_.join();
}

void SelfHealDaemon::Trigger() {
  {
    std::lock_guard<std::mutex> l(mu_);
    triggered_ = true;
  }
  cv_.notify_all();
}

ShdStatus SelfHealDaemon::status() const {
  std::lock_guard<std::mutex> l(mu_);
  return status_;
}

Status SelfHealDaemon::EnsureClient() {
  auto layout = opts_.layout();
  if (!layout.ok()) return layout.status();
  std::shared_ptr<volume::VolumeClient> c;
  {
    std::lock_guard<std::mutex> l(mu_);
    c = client_;
  }
  if (c) {
    Status s = c->UpdateLayout(*layout);
    if (s.ok()) {
      std::lock_guard<std::mutex> l(mu_);
      local_ = opts_.local_bricks(*layout);
      return s;
    }
  }
  auto fresh = volume::VolumeClient::Open(*layout, opts_.client);
  if (!fresh.ok()) return fresh.status();
  std::lock_guard<std::mutex> l(mu_);
  client_ = std::shared_ptr<volume::VolumeClient>(std::move(*fresh));
  local_ = opts_.local_bricks(*layout);
  return Status::Ok();
}

Result<std::vector<volume::HealEntry>> SelfHealDaemon::Info(bool split_brain_only) {
  std::shared_ptr<volume::VolumeClient> c;
  {
    std::lock_guard<std::mutex> l(mu_);
    c = client_;
  }
  if (!c) {
    DRFS_RETURN_IF_ERROR(EnsureClient());
    std::lock_guard<std::mutex> l(mu_);
    c = client_;
  }
  volume::Healer h(c.get());
  return h.Info(split_brain_only);
}

void SelfHealDaemon::Run() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    cv_.wait_for(l, opts_.poll, [this] { return stop_ || triggered_; });
    if (stop_) break;
    triggered_ = false;
    l.unlock();
    Status s = EnsureClient();
    volume::HealStats st;
    if (s.ok()) {
      std::shared_ptr<volume::VolumeClient> c;
      std::vector<size_t> local;
      {
        std::lock_guard<std::mutex> g(mu_);
        c = client_;
        local = local_;
      }
      if (!local.empty()) {
        volume::Healer h(c.get(), local);
        {
          std::lock_guard<std::mutex> g(mu_);
          running_ = &h;
          if (stop_) h.Stop();
        }
        auto r = h.HealOnce();
        {
          std::lock_guard<std::mutex> g(mu_);
          running_ = nullptr;
        }
        if (r.ok()) st = *r;
        else s = r.status();
      }
    }
    l.lock();
    ++status_.passes;
    status_.connected = client_ != nullptr;
    status_.healed += st.healed;
    status_.split_brain = st.split_brain;
    status_.pending = st.failed + st.split_brain;
    if (!s.ok() && s.message() != status_.last_error) {
      DRFS_LOG(Warn) << "self-heal of volume " << opts_.volume << ": " << s.message();
    }
    status_.last_error = s.ok() ? "" : s.message();
    if (st.healed > 0 || st.split_brain > 0) {
      DRFS_LOG(Info) << "self-heal of volume " << opts_.volume << ": healed " << st.healed
                     << ", split brain " << st.split_brain << ", deferred " << st.failed
                     << ", copied " << st.bytes_copied << " bytes";
    }
  }
}

}  // namespace drfs::mgmt
