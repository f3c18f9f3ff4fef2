#pragma once
/// Qwen2-VL / Qwen2.5-VL inputs computed in C++ (docs/bundle-format.md, "qwen and qwen_singleimg";
/// docs/tokenizers.md, "Qwen2-VL image processor" and "mRoPE positions"): the image processor (smart_resize, BICUBIC,
/// normalise, temporal duplication, patch order), the vision tower's position and segment ids, the LM's 3-D mRoPE
/// position ids (transformers `get_rope_index`), and the Qwen-Image DiT's RoPE tables (diffusers `QwenEmbedRope`).
/// Torch-free: plain vectors, row-major.
#include <cstdint>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "diffgentor/image.hpp"

namespace dg {

/// processor/preprocessor_config.json fields used (Qwen2.5-VL-7B values as defaults).
struct QwenVisionConfig {
  int patch_size = 14;
  int temporal_patch_size = 2;
  int merge_size = 2;
  int window_size = 112;
  long min_pixels = 3136;
  long max_pixels = 12845056;
  float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
  float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

  /// From processor/preprocessor_config.json and text_encoder/config.json (vision_config.window_size);
  /// absent keys keep the Qwen2.5-VL-7B values above.
  static QwenVisionConfig from_json(const nlohmann::json& processor, const nlohmann::json& text_encoder);
};

/// The processed images of one prompt, concatenated in prompt order.
struct VisionInputs {
  std::vector<float> pixel_values;         ///< [P, 3 * temporal * patch * patch]
  int row_size = 0;                        ///< 1176 for the real geometry
  std::vector<int64_t> vision_pos;         ///< [P, 2] (row, col) in the image's patch grid
  std::vector<int64_t> window_seg;         ///< [P] window id, unique per (image, window)
  std::vector<int64_t> image_seg;          ///< [P] image index
  std::vector<std::pair<int, int>> grids;  ///< per image (grid_h, grid_w) in patches; grid_t = 1
  int64_t patches() const { return static_cast<int64_t>(image_seg.size()); }
  /// <|image_pad|> copies for image k: grid_h * grid_w / merge^2.
  int64_t image_tokens(std::size_t k, int merge_size) const;
};

/// smart_resize + BICUBIC + (x/255 - mean)/std + duplicate to `temporal_patch_size` frames + patchify in
/// the order [gh/m, gw/m, m, m] with rows ((c * T + t) * p + py) * p + px.
VisionInputs process_qwen_images(const std::vector<Image>& images, const QwenVisionConfig& config);

/// transformers `get_rope_index` for one sequence with every token attended: text positions count up
/// on all three axes; an image block starting at s gets (s, s + row, s + col) over the merged grid;
/// text after it resumes at s + max(gh/m, gw/m). Returns [3, L] (t, h, w rows). With a `mask`,
/// positions count only tokens whose mask is 1 (as if the others were removed) and masked tokens get
/// position 0 on every axis (transformers 5's get_rope_index writes only attended slots of a zeroed table;
/// transformers 4 filled 1), which is what LongCat's padded user slot needs.
std::vector<int64_t> mrope_position_ids(const std::vector<int32_t>& ids, int32_t image_token_id,
                                        const VisionInputs& vision, int merge_size,
                                        const std::vector<int32_t>* mask = nullptr);

/// (frames, height, width) of one image in DiT tokens.
struct ImageShape {
  int frame = 1, height = 0, width = 0;
};

/// QwenEmbedRope (scale_rope = true) tables as (cos, sin) pairs: `img` [S, P, 2] rows in token order
/// of `shapes` (image k uses frame position k), `txt` [text_len, P, 2] starting at M = max over
/// images of max(h/2, w/2); P = sum(axes) / 2.
struct RopeTables {
  std::vector<float> img, txt;
  int pairs = 0;
};
RopeTables qwen_rope_tables(const std::vector<ImageShape>& shapes, int64_t text_len, const std::vector<int>& axes_dims,
                            double theta = 10000.0);

}  // namespace dg
