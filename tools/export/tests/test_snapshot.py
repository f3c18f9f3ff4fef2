"""snapshot.py and the CLI's refusals, on a fake diffusers snapshot (no diffusers needed)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from diffgentor_export import snapshot

TOK = Path(os.environ.get("DIFFGENTOR_TESTDATA", Path(__file__).resolve().parents[3] / "tests/data")) / "tokenizers"
TOOL = Path(__file__).resolve().parents[1] / "export_bundle"


class SnapshotTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())
        self.snap = self.tmp / "hub" / "snapshots" / ("ab" * 20)
        self.snap.mkdir(parents=True)
        self.write("model_index.json", {"_class_name": "QwenImageEditPlusPipeline",
                                        "vae": ["diffusers", "AutoencoderKLQwenImage"]})
        for sub in ("transformer", "vae", "text_encoder"):
            self.write(f"{sub}/config.json", {"x": 1})
            (self.snap / sub / "diffusion_pytorch_model.safetensors").write_bytes(b"weights")
        self.write("transformer/diffusion_pytorch_model.safetensors.index.json", {"weight_map": {}})
        self.write("scheduler/scheduler_config.json", {"shift": 1.0})
        self.write("processor/preprocessor_config.json", {"patch_size": 14})
        (self.snap / ".cache").mkdir()
        (self.snap / ".cache" / "x").write_text("hub bookkeeping")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def write(self, rel, obj):
        path = self.snap / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj))

    def test_type_from_the_pipeline_class(self):
        self.assertEqual(snapshot.model_type(self.snap), "qwen")
        self.assertEqual(snapshot.model_type(self.snap, "qwen"), "qwen")
        with self.assertRaises(snapshot.SnapshotError) as e:
            snapshot.model_type(self.snap, "flux2")
        self.assertIn("QwenImageEditPlusPipeline", str(e.exception))
        self.write("model_index.json", {"_class_name": "GlmImagePipeline"})
        self.assertEqual(snapshot.model_type(self.snap), "glm_image")
        self.write("model_index.json", {"_class_name": "StableDiffusionXLPipeline"})
        with self.assertRaises(snapshot.SnapshotError) as e:
            snapshot.model_type(self.snap)
        self.assertIn("StableDiffusionXLPipeline", str(e.exception))
        with self.assertRaises(snapshot.SnapshotError):
            snapshot.model_type(self.tmp)  # no model_index.json

    def test_revision_from_the_hub_cache_path(self):
        self.assertEqual(snapshot.revision_of(self.snap), "ab" * 20)
        self.assertIsNone(snapshot.revision_of(self.tmp))

    def test_copies_everything_but_weights(self):
        out = self.tmp / "bundle"
        copied = snapshot.copy_non_weights(self.snap, out)
        self.assertIn("transformer/config.json", copied)
        self.assertIn("processor/preprocessor_config.json", copied)
        self.assertFalse(any(p.endswith((".safetensors", ".index.json")) or p.startswith(".cache") for p in copied))
        # the files every type needs; each type's own (its recipe's runtime_files) are checked per type in
        # test_recipes.py, which has torch
        self.assertEqual(snapshot.check_runtime_files(out, ["transformer", "vae", "text_encoder"],
                                                      ["processor/preprocessor_config.json"]),
                         ["tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json"])
        self.assertIn("text_processor/preprocessor_config.json",
                      snapshot.check_runtime_files(out, ["transformer"], ["text_processor/preprocessor_config.json"]))

    def test_a_nested_processor_config_is_split_into_the_layout_the_runtime_reads(self):
        out = self.tmp / "bundle"
        (out / "processor").mkdir(parents=True)
        (out / "text_processor").mkdir()
        nested = {"image_processor": {"size": {"shortest_edge": 3136, "longest_edge": 1003520}, "patch_size": 14},
                  "processor_class": "Qwen2VLProcessor"}
        (out / "processor" / "processor_config.json").write_text(json.dumps(nested))
        (out / "text_processor" / "processor_config.json").write_text(json.dumps(nested))
        (out / "text_processor" / "preprocessor_config.json").write_text('{"kept": true}')
        self.assertEqual(snapshot.split_processor_configs(out), ["processor"])
        self.assertEqual(json.loads((out / "processor" / "preprocessor_config.json").read_text()),
                         nested["image_processor"])
        self.assertEqual(json.loads((out / "text_processor" / "preprocessor_config.json").read_text()), {"kept": True})

    def test_tokenizer_folders_get_a_tokenizer_json(self):
        for f in ("vocab.json", "merges.txt", "tokenizer_config.json"):
            (self.snap / "tokenizer").mkdir(exist_ok=True)
            shutil.copy(TOK / "clip" / f, self.snap / "tokenizer" / f)
        out = self.tmp / "bundle"
        snapshot.copy_non_weights(self.snap, out)
        self.assertEqual(snapshot.ensure_tokenizers(out), {"tokenizer": "converted by clip"})
        self.assertTrue((out / "tokenizer" / "tokenizer.json").is_file())
        self.assertEqual(snapshot.ensure_tokenizers(out), {"tokenizer": "kept"})

    def test_cli_refuses_a_snapshot_without_a_component_in_one_line(self):
        run = subprocess.run([sys.executable, str(TOOL), "--model", str(self.snap), "--out", str(self.tmp / "o"),
                              "--device", "cpu", "--dtype", "float32"], capture_output=True, text=True)
        self.assertNotEqual(run.returncode, 0)
        self.assertRegex(run.stderr, r"^export_bundle: .*model_index.json has no component 'text_encoder'\n$")
        self.assertNotIn("Traceback", run.stderr)
        self.assertFalse((self.tmp / "o").exists())
        self.assertFalse((self.tmp / "o.partial").exists())

    def test_cli_refuses_the_upsampler_for_a_type_without_one(self):
        run = subprocess.run([sys.executable, str(TOOL), "--model", str(self.snap), "--out", str(self.tmp / "o"),
                              "--device", "cpu", "--dtype", "float32", "--with_upsampler"],
                             capture_output=True, text=True)
        self.assertNotEqual(run.returncode, 0)
        self.assertRegex(run.stderr, r"^export_bundle: --with_upsampler: model type qwen has no prompt upsampler")
        self.assertNotIn("Traceback", run.stderr)
        self.assertFalse((self.tmp / "o.partial").exists())


if __name__ == "__main__":
    unittest.main()
