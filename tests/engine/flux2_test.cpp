// FLUX.2 (flux2, flux2_klein) on their tiny bundles: reference preparation, ids, patchify and batch norm,
// sizes, CFG kinds and sensitivity, the chat template's tokens, and the DiT's wiring.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <torch/script.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "diffgentor/bundle.hpp"
#include "diffgentor/latents.hpp"
#include "diffgentor/tokenizer.hpp"
#include "fixture.hpp"
#include "flux2.hpp"

using namespace dg;
using dg::test::counter;
using dg::test::pattern;
using dg::test::Runner;
using dg::test::tiny_bundle;

TEST(Flux2, ReferencePreparationAndIds) {
  // The reference rules live in the model table; the pipeline refuses a row that breaks them (InputError).
  for (const char* type : {"flux2", "flux2_klein"}) {
    EXPECT_NE(image_size_problem(*find_model(type), 63, 100), "") << type;
    EXPECT_NE(image_size_problem(*find_model(type), 900, 100), "") << type;  // aspect 9
    EXPECT_EQ(image_size_problem(*find_model(type), 64, 512), "") << type;   // aspect 8
  }
  const Image small = flux2_reference(pattern(70, 75, 1));  // centre crop to 64x64, no resampling
  ASSERT_EQ(small.width, 64);
  ASSERT_EQ(small.height, 64);
  const Image src = pattern(70, 75, 1);
  EXPECT_EQ(small.pixel(0, 0)[0], src.pixel(3, 5)[0]);
  EXPECT_EQ(small.pixel(63, 63)[2], src.pixel(66, 68)[2]);
  const Image big = flux2_reference(pattern(1500, 1000, 2));  // capped to 1024^2 area: int(1254.1) x int(836.1)
  EXPECT_EQ(big.width, 1248);
  EXPECT_EQ(big.height, 832);
  EXPECT_EQ(flux2_image_ids(20, 2, 3),
            (std::vector<int64_t>{20, 0, 0, 0, 20, 0, 1, 0, 20, 0, 2, 0, 20, 1, 0, 0, 20, 1, 1, 0, 20, 1, 2, 0}));
}

TEST(Flux2, PatchifyAndBatchNormRoundTrip) {
  const at::Tensor z = at::randn({1, 32, 6, 4});
  const at::Tensor p = patchify_2x2(z);
  ASSERT_EQ(p.sizes(), (std::vector<int64_t>{1, 128, 3, 2}));
  EXPECT_EQ(p[0][5 * 4 + 1 * 2 + 1][2][1].item<float>(), z[0][5][5][3].item<float>());  // c*4 + dy*2 + dx
  const at::Tensor mean = at::randn({1, 128, 1, 1}), stdv = at::rand({1, 128, 1, 1}) + 0.5;
  const at::Tensor tokens = to_tokens((p - mean) / stdv);
  ASSERT_EQ(tokens.sizes(), (std::vector<int64_t>{1, 6, 128}));
  EXPECT_TRUE(at::allclose(unpatchify_2x2(from_tokens(tokens, 3, 2) * stdv + mean), z, 1e-5, 1e-6));
}

TEST(Flux2, SizesCallsAndSensitivity) {
  Runner dev("flux2");
  const Image a = pattern(96, 64, 1), b = pattern(80, 80, 2);
  EditResult r = dev.run({a, b}, "add a moon", 3, 2, 4.0);
  EXPECT_EQ(r.image.width, 96);  // the first reference's processed size
  EXPECT_EQ(r.image.height, 64);
  EXPECT_EQ(counter(r, "transformer_calls"), 2);  // distilled guidance: one call per step
  const auto base = r.image.rgb;
  EXPECT_EQ(dev.run({a, b}, "add a moon", 3, 2, 4.0).image.rgb, base);
  EXPECT_NE(dev.run({a, b}, "add a moon", 4, 2, 4.0).image.rgb, base);
  EXPECT_NE(dev.run({a, b}, "add a sun", 3, 2, 4.0).image.rgb, base);
  EXPECT_NE(dev.run({a, b}, "add a moon", 3, 2, 2.5).image.rgb, base);  // guidance embedding
  Image b2 = b;
  b2.pixel(40, 40)[1] ^= 0xff;
  EXPECT_NE(dev.run({a, b2}, "add a moon", 3, 2, 4.0).image.rgb, base);  // the second reference
  EXPECT_NE(dev.run({a}, "add a moon", 3, 2, 4.0).image.rgb, base);
  EXPECT_THROW(dev.run({pattern(40, 40, 1)}, "tiny input", 3), std::invalid_argument);

  Runner distilled("flux2_klein");
  EXPECT_EQ(counter(distilled.run({a}, "x", 1, 3, 4.0), "transformer_calls"), 3);    // no CFG when distilled
  const auto klein_base = distilled.run({a, b}, "add a moon", 3, 2, 1.0).image.rgb;  // multi-image row
  EXPECT_EQ(distilled.run({a, b}, "add a moon", 3, 2, 1.0).image.rgb, klein_base);
  EXPECT_NE(distilled.run({a, b}, "add a sun", 3, 2, 1.0).image.rgb, klein_base);
  EXPECT_NE(distilled.run({a, b2}, "add a moon", 3, 2, 1.0).image.rgb, klein_base);
  EXPECT_NE(distilled.run({a, b}, "add a moon", 4, 2, 1.0).image.rgb, klein_base);
  Runner undistilled("flux2_klein_base");
  const EditResult with_cfg = undistilled.run({a}, "x", 1, 3, 4.0);
  EXPECT_EQ(counter(with_cfg, "transformer_calls"), 6);  // plain CFG against ""
  const EditResult without = undistilled.run({a}, "x", 1, 3, 1.0);
  EXPECT_EQ(counter(without, "transformer_calls"), 3);
  EXPECT_NE(with_cfg.image.rgb, without.image.rgb);
}

