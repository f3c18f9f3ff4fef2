"""Stand-in for the one function the exporter imports from transformers' Qwen2.5-VL module: the vision
rotary embedding, applied in float32 (q·cos + rotate_half(q)·sin) and cast back."""
import torch


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], -1)


def apply_rotary_pos_emb_vision(q, k, cos, sin):
    qd, kd = q.dtype, k.dtype
    cos, sin = cos.unsqueeze(-2).float(), sin.unsqueeze(-2).float()
    q, k = q.float(), k.float()
    return (q * cos + rotate_half(q) * sin).to(qd), (k * cos + rotate_half(k) * sin).to(kd)
