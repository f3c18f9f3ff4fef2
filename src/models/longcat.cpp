// LongCat-Image-Edit (LongCatImageEditPipeline, type longcat) on TorchScript bundles. Orchestration
// ported from diffusers 58eb52c0 pipeline_longcat_image_edit.py (docs/models/longcat.md,
// "Upstream behaviour"; docs/bundle-format.md, "longcat"):
//   size = calculate_dimensions(1024^2) rounded UP to 16 -> the VLM sees a half-size copy -> prompt
//   split at quote pairs, quoted spans tokenised one character at a time -> 512 user tokens padded in
//   the middle of the template (masked in the LM, kept in the conditioning) -> hidden states from
//   <|vision_start|> to before the suffix -> (z - shift) * scale latents, 3-D float ids with modality
//   1 (noise) / 2 (reference) offset by the text length -> plain CFG against the negative prompt
//   encoded with the same image.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/script.h>

#include <chrono>
#include <cmath>
#include <regex>

#include "longcat.hpp"

#include "diffgentor/bundle_pipeline.hpp"
#include "diffgentor/latents.hpp"
#include "diffgentor/qwen_vl.hpp"
#include "diffgentor/resize.hpp"
#include "diffgentor/scheduler.hpp"
#include "diffgentor/tokenizer.hpp"

namespace dg {

namespace {

const char* kPrefix =
    "<|im_start|>system\nAs an image editing expert, first analyze the content and attributes of the input image(s). "
    "Then, based on the user's editing instructions, clearly and precisely determine how to modify the given "
    "image(s), ensuring that only the specified parts are altered and all other aspects remain consistent with the "
    "original(s).<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>";
const char* kSuffix = "<|im_end|>\n<|im_start|>assistant\n";
// The reference and the output at about 1024^2 pixels (LongCatImageEditPipeline's calculate_dimensions target).
constexpr double kImageArea = 1024.0 * 1024.0;
// LongCatImageEditPipeline.tokenizer_max_length: the user tokens are truncated to it and padded up to it.
constexpr std::size_t kUserTokens = 512;

std::size_t utf8_len(unsigned char c) { return c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1; }

}  // namespace

std::vector<std::pair<std::string, bool>> longcat_split_quotation(const std::string& prompt) {
  // Apostrophes inside words (don't, it's) are not quotes: hide them while splitting.
  const std::string hidden = "\xEE\x80\x80";  // U+E000, a private-use character
  std::string text;
  static const std::regex word_quote("[a-zA-Z]+'[a-zA-Z]+");
  std::size_t last = 0;
  for (auto it = std::sregex_iterator(prompt.begin(), prompt.end(), word_quote); it != std::sregex_iterator(); ++it) {
    const auto pos = static_cast<std::size_t>(it->position());
    const std::string word = it->str();
    text +=
        prompt.substr(last, pos - last) + word.substr(0, word.find('\'')) + hidden + word.substr(word.find('\'') + 1);
    last = pos + word.size();
  }
  text += prompt.substr(last);
  // Quote pairs '…', "…", ‘…’, “…”; a span holds neither of its own quote characters.
  static const std::vector<std::pair<std::string, std::string>> pairs = {
      {"'", "'"}, {"\"", "\""}, {"\xE2\x80\x98", "\xE2\x80\x99"}, {"\xE2\x80\x9C", "\xE2\x80\x9D"}};
  std::vector<std::pair<std::string, bool>> out;
  auto restore = [&](std::string s) {
    for (auto p = s.find(hidden); p != std::string::npos; p = s.find(hidden)) s.replace(p, hidden.size(), "'");
    return s;
  };
  std::size_t i = 0, plain = 0;
  while (i < text.size()) {
    bool matched = false;
    for (const auto& [open, close] : pairs) {
      if (text.compare(i, open.size(), open) != 0) continue;
      std::size_t j = i + open.size();
      bool bad = false;
      while (j < text.size() && text.compare(j, close.size(), close) != 0) {
        if (text.compare(j, open.size(), open) == 0) {
          bad = true;
          break;
        }
        j += utf8_len(static_cast<unsigned char>(text[j]));
      }
      if (bad || j >= text.size()) continue;
      if (i > plain) out.emplace_back(restore(text.substr(plain, i - plain)), false);
      out.emplace_back(restore(text.substr(i, j + close.size() - i)), true);
      i = plain = j + close.size();
      matched = true;
      break;
    }
    if (!matched) i += utf8_len(static_cast<unsigned char>(text[i]));
  }
  if (plain < text.size()) out.emplace_back(restore(text.substr(plain)), false);
  return out;
}

std::vector<int32_t> longcat_prompt_tokens(const Tokenizer& tokenizer, const std::string& prompt) {
  std::vector<int32_t> ids;
  for (const auto& [part, quoted] : longcat_split_quotation(prompt)) {
    if (!quoted) {
      const auto t = tokenizer.encode(part);
      ids.insert(ids.end(), t.begin(), t.end());
      continue;
    }
    for (std::size_t k = 0; k < part.size();) {  // one character at a time
      const std::size_t n = utf8_len(static_cast<unsigned char>(part[k]));
      const auto t = tokenizer.encode(part.substr(k, n));
      ids.insert(ids.end(), t.begin(), t.end());
      k += n;
    }
  }
  return ids;
}

std::pair<int, int> longcat_dimensions(double target_area, double ratio) {
  double w = std::sqrt(target_area * ratio), h = w / ratio;
  auto up16 = [](double x) { return std::fmod(x, 16.0) == 0.0 ? x : (std::floor(x / 16.0) + 1) * 16.0; };
  return {static_cast<int>(up16(w)), static_cast<int>(up16(h))};
}

namespace {

class LongCat : public BundlePipeline {
 public:
  explicit LongCat(const PipelineConfig& cfg)
      : BundlePipeline(cfg), tokenizer_(Tokenizer::from_file(cfg.bundle_dir + "/tokenizer/tokenizer.json")) {
    const auto& te = bundle_.config("text_encoder/config.json");
    image_token_id_ = te.at("image_token_id").get<int32_t>();
    vision_ = QwenVisionConfig::from_json(bundle_.config("text_processor/preprocessor_config.json"), te);
    const auto& vae = bundle_.config("vae/config.json");
    scale_ = vae.at("scaling_factor").get<double>();
    shift_ = vae.value("shift_factor", 0.0);
    channels_ = vae.value("latent_channels", 16);
    pad_id_ = pad_token_id(tokenizer_, "tokenizer");
    scheduler_ = SchedulerConfig::from_json(bundle_.config("scheduler/scheduler_config.json"));
  }

