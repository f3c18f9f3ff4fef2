// Qwen-Image-Edit (QwenImageEditPipeline, type qwen_singleimg) and Qwen-Image-Edit-2509/2511
// (QwenImageEditPlusPipeline, type qwen) on TorchScript bundles. Orchestration ported from diffusers
// 58eb52c0 pipeline_qwenimage_edit.py / pipeline_qwenimage_edit_plus.py (docs/models/qwen.md,
// "Upstream behaviour"):
//   template + "Picture i:" (Plus) -> tokenize -> expand <|image_pad|> -> vision + text encoders ->
//   drop the template prefix -> VAE-encode references (mean, normalised, packed) -> seeded bf16 noise
//   -> flow-match Euler with true CFG and per-token norm rescale -> unpack, denormalise, decode.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "diffgentor/bundle_pipeline.hpp"
#include "diffgentor/latents.hpp"
#include "diffgentor/qwen_vl.hpp"
#include "diffgentor/resize.hpp"
#include "diffgentor/scheduler.hpp"
#include "diffgentor/tokenizer.hpp"

namespace dg {

namespace {

const char* kSystem =
    "Describe the key features of the input image (color, shape, size, texture, objects, background), then explain "
    "how the user's text instruction should alter or modify the image. Generate a new image that meets the user's "
    "requirements while maintaining consistency with the original input where appropriate.";
const char* kVisionBlock = "<|vision_start|><|image_pad|><|vision_end|>";
// The pipelines' size targets: the VAE images and the output at about 1024^2 pixels (QwenImageEditPipeline
// also feeds the VLM this size), QwenImageEditPlusPipeline's VLM images at 384^2 (its CONDITION_IMAGE_SIZE).
constexpr double kImageArea = 1024.0 * 1024.0;
constexpr double kPlusVlmArea = 384.0 * 384.0;
// QwenImageEdit(Plus)Pipeline.tokenizer_max_length.
constexpr int64_t kMaxTextTokens = 1024;

class QwenImageEdit : public BundlePipeline {
 public:
  explicit QwenImageEdit(const PipelineConfig& cfg)
      : BundlePipeline(cfg),
        plus_(cfg.spec->type == "qwen"),
        tokenizer_(Tokenizer::from_file(cfg.bundle_dir + "/tokenizer/tokenizer.json")) {
    const auto& te = bundle_.config("text_encoder/config.json");
    image_token_id_ = te.at("image_token_id").get<int32_t>();
    if (tokenizer_.token_to_id("<|image_pad|>") != image_token_id_)
      throw BundleError(
          fmt::format("bundle {}: text_encoder/config.json image_token_id {} is not the tokenizer's "
                      "<|image_pad|>",
                      cfg.bundle_dir, image_token_id_));
    vision_ = QwenVisionConfig::from_json(bundle_.config("processor/preprocessor_config.json"), te);
    const auto& vae = bundle_.config("vae/config.json");
    latents_mean_ = vae.at("latents_mean").get<std::vector<float>>();
    latents_std_ = vae.at("latents_std").get<std::vector<float>>();
    axes_ = bundle_.config("transformer/config.json").at("axes_dims_rope").get<std::vector<int>>();
    scheduler_ = SchedulerConfig::from_json(bundle_.config("scheduler/scheduler_config.json"));
    drop_ = bundle_.constant("prompt_template_encode_start_idx").get<int64_t>();
  }

