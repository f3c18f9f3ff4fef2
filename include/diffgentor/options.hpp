#pragma once
/// Options of `diffgentor edit`, with the Python tool's flag names. Numeric options that the user
/// did not give stay std::nullopt: 0 is a value, never "unset" (docs/batch-runner.md, "Differences from the
/// Python tool": zero is a value).
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "diffgentor/pipeline.hpp"

namespace dg {

struct EditOptions {
  // Model
  std::string backend = "diffusers";
  std::string model_name;
  std::optional<std::string> model_type;
  std::string device = "auto";  ///< auto | cpu | cuda | cuda:N
  std::optional<int> num_gpus;
  std::optional<int64_t> seed;
  std::string torch_dtype = "bfloat16";
  std::optional<std::string> attention_backend;
  bool enable_compile = false;
  bool enable_cpu_offload = false;
  bool enable_vae_slicing = false;
  bool enable_vae_tiling = false;
  int threads = 0;  ///< libtorch intra-op threads; 0 = all cores
  // Input / output
  std::string input;
  std::string output_dir;
  std::optional<std::string> output_csv;
  std::optional<std::string> output_name_column;
  /// png | jpg | webp: every output in this format, its name's extension made to match; unset = by the name
  std::optional<std::string> output_format;
  int jpeg_quality = 95;
  std::optional<int> webp_quality;  ///< 1..100 lossy; unset = lossless
  bool metadata = true;             ///< embed the generation parameters (--no_metadata turns it off)
  std::string instruction_key = "instruction";
  std::optional<std::string> image_cache_dir;
  int64_t max_image_pixels = 178956970;  ///< PIL's decompression-bomb error threshold
  double download_timeout = 60.0;
  int download_retries = 3;
  int prefetch = 4;  ///< prepared rows waiting ahead of the model stage (and threads preparing)
  // Editing
  int batch_size = 1;
  /// auto | fused | split: a row's CFG branches in one DiT call or two; auto = split on the CPU, fused on CUDA
  /// (docs/batching.md)
  std::string cfg_batch = "auto";
  std::optional<int> num_inference_steps;
  std::optional<double> guidance_scale;
  std::optional<double> true_cfg_scale;
  std::optional<std::string> negative_prompt;
  std::optional<int> width, height;        ///< requested output size (docs/batch-runner.md, "Output size")
  std::vector<std::string> model_options;  ///< --model_option NAME=VALUE, checked against the model table
  std::vector<std::string> loras;          ///< --lora FILE[:SCALE], in order (docs/lora.md)
  // Execution
  int max_retries = 3;
  double grace_seconds = 20.0;  ///< after SIGINT/SIGTERM, how long rows in flight may take before they are abandoned
  std::optional<std::string> filter_rows;
  bool resume = true;
  bool dry_run = false;
  // Prompt enhancement
  std::optional<std::string> prompt_enhance_type;
  double timeout = 300.0;
  int api_max_retries = 3;
  int enhance_workers = 4;  ///< enhancer requests in flight
  double retry_delay = 1.0;
  // Distribution and logging
  std::optional<int> node_rank;
  std::optional<int> num_nodes;
  std::optional<std::string> log_dir;
  std::string progress = "bar";              ///< bar (the terminal line) | jsonl (events on stdout) | none
  std::optional<std::string> progress_file;  ///< events as JSON lines appended to this file too
};

/// Merges the sampling flags over the spec's defaults (a flag always wins, whatever its value).
EffectiveParams effective_params(const ModelSpec& spec, const EditOptions& opt);

/// The sampling and size flags the user gave (unset = not given), as merge_params takes them.
ParamOverrides param_overrides(const EditOptions& opt);

/// The engine's part of the options (--device, --torch_dtype, --threads).
EngineOptions engine_options(const EditOptions& opt);

/// Resolves the model type (--model_type, else detection). Throws UsageError listing the types.
const ModelSpec& resolve_model_type(const EditOptions& opt);
/// `--model_option` values over the table's defaults for `spec` (resolve_model_options); UsageError when one is
/// malformed, unknown to the type, or not an accepted value.
std::map<std::string, std::string> checked_model_options(const ModelSpec& spec, const EditOptions& opt);

/// Checks every value that can be checked without reading the manifest or loading a model.
/// Throws UsageError with a message that names the flag.
void validate_options(const EditOptions& opt);

/// A bad flag or flag combination: reported before any work, exit code 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace dg
