// `diffgentor report` end to end: a real tiny run (make-tiny, a row that fails), the report of it, and the page
// loaded in a real headless Chromium (Debian's `chromium`, installed by `./setup.sh test`): no console message, the
// expected cards in the DOM its script built, and a screenshot.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <regex>

#include "e2e_util.hpp"

namespace fs = std::filesystem;
using namespace dg::test;

namespace {

ProcessResult run(std::vector<std::string> argv, TempDir& dir) {
  static int n = 0;
  return run_process(argv, {}, dir / ("io" + std::to_string(n++)));
}

// Debian's chromium on PATH ("" when it is not installed: ./setup.sh test installs it).
std::string chromium_path() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin";
  for (std::size_t b = 0; b <= dirs.size();) {
    const std::size_t e = std::min(dirs.find(':', b), dirs.size());
    const fs::path p = fs::path(dirs.substr(b, e - b)) / "chromium";
    if (::access(p.c_str(), X_OK) == 0) return p.string();
    b = e + 1;
  }
  return "";
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

}  // namespace

TEST(ReportE2E, ATinyRunInHeadlessChromium) {
  TempDir d;
  Workspace ws;
  const std::string bundle = d / "Qwen-Image-Edit-tiny";
  ProcessResult r = run({DG_MAIN_BIN, "make-tiny", "--model_type", "qwen_singleimg", "--out", bundle}, d);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string a = ws.image("a.png", 96, 64, 1), b = ws.image("b.png", 64, 64, 2);
  const std::string m =
      ws.file("m.csv", "image,instruction\n" + a + ",make the sky <b>purple</b>\n" + b +
                           ",\"add \"\"quotes\"\" and caf\xc3\xa9\"\n" + a + ",snow\nmissing.png,never made\n");
  const std::string out = d / "out";
  r = run({DG_MAIN_BIN, "edit", "--model_name", bundle, "--model_type", "qwen_singleimg", "--input", m, "--output_dir",
           out, "--num_inference_steps", "2", "--seed", "0"},
          d);
  ASSERT_EQ(r.exit_code, 1) << r.err;  // the missing image fails its row
  r = run({DG_MAIN_BIN, "report", "--output_dir", out, "--input", m}, d);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("report.html: 4 card(s); 3 done, 1 failed, 0 pending"), std::string::npos) << r.out;
  const dg::Image thumb = read_image(out + "/report_files/0.jpg");  // the project's resize: at most 256 px
  EXPECT_EQ(thumb.width, 256);
  EXPECT_EQ(thumb.height, 171);  // 1248x832 output

  const std::string page = "file://" + out + "/report.html";
  const std::string browser = chromium_path();
  ASSERT_FALSE(browser.empty()) << "no chromium on PATH: ./setup.sh test installs Debian's package";
  const std::vector<std::string> chromium{browser,
                                          "--headless",
                                          "--no-sandbox",
                                          "--disable-gpu",
                                          "--disable-dev-shm-usage",
                                          "--enable-logging=stderr",
                                          "--v=0",
                                          "--user-data-dir=" + (d / "profile")};
  std::vector<std::string> dump = chromium;
  dump.insert(dump.end(), {"--dump-dom", page});
  r = run(dump, d);
  ASSERT_EQ(r.exit_code, 0) << "chromium (Debian's package; ./setup.sh test installs it): " << r.err;
  EXPECT_EQ(count(r.err, ":CONSOLE"), 0u) << r.err;  // no error, warning or log from the page
  EXPECT_EQ(count(r.out, "class=\"card\""), 3u) << r.out;
  EXPECT_EQ(count(r.out, "class=\"card failed\""), 1u);
  EXPECT_NE(r.out.find("data-cards=\"4\""), std::string::npos);
  EXPECT_NE(r.out.find("make the sky &lt;b&gt;purple&lt;/b&gt;"), std::string::npos);  // text, not markup
  EXPECT_NE(r.out.find("failed at read: "), std::string::npos);
  EXPECT_NE(r.out.find("src=\"report_files/0.jpg\""), std::string::npos);

  std::vector<std::string> shot = chromium;
  shot.insert(shot.end(), {"--window-size=1280,900", "--screenshot=" + (d / "shot.png"), page});
  r = run(shot, d);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const dg::Image png = read_image(d / "shot.png");
  EXPECT_EQ(png.width, 1280);
  EXPECT_EQ(png.height, 900);
}
