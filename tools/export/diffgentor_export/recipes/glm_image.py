"""GLM-Image: the ByT5 glyph encoder, the vision tower + VQ and the AR language model (both from
vision_language_encoder/), the DiT with reference K/V, a 16-channel AutoencoderKL. Each component is checked
against upstream called its own way: T5EncoderModel, get_image_features + get_image_tokens,
GlmImageForConditionalGeneration.forward with a DynamicCache, the transformer with a real GlmImageKVCache.
The AR prompt's literal pieces come from rendering the processor's chat template with sentinels."""
from __future__ import annotations

import torch

from ..models.glm_image import ArLm, GlmDiT, GlyphEncoder, ImageTokenizer
from .base import Case, Job, Recipe, register
from .common import vae_jobs

# Versions whose GLM-Image code these wrappers were checked against: transformers' VQ distance, position layout and
# mRoPE interleaving changed during 5.0 development; diffusers' KV-cache objects and timestep handling changed in
# 0.40 (docs/models/glm_image.md, "Timesteps").
TESTED = {"transformers": ((5, 16),), "diffusers": ((0, 40),)}


def _glyph_cases(t5, ctx):
    vocab = int(t5.config.vocab_size)
    out = []
    for rows, lengths in ((2, (6, 3)), (1, (1,)), (3, (4, 4, 2))):
        L = max(lengths)
        ids = torch.zeros(rows, L, dtype=torch.long, device=ctx.device)
        mask = torch.zeros_like(ids)
        for r, n in enumerate(lengths):
            ids[r, :n] = ctx.randint(vocab, n)
            mask[r, :n] = 1

        def ref(ids=ids, mask=mask):
            return t5(input_ids=ids, attention_mask=mask).last_hidden_state
        out.append(Case(f"G={rows},L={L}", (ids, mask), ref))
    return out


