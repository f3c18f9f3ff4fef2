#pragma once
/// LoRA files (`--lora FILE[:SCALE]`, docs/lora.md): which layer each tensor of a safetensors file adapts, in the
/// naming schemes found in the wild, and the merge W += scale · (alpha / rank) · up · down into the transformer.
/// This header is torch-free (key parsing, grouping); Bundle's merge_lora (bundle.hpp) does the arithmetic.
#include <optional>
#include <string>
#include <vector>

#include "diffgentor/safetensors.hpp"

namespace dg {

/// One `--lora FILE[:SCALE]`.
struct LoraSpec {
  std::string path;
  double scale = 1.0;
};

/// "FILE" or "FILE:SCALE" (the part after the last ':' when it is a finite number, else all of it is the file).
LoraSpec parse_lora_spec(const std::string& text);

/// One adapted layer: the low-rank pair and its alpha, found under one layer name.
struct LoraLayer {
  /// The adapted layer: a dotted module path in diffusers' naming ("transformer_blocks.0.attn.to_q") or, for kohya
  /// files, the same path with '_' for '.' ("transformer_blocks_0_attn_to_q"; `kohya` true).
  std::string target;
  bool kohya = false;
  const SafeTensor* down = nullptr;  ///< [rank, in]: lora_A / lora_down
  const SafeTensor* up = nullptr;    ///< [out, rank]: lora_B / lora_up
  /// The file's alpha (a ".alpha" tensor, else lora_alpha · rank / r from diffusers' "lora_adapter_metadata"); unset:
  /// alpha = rank (diffusers' and PEFT's default). The merge scales by alpha / rank.
  std::optional<double> alpha;
};

/// The layers of a LoRA file, keyed by what they adapt. Recognised names (a prefix, the layer, a suffix):
///  - prefixes: "transformer." (diffusers), "diffusion_model." (ComfyUI, original checkpoints), "base_model.model."
///    (PEFT), "lora_unet_" (kohya: '_' for '.'), or none;
///  - suffixes: ".lora_A[.default].weight" / ".lora_down.weight" (down), ".lora_B[.default].weight" /
///    ".lora_up.weight" (up), ".alpha".
/// Throws std::invalid_argument naming the file and a few keys for keys it cannot place (text-encoder LoRAs:
/// "text_encoder.", "lora_te*"; DoRA magnitudes; unknown suffixes) and for a layer without both halves.
std::vector<LoraLayer> lora_layers(const SafetensorsFile& file, const std::string& path);

}  // namespace dg
