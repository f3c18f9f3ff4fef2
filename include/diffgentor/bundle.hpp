#pragma once
/// Loading a model bundle (docs/bundle-format.md): torchscript/manifest.json validated up front
/// (format version, model type, libtorch version, dtype, every component file and config present
/// and readable), components loaded on demand with their method schema checked against the
/// contract (bundle_contract.hpp). Every error names the bundle, the file and what is wrong.
#include <ATen/core/Tensor.h>
#include <torch/csrc/jit/api/module.h>

#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "diffgentor/bundle_contract.hpp"
#include "diffgentor/lora.hpp"
#include "diffgentor/model_table.hpp"

namespace dg {

struct BundleError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Bundle {
 public:
  /// Opens and validates `dir` for `spec`. `dtype` is the run dtype (EngineOptions::dtype): it must equal the
  /// bundle's dtype unless the bundle is dtype-convertible (tiny bundles), in which case it chooses the
  /// weight dtype.
  static Bundle open(const std::string& dir, const ModelSpec& spec, const std::string& dtype,
                     const std::string& device);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& manifest() const { return manifest_; }
  /// A JSON file of the bundle, e.g. "vae/config.json" (already checked to parse at open).
  const nlohmann::json& config(const std::string& relative_path) const;
  /// manifest["constants"][key], or throws naming it.
  const nlohmann::json& constant(const std::string& key) const;
  /// Whether the bundle holds the contract's optional group `group` (manifest `optional`).
  bool has_optional(const std::string& group) const;
  /// Whether the bundle holds the contract method `c` (required, or of an optional group it holds).
  bool holds(const ComponentSpec& c) const { return c.optional.empty() || has_optional(c.optional); }
  /// The dtype components run in (the contract's "W").
  at::ScalarType dtype() const { return dtype_; }
  /// Loads `component` onto `device` in the weight dtype and checks its forward() argument names.
  torch::jit::Module load(const std::string& component, const std::string& device) const;

 private:
  std::string dir_;
  nlohmann::json manifest_;
  std::map<std::string, nlohmann::json> configs_;
  at::ScalarType dtype_ = at::kFloat;
  bool convertible_ = false;
  std::string model_type_;
  std::vector<std::string> optional_;
};

/// Merges a LoRA's `layers` (lora.hpp) into `module`'s 2-D weights: W += scale · (alpha / rank) · up · down, in
/// float32, stored back in W's dtype (PEFT's merge; diffusers' fuse_lora). With `originals`, each weight's value
/// before its first change is kept there (a CPU copy, by parameter name) for a later restore. A layer's target matches
/// the parameter
/// "<...>.<target>.weight" (the exporter's wrappers add a prefix such as "t."; kohya targets match with '_' for '.').
/// Throws BundleError naming `path` and a few targets for layers that match no weight, match two, or disagree in
/// shape. Returns a line for the log (layers merged, ranks).
std::string merge_lora(torch::jit::Module& module, const std::vector<LoraLayer>& layers, double scale,
                       const std::string& path, std::map<std::string, at::Tensor>* originals = nullptr);

/// "bfloat16" -> kBFloat16 and so on; throws BundleError for other names.
at::ScalarType dtype_from_name(const std::string& name);

}  // namespace dg
