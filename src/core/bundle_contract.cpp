// The component contract, read from src/core/bundle_contract.json (embedded at build time; the Python
// exporter reads the same file); docs/bundle-format.md describes it.
#include "diffgentor/bundle_contract.hpp"

#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace dg {

namespace {

const char* const kContractJson =
#include "bundle_contract_json.inc"
    ;

std::vector<TensorSpec> tensors(const nlohmann::json& list) {
  std::vector<TensorSpec> out;
  for (const auto& t : list)
    out.push_back({t.at("name").get<std::string>(), t.at("dtype").get<std::string>(),
                   t.at("shape").get<std::vector<std::string>>(), t.value("pads", "")});
  return out;
}

// Entries of group or type `name`, with {"include": X} spliced in place.
void expand(const nlohmann::json& doc, const std::string& name, std::vector<ComponentSpec>& out, int depth = 0) {
  const nlohmann::json* list = nullptr;
  for (const char* section : {"types", "groups"})
    if (doc.at(section).contains(name)) list = &doc[section][name];
  if (!list || depth > 8) throw std::logic_error(fmt::format("bundle_contract.json: bad include '{}'", name));
  for (const auto& e : *list) {
    if (e.contains("include")) {
      expand(doc, e["include"].get<std::string>(), out, depth + 1);
      continue;
    }
    out.push_back({e.at("component").get<std::string>(), e.at("subfolder").get<std::string>(), tensors(e.at("inputs")),
                   tensors(e.at("outputs")), e.value("method", "forward"), e.value("optional", "")});
  }
}

}  // namespace

int min_bundle_format_version(const std::string& model_type) {
  static const nlohmann::json mins =
      nlohmann::json::parse(kContractJson).value("min_format_version", nlohmann::json::object());
  return mins.contains(model_type) ? mins[model_type].get<int>() : 1;
}

const std::vector<ComponentSpec>& bundle_components(const std::string& model_type) {
  static const std::map<std::string, std::vector<ComponentSpec>> table = [] {
    const auto doc = nlohmann::json::parse(kContractJson);
    if (doc.at("format_version").get<int>() != kBundleFormatVersion)
      throw std::logic_error("bundle_contract.json: format_version differs from kBundleFormatVersion");
    std::map<std::string, std::vector<ComponentSpec>> t;
    for (const auto& [type, _] : doc.at("types").items()) expand(doc, type, t[type]);
    return t;
  }();
  static const std::vector<ComponentSpec> none;
  auto it = table.find(model_type);
  return it == table.end() ? none : it->second;
}

}  // namespace dg
