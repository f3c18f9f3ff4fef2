#include "diffgentor/torch_runtime.hpp"

#include <fmt/format.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>

#include <cstdlib>
#include <thread>

#include "diffgentor/bundle_location.hpp"
#include "diffgentor/model_registry.hpp"

namespace dg {

std::vector<std::string> resolve_torch_devices(const EditOptions& o, bool cuda_available, int cuda_devices) {
  std::string device = o.device;
  if (device == "auto") device = cuda_available ? "cuda" : "cpu";
  if (device == "cpu") {
    if (o.num_gpus && *o.num_gpus > 1)
      throw UsageError(fmt::format("--num_gpus {} needs CUDA, but the device is the CPU", *o.num_gpus));
    return {"cpu"};
  }
  if (!cuda_available)
    throw UsageError(fmt::format("--device {}: libtorch sees no CUDA device here (no NVIDIA GPU or driver, or "
                                 "CUDA_VISIBLE_DEVICES hides them); use --device cpu", o.device));
  if (device.rfind("cuda:", 0) == 0) {
    const int id = std::stoi(device.substr(5));
    if (id >= cuda_devices)
      throw UsageError(fmt::format("--device {}: only {} CUDA device(s) are visible", device, cuda_devices));
    return {device};
  }
  const int n = o.num_gpus.value_or(cuda_devices);
  if (n > cuda_devices)
    throw UsageError(fmt::format("--num_gpus {}: only {} CUDA device(s) are visible", n, cuda_devices));
  std::vector<std::string> out;
  for (int k = 0; k < n; ++k) out.push_back(fmt::format("cuda:{}", k));
  return out;
}

Backend torch_backend() {
  Backend b;
  b.version = fmt::format(" (libtorch {}, CUDA {})", TORCH_VERSION,
                          torch::cuda::is_available() ? fmt::format("{} device(s)", torch::cuda::device_count())
                                                      : std::string("not available"));
  b.resolve_devices = [](const EditOptions& o) {
    // libtorch starts with one intra-op thread here; use the cores the user allows.
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    at::set_num_threads(o.threads > 0 ? o.threads : static_cast<int>(hw));
    return resolve_torch_devices(o, torch::cuda::is_available(), static_cast<int>(torch::cuda::device_count()));
  };
  b.locate_bundle = [](const EditOptions& o) {
    return resolve_bundle(o.model_name, [](const char* n) { return std::getenv(n); });
  };
  b.make_pipeline = [](const PipelineConfig& cfg) -> std::unique_ptr<Pipeline> {
    const ModelEntry* entry = find_model_entry(cfg.spec->type);
    if (!entry)
      throw std::runtime_error(fmt::format("model type {}: this build has no pipeline for it yet; use --dry_run to "
                                           "check a manifest", cfg.spec->type));
    return entry->make_pipeline(cfg);
  };
  b.make_tiny = [](const ModelSpec& spec, const std::string& out, const std::string& size, uint64_t seed) {
    const ModelEntry* entry = find_model_entry(spec.type);
    if (!entry) throw UsageError(fmt::format("make-tiny: no tiny bundle for model type {} in this build yet", spec.type));
    entry->make_tiny(spec, out, TinyOptions{size, seed});
  };
  return b;
}

}  // namespace dg
