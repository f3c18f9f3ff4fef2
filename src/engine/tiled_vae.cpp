// diffusers' tiled VAE calls, tensor side (include/diffgentor/tiled_vae.hpp).
#include "diffgentor/tiled_vae.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

namespace dg {

namespace {

// AutoencoderKL.blend_v / blend_h along `dim` (2: rows, 3: columns): b's first rows become a's last rows faded out
// plus b's faded in, one row at a time with the Python float weights y / extent, as upstream computes them.
void blend(const at::Tensor& a, at::Tensor& b, int64_t dim, int64_t extent) {
  extent = std::min({a.size(dim), b.size(dim), extent});
  for (int64_t y = 0; y < extent; ++y) {
    const double w = static_cast<double>(y) / static_cast<double>(extent);
    at::Tensor row = b.select(dim, y);
    row.copy_(a.select(dim, a.size(dim) - extent + y) * (1 - w) + row * w);
  }
}

std::vector<int64_t> starts(int64_t extent, int64_t stride) {  // Python range(0, extent, stride)
  std::vector<int64_t> out;
  for (int64_t s = 0; s < extent; s += stride) out.push_back(s);
  return out;
}

}  // namespace

at::Tensor tiled_vae_call(const at::Tensor& x, const VaeTileRule& rule, int64_t out_height, int64_t out_width,
                          const std::function<at::Tensor(const at::Tensor&)>& component, int64_t* tiles) {
  const int64_t height = x.size(2), width = x.size(3);
  std::vector<at::Tensor> above, joined_rows;
  for (const int64_t i : starts(height, rule.stride)) {
    std::vector<at::Tensor> row, kept;
    for (const int64_t j : starts(width, rule.stride)) {
      const at::Tensor tile =
          x.slice(2, i, std::min(i + rule.tile, height)).slice(3, j, std::min(j + rule.tile, width));
      row.push_back(component(tile));
      if (tiles) ++*tiles;
    }
    // tiled_decode's second pass, row i: the tiles above are final (blended and never touched again), the tile to
    // the left was blended just before; the order of the in-place updates is upstream's
    for (std::size_t k = 0; k < row.size(); ++k) {
      if (!above.empty()) blend(above[k], row[k], 2, rule.blend);
      if (k > 0) blend(row[k - 1], row[k], 3, rule.blend);
      kept.push_back(row[k].slice(2, 0, rule.keep).slice(3, 0, rule.keep));
    }
    joined_rows.push_back(at::cat(kept, 3));
    above = std::move(row);
  }
  at::Tensor out = at::cat(joined_rows, 2);
  if (rule.crop) out = out.slice(2, 0, out_height).slice(3, 0, out_width);
  return out;
}

}  // namespace dg
