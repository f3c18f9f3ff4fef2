// Resume after a killed run, interrupts, and sharding that covers every row exactly once.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "e2e_util.hpp"

namespace fs = std::filesystem;
using namespace dg;
using namespace dg::test;

namespace {

std::string manifest_of(Workspace& ws, int rows) {
  ws.image("a.png", 8, 8);
  std::string csv = "image,instruction\n";
  for (int k = 0; k < rows; ++k) csv += "a.png,row " + std::to_string(k) + "\n";
  return ws.file("m.csv", csv);
}

std::set<std::string> pngs(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& f : files_below(dir))
    if (f.size() > 4 && f.substr(f.size() - 4) == ".png" && f[0] != '.' && f.find('/') == std::string::npos)
      out.insert(f);
  return out;
}

bool wait_until(const std::function<bool()>& cond, int seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace

TEST(ResumeE2E, KilledRunLosesNothingAndRedoesNothing) {
  Workspace ws;
  const std::string m = manifest_of(ws, 10);
  const pid_t pid = ws.spawn_edit({"--input", m, "--seed", "1"}, {{"DG_TESTPIPE_DELAY_MS", "300"}});
  ASSERT_TRUE(wait_until([&] { return pngs(ws.out).size() >= 3; }, 60));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  const std::set<std::string> images = pngs(ws.out);
  ASSERT_LT(images.size(), 10u);
  for (const auto& f : images) EXPECT_EQ(read_image(ws.out + "/" + f).width, 8) << f;  // no half files
  // Done = image and record (the journal survived the kill); a kill between the two leaves an image that the
  // next run makes again.
  std::set<std::string> done_before;
  for (const auto& r : ws.results().records)
    if (images.count(r.at("output_image"))) done_before.insert(r.at("output_image"));
  EXPECT_GE(done_before.size() + 1, images.size());

  const std::string log = ws.dir / "second.log";
  const ProcessResult r = ws.edit({"--input", m, "--seed", "1"}, {{"DG_TESTPIPE_CALL_LOG", log}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(pngs(ws.out).size(), 10u);
  const auto redone = call_log(log);
  EXPECT_EQ(redone.size(), 10 - done_before.size());
  for (int idx : redone) EXPECT_EQ(done_before.count(fmt::format("{:06d}.png", idx)), 0u) << "redid " << idx;
  const RecordTable res = ws.results();
  EXPECT_EQ(res.records.size(), 10u);
  EXPECT_EQ(ws.failures().records.size(), 0u);
}

TEST(ResumeE2E, ResumeSkipsAndNoResumeRedoes) {
  Workspace ws;
  const std::string m = manifest_of(ws, 4);
  ASSERT_EQ(ws.edit({"--input", m}).exit_code, 0);
  const std::string log = ws.dir / "calls.log";
  ProcessResult r = ws.edit({"--input", m}, {{"DG_TESTPIPE_CALL_LOG", log}});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.err.find("nothing to do"), std::string::npos) << r.err;
  EXPECT_TRUE(call_log(log).empty());
  fs::remove(ws.out + "/000002.png");
  ASSERT_EQ(ws.edit({"--input", m}, {{"DG_TESTPIPE_CALL_LOG", log}}).exit_code, 0);
  EXPECT_EQ(call_log(log), (std::vector<int>{2}));
  ASSERT_EQ(ws.edit({"--input", m, "--no_resume"}, {{"DG_TESTPIPE_CALL_LOG", log}}).exit_code, 0);
  EXPECT_EQ(call_log(log).size(), 5u);
  EXPECT_EQ(ws.results().records.size(), 4u);
}

TEST(ResumeE2E, InterruptFinishesRowsInFlightAndExits130) {
  Workspace ws;
  const std::string m = manifest_of(ws, 10);
  const pid_t pid = ws.spawn_edit({"--input", m}, {{"DG_TESTPIPE_DELAY_MS", "300"}});
  ASSERT_TRUE(wait_until([&] { return pngs(ws.out).size() >= 2; }, 60));
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  const auto done = pngs(ws.out);
  EXPECT_LT(done.size(), 10u);
  EXPECT_EQ(ws.results().records.size(), done.size());  // every written image is in results.csv
  ASSERT_EQ(ws.edit({"--input", m}).exit_code, 0);
  EXPECT_EQ(ws.results().records.size(), 10u);
}

TEST(ShardE2E, ThreeShardsCoverEveryRowExactlyOnce) {
  Workspace ws;
  const std::string m = manifest_of(ws, 10);
  std::vector<pid_t> pids;
  std::vector<std::string> logs;
  for (int rank = 0; rank < 3; ++rank) {
    logs.push_back(ws.dir / ("shard" + std::to_string(rank) + ".log"));
    pids.push_back(ws.spawn_edit({"--input", m, "--num_nodes", "3", "--node_rank", std::to_string(rank)},
                                 {{"DG_TESTPIPE_CALL_LOG", logs.back()}, {"DG_TESTPIPE_DELAY_MS", "30"}}));
  }
  for (pid_t p : pids) {
    int status = 0;
    ::waitpid(p, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::vector<int> all;
  std::vector<std::set<int>> per_shard;
  for (const auto& log : logs) {
    const auto calls = call_log(log);
    EXPECT_FALSE(calls.empty());
    all.insert(all.end(), calls.begin(), calls.end());
    per_shard.emplace_back(calls.begin(), calls.end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(ws.results().records.size(), 10u);  // the last shard to finish merged them all
  EXPECT_TRUE(fs::exists(ws.out + "/results.shard-1-of-3.csv"));

  // Shards never move: with rows of shard 0 missing again, shard 1 still finds nothing to do.
  fs::remove(ws.out + "/000000.png");
  const std::string again = ws.dir / "again.log";
  ASSERT_EQ(
      ws.edit({"--input", m, "--num_nodes", "3", "--node_rank", "1"}, {{"DG_TESTPIPE_CALL_LOG", again}}).exit_code, 0);
  EXPECT_TRUE(call_log(again).empty());
  ASSERT_EQ(
      ws.edit({"--input", m, "--num_nodes", "3", "--node_rank", "0"}, {{"DG_TESTPIPE_CALL_LOG", again}}).exit_code, 0);
  EXPECT_EQ(call_log(again), (std::vector<int>{0}));
}

TEST(ShardE2E, SchedulerEnvironmentShards) {
  Workspace ws;
  const std::string m = manifest_of(ws, 7);
  std::vector<int> all;
  for (int rank = 0; rank < 3; ++rank) {
    const std::string log = ws.dir / ("env" + std::to_string(rank) + ".log");
    const ProcessResult r = ws.edit({"--input", m}, {{"DG_TESTPIPE_CALL_LOG", log},
                                                     {"SLURM_ARRAY_TASK_ID", std::to_string(rank)},
                                                     {"SLURM_ARRAY_TASK_COUNT", "3"}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find(fmt::format("shard {} of 3 (slurm-array)", rank)), std::string::npos) << r.err;
    for (int v : call_log(log)) all.push_back(v);
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(ws.results().records.size(), 7u);
}
