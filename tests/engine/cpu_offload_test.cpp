// Model-level CPU offload's moves (include/diffgentor/offload.hpp) on a real component, the tiny FLUX.2-klein VAE
// decoder: parked and brought back it computes the same image bit for bit; parked under `check` (weights emptied)
// it cannot run at all, which is what makes EveryImplementedType.CpuOffloadRunsEveryInvocationUnderALease
// (model_types_test.cpp) a test of lease coverage on a machine without a GPU. The Residency rule itself is
// tests/unit/residency_test.cpp. Also: a row's LoRA set switched while offloaded, and (with a GPU) the real move.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include "diffgentor/bundle.hpp"
#include "diffgentor/model_registry.hpp"
#include "diffgentor/offload.hpp"
#include "fixture.hpp"
#include "lora_file.hpp"

using namespace dg;

namespace {

at::Tensor decode(torch::jit::Module& vae, const at::Tensor& z) { return vae.forward({z}).toTensor(); }

}  // namespace

TEST(CpuOffload, AParkedComponentRunsOnlyOnceBroughtBackAndThenExactly) {
  const Bundle b = Bundle::open(dg::test::tiny_bundle("flux2_klein"), *find_model("flux2_klein"), "float32", "cpu");
  torch::jit::Module vae = b.load("vae_decoder", "cpu");
  c10::InferenceMode guard;  // as a row runs, and where the leases move weights
  const at::Tensor z = at::randn({1, 32, 8, 8}, at::TensorOptions().dtype(at::kFloat));
  const at::Tensor want = decode(vae, z);
  for (const bool check : {false, true}) {
    WeightParking parking(at::Device("cpu"), check);
    parking.park(vae);
    if (check) {
      EXPECT_ANY_THROW(decode(vae, z)) << "a component parked with its weights emptied ran";
      for (const at::Tensor& p : vae.parameters()) EXPECT_EQ(p.numel(), 0);
    }
    parking.bring(vae);
    EXPECT_TRUE(at::equal(decode(vae, z), want)) << "check " << check;
    for (const at::Tensor& p : vae.parameters()) EXPECT_GT(p.numel(), 0);
  }
}

// The real move, where a GPU is present (CI has none): parked, the weights are in CPU memory and the device's
// allocated memory drops by about their size; brought back, they are on the device and the output is the same bit for
// bit; the peak statistics count them.
TEST(CpuOffload, OnCudaTheWeightsLeaveTheDeviceAndComeBack) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device here";
  const at::Device cuda("cuda:0");
  const Bundle b = Bundle::open(dg::test::tiny_bundle("flux2_klein"), *find_model("flux2_klein"), "float32", "cuda:0");
  torch::jit::Module vae = b.load("vae_decoder", "cuda:0");
  c10::InferenceMode guard;
  const at::Tensor z = at::randn({1, 32, 8, 8}, at::TensorOptions().dtype(at::kFloat).device(cuda));
  const at::Tensor want = decode(vae, z).cpu();
  int64_t bytes = 0;
  for (const at::Tensor& p : vae.parameters()) bytes += p.nbytes();
  reset_device_peak(cuda);
  const std::optional<int64_t> before = device_peak_bytes(cuda);
  ASSERT_TRUE(before.has_value());
  WeightParking parking(cuda, false);
  parking.park(vae);
  for (const at::Tensor& p : vae.parameters()) EXPECT_TRUE(p.is_cpu());
  reset_device_peak(cuda);
  EXPECT_LE(*device_peak_bytes(cuda), *before - bytes + (1 << 20)) << "the weights still take device memory";
  parking.bring(vae);
  for (const at::Tensor& p : vae.parameters()) EXPECT_TRUE(p.is_cuda());
  EXPECT_TRUE(at::equal(decode(vae, z).cpu(), want));
}

// A row's LoRA set switched in an offloaded pipeline (check mode: the transformer's weights are emptied whenever no
// lease holds it, so the restore and the merge must bring it back first): the images of a pipeline that loaded the
// set with --lora, and of one without LoRAs, bit for bit.
TEST(CpuOffload, ARowsLoraSetIsMergedIntoTheTransformerBroughtBack) {
  const dg::test::TempDir d;
  const std::string lora = d / "a.safetensors";
  dg::test::write_tiny_proj_out_lora(lora, 1);
  const ModelSpec* spec = find_model("flux2_klein");
  const auto make = [&](bool offload, std::vector<LoraSpec> loras) {
    PipelineConfig cfg{spec, dg::test::tiny_bundle("flux2_klein"), "cpu", "float32", {}, {}, {}};
    cfg.cpu_offload = cfg.offload_check = cfg.row_loras = offload;
    cfg.loras = std::move(loras);
    return find_model_entry("flux2_klein")->make_pipeline(cfg);
  };
  const auto off = make(true, {}), with = make(false, {{lora, 0.7}}), plain = make(false, {});
  EditRequest r;
  r.images = {dg::test::pattern(96, 64, 1)};
  r.instruction = "make it blue";
  r.seed = 3;
  r.params = merge_params(*spec, {2, std::nullopt, std::nullopt, std::nullopt});
  EditRequest own = r;
  own.loras = std::vector<LoraSpec>{{lora, 0.7}};
  EXPECT_EQ(off->edit(own).image.rgb, with->edit(r).image.rgb);
  EXPECT_EQ(off->edit(r).image.rgb, plain->edit(r).image.rgb);  // back to the weights as loaded
  EXPECT_NE(with->edit(r).image.rgb, plain->edit(r).image.rgb);
}

TEST(CpuOffload, NoDevicePeakOnTheCpu) {
  EXPECT_FALSE(device_peak_bytes(at::Device("cpu")).has_value());
  reset_device_peak(at::Device("cpu"));  // nothing to reset, and no throw
}
