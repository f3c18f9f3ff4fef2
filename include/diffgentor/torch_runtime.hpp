#pragma once
/// The libtorch side of the product binary: device resolution, thread setup and (from the model
/// issues on) pipeline construction from bundles.
#include "diffgentor/pipeline.hpp"

namespace dg {

/// Resolves --device/--num_gpus against what libtorch sees. `auto` picks CUDA when available, else
/// CPU. Throws UsageError for a device that is not there.
std::vector<std::string> resolve_torch_devices(const EditOptions& options, bool cuda_available, int cuda_devices);

/// The Backend the `diffgentor` executable runs with.
Backend torch_backend();

}  // namespace dg
