"""A Qwen2.5-VL stand-in that computes the way upstream does (transformers modeling_qwen2_5_vl.py): the vision
tower permutes merge units into windows (get_window_index), attends within `cu_seqlens` chunks one by one and
undoes the permutation; the LM takes mRoPE positions from get_rope_index. Small and seeded, so the exporter's
masked, processor-order vision wrapper and its layer driver are checked against this algorithm."""
import torch
import torch.nn.functional as F
from torch import nn

from common import DecoderStack, Loadable, config
from .models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb_vision

D, HEADS, OUT = 16, 2, 8


class VisionAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv, self.proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.num_heads, self.scaling = HEADS, (D // HEADS) ** -0.5

    def forward(self, x, cu_seqlens, cos, sin):
        P = x.shape[0]
        q, k, v = self.qkv(x).reshape(P, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
        q, k, v = (t.transpose(0, 1).unsqueeze(0) for t in (q, k, v))
        lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
        chunks = []
        for qc, kc, vc in zip(*(torch.split(t, lengths, dim=2) for t in (q, k, v))):
            w = (torch.matmul(qc, kc.transpose(-1, -2)) * self.scaling).softmax(-1, dtype=torch.float32)
            chunks.append(torch.matmul(w.to(vc.dtype), vc).transpose(1, 2))
        return self.proj(torch.cat(chunks, 1).reshape(P, -1))


class VisionBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.attn = VisionAttention()
        self.mlp = nn.Sequential(nn.Linear(D, 2 * D), nn.GELU(), nn.Linear(2 * D, D))


class PatchEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(1176, D, bias=False)

    def forward(self, x):
        return self.proj(x.to(self.proj.weight.dtype))


class RotaryPosEmb(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.float) / dim)),
                             persistent=False)

    def forward(self, n):
        return torch.outer(torch.arange(n, dtype=self.inv_freq.dtype), self.inv_freq)


class Merger(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln, self.mlp = nn.LayerNorm(D), nn.Linear(4 * D, OUT)

    def forward(self, x):
        return self.mlp(self.ln(x).view(-1, 4 * D))


class Visual(nn.Module):
    spatial_merge_size, patch_size, window_size = 2, 14, 112

    def __init__(self):
        super().__init__()
        self.patch_embed, self.merger = PatchEmbed(), Merger()
        self.rotary_pos_emb = RotaryPosEmb(D // HEADS // 2)
        self.blocks = nn.ModuleList([VisionBlock(), VisionBlock()])
        self.fullatt_block_indexes = [1]

    def rot_pos_emb(self, grid_thw):
        pos = []
        for t, h, w in grid_thw.tolist():
            hp = torch.arange(h)[:, None].expand(h, w).reshape(h // 2, 2, w // 2, 2).permute(0, 2, 1, 3).flatten()
            wp = torch.arange(w)[None, :].expand(h, w).reshape(h // 2, 2, w // 2, 2).permute(0, 2, 1, 3).flatten()
            pos.append(torch.stack([hp, wp], -1).repeat(t, 1))
        return self.rotary_pos_emb(int(grid_thw[:, 1:].max()))[torch.cat(pos)].flatten(1)

    def window_index(self, grid_thw):
        m = self.window_size // self.spatial_merge_size // self.patch_size
        index, cu, base = [], [0], 0
        for t, h, w in grid_thw.tolist():
            lh, lw = h // 2, w // 2
            grid = torch.arange(t * lh * lw).reshape(t, lh, lw)
            ph, pw = m - lh % m, m - lw % m
            nh, nw = (lh + ph) // m, (lw + pw) // m
            padded = F.pad(grid, (0, pw, 0, ph), value=-100).reshape(t, nh, m, nw, m).permute(0, 1, 3, 2, 4)
            padded = padded.reshape(t, nh * nw, m, m)
            counts = (padded != -100).sum([2, 3]).reshape(-1)
            flat = padded.reshape(-1)
            index.append(flat[flat != -100] + base)
            cu.extend((counts.cumsum(0) * 4 + cu[-1]).tolist())
            base += t * lh * lw
        return torch.cat(index), torch.unique_consecutive(torch.tensor(cu))

    def forward(self, hidden_states, grid_thw):
        x = self.patch_embed(hidden_states)
        rot = self.rot_pos_emb(grid_thw)
        order, cu_window = self.window_index(grid_thw)
        P = x.shape[0]
        x = x.reshape(P // 4, 4, -1)[order].reshape(P, -1)
        rot = rot.reshape(P // 4, 4, -1)[order].reshape(P, -1)
        emb = torch.cat([rot, rot], -1)
        cos, sin = emb.cos(), emb.sin()
        cu_full = F.pad((grid_thw[:, 1] * grid_thw[:, 2]).repeat_interleave(grid_thw[:, 0]).cumsum(0), (1, 0))
        for i, blk in enumerate(self.blocks):
            x = x + blk.attn(blk.norm1(x), cu_full if i in self.fullatt_block_indexes else cu_window, cos, sin)
            x = x + blk.mlp(blk.norm2(x))
        return self.merger(x)[torch.argsort(order)]


class VLModel(nn.Module):
    image_token_id, vision_start_token_id = 151655, 151652

    def __init__(self):
        super().__init__()
        self.visual = Visual()
        self.language_model = DecoderStack(n=2, d=OUT, vocab=151936)

    def get_rope_index(self, input_ids=None, image_grid_thw=None, attention_mask=None):
        """mRoPE positions: text counts up on all axes; an image block at s gets (s, s+row, s+col) over the
        merged grid and the text after it resumes at s + max(rows, cols); masked tokens get 1."""
        B, L = input_ids.shape
        out = torch.ones(3, B, L, dtype=torch.long)
        grids = [(h // 2, w // 2) for _, h, w in image_grid_thw.tolist()]
        for b in range(B):
            keep = (attention_mask[b] == 1).nonzero().flatten().tolist()
            ids = input_ids[b, keep].tolist()
            pos, k, s, image = [], 0, 0, 0
            while k < len(ids):
                if ids[k] == self.image_token_id:
                    gh, gw = grids[image]
                    for r in range(gh):
                        for c in range(gw):
                            pos.append((s, s + r, s + c))
                    k, s, image = k + gh * gw, s + max(gh, gw), image + 1
                else:
                    pos.append((s, s, s))
                    k, s = k + 1, s + 1
            out[:, b, keep] = torch.tensor(pos, dtype=torch.long).t()
        return out, None


class Qwen2_5_VLForConditionalGeneration(Loadable):
    def __init__(self):
        super().__init__()
        self.model = VLModel()
        self.config = config(image_token_id=VLModel.image_token_id, vision_start_token_id=VLModel.vision_start_token_id,
                             text_config=config(vocab_size=151936),
                             vision_config=config(spatial_merge_size=2, window_size=112, patch_size=14,
                                                  temporal_patch_size=2, in_channels=3))

    def forward(self, input_ids=None, attention_mask=None, pixel_values=None, image_grid_thw=None,
                output_hidden_states=True):
        lm = self.model.language_model
        embeds = lm.embed_tokens(input_ids)
        image = self.model.visual(pixel_values, grid_thw=image_grid_thw).to(embeds.dtype)
        where = (input_ids == self.config.image_token_id).unsqueeze(-1).expand_as(embeds)
        embeds = embeds.masked_scatter(where, image)
        positions = self.model.get_rope_index(input_ids=input_ids, image_grid_thw=image_grid_thw,
                                              attention_mask=attention_mask)[0]
        return config(hidden_states=lm.hidden_states(input_ids, attention_mask, embeds, positions))
