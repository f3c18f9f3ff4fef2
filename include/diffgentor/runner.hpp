#pragma once
/// The batch runner (docs/batch-runner.md, "Stages"). Three stages joined by bounded queues:
///   prepare  (--prefetch threads, at least --enhance_workers with an enhancer): read or download
///            inputs, decode, orient, check limits, enhance the prompt
///   model    (one thread per pipeline replica): Pipeline::edit_batch with --max_retries
///   write    (the calling thread): encode, write atomically, append results/failures journals
/// so the model never waits on disk or network. A failing row is recorded and the batch goes on.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "diffgentor/enhancer.hpp"
#include "diffgentor/pipeline.hpp"
#include "diffgentor/plan.hpp"
#include "diffgentor/progress.hpp"

namespace dg {

struct RunSummary {
  std::size_t succeeded = 0;
  std::size_t failed = 0;
  std::size_t not_run = 0;            ///< left for a later run after an interrupt
  std::size_t unrecorded = 0;         ///< rows (counted in `failed`) whose record could not be written: redone later
  std::size_t enhance_fallbacks = 0;  ///< succeeded rows whose prompt enhancement fell back to the original
  bool interrupted = false;
  int64_t device_peak_mib = -1;  ///< the most GPU memory any row's counters report (device_peak_mib); -1: none did
  std::string merge_error;       ///< set when the final merge into results.csv failed (the journals keep the rows)
};

/// Rows finished so far, readable while the run goes on (the grace-period watchdog reports them).
struct LiveCounts {
  std::atomic<std::size_t> succeeded{0};
  std::atomic<std::size_t> failed{0};
};

/// Runs `plan.todo` through `replicas`. `stop` (set by SIGINT/SIGTERM) stops taking new rows; rows
/// already finished are written. Results and failures are merged into their files before returning.
/// `events` receives row_start (a row enters the model stage), row_done and row_failed (docs/batch-runner.md,
/// "Progress events").
RunSummary run_batch(Plan& plan, const EditOptions& options, const std::vector<Pipeline*>& replicas,
                     const std::atomic<bool>& stop, const PromptEnhancer* enhancer = nullptr,
                     LiveCounts* live = nullptr, EventLog* events = nullptr);

}  // namespace dg
