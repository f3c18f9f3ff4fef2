// diffgentor_parity: runs one row through a pipeline of the engine and writes every stage the pipeline taps
// (bundle_pipeline.hpp StageTap) for tools/parity/parity.py, which compares them with diffusers' own
// pipeline on the same inputs (docs/parity.md). Engine only (no OpenCV, CLI11, curl): images come in as raw
// RGB files, so both sides start from the same bytes.
//   diffgentor_parity --bundle DIR --model_type T --out DIR --prompt TEXT --image W H FILE.rgb [--image ...]
//                     [--device cpu] [--dtype float32] [--seed 0] [--steps 2] [--guidance G] [--true_cfg G]
//                     [--negative TEXT] [--make_tiny] [--model_option NAME=VALUE ...]
//                     [--inject STAGE FILE.i64|FILE.f32 ...]   an int64 or float32 stage input
//                                                             (BundlePipeline::set_stage_input)
//                     [--upsample [--upsample_max_tokens N]]   FLUX.2-dev's own prompt upsampler first
//                     [--lora FILE[:SCALE] ...]                merged into the transformer at load (docs/lora.md)
//                     [--vae_tiling]                           the VAE runs tiled (PipelineConfig::vae_tiling)
//                     [--cpu_offload_check]                    offloaded, weights emptied while parked
//                                                              (PipelineConfig::offload_check)
//   diffgentor_parity --builders FILE   the runtime's Qwen input builders on fixed cases, as JSON, for the
//                                       exporter's test of its Python copy (tools/export/tests/test_inputs.py)
// Output: <out>/stages.json {"stage": {"shape": [...], "file": "stage.f32"}, ..., "image": {...}}, one
// little-endian float32 file per stage, and image.rgb (uint8, the row's output).
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffgentor/bundle_pipeline.hpp"
#include "diffgentor/model_registry.hpp"
#include "diffgentor/qwen_vl.hpp"

namespace fs = std::filesystem;

namespace {

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "diffgentor_parity: %s\n(see the comment at the top of tools/parity/parity_runner.cpp)\n",
               why.c_str());
  std::exit(2);
}

dg::Image read_rgb(int w, int h, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) usage("cannot read " + path);
  dg::Image img{w, h, std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>())};
  if (img.rgb.size() != static_cast<std::size_t>(w) * h * 3)
    usage(fmt::format("{} has {} bytes, expected {}x{}x3", path, img.rgb.size(), w, h));
  return img;
}

