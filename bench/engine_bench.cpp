// diffgentor_engine_bench: one model type's rows/s, denoising-loop overhead and peak device memory under several
// run modes, through the engine alone (no image files, no CLI), so that it builds wherever a libtorch does (the
// engine-only build) and runs on a GPU machine that has nothing else (bench/device_bench.sh).
//   diffgentor_engine_bench --type TYPE [--bundle DIR | --size tiny|small] [--device cpu|cuda] [--dtype D]
//       [--steps N] [--rows N] [--threads N] [--image WxH]... [--width W --height H] [--guidance G]
//       [--true_cfg G] [--negative TEXT] [--model_option K=V]... [--modes b1-split,b1-fused,b2-fused,b1-fused-offload]
//       [--json FILE]
// A mode is bN (rows per edit_batch call), fused|split (--cfg_batch) and an optional -offload (--enable_cpu_offload).
// Each mode gets a pipeline of its own and one untimed warm-up call, then edits the same --rows rows (seeds 42 + k,
// instructions of different lengths, generated --image inputs; default one or two of 1024x1024). Per mode it prints
// rows/s, the denoising loop's time per step against the time inside its transformer calls (batch 1 only: a batch's
// rows share one loop), the largest device_peak_mib a row reports (CUDA), offload uploads per row, and each row's
// largest pixel difference from the first mode. Exit status 1 when an -offload mode's images differ from those of the
// same mode without offload by more than one level, or when it moved nothing: the offload must not change a result.
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "diffgentor/model_registry.hpp"

