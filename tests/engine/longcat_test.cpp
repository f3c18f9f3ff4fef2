// LongCat-Image-Edit on its tiny bundle: quote splitting as upstream, sizes, plain CFG and sensitivity.
#include <gtest/gtest.h>

#include "diffgentor/tokenizer.hpp"
#include "fixture.hpp"
#include "longcat.hpp"

using namespace dg;
using dg::test::counter;
using dg::test::pattern;
using dg::test::Runner;
using dg::test::tiny_bundle;

TEST(LongCat, QuoteSplittingAsUpstream) {
  // The example in upstream's split_quotation docstring.
  const auto parts = longcat_split_quotation("Please write 'Hello' on the blackboard for me.");
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0], std::make_pair(std::string("Please write "), false));
  EXPECT_EQ(parts[1], std::make_pair(std::string("'Hello'"), true));
  EXPECT_EQ(parts[2], std::make_pair(std::string(" on the blackboard for me."), false));
  // Word-internal apostrophes are not quotes; curly and double quotes are.
  const auto more = longcat_split_quotation("don't erase \"OPEN\" or \u201c\u4f60\u597d\u201d, it's fine");
  ASSERT_EQ(more.size(), 5u);
  EXPECT_EQ(more[0], std::make_pair(std::string("don't erase "), false));
  EXPECT_EQ(more[1], std::make_pair(std::string("\"OPEN\""), true));
  EXPECT_EQ(more[3], std::make_pair(std::string("\u201c\u4f60\u597d\u201d"), true));
  EXPECT_EQ(more[4], std::make_pair(std::string(", it's fine"), false));
  EXPECT_EQ(longcat_split_quotation("an 'unclosed quote").size(), 1u);
  // Quoted spans are tokenised one character at a time.
  const Tokenizer tok = Tokenizer::from_file(tiny_bundle("qwen") + "/tokenizer/tokenizer.json");
  std::vector<int32_t> want = tok.encode("write ");
  for (const char* c : {"'", "H", "i", "'"}) {
    const auto t = tok.encode(c);
    want.insert(want.end(), t.begin(), t.end());
  }
  EXPECT_EQ(longcat_prompt_tokens(tok, "write 'Hi'"), want);
  EXPECT_EQ(longcat_dimensions(1024.0 * 1024, 1.5), std::make_pair(1264, 848));
  EXPECT_EQ(longcat_dimensions(1024.0 * 1024, 1.0), std::make_pair(1024, 1024));
}

TEST(LongCat, SizesCfgAndSensitivity) {
  Runner lc("longcat");
  const Image a = pattern(96, 64, 1);
  auto run = [&](const Image& img, const std::string& text, uint64_t seed, double guidance,
                 const std::string& neg = "") { return lc.run({img}, text, seed, 2, guidance, std::nullopt, neg); };
  const EditResult base = run(a, "write 'OPEN' on the sign", 1, 4.5);
  EXPECT_EQ(base.image.width, 1264);  // calculate_dimensions rounded up to 16, from the input
  EXPECT_EQ(base.image.height, 848);
  EXPECT_EQ(counter(base, "transformer_calls"), 4);  // plain CFG: two calls per step
  EXPECT_EQ(counter(run(a, "write 'OPEN' on the sign", 1, 1.0), "transformer_calls"), 2);
  EXPECT_EQ(run(a, "write 'OPEN' on the sign", 1, 4.5).image.rgb, base.image.rgb);
  EXPECT_NE(run(a, "write 'OPEN' on the sign", 2, 4.5).image.rgb, base.image.rgb);
  EXPECT_NE(run(a, "write 'CLOSED' on the sign", 1, 4.5).image.rgb, base.image.rgb);
  EXPECT_NE(run(a, "write 'OPEN' on the sign", 1, 4.5, "blurry").image.rgb, base.image.rgb);
  Image a2 = a;
  a2.pixel(50, 30)[0] ^= 0xff;
  EXPECT_NE(run(a2, "write 'OPEN' on the sign", 1, 4.5).image.rgb, base.image.rgb);
  EditRequest two;
  two.images = {a, a};
  two.instruction = "x";
  two.params.steps = 1;
  EXPECT_THROW(lc.pipe->edit(two), std::invalid_argument);
}
