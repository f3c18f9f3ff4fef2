// The tensor helpers every pipeline shares (include/diffgentor/latents.hpp), against PyTorch's own results.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <limits>

#include "diffgentor/latents.hpp"
#include "diffgentor/scheduler.hpp"
#include "fixture.hpp"

using namespace dg;
using dg::test::pattern;

TEST(Latents, PackUnpackRoundTripAndTokenOrder) {
  const at::Tensor x = at::arange(2 * 3 * 4 * 6, at::kFloat).view({2, 3, 4, 6});
  const at::Tensor p = pack_latents(x);
  ASSERT_EQ(p.sizes(), (std::vector<int64_t>{2, 6, 12}));
  // token (0, 0) holds c*4 + dy*2 + dx = x[c, dy, dx]
  EXPECT_EQ(p[0][0][4 * 1 + 2 * 1 + 0].item<float>(), x[0][1][1][0].item<float>());
  EXPECT_EQ(p[0][1][0].item<float>(), x[0][0][0][2].item<float>());  // row-major tokens
  EXPECT_TRUE(at::equal(unpack_latents(p, 4, 6, 3), x));
}

TEST(Latents, SeededNoiseMatchesPyTorchAndIsDrawnInItsDtype) {
  // torch.manual_seed(0); torch.randn(4) in Python gives 1.5410, -0.2934, -2.1788, 0.5684.
  const at::Tensor n = seeded_noise({4}, 0, at::kFloat, "cpu");
  const float want[] = {1.5410f, -0.2934f, -2.1788f, 0.5684f};
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(n[k].item<float>(), want[k], 1e-4);
  EXPECT_TRUE(at::equal(seeded_noise({2, 3}, 7, at::kBFloat16, "cpu"),
                        seeded_noise({6}, 7, at::kBFloat16, "cpu").view({2, 3})));
  EXPECT_FALSE(at::equal(seeded_noise({64}, 7, at::kBFloat16, "cpu"),
                         seeded_noise({64}, 7, at::kFloat, "cpu").to(at::kBFloat16)));
}

TEST(Latents, EulerStepRoundsLikePyTorchBf16) {
  // docs/numerics.md, "Euler step": x_next = bf16(f32(x) + f32(bf16(bf16(dt) * v))) for bf16 v.
  const at::Tensor x = at::randn({4096}, at::kFloat).to(at::kBFloat16);
  const at::Tensor v = at::randn({4096}, at::kFloat).to(at::kBFloat16);
  const float s0 = 0.91372549f, s1 = 0.87254903f;
  const float dt = bf16_round(s1 - s0);
  const at::Tensor prod = (v.to(at::kFloat) * dt).to(at::kBFloat16).to(at::kFloat);
  const at::Tensor want = (x.to(at::kFloat) + prod).to(at::kBFloat16);
  EXPECT_TRUE(at::equal(euler_step(x, v, s0, s1), want));
}

TEST(Latents, ImageRoundTripThroughMinusOneOne) {
  const Image img = pattern(5, 3, 1);
  EXPECT_EQ(tensor_to_image(image_to_tensor(img, at::kFloat, "cpu")).rgb, img.rgb);
}

// A decoded image with NaN or Inf fails instead of becoming a black (clamped) image recorded as ok.
TEST(Latents, NonFiniteOutputFailsTheRow) {
  at::Tensor x = at::zeros({1, 3, 4, 4});
  EXPECT_NO_THROW(tensor_to_image(x));
  x[0][1][2][3] = std::numeric_limits<float>::quiet_NaN();
  x[0][0][0][0] = std::numeric_limits<float>::infinity();
  try {
    tensor_to_image(x);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("2 non-finite value(s) (NaN or Inf) out of 48"), std::string::npos)
        << e.what();
  }
}
