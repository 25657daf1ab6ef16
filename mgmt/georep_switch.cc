// Failover and failback: switching a session's roles between its two sites (mgmt/georep.h).
//
// A switch is driven from the site being promoted, one step per kGeorepSwitch request (the CLI
// asks again until it is done, printing each step). The step is recorded in that site's pool
// configuration before it is taken and every step is idempotent, so a switch interrupted at any
// point (the CLI or a drfsd killed) is finished by running the command again.
//
// Planned (both sites up), with the session at epoch E and the switch bringing it to E+1:
//   checkpoint  the old primary sets a checkpoint; wait until the secondary applied it (most of
//               the lag drains while the primary still takes writes);
//   fence       the old primary's session is marked fenced: its bricks restart read-only, so
//               mounts get EROFS; wait until no brick of it runs writable;
//   drain       a second checkpoint, set after the fence: once applied, the secondary has every
//               write the old primary ever acknowledged;
//   promote     the applier stops; its positions are recorded (the divergence point); each
//               brick's newest journal LSN is recorded as where the new primary's syncers start;
//               the session becomes primary at epoch E+1 and its bricks restart writable;
//   demote-peer the old primary becomes the secondary at E+1: its syncers stop, its applier
//               starts on the new epoch's topics;
//   done.
// Forced (`--force`, the primary is unreachable): promote at once, at the last position
// applied; the old primary is told to fence itself if it can be reached, and otherwise does so
// itself when it comes back and sees the newer epoch here (WatchPeers).
// Failback is the same switch run the other way. After a forced failover it first brings the
// old primary back as the secondary (rejoin), which is safe only when its journal holds nothing
// past the divergence point that never reached the other site.
#include <unistd.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "changelog/journal.h"
#include "common/log.h"
#include "common/time.h"
#include "mgmt/georep.h"

