// The model table, read from src/models/model_table.json (embedded at build time). Adding a model type
// starts with one row there (docs/development.md, "Adding a model type").
#include "diffgentor/model_table.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "diffgentor/resize.hpp"

namespace dg {

namespace {

const char* const kModelTableJson =
#include "model_table_json.inc"
    ;

CfgKind cfg_kind_from(const std::string& name) {
  if (name == "true_cfg_norm_rescale") return CfgKind::TrueCfgNormRescale;
  if (name == "distilled_embedding") return CfgKind::DistilledEmbedding;
  if (name == "distilled_or_plain") return CfgKind::DistilledOrPlain;
  if (name == "plain") return CfgKind::Plain;
  throw std::logic_error(fmt::format("model_table.json: unknown cfg '{}'", name));
}

template <typename T>
std::optional<T> optional_of(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) return std::nullopt;
  return j.at(key).get<T>();
}

std::string string_or_empty(const nlohmann::json& j, const char* key) {
  return optional_of<std::string>(j, key).value_or("");
}

ModelSpec spec_from(const nlohmann::json& row) {
  ModelSpec s;
  s.type = row.at("type").get<std::string>();
  const std::string status = row.at("status").get<std::string>();
  if (status != "implemented" && status != "planned")
    throw std::logic_error(fmt::format("model_table.json: {}: unknown status '{}'", s.type, status));
  s.status = status == "implemented" ? ModelStatus::Implemented : ModelStatus::Planned;
  s.display_name = row.at("display_name").get<std::string>();
  s.pipeline_class = row.at("pipeline_class").get<std::string>();
  for (const auto& p : row.at("name_patterns"))
    s.patterns.push_back({p.at("text").get<std::string>(), p.value("whole_word", false)});
  const auto& images = row.at("images");
  s.images.min_images = images.at("min").get<int>();
  s.images.max_images = optional_of<int>(images, "max");
  s.images.min_side = images.at("min_side").get<int>();
  s.images.max_aspect = optional_of<double>(images, "max_aspect");
  s.cfg = cfg_kind_from(row.at("cfg").get<std::string>());
  s.optional_true_cfg = row.at("optional_true_cfg").get<bool>();
  const auto& d = row.at("defaults");
  s.default_steps = d.at("num_inference_steps").get<int>();
  s.default_guidance = d.at("guidance_scale").get<double>();
  s.default_true_cfg = optional_of<double>(d, "true_cfg_scale");
  s.default_negative_prompt = optional_of<std::string>(d, "negative_prompt");
  s.pipeline = string_or_empty(row, "pipeline");
  s.tiny_bundle = string_or_empty(row, "tiny_bundle");
  s.docs = string_or_empty(row, "docs");
  s.notes = row.at("notes").get<std::string>();
  const nlohmann::json options = row.value("options", nlohmann::json::object());
  for (const auto& [name, o] : options.items()) {
    ModelOption opt{name, o.at("values").get<std::vector<std::string>>(), o.at("default").get<std::string>(),
                    o.at("about").get<std::string>()};
    if (std::find(opt.values.begin(), opt.values.end(), opt.default_value) == opt.values.end())
      throw std::logic_error(
          fmt::format("model_table.json: {}: option {} defaults to a value it does not accept", s.type, name));
    s.options.push_back(std::move(opt));
  }
  if (row.contains("output_size") && !row.at("output_size").is_null()) {
    const auto& o = row.at("output_size");
    s.output_size = OutputSizeRule{o.at("multiple").get<int>(), optional_of<double>(o, "area")};
  }
  if (s.implemented() && (s.pipeline.empty() || s.tiny_bundle.empty() || s.docs.empty()))
    throw std::logic_error(
        fmt::format("model_table.json: implemented type {} needs pipeline, tiny_bundle, docs", s.type));
  return s;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string basename_of(std::string name) {
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  const auto slash = name.find_last_of('/');
  return slash == std::string::npos ? name : name.substr(slash + 1);
}

bool matches(const std::string& name, const NamePattern& pattern) {
  const std::string needle = lower(pattern.text);
  for (std::size_t pos = name.find(needle); pos != std::string::npos; pos = name.find(needle, pos + 1)) {
    if (!pattern.whole_word) return true;
    const std::size_t end = pos + needle.size();
    if (end == name.size()) return true;
    const unsigned char next = static_cast<unsigned char>(name[end]);
    if (!std::isalnum(next) && next != '-') return true;
  }
  return false;
}

std::string images_text(const ImageRules& r) {
  std::string out = r.max_images ? (*r.max_images == r.min_images ? std::to_string(r.min_images)
                                                                  : fmt::format("{}..{}", r.min_images, *r.max_images))
                                 : fmt::format("{}..N", r.min_images);
  if (r.min_side > 1) out += fmt::format(", sides >= {} px", r.min_side);
  if (r.max_aspect) out += fmt::format(", aspect <= {}", *r.max_aspect);
  return out;
}

std::string defaults_text(const ModelSpec& s) {
  std::string out = fmt::format("{} / {:.1f}", s.default_steps, s.default_guidance);
  if (s.default_true_cfg) out += fmt::format(" / {:.1f}", *s.default_true_cfg);
  return out;
}

}  // namespace

const char* cfg_kind_name(CfgKind kind) {
  switch (kind) {
    case CfgKind::TrueCfgNormRescale: return "true CFG + norm rescale";
    case CfgKind::DistilledEmbedding: return "distilled guidance embedding";
    case CfgKind::DistilledOrPlain: return "none (distilled) / plain CFG (base)";
    case CfgKind::Plain: return "plain CFG";
  }
  return "?";
}

const std::vector<ModelSpec>& model_table() {
  static const std::vector<ModelSpec> table = [] {
    std::vector<ModelSpec> rows;
    const nlohmann::json doc = nlohmann::json::parse(kModelTableJson);
    for (const auto& row : doc.at("types")) rows.push_back(spec_from(row));
    return rows;
  }();
  return table;
}

const ModelSpec* find_model(const std::string& type) {
  for (const auto& spec : model_table())
    if (spec.type == type) return &spec;
  return nullptr;
}

const ModelSpec* detect_model(const std::string& model_name) {
  const std::string full = lower(model_name);
  const std::string base = lower(basename_of(model_name));
  for (const auto& spec : model_table())
    for (const auto& pattern : spec.patterns)
      if (matches(full, pattern) || matches(base, pattern)) return &spec;
  return nullptr;
}

std::string image_count_problem(const ModelSpec& spec, std::size_t count) {
  const ImageRules& r = spec.images;
  if (count < static_cast<std::size_t>(r.min_images))
    return fmt::format("{} image(s), but model type {} needs at least {}", count, spec.type, r.min_images);
  if (r.max_images && count > static_cast<std::size_t>(*r.max_images))
    return fmt::format("{} images, but model type {} takes {}", count, spec.type,
                       *r.max_images == 1 ? std::string("one") : fmt::format("at most {}", *r.max_images));
  return "";
}

std::string image_size_problem(const ModelSpec& spec, int width, int height) {
  const ImageRules& r = spec.images;
  if (std::min(width, height) < r.min_side)
    return fmt::format("{}x{}: model type {} needs sides of at least {} px", width, height, spec.type, r.min_side);
  if (r.max_aspect && std::max(width, height) > *r.max_aspect * std::min(width, height))
    return fmt::format("{}x{}: model type {} needs an aspect ratio of at most {}", width, height, spec.type,
                       *r.max_aspect);
  return "";
}

EffectiveParams merge_params(const ModelSpec& spec, const ParamOverrides& given) {
  EffectiveParams p;
  p.steps = given.steps.value_or(spec.default_steps);
  p.guidance = given.guidance.value_or(spec.default_guidance);
  if (spec.uses_true_cfg()) p.true_cfg = given.true_cfg.value_or(spec.default_true_cfg.value_or(1.0));
  if (spec.optional_true_cfg) {  // off unless both a scale above 1 and a negative prompt are given
    p.true_cfg = given.true_cfg;
    p.negative_prompt = given.negative_prompt;
  } else if (spec.uses_negative_prompt() || spec.uses_true_cfg()) {
    p.negative_prompt = given.negative_prompt.value_or(spec.default_negative_prompt.value_or(""));
  }
  if (spec.output_size) p.width = given.width, p.height = given.height;
  return p;
}

std::string output_size_problem(const ModelSpec& spec, const std::string& side, int value) {
  if (!spec.output_size) return "";
  const int m = spec.output_size->multiple;
  if (value < m || value > kMaxOutputSide)
    return fmt::format("{} is outside {}..{} (model type {} floors the {} to a multiple of {})", value, m,
                       kMaxOutputSide, spec.type, side, m);
  return "";
}

std::pair<int, int> resolve_output_size(const ModelSpec& spec, const EffectiveParams& params, int default_width,
                                        int default_height) {
  if (!spec.output_size) return {default_width, default_height};
  const OutputSizeRule& rule = *spec.output_size;
  double w = params.width.value_or(default_width), h = params.height.value_or(default_height);
  if (rule.area) {  // FluxKontextPipeline: the requested aspect ratio at max_area pixels, Python round()
    const double ar = w / h;
    w = round_half_even(std::sqrt(*rule.area * ar));
    h = round_half_even(std::sqrt(*rule.area / ar));
  }
  const auto floor_to = [&](double v) {
    return std::max(rule.multiple, static_cast<int>(v) / rule.multiple * rule.multiple);
  };
  return {floor_to(w), floor_to(h)};
}

namespace {

// Why `spec` never uses the parameter `name` (a flag or column name without dashes), or "" when it may.
std::string never_used(const ModelSpec& spec, const std::string& name) {
  if (name == "true_cfg_scale" && !spec.uses_true_cfg() && !spec.optional_true_cfg)
    return fmt::format("model type {} has no true CFG (its guidance is {})", spec.type, cfg_kind_name(spec.cfg));
  if (name == "guidance_scale" && spec.uses_true_cfg())
    return fmt::format("model type {} guides with true_cfg_scale (its transformer has no guidance embedding)",
                       spec.type);
  if (name == "negative_prompt" && !spec.uses_negative_prompt())
    return fmt::format("model type {} runs no negative branch", spec.type);
  if ((name == "width" || name == "height") && !spec.output_size)
    return fmt::format(
        "model type {} makes its output at the size it derives from the input (its pipeline takes "
        "no height/width)",
        spec.type);
  return "";
}

}  // namespace

std::vector<std::string> unused_param_warnings(const ModelSpec& spec, const ParamOverrides& given) {
  std::vector<std::string> out;
  const EffectiveParams p = merge_params(spec, given);
  const std::pair<const char*, bool> flags[] = {{"true_cfg_scale", given.true_cfg.has_value()},
                                                {"guidance_scale", given.guidance.has_value()},
                                                {"negative_prompt", given.negative_prompt.has_value()},
                                                {"width", given.width.has_value()},
                                                {"height", given.height.has_value()}};
  for (const auto& [name, set] : flags)
    if (const std::string why = set ? never_used(spec, name) : ""; !why.empty())
      out.push_back(fmt::format("--{}: {}; ignored", name, why));
  if (given.negative_prompt && spec.uses_negative_prompt() && (spec.uses_true_cfg() || spec.optional_true_cfg) &&
      p.true_cfg.value_or(1.0) <= 1.0)
    out.push_back(
        fmt::format("--negative_prompt: model type {} uses it only with --true_cfg_scale above 1 "
                    "(true CFG is off); ignored",
                    spec.type));
  return out;
}

std::vector<std::string> unused_column_warnings(const ModelSpec& spec, const std::vector<std::string>& columns) {
  std::vector<std::string> out;
  for (const std::string& c : columns)
    if (const std::string why = never_used(spec, c); !why.empty())
      out.push_back(fmt::format("manifest column '{}': {}; its values are ignored", c, why));
  return out;
}

std::string model_type_list(bool implemented_only) {
  std::string out;
  for (const auto& spec : model_table()) {
    if (implemented_only && !spec.implemented()) continue;
    if (!out.empty()) out += ", ";
    out += spec.type;
  }
  return out;
}

std::string format_model_table() {
  std::string out = fmt::format("{:<15} {:<26} {:<27} {:<6} {:<36} {:<20} {}\n", "TYPE", "NAME PATTERN", "PIPELINE",
                                "IMAGES", "CFG", "DEFAULTS", "STATUS");
  for (const auto& s : model_table()) {
    std::string pats;
    for (const auto& p : s.patterns) {
      if (!pats.empty()) pats += " | ";
      pats += p.whole_word ? p.text : p.text + (p.text.back() == '-' ? "*" : "");
    }
    const ImageRules& r = s.images;
    const std::string images = r.max_images ? std::to_string(*r.max_images) : fmt::format("{}..N", r.min_images);
    out += fmt::format("{:<15} {:<26} {:<27} {:<6} {:<36} {:<20} {}\n", s.type, pats, s.pipeline_class, images,
                       cfg_kind_name(s.cfg), defaults_text(s), s.implemented() ? "implemented" : "planned");
  }
  out +=
      "\nDEFAULTS are steps / guidance / true_cfg. Detection is case-insensitive on the full --model_name and its\n"
      "basename, in the order above; --model_type overrides it. Per-image rules: diffgentor models --markdown.\n";
  out += model_options_text();
  return out;
}

std::string format_model_table_markdown() {
  std::string out =
      "| type | upstream pipeline | images | CFG | default steps / guidance / true_cfg | negative prompt | status |\n"
      "|---|---|---|---|---|---|---|\n";
  for (const auto& s : model_table()) {
    const std::string neg = s.default_negative_prompt ? fmt::format("`\"{}\"`", *s.default_negative_prompt)
                                                      : std::string(s.optional_true_cfg ? "none (optional)" : "none");
    const std::string page = s.docs.substr(s.docs.rfind('/') + 1);
    const std::string status = s.implemented() ? fmt::format("implemented: [{}]({})", page, page)
                                               : std::string("planned: a real run stops at start-up");
    out += fmt::format("| `{}` | {} ({}) | {} | {} | {} | {} | {} |\n", s.type, s.pipeline_class, s.display_name,
                       images_text(s.images), cfg_kind_name(s.cfg), defaults_text(s), neg, status);
  }
  out += model_options_text();
  return out;
}

std::string model_options_text() {
  std::string out;
  for (const auto& s : model_table())
    for (const auto& o : s.options)
      out += fmt::format("\n--model_option for {}: {}={} (default {}): {}\n", s.type, o.name, fmt::join(o.values, "|"),
                         o.default_value, o.about);
  return out;
}

std::map<std::string, std::string> resolve_model_options(const ModelSpec& spec, const std::vector<std::string>& given) {
  std::map<std::string, std::string> out;
  for (const auto& o : spec.options) out[o.name] = o.default_value;
  for (const auto& text : given) {
    const auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::invalid_argument(fmt::format("--model_option '{}': expected NAME=VALUE", text));
    const std::string name = text.substr(0, eq), value = text.substr(eq + 1);
    const auto it =
        std::find_if(spec.options.begin(), spec.options.end(), [&](const ModelOption& o) { return o.name == name; });
    if (it == spec.options.end()) {
      std::vector<std::string> names;
      for (const auto& o : spec.options) names.push_back(o.name);
      throw std::invalid_argument(fmt::format(
          "--model_option {}: model type {} has no option '{}' ({})", text, spec.type, name,
          names.empty() ? std::string("it takes none") : fmt::format("it takes: {}", fmt::join(names, ", "))));
    }
    if (std::find(it->values.begin(), it->values.end(), value) == it->values.end())
      throw std::invalid_argument(
          fmt::format("--model_option {}: '{}' is not one of {}", text, value, fmt::join(it->values, ", ")));
    out[name] = value;
  }
  return out;
}

}  // namespace dg
