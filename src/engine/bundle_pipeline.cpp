// The shared base of the model pipelines (include/diffgentor/bundle_pipeline.hpp).
#include "diffgentor/bundle_pipeline.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "diffgentor/bundle_contract.hpp"
#include "diffgentor/stage_clock.hpp"

using nlohmann::json;

namespace dg {

BundlePipeline::BundlePipeline(const PipelineConfig& cfg)
    : spec_(cfg.spec),
      device_(cfg.device),
      dev_(cfg.device),
      bundle_(Bundle::open(cfg.bundle_dir, *cfg.spec, cfg.dtype, cfg.device)),
      dtype_(bundle_.dtype()),
      options_(cfg.options),
      notice_(cfg.notice) {
  // Components every bundle of the type has load now; a component only an optional group has (FLUX.2-dev's
  // upsampler_vision) loads on first use, so a run that does not use the group does not hold its weights.
  std::vector<std::string> names;
  for (const auto& c : bundle_components(cfg.spec->type))
    if (c.optional.empty() && std::find(names.begin(), names.end(), c.name) == names.end()) names.push_back(c.name);
  for (std::size_t k = 0; k < names.size(); ++k) {  // the loading phase, for the log ("loading transformer 3/5")
    notice(fmt::format("loading {} {}/{} on {}", names[k], k + 1, names.size(), device_));
    components_.emplace(names[k], bundle_.load(names[k], device_));
  }
}

int32_t BundlePipeline::pad_token_id(const Tokenizer& tokenizer, const std::string& folder) const {
  const json& tc = bundle_.config(folder + "/tokenizer_config.json");
  const std::string pad = tc.at("pad_token").is_string() ? tc["pad_token"].get<std::string>()
                                                         : tc["pad_token"].at("content").get<std::string>();
  const auto id = tokenizer.token_to_id(pad);
  if (!id)
    throw BundleError(fmt::format("bundle {}: {} pad_token '{}' is not in its tokenizer", bundle_.dir(), folder, pad));
  if (tc.value("padding_side", "right") != "right")
    throw BundleError(fmt::format("bundle {}: {}/tokenizer_config.json padding_side '{}' is not supported (right only)",
                                  bundle_.dir(), folder, tc.value("padding_side", "")));
  return *id;
}

at::Tensor BundlePipeline::denoise(const at::Tensor& noise, const Schedule& schedule,
                                   const std::function<at::Tensor(const at::Tensor&, float)>& velocity) const {
  // The port reproduces diffusers exactly, NaN included: one step with a shift_terminal divides by zero in
  // stretch_shift_to_terminal. Such a schedule is refused before any step runs, not denoised into NaN.
  for (float sigma : schedule.sigmas)
    if (!std::isfinite(sigma))
      throw InputError(
          fmt::format("num_inference_steps {} gives a schedule with NaN (this scheduler's "
                      "shift_terminal divides by zero for one step, as in diffusers); use 2 or more",
                      schedule.timesteps.size()));
  const int steps = static_cast<int>(schedule.timesteps.size());
  int done = 0;
  const auto counted = [&](const at::Tensor& x, float t) {  // one velocity per step
    at::Tensor v = velocity(x, t);
    if (on_step_) on_step_(++done, steps);
    return v;
  };
  if (!tap_) return euler_loop(noise, schedule, counted);
  tap("noise", noise);
  tap("sigmas", at::tensor(schedule.sigmas));
  tap("timesteps", at::tensor(schedule.timesteps));
  bool first = true;
  const at::Tensor out = euler_loop(noise, schedule, [&](const at::Tensor& x, float t) {
    at::Tensor v = counted(x, t);
    if (first) tap("noise_pred_0", v);
    first = false;
    return v;
  });
  tap("final_latents", out);
  return out;
}

at::Tensor BundlePipeline::denoise_cfg(const at::Tensor& noise, const Schedule& schedule, bool cfg, double scale,
                                       const std::function<at::Tensor(int, const at::Tensor&, float)>& branch) const {
  return denoise(noise, schedule, [&](const at::Tensor& x, float t) {
    const at::Tensor v = branch(0, x, t);
    if (!cfg) return v;
    const at::Tensor u = branch(1, x, t);
    return u + static_cast<float>(scale) * (v - u);
  });
}

std::string BundlePipeline::model_option(const std::string& name) const {
  if (const auto it = options_.find(name); it != options_.end()) return it->second;
  for (const auto& o : spec_->options)
    if (o.name == name) return o.default_value;
  throw std::logic_error(fmt::format("model type {} has no model option {}", spec_->type, name));
}

torch::jit::Module& BundlePipeline::component(const std::string& name) {
  auto it = components_.find(name);
  if (it == components_.end()) it = components_.emplace(name, bundle_.load(name, device_)).first;
  return it->second;
}

EditResult BundlePipeline::edit(const EditRequest& request) {
  // The table's input rules, checked here too so that every caller of the engine gets them (the runner
  // checks them before a row reaches the model).
  const ModelSpec& spec = *spec_;
  if (auto problem = image_count_problem(spec, request.images.size()); !problem.empty()) throw InputError(problem);
  for (std::size_t k = 0; k < request.images.size(); ++k)
    if (auto problem = image_size_problem(spec, request.images[k].width, request.images[k].height); !problem.empty())
      throw InputError(fmt::format("image {}: {}", k, problem));
  c10::InferenceMode guard;
  EditResult result;
  StageClock clock(result);
  on_step_ = request.on_step;
  struct Reset {
    std::function<void(int, int)>& f;
    ~Reset() { f = nullptr; }
  } reset{on_step_};
  try {
    run(request, result, clock);
  } catch (const InputError&) {
    throw;
  } catch (const std::invalid_argument& e) {  // the numeric code's refusals (a schedule that cannot exist, ...)
    throw InputError(e.what());               // are deterministic: they fail the same way on every attempt
  }
  return result;
}

}  // namespace dg
