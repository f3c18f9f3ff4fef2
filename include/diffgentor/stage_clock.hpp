#pragma once
/// Per-stage timing of one row: each lap appends the seconds since the previous lap to the row's
/// EditResult::stage_seconds under a stage name (results.csv's `stage_times`, the bench's breakdown).
#include <chrono>
#include <functional>
#include <utility>

#include "diffgentor/pipeline.hpp"

namespace dg {

class StageClock {
 public:
  /// `settle`, when given, runs before each lap reads the clock: on CUDA it waits for the device, whose kernels run
  /// after the host has moved on, so that a stage's time is its own work and not the launch of it.
  explicit StageClock(EditResult& result, std::function<void()> settle = {})
      : result_(result), settle_(std::move(settle)), last_(std::chrono::steady_clock::now()) {}

  /// Records the time since the previous lap (or construction) as `stage`.
  void lap(const char* stage) {
    if (settle_) settle_();
    const auto now = std::chrono::steady_clock::now();
    result_.stage_seconds.emplace_back(stage, std::chrono::duration<double>(now - last_).count());
    last_ = now;
  }

  /// Counts `seconds` already spent inside the running stage as a separate stage.
  void split(const char* stage, double seconds) {
    result_.stage_seconds.emplace_back(stage, seconds);
    last_ += std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
  }

 private:
  EditResult& result_;
  std::function<void()> settle_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace dg