  void run(const EditRequest& r, EditResult& result, StageClock& clock) override {
    const at::Device& dev = dev_;
    const Image& src = r.images.front();
    const auto [width, height] = longcat_dimensions(kImageArea, double(src.width) / src.height);
    const Image vae_img = resize_pil(src, width, height, ResampleFilter::Lanczos);
    const Image vlm_img = resize_pil(vae_img, width / 2, height / 2, ResampleFilter::Lanczos);
    const VisionInputs vis = process_qwen_images({vlm_img}, vision_);
    const int64_t P = vis.patches();
    clock.lap("preprocess");
    const at::Tensor image_embeds =
        call("vision_encoder", {at::tensor(vis.pixel_values).view({P, vis.row_size}).to(dev),
                                at::tensor(vis.vision_pos).view({P, 2}).to(dev), at::tensor(vis.window_seg).to(dev),
                                at::tensor(vis.image_seg).to(dev)})
            .toTensor();
    clock.lap("vision_encoder");
    const at::Tensor embeds = encode(r.instruction, vis, image_embeds);
    const bool cfg = r.params.guidance > 1.0;
    at::Tensor negative;
    if (cfg) negative = encode(r.params.negative_prompt.value_or(""), vis, image_embeds);
    clock.lap("text_encoder");

    const at::Tensor z = call("vae_encoder", {image_to_tensor(vae_img, dtype_, device_)}).toTensor();
    const at::Tensor ref = pack_latents((z - shift_) * scale_);
    tap("prompt_embeds", embeds);
    if (cfg) tap("negative_prompt_embeds", negative);
    tap("image_latents", ref);
    clock.lap("vae_encode");

    const int64_t h = height / 8, w = width / 8, L = embeds.size(1);
    at::Tensor latents = pack_latents(seeded_noise({1, channels_, h, w}, r.seed, dtype_, device_));
    const int64_t Sn = latents.size(1);
    std::vector<float> img_ids, txt_ids;
    for (float modality : {1.0f, 2.0f})
      for (int64_t row = 0; row < h / 2; ++row)
        for (int64_t col = 0; col < w / 2; ++col)
          img_ids.insert(img_ids.end(), {modality, float(L + row), float(L + col)});
    for (int64_t i = 0; i < L; ++i) txt_ids.insert(txt_ids.end(), {0.0f, float(i), float(i)});
    const at::Tensor img = at::tensor(img_ids).view({2 * Sn, 3}).to(dev),
                     txt = at::tensor(txt_ids).view({L, 3}).to(dev);

    const Schedule sched =
        flow_match_schedule(scheduler_, r.params.steps, compute_mu(MuRule::Linear, scheduler_, Sn, r.params.steps));
    Branches dit;
    dit.cfg = cfg;
    dit.scale = r.params.guidance;
    dit.inputs = [&](int branch, const at::Tensor& x, float t) -> std::vector<c10::IValue> {
      return {at::cat({x, ref}, 1), branch ? negative : embeds, dit_timestep_tensor(t, dtype_, dev), img, txt};
    };
    dit.velocity = [&](const at::Tensor& out) { return out.slice(1, 0, Sn); };
    latents = denoise_cfg(latents, sched, dit, result);
    clock.lap("denoise");
    const at::Tensor zz = unpack_latents(latents, h, w, channels_) / scale_ + shift_;
    result.image = tensor_to_image(call("vae_decoder", {zz}).toTensor());
    clock.lap("vae_decode");
  }

