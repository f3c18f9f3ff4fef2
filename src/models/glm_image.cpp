// GLM-Image (GlmImagePipeline, type glm_image) on TorchScript bundles. Orchestration ported from diffusers
// 58eb52c0 pipelines/glm_image/pipeline_glm_image.py and transformers models/glm_image (docs/models/glm_image.md,
// "Upstream behaviour"; docs/bundle-format.md, "glm_image"):
//   references snapped to multiples of 32 -> glyph texts through ByT5 -> each reference's VQ ids
//   (image_tokenizer) -> AR prompt (template pieces from the manifest, grid string, BOS) -> prefill + sampled
//   decode of the target grid's codes (src/engine/ar_engine.cpp) -> x2 nearest prior ids -> reference K/V
//   (transformer.write_kv, t = 0) -> Euler with plain CFG: cond reads the references, uncond drops the prior
//   and skips them -> decode.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/script.h>

#include <algorithm>
#include <mutex>

#include "diffgentor/ar_engine.hpp"
#include "diffgentor/bundle_pipeline.hpp"
#include "diffgentor/glm_image_inputs.hpp"
#include "diffgentor/latents.hpp"
#include "diffgentor/resize.hpp"
#include "diffgentor/sampling.hpp"
#include "diffgentor/scheduler.hpp"
#include "diffgentor/tokenizer.hpp"

namespace dg {

namespace {

// diffusers' max_sequence_length for the glyph encoder.
constexpr std::size_t kGlyphMaxIds = 2048;

// The AR prompt layout the exporter renders from the processor's chat template (manifest constant
// "ar_prompt"): prefix, one image block per reference (holding the image token once), text prefix, the
// instruction, text suffix. The processor then appends "<sop>{h} {w}<eop>" and the BOS string.
struct ArTemplate {
  std::string prefix, image_block, text_prefix, text_suffix;
  bool add_special_tokens = false;
};

std::vector<int64_t> upsample_ids_x2(const std::vector<int64_t>& ids, int64_t h, int64_t w) {
  std::vector<int64_t> out(static_cast<std::size_t>(4 * h * w));
  for (int64_t r = 0; r < 2 * h; ++r)
    for (int64_t c = 0; c < 2 * w; ++c)
      out[static_cast<std::size_t>(r * 2 * w + c)] = ids[static_cast<std::size_t>((r / 2) * w + c / 2)];
  return out;
}

std::string text_of(const nlohmann::json& j, const char* key, const std::string& origin) {
  if (!j.contains(key) || !j[key].is_string()) throw BundleError(fmt::format("{}: no string {}", origin, key));
  return j[key].get<std::string>();
}

int64_t int_of(const nlohmann::json& j, const char* key, const std::string& origin) {
  if (!j.contains(key) || !j[key].is_number_integer()) throw BundleError(fmt::format("{}: no integer {}", origin, key));
  return j[key].get<int64_t>();
}

class GlmImage : public BundlePipeline {
 public:
  explicit GlmImage(const PipelineConfig& cfg)
      : BundlePipeline(cfg), tokenizer_(Tokenizer::from_file(cfg.bundle_dir + "/processor/tokenizer.json")) {
    const std::string vle = "vision_language_encoder/config.json";
    const auto& lm = bundle_.config(vle);
    start_id_ = int_of(lm, "image_start_token_id", vle);
    end_id_ = int_of(lm, "image_end_token_id", vle);
    codebook_ = int_of(lm.value("vq_config", nlohmann::json::object()), "num_embeddings", vle + " vq_config");
    const auto& tc = bundle_.config("processor/tokenizer_config.json");
    const std::string tco = "processor/tokenizer_config.json";
    grid_bos_ = text_of(tc, "grid_bos_token", tco);
    grid_eos_ = text_of(tc, "grid_eos_token", tco);
    bos_ = text_of(tc, "bos_token", tco);
    const std::string image_token = text_of(tc, "image_token", tco);
    const auto id = tokenizer_.token_to_id(image_token);
    if (!id) throw BundleError(fmt::format("processor/tokenizer.json has no token {}", image_token));
    image_token_id_ = *id;
    try {
      processor_ = GlmProcessorConfig::from_json(bundle_.config("processor/preprocessor_config.json"));
      sampling_ = SamplingConfig::from_json(bundle_.config("vision_language_encoder/generation_config.json"),
                                            bundle_.dir() + "/vision_language_encoder/generation_config.json");
      timesteps_ = glm_timesteps_from_name(model_option("timesteps"));
    } catch (const std::invalid_argument& e) {
      throw BundleError(e.what());
    }
    sampling_.do_sample = true;  // generate_prior_tokens passes do_sample=True
    if (sampling_.eos_token_ids.empty()) sampling_.eos_token_ids.push_back(end_id_);
    const auto& tpl = bundle_.constant("ar_prompt");
    tpl_.prefix = tpl.value("prefix", "");
    tpl_.image_block = tpl.value("image_block", "");
    tpl_.text_prefix = tpl.value("text_prefix", "");
    tpl_.text_suffix = tpl.value("text_suffix", "");
    tpl_.add_special_tokens = tpl.value("add_special_tokens", false);
    if (tpl_.image_block.find(image_token) == std::string::npos)
      throw BundleError(fmt::format("manifest constant ar_prompt.image_block '{}' does not hold the image token {}",
                                    tpl_.image_block, image_token));
    const auto& dit = bundle_.config("transformer/config.json");
    dit_layers_ = int_of(dit, "num_layers", "transformer/config.json");
    dit_heads_ = int_of(dit, "num_attention_heads", "transformer/config.json");
    dit_head_dim_ = int_of(dit, "attention_head_dim", "transformer/config.json");
    const auto& vae = bundle_.config("vae/config.json");
    latents_mean_ = at::tensor(vae.at("latents_mean").get<std::vector<float>>()).view({1, -1, 1, 1}).to(dev_, dtype_);
    latents_std_ = at::tensor(vae.at("latents_std").get<std::vector<float>>()).view({1, -1, 1, 1}).to(dev_, dtype_);
    scheduler_ = SchedulerConfig::from_json(bundle_.config("scheduler/scheduler_config.json"));
    notice(fmt::format("glm_image: AR sampling {} (vision_language_encoder/generation_config.json), DiT timesteps {}",
                       sampling_.describe(), timesteps_ == GlmTimesteps::Unshifted ? "unshifted" : "shifted"));
  }