namespace drfs::mgmt {
namespace {

using namespace std::chrono_literals;

constexpr char kStepCheckpoint[] = "checkpoint";
constexpr char kStepFence[] = "fence";
constexpr char kStepDrain[] = "drain";
constexpr char kStepPromote[] = "promote";
constexpr char kStepDemotePeer[] = "demote-peer";
constexpr char kStepDone[] = "done";

std::string Site(const SessionConf& s) { return s.peer_host + ":" + std::to_string(s.peer_port); }

Value Progress(const std::string& step, const std::string& message, bool waiting = false) {
  Value r;
  r["step"] = step;
  r["message"] = message;
  r["waiting"] = waiting;
  r["done"] = false;
  return r;
}

// "EPOCH/LSN/SOURCE_BRICK/TS_NS" and back.
struct Divergence {
  uint64_t epoch = 0, lsn = 0, ts_ns = 0;
  std::string brick;
};
std::string EncodeDivergence(const Divergence& d) {
  return std::to_string(d.epoch) + "/" + std::to_string(d.lsn) + "/" + d.brick + "/" +
         std::to_string(d.ts_ns);
}
std::optional<Divergence> DecodeDivergence(const std::string& s) {
  std::istringstream in(s);
  std::string a, b, c, d;
  if (!std::getline(in, a, '/') || !std::getline(in, b, '/') || !std::getline(in, c, '/') ||
      !std::getline(in, d)) {
    return std::nullopt;
  }
  try {
    return Divergence{std::stoull(a), std::stoull(b), std::stoull(d), c};
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace

Result<std::vector<Value>> Georep::OnVolumeNodes(const ClusterConfig& c, const SessionConf& s,
                                                 const Value& args) {
  auto vit = c.volumes.find(s.volume);
  if (vit == c.volumes.end()) return NotFound("volume " + s.volume + " of session " + s.name + " is gone");
  std::set<std::string> nodes;
  for (const auto& b : vit->second.bricks) nodes.insert(b.node_uuid);
  std::vector<Value> out;
  for (const auto& node : nodes) {
    auto r = host_.call_node(node, MgmtOp::kGeorepLocalSwitch, args);
    if (!r.ok()) return r.status();
    out.push_back(std::move(*r));
  }
  return out;
}

Result<std::string> Georep::BricksInMode(const SessionConf& s, bool writable) {
  Value a;
  a["name"] = s.name;
  a["action"] = "writable";
  DRFS_ASSIGN_OR_RETURN(auto answers, OnVolumeNodes(host_.config(), s, a));
  std::string out;
  for (const auto& ans : answers) {
    const Value* l = ans.Find(writable ? "writable" : "read_only");
    for (const auto& b : l ? l->AsList() : Value::List{}) out += (out.empty() ? "" : ", ") + b.AsString();
  }
  return out;
}

Result<std::map<std::string, int64_t>> Georep::JournalEnds(const SessionConf& s) {
  Value a;
  a["name"] = s.name;
  a["action"] = "journal_ends";
  DRFS_ASSIGN_OR_RETURN(auto answers, OnVolumeNodes(host_.config(), s, a));
  std::map<std::string, int64_t> ends;
  for (const auto& ans : answers) {
    if (const Value* e = ans.Find("ends")) {
      for (const auto& [k, v] : e->AsMap()) ends[k] = v.AsInt();
    }
  }
  return ends;
}

std::pair<bool, std::string> Georep::CheckpointDone(const ClusterConfig& c, const SessionConf& s) {
  auto vit = c.volumes.find(s.volume);
  if (vit == c.volumes.end()) return {false, "volume " + s.volume + " is gone"};
  std::set<std::string> nodes;
  for (const auto& b : vit->second.bricks) nodes.insert(b.node_uuid);
  Value a;
  a["name"] = s.name;
  bool all = s.checkpoint_ns != 0, any_active = false;
  std::string behind;
  for (const auto& node : nodes) {
    auto lr = host_.call_node(node, MgmtOp::kGeorepLocalStatus, a);
    if (!lr.ok()) return {false, lr.status().message()};
    for (const auto& row : lr->Find("rows") ? lr->Find("rows")->AsList() : Value::List{}) {
      if (row.GetString("status") != "Active" && row.GetString("status") != "Paused") continue;
      any_active = true;
      if (row.GetInt("checkpoint_ns") != s.checkpoint_ns || row.GetInt("checkpoint_done_ns") == 0) {
        all = false;
        behind = row.GetString("brick") + " applied LSN " + std::to_string(row.GetInt("acked_lsn")) +
                 " of " + std::to_string(row.GetInt("checkpoint_lsn"));
      }
    }
  }
  if (!any_active) return {false, "no syncer of session " + s.name + " is Active"};
  return {all, behind};
}

// ---- node-local

Result<Value> Georep::LocalSwitch(const Value& args) {
  const std::string name = args.GetString("name");
  const std::string action = args.GetString("action");
  ClusterConfig c = host_.config();
  DRFS_ASSIGN_OR_RETURN(const SessionConf* sp, FindSession(c, name));
  Value r;
  if (action == "writable") {
    Value& w = r["writable"] = Value::EmptyList();
    Value& ro = r["read_only"] = Value::EmptyList();
    if (host_.brick_modes) {
      for (auto& [b, writable] : host_.brick_modes(sp->volume)) (writable ? w : ro).Push(b);
    }
    return r;
  }
  if (action == "journal_ends") {
    Value& ends = r["ends"] = Value::EmptyMap();
    auto vit = c.volumes.find(sp->volume);
    if (vit == c.volumes.end()) return r;
    for (const auto& b : vit->second.bricks) {
      if (b.node_uuid != host_.node_uuid) continue;
      auto js = changelog::Inspect(b.path + "/.drfs/changelog");
      if (!js.ok()) {
        return Status(js.status().code(), "brick " + b.Name() + ": cannot read its journal: " +
                                              js.status().message());
      }
      ends[b.brick_id] = static_cast<int64_t>(js->last_lsn);
    }
    return r;
  }
  return InvalidArgument("unknown local switch action '" + action + "'");
}

// ---- the other site

Result<Value> Georep::PeerSwitch(const Value& args) {
  // A probe only reads: it must answer while this site is in the middle of a step of its own
  // (which may be waiting for the asking site).
  if (args.GetString("action") == "probe") return PeerSwitchLocked(args);
  std::lock_guard<std::mutex> g(switch_mu_);
  return PeerSwitchLocked(args);
}

Result<Value> Georep::PeerSwitchLocked(const Value& args) {
  const std::string name = args.GetString("name");
  const std::string action = args.GetString("action");
  const uint64_t epoch = static_cast<uint64_t>(args.GetInt("epoch"));
  ClusterConfig c = host_.config();
  DRFS_ASSIGN_OR_RETURN(const SessionConf* sp, FindSession(c, name));
  const SessionConf s = *sp;
  Value r;
  r["role"] = s.role;
  r["epoch"] = static_cast<int64_t>(s.epoch);
  r["fenced"] = s.fenced;
  r["state"] = s.state;
  if (action == "probe") {
    r["switch_step"] = s.switch_step;
    Value& dv = r["divergence"] = Value::EmptyMap();
    for (const auto& [k, v] : s.divergence) dv[k] = v;
    return r;
  }
  // Nothing from an older epoch than this site's is obeyed: a stale coordinator cannot fence
  // or demote the site that was promoted after it.
  if (epoch < s.epoch || (epoch == s.epoch && s.role == kRolePrimary && action == "demote" && !s.fenced)) {
    return FailedPrecondition("session " + name + " is at epoch " + std::to_string(s.epoch) +
                              " here, " + s.role + (s.fenced ? " (fenced)" : "") +
                              "; a switch to epoch " + std::to_string(epoch) + " is out of date");
  }
  if (action == "checkpoint") {
    if (s.role != kRolePrimary) return FailedPrecondition("session " + name + " is not the primary here");
    const int64_t after = args.GetInt("after_ns");
    if (s.checkpoint_ns < after || s.checkpoint_ns == 0) {
      Value a;
      a["name"] = name;
      DRFS_RETURN_IF_ERROR(Checkpoint(a).status());
      c = host_.config();
      DRFS_ASSIGN_OR_RETURN(sp, FindSession(c, name));
    }
    auto [done, behind] = CheckpointDone(c, *sp);
    r["completed"] = done;
    r["behind"] = behind;
    r["checkpoint_ns"] = sp->checkpoint_ns;
    return r;
  }
  if (action == "fence") {
    if (s.role == kRoleSecondary) {
      r["fenced"] = true;  // demoted already: its bricks are read-only
      r["writable"] = "";
      return r;
    }
    const bool stop = args.GetBool("stop");
    if (!s.fenced || (stop && s.state != kSessionStopped)) {
      std::string secret = s.applier_secret;
      if (secret.empty()) {
        DRFS_ASSIGN_OR_RETURN(secret, NewApplierSecret());
      }
      DRFS_RETURN_IF_ERROR(host_.run_txn([&](ClusterConfig* next) -> Status {
        auto it = next->sessions.find(name);
        if (it == next->sessions.end()) return NotFound("session '" + name + "' is gone");
        it->second.fenced = true;
        if (it->second.applier_secret.empty()) it->second.applier_secret = secret;
        if (stop) it->second.state = kSessionStopped;
        return Status::Ok();
      }).status());
      DRFS_LOG(Warn) << "georep " << name << ": volume " << s.volume
                     << " fenced for a switch to epoch " << epoch
                     << ": its bricks restart read-only";
    }
    DRFS_ASSIGN_OR_RETURN(auto w, BricksInMode(s, /*writable=*/true));
    r["writable"] = w;
    r["fenced"] = w.empty();
    return r;
  }
  if (action == "demote") {
    if (s.role == kRoleSecondary && s.epoch >= epoch) {
      r["demoted"] = true;
      return r;
    }
    std::string secret = s.applier_secret;
    if (secret.empty()) {
      DRFS_ASSIGN_OR_RETURN(secret, NewApplierSecret());
    }
    DRFS_RETURN_IF_ERROR(host_.run_txn([&](ClusterConfig* next) -> Status {
      auto it = next->sessions.find(name);
      if (it == next->sessions.end()) return NotFound("session '" + name + "' is gone");
      SessionConf& n = it->second;
      n.role = kRoleSecondary;
      n.epoch = epoch;
      n.state = kSessionStarted;
      n.fenced = false;
      n.applier_node = host_.node_uuid;
      if (n.applier_secret.empty()) n.applier_secret = secret;
      n.broker_node.clear();
      n.checkpoint_ns = 0;
      n.start_lsns.clear();
      n.switch_kind.clear();
      n.switch_step.clear();
      n.switch_started_ns = 0;
      n.switch_epoch = 0;
      return Status::Ok();
    }).status());
    DRFS_LOG(Warn) << "georep " << name << ": volume " << s.volume << " is now the secondary (epoch "
                   << epoch << "); the primary is " << Site(s);
    Reconcile(host_.config());
    r["demoted"] = true;
    return r;
  }
  return InvalidArgument("unknown switch action '" + action + "'");
}

// ---- the site being promoted

Result<Value> Georep::Switch(const Value& args) {
  const std::string name = args.GetString("name");
  const std::string kind = args.GetString("kind", "failover");
  const bool force = args.GetBool("force");
  if (kind != "failover" && kind != "failback") return InvalidArgument("unknown switch '" + kind + "'");
  // Decided under the lock, on the configuration as it is then (another command may just have
  // finished the same switch); only passing the request on to the other site happens outside.
  std::unique_lock<std::mutex> g(switch_mu_);
  ClusterConfig c = host_.config();
  DRFS_ASSIGN_OR_RETURN(const SessionConf* sp, FindSession(c, name));
  const SessionConf s = *sp;
  // A failover promotes the site the session was not created on, a failback the one it was
  // (`home`). The site being promoted drives; the other passes the request on. Asked again
  // once it is done, either says so and changes nothing.
  const bool target_here = (kind == "failback") == s.home;
  const bool primary_here = s.role == kRolePrimary && !s.fenced;
  auto probe = [&]() {
    Value pa;
    pa["name"] = name;
    pa["action"] = "probe";
    return CallPeerSite(s, MgmtOp::kGeorepPeerSwitch, pa, 2000, 5000);
  };
  if (s.switch_step.empty() && target_here && primary_here) {
    // Failback on an old primary that has not seen yet that the other site was promoted past
    // it (it was away): it fences itself now, as its watcher would, and rejoins below.
    auto pr = probe();
    const bool behind = pr.ok() && pr->GetString("role") == kRolePrimary &&
                        static_cast<uint64_t>(pr->GetInt("epoch")) > s.epoch;
    if (!behind) {
      Value r = Progress(kStepDone, "nothing to do: " + host_.hostname + "::" + s.volume +
                                        " is the primary of session " + name + " (epoch " +
                                        std::to_string(s.epoch) + ")");
      r["done"] = true;
      return r;
    }
    DRFS_RETURN_IF_ERROR(host_.run_txn([&](ClusterConfig* next) -> Status {
      auto it = next->sessions.find(name);
      if (it == next->sessions.end()) return NotFound("session '" + name + "' is gone");
      it->second.fenced = true;
      it->second.state = kSessionStopped;
      if (it->second.applier_secret.empty()) {
        auto secret = NewApplierSecret();
        if (!secret.ok()) return secret.status();
        it->second.applier_secret = *secret;
      }
      return Status::Ok();
    }).status());
    DRFS_LOG(Error) << "georep " << name << ": " << Site(s) << " is the primary at epoch " << pr->GetInt("epoch")
                    << " (this site is at " << s.epoch << "): volume " << s.volume << " fenced for the failback";
    c = host_.config();
    DRFS_ASSIGN_OR_RETURN(sp, FindSession(c, name));
    return SwitchStep(*sp, kind, force);
  }
  if (s.switch_step.empty() && !target_here) {
    if (!primary_here) {
      if (s.fenced) {
        // Fenced by a planned switch the other site drives (resume it there), or by a forced one.
        auto pr = probe();
        if (pr.ok() && !pr->GetString("switch_step").empty()) {
          g.unlock();
          return CallPeerSite(s, MgmtOp::kGeorepSwitch, args);
        }
        if (kind == "failover") {
          return FailedPrecondition("session " + name + " was failed over to " + Site(s) +
                                    " while this site was away; this site is fenced. Run 'drfs georep "
                                    "failback " + name + "' to make it the primary again");
        }
      }
      Value r = Progress(kStepDone, "nothing to do: " + Site(s) + " is the primary of session " + name +
                                        " and this site its secondary (epoch " + std::to_string(s.epoch) + ")");
      r["done"] = true;
      return r;
    }
    g.unlock();
    auto r = CallPeerSite(s, MgmtOp::kGeorepSwitch, args);
    if (!r.ok() && r.status().code() == Code::kUnavailable) {
      return Unavailable("session " + name + " is the primary here, and a " + kind +
                         " is driven by the site it promotes, whose drfsd cannot be reached (" +
                         r.status().message() + "); run the command there (--daemon " + Site(s) + ")");
    }
    return r;
  }
  // A planned failover whose old primary was lost half-way: --force finishes it as a forced
  // one (no more checkpoints, the fence tried once more, the old primary left fenced).
  if (force && !s.switch_step.empty() && s.switch_step != kStepDone &&
      s.switch_kind.find("--force") == std::string::npos) {
    const bool before_promote = s.switch_step == kStepCheckpoint || s.switch_step == kStepFence ||
                                s.switch_step == kStepDrain;
    DRFS_RETURN_IF_ERROR(host_.run_txn([&](ClusterConfig* next) -> Status {
      auto it = next->sessions.find(name);
      if (it == next->sessions.end()) return NotFound("session '" + name + "' is gone");
      it->second.switch_kind += " --force";
      if (before_promote) it->second.switch_step = kStepFence;
      return Status::Ok();
    }).status());
    c = host_.config();
    DRFS_ASSIGN_OR_RETURN(sp, FindSession(c, name));
    return SwitchStep(*sp, kind, force);
  }
  return SwitchStep(s, kind, force);
}

Result<Value> Georep::SwitchStep(const SessionConf& s, const std::string& kind, bool force) {
  const std::string& name = s.name;
  auto record = [&](const std::function<void(SessionConf&)>& f) -> Status {
    return host_.run_txn([&](ClusterConfig* next) -> Status {
      auto it = next->sessions.find(name);
      if (it == next->sessions.end()) return NotFound("session '" + name + "' is gone");
      f(it->second);
      return Status::Ok();
    }).status();
  };
  auto peer = [&](const std::string& action, const Value& extra = Value::EmptyMap()) {
    Value a = extra.is_map() ? extra : Value::EmptyMap();
    a["name"] = name;
    a["action"] = action;
    a["epoch"] = static_cast<int64_t>(s.switch_epoch);
    return CallPeerSite(s, MgmtOp::kGeorepPeerSwitch, a, 5000, 30000);
  };

  if (s.switch_step.empty()) {
    if (s.role == kRolePrimary && s.fenced) {
      // Failback after a forced failover: the other site is the primary at a newer epoch. This
      // site rejoins as its secondary first, then is switched back as in a planned failover.
      if (force) return InvalidArgument("--force is for failover; a failback needs both sites");
      Value pa;
      pa["name"] = name;
      pa["action"] = "probe";
      DRFS_ASSIGN_OR_RETURN(Value pr, CallPeerSite(s, MgmtOp::kGeorepPeerSwitch, pa));
      const uint64_t peer_epoch = static_cast<uint64_t>(pr.GetInt("epoch"));
      if (pr.GetString("role") != kRolePrimary || peer_epoch <= s.epoch) {
        return FailedPrecondition("session " + name + " is fenced here (epoch " + std::to_string(s.epoch) +
                                  ") but " + Site(s) + " is " + pr.GetString("role") + " at epoch " +
                                  std::to_string(peer_epoch) + "; nothing to fail back to");
      }
      // Its bricks read-only first: nothing may be written here between counting what never
      // left this site and becoming the secondary.
      {
        DRFS_ASSIGN_OR_RETURN(auto w, BricksInMode(s, /*writable=*/true));
        if (!w.empty()) return Progress("rejoin", "waiting for this site's bricks to restart read-only: " + w, true);
      }
      // What this site journaled after the point the other site was promoted at never reached
      // it. Keeping those writes aside is not built yet: refuse rather than overwrite them.
      DRFS_ASSIGN_OR_RETURN(auto ends, JournalEnds(s));
      // Where the other site stood in this site's stream: the journal LSN it had applied, per
      // replica set, from the brick it followed. Without one for this epoch (it had applied
      // nothing of it), every record this site journaled since it became the primary counts.
      std::vector<std::string> unshipped;
      bool have_point = false;
      if (const Value* dv = pr.Find("divergence")) {
        for (const auto& [rs, text] : dv->AsMap()) {
          auto d = DecodeDivergence(text.AsString());
          if (!d) return DataLoss("divergence point '" + text.AsString() + "' of " + rs + " does not parse");
          if (d->epoch != s.epoch) continue;
          have_point = true;
          auto e = ends.find(d->brick);
          if (e == ends.end()) {
            unshipped.push_back(rs + ": the journal it followed (brick " + d->brick + ") is not on this site");
          } else if (static_cast<uint64_t>(e->second) > d->lsn) {
            unshipped.push_back(rs + ": " + std::to_string(static_cast<uint64_t>(e->second) - d->lsn) +
                                " journal records after LSN " + std::to_string(d->lsn) + " of brick " + d->brick);
          }
        }
      }
      if (!have_point) {
        for (const auto& [brick, end] : ends) {
          auto st = s.start_lsns.find(brick);
          const int64_t from = st == s.start_lsns.end() ? 0 : st->second;
          if (end > from) {
            unshipped.push_back("brick " + brick + ": " + std::to_string(end - from) + " journal records after LSN " +
                                std::to_string(from) + " (the other site applied nothing of epoch " +
                                std::to_string(s.epoch) + ")");
          }
        }
      }
      if (!unshipped.empty()) {
        std::string list;
        for (const auto& u : unshipped) list += "\n  " + u;
        return FailedPrecondition(
            "session " + name + ": this site wrote after the other site was promoted, and those writes "
            "never reached it:" + list + "\nfailback would overwrite them, and this drfs cannot keep "
            "them aside yet (the conflicts area is not built): nothing was changed. The volume stays "
            "fenced (read-only): mount it to copy out what you need.");
      }
      Value dem;
      dem["name"] = name;
      dem["action"] = "demote";
      dem["epoch"] = static_cast<int64_t>(peer_epoch);
      // Demote this site locally (it is the secondary from now on); the switch back starts next.
      DRFS_RETURN_IF_ERROR(PeerSwitchLocked(dem).status());
      DRFS_RETURN_IF_ERROR(record([&](SessionConf& n) {
        n.switch_kind = "failback";
        n.switch_step = kStepCheckpoint;
        n.switch_started_ns = static_cast<int64_t>(NowNs());
        n.switch_epoch = peer_epoch + 1;
      }));
      return Progress("rejoin", "this site is the secondary of " + Site(s) + " at epoch " +
                                    std::to_string(peer_epoch) + "; it catches up on what changed there since the failover");
    }
    if (s.role != kRoleSecondary) return FailedPrecondition("session " + name + " is not a secondary here");
    uint64_t target = s.epoch + 1;
    if (!force) {
      Value pa;
      pa["name"] = name;
      pa["action"] = "probe";
      auto pr = CallPeerSite(s, MgmtOp::kGeorepPeerSwitch, pa);
      if (!pr.ok()) {
        return Status(pr.status().code(), pr.status().message() +
                                              "; a planned " + kind + " needs the primary. If that site is lost, "
                                              "'drfs georep failover " + name + " --force' promotes this one at "
                                              "the last position it applied");
      }
      target = std::max<uint64_t>(target, static_cast<uint64_t>(pr->GetInt("epoch")) + 1);
      if (s.state != kSessionStarted) {
        return FailedPrecondition("session " + name + " is " + s.state + "; start or resume it first, so "
                                  "the secondary can catch up before the switch");
      }
    }
    DRFS_RETURN_IF_ERROR(record([&](SessionConf& n) {
      n.switch_kind = force ? kind + " --force" : kind;
      n.switch_step = force ? kStepFence : kStepCheckpoint;
      n.switch_started_ns = static_cast<int64_t>(NowNs());
      n.switch_epoch = target;
    }));
    return Progress("begin", kind + (force ? " --force" : "") + " of session " + name + " to epoch " +
                                 std::to_string(target) + ": " + host_.hostname + "::" + s.volume +
                                 " becomes the primary");
  }

  const bool forced = s.switch_kind.find("--force") != std::string::npos;
  if (s.switch_step == kStepCheckpoint) {
    Value x;
    x["after_ns"] = s.switch_started_ns;
    DRFS_ASSIGN_OR_RETURN(Value r, peer("checkpoint", x));
    if (!r.GetBool("completed")) {
      return Progress(kStepCheckpoint, "waiting for this site to apply what the primary journaled before " +
                                           FormatTimeMillis(static_cast<uint64_t>(r.GetInt("checkpoint_ns"))) +
                                           (r.GetString("behind").empty() ? "" : " (" + r.GetString("behind") + ")"),
                      true);
    }
    DRFS_RETURN_IF_ERROR(record([&](SessionConf& n) { n.switch_step = kStepFence; }));
    return Progress(kStepCheckpoint, "checkpoint completed: the secondary has applied what the primary journaled before it");
  }
  if (s.switch_step == kStepFence) {
    Value x;
    x["stop"] = forced;
    Value a = x;
    a["name"] = name;
    a["action"] = "fence";
    a["epoch"] = static_cast<int64_t>(s.switch_epoch);
    // A lost site does not answer at all (a partition): do not wait long for it when forced.
    auto r = CallPeerSite(s, MgmtOp::kGeorepPeerSwitch, a, forced ? 2000 : 5000, forced ? 5000 : 60000);
    if (!r.ok()) {
      if (!forced) return r.status();
      DRFS_RETURN_IF_ERROR(record([&](SessionConf& n) { n.switch_step = kStepPromote; }));
      return Progress(kStepFence, "the primary " + Site(s) + " cannot be reached (" + r.status().message() +
                                      "); it fences itself when it comes back and sees epoch " +
                                      std::to_string(s.switch_epoch) + " here");
    }
    if (!r->GetBool("fenced")) {
      return Progress(kStepFence, "waiting for the primary's bricks to restart read-only: " + r->GetString("writable"), true);
    }
    DRFS_RETURN_IF_ERROR(record([&](SessionConf& n) {
      n.switch_step = forced ? kStepPromote : kStepDrain;
      n.switch_started_ns = static_cast<int64_t>(NowNs());  // the drain's checkpoint comes after this
    }));
    return Progress(kStepFence, "the primary " + Site(s) + " is fenced: its bricks are read-only and its mounts get EROFS");
  }
  if (s.switch_step == kStepDrain) {
    Value x;
    x["after_ns"] = s.switch_started_ns;
    DRFS_ASSIGN_OR_RETURN(Value r, peer("checkpoint", x));
    if (!r.GetBool("completed")) {
      return Progress(kStepDrain, "waiting for this site to apply the primary's last writes" +
                                      (r.GetString("behind").empty() ? "" : " (" + r.GetString("behind") + ")"),
                      true);
    }
    DRFS_RETURN_IF_ERROR(record([&](SessionConf& n) { n.switch_step = kStepPromote; }));
    return Progress(kStepDrain, "drained: this site has applied every write the primary acknowledged");
  }
  if (s.switch_step == kStepPromote) {
    if (s.role == kRoleSecondary) {
      // The applier stops first: nothing may change the volume between reading where it stands
      // and the journals' ends, and the new primary's syncers start after those.
      if (s.state != kSessionStopped) {
        const uint64_t t0 = MonotonicNs();
        DRFS_RETURN_IF_ERROR(record([&](SessionConf& n) { n.state = kSessionStopped; }));
        const uint64_t t1 = MonotonicNs();
        Reconcile(host_.config());
        DRFS_LOG(Info) << "georep " << name << ": promote: session stopped in " << (t1 - t0) / 1000000
                       << " ms, applier stopped in " << (MonotonicNs() - t1) / 1000000 << " ms";
      }
      Value aa;
      aa["name"] = name;
      DRFS_ASSIGN_OR_RETURN(Value ap, ApplierStatus(aa));
      if (ap.GetString("state") != "Stopped") {
        return Progress(kStepPromote, "waiting for the applier to stop (it is " + ap.GetString("state") + ")", true);
      }
      std::map<std::string, std::string> divergence;
      for (const auto& p : ap.Find("positions") ? ap.Find("positions")->AsList() : Value::List{}) {
        Divergence d{static_cast<uint64_t>(p.GetInt("epoch")), static_cast<uint64_t>(p.GetInt("lsn")),
                     static_cast<uint64_t>(p.GetInt("ts_ns")), p.GetString("source_brick")};
        divergence["rs" + std::to_string(p.GetInt("replica_set"))] = EncodeDivergence(d);
      }
      DRFS_ASSIGN_OR_RETURN(auto ends, JournalEnds(s));
      const uint64_t t2 = MonotonicNs();
      DRFS_RETURN_IF_ERROR(record([&](SessionConf& n) {
        n.role = kRolePrimary;
        n.epoch = n.switch_epoch;
        n.state = kSessionStarted;
        n.fenced = false;
        n.start_lsns = ends;
        n.divergence = divergence;
        n.promoted_ns = static_cast<int64_t>(NowNs());
        n.broker_node = n.kafka.empty() ? host_.node_uuid : "";
        n.applier_node.clear();
        n.checkpoint_ns = 0;
        n.switch_step = kStepDemotePeer;
      }));
      const uint64_t t3 = MonotonicNs();
      Reconcile(host_.config());
      DRFS_LOG(Info) << "georep " << name << ": promote: role recorded in " << (t3 - t2) / 1000000
                     << " ms (its bricks restart writable), workers started in "
                     << (MonotonicNs() - t3) / 1000000 << " ms";
      std::string where, lost;
      for (const auto& [rs, d] : divergence) where += (where.empty() ? "" : ", ") + rs + " at " + d;
      if (forced) {
        // What may be lost: whatever the old primary acknowledged after the newest journal time
        // applied here.
        uint64_t newest = 0;
        for (const auto& [rs, text] : divergence) {
          if (auto d = DecodeDivergence(text)) newest = std::max(newest, d->ts_ns);
        }
        const uint64_t now = NowNs();
        lost = newest == 0 ? "; nothing of epoch " + std::to_string(s.epoch) + " had been applied from the old primary: "
                             "whatever it acknowledged since it became the primary may not be here (failback will "
                             "not overwrite it)"
                           : "; writes the old primary acknowledged after " + FormatTimeMillis(newest) + " (" +
                                 std::to_string((now > newest ? now - newest : 0) / 1000000) +
                                 " ms before the promotion) may not be here (failback will not overwrite them)";
      }
      DRFS_LOG(Warn) << "georep " << name << ": volume " << s.volume << " promoted to primary at epoch "
                     << s.switch_epoch << " (applied positions: " << (where.empty() ? "none" : where) << ")";
      return Progress(kStepPromote, "promoted: " + host_.hostname + "::" + s.volume +
                                        " is the primary at epoch " + std::to_string(s.switch_epoch) +
                                        " and takes writes (last applied: " + (where.empty() ? "nothing" : where) + ")" + lost);
    }
    DRFS_RETURN_IF_ERROR(record([&](SessionConf& n) { n.switch_step = kStepDemotePeer; }));
    return Progress(kStepPromote, "already promoted");
  }
  if (s.switch_step == kStepDemotePeer) {
    // Promoted when this site's bricks take writes: they restart without --read-only.
    DRFS_ASSIGN_OR_RETURN(auto ro, BricksInMode(s, /*writable=*/false));
    if (!ro.empty()) return Progress(kStepPromote, "waiting for this site's bricks to restart writable: " + ro, true);
    if (forced) {
      // The old primary may hold writes that never arrived here: it stays fenced (the fence step
      // told it, or it fences itself when it comes back), as the primary of the old epoch, until
      // `failback` brings it back as the secondary.
      DRFS_RETURN_IF_ERROR(record([&](SessionConf& n) { n.switch_step = kStepDone; }));
      return Progress(kStepDemotePeer, "the old primary " + Site(s) + " stays fenced until 'drfs georep failback " +
                                           name + "' (it fences itself if it was away)");
    }
    auto r = peer("demote");
    if (!r.ok()) {
      return Status(r.status().code(), "the old primary " + Site(s) + " cannot be told to become the secondary (" +
                                           r.status().message() + "); it is fenced. Run the command again once it "
                                           "answers, or add --force to finish without it (it then rejoins at failback)");
    }
    DRFS_RETURN_IF_ERROR(record([&](SessionConf& n) { n.switch_step = kStepDone; }));
    return Progress(kStepDemotePeer, Site(s) + " is now the secondary at epoch " + std::to_string(s.switch_epoch) +
                                         "; it applies what changes here from now on");
  }
  if (s.switch_step == kStepDone) {
    DRFS_RETURN_IF_ERROR(record([&](SessionConf& n) {
      n.switch_kind.clear();
      n.switch_step.clear();
      n.switch_started_ns = 0;
      n.switch_epoch = 0;
    }));
    Value r = Progress(kStepDone, s.switch_kind + " of session " + name + " done: " + host_.hostname +
                                      "::" + s.volume + " is the primary at epoch " + std::to_string(s.epoch));
    r["done"] = true;
    return r;
  }
  return DataLoss("session " + name + " records an unknown switch step '" + s.switch_step + "'");
}

// ---- fencing a returning primary

void Georep::WatchPeers() {
  std::unique_lock<std::mutex> l(watch_mu_);
  while (!watch_stop_) {
    watch_cv_.wait_for(l, 2s, [&] { return watch_stop_; });
    if (watch_stop_) return;
    l.unlock();
    const ClusterConfig c = host_.config();
    for (const auto& kv : c.sessions) {
      const std::string& n = kv.first;  // not a structured binding: the txn lambda uses both
      const SessionConf& s = kv.second;
      if (s.role != kRolePrimary || s.fenced || !s.switch_step.empty()) continue;
      // One node of the pool asks: the broker's, or the one of the volume's first brick.
      std::string asker = s.broker_node;
      if (asker.empty()) {
        auto vit = c.volumes.find(s.volume);
        if (vit != c.volumes.end() && !vit->second.bricks.empty()) asker = vit->second.bricks[0].node_uuid;
      }
      if (asker != host_.node_uuid) continue;
      Value a;
      a["name"] = n;
      a["action"] = "probe";
      auto r = CallPeerSite(s, MgmtOp::kGeorepPeerSwitch, a, 2000, 5000);
      if (!r.ok()) continue;
      const uint64_t peer_epoch = static_cast<uint64_t>(r->GetInt("epoch"));
      if (r->GetString("role") != kRolePrimary || peer_epoch <= s.epoch) continue;
      std::lock_guard<std::mutex> g(switch_mu_);
      auto secret = NewApplierSecret();
      Status st = host_.run_txn([&](ClusterConfig* next) -> Status {
        auto it = next->sessions.find(n);
        if (it == next->sessions.end() || it->second.fenced || it->second.epoch != s.epoch) return Status::Ok();
        it->second.fenced = true;
        it->second.state = kSessionStopped;
        if (it->second.applier_secret.empty() && secret.ok()) it->second.applier_secret = *secret;
        return Status::Ok();
      }).status();
      if (st.ok()) {
        DRFS_LOG(Error) << "georep " << n << ": " << Site(s) << " was promoted to primary at epoch " << peer_epoch
                        << " while this site was away (it is at epoch " << s.epoch << "): volume " << s.volume
                        << " is fenced (read-only) and the session stopped; run 'drfs georep failback " << n
                        << "' to make this site the primary again";
      } else {
        DRFS_LOG(Error) << "georep " << n << ": cannot fence volume " << s.volume << " after " << Site(s)
                        << " was promoted past this site: " << st.ToString();
      }
    }
    l.lock();
  }
}

}  // namespace drfs::mgmt
