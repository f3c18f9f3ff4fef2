#pragma once
/// The geometry of diffusers' tiled VAE calls (`enable_tiling`), per VAE class, read from the bundle's
/// vae/config.json. Torch-free: the tensor work that follows it is tiled_vae_call (include/diffgentor/tiled_vae.hpp).
///
/// One direction (decode: latents [B, C, h, w] -> image [B, 3, 8h, 8w]; encode: the reverse) works the same way for
/// every VAE diffusers tiles: the input is cut into square tiles of side `tile` starting at every multiple of
/// `stride` (the last ones are smaller where the input ends); each tile runs through the component alone; a tile's
/// output is blended linearly with the one above over `blend` rows and with the one to its left over `blend`
/// columns; the first `keep` rows and columns of each are joined. The classes differ only in the numbers and in
/// whether the joined result is cut to the input's size times the scale (`crop`).
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace dg {

struct VaeTileRule {
  int64_t tile = 0;    ///< input tile side (latents for decode, pixels for encode)
  int64_t stride = 0;  ///< step between tile starts, in input units
  int64_t blend = 0;   ///< output rows/columns blended with the previous tile
  int64_t keep = 0;    ///< output rows/columns kept of each tile
  bool crop = false;   ///< cut the joined result to the input side x scale (AutoencoderKLQwenImage)
  /// diffusers tiles when either side of the input is larger than a tile.
  bool applies(int64_t height, int64_t width) const { return height > tile || width > tile; }
};

struct VaeTiling {
  std::string vae_class;  ///< vae/config.json `_class_name`
  int64_t scale = 8;      ///< pixels per latent along a side
  VaeTileRule decode;     ///< latents in, pixels out
  VaeTileRule encode;     ///< pixels in, latents out
};

/// The tiling diffusers' `vae_class` does with `vae_config` (its config.json):
/// - AutoencoderKL, AutoencoderKLFlux2 (`tiled_decode`, `_tiled_encode`): S = sample_size, L = int(S / 2^(n-1)) for
///   n = len(block_out_channels), overlap factor 0.25. Decode: tile L, stride int(0.75 L), blend int(0.25 S), keep
///   S - blend. Encode: tile S, stride int(0.75 S), blend int(0.25 L), keep L - blend. No crop.
/// - AutoencoderKLQwenImage (`tiled_decode`, `tiled_encode`): sample tiles of 256 every 192 (the class's fixed
///   defaults), r = 2^len(temperal_downsample). Decode: tile 256/r, stride 192/r, blend 64, keep 192. Encode: tile 256,
///   stride 192, blend 256/r - 192/r, keep 192/r. Cropped to the input size x scale.
/// A key the config lacks takes the class's constructor default, as diffusers' from_config does. Throws
/// std::invalid_argument naming the file for another class, a malformed key, a scale other than the contract's 8 or
/// a geometry diffusers itself could not run (a zero stride).
VaeTiling vae_tiling(const nlohmann::json& vae_config, const std::string& where);

/// One line for the log: "AutoencoderKL: decode tiles of 32 latents every 24, blending 64 px; encode ...".
std::string describe(const VaeTiling& tiling);

}  // namespace dg
