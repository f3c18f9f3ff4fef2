// diffgentor_bench: throughput, per-stage time and peak RSS of the real tool on tiny/small bundles on
// the CPU. It makes a bundle, writes a manifest of N rows (single- and two-image rows), runs
// `diffgentor edit` in this process (the same app_main the binary runs) and summarises results.csv.
//   diffgentor_bench [--size tiny|small] [--rows N] [--steps N] [--threads N] [--dtype bfloat16|float32]
//                    [--model_type TYPE] [--fake_api_ms N] [--batch_size N] [--cfg_batch fused|split]
//                    [--cfg 0|1] [--rows_kind mixed|single]
// --cfg 1 turns CFG on (Qwen and Kontext: true_cfg_scale 4 with a negative prompt; the others guidance 4);
// --rows_kind single gives every row the same one input with instructions of different lengths (rows that batch).
// Besides wall time (load included) it prints the model stage's throughput (rows / the sum of time_model_s, which
// is what --batch_size changes) and the denoising loop's time against the time inside its transformer calls.
// --fake_api_ms N > 0 turns on prompt enhancement (qwen_image_edit) against a local fake API that answers
// after N ms, to show how much of that latency the runner hides.
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffgentor/cli.hpp"
#include "diffgentor/fs.hpp"
#include "diffgentor/image_io.hpp"
#include "diffgentor/model_registry.hpp"
#include "diffgentor/results.hpp"
#include "diffgentor/torch_runtime.hpp"
#include "http_server.hpp"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  std::map<std::string, std::string> opt{{"--size", "tiny"},     {"--rows", "6"},         {"--steps", "8"},
                                         {"--threads", "0"},     {"--dtype", "bfloat16"}, {"--model_type", "qwen"},
                                         {"--fake_api_ms", "0"}, {"--batch_size", "1"},   {"--cfg_batch", "fused"},
                                         {"--cfg", "0"},         {"--rows_kind", "mixed"}};
  for (int k = 1; k + 1 < argc; k += 2) {
    if (!opt.count(argv[k])) {
      fmt::print(stderr, "unknown option {}\n", argv[k]);
      return 2;
    }
    opt[argv[k]] = argv[k + 1];
  }
  const fs::path dir = fs::temp_directory_path() / fmt::format("dgbench-{}", ::getpid());
  fs::create_directories(dir);
  const dg::ModelSpec& spec = *dg::find_model(opt["--model_type"]);
  dg::find_model_entry(spec.type)->make_tiny(spec, (dir / "bundle").string(), {opt["--size"], 0});

  // Inputs: a 640x480 and a 512x512 image, as a user's photos would be (resized by the pipeline).
  for (auto [name, w, h] : {std::tuple{"a.png", 640, 480}, std::tuple{"b.png", 512, 512}}) {
    dg::Image img{w, h, std::vector<uint8_t>(static_cast<std::size_t>(w) * h * 3)};
    for (std::size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<uint8_t>((i * 7 + i / 3001) % 256);
    dg::write_file_atomic((dir / name).string(), dg::encode_image(img, ".png"));
  }
  std::string csv = "input_images,instruction\n";
  const int rows = std::stoi(opt["--rows"]);
  const char* lengths[] = {"make the sky purple", "make the sky purple and keep the horizon",
                           "add a small red boat on the water near the shore", "turn it into a watercolour"};
  for (int r = 0; r < rows; ++r)
    csv += opt["--rows_kind"] == "single"           ? fmt::format("a.png,{}\n", lengths[r % 4])
           : (r % 2 && spec.images.max_images != 1) ? "\"[\"\"a.png\"\", \"\"b.png\"\"]\",combine the two pictures\n"
                                                    : "a.png,make the sky purple and keep the horizon\n";
  dg::write_file_atomic((dir / "m.csv").string(), csv);

  std::vector<std::string> args{"diffgentor",
                                "edit",
                                "--model_name",
                                (dir / "bundle").string(),
                                "--device",
                                "cpu",
                                "--input",
                                (dir / "m.csv").string(),
                                "--output_dir",
                                (dir / "out").string(),
                                "--num_inference_steps",
                                opt["--steps"],
                                "--threads",
                                opt["--threads"],
                                "--torch_dtype",
                                opt["--dtype"],
                                "--seed",
                                "0",
                                "--batch_size",
                                opt["--batch_size"],
                                "--cfg_batch",
                                opt["--cfg_batch"]};
  if (opt["--cfg"] == "1") {
    if (spec.type.rfind("qwen", 0) == 0 || spec.type == "flux1_kontext")
      args.insert(args.end(), {"--true_cfg_scale", "4", "--negative_prompt", "blurry"});
    else
      args.insert(args.end(), {"--guidance_scale", "4"});
  }
  const int api_ms = std::stoi(opt["--fake_api_ms"]);
  std::unique_ptr<dg::test::HttpServer> api;
  if (api_ms > 0) {
    api = std::make_unique<dg::test::HttpServer>();
    api->set_handler([api_ms](const dg::test::HttpRequest&, int) {
      const nlohmann::json reply = {{"choices", {{{"message", {{"content", "{\"Rewritten\": \"a clearer edit\"}"}}}}}}};
      return dg::test::HttpResponse{200, reply.dump(), {}, api_ms};
    });
    ::setenv("DG_PROMPT_ENHANCER_API_KEY", "bench-key", 1);
    ::setenv("DG_PROMPT_ENHANCER_API_BASE", api->url("/v1").c_str(), 1);
    args.insert(args.end(), {"--prompt_enhance_type", "qwen_image_edit"});
  }
  std::vector<char*> argv2;
  for (auto& a : args) argv2.push_back(a.data());
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = dg::app_main(static_cast<int>(argv2.size()), argv2.data(), dg::torch_backend());
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (rc != 0) return rc;

  const dg::RecordTable res = dg::RecordTable::load((dir / "out/results.csv").string());
  std::map<std::string, double> stage;
  double model_s = 0, dit_s = 0;
  int64_t dit_calls = 0, dit_passes = 0, steps_run = 0;
  for (const auto& r : res.records) {
    model_s += std::stod(r.at("time_model_s"));
    const nlohmann::json counters = nlohmann::json::parse(r.at("counters"));
    dit_s += counters.value("transformer_us", 0) * 1e-6;
    dit_calls += counters.value("transformer_calls", 0);
    dit_passes += counters.value("transformer_passes", 0);
    steps_run += std::stoi(r.at("effective_num_inference_steps"));
    stage["prepare (decode + enhance)"] += std::stod(r.at("time_prepare_s"));
    stage["write"] += std::stod(r.at("time_write_s"));
    stage["model (total)"] += std::stod(r.at("time_model_s"));
    stage["enhance"] += std::stod(r.at("time_enhance_s"));
    const nlohmann::json stages = nlohmann::json::parse(r.at("stage_times"));
    for (const auto& [k, v] : stages.items()) stage[k] += v.get<double>();
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  fmt::print(
      "\n{} {} bundle, {} rows, {} steps, {} threads, {}{}: {:.2f} s wall (load included), {:.3f} rows/s, "
      "peak RSS {:.0f} MiB\n",
      opt["--size"], spec.type, rows, opt["--steps"], opt["--threads"], opt["--dtype"],
      api_ms > 0 ? fmt::format(", enhancer API {} ms", api_ms) : "", wall, rows / wall, ru.ru_maxrss / 1024.0);
  fmt::print("model stage: {:.3f} rows/s (batch {}, CFG {} {}); transformer calls {} in {} passes\n", rows / model_s,
             opt["--batch_size"], opt["--cfg"] == "1" ? "on," : "off", opt["--cfg"] == "1" ? opt["--cfg_batch"] : "",
             dit_calls, dit_passes);
  const double loop = stage["denoise"];
  if (loop > 0 && opt["--batch_size"] == "1")
    fmt::print("denoising loop {:.2f} ms per step, {:.2f} ms inside the transformer: overhead {:.2f} %\n",
               1e3 * loop / steps_run, 1e3 * dit_s / steps_run, 100.0 * (loop - dit_s) / loop);
  fmt::print("mean seconds per row by stage:\n");
  for (const auto& [k, v] : stage) fmt::print("  {:<18} {:8.4f}\n", k, v / rows);
  fs::remove_all(dir);
  return 0;
}
