#pragma once
/// A deterministic input image for the engine's tests and benchmarks, which need no image file: the same bytes on
/// every machine, so outputs can be compared across devices (bench/engine_smoke.cpp) and runs.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "diffgentor/image.hpp"

namespace dg {

/// A w x h image whose every byte depends on its position and `seed`.
inline Image synthetic_image(int w, int h, int seed) {
  Image img{w, h, std::vector<uint8_t>(static_cast<std::size_t>(w) * h * 3)};
  for (std::size_t k = 0; k < img.rgb.size(); ++k)
    img.rgb[k] = static_cast<uint8_t>((k * 13 + static_cast<std::size_t>(seed) * 71 + k / 97) % 256);
  return img;
}

}  // namespace dg
