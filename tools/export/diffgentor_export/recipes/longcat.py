"""LongCat-Image-Edit: the Qwen2.5-VL encoders (qwen.py), the LongCat DiT (FLUX-like, float ids) and a
16-channel AutoencoderKL."""
from __future__ import annotations

import torch

from ..models.flux import LongCatDiT
from .base import Job, Recipe, register
from .common import ids_cases, vae_jobs
from .qwen import qwen_vl_jobs


def _dit_cases(t, ctx):
    def extra(ctx, x, text, ts, img_ids, txt_ids):
        return (x, text, ts, img_ids, txt_ids), dict(hidden_states=x, encoder_hidden_states=text,
                                                     timestep=ts.to(ctx.dtype), img_ids=img_ids, txt_ids=txt_ids)
    return ids_cases(t, ctx, 1, 3, torch.float32, extra)


def _jobs(ctx, configs):
    return [*qwen_vl_jobs(ctx.math), Job("transformer", "transformer", LongCatDiT, _dit_cases),
            *vae_jobs(16, video=False)]


register(Recipe("longcat", _jobs, runtime_files=("text_processor/preprocessor_config.json",)))
