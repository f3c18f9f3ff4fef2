#include "diffgentor/naming.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

namespace fs = std::filesystem;

namespace dg {

std::string default_output_name(int64_t index) { return fmt::format("{:06d}.png", index); }

OutputName make_output_name(const std::optional<std::string>& custom, int64_t index,
                            const std::optional<std::string>& format) {
  if (format) {
    OutputName named = make_output_name(custom, index);
    if (!named.name.empty()) named.name = fs::path(named.name).replace_extension("." + *format).string();
    for (const auto& part : fs::path(named.name))
      if (part.string().size() > kMaxNameBytes) return {"", fmt::format("output name '{}' is too long", named.name)};
    return named;
  }
  if (!custom) return {default_output_name(index), ""};
  const std::string& raw = *custom;
  if (raw.find_first_not_of(" \t") == std::string::npos) return {"", "empty output name"};
  if (raw.find('\0') != std::string::npos) return {"", "output name contains a NUL byte"};
  const fs::path p(raw);
  if (p.is_absolute() || raw.front() == '/' || raw.front() == '~')
    return {"", fmt::format("output name '{}' is absolute; names must be relative to --output_dir", raw)};
  const fs::path norm = p.lexically_normal();
  const std::string first = norm.empty() ? "" : norm.begin()->string();
  if (norm.empty() || first == ".." || norm == ".")
    return {"", fmt::format("output name '{}' escapes --output_dir", raw)};
  if (raw.back() == '/' || !norm.has_filename() || norm.filename() == "." || norm.filename() == "..")
    return {"", fmt::format("output name '{}' names a directory, not a file", raw)};

  std::string ext = norm.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  static const char* writable[] = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"};
  static const char* unwritable[] = {".gif", ".heic", ".heif", ".avif", ".jxl"};
  std::string name = norm.string() + ".png";
  for (const char* w : writable)
    if (ext == w) name = norm.string();
  for (const char* u : unwritable)
    if (ext == u) name = fs::path(norm).replace_extension(".png").string();
  // Each component of the final name must fit the file system's limit (NAME_MAX); the temporary name used
  // while writing keeps only a prefix of it (write_file_atomic), so a name of exactly the limit is writable.
  for (const auto& part : fs::path(name))
    if (part.string().size() > kMaxNameBytes)
      return {"", fmt::format("output name '{}...' has a component of {} bytes; at most {} fit", raw.substr(0, 40),
                              part.string().size(), kMaxNameBytes)};
  return {name, ""};
}

}  // namespace dg
