// Qwen2-VL inputs computed in C++: processor layout, vision ids, mRoPE positions and DiT RoPE tables,
// checked against the rules of transformers' Qwen2VLImageProcessor / get_rope_index and diffusers'
// QwenEmbedRope (docs/tokenizers.md, "Qwen2-VL image processor" and "Qwen-Image RoPE tables").
#include "diffgentor/qwen_vl.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

using namespace dg;

namespace {

Image coded(int w, int h) {  // pixel (x, y) = (x, y, x + y) mod 256
  Image img{w, h, std::vector<uint8_t>(static_cast<std::size_t>(w) * h * 3)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      img.pixel(x, y)[0] = static_cast<uint8_t>(x);
      img.pixel(x, y)[1] = static_cast<uint8_t>(y);
      img.pixel(x, y)[2] = static_cast<uint8_t>(x + y);
    }
  return img;
}

}  // namespace

TEST(QwenVl, ProcessorRowsFollowTheMergeOrder) {
  const QwenVisionConfig cfg;
  const VisionInputs v = process_qwen_images({coded(56, 56)}, cfg);  // 56x56 = min_pixels: no resize
  ASSERT_EQ(v.grids.size(), 1u);
  EXPECT_EQ(v.grids[0], std::make_pair(4, 4));
  EXPECT_EQ(v.row_size, 1176);
  ASSERT_EQ(v.patches(), 16);
  EXPECT_EQ(v.image_tokens(0, 2), 4);
  for (int bh = 0; bh < 2; ++bh)
    for (int bw = 0; bw < 2; ++bw)
      for (int mh = 0; mh < 2; ++mh)
        for (int mw = 0; mw < 2; ++mw) {
          const int r = ((bh * 2 + bw) * 2 + mh) * 2 + mw, row = 2 * bh + mh, col = 2 * bw + mw;
          EXPECT_EQ(v.vision_pos[r * 2], row);
          EXPECT_EQ(v.vision_pos[r * 2 + 1], col);
          for (int c : {0, 2})
            for (int t : {0, 1})
              for (int py : {0, 13})
                for (int px : {0, 5}) {
                  const int x = col * 14 + px, y = row * 14 + py;
                  const double raw = c == 0 ? x : (x + y) % 256;
                  const float want = static_cast<float>((raw / 255.0 - cfg.mean[c]) / cfg.std[c]);
                  EXPECT_NEAR(v.pixel_values[static_cast<std::size_t>(r) * 1176 + ((c * 2 + t) * 14 + py) * 14 + px],
                              want, 1e-5);
                }
        }
  for (int64_t s : v.window_seg) EXPECT_EQ(s, 0);
  for (int64_t s : v.image_seg) EXPECT_EQ(s, 0);
}

TEST(QwenVl, GridsWindowsAndImagesAcrossTwoImages) {
  // 448x320 -> smart_resize 308x448 -> grid 22x32 -> 176 tokens (docs/tokenizers.md, "Qwen2-VL image processor").
  const VisionInputs v = process_qwen_images({coded(448, 320), coded(56, 56)}, QwenVisionConfig{});
  EXPECT_EQ(v.grids[0], std::make_pair(22, 32));
  EXPECT_EQ(v.image_tokens(0, 2), 176);
  EXPECT_EQ(v.patches(), 22 * 32 + 16);
  // Windows of 4x4 merge units: the merged grid 11x16 has 3x4 windows; the second image starts at 12.
  EXPECT_EQ(*std::max_element(v.window_seg.begin(), v.window_seg.begin() + 704), 11);
  EXPECT_EQ(v.window_seg[704], 12);
  EXPECT_EQ(v.image_seg[703], 0);
  EXPECT_EQ(v.image_seg[704], 1);
}

TEST(QwenVl, MropePositionsOfTextAndImageBlocks) {
  const VisionInputs v = process_qwen_images({coded(56, 56)}, QwenVisionConfig{});
  const int32_t I = 99;
  const std::vector<int32_t> ids{5, 6, I, I, I, I, 7, 8};
  const auto pos = mrope_position_ids(ids, I, v, 2);
  const std::vector<int64_t> t{0, 1, 2, 2, 2, 2, 4, 5}, h{0, 1, 2, 2, 3, 3, 4, 5}, w{0, 1, 2, 3, 2, 3, 4, 5};
  EXPECT_EQ(std::vector<int64_t>(pos.begin(), pos.begin() + 8), t);
  EXPECT_EQ(std::vector<int64_t>(pos.begin() + 8, pos.begin() + 16), h);
  EXPECT_EQ(std::vector<int64_t>(pos.begin() + 16, pos.end()), w);
  EXPECT_THROW(mrope_position_ids({5, I, I, 6}, I, v, 2), std::invalid_argument);
  EXPECT_THROW(mrope_position_ids({5, 6}, I, v, 2), std::invalid_argument);
}