  void run(const EditRequest& r, EditResult& result, StageClock& clock) override {
    if (r.params.negative_prompt && !r.params.negative_prompt->empty())
      std::call_once(negative_note_, [this] {
        notice("glm_image: negative_prompt is ignored (GlmImagePipeline always uses \"\" as the negative)");
      });
    // References snapped so that the AR grid and the DiT grid agree (docs/models/glm_image.md, "Deviations from
    // upstream").
    std::vector<Image> refs;
    for (const Image& img : r.images) {
      const auto [w, h] = glm_reference_size(img.width, img.height, processor_);
      refs.push_back(w == img.width && h == img.height ? img : resize_pil(img, w, h, ResampleFilter::Lanczos));
    }
    // Output: the first reference's snapped size, or the requested one floored to 32 (the AR processor's unit; the
    // DiT grid must match its grid). A requested size obeys the references' bounds: the prior's token budget and
    // the glyph/position tables were sized for them.
    const auto [rw, rh] = resolve_output_size(*spec_, r.params, refs.front().width, refs.front().height);
    if (r.params.width || r.params.height) {
      if (std::max(rw, rh) > processor_.longest_edge())
        throw InputError(
            fmt::format("requested output {}x{}: GLM-Image's longest side is {} px (the processor's "
                        "max_pixels)",
                        rw, rh, processor_.longest_edge()));
      if (std::max(rw, rh) > 4 * std::min(rw, rh))
        throw InputError(fmt::format("requested output {}x{}: GLM-Image needs an aspect ratio of at most 4", rw, rh));
    }
    const int64_t height = rh, width = rw;
    const ArGrid target{height / 32, width / 32};
    clock.lap("preprocess");

    const at::Tensor glyph = glyph_embeds(r.instruction);
    const bool cfg = r.params.guidance > 1.0;
    at::Tensor negative;
    if (cfg) negative = glyph_embeds("");
    tap("prompt_embeds", glyph);
    if (cfg) tap("negative_prompt_embeds", negative);
    clock.lap("glyph_encoder");

    // Each reference's VQ codes: the AR prompt's image block and, upsampled x2, its DiT prior.
    std::vector<std::vector<int64_t>> ref_codes;
    std::vector<ArGrid> grids;
    for (const Image& ref : refs) {
      const GlmPatches p = glm_process_image(ref, processor_);
      const int64_t P = p.patches(), row = static_cast<int64_t>(p.pixel_values.size()) / P;
      const at::Tensor codes =
          call("image_tokenizer", {f32_tensor(p.pixel_values, {P, row}, device_),
                                   i64_tensor(p.patch_pos, {P, 2}, device_), i64_tensor(p.patch_grid, {P, 2}, device_)})
              .toTensor()
              .to(at::kCPU)
              .contiguous();
      ref_codes.emplace_back(codes.data_ptr<int64_t>(), codes.data_ptr<int64_t>() + P);
      grids.push_back({p.grid_h, p.grid_w});
    }
    tap("ref_image_tokens", at::tensor(flatten(ref_codes)));
    clock.lap("image_tokenizer");

    const std::vector<int64_t> prior = ar_prior(r, ref_codes, grids, target, result);
    clock.lap("ar");

    // Reference K/V: one write pass per reference at t = 0, concatenated along the token axis.
    std::vector<at::Tensor> ks, vs;
    std::vector<at::Tensor> ref_latents;
    for (std::size_t i = 0; i < refs.size(); ++i) {
      const at::Tensor z =
          (call("vae_encoder", {image_to_tensor(refs[i], dtype_, device_)}).toTensor() - latents_mean_) / latents_std_;
      ref_latents.push_back(to_tokens(z));
      const int64_t hr = z.size(2) / 2, wr = z.size(3) / 2;
      const auto ids = upsample_ids_x2(ref_codes[i], grids[i].h, grids[i].w);
      auto [cos, sin] = rope(hr, wr);
      const auto kv = call("transformer",
                           {z, i64_tensor(ids, {1, hr * wr}, device_),
                            f32_tensor({float(refs[i].height), float(refs[i].width)}, {1, 2}, device_), cos, sin},
                           "write_kv")
                          .toTuple();
      ks.push_back(kv->elements()[0].toTensor());
      vs.push_back(kv->elements()[1].toTensor());
    }
    tap("image_latents", at::cat(ref_latents, 1));  // [1, sum h_r w_r, 16], references in order
    const at::Tensor kv_k = at::cat(ks, 2), kv_v = at::cat(vs, 2);
    const at::Tensor kv_none = at::zeros({dit_layers_, 1, 0, dit_heads_, dit_head_dim_}, kv_k.options());
    clock.lap("write_kv");

    const int64_t h = height / 16, w = width / 16;
    const at::Tensor prior_ids = i64_tensor(prior, {1, h * w}, device_);
    tap("prior_token_ids", prior_ids);
    const auto flags = at::TensorOptions().dtype(at::kBool).device(dev_);
    const at::Tensor keep = at::zeros({1, h * w}, flags), drop = at::ones({1, h * w}, flags);
    const at::Tensor size = f32_tensor({float(height), float(width)}, {1, 2}, device_);
    const at::Tensor crop = at::zeros({1, 2}, at::TensorOptions().dtype(at::kFloat).device(dev_));
    auto [cos, sin] = rope(h, w);
    const Schedule sched = glm_image_schedule(scheduler_, r.params.steps, h * w, timesteps_);
    const at::Tensor noise = seeded_noise({1, latents_mean_.size(1), height / 8, width / 8}, r.seed, dtype_, device_);
    Branches dit;
    dit.cfg = cfg;
    dit.scale = r.params.guidance;
    dit.inputs = [&](int branch, const at::Tensor& x, float t) -> std::vector<c10::IValue> {
      const bool cond = branch == 0;
      // The DiT is fed the scheduler's timestep minus one (`t.expand(B) - 1`), in float32.
      const at::Tensor ts = at::full({1}, t, crop.options()) - 1.0f;
      return {x.to(dtype_),          cond ? glyph : negative, prior_ids, cond ? keep : drop, ts, size, crop, cos, sin,
              cond ? kv_k : kv_none, cond ? kv_v : kv_none};
    };
    dit.velocity = [](const at::Tensor& out) { return out.to(at::kFloat); };
    const at::Tensor latents = denoise_cfg(noise, sched, dit, result);
    clock.lap("denoise");

    const at::Tensor z = latents.to(dtype_) * latents_std_ + latents_mean_;
    result.image = tensor_to_image(call("vae_decoder", {z}).toTensor());
    clock.lap("vae_decode");
  }