namespace fs = std::filesystem;
namespace {

struct Mode {
  std::string name;
  int batch = 1;
  bool fused = true, offload = false;
};

Mode parse_mode(const std::string& text) {
  Mode m{text};
  std::size_t pos = 0;
  std::vector<std::string> parts;
  while (pos <= text.size()) {
    const std::size_t end = std::min(text.find('-', pos), text.size());
    parts.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  if (parts.size() < 2 || parts.size() > 3 || parts[0].size() < 2 || parts[0][0] != 'b' ||
      (parts[1] != "fused" && parts[1] != "split") || (parts.size() == 3 && parts[2] != "offload"))
    throw std::invalid_argument("mode '" + text + "': expected bN-fused|split[-offload]");
  m.batch = std::stoi(parts[0].substr(1));
  if (m.batch < 1) throw std::invalid_argument("mode '" + text + "': batch must be >= 1");
  m.fused = parts[1] == "fused";
  m.offload = parts.size() == 3;
  return m;
}

dg::Image pattern(int w, int h, int seed) {
  dg::Image img{w, h, std::vector<uint8_t>(static_cast<std::size_t>(w) * h * 3)};
  for (std::size_t k = 0; k < img.rgb.size(); ++k)
    img.rgb[k] = static_cast<uint8_t>((k * 13 + static_cast<std::size_t>(seed) * 71 + k / 97) % 256);
  return img;
}

int64_t counter(const dg::EditResult& r, const std::string& name) {
  for (const auto& [k, v] : r.counters)
    if (k == name) return v;
  return -1;
}

double stage(const dg::EditResult& r, const std::string& name) {
  double s = 0;
  for (const auto& [k, v] : r.stage_seconds)
    if (k == name) s += v;
  return s;
}

int max_diff(const dg::Image& a, const dg::Image& b) {
  if (a.rgb.size() != b.rgb.size()) return 256;
  int d = 0;
  for (std::size_t k = 0; k < a.rgb.size(); ++k) d = std::max(d, std::abs(int(a.rgb[k]) - int(b.rgb[k])));
  return d;
}

}  // namespace

int main(int argc, char** argv) try {
  std::map<std::string, std::string> opt = {{"--type", ""},          {"--bundle", ""},
                                            {"--size", "small"},     {"--device", "cpu"},
                                            {"--dtype", "bfloat16"}, {"--steps", "8"},
                                            {"--rows", "4"},         {"--threads", "0"},
                                            {"--width", ""},         {"--height", ""},
                                            {"--guidance", ""},      {"--true_cfg", ""},
                                            {"--negative", ""},      {"--modes", "b1-split,b1-fused"},
                                            {"--json", ""}};
  std::vector<std::string> images_given, model_options;
  for (int k = 1; k < argc; k += 2) {
    const std::string key = argv[k];
    if (k + 1 >= argc || (!opt.count(key) && key != "--image" && key != "--model_option"))
      throw std::invalid_argument("unknown option or missing value: " + key +
                                  " (see the head of bench/engine_bench.cpp)");
    if (key == "--image")
      images_given.emplace_back(argv[k + 1]);
    else if (key == "--model_option")
      model_options.emplace_back(argv[k + 1]);
    else
      opt[key] = argv[k + 1];
  }
  const dg::ModelSpec* spec = dg::find_model(opt["--type"]);
  const dg::ModelEntry* entry = spec ? dg::find_model_entry(spec->type) : nullptr;
  if (!entry) throw std::invalid_argument("--type '" + opt["--type"] + "' is not an implemented model type");
  if (std::stoi(opt["--threads"]) > 0) at::set_num_threads(std::stoi(opt["--threads"]));
  std::string bundle = opt["--bundle"];
  if (bundle.empty()) {
    bundle = (fs::temp_directory_path() / fmt::format("dg_engine_bench_{}_{}", spec->type, opt["--size"])).string();
    if (!fs::exists(bundle + "/torchscript/manifest.json")) entry->make_tiny(*spec, bundle, {opt["--size"], 0});
  }
  if (images_given.empty()) images_given.assign(spec->images.max_images == 1 ? 1 : 2, "1024x1024");
  dg::ParamOverrides given;
  given.steps = std::stoi(opt["--steps"]);
  if (!opt["--guidance"].empty()) given.guidance = std::stod(opt["--guidance"]);
  if (!opt["--true_cfg"].empty()) given.true_cfg = std::stod(opt["--true_cfg"]);
  if (!opt["--negative"].empty()) given.negative_prompt = opt["--negative"];
  if (!opt["--width"].empty()) given.width = std::stoi(opt["--width"]);
  if (!opt["--height"].empty()) given.height = std::stoi(opt["--height"]);
  const char* instructions[] = {"make the sky purple", "write \"hello\" on the wall in large red letters",
                                "turn it into a watercolour painting", "add snow"};
  const int rows = std::stoi(opt["--rows"]);
  std::vector<dg::EditRequest> requests(static_cast<std::size_t>(rows));
  for (int r = 0; r < rows; ++r) {
    auto& q = requests[static_cast<std::size_t>(r)];
    q.index = r;
    for (std::size_t k = 0; k < images_given.size(); ++k) {
      int w = 0, h = 0;
      if (std::sscanf(images_given[k].c_str(), "%dx%d", &w, &h) != 2 || w < 1 || h < 1)
        throw std::invalid_argument("--image '" + images_given[k] + "': expected WxH");
      q.images.push_back(pattern(w, h, r + static_cast<int>(k)));
    }
    q.instruction = instructions[r % 4];
    q.params = dg::merge_params(*spec, given);
    q.seed = 42 + static_cast<uint64_t>(r);
  }

  nlohmann::json report = nlohmann::json::array();
  std::map<std::string, std::vector<dg::Image>> outputs;  // mode name -> row images
  bool ok = true;
  fmt::print("{} {} on {}, {} rows of {} image(s) {}, {} steps, bundle {}\n", spec->type, opt["--dtype"],
             opt["--device"], rows, images_given.size(), images_given[0], given.steps.value(), bundle);
  fmt::print(
      "| mode | rows/s | s/row | loop ms/step | transformer ms/step | overhead | peak MiB | uploads/row | "
      "max diff vs {} |\n|---|---|---|---|---|---|---|---|---|\n",
      opt["--modes"].substr(0, opt["--modes"].find(',')));
  std::string first;
  for (std::size_t pos = 0; pos <= opt["--modes"].size();) {
    const std::size_t end = std::min(opt["--modes"].find(',', pos), opt["--modes"].size());
    const Mode mode = parse_mode(opt["--modes"].substr(pos, end - pos));
    pos = end + 1;
    dg::PipelineConfig config{
        spec, bundle, opt["--device"], opt["--dtype"], dg::resolve_model_options(*spec, model_options), {}, {}};
    config.fuse_cfg = mode.fused;
    config.cpu_offload = mode.offload;
    const auto loading = std::chrono::steady_clock::now();
    auto pipe = entry->make_pipeline(config);
    const double load = std::chrono::duration<double>(std::chrono::steady_clock::now() - loading).count();
    auto batch_of = [&](std::size_t from) {
      return std::vector<dg::EditRequest>(
          requests.begin() + static_cast<std::ptrdiff_t>(from),
          requests.begin() + static_cast<std::ptrdiff_t>(std::min(requests.size(), from + mode.batch)));
    };
    pipe->edit_batch(batch_of(0));  // warm-up: first-call costs (kernels, allocator, autotuning) are not timed
    std::vector<dg::Image>& images = outputs[mode.name];
    double loop = 0, inside = 0, steps = 0;
    int64_t peak = -1, uploads = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t from = 0; from < requests.size(); from += static_cast<std::size_t>(mode.batch))
      for (dg::BatchOutcome& o : pipe->edit_batch(batch_of(from))) {
        if (o.error) std::rethrow_exception(o.error);
        images.push_back(std::move(o.result.image));
        loop += stage(o.result, "denoise");
        inside += std::max<int64_t>(0, counter(o.result, "transformer_us")) * 1e-6;
        steps += given.steps.value();
        peak = std::max(peak, counter(o.result, "device_peak_mib"));
        uploads += std::max<int64_t>(0, counter(o.result, "offload_uploads"));
      }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (first.empty()) first = mode.name;
    int diff = 0;
    for (std::size_t r = 0; r < images.size(); ++r) diff = std::max(diff, max_diff(images[r], outputs[first][r]));
    // The same run without the offload, when this mode has one and it ran before: the offload must change nothing.
    const std::string twin = mode.name.substr(0, mode.name.rfind("-offload"));
    if (mode.offload) {
      const bool moved = uploads > 0;
      int twin_diff = -1;
      if (outputs.count(twin))
        for (std::size_t r = 0; r < images.size(); ++r)
          twin_diff = std::max(twin_diff, max_diff(images[r], outputs[twin][r]));
      if (!moved || twin_diff > 1) {
        ok = false;
        fmt::print(stderr, "{}: {} upload(s), max diff {} against {}: the offload changed the result\n", mode.name,
                   uploads, twin_diff, twin);
      }
    }
    const bool single = mode.batch == 1 && loop > 0;
    fmt::print("| {} | {:.3f} | {:.3f} | {} | {} | {} | {} | {} | {} |\n", mode.name, rows / wall, wall / rows,
               single ? fmt::format("{:.2f}", 1e3 * loop / steps) : "·",
               single ? fmt::format("{:.2f}", 1e3 * inside / steps) : "·",
               single ? fmt::format("{:.2f} %", 100 * (loop - inside) / loop) : "·",
               peak >= 0 ? std::to_string(peak) : "·",
               mode.offload ? fmt::format("{:.1f}", double(uploads) / rows) : "·", diff);
    report.push_back({{"mode", mode.name},
                      {"load_s", load},
                      {"rows_per_s", rows / wall},
                      {"seconds_per_row", wall / rows},
                      {"loop_ms_per_step", single ? 1e3 * loop / steps : -1},
                      {"transformer_ms_per_step", single ? 1e3 * inside / steps : -1},
                      {"device_peak_mib", peak},
                      {"uploads_per_row", double(uploads) / rows},
                      {"max_diff", diff}});
  }
  if (!opt["--json"].empty()) std::ofstream(opt["--json"]) << report.dump(2) << "\n";
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  fmt::print(stderr, "diffgentor_engine_bench: {}\n", e.what());
  return 2;
}