// Vision ids for images whose patch grids are exactly the given (gh, gw) (sides of 28·k survive smart_resize),
// and RoPE tables for fixed image shapes: the cases tools/export/tests/test_inputs.py compares.
int write_builders(const std::string& path) {
  nlohmann::json out = {{"vision", nlohmann::json::array()}, {"rope", nlohmann::json::array()}};
  const std::vector<std::vector<std::pair<int, int>>> grids = {{{16, 20}}, {{12, 8}}, {{20, 20}, {8, 12}}, {{40, 36}}};
  for (const auto& case_grids : grids) {
    std::vector<dg::Image> images;
    for (const auto& [gh, gw] : case_grids)
      images.push_back({gw * 14, gh * 14, std::vector<uint8_t>(static_cast<std::size_t>(gw) * gh * 14 * 14 * 3, 128)});
    const dg::VisionInputs v = dg::process_qwen_images(images, dg::QwenVisionConfig{});
    out["vision"].push_back({{"grids", case_grids},
                             {"got_grids", v.grids},
                             {"vision_pos", v.vision_pos},
                             {"window_seg", v.window_seg},
                             {"image_seg", v.image_seg}});
  }
  const std::vector<std::pair<std::vector<dg::ImageShape>, std::vector<int>>> ropes = {
      {{{1, 8, 12}, {1, 10, 6}}, {4, 6, 6}}, {{{1, 6, 6}, {1, 6, 6}, {1, 8, 4}}, {16, 56, 56}}};
  for (const auto& [shapes, axes] : ropes) {
    const dg::RopeTables t = dg::qwen_rope_tables(shapes, 9, axes);
    nlohmann::json s = nlohmann::json::array();
    for (const auto& sh : shapes) s.push_back({sh.frame, sh.height, sh.width});
    out["rope"].push_back({{"shapes", s}, {"text_len", 9}, {"axes", axes}, {"img", t.img}, {"txt", t.txt}});
  }
  std::ofstream(path) << out.dump() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--builders") return write_builders(argv[2]);
  std::string bundle, type, out, device = "cpu", dtype = "float32";
  dg::EditRequest request;
  std::optional<double> guidance, true_cfg;
  std::optional<std::string> negative;
  std::optional<int> steps;
  bool make_tiny = false, vae_tiling = false, offload_check = false;
  std::vector<std::string> model_options;
  std::vector<std::pair<std::string, std::string>> injections;
  dg::PromptUpsampling upsampling;
  std::vector<dg::LoraSpec> loras;
  for (int k = 1; k < argc; ++k) {
    const std::string a = argv[k];
    auto next = [&]() -> std::string {
      if (k + 1 >= argc) usage(a + " needs a value");
      return argv[++k];
    };
    if (a == "--bundle")
      bundle = next();
    else if (a == "--model_type")
      type = next();
    else if (a == "--out")
      out = next();
    else if (a == "--device")
      device = next();
    else if (a == "--dtype")
      dtype = next();
    else if (a == "--prompt")
      request.instruction = next();
    else if (a == "--seed")
      request.seed = std::stoull(next());
    else if (a == "--steps")
      steps = std::stoi(next());
    else if (a == "--guidance")
      guidance = std::stod(next());
    else if (a == "--true_cfg")
      true_cfg = std::stod(next());
    else if (a == "--negative")
      negative = next();
    else if (a == "--make_tiny")
      make_tiny = true;
    else if (a == "--model_option")
      model_options.push_back(next());
    else if (a == "--lora")
      loras.push_back(dg::parse_lora_spec(next()));
    else if (a == "--vae_tiling")
      vae_tiling = true;
    else if (a == "--cpu_offload_check")
      offload_check = true;
    else if (a == "--upsample")
      upsampling.enabled = true;
    else if (a == "--upsample_max_tokens")
      upsampling.max_new_tokens = std::stoi(next());
    else if (a == "--inject") {
      const std::string stage = next();
      injections.emplace_back(stage, next());
    } else if (a == "--image") {
      const int w = std::stoi(next()), h = std::stoi(next());
      request.images.push_back(read_rgb(w, h, next()));
    } else
      usage("unknown argument " + a);
  }
  if (bundle.empty() || type.empty() || out.empty() || (request.images.empty() && !make_tiny))
    usage("--bundle, --model_type, --out and at least one --image are required");
  const dg::ModelSpec* spec = dg::find_model(type);
  const dg::ModelEntry* entry = dg::find_model_entry(type);
  if (!spec || !entry) usage("no pipeline for model type " + type);
  if (make_tiny) {  // lets the harness's self-check run without diffusers
    entry->make_tiny(*spec, bundle, {"tiny", 0});
    if (request.images.empty()) return 0;
  }

  request.params = dg::merge_params(*spec, {steps, guidance, true_cfg, negative});

  try {
    dg::PipelineConfig cfg{spec, bundle,    device, dtype, dg::resolve_model_options(*spec, model_options),
                           {},   upsampling};
    cfg.loras = loras;
    cfg.vae_tiling = vae_tiling;
    cfg.cpu_offload = cfg.offload_check = offload_check;
    auto pipeline = entry->make_pipeline(cfg);
    auto* bp = dynamic_cast<dg::BundlePipeline*>(pipeline.get());
    if (!bp) usage("the pipeline of " + type + " has no stage taps");
    for (const auto& [stage, file] : injections) {
      std::ifstream in(file, std::ios::binary);
      if (!in) usage("cannot read " + file);
      const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (fs::path(file).extension() == ".f32") {
        if (bytes.size() % 4 != 0) usage(file + " does not hold float32 values");
        std::vector<float> values(bytes.size() / 4);
        std::memcpy(values.data(), bytes.data(), bytes.size());
        bp->set_stage_input(stage, at::tensor(values));
        continue;
      }
      if (bytes.size() % 8 != 0) usage(file + " does not hold int64 values");
      std::vector<int64_t> values(bytes.size() / 8);
      std::memcpy(values.data(), bytes.data(), bytes.size());
      bp->set_stage_input(stage, at::tensor(values));
    }
    fs::create_directories(out);
    nlohmann::json index = nlohmann::json::object();
    bp->set_stage_tap([&](const std::string& stage, const at::Tensor& value) {
      const at::Tensor t = value.detach().to(at::kCPU, at::kFloat).contiguous();
      std::ofstream(fs::path(out) / (stage + ".f32"), std::ios::binary)
          .write(reinterpret_cast<const char*>(t.data_ptr<float>()), static_cast<std::streamsize>(t.numel() * 4));
      index[stage] = {{"shape", t.sizes().vec()}, {"file", stage + ".f32"}};
    });
    const dg::EditResult result = pipeline->edit(request);
    std::ofstream(fs::path(out) / "image.rgb", std::ios::binary)
        .write(reinterpret_cast<const char*>(result.image.rgb.data()),
               static_cast<std::streamsize>(result.image.rgb.size()));
    index["image"] = {
        {"shape", {result.image.height, result.image.width, 3}}, {"file", "image.rgb"}, {"dtype", "uint8"}};
    std::ofstream(fs::path(out) / "stages.json") << index.dump(2) << "\n";
    fmt::print("{}: {} stages, image {}x{} -> {}\n", type, index.size() - 1, result.image.width, result.image.height,
               out);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "diffgentor_parity: %s\n", e.what());
    return 1;
  }
  return 0;
}
