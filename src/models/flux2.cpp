// FLUX.2-dev (Flux2Pipeline, type flux2) and FLUX.2-klein (Flux2KleinPipeline, type flux2_klein) on
// TorchScript bundles. Orchestration ported from diffusers 58eb52c0 pipeline_flux2.py /
// pipeline_flux2_klein.py (docs/models/flux2.md and flux2_klein.md,
// "Upstream behaviour"; docs/bundle-format.md, "flux2 and flux2_klein"):
//   chat template -> 512 tokens padded with the tokenizer's pad id (pads reach the DiT unmasked) ->
//   three stacked LM layers -> references capped to 1024^2, floored to 16, centre-cropped -> VAE mean,
//   2x2 patchify to 128 channels, batch-norm statistics -> 4-D ids (references at T = 10, 20, ...) ->
//   noise drawn in patchified space -> empirical mu -> Euler with the distilled guidance embedding
//   (dev) or plain CFG against "" (klein base) -> undo BN, unpatchify, decode.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/script.h>

#include <chrono>
#include <cmath>

#include "flux2.hpp"
#include "flux2_upsampler.hpp"

#include "diffgentor/bundle_pipeline.hpp"
#include "diffgentor/latents.hpp"
#include "diffgentor/resize.hpp"
#include "diffgentor/scheduler.hpp"
#include "diffgentor/tokenizer.hpp"

namespace dg {

namespace {

// Flux2Pipeline's system message for the Mistral chat template (there is a newline inside it).
const char* kMistralSystem =
    "You are an AI that reasons about image descriptions. You give structured responses focusing on object "
    "relationships, object\nattribution and actions without speculation.";

// Flux2ImageProcessor caps each reference to this many pixels (its `_resize_to_target_area`).
constexpr double kReferenceMaxArea = 1024.0 * 1024.0;
// The pipelines' max_sequence_length: the prompt is truncated to it and padded up to it (upstream too).
constexpr int64_t kTextTokens = 512;

}  // namespace

Image flux2_reference(const Image& img) {
  Image cur = img;
  const double area = double(img.width) * img.height;
  if (area > kReferenceMaxArea) {
    const double s = std::sqrt(kReferenceMaxArea / area);
    cur = resize_pil(img, static_cast<int>(img.width * s), static_cast<int>(img.height * s), ResampleFilter::Lanczos);
  }
  const int w = cur.width / 16 * 16, h = cur.height / 16 * 16;
  if (w == cur.width && h == cur.height) return cur;
  Image out{w, h, std::vector<uint8_t>(static_cast<std::size_t>(w) * h * 3)};
  const int left = (cur.width - w) / 2, top = (cur.height - h) / 2;
  for (int y = 0; y < h; ++y) std::copy_n(cur.pixel(left, top + y), static_cast<std::size_t>(w) * 3, out.pixel(0, y));
  return out;
}

/// Flux2Pipeline ids: rows of (T, row, col, l); noise T = 0, reference i T = 10 + 10 i; text (0, 0, 0, l).
std::vector<int64_t> flux2_image_ids(int64_t T, int64_t h, int64_t w) {
  std::vector<int64_t> ids;
  ids.reserve(static_cast<std::size_t>(h * w * 4));
  for (int64_t r = 0; r < h; ++r)
    for (int64_t c = 0; c < w; ++c) ids.insert(ids.end(), {T, r, c, 0});
  return ids;
}

namespace {

class Flux2 : public BundlePipeline {
 public:
  explicit Flux2(const PipelineConfig& cfg)
      : BundlePipeline(cfg),
        klein_(cfg.spec->type == "flux2_klein"),
        tokenizer_(Tokenizer::from_file(cfg.bundle_dir + "/tokenizer/tokenizer.json")) {
    pad_id_ = pad_token_id(tokenizer_, "tokenizer");
    is_distilled_ = bundle_.config("model_index.json").value("is_distilled", false);
    guidance_embeds_ = bundle_.config("transformer/config.json").value("guidance_embeds", false);
    const auto& vae = bundle_.config("vae/config.json");
    eps_ = vae.value("batch_norm_eps", 1e-4);
    // Batch-norm statistics in the run dtype, std = sqrt(var + eps) evaluated in it (docs/bundle-format.md, "Dtypes").
    const auto mean = bundle_.constant("vae_bn_running_mean").get<std::vector<float>>();
    const auto var = bundle_.constant("vae_bn_running_var").get<std::vector<float>>();
    bn_mean_ = at::tensor(mean).view({1, -1, 1, 1}).to(dev_, dtype_);
    bn_std_ = (at::tensor(var).view({1, -1, 1, 1}).to(dev_, dtype_) + eps_).sqrt();
    scheduler_ = SchedulerConfig::from_json(bundle_.config("scheduler/scheduler_config.json"));
    if (cfg.upsampling.enabled) {
      if (klein_)
        throw BundleError(
            "FLUX.2-klein has no prompt upsampler (upstream upsamples only FLUX.2-dev's prompts); set "
            "DG_FLUX2_ENHANCER_MODE=api");
      upsampler_ = std::make_unique<Flux2Upsampler>(bundle_, tokenizer_, dev_, cfg.upsampling);
      upsampler_vision_ = component("upsampler_vision");
      notice("prompt upsampling: FLUX.2's own Mistral, " + upsampler_->describe());
    }
  }

