#pragma once
/// Pillow-compatible resizing and the sizing rules the pipelines apply before it. Every pipeline
/// resizes with PIL upstream (diffusers' VaeImageProcessor: LANCZOS; the slow Qwen2-VL image
/// processor: BICUBIC), and OpenCV's kernels differ, so this is a port of Pillow's two-pass
/// separable resampler with its 8-bit fixed-point coefficients (Pillow 9.4 `Resample.c`).
/// Pinned by tests/data/images (exact equality with Pillow 9.4.0).
#include <utility>

#include "diffgentor/image.hpp"

namespace dg {

enum class ResampleFilter { Bicubic, Lanczos };

/// PIL `Image.resize((width, height), filter)` of an RGB image (no box, no reducing_gap).
Image resize_pil(const Image& in, int width, int height, ResampleFilter filter);

/// Python's round(): half to even.
double round_half_even(double x);

/// diffusers `calculate_dimensions(target_area, ratio)`: returns (width, height), each a multiple
/// of 32 (pipeline_qwenimage_edit_plus.py).
std::pair<int, int> calculate_dimensions(double target_area, double ratio);

/// transformers Qwen2-VL `smart_resize(height, width, factor, min_pixels, max_pixels)`: returns
/// (height, width), multiples of `factor`. Throws std::invalid_argument for aspect ratios above 200.
std::pair<int, int> smart_resize(int height, int width, int factor = 28, long min_pixels = 56 * 56,
                                 long max_pixels = 28L * 28 * 1280);

}  // namespace dg
