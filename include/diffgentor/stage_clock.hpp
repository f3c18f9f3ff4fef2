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
  /// `settle`, when given, runs before the clock starts and before each lap reads it: on CUDA it waits for the
  /// device, whose kernels run after the host has moved on, so that a stage's time includes its kernels and not
  /// those of the work launched before it (in a batch, the rows' kernels are one stream of work: a stage's time is
  /// the batch's).
  explicit StageClock(EditResult& result, std::function<void()> settle = {})
      : result_(result), settle_(std::move(settle)) {
    if (settle_) settle_();  // work launched before the row's first stage (a LoRA switch) is not the first stage's
    last_ = std::chrono::steady_clock::now();
  }

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
