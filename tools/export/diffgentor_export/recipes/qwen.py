"""Qwen-Image-Edit (qwen: the Plus pipeline, 2509/2511; qwen_singleimg: the first one): the Qwen2.5-VL encoders
(which LongCat shares, longcat.py), the Qwen-Image DiT and the 16-channel video VAE."""
from __future__ import annotations

import inspect

import torch

from .. import inputs
from ..models.qwen import QwenImageDiT, QwenTextEncoder, QwenVisionEncoder
from .base import Case, Job, Recipe, first_tensor, register
from .common import vae_jobs

# ---- Qwen2.5-VL encoders (qwen, qwen_singleimg, longcat) ---------------------------------------------------


def _vision_geometry(te):
    vc = te.config.vision_config
    merge = vc.spatial_merge_size
    return vc, merge, vc.window_size // merge // vc.patch_size


def _vision_inputs(te, ctx, grids):
    vc, merge, window = _vision_geometry(te)
    pos, wseg, iseg = inputs.qwen_vision_inputs(grids, merge, window)
    row = getattr(vc, "in_channels", 3) * vc.temporal_patch_size * vc.patch_size ** 2
    pixel_values = ctx.randn(len(pos), row, dtype=torch.float32)
    grid_thw = torch.tensor([[1, gh, gw] for gh, gw in grids], device=ctx.device)
    return pixel_values, pos.to(ctx.device), wseg.to(ctx.device), iseg.to(ctx.device), grid_thw


VISION_GRIDS = ([(16, 20)], [(12, 8)], [(20, 20), (8, 12)])  # trace case, then other sizes, then two images


def _vision_cases(te, ctx):
    visual = getattr(getattr(te, "model", te), "visual", None) or te.visual
    out = []
    for grids in VISION_GRIDS:
        pv, pos, wseg, iseg, thw = _vision_inputs(te, ctx, grids)
        out.append(Case("+".join(f"{h}x{w}" for h, w in grids), (pv, pos, wseg, iseg),
                        lambda pv=pv, thw=thw: first_tensor(visual(pv, grid_thw=thw))))
    return out


