// diffgentor_engine_bench: one model type's rows/s, denoising-loop overhead and peak device memory under several
// run modes, through the engine alone (no image files, no CLI), so that it builds wherever a libtorch does (the
// engine-only build) and runs on a GPU machine that has nothing else (bench/device_bench.sh).
//   diffgentor_engine_bench --type TYPE [--bundle DIR | --size tiny|small] [--device cpu|cuda] [--dtype D]
//       [--steps N] [--rows N] [--threads N] [--image WxH]... [--width W --height H] [--guidance G]
//       [--true_cfg G] [--negative TEXT] [--model_option K=V]... [--modes b1-split,b1-fused,...] [--json FILE]
// A mode is bN (rows per edit_batch call), fused|split (--cfg_batch), then optionally -offload (--enable_cpu_offload)
// and -timed (PipelineConfig::device_timing: on CUDA, where a call returns before its kernels finish, the
// transformer's invocations are also timed on the device, with events, so nothing waits). Each mode gets a pipeline
// of its own and one untimed warm-up call, then edits the same --rows rows (seeds 42 + k, instructions of different
// lengths, generated --image inputs; default one or two of 1024x1024). Per mode: rows/s; for batch 1 the denoising
// loop's time per step (the row's "denoise" stage, which on CUDA waits for the device, over its steps; it includes
// the loop's set-up and, offloaded, the transformer's upload) and the transformer's (on CUDA only in a -timed
// mode), and the overhead, the loop's share outside the transformer; the largest device_peak_mib of a row (CUDA);
// offload uploads per row; the largest pixel difference from the first mode. The JSON (rewritten after each mode)
// holds the settings and one object per mode (null: not measured). Exit status 1 when a mode failed, when an
// -offload mode moved nothing, or when its images differ by more than one level from those of the same mode
// without offload, which must come before it in --modes: offload must not change a result; 2 when nothing could
// run (bad options, no bundle).
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "diffgentor/model_registry.hpp"
#include "diffgentor/synthetic_image.hpp"

