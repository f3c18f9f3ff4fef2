#pragma once
/// The TorchScript component contract (docs/bundle-format.md, "Components"):
/// for each model type, the components it needs and each method's argument names, dtypes and symbolic
/// shapes. The data lives in src/core/bundle_contract.json, embedded at build time and also read by the
/// Python exporter (tools/export/); this table is what the bundle loader checks, make-tiny writes and the
/// docs name.
#include <string>
#include <vector>

namespace dg {

struct TensorSpec {
  std::string name;
  std::string dtype;               ///< "W" (the bundle dtype), "float32", "int64" or "bool"
  std::vector<std::string> shape;  ///< symbols or integers as text, e.g. {"B", "S", "64"}
  /// For a mask input: the symbol it masks ("L" for Qwen's `encoder_hidden_states_mask` [B, L]), so calls whose
  /// length differs batch into one, padded to the longest (docs/batching.md); "" otherwise.
  std::string pads;
};

/// One method of one component. A component with two methods (GLM's transformer: forward and
/// write_kv) has two entries with the same name.
struct ComponentSpec {
  std::string name;  ///< file stem in torchscript/, e.g. "transformer"
  std::string subfolder;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  std::string method = "forward";
  /// The optional group the method belongs to ("" = every bundle has it). A bundle holds a group's methods iff
  /// its manifest lists the group in `optional` (FLUX.2-dev's prompt upsampler: "upsampler").
  std::string optional;
};

/// The `format_version` this build writes (torchscript/manifest.json). Version 2 changed only glm_image's
/// signatures and version 3 only the Qwen transformer's (the text mask), so a bundle of any other type reads the
/// same in all three.
inline constexpr int kBundleFormatVersion = 3;

/// The oldest format_version whose signatures `model_type` still has (bundle_contract.json "min_format_version",
/// default 1); the runtime reads that version up to kBundleFormatVersion.
int min_bundle_format_version(const std::string& model_type);

/// The component methods of `model_type`, for all seven types.
const std::vector<ComponentSpec>& bundle_components(const std::string& model_type);

}  // namespace dg
