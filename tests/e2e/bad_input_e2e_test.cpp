// Bad input never stops the batch, never writes outside --output_dir, and is reported per row.
#include <gtest/gtest.h>

#include <filesystem>

#include "e2e_util.hpp"
#include "http_server.hpp"

namespace fs = std::filesystem;
using namespace dg;
using namespace dg::test;

TEST(BadInputE2E, EachBadRowFailsAloneWithAClearReason) {
  Workspace ws;
  ws.image("good.png", 12, 10);
  ws.file("corrupt.png", "this is not a png");
  std::string bomb("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
  bomb += std::string("\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x02\0\0\0", 13);
  ws.file("bomb.png", bomb);
  const ClosedPort closed;  // refuses for the whole test
  const std::string dead = closed.url("/gone.png");
  const std::string m = ws.file("m.csv",
                                "index,input_images,instruction,name\n"
                                "0,good.png,fine,ok0.png\n"
                                "1,corrupt.png,x,c.png\n"
                                "2,missing.png,x,m.png\n"
                                "3,good.png,,e.png\n"
                                "4,good.png,x,f.png,surplus\n"
                                "5,good.png,x,../escape.png\n"
                                "6," +
                                    dead +
                                    ",x,u.png\n"
                                    "7,good.png,x,/tmp/abs.png\n"
                                    "8,bomb.png,x,b.png\n"
                                    "9,good.png,fine,ok9.png\n");
  const ProcessResult r =
      ws.edit({"--input", m, "--output_name_column", "name", "--download_retries", "1", "--download_timeout", "5"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(files_below(ws.out).count("ok0.png"), 1u);
  EXPECT_EQ(files_below(ws.out).count("ok9.png"), 1u);
  EXPECT_FALSE(fs::exists(ws.dir / "escape.png"));
  EXPECT_FALSE(fs::exists(ws.out + "/c.png"));
  EXPECT_EQ(ws.results().records.size(), 2u);

  const RecordTable f = ws.failures();
  ASSERT_EQ(f.records.size(), 8u) << r.err;
  auto expect = [&](int index, const std::string& stage, const std::vector<std::string>& parts) {
    const Record* rec = f.find(std::to_string(index));
    ASSERT_NE(rec, nullptr) << index;
    EXPECT_EQ(rec->at("stage"), stage) << index;
    for (const auto& p : parts)
      EXPECT_NE(rec->at("reason").find(p), std::string::npos) << index << ": " << rec->at("reason");
    EXPECT_NE(r.err.find("index " + std::to_string(index) + " FAILED at " + stage), std::string::npos) << index;
  };
  expect(1, "decode", {"input_images[0]", "corrupt.png", "cannot decode"});
  expect(2, "read", {"missing.png", "cannot open"});
  expect(3, "input", {"instruction: empty instruction"});
  expect(4, "input", {"malformed record: expected 4 fields, found 5"});
  expect(5, "input", {"output name", "escapes --output_dir"});
  expect(6, "download", {dead, "after 2 attempts"});
  expect(7, "input", {"absolute"});
  expect(8, "decode", {"bomb.png", "over the limit", "--max_image_pixels"});
  EXPECT_EQ(f.find("4")->at("line"), "6");
}

TEST(BadInputE2E, DuplicateIndexStopsBeforeAnyWork) {
  Workspace ws;
  ws.image("a.png", 8, 8);
  const std::string m = ws.file("dup.csv", "index,image,instruction\n1,a.png,x\n2,a.png,y\n1,a.png,z\n");
  const ProcessResult r = ws.edit({"--input", m});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("dup.csv, line 4, field 'index': duplicate index 1 (first at line 2)"), std::string::npos)
      << r.err;
  EXPECT_TRUE(files_below(ws.out).empty());
}

TEST(BadInputE2E, UnusableManifestsAndDuplicateOutputNames) {
  Workspace ws;
  ws.image("a.png", 8, 8);
  const std::string nocol = ws.file("nocol.csv", "image,prompt\na.png,x\n");
  ProcessResult r = ws.edit({"--input", nocol});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("no instruction column 'instruction'"), std::string::npos) << r.err;
  EXPECT_EQ(ws.edit({"--input", nocol, "--instruction_key", "prompt"}).exit_code, 0);

  const std::string names = ws.file("names.csv", "image,instruction,n\na.png,x,same.png\na.png,y,same.png\n");
  r = ws.edit({"--input", names, "--output_name_column", "n"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("output name 'same.png' is already used by line 2"), std::string::npos) << r.err;
}

TEST(BadInputE2E, DryRunReportsProblemsAndWritesNothing) {
  Workspace ws;
  ws.image("a.png", 8, 8);
  const std::string m = ws.file("m.csv", "image,instruction\na.png,ok\nnope.png,x\na.png,\n");
  const ProcessResult r = ws.edit({"--input", m, "--dry_run", "--seed", "3"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.out.find("resume      on: 0 already done, 3 to do"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("problems    2 row(s)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("index 1 (line 3): image: file not found"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("index 2 (line 4): instruction: empty instruction"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("steps 40, guidance 1, true_cfg 4"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(ws.out));
}
