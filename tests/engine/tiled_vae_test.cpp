// diffusers' VAE tiling (include/diffgentor/vae_tiling.hpp, tiled_vae.hpp) against diffusers' own tiled_decode and
// tiled_encode: tests/data/vae_tiling/goldens.json, written by tools/goldens/vae_tiling_goldens.py.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <numeric>
#include <tuple>
#include <vector>

#include "diffgentor/tiled_vae.hpp"
#include "diffgentor/vae_tiling.hpp"
#include "testdata.hpp"

using namespace dg;

namespace {

// The golden generator's stand-in for the VAE: not local (each tile's output carries the tile's mean), so the
// blending is visible. decode: nearest x8 up-sampling + mean; encode: 8x8 average pooling + mean.
at::Tensor stand_in(const at::Tensor& tile, bool decode) {
  const at::Tensor y =
      decode ? at::upsample_nearest2d(tile, {tile.size(2) * 8, tile.size(3) * 8}) : at::avg_pool2d(tile, {8, 8});
  return y + tile.mean();
}

at::Tensor read_f32(const std::string& rel, const std::vector<int64_t>& shape) {
  std::ifstream in(test::testdata_dir() + "/vae_tiling/" + rel, std::ios::binary);
  at::Tensor t = at::empty(shape, at::kFloat);
  in.read(reinterpret_cast<char*>(t.data_ptr<float>()), static_cast<std::streamsize>(t.numel() * sizeof(float)));
  EXPECT_TRUE(in.good()) << rel;
  return t;
}

}  // namespace

TEST(TiledVae, GeometryFollowsEachVaeClass) {
  // FLUX.1's AutoencoderKL (sample_size 1024, four blocks): latent tiles of 128 every 96, 256 px blended, 768 kept
  const VaeTiling flux = vae_tiling(
      {{"_class_name", "AutoencoderKL"}, {"sample_size", 1024}, {"block_out_channels", {128, 256, 512, 512}}},
      "vae/config.json");
  // (tile, stride, blend, keep, crop) of each direction
  const auto rule = [](const VaeTileRule& r) { return std::make_tuple(r.tile, r.stride, r.blend, r.keep, r.crop); };
  EXPECT_EQ(rule(flux.decode), std::make_tuple(128, 96, 256, 768, false));
  EXPECT_EQ(rule(flux.encode), std::make_tuple(1024, 768, 32, 96, false));
  EXPECT_TRUE(flux.decode.applies(129, 64));
  EXPECT_FALSE(flux.decode.applies(128, 128));
  // AutoencoderKLFlux2 without sample_size takes its constructor's 1024
  EXPECT_EQ(rule(vae_tiling({{"_class_name", "AutoencoderKLFlux2"}}, "c").decode), rule(flux.decode));
  // the Qwen VAE's fixed 256 / 192 sample tiles, cropped
  const VaeTiling qwen = vae_tiling({{"_class_name", "AutoencoderKLQwenImage"}}, "c");
  EXPECT_EQ(rule(qwen.decode), std::make_tuple(32, 24, 64, 192, true));
  EXPECT_EQ(rule(qwen.encode), std::make_tuple(256, 192, 8, 24, true));
  // refusals name the file
  EXPECT_THROW(vae_tiling({{"_class_name", "AutoencoderDC"}}, "c"), std::invalid_argument);
  EXPECT_THROW(vae_tiling({{"_class_name", "AutoencoderKL"}}, "c"), std::invalid_argument);  // defaults: scale 1
  EXPECT_THROW(vae_tiling({{"_class_name", "AutoencoderKL"},
                           {"sample_size", {512, 512}},  // diffusers fails on it
                           {"block_out_channels", {1, 1, 1, 1}}},
                          "c"),
               std::invalid_argument);
  try {
    vae_tiling({{"_class_name", "AutoencoderKL"}, {"sample_size", 8}, {"block_out_channels", {1, 1, 1, 1}}},
               "b/vae/config.json");
    FAIL() << "a one-latent tile cannot step";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("b/vae/config.json"), std::string::npos) << e.what();
  }
}

TEST(TiledVae, EqualsDiffusersTiledDecodeAndEncode) {
  DG_REQUIRE_TESTDATA("vae_tiling/goldens.json");
  const nlohmann::json& doc = test::testdata_json("vae_tiling/goldens.json");
  const VaeTiling kl = vae_tiling(doc.at("kl_config"), "goldens kl_config");
  const VaeTiling qwen = vae_tiling({{"_class_name", "AutoencoderKLQwenImage"}}, "goldens");
  for (const auto& c : doc.at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const bool decode = c.at("direction") == "decode";
    const VaeTiling& t = c.at("class") == "AutoencoderKL" ? kl : qwen;
    const auto shape = c.at("input_shape").get<std::vector<int64_t>>();
    const int64_t n = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
    const at::Tensor x = (at::sin(at::arange(n, at::kFloat) * 0.37) * 2).view(shape);  // the generator's input
    ASSERT_NEAR(x.to(at::kDouble).sum().item<double>(), c.at("input_sum").get<double>(), 1e-9);  // same input
    const auto out_shape = c.at("output_shape").get<std::vector<int64_t>>();
    int64_t tiles = 0;
    const at::Tensor ours = tiled_vae_call(
        x, decode ? t.decode : t.encode, out_shape[2], out_shape[3],
        [&](const at::Tensor& tile) { return stand_in(tile, decode); }, &tiles);
    const at::Tensor want = read_f32(c.at("output"), out_shape);
    ASSERT_EQ(ours.sizes(), want.sizes());
    EXPECT_EQ((ours - want).abs().max().item<float>(), 0.0f) << "tiles " << tiles;
    EXPECT_GE(tiles, 4);  // both axes tiled: the vertical and the horizontal blends both ran
    // the stand-in's per-tile mean makes tiling visible: the untiled call differs (the tiles' means differ from the
    // whole input's by 2e-4 to 0.3 here)
    const at::Tensor whole = stand_in(x, decode);
    ASSERT_EQ(whole.sizes(), want.sizes());
    EXPECT_GT((whole - want).abs().max().item<float>(), 1e-4);
  }
}
