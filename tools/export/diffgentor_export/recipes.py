"""What to export for each model type: one Job per component (its wrapper, the trace case, the check cases
with their upstream references), plus the manifest constants. Needs torch >= 2.5, diffusers, transformers.

Each check case calls the upstream module its own way (`text_encoder(..., pixel_values, image_grid_thw,
output_hidden_states=True)`, `transformer(..., img_shapes=...)`, `vae.encode(x).latent_dist.mode()`), with
inputs made by inputs.py (the Python copy of the runtime's builders), so a wrapper or builder that departs
from upstream fails the export. Case 0 is the trace case; the others differ in image size, aspect, text
length, references and padding, so a trace that froze a shape fails too.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import torch

from . import inputs
from .models.common import vae_components
from .models.flux import ClipPooled, Flux2DiT, Flux2KleinDiT, KontextDiT, LongCatDiT, StackedTextEncoder, T5Encoder
from .models.qwen import QwenImageDiT, QwenTextEncoder, QwenVisionEncoder


@dataclass
class Case:
    name: str
    args: tuple                       # the wrapper's arguments (contract order)
    reference: Callable[[], object]   # upstream called its own way; run before any pruning


@dataclass
class Job:
    component: str
    subfolder: str                    # the snapshot subfolder it loads from
    build: Callable[[object], torch.nn.Module]  # upstream module -> wrapper
    cases: Callable[[object, "Ctx"], list]      # upstream module -> cases
    unused: list = field(default_factory=list)  # contract inputs this checkpoint's graph ignores


@dataclass
class Ctx:
    dtype: torch.dtype
    device: torch.device
    math: bool
    options: dict
    gen: torch.Generator = None

    def randn(self, *shape, dtype=None):
        return torch.randn(*shape, generator=self.gen, dtype=torch.float32).to(self.device, dtype or self.dtype)

    def randint(self, high, *shape):
        return torch.randint(0, high, shape, generator=self.gen).to(self.device)


def _first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    for key in ("pooler_output", "last_hidden_state", "sample"):
        value = getattr(out, key, None)
        if isinstance(value, torch.Tensor):
            return value
    return out[0]


# ---- VAE -----------------------------------------------------------------------------------------------------

def _vae_jobs(channels: int, video: bool) -> list:
    def encoder_cases(vae, ctx):
        out = []
        for h, w in ((64, 96), (80, 48), (128, 128)):
            x = ctx.randn(1, 3, h, w).clamp(-1, 1)
            ref = (lambda x=x: vae.encode(x.unsqueeze(2)).latent_dist.mode()[:, :, 0]) if video else \
                (lambda x=x: vae.encode(x).latent_dist.mode())
            out.append(Case(f"{h}x{w}", (x,), ref))
        return out

    def decoder_cases(vae, ctx):
        out = []
        for h, w in ((8, 12), (10, 6), (16, 16)):
            z = ctx.randn(1, channels, h, w)
            ref = (lambda z=z: vae.decode(z.unsqueeze(2), return_dict=False)[0][:, :, 0]) if video else \
                (lambda z=z: vae.decode(z, return_dict=False)[0])
            out.append(Case(f"{h}x{w}", (z,), ref))
        return out

    return [Job("vae_encoder", "vae", lambda vae: vae_components(vae, channels, video)["vae_encoder"], encoder_cases),
            Job("vae_decoder", "vae", lambda vae: vae_components(vae, channels, video)["vae_decoder"], decoder_cases)]


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
                        lambda pv=pv, thw=thw: _first_tensor(visual(pv, grid_thw=thw))))
    return out


def _text_cases(te, ctx):
    """Template-like ids with each image's pads expanded; the third case pads in the middle (LongCat)."""
    visual = getattr(getattr(te, "model", te), "visual", None) or te.visual
    model = getattr(te, "model", te)
    cfg = te.config
    text_cfg = getattr(cfg, "text_config", cfg)
    vocab = min(int(text_cfg.vocab_size), int(cfg.image_token_id), int(cfg.vision_start_token_id))
    out = []
    for grids, (before, after, middle_pad) in zip(VISION_GRIDS, ((7, 5, 0), (3, 11, 0), (9, 4, 6))):
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
            embeds = _first_tensor(visual(pv, grid_thw=thw)).to(ctx.dtype)
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
    are the 3-D ones (docs/parity.md, "Upstream defects"), so upstream is called with them. `model` is the
    module with `get_rope_index`; returns the keyword to pass ({} with transformers 4, which finds the image
    tokens itself)."""
    if "mm_token_type_ids" not in inspect.signature(model.get_rope_index).parameters:
        return {}
    return {"mm_token_type_ids": (input_ids == int(image_token_id)).int()}


def _qwen_vl_jobs(ctx_math: bool) -> list:
    return [Job("vision_encoder", "text_encoder", lambda te: QwenVisionEncoder(te, ctx_math), _vision_cases),
            Job("text_encoder", "text_encoder", QwenTextEncoder, _text_cases)]


# ---- DiTs ------------------------------------------------------------------------------------------------------

def _qwen_dit_cases(t, ctx):
    cfg = t.config
    out = []
    for shapes, L in (([(1, 8, 12), (1, 8, 12)], 20), ([(1, 10, 6), (1, 4, 8)], 9),
                      ([(1, 6, 6), (1, 6, 6), (1, 8, 4)], 33)):
        S, Sn = sum(f * h * w for f, h, w in shapes), shapes[0][1] * shapes[0][2]
        x = ctx.randn(1, S, cfg.in_channels)
        text = ctx.randn(1, L, cfg.joint_attention_dim)
        ts = torch.full((1,), 0.625, device=ctx.device)
        img, txt = inputs.qwen_rope_tables(shapes, L, tuple(cfg.axes_dims_rope))
        modulate = torch.cat([torch.zeros(Sn, dtype=torch.long), torch.ones(S - Sn, dtype=torch.long)])[None]
        out.append(Case(f"S={S},L={L},refs={len(shapes) - 1}",
                        (x, text, ts, img.to(ctx.device), txt.to(ctx.device), modulate.to(ctx.device)),
                        lambda x=x, text=text, ts=ts, shapes=shapes: t(
                            hidden_states=x, encoder_hidden_states=text, encoder_hidden_states_mask=None,
                            timestep=ts.to(ctx.dtype), img_shapes=[shapes], return_dict=False)[0]))
    return out


def _ids_cases(t, ctx, width: int, columns: int, id_dtype, extra: Callable):
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


def _flux2_dit_cases(guidance: bool):
    def extra(ctx, x, text, ts, img_ids, txt_ids):
        g = torch.full((1,), 4.0, device=ctx.device)
        kwargs = dict(hidden_states=x, encoder_hidden_states=text, timestep=ts.to(ctx.dtype), img_ids=img_ids,
                      txt_ids=txt_ids, guidance=g.to(ctx.dtype) if guidance else None)
        return ((x, text, ts, g, img_ids, txt_ids) if guidance else (x, text, ts, img_ids, txt_ids)), kwargs
    return lambda t, ctx: _ids_cases(t, ctx, 10, 4, torch.long, extra)


def _longcat_dit_cases(t, ctx):
    def extra(ctx, x, text, ts, img_ids, txt_ids):
        return (x, text, ts, img_ids, txt_ids), dict(hidden_states=x, encoder_hidden_states=text,
                                                     timestep=ts.to(ctx.dtype), img_ids=img_ids, txt_ids=txt_ids)
    return _ids_cases(t, ctx, 1, 3, torch.float32, extra)


def _kontext_dit_cases(t, ctx):
    def extra(ctx, x, text, ts, img_ids, txt_ids):
        pooled = ctx.randn(1, t.config.pooled_projection_dim)
        g = torch.full((1,), 2.5, device=ctx.device)
        return (x, text, pooled, ts, g, img_ids, txt_ids), dict(
            hidden_states=x, encoder_hidden_states=text, pooled_projections=pooled, timestep=ts.to(ctx.dtype),
            guidance=g.to(ctx.dtype), img_ids=img_ids, txt_ids=txt_ids)
    return _ids_cases(t, ctx, 1, 3, torch.float32, extra)


# ---- FLUX text encoders ---------------------------------------------------------------------------------------

def _padded_ids(ctx, vocab: int, length: int, real: int, pad_id: int):
    ids = torch.full((1, length), pad_id, device=ctx.device)
    ids[0, :real] = ctx.randint(vocab, real)
    mask = torch.zeros_like(ids)
    mask[0, :real] = 1
    return ids, mask


def _stacked_cases(layers):
    def cases(te, ctx):
        cfg = getattr(te.config, "text_config", te.config)
        out = []
        for real in (37, 512, 5):
            ids, mask = _padded_ids(ctx, int(cfg.vocab_size), 512, real, int(getattr(cfg, "pad_token_id", 0) or 0))
            pos = torch.arange(512, device=ctx.device)[None]

            def ref(ids=ids, mask=mask):
                hs = te(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False).hidden_states
                out = torch.stack([hs[k] for k in layers], dim=1)
                return out.permute(0, 2, 1, 3).reshape(1, 512, -1)
            out.append(Case(f"real={real}", (ids, mask, pos), ref))
        return out
    return cases


def _fixed_len_cases(length: int, pad_of: Callable, pooled: bool):
    """CLIP (77, EOS-padded, pooled) and T5 (512, 0-padded, last_hidden_state): fixed lengths, no mask."""
    def cases(model, ctx):
        vocab = int(model.config.vocab_size)
        out = []
        for real in (9, length, 2):
            ids, _ = _padded_ids(ctx, vocab - 1, length, real, pad_of(model))

            def ref(ids=ids):
                result = model(ids, output_hidden_states=False)
                return result.pooler_output if pooled else result[0]
            out.append(Case(f"real={real}", (ids,), ref))
        return out
    return cases


# ---- the table --------------------------------------------------------------------------------------------------

def default_out_layers(model_type: str):
    """The layers FLUX.2's pipelines stack by default (their `hidden_states_layers` argument)."""
    import diffusers
    fn = (diffusers.Flux2Pipeline._get_mistral_3_small_prompt_embeds if model_type == "flux2"
          else diffusers.Flux2KleinPipeline._get_qwen3_prompt_embeds)
    return tuple(inspect.signature(fn).parameters["hidden_states_layers"].default)


