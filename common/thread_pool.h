// ThreadPool: a fixed set of worker threads running submitted tasks in FIFO order.
//
// The brick uses one for disk I/O so that network threads never block on the disk. Shutdown is a
// gate (Seastar's pattern): Submit() is refused from then on, tasks already queued still run,
// and the destructor joins every worker; no thread outlives the pool.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace drfs {

class ThreadPool {
 public:
  ThreadPool(int threads, std::string name);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues `task`; false once Shutdown() has begun (the task is not run).
  bool Submit(std::function<void()> task);
  // Refuses new tasks, runs the queued ones, joins the workers. Idempotent.
  void Shutdown();
  size_t queued() const;

 private:
  void Run();

  const std::string name_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool closing_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace drfs
