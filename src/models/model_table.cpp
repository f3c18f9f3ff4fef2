// The model table (ARCHITECTURE.md §1). Adding a model type starts with one row here.
#include "diffgentor/model_table.hpp"

#include <algorithm>
#include <cctype>
#include <fmt/format.h>

namespace dg {

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
  // Order is detection priority: the Qwen "-<suffix>" rule must win over the bare name.
  static const std::vector<ModelSpec> table = {
      {"qwen", "Qwen-Image-Edit-2509/2511", "QwenImageEditPlusPipeline",
       {{"Qwen-Image-Edit-", false}}, 0, CfgKind::TrueCfgNormRescale, 40, 1.0, 4.0, " ",
       "1..N images (\"Picture i:\"); output size from the last image; 2511 zero_cond_t"},
      {"qwen_singleimg", "Qwen-Image-Edit", "QwenImageEditPipeline",
       {{"Qwen-Image-Edit", true}}, 1, CfgKind::TrueCfgNormRescale, 50, 1.0, 4.0, " ",
       "one image; output size from the image at ~1024x1024 area"},
      {"flux2", "FLUX.2-dev", "Flux2Pipeline", {{"FLUX.2-dev", false}}, 0,
       CfgKind::DistilledEmbedding, 28, 4.0, std::nullopt, std::nullopt,
       "Mistral-Small text encoder; references at T = 10, 20, 30..."},
      {"flux2_klein", "FLUX.2-klein", "Flux2KleinPipeline", {{"FLUX.2-klein", false}}, 0,
       CfgKind::DistilledOrPlain, 4, 1.0, std::nullopt, std::string(""),
       "Qwen3 text encoder; model_index.json is_distilled selects the CFG kind"},
      {"flux1_kontext", "FLUX.1-Kontext", "FluxKontextPipeline", {{"FLUX.1-Kontext", false}}, 0,
       CfgKind::DistilledEmbedding, 30, 2.5, std::nullopt, std::nullopt,
       "CLIP + T5; extra references get ids 2, 3, ...; optional true CFG", true},
      {"longcat", "LongCat-Image-Edit", "LongCatImageEditPipeline", {{"LongCat", false}}, 1,
       CfgKind::Plain, 50, 4.5, std::nullopt, std::string(""),
       "Qwen2.5-VL conditioning; plain CFG against the negative prompt"},
      {"glm_image", "GLM-Image", "GlmImagePipeline", {{"GLM-Image", false}}, 0, CfgKind::Plain,
       50, 1.5, std::nullopt, std::string(""), "AR prior + DiT; references run once at t=0"},
  };
  return table;
}

const ModelSpec* find_model(const std::string& type) {
  for (const auto& spec : model_table())
    if (spec.type == type) return &spec;
  return nullptr;
}

namespace {

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
  for (std::size_t pos = name.find(needle); pos != std::string::npos;
       pos = name.find(needle, pos + 1)) {
    if (!pattern.whole_word) return true;
    const std::size_t end = pos + needle.size();
    if (end == name.size()) return true;
    const unsigned char next = static_cast<unsigned char>(name[end]);
    if (!std::isalnum(next) && next != '-') return true;
  }
  return false;
}

}  // namespace

const ModelSpec* detect_model(const std::string& model_name) {
  const std::string full = lower(model_name);
  const std::string base = lower(basename_of(model_name));
  for (const auto& spec : model_table())
    for (const auto& pattern : spec.patterns)
      if (matches(full, pattern) || matches(base, pattern)) return &spec;
  return nullptr;
}

std::string model_type_list() {
  std::string out;
  for (const auto& spec : model_table()) {
    if (!out.empty()) out += ", ";
    out += spec.type;
  }
  return out;
}

std::string format_model_table() {
  std::string out = fmt::format("{:<15} {:<26} {:<27} {:<6} {:<36} {}\n", "TYPE", "NAME PATTERN",
                                "PIPELINE", "IMAGES", "CFG", "DEFAULTS (steps/guidance/true_cfg)");
  for (const auto& s : model_table()) {
    std::string pats;
    for (const auto& p : s.patterns) {
      if (!pats.empty()) pats += " | ";
      pats += p.whole_word ? p.text : p.text + (p.text.back() == '-' ? "*" : "");
    }
    const std::string images = s.max_images == 0 ? "1..N" : std::to_string(s.max_images);
    std::string defaults = fmt::format("{} / {:.1f}", s.default_steps, s.default_guidance);
    if (s.default_true_cfg) defaults += fmt::format(" / {:.1f}", *s.default_true_cfg);
    out += fmt::format("{:<15} {:<26} {:<27} {:<6} {:<36} {}\n", s.type, pats, s.pipeline_class,
                       images, cfg_kind_name(s.cfg), defaults);
  }
  out += "\nDetection is case-insensitive on the full --model_name and its basename, in the order "
         "above;\n--model_type overrides it.\n";
  return out;
}

}  // namespace dg
