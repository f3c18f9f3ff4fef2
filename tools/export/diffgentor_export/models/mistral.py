"""FLUX.2-dev's prompt upsampler (docs/bundle-format.md, "flux2 prompt upsampler"): Mistral3ForConditionalGeneration
used generatively, as Flux2Pipeline.upsample_prompt does. The text encoder gains the mask-free `prefill` / `decode`
methods of the AR engine next to its stacked-hidden-state `forward`, in one module so the weights are loaded once;
the Pixtral vision tower and the multimodal projector are a component of their own. Every data-dependent table
(2-D RoPE, the 2x2 merge order) is an input the runtime computes. Needs torch >= 2.5 and transformers."""
from __future__ import annotations

from torch import nn

from .common import CacheShim, run_cached_lm
from .flux import StackedTextEncoder

# Flux2Pipeline.upsample_prompt's literals (diffusers 0.40): the prompt's truncation length and the new tokens.
MAX_LENGTH, MAX_NEW_TOKENS = 2048, 512


class UpsamplerTextEncoder(StackedTextEncoder):
    """StackedTextEncoder plus the generative LM (every layer, the final norm and lm_head):
      prefill(input_ids i64 [1, n], position_ids i64 [1, 1, n], image_embeds W [M, D]) -> logits f32 [1, V],
          present_k/v W [NL, 1, KVH, n, Dh]     (the M rows whose id is the image token get the image embeddings)
      decode(input_ids i64 [1, 1], position_ids i64 [1, 1, 1], past_k, past_v) -> logits, present_k/v [.., T + 1, ..]
    Nothing is pruned: generation runs every layer."""

    def __init__(self, text_encoder, layers):
        super().__init__(text_encoder, layers)
        self.head = text_encoder.lm_head
        self.image_token_id = int(text_encoder.config.image_token_id)
        self.sdpa = self.lm.config._attn_implementation == "sdpa"
        window = getattr(self.lm.config, "sliding_window", None)
        if window is not None and window < MAX_LENGTH + MAX_NEW_TOKENS:  # the cache shim keeps every key
            raise ValueError(f"the text encoder's sliding_window {window} is shorter than the "
                             f"{MAX_LENGTH + MAX_NEW_TOKENS} tokens an upsampling run can reach")

    def prune(self):
        pass

    def prefill(self, input_ids, position_ids, image_embeds):
        h = self.lm.embed_tokens(input_ids)
        # Mistral3Model.forward: masked_scatter of the projected image features into the image-token rows.
        mask = (input_ids == self.image_token_id).unsqueeze(-1).expand_as(h)
        h = h.masked_scatter(mask, image_embeds.to(h.dtype))
        return run_cached_lm(self.lm, self.head, h, position_ids[0], CacheShim(), causal=True, sdpa=self.sdpa)

    def decode(self, input_ids, position_ids, past_k, past_v):
        h = self.lm.embed_tokens(input_ids)
        return run_cached_lm(self.lm, self.head, h, position_ids[0], CacheShim(past_k, past_v), causal=False,
                             sdpa=self.sdpa)


class UpsamplerVision(nn.Module):
    """Mistral3Model.get_image_features for ONE image, then the projector:
      forward(pixel_values f32 [1, 3, H, W], rope_cos f32 [P, Dv], rope_sin f32 [P, Dv], merge_index i64 [M, m*m])
          -> image_embeds W [M, D]
    H and W are multiples of patch·merge; P = (H/p)(W/p) patches in row-major order. rope_cos/sin are
    PixtralRotaryEmbedding's rows for those patches; merge_index row j lists the patches that Mistral3PatchMerger's
    unfold gathers into merged token j, in kernel order. One image needs no attention mask (upstream's block mask
    is all zeros for one block). vision_feature_layer must be -1 (the last layer's output)."""

    def __init__(self, model):
        super().__init__()
        self.vision = model.model.vision_tower
        self.projector = model.model.multi_modal_projector
        layer = model.config.vision_feature_layer
        if layer != -1:
            raise ValueError(f"vision_feature_layer {layer} is not supported (the upsampler wrapper takes -1)")

    def forward(self, pixel_values, rope_cos, rope_sin, merge_index):
        v = self.vision
        x = v.patch_conv(pixel_values.to(v.patch_conv.weight.dtype))    # [1, Dv, h, w]
        h = v.ln_pre(x.flatten(2).transpose(1, 2))                      # [1, P, Dv]
        pe = (rope_cos.to(h.dtype), rope_sin.to(h.dtype))
        for layer in v.transformer.layers:
            h = layer(h, attention_mask=None, position_embeddings=pe)
        p = self.projector
        f = p.norm(h[0])                                                 # [P, Dv]
        m = merge_index.shape[1]
        merged = f[merge_index].permute(0, 2, 1).reshape(merge_index.shape[0], f.shape[1] * m)  # unfold's order
        f = p.patch_merger.merging_layer(merged)
        return p.linear_2(p.act(p.linear_1(f)))
