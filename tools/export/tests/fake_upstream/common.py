"""Shared base of the stand-in upstream classes (tests/test_export_end_to_end.py only): `from_pretrained`
seeds a small module per subfolder instead of reading weights, so an export runs through the real exporter
code with Debian's torch and no diffusers or transformers installed."""
from types import SimpleNamespace

import torch
from torch import nn

SEEDS = {"transformer": 1, "vae": 2, "text_encoder": 3, "text_encoder_2": 4}


class Loadable(nn.Module):
    @classmethod
    def from_pretrained(cls, path, subfolder=None, torch_dtype=None, dtype=None, **_):
        torch.manual_seed(SEEDS.get(subfolder, 0))
        return cls().to(torch_dtype or dtype or torch.float32)


def config(**kw):
    return SimpleNamespace(**kw)
