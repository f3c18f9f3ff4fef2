// FLUX.2-dev's prompt upsampler (src/models/flux2_upsampler.hpp). Ports diffusers 0.40
// pipeline_flux2.Flux2Pipeline.upsample_prompt: _validate_and_process_images -> format_input ->
// apply_chat_template(add_generation_prompt=True, truncation at 2048) -> text_encoder.generate(max_new_tokens=512,
// do_sample=True, temperature) -> batch_decode(skip_special_tokens=True) of the new tokens.
#include "flux2_upsampler.hpp"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "diffgentor/latents.hpp"

namespace dg {

namespace {

at::Tensor ids_tensor(const std::vector<int64_t>& ids, const at::Device& dev) {
  return at::tensor(ids, at::kLong).view({1, static_cast<int64_t>(ids.size())}).to(dev);
}

}  // namespace

Flux2Upsampler::Flux2Upsampler(const Bundle& bundle, const Tokenizer& tokenizer, const at::Device& device,
                               const PromptUpsampling& settings)
    : tokenizer_(tokenizer), dev_(device), dtype_(bundle.dtype()) {
  if (!bundle.has_optional("upsampler"))
    throw BundleError(fmt::format(
        "bundle {} has no prompt upsampler: --prompt_enhance_type flux2 with DG_FLUX2_ENHANCER_MODE unset or "
        "'diffusers' rewrites prompts with FLUX.2's own Mistral, which a bundle holds only when exported with "
        "`export_bundle --with_upsampler`; re-export it so, or set DG_FLUX2_ENHANCER_MODE=api",
        bundle.dir()));
  const std::string origin = fmt::format("bundle {}: torchscript/manifest.json", bundle.dir());
  try {
    c_ = UpsamplerConstants::from_json(bundle.constant("upsampler"), origin);
    sampling_ = SamplingConfig::from_json(c_.generation_config, origin + " constants.upsampler.generation_config");
  } catch (const std::invalid_argument& e) {
    throw BundleError(e.what());
  }
  sampling_.do_sample = true;  // upsample_prompt calls generate(do_sample=True, temperature=...)
  sampling_.temperature = settings.temperature.value_or(c_.temperature);
  max_new_tokens_ = settings.max_new_tokens.value_or(c_.max_new_tokens);
  const auto& te = bundle.config("text_encoder/config.json");
  try {
    hidden_ = te.at("text_config").at("hidden_size").get<int64_t>();
    vocab_ = te.at("text_config").at("vocab_size").get<int64_t>();
  } catch (const nlohmann::json::exception&) {
    throw BundleError(
        fmt::format("bundle {}: text_encoder/config.json has no text_config.hidden_size and vocab_size", bundle.dir()));
  }
  if (c_.image_token_id != te.value("image_token_index", te.value("image_token_id", c_.image_token_id)))
    throw BundleError(origin + ": constants.upsampler.image_token_id differs from text_encoder/config.json's");
  if (!tokenizer_.token_to_id(c_.image_token) || *tokenizer_.token_to_id(c_.image_token) != c_.image_token_id)
    throw BundleError(fmt::format("{}: the tokenizer does not map the image token '{}' to id {}", origin,
                                  c_.image_token, c_.image_token_id));
}

std::string Flux2Upsampler::describe() const {
  return fmt::format("{}, up to {} new tokens, images concatenated and capped to {} pixels", sampling_.describe(),
                     max_new_tokens_, c_.max_image_area);
}

at::Tensor Flux2Upsampler::embed_image(torch::jit::Module& vision, const Image& image, int& grid_h, int& grid_w) const {
  const Image one = cap_image_area(image, c_.max_image_area);
  int H = 0, W = 0;
  const std::vector<float> pixels = pixtral_pixels(one, c_, H, W);
  const int p = c_.patch_size, m = c_.spatial_merge_size;
  const int gh = H / p, gw = W / p;
  if (gh > c_.vision_max_patches_per_side || gw > c_.vision_max_patches_per_side)
    throw InputError(fmt::format("the upsampler's image is {}x{} patches, more than the vision tower's {} a side", gw,
                                 gh, c_.vision_max_patches_per_side));
  std::vector<float> cos, sin;
  pixtral_rope(gh, gw, c_.vision_head_dim, c_.vision_rope_theta, cos, sin);
  const std::string dev = dev_.str();
  const int64_t P = int64_t(gh) * gw, Dv = c_.vision_head_dim, M = P / (int64_t(m) * m);
  const at::Tensor out =
      vision
          .forward({f32_tensor(pixels, {1, 3, H, W}, dev), f32_tensor(cos, {P, Dv}, dev), f32_tensor(sin, {P, Dv}, dev),
                    i64_tensor(pixtral_merge_index(gh, gw, m), {M, int64_t(m) * m}, dev)})
          .toTensor();
  grid_h = gh / m, grid_w = gw / m;
  return out;
}

Flux2Upsampler::Result Flux2Upsampler::run(torch::jit::Module& text_encoder, torch::jit::Module& vision,
                                           const std::string& instruction, const std::vector<Image>& images,
                                           uint64_t seed, const Hooks& hooks) const {
  Result res;
  std::string image_tokens;
  if (!images.empty()) {  // several images are concatenated into one first (_validate_and_process_images)
    const auto t0 = std::chrono::steady_clock::now();
    int gh = 0, gw = 0;
    res.image_embeds = embed_image(vision, concatenate_images(images), gh, gw);
    image_tokens = pixtral_image_tokens(gh, gw, c_);
    res.image_embeds.sum().item<float>();  // kernels run asynchronously: wait for them, so the time is theirs
    res.vision_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  const std::string text = upsampler_prompt(c_, instruction, image_tokens);
  for (int32_t id : tokenizer_.encode(text, c_.add_special_tokens)) res.input_ids.push_back(id);
  const auto image_rows = [&](std::size_t n) {
    return std::count(res.input_ids.begin(), res.input_ids.begin() + static_cast<std::ptrdiff_t>(n), c_.image_token_id);
  };
  const int64_t M = res.image_embeds.defined() ? res.image_embeds.size(0) : 0;
  if (image_rows(res.input_ids.size()) != M) {  // the instruction spells the image token itself
    res.text = instruction;
    res.status = fmt::format(
        "fallback: the instruction holds the image token '{}' (the prompt has {} image "
        "tokens for {} image embeddings)",
        c_.image_token, image_rows(res.input_ids.size()), M);
    return res;
  }
  if (res.input_ids.size() > static_cast<std::size_t>(c_.max_length)) {
    // truncation=True at max_length 2048: the text's end is cut, as upstream cuts it; cutting image tokens is an
    // error upstream (the processor checks their count), so it is a fallback here.
    if (image_rows(static_cast<std::size_t>(c_.max_length)) != M) {
      res.text = instruction;
      res.status = fmt::format(
          "fallback: the upsampling prompt has {} tokens and the image does not fit in the {} "
          "the pipeline allows",
          res.input_ids.size(), c_.max_length);
      return res;
    }
    res.truncated_tokens = static_cast<int64_t>(res.input_ids.size()) - c_.max_length;
    res.input_ids.resize(static_cast<std::size_t>(c_.max_length));
  }
  const int64_t n = static_cast<int64_t>(res.input_ids.size());
  ArRequest req;
  req.input_ids = ids_tensor(res.input_ids, dev_);
  req.position_ids = at::arange(n, at::TensorOptions().dtype(at::kLong).device(dev_)).view({1, 1, n});
  req.decode_positions = [&](int64_t k) {
    return at::full({1, 1, 1}, n + k, at::TensorOptions().dtype(at::kLong).device(dev_));
  };
  req.prefill_extra.push_back(M ? res.image_embeds.to(dtype_)
                                : at::zeros({0, hidden_}, at::TensorOptions().dtype(dtype_).device(dev_)));
  req.max_new_tokens = max_new_tokens_;
  req.teacher = hooks.teacher;
  req.sample_logits = hooks.sample_logits.defined() ? hooks.sample_logits.view({-1, vocab_}) : at::Tensor();
  req.on_logits = hooks.on_logits;
  req.on_token = hooks.on_token;
  TokenSampler sampler(sampling_, dev_, seed);
  res.tokens = ar_generate(text_encoder, req, sampler, res.stats);
  // batch_decode(generated, skip_special_tokens=True): with a teacher the fed tokens are the ones decoded.
  const std::vector<int64_t>& decoded = hooks.teacher ? *hooks.teacher : res.tokens;
  const std::vector<int32_t> ids(decoded.begin(), decoded.end());
  res.text = tokenizer_.decode(ids, true, c_.clean_up_tokenization_spaces);
  if (res.text.find_first_not_of(" \t\r\n") == std::string::npos) {
    res.status = fmt::format("fallback: the upsampler answered with no text ({} tokens)", res.tokens.size());
    res.text = instruction;
  }
  return res;
}

}  // namespace dg
