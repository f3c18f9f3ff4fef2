// GLM-Image inputs computed in C++ (include/diffgentor/glm_image_inputs.hpp), pinned by
// tests/data/glm_image/goldens.json: values from diffusers' GlmImagePipeline / GlmImageRotaryPosEmbed /
// FlowMatchEulerDiscreteScheduler and transformers' GLM-Image processor, ByT5Tokenizer and get_rope_index
// (tools/goldens/glm_image_goldens.py).
#include "diffgentor/glm_image_inputs.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "testdata.hpp"

#include "diffgentor/sampling.hpp"

using namespace dg;
using nlohmann::json;

namespace {

const json& goldens() { return dg::test::testdata_json("glm_image/goldens.json"); }

// The image the golden script builds: RGB (x*7 + y*13 + c*50) % 256.
Image pattern_image(int w, int h) {
  Image img{w, h, std::vector<uint8_t>(static_cast<std::size_t>(w) * h * 3)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) img.pixel(x, y)[c] = static_cast<uint8_t>((x * 7 + y * 13 + c * 50) % 256);
  return img;
}

GlmProcessorConfig limits(long min_pixels, long max_pixels) {
  GlmProcessorConfig c;
  c.min_pixels = min_pixels;
  c.max_pixels = max_pixels;
  return c;
}

}  // namespace

TEST(GlmImage, GlyphTextsIdsAndTheEvenCountPadMatchThePipeline) {
  for (const auto& g : goldens()["glyphs"]) {
    const std::string prompt = g["prompt"];
    EXPECT_EQ(glm_glyph_texts(prompt), g["texts"].get<std::vector<std::string>>()) << prompt;
    const GlyphBatch b = glm_glyph_batch(prompt);
    const auto ids = g["ids"].get<std::vector<std::vector<int64_t>>>();
    const auto mask = g["mask"].get<std::vector<std::vector<int64_t>>>();
    ASSERT_EQ(b.rows, static_cast<int64_t>(ids.size())) << prompt;
    std::vector<int64_t> flat_ids, flat_mask;
    for (std::size_t r = 0; r < ids.size(); ++r) {
      flat_ids.insert(flat_ids.end(), ids[r].begin(), ids[r].end());
      flat_mask.insert(flat_mask.end(), mask[r].begin(), mask[r].end());
    }
    EXPECT_EQ(b.ids, flat_ids) << prompt;
    EXPECT_EQ(b.mask, flat_mask) << prompt;
  }
  // ByT5 keeps its own special strings and truncates with </s> kept.
  EXPECT_EQ(byt5_ids("a</s>b"), (std::vector<int64_t>{100, 1, 101, 1}));
  EXPECT_EQ(byt5_ids("abcdef", 4), (std::vector<int64_t>{100, 101, 102, 1}));
}

TEST(GlmImage, SmartResizeMatchesTheProcessor) {
  for (const auto& c : goldens()["smart_resize"]) {
    const GlmProcessorConfig cfg = limits(c["min_pixels"], c["max_pixels"]);
    const int h = c["height"], w = c["width"];
    if (c.contains("error")) {
      EXPECT_THROW(glm_smart_resize(h, w, cfg), std::invalid_argument) << h << "x" << w;
      continue;
    }
    const auto [rh, rw] = glm_smart_resize(h, w, cfg);
    EXPECT_EQ(std::vector<int>({rh, rw}), c["resized"].get<std::vector<int>>()) << h << "x" << w;
  }
}

TEST(GlmImage, SnappedReferencesKeepTheirSizeThroughTheProcessor) {
  // The reference policy exists so that the processor's AR grid, upsampled x2, is the DiT's token grid.
  for (const auto& cfg : {limits(512L * 512, 2048L * 2048), limits(64 * 64, 256 * 256)})
    for (const auto& [w, h] : std::vector<std::pair<int, int>>{
             {1024, 1024}, {1000, 700}, {100, 150}, {3000, 900}, {17, 23}, {4096, 1024}, {50, 190}}) {
      const auto [sw, sh] = glm_reference_size(w, h, cfg);
      EXPECT_EQ(sw % 32, 0);
      EXPECT_EQ(sh % 32, 0);
      EXPECT_GE(std::min(sw, sh), cfg.shortest_edge()) << w << "x" << h;
      EXPECT_LE(std::max(sw, sh), cfg.longest_edge()) << w << "x" << h;
      const auto [rh, rw] = glm_smart_resize(sh, sw, cfg);
      EXPECT_EQ(rh * 2, sh) << w << "x" << h;
      EXPECT_EQ(rw * 2, sw) << w << "x" << h;
    }
  EXPECT_EQ(glm_reference_size(1024, 768, GlmProcessorConfig{}), std::make_pair(1024, 768));  // already compatible
  EXPECT_THROW(glm_reference_size(2047, 511, GlmProcessorConfig{}), std::invalid_argument);   // aspect > 4
}

TEST(GlmImage, ProcessorPatchesMatchThePilProcessor) {
  const GlmProcessorConfig cfg = limits(64 * 64, 256 * 256);
  for (const auto& c : goldens()["processor"]) {
    const GlmPatches p = glm_process_image(pattern_image(c["width"], c["height"]), cfg);
    const auto grid = c["grid_thw"].get<std::vector<int64_t>>();
    EXPECT_EQ(p.grid_h, grid[1]);
    EXPECT_EQ(p.grid_w, grid[2]);
    const auto shape = c["shape"].get<std::vector<int64_t>>();
    ASSERT_EQ(p.patches(), shape[0]);
    ASSERT_EQ(static_cast<int64_t>(p.pixel_values.size()), shape[0] * shape[1]);
    const auto first = c["first_row"].get<std::vector<float>>(), last = c["last_row"].get<std::vector<float>>();
    const std::size_t row = static_cast<std::size_t>(shape[1]);
    // Equal to float32 rounding: the resize is Pillow-exact, and rescale/normalise run in float32 either way.
    for (std::size_t k = 0; k < row; ++k) {
      EXPECT_NEAR(p.pixel_values[k], first[k], 1e-6) << k;
      EXPECT_NEAR(p.pixel_values[p.pixel_values.size() - row + k], last[k], 1e-6) << k;
    }
    double sum = 0;
    for (float v : p.pixel_values) sum += v;
    EXPECT_NEAR(sum, c["sum"].get<double>(), 1e-3);
    // Every patch in its place, and each patch's values in their (c, py, px) order.
    const auto row_sums = c["row_sums"].get<std::vector<double>>(),
               weighted = c["row_weighted"].get<std::vector<double>>();
    for (std::size_t r = 0; r < row_sums.size(); ++r) {
      double s = 0, ws = 0;
      for (std::size_t k = 0; k < row; ++k) {
        s += p.pixel_values[r * row + k];
        ws += double(k) * p.pixel_values[r * row + k];
      }
      EXPECT_NEAR(s, row_sums[r], 1e-4) << "patch " << r;
      EXPECT_NEAR(ws, weighted[r], 1e-1) << "patch " << r;  // values up to ~1 times indices up to 767
    }
    EXPECT_EQ(p.patch_pos[p.patch_pos.size() - 2], p.grid_h - 1);
    EXPECT_EQ(p.patch_grid[1], p.grid_w);
  }
}

TEST(GlmImage, ArPositionsMatchGetRopeIndexAndTheCachedDecodePositions) {
  for (const auto& c : goldens()["rope_index"]) {
    std::vector<ArGrid> grids;
    for (const auto& g : c["grids"]) grids.push_back({g[0].get<int64_t>(), g[1].get<int64_t>()});
    const ArPositions pos = glm_ar_positions(c["ids"].get<std::vector<int64_t>>(), 64, 65, grids);
    std::vector<int64_t> prefill, decode;
    for (const auto& row : c["prefill"]) prefill.insert(prefill.end(), row.begin(), row.end());
    for (const auto& row : c["decode"]) decode.insert(decode.end(), row.begin(), row.end());
    EXPECT_EQ(pos.prefill, prefill) << c["grids"].dump();
    EXPECT_EQ(pos.decode, decode) << c["grids"].dump();
  }
  // A block whose token count does not match its grid is refused.
  EXPECT_THROW(glm_ar_positions({64, 1, 1, 65, 7}, 64, 65, {{1, 3}, {1, 1}}), std::invalid_argument);
}

