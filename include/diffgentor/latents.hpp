#pragma once
/// Tensor helpers every diffusers editing pipeline shares (docs/numerics.md): 2x2 packing, seeded
/// noise drawn like diffusers' randn_tensor, image <-> [-1, 1] tensors, the flow-match Euler step
/// with PyTorch's bf16 type promotion, and uint8 post-processing.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "diffgentor/image.hpp"
#include "diffgentor/scheduler.hpp"

namespace dg {

/// [B, C, h, w] -> [B, (h/2)(w/2), 4C]; channel order inside a token: c*4 + dy*2 + dx.
at::Tensor pack_latents(const at::Tensor& x);
/// Inverse of pack_latents for a latent grid of h x w (even), C channels.
at::Tensor unpack_latents(const at::Tensor& tokens, int64_t h, int64_t w, int64_t channels);

/// FLUX.2's patchify: [B, C, h, w] -> [B, 4C, h/2, w/2], channel c*4 + dy*2 + dx.
at::Tensor patchify_2x2(const at::Tensor& x);
/// Inverse of patchify_2x2.
at::Tensor unpatchify_2x2(const at::Tensor& x);
/// A host vector as an int64 / float32 tensor of `shape` on `device`.
at::Tensor i64_tensor(const std::vector<int64_t>& values, const std::vector<int64_t>& shape, const std::string& device);
at::Tensor f32_tensor(const std::vector<float>& values, const std::vector<int64_t>& shape, const std::string& device);
/// [B, C, h, w] -> [B, h*w, C] tokens in row-major order, and back.
at::Tensor to_tokens(const at::Tensor& x);
at::Tensor from_tokens(const at::Tensor& tokens, int64_t h, int64_t w);

/// `randn(shape, dtype)` from a CPU generator seeded with `seed`, as diffusers' randn_tensor draws it
/// (drawn directly in `dtype`: a bf16 draw is not a cast float32 draw); then moved to `device`.
at::Tensor seeded_noise(const std::vector<int64_t>& shape, uint64_t seed, at::ScalarType dtype,
                        const std::string& device);

/// RGB8 -> [1, 3, H, W] in [-1, 1] (x / 255 * 2 - 1 in float32), then cast to `dtype` on `device`.
at::Tensor image_to_tensor(const Image& image, at::ScalarType dtype, const std::string& device);

/// VaeImageProcessor.postprocess: x * 0.5 + 0.5, clamp to [0, 1] in x's dtype, to float32,
/// round(x * 255) half-to-even, uint8. `x` is [1, 3, H, W]. Throws std::runtime_error when `x` holds NaN or
/// Inf (the row fails at stage `model`).
Image tensor_to_image(const at::Tensor& x);

/// FlowMatchEulerDiscreteScheduler.step: float32(sample) + (sigma_next - sigma) * v, cast to v's
/// dtype, with the 0-dim float32 dt meeting a bf16 v exactly as PyTorch promotes it.
at::Tensor euler_step(const at::Tensor& sample, const at::Tensor& v, float sigma, float sigma_next);

/// The flow-match Euler loop: for each step, `velocity(latents, timestep)` (CFG included) then
/// euler_step to the next sigma.
at::Tensor euler_loop(at::Tensor latents, const Schedule& schedule,
                      const std::function<at::Tensor(const at::Tensor& latents, float timestep)>& velocity);

/// The [1] float32 timestep the DiTs take: bf16(bf16(t) / 1000) in bf16 runs (docs/numerics.md, "DiT timestep"), else
/// t / 1000.
at::Tensor dit_timestep_tensor(float t, at::ScalarType run_dtype, const at::Device& device);

}  // namespace dg
