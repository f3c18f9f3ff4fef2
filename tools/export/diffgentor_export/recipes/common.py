"""Case builders more than one family uses: the VAE halves, the DiTs that take position ids, padded token ids."""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..models.common import vae_components
from .base import Case, Job

# ---- VAE -----------------------------------------------------------------------------------------------------


def vae_jobs(channels: int, video: bool) -> list:
    def encoder_cases(vae, ctx):
        out = []
        for h, w in ((64, 96), (80, 48), (128, 128)):
            x = ctx.randn(1, 3, h, w).clamp(-1, 1)
            if video:
                def ref(x=x):
                    return vae.encode(x.unsqueeze(2)).latent_dist.mode()[:, :, 0]
            else:
                def ref(x=x):
                    return vae.encode(x).latent_dist.mode()
            out.append(Case(f"{h}x{w}", (x,), ref))
        return out

    def decoder_cases(vae, ctx):
        out = []
        for h, w in ((8, 12), (10, 6), (16, 16)):
            z = ctx.randn(1, channels, h, w)
            if video:
                def ref(z=z):
                    return vae.decode(z.unsqueeze(2), return_dict=False)[0][:, :, 0]
            else:
                def ref(z=z):
                    return vae.decode(z, return_dict=False)[0]
            out.append(Case(f"{h}x{w}", (z,), ref))
        return out

    return [Job("vae_encoder", "vae", lambda vae: vae_components(vae, channels, video)["vae_encoder"], encoder_cases),
            Job("vae_decoder", "vae", lambda vae: vae_components(vae, channels, video)["vae_decoder"], decoder_cases)]


# ---- DiTs that take ids (FLUX.2, FLUX.1-Kontext, LongCat) -----------------------------------------------------

def ids_cases(t, ctx, width: int, columns: int, id_dtype, extra: Callable):
    """Cases for the DiTs that take ids: (noise + reference tokens, text length) of three shapes."""
    cfg = t.config
    out = []
    for (h, w, refs), L in (((8, 12, 1), 20), ((6, 10, 2), 9), ((12, 4, 1), 31)):
        S = h * w * (1 + refs)
        x = ctx.randn(1, S, cfg.in_channels)
        text = ctx.randn(1, L, cfg.joint_attention_dim)
        r = torch.arange(h).repeat_interleave(w).repeat(1 + refs)
        c = torch.arange(w).repeat(h).repeat(1 + refs)
        k = torch.arange(1 + refs).repeat_interleave(h * w)
        img_ids = torch.zeros(S, columns)
        img_ids[:, 0], img_ids[:, 1], img_ids[:, 2] = k * width, r, c
        txt_ids = torch.zeros(L, columns)
        if columns == 4:
            txt_ids[:, 3] = torch.arange(L)
        img_ids, txt_ids = img_ids.to(ctx.device, id_dtype), txt_ids.to(ctx.device, id_dtype)
        ts = torch.full((1,), 0.625, device=ctx.device)
        args, kwargs = extra(ctx, x, text, ts, img_ids, txt_ids)
        out.append(Case(f"S={S},L={L},refs={refs}", args,
                        lambda kwargs=kwargs: t(return_dict=False, **kwargs)[0]))
    return out


# ---- text encoders -------------------------------------------------------------------------------------------

def padded_ids(ctx, vocab: int, length: int, real: int, pad_id: int):
    ids = torch.full((1, length), pad_id, device=ctx.device)
    ids[0, :real] = ctx.randint(vocab, real)
    mask = torch.zeros_like(ids)
    mask[0, :real] = 1
    return ids, mask
