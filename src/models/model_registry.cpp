// The factories of the model table's implemented rows, registered from the generated lists (see
// include/diffgentor/model_registry.hpp).
#include "diffgentor/model_registry.hpp"

#include <map>
#include <stdexcept>

namespace dg {

// make_<pipeline>_pipeline and make_tiny_<tiny_bundle> of every implemented row.
#include "model_factory_declarations.inc"

namespace {

const std::map<std::string, PipelineFactory>& pipeline_factories() {
  static const std::map<std::string, PipelineFactory> factories = {
#include "model_pipeline_factories.inc"
  };
  return factories;
}

const std::map<std::string, TinyFactory>& tiny_factories() {
  static const std::map<std::string, TinyFactory> factories = {
#include "model_tiny_factories.inc"
  };
  return factories;
}

}  // namespace

const ModelEntry* find_model_entry(const std::string& type) {
  static const std::map<std::string, ModelEntry> entries = [] {
    std::map<std::string, ModelEntry> out;
    for (const ModelSpec& spec : model_table())
      if (spec.implemented())
        out[spec.type] = {pipeline_factories().at(spec.pipeline), tiny_factories().at(spec.tiny_bundle)};
    return out;
  }();
  auto it = entries.find(type);
  return it == entries.end() ? nullptr : &it->second;
}

}  // namespace dg
