#pragma once
/// Output file names (docs/batch-runner.md, "Outputs"; safe output names).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace dg {

/// The longest file or folder name most file systems allow (NAME_MAX).
inline constexpr std::size_t kMaxNameBytes = 255;

/// `{index:06d}.png`.
std::string default_output_name(int64_t index);

struct OutputName {
  std::string name;   ///< relative to the output directory, normalised; empty on error
  std::string error;  ///< why the name was rejected
};

/// The row's output name: the custom value when given, else the default. A custom name that is
/// empty, absolute or escapes the output directory is rejected. Suffixes .png .jpg .jpeg .webp .bmp
/// .tif .tiff are written as such; other image suffixes (.gif, .heic, .avif) are replaced by .png;
/// anything else gets .png appended (so "shot.v2" becomes "shot.v2.png"). With `format` (png, jpg, webp:
/// --output_format) the name's extension is then replaced by the format's ("a.jpeg" -> "a.png").
OutputName make_output_name(const std::optional<std::string>& custom, int64_t index,
                            const std::optional<std::string>& format = std::nullopt);

}  // namespace dg
