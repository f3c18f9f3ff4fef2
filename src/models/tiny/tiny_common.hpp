#pragma once
// Shared pieces of the tiny-bundle writers: seeded parameters, JSON files, component files and the
// torchscript/manifest.json built from the contract table.
#include <ATen/core/Generator.h>
#include <torch/csrc/jit/api/module.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffgentor/model_registry.hpp"

namespace dg {

class TinyWriter {
 public:
  TinyWriter(std::string dir, const ModelSpec& spec, const TinyOptions& options);
  /// A parameter drawn from N(0, 1) * `scale`; the default scale is 1/sqrt(fan_in).
  void param(torch::jit::Module& m, const std::string& name, std::vector<int64_t> shape, double scale = -1);
  void ones(torch::jit::Module& m, const std::string& name, std::vector<int64_t> shape);
  /// Saves torchscript/<component>.pt and records it (signature from the contract) for the manifest.
  void save(torch::jit::Module& m, const std::string& component);
  void write_json(const std::string& relative_path, const nlohmann::json& j) const;
  /// Writes torchscript/manifest.json with the saved components and `constants`.
  void write_manifest(const nlohmann::json& constants) const;

 private:
  std::string dir_;
  const ModelSpec& spec_;
  TinyOptions options_;
  at::Generator gen_;
  nlohmann::json components_ = nlohmann::json::object();
};

/// A byte-level BPE tokenizer.json with the real Qwen2 pre-tokenizer and special tokens, a 256-byte
/// base vocabulary and a handful of merges.
nlohmann::json tiny_qwen_tokenizer();

}  // namespace dg
