#pragma once
/// The engine API: what a model pipeline is built from, what one row asks of it and what it returns.
/// Torch-free on purpose: images cross it as 8-bit RGB, so the runner, its tests and the I/O stages never
/// include libtorch, and each model file owns its tensor work. Nothing here knows the command line.
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "diffgentor/image.hpp"
#include "diffgentor/lora.hpp"
#include "diffgentor/model_table.hpp"

namespace dg {

/// How the engine runs: what the engine needs of a run's settings, and nothing else.
struct EngineOptions {
  std::string device = "auto";     ///< auto | cpu | cuda | cuda:N
  std::string dtype = "bfloat16";  ///< bfloat16 | float16 | float32: the dtype components run in
  int threads = 0;                 ///< CPU intra-op threads; 0 = all cores
  /// --attention_backend: flash | efficient | cudnn | math, the only kernel scaled_dot_product_attention may use
  /// (process-wide; checked on the device at start-up); "" = libtorch's choice.
  std::string attention_backend{};
};

/// A device that is not there or a replica count it cannot serve. `setting` names what was asked
/// ("device" or "replicas"); the caller turns it into its own wording (the CLI names its flag).
struct DeviceError : std::runtime_error {
  DeviceError(std::string setting_, const std::string& what) : std::runtime_error(what), setting(std::move(setting_)) {}
  std::string setting;
};

/// A row whose input breaks a rule of the model (image count, size, aspect, a prompt the template cannot
/// hold): it fails the same way on every attempt, so it is recorded with stage `input` and never retried.
struct InputError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// A model failure that the same request repeats exactly (GLM-Image's seeded prior sampling an unusable token): it
/// is recorded with stage `model` and not retried, since every attempt would draw the same tokens.
struct RepeatableError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// One row's work, as the model stage hands it to a pipeline.
struct EditRequest {
  int64_t index = 0;
  std::vector<Image> images;  ///< decoded, EXIF-oriented inputs in manifest order (>= 1)
  std::string instruction;
  uint64_t seed = 0;       ///< the row's effective seed
  EffectiveParams params;  ///< steps, guidance, true_cfg, negative prompt after all merging
  /// The row's LoRA set (a manifest `lora` column; docs/lora.md, "Per-row LoRAs"); unset: PipelineConfig::loras.
  std::optional<std::vector<LoraSpec>> loras;
  /// Progress inside the row, for the progress line and `step` events: (phase, steps done, steps in all) after each
  /// step of a phase: "denoise" (the Euler loop), "ar" (GLM-Image's prior, one step per token) or "upsample"
  /// (FLUX.2-dev's prompt upsampler, one per token; it may end early at its end token). May be empty.
  std::function<void(const std::string& phase, int step, int steps)> on_step;
};

/// An instruction rewritten inside the model stage (FLUX.2-dev's own upsampler), recorded in results.csv as the API
/// enhancer's are (`instruction_enhanced`, `enhance_status`, `time_enhance_s`).
struct EnhancedPrompt {
  std::string instruction;  ///< what the model got: the rewrite, or the original on fallback
  std::string status;       ///< "ok" or "fallback: <reason>"
  double seconds = 0;
};

struct EditResult {
  Image image;
  /// Seconds per named pipeline stage (e.g. "encode_text", "denoise", "vae_decode"), for results.csv
  /// and the bench; may be empty.
  std::vector<std::pair<std::string, double>> stage_seconds;
  /// Counts worth recording (e.g. "transformer_calls"), written to results.csv's `counters`.
  std::vector<std::pair<std::string, int64_t>> counters;
  std::optional<EnhancedPrompt> enhanced;  ///< set when the pipeline rewrote the instruction itself
};

/// One row of Pipeline::edit_batch: its result, or the exception edit() would have thrown for it.
struct BatchOutcome {
  EditResult result;
  std::exception_ptr error;
};

class Pipeline {
 public:
  virtual ~Pipeline() = default;
  /// Runs one row. Throws InputError for input that breaks the model's rules, RepeatableError for a model
  /// failure the same request repeats, std::exception with a readable reason for anything else (the runner
  /// retries those with --max_retries).
  virtual EditResult edit(const EditRequest& request) = 0;
  /// Runs several rows together (docs/batching.md); outcome k belongs to request k. The default runs them one by
  /// one; BundlePipeline batches their component calls. A row's failure is its own outcome, not the batch's.
  virtual std::vector<BatchOutcome> edit_batch(const std::vector<EditRequest>& requests) {
    std::vector<BatchOutcome> out(requests.size());
    for (std::size_t k = 0; k < requests.size(); ++k) {
      try {
        out[k].result = edit(requests[k]);
      } catch (...) {
        out[k].error = std::current_exception();
      }
    }
    return out;
  }
};

/// FLUX.2-dev's prompt upsampling with the bundle's own Mistral (docs/enhancement.md, "FLUX.2-dev upsampler"):
/// off unless the run asks for it (--prompt_enhance_type flux2 with DG_FLUX2_ENHANCER_MODE unset or diffusers).
struct PromptUpsampling {
  bool enabled = false;
  std::optional<double> temperature;  ///< DG_FLUX2_UPSAMPLE_TEMPERATURE; default the bundle's (upstream's 0.15)
  std::optional<int> max_new_tokens;  ///< DG_FLUX2_UPSAMPLE_MAX_TOKENS; default the bundle's (upstream's 512)
};

/// What a pipeline is built from: the model type, its bundle, one resolved device and the run dtype.
struct PipelineConfig {
  const ModelSpec* spec = nullptr;
  std::string bundle_dir;
  std::string device = "cpu";      ///< resolved, e.g. "cpu" or "cuda:1"
  std::string dtype = "bfloat16";  ///< EngineOptions::dtype
  /// The type's model options, resolved (resolve_model_options: every option of the table row, set or default).
  std::map<std::string, std::string> options;
  /// Where the engine's notices go (effective settings, ignored inputs); the CLI logs them at info. The engine
  /// has no logger of its own: libtorch's bundled fmt and the system's spdlog do not mix in one file.
  std::function<void(const std::string&)> notice;
  PromptUpsampling upsampling;
  /// --cfg_batch: true runs a row's conditional and unconditional DiT branches as one batch-2 call where their
  /// inputs allow it (docs/batching.md), false as two calls.
  bool fuse_cfg = true;
  /// --enable_vae_slicing: the VAE encodes and decodes the rows of a batch one at a time (diffusers'
  /// enable_vae_slicing), bounding its activation memory by one image; off: one call for the batch.
  bool vae_slicing = false;
  /// --enable_vae_tiling: a VAE call on an input larger than the VAE's tile runs tile by tile with overlaps blended,
  /// as diffusers' enable_tiling does (include/diffgentor/vae_tiling.hpp): the VAE's activations are bounded by one
  /// tile per row (the same tile of a batch's rows may run as one call, as diffusers tiles a batch; with
  /// vae_slicing, one tile of one row).
  bool vae_tiling = false;
  /// --lora: merged into the transformer's weights when it loads, in this order (docs/lora.md).
  std::vector<LoraSpec> loras{};
  /// Rows may bring LoRA sets of their own (EditRequest::loras; the manifest has a `lora` column): the pipeline then
  /// keeps a CPU copy of each weight a merge changes, so that another set starts from the original weights.
  bool row_loras = false;
  std::string attention_backend{};  ///< EngineOptions::attention_backend, for the pipeline's notice about its graphs
  /// --enable_cpu_offload: every component waits in CPU memory and is on the device only while it runs (and until
  /// another one needs the room), as diffusers' enable_model_cpu_offload (include/diffgentor/residency.hpp).
  bool cpu_offload = false;
  /// With cpu_offload, tests only: an offloaded component's weights are emptied (WeightParking's check), so that a
  /// run on the CPU fails wherever a component is invoked without being brought onto the device.
  bool offload_check = false;
  /// Benchmarks: on CUDA the denoising loop's transformer invocations are also timed on the device (two events each,
  /// no wait), counted as the row's `transformer_device_us`; `transformer_us` is the host's time inside the calls,
  /// which on CUDA return before their kernels finish. Nothing on the CPU, where the two are the same.
  bool device_timing = false;
};

/// What make-tiny writes: "tiny" (CI, seconds on a CPU) or "small" (benchmarks), from a seed.
struct TinyOptions {
  std::string size = "tiny";
  uint64_t seed = 0;
};

}  // namespace dg
