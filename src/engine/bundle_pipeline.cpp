// The shared base of the model pipelines (include/diffgentor/bundle_pipeline.hpp).
#include "diffgentor/bundle_pipeline.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <thread>

#include "diffgentor/bundle_contract.hpp"
#include "diffgentor/call_batcher.hpp"
#include "diffgentor/offload.hpp"
#include "diffgentor/stage_clock.hpp"
#include "diffgentor/tiled_vae.hpp"

using nlohmann::json;

namespace dg {

namespace {

// The running row's, per thread: the rows of a batch run on threads of their own (edit_batch).
thread_local CallBatcher* t_batcher = nullptr;  // set while the row is one of a batch
thread_local const std::function<void(const std::string&, int, int)>* t_on_step = nullptr;  // EditRequest::on_step
thread_local int t_row = 0;                  // the row's position in its batch, from 1 (0: not in a batch)
thread_local int64_t t_vae_decode_rows = 0;  // rows the row's VAE decode ran with (the counter vae_decoder_batch)
thread_local int64_t t_vae_tiles[2] = {0,
                                       0};  // tiles the row's VAE encodes [0] and decodes [1] ran (--enable_vae_tiling)
thread_local int64_t t_uploads = 0;  // components the row's leases brought onto the device (--enable_cpu_offload)

// A LoRA set's identity for use_loras: its files (one file named two ways is one) and scales, in order.
std::string lora_key(const std::vector<LoraSpec>& set) {
  std::string key;
  for (const LoraSpec& l : set) {
    std::error_code ec;
    const std::filesystem::path file = std::filesystem::weakly_canonical(l.path, ec);
    key += fmt::format("{}:{};", ec ? l.path : file.string(), l.scale);
  }
  return key;
}

// Runs a row's calls: with the other rows of its batch, or now; rethrows the first failure.
void run_row_calls(const std::vector<ComponentCall*>& calls) {
  if (t_batcher) return t_batcher->run(calls);
  run_calls(calls);
  for (const ComponentCall* c : calls)
    if (c->error) std::rethrow_exception(c->error);
}

}  // namespace

BundlePipeline::BundlePipeline(const PipelineConfig& cfg)
    : spec_(cfg.spec),
      device_(cfg.device),
      dev_(cfg.device),
      bundle_(Bundle::open(cfg.bundle_dir, *cfg.spec, cfg.dtype, cfg.device)),
      dtype_(bundle_.dtype()),
      options_(cfg.options),
      notice_(cfg.notice),
      fuse_cfg_(cfg.fuse_cfg),
      vae_slicing_(cfg.vae_slicing) {
  if (cfg.device_timing && dev_.is_cuda()) timed_device_ = dev_.has_index() ? dev_.index() : 0;
  if (cfg.vae_tiling) {
    try {
      vae_tiling_ = vae_tiling(bundle_.config("vae/config.json"), bundle_.dir() + "/vae/config.json");
    } catch (const std::invalid_argument& e) {
      throw BundleError(fmt::format("--enable_vae_tiling: {}", e.what()));
    }
    notice(fmt::format("VAE tiling as diffusers' enable_tiling: {}", describe(*vae_tiling_)));
  }
  for (const ComponentSpec& c : bundle_components(cfg.spec->type)) specs_.emplace(c.name + "." + c.method, &c);
  if (cfg.cpu_offload) {
    parking_ = std::make_unique<WeightParking>(dev_, cfg.offload_check);
    residency_ = std::make_unique<Residency>(
        [this](const std::string& name, bool to_device) {
          torch::jit::Module m;  // a handle: the module itself is shared
          {
            std::lock_guard<std::mutex> lock(components_mu_);
            m = components_.at(name);  // resident() loaded it
          }
          to_device ? parking_->bring(m) : parking_->park(m);
        },
        /*eager=*/cfg.offload_check);
  }
  // Components every bundle of the type has load now; a component only an optional group has (FLUX.2-dev's
  // upsampler_vision) loads on first use, so a run that does not use the group does not hold its weights.
  std::vector<std::string> names;
  for (const auto& c : bundle_components(cfg.spec->type))
    if (c.optional.empty() && std::find(names.begin(), names.end(), c.name) == names.end()) names.push_back(c.name);
  for (std::size_t k = 0; k < names.size(); ++k) {  // the loading phase, for the log ("loading transformer 3/5")
    notice(fmt::format("loading {} {}/{} on {}{}", names[k], k + 1, names.size(), device_,
                       parking_ ? ", then offloaded to CPU memory until it runs" : ""));
    component(names[k]);
  }
  if (!cfg.attention_backend.empty()) {  // the kernel is chosen process-wide (torch_runtime.cpp); say where it applies
    std::vector<std::string> sdpa;
    const nlohmann::json& components = bundle_.manifest().at("components");
    for (const auto& [name, entry] : components.items())
      if (entry.is_object() && entry.contains("required_ops") && entry.at("required_ops").is_array())
        for (const auto& op : entry.at("required_ops"))
          if (op == "aten::scaled_dot_product_attention") sdpa.push_back(name);
    notice(sdpa.empty()
               ? fmt::format("--attention_backend {}: no component of this bundle calls "
                             "scaled_dot_product_attention (attention '{}' at export): its attention is "
                             "fixed in the graph and the flag changes nothing",
                             cfg.attention_backend,
                             bundle_.manifest().contains("attention") && bundle_.manifest().at("attention").is_string()
                                 ? bundle_.manifest().at("attention").get<std::string>()
                                 : std::string("?"))
               : fmt::format("attention: scaled_dot_product_attention runs only its {} kernel, in {}",
                             cfg.attention_backend, fmt::join(sdpa, ", ")));
  }
  run_loras_ = cfg.loras;
  keep_originals_ = cfg.row_loras;
  use_loras(run_loras_, false);  // merged once, at load: the rows then run the adapted weights for free
}

void BundlePipeline::use_loras(const std::vector<LoraSpec>& set, bool row) {
  const std::string key = lora_key(set);
  if (key == merged_loras_) return;
  if (row && !keep_originals_)  // nothing kept to restore from: the load's set is the only one
    throw std::logic_error("a row asked for another LoRA set than the run's, but PipelineConfig::row_loras is off");
  const Residency::Lease lease = resident({"transformer"});
  torch::jit::Module& dit = component("transformer");
  at::NoGradGuard no_grad;
  // While weights change, no set is merged: should a restore or merge stop part way (out of memory), the next call
  // restores again instead of trusting half-changed weights.
  merged_loras_ = std::string(1, '\0');
  const auto restore = [&] {
    for (const auto& p : dit.named_parameters(/*recurse=*/true))
      if (const auto it = originals_.find(p.name); it != originals_.end()) p.value.copy_(it->second);
  };
  restore();
  const auto fail = [&](const std::exception& e) {  // not half a set: the next row starts from the loaded weights
    restore();
    merged_loras_.clear();
    if (row) throw InputError(fmt::format("lora: {}", e.what()));  // the file's fault: fails the same every time
    throw BundleError(e.what());
  };
  try {
    for (const LoraSpec& lora : set) {
      const SafetensorsFile file = read_safetensors(lora.path);
      const std::vector<LoraLayer> layers = lora_layers(file, lora.path);
      notice(merge_lora(dit, layers, lora.scale, lora.path, keep_originals_ ? &originals_ : nullptr));
    }
  } catch (const BundleError& e) {  // merge_lora: layers that match no weight or do not fit
    fail(e);
  } catch (const SafetensorsError& e) {
    fail(e);
  } catch (const std::invalid_argument& e) {  // lora_layers: names it cannot place
    fail(e);
  }  // anything else (out of memory) propagates as it is: a model error, retried; the state stays "none merged"
  merged_loras_ = key;
}

BundlePipeline::~BundlePipeline() = default;

Residency::Lease BundlePipeline::resident(const std::vector<std::string>& names) {
  if (!residency_) return {};
  for (const std::string& n : names) component(n);
  Residency::Lease lease = residency_->lease(names);
  t_uploads += lease.uploads();
  return lease;
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
    report("denoise", ++done, steps);
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

at::Tensor BundlePipeline::denoise_cfg(const at::Tensor& noise, const Schedule& schedule, const Branches& b,
                                       EditResult& result) {
  torch::jit::Module& dit = component("transformer");
  const ComponentSpec* spec = specs_.at("transformer.forward");
  const Residency::Lease lease = resident({"transformer"});
  int64_t calls = 0, passes = 0, widest = 0;
  double inside = 0;                               // seconds inside the row's transformer invocations
  std::vector<std::shared_ptr<DeviceSpan>> spans;  // device_timing: each invocation's device time, read at the end
  const at::Tensor out = denoise(noise, schedule, [&](const at::Tensor& x, float t) {
    const int n = b.cfg ? 2 : 1;
    std::vector<ComponentCall> branch(static_cast<std::size_t>(n));
    std::vector<ComponentCall*> ptrs;
    for (int k = 0; k < n; ++k) {
      branch[k].module = &dit;
      branch[k].spec = spec;
      branch[k].inputs = b.inputs(k, x, t);
      branch[k].tag = fuse_cfg_ ? 0 : k;
      branch[k].timed_device = timed_device_;
      ptrs.push_back(&branch[k]);
    }
    run_row_calls(ptrs);
    const bool fused = n == 2 && branch[0].invocation == branch[1].invocation;
    calls += n;
    passes += fused ? 1 : n;
    for (const ComponentCall& c : branch) widest = std::max(widest, c.shared);
    inside += branch[0].seconds + (n == 2 && !fused ? branch[1].seconds : 0);
    for (int k = 0; k < (fused ? 1 : n); ++k)
      if (branch[k].span) spans.push_back(branch[k].span);
    const at::Tensor v = b.velocity(branch[0].output.toTensor());
    if (!b.cfg) return v;
    const at::Tensor u = b.velocity(branch[1].output.toTensor());
    return b.combine ? b.combine(v, u) : u + static_cast<float>(b.scale) * (v - u);
  });
  result.counters.emplace_back("transformer_calls", calls);
  result.counters.emplace_back("transformer_passes", passes);
  result.counters.emplace_back("transformer_batch", widest);
  result.counters.emplace_back("transformer_us", static_cast<int64_t>(inside * 1e6));
  if (timed_device_ >= 0) {
    double on_device = 0;
    for (const auto& span : spans) on_device += span->seconds();
    result.counters.emplace_back("transformer_device_us", static_cast<int64_t>(on_device * 1e6));
  }
  return out;
}

c10::IValue BundlePipeline::call(const std::string& name, std::vector<c10::IValue> inputs, const std::string& method) {
  torch::jit::Module* module = &component(name);
  const ComponentSpec* spec = specs_.at(name + "." + method);
  const bool vae = name.rfind("vae_", 0) == 0;
  const Residency::Lease lease = resident({name});  // over every tile
  const auto run = [&](std::vector<c10::IValue> args) {
    ComponentCall c;
    c.module = module;
    c.spec = spec;
    c.inputs = std::move(args);
    if (vae && vae_slicing_) c.tag = -t_row;  // a tag of its own per row: never merged with another row's call
    run_row_calls({&c});
    if (name == "vae_decoder") t_vae_decode_rows = std::max(t_vae_decode_rows, c.shared);
    return c.output;
  };
  if (!vae || !vae_tiling_ || inputs.size() != 1) return run(std::move(inputs));
  const bool decode = name == "vae_decoder";
  const VaeTileRule& rule = decode ? vae_tiling_->decode : vae_tiling_->encode;
  const at::Tensor x = inputs[0].toTensor();
  if (!rule.applies(x.size(2), x.size(3))) return run(std::move(inputs));
  const int64_t s = vae_tiling_->scale;  // the crop AutoencoderKLQwenImage applies: the input size x or / the scale
  return tiled_vae_call(
      x, rule, decode ? x.size(2) * s : x.size(2) / s, decode ? x.size(3) * s : x.size(3) / s,
      [&](const at::Tensor& tile) { return run({tile}).toTensor(); }, &t_vae_tiles[decode ? 1 : 0]);
}

void BundlePipeline::report(const std::string& phase, int64_t step, int64_t steps) const {
  if (t_on_step && *t_on_step) (*t_on_step)(phase, static_cast<int>(step), static_cast<int>(steps));
}

std::string BundlePipeline::model_option(const std::string& name) const {
  if (const auto it = options_.find(name); it != options_.end()) return it->second;
  for (const auto& o : spec_->options)
    if (o.name == name) return o.default_value;
  throw std::logic_error(fmt::format("model type {} has no model option {}", spec_->type, name));
}

torch::jit::Module& BundlePipeline::component(const std::string& name) {
  std::lock_guard<std::mutex> lock(components_mu_);
  auto it = components_.find(name);
  if (it == components_.end()) {
    it = components_.emplace(name, bundle_.load(name, device_)).first;
    // Loaded onto the device and then parked, not loaded into CPU memory: the graphs' own constants (0-dim tensors
    // such as an epsilon) stay where torch::jit::load put them, on the device, and only weights move.
    if (parking_) parking_->park(it->second);
  }
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
  t_uploads = 0;
  if (!t_batcher) {  // a batch's rows share one peak, reset when the batch starts, and edit_batch merged its set
    reset_device_peak(dev_);
    use_loras(request.loras.value_or(run_loras_), true);  // its transformer upload and peak count for the row
  }
  c10::InferenceMode guard;
  EditResult result;
  // On CUDA the clock waits for the device when it starts and at each lap: kernels run after the host has moved on,
  // and a stage's time (results.csv's stage_times) must hold its kernels, not its launch and an earlier one's work.
  std::function<void()> settle;
  if (dev_.is_cuda()) settle = [d = dev_.has_index() ? dev_.index() : int64_t{0}] { torch::cuda::synchronize(d); };
  StageClock clock(result, std::move(settle));
  t_on_step = &request.on_step;
  t_vae_decode_rows = 0;
  t_vae_tiles[0] = t_vae_tiles[1] = 0;
  struct Reset {
    ~Reset() { t_on_step = nullptr; }
  } reset;
  try {
    run(request, result, clock);
    if (t_vae_decode_rows > 0) result.counters.emplace_back("vae_decoder_batch", t_vae_decode_rows);
    if (t_vae_tiles[0] > 0) result.counters.emplace_back("vae_encoder_tiles", t_vae_tiles[0]);
    if (t_vae_tiles[1] > 0) result.counters.emplace_back("vae_decoder_tiles", t_vae_tiles[1]);
    if (residency_) result.counters.emplace_back("offload_uploads", t_uploads);
    if (const auto peak = device_peak_bytes(dev_))
      result.counters.emplace_back("device_peak_mib", (*peak + 1048575) >> 20);
  } catch (const InputError&) {
    throw;
  } catch (const std::invalid_argument& e) {  // the numeric code's refusals (a schedule that cannot exist, ...)
    throw InputError(e.what());               // are deterministic: they fail the same way on every attempt
  }
  return result;
}

std::vector<BatchOutcome> BundlePipeline::edit_batch(const std::vector<EditRequest>& requests) {
  if (requests.size() < 2 || !inputs_.empty()) return Pipeline::edit_batch(requests);
  const std::string set = lora_key(requests[0].loras.value_or(run_loras_));
  for (const EditRequest& r : requests)  // one set of weights per batch; the runner groups rows by set
    if (lora_key(r.loras.value_or(run_loras_)) != set) return Pipeline::edit_batch(requests);
  std::vector<BatchOutcome> out(requests.size());
  reset_device_peak(dev_);
  try {
    use_loras(requests[0].loras.value_or(run_loras_), true);
  } catch (...) {
    for (BatchOutcome& o : out) o.error = std::current_exception();
    return out;
  }
  CallBatcher batcher(static_cast<int>(requests.size()));
  std::vector<std::thread> rows;
  for (std::size_t k = 0; k < requests.size(); ++k)
    rows.emplace_back([&, k] {
      c10::InferenceMode guard;  // over leave() too, which may run the other rows' last calls
      t_batcher = &batcher;
      t_row = static_cast<int>(k) + 1;
      try {
        out[k].result = edit(requests[k]);
      } catch (...) {
        out[k].error = std::current_exception();
      }
      t_batcher = nullptr;
      batcher.leave();
    });
  for (auto& t : rows) t.join();
  return out;
}

}  // namespace dg
