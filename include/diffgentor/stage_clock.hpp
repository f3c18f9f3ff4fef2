#pragma once
/// Per-stage timing of one row: each lap appends the seconds since the previous lap to the row's
/// EditResult::stage_seconds under a stage name (results.csv's `stage_times`, the bench's breakdown).
#include <chrono>

#include "diffgentor/pipeline.hpp"

namespace dg {

class StageClock {
 public:
  explicit StageClock(EditResult& result) : result_(result), last_(std::chrono::steady_clock::now()) {}

  /// Records the time since the previous lap (or construction) as `stage`.
  void lap(const char* stage) {
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
  std::chrono::steady_clock::time_point last_;
};

}  // namespace dg
