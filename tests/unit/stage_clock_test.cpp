// StageClock (include/diffgentor/stage_clock.hpp): laps in order, split time, and the settle hook that makes a CUDA
// row's stage times its own work (the hook stands in for waiting on the device).
#include "diffgentor/stage_clock.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace dg {
namespace {

using namespace std::chrono_literals;

TEST(StageClock, EachLapRecordsTheTimeSinceThePreviousOneUnderItsName) {
  EditResult result;
  StageClock clock(result);
  std::this_thread::sleep_for(30ms);
  clock.lap("encode");
  clock.lap("denoise");
  ASSERT_EQ(result.stage_seconds.size(), 2u);
  EXPECT_EQ(result.stage_seconds[0].first, "encode");
  EXPECT_GE(result.stage_seconds[0].second, 0.030);
  EXPECT_EQ(result.stage_seconds[1].first, "denoise");
  EXPECT_GE(result.stage_seconds[1].second, 0.0);
}

TEST(StageClock, SplitTimeIsTakenOutOfTheRunningStage) {
  EditResult result;
  const auto t0 = std::chrono::steady_clock::now();
  StageClock clock(result);
  std::this_thread::sleep_for(60ms);
  clock.split("ar_decode", 0.040);  // 40 of the 60 ms were spent inside, already measured
  clock.lap("ar");
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(result.stage_seconds.size(), 2u);
  EXPECT_EQ(result.stage_seconds[0].first, "ar_decode");
  EXPECT_DOUBLE_EQ(result.stage_seconds[0].second, 0.040);
  EXPECT_GE(result.stage_seconds[1].second, 0.020 - 1e-6);
  EXPECT_LE(result.stage_seconds[1].second, total - 0.040);  // the split's 40 ms are not counted twice
}

// Work the host launched but the device has not finished belongs to the stage that launched it: the settle hook
// runs before the clock starts and before each lap reads it, so a wait counts for the stage that ends there, and
// neither for the next one nor (at the start) for the first.
TEST(StageClock, SettleRunsAtTheStartAndBeforeEachLapAndItsWaitCountsForTheStageEndingThere) {
  using Clock = std::chrono::steady_clock;
  const auto seconds = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  EditResult result;
  int settles = 0;
  Clock::time_point started, waited;  // when the constructor's wait ended; when the first lap's did
  StageClock clock(result, [&] {
    if (++settles > 2) return;
    std::this_thread::sleep_for(30ms);  // 1: earlier work still running; 2: the first stage's kernels
    (settles == 1 ? started : waited) = Clock::now();
  });
  clock.lap("denoise");
  const auto first_lap = Clock::now();
  clock.lap("vae_decode");
  const auto end = Clock::now();
  EXPECT_EQ(settles, 3);
  ASSERT_EQ(result.stage_seconds.size(), 2u);
  EXPECT_GE(result.stage_seconds[0].second, 0.030);                        // the lap's wait is denoise's ...
  EXPECT_LE(result.stage_seconds[0].second, seconds(started, first_lap));  // ... and the constructor's is not
  EXPECT_LE(result.stage_seconds[1].second, seconds(waited, end));         // nor is it vae_decode's
}

}  // namespace
}  // namespace dg
