"""Writes tests/data/vae_tiling/goldens.json from diffusers' own tiled VAE code (include/diffgentor/vae_tiling.hpp).

diffusers' AutoencoderKL.tiled_decode / _tiled_encode and AutoencoderKLQwenImage.tiled_decode run with their
decoder and encoder replaced by a small stand-in that is not local (nearest up- or down-sampling plus the tile's
mean, so every tile's output depends on the whole tile and the blending shows), on a fixed input. The C++ test
(tests/engine/tiled_vae_test.cpp) runs the same stand-in through tiled_vae_call with the geometry vae_tiling computes
and must reproduce these outputs. Run it with the project's Python environment:

    python tools/goldens/vae_tiling_goldens.py tests/data/vae_tiling/goldens.json
"""
import argparse
import json
from pathlib import Path

import diffusers
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, AutoencoderKLQwenImage


class Stand(torch.nn.Module):
    """up: nearest x`scale` up-sampling + the tile's mean; down: average pooling by `scale` + the tile's mean. Takes
    and returns 5-D tensors (one frame) when `video`, ignoring the Qwen VAE's cache arguments."""

    def __init__(self, scale: int, up: bool, video: bool):
        super().__init__()
        self.scale, self.up, self.video = scale, up, video

    def forward(self, x, feat_cache=None, feat_idx=None):
        t = x[:, :, 0] if self.video else x
        if self.up:
            y = F.interpolate(t, scale_factor=self.scale, mode="nearest") + t.mean()
        else:
            y = F.avg_pool2d(t, self.scale) + t.mean()
        return y.unsqueeze(2) if self.video else y


def sample(shape) -> torch.Tensor:
    n = 1
    for s in shape:
        n *= s
    return torch.sin(torch.arange(n, dtype=torch.float32) * 0.37).reshape(shape) * 2


def case(name: str, vae, scale: int, video: bool, x: torch.Tensor, direction: str, out_dir: Path) -> dict:
    """Runs the class's tiled call on x (4-D; a frame axis is added for the Qwen VAE) and writes the output as
    <name>.f32 beside the index."""
    stand = Stand(scale, direction == "decode", video)
    xin = x.unsqueeze(2) if video else x
    with torch.no_grad():
        if direction == "decode":
            vae.decoder = stand
            out = vae.tiled_decode(xin, return_dict=False)[0]
        else:
            vae.encoder = stand
            out = vae.tiled_encode(xin) if video else vae._tiled_encode(xin)
    out = out[:, :, 0] if video else out
    out.contiguous().numpy().astype("<f4").tofile(out_dir / f"{name}.f32")
    return {"name": name, "class": type(vae).__name__, "direction": direction, "input_shape": list(x.shape),
            "input_sum": float(x.double().sum()), "output_shape": list(out.shape), "output": f"{name}.f32"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", help="the index to write; the outputs go beside it")
    args = parser.parse_args()
    out_dir = Path(args.out).parent
    # AutoencoderKL with sample_size 64 and four blocks: tiles of 8 latents every 6 blending 16 px (decode), of
    # 64 px every 48 blending 2 latents (encode); its config is what the runtime reads.
    kl_config = {"sample_size": 64, "block_out_channels": [8, 8, 8, 8], "norm_num_groups": 8,
                 "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
                 "use_quant_conv": False, "use_post_quant_conv": False}
    kl = AutoencoderKL.from_config(kl_config)
    # AutoencoderKLQwenImage with its own fixed sample tiles of 256 every 192 (scale 8)
    qwen = AutoencoderKLQwenImage(base_dim=8, z_dim=1, dim_mult=[1, 1, 1, 1], num_res_blocks=1)
    qwen.enable_tiling()
    qwen.post_quant_conv = qwen.quant_conv = torch.nn.Identity()
    cases = [case("kl_decode", kl, 8, False, sample((1, 1, 13, 19)), "decode", out_dir),
             case("kl_encode", kl, 8, False, sample((1, 1, 104, 152)), "encode", out_dir),
             case("qwen_decode", qwen, 8, True, sample((1, 1, 36, 44)), "decode", out_dir),
             case("qwen_encode", qwen, 8, True, sample((1, 1, 288, 352)), "encode", out_dir)]
    doc = {"generator": "tools/goldens/vae_tiling_goldens.py", "diffusers": diffusers.__version__,
           "torch": torch.__version__, "input": "sin(arange(n, float32) * 0.37) * 2 in the input's shape",
           "stand_in": "decode: nearest x8 up-sampling + the tile's mean; encode: 8x8 average pooling + tile mean",
           "kl_config": {"_class_name": "AutoencoderKL", "sample_size": kl_config["sample_size"],
                         "block_out_channels": kl_config["block_out_channels"]},
           "cases": cases}
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
