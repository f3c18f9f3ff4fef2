"""contract.py and manifest.py: the same contract file as the runtime, manifests the runtime accepts."""
import json
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from diffgentor_export import contract, manifest


class ContractTest(unittest.TestCase):
    def test_all_seven_types_and_their_components(self):
        self.assertEqual(sorted(contract.model_types()), sorted(
            ["qwen", "qwen_singleimg", "longcat", "flux2", "flux2_klein", "flux1_kontext", "glm_image"]))
        self.assertEqual(contract.component_names("qwen"),
                         ["vision_encoder", "text_encoder", "transformer", "vae_encoder", "vae_decoder"])
        self.assertEqual(contract.component_names("flux1_kontext"),
                         ["text_encoder", "text_encoder_2", "transformer", "vae_encoder", "vae_decoder"])

    def test_includes_and_methods(self):
        qwen = contract.components("qwen")
        self.assertEqual([(m.component, m.input_names) for m in qwen],
                         [(m.component, m.input_names) for m in contract.components("qwen_singleimg")])
        dit = next(m for m in contract.components("flux2") if m.component == "transformer")
        self.assertEqual(dit.input_names, ["hidden_states", "encoder_hidden_states", "timestep", "guidance",
                                           "img_ids", "txt_ids"])
        klein = next(m for m in contract.components("flux2_klein") if m.component == "transformer")
        self.assertNotIn("guidance", klein.input_names)
        glm = [(m.component, m.method) for m in contract.components("glm_image") if m.component == "transformer"]
        self.assertEqual(glm, [("transformer", "forward"), ("transformer", "write_kv")])
        vae = next(m for m in contract.components("flux2") if m.component == "vae_encoder")
        self.assertEqual(vae.outputs[0].shape, ["B", "32", "h", "w"])

    def test_optional_groups_are_left_out_unless_asked(self):
        self.assertEqual(contract.optional_groups("flux2"), ["upsampler"])
        self.assertEqual(contract.optional_groups("flux2_klein"), [])
        plain = [(m.component, m.method) for m in contract.components("flux2")]
        self.assertNotIn(("upsampler_vision", "forward"), plain)
        self.assertNotIn(("text_encoder", "prefill"), plain)
        full = [(m.component, m.method) for m in contract.components("flux2", optional=("upsampler",))]
        self.assertEqual(full[:4], [("text_encoder", "forward"), ("text_encoder", "prefill"),
                                    ("text_encoder", "decode"), ("upsampler_vision", "forward")])
        entry = contract.manifest_entry("flux2", "text_encoder", "float32", optional=("upsampler",))
        self.assertEqual(list(entry["methods"]), ["forward", "prefill", "decode"])
        self.assertEqual(list(contract.manifest_entry("flux2", "text_encoder", "float32")["methods"]), ["forward"])

    def test_unknown_type(self):
        with self.assertRaises(contract.ContractError) as e:
            contract.components("sdxl")
        self.assertIn("sdxl", str(e.exception))

    def test_manifest_entry_resolves_w(self):
        e = contract.manifest_entry("qwen", "transformer", "bfloat16")
        inputs = e["methods"]["forward"]["inputs"]
        self.assertEqual(e["subfolder"], "transformer")
        self.assertEqual({t["name"]: t["dtype"] for t in inputs}["hidden_states"], "bfloat16")
        self.assertEqual({t["name"]: t["dtype"] for t in inputs}["timestep"], "float32")
        with self.assertRaises(contract.ContractError):
            contract.manifest_entry("qwen", "transformer", "float64")

    def test_check_module_compares_argument_names_in_order(self):
        class Good(torch.nn.Module):
            def forward(self, input_ids, attention_mask, position_ids):
                return input_ids + attention_mask + position_ids

        class Swapped(torch.nn.Module):
            def forward(self, input_ids, position_ids, attention_mask):
                return input_ids + attention_mask + position_ids

        x = torch.zeros(1, 512, dtype=torch.long)
        contract.check_module(torch.jit.trace(Good(), (x, x, x)), "flux2", "text_encoder")
        with self.assertRaises(contract.ContractError) as e:
            contract.check_module(torch.jit.trace(Swapped(), (x, x, x)), "flux2", "text_encoder")
        self.assertIn("forward(input_ids, position_ids, attention_mask)", str(e.exception))
        self.assertIn("forward(input_ids, attention_mask, position_ids)", str(e.exception))


class ManifestTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def build(self, **kw):
        args = dict(source={"model_id": "Qwen/Qwen-Image-Edit-2511", "revision": "abc"},
                    versions={"torch": "2.6.0+cu124", "diffusers": "0.40.0"}, trace_device="cuda",
                    attention="sdpa", constants={"prompt_template_encode_start_idx": 64})
        args.update(kw)
        return manifest.build("qwen", "bfloat16", **args)

    def test_fields_the_runtime_checks(self):
        m = self.build(records={"transformer": {"verified": [{"case": "x", "max_abs_err": 0.0}]}},
                       unused_inputs={"transformer": ["modulate_index"]})
        self.assertEqual(m["format_version"], 3)
        self.assertEqual(m["producer"]["torch"], "2.6.0")
        self.assertEqual(m["producer"]["name"], "diffgentor export_bundle")
        self.assertFalse(m["dtype_convertible"])
        self.assertEqual(list(m["components"]), contract.component_names("qwen"))
        dit = m["components"]["transformer"]
        self.assertEqual(dit["verified"][0]["case"], "x")
        used = {t["name"]: t.get("used", True) for t in dit["methods"]["forward"]["inputs"]}
        self.assertFalse(used["modulate_index"])
        self.assertTrue(used["timestep"])
        self.assertEqual(m["constants"], {"prompt_template_encode_start_idx": 64})

    def test_optional_groups_are_listed_and_their_components_required(self):
        m = manifest.build("flux2", "float32", source={"model_id": "x", "revision": None},
                           versions={"torch": "2.11.0"}, trace_device="cpu", attention="sdpa",
                           optional=("upsampler",))
        self.assertEqual(m["optional"], ["upsampler"])
        self.assertIn("upsampler_vision", m["components"])
        ts = self.tmp / "torchscript"
        ts.mkdir()
        for name in ("text_encoder", "transformer", "vae_encoder", "vae_decoder"):
            (ts / f"{name}.pt").write_bytes(b"x")
        self.assertEqual(manifest.check_files(m, ts), ["component 'upsampler_vision': file "
                                                       "torchscript/upsampler_vision.pt does not exist"])
        plain = manifest.build("flux2", "float32", source={"model_id": "x", "revision": None},
                               versions={"torch": "2.11.0"}, trace_device="cpu", attention="sdpa")
        self.assertEqual((plain["optional"], manifest.check_files(plain, ts)), ([], []))

    def test_write_refuses_missing_component_files_then_writes_atomically(self):
        m = self.build()
        (self.tmp / "torchscript").mkdir()
        with self.assertRaises(contract.ContractError) as e:
            manifest.write(m, self.tmp)
        self.assertIn("vision_encoder", str(e.exception))
        for name in contract.component_names("qwen"):
            (self.tmp / "torchscript" / f"{name}.pt").write_bytes(b"x")
        path = manifest.write(m, self.tmp)
        self.assertEqual(json.loads(path.read_text()), m)
        self.assertEqual(sorted(p.name for p in (self.tmp / "torchscript").iterdir() if p.name.startswith(".")), [])

    def test_unknown_dtype(self):
        with self.assertRaises(contract.ContractError):
            manifest.build("qwen", "float64", source={}, versions={"torch": "2.6"}, trace_device="cpu",
                           attention="math")


if __name__ == "__main__":
    unittest.main()
