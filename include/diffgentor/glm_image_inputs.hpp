#pragma once
/// GLM-Image inputs computed in C++ (docs/models/glm_image.md): glyph texts and ByT5 ids, the reference size
/// policy, the GLM image processor (smart_resize with halving, BICUBIC, patches), the AR model's 3-axis position
/// ids for prefill and decode, the DiT's RoPE tables and its timesteps in both diffusers behaviours.
/// Torch-free: plain vectors, row-major.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "diffgentor/image.hpp"
#include "diffgentor/scheduler.hpp"

namespace dg {

/// diffusers `GlmImagePipeline.get_glyph_texts`: the contents of every match of '…' (ASCII apostrophes), “…”,
/// "…" and 「…」, concatenated pattern by pattern (Python re.findall: leftmost, non-overlapping).
std::vector<std::string> glm_glyph_texts(const std::string& prompt);

/// ByT5Tokenizer ids of `text`: each UTF-8 byte b -> b + 3, then `</s>` (1); truncated to `max_length` ids
/// with the `</s>` kept. Its added tokens inside the text: "<pad>", "</s>", "<unk>" map to 0, 1, 2 and drop the
/// (ASCII) whitespace around them; "<extra_id_N>" (N < 125) maps to 259 + N.
std::vector<int64_t> byt5_ids(const std::string& text, std::size_t max_length = 2048);

/// The glyph encoder's batch for one prompt (`_get_glyph_embeds`): the glyph texts (or [""] when none), one
/// pad id 0 prepended to every sequence when their number is even (and counted as valid), right-padded to the
/// longest. `ids`/`mask` are [rows, cols]; the encoder's rows where mask = 1, in order, are the glyph embeds.
struct GlyphBatch {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> ids, mask;
  int64_t valid() const;  ///< the number of mask-1 entries: the glyph sequence length
};
GlyphBatch glm_glyph_batch(const std::string& prompt, std::size_t max_length = 2048);

/// processor/preprocessor_config.json of GLM-Image: patch 16, merge 1, temporal 1, mean = std = 0.5 and
/// min/max pixels 512^2 / 2048^2 in the released checkpoint (the defaults here).
struct GlmProcessorConfig {
  int patch_size = 16;
  long min_pixels = 512L * 512;
  long max_pixels = 2048L * 2048;
  float mean[3] = {0.5f, 0.5f, 0.5f};
  float std[3] = {0.5f, 0.5f, 0.5f};
  /// Refuses merge_size or temporal_patch_size other than 1 (the AR grid would no longer match the DiT's).
  static GlmProcessorConfig from_json(const nlohmann::json& preprocessor_config);
  int shortest_edge() const;  ///< round(sqrt(min_pixels))
  int longest_edge() const;   ///< round(sqrt(max_pixels))
};

/// The reference policy: each side scaled by s (short side raised to shortest_edge, long side capped to
/// longest_edge) and rounded to a multiple of 2 * patch (32), so that the processor keeps the size and its AR grid
/// (side / 32) upsampled x2 equals the DiT's latent token grid (side / 16). Returns (width, height); throws
/// std::invalid_argument for an aspect ratio above 4 (the processor's limit).
std::pair<int, int> glm_reference_size(int width, int height, const GlmProcessorConfig& config);

/// transformers `image_processing_glm_image.smart_resize(height, width, factor = patch)`: scale as above, halve
/// first, round to the factor, shrink when over the longest edge. Returns (height, width); throws
/// std::invalid_argument for a side below the factor or an aspect ratio above 4.
std::pair<int, int> glm_smart_resize(int height, int width, const GlmProcessorConfig& config);

/// One image through the GLM image processor (PIL backend): smart_resize, BICUBIC, x / 255, (x - mean) / std,
/// patches in row-major (row, col) order, each laid out (c, py, px): `pixel_values` [P, 3 * patch^2];
/// `patch_pos` [P, 2] (row, col) and `patch_grid` [P, 2] (grid_h, grid_w), the inputs of `image_tokenizer`.
struct GlmPatches {
  std::vector<float> pixel_values;
  std::vector<int64_t> patch_pos, patch_grid;
  int64_t grid_h = 0, grid_w = 0;
  int64_t patches() const { return grid_h * grid_w; }
};
GlmPatches glm_process_image(const Image& image, const GlmProcessorConfig& config);

/// An AR image grid in tokens (one token per 32 x 32 pixels of the target).
struct ArGrid {
  int64_t h = 0, w = 0;
};

/// `GlmImageProcessor._get_target_shape`: the text-to-image preview grid for a target grid (h, w):
/// (int(sqrt(h / w) * 16), int(sqrt(w / h) * 16)).
ArGrid glm_preview_grid(ArGrid target);

/// The AR prompt's token budget for an edit: the target grid's h * w codes (the EOS step after them is not run).
/// Position ids of one AR sequence, transformers `GlmImageModel.get_rope_index` (current, batch-aware version):
/// `prefill` [3, n] for the prompt ids and `decode` [3, m] for the generated tokens (the k-th sampled token is
/// fed with column k).
struct ArPositions {
  std::vector<int64_t> prefill, decode;
  int64_t n = 0, m = 0;
  /// Column `k` of `decode` as (t, h, w).
  std::vector<int64_t> decode_column(int64_t k) const;
};
/// `ids`: the prompt ids with every image block expanded. `grids`: image_grid_thw in the processor's order
/// (references, then the target; text-to-image: target, preview). Each image block runs from just after a
/// `start_id` to the next `end_id`; its h * w tokens take (s, s + row, s + col), then s += max(h, w); every other
/// token counts up by one on all three axes. The grids that no block completes are the decode grids, taken in
/// reverse order, each (d, d + row, d + col) then d += max(h, w), plus one final (d, d, d).
ArPositions glm_ar_positions(const std::vector<int64_t>& ids, int64_t start_id, int64_t end_id,
                             const std::vector<ArGrid>& grids);

/// diffusers `GlmImageRotaryPosEmbed` for an h x w token grid and head dim `head_dim` (divisible by 4):
/// f_k = 1 / 10000^(4k / head_dim) for k < head_dim / 4; the angles of token (r, c) are [r f | c f], duplicated to
/// head_dim. `cos`/`sin` are [h * w, head_dim] in float32.
void glm_dit_rope(int64_t h, int64_t w, int64_t head_dim, std::vector<float>& cos, std::vector<float>& sin);

/// Which timesteps the DiT is fed. `Unshifted`: diffusers <= 0.39 and the model's training, `ts[i] - 1` with
/// ts = int(linspace(1000, 1, N + 1)[:-1]). `Shifted`: diffusers >= 0.40 (its scheduler returns the shifted sigmas
/// times 1000 for explicit timesteps), `shifted_sigma[i] * 1000 - 1`.
enum class GlmTimesteps { Unshifted, Shifted };
/// "unshifted" / "shifted"; throws std::invalid_argument for anything else.
GlmTimesteps glm_timesteps_from_name(const std::string& name);
/// glm_schedule with `timesteps` replaced by what the scheduler holds in `mode` (the Euler sigmas are the shifted
/// ones in both modes); the DiT gets timesteps[i] - 1.
Schedule glm_image_schedule(const SchedulerConfig& config, int num_steps, int64_t image_seq_len, GlmTimesteps mode);

}  // namespace dg