  void run(const EditRequest& r, EditResult& result, StageClock& clock) override {
    const at::Device& dev = dev_;

    std::vector<Image> refs;
    for (const Image& img : r.images) refs.push_back(flux2_reference(img));
    // height = height or image_height (the first reference), floored to vae_scale_factor * 2 by prepare_latents
    // (Flux2Pipeline.__call__).
    const auto [rw, rh] = resolve_output_size(*spec_, r.params, refs.front().width, refs.front().height);
    const int64_t height = rh, width = rw;
    clock.lap("preprocess");

    std::string instruction = r.instruction;
    if (upsampler_) instruction = upsample(r, result, clock);
    const at::Tensor embeds = encode(instruction);
    // Klein base models run plain CFG against "" when guidance_scale > 1; distilled ones never do.
    const bool cfg = klein_ && !is_distilled_ && r.params.guidance > 1.0;
    at::Tensor negative;
    if (cfg) negative = encode("");
    clock.lap("text_encoder");

    std::vector<at::Tensor> ref_tokens;
    std::vector<int64_t> ids = flux2_image_ids(0, height / 16, width / 16);
    for (std::size_t i = 0; i < refs.size(); ++i) {
      const at::Tensor z = call("vae_encoder", {image_to_tensor(refs[i], dtype_, device_)}).toTensor();
      const at::Tensor p = (patchify_2x2(z) - bn_mean_) / bn_std_;
      ref_tokens.push_back(to_tokens(p));
      const auto more = flux2_image_ids(10 + 10 * static_cast<int64_t>(i), p.size(2), p.size(3));
      ids.insert(ids.end(), more.begin(), more.end());
    }
    const at::Tensor refs_cat = at::cat(ref_tokens, 1);
    tap("prompt_embeds", embeds);
    if (cfg) tap("negative_prompt_embeds", negative);
    tap("image_latents", refs_cat);
    clock.lap("vae_encode");

    // Noise drawn directly in patchified space, [1, 128, H/16, W/16].
    const int64_t C = bn_mean_.size(1), h = height / 16, w = width / 16;
    at::Tensor latents = to_tokens(seeded_noise({1, C, h, w}, r.seed, dtype_, device_));
    const int64_t Sn = latents.size(1), S = Sn + refs_cat.size(1), L = embeds.size(1);
    const at::Tensor img_ids = at::tensor(ids, at::kLong).view({S, 4}).to(dev);
    std::vector<int64_t> txt(static_cast<std::size_t>(L * 4), 0);
    for (int64_t l = 0; l < L; ++l) txt[static_cast<std::size_t>(l * 4 + 3)] = l;
    const at::Tensor txt_ids = at::tensor(txt, at::kLong).view({L, 4}).to(dev);

    const double mu = compute_mu(MuRule::Flux2Empirical, scheduler_, Sn, r.params.steps);
    const Schedule sched = flow_match_schedule(scheduler_, r.params.steps, mu);
    const auto f32 = at::TensorOptions().dtype(at::kFloat).device(dev);
    const at::Tensor guidance = at::full({1}, static_cast<float>(r.params.guidance), f32);
    Branches dit;
    dit.cfg = cfg;
    dit.scale = r.params.guidance;
    dit.inputs = [&](int branch, const at::Tensor& x, float t) {
      std::vector<c10::IValue> in{at::cat({x, refs_cat}, 1), branch ? negative : embeds,
                                  dit_timestep_tensor(t, dtype_, dev)};
      if (guidance_embeds_) in.emplace_back(guidance);
      in.emplace_back(img_ids);
      in.emplace_back(txt_ids);
      return in;
    };
    dit.velocity = [&](const at::Tensor& out) { return out.slice(1, 0, Sn); };
    latents = denoise_cfg(latents, sched, dit, result);
    clock.lap("denoise");

    const at::Tensor z = unpatchify_2x2(from_tokens(latents, h, w) * bn_std_ + bn_mean_);
    result.image = tensor_to_image(call("vae_decoder", {z}).toTensor());
    clock.lap("vae_decode");
  }