 private:
  // prefix (image pads expanded) + 512 user tokens (quote-aware, padded, masked) + suffix; the hidden
  // states from <|vision_start|> to before the suffix.
  at::Tensor encode(const std::string& prompt, const VisionInputs& vis, const at::Tensor& image_embeds) {
    std::vector<int32_t> user = longcat_prompt_tokens(tokenizer_, prompt);
    if (user.size() > kUserTokens) user.resize(kUserTokens);  // upstream truncates too (with a warning)
    std::vector<int32_t> ids, mask;
    for (int32_t id : tokenizer_.encode(kPrefix)) {
      if (id == image_token_id_)
        ids.insert(ids.end(), static_cast<std::size_t>(vis.image_tokens(0, vision_.merge_size)), id);
      else
        ids.push_back(id);
    }
    const auto vision_start = tokenizer_.token_to_id("<|vision_start|>");
    const auto prefix_len = static_cast<int64_t>(std::find(ids.begin(), ids.end(), *vision_start) - ids.begin());
    mask.assign(ids.size(), 1);
    ids.insert(ids.end(), user.begin(), user.end());
    mask.insert(mask.end(), user.size(), 1);
    ids.insert(ids.end(), kUserTokens - user.size(), pad_id_);
    mask.insert(mask.end(), kUserTokens - user.size(), 0);
    const auto suffix = tokenizer_.encode(kSuffix);
    ids.insert(ids.end(), suffix.begin(), suffix.end());
    mask.insert(mask.end(), suffix.size(), 1);
    const auto L = static_cast<int64_t>(ids.size());
    const at::Device& dev = dev_;
    const at::Tensor out =
        call("text_encoder", {at::tensor(std::vector<int64_t>(ids.begin(), ids.end())).view({1, L}).to(dev),
                              at::tensor(std::vector<int64_t>(mask.begin(), mask.end())).view({1, L}).to(dev),
                              at::tensor(mrope_position_ids(ids, image_token_id_, vis, vision_.merge_size, &mask))
                                  .view({3, 1, L})
                                  .to(dev),
                              image_embeds})
            .toTensor();
    return out.slice(1, prefix_len, L - static_cast<int64_t>(suffix.size())).contiguous();
  }

  Tokenizer tokenizer_;
  int32_t image_token_id_ = 0, pad_id_ = 0;
  QwenVisionConfig vision_;
  double scale_ = 1.0, shift_ = 0.0;
  int64_t channels_ = 16;
  SchedulerConfig scheduler_;
};

}  // namespace

std::unique_ptr<Pipeline> make_longcat_pipeline(const PipelineConfig& config) {
  return std::make_unique<LongCat>(config);
}

}  // namespace dg