 private:
  static std::vector<int64_t> flatten(const std::vector<std::vector<int64_t>>& parts) {
    std::vector<int64_t> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  }

  // The glyph encoder's mask-1 rows of every glyph sequence, in order: [1, sum L, Dg].
  at::Tensor glyph_embeds(const std::string& prompt) {
    const GlyphBatch b = glm_glyph_batch(prompt, kGlyphMaxIds);
    const at::Tensor hidden = call("glyph_encoder", {i64_tensor(b.ids, {b.rows, b.cols}, device_),
                                                     i64_tensor(b.mask, {b.rows, b.cols}, device_)})
                                  .toTensor();
    std::vector<int64_t> rows;
    for (int64_t k = 0; k < b.rows * b.cols; ++k)
      if (b.mask[static_cast<std::size_t>(k)]) rows.push_back(k);
    return hidden.reshape({b.rows * b.cols, -1})
        .index_select(0, i64_tensor(rows, {static_cast<int64_t>(rows.size())}, device_))
        .unsqueeze(0);
  }

  std::pair<at::Tensor, at::Tensor> rope(int64_t h, int64_t w) const {
    std::vector<float> cos, sin;
    glm_dit_rope(h, w, dit_head_dim_, cos, sin);
    return {f32_tensor(cos, {h * w, dit_head_dim_}, device_), f32_tensor(sin, {h * w, dit_head_dim_}, device_)};
  }

