#pragma once
/// The model table: every supported model type, its detection patterns, upstream pipeline class,
/// capabilities and user-facing defaults. It is the single source of truth for `diffgentor models`,
/// `--model_type` validation, name detection, help text and default merging.
#include <optional>
#include <string>
#include <vector>

namespace dg {

/// How a model applies classifier-free guidance (decides which flags mean something for it).
enum class CfgKind {
  TrueCfgNormRescale,  ///< Qwen: separate negative pass, per-token norm rescale, scale = --true_cfg_scale
  DistilledEmbedding,  ///< FLUX: guidance is an embedding input, no negative pass
  DistilledOrPlain,    ///< FLUX.2-klein: none when distilled, plain CFG against "" for the base model
  Plain,               ///< plain CFG against the negative prompt, scale = --guidance_scale
};
const char* cfg_kind_name(CfgKind kind);

/// A detection pattern, matched case-insensitively against the full model name and its basename.
struct NamePattern {
  std::string text;
  /// When true the match must be followed by the end of the name or a character that is neither
  /// alphanumeric nor '-' (so the bare "Qwen-Image-Edit" does not swallow "Qwen-Image-Edit-2511").
  bool whole_word = false;
};

struct ModelSpec {
  std::string type;            ///< e.g. "qwen"
  std::string display_name;    ///< e.g. "Qwen-Image-Edit-2509/2511"
  std::string pipeline_class;  ///< upstream diffusers class, e.g. "QwenImageEditPlusPipeline"
  std::vector<NamePattern> patterns;
  int max_images = 1;          ///< reference images per row; 0 means no fixed limit
  CfgKind cfg = CfgKind::Plain;
  int default_steps = 50;
  double default_guidance = 1.0;
  std::optional<double> default_true_cfg;          ///< only for models with true CFG
  std::optional<std::string> default_negative_prompt;  ///< only for models that use one
  std::string notes;
  /// True CFG that is off unless asked for (FLUX.1-Kontext: --true_cfg_scale > 1 with a negative prompt).
  bool optional_true_cfg = false;

  bool uses_true_cfg() const { return cfg == CfgKind::TrueCfgNormRescale; }
  bool uses_negative_prompt() const { return default_negative_prompt.has_value() || optional_true_cfg; }
};

/// All model types in detection-priority order.
const std::vector<ModelSpec>& model_table();

/// The spec for a type name, or nullptr.
const ModelSpec* find_model(const std::string& type);

/// Detects the model type from a model name or path following the seed's rules (full name and
/// basename, case-insensitive, table order). Returns nullptr when nothing matches.
const ModelSpec* detect_model(const std::string& model_name);

/// "qwen, qwen_singleimg, ..." for error messages.
std::string model_type_list();

/// A human-readable table (what `diffgentor models` prints).
std::string format_model_table();

}  // namespace dg
