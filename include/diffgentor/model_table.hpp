#pragma once
/// The model table: every model type, read from src/models/model_table.json (embedded at build time; the
/// exporter and the parity harness read the same file, CMake builds and registers each implemented row's
/// pipeline and tiny bundle from it). It is the one registry behind `diffgentor models`, `--model_type`,
/// name detection, defaults, the per-row input rules and the docs table (docs/models/README.md).
#include <cstddef>
#include <map>
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

enum class ModelStatus {
  Implemented,  ///< a pipeline and a tiny bundle exist
  Planned,      ///< detected and validated; a real run stops at start-up
};
/// One paragraph per model option of every type, for `diffgentor models` (both forms).
std::string model_options_text();

/// A detection pattern, matched case-insensitively against the full model name and its basename.
struct NamePattern {
  std::string text;
  /// When true the match must be followed by the end of the name or a character that is neither
  /// alphanumeric nor '-' (so the bare "Qwen-Image-Edit" does not swallow "Qwen-Image-Edit-2511").
  bool whole_word = false;
};

/// What a row's input images must satisfy. A row that breaks a rule fails with stage `input` and is never
/// retried: it would fail the same way again.
struct ImageRules {
  int min_images = 1;
  std::optional<int> max_images;     ///< unset: no limit
  int min_side = 1;                  ///< each image, in pixels
  std::optional<double> max_aspect;  ///< each image, long side / short side; unset: any
};

/// A setting a model type takes through `--model_option NAME=VALUE` (model_table.json "options").
struct ModelOption {
  std::string name;
  std::vector<std::string> values;  ///< the accepted values
  std::string default_value;
  std::string about;
};

struct ModelSpec {
  std::string type;  ///< e.g. "qwen"
  ModelStatus status = ModelStatus::Planned;
  std::string display_name;    ///< e.g. "Qwen-Image-Edit-2509/2511"
  std::string pipeline_class;  ///< upstream diffusers class, e.g. "QwenImageEditPlusPipeline"
  std::vector<NamePattern> patterns;
  ImageRules images;
  CfgKind cfg = CfgKind::Plain;
  /// True CFG that is off unless asked for (FLUX.1-Kontext: --true_cfg_scale > 1 with a negative prompt).
  bool optional_true_cfg = false;
  int default_steps = 50;
  double default_guidance = 1.0;
  std::optional<double> default_true_cfg;              ///< only for models with true CFG
  std::optional<std::string> default_negative_prompt;  ///< only for models that use one
  std::string pipeline;     ///< implemented: src/models/<pipeline>.cpp, make_<pipeline>_pipeline()
  std::string tiny_bundle;  ///< implemented: src/models/tiny/tiny_<tiny_bundle>.cpp, make_tiny_<tiny_bundle>()
  std::string docs;         ///< the type's page, e.g. "docs/models/qwen.md"; empty for planned types
  std::string notes;
  std::vector<ModelOption> options;  ///< `--model_option` settings this type takes (usually none)

  bool implemented() const { return status == ModelStatus::Implemented; }
  bool uses_true_cfg() const { return cfg == CfgKind::TrueCfgNormRescale; }
  bool uses_negative_prompt() const { return default_negative_prompt.has_value() || optional_true_cfg; }
};

/// Every option of `spec` with its value: `given` ("NAME=VALUE" texts) over the table's defaults. Throws
/// std::invalid_argument naming the option for a malformed text, an unknown name or a value not accepted.
std::map<std::string, std::string> resolve_model_options(const ModelSpec& spec, const std::vector<std::string>& given);

/// All model types in detection-priority order.
const std::vector<ModelSpec>& model_table();

/// The spec for a type name, or nullptr.
const ModelSpec* find_model(const std::string& type);

/// Detects the model type from a model name or path (full name and basename, case-insensitive, table
/// order). Returns nullptr when nothing matches.
const ModelSpec* detect_model(const std::string& model_name);

/// Why `count` images break the spec's rule (e.g. "2 images, but model type longcat takes 1"), or "".
std::string image_count_problem(const ModelSpec& spec, std::size_t count);

/// Why one image of width x height breaks the spec's per-image rules (smallest side, aspect ratio), or "".
std::string image_size_problem(const ModelSpec& spec, int width, int height);

/// Sampling parameters of one row, after merging what the user gave over the model's defaults.
struct EffectiveParams {
  int steps = 0;
  double guidance = 0;
  std::optional<double> true_cfg;              ///< set only for true-CFG models
  std::optional<std::string> negative_prompt;  ///< set only for models that use one
};

/// What a user may give (flags today); unset fields take the spec's defaults.
struct ParamOverrides {
  std::optional<int> steps;
  std::optional<double> guidance;
  std::optional<double> true_cfg;
  std::optional<std::string> negative_prompt;
};

/// Merges `given` over the spec's defaults (a given value always wins, whatever it is).
EffectiveParams merge_params(const ModelSpec& spec, const ParamOverrides& given);

/// One line per parameter in `given` that `spec` does not use, naming the flag and the type: a true-CFG scale where
/// there is no true CFG, a guidance scale for a true-CFG model (Qwen's transformer has no guidance embedding), a
/// negative prompt where no negative branch runs (none for the type, or true CFG off by its scale).
std::vector<std::string> unused_param_warnings(const ModelSpec& spec, const ParamOverrides& given);

/// "qwen, qwen_singleimg, ..." for error messages (only the implemented types when asked).
std::string model_type_list(bool implemented_only = false);

/// A human-readable table (what `diffgentor models` prints).
std::string format_model_table();

/// The Markdown table of docs/models/README.md (`diffgentor models --markdown`); a test checks the page.
std::string format_model_table_markdown();

}  // namespace dg
