"""inputs.py against upstream facts: the Qwen2-VL processor order, window ids and QwenEmbedRope's layout."""
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from diffgentor_export import inputs


class InputsTest(unittest.TestCase):
    def test_vision_rows_follow_processor_order(self):
        pos, _wseg, iseg = inputs.qwen_vision_inputs([(4, 6)])
        # rows (bh, bw, mh, mw): the first merge unit covers (0,0), (0,1), (1,0), (1,1)
        self.assertEqual(pos[:4].tolist(), [[0, 0], [0, 1], [1, 0], [1, 1]])
        self.assertEqual(pos[4:8].tolist(), [[0, 2], [0, 3], [1, 2], [1, 3]])
        self.assertEqual(len(pos), 24)
        self.assertEqual(iseg.tolist(), [0] * 24)

    def test_windows_of_four_merge_units_and_images_apart(self):
        # 20x20 patches = 10x10 merge units -> 3x3 windows (4, 4, 2 units per side)
        _pos, wseg, iseg = inputs.qwen_vision_inputs([(20, 20), (4, 4)])
        first = wseg[:400]
        self.assertEqual(len(set(first.tolist())), 9)

        def unit(bh, bw):
            return first[(bh * 10 + bw) * 4].item()
        self.assertEqual(unit(0, 0), unit(3, 3))
        self.assertNotEqual(unit(0, 3), unit(0, 4))
        self.assertEqual(unit(9, 9), 8)
        self.assertEqual(set(wseg[400:].tolist()), {9})
        self.assertEqual(iseg[400:].tolist(), [1] * 16)

    def test_rope_tables_layout(self):
        img, txt = inputs.qwen_rope_tables([(1, 4, 6), (1, 2, 2)], 5, axes=(4, 6, 6))
        self.assertEqual(tuple(img.shape), (24 + 4, 8, 2))
        self.assertEqual(tuple(txt.shape), (5, 8, 2))
        # first token of the output grid: frame 0, height -(4 - 2) = -2, width -(6 - 3) = -3
        self.assertAlmostEqual(img[0, 2, 0].item(), torch.cos(torch.tensor(-2.0)).item(), places=6)
        self.assertAlmostEqual(img[0, 5, 1].item(), torch.sin(torch.tensor(-3.0)).item(), places=6)
        self.assertAlmostEqual(img[24, 0, 1].item(), torch.sin(torch.tensor(1.0)).item(), places=6)  # frame 1
        # text starts after the largest half size (max(4 // 2, 6 // 2) = 3) on all three axes
        self.assertAlmostEqual(txt[0, 0, 1].item(), torch.sin(torch.tensor(3.0)).item(), places=6)
        self.assertAlmostEqual(txt[4, 5, 0].item(), torch.cos(torch.tensor(7.0)).item(), places=6)


if __name__ == "__main__":
    unittest.main()


BIN = os.environ["DIFFGENTOR_PARITY_BIN"]


class MatchesRuntimeTest(unittest.TestCase):
    """inputs.py is the exporter's copy of the runtime's builders: both must give the same tensors."""

    @classmethod
    def setUpClass(cls):
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "builders.json"
            subprocess.run([BIN, "--builders", str(out)], check=True)
            cls.runtime = json.loads(out.read_text())

    def test_vision_ids(self):
        for case in self.runtime["vision"]:
            grids = [tuple(g) for g in case["grids"]]
            self.assertEqual([tuple(g) for g in case["got_grids"]], grids)
            pos, wseg, iseg = inputs.qwen_vision_inputs(grids)
            self.assertEqual(pos.flatten().tolist(), case["vision_pos"], grids)
            self.assertEqual(iseg.tolist(), case["image_seg"], grids)
            # window ids only need to be unique per (image, window): compare the partitions
            self.assertEqual(_partition(wseg.tolist()), _partition(case["window_seg"]), grids)

    def test_rope_tables(self):
        for case in self.runtime["rope"]:
            shapes = [tuple(s) for s in case["shapes"]]
            img, txt = inputs.qwen_rope_tables(shapes, case["text_len"], tuple(case["axes"]))
            ours_img = torch.tensor(case["img"]).view(img.shape)
            ours_txt = torch.tensor(case["txt"]).view(txt.shape)
            self.assertLess((img - ours_img).abs().max().item(), 1e-6, shapes)
            self.assertLess((txt - ours_txt).abs().max().item(), 1e-6, shapes)


def _partition(ids):
    groups = {}
    for k, v in enumerate(ids):
        groups.setdefault(v, []).append(k)
    return sorted(groups.values())
