// LoRA file naming (include/diffgentor/lora.hpp). The schemes are those diffusers' lora_conversion_utils.py accepts
// for the transformer of the supported pipelines; BFL's original FLUX naming (fused qkv: "double_blocks.0.img_attn")
// needs a re-split this runtime does not do, and is reported as unplaceable.
#include "diffgentor/lora.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace dg {

LoraSpec parse_lora_spec(const std::string& text) {
  LoraSpec s{text, 1.0};
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return s;
  const std::string tail = text.substr(colon + 1);
  try {
    std::size_t used = 0;
    const double v = std::stod(tail, &used);
    if (used == tail.size() && std::isfinite(v)) s = {text.substr(0, colon), v};
  } catch (const std::exception&) {  // not a number: the colon is part of the file name
  }
  return s;
}

namespace {

bool strip_prefix(std::string& s, const std::string& prefix) {
  if (s.rfind(prefix, 0) != 0) return false;
  s = s.substr(prefix.size());
  return true;
}

bool strip_suffix(std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  s.resize(s.size() - suffix.size());
  return true;
}

}  // namespace

std::vector<LoraLayer> lora_layers(const SafetensorsFile& file, const std::string& path) {
  std::map<std::string, LoraLayer> layers;
  std::vector<std::string> unplaced;
  for (const auto& [key, tensor] : file.tensors) {
    std::string name = key;
    bool kohya = false;
    if (strip_prefix(name, "lora_unet_")) {
      kohya = true;
    } else if (!strip_prefix(name, "transformer.") && !strip_prefix(name, "diffusion_model.")) {
      strip_prefix(name, "base_model.model.");
    }
    enum { Down, Up, Alpha, None } part = None;
    for (const char* s : {".lora_A.weight", ".lora_A.default.weight", ".lora_down.weight"})
      if (part == None && strip_suffix(name, s)) part = Down;
    for (const char* s : {".lora_B.weight", ".lora_B.default.weight", ".lora_up.weight"})
      if (part == None && strip_suffix(name, s)) part = Up;
    if (part == None && strip_suffix(name, ".alpha")) part = Alpha;
    const bool text_encoder = key.rfind("text_encoder", 0) == 0 || key.rfind("lora_te", 0) == 0;
    if (part == None || text_encoder || name.empty()) {
      unplaced.push_back(key);
      continue;
    }
    LoraLayer& layer = layers[(kohya ? "k:" : "d:") + name];
    layer.target = name;
    layer.kohya = kohya;
    if (part == Down) layer.down = &tensor;
    if (part == Up) layer.up = &tensor;
    if (part == Alpha) {
      if (tensor.shape.size() > 1 ||
          tensor.bytes.size() != static_cast<std::size_t>(safetensors_dtype_size(tensor.dtype)))
        throw std::invalid_argument(fmt::format("LoRA {}: {} is not a single alpha value", path, key));
      double v = 0;
      if (tensor.dtype == "F32") {
        float f;
        std::memcpy(&f, tensor.bytes.data(), 4);
        v = f;
      } else if (tensor.dtype == "F64") {
        std::memcpy(&v, tensor.bytes.data(), 8);
      } else if (tensor.dtype == "BF16" || tensor.dtype == "F16") {
        uint16_t h;
        std::memcpy(&h, tensor.bytes.data(), 2);
        if (tensor.dtype == "BF16") {
          const uint32_t bits = uint32_t(h) << 16;
          float f;
          std::memcpy(&f, &bits, 4);
          v = f;
        } else {  // IEEE half: sign, 5-bit exponent, 10-bit mantissa
          const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
          v = e == 31 ? std::nan("")  // infinity or NaN: refused below
                      : (e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25)) * ((h & 0x8000) ? -1 : 1);
        }
      } else {
        throw std::invalid_argument(fmt::format("LoRA {}: {} has dtype {}, not a float", path, key, tensor.dtype));
      }
      if (!std::isfinite(v) || v <= 0)
        throw std::invalid_argument(fmt::format("LoRA {}: {} is {}, not a positive alpha", path, key, v));
      layer.alpha = v;
    }
  }
  if (!unplaced.empty()) {
    const std::size_t show = std::min<std::size_t>(unplaced.size(), 5);
    throw std::invalid_argument(fmt::format(
        "LoRA {}: {} of {} tensors adapt nothing this runtime can place ({}{}); it merges transformer LoRAs in "
        "diffusers, PEFT, ComfyUI (diffusion_model.) and kohya (lora_unet_) naming (docs/lora.md)",
        path, unplaced.size(), file.tensors.size(), fmt::join(unplaced.begin(), unplaced.begin() + show, ", "),
        unplaced.size() > show ? ", ..." : ""));
  }
  // diffusers' save_lora_weights keeps PEFT's lora_alpha and r in the file's metadata ("lora_adapter_metadata",
  // keys prefixed "transformer."): scaling lora_alpha / r for every layer without an alpha tensor of its own.
  std::optional<double> metadata_scaling;
  if (const auto it = file.metadata.find("lora_adapter_metadata"); it != file.metadata.end()) {
    const nlohmann::json m = nlohmann::json::parse(it->second, nullptr, false);
    if (m.is_object() && m.contains("transformer.lora_alpha") && m.contains("transformer.r")) {
      for (const char* pattern : {"transformer.alpha_pattern", "transformer.rank_pattern"})
        if (m.contains(pattern) && !m.at(pattern).empty())
          throw std::invalid_argument(
              fmt::format("LoRA {}: its metadata sets a per-layer {} this runtime does not apply", path, pattern + 12));
      const nlohmann::json &alpha = m.at("transformer.lora_alpha"), &r = m.at("transformer.r");
      if (!alpha.is_number() || !r.is_number() || alpha.get<double>() <= 0 || r.get<double>() <= 0)
        throw std::invalid_argument(
            fmt::format("LoRA {}: lora_adapter_metadata's lora_alpha {} and r {} are not positive numbers", path,
                        alpha.dump(), r.dump()));
      metadata_scaling = alpha.get<double>() / r.get<double>();
    }
  }
  std::vector<LoraLayer> out;
  for (auto& [key, layer] : layers) {
    if (!layer.down || !layer.up)
      throw std::invalid_argument(fmt::format("LoRA {}: layer {} has only its {} half", path, layer.target,
                                              layer.down ? "down (lora_A)" : "up (lora_B)"));
    if (!layer.alpha && metadata_scaling && !layer.down->shape.empty())
      layer.alpha = *metadata_scaling * static_cast<double>(layer.down->shape[0]);
    out.push_back(layer);
  }
  if (out.empty()) throw std::invalid_argument(fmt::format("LoRA {}: no LoRA layers in the file", path));
  return out;
}

}  // namespace dg