TEST(QwenVl, DitRopeTablesAreCentredWithTextAfterTheLargestHalf) {
  // One 2x4-token image (frame 0) and one 2x2 reference (frame 1); axes 4/6/6 -> 8 pairs.
  const RopeTables t = qwen_rope_tables({{1, 2, 4}, {1, 2, 2}}, 2, {4, 6, 6});
  ASSERT_EQ(t.pairs, 8);
  ASSERT_EQ(t.img.size(), static_cast<std::size_t>((8 + 4) * 8 * 2));
  ASSERT_EQ(t.txt.size(), static_cast<std::size_t>(2 * 8 * 2));
  auto angle = [&](const std::vector<float>& tab, int row, int pair) {
    return std::atan2(tab[(row * 8 + pair) * 2 + 1], tab[(row * 8 + pair) * 2]);
  };
  // Pair 0 of each axis has inverse frequency 1, so its angle is the position itself.
  EXPECT_NEAR(angle(t.img, 0, 0), 0.0, 1e-6);   // frame 0
  EXPECT_NEAR(angle(t.img, 0, 2), -1.0, 1e-6);  // height: rows -1, 0
  EXPECT_NEAR(angle(t.img, 0, 5), -2.0, 1e-6);  // width: cols -2 .. 1
  EXPECT_NEAR(angle(t.img, 7, 2), 0.0, 1e-6);   // last token of image 0: row 0
  EXPECT_NEAR(angle(t.img, 7, 5), 1.0, 1e-6);   //   col 1
  EXPECT_NEAR(angle(t.img, 8, 0), 1.0, 1e-6);   // the reference has frame 1
  EXPECT_NEAR(angle(t.txt, 0, 0), 2.0, 1e-6);   // text starts at max(h/2, w/2) = 2 on every axis
  EXPECT_NEAR(angle(t.txt, 1, 5), 3.0, 1e-6);
  // Pair 1 of the 6-wide axes: inverse frequency 10000^(-2/6).
  EXPECT_NEAR(angle(t.txt, 0, 3), 2.0 * std::pow(10000.0, -2.0 / 6), 1e-5);
}

TEST(QwenVl, MaskedSlotsGetTheFillPositionAndDoNotCount) {
  // LongCat: user pads (mask 0) in the middle of the sequence; the suffix continues after the last real token.
  const VisionInputs v = process_qwen_images({coded(56, 56)}, QwenVisionConfig{});
  const int32_t I = 99, PAD = 7;
  const std::vector<int32_t> ids{5, I, I, I, I, 6, PAD, PAD, 8};
  const std::vector<int32_t> mask{1, 1, 1, 1, 1, 1, 0, 0, 1};
  const auto pos = mrope_position_ids(ids, I, v, 2, &mask);
  const std::vector<int64_t> t{0, 1, 1, 1, 1, 3, 0, 0, 4}, w{0, 1, 2, 1, 2, 3, 0, 0, 4};
  EXPECT_EQ(std::vector<int64_t>(pos.begin(), pos.begin() + 9), t);
  EXPECT_EQ(std::vector<int64_t>(pos.begin() + 18, pos.end()), w);
}

TEST(QwenVisionConfig, SizeAndPixelLimitsAsTheImageProcessorReadsThem) {
  using nlohmann::json;
  const json te = json::parse(R"({"vision_config": {"window_size": 56}})");
  QwenVisionConfig c =
      QwenVisionConfig::from_json(json::parse(R"({"size": {"shortest_edge": 100, "longest_edge": 2000}})"), te);
  EXPECT_EQ(c.min_pixels, 100);
  EXPECT_EQ(c.max_pixels, 2000);
  EXPECT_EQ(c.window_size, 56);
  c = QwenVisionConfig::from_json(
      json::parse(R"({"size": {"shortest_edge": 100, "longest_edge": 2000}, "min_pixels": 3136, "max_pixels": null})"),
      te);
  EXPECT_EQ(c.min_pixels, 3136);  // min_pixels overrides size, as upstream's __init__ does
  EXPECT_EQ(c.max_pixels, 2000);
  c = QwenVisionConfig::from_json(json::object(), json::object());
  EXPECT_EQ(c.min_pixels, 3136);
  EXPECT_EQ(c.max_pixels, 12845056);
  EXPECT_EQ(c.window_size, 112);
}
