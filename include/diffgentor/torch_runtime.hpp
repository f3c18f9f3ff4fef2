#pragma once
/// The libtorch engine as a Backend: device resolution against what libtorch sees, the thread setting,
/// and pipelines and tiny bundles from the model registry.
#include <optional>
#include <string>
#include <vector>

#include "diffgentor/backend.hpp"

namespace dg {

/// Resolves the device setting into one device per replica. `auto` picks CUDA when available, else the
/// CPU; `cuda` with `replicas` unset gives one replica per visible GPU. Throws DeviceError for a device
/// that is not there.
std::vector<std::string> resolve_torch_devices(const EngineOptions& options, std::optional<int> replicas,
                                               bool cuda_available, int cuda_devices);

/// The Backend the `diffgentor` executable runs with.
Backend torch_backend();

}  // namespace dg
