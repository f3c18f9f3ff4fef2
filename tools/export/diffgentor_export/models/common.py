"""Wrappers shared by several model types (bundle contract §5): the VAE halves, the layer-by-layer language
model drivers (with and without a KV cache) and the attention the wrappers re-implement. Needs torch >= 2.5,
diffusers and transformers."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attention(q, k, v, mask, scale: float, math: bool):
    """softmax(q·kᵀ·scale + mask)·v over [B, H, L, d]; `mask` is bool (True = attend), broadcastable.
    `math` (exporter --attention math) spells it out with a float32 softmax instead of SDPA."""
    if not math:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    s = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    s = s.masked_fill(mask.logical_not(), float("-inf"))
    return torch.matmul(s.softmax(-1).to(v.dtype), v)


class VaeEncoder(nn.Module):
    """image W [B, 3, H, W] in [-1, 1] -> latent_mean W [B, C, H/8, W/8]: `_encode` (encoder + quant_conv),
    first C channels (the distribution's mean, what `retrieve_latents(..., sample_mode="argmax")` returns).
    `video` (AutoencoderKLQwenImage) adds and removes the frame axis (T = 1)."""

    def __init__(self, vae, channels: int, video: bool):
        super().__init__()
        self.vae, self.channels, self.video = vae, channels, video

    def forward(self, image):
        if self.video:
            return self.vae._encode(image.unsqueeze(2))[:, : self.channels, 0]
        return self.vae._encode(image)[:, : self.channels]


class VaeDecoder(nn.Module):
    """latents W [B, C, h, w] -> image W [B, 3, 8h, 8w], the raw decoder output (`_decode`; Qwen's clamps)."""

    def __init__(self, vae, video: bool):
        super().__init__()
        self.vae, self.video = vae, video

    def forward(self, latents):
        if self.video:
            return self.vae._decode(latents.unsqueeze(2), return_dict=False)[0][:, :, 0]
        return self.vae._decode(latents, return_dict=False)[0]


def vae_components(vae, channels: int, video: bool) -> dict:
    vae.use_tiling = False  # the runtime calls whole images; tiling would be a C++ loop around these
    vae.use_slicing = False
    return {"vae_encoder": VaeEncoder(vae, channels, video), "vae_decoder": VaeDecoder(vae, video)}


def language_model(model):
    """The decoder stack (embed_tokens, layers, norm, rotary_emb) inside a transformers model, whatever
    wrapper classes surround it (…ForConditionalGeneration.model.language_model, …ForCausalLM.model)."""
    for path in ("model.language_model", "language_model.model", "language_model", "model", ""):
        m = model
        for part in filter(None, path.split(".")):
            m = getattr(m, part, None)
            if m is None:
                break
        if m is not None and hasattr(m, "layers") and hasattr(m, "embed_tokens"):
            return m
    raise TypeError(f"{type(model).__name__}: no decoder stack (layers, embed_tokens) found")


def causal_padding_mask(attention_mask, dtype):
    """Additive [B, 1, L, L] mask: causal and key padding, 0 where a query may attend, dtype's minimum
    elsewhere (the form transformers' eager and SDPA attention both take). A padding query attends to the
    real keys before it, as upstream's mask has it (FLUX.2 keeps those states); the first token is real."""
    L = attention_mask.shape[1]
    idx = torch.arange(L, device=attention_mask.device)
    causal = idx[None, :] <= idx[:, None]
    keep = causal[None, None] & attention_mask[:, None, None, :].bool()
    zero = torch.zeros((), dtype=dtype, device=attention_mask.device)
    return torch.where(keep, zero, torch.finfo(dtype).min)


def run_layers(lm, embeds, attention_mask, position_ids, rope_position_ids, upto: int | None = None,
               keep=()) -> tuple:
    """Decoder layers of `lm` with an explicit mask and rotary table, no cache (bypassing create_causal_mask).
    Returns (final state after `upto` layers or all, {k: hidden_states[k] for k in keep})."""
    mask = causal_padding_mask(attention_mask, embeds.dtype)
    pe = lm.rotary_emb(embeds, rope_position_ids)
    h, kept = embeds, {}
    layers = lm.layers if upto is None else lm.layers[:upto]
    for i, layer in enumerate(layers):
        out = layer(h, attention_mask=mask, position_ids=position_ids, position_embeddings=pe)
        h = out[0] if isinstance(out, tuple) else out
        if i + 1 in keep:
            kept[i + 1] = h
    return h, kept


class CacheShim:
    """The part of transformers' DynamicCache the decoder layers use: update() concatenates the past (if any)
    with the new keys/values after RoPE and records the result per layer."""

    def __init__(self, past_k=None, past_v=None):
        self.past_k, self.past_v, self.k, self.v = past_k, past_v, {}, {}

    def update(self, key_states, value_states, layer_idx, cache_kwargs=None):
        if self.past_k is not None:
            key_states = torch.cat([self.past_k[layer_idx], key_states], dim=-2)
            value_states = torch.cat([self.past_v[layer_idx], value_states], dim=-2)
        self.k[layer_idx], self.v[layer_idx] = key_states, value_states
        return key_states, value_states

    def stacked(self):
        return torch.stack([self.k[i] for i in sorted(self.k)]), torch.stack([self.v[i] for i in sorted(self.v)])


def run_cached_lm(lm, head, h, position_ids, cache: CacheShim, causal: bool, sdpa: bool):
    """One step of the AR engine's LM contract (include/diffgentor/ar_engine.hpp) over embeddings `h` [1, n, D]:
    the decoder layers as the model's forward drives them for one unpadded sequence, the final norm, the head
    on the last row (logits_to_keep = 1) upcast to float32 as GenerationMixin._sample does. Returns
    (logits [1, V], present_k, present_v [NL, 1, KVH, T, Dh]). No mask reaches SDPA, as when transformers skips
    the causal mask: a prefill graph (`causal`, n > 1) attends causally through is_causal, a decode graph (one
    query) attends to every cached key. Eager attention (--attention math) gets the explicit causal mask it needs."""
    mask = None
    if causal and not sdpa:
        n = h.shape[1]
        idx = torch.arange(n, device=h.device)
        mask = torch.where(idx[None, :] <= idx[:, None], 0.0, torch.finfo(h.dtype).min).to(h.dtype)[None, None]
    pe = lm.rotary_emb(h, position_ids=position_ids)
    for layer in lm.layers:
        out = layer(h, attention_mask=mask, position_ids=None, past_key_values=cache, position_embeddings=pe)
        h = out[0] if isinstance(out, tuple) else out
    h = lm.norm(h)
    logits = head(h[:, -1:, :])[:, 0].float()
    k, v = cache.stacked()
    return logits, k, v
