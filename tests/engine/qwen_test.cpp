// Qwen-Image-Edit (qwen, qwen_singleimg) on its tiny bundle: sizes, sensitivity, true CFG, and the tiny
// components' wiring.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <torch/script.h>

#include <chrono>

#include "diffgentor/bundle.hpp"
#include "diffgentor/resize.hpp"
#include "fixture.hpp"

using namespace dg;
using dg::test::counter;
using dg::test::pattern;
using dg::test::Runner;
using dg::test::tiny_bundle;

TEST(QwenPipeline, OutputSizesFollowTheReferenceRules) {
  Runner plus("qwen");
  // Plus: output from the LAST image at 1024^2 area (multiples of 32).
  EditResult r = plus.run({pattern(96, 64, 1), pattern(40, 80, 2)}, "merge them", 1);
  const auto [w2, h2] = calculate_dimensions(1024.0 * 1024.0, 40.0 / 80);
  EXPECT_EQ(r.image.width, w2);
  EXPECT_EQ(r.image.height, h2);
  EXPECT_EQ(r.image.width, 736);
  EXPECT_EQ(r.image.height, 1440);
  r = plus.run({pattern(96, 64, 1)}, "one image", 1);
  EXPECT_EQ(r.image.width, 1248);
  EXPECT_EQ(r.image.height, 832);
  Runner single("qwen_singleimg");
  r = single.run({pattern(64, 64, 3)}, "square", 1);
  EXPECT_EQ(r.image.width, 1024);
  EXPECT_EQ(r.image.height, 1024);
  EXPECT_THROW(single.run({pattern(64, 64, 3), pattern(64, 64, 4)}, "two", 1), std::invalid_argument);
}

TEST(QwenPipeline, DeterministicAndSensitiveToEveryInput) {
  Runner plus("qwen");
  const Image a = pattern(64, 48, 1), b = pattern(48, 48, 2);
  const auto base = plus.run({a, b}, "make it blue", 5).image.rgb;
  EXPECT_EQ(plus.run({a, b}, "make it blue", 5).image.rgb, base);  // bit-identical
  EXPECT_NE(plus.run({a, b}, "make it blue", 6).image.rgb, base);  // seed
  EXPECT_NE(plus.run({a, b}, "make it red", 5).image.rgb, base);   // instruction
  Image a2 = a;
  for (int y = 10; y < 20; ++y) a2.pixel(10, y)[0] ^= 0x80;  // a changed reference image
  EXPECT_NE(plus.run({a2, b}, "make it blue", 5).image.rgb, base);
  Image b2 = b;
  b2.pixel(3, 3)[2] ^= 0xff;
  EXPECT_NE(plus.run({a, b2}, "make it blue", 5).image.rgb, base);
  // Removing the first reference keeps the output size (from the last image) but changes the output.
  const auto removed = plus.run({b}, "make it blue", 5);
  EXPECT_NE(removed.image.rgb, base);
}

TEST(QwenPipeline, TrueCfgDoublesTransformerCallsAndChangesTheOutput) {
  Runner plus("qwen");
  const Image a = pattern(64, 48, 1);
  const EditResult on = plus.run({a}, "x", 3, 3, std::nullopt, 4.0);
  const EditResult off = plus.run({a}, "x", 3, 3, std::nullopt, 1.0);
  EXPECT_EQ(counter(on, "transformer_calls"), 6);
  EXPECT_EQ(counter(off, "transformer_calls"), 3);
  EXPECT_NE(on.image.rgb, off.image.rgb);
  const EditResult other_scale = plus.run({a}, "x", 3, 3, std::nullopt, 2.0);
  EXPECT_NE(other_scale.image.rgb, on.image.rgb);
}

TEST(QwenPipeline, Float32RunsToo) {
  Runner plus("qwen", "float32");
  const EditResult r = plus.run({pattern(32, 32, 1)}, "x", 1, 2);
  EXPECT_EQ(r.image.width, 1024);
  // One step with Qwen's shift_terminal divides by zero (NaN in diffusers): an input error, not a black image.
  try {
    plus.run({pattern(32, 32, 1)}, "x", 1, 1);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("shift_terminal"), std::string::npos) << e.what();
  }
}

