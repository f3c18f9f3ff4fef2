#pragma once
// FLUX.1-Kontext sizing (src/models/flux1_kontext.cpp), exposed for the engine tests.
#include <utility>

namespace dg {

/// The preferred Kontext resolution (width, height) closest to an image's aspect ratio (its size floored
/// to 16 first; ties go to the smaller width).
std::pair<int, int> kontext_preferred_resolution(int width, int height);

/// Kontext's output size rule for a requested (width, height): W = round(sqrt(1024^2 * ar)),
/// H = round(sqrt(1024^2 / ar)), both floored to 16.
std::pair<int, int> kontext_output_size(int width, int height);

}  // namespace dg
