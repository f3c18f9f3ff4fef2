// FLUX.2-dev prompt upsampling inputs (include/diffgentor/flux2_upsampler_inputs.hpp). Facts from diffusers 0.40
// pipelines/flux2 and transformers 5.16 models/pixtral and models/mistral3, pinned by
// tests/data/flux2_upsampler/goldens.json (tools/goldens/flux2_upsampler_goldens.py).
#include "diffgentor/flux2_upsampler_inputs.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "diffgentor/resize.hpp"

namespace dg {

UpsamplerConstants UpsamplerConstants::from_json(const nlohmann::json& j, const std::string& origin) {
  UpsamplerConstants c;
  try {
    c.system_t2i = j.at("system_t2i");
    c.system_i2i = j.at("system_i2i");
    c.template_t2i = j.at("template_t2i").get<std::vector<std::string>>();
    c.template_i2i = j.at("template_i2i").get<std::vector<std::string>>();
    c.add_special_tokens = j.at("add_special_tokens");
    c.image_token = j.at("image_token");
    c.image_break_token = j.at("image_break_token");
    c.image_end_token = j.at("image_end_token");
    c.image_token_id = j.at("image_token_id");
    c.patch_size = j.at("patch_size");
    c.spatial_merge_size = j.at("spatial_merge_size");
    c.longest_edge = j.at("longest_edge");
    c.rescale_factor = j.at("rescale_factor").get<float>();
    c.image_mean = j.at("image_mean").get<std::array<float, 3>>();
    c.image_std = j.at("image_std").get<std::array<float, 3>>();
    c.vision_rope_theta = j.at("vision_rope_theta");
    c.vision_head_dim = j.at("vision_head_dim");
    c.vision_max_patches_per_side = j.at("vision_max_patches_per_side");
    c.max_image_area = j.at("max_image_area");
    c.max_length = j.at("max_length");
    c.max_new_tokens = j.at("max_new_tokens");
    c.temperature = j.at("temperature");
    c.generation_config = j.at("generation_config");
    c.clean_up_tokenization_spaces = j.at("clean_up_tokenization_spaces");
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(
        fmt::format("{}: constants.upsampler is incomplete or malformed: {}", origin, e.what()));
  }
  if (c.template_t2i.size() != 3 || c.template_i2i.size() != 4)
    throw std::invalid_argument(
        fmt::format("{}: constants.upsampler templates must have 3 (t2i) and 4 (i2i) pieces", origin));
  if (c.patch_size <= 0 || c.spatial_merge_size <= 0 || c.longest_edge <= 0 || c.vision_head_dim % 4 != 0)
    throw std::invalid_argument(
        fmt::format("{}: constants.upsampler has a bad patch, merge, edge or head size", origin));
  return c;
}

Image concatenate_images(const std::vector<Image>& images) {
  if (images.size() == 1) return images.front();
  int width = 0, height = 0;
  for (const Image& img : images) width += img.width, height = std::max(height, img.height);
  Image out{width, height, std::vector<uint8_t>(static_cast<std::size_t>(width) * height * 3, 255)};
  int x = 0;
  for (const Image& img : images) {
    const int y0 = (height - img.height) / 2;
    for (int y = 0; y < img.height; ++y)
      std::copy_n(img.pixel(0, y), static_cast<std::size_t>(img.width) * 3, out.pixel(x, y0 + y));
    x += img.width;
  }
  return out;
}

Image cap_image_area(const Image& image, int64_t max_area) {
  const double area = double(image.width) * image.height;
  if (area <= double(max_area)) return image;
  const double s = std::sqrt(double(max_area) / area);
  return resize_pil(image, static_cast<int>(image.width * s), static_cast<int>(image.height * s),
                    ResampleFilter::Lanczos);
}

std::pair<int, int> pixtral_resize_size(int height, int width, int longest_edge, int unit) {
  const double ratio = std::max(double(height) / longest_edge, double(width) / longest_edge);
  if (ratio > 1) {
    height = static_cast<int>(std::floor(height / ratio));
    width = static_cast<int>(std::floor(width / ratio));
  }
  return {((height - 1) / unit + 1) * unit, ((width - 1) / unit + 1) * unit};
}

std::vector<float> pixtral_pixels(const Image& image, const UpsamplerConstants& c, int& height, int& width) {
  const auto [h, w] =
      pixtral_resize_size(image.height, image.width, c.longest_edge, c.patch_size * c.spatial_merge_size);
  const Image img = h == image.height && w == image.width ? image : resize_pil(image, w, h, ResampleFilter::Bicubic);
  height = h, width = w;
  std::vector<float> out(static_cast<std::size_t>(3) * h * w);
  for (int ch = 0; ch < 3; ++ch)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)  // rescale then normalize, each in float32, as the PIL processor does
        out[(static_cast<std::size_t>(ch) * h + y) * w + x] =
            (static_cast<float>(img.pixel(x, y)[ch]) * c.rescale_factor - c.image_mean[ch]) / c.image_std[ch];
  return out;
}

