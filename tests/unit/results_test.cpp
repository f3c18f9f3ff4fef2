#include "diffgentor/results.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <optional>
#include <thread>

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

// A hand-edited file: no final newline keeps the last record; a row missing a field is set aside (a .corrupt
// copy of the whole file is written before the rewrite); a header without `index` cannot be trusted.
TEST(Results, HandEditsNeverLoseACompleteRecord) {
  TempDir d;
  const std::string path = d / "results.csv";
  write_text(path, "index,a,b\n1,x,y\n2,only-two\n3,p,q");
  std::vector<int> aside;
  const RecordTable t = RecordTable::load(path, &aside);
  ASSERT_EQ(t.records.size(), 2u);
  EXPECT_EQ(t.find("3")->at("b"), "q");
  EXPECT_EQ(aside, (std::vector<int>{3}));
  { Journal j(path, {"index", "a", "b"}); }
  EXPECT_EQ(read_text(path), "index,a,b\n1,x,y\n3,p,q\n");
  int copies = 0;
  for (const auto& e : std::filesystem::directory_iterator(d.path))
    if (e.path().extension() == ".corrupt") {
      ++copies;
      EXPECT_EQ(read_text(e.path().string()), "index,a,b\n1,x,y\n2,only-two\n3,p,q");
    }
  EXPECT_EQ(copies, 1);

  write_text(path, "1,x,y\n2,z,w\n");
  EXPECT_THROW(RecordTable::load(path), ResultsError);
  EXPECT_THROW(Journal(path, {"index"}), ResultsError);
  EXPECT_EQ(read_text(path), "1,x,y\n2,z,w\n");  // untouched
  write_text(path, "index,a\n1,\"never closed\n2,b\n3,c\n");
  try {
    RecordTable::load(path);
    FAIL() << "no error";
  } catch (const ResultsError& e) {
    EXPECT_NE(std::string(e.what()).find("line 2: a quote opened here is never closed"), std::string::npos) << e.what();
  }
}

// Any number of writers on one file: appends from several journals and merges running beside them lose no line
// (each append goes to the file as it is under its lock; a merge rewrites it under the same lock).
TEST(Results, ConcurrentWritersLoseNoLine) {
  TempDir d;
  const std::string path = d / "results.csv";
  constexpr int kWriters = 4, kRows = 60;
  std::vector<std::thread> threads;
  std::atomic<int> running{kWriters};
  for (int w = 0; w < kWriters; ++w)
    threads.emplace_back([&, w] {
      Journal j(path, {"index", "writer", "finished_at"});
      for (int k = 0; k < kRows; ++k)
        j.append({{"index", std::to_string(w * kRows + k)}, {"writer", std::to_string(w)}, {"finished_at", "t"}});
      --running;
    });
  threads.emplace_back([&] {
    while (running > 0) merge_journals(path);
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(RecordTable::load(path).records.size(), static_cast<std::size_t>(kWriters * kRows));
}

// failures.csv never lists a row that results.csv has as done, whichever finished later.
TEST(Results, FailuresNeverListADoneRow) {
  TempDir d;
  const std::string results = d / "results.csv", failures = d / "failures.csv";
  write_text(results, "index,finished_at\n1,2026-01-01T00:00:00.000Z\n");
  write_text(failures,
             "index,reason,finished_at\n1,later failure,2026-01-05T00:00:00.000Z\n2,x,2026-01-05T00:00:00.000Z\n");
  const RecordTable done = merge_journals(results);
  const RecordTable f = merge_journals(failures, &done);
  ASSERT_EQ(f.records.size(), 1u);
  EXPECT_EQ(f.records[0].at("index"), "2");
}

// A second run of the same journal is refused while the first holds it, and may start once it is gone.
TEST(Results, RunLockRefusesASecondHolder) {
  TempDir d;
  const std::string path = d / "results.csv";
  std::optional<RunLock> first(std::in_place, path);
  try {
    RunLock second(path);
    FAIL() << "a second lock was granted";
  } catch (const ResultsError& e) {
    EXPECT_NE(std::string(e.what()).find("another diffgentor run (pid"), std::string::npos) << e.what();
  }
  first.reset();
  EXPECT_NO_THROW(RunLock again(path));
}
