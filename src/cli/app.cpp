// Top-level program: the error boundary, logging, plan, model loading and the batch run.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "diffgentor/backend.hpp"
#include "diffgentor/bundle_location.hpp"
#include "diffgentor/cli.hpp"
#include "diffgentor/enhancer.hpp"
#include "diffgentor/http.hpp"
#include "diffgentor/manifest.hpp"
#include "diffgentor/plan.hpp"
#include "diffgentor/progress.hpp"
#include "diffgentor/results.hpp"
#include "diffgentor/runner.hpp"
#include "diffgentor/scale_out.hpp"
#include "diffgentor/tokenizer.hpp"

namespace fs = std::filesystem;

namespace dg {

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_signal(int) {
  if (g_stop.exchange(true)) _exit(kExitInterrupted);  // second signal: leave now
  const char msg[] = "\ninterrupt: finishing the rows in flight (interrupt again to quit at once)\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
}

const char* getenv_lookup(const char* name) { return std::getenv(name); }

std::string log_file_path(const EditOptions& o, int rank) {
  const fs::path dir = o.log_dir ? fs::path(*o.log_dir) : fs::path(o.output_dir) / "logs";
  fs::create_directories(dir);
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  return (dir / fmt::format("diffgentor-{}-shard{}-pid{}.log", stamp, rank, getpid())).string();
}

// Flags whose effect is decided when the bundle is exported, or that a TorchScript runtime cannot
// apply: said once, loudly, instead of being silently ignored.
void warn_fixed_flags(const EditOptions& o) {
  if (o.enable_compile)
    spdlog::warn(
        "--enable_compile: ignored (TorchScript is optimised by the JIT at load; freezing the graphs measured slower, "
        "docs/performance.md)");
  if (o.enable_vae_slicing && o.batch_size == 1)
    spdlog::info("--enable_vae_slicing: with --batch_size 1 every VAE call already holds one image");
}

// Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX-BF16, from /proc/cpuinfo's flags). Without
// them the pip libtorch computes bfloat16 matrix products and convolutions on scalar reference kernels.
bool cpu_has_native_bf16() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("flags", 0) == 0)
      return line.find(" avx512_bf16") != std::string::npos || line.find(" amx_bf16") != std::string::npos;
  return true;  // not Linux, or no flags line: say nothing
}

void warn_slow_cpu_dtype(const EditOptions& o, const std::vector<std::string>& devices) {
  if (devices == std::vector<std::string>{"cpu"} && o.torch_dtype == "bfloat16" && !cpu_has_native_bf16())
    spdlog::warn(
        "bfloat16 on this CPU (no AVX512-BF16 or AMX) runs on libtorch's reference kernels, 10-80x slower "
        "than float32 (docs/performance.md); for CPU runs export a float32 bundle and pass "
        "--torch_dtype float32");
}

// The engine reports devices by setting; the command line names its flags.
std::vector<std::string> resolve_devices(const Backend& backend, const EditOptions& o) {
  try {
    return backend.resolve_devices(engine_options(o), o.num_gpus);
  } catch (const DeviceError& e) {
    if (e.setting == "attention_backend")
      throw UsageError(fmt::format("--attention_backend {}: {}", o.attention_backend.value_or(""), e.what()));
    if (e.setting == "replicas")
      throw UsageError(
          fmt::format("--num_gpus {}: {}", o.num_gpus ? std::to_string(*o.num_gpus) : "(unset)", e.what()));
    throw UsageError(fmt::format("--device {}: {}; use --device cpu", o.device, e.what()));
  }
}

// Why a run has no row to look at, in the user's terms ("" when it has some).
// --cfg_batch for one replica's device: auto fuses a row's CFG branches on CUDA and splits them on the CPU, where
// the batch-2 call measured slower (docs/performance.md, "Batched denoising").
bool fuse_cfg(const std::string& mode, const std::string& device) {
  return mode == "fused" || (mode == "auto" && device.rfind("cuda", 0) == 0);
}

