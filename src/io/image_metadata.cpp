// Generation parameters inside image files (include/diffgentor/image_metadata.hpp). The containers' layouts are
// those of the PNG specification (chunks, iTXt, CRC-32), JPEG/JFIF (APP1 "Exif"), TIFF 6.0 (the Exif IFD) and the
// WebP container (VP8X, EXIF chunk).
#include "diffgentor/image_metadata.hpp"

#include <fmt/format.h>
#include <utf8proc.h>

#include <array>
#include <nlohmann/json.hpp>
#include <vector>

#include "diffgentor/image_io.hpp"

namespace dg {

namespace {

constexpr uint16_t kExifIfdTag = 0x8769, kUserCommentTag = 0x9286;
const std::string kUnicodePrefix("UNICODE\0", 8), kAsciiPrefix("ASCII\0\0\0", 8), kExifHeader("Exif\0\0", 6);
const std::string kPngSignature("\x89PNG\r\n\x1a\n", 8);

uint32_t crc32(std::string_view data) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

void put_be(std::string& out, uint32_t v, int bytes) {
  for (int k = bytes - 1; k >= 0; --k) out.push_back(static_cast<char>((v >> (8 * k)) & 0xFF));
}
void put_le(std::string& out, uint32_t v, int bytes) {
  for (int k = 0; k < bytes; ++k) out.push_back(static_cast<char>((v >> (8 * k)) & 0xFF));
}
uint32_t get(std::string_view s, std::size_t at, int bytes, bool big) {
  uint32_t v = 0;
  for (int k = 0; k < bytes; ++k) {
    const auto b = static_cast<uint8_t>(s[at + static_cast<std::size_t>(big ? k : bytes - 1 - k)]);
    v = (v << 8) | b;
  }
  return v;
}

// UTF-8 -> UTF-16BE, at most `max_units` code units (cut at a character boundary); invalid bytes become U+FFFD.
std::string utf16be(const std::string& text, std::size_t max_units) {
  std::string out;
  std::size_t units = 0;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  for (utf8proc_ssize_t i = 0, n = static_cast<utf8proc_ssize_t>(text.size()); i < n;) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t len = utf8proc_iterate(p + i, n - i, &cp);
    if (len < 0) cp = 0xFFFD;
    i += len > 0 ? len : 1;
    const std::size_t need = cp >= 0x10000 ? 2 : 1;
    if (units + need > max_units) break;
    units += need;
    if (cp >= 0x10000) {
      const auto v = static_cast<uint32_t>(cp - 0x10000);
      put_be(out, 0xD800 + (v >> 10), 2);
      put_be(out, 0xDC00 + (v & 0x3FF), 2);
    } else {
      put_be(out, static_cast<uint32_t>(cp), 2);
    }
  }
  return out;
}

void put_utf8(std::string& out, uint32_t cp) {
  utf8proc_uint8_t buf[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
}

std::string utf16_to_utf8(std::string_view s, bool big) {
  std::string out;
  for (std::size_t i = 0; i + 1 < s.size(); i += 2) {
    uint32_t u = get(s, i, 2, big);
    if (u >= 0xD800 && u < 0xDC00 && i + 3 < s.size()) {
      const uint32_t lo = get(s, i + 2, 2, big);
      if (lo >= 0xDC00 && lo < 0xE000) {
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        i += 2;
      }
    }
    put_utf8(out, u);
  }
  return out;
}

// A big-endian TIFF holding IFD0 -> Exif IFD -> UserComment ("UNICODE\0" + UTF-16BE), the text cut so that the
// whole stays within `max_bytes`.
std::string exif_tiff(const std::string& text, std::size_t max_bytes) {
  constexpr uint32_t kIfd0 = 8, kExif = kIfd0 + 2 + 12 + 4, kData = kExif + 2 + 12 + 4;
  const std::string comment = kUnicodePrefix + utf16be(text, (max_bytes - kData - kUnicodePrefix.size()) / 2);
  std::string t = "MM";
  put_be(t, 42, 2);
  put_be(t, kIfd0, 4);
  put_be(t, 1, 2);  // IFD0: one entry, the Exif IFD pointer (LONG)
  put_be(t, kExifIfdTag, 2);
  put_be(t, 4, 2);
  put_be(t, 1, 4);
  put_be(t, kExif, 4);
  put_be(t, 0, 4);
  put_be(t, 1, 2);  // Exif IFD: one entry, UserComment (UNDEFINED)
  put_be(t, kUserCommentTag, 2);
  put_be(t, 7, 2);
  put_be(t, static_cast<uint32_t>(comment.size()), 4);
  put_be(t, kData, 4);
  put_be(t, 0, 4);
  return t + comment;
}

// The value of `tag` in the IFD at `ifd` of TIFF `t`: (offset, count) of its bytes, or nullopt.
std::optional<std::pair<std::size_t, std::size_t>> ifd_entry(std::string_view t, std::size_t ifd, uint16_t tag,
                                                             bool big) {
  if (ifd + 2 > t.size()) return std::nullopt;
  const uint32_t n = get(t, ifd, 2, big);
  for (uint32_t k = 0; k < n; ++k) {
    const std::size_t e = ifd + 2 + 12 * k;
    if (e + 12 > t.size()) return std::nullopt;
    if (get(t, e, 2, big) != tag) continue;
    const uint32_t type = get(t, e + 2, 2, big), count = get(t, e + 4, 4, big);
    const std::size_t size = type == 4 ? 4u * count : count;  // LONG or byte-sized (UNDEFINED, ASCII)
    const std::size_t at = size <= 4 ? e + 8 : get(t, e + 8, 4, big);
    if (at + size > t.size()) return std::nullopt;
    return std::make_pair(at, size);
  }
  return std::nullopt;
}

std::optional<std::string> tiff_user_comment(std::string_view t) {
  if (t.size() >= kExifHeader.size() && t.substr(0, kExifHeader.size()) == kExifHeader) t.remove_prefix(6);
  if (t.size() < 8 || (t.substr(0, 2) != "MM" && t.substr(0, 2) != "II")) return std::nullopt;
  const bool big = t[0] == 'M';
  const auto exif = ifd_entry(t, get(t, 4, 4, big), kExifIfdTag, big);
  if (!exif) return std::nullopt;
  const auto comment = ifd_entry(t, get(t, exif->first, 4, big), kUserCommentTag, big);
  if (!comment || comment->second < 8) return std::nullopt;
  const std::string_view c = t.substr(comment->first, comment->second);
  if (c.substr(0, 8) == kUnicodePrefix) return utf16_to_utf8(c.substr(8), big);
  if (c.substr(0, 8) == kAsciiPrefix) return std::string(c.substr(8));
  return std::nullopt;
}

std::string png_chunk(const std::string& type, const std::string& data) {
  std::string out;
  put_be(out, static_cast<uint32_t>(data.size()), 4);
  out += type + data;
  put_be(out, crc32(type + data), 4);
  return out;
}

std::string embed_png(const std::string& png, const std::string& text) {
  if (png.size() < 33 || png.compare(0, 8, kPngSignature) != 0 || png.compare(12, 4, "IHDR") != 0)
    throw ImageError("cannot embed parameters: not a PNG with its IHDR first");
  const std::string itxt = png_chunk("iTXt", std::string("parameters\0\0\0\0\0", 15) + text);
  return png.substr(0, 33) + itxt + png.substr(33);  // signature, IHDR (25 bytes), then ours
}

std::optional<std::string> read_png(std::string_view png) {
  for (std::size_t at = 8; at + 12 <= png.size();) {
    const uint32_t len = get(png, at, 4, true);
    const std::string_view type = png.substr(at + 4, 4),
                           data = png.substr(at + 8, std::min<std::size_t>(len, png.size() - at - 8));
    at += 12 + static_cast<std::size_t>(len);
    const std::size_t nul = data.find('\0');
    if (nul == std::string_view::npos || data.substr(0, nul) != "parameters") continue;
    if (type == "tEXt") {  // Latin-1
      std::string out;
      for (unsigned char c : data.substr(nul + 1)) put_utf8(out, c);
      return out;
    }
    if (type == "iTXt" && nul + 3 <= data.size() && data[nul + 1] == 0) {  // uncompressed only
      const std::size_t lang = data.find('\0', nul + 3);
      const std::size_t translated = lang == std::string_view::npos ? lang : data.find('\0', lang + 1);
      if (translated != std::string_view::npos) return std::string(data.substr(translated + 1));
    }
  }
  return std::nullopt;
}

std::string embed_jpeg(const std::string& jpg, const std::string& text) {
  if (jpg.size() < 4 || static_cast<uint8_t>(jpg[0]) != 0xFF || static_cast<uint8_t>(jpg[1]) != 0xD8)
    throw ImageError("cannot embed parameters: not a JPEG");
  std::size_t at = 2;  // after SOI, and after a JFIF APP0 when there is one
  if (static_cast<uint8_t>(jpg[2]) == 0xFF && static_cast<uint8_t>(jpg[3]) == 0xE0 && jpg.size() > 6)
    at = 4 + get(jpg, 4, 2, true);
  const std::string tiff = exif_tiff(text, 65535 - 2 - kExifHeader.size());
  std::string seg("\xFF\xE1", 2);
  put_be(seg, static_cast<uint32_t>(2 + kExifHeader.size() + tiff.size()), 2);
  return jpg.substr(0, at) + seg + kExifHeader + tiff + jpg.substr(at);
}

std::optional<std::string> read_jpeg(std::string_view jpg) {
  for (std::size_t at = 2; at + 4 <= jpg.size();) {
    if (static_cast<uint8_t>(jpg[at]) != 0xFF) return std::nullopt;
    const auto marker = static_cast<uint8_t>(jpg[at + 1]);
    if (marker == 0xDA || marker == 0xD9) return std::nullopt;  // image data: no metadata after it
    const uint32_t len = get(jpg, at + 2, 2, true);
    if (marker == 0xE1 && at + 2 + len <= jpg.size()) {
      const std::string_view body = jpg.substr(at + 4, len - 2);
      if (body.substr(0, kExifHeader.size()) == kExifHeader)
        if (auto t = tiff_user_comment(body)) return t;
    }
    at += 2 + len;
  }
  return std::nullopt;
}

std::string embed_webp(const std::string& webp, const std::string& text) {
  if (webp.size() < 20 || webp.compare(0, 4, "RIFF") != 0 || webp.compare(8, 4, "WEBP") != 0)
    throw ImageError("cannot embed parameters: not a WebP file");
  const auto dims = sniff_dimensions(webp);
  if (!dims) throw ImageError("cannot embed parameters: WebP without a size");
  std::string chunks = webp.substr(12);
  if (chunks.compare(0, 4, "VP8X") == 0) {
    chunks[8] = static_cast<char>(chunks[8] | 0x08);  // the EXIF flag
  } else {                                            // a simple file becomes an extended one
    std::string vp8x = "VP8X";
    put_le(vp8x, 10, 4);
    put_le(vp8x, 0x08, 4);
    put_le(vp8x, static_cast<uint32_t>(dims->first - 1), 3);
    put_le(vp8x, static_cast<uint32_t>(dims->second - 1), 3);
    chunks = vp8x + chunks;
  }
  std::string tiff = exif_tiff(text, 1u << 24);
  chunks += "EXIF";
  put_le(chunks, static_cast<uint32_t>(tiff.size()), 4);
  chunks += tiff;
  if (tiff.size() % 2) chunks.push_back('\0');
  std::string out = "RIFF";
  put_le(out, static_cast<uint32_t>(4 + chunks.size()), 4);
  return out + "WEBP" + chunks;
}

std::optional<std::string> read_webp(std::string_view webp) {
  for (std::size_t at = 12; at + 8 <= webp.size();) {
    const uint32_t len = get(webp, at + 4, 4, false);
    if (webp.substr(at, 4) == "EXIF" && at + 8 + len <= webp.size()) return tiff_user_comment(webp.substr(at + 8, len));
    at += 8 + len + (len % 2);
  }
  return std::nullopt;
}

std::string value(const std::string& v) {  // A1111's quoting: JSON for a value with a comma, colon or newline
  return v.find_first_of(",:\n") == std::string::npos ? v : nlohmann::json(v).dump();
}

}  // namespace

std::string parameters_text(const ImageParameters& p) {
  std::string t = p.instruction;
  if (p.negative) t += "\nNegative prompt: " + *p.negative;
  t += fmt::format("\nSteps: {}, Sampler: FlowMatchEuler, CFG scale: {}", p.steps, p.guidance);
  if (p.true_cfg) t += fmt::format(", True CFG scale: {}", *p.true_cfg);
  t += fmt::format(", Seed: {}, Size: {}x{}, Model: {}, Model type: {}", p.seed, p.width, p.height, value(p.model),
                   p.model_type);
  if (!p.loras.empty()) t += ", LoRA: " + value(p.loras);
  if (!p.enhanced.empty()) t += ", Enhanced prompt: " + value(p.enhanced);
  return t + ", Version: diffgentor " + p.version;
}

std::string embed_parameters(const std::string& encoded, const std::string& extension, const std::string& text) {
  std::string ext = extension;
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".png") return embed_png(encoded, text);
  if (ext == ".jpg" || ext == ".jpeg") return embed_jpeg(encoded, text);
  if (ext == ".webp") return embed_webp(encoded, text);
  return encoded;
}

std::optional<std::string> read_parameters(std::string_view bytes) {
  if (bytes.size() >= 8 && bytes.substr(0, 8) == kPngSignature) return read_png(bytes);
  if (bytes.size() >= 4 && static_cast<uint8_t>(bytes[0]) == 0xFF && static_cast<uint8_t>(bytes[1]) == 0xD8)
    return read_jpeg(bytes);
  if (bytes.size() >= 12 && bytes.substr(0, 4) == "RIFF" && bytes.substr(8, 4) == "WEBP") return read_webp(bytes);
  return std::nullopt;
}

}  // namespace dg
