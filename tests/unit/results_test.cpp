#include "diffgentor/results.hpp"

#include <gtest/gtest.h>

#include "process.hpp"

using namespace dg;
using dg::test::read_text;
using dg::test::TempDir;
using dg::test::write_text;

TEST(Results, JournalKeepsEarlierRowsAndAddsColumns) {
  TempDir d;
  const std::string path = d / "results.csv";
  write_text(path, "index,a\n1,old\n2,kept\n");
  {
    Journal j(path, {"index", "a", "b"});
    j.append({{"index", "1"}, {"a", "new"}, {"b", "x,y"}});
    j.append({{"index", "3"}, {"b", "z"}, {"ignored", "q"}});
  }
  const RecordTable t = RecordTable::load(path);
  EXPECT_EQ(t.columns, (std::vector<std::string>{"index", "a", "b"}));
  ASSERT_EQ(t.records.size(), 3u);  // one per index, the later record winning
  EXPECT_EQ(t.find("1")->at("a"), "new");
  EXPECT_EQ(t.find("1")->at("b"), "x,y");
  EXPECT_EQ(t.find("2")->at("a"), "kept");
  EXPECT_EQ(t.find("3")->count("ignored"), 0u);
}

TEST(Results, TornLastLineFromACrashIsDropped) {
  TempDir d;
  const std::string path = d / "results.csv";
  write_text(path, "index,a\n1,x\n2,\"half");
  const RecordTable t = RecordTable::load(path);
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].at("index"), "1");
  { Journal j(path, {"index", "a"}); }  // compaction rewrites the file whole
  EXPECT_EQ(read_text(path), "index,a\n1,x\n");
}

TEST(Results, RecordsSortNumericallyAndOrphansLast) {
  RecordTable t;
  for (const char* i : {"10", "9", "-1", "100"}) t.upsert({{"index", i}});
  t.upsert({{"line", "7"}});
  std::vector<std::string> keys;
  for (const auto& r : t.records) keys.push_back(record_key(r));
  EXPECT_EQ(keys, (std::vector<std::string>{"-1", "9", "10", "100", "line:7"}));
}

TEST(Results, ShardJournalsMergeAndFailuresDoneLaterAreDropped) {
  TempDir d;
  const std::string results = d / "results.csv", failures = d / "failures.csv";
  EXPECT_EQ(shard_journal_path(results, 1, 3), d / "results.shard-1-of-3.csv");
  EXPECT_EQ(shard_journal_path(results, 0, 1), results);
  write_text(results, "index,v,finished_at\n0,from-earlier-run,2026-01-01T00:00:00.000Z\n");
  write_text(shard_journal_path(results, 0, 2), "index,v,finished_at\n1,s0,2026-01-02T00:00:00.000Z\n");
  write_text(shard_journal_path(results, 1, 2),
             "index,v,finished_at\n0,redone,2026-01-03T00:00:00.000Z\n2,s1,2026-01-02T00:00:00.000Z\n");
  const RecordTable merged = merge_journals(results);
  ASSERT_EQ(merged.records.size(), 3u);
  EXPECT_EQ(merged.find("0")->at("v"), "redone");
  EXPECT_EQ(RecordTable::load(results).records.size(), 3u);

  write_text(failures,
             "index,reason,finished_at\n1,older failure,2026-01-01T00:00:00.000Z\n"
             "5,still failing,2026-01-02T00:00:00.000Z\n");
  const RecordTable f = merge_journals(failures, &merged);
  ASSERT_EQ(f.records.size(), 1u);
  EXPECT_EQ(f.records[0].at("index"), "5");
}