std::string nothing_selected(const Plan& plan, const EditOptions& o) {
  const Manifest& m = plan.manifest;
  if (m.rows.empty() && m.orphans.empty()) return fmt::format("the manifest {} has no data rows", m.path);
  if (plan.selected == 0 && o.filter_rows)
    return fmt::format("--filter_rows {} selects none of the manifest's {} row(s) (it selects by the index value)",
                       *o.filter_rows, m.rows.size());
  return "";
}

// --dry_run: the plan, and every reason the real run would stop at start-up (exit 1 when there is one, or
// when rows have problems).
int dry_run(Command& cmd, const ModelSpec& spec, const std::vector<std::string>& devices,
            const PromptEnhancer* enhancer, const PromptUpsampling& upsampling, const Backend& backend) {
  const EditOptions& o = cmd.edit;
  setup_logging(std::nullopt, cmd.verbose);
  std::vector<std::string> stops;
  std::optional<Plan> plan;
  try {
    plan = make_plan(o, spec, getenv_lookup);
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception& e) {
    std::cout << "diffgentor dry run (nothing is loaded or written)\n  start-up    the real run would stop here: "
              << e.what() << "\n"
              << std::flush;
    return kExitRowsFailed;
  }
  std::string bundle_status;
  try {
    const std::string bundle = resolve_bundle(o.model_name, getenv_lookup);
    bundle_status = "found: " + bundle;
    if (!spec.implemented())
      stops.push_back(fmt::format("model type {} is planned: this build has no pipeline for it yet", spec.type));
    else if (backend.check_bundle)
      backend.check_bundle(PipelineConfig{
          &spec, bundle, devices.front(), o.torch_dtype, checked_model_options(spec, o), {}, upsampling});
  } catch (const std::exception& e) {
    std::string why = e.what();
    for (std::size_t p = why.find('\n'); p != std::string::npos; p = why.find('\n', p + 1)) why.insert(p + 1, "    ");
    if (bundle_status.empty()) bundle_status = fmt::format("NOT FOUND (a real run would stop here):\n    {}", why);
    stops.push_back(why);
  }
  if (enhancer)
    bundle_status +=
        fmt::format("\n  enhancer    {} via {} ({}, temperature {}, {} in flight)", enhancer->config().type,
                    ChatClient(enhancer->config().client).endpoint(), enhancer->config().model,
                    enhancer->config().temperature, enhancer->config().concurrency);
  if (upsampling.enabled)
    bundle_status += fmt::format(
        "\n  enhancer    flux2 with the bundle's own Mistral in the model stage (temperature {}, up to {} new tokens)",
        upsampling.temperature ? fmt::format("{}", *upsampling.temperature) : "of the bundle (0.15 upstream)",
        upsampling.max_new_tokens ? fmt::format("{}", *upsampling.max_new_tokens) : "the bundle's (512 upstream)");
  std::size_t problem_rows = 0;
  std::cout << format_plan(*plan, o, bundle_status, devices, &problem_rows);
  if (const std::string why = nothing_selected(*plan, o); !why.empty()) std::cout << "  note        " << why << "\n";
  for (const auto& why : stops) std::cout << "  start-up    the real run would stop here: " << why << "\n";
  std::cout << std::flush;
  return problem_rows || !stops.empty() ? kExitRowsFailed : kExitOk;
}

