// Pillow's resampler (libImaging/Resample.c: precompute_coeffs, normalize_coeffs_8bpc,
// ImagingResampleHorizontal/Vertical_8bpc, ImagingResampleInner), reimplemented for RGB8.
#include "diffgentor/resize.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace dg {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic(double x) {  // a = -0.5
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return std::sin(x) / x;
}

double lanczos(double x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0; }

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // (min, count) per output pixel
  std::vector<int32_t> k;   // fixed-point weights, ksize per output pixel
};

Coeffs precompute(int in_size, int out_size, ResampleFilter f) {
  const double support_base = f == ResampleFilter::Lanczos ? 3.0 : 2.0;
  const double scale = double(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = support_base * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(static_cast<std::size_t>(out_size) * 2);
  c.k.assign(static_cast<std::size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(static_cast<std::size_t>(c.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double v = f == ResampleFilter::Lanczos ? lanczos((x + xmin - center + 0.5) * ss)
                                                    : bicubic((x + xmin - center + 0.5) * ss);
      w[x] = v;
      ww += v;
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      const double scaled = v * double(1 << kPrecisionBits);
      c.k[static_cast<std::size_t>(xx) * c.ksize + x] = static_cast<int32_t>(v < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    c.bounds[xx * 2] = xmin;
    c.bounds[xx * 2 + 1] = xmax;
  }
  return c;
}

uint8_t clip8(int64_t acc) {
  const int64_t v = acc >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

}  // namespace

Image resize_pil(const Image& in, int width, int height, ResampleFilter f) {
  if (width <= 0 || height <= 0) throw std::invalid_argument("resize target must be positive");
  if (in.empty()) throw std::invalid_argument("cannot resize an empty image");
  if (width == in.width && height == in.height) return in;
  const Coeffs horiz = precompute(in.width, width, f);
  Coeffs vert = precompute(in.height, height, f);
  const bool need_h = width != in.width, need_v = height != in.height;
  const int first_row = vert.bounds[0];
  const int last_row = vert.bounds[height * 2 - 2] + vert.bounds[height * 2 - 1];

  Image tmp;
  const Image* src = &in;
  if (need_h) {  // horizontal pass over the rows the vertical pass will read
    for (int y = 0; y < height; ++y) vert.bounds[y * 2] -= first_row;
    tmp.width = width;
    tmp.height = last_row - first_row;
    tmp.rgb.resize(static_cast<std::size_t>(tmp.width) * tmp.height * 3);
    for (int y = 0; y < tmp.height; ++y) {
      const uint8_t* row = in.pixel(0, y + first_row);
      uint8_t* out = tmp.pixel(0, y);
      for (int xx = 0; xx < width; ++xx) {
        const int xmin = horiz.bounds[xx * 2], xmax = horiz.bounds[xx * 2 + 1];
        const int32_t* k = &horiz.k[static_cast<std::size_t>(xx) * horiz.ksize];
        int64_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
        for (int x = 0; x < xmax; ++x) {
          const uint8_t* p = row + (x + xmin) * 3;
          s0 += int64_t(p[0]) * k[x];
          s1 += int64_t(p[1]) * k[x];
          s2 += int64_t(p[2]) * k[x];
        }
        out[xx * 3] = clip8(s0);
        out[xx * 3 + 1] = clip8(s1);
        out[xx * 3 + 2] = clip8(s2);
      }
    }
    src = &tmp;
  }
  if (!need_v) return tmp;
  Image out;
  out.width = src->width;
  out.height = height;
  out.rgb.resize(static_cast<std::size_t>(out.width) * height * 3);
  for (int yy = 0; yy < height; ++yy) {
    const int ymin = vert.bounds[yy * 2], ymax = vert.bounds[yy * 2 + 1];
    const int32_t* k = &vert.k[static_cast<std::size_t>(yy) * vert.ksize];
    uint8_t* o = out.pixel(0, yy);
    for (int xx = 0; xx < out.width; ++xx) {
      int64_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int y = 0; y < ymax; ++y) {
        const uint8_t* p = src->pixel(xx, y + ymin);
        s0 += int64_t(p[0]) * k[y];
        s1 += int64_t(p[1]) * k[y];
        s2 += int64_t(p[2]) * k[y];
      }
      o[xx * 3] = clip8(s0);
      o[xx * 3 + 1] = clip8(s1);
      o[xx * 3 + 2] = clip8(s2);
    }
  }
  return out;
}

double round_half_even(double x) { return std::nearbyint(x); }

std::pair<int, int> calculate_dimensions(double target_area, double ratio) {
  const double width = std::sqrt(target_area * ratio);
  const double height = width / ratio;
  return {static_cast<int>(round_half_even(width / 32) * 32), static_cast<int>(round_half_even(height / 32) * 32)};
}

std::pair<int, int> smart_resize(int height, int width, int factor, long min_pixels, long max_pixels) {
  if (height <= 0 || width <= 0) throw std::invalid_argument("smart_resize: image size must be positive");
  if (double(std::max(height, width)) / std::min(height, width) > 200)
    throw std::invalid_argument("smart_resize: absolute aspect ratio must be smaller than 200");
  long h = static_cast<long>(round_half_even(double(height) / factor)) * factor;
  long w = static_cast<long>(round_half_even(double(width) / factor)) * factor;
  if (h * w > max_pixels) {
    const double beta = std::sqrt(double(height) * width / double(max_pixels));
    h = std::max<long>(factor, static_cast<long>(std::floor(height / beta / factor)) * factor);
    w = std::max<long>(factor, static_cast<long>(std::floor(width / beta / factor)) * factor);
  } else if (h * w < min_pixels) {
    const double beta = std::sqrt(double(min_pixels) / (double(height) * width));
    h = static_cast<long>(std::ceil(height * beta / factor)) * factor;
    w = static_cast<long>(std::ceil(width * beta / factor)) * factor;
  }
  return {static_cast<int>(h), static_cast<int>(w)};
}

}  // namespace dg
