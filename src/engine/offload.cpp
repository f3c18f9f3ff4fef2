// Model-level CPU offload's moves and the device peak memory (include/diffgentor/offload.hpp).
#include "diffgentor/offload.hpp"

#include <ATen/ATen.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include <set>

namespace dg {

namespace {

// Every distinct weight of `module`: its parameters and buffers, recursively, as torch::jit::Module::to moves them; a
// tensor tied under two names (one TensorImpl) once.
std::vector<at::Tensor> weights(const torch::jit::Module& module) {
  std::vector<at::Tensor> out;
  std::set<const void*> seen;
  const auto add = [&](const at::Tensor& t) {
    if (seen.insert(t.unsafeGetTensorImpl()).second) out.push_back(t);
  };
  for (const at::Tensor& p : module.parameters()) add(p);
  for (const at::Tensor& b : module.buffers()) add(b);
  return out;
}

}  // namespace

void WeightParking::park(torch::jit::Module& module) {
  // A lease is taken inside a row's InferenceMode; the weights must stay ordinary tensors (set_data swaps the
  // storage of the module's own tensor objects, which the graphs hold).
  c10::InferenceMode ordinary(false);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> ws = weights(module);
  if (!check_) {
    for (at::Tensor& w : ws) w.set_data(w.to(at::kCPU));
    return;
  }
  std::vector<at::Tensor>& held = held_[module._ivalue().get()];
  held.clear();
  for (at::Tensor& w : ws) {
    held.push_back(w.detach());  // shares the storage that set_data is about to replace
    // Not the meta device: set_data refuses a tensor of another kind (CPU and CUDA are one kind, meta is not). An
    // empty tensor of the weight's own kind makes every op that reads it fail on its shape instead.
    w.set_data(at::empty({0}, w.options()));
  }
}

void WeightParking::bring(torch::jit::Module& module) {
  c10::InferenceMode ordinary(false);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> ws = weights(module);
  if (!check_) {
    for (at::Tensor& w : ws) w.set_data(w.to(run_));
    return;
  }
  const auto it = held_.find(module._ivalue().get());
  if (it == held_.end()) return;  // never parked
  for (std::size_t k = 0; k < ws.size(); ++k) ws[k].set_data(it->second[k]);
  held_.erase(it);
}

std::optional<int64_t> device_peak_bytes(const at::Device& device) {
  if (!device.is_cuda()) return std::nullopt;
  try {
    // The generic face of the CUDA caching allocator (c10/core/CachingDeviceAllocator.h): no CUDA headers needed.
    const auto stats = c10::getDeviceAllocator(device.type())->getDeviceStats(device.index() < 0 ? 0 : device.index());
    return stats.allocated_bytes[static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
  } catch (const c10::Error&) {
    return std::nullopt;
  }
}

void reset_device_peak(const at::Device& device) {
  if (!device.is_cuda()) return;
  try {
    c10::getDeviceAllocator(device.type())->resetPeakStats(device.index() < 0 ? 0 : device.index());
  } catch (const c10::Error&) {
  }
}

}  // namespace dg
