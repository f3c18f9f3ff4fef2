// `--progress jsonl` / `--progress_file`: the event stream (docs/batch-runner.md, "Progress events") and the
// end-of-run summary.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "e2e_util.hpp"

using namespace dg;
using namespace dg::test;
using nlohmann::json;

namespace {

std::vector<json> events_of(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));  // every line is one object
  return out;
}

}  // namespace

TEST(ProgressE2E, JsonlEventsOnStdoutAndInAFile) {
  Workspace ws;
  ws.image("a.png", 8, 8);
  const std::string m = ws.file("m.csv", "image,instruction\na.png,one\na.png,FAIL_ALWAYS two\na.png,three\n");
  const std::string file = ws.dir / "events.jsonl";
  ProcessResult r = ws.edit({"--input", m, "--progress", "jsonl", "--progress_file", file, "--max_retries", "0",
                             "--seed", "5", "--num_inference_steps", "3"});
  ASSERT_EQ(r.exit_code, 1) << r.err;
  const std::vector<json> ev = events_of(r.out);  // stdout holds the events and nothing else
  ASSERT_GE(ev.size(), 2u);
  EXPECT_EQ(ev.front()["event"], "run_start");
  EXPECT_EQ(ev.front()["todo"], 3);
  EXPECT_EQ(ev.front()["shard"]["count"], 1);
  EXPECT_EQ(ev.back()["event"], "run_end");
  EXPECT_EQ(ev.back()["succeeded"], 2);
  EXPECT_EQ(ev.back()["failed"], 1);
  EXPECT_GT(ev.back()["wall_s"].get<double>(), 0.0);
  EXPECT_TRUE(ev.back().contains("device_peak_mib") && ev.back()["device_peak_mib"].is_null()) << "a CPU run";
  std::map<std::string, int> count;
  for (const auto& e : ev) {
    ++count[e["event"].get<std::string>()];
    EXPECT_EQ(e["time"].get<std::string>().size(), 24u) << e.dump();  // 2026-11-30T12:00:00.000Z
  }
  EXPECT_EQ(count["row_start"], 3);
  EXPECT_EQ(count["row_done"], 2);
  EXPECT_EQ(count["row_failed"], 1);
  EXPECT_EQ(count["step"], 2 * 3);  // the rows that reached the denoising loop, 3 steps each
  for (const auto& e : ev) {
    if (e["event"] == "step") {
      EXPECT_EQ(e["steps"], 3) << e.dump();
      EXPECT_EQ(e["phase"], "denoise") << e.dump();
    }
  }
  for (const auto& e : ev)
    if (e["event"] == "row_failed") {
      EXPECT_EQ(e["index"], 1);
      EXPECT_EQ(e["stage"], "model");
    } else if (e["event"] == "row_done") {
      EXPECT_TRUE(e.contains("time_model_s") && e.contains("output")) << e.dump();
    }
  std::ifstream in(file);
  std::stringstream saved;
  saved << in.rdbuf();
  EXPECT_EQ(events_of(saved.str()).size(), ev.size());
  EXPECT_NE(r.err.find("done: 2 succeeded, 1 failed, 0 skipped (done before)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rows/s"), std::string::npos) << r.err;

  // Nothing left to do still opens and closes the stream; the finished rows count as skipped.
  r = ws.edit(
      {"--input", m, "--progress", "jsonl", "--filter_rows", "0,2", "--seed", "5", "--num_inference_steps", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<json> again = events_of(r.out);
  ASSERT_EQ(again.size(), 2u) << r.out;
  EXPECT_EQ(again[1]["event"], "run_end");
  EXPECT_EQ(again[1]["skipped"], 2);
}
