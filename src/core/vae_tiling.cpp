// diffusers' VAE tiling geometry (include/diffgentor/vae_tiling.hpp).
#include "diffgentor/vae_tiling.hpp"

#include <fmt/format.h>

#include <stdexcept>

using nlohmann::json;

namespace dg {

namespace {

int64_t int_key(const json& cfg, const char* key, int64_t fallback, const std::string& where) {
  if (!cfg.contains(key)) return fallback;
  // A [height, width] sample_size is refused as diffusers' tiling fails on it (it compares sizes with the list).
  const json& v = cfg.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() < 1)
    throw std::invalid_argument(
        fmt::format("{}: {} must be a positive integer for tiling, not {}", where, key, v.dump()));
  return v.get<int64_t>();
}

// The length of list `key`, which sets a power of two: at most 8 (a scale of 256, beyond any VAE).
std::size_t list_length(const json& cfg, const char* key, std::size_t fallback, const std::string& where) {
  if (!cfg.contains(key)) return fallback;
  if (!cfg.at(key).is_array() || cfg.at(key).size() > 8)
    throw std::invalid_argument(fmt::format("{}: {} must be a list of at most 8 entries", where, key));
  return cfg.at(key).size();
}

}  // namespace

VaeTiling vae_tiling(const json& cfg, const std::string& where) {
  VaeTiling t;
  t.vae_class = cfg.value("_class_name", "");
  if (t.vae_class == "AutoencoderKL" || t.vae_class == "AutoencoderKLFlux2") {
    // AutoencoderKL.__init__: sample_size 32, block_out_channels (64,); AutoencoderKLFlux2: 1024, four blocks
    const bool flux2 = t.vae_class == "AutoencoderKLFlux2";
    const int64_t s = int_key(cfg, "sample_size", flux2 ? 1024 : 32, where);
    const std::size_t blocks = list_length(cfg, "block_out_channels", flux2 ? 4 : 1, where);
    t.scale = int64_t{1} << (blocks == 0 ? 0 : blocks - 1);
    const auto l = static_cast<int64_t>(static_cast<double>(s) / static_cast<double>(t.scale));  // Python int(S / 2**k)
    const double overlap = 0.25;                                                                 // tile_overlap_factor
    t.decode.tile = l;
    t.decode.stride = static_cast<int64_t>(static_cast<double>(l) * (1 - overlap));
    t.decode.blend = static_cast<int64_t>(static_cast<double>(s) * overlap);
    t.decode.keep = s - t.decode.blend;
    t.encode.tile = s;
    t.encode.stride = static_cast<int64_t>(static_cast<double>(s) * (1 - overlap));
    t.encode.blend = static_cast<int64_t>(static_cast<double>(l) * overlap);
    t.encode.keep = l - t.encode.blend;
  } else if (t.vae_class == "AutoencoderKLQwenImage") {
    // spatial_compression_ratio = 2 ** len(temperal_downsample), default [False, True, True]
    t.scale = int64_t{1} << list_length(cfg, "temperal_downsample", 3, where);
    const int64_t tile = 256, stride = 192;  // tile_sample_min_* and tile_sample_stride_*, set in __init__
    t.decode = {tile / t.scale, stride / t.scale, tile - stride, stride, true};
    t.encode = {tile, stride, tile / t.scale - stride / t.scale, stride / t.scale, true};
  } else {
    throw std::invalid_argument(
        fmt::format("{}: VAE class '{}' has no tiling here (AutoencoderKL, AutoencoderKLFlux2 "
                    "and AutoencoderKLQwenImage do)",
                    where, t.vae_class));
  }
  if (t.scale != 8)
    throw std::invalid_argument(
        fmt::format("{}: this configuration scales by {}, the bundle's VAE components by 8", where, t.scale));
  for (const VaeTileRule* r : {&t.decode, &t.encode})
    if (r->tile < 1 || r->stride < 1 || r->keep < 1)
      throw std::invalid_argument(
          fmt::format("{}: sample_size {} gives tiles diffusers could not step through (tile {}, stride {}, keep {})",
                      where, cfg.value("sample_size", json()).dump(), r->tile, r->stride, r->keep));
  return t;
}

std::string describe(const VaeTiling& t) {
  return fmt::format(
      "{}: decode tiles of {} latents every {}, blending {} px and keeping {}; encode tiles of {} px every {}, "
      "blending {} latents and keeping {}",
      t.vae_class, t.decode.tile, t.decode.stride, t.decode.blend, t.decode.keep, t.encode.tile, t.encode.stride,
      t.encode.blend, t.encode.keep);
}

}  // namespace dg
