// FLUX.2-dev prompt upsampling, the torch-free half (include/diffgentor/flux2_upsampler_inputs.hpp) and the
// tokenizer's decode, pinned by tests/data/flux2_upsampler/goldens.json and
// tests/data/tokenizers/tekken/decode_cases.jsonl: values from diffusers' Flux2ImageProcessor, transformers'
// Pixtral and Mistral3 classes and Hugging Face tokenizers over Mistral's real Tekken vocabulary
// (tools/goldens/flux2_upsampler_goldens.py).
#include "diffgentor/flux2_upsampler_inputs.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "testdata.hpp"

#include "diffgentor/tokenizer.hpp"

using namespace dg;
using nlohmann::json;

namespace {

const json& goldens() { return dg::test::testdata_json("flux2_upsampler/goldens.json"); }

// The golden script's pattern(): red ramp, 4-pixel checks, an integer texture.
Image pattern(int w, int h, int seed) {
  Image img{w, h, std::vector<uint8_t>(static_cast<std::size_t>(w) * h * 3)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.pixel(x, y);
      p[0] = static_cast<uint8_t>(x * 255 / std::max(w - 1, 1));
      p[1] = static_cast<uint8_t>(((x / 4 + y / 4) % 2) * 200 + seed * 20);
      p[2] = static_cast<uint8_t>((x * 7 + y * 13 + seed * 31) % 256);
    }
  return img;
}

int64_t rgb_sum(const Image& img) {
  int64_t s = 0;
  for (uint8_t v : img.rgb) s += v;
  return s;
}

// A constants object as export_bundle writes it for a Mistral Small 3.x chat template.
json constants_json() {
  return {{"system_t2i", "T2I SYSTEM"},
          {"system_i2i", "I2I SYSTEM"},
          {"template_t2i", {"<s>[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT][INST]", "[/INST]"}},
          {"template_i2i", {"<s>[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT][INST]", "[/INST][INST]", "[/INST]"}},
          {"add_special_tokens", false},
          {"image_token", "[IMG]"},
          {"image_break_token", "[IMG_BREAK]"},
          {"image_end_token", "[IMG_END]"},
          {"image_token_id", 10},
          {"patch_size", 14},
          {"spatial_merge_size", 2},
          {"longest_edge", 1540},
          {"rescale_factor", 1.0 / 255.0},
          {"image_mean", {0.48145466, 0.4578275, 0.40821073}},
          {"image_std", {0.26862954, 0.26130258, 0.27577711}},
          {"vision_rope_theta", 10000.0},
          {"vision_head_dim", 64},
          {"vision_max_patches_per_side", 110},
          {"max_image_area", 589824},
          {"max_length", 2048},
          {"max_new_tokens", 512},
          {"temperature", 0.15},
          {"generation_config", {{"eos_token_id", 2}}},
          {"clean_up_tokenization_spaces", false}};
}

}  // namespace

TEST(Flux2Upsampler, ConcatenatesImagesLikeFlux2ImageProcessor) {
  const json& g = goldens()["concatenate"];
  std::vector<Image> parts;
  int seed = 0;
  for (const auto& s : g["sizes"]) parts.push_back(pattern(s[0], s[1], seed++));
  const Image cat = concatenate_images(parts);
  EXPECT_EQ(cat.width, g["size"][0].get<int>());
  EXPECT_EQ(cat.height, g["size"][1].get<int>());
  EXPECT_EQ(cat.rgb, g["rgb"].get<std::vector<uint8_t>>());  // white canvas, centred with floored offsets
  EXPECT_EQ(concatenate_images({parts[1]}).rgb, parts[1].rgb);
}

TEST(Flux2Upsampler, CapsTheAreaWithTruncatedLanczosSizes) {
  for (const auto& c : goldens()["cap_area"]) {
    const Image out = cap_image_area(pattern(c["size"][0], c["size"][1], 3), c["area"].get<int64_t>());
    EXPECT_EQ(out.width, c["out"][0].get<int>()) << c.dump();
    EXPECT_EQ(out.height, c["out"][1].get<int>()) << c.dump();
    EXPECT_EQ(rgb_sum(out), c["rgb_sum"].get<int64_t>()) << c.dump();  // Pillow-exact LANCZOS
  }
}

TEST(Flux2Upsampler, PixtralResizeRule) {
  for (const auto& c : goldens()["resize"]) {
    const auto [h, w] = pixtral_resize_size(c["size"][1], c["size"][0], 1540, 28);
    EXPECT_EQ(h, c["out"][0].get<int>()) << c.dump();
    EXPECT_EQ(w, c["out"][1].get<int>()) << c.dump();
  }
}

