// Per-row LoRAs (a manifest `lora` column; docs/lora.md, "Per-row LoRAs") through the real binary on a tiny
// FLUX.2-klein in float32, whose DiT's output projection is named "proj_out.weight" as diffusers' Linear is, so a
// diffusers-named LoRA adapts it. A row's set gives the image the same set gives as a run's --lora, bit for bit; after
// a row with another set the weights are the loaded ones again (a row without LoRA equals the plain run); a missing
// file fails its row only, as do a file this runtime cannot read (refused when the run is planned) and a LoRA of
// another model (refused when merged); rows batch only with rows of the same set.
#include <gtest/gtest.h>

#include <filesystem>

#include "e2e_util.hpp"
#include "lora_file.hpp"

namespace fs = std::filesystem;
using namespace dg::test;

TEST(LoraE2E, ARowsLoraColumnIsTheRunsLoraForThatRow) {
  TempDir d;
  Workspace ws;
  const std::string bundle = d / "klein";
  ProcessResult r = diffgentor({"make-tiny", "--model_type", "flux2_klein", "--out", bundle}, d);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string img = ws.image("a.png", 96, 64, 1);
  write_tiny_proj_out_lora(ws.dir / "a.safetensors", 1);
  write_tiny_proj_out_lora(ws.dir / "b.safetensors", 2);
  const std::string head = "image,instruction,seed,lora\n", row = img + ",make it blue,5,";
  // Relative LoRA files resolve against the manifest's folder (the workspace).
  const std::string m =
      ws.file("m.csv", head + row + "a.safetensors\n" + row + "\n" + row + "a.safetensors:0.5;b.safetensors\n" + row +
                           "a.safetensors\n" + row + "none\n" + row + "gone.safetensors\n");
  const auto edit = [&](const std::string& manifest, const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args{"edit",    "--model_name",  bundle,         "--model_type", "flux2_klein",
                                  "--input", manifest,        "--output_dir", d / out,        "--num_inference_steps",
                                  "2",       "--torch_dtype", "float32"};
    args.insert(args.end(), extra.begin(), extra.end());
    return diffgentor(args, d);
  };
  const auto image = [&](const std::string& out, const dg::RecordTable& res, const std::string& index) {
    return read_image(d / out + "/" + res.find(index)->at("output_image"));
  };
  r = edit(m, "rows", {});
  ASSERT_EQ(r.exit_code, 1) << r.err;  // one row failed
  const dg::RecordTable rows = dg::RecordTable::load(d / "rows/results.csv");
  ASSERT_EQ(rows.records.size(), 5u) << r.err;
  const dg::RecordTable failed = dg::RecordTable::load(d / "rows/failures.csv");
  ASSERT_EQ(failed.records.size(), 1u);
  EXPECT_EQ(failed.find("5")->at("stage"), "input");
  EXPECT_NE(failed.find("5")->at("reason").find("lora: 'gone.safetensors' names no file"), std::string::npos);
  const std::string a = fs::canonical(ws.dir / "a.safetensors").string(),
                    b = fs::canonical(ws.dir / "b.safetensors").string();
  EXPECT_EQ(rows.find("0")->at("loras"), a + ":1");
  EXPECT_EQ(rows.find("1")->at("loras"), "");
  EXPECT_EQ(rows.find("2")->at("loras"), a + ":0.5;" + b + ":1");
  EXPECT_EQ(rows.find("4")->at("loras"), "");
  EXPECT_EQ(rows.find("0")->at("lora"), "a.safetensors");  // the user's column, kept

  // The same rows run with the set as the run's --lora: the same images, bit for bit.
  const std::string one = ws.file("one.csv", "image,instruction,seed\n" + img + ",make it blue,5\n");
  ASSERT_EQ(edit(one, "plain", {}).exit_code, 0);
  ASSERT_EQ(edit(one, "with_a", {"--lora", ws.dir / "a.safetensors"}).exit_code, 0);
  ASSERT_EQ(
      edit(one, "with_ab", {"--lora", ws.dir / "a.safetensors:0.5", "--lora", ws.dir / "b.safetensors"}).exit_code, 0);
  const auto only = [&](const std::string& out) {
    return image(out, dg::RecordTable::load(d / out + "/results.csv"), "0");
  };
  EXPECT_EQ(max_pixel_diff(image("rows", rows, "0"), only("with_a")), 0);
  EXPECT_EQ(max_pixel_diff(image("rows", rows, "1"), only("plain")), 0) << "the weights were not restored";
  EXPECT_EQ(max_pixel_diff(image("rows", rows, "2"), only("with_ab")), 0);
  EXPECT_EQ(max_pixel_diff(image("rows", rows, "3"), only("with_a")), 0);
  EXPECT_EQ(max_pixel_diff(image("rows", rows, "4"), only("plain")), 0);
  EXPECT_GT(max_pixel_diff(only("with_a"), only("plain")), 10) << "the LoRA did not change the image";

  // Batches hold rows of one set only; each image within one level of its row alone (docs/batching.md).
  r = edit(m, "batched", {"--batch_size", "6"});
  ASSERT_EQ(r.exit_code, 1) << r.err;
  const dg::RecordTable batched = dg::RecordTable::load(d / "batched/results.csv");
  EXPECT_EQ(batched.find("0")->at("batch"), "0;3");
  EXPECT_EQ(batched.find("1")->at("batch"), "1;4");
  EXPECT_EQ(batched.find("2")->at("batch"), "2");
  for (const char* index : {"0", "1", "2", "3", "4"})
    EXPECT_LE(max_pixel_diff(image("batched", batched, index), image("rows", rows, index)), 1) << index;

  // Rows on the run's --lora set beside rows with their own: an empty cell is the run's set, `none` the weights as
  // loaded (kept before the run's set was merged at load); a LoRA of another model fails its row only, at stage
  // input, naming the field.
  const std::string kohya = DG_SOURCE_DIR "/tests/data/lora/kohya.safetensors";
  const std::string te = DG_SOURCE_DIR "/tests/data/lora/text_encoder.safetensors";  // unusable: refused when planned
  const std::string mixed =
      ws.file("mixed.csv", head + row + "\n" + row + "none\n" + row + kohya + "\n" + row + "\n" + row + te + "\n");
  r = edit(mixed, "mixed", {"--lora", ws.dir / "b.safetensors"});
  ASSERT_EQ(r.exit_code, 1) << r.err;
  ASSERT_EQ(edit(one, "with_b", {"--lora", ws.dir / "b.safetensors"}).exit_code, 0);
  const dg::RecordTable mix = dg::RecordTable::load(d / "mixed/results.csv");
  ASSERT_EQ(mix.records.size(), 3u);
  EXPECT_EQ(max_pixel_diff(image("mixed", mix, "0"), only("with_b")), 0);
  EXPECT_EQ(max_pixel_diff(image("mixed", mix, "1"), only("plain")), 0) << "the weights as loaded were not kept";
  EXPECT_EQ(max_pixel_diff(image("mixed", mix, "3"), only("with_b")), 0);
  EXPECT_EQ(mix.find("0")->at("loras"), b + ":1");
  const dg::RecordTable mix_failed = dg::RecordTable::load(d / "mixed/failures.csv");
  ASSERT_EQ(mix_failed.records.size(), 2u);
  EXPECT_EQ(mix_failed.find("4")->at("stage"), "input");
  EXPECT_EQ(mix_failed.find("4")->at("reason").rfind("lora: LoRA " + te + ": 2 of 2 tensors adapt nothing", 0), 0u)
      << mix_failed.find("4")->at("reason");
  // A `loras` column (what results.csv records, or a typo) is not a row's set, and the plan says so.
  const std::string typo = ws.file("typo.csv", "image,instruction,loras\n" + img + ",make it blue,a.safetensors\n");
  r = edit(typo, "typo", {"--dry_run"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE((r.out + r.err).find("manifest column 'loras' is not read"), std::string::npos) << r.out;
  EXPECT_EQ(mix_failed.find("2")->at("stage"), "input");
  EXPECT_EQ(mix_failed.find("2")->at("attempts"), "1");  // the file's fault: never retried
  EXPECT_EQ(mix_failed.find("2")->at("reason").rfind("lora: LoRA " + kohya + ": 1 of 1 layers match no weight", 0), 0u)
      << mix_failed.find("2")->at("reason");
}
