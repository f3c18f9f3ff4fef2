#pragma once
/// The libtorch side of the model table: for each model type, how to build its pipeline from a
/// bundle and how to write its tiny bundle. Shared code never branches on a model type; it looks
/// the type up here. A type without an entry has no pipeline in this build (tests walk the table).
#include <functional>
#include <memory>
#include <string>

#include "diffgentor/pipeline.hpp"

namespace dg {

struct TinyOptions {
  std::string size = "tiny";  ///< "tiny" or "small"
  uint64_t seed = 0;
};

struct ModelEntry {
  std::function<std::unique_ptr<Pipeline>(const PipelineConfig&)> make_pipeline;
  /// Writes a complete tiny bundle for the type into `dir`.
  std::function<void(const ModelSpec&, const std::string& dir, const TinyOptions&)> make_tiny;
};

/// The entry for a type, or nullptr when this build has no pipeline for it.
const ModelEntry* find_model_entry(const std::string& type);

// One pair per model file.
std::unique_ptr<Pipeline> make_qwen_pipeline(const PipelineConfig& config);
void make_tiny_qwen(const ModelSpec& spec, const std::string& dir, const TinyOptions& options);
std::unique_ptr<Pipeline> make_flux2_pipeline(const PipelineConfig& config);
void make_tiny_flux2(const ModelSpec& spec, const std::string& dir, const TinyOptions& options);

std::unique_ptr<Pipeline> make_longcat_pipeline(const PipelineConfig& config);
void make_tiny_longcat(const ModelSpec& spec, const std::string& dir, const TinyOptions& options);

std::unique_ptr<Pipeline> make_kontext_pipeline(const PipelineConfig& config);
void make_tiny_kontext(const ModelSpec& spec, const std::string& dir, const TinyOptions& options);

/// FLUX.1-Kontext sizing (src/models/flux1_kontext.cpp), exposed for tests: the preferred resolution
/// (w, h) closest to an image's aspect ratio, and the output size rule for a requested (w, h).
std::pair<int, int> kontext_preferred_resolution(int width, int height);
std::pair<int, int> kontext_output_size(int width, int height);

/// LongCat prompt handling and sizing (src/models/longcat.cpp), exposed for tests: the prompt split
/// into (text, quoted) spans as upstream's split_quotation does; the user tokens (quoted spans one
/// character at a time); calculate_dimensions rounded up to multiples of 16, as (width, height).
class Tokenizer;
std::vector<std::pair<std::string, bool>> longcat_split_quotation(const std::string& prompt);
std::vector<int32_t> longcat_prompt_tokens(const Tokenizer& tokenizer, const std::string& prompt);
std::pair<int, int> longcat_dimensions(double target_area, double ratio);

/// FLUX.2 reference preparation and ids (src/models/flux2.cpp), exposed for tests.
Image flux2_reference(const Image& image);
std::vector<int64_t> flux2_image_ids(int64_t T, int64_t h, int64_t w);

}  // namespace dg
