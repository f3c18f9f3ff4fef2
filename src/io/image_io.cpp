#include "diffgentor/image_io.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

namespace dg {

namespace {

uint32_t be16(std::string_view b, std::size_t o) { return (uint32_t(uint8_t(b[o])) << 8) | uint8_t(b[o + 1]); }
uint32_t be32(std::string_view b, std::size_t o) { return (be16(b, o) << 16) | be16(b, o + 2); }
uint32_t le16(std::string_view b, std::size_t o) { return uint8_t(b[o]) | (uint32_t(uint8_t(b[o + 1])) << 8); }
uint32_t le32(std::string_view b, std::size_t o) { return le16(b, o) | (le16(b, o + 2) << 16); }
uint32_t le24(std::string_view b, std::size_t o) { return le16(b, o) | (uint32_t(uint8_t(b[o + 2])) << 16); }

// Reads the Orientation tag (0x0112) from a TIFF-structured EXIF block.
int orientation_from_tiff(std::string_view t) {
  if (t.size() < 8) return 1;
  const bool little = t.substr(0, 2) == "II";
  if (!little && t.substr(0, 2) != "MM") return 1;
  auto u16 = [&](std::size_t o) { return little ? le16(t, o) : be16(t, o); };
  auto u32 = [&](std::size_t o) { return little ? le32(t, o) : be32(t, o); };
  const std::size_t ifd = u32(4);
  if (ifd + 2 > t.size()) return 1;
  const std::size_t count = u16(ifd);
  for (std::size_t k = 0; k < count; ++k) {
    const std::size_t e = ifd + 2 + k * 12;
    if (e + 12 > t.size()) break;
    if (u16(e) == 0x0112) {
      const int v = static_cast<int>(u16(e + 8));
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

}  // namespace

std::optional<std::pair<int, int>> sniff_dimensions(std::string_view b) {
  if (b.size() >= 24 && b.substr(0, 8) == "\x89PNG\r\n\x1a\n" && b.substr(12, 4) == "IHDR")
    return std::make_pair(int(be32(b, 16)), int(be32(b, 20)));
  if (b.size() >= 10 && (b.substr(0, 6) == "GIF87a" || b.substr(0, 6) == "GIF89a"))
    return std::make_pair(int(le16(b, 6)), int(le16(b, 8)));
  if (b.size() >= 26 && b.substr(0, 2) == "BM") {
    const auto h = static_cast<int32_t>(le32(b, 22));
    return std::make_pair(int(static_cast<int32_t>(le32(b, 18))), h < 0 ? -h : h);
  }
  if (b.size() >= 30 && b.substr(0, 4) == "RIFF" && b.substr(8, 4) == "WEBP") {
    const std::string_view chunk = b.substr(12, 4);
    if (chunk == "VP8X") return std::make_pair(int(le24(b, 24) + 1), int(le24(b, 27) + 1));
    if (chunk == "VP8 ") return std::make_pair(int(le16(b, 26) & 0x3fff), int(le16(b, 28) & 0x3fff));
    if (chunk == "VP8L" && b.size() >= 25) {
      const uint32_t bits = le32(b, 21);
      return std::make_pair(int((bits & 0x3fff) + 1), int(((bits >> 14) & 0x3fff) + 1));
    }
    return std::nullopt;
  }
  if (b.size() >= 8 && (b.substr(0, 4) == std::string_view("II*\0", 4) || b.substr(0, 4) == "MM\0*")) {
    // TIFF: ImageWidth (256) and ImageLength (257) of the first IFD, SHORT or LONG.
    const bool little = b[0] == 'I';
    auto u16 = [&](std::size_t o) { return little ? le16(b, o) : be16(b, o); };
    auto u32 = [&](std::size_t o) { return little ? le32(b, o) : be32(b, o); };
    const std::size_t ifd = u32(4);
    if (ifd + 2 > b.size()) return std::nullopt;
    int64_t w = -1, h = -1;
    for (std::size_t k = 0, n = u16(ifd); k < n && ifd + 2 + k * 12 + 12 <= b.size(); ++k) {
      const std::size_t e = ifd + 2 + k * 12;
      const uint32_t tag = u16(e), type = u16(e + 2);
      const int64_t value = type == 3 ? u16(e + 8) : type == 4 ? u32(e + 8) : -1;
      if (tag == 256) w = value;
      if (tag == 257) h = value;
    }
    if (w < 0 || h < 0) return std::nullopt;
    return std::make_pair(int(std::min<int64_t>(w, INT32_MAX)), int(std::min<int64_t>(h, INT32_MAX)));
  }
  if (b.size() >= 4 && uint8_t(b[0]) == 0xFF && uint8_t(b[1]) == 0xD8) {
    std::size_t o = 2;
    while (o + 9 < b.size()) {
      if (uint8_t(b[o]) != 0xFF) return std::nullopt;
      const uint8_t marker = uint8_t(b[o + 1]);
      if (marker == 0xFF) {
        ++o;
        continue;
      }
      if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
        o += 2;
        continue;
      }
      const std::size_t len = be16(b, o + 2);
      const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
      if (sof) return std::make_pair(int(be16(b, o + 7)), int(be16(b, o + 5)));
      o += 2 + len;
    }
  }
  return std::nullopt;
}

int exif_orientation(std::string_view b) {
  if (b.size() >= 4 && uint8_t(b[0]) == 0xFF && uint8_t(b[1]) == 0xD8) {
    std::size_t o = 2;
    while (o + 4 <= b.size() && uint8_t(b[o]) == 0xFF) {
      const uint8_t marker = uint8_t(b[o + 1]);
      if (marker == 0xDA || marker == 0xD9) break;  // image data starts: no EXIF before it
      const std::size_t len = be16(b, o + 2);
      if (marker == 0xE1 && len >= 8 && o + 2 + len <= b.size() &&
          b.substr(o + 4, 6) == std::string_view("Exif\0\0", 6))
        return orientation_from_tiff(b.substr(o + 10, len - 8));
      o += 2 + len;
    }
    return 1;
  }
  if (b.size() >= 8 && b.substr(0, 8) == "\x89PNG\r\n\x1a\n") {
    std::size_t o = 8;
    while (o + 12 <= b.size()) {
      const std::size_t len = be32(b, o);
      const std::string_view type = b.substr(o + 4, 4);
      if (type == "eXIf" && o + 8 + len <= b.size()) return orientation_from_tiff(b.substr(o + 8, len));
      if (type == "IDAT" || type == "IEND") break;
      o += 12 + len;
    }
    return 1;
  }
  if (b.size() >= 12 && b.substr(0, 4) == "RIFF" && b.substr(8, 4) == "WEBP") {
    std::size_t o = 12;
    while (o + 8 <= b.size()) {
      const std::size_t len = le32(b, o + 4);
      if (b.substr(o, 4) == "EXIF" && o + 8 + len <= b.size()) {
        std::string_view t = b.substr(o + 8, len);
        if (t.substr(0, 6) == std::string_view("Exif\0\0", 6)) t.remove_prefix(6);
        return orientation_from_tiff(t);
      }
      o += 8 + len + (len & 1);
    }
  }
  return 1;
}

Image decode_image(std::string_view bytes, int64_t max_pixels) {
  if (bytes.empty()) throw ImageError("empty file");
  auto check = [&](int64_t w, int64_t h) {
    if (w <= 0 || h <= 0) throw ImageError(fmt::format("invalid image size {}x{}", w, h));
    if (w * h > max_pixels)
      throw ImageError(
          fmt::format("image is {}x{} = {} pixels, over the limit of {} (--max_image_pixels; a "
                      "decompression-bomb guard)",
                      w, h, w * h, max_pixels));
  };
  // The pixel limit holds before any pixel is decoded, for every format this decoder accepts: a format whose
  // size cannot be read from its header is not decoded at all.
  if (bytes.substr(0, 3) == "GIF")
    throw ImageError("GIF images are not supported (no GIF decoder in this build); convert it to PNG");
  const auto dims = sniff_dimensions(bytes);
  if (!dims)
    throw ImageError(
        "cannot decode image: not a PNG, JPEG, WebP, BMP or TIFF image (unknown header), or a corrupt one");
  check(dims->first, dims->second);
  const cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
  cv::Mat bgr;
  try {
    bgr = cv::imdecode(buf, cv::IMREAD_COLOR | cv::IMREAD_ANYDEPTH | cv::IMREAD_IGNORE_ORIENTATION);
    // 16 bits per channel keep their high byte, as PIL opens a 16-bit RGB PNG (OpenCV's own 8-bit conversion
    // rounds v / 256 instead); other depths take OpenCV's conversion.
    if (bgr.depth() == CV_16U) {
      cv::Mat high;
      bgr.convertTo(high, CV_32S);
      high.forEach<cv::Vec3i>([](cv::Vec3i& v, const int*) { v = cv::Vec3i(v[0] >> 8, v[1] >> 8, v[2] >> 8); });
      high.convertTo(bgr, CV_8U);
    } else if (bgr.depth() != CV_8U) {
      bgr.convertTo(bgr, CV_8U);
    }
  } catch (const cv::Exception& e) {
    throw ImageError(fmt::format("cannot decode image: {}", e.what()));
  }
  if (bgr.empty()) throw ImageError("cannot decode image (corrupt or unsupported format)");
  check(bgr.cols, bgr.rows);
  // EXIF orientation, as PIL.ImageOps.exif_transpose applies it.
  switch (exif_orientation(bytes)) {
    case 2: cv::flip(bgr, bgr, 1); break;
    case 3: cv::rotate(bgr, bgr, cv::ROTATE_180); break;
    case 4: cv::flip(bgr, bgr, 0); break;
    case 5: cv::transpose(bgr, bgr); break;
    case 6: cv::rotate(bgr, bgr, cv::ROTATE_90_CLOCKWISE); break;
    case 7:
      cv::transpose(bgr, bgr);
      cv::rotate(bgr, bgr, cv::ROTATE_180);
      break;
    case 8: cv::rotate(bgr, bgr, cv::ROTATE_90_COUNTERCLOCKWISE); break;
    default: break;
  }
  Image img;
  img.width = bgr.cols;
  img.height = bgr.rows;
  img.rgb.resize(static_cast<std::size_t>(img.width) * img.height * 3);
  cv::Mat rgb(img.height, img.width, CV_8UC3, img.rgb.data());
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return img;
}

std::string encode_image(const Image& image, const std::string& extension, const EncodeOptions& options) {
  if (image.empty() || image.rgb.size() != static_cast<std::size_t>(image.width) * image.height * 3)
    throw ImageError(
        fmt::format("cannot encode an image of {}x{} with {} bytes", image.width, image.height, image.rgb.size()));
  std::string ext = extension;
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  std::vector<int> params;
  if (ext == ".jpg" || ext == ".jpeg")
    params = {cv::IMWRITE_JPEG_QUALITY, options.jpeg_quality};
  else if (ext == ".webp")
    params = {cv::IMWRITE_WEBP_QUALITY, options.webp_quality.value_or(101)};  // > 100: lossless
  else if (ext == ".png")
    params = {cv::IMWRITE_PNG_COMPRESSION, 3};
  const cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.rgb.data()));
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<uchar> out;
  if (!cv::imencode(ext, bgr, out, params)) throw ImageError(fmt::format("cannot encode as {}", ext));
  return std::string(out.begin(), out.end());
}

}  // namespace dg
