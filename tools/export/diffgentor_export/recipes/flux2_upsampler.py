"""FLUX.2-dev's prompt upsampler (export_bundle --with_upsampler; docs/bundle-format.md, "flux2 prompt upsampler"):
cases for the text encoder's prefill/decode methods and the vision component, each checked against
Mistral3ForConditionalGeneration called its own way, and the manifest constant `upsampler` (the chat template's
literal pieces, the processor's image settings, the system messages and generation settings of
Flux2Pipeline.upsample_prompt)."""
from __future__ import annotations

import torch

from ..models.mistral import MAX_LENGTH, MAX_NEW_TOKENS
from .base import Case


def vision_tables(model, grid_h: int, grid_w: int):
    """PixtralRotaryEmbedding's rows for a grid_h x grid_w patch grid (positions row * max_side + col, as
    position_ids_in_meshgrid gives them) and the patch indices Mistral3PatchMerger's unfold gathers per merged
    token: (cos, sin) [P, Dv], merge_index [M, m*m]."""
    vision = model.model.vision_tower
    side = vision.config.image_size // vision.config.patch_size
    rows, cols = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    pos = (rows * side + cols).reshape(-1)
    x = torch.zeros(1, dtype=torch.float32)
    cos, sin = vision.patch_positional_embedding(x, pos)
    m = model.config.spatial_merge_size
    index = torch.arange(grid_h * grid_w).view(grid_h // m, m, grid_w // m, m).permute(0, 2, 1, 3)
    return cos.float(), sin.float(), index.reshape(-1, m * m)


def _image(ctx, model, gh: int, gw: int):
    p = model.model.vision_tower.config.patch_size
    return ctx.randn(1, 3, gh * p, gw * p, dtype=torch.float32)


def vision_cases(model, ctx):
    out = []
    for gh, gw in ((4, 6), (6, 2), (2, 4)):
        pixels = _image(ctx, model, gh, gw)
        cos, sin, index = vision_tables(model, gh, gw)
        p = model.model.vision_tower.config.patch_size

        def ref(pixels=pixels, size=(gh * p, gw * p)):
            feats = model.model.get_image_features(pixels.to(ctx.dtype), image_sizes=torch.tensor([size]),
                                                   vision_feature_layer=-1, return_dict=True).pooler_output
            return torch.cat(feats, 0)
        out.append(Case(f"{gh}x{gw} patches", (pixels, cos.to(ctx.device), sin.to(ctx.device), index.to(ctx.device)),
                        ref))
    return out


def _hf_step(model, ids, pos, cache, **extra):
    """Mistral3ForConditionalGeneration.forward as generate() calls it: one step, logits of the last row."""
    out = model(input_ids=ids, position_ids=pos, past_key_values=cache, use_cache=True, logits_to_keep=1, **extra)
    layers = out.past_key_values.layers
    return out.logits[:, -1].float(), torch.stack([x.keys for x in layers]), torch.stack([x.values for x in layers])


def lm_cases(model, ctx):
    """prefill with and without an image block, then decode after each prefill."""
    from transformers import DynamicCache
    cfg, text_cfg = model.config, model.config.text_config
    image_id, m = int(cfg.image_token_id), cfg.spatial_merge_size
    p = model.model.vision_tower.config.patch_size
    out = []
    for before, grid, after in ((5, (4, 6), 7), (9, None, 0), (2, (4, 2), 3)):
        ids = [int(t) for t in ctx.randint(text_cfg.vocab_size - 1000, before) + 1000]
        extra, embeds = {}, torch.zeros(0, text_cfg.hidden_size, dtype=ctx.dtype, device=ctx.device)
        if grid:
            gh, gw = grid
            ids += [image_id] * ((gh // m) * (gw // m))
            pixels = _image(ctx, model, gh, gw).to(ctx.dtype)
            sizes = torch.tensor([(gh * p, gw * p)])
            extra = {"pixel_values": pixels, "image_sizes": sizes}
            with torch.no_grad():
                embeds = torch.cat(model.model.get_image_features(pixels, image_sizes=sizes, vision_feature_layer=-1,
                                                                  return_dict=True).pooler_output, 0)
        ids += [int(t) for t in ctx.randint(text_cfg.vocab_size - 1000, after) + 1000]
        ids_t = torch.tensor([ids], device=ctx.device)
        n = ids_t.shape[1]
        pos = torch.arange(n, device=ctx.device).view(1, 1, n)
        out.append(Case(f"prefill n={n}{' image' if grid else ''}", (ids_t, pos, embeds),
                        lambda ids_t=ids_t, pos=pos, extra=extra: _hf_step(
                            model, ids_t, pos[0], DynamicCache(config=text_cfg), **extra), method="prefill"))
        cache = DynamicCache(config=text_cfg)
        _, k, v = _hf_step(model, ids_t, pos[0], cache, **extra)
        tok = ctx.randint(text_cfg.vocab_size, 1).view(1, 1)
        p1 = torch.full((1, 1, 1), n, device=ctx.device)
        out.append(Case(f"decode T={n}", (tok, p1, k, v),
                        lambda tok=tok, p1=p1, cache=cache: _hf_step(model, tok, p1[0], cache), method="decode"))
    return out


def _render_pieces(processor, system_mark: str, text_mark: str, with_image: bool) -> list:
    """The chat template rendered as Flux2Pipeline.format_input lays the upsampling chat out (system, the images
    as one user turn, the text as another) with sentinels, split at them: [before system, between, after text]
    or, with an image, [before system, system..image, image..text, after text]."""
    from PIL import Image
    messages = [{"role": "system", "content": [{"type": "text", "text": system_mark}]}]
    if with_image:
        messages.append({"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (28, 28))}]})
    messages.append({"role": "user", "content": [{"type": "text", "text": text_mark}]})
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    marks = [system_mark, processor.image_token, text_mark] if with_image else [system_mark, text_mark]
    pieces, rest = [], rendered
    for mark in marks:
        if rest.count(mark) != 1:
            raise ValueError(f"the FLUX.2 chat template renders {mark!r} {rest.count(mark)} times, not once, for the "
                             f"upsampling chat: {rendered!r}")
        head, rest = rest.split(mark)
        pieces.append(head)
    return [*pieces, rest]


def upsampler_constant(model, snapshot) -> dict:
    """The manifest constant `upsampler` (docs/bundle-format.md): everything Flux2Pipeline.upsample_prompt takes
    from the processor, the pipeline module and the model's generation config, so the runtime renders, tokenizes,
    preprocesses and samples without a template engine or the processor's files."""
    import inspect

    from diffusers.pipelines.flux2 import pipeline_flux2, system_messages
    from transformers import AutoProcessor
    processor = AutoProcessor.from_pretrained(snapshot / "tokenizer")
    ip, tok = processor.image_processor, processor.tokenizer
    if not (ip.do_resize and ip.do_rescale and ip.do_normalize) or int(ip.resample) != 3:
        raise ValueError(f"the Pixtral image processor settings (resize {ip.do_resize}, rescale {ip.do_rescale}, "
                         f"normalize {ip.do_normalize}, resample {ip.resample}) are not the bicubic resize + rescale "
                         "+ normalize the runtime implements")
    if int(processor.patch_size) != int(model.config.vision_config.patch_size):
        raise ValueError(f"the processor's patch size {processor.patch_size} differs from the vision tower's "
                         f"{model.config.vision_config.patch_size}")
    if int(processor.spatial_merge_size) != int(model.config.spatial_merge_size):
        raise ValueError(f"the processor's spatial_merge_size {processor.spatial_merge_size} differs from the "
                         f"model's {model.config.spatial_merge_size}")
    system_mark, text_mark = "\x00SYSTEM\x00", "\x00TEXT\x00"
    t2i = _render_pieces(processor, system_mark, text_mark, with_image=False)
    i2i = _render_pieces(processor, system_mark, text_mark, with_image=True)
    bos = tok.bos_token
    vision = model.config.vision_config
    rope = getattr(vision, "rope_parameters", None) or {"rope_theta": vision.rope_theta}
    temperature = inspect.signature(pipeline_flux2.Flux2Pipeline.upsample_prompt).parameters["temperature"].default
    return {
        "system_t2i": system_messages.SYSTEM_MESSAGE_UPSAMPLING_T2I,
        "system_i2i": system_messages.SYSTEM_MESSAGE_UPSAMPLING_I2I,
        "template_t2i": t2i, "template_i2i": i2i,
        "add_special_tokens": not (bos and t2i[0].startswith(bos)),
        "image_token": processor.image_token, "image_break_token": processor.image_break_token,
        "image_end_token": processor.image_end_token,
        "image_token_id": int(model.config.image_token_id),
        "patch_size": int(processor.patch_size), "spatial_merge_size": int(processor.spatial_merge_size),
        "longest_edge": int(ip.size["longest_edge"]),
        "rescale_factor": float(ip.rescale_factor),
        "image_mean": [float(x) for x in ip.image_mean], "image_std": [float(x) for x in ip.image_std],
        "vision_rope_theta": float(rope["rope_theta"]),
        "vision_head_dim": int(getattr(vision, "head_dim", None) or vision.hidden_size // vision.num_attention_heads),
        "vision_max_patches_per_side": int(vision.image_size // vision.patch_size),
        "max_image_area": int(pipeline_flux2.UPSAMPLING_MAX_IMAGE_SIZE),
        "max_length": MAX_LENGTH, "max_new_tokens": MAX_NEW_TOKENS, "temperature": float(temperature),
        "generation_config": model.generation_config.to_diff_dict(),
        "clean_up_tokenization_spaces": _decode_cleans_up(tok),
    }


def _decode_cleans_up(tok) -> bool:
    """Whether upsample_prompt's batch_decode(..., clean_up_tokenization_spaces=True) changes " ." into "." with
    this tokenizer: transformers 5 skips the clean-up for BPE tokenizers unless they opt in."""
    ids = tok("a .", add_special_tokens=False)["input_ids"]
    plain = tok.decode(ids, clean_up_tokenization_spaces=False)
    cleaned = tok.decode(ids, clean_up_tokenization_spaces=True)
    if plain != "a .":
        raise ValueError(f"the tokenizer decodes 'a .' as {plain!r}; cannot tell its clean-up setting")
    return cleaned != plain

