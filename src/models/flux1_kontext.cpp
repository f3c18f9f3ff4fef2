// FLUX.1-Kontext (FluxKontextPipeline, type flux1_kontext) on TorchScript bundles. Orchestration ported
// from diffusers 58eb52c0 pipeline_flux_kontext.py (docs/models/flux1_kontext.md,
// "Upstream behaviour"; docs/bundle-format.md, "flux1_kontext"):
//   CLIP (77 tokens, EOS-padded, pooled output) and T5 (512 tokens, unmasked) -> each reference
//   snapped to the closest preferred Kontext resolution (LANCZOS stretch) -> (z - shift) * scale, packed,
//   ids (1 + i, row, col) -> noise ids (0, row, col) -> linear mu -> Euler with the guidance embedding,
//   plus true CFG when --true_cfg_scale > 1 and a negative prompt are given.
// Deviation (documented in docs/models/flux1_kontext.md): the output size is the preferred resolution
// of the first image, so an edit keeps its aspect ratio, where diffusers defaults to 1024x1024.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/script.h>

#include <chrono>
#include <cmath>
#include <tuple>

#include "flux1_kontext.hpp"

#include "diffgentor/bundle_pipeline.hpp"
#include "diffgentor/latents.hpp"
#include "diffgentor/resize.hpp"
#include "diffgentor/scheduler.hpp"
#include "diffgentor/tokenizer.hpp"

namespace dg {

namespace {
// FluxKontextPipeline's max_sequence_length for T5: truncated to it and padded up to it, as upstream does.
constexpr int kT5Tokens = 512;
}  // namespace

std::pair<int, int> kontext_preferred_resolution(int width, int height) {
  // PREFERRED_KONTEXT_RESOLUTIONS as (w, h); the ratio comes from the size floored to 16, and ties go to
  // the smaller width (Python's min over (|ar - w/h|, w, h)).
  static const int table[][2] = {{672, 1568}, {688, 1504}, {720, 1456},  {752, 1392}, {800, 1328}, {832, 1248},
                                 {880, 1184}, {944, 1104}, {1024, 1024}, {1104, 944}, {1184, 880}, {1248, 832},
                                 {1328, 800}, {1392, 752}, {1456, 720},  {1504, 688}, {1568, 672}};
  const double ar = double(width / 16 * 16) / double(height / 16 * 16);
  std::tuple<double, int, int> best{1e300, 0, 0};
  for (const auto& r : table) best = std::min(best, std::make_tuple(std::fabs(ar - double(r[0]) / r[1]), r[0], r[1]));
  return {std::get<1>(best), std::get<2>(best)};
}

std::pair<int, int> kontext_output_size(int width, int height) {
  // The model table's rule for this type (max_area 1024^2, multiple 16): resolve_output_size holds the arithmetic.
  return resolve_output_size(*find_model("flux1_kontext"), EffectiveParams{}, width, height);
}

namespace {

class Kontext : public BundlePipeline {
 public:
  explicit Kontext(const PipelineConfig& cfg)
      : BundlePipeline(cfg),
        clip_tok_(Tokenizer::from_file(cfg.bundle_dir + "/tokenizer/tokenizer.json")),
        t5_tok_(Tokenizer::from_file(cfg.bundle_dir + "/tokenizer_2/tokenizer.json")) {
    clip_pad_ = pad_token_id(clip_tok_, "tokenizer");
    t5_pad_ = pad_token_id(t5_tok_, "tokenizer_2");
    const auto& vae = bundle_.config("vae/config.json");
    scale_ = vae.at("scaling_factor").get<double>();
    shift_ = vae.value("shift_factor", 0.0);
    channels_ = vae.value("latent_channels", 16);
    scheduler_ = SchedulerConfig::from_json(bundle_.config("scheduler/scheduler_config.json"));
  }