  void run(const EditRequest& r, EditResult& result, StageClock& clock) override {
    // The pipelines' tokenizer_max_length: upstream takes any length and runs out of memory on a huge one
    // (attention over every token), so a longer instruction is refused before any component runs.
    if (const auto n = static_cast<int64_t>(tokenizer_.encode(r.instruction).size()); n > kMaxTextTokens)
      throw InputError(fmt::format("the instruction is {} tokens; {} takes at most {}: shorten it", n,
                                   plus_ ? "Qwen-Image-Edit-2509/2511" : "Qwen-Image-Edit", kMaxTextTokens));
    // Sizes (docs/models/qwen.md): VLM image at 384^2 (Plus) or 1024^2 area, VAE image at 1024^2 area,
    // output from the last (Plus) or first image, or the requested size, floored to 16.
    std::vector<Image> vlm_images, vae_images;
    for (const Image& img : r.images) {
      const double ratio = double(img.width) / img.height;
      const auto [vw, vh] = calculate_dimensions(plus_ ? kPlusVlmArea : kImageArea, ratio);
      const auto [cw, ch] = calculate_dimensions(kImageArea, ratio);
      const Image vae_img = resize_pil(img, cw / 16 * 16, ch / 16 * 16, ResampleFilter::Lanczos);
      vlm_images.push_back(plus_ ? resize_pil(img, vw, vh, ResampleFilter::Lanczos) : vae_img);
      vae_images.push_back(vae_img);
    }
    const Image& size_src = plus_ ? r.images.back() : r.images.front();
    const auto [ow, oh] = calculate_dimensions(kImageArea, double(size_src.width) / size_src.height);
    // height = height or calculated_height, floored to vae_scale_factor * 2 (QwenImageEdit[Plus]Pipeline.__call__);
    // the references keep their own sizes.
    const auto [rw, rh] = resolve_output_size(*spec_, r.params, ow / 16 * 16, oh / 16 * 16);
    const int64_t height = rh, width = rw;

    // Vision tower once per row: the negative prompt reuses the same image embeddings.
    const VisionInputs vis = process_qwen_images(vlm_images, vision_);
    const int64_t P = vis.patches();
    clock.lap("preprocess");
    const at::Tensor image_embeds =
        call("vision_encoder",
             {f32_tensor(vis.pixel_values, {P, vis.row_size}, device_), i64_tensor(vis.vision_pos, {P, 2}, device_),
              i64_tensor(vis.window_seg, {P}, device_), i64_tensor(vis.image_seg, {P}, device_)})
            .toTensor();
    clock.lap("vision_encoder");

    double tokenize = 0;
    const at::Tensor prompt_embeds = encode_prompt(r.instruction, vis, image_embeds, tokenize);
    const bool true_cfg = r.params.true_cfg && *r.params.true_cfg > 1.0 && r.params.negative_prompt;
    at::Tensor negative_embeds;
    if (true_cfg) negative_embeds = encode_prompt(*r.params.negative_prompt, vis, image_embeds, tokenize);
    tap("prompt_embeds", prompt_embeds);
    if (true_cfg) tap("negative_prompt_embeds", negative_embeds);
    clock.split("tokenize", tokenize);
    clock.lap("text_encoder");

    // References: VAE mean, (z - mean) / std in W, packed; concatenated in input order.
    const auto mean = at::tensor(latents_mean_).view({1, -1, 1, 1}).to(dev_, dtype_);
    const auto stdv = at::tensor(latents_std_).view({1, -1, 1, 1}).to(dev_, dtype_);
    std::vector<at::Tensor> refs;
    std::vector<ImageShape> shapes{{1, int(height / 16), int(width / 16)}};
    for (const Image& img : vae_images) {
      at::Tensor z = call("vae_encoder", {image_to_tensor(img, dtype_, device_)}).toTensor();
      refs.push_back(pack_latents((z - mean) / stdv));
      shapes.push_back({1, img.height / 16, img.width / 16});
    }
    const at::Tensor ref_tokens = at::cat(refs, 1);
    tap("image_latents", ref_tokens);
    clock.lap("vae_encode");

    // Noise drawn like randn_tensor([1, 1, 16, H/8, W/8], dtype=W) on a CPU generator, then packed.
    const int64_t C = static_cast<int64_t>(latents_mean_.size()), h = height / 8, w = width / 8;
    at::Tensor latents = pack_latents(seeded_noise({1, C, h, w}, r.seed, dtype_, device_));
    const int64_t Sn = latents.size(1), S = Sn + ref_tokens.size(1);
    const double mu = compute_mu(MuRule::Linear, scheduler_, Sn, r.params.steps);
    const Schedule sched = flow_match_schedule(scheduler_, r.params.steps, mu);

    const RopeTables rope_pos = qwen_rope_tables(shapes, prompt_embeds.size(1), axes_);
    const at::Tensor img_freqs = f32_tensor(rope_pos.img, {S, rope_pos.pairs, 2}, device_);
    const at::Tensor txt_pos = f32_tensor(rope_pos.txt, {prompt_embeds.size(1), rope_pos.pairs, 2}, device_);
    at::Tensor txt_neg;
    if (true_cfg) {
      const RopeTables rope_neg = qwen_rope_tables(shapes, negative_embeds.size(1), axes_);
      txt_neg = f32_tensor(rope_neg.txt, {negative_embeds.size(1), rope_neg.pairs, 2}, device_);
    }
    std::vector<int64_t> modulate(static_cast<std::size_t>(S), 1);
    std::fill(modulate.begin(), modulate.begin() + Sn, 0);
    const at::Tensor modulate_index = i64_tensor(modulate, {1, S}, device_);

    Branches dit;
    dit.cfg = true_cfg;
    // Every text token is real here; the mask is false only on the pads of a batch's shorter prompts.
    const auto flags = at::TensorOptions().dtype(at::kBool).device(dev_);
    const at::Tensor mask_pos = at::ones({1, prompt_embeds.size(1)}, flags),
                     mask_neg = true_cfg ? at::ones({1, negative_embeds.size(1)}, flags) : at::Tensor();
    dit.inputs = [&](int branch, const at::Tensor& x, float t) -> std::vector<c10::IValue> {
      return {at::cat({x, ref_tokens}, 1),          branch ? negative_embeds : prompt_embeds,
              dit_timestep_tensor(t, dtype_, dev_), img_freqs,
              branch ? txt_neg : txt_pos,           modulate_index,
              branch ? mask_neg : mask_pos};
    };
    dit.velocity = [&](const at::Tensor& out) { return out.slice(1, 0, Sn); };
    // QwenImageEditPipeline's true CFG: the combination rescaled to the conditional prediction's norm.
    dit.combine = [&](const at::Tensor& v, const at::Tensor& neg) {
      const at::Tensor comb = neg + static_cast<float>(*r.params.true_cfg) * (v - neg);
      return comb * (at::linalg_vector_norm(v, 2, {-1}, true) / at::linalg_vector_norm(comb, 2, {-1}, true));
    };
    latents = denoise_cfg(latents, sched, dit, result);
    clock.lap("denoise");

    // Denormalise exactly as upstream: latents / bf16(1 / bf16(std)) + bf16(mean).
    at::Tensor z = unpack_latents(latents, h, w, C);
    z = z / (1.0 / at::tensor(latents_std_).view({1, -1, 1, 1}).to(dev_, dtype_)) + mean;
    result.image = tensor_to_image(call("vae_decoder", {z}).toTensor());
    clock.lap("vae_decode");
  }

