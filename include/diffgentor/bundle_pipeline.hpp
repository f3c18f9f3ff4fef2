#pragma once
/// The shared base of the model pipelines: it opens and validates the bundle, loads every component of
/// the model type once (checked against the contract; optional groups' components when first asked for), and runs each
/// row under InferenceMode with a StageClock, so a model file holds only what is specific to its model.
#include <ATen/core/Tensor.h>
#include <torch/csrc/jit/api/module.h>

#include <functional>
#include <map>
#include <string>

#include "diffgentor/bundle.hpp"
#include "diffgentor/latents.hpp"
#include "diffgentor/pipeline.hpp"
#include "diffgentor/scheduler.hpp"
#include "diffgentor/stage_clock.hpp"
#include "diffgentor/tokenizer.hpp"

namespace dg {

/// Receives a pipeline's intermediate tensors by stage name, for the parity harness (docs/parity.md).
/// Stage names: "prompt_embeds" [1, L, D] (and "pooled_prompt_embeds" [1, 768] for Kontext,
/// "negative_prompt_embeds" when a second branch runs), "image_latents" [1, S_ref, c] (packed references,
/// normalised), "noise" [1, S_n, c] (packed), "sigmas" [N + 1] and "timesteps" [N] (float32),
/// "noise_pred_0" [1, S_n, c] (the first step's velocity after CFG), "final_latents" [1, S_n, c].
using StageTap = std::function<void(const std::string& stage, const at::Tensor& value)>;

class BundlePipeline : public Pipeline {
 public:
  /// Checks the request against the model table's input rules (InputError), then runs it under
  /// InferenceMode with a StageClock.
  EditResult edit(const EditRequest& request) final;
  /// Installs a tap (empty = none). Not for concurrent rows: the parity runner uses one pipeline.
  void set_stage_tap(StageTap tap) { tap_ = std::move(tap); }
  /// Hands the pipeline a value to use instead of computing it, for the parity harness (docs/parity.md); the
  /// names a pipeline reads are on its model page (GLM-Image: "ar_teacher_tokens", "prior_codes").
  void set_stage_input(const std::string& stage, at::Tensor value) { inputs_[stage] = std::move(value); }

 protected:
  explicit BundlePipeline(const PipelineConfig& config);
  /// One row (at least one image; edit() refuses an empty row): fill `result.image` (and counters), marking
  /// stages on `clock`.
  virtual void run(const EditRequest& request, EditResult& result, StageClock& clock) = 0;
  /// A component by its contract name (e.g. "transformer"); one of an optional group loads on first use.
  torch::jit::Module& component(const std::string& name);
  /// The id of `<folder>/tokenizer_config.json`'s pad_token in `tokenizer`; the pipelines pad on the
  /// right, so any other padding_side is refused (pads reach the DiT unmasked, their place matters).
  int32_t pad_token_id(const Tokenizer& tokenizer, const std::string& folder) const;
  /// The value of model option `name` (PipelineConfig::options, else the table's default); std::logic_error when
  /// the type's table row has no such option.
  std::string model_option(const std::string& name) const;
  /// Passes a line to PipelineConfig::notice, if the caller gave one.
  void notice(const std::string& line) const {
    if (notice_) notice_(line);
  }
  /// A value set with set_stage_input, or an undefined tensor.
  at::Tensor stage_input(const std::string& stage) const {
    const auto it = inputs_.find(stage);
    return it == inputs_.end() ? at::Tensor() : it->second;
  }
  /// Whether a stage tap is installed (to skip gathering what only a tap would take).
  bool tapping() const { return static_cast<bool>(tap_); }
  /// Hands `value` to the stage tap, if one is installed.
  void tap(const char* stage, const at::Tensor& value) const {
    if (tap_) tap_(stage, value);
  }
  /// euler_loop, tapping "noise", "sigmas", "timesteps", "noise_pred_0" and "final_latents".
  at::Tensor denoise(const at::Tensor& noise, const Schedule& schedule,
                     const std::function<at::Tensor(const at::Tensor& latents, float timestep)>& velocity) const;
  /// denoise with plain classifier-free guidance, as the FLUX-family and LongCat pipelines combine it:
  /// `branch(0, x, t)` is the conditional prediction; when `cfg`, `branch(1, x, t)` is the unconditional one
  /// and the velocity is u + scale·(v − u) (diffusers' `neg + scale * (pos - neg)`).
  at::Tensor denoise_cfg(
      const at::Tensor& noise, const Schedule& schedule, bool cfg, double scale,
      const std::function<at::Tensor(int branch, const at::Tensor& latents, float timestep)>& branch) const;

  const ModelSpec* spec_;
  std::string device_;
  at::Device dev_;
  Bundle bundle_;
  at::ScalarType dtype_;  ///< the run dtype (the contract's "W")

 private:
  std::map<std::string, torch::jit::Module> components_;
  std::map<std::string, std::string> options_;
  std::function<void(const std::string&)> notice_;
  StageTap tap_;
  std::map<std::string, at::Tensor> inputs_;
  std::function<void(int, int)> on_step_;  ///< the running row's EditRequest::on_step
};

}  // namespace dg
