"""export_bundle end to end without diffusers: a FLUX.1-Kontext snapshot laid out as on the hub (configs,
slow CLIP and T5 tokenizer files, a weights file) whose classes are the stand-ins in tests/fake_upstream/;
the real exporter copies, converts the tokenizers, traces, checks three cases per component against the
stand-ins called their own way, writes the manifest, and the real `diffgentor edit` runs the bundle.
Needs torch, DIFFGENTOR_BIN and the tokenizer test data."""
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

try:
    import torch
except ImportError:
    torch = None

HERE = Path(__file__).resolve().parent
EXPORT = HERE.parent
SOURCE = EXPORT.parents[1]
TOK = Path(os.environ.get("DIFFGENTOR_TESTDATA", SOURCE.parent / "shared" / "testdata")) / "tokenizers"
BIN = os.environ.get("DIFFGENTOR_BIN", "")

# Runs the real CLI with the stand-in packages first on the path; the version check is what it cannot pass
# with Debian's torch 1.13, so it reports that torch with the stand-ins' versions.
DRIVER = """
import sys, torch
sys.path[:0] = [{fake!r}, {export!r}]
from diffgentor_export import cli
cli.require_stack = lambda: {{"torch": torch.__version__, "diffusers": "stand-in", "transformers": "4.57.0"}}
sys.exit(cli.main(sys.argv[1:]))
"""


