#include "diffgentor/progress.hpp"

#include <fmt/format.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <stdexcept>

namespace dg {

namespace {

// Writes log lines to stderr; while a progress bar is active it clears the bar's line first and
// redraws the bar after, so the bar always stays at the bottom.
class BarAwareSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit BarAwareSink(bool tty) : tty_(tty) {}
  void set_bar(std::function<std::string()> bar) {
    std::lock_guard<std::mutex> lock(mutex_);
    bar_ = std::move(bar);
    if (!bar_ && tty_) std::fputs("\r\033[K", stderr);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    if (bar_ && tty_) std::fputs("\r\033[K", stderr);
    std::fwrite(buf.data(), 1, buf.size(), stderr);
    if (bar_ && tty_) std::fputs(bar_().c_str(), stderr);
    std::fflush(stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  bool tty_;
  std::function<std::string()> bar_;
};

std::shared_ptr<BarAwareSink>& console_sink() {
  static std::shared_ptr<BarAwareSink> sink;
  return sink;
}

}  // namespace

bool setup_logging(const std::optional<std::string>& log_file, bool verbose) {
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  console_sink() = std::make_shared<BarAwareSink>(tty);
  std::vector<spdlog::sink_ptr> sinks{console_sink()};
  if (log_file) sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(*log_file));
  auto logger = std::make_shared<spdlog::logger>("diffgentor", sinks.begin(), sinks.end());
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v");
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return tty;
}

std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms);
}

std::string format_duration(double s) {
  if (s < 0) s = 0;
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m{:02}s", t / 3600, (t / 60) % 60, t % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

Progress::Progress(std::size_t total, bool bar) : total_(total), bar_(bar), start_(std::chrono::steady_clock::now()) {
  if (auto& sink = console_sink(); sink && total_ > 0 && bar_) sink->set_bar([this] { return this->bar(); });
}

EventLog::EventLog(bool to_stdout, const std::optional<std::string>& file) : to_stdout_(to_stdout) {
  if (!file) return;
  path_ = *file;
  file_ = std::fopen(path_.c_str(), "a");
  if (!file_) throw std::runtime_error(fmt::format("--progress_file {}: cannot open it for appending", path_));
}

EventLog::~EventLog() {
  if (file_) std::fclose(file_);
}

void EventLog::emit(const std::string& name, const std::string& json_object) {
  if (!enabled()) return;
  // {"event": ..., "time": ..., <fields>}: the fields' object with its opening brace replaced.
  const std::string rest = json_object.size() > 2 ? "," + json_object.substr(1) : "}";
  const std::string line = fmt::format("{{\"event\":\"{}\",\"time\":\"{}\"{}\n", name, utc_now(), rest);
  std::lock_guard<std::mutex> lock(mu_);
  if (to_stdout_) {
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
  }
  if (file_ && (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)) {
    spdlog::error("--progress_file {}: cannot write ({}); no further events go there", path_, std::strerror(errno));
    std::fclose(file_);
    file_ = nullptr;
  }
}

Progress::~Progress() {
  if (auto& sink = console_sink()) sink->set_bar(nullptr);
}

void Progress::row_finished(bool ok, const std::string& line) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++done_;
    if (!ok) ++failed_;
  }
  if (ok)
    spdlog::info("{}", line);
  else
    spdlog::warn("{}", line);
}

void Progress::row_step(int64_t index, const std::string& phase, int step, int steps) {
  std::lock_guard<std::mutex> lock(mu_);
  steps_[index] = {phase == "denoise" ? "step" : phase, step, steps};
}

void Progress::row_left(int64_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  steps_.erase(index);
}

std::size_t Progress::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

std::size_t Progress::failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_;
}

std::string Progress::bar() const {
  std::lock_guard<std::mutex> lock(mu_);
  constexpr int width = 30;
  const double frac = total_ ? double(done_) / double(total_) : 1.0;
  const int filled = static_cast<int>(frac * width);
  std::string b(static_cast<std::size_t>(filled), '=');
  if (filled < width) b += '>' + std::string(static_cast<std::size_t>(width - filled - 1), ' ');
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? double(done_) / elapsed : 0.0;
  const std::string eta = rate > 0 ? format_duration(double(total_ - done_) / rate) : "?";
  const std::string failed = failed_ ? fmt::format(" ({} failed)", failed_) : "";
  std::string running;
  for (const auto& [index, st] : steps_)
    running += fmt::format(" | index {} {} {}/{}", index, st.phase, st.step, st.steps);
  return fmt::format("[{}] {}/{}{} {:.2f} rows/s ETA {}{}", b, done_, total_, failed, rate, eta, running);
}

}  // namespace dg
