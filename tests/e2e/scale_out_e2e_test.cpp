// `diffgentor status` and `diffgentor merge` on a sharded output folder (docs/scale-out.md), with the test
// pipeline writing the shards.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "e2e_util.hpp"

namespace fs = std::filesystem;
using namespace dg;
using namespace dg::test;

namespace {

// Seven rows, row 1 failing on every attempt.
std::string manifest(Workspace& ws) {
  ws.image("a.png", 8, 8);
  std::string csv = "image,instruction\n";
  for (int k = 0; k < 7; ++k) csv += k == 1 ? "a.png,FAIL_ALWAYS row 1\n" : "a.png,row " + std::to_string(k) + "\n";
  return ws.file("m.csv", csv);
}

ProcessResult tool(Workspace& ws, std::vector<std::string> args) {
  args.insert(args.begin(), DG_TESTPIPE_BIN);
  return run_process(args, {}, ws.io_dir());
}

std::vector<std::string> status_args(Workspace& ws, const std::string& m) {
  return {"status", "--model_name", ws.bundle, "--model_type", "qwen", "--output_dir", ws.out, "--input",
          m,        "--num_nodes",  "2",       "--seed",       "3"};
}

}  // namespace

TEST(ScaleOutE2E, StatusCountsEveryShardWithoutRunningAnything) {
  Workspace ws;
  const std::string m = manifest(ws);
  ProcessResult r = tool(ws, status_args(ws, m));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("shard 0 of 2: 3 rows, 0 done, 0 failed, 3 pending"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("shard 1 of 2: 4 rows, 0 done, 0 failed, 4 pending"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(ws.out + "/results.csv"));  // status writes nothing

  r = ws.edit({"--input", m, "--num_nodes", "2", "--node_rank", "0", "--seed", "3", "--max_retries", "0"});
  ASSERT_EQ(r.exit_code, 1) << r.err;  // row 1 failed
  r = tool(ws, status_args(ws, m));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("shard 0 of 2: 3 rows, 2 done, 1 failed, 0 pending"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("shard 1 of 2: 4 rows, 0 done, 0 failed, 4 pending"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("total: 7 rows, 2 done, 1 failed, 4 pending"), std::string::npos) << r.out;
}

TEST(ScaleOutE2E, MergeJoinsShardsReportsConflictsAndClearsStaleLocks) {
  Workspace ws;
  const std::string m = manifest(ws);
  for (const char* rank : {"0", "1"})
    ws.edit({"--input", m, "--num_nodes", "2", "--node_rank", rank, "--seed", "3", "--max_retries", "0"});
  fs::remove(ws.out + "/results.csv");  // as if no shard had merged yet
  fs::remove(ws.out + "/failures.csv");
  std::ofstream(ws.out + "/results.shard-0-of-2.csv.run.lock") << "pid 1 on gone-host";  // left by a killed run
  const int held = ::open((ws.out + "/held.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX | LOCK_NB), 0);

  // While a process holds a lock, a run may be writing: every lock file stays.
  ProcessResult r = tool(ws, {"merge", "--output_dir", ws.out});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("6 row(s) done, 1 failed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("kept        " + ws.out + "/held.lock"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no lock file was removed"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(ws.out + "/results.shard-0-of-2.csv.run.lock"));
  ::close(held);
  // Once nobody holds one, they are stale and go.
  r = tool(ws, {"merge", "--output_dir", ws.out});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("removed     stale lock " + ws.out + "/results.shard-0-of-2.csv.run.lock"), std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(ws.out + "/results.shard-0-of-2.csv.run.lock"));
  EXPECT_FALSE(fs::exists(ws.out + "/held.lock"));
  const RecordTable res = ws.results();
  std::vector<std::string> order;
  for (const auto& rec : res.records) order.push_back(rec.at("index"));
  EXPECT_EQ(order, (std::vector<std::string>{"0", "2", "3", "4", "5", "6"}));  // by index, each once
  ASSERT_EQ(ws.failures().records.size(), 1u);
  EXPECT_EQ(ws.failures().records[0].at("index"), "1");

  // A record of the row that an older version wrote (the settings under their plain names, no LoRA or requested
  // size) and that agrees with this version's record is no conflict.
  RecordTable other = RecordTable::load(ws.out + "/results.shard-1-of-2.csv");
  Record legacy;
  for (const auto& [key, value] : res.records[0])
    if (key != "loras" && key.rfind("requested_", 0) != 0)
      legacy[key.rfind("effective_", 0) == 0 ? key.substr(std::string("effective_").size()) : key] = value;
  legacy["finished_at"] = "2998-01-01T00:00:00.000Z";
  other.upsert(legacy);
  std::ofstream(ws.out + "/results.shard-1-of-2.csv") << other.to_csv();
  r = tool(ws, {"merge", "--output_dir", ws.out});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("conflict"), std::string::npos) << r.out;
  EXPECT_EQ(ws.results().find("0")->at("seed"), "3");  // the later record, as written

  // A row recorded by two shards with different settings is reported; the later record is kept.
  other = RecordTable::load(ws.out + "/results.shard-1-of-2.csv");
  Record copy = res.records[0];  // index 0, from shard 0
  copy["effective_seed"] = "999";
  copy["finished_at"] = "2999-01-01T00:00:00.000Z";
  other.upsert(copy);
  std::ofstream(ws.out + "/results.shard-1-of-2.csv") << other.to_csv();
  r = tool(ws, {"merge", "--output_dir", ws.out});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("conflict    index 0:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("differ in effective_seed ('3' vs '999')"), std::string::npos) << r.out;
  EXPECT_EQ(ws.results().find("0")->at("effective_seed"), "999");
  EXPECT_EQ(ws.results().records.size(), 6u);

  r = tool(ws, {"merge", "--output_dir", ws.out + "/nowhere"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("is not a folder"), std::string::npos) << r.err;
}
