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

/// Decodes to 8-bit RGB as PIL's `.convert("RGB")` does for these files: alpha dropped (not composited), grey
/// expanded, 16 bits per channel cut to their high byte (PIL clips 16-bit *grey* PNGs to 255 instead; this keeps
/// the high byte there too). Applies the EXIF orientation, and rejects images
/// of more than `max_pixels` pixels before decoding them: only formats whose size the header gives
/// (sniff_dimensions) are decoded; GIF is refused by name. Throws ImageError with the reason (caller adds the
/// file name).
Image decode_image(std::string_view bytes, int64_t max_pixels);

/// How encode_image writes the lossy formats.
struct EncodeOptions {
  int jpeg_quality = 95;            ///< 1..100
  std::optional<int> webp_quality;  ///< 1..100; unset = lossless
};

/// Encodes by file extension (.png, .jpg/.jpeg, .webp, .bmp, .tif/.tiff); 8-bit RGB, no alpha.
std::string encode_image(const Image& image, const std::string& extension, const EncodeOptions& options = {});

}  // namespace dg
