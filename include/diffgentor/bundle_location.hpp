#pragma once
/// Where `--model_name` points (docs/models/README.md, "How `--model_name` finds a bundle"): an existing directory;
/// else
/// `$DG_MODEL_ROOT/<name>`; else the Hugging Face cache layout
/// (`$HF_HUB_CACHE`, `$HF_HOME/hub` or `~/.cache/huggingface/hub`, then
/// `models--<org>--<name>/snapshots/<ref>`, preferring the ref in `refs/main`) when it holds a
/// `torchscript/manifest.json`.
#include <stdexcept>
#include <string>
#include <vector>

#include "diffgentor/env.hpp"

namespace dg {

struct BundleNotFound : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The bundle directory for `model_name`. Throws BundleNotFound listing every place it looked and
/// how to make a bundle.
std::string resolve_bundle(const std::string& model_name, const EnvLookup& env);

}  // namespace dg
