"""A small decoder stack with the attribute layout of transformers' language models (embed_tokens, layers,
norm, rotary_emb) for the wrapper tests: it isolates the exporter's layer driver, mask and stacking logic
from any one model's numerics, which the real-class exports (test_export_end_to_end.py, the parity test)
cover."""
from types import SimpleNamespace

import torch
from torch import nn


class Rotary(nn.Module):
    """A rotary-embedding stand-in: (cos, sin) of the positions; mRoPE positions [3, B, L] are mixed."""

    def forward(self, x, position_ids):
        if position_ids.dim() == 3:
            position_ids = position_ids[0] + 2 * position_ids[1] + 3 * position_ids[2]
        angle = position_ids.float()[..., None] * 0.1
        return angle.cos(), angle.sin()


class Layer(nn.Module):
    """A decoder-layer stand-in: attention over the additive mask plus a position term; returns a tuple as
    transformers' layers do."""

    def __init__(self, d):
        super().__init__()
        self.q, self.k = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, h, attention_mask=None, position_ids=None, position_embeddings=None, **_):
        cos, sin = position_embeddings
        s = self.q(h) @ self.k(h).transpose(1, 2) / 4 + attention_mask[:, 0]
        return (h + s.softmax(-1) @ h + cos[..., :1] * 0.01 + sin[..., :1] * 0.01,)


class DecoderStack(nn.Module):
    """embed_tokens, layers, norm, rotary_emb: what the exporter's layer driver reads."""

    def __init__(self, n=4, d=8, vocab=50):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([Layer(d) for _ in range(n)])
        self.norm = nn.LayerNorm(d)
        self.rotary_emb = Rotary()
        self.config = SimpleNamespace(sliding_window=None, vocab_size=vocab)

    def hidden_states(self, input_ids, attention_mask, inputs_embeds=None, position_ids=None):
        """transformers' `output_hidden_states`: embeddings, each layer's output, the last one normed; the
        causal + padding mask built the way create_causal_mask does."""
        h = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        L = input_ids.shape[1]
        keep = torch.ones(L, L, device=h.device).tril().bool()[None] & attention_mask[:, None, :].bool()
        add = torch.zeros(keep.shape, device=h.device).masked_fill(~keep, torch.finfo(h.dtype).min)[:, None]
        pe = self.rotary_emb(h, torch.arange(L, device=h.device)[None] if position_ids is None else position_ids)
        states = [h]
        for layer in self.layers:
            h = layer(h, attention_mask=add, position_embeddings=pe)[0]
            states.append(h)
        states[-1] = self.norm(states[-1])
        return tuple(states)