std::string pixtral_image_tokens(int grid_h, int grid_w, const UpsamplerConstants& c) {
  std::string row;
  for (int x = 0; x < grid_w; ++x) row += c.image_token;
  std::string out;
  for (int y = 0; y < grid_h; ++y) out += row + (y + 1 < grid_h ? c.image_break_token : c.image_end_token);
  return out;
}

void pixtral_rope(int gh, int gw, int head_dim, double theta, std::vector<float>& cos, std::vector<float>& sin) {
  // compute_default_rope_parameters: freqs = 1 / theta ** (arange(0, D, 2).float() / D), all float32.
  const int half = head_dim / 2, quarter = head_dim / 4;
  std::vector<float> freqs(static_cast<std::size_t>(half));
  for (int i = 0; i < half; ++i)
    freqs[static_cast<std::size_t>(i)] =
        1.0f / std::pow(static_cast<float>(theta), static_cast<float>(2 * i) / static_cast<float>(head_dim));
  cos.assign(static_cast<std::size_t>(gh) * gw * head_dim, 0.0f);
  sin.assign(cos.size(), 0.0f);
  std::size_t k = 0;
  for (int r = 0; r < gh; ++r)
    for (int col = 0; col < gw; ++col) {
      for (int rep = 0; rep < 2; ++rep)
        for (int i = 0; i < half; ++i, ++k) {
          const float f = i < quarter
                              ? static_cast<float>(r) * freqs[static_cast<std::size_t>(2 * i)]
                              : static_cast<float>(col) * freqs[static_cast<std::size_t>(2 * (i - quarter) + 1)];
          cos[k] = std::cos(f);
          sin[k] = std::sin(f);
        }
    }
}

std::vector<int64_t> pixtral_merge_index(int gh, int gw, int m) {
  std::vector<int64_t> out;
  out.reserve(static_cast<std::size_t>(gh) * gw);
  for (int by = 0; by < gh / m; ++by)
    for (int bx = 0; bx < gw / m; ++bx)
      for (int ky = 0; ky < m; ++ky)
        for (int kx = 0; kx < m; ++kx) out.push_back(int64_t(by * m + ky) * gw + bx * m + kx);
  return out;
}

std::string upsampler_prompt(const UpsamplerConstants& c, const std::string& instruction,
                             const std::string& image_tokens) {
  std::string text = instruction;
  for (auto p = text.find("[IMG]"); p != std::string::npos; p = text.find("[IMG]", p)) text.erase(p, 5);
  if (image_tokens.empty()) return c.template_t2i[0] + c.system_t2i + c.template_t2i[1] + text + c.template_t2i[2];
  return c.template_i2i[0] + c.system_i2i + c.template_i2i[1] + image_tokens + c.template_i2i[2] + text +
         c.template_i2i[3];
}

}  // namespace dg
