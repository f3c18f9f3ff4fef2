#pragma once
/// Downloads of http(s) input images with libcurl: timeouts, bounded retries with exponential
/// backoff on connection errors, timeouts, 429 and 5xx (never on other 4xx), a size cap, and an
/// optional on-disk cache (--image_cache_dir) written atomically.
#include <atomic>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace dg {

struct HttpOptions {
  double timeout_s = 60.0;     ///< whole transfer; connecting gets min(timeout, 15 s)
  int retries = 3;             ///< extra attempts after the first
  double retry_delay_s = 0.5;  ///< first backoff; doubles each attempt
  int64_t max_bytes = int64_t(512) << 20;
  std::optional<std::string> cache_dir;
  const std::atomic<bool>* stop = nullptr;  ///< when set, a transfer or backoff ends within about a second
};

struct HttpError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Call once before any thread downloads.
void http_global_init();

/// True for http:// and https:// references.
bool is_url(const std::string& ref);

/// The URL's body: from the cache when it holds it (then `*from_cache` is set), else downloaded. Nothing is
/// cached here: the caller stores a body with cache_store once it knows the body is good (an image that
/// decodes). Throws HttpError with the URL, the last status or curl error, and the attempts.
std::string fetch_url(const std::string& url, const HttpOptions& options, bool* from_cache = nullptr);

/// Stores a good body in the cache (if one is set). A cache that cannot be written is skipped with one
/// warning for the whole process, never a failed row.
void cache_store(const std::string& url, const std::string& body, const HttpOptions& options);

/// Removes a cached body that turned out to be bad.
void cache_forget(const std::string& url, const HttpOptions& options);

/// The cache file that holds `url` below `cache_dir` (a stable 64-bit FNV-1a name).
std::string cache_path_for(const std::string& cache_dir, const std::string& url);

}  // namespace dg
