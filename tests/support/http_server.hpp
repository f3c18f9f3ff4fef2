#pragma once
// A real HTTP/1.1 server on 127.0.0.1 (ephemeral port) for download tests. Routes:
//   /file/<name>          200 with the bytes registered under <name>, else 404
//   /flaky/<n>/<name>     503 for the first <n> requests of that path, then like /file/<name>
//   /slow/<ms>/<name>     waits <ms> before answering like /file/<name>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace dg::test {

struct HttpRequest {
  std::string method, path, body;
  std::map<std::string, std::string> headers;  ///< names lower-cased
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::map<std::string, std::string> headers;
  int delay_ms = 0;  ///< wait before answering
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&, int hit)>;
  HttpServer();
  /// Answers every request with `handler` (hit = how many times this path was asked, from 1).
  void set_handler(Handler handler);
  ~HttpServer();
  void put(const std::string& name, const std::string& bytes);
  std::string url(const std::string& path) const;
  int hits(const std::string& path);
  int port() const { return port_; }

 private:
  void serve();
  void handle(int fd);
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<std::string, std::string> files_;
  std::map<std::string, int> hits_;
  Handler handler_;
  std::thread thread_;
};

/// A port on 127.0.0.1 that refuses connections for as long as this object lives: bound without SO_REUSEADDR (so no
/// other socket, of this process or another, is given it) and never listening. Freeing the port instead would let
/// the server of a test running in parallel bind it and answer the requests meant to fail.
class ClosedPort {
 public:
  ClosedPort();
  ~ClosedPort();
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;
  /// http://127.0.0.1:<port><path>
  std::string url(const std::string& path) const;

 private:
  int port_ = 0;
  int fd_;
};

}  // namespace dg::test