def _text_cases(te, ctx):
    """Template-like ids with each image's pads expanded; the third case pads in the middle (LongCat)."""
    visual = getattr(getattr(te, "model", te), "visual", None) or te.visual
    model = getattr(te, "model", te)
    cfg = te.config
    text_cfg = getattr(cfg, "text_config", cfg)
    vocab = min(int(text_cfg.vocab_size), int(cfg.image_token_id), int(cfg.vision_start_token_id))
    out = []
    for grids, (before, after, middle_pad) in zip(VISION_GRIDS, ((7, 5, 0), (3, 11, 0), (9, 4, 6)), strict=True):
        pv, _, _, _, thw = _vision_inputs(te, ctx, grids)
        _, merge, _ = _vision_geometry(te)
        ids = [ctx.randint(vocab, before)]
        for gh, gw in grids:
            ids += [torch.tensor([cfg.vision_start_token_id], device=ctx.device),
                    torch.full(((gh // merge) * (gw // merge),), cfg.image_token_id, device=ctx.device),
                    ctx.randint(vocab, 1)]
        ids += [ctx.randint(vocab, middle_pad), ctx.randint(vocab, after)]
        input_ids = torch.cat(ids)[None]
        mask = torch.ones_like(input_ids)
        if middle_pad:
            start = input_ids.shape[1] - after - middle_pad
            mask[:, start:start + middle_pad] = 0
        types = mm_token_types(model, input_ids, cfg.image_token_id)
        with torch.no_grad():
            embeds = first_tensor(visual(pv, grid_thw=thw)).to(ctx.dtype)
            position_ids = model.get_rope_index(input_ids=input_ids, image_grid_thw=thw, attention_mask=mask,
                                                **types)[0]
        out.append(Case(f"L={input_ids.shape[1]},pad={middle_pad}", (input_ids, mask, position_ids, embeds),
                        lambda i=input_ids, m=mask, pv=pv, thw=thw, types=types: te(
                            input_ids=i, attention_mask=m, pixel_values=pv, image_grid_thw=thw,
                            output_hidden_states=True, **types).hidden_states[-1]))
    return out


def mm_token_types(model, input_ids, image_token_id: int) -> dict:
    """transformers >= 5 computes Qwen2.5-VL's 3-D positions only when given `mm_token_type_ids` (0 text,
    1 image; the processor makes them); without them it falls back to 1-D positions. The contract's positions
    are the 3-D ones (docs/parity.md, "Upstream defects the reference works around"), so upstream is called
    with them. `model` is the module with `get_rope_index`; returns the keyword to pass ({} with transformers
    4, which finds the image tokens itself)."""
    if "mm_token_type_ids" not in inspect.signature(model.get_rope_index).parameters:
        return {}
    return {"mm_token_type_ids": (input_ids == int(image_token_id)).int()}


def qwen_vl_jobs(ctx_math: bool) -> list:
    return [Job("vision_encoder", "text_encoder", lambda te: QwenVisionEncoder(te, ctx_math), _vision_cases),
            Job("text_encoder", "text_encoder", QwenTextEncoder, _text_cases)]


# ---- the Qwen-Image DiT -----------------------------------------------------------------------------------------

def _qwen_dit_cases(t, ctx):
    cfg = t.config
    out = []
    # (shapes, L, valid text lengths per row): one row, or a batch of two with the shorter prompt padded to the
    # longer, as the runtime batches rows and CFG branches (docs/batching.md).
    for shapes, L, valid in (([(1, 8, 12), (1, 8, 12)], 20, (20,)), ([(1, 10, 6), (1, 4, 8)], 9, (9,)),
                             ([(1, 6, 6), (1, 6, 6), (1, 8, 4)], 33, (33,)), ([(1, 8, 8), (1, 4, 4)], 14, (14, 9))):
        B = len(valid)
        S, Sn = sum(f * h * w for f, h, w in shapes), shapes[0][1] * shapes[0][2]
        x = ctx.randn(B, S, cfg.in_channels)
        text = ctx.randn(B, L, cfg.joint_attention_dim)
        mask = torch.arange(L)[None, :] < torch.tensor(valid)[:, None]
        text = text * mask[..., None].to(text.dtype).to(ctx.device)  # the runtime pads with zeros
        ts = torch.full((B,), 0.625, device=ctx.device)
        img, txt = inputs.qwen_rope_tables(shapes, L, tuple(cfg.axes_dims_rope))
        modulate = torch.cat([torch.zeros(Sn, dtype=torch.long), torch.ones(S - Sn, dtype=torch.long)])[None]
        mask = mask.to(ctx.device)
        out.append(Case(f"S={S},L={L},B={B}" + (f",valid={valid}" if B > 1 else "") + f",refs={len(shapes) - 1}",
                        (x, text, ts, img.to(ctx.device), txt.to(ctx.device), modulate.expand(B, S).to(ctx.device),
                         mask),
                        lambda x=x, text=text, ts=ts, shapes=shapes, mask=mask, B=B: t(
                            hidden_states=x, encoder_hidden_states=text,
                            encoder_hidden_states_mask=mask if B > 1 else None,
                            timestep=ts.to(ctx.dtype), img_shapes=[shapes] * B, return_dict=False)[0]))
    return out


# ---- the recipes ------------------------------------------------------------------------------------------------

def _jobs(ctx, configs):
    zero_cond = bool(configs["transformer"].get("zero_cond_t", False))
    return [*qwen_vl_jobs(ctx.math),
            Job("transformer", "transformer", QwenImageDiT, _qwen_dit_cases,
                unused=[] if zero_cond else ["modulate_index"]),
            *vae_jobs(16, video=True)]


def _constants(ctx, subfolder, module):
    if subfolder != "transformer":
        return {}
    # QwenImageEdit(Plus)Pipeline.prompt_template_encode_start_idx: the system turn + "<|im_start|>user\n"
    # of the Qwen2.5-VL tokenizer (tests/data/tokenizers/qwen2/templates.json checks it).
    return {"prompt_template_encode_start_idx": 64}


RUNTIME_FILES = ("processor/preprocessor_config.json",)  # the Qwen2-VL image processor's settings
register(Recipe("qwen", _jobs, _constants, RUNTIME_FILES))
register(Recipe("qwen_singleimg", _jobs, _constants, RUNTIME_FILES))
