"""The exporter's own logic, with the pinned torch and small stand-ins for upstream modules: the recipe
table covers the contract exactly, the layer driver and its mask, the FLUX.2 stacking, the Qwen text
encoder's image scatter, the VAE halves. Upstream compatibility itself is checked by each export (against
the real modules) and by the parity harness."""
import sys
import unittest
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from diffgentor_export import contract, recipes
from diffgentor_export.models import common, flux, qwen

sys.path.insert(0, str(Path(__file__).resolve().parent))
from standins import DecoderStack as LM

Module = nn.Module


class WrapperTest(unittest.TestCase):
    def test_recipes_cover_the_contract_in_order(self):
        ctx = recipes.Ctx(torch.float32, torch.device("cpu"), False, {"text_encoder_out_layers": (1, 2, 3)})
        for kind in ("qwen", "qwen_singleimg", "longcat", "flux2", "flux2_klein", "flux1_kontext"):
            zero = {"transformer": {"zero_cond_t": kind == "qwen"}, "vae": {}}
            jobs = recipes.RECIPES[kind].jobs(ctx, zero)
            self.assertEqual([j.component for j in jobs], contract.component_names(kind), kind)
            subfolders = {m.component: m.subfolder for m in contract.components(kind)}
            for j in jobs:  # each wrapper loads from the folder the manifest names
                self.assertEqual(j.subfolder, subfolders[j.component] if j.component != "vision_encoder"
                                 else "text_encoder", (kind, j.component))
            unused = {j.component: j.unused for j in jobs if j.unused}
            self.assertEqual(unused, {"transformer": ["modulate_index"]} if kind == "qwen_singleimg" else {}, kind)
        with self.assertRaises(ValueError):
            recipes.recipe("newtype")

    def test_mask_is_causal_and_keeps_padding_queries_on_real_keys(self):
        mask = torch.tensor([[1, 1, 0, 0, 1]])  # LongCat-style padding in the middle
        m = common.causal_padding_mask(mask, torch.float32)[0, 0]
        keep = m == 0
        self.assertEqual(keep.tolist(), [[True, False, False, False, False],
                                         [True, True, False, False, False],
                                         [True, True, False, False, False],
                                         [True, True, False, False, False],
                                         [True, True, False, False, True]])
        self.assertEqual(m[0, 1].item(), torch.finfo(torch.float32).min)

    def test_stacked_text_encoder_equals_the_hidden_state_stack_and_prunes(self):
        torch.manual_seed(0)
        lm = LM()
        te = SimpleNamespace(model=lm)
        ids = torch.randint(0, 50, (1, 12))
        mask = torch.tensor([[1] * 7 + [0] * 5])
        states = lm.hidden_states(ids, mask)
        want = torch.stack([states[k] for k in (1, 2, 3)], 1).permute(0, 2, 1, 3).reshape(1, 12, -1)
        wrapper = flux.StackedTextEncoder(te, (1, 2, 3))
        got = wrapper(ids, mask, torch.arange(12)[None])
        self.assertLess((got - want).abs().max().item(), 1e-6)
        # the driver traces without freezing the length: a longer, differently padded input still agrees
        from diffgentor_export import graph
        traced = graph.trace(wrapper, {"forward": (ids, mask, torch.arange(12)[None])})
        ids2, mask2 = torch.randint(0, 50, (1, 20)), torch.tensor([[1] * 15 + [0] * 5])
        self.assertLess((traced(ids2, mask2, torch.arange(20)[None]) -
                         wrapper(ids2, mask2, torch.arange(20)[None])).abs().max().item(), 1e-6)
        wrapper.prune()
        self.assertEqual(len(lm.layers), 3)
        self.assertLess((wrapper(ids, mask, torch.arange(12)[None]) - want).abs().max().item(), 1e-6)
        with self.assertRaises(ValueError):  # hidden_states[num_layers] is normed upstream: refused
            flux.StackedTextEncoder(te, (1, 2, 3))

    def test_language_model_is_found_inside_wrappers(self):
        lm = LM()
        self.assertIs(common.language_model(SimpleNamespace(model=SimpleNamespace(language_model=lm))), lm)
        self.assertIs(common.language_model(SimpleNamespace(model=lm)), lm)
        with self.assertRaises(TypeError):
            common.language_model(SimpleNamespace(model=nn.Linear(2, 2)))

    def test_qwen_text_encoder_scatters_image_embeddings_at_the_image_token(self):
        torch.manual_seed(0)
        lm = LM(n=2)
        te = SimpleNamespace(model=SimpleNamespace(language_model=lm), config=SimpleNamespace(image_token_id=7))
        enc = qwen.QwenTextEncoder(te)
        ids = torch.tensor([[3, 7, 7, 9]])
        image = torch.randn(2, 8)
        pos = torch.arange(4)[None].expand(3, 1, 4)
        out = enc(ids, torch.ones_like(ids), pos, image)
        other = enc(ids, torch.ones_like(ids), pos, image + 1)
        self.assertEqual(tuple(out.shape), (1, 4, 8))
        self.assertEqual((out[0, 0] - other[0, 0]).abs().max().item(), 0.0)  # before the image: causal
        self.assertGreater((out[0, 1] - other[0, 1]).abs().max().item(), 0.0)

    def test_vae_halves(self):
        calls = []

        class Vae(Module):
            def _encode(self, x):
                calls.append(("enc", tuple(x.shape)))
                rest = x.shape[2:]
                return torch.cat([x.mean(1, keepdim=True).expand(-1, 4, *rest), -x[:, :1].expand(-1, 4, *rest)], 1)

            def _decode(self, z, return_dict=True):
                calls.append(("dec", tuple(z.shape)))
                return (z[:, :3] * 2,)

        parts = common.vae_components(Vae(), 4, video=True)
        lat = parts["vae_encoder"](torch.ones(1, 3, 16, 8))
        self.assertEqual(tuple(lat.shape), (1, 4, 16, 8))  # the first C channels (the mean), frame axis removed
        self.assertEqual(calls[-1], ("enc", (1, 3, 1, 16, 8)))
        img = parts["vae_decoder"](torch.ones(1, 4, 2, 2))
        self.assertEqual(tuple(img.shape), (1, 3, 2, 2))
        self.assertEqual(calls[-1], ("dec", (1, 4, 1, 2, 2)))
        flat = common.vae_components(Vae(), 4, video=False)["vae_encoder"](torch.ones(1, 3, 16, 8))
        self.assertEqual(tuple(flat.shape), (1, 4, 16, 8))

    def test_math_attention_is_masked_softmax(self):
        q, k, v = torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4)
        seg = torch.tensor([0, 0, 1, 1, 1])
        mask = (seg[:, None] == seg[None, :])[None, None]
        out = common.attention(q, k, v, mask, 0.5, math=True)
        s = (q @ k.transpose(-1, -2) * 0.5).masked_fill(~mask, float("-inf")).softmax(-1)
        self.assertLess((out - s @ v).abs().max().item(), 1e-6)
        # a segment does not see the other one
        v2 = v.clone()
        v2[:, :, 3] += 10
        changed = common.attention(q, k, v2, mask, 0.5, True)
        self.assertEqual((changed[:, :, :2] - out[:, :, :2]).abs().max().item(), 0.0)


if __name__ == "__main__":
    unittest.main()
