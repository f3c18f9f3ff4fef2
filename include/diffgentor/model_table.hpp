#pragma once
/// The model table: every model type, read from src/models/model_table.json (embedded at build time; the
/// exporter and the parity harness read the same file, CMake builds and registers each implemented row's
/// pipeline and tiny bundle from it). It is the one registry behind `diffgentor models`, `--model_type`,
/// name detection, defaults, the per-row input rules and the docs table (docs/models/README.md).
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>
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

/// How a type's pipeline turns a requested output size into the one it makes (model_table.json "output_size"; a type
/// without one has no height/width arguments upstream). Each side is floored to `multiple`; with `area` set the
/// requested aspect ratio is first rescaled to that many pixels (FluxKontextPipeline.__call__'s max_area).
struct OutputSizeRule {
  int multiple = 16;
  std::optional<double> area;  ///< pixels; FluxKontextPipeline's max_area default 1024^2
};

/// The largest output side diffgentor accepts from --width/--height or a row (no upstream pipeline states one; a
/// 8192-px side is already 2.4x the largest size any supported model was trained at).
constexpr int kMaxOutputSide = 8192;

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
  std::vector<ModelOption> options;           ///< `--model_option` settings this type takes (usually none)
  std::optional<OutputSizeRule> output_size;  ///< unset: the output size cannot be chosen (LongCat)

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
  /// The requested output size, per side (unset: the type's own rule from its inputs); set only for types with an
  /// output-size rule. Pipelines turn it into pixels with resolve_output_size.
  std::optional<int> width{}, height{};
};

/// What a user may give (flags today); unset fields take the spec's defaults.
struct ParamOverrides {
  std::optional<int> steps;
  std::optional<double> guidance;
  std::optional<double> true_cfg;
  std::optional<std::string> negative_prompt;
  std::optional<int> width{}, height{};
};

/// Merges `given` over the spec's defaults (a given value always wins, whatever it is).
EffectiveParams merge_params(const ModelSpec& spec, const ParamOverrides& given);

/// One line per parameter in `given` that `spec` does not use, naming the flag and the type: a true-CFG scale where
/// there is no true CFG, a guidance scale for a true-CFG model (Qwen's transformer has no guidance embedding), a
/// negative prompt where no negative branch runs (none for the type, or true CFG off by its scale).
std::vector<std::string> unused_param_warnings(const ModelSpec& spec, const ParamOverrides& given);

/// The same for the manifest's per-row parameter columns (`columns` as the manifest has them): one line per column the
/// type never uses, whatever its value.
std::vector<std::string> unused_column_warnings(const ModelSpec& spec, const std::vector<std::string>& columns);

/// Why `value` cannot be the requested `side` ("width" or "height") for `spec` ("8 is outside 16..8192 (...)"), or "":
/// below the type's multiple,
/// above kMaxOutputSide. A type without an output-size rule accepts anything (the value is unused and warned about).
std::string output_size_problem(const ModelSpec& spec, const std::string& side, int value);

/// The output size (width, height) a row gets: each requested side over the type's default for it (the size its
/// pipeline derives from the inputs when none is asked for), then the type's OutputSizeRule, which applies to the
/// default too (a no-op for the floor rules, whose defaults are already multiples; Kontext's area rule rescales it).
/// A type without a rule always gets the default.
std::pair<int, int> resolve_output_size(const ModelSpec& spec, const EffectiveParams& params, int default_width,
                                        int default_height);

/// "qwen, qwen_singleimg, ..." for error messages (only the implemented types when asked).
std::string model_type_list(bool implemented_only = false);

/// A human-readable table (what `diffgentor models` prints).
std::string format_model_table();

/// The Markdown table of docs/models/README.md (`diffgentor models --markdown`); a test checks the page.
std::string format_model_table_markdown();

}  // namespace dg
