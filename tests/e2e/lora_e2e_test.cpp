// Per-row LoRAs (a manifest `lora` column; docs/lora.md, "Per-row LoRAs") through the real binary on a tiny
// FLUX.2-klein in float32, whose DiT's output projection is named "proj_out.weight" as diffusers' Linear is, so a
// diffusers-named LoRA adapts it. A row's set gives the image the same set gives as a run's --lora, bit for bit; after
// a row with another set the weights are the loaded ones again (a row without LoRA equals the plain run); a missing
// file fails its row only; rows batch only with rows of the same set.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "e2e_util.hpp"

namespace fs = std::filesystem;
using namespace dg::test;

namespace {

ProcessResult diffgentor(const std::vector<std::string>& args, TempDir& dir) {
  std::vector<std::string> argv{DG_MAIN_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  static int n = 0;
  return run_process(argv, {}, dir / ("lora_io" + std::to_string(n++)));
}

// A diffusers-named LoRA of rank 2 for the tiny DiT's proj_out [128, 32] (lora_A [2, 32], lora_B [128, 2], float32,
// values from `seed`), in the safetensors format: an 8-byte little-endian header length, the JSON header, the data.
void write_lora(const std::string& path, int seed) {
  const int64_t out = 128, in = 32, rank = 2;
  std::vector<float> a(static_cast<std::size_t>(rank * in)), b(static_cast<std::size_t>(out * rank));
  for (std::size_t k = 0; k < a.size(); ++k) a[k] = 0.3f * std::sin(0.7f * float(k) + float(seed));
  for (std::size_t k = 0; k < b.size(); ++k) b[k] = 0.3f * std::cos(1.3f * float(k) + float(seed));
  const std::size_t na = a.size() * 4, nb = b.size() * 4;
  nlohmann::json header = {
      {"transformer.proj_out.lora_A.weight", {{"dtype", "F32"}, {"shape", {rank, in}}, {"data_offsets", {0, na}}}},
      {"transformer.proj_out.lora_B.weight",
       {{"dtype", "F32"}, {"shape", {out, rank}}, {"data_offsets", {na, na + nb}}}}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t length = text.size();
  std::ofstream f(path, std::ios::binary);
  for (int k = 0; k < 8; ++k) f.put(static_cast<char>((length >> (8 * k)) & 0xFF));  // little-endian
  f << text;
  f.write(reinterpret_cast<const char*>(a.data()), static_cast<std::streamsize>(na));  // x86: little-endian floats
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(nb));
}

int max_diff(const dg::Image& a, const dg::Image& b) {
  if (a.width != b.width || a.height != b.height) return 256;
  int worst = 0;
  for (std::size_t k = 0; k < a.rgb.size(); ++k) worst = std::max(worst, std::abs(a.rgb[k] - b.rgb[k]));
  return worst;
}

}  // namespace

TEST(LoraE2E, ARowsLoraColumnIsTheRunsLoraForThatRow) {
  TempDir d;
  Workspace ws;
  const std::string bundle = d / "klein";
  ProcessResult r = diffgentor({"make-tiny", "--model_type", "flux2_klein", "--out", bundle}, d);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string img = ws.image("a.png", 96, 64, 1);
  write_lora(ws.dir / "a.safetensors", 1);
  write_lora(ws.dir / "b.safetensors", 2);
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
  EXPECT_EQ(max_diff(image("rows", rows, "0"), only("with_a")), 0);
  EXPECT_EQ(max_diff(image("rows", rows, "1"), only("plain")), 0) << "the weights were not restored";
  EXPECT_EQ(max_diff(image("rows", rows, "2"), only("with_ab")), 0);
  EXPECT_EQ(max_diff(image("rows", rows, "3"), only("with_a")), 0);
  EXPECT_EQ(max_diff(image("rows", rows, "4"), only("plain")), 0);
  EXPECT_GT(max_diff(only("with_a"), only("plain")), 10) << "the LoRA did not change the image";

  // Batches hold rows of one set only; each image within one level of its row alone (docs/batching.md).
  r = edit(m, "batched", {"--batch_size", "6"});
  ASSERT_EQ(r.exit_code, 1) << r.err;
  const dg::RecordTable batched = dg::RecordTable::load(d / "batched/results.csv");
  EXPECT_EQ(batched.find("0")->at("batch"), "0;3");
  EXPECT_EQ(batched.find("1")->at("batch"), "1;4");
  EXPECT_EQ(batched.find("2")->at("batch"), "2");
  for (const char* index : {"0", "1", "2", "3", "4"})
    EXPECT_LE(max_diff(image("batched", batched, index), image("rows", rows, index)), 1) << index;
}
