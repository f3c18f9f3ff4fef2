#pragma once
/// Logging and progress: spdlog to stderr (plus a file under --log_dir), one line per finished row,
/// and on a terminal a progress bar with rate and ETA kept on the last line under the log.
#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>

namespace dg {

/// Sets up the default logger. `log_file` adds a file sink. Returns true when stderr is a terminal
/// (the progress bar is drawn only then).
bool setup_logging(const std::optional<std::string>& log_file, bool verbose);

/// "1h02m03s", "2m03s" or "3s".
std::string format_duration(double seconds);

class Progress {
 public:
  explicit Progress(std::size_t total);
  ~Progress();
  /// Counts a finished row and logs `line`, keeping the bar (if any) below it.
  void row_finished(bool ok, const std::string& line);
  std::size_t done() const;
  std::size_t failed() const;
  /// "[=====>     ] 12/40 (1 failed) 0.83 rows/s ETA 34s".
  std::string bar() const;

 private:
  std::size_t total_, done_ = 0, failed_ = 0;
  std::chrono::steady_clock::time_point start_;
  mutable std::mutex mu_;
};

}  // namespace dg
