#include "diffgentor/chat_client.hpp"

#include <curl/curl.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

#include "diffgentor/http.hpp"

namespace dg {

std::string base64_encode(const std::string& in) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += table[(v >> s) & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < in.size() ? table[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string redact(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  for (std::size_t p = text.find(secret); p != std::string::npos; p = text.find(secret, p))
    text.replace(p, secret.size(), "***");
  return text;
}

ChatClient::ChatClient(ChatClientOptions options) : options_(std::move(options)) {
  while (!options_.api_base.empty() && options_.api_base.back() == '/') options_.api_base.pop_back();
}

std::string ChatClient::endpoint() const { return options_.api_base + "/chat/completions"; }

namespace {

struct Reply {
  std::string body;
  int64_t limit = 0;
  bool too_large = false;
  double retry_after = -1;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Reply*>(user);
  if (static_cast<int64_t>(r->body.size() + size * n) > r->limit) {
    r->too_large = true;
    return 0;
  }
  r->body.append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Reply*>(user);
  std::string line(data, size * n);
  if (line.size() > 12 && strncasecmp(line.c_str(), "retry-after:", 12) == 0) {
    const double v = std::atof(line.c_str() + 12);
    if (v >= 0) r->retry_after = v;
  }
  return size * n;
}

struct Attempt {
  std::string body, error;
  bool retryable = false;
  double retry_after = -1;
};

}  // namespace

std::string ChatClient::post(const std::string& request) const {
  http_global_init();
  static thread_local std::mt19937 jitter_rng{std::random_device{}()};
  double delay = options_.retry_delay_s;
  Attempt a;
  int tries = 0;
  for (;;) {
    ++tries;
    a = Attempt{};
    Reply reply;
    reply.limit = options_.max_reply_bytes;
    CURL* curl = curl_easy_init();
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip for large bodies
    headers = curl_slist_append(headers, ("Authorization: Bearer " + options_.api_key).c_str());
    const std::string url = endpoint();
    const long timeout_ms = static_cast<long>(options_.timeout_s * 1000);
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(curl, CURLOPT_POSTREDIR, static_cast<long>(CURL_REDIR_POST_ALL));  // keep the POST
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms, 15000L));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.size()));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "diffgentor/" DG_VERSION);
    const CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);

    if (reply.too_large) {
      a.error = fmt::format("reply larger than {} bytes", options_.max_reply_bytes);
    } else if (rc != CURLE_OK) {
      a.error = rc == CURLE_OPERATION_TIMEDOUT ? fmt::format("timed out after {} s", options_.timeout_s)
                : rc == CURLE_COULDNT_CONNECT  ? "connection refused"
                                               : std::string(curl_easy_strerror(rc));
      a.retryable = rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                    rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR || rc == CURLE_GOT_NOTHING ||
                    rc == CURLE_PARTIAL_FILE || rc == CURLE_SSL_CONNECT_ERROR;
    } else if (status < 200 || status >= 300) {
      const std::string hint = status == 401 || status == 403 ? " (check DG_PROMPT_ENHANCER_API_KEY)"
                               : status == 404                ? " (check DG_PROMPT_ENHANCER_API_BASE)"
                                                              : "";
      a.error = fmt::format("HTTP {}{}: {}", status, hint, reply.body.substr(0, 200));
      a.retryable = status == 429 || status >= 500;
      a.retry_after = reply.retry_after;
    } else {
      return reply.body;
    }
    if (!a.retryable || tries > options_.max_retries) break;
    double wait = delay * std::uniform_real_distribution<double>(0.75, 1.25)(jitter_rng);
    if (a.retry_after >= 0) wait = std::min(a.retry_after, options_.timeout_s);
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    delay *= 2;
  }
  throw ChatError(
      redact(fmt::format("{} (after {} attempt{})", a.error, tries, tries == 1 ? "" : "s"), options_.api_key));
}

}  // namespace dg
