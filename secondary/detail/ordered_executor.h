// OrderedExecutor: runs a sequence of tasks on a few threads, in an order that respects their
// conflicts. Each task names the resources it touches, each shared or exclusive; a task starts
// only once no task submitted before it, still running, holds one of its resources in a
// conflicting mode (shared with shared is fine, anything with exclusive is not). Tasks that
// touch nothing in common run at once.
//
// The applier uses it so that the ops of a batch on different objects go to the secondary's
// bricks concurrently (their round trips overlap), while ops on one object, one directory
// entry, or a directory and what is in it keep the primary's order.
//
// Submit() is called from one thread, in order. It blocks while the task conflicts with a
// running one or all workers are busy (so an earlier conflicting task always starts first, and
// nothing is queued behind the caller's back). After the first task that fails, Submit()
// refuses new tasks (returns false) and Wait() returns that failure; among several failures,
// the one submitted first. Wait() returns once every started task has finished; the executor
// can then be used again. With `workers` <= 1 tasks run inline, in the caller's thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <deque>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"

namespace drfs::secondary::detail {

class OrderedExecutor {
 public:
  struct Resource {
    std::string key;
    bool exclusive = true;
  };

  explicit OrderedExecutor(size_t workers) : workers_(workers) {
    if (workers_ <= 1) return;
    for (size_t i = 0; i < workers_; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~OrderedExecutor() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  OrderedExecutor(const OrderedExecutor&) = delete;
  OrderedExecutor& operator=(const OrderedExecutor&) = delete;

  // False (and `fn` not run) once a task has failed: stop submitting and call Wait().
  bool Submit(std::vector<Resource> res, std::function<Status()> fn) {
    const size_t seq = next_seq_++;
    if (threads_.empty()) {
      if (!first_error_.ok()) return false;
      Status s = fn();
      if (!s.ok()) {
        first_error_ = std::move(s);
        first_error_seq_ = seq;
      }
      return first_error_.ok();
    }
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [&] { return !first_error_.ok() || (running_ < workers_ && Free(res)); });
    if (!first_error_.ok()) return false;
    for (const auto& r : res) {
      Hold& h = held_[r.key];
      if (r.exclusive) h.exclusive = true;
      else ++h.shared;
    }
    ++running_;
    queue_.push_back(Task{seq, std::move(res), std::move(fn)});
    l.unlock();
    cv_.notify_one();
    return true;
  }

  Status Wait() {
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [&] { return running_ == 0; });
    Status s = std::move(first_error_);
    first_error_ = Status::Ok();
    return s;
  }

 private:
  struct Hold {
    int shared = 0;
    bool exclusive = false;
  };
  struct Task {
    size_t seq;
    std::vector<Resource> res;
    std::function<Status()> fn;
  };

  bool Free(const std::vector<Resource>& res) const {
    for (const auto& r : res) {
      auto it = held_.find(r.key);
      if (it == held_.end()) continue;
      if (it->second.exclusive || (r.exclusive && it->second.shared > 0)) return false;
    }
    return true;
  }

  void Work() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      Task t = std::move(queue_.front());
      queue_.pop_front();
      l.unlock();
      Status s = t.fn();
      l.lock();
      for (const auto& r : t.res) {
        auto it = held_.find(r.key);
        if (r.exclusive) it->second.exclusive = false;
        else --it->second.shared;
        if (!it->second.exclusive && it->second.shared == 0) held_.erase(it);
      }
      if (!s.ok() && (first_error_.ok() || t.seq < first_error_seq_)) {
        first_error_ = std::move(s);
        first_error_seq_ = t.seq;
      }
      --running_;
      done_cv_.notify_all();
    }
  }

  const size_t workers_;
  size_t next_seq_ = 0;  // the submitting thread's only
  std::mutex mu_;
  std::condition_variable cv_;       // workers: a task queued, or stopping
  std::condition_variable done_cv_;  // the submitter: a task finished
  std::deque<Task> queue_;           // at most `workers_` long: Submit waits for a free worker
  std::unordered_map<std::string, Hold> held_;
  size_t running_ = 0;  // queued or running
  Status first_error_;
  size_t first_error_seq_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;  // last: started once everything above exists
};

}  // namespace drfs::secondary::detail