namespace fs = std::filesystem;
namespace {

struct Mode {
  std::string name;
  std::string base;  ///< "bN-fused|split": the same run without offload or device timing (the images are the same)
  int batch = 1;
  bool fused = true, offload = false, timed = false;
};

Mode parse_mode(const std::string& text) {
  std::vector<std::string> parts;
  for (std::size_t pos = 0; pos <= text.size();) {
    const std::size_t end = std::min(text.find('-', pos), text.size());
    parts.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  Mode m{text, parts[0] + "-" + (parts.size() > 1 ? parts[1] : "")};
  const bool count = parts[0].size() >= 2 && parts[0][0] == 'b' &&
                     parts[0].find_first_not_of("0123456789", 1) == std::string::npos && parts[0].size() < 5;
  std::size_t k = 2;
  if (k < parts.size() && parts[k] == "offload") m.offload = true, ++k;
  if (k < parts.size() && parts[k] == "timed") m.timed = true, ++k;
  if (!count || parts.size() < 2 || (parts[1] != "fused" && parts[1] != "split") || k != parts.size() ||
      std::stoi(parts[0].substr(1)) < 1)
    throw std::invalid_argument("mode '" + text + "': expected bN-fused|split[-offload][-timed], N >= 1");
  m.batch = std::stoi(parts[0].substr(1));
  m.fused = parts[1] == "fused";
  return m;
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

int max_diff(const std::vector<dg::Image>& a, const std::vector<dg::Image>& b) {
  int d = 0;
  for (std::size_t r = 0; r < a.size() && r < b.size(); ++r) {
    if (a[r].rgb.size() != b[r].rgb.size()) return 256;
    for (std::size_t k = 0; k < a[r].rgb.size(); ++k) d = std::max(d, std::abs(int(a[r].rgb[k]) - int(b[r].rgb[k])));
  }
  return d;
}

struct Measured {
  std::vector<dg::Image> images;
  double load = 0, wall = 0, loop = 0, inside = 0, on_device = 0, steps = 0;
  int64_t peak = -1, uploads = 0;
};

// One mode: its own pipeline, an untimed warm-up batch (first-call costs: kernels, allocator, autotuning), then
// every row in batches of mode.batch.
Measured run_mode(const Mode& mode, dg::PipelineConfig config, const dg::ModelEntry& entry,
                  const std::vector<dg::EditRequest>& requests) {
  config.fuse_cfg = mode.fused;
  config.cpu_offload = mode.offload;
  config.device_timing = mode.timed;
  Measured m;
  const auto loading = std::chrono::steady_clock::now();
  auto pipe = entry.make_pipeline(config);
  m.load = std::chrono::duration<double>(std::chrono::steady_clock::now() - loading).count();
  const auto batch_of = [&](std::size_t from) {
    const std::size_t to = std::min(requests.size(), from + static_cast<std::size_t>(mode.batch));
    return std::vector<dg::EditRequest>(requests.begin() + static_cast<std::ptrdiff_t>(from),
                                        requests.begin() + static_cast<std::ptrdiff_t>(to));
  };
  for (dg::BatchOutcome& o : pipe->edit_batch(batch_of(0)))
    if (o.error) std::rethrow_exception(o.error);
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t from = 0; from < requests.size(); from += static_cast<std::size_t>(mode.batch))
    for (dg::BatchOutcome& o : pipe->edit_batch(batch_of(from))) {
      if (o.error) std::rethrow_exception(o.error);
      m.images.push_back(std::move(o.result.image));
      m.loop += stage(o.result, "denoise");
      m.inside += std::max<int64_t>(0, counter(o.result, "transformer_us")) * 1e-6;
      m.on_device += std::max<int64_t>(0, counter(o.result, "transformer_device_us")) * 1e-6;
      m.steps += requests[m.images.size() - 1].params.steps;
      m.peak = std::max(m.peak, counter(o.result, "device_peak_mib"));
      m.uploads += std::max<int64_t>(0, counter(o.result, "offload_uploads"));
    }
  m.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

std::string num(std::optional<double> v, const char* format = "{:.2f}") {
  return v ? fmt::format(fmt::runtime(format), *v) : "·";
}

nlohmann::json value(std::optional<double> v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

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
  std::vector<Mode> modes;  // all parsed before anything runs: a typo costs no device time
  for (std::size_t pos = 0; pos <= opt["--modes"].size();) {
    const std::size_t end = std::min(opt["--modes"].find(',', pos), opt["--modes"].size());
    modes.push_back(parse_mode(opt["--modes"].substr(pos, end - pos)));
    pos = end + 1;
  }
  for (std::size_t k = 0; k < modes.size(); ++k) {
    if (!modes[k].offload) continue;
    bool before = false;
    for (std::size_t j = 0; j < k; ++j) before = before || modes[j].name == modes[k].base;
    if (!before)
      throw std::invalid_argument("mode '" + modes[k].name + "' needs '" + modes[k].base +
                                  "' before it in --modes: an offloaded run is checked against the same run without");
  }
  if (std::stoi(opt["--rows"]) < 1) throw std::invalid_argument("--rows must be at least 1");
  const dg::ModelSpec* spec = dg::find_model(opt["--type"]);
  const dg::ModelEntry* entry = spec ? dg::find_model_entry(spec->type) : nullptr;
  if (!entry) throw std::invalid_argument("--type '" + opt["--type"] + "' is not an implemented model type");
  const int threads = std::stoi(opt["--threads"]);  // 0: every core, as the CLI's --threads 0
  at::set_num_threads(threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
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
  std::vector<dg::EditRequest> requests(static_cast<std::size_t>(std::stoi(opt["--rows"])));
  for (std::size_t r = 0; r < requests.size(); ++r) {
    dg::EditRequest& q = requests[r];
    q.index = static_cast<int64_t>(r);
    for (std::size_t k = 0; k < images_given.size(); ++k) {
      int w = 0, h = 0;
      if (std::sscanf(images_given[k].c_str(), "%dx%d", &w, &h) != 2 || w < 1 || h < 1)
        throw std::invalid_argument("--image '" + images_given[k] + "': expected WxH");
      q.images.push_back(dg::synthetic_image(w, h, static_cast<int>(r + k)));
    }
    q.instruction = instructions[r % 4];
    q.params = dg::merge_params(*spec, given);
    q.seed = 42 + r;
  }
  const dg::PipelineConfig config{
      spec, bundle, opt["--device"], opt["--dtype"], dg::resolve_model_options(*spec, model_options), {}, {}};
  const bool cuda = opt["--device"].rfind("cuda", 0) == 0;

  nlohmann::json report = {{"type", spec->type},     {"device", opt["--device"]},       {"dtype", opt["--dtype"]},
                           {"bundle", bundle},       {"steps", given.steps.value()},    {"rows", requests.size()},
                           {"images", images_given}, {"modes", nlohmann::json::array()}};
  std::map<std::string, Measured> done;
  bool ok = true;
  fmt::print("{} {} on {}, {} rows of {} image(s) {}, {} steps, bundle {}\n", spec->type, opt["--dtype"],
             opt["--device"], requests.size(), images_given.size(), images_given[0], given.steps.value(), bundle);
  fmt::print(
      "| mode | rows/s | s/row | loop ms/step | transformer ms/step | overhead | peak MiB | uploads/row | "
      "max diff vs {} |\n|---|---|---|---|---|---|---|---|---|\n",
      modes[0].name);
  std::fflush(stdout);
  for (const Mode& mode : modes) {
    nlohmann::json row = {{"mode", mode.name}};
    try {
      Measured m = run_mode(mode, config, *entry, requests);
      // Loop and transformer per step: batch 1 only (a batch's rows share one loop). On CUDA the transformer's own
      // time is known only from the device's events (-timed); on the CPU a call returns when its work is done.
      const bool single = mode.batch == 1 && m.loop > 0;
      std::optional<double> loop, inside, overhead, diff;
      if (single) loop = 1e3 * m.loop / m.steps;
      if (single && !cuda) inside = 1e3 * m.inside / m.steps;
      if (single && cuda && mode.timed) inside = 1e3 * m.on_device / m.steps;
      if (loop && inside) overhead = 100 * (*loop - *inside) / *loop;
      if (&mode == &modes[0]) diff = 0;
      if (&mode != &modes[0] && done.count(modes[0].name)) diff = max_diff(m.images, done[modes[0].name].images);
      row.update({{"rows_per_s", requests.size() / m.wall},
                  {"seconds_per_row", m.wall / requests.size()},
                  {"load_s", m.load},
                  {"loop_ms_per_step", value(loop)},
                  {"transformer_ms_per_step", value(inside)},
                  {"overhead_percent", value(overhead)},
                  {"device_peak_mib", m.peak >= 0 ? nlohmann::json(m.peak) : nlohmann::json()},
                  {"uploads_per_row", double(m.uploads) / requests.size()},
                  {"max_diff", value(diff)}});
      if (mode.offload) {
        const int twin = done.count(mode.base) ? max_diff(m.images, done[mode.base].images) : -1;
        row["offload_diff"] = twin >= 0 ? nlohmann::json(twin) : nlohmann::json();
        if (m.uploads == 0) {
          ok = false;
          fmt::print(stderr, "{}: no component was moved: the offload did not happen\n", mode.name);
        }
        if (twin < 0) {
          ok = false;
          fmt::print(stderr, "{}: not compared: mode {} failed\n", mode.name, mode.base);
        } else if (twin > 1) {
          ok = false;
          fmt::print(stderr, "{}: images differ by {} levels from {}: the offload changed the result\n", mode.name,
                     twin, mode.base);
        }
      }
      fmt::print("| {} | {:.3f} | {:.3f} | {} | {} | {} | {} | {} | {} |\n", mode.name, requests.size() / m.wall,
                 m.wall / requests.size(), num(loop), num(inside), num(overhead, "{:.2f} %"),
                 m.peak >= 0 ? std::to_string(m.peak) : "·",
                 mode.offload ? num(double(m.uploads) / requests.size(), "{:.1f}") : "·", num(diff, "{:.0f}"));
      done.emplace(mode.name, std::move(m));
    } catch (const std::exception& e) {  // the other modes still run: device time is not wasted
      ok = false;
      row["error"] = e.what();
      fmt::print("| {} | failed: {} |\n", mode.name, e.what());
    }
    std::fflush(stdout);
    report["modes"].push_back(row);
    if (!opt["--json"].empty()) std::ofstream(opt["--json"]) << report.dump(2) << "\n";
  }
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  fmt::print(stderr, "diffgentor_engine_bench: {}\n", e.what());
  return 2;
}