int run_edit(Command& cmd, const Backend& backend) {
  EditOptions& o = cmd.edit;
  validate_options(o);
  // The enhancer's configuration is checked now, before any model loads (a missing key fails here). flux2's
  // diffusers mode rewrites inside the model stage with the bundle's own Mistral: no API enhancer then.
  std::unique_ptr<PromptEnhancer> enhancer;
  PromptUpsampling upsampling;
  const ModelSpec& spec = resolve_model_type(o);
  if (o.prompt_enhance_type) {
    EnhancerConfig ec = enhancer_config(o, getenv_lookup);
    if (ec.upsampling.enabled && spec.type != "flux2")
      throw UsageError(fmt::format(
          "--prompt_enhance_type flux2 with DG_FLUX2_ENHANCER_MODE unset or 'diffusers' rewrites prompts with "
          "FLUX.2-dev's own Mistral, which model type {} does not have; set DG_FLUX2_ENHANCER_MODE=api",
          spec.type));
    if (ec.upsampling.enabled)
      upsampling = ec.upsampling;
    else
      enhancer = std::make_unique<PromptEnhancer>(std::move(ec));
  }
  const std::map<std::string, std::string> model_options = checked_model_options(spec, o);
  for (const auto& [flag, side] : {std::pair{"--width", o.width}, std::pair{"--height", o.height}})
    if (side)
      if (const std::string why = output_size_problem(spec, flag + 2, *side); !why.empty())
        throw UsageError(fmt::format("{}: {}", flag, why));
  const std::vector<std::string> devices = resolve_devices(backend, o);
  if (o.enable_cpu_offload &&
      std::all_of(devices.begin(), devices.end(), [](const std::string& d) { return d.rfind("cuda", 0) != 0; }))
    throw UsageError(fmt::format(
        "--enable_cpu_offload: this run is on the CPU (--device {} -> {}); offloading keeps components in CPU memory "
        "while another runs on the GPU, so there is nothing to offload. Drop the flag, or run on cuda",
        o.device, fmt::join(devices, ", ")));

  if (o.dry_run) return dry_run(cmd, spec, devices, enhancer.get(), upsampling, backend);

  // One run per shard and output folder at a time, held until the process ends (docs/batch-runner.md,
  // "Guarantees"). The plan comes first (a manifest that cannot run writes nothing), then the lock; should
  // another run have recorded rows in between, the plan is made again from what is done now.
  Plan plan = make_plan(o, spec, getenv_lookup);
  const RunLock run_lock(shard_journal_path(plan.results_path, plan.shard.rank, plan.shard.count));
  if (journals_state(plan.results_path) != plan.journals_state) plan = make_plan(o, spec, getenv_lookup);
  setup_logging(log_file_path(o, plan.shard.rank), cmd.verbose);
  spdlog::info("diffgentor {}: model {} ({}), {} row(s) in {}", DG_VERSION, o.model_name, spec.type,
               plan.manifest.rows.size(), o.input);
  spdlog::info("shard {} of {} ({}): {} selected, {} in this shard, {} already done, {} to do", plan.shard.rank,
               plan.shard.count, plan.shard.source, plan.selected, plan.shard_rows.size(), plan.already_done,
               plan.todo.size());
  spdlog::info("base seed {} ({})", plan.base_seed, plan.base_seed_source);
  const auto run_started = std::chrono::steady_clock::now();
  EventLog events(o.progress == "jsonl", o.progress_file);
  events.emit(
      "run_start",
      nlohmann::json{{"input", o.input},
                     {"model_name", o.model_name},
                     {"model_type", spec.type},
                     {"output_dir", o.output_dir},
                     {"shard", {{"rank", plan.shard.rank}, {"count", plan.shard.count}, {"source", plan.shard.source}}},
                     {"selected", plan.selected},
                     {"shard_rows", plan.shard_rows.size()},
                     {"already_done", plan.already_done},
                     {"todo", plan.todo.size()},
                     {"base_seed", plan.base_seed},
                     {"devices", devices}}
          .dump());
  const auto nothing_to_do = [&] {
    events.emit("run_end", nlohmann::json{{"succeeded", 0},
                                          {"failed", 0},
                                          {"skipped", plan.already_done},
                                          {"not_run", 0},
                                          {"enhance_fallbacks", 0},
                                          {"interrupted", false},
                                          {"wall_s", 0.0},
                                          {"rows_per_s", 0.0},
                                          {"results", plan.results_path}}
                               .dump());
    return kExitOk;
  };
  if (plan.unrecorded_images)
    spdlog::info("{} image(s) have no record in {}: they are made again (identical for their seeds)",
                 plan.unrecorded_images, plan.results_path);
  if (const std::string why = nothing_selected(plan, o); !why.empty()) {
    spdlog::warn("nothing to do: {}", why);
    return nothing_to_do();
  }
  if (plan.todo.empty() && plan.manifest.orphans.empty()) {
    spdlog::info("nothing to do: every selected row of this shard has its output and its record");
    return nothing_to_do();
  }
  if (!spec.implemented())
    throw std::runtime_error(
        fmt::format("model type {} is planned: this build has no pipeline for it yet; use "
                    "--dry_run to check a manifest",
                    spec.type));
  warn_fixed_flags(o);
  for (const std::string& line : unused_param_warnings(spec, param_overrides(o))) spdlog::warn("{}", line);
  for (const std::string& line : plan.column_warnings) spdlog::warn("{}", line);
  warn_slow_cpu_dtype(o, devices);
  http_global_init();

  // Signals are handled from here on, model loading included. After a stop request the rows in flight get
  // --grace_seconds to finish; then they are abandoned (no record, so the next run makes them again), the
  // summary so far is logged and the process ends with exit 130.
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::atomic<bool> finished{false};
  LiveCounts live;
  std::thread watchdog([&] {
    while (!finished && !g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (finished) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.grace_seconds);
    while (!finished && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (finished) return;
    spdlog::warn(
        "interrupted: the work in flight did not finish within --grace_seconds {}; it is abandoned and "
        "run again next time",
        o.grace_seconds);
    spdlog::info("done: {} succeeded, {} failed, the rest left for a later run (interrupted); results in {}",
                 live.succeeded.load(), live.failed.load(), plan.results_path);
    spdlog::shutdown();
    std::fflush(nullptr);
    _exit(kExitInterrupted);
  });
  const auto stop_watchdog = [&] {
    finished = true;
    watchdog.join();
  };

  std::vector<std::unique_ptr<Pipeline>> owned;
  std::vector<Pipeline*> replicas;
  try {
    const std::string bundle = resolve_bundle(o.model_name, getenv_lookup);
    for (const auto& device : devices) {
      if (g_stop) break;
      spdlog::info("loading {} from {} on {}", spec.type, bundle, device);
      PipelineConfig cfg{&spec,
                         bundle,
                         device,
                         o.torch_dtype,
                         model_options,
                         [](const std::string& line) { spdlog::info("{}", line); },
                         upsampling,
                         fuse_cfg(o.cfg_batch, device),
                         o.enable_vae_slicing,
                         o.enable_vae_tiling};
      for (const std::string& l : o.loras) cfg.loras.push_back(parse_lora_spec(l));
      cfg.attention_backend = o.attention_backend.value_or("");
      cfg.cpu_offload = o.enable_cpu_offload && device.rfind("cuda", 0) == 0;
      cfg.row_loras = plan.manifest.column("lora") >= 0;
      owned.push_back(backend.make_pipeline(cfg));
      replicas.push_back(owned.back().get());
    }
  } catch (...) {
    stop_watchdog();
    throw;
  }
  if (replicas.empty()) {  // stopped while the model loaded: nothing ran
    stop_watchdog();
    spdlog::info("done: 0 succeeded, 0 failed, {} left for a later run (interrupted while loading)", plan.todo.size());
    return kExitInterrupted;
  }
  RunSummary s;
  try {
    s = run_batch(plan, o, replicas, g_stop, enhancer.get(), &live, &events);
  } catch (...) {
    stop_watchdog();
    throw;
  }
  stop_watchdog();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_started).count();
  const double rate = wall > 0 ? double(s.succeeded) / wall : 0.0;
  spdlog::info(
      "done: {} succeeded, {} failed, {} skipped (done before){}{}{} in {} ({:.3f} rows/s{}); results in {}{}",
      s.succeeded, s.failed, plan.already_done,
      s.enhance_fallbacks ? fmt::format(", {} with the original prompt (enhancer fallback)", s.enhance_fallbacks) : "",
      s.unrecorded ? fmt::format(" ({} could not be recorded and are made again next run)", s.unrecorded) : "",
      s.interrupted ? fmt::format(", {} left for a later run (interrupted)", s.not_run) : "", format_duration(wall),
      rate, s.device_peak_mib >= 0 ? fmt::format(", peak GPU memory {} MiB", s.device_peak_mib) : "", plan.results_path,
      s.failed ? fmt::format(", failures in {}", plan.failures_path) : "");
  events.emit("run_end", nlohmann::json{{"succeeded", s.succeeded},
                                        {"failed", s.failed},
                                        {"skipped", plan.already_done},
                                        {"not_run", s.not_run},
                                        {"enhance_fallbacks", s.enhance_fallbacks},
                                        {"interrupted", s.interrupted},
                                        {"wall_s", wall},
                                        {"rows_per_s", rate},
                                        {"device_peak_mib",
                                         s.device_peak_mib >= 0 ? nlohmann::json(s.device_peak_mib) : nlohmann::json()},
                                        {"results", plan.results_path}}
                             .dump());
  if (!s.merge_error.empty())
    spdlog::error("{} is not up to date ({}); the shard journals beside it hold every row", plan.results_path,
                  s.merge_error);
  if (s.interrupted) return kExitInterrupted;
  return s.failed ? kExitRowsFailed : kExitOk;
}

