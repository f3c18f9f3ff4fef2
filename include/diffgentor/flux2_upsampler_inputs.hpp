#pragma once
/// FLUX.2-dev prompt upsampling, the torch-free half (docs/enhancement.md, "FLUX.2-dev upsampler"): the
/// manifest constant `upsampler`, the row's images made into the one image Mistral sees, the Pixtral image
/// processor's resize and pixels, its token layout, the vision tower's 2-D RoPE rows and the patch merger's
/// gather order, and the chat text. Ports diffusers 0.40 pipeline_flux2.py (`upsample_prompt`, `format_input`,
/// `_validate_and_process_images`), image_processor.py (`concatenate_images`, `_resize_if_exceeds_area`) and
/// transformers 5.16 pixtral (image_processing_pil_pixtral.get_resize_output_image_size,
/// PixtralProcessor.replace_image_token, PixtralRotaryEmbedding) and mistral3 (Mistral3PatchMerger).
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffgentor/image.hpp"

namespace dg {

/// torchscript/manifest.json constants.upsampler, written by `export_bundle --with_upsampler`.
struct UpsamplerConstants {
  std::string system_t2i, system_i2i;  ///< SYSTEM_MESSAGE_UPSAMPLING_T2I / _I2I
  /// The chat template's literal pieces: t2i = {a, b, c} renders a + SYSTEM + b + TEXT + c; i2i = {a, b, c, d}
  /// renders a + SYSTEM + b + IMAGE + c + TEXT + d, IMAGE being the expanded image tokens.
  std::vector<std::string> template_t2i, template_i2i;
  bool add_special_tokens = false;  ///< false when the rendering starts with the BOS string
  std::string image_token, image_break_token, image_end_token;
  int64_t image_token_id = 0;
  int patch_size = 14, spatial_merge_size = 2, longest_edge = 1540;
  float rescale_factor = 1.0f / 255.0f;
  std::array<float, 3> image_mean{}, image_std{};
  double vision_rope_theta = 10000.0;
  int vision_head_dim = 64, vision_max_patches_per_side = 110;
  int64_t max_image_area = 768 * 768;  ///< UPSAMPLING_MAX_IMAGE_SIZE
  int max_length = 2048;               ///< apply_chat_template's truncation length
  int max_new_tokens = 512;
  double temperature = 0.15;         ///< upsample_prompt's default
  nlohmann::json generation_config;  ///< the text encoder's GenerationConfig (SamplingConfig::from_json)
  bool clean_up_tokenization_spaces =
      false;  ///< whether batch_decode's clean-up applies (not for BPE in transformers 5)

  /// Throws std::invalid_argument naming `origin` and the missing or malformed field.
  static UpsamplerConstants from_json(const nlohmann::json& j, const std::string& origin);
};

/// Flux2ImageProcessor.concatenate_images: side by side on a white canvas as high as the tallest, each image
/// centred vertically (top offset (H - h) / 2, floored). One image is returned as it is.
Image concatenate_images(const std::vector<Image>& images);

/// Flux2ImageProcessor._resize_if_exceeds_area: above `max_area` pixels, LANCZOS to int(w·s) x int(h·s) with
/// s = sqrt(max_area / (w·h)); otherwise unchanged.
Image cap_image_area(const Image& image, int64_t max_area);

/// Pixtral's get_resize_output_image_size: scaled down (floor) to fit `longest_edge` on both sides, then each
/// side rounded up to a multiple of `unit` (patch · merge). Returns (height, width).
std::pair<int, int> pixtral_resize_size(int height, int width, int longest_edge, int unit);

/// The image as the vision component takes it: BICUBIC to the Pixtral size (when it differs), then
/// (x · rescale - mean) / std in float32, channel-major: [3, H, W]. `height`/`width` receive H and W.
std::vector<float> pixtral_pixels(const Image& image, const UpsamplerConstants& c, int& height, int& width);

/// PixtralProcessor.replace_image_token for an image of grid_h x grid_w merged tokens: per row grid_w image
/// tokens and a break token, the last break replaced by the end token.
std::string pixtral_image_tokens(int grid_h, int grid_w, const UpsamplerConstants& c);

/// PixtralRotaryEmbedding rows for a gh x gw patch grid: patch (r, c) has frequency k < D/4 equal to
/// r · f(2k) and D/4 + k equal to c · f(2k + 1), f(i) = 1 / theta^(2i / D) in float32, the half repeated;
/// cos and sin [gh · gw, D] row-major.
void pixtral_rope(int gh, int gw, int head_dim, double theta, std::vector<float>& cos, std::vector<float>& sin);

/// Mistral3PatchMerger's unfold as a gather: merged token j (row-major over the (gh/m) x (gw/m) grid) takes the
/// patches of its m x m block in kernel order (ki, kj): [(gh/m)(gw/m), m·m] patch indices.
std::vector<int64_t> pixtral_merge_index(int gh, int gw, int m);

/// The chat text of format_input + apply_chat_template: the i2i system message and layout with an image
/// (`image_tokens` non-empty), else t2i; every "[IMG]" removed from the instruction first.
std::string upsampler_prompt(const UpsamplerConstants& c, const std::string& instruction,
                             const std::string& image_tokens);

}  // namespace dg
