// The product binary itself: help, models, version, dry run of the shipped example, usage errors.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>
#include "e2e_util.hpp"

#include "testdata.hpp"

namespace fs = std::filesystem;
using namespace dg::test;

namespace {

// `edit` of a tiny bundle of `type` over `manifest` into `out`, seed 0, then `extra`.
std::vector<std::string> tiny_edit(const std::string& bundle, const std::string& type, const std::string& manifest,
                                   const std::string& out, const std::vector<std::string>& extra) {
  std::vector<std::string> args{"edit",   "--model_name", bundle, "--model_type", type, "--input",
                                manifest, "--output_dir", out,    "--seed",       "0"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace

TEST(CliE2E, HelpListsEveryFlagAndModelsListsEveryType) {
  TempDir d;
  const ProcessResult help = diffgentor({"edit", "--help"}, d);
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag : {"--backend",
                           "--model_name",
                           "--model_type",
                           "--device",
                           "--num_gpus",
                           "--seed",
                           "--torch_dtype",
                           "--attention_backend",
                           "--enable_compile",
                           "--enable_cpu_offload",
                           "--enable_vae_slicing",
                           "--enable_vae_tiling",
                           "--input",
                           "--output_dir",
                           "--output_csv",
                           "--output_name_column",
                           "--instruction_key",
                           "--image_cache_dir",
                           "--batch_size",
                           "--num_inference_steps",
                           "--guidance_scale",
                           "--true_cfg_scale",
                           "--negative_prompt",
                           "--width",
                           "--height",
                           "--max_retries",
                           "--filter_rows",
                           "--resume",
                           "--no_resume",
                           "--prompt_enhance_type",
                           "--timeout",
                           "--api_max_retries",
                           "--retry_delay",
                           "--node_rank",
                           "--num_nodes",
                           "--log_dir",
                           "--dry_run"})
    EXPECT_NE(help.out.find(std::string(flag) + " "), std::string::npos) << flag;
  const ProcessResult models = diffgentor({"models"}, d);
  EXPECT_EQ(models.exit_code, 0);
  for (const char* t :
       {"qwen_singleimg", "flux2_klein", "flux1_kontext", "longcat", "glm_image", "QwenImageEditPlusPipeline"})
    EXPECT_NE(models.out.find(t), std::string::npos) << t;
  const ProcessResult version = diffgentor({"--version"}, d);
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_NE(version.out.find("diffgentor " DG_VERSION " (libtorch"), std::string::npos) << version.out;
}

TEST(CliE2E, DryRunOfTheShippedExample) {
  TempDir d;
  const ProcessResult r = diffgentor({"edit", "--backend", "diffusers", "--model_name", "Qwen/Qwen-Image-Edit-2511",
                                      "--input", DG_SOURCE_DIR "/examples/edit.csv", "--output_dir", d / "out",
                                      "--output_name_column", "output_name", "--dry_run"},
                                     d, {{"HF_HUB_CACHE", d / "hub"}});
  // No bundle for the name here: the plan is shown, and the dry run says the real run would stop (exit 1).
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("start-up    the real run would stop here: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("-> qwen (QwenImageEditPlusPipeline) [detected from the name]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0 already done, 3 to do"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("index 1        -> checker_rings.png"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("problems    none"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("NOT FOUND"), std::string::npos);
  EXPECT_FALSE(fs::exists(d / "out"));
  const ProcessResult jsonl = diffgentor({"edit", "--model_name", "black-forest-labs/FLUX.2-dev", "--input",
                                          DG_SOURCE_DIR "/examples/edit.jsonl", "--output_dir", d / "out", "--dry_run"},
                                         d);
  EXPECT_EQ(jsonl.exit_code, 1) << jsonl.out << jsonl.err;
  EXPECT_NE(jsonl.out.find("steps 28, guidance 4\n"), std::string::npos) << jsonl.out;

  // With a bundle the dry run checks it as loading would, without loading weights: a good one passes, a
  // dtype the device cannot run and a bundle from a newer torch are start-up stops.
  const std::string bundle = d / "tiny";
  ASSERT_EQ(diffgentor({"make-tiny", "--model_type", "qwen", "--out", bundle}, d).exit_code, 0);
  const std::vector<std::string> base{
      "edit",         "--model_name", bundle,     "--input", DG_SOURCE_DIR "/examples/edit.csv",
      "--output_dir", d / "out2",     "--device", "cpu",     "--dry_run"};
  ProcessResult ok = diffgentor(base, d);
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  std::vector<std::string> half = base;
  half.insert(half.end(), {"--torch_dtype", "float16"});
  ok = diffgentor(half, d);
  EXPECT_EQ(ok.exit_code, 1) << ok.out;
  EXPECT_NE(ok.out.find("float16 does not run on the CPU"), std::string::npos) << ok.out;
  nlohmann::json m = nlohmann::json::parse(read_text(bundle + "/torchscript/manifest.json"));
  m["producer"]["torch"] = "99.0.0";
  write_text(bundle + "/torchscript/manifest.json", m.dump());
  ok = diffgentor(base, d);
  EXPECT_EQ(ok.exit_code, 1) << ok.out;
  EXPECT_NE(ok.out.find("newer than this runtime's libtorch"), std::string::npos) << ok.out;
  EXPECT_FALSE(fs::exists(d / "out2"));
}

TEST(CliE2E, UsageAndStartupErrors) {
  TempDir d;
  const std::vector<std::string> base{
      "edit",         "--model_name", "Qwen/Qwen-Image-Edit", "--input", DG_SOURCE_DIR "/examples/edit.csv",
      "--output_dir", d / "out"};
  auto with = [&](std::vector<std::string> extra, const std::map<std::string, std::string>& env = {}) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return diffgentor(a, d, env);
  };
  ProcessResult r = with({"--backend", "xdit"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--backend xdit: not available in this build"), std::string::npos) << r.err;
  r = with({"--guidance_scale", "abc"});
  EXPECT_EQ(r.exit_code, 2);
  r = with({"--model_type", "sd3"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("known types: qwen, qwen_singleimg"), std::string::npos) << r.err;
  r = with({"--prompt_enhance_type", "flux2"});
  EXPECT_EQ(r.exit_code, 2);
  r = with({"--device", "cpu", "--enable_cpu_offload"});  // nothing to offload on the CPU: refused with the reason
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--enable_cpu_offload: this run is on the CPU (--device cpu -> cpu)"), std::string::npos)
      << r.err;
  r = with({"--lora", d / "nope.safetensors:0.5"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--lora " + (d / "nope.safetensors:0.5") + ": names no file"), std::string::npos) << r.err;
  r = with({"--lora", DG_SOURCE_DIR "/tests/data/lora/text_encoder.safetensors"});  // read before any model loads
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("text_encoder.safetensors: 2 of 2 tensors adapt nothing this runtime can place"),
            std::string::npos)
      << r.err;
  r = with({"--device", "cpu", "--attention_backend", "efficient"});  // a CUDA-only SDPA kernel: the probe refuses it
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--attention_backend efficient: the efficient kernel cannot run on cpu with bfloat16"),
            std::string::npos)
      << r.err;
  r = with({"--attention_backend", "xformers"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("is a Python kernel with no libtorch counterpart"), std::string::npos) << r.err;
  r = with({"--width", "8"});  // below Qwen's multiple of 16
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--width: 8 is outside 16..8192"), std::string::npos) << r.err;
  if (diffgentor({"--version"}, d).out.find("CUDA not available") != std::string::npos) {  // no GPU here (CI)
    r = with({"--device", "cuda"});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("--device cuda: libtorch sees no CUDA device here"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("use --device cpu"), std::string::npos) << r.err;
  }
  r = with({}, {{"HF_HUB_CACHE", d / "hub"}, {"DG_MODEL_ROOT", d / "models"}});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("no model bundle found for --model_name Qwen/Qwen-Image-Edit"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(d / "out/results.csv"));
}

TEST(CliE2E, MakeTinyThenARealBatchOnTheCpu) {
  TempDir d;
  const std::string bundle = d / "Qwen-Image-Edit-2511-tiny";
  ProcessResult r = diffgentor({"make-tiny", "--model_type", "qwen", "--out", bundle, "--seed", "3"}, d);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(bundle + "/torchscript/manifest.json"));

  r = diffgentor(
      {"edit", "--backend", "diffusers", "--model_name", bundle, "--input", DG_SOURCE_DIR "/examples/edit.csv",
       "--output_dir", d / "out", "--output_name_column", "output_name", "--num_inference_steps", "2", "--seed", "0"},
      d);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The loading phase is in the log, component by component.
  EXPECT_NE(r.err.find("loading transformer 3/5 on cpu"), std::string::npos) << r.err;
  const dg::RecordTable res = dg::RecordTable::load(d / "out/results.csv");
  ASSERT_EQ(res.records.size(), 3u);
  EXPECT_EQ(res.find("0")->at("effective_width"), "1248");  // 96x64 input: calculate_dimensions(1024^2, 1.5)
  EXPECT_EQ(res.find("0")->at("effective_height"), "832");
  EXPECT_EQ(res.find("1")->at("effective_width"), "1024");  // two images: size from the last (80x80)
  // True CFG: 2 branch evaluations per step, by default (--cfg_batch auto) two calls on the CPU (docs/batching.md).
  const auto counters = nlohmann::json::parse(res.find("1")->at("counters"));
  EXPECT_EQ(counters.at("transformer_calls"), 4) << counters;
  EXPECT_EQ(counters.at("transformer_passes"), 4) << counters;
  EXPECT_EQ(counters.at("transformer_batch"), 1) << counters;
  EXPECT_EQ(res.find("1")->at("batch"), "1");  // --batch_size 1: each row alone
  EXPECT_EQ(res.find("2")->at("model_type"), "qwen");
  EXPECT_EQ(read_image(d / "out/rings_water.jpg").width, 1024);
  // --attention_backend on a bundle whose graphs call no SDPA (the tiny ones): it runs, and says the flag does nothing.
  r = diffgentor({"edit", "--model_name", bundle, "--input", DG_SOURCE_DIR "/examples/edit.csv", "--output_dir",
                  d / "out_math", "--output_name_column", "output_name", "--num_inference_steps", "2", "--filter_rows",
                  "0", "--attention_backend", "math"},
                 d);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("--attention_backend math: no component of this bundle calls scaled_dot_product_attention"),
            std::string::npos)
      << r.err;
  // A LoRA made for another model stops the load, naming the file and the layers it could not place.
  const std::string lora = DG_SOURCE_DIR "/tests/data/lora/kohya.safetensors";
  r = diffgentor({"edit", "--model_name", bundle, "--input", DG_SOURCE_DIR "/examples/edit.csv", "--output_dir",
                  d / "out_lora", "--output_name_column", "output_name", "--lora", lora},
                 d);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("LoRA " + lora +
                       ": 1 of 1 layers match no weight of the transformer "
                       "(transformer_blocks_0_attn_to_q)"),
            std::string::npos)
      << r.err;
}

// --batch_size through the real binary: rows of one input size run as one batch (their batch recorded in
// results.csv), a row of another size alone, and every image matches the one-row-at-a-time run to one level (the
// float sums' order changes; tests/engine/batching_test.cpp bounds the latents).
TEST(CliE2E, BatchSizeGroupsRowsOfOneSize) {
  TempDir d;
  Workspace ws;
  const std::string bundle = d / "Qwen-Image-Edit-tiny";
  ProcessResult r = diffgentor({"make-tiny", "--model_type", "qwen_singleimg", "--out", bundle}, d);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string a = ws.image("a.png", 96, 64, 1), b = ws.image("b.png", 80, 80, 2);
  const std::string m =
      ws.file("m.csv", "image,instruction\n" + a + ",make the sky purple\n" + a +
                           ",add a small red boat on the water\n" + b + ",make it night\n" + a + ",snow\n");
  std::map<std::string, dg::RecordTable> runs;
  for (const std::string batch : {"1", "4", "4s"}) {  // 4s: batch 4 with --enable_vae_slicing
    std::vector<std::string> args = tiny_edit(bundle, "qwen_singleimg", m, d / ("out" + batch),
                                              {"--num_inference_steps", "2", "--batch_size", batch.substr(0, 1),
                                               "--prefetch", "4", "--torch_dtype", "float32"});
    if (batch == "4s") args.push_back("--enable_vae_slicing");
    r = diffgentor(args, d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    runs.emplace(batch, dg::RecordTable::load(d / ("out" + batch + "/results.csv")));
  }
  const dg::RecordTable& batched = runs.at("4");
  for (const char* index : {"0", "1", "3"}) EXPECT_EQ(batched.find(index)->at("batch"), "0;1;3") << index;
  EXPECT_EQ(batched.find("2")->at("batch"), "2");
  EXPECT_EQ(runs.at("1").find("1")->at("batch"), "1");
  const auto counters = nlohmann::json::parse(batched.find("0")->at("counters"));
  EXPECT_EQ(counters.at("transformer_batch"), 3);  // 3 rows, CFG split
  EXPECT_EQ(counters.at("vae_decoder_batch"), 3);  // one decode for the three
  // VAE slicing: the same batch, but each row's decode alone.
  const auto sliced = nlohmann::json::parse(runs.at("4s").find("0")->at("counters"));
  EXPECT_EQ(sliced.at("transformer_batch"), 3);
  EXPECT_EQ(sliced.at("vae_decoder_batch"), 1);
  EXPECT_EQ(nlohmann::json::parse(runs.at("1").find("0")->at("counters")).at("vae_decoder_batch"), 1);
  for (const char* run : {"4", "4s"})
    for (int k = 0; k < 4; ++k) {
      const std::string name = fmt::format("{:06d}.png", k);
      const dg::Image x = read_image(d / ("out1/" + name)), y = read_image(d / ("out" + std::string(run) + "/" + name));
      ASSERT_EQ(x.rgb.size(), y.rgb.size()) << name;
      EXPECT_LE(max_pixel_diff(x, y), 1) << run << " " << name;
    }
}

// Per-row parameter columns and the output size through the real binary: a row's columns win over the flags, a bad
// value fails its row before the model runs, the user's columns stay as they were in results.csv beside the
// effective_* ones, and the requested size is part of what resume compares.
TEST(CliE2E, PerRowParametersAndOutputSize) {
  TempDir d;
  Workspace ws;
  const std::string bundle = d / "Qwen-Image-Edit-tiny";
  ProcessResult r = diffgentor({"make-tiny", "--model_type", "qwen_singleimg", "--out", bundle}, d);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string a = ws.image("a.png", 96, 64, 1);
  const std::string m =
      ws.file("m.csv",
              "image,instruction,num_inference_steps,true_cfg_scale,guidance_scale,width,height,note,loras\n" + a +
                  ",make it blue,3,1,,100,60,first,mine\n" +  // floored to 96x48
                  a + ",make it red,,,,,,second,\n" +         // the flags: 2 steps, width 80
                  a + ",make it green,abc,,,,,third,\n" +     // a bad value fails the row
                  a + ",make it gray,,,,8,,fourth,\n");       // below Qwen's multiple of 16
  const std::vector<std::string> run =
      tiny_edit(bundle, "qwen_singleimg", m, d / "out", {"--num_inference_steps", "2", "--width", "80"});
  r = diffgentor(run, d);
  ASSERT_EQ(r.exit_code, 1) << r.err;  // two rows failed
  EXPECT_NE(r.err.find("manifest column 'guidance_scale': model type qwen_singleimg guides with true_cfg_scale"),
            std::string::npos)
      << r.err;
  const dg::RecordTable res = dg::RecordTable::load(d / "out/results.csv");
  ASSERT_EQ(res.records.size(), 2u);
  const auto& r0 = *res.find("0");
  EXPECT_EQ(r0.at("num_inference_steps"), "3");  // the user's columns, as they were
  EXPECT_EQ(r0.at("width"), "100");
  EXPECT_EQ(r0.at("note"), "first");
  EXPECT_EQ(r0.at("manifest_loras"), "mine");  // a user column named like one of the run's keeps its value
  EXPECT_EQ(r0.at("loras"), "");
  EXPECT_EQ(r0.at("effective_num_inference_steps"), "3");
  EXPECT_EQ(r0.at("effective_true_cfg_scale"), "1");
  EXPECT_EQ(r0.at("requested_width"), "100");
  EXPECT_EQ(r0.at("effective_width"), "96");
  EXPECT_EQ(r0.at("effective_height"), "48");
  EXPECT_EQ(nlohmann::json::parse(r0.at("counters")).at("transformer_calls"), 3);  // true CFG off by the row
  const dg::Image img0 = read_image(d / "out/000000.png");
  EXPECT_EQ(img0.width, 96);
  EXPECT_EQ(img0.height, 48);
  const auto& r1 = *res.find("1");
  EXPECT_EQ(r1.at("num_inference_steps"), "");
  EXPECT_EQ(r1.at("effective_num_inference_steps"), "2");
  EXPECT_EQ(r1.at("requested_width"), "80");
  EXPECT_EQ(r1.at("requested_height"), "");
  EXPECT_EQ(r1.at("effective_width"), "80");
  EXPECT_EQ(r1.at("effective_height"), "832");  // calculate_dimensions(1024^2, 1.5) for the unrequested side
  EXPECT_EQ(nlohmann::json::parse(r1.at("counters")).at("transformer_calls"), 4);  // 2 steps, true CFG 4.0
  const dg::RecordTable fails = dg::RecordTable::load(d / "out/failures.csv");
  ASSERT_EQ(fails.records.size(), 2u);
  EXPECT_EQ(fails.find("2")->at("stage"), "input");
  EXPECT_NE(fails.find("2")->at("reason").find("num_inference_steps: 'abc' is not an integer in 1..1000"),
            std::string::npos);
  EXPECT_EQ(fails.find("3")->at("stage"), "input");
  EXPECT_NE(fails.find("3")->at("reason").find("width: 8 is outside 16..8192"), std::string::npos)
      << fails.find("3")->at("reason");
  // Another requested width is another image: resume refuses to mix the two.
  std::vector<std::string> other = run;
  other.back() = "64";
  r = diffgentor(other, d);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("index 1: requested_width '80' -> '64'"), std::string::npos) << r.err;
  // A flag below the type's multiple stops the run at start-up.
  other.back() = "8";
  r = diffgentor(other, d);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--width: 8 is outside 16..8192"), std::string::npos) << r.err;
}

// --width/--height on the other types: floored to 16 (FLUX.2), to 32 (GLM-Image), unused with a warning (LongCat).
TEST(CliE2E, OutputSizeFlagsFollowEachPipeline) {
  TempDir d;
  Workspace ws;
  const std::string a = ws.image("a.png", 96, 64, 1);
  const std::string m = ws.file("m.csv", "image,instruction\n" + a + ",make it blue\n");
  const struct {
    const char* type;
    int width, height;
  } cases[] = {{"flux2_klein", 64, 96}, {"glm_image", 64, 96}, {"longcat", 1264, 848}};
  for (const auto& c : cases) {
    const std::string bundle = d / (std::string("b_") + c.type), out = d / (std::string("out_") + c.type);
    ProcessResult r = diffgentor({"make-tiny", "--model_type", c.type, "--out", bundle}, d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = diffgentor(
        tiny_edit(bundle, c.type, m, out, {"--num_inference_steps", "2", "--width", "79", "--height", "100"}), d);
    ASSERT_EQ(r.exit_code, 0) << c.type << r.err;
    const dg::Image img = read_image(out + "/000000.png");
    EXPECT_EQ(img.width, c.width) << c.type;  // longcat: calculate_dimensions(1024^2, 1.5), rounded up to 16
    EXPECT_EQ(img.height, c.height) << c.type;
    if (std::string(c.type) == "longcat") {
      EXPECT_NE(r.err.find("--width: model type longcat makes its output at the size it derives"), std::string::npos)
          << r.err;
    }
  }
}

// --enable_vae_tiling on a tiny FLUX.2-klein (tiles of 32 latents every 24, 64 px blended: with_tiny_vae_tiling in
// src/models/tiny/tiny_common.cpp). The 256 x 192 input is encoded whole (not larger than a 256 px tile); the
// 512 x 400 output decodes in 3 x 3 tiles starting at 0, 192 and 384 px. The tiny decoder looks one latent around
// each pixel, so a tile's output differs from the whole decode only along its zero-padded edges, and those lie in
// the blend bands [192, 256) and [384, 448): outside them the two images agree (to one level: a convolution over a
// tile may sum in another order than over the whole image, and one float32 ulp can round to the next level).
// A second row's 512 x 400 input is larger than a tile: its encode runs in 3 x 3 tiles too.
TEST(CliE2E, VaeTilingDiffersFromTheWholeDecodeOnlyInTheBlendBands) {
  TempDir d;
  Workspace ws;
  const std::string a = ws.image("a.png", 256, 192, 1), b = ws.image("b.png", 512, 400, 2);
  const std::string m = ws.file("m.csv", "image,instruction\n" + a + ",make it blue\n" + b + ",make it red\n");
  const std::string bundle = d / "b";
  ProcessResult r = diffgentor({"make-tiny", "--model_type", "flux2_klein", "--out", bundle}, d);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const std::string run : {"whole", "tiled"}) {
    std::vector<std::string> extra{"--num_inference_steps", "2",      "--width", "512", "--height", "400",
                                   "--torch_dtype",         "float32"};
    if (run == "tiled") extra.push_back("--enable_vae_tiling");
    r = diffgentor(tiny_edit(bundle, "flux2_klein", m, d / run, extra), d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  EXPECT_NE(
      r.err.find("VAE tiling as diffusers' enable_tiling: AutoencoderKLFlux2: decode tiles of 32 latents every 24"),
      std::string::npos)
      << r.err;
  const dg::RecordTable tiled_results = dg::RecordTable::load(d / "tiled/results.csv");
  const auto counters = nlohmann::json::parse(tiled_results.find("0")->at("counters"));
  EXPECT_EQ(counters.value("vae_decoder_tiles", 0), 9) << counters;
  EXPECT_FALSE(counters.contains("vae_encoder_tiles")) << counters;
  const auto counters1 = nlohmann::json::parse(tiled_results.find("1")->at("counters"));
  EXPECT_EQ(counters1.value("vae_encoder_tiles", 0), 9) << counters1;  // tiles from 0, 192 and 384 px each way
  dg::Image whole = read_image(d / "whole/000000.png"), tiled = read_image(d / "tiled/000000.png");
  ASSERT_EQ(tiled.width, 512);
  ASSERT_EQ(tiled.height, 400);
  const auto in_band = [](int v) { return (v >= 192 && v < 256) || (v >= 384 && v < 448); };
  int outside = 0, inside = 0;
  for (int y = 0; y < 400; ++y)
    for (int x = 0; x < 512; ++x)
      for (int c = 0; c < 3; ++c) {
        int& worst = in_band(x) || in_band(y) ? inside : outside;
        worst = std::max(worst, std::abs(whole.pixel(x, y)[c] - tiled.pixel(x, y)[c]));
      }
  EXPECT_LE(outside, 1);
  EXPECT_GT(inside, 1);  // the tiles' edges show where they are blended: the decode did run in tiles
}

// GLM-Image end to end through the real binary: make-tiny, the example manifest (one row with two references,
// one with a quoted glyph text), resume, and its model option.
TEST(CliE2E, GlmImageTinyBatchResumesAndTakesItsModelOption) {
  TempDir d;
  const std::string bundle = d / "GLM-Image-tiny";
  ProcessResult r = diffgentor({"make-tiny", "--model_type", "glm_image", "--out", bundle}, d);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> run{"edit",
                                     "--model_name",
                                     bundle,
                                     "--input",
                                     DG_SOURCE_DIR "/examples/edit.csv",
                                     "--output_dir",
                                     d / "out",
                                     "--num_inference_steps",
                                     "2",
                                     "--seed",
                                     "5",
                                     "--negative_prompt",
                                     "blurry",
                                     "--output_name_column",
                                     "output_name"};
  r = diffgentor(run, d);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("glm_image: AR sampling temperature 0.9, top_k 50, top_p 0.75"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("negative_prompt is ignored"), std::string::npos) << r.err;
  const dg::RecordTable res = dg::RecordTable::load(d / "out/results.csv");
  ASSERT_EQ(res.records.size(), 3u);
  // 96x64 snaps to 96x64 (multiples of 32, short side >= 64); the two-image row takes the first's size.
  EXPECT_EQ(res.find("0")->at("effective_width"), "96");
  EXPECT_EQ(res.find("0")->at("effective_height"), "64");
  EXPECT_EQ(res.find("1")->at("effective_width"), "64");
  EXPECT_EQ(res.find("1")->at("model_type"), "glm_image");
  EXPECT_NE(res.find("0")->at("counters").find("\"ar_tokens\":6"), std::string::npos) << res.find("0")->at("counters");
  const auto first = read_text(d / "out/sunset_purple.png");
  ASSERT_FALSE(first.empty());
  r = diffgentor(run, d);  // resume: nothing left to do, nothing rewritten
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("3 already done, 0 to do"), std::string::npos) << r.err;
  EXPECT_EQ(read_text(d / "out/sunset_purple.png"), first);
  std::vector<std::string> shifted = run;
  shifted[6] = d / "out_shifted";
  shifted.insert(shifted.end(), {"--model_option", "timesteps=shifted"});
  ASSERT_EQ(diffgentor(shifted, d).exit_code, 0);
  EXPECT_NE(read_text(d / "out_shifted/sunset_purple.png"), first);
  shifted.back() = "timesteps=later";
  r = diffgentor(shifted, d);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--model_option timesteps=later: 'later' is not one of unshifted, shifted"), std::string::npos)
      << r.err;
}

TEST(CliE2E, TokenizePrintsIds) {
  TempDir d;
  const std::string bundle = d / "tiny";
  ASSERT_EQ(diffgentor({"make-tiny", "--model_type", "qwen_singleimg", "--out", bundle}, d).exit_code, 0);
  // The tiny vocabulary starts with the printable bytes, so "Hello" is H e l l o = 72-33, 101-33, ...
  ProcessResult r = diffgentor({"tokenize", "--model_name", bundle, "Hello<|im_start|>"}, d);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[39,68,75,75,78," + std::to_string(256 + 14 + 1) + "]\n");
  r = diffgentor({"tokenize", "Hello"}, d);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("exactly one of --model_name"), std::string::npos);
  const std::string qwen2 = dg::test::testdata_dir() + "/tokenizers/qwen2/tokenizer.json";
  if (fs::exists(qwen2)) {
    r = diffgentor({"tokenize", "--tokenizer", qwen2, "Make the cat wear a red hat"}, d);
    EXPECT_EQ(r.out, "[8078,279,8251,9850,264,2518,8896]\n");
  }
}

TEST(CliE2E, TokenizeDecodesIdsToText) {
  // Ids of Mistral's Tekken vocabulary (tests/data/tokenizers/tekken): <s> [INST] "Make the sky" [/INST] </s>.
  TempDir d;
  const std::string tekken = dg::test::testdata_dir() + "/tokenizers/tekken/tokenizer.json";
  const std::string ids = "[1, 3, 23269, 1278, 21283, 4, 2]";
  ProcessResult r = diffgentor({"tokenize", "--tokenizer", tekken, "--decode", ids}, d);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "\"<s>[INST]Make the sky[/INST]</s>\"\n");
  r = diffgentor({"tokenize", "--tokenizer", tekken, "--decode", "--skip_special_tokens", ids}, d);
  EXPECT_EQ(r.out, "\"Make the sky\"\n");
  r = diffgentor({"tokenize", "--tokenizer", tekken, "--decode", "[1, \"x\"]"}, d);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("a JSON list of non-negative token ids"), std::string::npos) << r.err;
  r = diffgentor({"tokenize", "--tokenizer", tekken, "--skip_special_tokens", "text"}, d);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("need --decode"), std::string::npos) << r.err;
}
