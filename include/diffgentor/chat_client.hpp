#pragma once
/// A minimal OpenAI-compatible `POST {base}/chat/completions` client over libcurl: TLS verification on,
/// http/https only, a whole-request timeout, a cap on the reply size, and bounded retries with
/// exponential backoff plus jitter on timeouts, connection errors, 429 and 5xx (a `Retry-After` header
/// is honoured); other 4xx fail at once. The API key goes into the Authorization header only and is
/// never part of an error message.
#include <cstdint>
#include <stdexcept>
#include <string>

namespace dg {

struct ChatClientOptions {
  std::string api_base;  ///< e.g. https://api.openai.com/v1 (no trailing /chat/completions)
  std::string api_key;
  double timeout_s = 300;
  int max_retries = 3;         ///< extra attempts after the first
  double retry_delay_s = 1.0;  ///< first backoff; doubles, +/-25 % jitter; Retry-After wins when given
  int64_t max_reply_bytes = int64_t(4) << 20;
};

struct ChatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class ChatClient {
 public:
  explicit ChatClient(ChatClientOptions options);
  /// Sends `request_json` and returns the reply body (HTTP 2xx). Throws ChatError with a short reason
  /// ("HTTP 401 Unauthorized ...", "timed out after 0.5 s", "connection refused", ...) and attempts.
  std::string post(const std::string& request_json) const;
  const ChatClientOptions& options() const { return options_; }
  std::string endpoint() const;

 private:
  ChatClientOptions options_;
};

/// `text` with every occurrence of `secret` replaced by "***".
std::string redact(std::string text, const std::string& secret);

/// Base64 (RFC 4648, with padding).
std::string base64_encode(const std::string& bytes);

}  // namespace dg
