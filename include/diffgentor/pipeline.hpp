#pragma once
/// The interface every model pipeline implements, and the runner calls from its model stage.
/// Torch-free on purpose: images cross it as 8-bit RGB, so the runner, its tests and the I/O stages
/// never include libtorch, and each model file owns its tensor work.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "diffgentor/image.hpp"
#include "diffgentor/model_table.hpp"
#include "diffgentor/options.hpp"

namespace dg {

/// One row's work, as the model stage hands it to a pipeline.
struct EditRequest {
  int64_t index = 0;
  std::vector<Image> images;  ///< decoded, EXIF-oriented inputs in manifest order (>= 1)
  std::string instruction;
  uint64_t seed = 0;          ///< the row's effective seed
  EffectiveParams params;     ///< steps, guidance, true_cfg, negative prompt after all merging
};

struct EditResult {
  Image image;
  /// Seconds per named pipeline stage (e.g. "encode_text", "denoise", "vae_decode"), for results.csv
  /// and the bench; may be empty.
  std::vector<std::pair<std::string, double>> stage_seconds;
  /// Counts worth recording (e.g. "transformer_calls"), written to results.csv's `counters`.
  std::vector<std::pair<std::string, int64_t>> counters;
};

class Pipeline {
 public:
  virtual ~Pipeline() = default;
  /// Runs one row. Throws std::exception with a readable reason on failure; the runner retries
  /// (--max_retries) and records the row as failed, and the batch goes on.
  virtual EditResult edit(const EditRequest& request) = 0;
  /// Runs several rows. The default runs them one by one; a model whose upstream pipeline batches
  /// overrides it. The result order matches the request order.
  virtual std::vector<EditResult> edit_batch(const std::vector<EditRequest>& requests) {
    std::vector<EditResult> out;
    for (const auto& r : requests) out.push_back(edit(r));
    return out;
  }
};

/// What a pipeline is built from: the resolved model, its bundle and the user's options.
struct PipelineConfig {
  const ModelSpec* spec = nullptr;
  std::string bundle_dir;
  std::string device;  ///< resolved, e.g. "cpu" or "cuda:1"
  const EditOptions* options = nullptr;
};

/// What the executable plugs into the shared runner: device handling and model construction. The
/// product binary supplies the libtorch implementation; tests supply their own.
struct Backend {
  std::string version;  ///< extra text for --version (e.g. the libtorch version)
  /// Resolves --device/--num_gpus into the replica devices, or throws UsageError.
  std::function<std::vector<std::string>(const EditOptions&)> resolve_devices;
  /// Builds one pipeline replica; throws with a readable reason when the bundle is unusable.
  std::function<std::unique_ptr<Pipeline>(const PipelineConfig&)> make_pipeline;
  /// Resolves --model_name to a bundle directory (throws BundleNotFound).
  std::function<std::string(const EditOptions&)> locate_bundle;
  /// Writes a tiny bundle (type, out dir, "tiny"|"small", seed); empty where the binary cannot.
  std::function<void(const ModelSpec&, const std::string&, const std::string&, uint64_t)> make_tiny;
};

}  // namespace dg