 private:
  // Template, "Picture i:" blocks (Plus), tokenize, expand image pads, run the LM, drop the prefix.
  at::Tensor encode_prompt(const std::string& text, const VisionInputs& vis, const at::Tensor& image_embeds,
                           double& tokenize_seconds) {
    const auto start = std::chrono::steady_clock::now();
    std::string user;
    for (std::size_t k = 0; k < vis.grids.size(); ++k)
      user += plus_ ? fmt::format("Picture {}: {}", k + 1, kVisionBlock) : std::string(kVisionBlock);
    const std::string prompt =
        fmt::format("<|im_start|>system\n{}<|im_end|>\n<|im_start|>user\n{}{}<|im_end|>\n<|im_start|>assistant\n",
                    kSystem, user, text);
    std::vector<int32_t> ids;
    std::size_t image = 0;
    const std::vector<int32_t> tokens = tokenizer_.encode(prompt);
    for (int32_t id : tokens) {
      if (id != image_token_id_) {
        ids.push_back(id);
        continue;
      }
      if (image >= vis.grids.size()) throw InputError("the prompt holds more image placeholders than images");
      ids.insert(ids.end(), static_cast<std::size_t>(vis.image_tokens(image++, vision_.merge_size)), image_token_id_);
    }
    const auto L = static_cast<int64_t>(ids.size());
    tokenize_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (L <= drop_) throw InputError("prompt shorter than the template prefix");
    const std::vector<int64_t> ids64(ids.begin(), ids.end());
    const at::Tensor out =
        call("text_encoder",
             {i64_tensor(ids64, {1, L}, device_), at::ones({1, L}, at::TensorOptions().dtype(at::kLong).device(dev_)),
              i64_tensor(mrope_position_ids(ids, image_token_id_, vis, vision_.merge_size), {3, 1, L}, device_),
              image_embeds})
            .toTensor();
    return out.slice(1, drop_, L).contiguous();
  }

  bool plus_;
  Tokenizer tokenizer_;
  int32_t image_token_id_ = 0;
  QwenVisionConfig vision_;
  std::vector<float> latents_mean_, latents_std_;
  std::vector<int> axes_;
  SchedulerConfig scheduler_;
  int64_t drop_ = 64;
};

}  // namespace

std::unique_ptr<Pipeline> make_qwen_image_edit_pipeline(const PipelineConfig& config) {
  return std::make_unique<QwenImageEdit>(config);
}

}  // namespace dg
