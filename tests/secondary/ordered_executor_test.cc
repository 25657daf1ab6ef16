// OrderedExecutor: tasks that share a resource run in submission order (exclusive against
// anything, shared against shared overlaps), independent tasks overlap, and the first failure
// in submission order is the one reported.
#include "secondary/detail/ordered_executor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace drfs::secondary::detail {
namespace {

using Res = OrderedExecutor::Resource;
using namespace std::chrono_literals;

TEST(OrderedExecutor, TasksOnOneResourceRunInOrder) {
  OrderedExecutor ex(8);
  std::mutex mu;
  std::vector<int> seen;
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(ex.Submit({Res{"x", true}}, [&, i] {
      if (i % 7 == 0) std::this_thread::sleep_for(1ms);
      std::lock_guard<std::mutex> l(mu);
      seen.push_back(i);
      return Status::Ok();
    }));
  }
  ASSERT_TRUE(ex.Wait().ok());
  ASSERT_EQ(seen.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(seen[static_cast<size_t>(i)], i);
}

// Each task waits (up to 10 s) until another one is running too: if the executor ran them one
// at a time, none would ever see a second one. No timing is assumed, only that overlap happens.
TEST(OrderedExecutor, IndependentTasksOverlapAndSharedHoldersToo) {
  OrderedExecutor ex(4);
  std::mutex mu;
  std::condition_variable cv;
  int running = 0, most = 0;
  auto task = [&] {
    std::unique_lock<std::mutex> l(mu);
    ++running;
    most = std::max(most, running);
    cv.notify_all();
    cv.wait_for(l, 10s, [&] { return most >= 2; });
    --running;
    return Status::Ok();
  };
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(ex.Submit({Res{"o" + std::to_string(i), true}}, task));
  ASSERT_TRUE(ex.Wait().ok());
  EXPECT_EQ(most, 2) << "independent tasks never ran at once";
  most = 0;
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(ex.Submit({Res{"dir", false}}, task));
  ASSERT_TRUE(ex.Wait().ok());
  EXPECT_EQ(most, 2) << "shared holders never ran at once";
}

TEST(OrderedExecutor, AnExclusiveHolderWaitsForTheSharedOnesBeforeItAndBlocksTheOnesAfter) {
  OrderedExecutor ex(8);
  std::mutex mu;
  std::vector<std::string> log;
  auto note = [&](std::string what, std::chrono::milliseconds d) {
    return [&, what, d] {
      std::this_thread::sleep_for(d);
      std::lock_guard<std::mutex> l(mu);
      log.push_back(what);
      return Status::Ok();
    };
  };
  // Children made inside a directory (shared), the directory removed (exclusive), then a
  // child again (shared): the removal comes after both earlier children and before the last.
  ASSERT_TRUE(ex.Submit({Res{"d", false}, Res{"d/a", true}}, note("a", 30ms)));
  ASSERT_TRUE(ex.Submit({Res{"d", false}, Res{"d/b", true}}, note("b", 10ms)));
  ASSERT_TRUE(ex.Submit({Res{"d", true}}, note("rmdir", 0ms)));
  ASSERT_TRUE(ex.Submit({Res{"d", false}, Res{"d/c", true}}, note("c", 0ms)));
  ASSERT_TRUE(ex.Wait().ok());
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[2], "rmdir");
  EXPECT_EQ(log[3], "c");
}

TEST(OrderedExecutor, TheFirstFailureInSubmissionOrderIsReportedAndStopsSubmitting) {
  for (size_t workers : {size_t{1}, size_t{4}}) {
    OrderedExecutor ex(workers);
    std::atomic<int> ran{0};
    bool refused = false;
    for (int i = 0; i < 50 && !refused; ++i) {
      refused = !ex.Submit({Res{"k" + std::to_string(i % 3), true}}, [&, i] {
        ++ran;
        if (i == 10) {
          std::this_thread::sleep_for(5ms);
          return Status(Code::kUnavailable, "ten");
        }
        if (i == 11) return Status(Code::kUnavailable, "eleven");
        return Status::Ok();
      });
    }
    Status s = ex.Wait();
    EXPECT_EQ(s.message(), "ten") << "workers " << workers;
    EXPECT_LT(ran.load(), 50) << "submitting went on after a failure";
    // Usable again after Wait().
    EXPECT_TRUE(ex.Submit({Res{"k", true}}, [] { return Status::Ok(); }));
    EXPECT_TRUE(ex.Wait().ok());
  }
}

}  // namespace
}  // namespace drfs::secondary::detail
