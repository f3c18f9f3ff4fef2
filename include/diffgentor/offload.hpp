#pragma once
/// Model-level CPU offload's moves (--enable_cpu_offload, docs/performance.md "Model CPU offload"): a component's
/// weights (every parameter, buffer and other tensor attribute of its TorchScript module) go between the run device and
/// CPU memory, as diffusers' enable_model_cpu_offload moves a model; Residency (residency.hpp) decides when. The device
/// peak memory the offload is for is read here too.
#include <ATen/core/Tensor.h>
#include <torch/csrc/jit/api/module.h>

#include <map>
#include <mutex>
#include <optional>
#include <vector>

namespace dg {

class WeightParking {
 public:
  /// `run`: the device components run on. `check`: a parked component's weights become empty tensors, their data
  /// held aside, instead of moving to CPU memory, so that invoking it before bring() fails on the weights' shapes:
  /// with `run` the CPU, the engine tests show with it that every invocation of an offloaded pipeline is covered by
  /// a lease, which a CPU-to-CPU move could not show.
  WeightParking(at::Device run, bool check) : run_(run), check_(check) {}

  /// Moves `module`'s weights off the run device (to the CPU; emptied under `check`). All or nothing: a throw leaves
  /// them where they were, as bring() does.
  void park(torch::jit::Module& module);
  /// Moves them back onto the run device.
  void bring(torch::jit::Module& module);

 private:
  at::Device run_;
  bool check_;
  std::mutex mu_;                                        ///< held_, from the rows' leases and component()
  std::map<const void*, std::vector<at::Tensor>> held_;  ///< under `check`: each parked module's data, by module
};

/// The most memory the caching allocator of CUDA device `device` has had allocated since the last
/// reset_device_peak, in bytes; nullopt on the CPU or when libtorch keeps no statistics for the device.
std::optional<int64_t> device_peak_bytes(const at::Device& device);
/// Starts a new peak for device_peak_bytes (nothing on the CPU).
void reset_device_peak(const at::Device& device);

}  // namespace dg
