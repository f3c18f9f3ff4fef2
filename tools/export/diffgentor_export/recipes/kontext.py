"""FLUX.1-Kontext: CLIP (pooled) and T5 text encoders, the FLUX.1 DiT with its guidance embedding, a 16-channel
AutoencoderKL; the runtime also opens tokenizer_2/ (T5's)."""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..models.flux import ClipPooled, KontextDiT, T5Encoder
from .base import Case, Job, Recipe, register
from .common import ids_cases, padded_ids, vae_jobs


def _fixed_len_cases(length: int, pad_of: Callable, pooled: bool):
    """CLIP (77, EOS-padded, pooled) and T5 (512, 0-padded, last_hidden_state): fixed lengths, no mask."""
    def cases(model, ctx):
        vocab = int(model.config.vocab_size)
        out = []
        for real in (9, length, 2):
            ids, _ = padded_ids(ctx, vocab - 1, length, real, pad_of(model))

            def ref(ids=ids):
                result = model(ids, output_hidden_states=False)
                return result.pooler_output if pooled else result[0]
            out.append(Case(f"real={real}", (ids,), ref))
        return out
    return cases


def _dit_cases(t, ctx):
    def extra(ctx, x, text, ts, img_ids, txt_ids):
        pooled = ctx.randn(1, t.config.pooled_projection_dim)
        g = torch.full((1,), 2.5, device=ctx.device)
        return (x, text, pooled, ts, g, img_ids, txt_ids), dict(
            hidden_states=x, encoder_hidden_states=text, pooled_projections=pooled, timestep=ts.to(ctx.dtype),
            guidance=g.to(ctx.dtype), img_ids=img_ids, txt_ids=txt_ids)
    return ids_cases(t, ctx, 1, 3, torch.float32, extra)


def _clip_pad(clip) -> int:
    return int(clip.config.eos_token_id)  # CLIP pads with EOS


def _t5_pad(t5) -> int:
    return 0


def _jobs(ctx, configs):
    return [Job("text_encoder", "text_encoder", ClipPooled, _fixed_len_cases(77, _clip_pad, pooled=True)),
            Job("text_encoder_2", "text_encoder_2", T5Encoder, _fixed_len_cases(512, _t5_pad, pooled=False)),
            Job("transformer", "transformer", KontextDiT, _dit_cases),
            *vae_jobs(16, video=False)]


register(Recipe("flux1_kontext", _jobs,
                runtime_files=("tokenizer_2/tokenizer.json", "tokenizer_2/tokenizer_config.json")))
