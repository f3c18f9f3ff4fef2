// The runner's guarantees (docs/batch-runner.md, "Guarantees") against the faults a batch meets: a second
// run on the same folder, a crash between an image and its record, hand-edited results, a manifest quote
// that never closes, changed settings, non-regular files, signals, and the messages and exit codes users see.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "diffgentor/csv.hpp"
#include "e2e_util.hpp"
#include "http_server.hpp"

namespace fs = std::filesystem;
using namespace dg;
using namespace dg::test;

namespace {

std::string rows_manifest(Workspace& ws, int rows, const std::string& name = "m.csv") {
  ws.image("a.png", 8, 8);
  std::string csv = "image,instruction\n";
  for (int k = 0; k < rows; ++k) csv += "a.png,row " + std::to_string(k) + "\n";
  return ws.file(name, csv);
}

bool wait_until(const std::function<bool()>& cond, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// Rewrites results.csv without the records of `drop` (as a crash before the append, or a hand edit, leaves it).
void drop_records(const Workspace& ws, const std::set<std::string>& drop) {
  RecordTable t = ws.results();
  RecordTable kept;
  kept.columns = t.columns;
  for (const auto& r : t.records)
    if (!drop.count(r.at("index"))) kept.records.push_back(r);
  write_text(ws.out + "/results.csv", kept.to_csv());
}

}  // namespace

// 1. A second run of the same shard on the same folder is refused at start-up; the first loses nothing.
TEST(GuaranteesE2E, ASecondRunOnTheSameFolderIsRefused) {
  Workspace ws;
  const std::string m = rows_manifest(ws, 6);
  const std::string io = ws.dir / ("run" + std::to_string(ws.runs));
  const pid_t first = ws.spawn_edit({"--input", m, "--seed", "1"}, {{"DG_TESTPIPE_DELAY_MS", "200"}});
  ASSERT_TRUE(wait_until([&] { return fs::exists(ws.out + "/results.csv.run.lock"); }, 30));
  const ProcessResult second = ws.edit({"--input", m, "--seed", "1"});
  EXPECT_EQ(second.exit_code, 3) << second.err;
  EXPECT_NE(second.err.find("another diffgentor run (pid"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("another --output_dir"), std::string::npos) << second.err;
  const ProcessResult r = wait_for(first, io);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ws.results().records.size(), 6u);
  // The lock ends with its process: a later run on the folder starts (and has nothing to do).
  const ProcessResult third = ws.edit({"--input", m, "--seed", "1"});
  EXPECT_EQ(third.exit_code, 0) << third.err;
  EXPECT_NE(third.err.find("nothing to do"), std::string::npos) << third.err;
}

// 1 (variant). The rule is per shard: a second copy of shard 1 of 2 is refused while shard 0 runs beside
// shard 1, and the merged results hold every row.
TEST(GuaranteesE2E, ShardsRunSideBySideButEachShardOnce) {
  Workspace ws;
  const std::string m = rows_manifest(ws, 8);
  const std::string io = ws.dir / ("run" + std::to_string(ws.runs));
  const pid_t one =
      ws.spawn_edit({"--input", m, "--node_rank", "1", "--num_nodes", "2"}, {{"DG_TESTPIPE_DELAY_MS", "300"}});
  ASSERT_TRUE(wait_until([&] { return fs::exists(ws.out + "/results.shard-1-of-2.csv.run.lock"); }, 30));
  ProcessResult r = ws.edit({"--input", m, "--node_rank", "1", "--num_nodes", "2"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("results.shard-1-of-2.csv"), std::string::npos) << r.err;
  r = ws.edit({"--input", m, "--node_rank", "0", "--num_nodes", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(wait_for(one, io).exit_code, 0);
  EXPECT_EQ(ws.results().records.size(), 8u);
}

// 2. An image without a record is made again (identical for its seed); a record without its image too.
TEST(GuaranteesE2E, ARowIsDoneOnlyWithItsImageAndItsRecord) {
  Workspace ws;
  const std::string m = rows_manifest(ws, 5);
  ASSERT_EQ(ws.edit({"--input", m, "--seed", "3"}).exit_code, 0);
  const std::string before = read_text(ws.out + "/000001.png");
  drop_records(ws, {"1", "3"});
  const std::string log = ws.dir / "calls.log";
  ProcessResult r = ws.edit({"--input", m, "--seed", "3"}, {{"DG_TESTPIPE_CALL_LOG", log}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto sorted_calls = [&] {
    std::vector<int> c = call_log(log);
    std::sort(c.begin(), c.end());
    return c;
  };
  EXPECT_EQ(sorted_calls(), (std::vector<int>{1, 3}));
  EXPECT_NE(r.err.find("2 image(s) have no record"), std::string::npos) << r.err;
  EXPECT_EQ(read_text(ws.out + "/000001.png"), before);  // the same seed makes the same image
  EXPECT_EQ(ws.results().records.size(), 5u);
  // Without --seed the folder's recorded base seed is used, so the remade row is identical again.
  drop_records(ws, {"1"});
  r = ws.edit({"--input", m}, {{"DG_TESTPIPE_CALL_LOG", log}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_text(ws.out + "/000001.png"), before);
  fs::remove(ws.out + "/000004.png");
  ASSERT_EQ(ws.edit({"--input", m}, {{"DG_TESTPIPE_CALL_LOG", log}}).exit_code, 0);
  EXPECT_EQ(sorted_calls(), (std::vector<int>{1, 1, 3, 4}));
}

// 2 and 11 (a full disk). With files capped at 1 KiB (RLIMIT_FSIZE, SIGXFSZ ignored), results.csv cannot
// take every record: the rows whose record failed count as failed, the final merge fails too, and still the
// run logs its summary and exits 1; the next run (no cap) makes exactly those rows again.
TEST(GuaranteesE2E, AFullDiskLosesNoRowAndTheSummaryStillComes) {
  Workspace ws;
  const std::string m = rows_manifest(ws, 12);
  // stderr goes through a FIFO to a `cat` outside the cap, so the log the test reads is complete.
  std::vector<std::string> argv{"/bin/sh", "-c",
                                "p=$(mktemp -u); mkfifo \"$p\"; cat \"$p\" >&2 & "
                                "(trap '' XFSZ; ulimit -f 2; exec \"$0\" \"$@\" 2>\"$p\"); rc=$?; wait; rm -f \"$p\"; "
                                "exit $rc"};
  for (const auto& a : ws.edit_argv({"--input", m, "--seed", "0"})) argv.push_back(a);
  ProcessResult r = run_process(argv, {}, ws.io_dir());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("could not be recorded and are made again next run"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("done: "), std::string::npos) << r.err;
  const std::size_t recorded = read_journals(ws.out + "/results.csv").records.size();
  EXPECT_LT(recorded, 12u);
  const std::string log = ws.dir / "calls.log";
  r = ws.edit({"--input", m, "--seed", "0"}, {{"DG_TESTPIPE_CALL_LOG", log}});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(call_log(log).size(), 12u - recorded);
  EXPECT_EQ(ws.results().records.size(), 12u);
}

// 3. A results.csv edited by hand: no final newline and a row missing a field keep every complete record
// (the unreadable line is set aside in a .corrupt copy); no header stops the run before any work.
TEST(GuaranteesE2E, HandEditedResultsAreNeverDestroyed) {
  Workspace ws;
  const std::string m = rows_manifest(ws, 4);
  ASSERT_EQ(ws.edit({"--input", m, "--seed", "0"}).exit_code, 0);
  std::string text = read_text(ws.out + "/results.csv");
  const auto lines = parse_csv(text);
  ASSERT_EQ(lines.size(), 5u);
  // The last line loses its newline; the record of index 2 loses its last field.
  std::string edited;
  for (std::size_t k = 0; k < lines.size(); ++k) {
    std::vector<std::string> f = lines[k].fields;
    if (k == 3) f.pop_back();
    edited += csv_line(f);
  }
  edited.pop_back();
  write_text(ws.out + "/results.csv", edited);
  const std::string log = ws.dir / "calls.log";
  ProcessResult r = ws.edit({"--input", m, "--seed", "0"}, {{"DG_TESTPIPE_CALL_LOG", log}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(call_log(log), (std::vector<int>{2}));  // only the unreadable record's row is made again
  EXPECT_NE(r.err.find("are not complete records"), std::string::npos) << r.err;
  bool copy = false;
  for (const auto& f : files_below(ws.out))
    if (f.rfind("results.csv.", 0) == 0 && f.size() > 8 && f.substr(f.size() - 8) == ".corrupt") {
      copy = true;
      EXPECT_EQ(read_text(ws.out + "/" + f), edited);
    }
  EXPECT_TRUE(copy) << "no .corrupt copy";
  EXPECT_EQ(ws.results().records.size(), 4u);

  // No header line: the run stops with exit 3 and leaves the file as it is.
  const std::string headless = text.substr(text.find('\n') + 1);
  write_text(ws.out + "/results.csv", headless);
  r = ws.edit({"--input", m, "--seed", "0"}, {{"DG_TESTPIPE_CALL_LOG", log}});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("is not a header with an 'index' column"), std::string::npos) << r.err;
  EXPECT_EQ(read_text(ws.out + "/results.csv"), headless);
}

// 4. A manifest quote that never closes is refused at start-up with its line, not allowed to swallow rows.
TEST(GuaranteesE2E, AnUnterminatedManifestQuoteIsRefusedWithItsLine) {
  Workspace ws;
  ws.image("a.png", 8, 8);
  const std::string m = ws.file("m.csv", "image,instruction\na.png,fine\na.png,\"oops\na.png,later\na.png,last\n");
  ProcessResult r = ws.edit({"--input", m});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("line 3: a quoted field opens here and is never closed"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(ws.out + "/000000.png"));
  // In a JSONL manifest each line stands alone: a broken line fails by itself, with its line number.
  const std::string j = ws.file("m.JSONL",
                                "{\"image\": \"a.png\", \"instruction\": \"x\"}\n{\"image\": \"a.png\n"
                                "{\"image\": \"a.png\", \"instruction\": \"y\"}\n");
  r = ws.edit({"--input", j});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(ws.results().records.size(), 2u);
  EXPECT_EQ(ws.failures().records.at(0).at("line"), "2");
}

// 5. Resume refuses a folder made with other settings, naming them and the flags that resolve it.
TEST(GuaranteesE2E, ResumeRefusesOutputsMadeWithOtherSettings) {
  Workspace ws;
  const std::string m = rows_manifest(ws, 3);
  ASSERT_EQ(ws.edit({"--input", m, "--seed", "0", "--num_inference_steps", "2"}).exit_code, 0);
  ProcessResult r = ws.edit({"--input", m, "--seed", "0", "--num_inference_steps", "3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("num_inference_steps '2' -> '3'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--no_resume"), std::string::npos) << r.err;
  r = ws.edit({"--input", m, "--seed", "0", "--num_inference_steps", "2", "--model_type", "flux2_klein"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("model_type 'qwen' -> 'flux2_klein'"), std::string::npos) << r.err;
  r = ws.edit({"--input", m, "--seed", "7", "--num_inference_steps", "2"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("seed '0' -> '7'"), std::string::npos) << r.err;
  r = ws.edit({"--input", m, "--seed", "0", "--num_inference_steps", "3", "--no_resume"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ws.results().records.at(0).at("effective_num_inference_steps"), "3");
}

// 5b. A folder an older version made (effective values under the plain names, no LoRA or requested-size columns)
// resumes as long as the settings are the same, also after a newer run added the new columns to its file with
// empty values for the old rows; a changed setting is still named.
TEST(GuaranteesE2E, ResumeReadsRecordsOfTheOlderFormat) {
  Workspace ws;
  const std::string m = rows_manifest(ws, 3);
  const std::vector<std::string> run{"--input", m, "--seed", "0", "--num_inference_steps", "2"};
  ASSERT_EQ(ws.edit(run).exit_code, 0);
  RecordTable old;
  for (Record r : ws.results().records) {
    for (const char* k : {"seed", "num_inference_steps", "guidance_scale", "true_cfg_scale", "negative_prompt"})
      r[k] = r.at(std::string("effective_") + k);
    for (auto it = r.begin(); it != r.end();)
      it = (it->first.rfind("effective_", 0) == 0 || it->first.rfind("requested_", 0) == 0 || it->first == "loras" ||
            it->first == "model_name")
               ? r.erase(it)
               : std::next(it);
    old.upsert(r);
  }
  write_text(ws.out + "/results.csv", old.to_csv());
  fs::remove(ws.out + "/000002.png");  // one row to make again, so that the run rewrites the file in the new format
  ProcessResult r = ws.edit(run);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("2 already done, 1 to do"), std::string::npos) << r.err;
  EXPECT_EQ(ws.results().records.at(0).at("effective_seed"), "");  // the column exists now, empty for old rows
  r = ws.edit(run);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("3 already done, 0 to do"), std::string::npos) << r.err;
  std::vector<std::string> other = run;
  other.back() = "3";
  r = ws.edit(other);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("effective_num_inference_steps '2' -> '3'"), std::string::npos) << r.err;
  other = run;
  other.insert(other.end(), {"--width", "64"});
  r = ws.edit(other);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("requested_width '' -> '64'"), std::string::npos) << r.err;
}

// 6. and 13. Only regular files are read: a FIFO, a device, a directory fail their row at once.
TEST(GuaranteesE2E, NonRegularFilesFailTheirRowWithoutBlocking) {
  Workspace ws;
  ws.image("a.png", 8, 8);
  const std::string fifo = ws.dir / "pipe.png";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  fs::create_directories(ws.dir / "folder.png");
  const std::string m =
      ws.file("m.csv", "image,instruction\na.png,ok\npipe.png,fifo\n/dev/zero,device\nfolder.png,dir\n");
  const auto t0 = std::chrono::steady_clock::now();
  const ProcessResult r = ws.edit({"--input", m});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const RecordTable f = ws.failures();
  ASSERT_EQ(f.records.size(), 3u);
  EXPECT_NE(f.find("1")->at("reason").find("is not a regular file"), std::string::npos) << f.find("1")->at("reason");
  EXPECT_NE(f.find("2")->at("reason").find("is not a regular file"), std::string::npos);
  EXPECT_NE(f.find("3")->at("reason").find("is a directory"), std::string::npos);
}

// 6 (signals). A download that hangs ends within a second of SIGTERM; rows in flight past --grace_seconds
// are abandoned; the run exits 130 and resumes cleanly.
TEST(GuaranteesE2E, SigtermEndsHangingWorkWithinTheGracePeriod) {
  HttpServer server;
  server.put("a.png", read_text(Workspace().image("a.png", 8, 8)));
  Workspace ws;
  ws.image("a.png", 8, 8);
  const std::string m = ws.file("m.csv", "image,instruction\n" + server.url("/slow/60000/a.png") + ",hangs\n");
  std::string io = ws.dir / ("run" + std::to_string(ws.runs));
  pid_t pid = ws.spawn_edit({"--input", m, "--download_timeout", "120"}, {});
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  ::kill(pid, SIGTERM);
  auto t0 = std::chrono::steady_clock::now();
  ProcessResult r = wait_for(pid, io);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_NE(r.err.find("1 left for a later run (interrupted)"), std::string::npos) << r.err;  // not a failure
  EXPECT_FALSE(fs::exists(ws.out + "/failures.csv") && ws.failures().records.size() > 0);

  const std::string slow = rows_manifest(ws, 3, "slow.csv");
  io = ws.dir / ("run" + std::to_string(ws.runs));
  pid = ws.spawn_edit({"--input", slow, "--grace_seconds", "0.5", "--prefetch", "1"},
                      {{"DG_TESTPIPE_DELAY_MS", "30000"}});
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  ::kill(pid, SIGTERM);
  t0 = std::chrono::steady_clock::now();
  r = wait_for(pid, io);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(r.exit_code, 130);
  EXPECT_NE(r.err.find("did not finish within --grace_seconds"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("done: 0 succeeded, 0 failed, the rest left for a later run (interrupted)"), std::string::npos)
      << r.err;
  r = ws.edit({"--input", slow});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ws.results().records.size(), 3u);
}

// 8. The download cache keeps only bodies that decode, and a cache that cannot be written is skipped.
TEST(GuaranteesE2E, TheDownloadCacheKeepsOnlyImages) {
  HttpServer server;
  Workspace ws;
  server.put("a.png", read_text(ws.image("a.png", 8, 8)));
  server.put("bad.png", "<html>not found</html>");
  const std::string cache = ws.dir / "cache";
  const std::string m = ws.file(
      "m.csv", "image,instruction\n" + server.url("/file/a.png") + ",ok\n" + server.url("/file/bad.png") + ",bad\n");
  ProcessResult r = ws.edit({"--input", m, "--image_cache_dir", cache});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(files_below(cache).size(), 1u);  // a.png only
  EXPECT_EQ(ws.failures().find("1")->at("stage"), "decode");
  // A cache folder that is a file: the rows still succeed, with one warning.
  Workspace ws2;
  const std::string blocked = ws2.file("cache", "a file, not a folder");
  server.put("b.png", read_text(ws.dir / "a.png"));
  const std::string m2 = ws2.file(
      "m.csv", "image,instruction\n" + server.url("/file/a.png") + ",ok\n" + server.url("/file/b.png") + ",ok too\n");
  r = ws2.edit({"--input", m2, "--image_cache_dir", blocked});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string warning = "cannot be written";  // once per process, in the log, not per row
  const auto first = r.err.find(warning);
  EXPECT_NE(first, std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(warning, first + 1), std::string::npos) << r.err;
  EXPECT_EQ(ws2.results().records.size(), 2u);
}

// 11. Exit codes and summaries: the dry run says when the real run would stop; empty selections say so.
TEST(GuaranteesE2E, DryRunAndEmptySelectionsTellTheTruth) {
  Workspace ws;
  const std::string m = rows_manifest(ws, 3);
  fs::remove_all(ws.bundle);  // the bundle is gone: the plan still prints, and the stop is named
  ProcessResult r = ws.edit({"--input", m, "--dry_run"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("NOT FOUND (a real run would stop here)"), std::string::npos) << r.out;
  const std::string header_only = ws.file("empty.csv", "image,instruction\n");
  r = ws.edit({"--input", header_only});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.err.find("has no data rows"), std::string::npos) << r.err;
  r = ws.edit({"--input", m, "--filter_rows", "100:"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.err.find("--filter_rows 100: selects none"), std::string::npos) << r.err;
}

// 12. Limits: names as long as the file system allows are written; longer ones fail before the model runs;
// a seed whose row seeds would overflow fails those rows.
TEST(GuaranteesE2E, NameAndSeedLimits) {
  Workspace ws;
  ws.image("a.png", 8, 8);
  const std::string longest(251, 'n');  // + ".png" = 255 bytes
  const std::string m =
      ws.file("m.csv", "image,instruction,name\na.png,x," + longest + "\na.png,y," + std::string(300, 'n') + "\n" +
                           "a.png,z," + std::string(251, 'm') + ".png\n");
  ProcessResult r = ws.edit({"--input", m, "--output_name_column", "name"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(fs::exists(ws.out + "/" + longest + ".png"));
  EXPECT_TRUE(fs::exists(ws.out + "/" + std::string(251, 'm') + ".png"));  // 255 bytes with its own extension
  EXPECT_NE(ws.failures().find("1")->at("reason").find("at most 255 fit"), std::string::npos);
  EXPECT_EQ(ws.failures().find("1")->at("stage"), "input");
  Workspace big;
  const std::string m2 = rows_manifest(big, 2);
  r = big.edit({"--input", m2, "--seed", "9223372036854775807"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(big.results().records.size(), 1u);
  EXPECT_NE(big.failures().find("1")->at("reason").find("outside 0..2^63-1"), std::string::npos);
}

// 13. Messages for what users feed: a JSON array, an upper-case extension, a GIF.
TEST(GuaranteesE2E, ClearMessagesForCommonMistakes) {
  Workspace ws;
  ws.image("a.png", 8, 8);
  const std::string arr = ws.file("rows.jsonl", "[{\"image\": \"a.png\", \"instruction\": \"x\"}]\n");
  ProcessResult r = ws.edit({"--input", arr});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("is a JSON array; a JSONL manifest holds one JSON object per line"), std::string::npos) << r.err;
  write_text(ws.dir / "anim.gif", std::string("GIF89a\x08\x00\x08\x00\x00\x00\x00;", 14));
  const std::string csv = ws.file("M.CSV", "image,instruction\na.png,x\nanim.gif,y\n");
  r = ws.edit({"--input", csv});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(ws.failures().find("1")->at("reason").find("GIF images are not supported"), std::string::npos);
}
