#pragma once
/// Logging and progress: spdlog to stderr (plus a file under --log_dir), one line per finished row,
/// and on a terminal a progress bar with rate and ETA kept on the last line under the log.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace dg {

/// Sets up the default logger. `log_file` adds a file sink. Returns true when stderr is a terminal
/// (the progress bar is drawn only then).
bool setup_logging(const std::optional<std::string>& log_file, bool verbose);

/// "1h02m03s", "2m03s" or "3s".
std::string format_duration(double seconds);

/// Now in UTC with milliseconds, "2026-11-30T12:00:00.000Z" (results.csv's finished_at, the progress events).
std::string utc_now();

/// Progress events for programs (docs/batch-runner.md, "Progress events"): one JSON object per line, each with
/// "event" and "time" (UTC), written whole and flushed, to stdout (`--progress jsonl`) and/or appended to a file
/// (`--progress_file`). Thread-safe; a write error is logged once and the events stop, the run goes on.
class EventLog {
 public:
  EventLog(bool to_stdout, const std::optional<std::string>& file);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;
  bool enabled() const { return to_stdout_ || file_ != nullptr; }
  /// Writes `fields` (a JSON object's text without braces is not accepted: pass a dumped object) as event `name`.
  void emit(const std::string& name, const std::string& json_object);

 private:
  bool to_stdout_ = false;
  std::FILE* file_ = nullptr;
  std::string path_;
  std::mutex mu_;
};

class Progress {
 public:
  explicit Progress(std::size_t total, bool bar = true);
  ~Progress();
  /// Counts a finished row and logs `line`, keeping the bar (if any) below it.
  void row_finished(bool ok, const std::string& line);
  /// A running row's progress in a phase (EditRequest::on_step), shown on the bar until the row leaves (`row_left`):
  /// "step 3/28" while denoising, "ar 120/1024" or "upsample 40/512" in the other phases.
  void row_step(int64_t index, const std::string& phase, int step, int steps);
  void row_left(int64_t index);
  std::size_t done() const;
  std::size_t failed() const;
  /// "[=====>     ] 12/40 (1 failed) 0.83 rows/s ETA 34s | index 13 step 3/28".
  std::string bar() const;

 private:
  std::size_t total_, done_ = 0, failed_ = 0;
  bool bar_ = true;
  struct RowPhase {
    std::string phase;  ///< as shown: "step" (denoising), "ar", "upsample"
    int step = 0, steps = 0;
  };
  std::map<int64_t, RowPhase> steps_;  ///< running rows
  std::chrono::steady_clock::time_point start_;
  mutable std::mutex mu_;
};

}  // namespace dg
