// Ports of transformers Qwen2VLImageProcessor._preprocess (slow path), Qwen2_5_VisionTransformer
// rot_pos_emb / get_window_index ids, Qwen2_5_VLModel.get_rope_index, and diffusers QwenEmbedRope.
#include "diffgentor/qwen_vl.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "diffgentor/resize.hpp"

namespace dg {

QwenVisionConfig QwenVisionConfig::from_json(const nlohmann::json& pp, const nlohmann::json& te) {
  QwenVisionConfig c;
  c.patch_size = pp.value("patch_size", c.patch_size);
  c.temporal_patch_size = pp.value("temporal_patch_size", c.temporal_patch_size);
  c.merge_size = pp.value("merge_size", c.merge_size);
  // Qwen2VLImageProcessor.__init__: `size` {shortest_edge, longest_edge}, overridden by min/max_pixels when given.
  const nlohmann::json size = pp.value("size", nlohmann::json::object());
  if (size.is_object()) {
    c.min_pixels = size.value("shortest_edge", c.min_pixels);
    c.max_pixels = size.value("longest_edge", c.max_pixels);
  }
  if (pp.contains("min_pixels") && pp["min_pixels"].is_number()) c.min_pixels = pp["min_pixels"].get<long>();
  if (pp.contains("max_pixels") && pp["max_pixels"].is_number()) c.max_pixels = pp["max_pixels"].get<long>();
  for (int k = 0; k < 3; ++k) {
    if (pp.contains("image_mean")) c.mean[k] = pp["image_mean"].at(k).get<float>();
    if (pp.contains("image_std")) c.std[k] = pp["image_std"].at(k).get<float>();
  }
  c.window_size = te.value("vision_config", nlohmann::json::object()).value("window_size", c.window_size);
  return c;
}

int64_t VisionInputs::image_tokens(std::size_t k, int merge_size) const {
  return static_cast<int64_t>(grids.at(k).first) * grids.at(k).second / (merge_size * merge_size);
}

VisionInputs process_qwen_images(const std::vector<Image>& images, const QwenVisionConfig& c) {
  VisionInputs out;
  const int p = c.patch_size, m = c.merge_size, T = c.temporal_patch_size;
  out.row_size = 3 * T * p * p;
  int64_t window_base = 0;
  for (std::size_t k = 0; k < images.size(); ++k) {
    const Image& src = images[k];
    const auto [rh, rw] = smart_resize(src.height, src.width, p * m, c.min_pixels, c.max_pixels);
    const Image img = resize_pil(src, rw, rh, ResampleFilter::Bicubic);
    const int gh = rh / p, gw = rw / p;
    out.grids.emplace_back(gh, gw);
    // Normalised planes, CHW.
    std::vector<float> plane(static_cast<std::size_t>(3) * rh * rw);
    for (int y = 0; y < rh; ++y)
      for (int x = 0; x < rw; ++x)
        for (int ch = 0; ch < 3; ++ch)
          plane[(static_cast<std::size_t>(ch) * rh + y) * rw + x] =
              static_cast<float>((img.pixel(x, y)[ch] * (1.0 / 255.0) - c.mean[ch]) / c.std[ch]);
    const int wm = c.window_size / m / p;  // merge units per window side
    const int windows_w = (gw / m + wm - 1) / wm, windows_h = (gh / m + wm - 1) / wm;
    for (int bh = 0; bh < gh / m; ++bh)
      for (int bw = 0; bw < gw / m; ++bw)
        for (int mh = 0; mh < m; ++mh)
          for (int mw = 0; mw < m; ++mw) {
            const int row = bh * m + mh, col = bw * m + mw;
            for (int ch = 0; ch < 3; ++ch)
              for (int t = 0; t < T; ++t)  // every frame is the same still image
                for (int py = 0; py < p; ++py)
                  for (int px = 0; px < p; ++px)
                    out.pixel_values.push_back(
                        plane[(static_cast<std::size_t>(ch) * rh + row * p + py) * rw + col * p + px]);
            out.vision_pos.push_back(row);
            out.vision_pos.push_back(col);
            out.window_seg.push_back(window_base + (bh / wm) * windows_w + bw / wm);
            out.image_seg.push_back(static_cast<int64_t>(k));
          }
    window_base += static_cast<int64_t>(windows_h) * windows_w;
  }
  return out;
}

std::vector<int64_t> mrope_position_ids(const std::vector<int32_t>& ids, int32_t image_token_id,
                                        const VisionInputs& vision, int m, const std::vector<int32_t>* mask) {
  const std::size_t L = ids.size();
  std::vector<int64_t> pos(3 * L);
  int64_t next = 0;  // position of the next text token
  std::size_t image = 0;
  for (std::size_t i = 0; i < L;) {
    if (mask && (*mask)[i] == 0) {  // masked slot: position 0, and it does not advance the count
      for (int a = 0; a < 3; ++a) pos[a * L + i] = 0;
      ++i;
      continue;
    }
    if (ids[i] != image_token_id) {
      for (int a = 0; a < 3; ++a) pos[a * L + i] = next;
      ++next, ++i;
      continue;
    }
    if (image >= vision.grids.size()) throw std::invalid_argument("more image blocks in the prompt than images");
    const int gh = vision.grids[image].first / m, gw = vision.grids[image].second / m;
    const int64_t s = next;
    for (int r = 0; r < gh; ++r)
      for (int col = 0; col < gw; ++col, ++i) {
        if (i >= L || ids[i] != image_token_id) throw std::invalid_argument("image block shorter than its grid");
        pos[0 * L + i] = s;
        pos[1 * L + i] = s + r;
        pos[2 * L + i] = s + col;
      }
    next = s + std::max(gh, gw);
    ++image;
  }
  if (image != vision.grids.size()) throw std::invalid_argument("fewer image blocks in the prompt than images");
  return pos;
}

RopeTables qwen_rope_tables(const std::vector<ImageShape>& shapes, int64_t text_len, const std::vector<int>& axes,
                            double theta) {
  RopeTables t;
  for (int d : axes) t.pairs += d / 2;
  // inv_freq per axis in float32, angle = f32(p) * inv (f32), as QwenEmbedRope.rope_params.
  std::vector<std::vector<float>> inv(axes.size());
  for (std::size_t a = 0; a < axes.size(); ++a)
    for (int j = 0; j < axes[a]; j += 2)
      inv[a].push_back(1.0f / std::pow(static_cast<float>(theta), static_cast<float>(j) / static_cast<float>(axes[a])));
  auto emit = [&](std::vector<float>& dst, const int64_t p[3]) {
    for (std::size_t a = 0; a < axes.size(); ++a)
      for (float f : inv[a]) {
        const float angle = static_cast<float>(p[a]) * f;
        dst.push_back(std::cos(angle));
        dst.push_back(std::sin(angle));
      }
  };
  int64_t max_half = 0;
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    const ImageShape& s = shapes[k];
    max_half = std::max<int64_t>(max_half, std::max(s.height / 2, s.width / 2));
    for (int f = 0; f < s.frame; ++f)
      for (int r = 0; r < s.height; ++r)
        for (int c = 0; c < s.width; ++c) {
          const int64_t p[3] = {static_cast<int64_t>(k) + f, r - (s.height - s.height / 2),
                                c - (s.width - s.width / 2)};
          emit(t.img, p);
        }
  }
  for (int64_t j = 0; j < text_len; ++j) {
    const int64_t p[3] = {max_half + j, max_half + j, max_half + j};
    emit(t.txt, p);
  }
  return t;
}

}  // namespace dg
