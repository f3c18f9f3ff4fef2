#pragma once
/// The shared base of the model pipelines: it opens and validates the bundle, loads every component of
/// the model type once (checked against the contract), and runs each row under InferenceMode with a
/// StageClock, so a model file holds only what is specific to its model.
#include <ATen/core/Tensor.h>
#include <torch/csrc/jit/api/module.h>

#include <map>
#include <string>

#include "diffgentor/bundle.hpp"
#include "diffgentor/latents.hpp"
#include "diffgentor/pipeline.hpp"
#include "diffgentor/tokenizer.hpp"

namespace dg {

class BundlePipeline : public Pipeline {
 public:
  EditResult edit(const EditRequest& request) final;

 protected:
  explicit BundlePipeline(const PipelineConfig& config);
  /// One row: fill `result.image` (and counters), marking stages on `clock`.
  virtual void run(const EditRequest& request, EditResult& result, StageClock& clock) = 0;
  /// A loaded component by its contract name (e.g. "transformer").
  torch::jit::Module& component(const std::string& name);
  /// The id of `<folder>/tokenizer_config.json`'s pad_token in `tokenizer`; the pipelines pad on the
  /// right, so any other padding_side is refused (pads reach the DiT unmasked, their place matters).
  int32_t pad_token_id(const Tokenizer& tokenizer, const std::string& folder) const;

  std::string device_;
  at::Device dev_;
  Bundle bundle_;
  at::ScalarType dtype_;  ///< the run dtype W

 private:
  std::map<std::string, torch::jit::Module> components_;
};

}  // namespace dg
