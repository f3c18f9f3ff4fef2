#pragma once
/// What an executable plugs into the shared command line and runner: device handling and model
/// construction. The product binary supplies the libtorch engine (torch_runtime.hpp); the runner's tests
/// supply a torch-free one, so the whole batch tool is tested without libtorch.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "diffgentor/pipeline.hpp"

namespace dg {

struct Backend {
  std::string version;  ///< extra text for --version (e.g. the libtorch version)
  /// Applies the thread setting and resolves the device into one device per replica (`replicas` unset: one
  /// per visible GPU with device "cuda"). Throws DeviceError.
  std::function<std::vector<std::string>(const EngineOptions&, std::optional<int> replicas)> resolve_devices;
  /// Builds one pipeline replica; throws with a readable reason when the bundle is unusable.
  std::function<std::unique_ptr<Pipeline>(const PipelineConfig&)> make_pipeline;
  /// Checks what make_pipeline would check before loading any weights (manifest, versions, dtype, files),
  /// for --dry_run; throws with the same reason. Empty where the binary cannot.
  std::function<void(const PipelineConfig&)> check_bundle;
  /// Writes a tiny bundle of an implemented type into a directory; empty where the binary cannot.
  std::function<void(const ModelSpec&, const std::string& dir, const TinyOptions&)> make_tiny;
};

}  // namespace dg