  void run(const EditRequest& r, EditResult& result, StageClock& clock) override {
    const at::Device& dev = dev_;
    std::vector<Image> refs;
    for (const Image& img : r.images) {
      const auto [pw, ph] = kontext_preferred_resolution(img.width, img.height);
      refs.push_back(resize_pil(img, pw, ph, ResampleFilter::Lanczos));
    }
    // Each requested side over the first reference's preferred resolution, then the max_area rescale of that aspect
    // (FluxKontextPipeline.__call__): unrequested, the preferred resolution at ~1024^2; 512x512 becomes 1024x1024.
    const auto [width, height] = resolve_output_size(*spec_, r.params, refs.front().width, refs.front().height);
    clock.lap("preprocess");

    const auto [pooled, embeds] = encode(r.instruction);
    const bool true_cfg = r.params.true_cfg && *r.params.true_cfg > 1.0 && r.params.negative_prompt;
    at::Tensor neg_pooled, neg_embeds;
    if (true_cfg) std::tie(neg_pooled, neg_embeds) = encode(*r.params.negative_prompt);
    clock.lap("text_encoder");

    std::vector<at::Tensor> ref_tokens;
    std::vector<float> ids;
    const int64_t h = height / 8, w = width / 8;
    auto add_ids = [&](float axis0, int64_t rows, int64_t cols) {
      for (int64_t row = 0; row < rows; ++row)
        for (int64_t col = 0; col < cols; ++col) ids.insert(ids.end(), {axis0, float(row), float(col)});
    };
    add_ids(0.0f, h / 2, w / 2);
    for (std::size_t i = 0; i < refs.size(); ++i) {  // the first reference has axis 0 = 1, further ones 2, 3, ...
      const at::Tensor z = call("vae_encoder", {image_to_tensor(refs[i], dtype_, device_)}).toTensor();
      ref_tokens.push_back(pack_latents((z - shift_) * scale_));
      add_ids(1.0f + static_cast<float>(i), z.size(2) / 2, z.size(3) / 2);
    }
    const at::Tensor ref_cat = at::cat(ref_tokens, 1);
    tap("prompt_embeds", embeds);
    tap("pooled_prompt_embeds", pooled);
    if (true_cfg) tap("negative_prompt_embeds", neg_embeds);
    tap("image_latents", ref_cat);
    clock.lap("vae_encode");

    at::Tensor latents = pack_latents(seeded_noise({1, channels_, h, w}, r.seed, dtype_, device_));
    const int64_t Sn = latents.size(1), S = Sn + ref_cat.size(1), L = embeds.size(1);
    const at::Tensor img_ids = at::tensor(ids).view({S, 3}).to(dev);
    const at::Tensor txt_ids = at::zeros({L, 3}, at::TensorOptions().dtype(at::kFloat).device(dev));
    const Schedule sched =
        flow_match_schedule(scheduler_, r.params.steps, compute_mu(MuRule::Linear, scheduler_, Sn, r.params.steps));
    const auto f32 = at::TensorOptions().dtype(at::kFloat).device(dev);
    const at::Tensor guidance = at::full({1}, static_cast<float>(r.params.guidance), f32);
    Branches dit;
    dit.cfg = true_cfg;
    dit.scale = r.params.true_cfg.value_or(1.0);
    dit.inputs = [&](int branch, const at::Tensor& x, float t) -> std::vector<c10::IValue> {
      return {at::cat({x, ref_cat}, 1),
              branch ? neg_embeds : embeds,
              branch ? neg_pooled : pooled,
              dit_timestep_tensor(t, dtype_, dev),
              guidance,
              img_ids,
              txt_ids};
    };
    dit.velocity = [&](const at::Tensor& out) { return out.slice(1, 0, Sn); };
    latents = denoise_cfg(latents, sched, dit, result);
    clock.lap("denoise");
    const at::Tensor z = unpack_latents(latents, h, w, channels_) / scale_ + shift_;
    result.image = tensor_to_image(call("vae_decoder", {z}).toTensor());
    clock.lap("vae_decode");
  }

 private:
  // CLIP: 77 tokens (BOS, 75, EOS) padded with the pad token, no mask, pooled output. T5: 512 tokens,
  // `</s>` then pads, no mask (pads attend), last hidden state.
  std::pair<at::Tensor, at::Tensor> encode(const std::string& prompt) {
    const at::Device& dev = dev_;
    auto ids_of = [&](const std::vector<int32_t>& v) {
      return at::tensor(std::vector<int64_t>(v.begin(), v.end())).view({1, static_cast<int64_t>(v.size())}).to(dev);
    };
    const at::Tensor pooled =
        call("text_encoder", {ids_of(clip_tok_.encode_padded(prompt, 77, clip_pad_).ids)}).toTensor();
    const at::Tensor embeds =
        call("text_encoder_2", {ids_of(t5_tok_.encode_padded(prompt, kT5Tokens, t5_pad_).ids)}).toTensor();
    return {pooled, embeds};
  }

  Tokenizer clip_tok_, t5_tok_;
  int32_t clip_pad_ = 0, t5_pad_ = 0;
  double scale_ = 1.0, shift_ = 0.0;
  int64_t channels_ = 16;
  SchedulerConfig scheduler_;
};

}  // namespace

std::unique_ptr<Pipeline> make_flux1_kontext_pipeline(const PipelineConfig& config) {
  return std::make_unique<Kontext>(config);
}

}  // namespace dg
