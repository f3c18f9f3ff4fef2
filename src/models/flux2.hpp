#pragma once
// FLUX.2 reference preparation and position ids (src/models/flux2.cpp), exposed for the engine tests.
#include <cstdint>
#include <vector>

#include "diffgentor/image.hpp"

namespace dg {

/// Flux2ImageProcessor-style reference preparation (the table's input rules, sides >= 64 and aspect <= 8,
/// are checked before): LANCZOS down to 1024^2 area when larger (int() truncation), then a centre crop to
/// multiples of 16.
Image flux2_reference(const Image& image);

/// The 4-D ids (T, row, col, 0) of an h x w token grid at time coordinate T, row-major: [h * w * 4].
std::vector<int64_t> flux2_image_ids(int64_t T, int64_t h, int64_t w);

}  // namespace dg
