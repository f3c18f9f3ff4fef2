#include "diffgentor/fs.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "diffgentor/progress.hpp"
#include "diffgentor/queue.hpp"
#include "process.hpp"

namespace fs = std::filesystem;
using dg::test::TempDir;

TEST(Fs, AtomicWriteCreatesFoldersAndLeavesNoTemporaryFile) {
  TempDir d;
  const std::string path = d / "a/b/c.bin";
  dg::write_file_atomic(path, std::string("x\0y", 3));
  EXPECT_EQ(dg::read_file_bytes(path), std::string("x\0y", 3));
  dg::write_file_atomic(path, "second");
  EXPECT_EQ(dg::read_file_bytes(path), "second");
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(d.path)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  EXPECT_THROW(dg::read_file_bytes(d / "missing"), std::runtime_error);
  EXPECT_THROW(dg::write_file_atomic("/proc/nope/x", "y"), std::runtime_error);
}

TEST(Fs, OnlyOldTemporaryFilesAreRemoved) {
  TempDir d;
  const std::string old_tmp = d / "sub/.000001.png.dgtmp.123.0", fresh_tmp = d / ".000002.png.dgtmp.456.0";
  dg::test::write_text(old_tmp, "partial");
  dg::test::write_text(fresh_tmp, "being written by another shard");
  dg::test::write_text(d / "000003.png", "done");
  fs::last_write_time(old_tmp, fs::file_time_type::clock::now() - std::chrono::hours(1));
  EXPECT_EQ(dg::remove_stale_temp_files(d.path), 1);
  EXPECT_FALSE(fs::exists(old_tmp));
  EXPECT_TRUE(fs::exists(fresh_tmp));
  EXPECT_TRUE(fs::exists(d / "000003.png"));
}

TEST(Queue, BoundedAndDrainsAfterClose) {
  dg::BoundedQueue<int> q(2);
  EXPECT_TRUE(q.push(1));
  EXPECT_TRUE(q.push(2));
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    q.push(3);
    pushed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(pushed);  // full: the producer waits
  EXPECT_EQ(q.pop(), 1);
  producer.join();
  EXPECT_TRUE(pushed);
  q.close();
  EXPECT_FALSE(q.push(4));
  EXPECT_EQ(q.pop(), 2);
  EXPECT_EQ(q.pop(), 3);
  EXPECT_EQ(q.pop(), std::nullopt);
}

TEST(Progress, DurationsAndBar) {
  EXPECT_EQ(dg::format_duration(3.2), "3s");
  EXPECT_EQ(dg::format_duration(125), "2m05s");
  EXPECT_EQ(dg::format_duration(3723), "1h02m03s");
  dg::Progress p(4);
  EXPECT_NE(p.bar().find("0/4"), std::string::npos);
  p.row_finished(true, "row ok");
  p.row_finished(false, "row failed");
  const std::string bar = p.bar();
  EXPECT_NE(bar.find("2/4 (1 failed)"), std::string::npos) << bar;
  EXPECT_NE(bar.find("rows/s ETA"), std::string::npos);
  EXPECT_EQ(p.failed(), 1u);
  p.row_step(7, "denoise", 3, 28);  // a running row's denoising step shows until the row leaves
  EXPECT_NE(p.bar().find("| index 7 step 3/28"), std::string::npos) << p.bar();
  p.row_step(8, "ar", 120, 1024);  // another phase by its name
  EXPECT_NE(p.bar().find("| index 7 step 3/28 | index 8 ar 120/1024"), std::string::npos) << p.bar();
  p.row_left(7);
  EXPECT_EQ(p.bar().find("index 7"), std::string::npos) << p.bar();
}
