"""inputs.py against upstream facts: the Qwen2-VL processor order, window ids and QwenEmbedRope's layout."""
import sys
import unittest
from pathlib import Path

try:
    import torch
except ImportError:
    torch = None

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if torch is not None:
    from diffgentor_export import inputs  # noqa: E402


@unittest.skipIf(torch is None, "needs torch")
class InputsTest(unittest.TestCase):
    def test_vision_rows_follow_processor_order(self):
        pos, wseg, iseg = inputs.qwen_vision_inputs([(4, 6)])
        # rows (bh, bw, mh, mw): the first merge unit covers (0,0), (0,1), (1,0), (1,1)
        self.assertEqual(pos[:4].tolist(), [[0, 0], [0, 1], [1, 0], [1, 1]])
        self.assertEqual(pos[4:8].tolist(), [[0, 2], [0, 3], [1, 2], [1, 3]])
        self.assertEqual(len(pos), 24)
        self.assertEqual(iseg.tolist(), [0] * 24)

    def test_windows_of_four_merge_units_and_images_apart(self):
        # 20x20 patches = 10x10 merge units -> 3x3 windows (4, 4, 2 units per side)
        pos, wseg, iseg = inputs.qwen_vision_inputs([(20, 20), (4, 4)])
        first = wseg[:400]
        self.assertEqual(len(set(first.tolist())), 9)
        unit = lambda bh, bw: first[(bh * 10 + bw) * 4].item()  # noqa: E731
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