TEST(TinyComponents, ReactToEveryInput) {
  c10::InferenceMode guard;
  Bundle b = Bundle::open(tiny_bundle("qwen"), *find_model("qwen"), "float32", "cpu");
  auto changed = [](const at::Tensor& x, const at::Tensor& y) { return !at::allclose(x, y, 1e-6, 1e-7); };
  // Transformer: hidden states, text, timestep, both RoPE tables, modulate_index (zero_cond_t), the text mask.
  torch::jit::Module dit = b.load("transformer", "cpu");
  const int64_t S = 8, L = 5;
  std::vector<at::Tensor> in{at::randn({1, S, 64}),      at::randn({1, L, 32}), at::full({1}, 0.5f),
                             at::randn({S, 8, 2}),       at::randn({L, 8, 2}),  at::zeros({1, S}, at::kLong),
                             at::ones({1, L}, at::kBool)};
  in[5][0][S - 1] = 1;
  auto run_dit = [&](std::vector<at::Tensor> args) {
    return dit.forward(std::vector<c10::IValue>(args.begin(), args.end())).toTensor();
  };
  const at::Tensor base = run_dit(in);
  for (std::size_t k = 0; k < in.size(); ++k) {
    auto args = in;
    args[k] = args[k].clone();
    if (k == 5)
      args[k][0][S - 1] = 0;
    else if (k == 6)
      args[k][0][L - 1] = false;
    else if (k == 2)
      args[k] = at::full({1}, 0.25f);
    else
      args[k].view({-1})[0] += 1.0;
    EXPECT_TRUE(changed(run_dit(args), base)) << "transformer input " << k;
  }
  // Text encoder: ids, mask, each mRoPE axis, image embeddings.
  torch::jit::Module te = b.load("text_encoder", "cpu");
  const int32_t pad = te.attr("image_token_id").toInt();
  at::Tensor ids = at::tensor(std::vector<int64_t>{1, 2, pad, pad, 3, 4}).view({1, 6});
  std::vector<at::Tensor> tin{ids, at::ones({1, 6}, at::kLong), at::arange(6).view({1, 1, 6}).repeat({3, 1, 1}),
                              at::randn({2, 32})};
  auto run_te = [&](std::vector<at::Tensor> args) {
    return te.forward(std::vector<c10::IValue>(args.begin(), args.end())).toTensor();
  };
  const at::Tensor tbase = run_te(tin);
  for (int k = 0; k < 4; ++k) {
    auto args = tin;
    args[k] = args[k].clone();
    if (k == 0) args[0][0][1] = 5;
    if (k == 1) args[1][0][1] = 0;
    if (k == 3) args[3][1][0] += 1.0;
    if (k == 2) {
      for (int axis = 0; axis < 3; ++axis) {
        auto pos = tin;
        pos[2] = tin[2].clone();
        pos[2][axis][0][3] += 2;
        EXPECT_TRUE(changed(run_te(pos), tbase)) << "mRoPE axis " << axis;
      }
      continue;
    }
    EXPECT_TRUE(changed(run_te(args), tbase)) << "text encoder input " << k;
  }
  // Vision encoder: pixels, positions, both segment inputs.
  torch::jit::Module ve = b.load("vision_encoder", "cpu");
  std::vector<at::Tensor> vin{
      at::randn({8, 1176}),
      at::tensor(std::vector<int64_t>{0, 0, 0, 1, 1, 0, 1, 1, 0, 2, 0, 3, 1, 2, 1, 3}).view({8, 2}),
      at::tensor(std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 1}), at::zeros({8}, at::kLong)};
  auto run_ve = [&](std::vector<at::Tensor> args) {
    return ve.forward(std::vector<c10::IValue>(args.begin(), args.end())).toTensor();
  };
  const at::Tensor vbase = run_ve(vin);
  EXPECT_EQ(vbase.sizes(), (std::vector<int64_t>{2, 32}));
  for (int k = 0; k < 4; ++k) {
    auto args = vin;
    args[k] = args[k].clone();
    if (k == 0) args[0][5][7] += 1.0;
    if (k == 1) args[1][1][1] = 5;
    if (k == 2) args[2] = at::zeros({8}, at::kLong);
    if (k == 3) args[3] = at::tensor(std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 1});
    EXPECT_TRUE(changed(run_ve(args), vbase)) << "vision encoder input " << k;
  }
}

// An instruction over the pipelines' tokenizer_max_length (1024 text tokens) fails as input before any
// component runs, instead of trying to allocate attention over every token.
TEST(QwenPipeline, AnInstructionOverTheTextLimitIsAnInputError) {
  Runner plus("qwen");
  std::string text;
  for (int k = 0; k < 1100; ++k) text += "cat ";
  const auto t0 = std::chrono::steady_clock::now();
  try {
    plus.run({pattern(32, 32, 1)}, text, 1, 1);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("takes at most 1024"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}
