#pragma once
/// The image type every stage passes around: 8-bit RGB, row-major HWC, no padding. Torch- and
/// OpenCV-free so that the pipeline interface can be built without the I/O libraries.
#include <cstdint>
#include <vector>

namespace dg {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  ///< width * height * 3 bytes

  bool empty() const { return width <= 0 || height <= 0; }
  uint8_t* pixel(int x, int y) { return rgb.data() + (static_cast<std::size_t>(y) * width + x) * 3; }
  const uint8_t* pixel(int x, int y) const { return rgb.data() + (static_cast<std::size_t>(y) * width + x) * 3; }
};

}  // namespace dg
