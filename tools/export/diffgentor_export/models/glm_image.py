"""GLM-Image wrappers (docs/bundle-format.md, "glm_image"): the ByT5 glyph encoder, the vision tower + VQ as one
image per call, the AR language model as mask-free prefill/decode methods with explicit caches, and the DiT with
its reference K/V cache replaced by tensors (forward reads them, write_kv returns them).
Needs torch >= 2.5, diffusers and transformers."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import CacheShim, language_model, run_cached_lm


class GlyphEncoder(nn.Module):
    """input_ids, attention_mask i64 [G, Lg] -> last_hidden_state W [G, Lg, Dg] (T5EncoderModel).

    The 4-D mask is built here, as T5Stack builds it, without the shortcut that drops an all-ones mask: that
    shortcut is a data-dependent branch a trace would freeze."""

    def __init__(self, t5):
        super().__init__()
        self.t5 = t5

    def forward(self, input_ids, attention_mask):
        from transformers.masking_utils import create_bidirectional_mask
        embeds = self.t5.get_input_embeddings()(input_ids)
        mask = create_bidirectional_mask(config=self.t5.config, inputs_embeds=embeds, attention_mask=attention_mask,
                                         allow_is_bidirectional_skip=False)
        return self.t5(inputs_embeds=embeds, attention_mask=mask).last_hidden_state


class ImageTokenizer(nn.Module):
    """pixel_values f32 [P, 3·p·p], patch_pos i64 [P, 2], patch_grid i64 [P, 2] of ONE image -> codes i64 [P].

    GlmImageVisionModel.forward and GlmImageModel.get_image_tokens without their Python-side splits: the patch
    embedding, the position table resampled at each patch's place in its grid (GlmImageVisionEmbeddings with the
    lengths and shapes built from the inputs), the blocks with the attention interface called once over the
    whole image (what the per-image `cu_seqlens` split does for one image), then quant_conv on a [1, C, P, 1] view
    and the L2-normalised nearest codebook entry (GlmImageVQVAEVectorQuantizer)."""

    def __init__(self, vle):
        super().__init__()
        self.visual = vle.model.visual
        self.vq = vle.model.vqmodel

    def _attention(self, attn, x):
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
        from transformers.models.glm_image.modeling_glm_image import eager_attention_forward
        n = x.shape[0]
        q, k, v = attn.qkv(x).reshape(n, 3, attn.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        q, k, v = (t.transpose(0, 1).unsqueeze(0) for t in (q, k, v))
        interface = ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation, eager_attention_forward)
        out = interface(attn, q, k, v, attention_mask=None, scaling=attn.scaling, dropout=0.0, is_causal=False)[0]
        return attn.proj(out.reshape(n, -1).contiguous())

    def forward(self, pixel_values, patch_pos, patch_grid):
        h = self.visual.patch_embed(pixel_values.to(self.visual.patch_embed.proj.weight.dtype))
        grid = patch_grid[:1]
        shapes = torch.cat([torch.ones_like(grid[:, :1]), grid], 1)
        lengths = grid[:, 0] * grid[:, 1]
        h = self.visual.embeddings(h, lengths, shapes, patch_pos[:, 0], patch_pos[:, 1])
        for blk in self.visual.blocks:
            h = h + self._attention(blk.attn, blk.norm1(h))
            h = h + blk.mlp(blk.norm2(h))
        z = self.vq.quant_conv(h.t().unsqueeze(0).unsqueeze(-1))          # [1, C, P, 1]
        z = z.permute(0, 2, 3, 1).reshape(-1, self.vq.quantize.embedding_dim)
        z = F.normalize(z, p=2, dim=-1)
        e = F.normalize(self.vq.quantize.embedding.weight, p=2, dim=-1)
        d = torch.sum(z ** 2, dim=1, keepdim=True) + torch.sum(e ** 2, dim=1) - 2 * torch.einsum("bd,dn->bn", z, e.t())
        return torch.argmin(d, dim=1)


class ArLm(nn.Module):
    """GlmImageForConditionalGeneration's language model, driven layer by layer as GlmImageTextModel.forward
    does for one unpadded sequence:
      prefill(input_ids [1, n], position_ids [3, 1, n]) -> logits f32 [1, V], present_k/v W [NL, 1, KVH, n, Dh]
      decode(input_ids [1, 1], position_ids [3, 1, 1], past_k, past_v) -> logits, present_k/v [.., T + 1, ..]
    No mask reaches SDPA, as when transformers skips the causal mask: the prefill graph attends causally
    (is_causal for n > 1), the decode graph attends to every cached key. With eager attention (--attention
    math) the prefill passes the explicit causal mask eager attention needs. The head runs on the last row
    (logits_to_keep = 1) and the logits are upcast to float32 as GenerationMixin._sample does."""

    def __init__(self, vle):
        super().__init__()
        self.lm = language_model(vle)
        self.head = vle.lm_head
        self.sdpa = self.lm.config._attn_implementation == "sdpa"

    def prefill(self, input_ids, position_ids):
        return run_cached_lm(self.lm, self.head, self.lm.embed_tokens(input_ids), position_ids, CacheShim(),
                             causal=True, sdpa=self.sdpa)

    def decode(self, input_ids, position_ids, past_k, past_v):
        return run_cached_lm(self.lm, self.head, self.lm.embed_tokens(input_ids), position_ids,
                             CacheShim(past_k, past_v), causal=False, sdpa=self.sdpa)


class _ReadCache:
    """GlmImageLayerKVCache in "read" mode for one layer: the references' K/V prepended to the block's keys."""
    mode = "read"

    def __init__(self, k, v):
        self.k, self.v = k, v

    def get(self, k, v):
        b = k.shape[0]
        return (torch.cat([self.k.expand(b, -1, -1, -1), k], dim=1),
                torch.cat([self.v.expand(b, -1, -1, -1), v], dim=1))


class _WriteCache:
    """GlmImageLayerKVCache in "write" mode for one layer: records the block's keys and values."""
    mode = "write"

    def __init__(self):
        self.k = self.v = None

    def store(self, k, v):
        self.k, self.v = k, v


