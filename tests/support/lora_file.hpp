#pragma once
// A LoRA file for the tiny FLUX.2 DiTs (klein, dev, Kontext), whose output projection is "proj_out.weight" [128, 32].
#include <string>

namespace dg::test {

/// Writes a diffusers-named LoRA of rank 2 for proj_out (transformer.proj_out.lora_A.weight [2, 32], lora_B [128, 2],
/// float32, values from `seed`) in the safetensors format: an 8-byte little-endian header length, the JSON header,
/// the data.
void write_tiny_proj_out_lora(const std::string& path, int seed);

}  // namespace dg::test
