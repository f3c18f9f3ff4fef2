// Model-level CPU offload's moves and the device peak memory (include/diffgentor/offload.hpp).
#include "diffgentor/offload.hpp"

#include <ATen/ATen.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include <functional>
#include <set>

namespace dg {

namespace {

// Every distinct tensor `module` holds, recursively: its parameters and buffers (what torch::jit::Module::to moves),
// and tensor attributes that are neither (a List[Tensor] of weights a scripted module keeps); a tensor tied under two
// names (one TensorImpl) once. Graph constants are not attributes: they stay where torch::jit::load put them.
std::vector<at::Tensor> weights(const torch::jit::Module& module) {
  std::vector<at::Tensor> out;
  std::set<const void*> seen;
  const auto add = [&](const at::Tensor& t) {
    if (t.defined() && seen.insert(t.unsafeGetTensorImpl()).second) out.push_back(t);
  };
  for (const c10::IValue& v : module.attributes(/*recurse=*/true)) {
    if (v.isTensor()) add(v.toTensor());
    if (v.isTensorList())
      for (const at::Tensor& t : v.toTensorVector()) add(t);  // the list's own tensors: set_data reaches them
  }
  return out;
}

// Gives every tensor of `ws` the data `to` makes of it, swapping only once every copy exists: a move that fails part
// way (the device out of memory) leaves the whole component where it was.
void move_all(std::vector<at::Tensor>& ws, const std::function<at::Tensor(const at::Tensor&)>& to) {
  std::vector<at::Tensor> moved;
  moved.reserve(ws.size());
  for (const at::Tensor& w : ws) moved.push_back(to(w));
  for (std::size_t k = 0; k < ws.size(); ++k) ws[k].set_data(moved[k]);
}

}  // namespace

void WeightParking::park(torch::jit::Module& module) {
  // A lease is taken inside a row's InferenceMode; the weights must stay ordinary tensors (set_data swaps the
  // storage of the module's own tensor objects, which the graphs hold).
  c10::InferenceMode ordinary(false);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> ws = weights(module);
  if (!check_) return move_all(ws, [](const at::Tensor& w) { return w.to(at::kCPU); });
  std::lock_guard<std::mutex> lock(mu_);
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
  if (!check_) return move_all(ws, [this](const at::Tensor& w) { return w.to(run_); });
  std::lock_guard<std::mutex> lock(mu_);
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