class GlmDiT(nn.Module):
    """GlmImageTransformer2DModel with its KV cache objects replaced by tensors:
      forward(hidden_states, encoder_hidden_states, prior_token_id, prior_token_drop, timestep, target_size,
              crop_coords, rope_cos, rope_sin, kv_k, kv_v) -> sample    (kv [Ld, 1, R, H, Dd]; R = 0: no references)
      write_kv(hidden_states, prior_token_id, target_size, rope_cos, rope_sin) -> kv_k, kv_v [Ld, 1, Sr, H, Dd]
    write_kv is the pipeline's reference pass: no glyphs, nothing dropped, t = 0, crop (0, 0)."""

    def __init__(self, t):
        super().__init__()
        self.t = t

    def forward(self, hidden_states, encoder_hidden_states, prior_token_id, prior_token_drop, timestep, target_size,
                crop_coords, rope_cos, rope_sin, kv_k, kv_v):
        caches = [_ReadCache(kv_k[i], kv_v[i]) for i in range(len(self.t.transformer_blocks))]
        return self.t(hidden_states=hidden_states, encoder_hidden_states=encoder_hidden_states,
                      prior_token_id=prior_token_id, prior_token_drop=prior_token_drop, timestep=timestep,
                      target_size=target_size, crop_coords=crop_coords, kv_caches=caches,
                      image_rotary_emb=(rope_cos, rope_sin), return_dict=False)[0]

    def write_kv(self, hidden_states, prior_token_id, target_size, rope_cos, rope_sin):
        caches = [_WriteCache() for _ in self.t.transformer_blocks]
        text = hidden_states.new_zeros((1, 0, self.t.config.text_embed_dim))
        self.t(hidden_states=hidden_states, encoder_hidden_states=text, prior_token_id=prior_token_id,
               prior_token_drop=torch.zeros_like(prior_token_id, dtype=torch.bool),
               timestep=target_size.new_zeros((1,)), target_size=target_size,
               crop_coords=torch.zeros_like(target_size), kv_caches=caches, image_rotary_emb=(rope_cos, rope_sin),
               return_dict=False)
        return torch.stack([c.k for c in caches]), torch.stack([c.v for c in caches])
