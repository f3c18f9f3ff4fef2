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

// --enable_cpu_offload, run on the CPU with the offloaded weights emptied while parked and a component parked as soon
// as its last lease ends (offload_check): a component invoked without a lease fails on its weights' shapes, so a run
// that finishes shows every invocation of the type's pipeline covered. The image equals the run without offload bit for
// bit (the same weights and kernels); the second row uploads as many components as the first (the steady state: the
// last row's VAE decoder leaves at the next row's first upload); a batch of two rows, whose merged calls run while each
// row holds its lease, gives each row's image within one level of the row alone (the batching bound,
// engine/batching_test.cpp).
TEST_P(EveryImplementedType, CpuOffloadRunsEveryInvocationUnderALease) {
  Runner plain(GetParam(), "float32");
  PipelineConfig cfg{plain.spec, dg::test::tiny_bundle(GetParam()), "cpu", "float32", {}, {}, {}};
  cfg.cpu_offload = cfg.offload_check = true;
  const std::unique_ptr<Pipeline> off = find_model_entry(plain.spec->type)->make_pipeline(cfg);
  std::vector<EditRequest> rows(2);
  for (int k = 0; k < 2; ++k) {
    rows[k].images.assign(static_cast<std::size_t>(plain.spec->images.min_images), pattern(96, 64, k + 1));
    rows[k].instruction = k ? "add a hat" : "make it blue";
    rows[k].seed = 7 + k;
    rows[k].params = merge_params(*plain.spec, {2, std::nullopt, std::nullopt, std::nullopt});
  }
  std::vector<EditResult> alone;
  for (const EditRequest& r : rows) {
    alone.push_back(off->edit(r));
    EXPECT_EQ(alone.back().image.rgb, plain.pipe->edit(r).image.rgb) << "offloading changed the image";
    EXPECT_EQ(dg::test::counter(alone.back(), "device_peak_mib"), -1) << "a CPU run has no device peak";
  }
  const int64_t uploads = dg::test::counter(alone[0], "offload_uploads");
  EXPECT_GE(uploads, 3) << "text encoder, transformer and VAE decoder at least";
  EXPECT_EQ(dg::test::counter(alone[1], "offload_uploads"), uploads);
  const std::vector<BatchOutcome> batch = off->edit_batch(rows);
  for (std::size_t k = 0; k < rows.size(); ++k) {
    ASSERT_FALSE(batch[k].error) << "row " << k << " of the offloaded batch failed";
    EXPECT_LE(dg::test::max_pixel_diff(batch[k].result.image, alone[k].image), 1) << "row " << k;
    EXPECT_GE(dg::test::counter(batch[k].result, "offload_uploads"), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(ModelTable, EveryImplementedType, ::testing::ValuesIn(implemented_types()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });
