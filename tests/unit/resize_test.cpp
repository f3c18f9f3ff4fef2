// Pinned by tests/data/images: Pillow 9.4.0 outputs and transformers/diffusers sizing rules.
#include "diffgentor/resize.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "diffgentor/fs.hpp"
#include "diffgentor/image_io.hpp"
#include "testdata.hpp"

using namespace dg;
using nlohmann::json;

namespace {

Image load(const std::string& rel) {
  return decode_image(read_file_bytes(dg::test::testdata_dir() + "/images/" + rel), int64_t(1) << 30);
}

}  // namespace

TEST(Resize, MatchesPillowExactly) {
  DG_REQUIRE_TESTDATA("images/resize_cases.json");
  const json cases = json::parse(std::ifstream(dg::test::testdata_dir() + "/images/resize_cases.json"));
  int checked = 0;
  for (const auto& c : cases["cases"]) {
    const Image src = load("src/" + c["input"].get<std::string>());
    const Image want = load("out/" + c["output"].get<std::string>());
    const auto filter = c["filter"] == "lanczos" ? ResampleFilter::Lanczos : ResampleFilter::Bicubic;
    const Image got = resize_pil(src, c["width"], c["height"], filter);
    ASSERT_EQ(got.width, want.width);
    ASSERT_EQ(got.height, want.height);
    int max_diff = 0;
    std::size_t differing = 0;
    for (std::size_t k = 0; k < got.rgb.size(); ++k) {
      const int d = std::abs(int(got.rgb[k]) - int(want.rgb[k]));
      max_diff = std::max(max_diff, d);
      differing += d != 0;
    }
    EXPECT_EQ(max_diff, 0) << c["output"] << ": " << differing << " bytes differ";
    ++checked;
  }
  EXPECT_EQ(checked, 20);
}

TEST(Resize, SameSizeIsACopyAndBadSizesThrow) {
  Image img{3, 2, std::vector<uint8_t>(18, 7)};
  EXPECT_EQ(resize_pil(img, 3, 2, ResampleFilter::Lanczos).rgb, img.rgb);
  EXPECT_THROW(resize_pil(img, 0, 2, ResampleFilter::Bicubic), std::invalid_argument);
  // A flat image stays flat under both filters, whatever the scale.
  for (auto f : {ResampleFilter::Lanczos, ResampleFilter::Bicubic}) {
    const Image up = resize_pil(img, 11, 5, f);
    for (uint8_t v : up.rgb) EXPECT_EQ(v, 7);
  }
}

TEST(Sizing, SmartResizeAndCalculateDimensionsMatchUpstream) {
  DG_REQUIRE_TESTDATA("images/dims.json");
  const json dims = json::parse(std::ifstream(dg::test::testdata_dir() + "/images/dims.json"));
  int checked = 0;
  for (const auto& r : dims["rows"]) {
    const int w = r["width"], h = r["height"];
    const std::string where = std::to_string(w) + "x" + std::to_string(h);
    const auto sr = smart_resize(h, w, 28, 3136, 12845056);
    EXPECT_EQ(sr.first, r["smart_resize"]["height"].get<int>()) << where;
    EXPECT_EQ(sr.second, r["smart_resize"]["width"].get<int>()) << where;
    EXPECT_EQ(sr.first / 14 * (sr.second / 14) / 4, r["smart_resize"]["image_tokens"].get<int>()) << where;
    for (const char* key : {"calculate_dimensions_1024x1024", "calculate_dimensions_384x384"}) {
      const double area = std::string(key).find("1024") != std::string::npos ? 1024.0 * 1024 : 384.0 * 384;
      const auto [cw, ch] = calculate_dimensions(area, double(w) / h);
      EXPECT_EQ(cw, r[key]["width"].get<int>()) << where << " " << key;
      EXPECT_EQ(ch, r[key]["height"].get<int>()) << where << " " << key;
      const auto then = smart_resize(ch, cw, 28, 3136, 12845056);
      EXPECT_EQ(then.first, r[key]["then_smart_resize"]["height"].get<int>()) << where << " " << key;
      EXPECT_EQ(then.second, r[key]["then_smart_resize"]["width"].get<int>()) << where << " " << key;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 17);
  EXPECT_THROW(smart_resize(10, 2500), std::invalid_argument);
  EXPECT_EQ(round_half_even(36.5), 36.0);
  EXPECT_EQ(round_half_even(37.5), 38.0);
}
