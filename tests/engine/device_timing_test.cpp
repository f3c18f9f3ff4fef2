// PipelineConfig::device_timing (the engine bench's -timed modes, bench/engine_bench.cpp): on CUDA the denoising
// loop's transformer invocations are timed on the device with events (include/diffgentor/call_batcher.hpp,
// DeviceSpan), alone and merged in a batch; on the CPU it changes nothing. Also the CUDA stage clock, which waits for
// the device at each lap, so that the loop's own stage holds the device time of its invocations.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "diffgentor/model_registry.hpp"
#include "fixture.hpp"

using namespace dg;

namespace {

std::unique_ptr<Pipeline> klein(const std::string& device, bool timed) {
  PipelineConfig cfg{find_model("flux2_klein"), dg::test::tiny_bundle("flux2_klein"), device, "float32", {}, {}, {}};
  cfg.device_timing = timed;
  return find_model_entry("flux2_klein")->make_pipeline(cfg);
}

EditRequest request(uint64_t seed) {
  EditRequest r;
  r.images = {dg::test::pattern(96, 64, static_cast<int>(seed))};
  r.instruction = "make it blue";
  r.seed = seed;
  r.params = merge_params(*find_model("flux2_klein"), {3, std::nullopt, std::nullopt, std::nullopt});
  return r;
}

double stage(const EditResult& r, const std::string& name) {
  for (const auto& [k, v] : r.stage_seconds)
    if (k == name) return v;
  return -1;
}

}  // namespace

TEST(DeviceTiming, OnTheCpuItChangesNothing) {
  const EditResult timed = klein("cpu", true)->edit(request(1)), plain = klein("cpu", false)->edit(request(1));
  EXPECT_EQ(timed.image.rgb, plain.image.rgb);
  EXPECT_EQ(dg::test::counter(timed, "transformer_device_us"), -1);
  EXPECT_GT(dg::test::counter(timed, "transformer_us"), 0);
}

// Where a GPU is present (CI has none): every row, alone or in a batch of two whose steps run as one invocation,
// reports its transformer's device time, which fits inside its denoising stage; the images are those of the run
// without device timing, bit for bit.
TEST(DeviceTiming, OnCudaTheTransformerIsTimedOnTheDeviceInsideItsLoop) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device here";
  const auto timed = klein("cuda:0", true), plain = klein("cuda:0", false);
  const EditResult alone = timed->edit(request(1));
  EXPECT_EQ(alone.image.rgb, plain->edit(request(1)).image.rgb);
  EXPECT_EQ(dg::test::counter(plain->edit(request(1)), "transformer_device_us"), -1);
  const std::vector<BatchOutcome> batch = timed->edit_batch({request(1), request(2)});
  ASSERT_EQ(batch.size(), 2u);
  for (const EditResult* r : {&alone, &batch[0].result, &batch[1].result}) {
    const int64_t on_device = dg::test::counter(*r, "transformer_device_us");
    EXPECT_GT(on_device, 0);
    EXPECT_LE(on_device * 1e-6, stage(*r, "denoise") + 1e-4);
  }
  EXPECT_FALSE(batch[0].error || batch[1].error);
  EXPECT_EQ(dg::test::counter(batch[0].result, "transformer_batch"), 2) << "the batch's steps did not merge";
}