def jobs(model_type: str, ctx: Ctx, configs: dict) -> list:
    """The component jobs of `model_type`; `configs` maps subfolder -> its config.json (already read)."""
    if model_type in ("qwen", "qwen_singleimg"):
        zero_cond = bool(configs["transformer"].get("zero_cond_t", False))
        return _qwen_vl_jobs(ctx.math) + [
            Job("transformer", "transformer", QwenImageDiT, _qwen_dit_cases,
                unused=[] if zero_cond else ["modulate_index"])] + _vae_jobs(16, video=True)
    if model_type == "longcat":
        return _qwen_vl_jobs(ctx.math) + [Job("transformer", "transformer", LongCatDiT, _longcat_dit_cases)] + \
            _vae_jobs(16, video=False)
    if model_type in ("flux2", "flux2_klein"):
        layers = ctx.options["text_encoder_out_layers"]
        dit = Flux2DiT if model_type == "flux2" else Flux2KleinDiT
        return [Job("text_encoder", "text_encoder", lambda te: StackedTextEncoder(te, layers), _stacked_cases(layers)),
                Job("transformer", "transformer", dit, _flux2_dit_cases(model_type == "flux2"))] + \
            _vae_jobs(int(configs["vae"].get("latent_channels", 32)), video=False)
    if model_type == "flux1_kontext":
        eos = lambda clip: int(clip.config.eos_token_id)  # noqa: E731  CLIP pads with EOS
        return [Job("text_encoder", "text_encoder", ClipPooled, _fixed_len_cases(77, eos, pooled=True)),
                Job("text_encoder_2", "text_encoder_2", T5Encoder, _fixed_len_cases(512, lambda t5: 0, pooled=False)),
                Job("transformer", "transformer", KontextDiT, _kontext_dit_cases)] + _vae_jobs(16, video=False)
    raise ValueError(f"model type '{model_type}' cannot be exported yet (implemented: qwen, qwen_singleimg, "
                     f"longcat, flux2, flux2_klein, flux1_kontext)")


def constants(model_type: str, ctx: Ctx, subfolder: str, module) -> dict:
    """The manifest constants that `subfolder`'s loaded module contributes (docs/bundle-format.md "Where
    constants live")."""
    if model_type in ("qwen", "qwen_singleimg") and subfolder == "transformer":
        # QwenImageEdit(Plus)Pipeline.prompt_template_encode_start_idx: the system turn + "<|im_start|>user\n"
        # of the Qwen2.5-VL tokenizer (tests/data/tokenizers/qwen2/templates.json checks it).
        return {"prompt_template_encode_start_idx": 64}
    if model_type in ("flux2", "flux2_klein") and subfolder == "vae":
        bn = module.bn  # as loaded in W (diffusers casts buffers too), written as float32 values
        return {"vae_bn_running_mean": [float(v) for v in bn.running_mean.float().cpu()],
                "vae_bn_running_var": [float(v) for v in bn.running_var.float().cpu()]}
    if model_type in ("flux2", "flux2_klein") and subfolder == "text_encoder":
        return {"text_encoder_out_layers": list(ctx.options["text_encoder_out_layers"])}
    return {}
