#pragma once
/// The libtorch side of the model table: each implemented row's pipeline and tiny-bundle factories. CMake
/// reads src/models/model_table.json, compiles src/models/<pipeline>.cpp and src/models/tiny/tiny_<tiny>.cpp
/// for every implemented row and registers their factories (cmake/ModelTable.cmake), so shared code never
/// branches on a model type and no list of types is kept by hand.
#include <memory>
#include <string>

#include "diffgentor/pipeline.hpp"

namespace dg {

/// Builds one pipeline replica; defined as make_<pipeline>_pipeline by src/models/<pipeline>.cpp.
using PipelineFactory = std::unique_ptr<Pipeline> (*)(const PipelineConfig& config);
/// Writes a complete tiny bundle for `spec` into `dir`; defined as make_tiny_<tiny_bundle> by
/// src/models/tiny/tiny_<tiny_bundle>.cpp.
using TinyFactory = void (*)(const ModelSpec& spec, const std::string& dir, const TinyOptions& options);

struct ModelEntry {
  PipelineFactory make_pipeline = nullptr;
  TinyFactory make_tiny = nullptr;
};

/// The factories of an implemented type, or nullptr (planned or unknown types).
const ModelEntry* find_model_entry(const std::string& type);

}  // namespace dg
