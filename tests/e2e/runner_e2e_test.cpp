// End to end through a real process: `diffgentor edit` (test pipeline) on temporary manifests.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "diffgentor/fs.hpp"
#include "diffgentor/image_io.hpp"
#include "diffgentor/image_metadata.hpp"
#include "diffgentor/model_table.hpp"
#include "diffgentor/options.hpp"
#include "e2e_util.hpp"
#include "http_server.hpp"
#include "test_backend.hpp"

namespace fs = std::filesystem;
using namespace dg;
using namespace dg::test;

TEST(RunnerE2E, SingleAndMultiImageRowsWithRecordedParameters) {
  Workspace ws;
  ws.image("a.png", 48, 32, 1);
  ws.image("b.jpg", 40, 40, 2);
  const std::string manifest = ws.file("m.csv",
                                       "input_images,instruction\n"
                                       "a.png,make it blue\n"
                                       "\"[\"\"a.png\"\", \"\"b.jpg\"\"]\",\"merge, please\"\n"
                                       "b.jpg,\"line one\nline two\"\n");
  const ProcessResult r = ws.edit({"--input", manifest, "--seed", "100"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("[3/3] index"), std::string::npos) << r.err;

  const RecordTable res = ws.results();
  ASSERT_EQ(res.records.size(), 3u);
  EXPECT_EQ(ws.failures().records.size(), 0u);
  const std::vector<std::pair<int, int>> sizes{{48, 32}, {48, 32}, {40, 40}};
  const std::vector<std::vector<std::string>> inputs{{"a.png"}, {"a.png", "b.jpg"}, {"b.jpg"}};
  const std::vector<std::string> instructions{"make it blue", "merge, please", "line one\nline two"};
  for (int k = 0; k < 3; ++k) {
    const Record& rec = *res.find(std::to_string(k));
    EXPECT_EQ(rec.at("output_image"), fmt::format("{:06d}.png", k));
    EXPECT_EQ(rec.at("effective_seed"), std::to_string(100 + k));
    EXPECT_EQ(rec.at("base_seed"), "100");
    EXPECT_EQ(rec.at("effective_num_inference_steps"), "40");  // qwen's default
    EXPECT_EQ(rec.at("effective_true_cfg_scale"), "4");
    EXPECT_EQ(rec.at("effective_negative_prompt"), " ");
    EXPECT_EQ(rec.at("instruction"), instructions[k]);
    EXPECT_EQ(rec.at("effective_width"), std::to_string(sizes[k].first));
    EXPECT_EQ(rec.at("requested_width"), "");
    EXPECT_EQ(rec.at("stage_times"), "{\"denoise\":0.001}");
    EXPECT_FALSE(rec.at("finished_at").empty());

    // The written image is exactly what the pipeline made from these inputs, seed and instruction.
    EditRequest req;
    for (const auto& name : inputs[k]) req.images.push_back(read_image(ws.dir / name));
    req.instruction = instructions[k];
    req.seed = 100 + k;
    req.params = effective_params(*find_model("qwen"), EditOptions{});
    const Image got = read_image(ws.out + "/" + rec.at("output_image"));
    EXPECT_EQ(got.width, sizes[k].first);
    EXPECT_EQ(got.height, sizes[k].second);
    EXPECT_EQ(got.rgb, test_pipeline_output(req).rgb) << "row " << k;
  }
}

TEST(RunnerE2E, SeedsReproduceAndDiffer) {
  Workspace ws;
  ws.image("a.png", 16, 16);
  const std::string m = ws.file("m.csv", "image,instruction\na.png,x\n");
  ASSERT_EQ(ws.edit({"--input", m, "--seed", "7"}).exit_code, 0);
  const std::string first = read_file_bytes(ws.out + "/000000.png");
  ASSERT_EQ(ws.edit({"--input", m, "--seed", "7", "--no_resume"}).exit_code, 0);
  EXPECT_EQ(read_file_bytes(ws.out + "/000000.png"), first);
  ASSERT_EQ(ws.edit({"--input", m, "--seed", "8", "--no_resume"}).exit_code, 0);
  EXPECT_NE(read_file_bytes(ws.out + "/000000.png"), first);
  EXPECT_EQ(ws.results().find("0")->at("effective_seed"), "8");

  // Without --seed a random base is drawn, logged and recorded; the recorded seed reproduces the row.
  const ProcessResult r = ws.edit({"--input", m, "--no_resume"});
  ASSERT_EQ(r.exit_code, 0);
  const std::string base = ws.results().find("0")->at("base_seed");
  EXPECT_NE(r.err.find("base seed " + base + " (random"), std::string::npos) << r.err;
  const std::string random_bytes = read_file_bytes(ws.out + "/000000.png");
  ASSERT_EQ(ws.edit({"--input", m, "--seed", base, "--no_resume"}).exit_code, 0);
  EXPECT_EQ(read_file_bytes(ws.out + "/000000.png"), random_bytes);
}

TEST(RunnerE2E, JsonlNamesSeedsFilterAndOverrides) {
  Workspace ws;
  ws.image("a.png", 16, 24);
  const std::string m =
      ws.file("m.jsonl",
              "{\"index\": 5, \"image\": \"a.png\", \"instruction\": \"x\", \"name\": \"sub/five.jpg\"}\n"
              "{\"index\": 6, \"image\": \"a.png\", \"instruction\": \"y\", \"name\": \"six.webp\", "
              "\"seed\": 42, \"negative_prompt\": \"ugly\"}\n"
              "{\"index\": 7, \"image\": \"a.png\", \"instruction\": \"z\", \"name\": \"seven\"}\n");
  const ProcessResult r =
      ws.edit({"--input", m, "--output_name_column", "name", "--filter_rows", "6:", "--num_inference_steps", "3",
               "--guidance_scale", "0", "--true_cfg_scale", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(files_below(ws.out).count("sub/five.jpg"), 0u);  // filtered out
  EXPECT_EQ(read_image(ws.out + "/six.webp").width, 16);
  EXPECT_EQ(read_image(ws.out + "/seven.png").height, 24);
  const RecordTable res = ws.results();
  ASSERT_EQ(res.records.size(), 2u);
  const Record& six = *res.find("6");
  EXPECT_EQ(six.at("seed"), "42");  // the manifest's own columns, as written
  EXPECT_EQ(six.at("negative_prompt"), "ugly");
  EXPECT_EQ(six.at("effective_seed"), "42");
  EXPECT_EQ(six.at("effective_negative_prompt"), "ugly");
  EXPECT_EQ(six.at("effective_num_inference_steps"), "3");
  EXPECT_EQ(six.at("effective_guidance_scale"), "0");
  EXPECT_EQ(six.at("effective_true_cfg_scale"), "1");
  EXPECT_EQ(six.at("output_image"), "six.webp");
}

// The same whether rows run alone or in one batch (--batch_size 5): a row that fails in a batch fails alone, its
// batched attempt counts, and the rest of the batch keeps its results.
TEST(RunnerE2E, ModelFailuresAreRetriedThenRecorded) {
  for (const char* batch : {"1", "5"}) {
    SCOPED_TRACE(std::string("--batch_size ") + batch);
    Workspace ws;
    ws.image("a.png", 8, 8);
    const std::string m =
        ws.file("m.csv",
                "image,instruction\na.png,fine\na.png,FAIL_ONCE please\na.png,FAIL_ALWAYS\na.png,fine too\n"
                "a.png,FAIL_REPEATABLY\n");
    const ProcessResult r = ws.edit({"--input", m, "--max_retries", "1", "--batch_size", batch, "--prefetch", "5"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    const RecordTable res = ws.results();
    EXPECT_EQ(res.records.size(), 3u);
    EXPECT_EQ(res.find("1")->at("attempts"), "2");
    EXPECT_EQ(res.find("1")->at("batch"), "1");  // its result comes from running alone
    if (std::string(batch) == "5") {             // the rows that succeeded in the batch name the whole batch
      EXPECT_EQ(res.find("0")->at("batch"), "0;1;2;3;4");
      EXPECT_EQ(res.find("3")->at("batch"), "0;1;2;3;4");
    }
    const RecordTable fails = ws.failures();
    ASSERT_EQ(fails.records.size(), 2u);
    EXPECT_EQ(fails.records[0].at("index"), "2");
    EXPECT_EQ(fails.records[0].at("stage"), "model");
    EXPECT_EQ(fails.records[0].at("attempts"), "2");
    EXPECT_NE(fails.records[0].at("reason").find("out of memory (simulated)"), std::string::npos);
    // A failure the same request repeats (a seeded sampler) is recorded at once, without a second attempt.
    EXPECT_EQ(fails.find("4")->at("stage"), "model");
    EXPECT_EQ(fails.find("4")->at("attempts"), "1");
    EXPECT_FALSE(fs::exists(ws.out + "/000002.png"));
    EXPECT_TRUE(fs::exists(ws.out + "/000003.png"));
  }
}

// Input that breaks a rule of the model fails with stage `input` on its first attempt: the image count at
// planning (before any model loads), each image's size after decoding, and what the pipeline refuses.
TEST(RunnerE2E, InputErrorsAreNeverRetried) {
  Workspace ws;
  ws.image("small.png", 8, 8);
  ws.image("big.png", 80, 80);
  const std::string m = ws.file("m.csv",
                                "image,instruction\nbig.png,fine\nsmall.png,too small\nbig.png,INPUT_ERROR\n"
                                "\"[\"\"big.png\"\", \"\"big.png\"\"]\",two images\n");
  const std::string log = ws.dir / "calls.log";
  ProcessResult r =
      ws.edit({"--input", m, "--model_type", "flux2", "--max_retries", "3"}, {{"DG_TESTPIPE_CALL_LOG", log}});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(ws.results().records.size(), 2u);  // rows 0 and 3: FLUX.2 takes several images
  RecordTable fails = ws.failures();
  ASSERT_EQ(fails.records.size(), 2u);
  EXPECT_EQ(fails.find("1")->at("stage"), "input");
  EXPECT_NE(fails.find("1")->at("reason").find("8x8: model type flux2 needs sides of at least 64 px"),
            std::string::npos)
      << fails.find("1")->at("reason");
  EXPECT_EQ(fails.find("2")->at("stage"), "input");
  EXPECT_EQ(fails.find("2")->at("attempts"), "1");
  const std::string calls = read_text(log);
  EXPECT_EQ(std::count(calls.begin(), calls.end(), '\n'), 3) << calls;  // rows 0, 2 (once) and 3; never row 1

  Workspace lc;
  lc.image("big.png", 80, 80);
  const std::string two = lc.file("m.csv", "image,instruction\n\"[\"\"big.png\"\", \"\"big.png\"\"]\",two images\n");
  r = lc.edit({"--input", two, "--model_type", "longcat", "--dry_run"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("2 images, but model type longcat takes one"), std::string::npos) << r.out;
  r = lc.edit({"--input", two, "--model_type", "longcat"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(lc.failures().records.at(0).at("stage"), "input");
}

TEST(RunnerE2E, ReplicasAndBatchesRunEveryRowOnce) {
  Workspace ws;
  ws.image("a.png", 8, 8);
  std::string csv = "image,instruction\n";
  for (int k = 0; k < 9; ++k) csv += "a.png,row " + std::to_string(k) + "\n";
  const std::string m = ws.file("m.csv", csv);
  const std::string log = ws.dir / "calls.log";
  const ProcessResult r = ws.edit({"--input", m, "--num_gpus", "2", "--batch_size", "3", "--prefetch", "2"},
                                  {{"DG_TESTPIPE_CALL_LOG", log}, {"DG_TESTPIPE_DELAY_MS", "20"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<int> calls = call_log(log);
  std::sort(calls.begin(), calls.end());
  EXPECT_EQ(calls, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(ws.results().records.size(), 9u);
}

// --output_format names and writes every output in one format (its quality flag applied), each image carries
// what made it, and --no_metadata leaves it out.
TEST(RunnerE2E, OutputFormatQualityAndEmbeddedParameters) {
  Workspace ws;
  ws.image("a.png", 64, 48);
  const std::string m =
      ws.file("m.csv", "image,instruction,name\na.png,make it blue,first.png\na.png,\"snow, then rain\",second\n");
  ProcessResult r = ws.edit({"--input", m, "--output_name_column", "name", "--output_format", "jpg", "--jpeg_quality",
                             "40", "--seed", "9", "--num_inference_steps", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ws.results().find("0")->at("output_image"), "first.jpg");
  EXPECT_EQ(ws.results().find("1")->at("output_image"), "second.jpg");
  const std::string jpg = read_file_bytes(ws.out + "/first.jpg");
  EXPECT_EQ(static_cast<uint8_t>(jpg[0]), 0xFF);  // a JPEG under its new name
  const auto text = read_parameters(jpg);
  ASSERT_TRUE(text);
  EXPECT_EQ(text->substr(0, text->find('\n')), "make it blue");
  EXPECT_NE(text->find("Steps: 3, "), std::string::npos) << *text;
  EXPECT_NE(text->find("Seed: " + ws.results().find("0")->at("effective_seed") + ", Size: 64x48"), std::string::npos)
      << *text;
  EXPECT_NE(text->find("Model type: qwen, Version: diffgentor "), std::string::npos) << *text;
  EXPECT_EQ(read_parameters(read_file_bytes(ws.out + "/second.jpg"))->substr(0, 15), "snow, then rain");
  // Quality 40 against the default 95: a smaller file of the same picture.
  Workspace hq;
  hq.image("a.png", 64, 48);
  r = hq.edit({"--input", hq.file("m.csv", "image,instruction\na.png,make it blue\n"), "--output_format", "jpg",
               "--seed", "9", "--num_inference_steps", "3", "--no_metadata"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string best = read_file_bytes(hq.out + "/000000.jpg");
  EXPECT_FALSE(read_parameters(best));  // --no_metadata
  EXPECT_GT(best.size(), jpg.size());   // quality 95 against 40 (whose file also holds the parameters)
  // WebP carries the same text.
  Workspace wp;
  wp.image("a.png", 64, 48);
  r = wp.edit({"--input", wp.file("m.csv", "image,instruction\na.png,make it blue\n"), "--output_format", "webp",
               "--seed", "9", "--num_inference_steps", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_parameters(read_file_bytes(wp.out + "/000000.webp"))->substr(0, 12), "make it blue");
}

TEST(RunnerE2E, UrlInputsAreDownloadedAndCached) {
  Workspace ws;
  HttpServer server;
  server.put("remote.png", read_file_bytes(ws.image("r.png", 20, 10)));
  const std::string m = ws.file("m.csv", "image_url,instruction\n" + server.url("/flaky/1/remote.png") + ",x\n" +
                                             server.url("/file/remote.png") + ",y\n");
  const ProcessResult r = ws.edit({"--input", m, "--image_cache_dir", ws.dir / "cache", "--download_retries", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_image(ws.out + "/000000.png").width, 20);
  EXPECT_EQ(server.hits("/flaky/1/remote.png"), 2);  // one 503, one success
  EXPECT_EQ(files_below(ws.dir / "cache").size(), 2u);
}