  // The AR prompt ids with each reference's image block expanded to its codes, then prefill + decode of the
  // target grid; returns the target's codes upsampled x2 to the DiT grid [(2h)(2w)].
  std::vector<int64_t> ar_prior(const EditRequest& r, const std::vector<std::vector<int64_t>>& ref_codes,
                                const std::vector<ArGrid>& grids, ArGrid target, EditResult& result) {
    std::string text = tpl_.prefix;
    for (std::size_t i = 0; i < ref_codes.size(); ++i) text += tpl_.image_block;
    text += tpl_.text_prefix + r.instruction + tpl_.text_suffix;
    text += fmt::format("{}{} {}{}{}", grid_bos_, target.h, target.w, grid_eos_, bos_);
    std::vector<int64_t> ids;
    std::size_t image = 0;
    for (int32_t id : tokenizer_.encode(text, tpl_.add_special_tokens)) {
      if (id != image_token_id_) {
        ids.push_back(id);
        continue;
      }
      if (image >= ref_codes.size())
        throw InputError(
            fmt::format("the instruction holds the image token; GLM-Image takes {} image(s) here", ref_codes.size()));
      ids.insert(ids.end(), ref_codes[image].begin(), ref_codes[image].end());
      ++image;
    }
    if (image != ref_codes.size())
      throw BundleError(
          fmt::format("the AR prompt holds {} image token(s) for {} reference(s); check the manifest "
                      "constant ar_prompt",
                      image, ref_codes.size()));
    std::vector<ArGrid> all = grids;
    all.push_back(target);
    const ArPositions pos = glm_ar_positions(ids, start_id_, end_id_, all);
    const int64_t n = static_cast<int64_t>(ids.size()), needed = target.h * target.w;
    tap("ar_input_ids", at::tensor(ids));
    tap("ar_position_ids", at::tensor(pos.prefill).view({3, n}));

    ArRequest req;
    req.input_ids = i64_tensor(ids, {1, n}, device_);
    req.position_ids = i64_tensor(pos.prefill, {3, 1, n}, device_);
    req.decode_positions = [&](int64_t k) { return i64_tensor(pos.decode_column(k), {3, 1, 1}, device_); };
    req.max_new_tokens = needed;
    // Parity (docs/parity.md): a reference run's tokens fed back (teacher forcing, every step's logits tapped), and
    // prior codes that replace the sampled ones.
    const at::Tensor teacher_in = stage_input("ar_teacher_tokens"), prior_in = stage_input("prior_codes");
    std::vector<int64_t> teacher;
    if (teacher_in.defined()) {
      const at::Tensor t = teacher_in.to(at::kCPU, at::kLong).contiguous();
      teacher.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
      req.teacher = &teacher;
    }
    std::vector<at::Tensor> step_logits;
    req.on_logits = [&](int64_t step, const at::Tensor& logits) {
      if (step == 0) tap("ar_logits_0", logits);
      if (req.teacher) step_logits.push_back(logits);
    };
    req.on_token = [this](int64_t k, int64_t n) { report("ar", k, n); };
    TokenSampler sampler(sampling_, dev_, r.seed);
    ArStats stats;
    std::vector<int64_t> codes = [&] {
      const Residency::Lease lease = resident({"ar_lm"});
      return ar_generate(ar_lm_, req, sampler, stats);
    }();
    if (req.teacher) {
      tap("ar_logits", at::cat(step_logits, 0));
      tap("ar_sampled", at::tensor(codes));
    }
    if (prior_in.defined()) {
      const at::Tensor t = prior_in.to(at::kCPU, at::kLong).contiguous();
      codes.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
    }
    result.counters.emplace_back("ar_prefill_tokens", stats.prefill_tokens);
    result.counters.emplace_back("ar_tokens", stats.sampled);
    result.counters.emplace_back("ar_decode_steps", stats.decode_steps);
    result.stage_seconds.emplace_back("ar_prefill", stats.prefill_ms / 1000.0);
    result.stage_seconds.emplace_back("ar_decode", stats.decode_ms / 1000.0);
    // Upstream passes an early EOS or an out-of-codebook id on and fails later in the DiT; here the row fails.
    for (std::size_t k = 0; k < codes.size(); ++k)
      if (codes[k] < 0 || codes[k] >= codebook_)
        throw RepeatableError(
            fmt::format("the AR prior sampled token {} ({}) at code {} of {}; GLM-Image needs {} codebook codes "
                        "(0..{}); try another seed",
                        codes[k],
                        std::find(sampling_.eos_token_ids.begin(), sampling_.eos_token_ids.end(), codes[k]) !=
                                sampling_.eos_token_ids.end()
                            ? "end of image"
                            : "not a codebook code",
                        k + 1, needed, needed, codebook_ - 1));
    if (static_cast<int64_t>(codes.size()) != needed)
      throw RepeatableError(fmt::format("the AR prior stopped after {} of {} codes", codes.size(), needed));
    return upsample_ids_x2(codes, target.h, target.w);
  }

  Tokenizer tokenizer_;
  int64_t start_id_ = 0, end_id_ = 0, codebook_ = 0;
  int32_t image_token_id_ = 0;
  std::string grid_bos_, grid_eos_, bos_;
  ArTemplate tpl_;
  GlmProcessorConfig processor_;
  SamplingConfig sampling_;
  GlmTimesteps timesteps_ = GlmTimesteps::Unshifted;
  int64_t dit_layers_ = 0, dit_heads_ = 0, dit_head_dim_ = 0;
  at::Tensor latents_mean_, latents_std_;
  SchedulerConfig scheduler_;
  std::once_flag negative_note_;
  torch::jit::Module ar_lm_ = component("ar_lm");
};

}  // namespace

std::unique_ptr<Pipeline> make_glm_image_pipeline(const PipelineConfig& config) {
  return std::make_unique<GlmImage>(config);
}

}  // namespace dg
