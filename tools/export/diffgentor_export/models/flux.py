"""FLUX-family components (bundle contract §5.2–5.4): DiTs traced as they are once ids are tensors, FLUX.2's
stacked-layer text encoders, FLUX.1-Kontext's CLIP (pooled) and T5."""
from __future__ import annotations

import torch
from torch import nn

from .common import language_model, run_layers


class IdsDiT(nn.Module):
    """FluxTransformer2DModel / LongCatImageTransformer2DModel / Flux2Transformer2DModel, forward unchanged:
    ids without a batch axis, RoPE computed from them inside upstream's pos_embed. Subclasses only fix the
    argument list (names and order are the contract)."""

    def __init__(self, transformer):
        super().__init__()
        self.t = transformer

    def call(self, **kw):
        return self.t(return_dict=False, **kw)[0]


class LongCatDiT(IdsDiT):
    def forward(self, hidden_states, encoder_hidden_states, timestep, img_ids, txt_ids):
        return self.call(hidden_states=hidden_states, encoder_hidden_states=encoder_hidden_states, timestep=timestep,
                         img_ids=img_ids, txt_ids=txt_ids)


class Flux2DiT(IdsDiT):
    def forward(self, hidden_states, encoder_hidden_states, timestep, guidance, img_ids, txt_ids):
        return self.call(hidden_states=hidden_states, encoder_hidden_states=encoder_hidden_states, timestep=timestep,
                         guidance=guidance, img_ids=img_ids, txt_ids=txt_ids)


class Flux2KleinDiT(IdsDiT):
    def forward(self, hidden_states, encoder_hidden_states, timestep, img_ids, txt_ids):
        return self.call(hidden_states=hidden_states, encoder_hidden_states=encoder_hidden_states, timestep=timestep,
                         img_ids=img_ids, txt_ids=txt_ids)


class KontextDiT(IdsDiT):
    def forward(self, hidden_states, encoder_hidden_states, pooled_projections, timestep, guidance, img_ids, txt_ids):
        return self.call(hidden_states=hidden_states, encoder_hidden_states=encoder_hidden_states,
                         pooled_projections=pooled_projections, timestep=timestep, guidance=guidance, img_ids=img_ids,
                         txt_ids=txt_ids)


class StackedTextEncoder(nn.Module):
    """FLUX.2's prompt embeddings: hidden_states[k] for k in `layers` (10/20/30 Mistral, 9/18/27 Qwen3),
    stacked per token as `_get_mistral_3_small_prompt_embeds` / `_get_qwen3_prompt_embeds` do. Layers after
    the last one kept cannot change the result and are not run (nor stored)."""

    def __init__(self, text_encoder, layers):
        super().__init__()
        self.lm = language_model(text_encoder)
        self.layers = tuple(int(k) for k in layers)
        if max(self.layers) >= len(self.lm.layers):  # hidden_states[num_layers] is after the final norm
            raise ValueError(f"text_encoder_out_layers {self.layers} must be below the encoder's "
                             f"{len(self.lm.layers)} layers")
        window = getattr(self.lm.config, "sliding_window", None)
        if window is not None and getattr(self.lm.config, "use_sliding_window", True) and window < 512:
            raise ValueError(f"the text encoder's sliding_window {window} < 512 is not supported")

    def prune(self):
        """Drops the layers after the last one kept, so the saved file does not carry them (called after the
        upstream references are computed)."""
        del self.lm.layers[max(self.layers):]

    def forward(self, input_ids, attention_mask, position_ids):
        embeds = self.lm.embed_tokens(input_ids)
        _, kept = run_layers(self.lm, embeds, attention_mask, position_ids, position_ids, upto=max(self.layers),
                             keep=self.layers)
        out = torch.stack([kept[k] for k in self.layers], dim=1)  # [B, 3, L, D]
        B, n, L, D = out.shape
        return out.permute(0, 2, 1, 3).reshape(B, L, n * D)


class ClipPooled(nn.Module):
    """CLIPTextModel(input_ids).pooler_output (FluxKontextPipeline._get_clip_prompt_embeds)."""

    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, input_ids):
        return self.clip(input_ids, output_hidden_states=False).pooler_output


class T5Encoder(nn.Module):
    """T5EncoderModel(input_ids)[0] (FluxKontextPipeline._get_t5_prompt_embeds): no mask, pads attend."""

    def __init__(self, t5):
        super().__init__()
        self.t5 = t5

    def forward(self, input_ids):
        return self.t5(input_ids, output_hidden_states=False)[0]