int run_make_tiny(const MakeTinyOptions& t, const Backend& backend) {
  const ModelSpec* spec = find_model(t.model_type);
  if (!spec)
    throw UsageError(
        fmt::format("--model_type '{}' is not a known model type; known types: {}", t.model_type, model_type_list()));
  if (!backend.make_tiny) throw UsageError("make-tiny is not available in this binary");
  if (!spec->implemented())
    throw UsageError(fmt::format("make-tiny: no tiny bundle for model type {} (planned); tiny bundles exist for: {}",
                                 spec->type, model_type_list(true)));
  backend.make_tiny(*spec, t.out, TinyOptions{t.size, static_cast<uint64_t>(t.seed)});
  std::cout << fmt::format("wrote a {} {} bundle to {}\n", t.size, spec->type, t.out);
  return kExitOk;
}

int run_merge(const MergeOptions& m) {
  const std::string results =
      m.output_csv ? *m.output_csv : (std::filesystem::path(m.output_dir) / "results.csv").string();
  if (!std::filesystem::is_directory(m.output_dir))
    throw UsageError(fmt::format("merge: --output_dir {} is not a folder", m.output_dir));
  const MergeSummary s = merge_output(results, m.output_dir);
  std::cout << fmt::format("merged {} file(s) into {}: {} row(s) done, {} failed and not done since ({})\n",
                           s.sources.size(), results, s.results, s.failures, failures_path_of(results));
  for (const auto& c : s.conflicts) std::cout << "  conflict    " << c << "\n";
  for (const auto& l : s.removed_locks) std::cout << "  removed     stale lock " << l << "\n";
  for (const auto& l : s.held_locks) std::cout << "  kept        " << l << " (a running process holds it)\n";
  if (!s.held_locks.empty()) std::cout << "  note        a run is writing this folder: no lock file was removed\n";
  std::cout << std::flush;
  return s.conflicts.empty() ? kExitOk : kExitRowsFailed;
}

