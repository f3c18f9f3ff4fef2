// diffgentor_engine_smoke: the engine alone (no OpenCV, curl, CLI11, spdlog), for machines that only
// have a libtorch, such as a CUDA box. Makes tiny bundles, runs every implemented pipeline on a device and
// writes each output as raw RGB (<out>/<type>_<dtype>.rgb) so that runs on two devices can be compared.
//   diffgentor_engine_smoke <device> <out_dir> [size] [steps] [rows] [reference_dir]
// With a reference folder (another device's out_dir), each output is compared with its counterpart.
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "diffgentor/model_registry.hpp"
#include "diffgentor/synthetic_image.hpp"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <device> <out_dir> [tiny|small] [steps] [rows]\n", argv[0]);
    return 2;
  }
  const std::string device = argv[1], out = argv[2], size = argc > 3 ? argv[3] : "tiny";
  const int steps = argc > 4 ? std::atoi(argv[4]) : 4, rows = argc > 5 ? std::atoi(argv[5]) : 3;
  const std::string reference = argc > 6 ? argv[6] : "";
  at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  fs::create_directories(out);
  for (const dg::ModelSpec& spec : dg::model_table()) {
    const std::string type = spec.type;
    if (!dg::find_model_entry(type)) continue;
    const std::string bundle = out + "/bundle_" + type;
    if (!fs::exists(bundle + "/torchscript/manifest.json"))
      dg::find_model_entry(type)->make_tiny(spec, bundle, {size, 0});
    for (const char* dtype : {"float32", "bfloat16"}) {
      auto t0 = std::chrono::steady_clock::now();
      auto pipe = dg::find_model_entry(type)->make_pipeline({&spec, bundle, device, dtype, {}, {}, {}});
      const double load = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      dg::EditRequest r;
      r.images = {dg::synthetic_image(640, 480, 1)};
      if (spec.images.max_images != 1) r.images.push_back(dg::synthetic_image(512, 512, 2));
      r.instruction = "make the sky purple";
      r.params = dg::merge_params(spec, {});
      r.params.steps = steps;
      r.seed = 42;
      dg::EditResult res = pipe->edit(r);  // warm-up, also the compared output
      t0 = std::chrono::steady_clock::now();
      for (int k = 0; k < rows; ++k) pipe->edit(r);
      const double per_row = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / rows;
      std::ofstream(out + fmt::format("/{}_{}.rgb", type, dtype), std::ios::binary)
          .write(reinterpret_cast<const char*>(res.image.rgb.data()),
                 static_cast<std::streamsize>(res.image.rgb.size()));
      double sum = 0;
      for (uint8_t v : res.image.rgb) sum += v;
      std::string stages;
      for (const auto& [k, v] : res.stage_seconds) stages += fmt::format(" {}={:.3f}", k, v);
      int64_t calls = 0;
      for (const auto& [k, v] : res.counters)
        if (k == "transformer_calls") calls = v;
      fmt::print(
          "{} {} {} on {}: {}x{} mean {:.3f}, load {:.2f} s, {:.3f} s/row ({} steps, {} transformer calls; first "
          "call's stages:{})\n",
          size, type, dtype, device, res.image.width, res.image.height, sum / res.image.rgb.size(), load, per_row,
          steps, calls, stages);
      std::ifstream ref(reference + fmt::format("/{}_{}.rgb", type, dtype), std::ios::binary);
      if (!reference.empty() && ref) {
        std::vector<char> other((std::istreambuf_iterator<char>(ref)), std::istreambuf_iterator<char>());
        if (other.size() != res.image.rgb.size()) {
          fmt::print("  vs {}: different size\n", reference);
          continue;
        }
        int max_diff = 0;
        double total = 0;
        std::size_t differing = 0;
        for (std::size_t k = 0; k < other.size(); ++k) {
          const int d = std::abs(int(static_cast<uint8_t>(other[k])) - int(res.image.rgb[k]));
          max_diff = std::max(max_diff, d);
          total += d;
          differing += d != 0;
        }
        fmt::print("  vs {}: max |diff| {}, mean |diff| {:.4f}, {:.2f}% of bytes differ\n", reference, max_diff,
                   total / other.size(), 100.0 * differing / other.size());
      }
    }
  }
  return 0;
}
