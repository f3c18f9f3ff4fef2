#pragma once
/// The tensor half of diffusers' VAE tiling (the geometry is include/diffgentor/vae_tiling.hpp).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

#include "diffgentor/vae_tiling.hpp"

namespace dg {

/// Runs `component` over `x` [B, C, H, W] tile by tile under `rule` and joins the tiles' outputs [B, C', h, w] as
/// diffusers' tiled_decode / tiled_encode do (AutoencoderKL and AutoencoderKLQwenImage alike): each tile's output is
/// blended in place with the tile above, then with the tile to its left (both already blended), row by row with
/// weights y / blend in x's dtype, and cut to `keep`. `out_height` x `out_width` is the size to crop to when
/// `rule.crop`. Only two rows of tile outputs are held at once, so the component's activations are bounded by one
/// tile and the join by the output. `tiles`, when given, is increased by the number of tiles run.
at::Tensor tiled_vae_call(const at::Tensor& x, const VaeTileRule& rule, int64_t out_height, int64_t out_width,
                          const std::function<at::Tensor(const at::Tensor& tile)>& component, int64_t* tiles = nullptr);

}  // namespace dg
