#include "common/failpoint.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include "common/log.h"

namespace drfs::failpoint {
namespace {

enum class Kind { kOff, kCrash, kError, kDelay };

struct Probe {
  Kind kind = Kind::kOff;
  int from_hit = 1;
  int delay_ms = 0;
  int hits = 0;
};

struct Registry {
  std::mutex mu;
  std::map<std::string, Probe, std::less<>> probes;
  std::atomic<bool> any{false};
};

bool ParseSpec(std::string_view spec, Probe* p) {
  Probe out;
  if (auto at = spec.find('@'); at != std::string_view::npos) {
    std::string n(spec.substr(at + 1));
    char* end = nullptr;
    long v = std::strtol(n.c_str(), &end, 10);
    if (n.empty() || *end != '\0' || v < 1) return false;
    out.from_hit = static_cast<int>(v);
    spec = spec.substr(0, at);
  }
  if (spec == "off") {
    out.kind = Kind::kOff;
  } else if (spec == "crash") {
    out.kind = Kind::kCrash;
  } else if (spec == "error") {
    out.kind = Kind::kError;
  } else if (spec.starts_with("delay(") && spec.ends_with(")")) {
    std::string n(spec.substr(6, spec.size() - 7));
    char* end = nullptr;
    long v = std::strtol(n.c_str(), &end, 10);
    if (n.empty() || *end != '\0' || v < 0) return false;
    out.kind = Kind::kDelay;
    out.delay_ms = static_cast<int>(v);
  } else {
    return false;
  }
  *p = out;
  return true;
}

Registry& Reg() {
  static Registry* r = [] {
    auto* reg = new Registry;
    if (const char* env = std::getenv("DRFS_FAILPOINTS")) {
      std::string_view all(env);
      while (!all.empty()) {
        auto semi = all.find(';');
        std::string_view item = all.substr(0, semi);
        all = semi == std::string_view::npos ? std::string_view() : all.substr(semi + 1);
        auto eq = item.find('=');
        Probe p;
        if (eq == std::string_view::npos || !ParseSpec(item.substr(eq + 1), &p)) {
          DRFS_LOG(Error) << "DRFS_FAILPOINTS: cannot parse '" << item
                          << "' (want name=crash|error|delay(MS)|off[@N]); ignored";
          continue;
        }
        reg->probes[std::string(item.substr(0, eq))] = p;
        reg->any = true;
      }
    }
    return reg;
  }();
  return *r;
}

}  // namespace

bool Hit(std::string_view name) {
  Registry& r = Reg();
  if (!r.any.load(std::memory_order_relaxed)) return false;
  Kind kind;
  int delay_ms;
  {
    std::lock_guard<std::mutex> l(r.mu);
    auto it = r.probes.find(name);
    if (it == r.probes.end()) return false;
    Probe& p = it->second;
    if (++p.hits < p.from_hit || p.kind == Kind::kOff) return false;
    kind = p.kind;
    delay_ms = p.delay_ms;
  }
  switch (kind) {
    case Kind::kCrash:
      DRFS_LOG(Warn) << "failpoint " << name << ": crashing the process";
      ::_exit(137);
    case Kind::kError:
      return true;
    case Kind::kDelay:
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      return false;
    case Kind::kOff:
      return false;
  }
  return false;
}

bool Set(std::string_view name, std::string_view spec) {
  Probe p;
  if (!ParseSpec(spec, &p)) return false;
  Registry& r = Reg();
  std::lock_guard<std::mutex> l(r.mu);
  r.probes[std::string(name)] = p;
  r.any = true;
  return true;
}

void ClearAll() {
  Registry& r = Reg();
  std::lock_guard<std::mutex> l(r.mu);
  r.probes.clear();
  r.any = false;
}

int HitCount(std::string_view name) {
  Registry& r = Reg();
  std::lock_guard<std::mutex> l(r.mu);
  auto it = r.probes.find(name);
  return it == r.probes.end() ? 0 : it->second.hits;
}

bool CompiledIn() {
#if defined(DRFS_FAILPOINTS_ENABLED)
  return true;
#else
  return false;
#endif
}

}  // namespace drfs::failpoint