int run_status(Command& cmd) {
  EditOptions& o = cmd.edit;
  validate_options(o);
  const ModelSpec& spec = resolve_model_type(o);
  const std::vector<ShardStatus> shards = shard_status(o, spec, getenv_lookup);
  ShardStatus total;
  std::cout << fmt::format("diffgentor status: {} over {} shard(s), output {}\n", o.input, shards.size(), o.output_dir);
  for (const auto& s : shards) {
    std::cout << fmt::format("  shard {} of {}: {} rows, {} done, {} failed, {} pending\n", s.rank, s.count, s.rows,
                             s.done, s.failed, s.pending);
    total.rows += s.rows, total.done += s.done, total.failed += s.failed, total.pending += s.pending;
  }
  std::cout << fmt::format("  total: {} rows, {} done, {} failed, {} pending\n", total.rows, total.done, total.failed,
                           total.pending)
            << std::flush;
  return kExitOk;
}

int run_tokenize(const TokenizeOptions& t) {
  if (t.model_name.has_value() == t.tokenizer.has_value())
    throw UsageError("tokenize needs exactly one of --model_name (a bundle) and --tokenizer (a tokenizer.json)");
  std::string file = t.tokenizer ? *t.tokenizer : "";
  if (!t.tokenizer) {  // the prompt tokenizer: tokenizer/, or processor/ where the model has no other (GLM-Image)
    const std::string bundle = resolve_bundle(*t.model_name, getenv_lookup);
    file = bundle + "/tokenizer/tokenizer.json";
    if (!std::filesystem::exists(file) && std::filesystem::exists(bundle + "/processor/tokenizer.json"))
      file = bundle + "/processor/tokenizer.json";
  }
  const Tokenizer tok = Tokenizer::from_file(file);
  std::string text;
  if (t.text) {
    text = *t.text;
  } else {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  }
  if (!t.decode) {
    if (t.skip_special_tokens || t.clean_up_tokenization_spaces)
      throw UsageError("--skip_special_tokens and --clean_up_tokenization_spaces need --decode");
    std::cout << nlohmann::json(tok.encode(text, t.add_special_tokens)).dump() << "\n";
    return kExitOk;
  }
  const nlohmann::json ids = nlohmann::json::parse(text, nullptr, false);
  std::vector<int32_t> list;
  if (!ids.is_discarded() && ids.is_array())
    for (const auto& v : ids)
      if (v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= INT32_MAX)
        list.push_back(v.get<int32_t>());
  if (ids.is_discarded() || !ids.is_array() || list.size() != ids.size())
    throw UsageError("tokenize --decode: the input must be a JSON list of non-negative token ids, e.g. [1, 22, 333]");
  std::cout << nlohmann::json(tok.decode(list, t.skip_special_tokens, t.clean_up_tokenization_spaces)).dump() << "\n";
  return kExitOk;
}

}  // namespace