TEST(Flux2, MistralTemplateTokensComeFromTheBundle) {
  const Tokenizer tok = Tokenizer::from_file(tiny_bundle("flux2") + "/tokenizer/tokenizer.json");
  const auto ids = tok.encode("<s>[SYSTEM_PROMPT]hi[/SYSTEM_PROMPT][INST]a cat[/INST]");
  ASSERT_GE(ids.size(), 6u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids[1], 17);
  EXPECT_EQ(ids.back(), 4);
  EXPECT_EQ(*tok.token_to_id("<pad>"), 11);
}

TEST(TinyComponents, Flux2TransformerReactsToIdsAndGuidance) {
  c10::InferenceMode guard;
  Bundle b = Bundle::open(tiny_bundle("flux2"), *find_model("flux2"), "float32", "cpu");
  torch::jit::Module dit = b.load("transformer", "cpu");
  const int64_t S = 6, L = 4;
  std::vector<at::Tensor> in{at::randn({1, S, 128}), at::randn({1, L, 96}),        at::full({1}, 0.5f),
                             at::full({1}, 4.0f),    at::zeros({S, 4}, at::kLong), at::zeros({L, 4}, at::kLong)};
  for (int64_t s = 0; s < S; ++s) in[4][s][1] = s / 3, in[4][s][2] = s % 3;
  for (int64_t l = 0; l < L; ++l) in[5][l][3] = l;
  auto run = [&](const std::vector<at::Tensor>& args) {
    return dit.forward(std::vector<c10::IValue>(args.begin(), args.end())).toTensor();
  };
  const at::Tensor base = run(in);
  for (int k : {2, 3, 4, 5}) {
    auto args = in;
    args[k] = args[k].clone();
    if (k == 2) args[k] = at::full({1}, 0.25f);
    if (k == 3) args[k] = at::full({1}, 2.0f);
    if (k == 4) args[k][S - 1][0] = 10;  // one token moves to reference frame T = 10
    if (k == 5) args[k][1][3] = 7;
    EXPECT_FALSE(at::allclose(run(args), base, 1e-6, 1e-7)) << "input " << k;
  }
}

TEST(Flux2, UpsamplingNeedsABundleExportedWithTheUpsampler) {
  // make-tiny writes no optional group, so its flux2 bundle stands for one exported without --with_upsampler.
  const ModelSpec* spec = find_model("flux2");
  PromptUpsampling up;
  up.enabled = true;
  try {
    find_model_entry("flux2")->make_pipeline(PipelineConfig{spec, tiny_bundle("flux2"), "cpu", "float32", {}, {}, up});
    FAIL() << "a bundle without the upsampler was accepted for upsampling";
  } catch (const BundleError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("--with_upsampler"), std::string::npos) << what;
    EXPECT_NE(what.find("DG_FLUX2_ENHANCER_MODE=api"), std::string::npos) << what;
  }
  // Without upsampling the same bundle loads; and a bundle never holds the upsampler's methods unlisted.
  const Bundle b = Bundle::open(tiny_bundle("flux2"), *spec, "float32", "cpu");
  EXPECT_FALSE(b.has_optional("upsampler"));
  EXPECT_THROW(b.load("upsampler_vision", "cpu"), BundleError);
}

TEST(Flux2, AManifestListingAnUnknownOptionalGroupIsRefused) {
  namespace fs = std::filesystem;
  const fs::path copy = fs::temp_directory_path() / "dg_flux2_optional_test";
  fs::remove_all(copy);
  fs::copy(tiny_bundle("flux2"), copy, fs::copy_options::recursive);
  const fs::path manifest = copy / "torchscript" / "manifest.json";
  nlohmann::json m = nlohmann::json::parse(std::ifstream(manifest));
  m["optional"] = {"no_such_group"};
  std::ofstream(manifest) << m.dump();
  try {
    Bundle::open(copy.string(), *find_model("flux2"), "float32", "cpu");
    FAIL() << "accepted an unknown optional group";
  } catch (const BundleError& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_group"), std::string::npos) << e.what();
  }
  m["optional"] = {"upsampler"};  // listed, but the files are not there
  std::ofstream(manifest) << m.dump();
  try {
    Bundle::open(copy.string(), *find_model("flux2"), "float32", "cpu");
    FAIL() << "accepted an upsampler whose components are missing";
  } catch (const BundleError& e) {
    EXPECT_NE(std::string(e.what()).find("upsampler_vision"), std::string::npos) << e.what();
  }
  fs::remove_all(copy);
}
