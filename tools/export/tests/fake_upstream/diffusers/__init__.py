"""Stand-ins for the diffusers classes FLUX.1-Kontext and FLUX.2-klein exports load, with upstream's call interfaces
(forward keywords and `return_dict`, `_encode`/`_decode`, `encode(...).latent_dist.mode()`)."""
from types import SimpleNamespace

import torch
from torch import nn

from common import Loadable, StandInVae, config

__version__ = "0.0.0+stand-in"


class FluxTransformer2DModel(Loadable):
    def __init__(self):
        super().__init__()
        self.config = config(in_channels=64, joint_attention_dim=32, pooled_projection_dim=16)
        self.x, self.c, self.p, self.o = nn.Linear(64, 32), nn.Linear(32, 32), nn.Linear(16, 32), nn.Linear(32, 64)

    def forward(self, hidden_states, encoder_hidden_states=None, pooled_projections=None, timestep=None,
                img_ids=None, txt_ids=None, guidance=None, return_dict=True):
        x = self.x(hidden_states)
        text = self.c(encoder_hidden_states).mean(1, keepdim=True) + txt_ids.sum() * 0
        angle = (img_ids[:, :1] + 0.3 * img_ids[:, 1:2] + 0.7 * img_ids[:, 2:3]) * 0.1
        t = (timestep.to(x.dtype) * 1000)[:, None, None] * 1e-3 + guidance.to(x.dtype)[:, None, None] * 1e-2
        out = self.o(torch.tanh(x * torch.cos(angle) + text + self.p(pooled_projections)[:, None] + t))
        return (out,) if not return_dict else SimpleNamespace(sample=out)


class AutoencoderKL(StandInVae):
    def __init__(self):
        super().__init__(nn.Conv2d(3, 32, 8, stride=8), nn.ConvTranspose2d(16, 3, 8, stride=8))


class Flux2Transformer2DModel(Loadable):
    def __init__(self):
        super().__init__()
        self.config = config(in_channels=128, joint_attention_dim=24)
        self.x, self.c, self.o = nn.Linear(128, 32), nn.Linear(24, 32), nn.Linear(32, 128)

    def forward(self, hidden_states, encoder_hidden_states=None, timestep=None, img_ids=None, txt_ids=None,
                guidance=None, return_dict=True):
        x = self.x(hidden_states)
        text = self.c(encoder_hidden_states).mean(1, keepdim=True) + txt_ids[:, 3:].float().mean() * 1e-3
        angle = (img_ids[:, :1] * 0.05 + img_ids[:, 1:2] * 0.3 + img_ids[:, 2:3] * 0.7).float() * 0.1
        t = (timestep.to(x.dtype) * 1000)[:, None, None] * 1e-3
        out = self.o(torch.tanh(x * torch.cos(angle) + text + t))
        return (out,) if not return_dict else SimpleNamespace(sample=out)


class AutoencoderKLFlux2(StandInVae):
    channels = 32

    def __init__(self):
        super().__init__(nn.Conv2d(3, 64, 8, stride=8), nn.ConvTranspose2d(32, 3, 8, stride=8))
        self.bn = nn.BatchNorm2d(128)
        g = torch.Generator().manual_seed(9)
        self.bn.running_mean.copy_(torch.randn(128, generator=g) * 0.3)
        self.bn.running_var.copy_(torch.rand(128, generator=g) + 0.5)


from .qwen_image import AutoencoderKLQwenImage, QwenImageTransformer2DModel  # noqa: E402,F401


class LongCatImageTransformer2DModel(Loadable):
    def __init__(self):
        super().__init__()
        self.config = config(in_channels=64, joint_attention_dim=8)
        self.x, self.c, self.o = nn.Linear(64, 32), nn.Linear(8, 32), nn.Linear(32, 64)

    def forward(self, hidden_states, encoder_hidden_states=None, timestep=None, img_ids=None, txt_ids=None,
                guidance=None, return_dict=True):
        x = self.x(hidden_states)
        text = self.c(encoder_hidden_states).mean(1, keepdim=True) + txt_ids[:, 1:2].mean() * 1e-3
        angle = (img_ids[:, :1] + 0.3 * img_ids[:, 1:2] + 0.7 * img_ids[:, 2:3]) * 0.1
        t = (timestep.to(x.dtype) * 1000)[:, None, None] * 1e-3
        out = self.o(torch.tanh(x * torch.cos(angle) + text + t))
        return (out,) if not return_dict else SimpleNamespace(sample=out)


class Flux2DevTransformer(Flux2Transformer2DModel):
    """FLUX.2-dev's DiT differs from klein's stand-in by the guidance embedding."""

    def forward(self, hidden_states, encoder_hidden_states=None, timestep=None, img_ids=None, txt_ids=None,
                guidance=None, return_dict=True):
        out = super().forward(hidden_states, encoder_hidden_states, timestep, img_ids, txt_ids, None, False)[0]
        out = out + guidance.to(out.dtype)[:, None, None] * 1e-2
        return (out,) if not return_dict else SimpleNamespace(sample=out)
