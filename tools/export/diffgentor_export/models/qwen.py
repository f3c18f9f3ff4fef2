"""`qwen` / `qwen_singleimg` (and the Qwen2.5-VL encoders LongCat shares): bundle contract §5.1.

vision_encoder: Qwen2_5_VisionTransformerPretrainedModel with the `cu_seqlens` splits replaced by masks from
segment ids, in processor order (no window permutation: masked attention is permutation-equivariant and the
merger groups 4 consecutive rows, which the permutation keeps together). text_encoder: the LM layer by layer
with the image embeddings scattered at `image_token_id`. transformer: QwenImageTransformer2DModel's top level
with RoPE tables and `modulate_index` as inputs instead of `img_shapes`.
"""
from __future__ import annotations

import torch
from torch import nn

from .common import attention, language_model, run_layers


class QwenVisionEncoder(nn.Module):
    def __init__(self, text_encoder, math: bool):
        super().__init__()
        self.visual = getattr(getattr(text_encoder, "model", text_encoder), "visual", None) or text_encoder.visual
        self.full = set(self.visual.fullatt_block_indexes)
        self.math = math

    def forward(self, pixel_values, vision_pos, window_seg, image_seg):
        v = self.visual
        x = v.patch_embed(pixel_values)
        # rot_pos_emb: (row, col) * inv_freq in inv_freq's dtype, the values upstream gathers from
        # outer(arange(max_grid, dtype=inv_freq.dtype), inv_freq).
        inv = v.rotary_pos_emb.inv_freq
        theta = (vision_pos.to(inv.dtype)[:, :, None] * inv[None, None, :]).flatten(1)
        emb = torch.cat([theta, theta], -1)
        cos, sin = emb.cos(), emb.sin()
        full_mask = (image_seg[:, None] == image_seg[None, :])[None, None]
        window_mask = (window_seg[:, None] == window_seg[None, :])[None, None]
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb_vision
        P = x.shape[0]
        for i, blk in enumerate(v.blocks):
            a = blk.attn
            h = blk.norm1(x)
            q, k, val = a.qkv(h).reshape(P, 3, a.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
            q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
            q, k, val = (t.transpose(0, 1).unsqueeze(0) for t in (q, k, val))
            o = attention(q, k, val, full_mask if i in self.full else window_mask, a.scaling, self.math)
            x = x + a.proj(o.squeeze(0).transpose(0, 1).reshape(P, -1))
            x = x + blk.mlp(blk.norm2(x))
        return v.merger(x)


class QwenTextEncoder(nn.Module):
    def __init__(self, text_encoder):
        super().__init__()
        self.lm = language_model(text_encoder)
        self.image_token_id = int(text_encoder.config.image_token_id)

    def forward(self, input_ids, attention_mask, position_ids, image_embeds):
        embeds = self.lm.embed_tokens(input_ids)
        where = (input_ids == self.image_token_id).unsqueeze(-1).expand_as(embeds)
        embeds = embeds.masked_scatter(where, image_embeds.to(embeds.dtype))
        h, _ = run_layers(self.lm, embeds, attention_mask, position_ids[0], position_ids)
        return self.lm.norm(h)


class QwenImageDiT(nn.Module):
    """QwenImageTransformer2DModel.forward's top level (transformer_qwenimage.py) with the RoPE tables
    ((cos, sin) per pair, from C++), modulate_index and the text mask as inputs; every block is upstream's."""

    def __init__(self, transformer):
        super().__init__()
        cfg = transformer.config
        if getattr(cfg, "use_layer3d_rope", False) or getattr(cfg, "use_additional_t_cond", False):
            raise ValueError("Qwen-Image-Layered options (use_layer3d_rope, use_additional_t_cond) are out of scope")
        self.t = transformer
        self.zero_cond_t = bool(getattr(cfg, "zero_cond_t", False))

    def forward(self, hidden_states, encoder_hidden_states, timestep, img_freqs, txt_freqs, modulate_index,
                encoder_hidden_states_mask):
        t = self.t
        x = t.img_in(hidden_states)
        timestep = timestep.to(x.dtype)
        index = None
        if self.zero_cond_t:
            timestep = torch.cat([timestep, timestep * 0], dim=0)
            index = modulate_index.to(torch.int32)
        text = t.txt_in(t.txt_norm(encoder_hidden_states))
        temb = t.time_text_embed(timestep, x)
        rope = (torch.view_as_complex(img_freqs.contiguous()), torch.view_as_complex(txt_freqs.contiguous()))
        for block in t.transformer_blocks:
            text, x = block(hidden_states=x, encoder_hidden_states=text,
                            encoder_hidden_states_mask=encoder_hidden_states_mask.to(torch.bool), temb=temb,
                            image_rotary_emb=rope, joint_attention_kwargs=None, modulate_index=index)
        if self.zero_cond_t:
            temb = temb.chunk(2, dim=0)[0]
        return t.proj_out(t.norm_out(x, temb))