def write_json(path: Path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def kontext_snapshot(snap: Path):
    write_json(snap / "model_index.json", {
        "_class_name": "FluxKontextPipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "T5TokenizerFast"],
        "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]})
    write_json(snap / "transformer" / "config.json", {"in_channels": 64, "guidance_embeds": True})
    write_json(snap / "vae" / "config.json", {"scaling_factor": 0.3611, "shift_factor": 0.1159, "latent_channels": 16})
    write_json(snap / "text_encoder" / "config.json", {"model_type": "clip_text_model"})
    write_json(snap / "text_encoder_2" / "config.json", {"model_type": "t5"})
    for folder, name, files in (("tokenizer", "clip", ("vocab.json", "merges.txt", "tokenizer_config.json")),
                                ("tokenizer_2", "t5", ("spiece.model", "tokenizer_config.json",
                                                       "special_tokens_map.json"))):
        (snap / folder).mkdir()
        for f in files:
            shutil.copy(TOK / name / f, snap / folder / f)


def klein_snapshot(snap: Path):
    write_json(snap / "model_index.json", {
        "_class_name": "Flux2KleinPipeline", "is_distilled": False,
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"], "text_encoder": ["transformers", "Qwen3ForCausalLM"],
        "tokenizer": ["transformers", "Qwen2TokenizerFast"], "transformer": ["diffusers", "Flux2Transformer2DModel"],
        "vae": ["diffusers", "AutoencoderKLFlux2"]})
    write_json(snap / "transformer" / "config.json", {"in_channels": 128, "guidance_embeds": False})
    write_json(snap / "vae" / "config.json", {"batch_norm_eps": 1e-4, "latent_channels": 32})
    write_json(snap / "text_encoder" / "config.json", {"model_type": "qwen3"})
    (snap / "tokenizer").mkdir()
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TOK / "qwen3" / f, snap / "tokenizer" / f)


def qwen_snapshot(snap: Path):
    write_json(snap / "model_index.json", {
        "_class_name": "QwenImageEditPlusPipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "Qwen2_5_VLForConditionalGeneration"],
        "tokenizer": ["transformers", "Qwen2Tokenizer"], "processor": ["transformers", "Qwen2VLProcessor"],
        "transformer": ["diffusers", "QwenImageTransformer2DModel"], "vae": ["diffusers", "AutoencoderKLQwenImage"]})
    write_json(snap / "scheduler" / "scheduler_config.json", {
        "shift": 1.0, "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 0.9, "base_image_seq_len": 256,
        "max_image_seq_len": 8192, "shift_terminal": 0.02})
    write_json(snap / "transformer" / "config.json", {"axes_dims_rope": [4, 6, 6], "zero_cond_t": True})
    write_json(snap / "vae" / "config.json", {"latents_mean": [0.1 * k - 0.8 for k in range(16)],
                                              "latents_std": [0.5 + 0.05 * k for k in range(16)]})
    write_json(snap / "text_encoder" / "config.json", {"image_token_id": 151655, "vision_start_token_id": 151652,
                                                       "vision_config": {"window_size": 112}})
    write_json(snap / "processor" / "preprocessor_config.json", {
        "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2, "min_pixels": 3136, "max_pixels": 12845056})
    # The hub's Qwen tokenizer folders hold the slow files: vocab.json and merges.txt (from the test tokenizer).
    fast = json.loads((TOK / "qwen2" / "tokenizer.json").read_text(encoding="utf-8"))
    write_json(snap / "tokenizer" / "vocab.json", fast["model"]["vocab"])
    (snap / "tokenizer" / "merges.txt").write_text("#version: 0.2\n" + "\n".join(fast["model"]["merges"]) + "\n",
                                                   encoding="utf-8")
    shutil.copy(TOK / "qwen2" / "tokenizer_config.json", snap / "tokenizer" / "tokenizer_config.json")


def longcat_snapshot(snap: Path):
    qwen_snapshot(snap)  # the same Qwen2.5-VL text encoder, tokenizer and processor geometry
    write_json(snap / "model_index.json", {
        "_class_name": "LongCatImageEditPipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "Qwen2_5_VLForConditionalGeneration"],
        "tokenizer": ["transformers", "Qwen2Tokenizer"], "text_processor": ["transformers", "Qwen2VLProcessor"],
        "transformer": ["diffusers", "LongCatImageTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]})
    (snap / "processor").rename(snap / "text_processor")
    write_json(snap / "transformer" / "config.json", {"in_channels": 64})
    write_json(snap / "vae" / "config.json", {"scaling_factor": 0.3611, "shift_factor": 0.1159, "latent_channels": 16})


def flux2_snapshot(snap: Path):
    klein_snapshot(snap)
    write_json(snap / "model_index.json", {
        "_class_name": "Flux2Pipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "Mistral3ForConditionalGeneration"],
        "tokenizer": ["transformers", "PixtralProcessor"], "transformer": ["diffusers", "Flux2DevTransformer"],
        "vae": ["diffusers", "AutoencoderKLFlux2"]})
    write_json(snap / "transformer" / "config.json", {"in_channels": 128, "guidance_embeds": True})


@unittest.skipUnless(torch is not None and BIN and Path(BIN).is_file() and (TOK / "t5" / "spiece.model").is_file(),
                     "needs torch, DIFFGENTOR_BIN and the tokenizer test data")
class ExportEndToEnd:
    """One snapshot per subclass: `kind`, `make` (writes the snapshot), `components`, `extra_args`."""
    kind = make = None
    components = ()
    extra_args = ()
    tokenizers = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp())
        snap = cls.tmp / "snapshot"
        write_json(snap / "scheduler" / "scheduler_config.json", {
            "shift": 3.0, "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15,
            "base_image_seq_len": 256, "max_image_seq_len": 4096})
        cls.make(snap)  # may replace the scheduler config
        (snap / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"not copied")
        cls.snap, cls.bundle = snap, cls.tmp / "bundle"
        cls.export_run = cls.export(*cls.extra_args)

    @classmethod
    def export(cls, *extra):
        driver = DRIVER.format(fake=str(HERE / "fake_upstream"), export=str(EXPORT))
        return subprocess.run([sys.executable, "-c", driver, "--model", str(cls.snap), "--out", str(cls.bundle),
                               "--dtype", "float32", "--device", "cpu", *extra], capture_output=True, text=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def manifest(self):
        return json.loads((self.bundle / "torchscript" / "manifest.json").read_text())

    def test_export_writes_a_checked_bundle(self):
        run = self.export_run
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        for folder, what in self.tokenizers.items():
            self.assertIn(f"tokenizer {folder}: {what}", run.stdout)
        self.assertFalse(self.bundle.with_name(self.bundle.name + ".partial").exists())
        self.assertFalse(list(self.bundle.rglob("*.safetensors")))
        m = self.manifest()
        self.assertEqual((m["model_type"], m["dtype"], m["producer"]["torch"]),
                         (self.kind, "float32", torch.__version__.split("+")[0]))
        self.assertEqual(m["source"]["model_id"], str(self.snap))
        self.assertEqual(list(m["components"]), list(self.components))
        for name, entry in m["components"].items():
            self.assertEqual(len(entry["verified"]), 3, name)
            self.assertTrue(all(v["rel_err"] <= 1e-5 for v in entry["verified"]), (name, entry["verified"]))
            self.assertIn("aten::_convolution" if name.startswith("vae") else "aten::linear", entry["required_ops"])
            self.assertTrue((self.bundle / "torchscript" / entry["file"]).is_file())

    def test_diffgentor_runs_the_exported_bundle(self):
        self.assertEqual(self.export_run.returncode, 0, self.export_run.stderr)
        out = self.tmp / "out"
        run = subprocess.run([BIN, "edit", "--backend", "diffusers", "--model_name", str(self.bundle), "--model_type",
                              self.kind, "--torch_dtype", "float32", "--input", str(SOURCE / "examples" / "edit.csv"),
                              "--output_dir", str(out), "--output_name_column", "output_name",
                              "--num_inference_steps", "2", "--filter_rows", "0,2"], capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stderr)
        with open(out / "results.csv") as f:
            rows = {r["index"]: r for r in csv.DictReader(f)}
        self.assertEqual(sorted(rows), ["0", "2"])
        for r in rows.values():
            self.assertTrue((out / r["output_image"]).is_file())

    def test_an_existing_bundle_is_not_overwritten_without_the_flag(self):
        self.assertEqual(self.export_run.returncode, 0, self.export_run.stderr)
        run = self.export(*self.extra_args)
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("exists and is not empty (pass --overwrite", run.stderr)


class KontextTest(ExportEndToEnd, unittest.TestCase):
    kind, make = "flux1_kontext", staticmethod(kontext_snapshot)
    components = ("text_encoder", "text_encoder_2", "transformer", "vae_encoder", "vae_decoder")
    tokenizers = {"tokenizer": "converted by clip", "tokenizer_2": "converted by t5"}


class KleinTest(ExportEndToEnd, unittest.TestCase):
    kind, make = "flux2_klein", staticmethod(klein_snapshot)
    components = ("text_encoder", "transformer", "vae_encoder", "vae_decoder")
    extra_args = ("--text_encoder_out_layers", "1,2,3")
    tokenizers = {"tokenizer": "kept"}

    def test_constants_the_runtime_reads(self):
        m = self.manifest()
        self.assertEqual(m["constants"]["text_encoder_out_layers"], [1, 2, 3])
        self.assertEqual(len(m["constants"]["vae_bn_running_mean"]), 128)
        self.assertTrue(all(v > 0 for v in m["constants"]["vae_bn_running_var"]))
        # the stacked encoder stores the three layers it runs, not the stand-in's fourth
        te = torch.jit.load(str(self.bundle / "torchscript" / "text_encoder.pt"))
        self.assertEqual(len(list(te.lm.layers.children())), 3)


class QwenTest(ExportEndToEnd, unittest.TestCase):
    """The stand-ins compute as upstream does (windowed cu_seqlens vision attention, get_rope_index, RoPE from
    img_shapes); the wrappers' masked, processor-order and table-driven versions must agree with them."""
    kind, make = "qwen", staticmethod(qwen_snapshot)
    components = ("vision_encoder", "text_encoder", "transformer", "vae_encoder", "vae_decoder")
    extra_args = ("--attention", "math")  # Debian's torch 1.13 has no scaled_dot_product_attention
    tokenizers = {"tokenizer": "converted by qwen2"}

    def test_qwen_constants(self):
        self.assertEqual(self.manifest()["constants"], {"prompt_template_encode_start_idx": 64})


class LongCatTest(ExportEndToEnd, unittest.TestCase):
    kind, make = "longcat", staticmethod(longcat_snapshot)
    components = ("vision_encoder", "text_encoder", "transformer", "vae_encoder", "vae_decoder")
    extra_args = ("--attention", "math")
    tokenizers = {"tokenizer": "converted by qwen2"}


class Flux2Test(ExportEndToEnd, unittest.TestCase):
    kind, make = "flux2", staticmethod(flux2_snapshot)
    components = ("text_encoder", "transformer", "vae_encoder", "vae_decoder")
    extra_args = ("--text_encoder_out_layers", "1,2,3")
    tokenizers = {"tokenizer": "kept"}


if __name__ == "__main__":
    unittest.main()
