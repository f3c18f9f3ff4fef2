// Every row of the model table, walked: implemented rows have both factories and a pipeline that runs on
// its tiny bundle under the table's rules; planned rows have neither. A new type gets these checks by
// adding its row.
#include <gtest/gtest.h>

#include <algorithm>

#include "fixture.hpp"

using namespace dg;
using dg::test::pattern;
using dg::test::Runner;

TEST(ModelRegistry, ImplementedTypesHaveAPipelineAndATinyBundle) {
  std::size_t implemented = 0;
  for (const ModelSpec& spec : model_table()) {
    const ModelEntry* e = find_model_entry(spec.type);
    if (!spec.implemented()) {
      EXPECT_EQ(e, nullptr) << spec.type << " is planned but has factories";
      continue;
    }
    ++implemented;
    ASSERT_NE(e, nullptr) << spec.type;
    EXPECT_TRUE(e->make_pipeline && e->make_tiny) << spec.type;
  }
  EXPECT_GE(implemented, 6u);
}

namespace {

std::vector<std::string> implemented_types() {
  std::vector<std::string> out;
  for (const ModelSpec& spec : model_table())
    if (spec.implemented()) out.push_back(spec.type);
  return out;
}

double seconds_of(const EditResult& r, const std::string& stage) {
  for (const auto& [name, s] : r.stage_seconds)
    if (name == stage) return s;
  return -1;
}

class EveryImplementedType : public ::testing::TestWithParam<std::string> {};

}  // namespace

// Two steps on the tiny bundle in float32 (bfloat16, determinism and sensitivity are in each type's own
// test file): an image with sides multiples of 16, every stage timed.
TEST_P(EveryImplementedType, RunsOnItsTinyBundle) {
  Runner r(GetParam(), "float32");
  const std::vector<Image> images(static_cast<std::size_t>(r.spec->images.min_images), pattern(96, 64, 1));
  const EditResult a = r.run(images, "make it blue", 7);
  ASSERT_FALSE(a.image.empty());
  EXPECT_EQ(a.image.width % 16, 0);
  EXPECT_EQ(a.image.height % 16, 0);
  EXPECT_EQ(a.image.rgb.size(), static_cast<std::size_t>(a.image.width) * a.image.height * 3);
  EXPECT_GT(*std::max_element(a.image.rgb.begin(), a.image.rgb.end()), 0) << "an all-black image";
  EXPECT_GE(seconds_of(a, "denoise"), 0.0) << "no denoise stage timed";
  EXPECT_GE(seconds_of(a, "vae_decode"), 0.0) << "no vae_decode stage timed";
}

// The table's input rules hold at the engine's entry too, as InputError (never retried by the runner).
TEST_P(EveryImplementedType, RefusesInputThatBreaksTheTableRules) {
  Runner r(GetParam());
  const ImageRules& rules = r.spec->images;
  EXPECT_THROW(r.run({}, "x", 1, 1), InputError);
  if (rules.max_images) {
    const std::vector<Image> too_many(static_cast<std::size_t>(*rules.max_images + 1), pattern(96, 64, 1));
    EXPECT_THROW(r.run(too_many, "x", 1, 1), InputError);
  }
  if (rules.min_side > 1) {
    EXPECT_THROW(r.run({pattern(rules.min_side - 1, 96, 1)}, "x", 1, 1), InputError);
  }
  if (rules.max_aspect) {
    const int side = std::max(rules.min_side, 16);
    EXPECT_THROW(r.run({pattern(static_cast<int>(side * (*rules.max_aspect + 1)), side, 1)}, "x", 1, 1), InputError);
  }
}

INSTANTIATE_TEST_SUITE_P(ModelTable, EveryImplementedType, ::testing::ValuesIn(implemented_types()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });
