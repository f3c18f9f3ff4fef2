#include "diffgentor/torch_runtime.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "diffgentor/bundle.hpp"
#include "diffgentor/model_registry.hpp"

namespace dg {

std::vector<std::string> resolve_torch_devices(const EngineOptions& o, std::optional<int> replicas, bool cuda_available,
                                               int cuda_devices) {
  std::string device = o.device;
  if (device == "auto") device = cuda_available ? "cuda" : "cpu";
  if (device == "cpu") {
    if (replicas && *replicas > 1)
      throw DeviceError("replicas", "more than one replica needs CUDA, but the device is the CPU");
    return {"cpu"};
  }
  if (!cuda_available)
    throw DeviceError("device",
                      "libtorch sees no CUDA device here (no NVIDIA GPU or driver, or CUDA_VISIBLE_DEVICES "
                      "hides them)");
  if (device.rfind("cuda:", 0) == 0) {
    const int id = std::stoi(device.substr(5));
    if (id >= cuda_devices)
      throw DeviceError("device", fmt::format("only {} CUDA device(s) are visible", cuda_devices));
    return {device};
  }
  const int n = replicas.value_or(cuda_devices);
  if (n > cuda_devices) throw DeviceError("replicas", fmt::format("only {} CUDA device(s) are visible", cuda_devices));
  std::vector<std::string> out;
  for (int k = 0; k < n; ++k) out.push_back(fmt::format("cuda:{}", k));
  return out;
}

namespace {

// --attention_backend: libtorch's SDPA dispatcher may take only the chosen kernel. The switches are process-wide, so
// every aten::scaled_dot_product_attention in the bundles' graphs follows them. One probe call on the run's device
// and dtype refuses a kernel that cannot run there now, instead of failing every row.
void select_attention_backend(const std::string& backend, const std::string& device, const std::string& dtype) {
  if (backend.empty()) return;
  at::Context& ctx = at::globalContext();
  ctx.setSDPUseFlash(backend == "flash");
  ctx.setSDPUseMemEfficient(backend == "efficient");
  ctx.setSDPUseCuDNN(backend == "cudnn");
  ctx.setSDPUseMath(backend == "math");
  try {
    c10::InferenceMode guard;
    const at::Tensor q = at::randn({1, 2, 16, 64}, at::TensorOptions().dtype(dtype_from_name(dtype)).device(device));
    (void)at::scaled_dot_product_attention(q, q, q);
  } catch (const c10::Error& e) {
    std::string why = e.what_without_backtrace();
    if (const auto nl = why.find('\n'); nl != std::string::npos) why.resize(nl);
    throw DeviceError("attention_backend",
                      fmt::format("the {} kernel cannot run on {} with {} ({})", backend, device, dtype, why));
  }
}

}  // namespace

Backend torch_backend() {
  Backend b;
  b.version = fmt::format(" (libtorch {}, CUDA {})", TORCH_VERSION,
                          torch::cuda::is_available() ? fmt::format("{} device(s)", torch::cuda::device_count())
                                                      : std::string("not available"));
  b.resolve_devices = [](const EngineOptions& o, std::optional<int> replicas) {
    // libtorch starts with one intra-op thread here; use the cores the user allows.
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    at::set_num_threads(o.threads > 0 ? o.threads : static_cast<int>(hw));
    std::vector<std::string> devices =
        resolve_torch_devices(o, replicas, torch::cuda::is_available(), static_cast<int>(torch::cuda::device_count()));
    for (const std::string& device : devices) select_attention_backend(o.attention_backend, device, o.dtype);
    return devices;
  };
  b.make_pipeline = [](const PipelineConfig& cfg) -> std::unique_ptr<Pipeline> {
    const ModelEntry* entry = find_model_entry(cfg.spec->type);
    if (!entry) throw std::invalid_argument(fmt::format("model type {} has no pipeline in this build", cfg.spec->type));
    return entry->make_pipeline(cfg);
  };
  b.check_bundle = [](const PipelineConfig& cfg) {
    const Bundle bundle = Bundle::open(cfg.bundle_dir, *cfg.spec, cfg.dtype, cfg.device);
    if (cfg.upsampling.enabled && !bundle.has_optional("upsampler"))
      throw BundleError(
          fmt::format("bundle {} has no prompt upsampler: DG_FLUX2_ENHANCER_MODE unset or 'diffusers' "
                      "needs a bundle exported with `export_bundle --with_upsampler` (or set "
                      "DG_FLUX2_ENHANCER_MODE=api)",
                      cfg.bundle_dir));
  };
  b.make_tiny = [](const ModelSpec& spec, const std::string& dir, const TinyOptions& options) {
    const ModelEntry* entry = find_model_entry(spec.type);
    if (!entry) throw std::invalid_argument(fmt::format("model type {} has no tiny bundle in this build", spec.type));
    entry->make_tiny(spec, dir, options);
  };
  return b;
}

}  // namespace dg
