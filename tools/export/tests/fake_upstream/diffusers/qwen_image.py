"""Qwen-Image stand-ins that compute the way upstream does (diffusers transformer_qwenimage.py,
autoencoder_kl_qwenimage.py): the DiT builds its RoPE from `img_shapes` with QwenEmbedRope's rule (complex
tables from positive and negative position rows, scale_rope centring, text after the largest half size),
modulate_index from the shapes when zero_cond_t, and applies it by complex multiplication; the VAE takes
and returns 5-D video tensors. Small and seeded."""
from types import SimpleNamespace

import torch
from torch import nn

from common import Loadable, StandInVae, config

D, HEADS, JOINT = 16, 1, 8  # head dim 16 = sum(axes_dims_rope); JOINT: the stand-in Qwen2.5-VL width


def rope_params(index, dim, theta=10000):
    freqs = torch.outer(index.float(), 1.0 / torch.pow(theta, torch.arange(0, dim, 2).to(torch.float32).div(dim)))
    return torch.polar(torch.ones_like(freqs), freqs)


class EmbedRope:
    def __init__(self, axes):
        self.axes = axes
        pos, neg = torch.arange(4096), torch.arange(4096).flip(0) * -1 - 1
        self.pos = torch.cat([rope_params(pos, a) for a in axes], 1)
        self.neg = torch.cat([rope_params(neg, a) for a in axes], 1)

    def __call__(self, shapes, text_len):
        split = [a // 2 for a in self.axes]
        pos, neg = self.pos.split(split, 1), self.neg.split(split, 1)
        rows, biggest = [], 0
        for idx, (f, h, w) in enumerate(shapes):
            frame = pos[0][idx:idx + f].view(f, 1, 1, -1).expand(f, h, w, -1)
            height = torch.cat([neg[1][-(h - h // 2):], pos[1][:h // 2]], 0).view(1, h, 1, -1).expand(f, h, w, -1)
            width = torch.cat([neg[2][-(w - w // 2):], pos[2][:w // 2]], 0).view(1, 1, w, -1).expand(f, h, w, -1)
            rows.append(torch.cat([frame, height, width], -1).reshape(f * h * w, -1))
            biggest = max(biggest, h // 2, w // 2)
        return torch.cat(rows, 0), self.pos[biggest:biggest + text_len]


def rotate(x, freqs):
    """[B, L, H, d] by complex [L, d/2] (apply_rotary_emb_qwen with use_real=False)."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * freqs.unsqueeze(1)).flatten(3).to(x.dtype)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.img_qkv, self.txt_qkv = nn.Linear(D, 3 * D), nn.Linear(D, 3 * D)
        self.img_out, self.txt_out = nn.Linear(D, D), nn.Linear(D, D)
        self.img_mod, self.txt_mod = nn.Linear(D, 2 * D), nn.Linear(D, 2 * D)

    def forward(self, hidden_states, encoder_hidden_states, encoder_hidden_states_mask, temb, image_rotary_emb,
                joint_attention_kwargs=None, modulate_index=None):
        img_freqs, txt_freqs = image_rotary_emb
        B, S, L = hidden_states.shape[0], hidden_states.shape[1], encoder_hidden_states.shape[1]
        shift, scale = self.img_mod(temb).chunk(2, -1)  # [B or 2B, D]
        if modulate_index is not None:  # zero_cond_t: rows (t, 0); each token picks its row
            pick = lambda p: torch.where(modulate_index.unsqueeze(-1) == 0, p[:B, None], p[B:, None])  # noqa: E731
            shift, scale = pick(shift), pick(scale)
            tshift, tscale = self.txt_mod(temb[:B]).chunk(2, -1)
        else:
            shift, scale = shift[:, None], scale[:, None]
            tshift, tscale = self.txt_mod(temb).chunk(2, -1)
        x = hidden_states * (1 + scale) + shift
        t = encoder_hidden_states * (1 + tscale[:, None]) + tshift[:, None]
        q, k, v = self.img_qkv(x).view(B, S, 3, HEADS, -1).unbind(2)
        tq, tk, tv = self.txt_qkv(t).view(B, L, 3, HEADS, -1).unbind(2)
        q, k = rotate(q, img_freqs), rotate(k, img_freqs)
        tq, tk = rotate(tq, txt_freqs), rotate(tk, txt_freqs)
        Q, K, V = (torch.cat(p, 1).transpose(1, 2) for p in ((tq, q), (tk, k), (tv, v)))
        w = (Q @ K.transpose(-1, -2) * (D // HEADS) ** -0.5).softmax(-1)
        o = (w @ V).transpose(1, 2).reshape(B, L + S, D)
        return encoder_hidden_states + self.txt_out(o[:, :L]), hidden_states + self.img_out(o[:, L:])


class TimeText(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, D)

    def forward(self, timestep, hidden_states, addition_t_cond=None):
        f = torch.exp(torch.arange(4, dtype=torch.float32, device=timestep.device) * -1.0)
        arg = timestep.float()[:, None] * 1000 * f[None]
        return self.lin(torch.cat([arg.cos(), arg.sin()], -1).to(hidden_states.dtype))


class NormOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm, self.lin = nn.LayerNorm(D, elementwise_affine=False), nn.Linear(D, D)

    def forward(self, x, temb):
        return self.norm(x) * (1 + self.lin(temb)[:, None])


class QwenImageTransformer2DModel(Loadable):
    def __init__(self):
        super().__init__()
        self.config = config(in_channels=64, joint_attention_dim=JOINT, axes_dims_rope=(4, 6, 6), zero_cond_t=True,
                             use_layer3d_rope=False, use_additional_t_cond=False)
        self.img_in, self.txt_in, self.proj_out = nn.Linear(64, D), nn.Linear(JOINT, D), nn.Linear(D, 64)
        self.txt_norm, self.time_text_embed, self.norm_out = nn.LayerNorm(JOINT), TimeText(), NormOut()
        self.transformer_blocks = nn.ModuleList([Block(), Block()])
        self.pos_embed = EmbedRope(self.config.axes_dims_rope)
        self.zero_cond_t = True

    def forward(self, hidden_states, encoder_hidden_states=None, encoder_hidden_states_mask=None, timestep=None,
                img_shapes=None, return_dict=True):
        x = self.img_in(hidden_states)
        timestep = timestep.to(x.dtype)
        modulate = None
        if self.zero_cond_t:
            timestep = torch.cat([timestep, timestep * 0], 0)
            sizes = [[f * h * w for f, h, w in sample] for sample in img_shapes]
            modulate = torch.tensor([[0] * s[0] + [1] * sum(s[1:]) for s in sizes], dtype=torch.int)
        text = self.txt_in(self.txt_norm(encoder_hidden_states))
        temb = self.time_text_embed(timestep, x)
        rope = self.pos_embed(img_shapes[0], text.shape[1])
        for block in self.transformer_blocks:
            text, x = block(x, text, None, temb, rope, None, modulate)
        if self.zero_cond_t:
            temb = temb.chunk(2, 0)[0]
        out = self.proj_out(self.norm_out(x, temb))
        return (out,) if not return_dict else SimpleNamespace(sample=out)


class AutoencoderKLQwenImage(StandInVae):
    """Video tensors [B, C, T, H, W]; decode clamps to [-1, 1] as upstream's does."""
    clamp = True

    def __init__(self):
        super().__init__(nn.Conv3d(3, 32, (1, 8, 8), stride=(1, 8, 8)), nn.ConvTranspose3d(16, 3, (1, 8, 8), stride=(1, 8, 8)))
