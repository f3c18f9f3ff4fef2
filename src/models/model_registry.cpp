#include "diffgentor/model_registry.hpp"

#include <map>

namespace dg {

const ModelEntry* find_model_entry(const std::string& type) {
  static const std::map<std::string, ModelEntry> entries = {
      {"qwen", {make_qwen_pipeline, make_tiny_qwen}},
      {"qwen_singleimg", {make_qwen_pipeline, make_tiny_qwen}},
      {"flux2", {make_flux2_pipeline, make_tiny_flux2}},
      {"flux2_klein", {make_flux2_pipeline, make_tiny_flux2}},
      {"longcat", {make_longcat_pipeline, make_tiny_longcat}},
      {"flux1_kontext", {make_kontext_pipeline, make_tiny_kontext}},
  };
  auto it = entries.find(type);
  return it == entries.end() ? nullptr : &it->second;
}

}  // namespace dg
