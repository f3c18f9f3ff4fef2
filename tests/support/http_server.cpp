#include "http_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <stdexcept>
#include <vector>

namespace dg::test {

namespace {

int bind_loopback(int* port, bool reuse) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (reuse) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("bind failed");
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

void send_all(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

ClosedPort::ClosedPort() : fd_(bind_loopback(&port_, false)) {}

ClosedPort::~ClosedPort() { ::close(fd_); }

std::string ClosedPort::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

HttpServer::HttpServer() {
  listen_fd_ = bind_loopback(&port_, true);
  ::listen(listen_fd_, 16);
  thread_ = std::thread([this] { serve(); });
}

HttpServer::~HttpServer() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
}

void HttpServer::set_handler(Handler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  handler_ = std::move(handler);
}

void HttpServer::put(const std::string& name, const std::string& bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  files_[name] = bytes;
}

std::string HttpServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

int HttpServer::hits(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  return hits_[path];
}

void HttpServer::serve() {
  std::vector<std::thread> workers;
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0)
      workers.emplace_back([this, fd] {
        try {
          handle(fd);
        } catch (const std::exception&) {  // a malformed request (a stray client's): drop it, never terminate
          ::close(fd);
        }
      });
  }
  for (auto& w : workers) w.join();
}

void HttpServer::handle(int fd) {
  std::string req;
  char buf[4096];
  while (req.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    req.append(buf, static_cast<std::size_t>(n));
  }
  const auto sp1 = req.find(' '), sp2 = req.find(' ', sp1 + 1);
  std::string path = sp1 == std::string::npos ? "/" : req.substr(sp1 + 1, sp2 - sp1 - 1);
  HttpRequest request;
  request.method = req.substr(0, sp1);
  request.path = path;
  const auto head_end = req.find("\r\n\r\n");
  for (std::size_t pos = req.find("\r\n"); pos != std::string::npos && pos < head_end;) {
    const auto next = req.find("\r\n", pos + 2);
    const std::string line = req.substr(pos + 2, next - pos - 2);
    const auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      request.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    pos = next;
  }
  if (head_end != std::string::npos) {
    request.body = req.substr(head_end + 4);
    const auto len = request.headers.count("content-length") ? std::stoul(request.headers["content-length"]) : 0ul;
    while (request.body.size() < len) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      request.body.append(buf, static_cast<std::size_t>(n));
    }
  }
  int count;
  Handler handler;
  {
    std::lock_guard<std::mutex> lock(mu_);
    count = ++hits_[path];
    handler = handler_;
  }
  if (handler) {
    const HttpResponse r = handler(request, count);
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(r.delay_ms);
    while (!stop_ && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::string head = "HTTP/1.1 " + std::to_string(r.status) +
                       " X\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\nConnection: close\r\n";
    for (const auto& [k, v] : r.headers) head += k + ": " + v + "\r\n";
    send_all(fd, head + "\r\n" + r.body);
    ::close(fd);
    return;
  }
  auto reply = [&](int status, const std::string& body) {
    const char* text = status == 200 ? "OK" : status == 404 ? "Not Found" : "Service Unavailable";
    send_all(fd, "HTTP/1.1 " + std::to_string(status) + " " + text +
                     "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
  };
  auto split = [](const std::string& rest) {
    const auto slash = rest.find('/');
    return std::make_pair(rest.substr(0, slash), slash == std::string::npos ? std::string() : rest.substr(slash + 1));
  };
  std::string name;
  if (path.rfind("/flaky/", 0) == 0) {
    auto [n, rest] = split(path.substr(7));
    if (count <= std::stoi(n)) {
      reply(503, "try later");
      ::close(fd);
      return;
    }
    name = rest;
  } else if (path.rfind("/slow/", 0) == 0) {
    auto [ms, rest] = split(path.substr(6));
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::stoi(ms));
    while (!stop_ && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    name = rest;
  } else if (path.rfind("/file/", 0) == 0) {
    name = path.substr(6);
  }
  std::string body;
  bool found;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(name);
    found = it != files_.end();
    if (found) body = it->second;
  }
  reply(found ? 200 : 404, found ? body : "no such file");
  ::close(fd);
}

}  // namespace dg::test
