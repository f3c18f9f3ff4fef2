#include "diffgentor/latents.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <stdexcept>

namespace dg {

at::Tensor pack_latents(const at::Tensor& x) {
  const int64_t B = x.size(0), C = x.size(1), h = x.size(2), w = x.size(3);
  return x.view({B, C, h / 2, 2, w / 2, 2}).permute({0, 2, 4, 1, 3, 5}).reshape({B, (h / 2) * (w / 2), C * 4});
}

at::Tensor unpack_latents(const at::Tensor& t, int64_t h, int64_t w, int64_t C) {
  const int64_t B = t.size(0);
  return t.view({B, h / 2, w / 2, C, 2, 2}).permute({0, 3, 1, 4, 2, 5}).reshape({B, C, h, w});
}

at::Tensor patchify_2x2(const at::Tensor& x) {
  const int64_t B = x.size(0), C = x.size(1), h = x.size(2), w = x.size(3);
  return x.view({B, C, h / 2, 2, w / 2, 2}).permute({0, 1, 3, 5, 2, 4}).reshape({B, C * 4, h / 2, w / 2});
}

at::Tensor unpatchify_2x2(const at::Tensor& x) {
  const int64_t B = x.size(0), C = x.size(1) / 4, h = x.size(2), w = x.size(3);
  return x.view({B, C, 2, 2, h, w}).permute({0, 1, 4, 2, 5, 3}).reshape({B, C, h * 2, w * 2});
}

at::Tensor to_tokens(const at::Tensor& x) { return x.flatten(2).transpose(1, 2).contiguous(); }

at::Tensor from_tokens(const at::Tensor& t, int64_t h, int64_t w) {
  return t.transpose(1, 2).reshape({t.size(0), t.size(2), h, w});
}

at::Tensor i64_tensor(const std::vector<int64_t>& v, const std::vector<int64_t>& shape, const std::string& device) {
  return at::tensor(v, at::kLong).view(shape).to(at::Device(device));
}

at::Tensor f32_tensor(const std::vector<float>& v, const std::vector<int64_t>& shape, const std::string& device) {
  return at::tensor(v, at::kFloat).view(shape).to(at::Device(device));
}

at::Tensor seeded_noise(const std::vector<int64_t>& shape, uint64_t seed, at::ScalarType dtype,
                        const std::string& device) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor noise = at::randn(shape, gen, at::TensorOptions().dtype(dtype).device(at::kCPU));
  return noise.to(at::Device(device));
}

at::Tensor image_to_tensor(const Image& img, at::ScalarType dtype, const std::string& device) {
  at::Tensor u8 = at::from_blob(const_cast<uint8_t*>(img.rgb.data()), {1, img.height, img.width, 3}, at::kByte);
  // Left as a channels-last view, the layout diffusers' VaeImageProcessor hands the VAE (numpy_to_pt
  // transposes an HWC array without copying; `.to` keeps the strides). Convolutions pick their algorithm by
  // layout, and a contiguous NCHW copy moves a random-weight VAE's latents by up to 3e-4 relative.
  at::Tensor x = u8.to(at::kFloat).div(255.0).mul(2.0).sub(1.0).permute({0, 3, 1, 2});
  return x.to(at::Device(device), dtype);
}

Image tensor_to_image(const at::Tensor& x) {
  // clamp() would turn NaN into 0 and Inf into 1: a broken output must fail the row, not pass as an image.
  if (!at::isfinite(x).all().item<bool>()) {
    const int64_t bad = x.numel() - at::isfinite(x).sum().item<int64_t>();
    throw std::runtime_error(
        fmt::format("the model produced {} non-finite value(s) (NaN or Inf) out of {} in the "
                    "decoded image; no image is written",
                    bad, x.numel()));
  }
  at::Tensor y = (x * 0.5 + 0.5).clamp(0, 1).to(at::kFloat).mul(255.0).round().to(at::kByte);
  y = y[0].permute({1, 2, 0}).contiguous().to(at::kCPU);
  Image img;
  img.height = static_cast<int>(y.size(0));
  img.width = static_cast<int>(y.size(1));
  img.rgb.assign(y.data_ptr<uint8_t>(), y.data_ptr<uint8_t>() + y.numel());
  return img;
}

at::Tensor euler_loop(at::Tensor latents, const Schedule& s,
                      const std::function<at::Tensor(const at::Tensor&, float)>& velocity) {
  for (std::size_t i = 0; i < s.timesteps.size(); ++i)
    latents = euler_step(latents, velocity(latents, s.timesteps[i]), s.sigmas[i], s.sigmas[i + 1]);
  return latents;
}

at::Tensor dit_timestep_tensor(float t, at::ScalarType run_dtype, const at::Device& device) {
  return at::full({1}, run_dtype == at::kBFloat16 ? dit_timestep_bf16(t) : t / 1000.0f,
                  at::TensorOptions().dtype(at::kFloat).device(device));
}

at::Tensor euler_step(const at::Tensor& sample, const at::Tensor& v, float sigma, float sigma_next) {
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(v.device());
  const at::Tensor dt = at::scalar_tensor(sigma_next, opts) - at::scalar_tensor(sigma, opts);  // 0-dim float32
  return (sample.to(at::kFloat) + dt * v).to(v.scalar_type());
}

}  // namespace dg