TEST(Flux2Upsampler, PixelsMatchThePilImageProcessor) {
  const json& g = goldens()["pixels"];
  const UpsamplerConstants c = UpsamplerConstants::from_json(constants_json(), "test");
  int h = 0, w = 0;
  const std::vector<float> px = pixtral_pixels(pattern(g["size"][0], g["size"][1], 4), c, h, w);
  ASSERT_EQ((std::vector<int>{3, h, w}), g["shape"].get<std::vector<int>>());
  const auto want = g["values"].get<std::vector<float>>();
  const std::size_t stride = g["stride"];
  ASSERT_EQ(want.size(), (px.size() + stride - 1) / stride);
  // Pillow's bicubic is reproduced byte for byte; rescale and normalise run in float32 in the same order, so
  // the values agree to float32 rounding (1 ulp of values up to ~2.2: 2.4e-7).
  for (std::size_t k = 0; k < want.size(); ++k) EXPECT_NEAR(px[k * stride], want[k], 5e-7) << k;
}

TEST(Flux2Upsampler, ImageTokenLayout) {
  const UpsamplerConstants c = UpsamplerConstants::from_json(constants_json(), "test");
  EXPECT_EQ(pixtral_image_tokens(2, 3, c), "[IMG][IMG][IMG][IMG_BREAK][IMG][IMG][IMG][IMG_END]");
  EXPECT_EQ(pixtral_image_tokens(1, 1, c), "[IMG][IMG_END]");
}

TEST(Flux2Upsampler, RopeRowsMatchPixtralRotaryEmbedding) {
  const json& g = goldens()["rope"];
  std::vector<float> cos, sin;
  pixtral_rope(g["grid"][0], g["grid"][1], g["head_dim"], g["theta"], cos, sin);
  const auto want_cos = g["cos"].get<std::vector<float>>(), want_sin = g["sin"].get<std::vector<float>>();
  ASSERT_EQ(cos.size(), want_cos.size());
  // torch's vectorised float32 pow/cos/sin and libm's differ by at most an ulp of the angle (angles < 5 here:
  // 4.8e-7) and of the result.
  for (std::size_t k = 0; k < cos.size(); ++k) {
    EXPECT_NEAR(cos[k], want_cos[k], 1e-6) << k;
    EXPECT_NEAR(sin[k], want_sin[k], 1e-6) << k;
  }
}

TEST(Flux2Upsampler, MergeIndexIsThePatchMergersUnfoldOrder) {
  const json& g = goldens()["merge"];
  EXPECT_EQ(pixtral_merge_index(g["grid"][0], g["grid"][1], g["m"]), g["index"].get<std::vector<int64_t>>());
}

TEST(Flux2Upsampler, PromptFollowsTheTemplatePiecesAndDropsImgMarkers) {
  const UpsamplerConstants c = UpsamplerConstants::from_json(constants_json(), "test");
  EXPECT_EQ(upsampler_prompt(c, "a [IMG]cat", ""), "<s>[SYSTEM_PROMPT]T2I SYSTEM[/SYSTEM_PROMPT][INST]a cat[/INST]");
  EXPECT_EQ(upsampler_prompt(c, "[IM[IMG]G]x", "[IMG][IMG_END]"),
            "<s>[SYSTEM_PROMPT]I2I SYSTEM[/SYSTEM_PROMPT][INST][IMG][IMG_END][/INST][INST][IMG]x[/INST]");
}

TEST(Flux2Upsampler, ConstantsNameWhatIsMissing) {
  json j = constants_json();
  j.erase("image_end_token");
  try {
    UpsamplerConstants::from_json(j, "bundle B");
    FAIL() << "accepted constants without image_end_token";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("bundle B"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("image_end_token"), std::string::npos);
  }
  j = constants_json();
  j["template_i2i"] = {"a", "b"};
  EXPECT_THROW(UpsamplerConstants::from_json(j, "x"), std::invalid_argument);
}

TEST(TekkenDecode, MatchesHuggingFaceTokenizers) {
  const std::string dir = dg::test::testdata_dir() + "/tokenizers/tekken/";
  const Tokenizer tok = Tokenizer::from_file(dir + "tokenizer.json");
  std::ifstream in(dir + "decode_cases.jsonl");
  ASSERT_TRUE(in) << dir << "decode_cases.jsonl";
  int n = 0;
  for (std::string line; std::getline(in, line); ++n) {
    const json c = json::parse(line);
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok.decode(ids, c["skip_special_tokens"], c["clean_up"]), c["text"].get<std::string>())
        << c["note"] << " skip=" << c["skip_special_tokens"] << " clean_up=" << c["clean_up"];
  }
  EXPECT_EQ(n, 64);
}

TEST(TekkenDecode, RefusesDecodersItDoesNotImplement) {
  const json j = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", json::array()}}},
                  {"decoder", {{"type", "Metaspace"}}}};
  const Tokenizer tok = Tokenizer::from_json(j, "t.json");
  try {
    tok.decode({0}, false);
    FAIL() << "decoded with an unsupported decoder";
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("Metaspace"), std::string::npos);
  }
}
