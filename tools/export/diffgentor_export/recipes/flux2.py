"""FLUX.2-dev (flux2: Mistral-Small text encoder, guidance embedding) and FLUX.2-klein (flux2_klein: Qwen3 text
encoder, no guidance input): the stacked hidden-state text encoder, the FLUX.2 DiT, the 32-channel VAE with its
batch-norm statistics, the --text_encoder_out_layers option and FLUX.2-dev's optional prompt upsampler
(--with_upsampler, flux2_upsampler.py)."""
from __future__ import annotations

import inspect

import torch

from ..models.flux import Flux2DiT, Flux2KleinDiT, StackedTextEncoder
from ..models.mistral import UpsamplerTextEncoder, UpsamplerVision
from . import flux2_upsampler
from .base import Case, Job, Recipe, register
from .common import ids_cases, padded_ids, vae_jobs


def _stacked_cases(layers):
    def cases(te, ctx):
        cfg = getattr(te.config, "text_config", te.config)
        out = []
        for real in (37, 512, 5):
            ids, mask = padded_ids(ctx, int(cfg.vocab_size), 512, real, int(getattr(cfg, "pad_token_id", 0) or 0))
            pos = torch.arange(512, device=ctx.device)[None]

            def ref(ids=ids, mask=mask):
                hs = te(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False).hidden_states
                out = torch.stack([hs[k] for k in layers], dim=1)
                return out.permute(0, 2, 1, 3).reshape(1, 512, -1)
            out.append(Case(f"real={real}", (ids, mask, pos), ref))
        return out
    return cases


def _dit_cases(guidance: bool):
    def extra(ctx, x, text, ts, img_ids, txt_ids):
        g = torch.full((1,), 4.0, device=ctx.device)
        kwargs = dict(hidden_states=x, encoder_hidden_states=text, timestep=ts.to(ctx.dtype), img_ids=img_ids,
                      txt_ids=txt_ids, guidance=g.to(ctx.dtype) if guidance else None)
        return ((x, text, ts, g, img_ids, txt_ids) if guidance else (x, text, ts, img_ids, txt_ids)), kwargs
    return lambda t, ctx: ids_cases(t, ctx, 10, 4, torch.long, extra)


def _recipe(model_type: str, dit, guidance: bool, prompt_embeds: str, upsampler: bool = False) -> Recipe:
    """One FLUX.2 variant; `prompt_embeds` is the diffusers pipeline method ("Class.method") whose
    `hidden_states_layers` default is the layers its pipeline stacks, the export's default."""

    def default_out_layers():
        import diffusers
        pipeline, method = prompt_embeds.split(".")
        fn = getattr(getattr(diffusers, pipeline), method)
        return tuple(inspect.signature(fn).parameters["hidden_states_layers"].default)

    def options(args):
        given = getattr(args, "text_encoder_out_layers", None)
        out = {"text_encoder_out_layers": tuple(int(k) for k in given.split(",")) if given
               else default_out_layers()}
        if upsampler and getattr(args, "with_upsampler", False):
            out["optional"] = ("upsampler",)
        return out

    def jobs(ctx, configs):
        layers = ctx.options["text_encoder_out_layers"]
        if "upsampler" in ctx.options.get("optional", ()):
            def cases(te, ctx):
                return _stacked_cases(layers)(te, ctx) + flux2_upsampler.lm_cases(te, ctx)
            return [Job("text_encoder", "text_encoder", lambda te: UpsamplerTextEncoder(te, layers), cases),
                    Job("upsampler_vision", "text_encoder", UpsamplerVision, flux2_upsampler.vision_cases),
                    Job("transformer", "transformer", dit, _dit_cases(guidance)),
                    *vae_jobs(int(configs["vae"].get("latent_channels", 32)), video=False)]
        return [Job("text_encoder", "text_encoder", lambda te: StackedTextEncoder(te, layers), _stacked_cases(layers)),
                Job("transformer", "transformer", dit, _dit_cases(guidance)),
                *vae_jobs(int(configs["vae"].get("latent_channels", 32)), video=False)]

    def constants(ctx, subfolder, module):
        if subfolder == "vae":
            bn = module.bn  # as loaded in W (diffusers casts buffers too), written as float32 values
            return {"vae_bn_running_mean": [float(v) for v in bn.running_mean.float().cpu()],
                    "vae_bn_running_var": [float(v) for v in bn.running_var.float().cpu()]}
        if subfolder == "text_encoder":
            out = {"text_encoder_out_layers": list(ctx.options["text_encoder_out_layers"])}
            if "upsampler" in ctx.options.get("optional", ()):
                from pathlib import Path
                out["upsampler"] = flux2_upsampler.upsampler_constant(module, Path(module.config._name_or_path))
            return out
        return {}

    return Recipe(model_type, jobs, constants, options=options)


register(_recipe("flux2", Flux2DiT, guidance=True,
                 prompt_embeds="Flux2Pipeline._get_mistral_3_small_prompt_embeds", upsampler=True))
register(_recipe("flux2_klein", Flux2KleinDiT, guidance=False,
                 prompt_embeds="Flux2KleinPipeline._get_qwen3_prompt_embeds"))
