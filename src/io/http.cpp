#include "diffgentor/http.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "diffgentor/fs.hpp"

namespace dg {

bool is_url(const std::string& ref) { return ref.rfind("http://", 0) == 0 || ref.rfind("https://", 0) == 0; }

void http_global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string cache_path_for(const std::string& cache_dir, const std::string& url) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : url) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return (std::filesystem::path(cache_dir) / fmt::format("{:016x}.img", h)).string();
}

namespace {

struct Sink {
  std::string body;
  int64_t max_bytes = 0;
  bool overflow = false;
  const std::atomic<bool>* stop = nullptr;
};

// libcurl calls this several times a second while a transfer runs: a stop request aborts it.
int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* sink = static_cast<Sink*>(user);
  return sink->stop && sink->stop->load() ? 1 : 0;
}

size_t on_data(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const size_t n = size * count;
  if (static_cast<int64_t>(sink->body.size() + n) > sink->max_bytes) {
    sink->overflow = true;
    return 0;  // aborts the transfer
  }
  sink->body.append(data, n);
  return n;
}

struct Attempt {
  std::string body;
  std::string error;  // empty on success
  bool retryable = false;
};

Attempt attempt(const std::string& url, const HttpOptions& opt) {
  Attempt a;
  CURL* curl = curl_easy_init();
  if (!curl) return {"", "curl_easy_init failed", false};
  Sink sink;
  sink.max_bytes = opt.max_bytes;
  sink.stop = opt.stop;
  char errbuf[CURL_ERROR_SIZE] = {0};
  const long timeout_ms = static_cast<long>(opt.timeout_s * 1000);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms, 15000L));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &sink);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "diffgentor/" DG_VERSION);
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  if (sink.overflow) return {"", fmt::format("larger than {} bytes", opt.max_bytes), false};
  if (rc == CURLE_ABORTED_BY_CALLBACK) return {"", "interrupted (the run is stopping)", false};
  if (rc != CURLE_OK) {
    a.error = *errbuf ? errbuf : curl_easy_strerror(rc);
    a.retryable = rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                  rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR || rc == CURLE_GOT_NOTHING ||
                  rc == CURLE_PARTIAL_FILE || rc == CURLE_SSL_CONNECT_ERROR;
    return a;
  }
  if (status < 200 || status >= 300) {
    a.error = fmt::format("HTTP status {}", status);
    a.retryable = status == 429 || status >= 500;
    return a;
  }
  a.body = std::move(sink.body);
  return a;
}

}  // namespace

std::string fetch_url(const std::string& url, const HttpOptions& opt, bool* from_cache) {
  http_global_init();
  if (from_cache) *from_cache = false;
  if (opt.cache_dir) {
    const std::string cached = cache_path_for(*opt.cache_dir, url);
    std::error_code ec;
    if (std::filesystem::is_regular_file(cached, ec)) {
      if (from_cache) *from_cache = true;
      return read_file_bytes(cached);
    }
  }
  double delay = opt.retry_delay_s;
  Attempt a;
  int tries = 0;
  for (;;) {
    ++tries;
    a = attempt(url, opt);
    if (a.error.empty() || !a.retryable || tries > opt.retries) break;
    // The backoff sleeps in short slices so that a stop request ends it within 100 ms.
    for (const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(delay);
         std::chrono::steady_clock::now() < until;) {
      if (opt.stop && opt.stop->load()) throw HttpError(fmt::format("download of {}: interrupted", url));
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(
          100, std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count() +
                   1)));
    }
    delay *= 2;
  }
  if (!a.error.empty())
    throw HttpError(
        fmt::format("download of {} failed after {} attempt{}: {}", url, tries, tries == 1 ? "" : "s", a.error));
  return a.body;
}

void cache_store(const std::string& url, const std::string& body, const HttpOptions& opt) {
  if (!opt.cache_dir) return;
  try {
    write_file_atomic(cache_path_for(*opt.cache_dir, url), body);
  } catch (const std::exception& e) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
      spdlog::warn("the image cache {} cannot be written ({}); downloads go on without it", *opt.cache_dir, e.what());
  }
}

void cache_forget(const std::string& url, const HttpOptions& opt) {
  if (!opt.cache_dir) return;
  std::error_code ec;
  std::filesystem::remove(cache_path_for(*opt.cache_dir, url), ec);
}

}  // namespace dg
