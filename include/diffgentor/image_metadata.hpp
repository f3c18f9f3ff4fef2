#pragma once
/// The generation parameters written into each output image (docs/batch-runner.md, "Outputs"): one
/// text in the A1111 / stable-diffusion.cpp `parameters` style, stored where image tools look for it: a PNG `iTXt`
/// chunk named `parameters`, and in JPEG and WebP the EXIF UserComment (tag 0x9286 in the Exif IFD, "UNICODE"
/// followed by UTF-16BE, as A1111 writes it with piexif). Torch-free.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dg {

/// What made an image.
struct ImageParameters {
  std::string instruction;              ///< as the manifest gives it
  std::string enhanced;                 ///< the rewritten instruction the model got, or "" when none
  std::optional<std::string> negative;  ///< the negative prompt, when one applies
  int steps = 0;
  double guidance = 0;
  std::optional<double> true_cfg;
  uint64_t seed = 0;
  int width = 0, height = 0;
  std::string model;       ///< --model_name as given (a hub id or a folder)
  std::string model_type;  ///< the model table's type
  std::string version;     ///< diffgentor's version
  std::string loras;       ///< the --lora set as results.csv's `loras` records it ("FILE:SCALE;..."), or ""
};

/// The text: the instruction, a "Negative prompt: ..." line when one applies, then one line of "Key: value" pairs
/// ("Steps: 40, Sampler: FlowMatchEuler, CFG scale: 1, True CFG scale: 4, Seed: 7, Size: 1024x1024, Model: ...,
/// Model type: qwen, LoRA: "a.safetensors:0.8", Enhanced prompt: "...", Version: diffgentor 0.1.0"); a value holding a
/// comma, colon or newline is JSON-quoted, as A1111 quotes it.
std::string parameters_text(const ImageParameters& p);

/// `encoded` (an image file's bytes as encode_image wrote them for `extension`) with `text` embedded: .png gets an
/// iTXt chunk after IHDR, .jpg/.jpeg an APP1 Exif segment after SOI/APP0 (text cut to the segment's 64 KiB), .webp
/// becomes an extended (VP8X) file with an EXIF chunk. Other formats are returned unchanged.
std::string embed_parameters(const std::string& encoded, const std::string& extension, const std::string& text);

/// The `parameters` text of a PNG (iTXt or tEXt), JPEG or WebP (EXIF UserComment), or nullopt when there is none.
std::optional<std::string> read_parameters(std::string_view bytes);

}  // namespace dg
