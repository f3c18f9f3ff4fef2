#pragma once
/// The shared base of the model pipelines: it opens and validates the bundle, loads every component of
/// the model type once (checked against the contract; optional groups' components when first asked for), and runs each
/// row under InferenceMode with a StageClock, so a model file holds only what is specific to its model.
#include <ATen/core/Tensor.h>
#include <torch/csrc/jit/api/module.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "diffgentor/bundle.hpp"
#include "diffgentor/bundle_contract.hpp"
#include "diffgentor/latents.hpp"
#include "diffgentor/pipeline.hpp"
#include "diffgentor/residency.hpp"
#include "diffgentor/scheduler.hpp"
#include "diffgentor/stage_clock.hpp"
#include "diffgentor/tokenizer.hpp"
#include "diffgentor/vae_tiling.hpp"

namespace dg {

class WeightParking;

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
  /// More than one request: one thread per row, their component calls gathered by a CallBatcher (docs/batching.md);
  /// one by one while a stage input is set. A stage tap is then called from the rows' threads.
  std::vector<BatchOutcome> edit_batch(const std::vector<EditRequest>& requests) final;
  /// Installs a tap (empty = none). edit_batch calls it from each row's thread, so a tap that collects must lock.
  void set_stage_tap(StageTap tap) { tap_ = std::move(tap); }
  /// Hands the pipeline a value to use instead of computing it, for the parity harness (docs/parity.md); the
  /// names a pipeline reads are on its model page (GLM-Image: "ar_teacher_tokens", "prior_codes").
  void set_stage_input(const std::string& stage, at::Tensor value) { inputs_[stage] = std::move(value); }

 protected:
  explicit BundlePipeline(const PipelineConfig& config);
  ~BundlePipeline() override;
  /// One row (at least one image; edit() refuses an empty row): fill `result.image` (and counters), marking
  /// stages on `clock`.
  virtual void run(const EditRequest& request, EditResult& result, StageClock& clock) = 0;
  /// A component by its contract name (e.g. "transformer"); one of an optional group loads on first use.
  /// Safe to call from the rows of a batch.
  torch::jit::Module& component(const std::string& name);
  /// The id of `<folder>/tokenizer_config.json`'s pad_token in `tokenizer`; the pipelines pad on the
  /// right, so any other padding_side is refused (pads reach the DiT unmasked, their place matters).
  int32_t pad_token_id(const Tokenizer& tokenizer, const std::string& folder) const;
  /// With --enable_cpu_offload: brings components `names` onto the run device for the lease's life (Residency), the
  /// uploads counted as the row's `offload_uploads`; without, an empty lease. Every invocation of a component runs
  /// under one: call() and denoise_cfg() take theirs, a model file that runs a module itself (an autoregressive LM)
  /// takes one around that.
  Residency::Lease resident(const std::vector<std::string>& names);
  /// The value of model option `name` (PipelineConfig::options, else the table's default); std::logic_error when
  /// the type's table row has no such option.
  std::string model_option(const std::string& name) const;
  /// Reports the running row's progress in `phase` to its EditRequest::on_step ("ar", "upsample"; the Euler loop
  /// reports "denoise" itself).
  void report(const std::string& phase, int64_t step, int64_t steps) const;
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
  /// Calls `method` of component `name`: alone, or with the other rows of a batch that edit_batch runs (their
  /// calls that agree under the contract become one invocation, docs/batching.md). With --enable_vae_tiling a VAE
  /// call on an input larger than a tile runs tile by tile (tiled_vae_call), counted as `vae_encoder_tiles` and
  /// `vae_decoder_tiles`.
  c10::IValue call(const std::string& name, std::vector<c10::IValue> inputs, const std::string& method = "forward");

  /// The DiT branches of a denoising loop. `inputs(b, x, t)` is the transformer's input list for branch b (0
  /// conditional, 1 unconditional, only when `cfg`) at latents x [1, S_n, c] and scheduler timestep t;
  /// `velocity(out)` reads branch b's prediction [1, S_n, c] from the transformer's output (drop the reference
  /// tokens, cast); `combine(v, u)` is the guided velocity, default u + scale·(v − u) (diffusers' `neg + scale *
  /// (pos - neg)`, the FLUX family, LongCat and GLM-Image).
  struct Branches {
    bool cfg = false;
    double scale = 1.0;
    std::function<std::vector<c10::IValue>(int branch, const at::Tensor& latents, float timestep)> inputs;
    std::function<at::Tensor(const at::Tensor& out)> velocity;
    std::function<at::Tensor(const at::Tensor& cond, const at::Tensor& uncond)> combine;
  };
  /// The Euler loop over `schedule` from `noise` (euler_loop), the branches of each step run as one call when
  /// PipelineConfig::fuse_cfg and their inputs allow it. Taps "noise", "sigmas", "timesteps", "noise_pred_0" and
  /// "final_latents"; reports steps to the row's on_step; adds the counters `transformer_calls` (branch
  /// evaluations), `transformer_passes` (invocations of the module these took part in) and `transformer_batch` (the
  /// most calls, of any rows, that one of those invocations ran) and `transformer_us` (microseconds inside those
  /// invocations: against the stage time `denoise`, the loop's own cost; on the CPU only, CUDA runs them async).
  at::Tensor denoise_cfg(const at::Tensor& noise, const Schedule& schedule, const Branches& branches,
                         EditResult& result);

  const ModelSpec* spec_;
  std::string device_;
  at::Device dev_;
  Bundle bundle_;
  at::ScalarType dtype_;  ///< the run dtype (the contract's "W")

 private:
  /// Makes `set` the LoRAs merged into the transformer, first restoring the weights an earlier set changed; nothing
  /// when it is merged already. `row`: a row asked for it, so a file that cannot be merged is that row's InputError
  /// (after the weights are restored) rather than the load's BundleError.
  void use_loras(const std::vector<LoraSpec>& set, bool row);
  /// euler_loop, tapping "noise", "sigmas", "timesteps", "noise_pred_0" and "final_latents", reporting each step.
  at::Tensor denoise(const at::Tensor& noise, const Schedule& schedule,
                     const std::function<at::Tensor(const at::Tensor& latents, float timestep)>& velocity) const;

  std::map<std::string, torch::jit::Module> components_;
  std::map<std::string, std::string> options_;
  std::function<void(const std::string&)> notice_;
  StageTap tap_;
  std::map<std::string, at::Tensor> inputs_;
  bool fuse_cfg_;
  int64_t timed_device_ =
      -1;  ///< PipelineConfig::device_timing on CUDA: the device the loop's invocations are timed on
  bool vae_slicing_;
  std::optional<VaeTiling> vae_tiling_;                ///< --enable_vae_tiling: the VAE's geometry from vae/config.json
  std::map<std::string, const ComponentSpec*> specs_;  ///< "component.method" -> its contract entry
  std::mutex components_mu_;                           ///< component() from the rows of a batch
  std::vector<LoraSpec> run_loras_;                    ///< PipelineConfig::loras: a row's set when it names none
  std::string merged_loras_;                           ///< the set merged into the transformer now (lora_key)
  bool keep_originals_ = false;                        ///< PipelineConfig::row_loras
  std::map<std::string, at::Tensor> originals_;        ///< row_loras: weights as loaded, before any merge (CPU)
  std::unique_ptr<WeightParking> parking_;             ///< --enable_cpu_offload: the moves
  std::unique_ptr<Residency> residency_;               ///< --enable_cpu_offload: what is on the device
};

}  // namespace dg