int app_main(int argc, char** argv, const Backend& backend) {
  Command cmd;
  const std::string version = fmt::format("diffgentor {}{}", DG_VERSION, backend.version);
  if (auto code = parse_command_line(argc, argv, cmd, version)) return *code;
  try {
    if (cmd.kind == Command::Models) {
      std::cout << (cmd.models_markdown ? format_model_table_markdown() : format_model_table());
      return kExitOk;
    }
    if (cmd.kind == Command::MakeTiny) return run_make_tiny(cmd.tiny, backend);
    if (cmd.kind == Command::Tokenize) return run_tokenize(cmd.tokenize);
    if (cmd.kind == Command::Merge) return run_merge(cmd.merge);
    if (cmd.kind == Command::Status) return run_status(cmd);
    if (cmd.kind == Command::Export) return run_export(cmd.export_args);
    if (cmd.kind == Command::Report) {
      const ReportModel model = make_report_model(cmd.report);
      const std::string page = write_report(cmd.report, model);
      std::cout << fmt::format("wrote {}: {} card(s); {} done, {} failed{}\n", page, model.rows.size(), model.done,
                               model.failed, model.pending ? fmt::format(", {} pending", *model.pending) : "");
      return kExitOk;
    }
    return run_edit(cmd, backend);
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitUsage;
  } catch (const std::exception& e) {  // manifest, bundle, model load: nothing ran
    std::cerr << "error: " << e.what() << "\n";
    return kExitStartup;
  }
}

}  // namespace dg
