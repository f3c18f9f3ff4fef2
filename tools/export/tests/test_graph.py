"""graph.py with the pinned environment's torch: device-neutral rewrite, tracer strictness, op list, compare."""
import io
import sys
import unittest
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from diffgentor_export import graph

Module = torch.nn.Module


class Positions(Module):
    """Factory calls with a device: the trace records them as Device constants."""

    def __init__(self):
        super().__init__()
        self.inner = Inner()

    def forward(self, x):
        pos = torch.arange(x.shape[1], device=x.device, dtype=x.dtype)
        return self.inner(x + pos)


class Inner(Module):
    def forward(self, x):
        return x * torch.ones(x.shape[0], 1, device=x.device, dtype=x.dtype) + 1


class Freezes(Module):
    def forward(self, x):
        return x * float(x.sum())  # a Python number taken from a tensor


class Guarded(Module):
    """Branches on traced shapes whose outcome cannot change the values: an assert, a raise-only guard, a
    contiguity workaround."""

    def forward(self, x):
        assert x.shape[1] == 3
        if x.shape[0] > 10_000:
            raise ValueError("too many rows")
        if x.shape[0] >= 64:
            x = x.contiguous()
        return x * 2


class Branches(Module):
    """A branch on a traced shape that changes the values: must still be refused."""

    def forward(self, x):
        if x.shape[0] > 1:
            x = x * 2
        return x + 1


class GraphTest(unittest.TestCase):
    def test_guards_are_allowed_and_value_branches_refused(self):
        traced = graph.trace(Guarded(), {"forward": (torch.randn(2, 3),)})
        x = torch.randn(70, 3)
        self.assertTrue(torch.equal(traced(x), x * 2))
        with self.assertRaises(graph.ExportError) as e:
            graph.trace(Branches(), {"forward": (torch.randn(2, 3),)})
        self.assertIn("Branches", str(e.exception))

    def test_device_constants_are_replaced_and_the_module_still_runs_after_save(self):
        traced = graph.trace(Positions(), {"forward": (torch.randn(2, 5),)})
        self.assertGreater(len([1 for _, g in graph._graphs(traced) if graph._device_constants(g)]), 0)
        self.assertGreaterEqual(graph.make_device_neutral(traced), 2)
        self.assertEqual([w for w, g in graph._graphs(traced) if graph._device_constants(g)], [])
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
        buf.seek(0)
        loaded = torch.jit.load(buf)
        x = torch.randn(3, 7)  # another shape than the trace's
        self.assertTrue(torch.equal(loaded(x), Positions()(x)))
        self.assertIn("prim::device", str(loaded.graph) + str(loaded.inner.graph))

    def test_trace_refuses_a_value_frozen_from_a_tensor(self):
        with self.assertRaises(graph.ExportError) as e:
            graph.trace(Freezes(), {"forward": (torch.randn(2, 2),)})
        self.assertIn("Freezes", str(e.exception))
        seen = []
        graph.trace(Freezes(), {"forward": (torch.randn(2, 2),)}, allow_warnings=True, log=seen.append)
        self.assertEqual(len(seen), 1)
        self.assertIn("Freezes", seen[0])

    def test_required_ops_lists_the_graph_operators(self):
        traced = graph.trace(Positions(), {"forward": (torch.randn(2, 5),)})
        ops = graph.required_ops(traced)
        self.assertIn("aten::arange", ops)
        self.assertIn("aten::ones", ops)
        self.assertIn("aten::add", ops)
        self.assertTrue(all(op.startswith("aten::") for op in ops))

    def test_compare(self):
        a = torch.tensor([1.0, 2.0, 4.0])
        r = graph.compare(a + torch.tensor([0.0, 0.5, 0.0]), a)
        self.assertAlmostEqual(r["max_abs_err"], 0.5)
        self.assertAlmostEqual(r["mean_abs_err"], 0.5 / 3)
        self.assertAlmostEqual(r["rel_err"], 0.125)
        with self.assertRaises(graph.ExportError):
            graph.compare(torch.zeros(2), torch.zeros(3))
        self.assertEqual(graph.compare(torch.tensor([1, 2]), torch.tensor([1, 3]))["max_abs_err"], 1.0)


if __name__ == "__main__":
    unittest.main()
