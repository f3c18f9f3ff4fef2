#pragma once
// FLUX.2-dev's prompt upsampler on the bundle's own Mistral (docs/enhancement.md, "FLUX.2-dev upsampler"):
// Flux2Pipeline.upsample_prompt (diffusers 0.40) on the AR engine. The row's images are concatenated and capped
// to 768² pixels, processed as PixtralProcessor does and run through `upsampler_vision`; the chat text is
// tokenized, the image rows get the vision embeddings in `text_encoder.prefill`, and tokens are sampled with the
// row seed (temperature 0.15, the model's generation config otherwise) until EOS or 512 new tokens, then decoded
// with special tokens skipped.
#include <ATen/core/Tensor.h>
#include <torch/csrc/jit/api/module.h>

#include <functional>
#include <string>
#include <vector>

#include "diffgentor/ar_engine.hpp"
#include "diffgentor/bundle.hpp"
#include "diffgentor/flux2_upsampler_inputs.hpp"
#include "diffgentor/pipeline.hpp"
#include "diffgentor/tokenizer.hpp"

namespace dg {

class Flux2Upsampler {
 public:
  /// Throws BundleError when the bundle lacks the upsampler (naming `export_bundle --with_upsampler`) or its
  /// settings are unusable.
  Flux2Upsampler(const Bundle& bundle, const Tokenizer& tokenizer, const at::Device& device,
                 const PromptUpsampling& settings);
  /// "temperature 0.15, top_k 50, up to 512 new tokens, images capped to 589824 pixels".
  std::string describe() const;

  /// Parity hooks (docs/parity.md): tokens to feed instead of the sampled ones, logits to sample from instead of
  /// the model's ([steps · V], V = the LM's vocabulary), a callback for each step's logits.
  struct Hooks {
    const std::vector<int64_t>* teacher = nullptr;
    at::Tensor sample_logits;
    std::function<void(int64_t step, const at::Tensor& logits)> on_logits;
    std::function<void(int64_t tokens, int64_t max_tokens)> on_token;  ///< progress, after each sampled token
  };
  struct Result {
    std::string text;  ///< the decoded new tokens (special tokens skipped)
    std::string status = "ok";
    std::vector<int64_t> input_ids, tokens;
    at::Tensor image_embeds;       ///< [M, D], undefined without images
    int64_t truncated_tokens = 0;  ///< prompt tokens cut by the 2048-token limit (the instruction's end)
    double vision_ms = 0;          ///< image preparation and the vision component
    ArStats stats;
  };
  /// Rewrites `instruction` for `images` (none: the text-to-image system message). A prompt that cannot be
  /// formed (image tokens cut by the 2048-token limit, or an image token the instruction itself spells) or an
  /// empty answer gives status "fallback: ..." with the original text.
  Result run(torch::jit::Module& text_encoder, torch::jit::Module& vision, const std::string& instruction,
             const std::vector<Image>& images, uint64_t seed, const Hooks& hooks) const;

 private:
  at::Tensor embed_image(torch::jit::Module& vision, const Image& image, int& grid_h, int& grid_w) const;

  const Tokenizer& tokenizer_;
  at::Device dev_;
  at::ScalarType dtype_;
  UpsamplerConstants c_;
  SamplingConfig sampling_;
  int max_new_tokens_ = 512;
  int64_t hidden_ = 0, vocab_ = 0;  ///< the LM's width and vocabulary (text_encoder/config.json)
};

}  // namespace dg
