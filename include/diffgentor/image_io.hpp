#pragma once
/// Image decoding and encoding with OpenCV, plus the checks PIL users rely on: EXIF orientation is
/// applied (like PIL.ImageOps.exif_transpose) and a pixel-count limit guards against decompression
/// bombs, checked from the file header before any pixel is decoded.
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "diffgentor/image.hpp"

namespace dg {

struct ImageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Width and height from a PNG, JPEG, GIF, BMP, WebP or TIFF header, or nullopt for other formats.
std::optional<std::pair<int, int>> sniff_dimensions(std::string_view bytes);

/// EXIF orientation (1..8) from a JPEG APP1, PNG eXIf or WebP EXIF block; 1 when absent.
int exif_orientation(std::string_view bytes);

/// Decodes to RGB (alpha dropped, grey expanded), applies the EXIF orientation, and rejects images
/// of more than `max_pixels` pixels before decoding them: only formats whose size the header gives
/// (sniff_dimensions) are decoded; GIF is refused by name. Throws ImageError with the reason (caller adds the
/// file name).
Image decode_image(std::string_view bytes, int64_t max_pixels);

/// Encodes by file extension (.png, .jpg/.jpeg at quality 95, .webp lossless, .bmp, .tif/.tiff).
std::string encode_image(const Image& image, const std::string& extension);

}  // namespace dg
