// Option validation and default merging: everything that must fail before a model is loaded.
#include "diffgentor/options.hpp"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "diffgentor/lora.hpp"
#include "diffgentor/selection.hpp"

namespace dg {

EffectiveParams effective_params(const ModelSpec& spec, const EditOptions& opt) {
  return merge_params(spec, param_overrides(opt));
}

ParamOverrides param_overrides(const EditOptions& opt) {
  return {opt.num_inference_steps, opt.guidance_scale, opt.true_cfg_scale, opt.negative_prompt, opt.width, opt.height};
}

EngineOptions engine_options(const EditOptions& opt) {
  return {opt.device, opt.torch_dtype, opt.threads, opt.attention_backend.value_or("")};
}

std::map<std::string, std::string> checked_model_options(const ModelSpec& spec, const EditOptions& opt) {
  try {
    return resolve_model_options(spec, opt.model_options);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
}

const ModelSpec& resolve_model_type(const EditOptions& opt) {
  if (opt.model_type) {
    if (const ModelSpec* spec = find_model(*opt.model_type)) return *spec;
    throw UsageError(fmt::format("--model_type '{}' is not a known model type; known types: {}", *opt.model_type,
                                 model_type_list()));
  }
  if (const ModelSpec* spec = detect_model(opt.model_name)) return *spec;
  // A bundle directory whose name says nothing (e.g. a tiny bundle in /tmp) names its type itself.
  const std::filesystem::path manifest = std::filesystem::path(opt.model_name) / "torchscript" / "manifest.json";
  std::error_code ec;
  if (std::filesystem::is_regular_file(manifest, ec)) {
    std::ifstream in(manifest);
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_object() && j.contains("model_type") && j["model_type"].is_string())
      if (const ModelSpec* spec = find_model(j["model_type"].get<std::string>())) return *spec;
  }
  // A diffusers snapshot folder (no bundle yet) names its pipeline class, which the table maps to a type, so that
  // the run gets as far as the bundle lookup and its export hint.
  const std::filesystem::path index = std::filesystem::path(opt.model_name) / "model_index.json";
  if (std::filesystem::is_regular_file(index, ec)) {
    std::ifstream in(index);
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_object() && j.contains("_class_name") && j["_class_name"].is_string())
      for (const auto& s : model_table())
        if (s.pipeline_class == j["_class_name"].get<std::string>()) return s;
  }
  std::string patterns;
  for (const auto& s : model_table())
    for (const auto& p : s.patterns) patterns += fmt::format("\n  {:<15} name contains '{}'", s.type, p.text);
  throw UsageError(
      fmt::format("cannot detect the model type from --model_name '{}'; pass --model_type with one of: {}.{}",
                  opt.model_name, model_type_list(), patterns));
}

namespace {

template <typename T>
void require(bool ok, const char* flag, const T& value, const char* rule) {
  if (!ok) throw UsageError(fmt::format("{} {}: {}", flag, value, rule));
}

}  // namespace

namespace {

// Every number a flag carries must be finite: "inf" and "nan" parse as doubles.
void require_finite(const char* flag, const std::optional<double>& v) {
  if (v && !std::isfinite(*v)) throw UsageError(fmt::format("{} {}: must be a finite number", flag, *v));
}

}  // namespace