 private:
  // Flux2Pipeline.upsample_prompt before the prompt is encoded (caption_upsample_temperature set). Parity
  // stage inputs: "upsample_teacher_tokens" (fed instead of the sampled ones), "upsample_reference_logits"
  // (sampled from instead of the model's); taps: "upsample_input_ids", "upsample_image_embeds", "upsample_logits",
  // "upsample_tokens", "upsample_text" (UTF-8 bytes).
  std::string upsample(const EditRequest& r, EditResult& result, StageClock& clock) {
    const auto t0 = std::chrono::steady_clock::now();
    const at::Tensor teacher_t = stage_input("upsample_teacher_tokens");
    std::vector<int64_t> teacher;
    Flux2Upsampler::Hooks hooks;
    if (teacher_t.defined()) {
      teacher.assign(teacher_t.data_ptr<int64_t>(), teacher_t.data_ptr<int64_t>() + teacher_t.numel());
      hooks.teacher = &teacher;
    }
    hooks.sample_logits = stage_input("upsample_reference_logits");
    hooks.on_token = [this](int64_t k, int64_t n) { report("upsample", k, n); };
    std::vector<at::Tensor> logits;
    if (tapping()) hooks.on_logits = [&](int64_t, const at::Tensor& l) { logits.push_back(l.to(at::kCPU)); };
    const Flux2Upsampler::Result u = [&] {
      const Residency::Lease lease = resident({"text_encoder", "upsampler_vision"});  // the LM and its vision tower
      return upsampler_->run(text_encoder_, upsampler_vision_, r.instruction, r.images, r.seed, hooks);
    }();
    if (tapping()) {
      tap("upsample_input_ids", at::tensor(u.input_ids).to(at::kFloat));
      if (u.image_embeds.defined()) tap("upsample_image_embeds", u.image_embeds);
      if (!logits.empty()) tap("upsample_logits", at::cat(logits, 0));
      tap("upsample_tokens", at::tensor(u.tokens).to(at::kFloat));
      std::vector<int64_t> bytes(u.text.begin(), u.text.end());
      for (auto& b : bytes) b &= 0xFF;
      tap("upsample_text", at::tensor(bytes).to(at::kFloat));
    }
    clock.lap("upsample");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    result.enhanced = EnhancedPrompt{u.text, u.status, secs};
    result.counters.emplace_back("upsample_prompt_tokens", static_cast<int64_t>(u.input_ids.size()));
    result.counters.emplace_back("upsample_new_tokens", static_cast<int64_t>(u.tokens.size()));
    result.counters.emplace_back("upsample_truncated_tokens", u.truncated_tokens);
    result.counters.emplace_back("upsample_vision_ms", static_cast<int64_t>(u.vision_ms));
    result.counters.emplace_back("upsample_prefill_ms", static_cast<int64_t>(u.stats.prefill_ms));
    result.counters.emplace_back("upsample_decode_ms", static_cast<int64_t>(u.stats.decode_ms));
    return u.text;
  }

  // The chat template, 512 tokens right-padded with the pad id, the three stacked LM layers.
  at::Tensor encode(const std::string& prompt) {
    std::string text;
    if (klein_) {
      text = fmt::format("<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", prompt);
    } else {
      std::string p = prompt;
      for (auto pos = p.find("[IMG]"); pos != std::string::npos; pos = p.find("[IMG]")) p.erase(pos, 5);
      text = fmt::format("<s>[SYSTEM_PROMPT]{}[/SYSTEM_PROMPT][INST]{}[/INST]", kMistralSystem, p);
    }
    const Tokenizer::Padded t = tokenizer_.encode_padded(text, kTextTokens, pad_id_);
    const at::Device& dev = dev_;
    const at::Tensor ids =
        at::tensor(std::vector<int64_t>(t.ids.begin(), t.ids.end()), at::kLong).view({1, kTextTokens}).to(dev);
    const at::Tensor mask =
        at::tensor(std::vector<int64_t>(t.attention_mask.begin(), t.attention_mask.end()), at::kLong)
            .view({1, kTextTokens})
            .to(dev);
    const at::Tensor pos =
        at::arange(kTextTokens, at::TensorOptions().dtype(at::kLong).device(dev)).view({1, kTextTokens});
    return call("text_encoder", {ids, mask, pos}).toTensor();
  }

  bool klein_;
  Tokenizer tokenizer_;
  int32_t pad_id_ = 0;
  bool is_distilled_ = false, guidance_embeds_ = false;
  double eps_ = 1e-4;
  at::Tensor bn_mean_, bn_std_;
  SchedulerConfig scheduler_;
  torch::jit::Module text_encoder_ = component("text_encoder");  // also the prompt upsampler's LM
  torch::jit::Module upsampler_vision_;                          // loaded only when upsampling is on
  std::unique_ptr<Flux2Upsampler> upsampler_;
};

}  // namespace

std::unique_ptr<Pipeline> make_flux2_pipeline(const PipelineConfig& config) { return std::make_unique<Flux2>(config); }

}  // namespace dg