TEST(GlmImage, PreviewGridFollowsTheProcessor) {
  EXPECT_EQ(glm_preview_grid({32, 32}).h, 16);
  EXPECT_EQ(glm_preview_grid({32, 32}).w, 16);
  EXPECT_EQ(glm_preview_grid({24, 36}).h, 13);  // int(sqrt(2/3) * 16) = 13, int(sqrt(3/2) * 16) = 19
  EXPECT_EQ(glm_preview_grid({24, 36}).w, 19);
}

TEST(GlmImage, DitRopeMatchesGlmImageRotaryPosEmbed) {
  for (const auto& c : goldens()["dit_rope"]) {
    std::vector<float> cos, sin;
    glm_dit_rope(c["h"], c["w"], c["head_dim"], cos, sin);
    const auto gc = c["cos"].get<std::vector<std::vector<float>>>(),
               gs = c["sin"].get<std::vector<std::vector<float>>>();
    const std::size_t dim = c["head_dim"].get<std::size_t>();
    ASSERT_EQ(cos.size(), gc.size() * dim);
    // Angles up to 4 rad from float32 products; std::cos vs torch's vectorised cos differ by at most 1 ulp.
    for (std::size_t t = 0; t < gc.size(); ++t)
      for (std::size_t k = 0; k < dim; ++k) {
        EXPECT_NEAR(cos[t * dim + k], gc[t][k], 2e-7) << t << "," << k;
        EXPECT_NEAR(sin[t * dim + k], gs[t][k], 2e-7) << t << "," << k;
      }
  }
  std::vector<float> cos, sin;
  EXPECT_THROW(glm_dit_rope(2, 2, 42, cos, sin), std::invalid_argument);
}

TEST(GlmImage, TimestepsInBothDiffusersBehaviours) {
  SchedulerConfig cfg;
  cfg.use_dynamic_shifting = true;
  cfg.base_shift = 0.25;
  cfg.max_shift = 0.75;
  cfg.time_shift_type = "linear";
  for (const auto& c : goldens()["schedules"]) {
    const int64_t seq = (c["height"].get<int64_t>() / 16) * (c["width"].get<int64_t>() / 16);
    const int n = c["steps"];
    const Schedule un = glm_image_schedule(cfg, n, seq, GlmTimesteps::Unshifted);
    const Schedule sh = glm_image_schedule(cfg, n, seq, GlmTimesteps::Shifted);
    EXPECT_EQ(un.timesteps, c["unshifted_timesteps"].get<std::vector<float>>()) << c.dump();
    EXPECT_EQ(sh.timesteps, c["shifted_timesteps"].get<std::vector<float>>()) << c.dump();
    EXPECT_EQ(un.sigmas, c["sigmas"].get<std::vector<float>>());
    EXPECT_EQ(sh.sigmas, c["sigmas"].get<std::vector<float>>());
  }
  EXPECT_EQ(glm_timesteps_from_name("shifted"), GlmTimesteps::Shifted);
  EXPECT_THROW(glm_timesteps_from_name("both"), std::invalid_argument);
}

TEST(GlmImage, SamplingConfigFollowsTransformersDefaultsAndRefusesWhatItCannotDo) {
  const SamplingConfig d = SamplingConfig::from_json(json::object(), "g.json");
  EXPECT_EQ(d.top_k, 50);
  EXPECT_EQ(d.temperature, 1.0);
  EXPECT_EQ(d.top_p, 1.0);
  const SamplingConfig c =
      SamplingConfig::from_json({{"temperature", 0.9}, {"top_p", 0.75}, {"eos_token_id", 16385}}, "g.json");
  EXPECT_EQ(c.describe(), "temperature 0.9, top_k 50, top_p 0.75");
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{16385});
  try {
    SamplingConfig::from_json({{"repetition_penalty", 1.2}, {"guidance_scale", 2.0}}, "g.json");
    FAIL() << "unsupported settings were accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("g.json: sets repetition_penalty, guidance_scale"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(SamplingConfig::from_json({{"top_p", 0.0}}, "g.json"), std::invalid_argument);
  for (const json& j : {json{{"min_new_tokens", 4}}, json{{"renormalize_logits", true}},
                        json{{"exponential_decay_length_penalty", json::array({10, 1.5})}}})
    EXPECT_THROW(SamplingConfig::from_json(j, "g.json"), std::invalid_argument) << j.dump();
  EXPECT_NO_THROW(SamplingConfig::from_json({{"repetition_penalty", 1.0}, {"suppress_tokens", json::array()}}, "g"));
}
