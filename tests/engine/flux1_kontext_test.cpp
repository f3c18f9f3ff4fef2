// FLUX.1-Kontext on its tiny bundle: preferred resolutions, the output size rule, sizes, optional true CFG,
// the T5 tail CLIP cannot see, and sensitivity.
#include <gtest/gtest.h>

#include "fixture.hpp"
#include "flux1_kontext.hpp"

using namespace dg;
using dg::test::counter;
using dg::test::pattern;
using dg::test::Runner;

TEST(Kontext, PreferredResolutionsAndOutputSizeRule) {
  EXPECT_EQ(kontext_preferred_resolution(96, 64), std::make_pair(1248, 832));
  EXPECT_EQ(kontext_preferred_resolution(64, 64), std::make_pair(1024, 1024));
  EXPECT_EQ(kontext_preferred_resolution(1000, 750), std::make_pair(1184, 880));  // ratio of 992x736
  EXPECT_EQ(kontext_preferred_resolution(300, 1400), std::make_pair(672, 1568));
  // docs/models/flux1_kontext.md: 768x1344 stays, 512x512 becomes 1024x1024, and 4 of the 17 preferred
  // resolutions change (800x1328 -> 784x1312).
  EXPECT_EQ(kontext_output_size(768, 1344), std::make_pair(768, 1344));
  EXPECT_EQ(kontext_output_size(800, 1328), std::make_pair(784, 1312));
  EXPECT_EQ(kontext_output_size(512, 512), std::make_pair(1024, 1024));
  EXPECT_EQ(kontext_output_size(1248, 832), std::make_pair(1248, 832));
}

TEST(Kontext, SizesTrueCfgAndSensitivity) {
  Runner k("flux1_kontext");
  auto run = [&](std::vector<Image> imgs, const std::string& text, uint64_t seed, double guidance,
                 std::optional<double> true_cfg = std::nullopt, std::optional<std::string> neg = std::nullopt) {
    return k.run(std::move(imgs), text, seed, 2, guidance, true_cfg, neg);
  };
  const Image a = pattern(96, 64, 1), c = pattern(64, 64, 3);
  const EditResult base = run({a, c}, "make the cat red", 1, 2.5);
  EXPECT_EQ(base.image.width, 1248);  // the first image's preferred resolution
  EXPECT_EQ(base.image.height, 832);
  EXPECT_EQ(counter(base, "transformer_calls"), 2);
  EXPECT_EQ(run({a, c}, "make the cat red", 1, 2.5).image.rgb, base.image.rgb);
  EXPECT_NE(run({a, c}, "make the cat red", 2, 2.5).image.rgb, base.image.rgb);
  EXPECT_NE(run({a, c}, "make the cat blue", 1, 2.5).image.rgb, base.image.rgb);
  EXPECT_NE(run({a, c}, "make the cat red", 1, 3.5).image.rgb, base.image.rgb);  // guidance embedding
  Image c2 = c;
  c2.pixel(10, 10)[1] ^= 0xff;
  EXPECT_NE(run({a, c2}, "make the cat red", 1, 2.5).image.rgb, base.image.rgb);  // the second reference (ids 2)
  // T5 sees what CLIP's 77 tokens cut off.
  std::string long_text;
  for (int i = 0; i < 90; ++i) long_text += "cat ";
  EXPECT_NE(run({a}, long_text + "red", 1, 2.5).image.rgb, run({a}, long_text + "blue", 1, 2.5).image.rgb);
  // True CFG only with a scale above 1 and a negative prompt.
  EXPECT_EQ(counter(run({a}, "x", 1, 2.5, 2.0, std::string("blurry")), "transformer_calls"), 4);
  EXPECT_EQ(counter(run({a}, "x", 1, 2.5, 2.0), "transformer_calls"), 2);
  EXPECT_EQ(counter(run({a}, "x", 1, 2.5, 1.0, std::string("blurry")), "transformer_calls"), 2);
}