def _patches(ctx, gh: int, gw: int, row: int):
    pos = torch.stack(torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij"), -1).reshape(-1, 2)
    grid = torch.tensor([gh, gw]).expand(gh * gw, 2).contiguous()
    return ctx.randn(gh * gw, row, dtype=torch.float32), pos.to(ctx.device), grid.to(ctx.device)


def _image_tokenizer_cases(vle, ctx):
    row = 3 * vle.config.vision_config.patch_size ** 2
    out = []
    for gh, gw in ((3, 5), (4, 4), (2, 3)):
        pv, pos, grid = _patches(ctx, gh, gw, row)

        def ref(pv=pv, gh=gh, gw=gw):
            thw = torch.tensor([[1, gh, gw]], device=ctx.device)
            feats = vle.model.get_image_features(pv, thw, return_dict=True).pooler_output
            return vle.model.get_image_tokens(torch.cat(feats, 0), thw)
        out.append(Case(f"{gh}x{gw}", (pv, pos, grid), ref))
    return out


def _ar_prompt(vle, refs, n_text: int, ctx):
    """Prompt ids laid out as the processor lays them out (image blocks, text, grid string, BOS) and the positions
    upstream's get_rope_index gives them; `refs` are reference grids, the target is 2x3."""
    cfg = vle.config
    start, end, vision = cfg.image_start_token_id, cfg.image_end_token_id, cfg.text_config.vision_vocab_size
    ids = []
    for h, w in refs:
        ids += [start, *ctx.randint(vision - 16, h * w).tolist(), end]
    ids += (ctx.randint(cfg.text_config.vocab_size - vision, n_text) + vision).tolist()
    ids += [start]
    grids = [[1, h, w] for h, w in refs] + [[1, 2, 3]]
    ids_t = torch.tensor([ids], device=ctx.device)
    pos, _ = vle.model.get_rope_index(ids_t, image_grid_thw=torch.tensor(grids, device=ctx.device),
                                      images_per_sample=torch.tensor([len(grids)], device=ctx.device))
    decode = vle.model._cached_decode_position_ids[0]
    return ids_t, pos, decode


def _hf_step(vle, ids, pos, cache):
    """GlmImageForConditionalGeneration.forward as generate() calls it: one step, logits of the last row."""
    out = vle(input_ids=ids, position_ids=pos, past_key_values=cache, use_cache=True, logits_to_keep=1)
    layers = out.past_key_values.layers
    k = torch.stack([layer.keys for layer in layers])
    v = torch.stack([layer.values for layer in layers])
    return out.logits[:, -1].float(), k, v


def _ar_cases(vle, ctx):
    from transformers import DynamicCache
    out = []
    for refs, n_text in (([(2, 3)], 5), ([(3, 2), (2, 2)], 3), ([], 7)):
        ids, pos, decode = _ar_prompt(vle, refs, n_text, ctx)
        out.append(Case(f"prefill n={ids.shape[1]}", (ids, pos), lambda ids=ids, pos=pos: _hf_step(
            vle, ids, pos, DynamicCache(config=vle.config.text_config)), method="prefill"))
        # decode after this prefill (T = n): the first generated token fed at decode column 0
        cache = DynamicCache(config=vle.config.text_config)
        _, k, v = _hf_step(vle, ids, pos, cache)
        tok = ctx.randint(vle.config.vq_config.num_embeddings, 1).view(1, 1)
        p1 = decode[:, :1].unsqueeze(1).contiguous()

        def ref(tok=tok, p1=p1, cache=cache):
            return _hf_step(vle, tok, p1, cache)
        out.append(Case(f"decode T={ids.shape[1]}", (tok, p1, k, v), ref, method="decode"))
    # decode with an empty cache (T = 0)
    tok = ctx.randint(vle.config.vq_config.num_embeddings, 1).view(1, 1)
    p0 = torch.full((3, 1, 1), 4, device=ctx.device)
    shape = (len(vle.model.language_model.layers), 1, vle.config.text_config.num_key_value_heads, 0,
             vle.config.text_config.hidden_size // vle.config.text_config.num_attention_heads)
    empty = torch.zeros(shape, dtype=ctx.dtype, device=ctx.device)
    out.append(Case("decode T=0", (tok, p0, empty, empty), lambda: _hf_step(
        vle, tok, p0, DynamicCache(config=vle.config.text_config)), method="decode"))
    return out


def _dit_inputs(t, ctx, h: int, w: int):
    x = ctx.randn(1, t.config.in_channels, 2 * h, 2 * w)
    cos, sin = t.rope(x)
    ids = ctx.randint(t.config.prior_vq_quantizer_codebook_size, 1, h * w)
    return x, ids, cos.to(ctx.device, torch.float32), sin.to(ctx.device, torch.float32)


def _ref_inputs(t, ctx, refs):
    """write_kv's arguments for each reference grid: latents, prior ids, size (float32), RoPE tables."""
    out = []
    for h, w in refs:
        x, ids, cos, sin = _dit_inputs(t, ctx, h, w)
        out.append((x, ids, torch.tensor([[16.0 * h, 16.0 * w]], device=ctx.device), cos, sin))
    return out


def _write_pass(t, ctx, inputs):
    """The pipeline's reference pass into a real GlmImageKVCache (int64 target size, t = 0, no glyphs)."""
    from diffusers.models.transformers.transformer_glm_image import GlmImageKVCache
    cache = GlmImageKVCache(num_layers=len(t.transformer_blocks))
    cache.set_mode("write")
    for x, ids, size, _, _ in inputs:
        t(hidden_states=x, encoder_hidden_states=torch.zeros(1, 0, t.config.text_embed_dim, device=ctx.device,
                                                             dtype=ctx.dtype),
          prior_token_id=ids, prior_token_drop=torch.zeros_like(ids, dtype=torch.bool),
          timestep=torch.zeros((1,), device=ctx.device), target_size=size.long(),
          crop_coords=torch.zeros((1, 2), device=ctx.device), kv_caches=cache)
    return cache


def _stacked(cache):
    return (torch.stack([c.k_caches[0] for c in cache.caches]), torch.stack([c.v_caches[0] for c in cache.caches]))


def _dit_cases(t, ctx):
    out = []
    for (h, w), refs, uncond, L in (((4, 6), [(4, 6)], False, 5), ((3, 5), [(2, 2), (3, 3)], False, 2),
                                    ((5, 3), [], True, 1)):
        cache = _write_pass(t, ctx, _ref_inputs(t, ctx, refs))
        x, ids, cos, sin = _dit_inputs(t, ctx, h, w)
        text = ctx.randn(1, L, t.config.text_embed_dim)
        drop = torch.full_like(ids, uncond, dtype=torch.bool)
        ts = torch.full((1,), 978.0, device=ctx.device)
        size = torch.tensor([[16.0 * h, 16.0 * w]], device=ctx.device)
        crop = torch.zeros((1, 2), device=ctx.device)
        if refs:
            kv_k, kv_v = _stacked(cache)
        else:
            shape = (len(t.transformer_blocks), 1, 0, t.config.num_attention_heads, t.config.attention_head_dim)
            kv_k = kv_v = torch.zeros(shape, dtype=ctx.dtype, device=ctx.device)
        cache.set_mode("skip" if uncond else "read")

        def ref(x=x, text=text, ids=ids, drop=drop, ts=ts, size=size, crop=crop, cache=cache):
            return t(hidden_states=x, encoder_hidden_states=text, prior_token_id=ids, prior_token_drop=drop,
                     timestep=ts, target_size=size.to(ctx.dtype), crop_coords=crop.to(ctx.dtype), kv_caches=cache,
                     return_dict=False)[0]
        out.append(Case(f"{h}x{w},refs={len(refs)},uncond={uncond}",
                        (x, text, ids, drop, ts, size, crop, cos, sin, kv_k, kv_v), ref))
    for grid in ((3, 4), (2, 5), (4, 4)):
        inputs = _ref_inputs(t, ctx, [grid])
        out.append(Case(f"write_kv {grid[0]}x{grid[1]}", inputs[0],
                        lambda inputs=inputs: _stacked(_write_pass(t, ctx, inputs)), method="write_kv"))
    return out


def check_versions():
    """Refuses transformers and diffusers versions the wrappers were not checked against, before any export work."""
    import importlib
    for name, tested in TESTED.items():
        found = importlib.import_module(name).__version__
        if tuple(int(x) for x in found.split(".")[:2]) not in tested:
            raise ValueError(f"{name} {found} is not a version the GLM-Image wrappers were checked against "
                             f"({', '.join('.'.join(map(str, v)) for v in tested)}); install a tested version")


def _jobs(ctx, configs):
    check_versions()
    return [Job("glyph_encoder", "text_encoder", GlyphEncoder, _glyph_cases),
            Job("image_tokenizer", "vision_language_encoder", ImageTokenizer, _image_tokenizer_cases),
            Job("ar_lm", "vision_language_encoder", ArLm, _ar_cases),
            Job("transformer", "transformer", GlmDiT, _dit_cases),
            *vae_jobs(16, video=False)]


def ar_prompt_constant(processor) -> dict:
    """The manifest constant `ar_prompt` (docs/models/glm_image.md, step 4): the processor's chat template rendered
    for one, two and three images and a sentinel text, split into literal pieces so that
    prefix + image_block x R + text_prefix + TEXT + text_suffix reproduces every rendering. `add_special_tokens`
    is what ProcessorMixin.apply_chat_template decides: false when the rendering starts with the BOS string."""
    mark, image = "\x00TEXT\x00", processor.image_token

    def render(n):
        content = [{"type": "image"}] * n + [{"type": "text", "text": mark}]
        return processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False)

    r1, r2, r3 = render(1), render(2), render(3)
    size = len(r2) - len(r1)
    if r1.count(mark) != 1 or size <= 0 or image not in r1:
        raise ValueError(f"the GLM-Image chat template renders an unexpected layout: {r1!r}")
    at, suffix = r1.index(mark), r1[r1.index(mark) + len(mark):]
    for s in range(r1.index(image) + 1):
        prefix, block, text_prefix = r1[:s], r1[s:s + size], r1[s + size:at]
        if image in block and all(prefix + block * n + text_prefix + mark + suffix == r for n, r in
                                  ((1, r1), (2, r2), (3, r3))):
            bos = processor.tokenizer.bos_token
            return {"prefix": prefix, "image_block": block, "text_prefix": text_prefix, "text_suffix": suffix,
                    "add_special_tokens": not (bos and r1.startswith(bos))}
    raise ValueError(f"the GLM-Image chat template does not repeat one block per image: {r2!r}")


def _constants(ctx, subfolder, module):
    """`ar_prompt` from the snapshot's processor/ (loaded next to the vision-language model it serves)."""
    if subfolder != "vision_language_encoder":
        return {}
    from pathlib import Path

    from transformers import GlmImageProcessor
    processor = GlmImageProcessor.from_pretrained(Path(module.config._name_or_path) / "processor")
    return {"ar_prompt": ar_prompt_constant(processor)}


register(Recipe("glm_image", _jobs, constants=_constants,
                runtime_files=("processor/tokenizer.json", "processor/tokenizer_config.json",
                               "processor/preprocessor_config.json", "vision_language_encoder/generation_config.json"),
                tokenizer=False))
