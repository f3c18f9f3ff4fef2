#include "diffgentor/http.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "http_server.hpp"
#include "process.hpp"

using namespace dg;
using dg::test::HttpServer;

namespace {

HttpOptions fast(int retries) {
  HttpOptions o;
  o.timeout_s = 5;
  o.retries = retries;
  o.retry_delay_s = 0.01;
  return o;
}

std::string failure(const std::string& url, const HttpOptions& o) {
  try {
    fetch_url(url, o);
  } catch (const HttpError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Http, DownloadsAndRetriesServerErrors) {
  HttpServer server;
  server.put("a.png", std::string("\x89PNG-bytes\0with-nul", 19));
  EXPECT_EQ(fetch_url(server.url("/file/a.png"), fast(0)), std::string("\x89PNG-bytes\0with-nul", 19));
  EXPECT_EQ(fetch_url(server.url("/flaky/2/a.png"), fast(2)).size(), 19u);  // 503, 503, then 200
  EXPECT_EQ(server.hits("/flaky/2/a.png"), 3);
  const std::string msg = failure(server.url("/flaky/5/a.png"), fast(1));
  EXPECT_NE(msg.find("after 2 attempts: HTTP status 503"), std::string::npos) << msg;
}

TEST(Http, NoRetryOnNotFound) {
  HttpServer server;
  const std::string msg = failure(server.url("/file/missing.png"), fast(3));
  EXPECT_NE(msg.find("HTTP status 404"), std::string::npos) << msg;
  EXPECT_NE(msg.find("after 1 attempt:"), std::string::npos) << msg;
  EXPECT_EQ(server.hits("/file/missing.png"), 1);
}

TEST(Http, ClosedPortAndTimeoutFailWithReasons) {
  const dg::test::ClosedPort closed;
  const std::string url = closed.url("/x.png");
  const std::string refused = failure(url, fast(1));
  EXPECT_NE(refused.find(url), std::string::npos);
  EXPECT_NE(refused.find("after 2 attempts"), std::string::npos) << refused;

  HttpServer server;
  server.put("s.png", "slow");
  HttpOptions o = fast(0);
  o.timeout_s = 0.3;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string slow = failure(server.url("/slow/3000/s.png"), o);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_NE(slow.find("imed out"), std::string::npos) << slow;
  EXPECT_NE(failure("ftp://127.0.0.1/x", o), "");
}

TEST(Http, CacheServesRepeatDownloads) {
  dg::test::TempDir d;
  HttpOptions o = fast(0);
  o.cache_dir = d / "cache";
  std::string url;
  {
    HttpServer server;
    server.put("c.png", "cached-bytes");
    url = server.url("/file/c.png");
    bool cached = true;
    EXPECT_EQ(fetch_url(url, o, &cached), "cached-bytes");
    EXPECT_FALSE(cached);
    EXPECT_FALSE(std::filesystem::exists(cache_path_for(*o.cache_dir, url)));  // the caller decides what is kept
    cache_store(url, "cached-bytes", o);
    EXPECT_EQ(fetch_url(url, o, &cached), "cached-bytes");
    EXPECT_TRUE(cached);
    EXPECT_EQ(server.hits("/file/c.png"), 1);
  }
  EXPECT_TRUE(std::filesystem::is_regular_file(cache_path_for(*o.cache_dir, url)));
  EXPECT_EQ(fetch_url(url, o), "cached-bytes");  // server gone: served from the cache
}
