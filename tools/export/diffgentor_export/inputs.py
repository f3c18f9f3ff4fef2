"""Python copies of the runtime's input builders (src/core/qwen_vl.cpp, src/models/*.cpp), so that the
exporter can check a traced component against its upstream module called upstream's own way (bundle
contract §8.3). A mismatch is a bug in one of the two copies. Pure torch; used by the checks and the tests.
"""
from __future__ import annotations

import math

import torch


def qwen_vision_inputs(grids, merge: int = 2, window: int = 4):
    """vision_pos [P, 2], window_seg [P], image_seg [P] for images with patch grids (gh, gw), rows in the
    Qwen2-VL processor's order (bh, bw, mh, mw): rot_pos_emb's ids, get_window_index's windows of `window`
    merge units (window_size / spatial_merge_size / patch_size), the cu_seqlens image split."""
    pos, wseg, iseg = [], [], []
    window_base = 0
    for image, (gh, gw) in enumerate(grids):
        lh, lw = gh // merge, gw // merge
        nw = math.ceil(lw / window)
        for bh in range(lh):
            for bw in range(lw):
                wid = window_base + (bh // window) * nw + (bw // window)
                for mh in range(merge):
                    for mw in range(merge):
                        pos.append((bh * merge + mh, bw * merge + mw))
                        wseg.append(wid)
                        iseg.append(image)
        window_base += math.ceil(lh / window) * nw
    return (torch.tensor(pos, dtype=torch.long), torch.tensor(wseg, dtype=torch.long),
            torch.tensor(iseg, dtype=torch.long))


def _axis_angles(p, d: int):
    inv = 1.0 / torch.pow(torch.tensor(10000.0), torch.arange(0, d, 2, dtype=torch.float32) / d)
    return p.float()[:, None] * inv[None, :]


def qwen_rope_tables(shapes, text_len: int, axes=(16, 56, 56)):
    """QwenEmbedRope.forward with scale_rope: (cos, sin) tables img [S, R, 2] and txt [L, R, 2] for images
    `shapes` = [(frames, h, w)] (0 = the output grid, then references) and `text_len` text tokens."""
    rows, biggest = [], 0
    for k, (_frames, h, w) in enumerate(shapes):
        r = torch.arange(h).repeat_interleave(w)
        c = torch.arange(w).repeat(h)
        frame = torch.full((h * w,), k)
        hp, wp = r - (h - h // 2), c - (w - w // 2)
        rows.append(torch.cat([_axis_angles(frame, axes[0]), _axis_angles(hp, axes[1]), _axis_angles(wp, axes[2])], 1))
        biggest = max(biggest, h // 2, w // 2)
    t = torch.arange(biggest, biggest + text_len)
    txt = torch.cat([_axis_angles(t, axes[0]), _axis_angles(t, axes[1]), _axis_angles(t, axes[2])], 1)
    img = torch.cat(rows, 0)
    return torch.stack([img.cos(), img.sin()], -1), torch.stack([txt.cos(), txt.sin()], -1)