void validate_options(const EditOptions& o) {
  if (o.backend != "diffusers")
    throw UsageError(fmt::format(
        "--backend {}: not available in this build; diffgentor runs the 'diffusers' backend only", o.backend));
  if (o.model_name.empty()) throw UsageError("--model_name is required");
  resolve_model_type(o);
  static const std::regex device_re("^(auto|cpu|cuda|cuda:[0-9]+)$");
  require(std::regex_match(o.device, device_re), "--device", o.device, "expected auto, cpu, cuda or cuda:N");
  if (o.num_gpus) {
    require(*o.num_gpus >= 1, "--num_gpus", *o.num_gpus, "must be at least 1");
    require(*o.num_gpus == 1 || o.device == "cuda" || o.device == "auto", "--num_gpus", *o.num_gpus,
            "more than one replica needs --device cuda (a fixed cuda:N or cpu runs one)");
  }
  if (o.seed) require(*o.seed >= 0, "--seed", *o.seed, "must be >= 0");
  require(o.torch_dtype == "bfloat16" || o.torch_dtype == "float16" || o.torch_dtype == "float32", "--torch_dtype",
          o.torch_dtype, "expected bfloat16, float16 or float32");
  if (o.attention_backend)
    require(*o.attention_backend == "flash" || *o.attention_backend == "efficient" || *o.attention_backend == "cudnn" ||
                *o.attention_backend == "math",
            "--attention_backend", *o.attention_backend,
            *o.attention_backend == "sage" || *o.attention_backend == "xformers"
                ? "is a Python kernel with no libtorch counterpart; use flash, efficient, cudnn or math"
                : "expected flash, efficient, cudnn or math");
  require(o.threads >= 0, "--threads", o.threads, "must be >= 0 (0 = all cores)");
  if (o.input.empty()) throw UsageError("--input is required");
  if (o.output_dir.empty()) throw UsageError("--output_dir is required");
  if (o.output_name_column) require(!o.output_name_column->empty(), "--output_name_column", "''", "must not be empty");
  require(o.jpeg_quality >= 1 && o.jpeg_quality <= 100, "--jpeg_quality", o.jpeg_quality, "must be 1..100");
  if (o.webp_quality)
    require(*o.webp_quality >= 1 && *o.webp_quality <= 100, "--webp_quality", *o.webp_quality, "must be 1..100");
  require(!o.instruction_key.empty(), "--instruction_key", "''", "must not be empty");
  require(o.max_image_pixels > 0, "--max_image_pixels", o.max_image_pixels, "must be > 0");
  // Transfers are timed in milliseconds: anything shorter would become "no timeout".
  require(o.download_timeout >= 0.001, "--download_timeout", o.download_timeout, "must be at least 0.001 (1 ms)");
  require(o.download_retries >= 0, "--download_retries", o.download_retries, "must be >= 0");
  require(o.prefetch >= 1, "--prefetch", o.prefetch, "must be at least 1");
  require(o.batch_size >= 1, "--batch_size", o.batch_size, "must be at least 1");
  if (o.num_inference_steps)
    require(*o.num_inference_steps >= 1 && *o.num_inference_steps <= 1000, "--num_inference_steps",
            *o.num_inference_steps, "must be in 1..1000");
  for (const auto& [flag, side] : {std::pair{"--width", o.width}, std::pair{"--height", o.height}})
    if (side)
      require(*side >= 1 && *side <= kMaxOutputSide, flag, *side,
              fmt::format("must be in 1..{}", kMaxOutputSide).c_str());
  for (const std::string& text : o.loras) {
    const LoraSpec l = parse_lora_spec(text);
    std::error_code ec;
    require(std::filesystem::is_regular_file(l.path, ec), "--lora", text, "names no file (FILE or FILE:SCALE)");
    try {  // read now, so that a file this runtime cannot use stops the run (and --dry_run) before any model loads
      lora_layers(read_safetensors(l.path), l.path);
    } catch (const std::exception& e) {
      throw UsageError(e.what());
    }
  }
  require_finite("--guidance_scale", o.guidance_scale);
  require_finite("--true_cfg_scale", o.true_cfg_scale);
  require_finite("--download_timeout", o.download_timeout);
  require_finite("--timeout", o.timeout);
  require_finite("--retry_delay", o.retry_delay);
  if (o.guidance_scale) require(*o.guidance_scale >= 0, "--guidance_scale", *o.guidance_scale, "must be >= 0");
  if (o.true_cfg_scale) require(*o.true_cfg_scale >= 0, "--true_cfg_scale", *o.true_cfg_scale, "must be >= 0");
  require(o.max_retries >= 0, "--max_retries", o.max_retries, "must be >= 0");
  require_finite("--grace_seconds", o.grace_seconds);
  require(o.grace_seconds >= 0, "--grace_seconds", o.grace_seconds, "must be >= 0");
  if (o.filter_rows) parse_row_filter(*o.filter_rows);  // throws UsageError on bad syntax
  if (o.prompt_enhance_type) {
    const auto& t = *o.prompt_enhance_type;
    require(t == "qwen_image_edit" || t == "glm_image" || t == "flux2", "--prompt_enhance_type", t,
            "expected qwen_image_edit, glm_image or flux2");
  }
  require(o.timeout >= 0.001, "--timeout", o.timeout, "must be at least 0.001 (1 ms)");
  require(o.api_max_retries >= 0, "--api_max_retries", o.api_max_retries, "must be >= 0");
  require(o.enhance_workers >= 1, "--enhance_workers", o.enhance_workers, "must be at least 1");
  require(o.retry_delay >= 0, "--retry_delay", o.retry_delay, "must be >= 0");
  if (o.num_nodes) require(*o.num_nodes >= 1, "--num_nodes", *o.num_nodes, "must be at least 1");
  if (o.node_rank) {
    require(*o.node_rank >= 0, "--node_rank", *o.node_rank, "must be >= 0");
    const int nodes = o.num_nodes.value_or(1);
    require(*o.node_rank < nodes, "--node_rank", *o.node_rank,
            fmt::format("must be below --num_nodes ({})", nodes).c_str());
  }
}

}  // namespace dg
