"""export_bundle end to end on the real diffusers and transformers classes: small FLUX.1-Kontext, FLUX.2-klein
and FLUX.2-dev pipelines, the last with its prompt upsampler (tools/parity/tiny_pipelines.py: seeded random
weights, shrunk configs, the real CLIP/T5/Qwen vocabularies) saved as hub snapshots inside a Hugging Face cache,
exported with the CLI, and the real `diffgentor edit --model_name <org>/<name>` finding the bundle through the
cache layout and running it. Every other exportable type is exported and compared stage by stage by the `parity`
test (docs/parity.md). Needs the pinned environment (tools/requirements.txt), DIFFGENTOR_BIN and
DIFFGENTOR_TESTDATA."""
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import ClassVar

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools" / "parity"))
import tiny_pipelines

HERE = Path(__file__).resolve().parent
EXPORT = HERE.parent
SOURCE = EXPORT.parents[1]
TESTDATA = Path(os.environ.get("DIFFGENTOR_TESTDATA", SOURCE / "tests" / "data"))
BIN = os.environ["DIFFGENTOR_BIN"]
REVISION = "0123456789abcdef0123456789abcdef01234567"


def hub_snapshot(cache: Path, repo: str) -> Path:
    """The folder huggingface_hub would download `repo` into, with refs/main naming it."""
    model_dir = cache / ("models--" + repo.replace("/", "--"))
    (model_dir / "refs").mkdir(parents=True, exist_ok=True)
    (model_dir / "refs" / "main").write_text(REVISION)
    return model_dir / "snapshots" / REVISION


class ExportEndToEnd:
    """One pipeline per subclass: `kind`, `repo`, `components`, `extra_args`, `cases` (checked cases per
    component, 3 unless named)."""
    kind = repo = None
    components = ()
    extra_args = ()
    cases: ClassVar[dict] = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="dg_export_"))
        cls.snap = hub_snapshot(cls.tmp / "downloads", cls.repo)
        cls.pipe = tiny_pipelines.BUILDERS[cls.kind](TESTDATA)
        tiny_pipelines.save(cls.pipe, cls.snap)
        # Where the runtime looks a hub id up: the bundle sits in a Hugging Face cache of its own.
        cls.cache = cls.tmp / "hub"
        cls.bundle = hub_snapshot(cls.cache, cls.repo)
        cls.export_run = cls.export(*cls.extra_args)

    @classmethod
    def export(cls, *extra):
        """Through the product's front end, `diffgentor export`, told to use this environment's Python."""
        env = dict(os.environ, DG_PYTHON=sys.executable)
        return subprocess.run([BIN, "export", "--model", str(cls.snap), "--out", str(cls.bundle), "--dtype", "float32",
                               "--device", "cpu", *extra], capture_output=True, text=True, env=env)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def edit(self, out: Path, *extra, env_extra=None, rows="0,2"):
        """`diffgentor edit --model_name <repo>` on examples/edit.csv; returns the run and results.csv by index."""
        env = {k: v for k, v in os.environ.items() if k not in ("DG_MODEL_ROOT", "DG_FLUX2_ENHANCER_MODE")}
        env.update(HF_HUB_CACHE=str(self.cache), **(env_extra or {}))
        run = subprocess.run([BIN, "edit", "--backend", "diffusers", "--model_name", self.repo, "--device", "cpu",
                              "--torch_dtype", "float32", "--input", str(SOURCE / "examples" / "edit.csv"),
                              "--output_dir", str(out), "--output_name_column", "output_name",
                              "--num_inference_steps", "2", "--filter_rows", rows, *extra],
                             capture_output=True, text=True, env=env)
        rows_by_index = {}
        if (out / "results.csv").is_file():
            with open(out / "results.csv") as f:
                rows_by_index = {r["index"]: r for r in csv.DictReader(f)}
        return run, rows_by_index

    def manifest(self):
        return json.loads((self.bundle / "torchscript" / "manifest.json").read_text())

    def test_export_writes_a_checked_bundle(self):
        run = self.export_run
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn(f"diffgentor export: {sys.executable} ", run.stderr)  # the command it ran, then the exporter's
        self.assertIn(f"/tools/export/export_bundle --model {self.snap} --out {self.bundle}", run.stderr)
        self.assertFalse(self.bundle.with_name(self.bundle.name + ".partial").exists())
        self.assertFalse(list(self.bundle.rglob("*.safetensors")))
        m = self.manifest()
        self.assertEqual((m["model_type"], m["dtype"], m["producer"]["torch"]),
                         (self.kind, "float32", torch.__version__.split("+")[0]))
        self.assertEqual(m["source"], {"model_id": str(self.snap), "revision": REVISION})
        self.assertEqual(list(m["components"]), list(self.components))
        for name, entry in m["components"].items():
            self.assertEqual(len(entry["verified"]), self.cases.get(name, 3), name)
            self.assertTrue(all(v["rel_err"] <= 1e-5 for v in entry["verified"]), (name, entry["verified"]))
            self.assertIn("aten::_convolution" if name.startswith("vae") else "aten::linear", entry["required_ops"])
            self.assertTrue((self.bundle / "torchscript" / entry["file"]).is_file())

    def test_diffgentor_finds_the_bundle_by_hub_id_and_runs_it(self):
        self.assertEqual(self.export_run.returncode, 0, self.export_run.stderr)
        out = self.tmp / "out"
        run, rows = self.edit(out)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn(str(self.bundle), run.stdout + run.stderr)
        self.assertEqual(sorted(rows), ["0", "2"])
        for r in rows.values():
            self.assertTrue((out / r["output_image"]).is_file())

    def test_an_existing_bundle_is_not_overwritten_without_the_flag(self):
        self.assertEqual(self.export_run.returncode, 0, self.export_run.stderr)
        run = self.export(*self.extra_args)
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("exists and is not empty (pass --overwrite", run.stderr)


class KontextTest(ExportEndToEnd, unittest.TestCase):
    kind, repo = "flux1_kontext", "dg-test/FLUX.1-Kontext-tiny"
    components = ("text_encoder", "text_encoder_2", "transformer", "vae_encoder", "vae_decoder")

    def test_a_lora_saved_by_diffusers_merges_and_is_recorded(self):
        """`diffgentor edit --lora` with a file FluxKontextPipeline.save_lora_weights wrote (a PEFT adapter on the
        attention projections): merged at load, logged, recorded, and it changes the image. Its numbers against
        diffusers' fuse_lora are the parity test's (docs/lora.md)."""
        from peft import LoraConfig
        from peft.utils import get_peft_model_state_dict
        self.assertEqual(self.export_run.returncode, 0, self.export_run.stderr)
        torch.manual_seed(3)
        config = LoraConfig(r=2, lora_alpha=4, target_modules=["to_q", "to_k", "to_v"], init_lora_weights=False)
        self.pipe.transformer.add_adapter(config, adapter_name="t")
        layers = get_peft_model_state_dict(self.pipe.transformer, adapter_name="t")
        self.pipe.transformer.delete_adapters("t")
        type(self.pipe).save_lora_weights(self.tmp / "lora", transformer_lora_layers=layers,
                                          transformer_lora_adapter_metadata=config.to_dict())
        lora = self.tmp / "lora" / "pytorch_lora_weights.safetensors"
        plain_out, lora_out = self.tmp / "plain", self.tmp / "with_lora"
        plain, _ = self.edit(plain_out, "--seed", "1", rows="0")
        run, rows = self.edit(lora_out, "--seed", "1", "--lora", f"{lora}:0.5", rows="0")
        self.assertEqual((plain.returncode, run.returncode), (0, 0), plain.stderr + run.stderr)
        self.assertIn(f"LoRA {lora}: {len(layers) // 2} layers merged into the transformer at scale 0.5", run.stderr)
        self.assertEqual(rows["0"]["loras"], f"{lora}:0.5")
        name = rows["0"]["output_image"]
        self.assertNotEqual((plain_out / name).read_bytes(), (lora_out / name).read_bytes())
        # --attention_backend on exported graphs, which call scaled_dot_product_attention: the kernel is restricted.
        math, _ = self.edit(self.tmp / "math", "--seed", "1", "--attention_backend", "math", rows="0")
        self.assertEqual(math.returncode, 0, math.stderr)
        self.assertIn("attention: scaled_dot_product_attention runs only its math kernel, in ", math.stderr)
        self.assertIn("transformer", math.stderr.split("runs only its math kernel, in ")[1].splitlines()[0])
        # Another LoRA set on the same folder: resume refuses to mix the two.
        again, _ = self.edit(lora_out, "--seed", "1", "--lora", f"{lora}:0.25", rows="0")
        self.assertEqual(again.returncode, 3, again.stderr)
        self.assertIn(f"loras '{lora}:0.5' -> '{lora}:0.25'", again.stderr)


class KleinTest(ExportEndToEnd, unittest.TestCase):
    kind, repo = "flux2_klein", "dg-test/FLUX.2-klein-tiny"
    components = ("text_encoder", "transformer", "vae_encoder", "vae_decoder")
    extra_args = ("--text_encoder_out_layers", "1,2,3")

    def test_constants_the_runtime_reads(self):
        m = self.manifest()
        self.assertEqual(m["constants"]["text_encoder_out_layers"], [1, 2, 3])
        self.assertEqual(len(m["constants"]["vae_bn_running_mean"]), 128)
        self.assertTrue(all(v > 0 for v in m["constants"]["vae_bn_running_var"]))
        # the stacked encoder stores the three layers it runs, not the real encoder's fourth
        te = torch.jit.load(str(self.bundle / "torchscript" / "text_encoder.pt"))
        self.assertEqual(len(list(te.lm.layers.children())), 3)


class Flux2UpsamplerTest(ExportEndToEnd, unittest.TestCase):
    """FLUX.2-dev exported --with_upsampler, and --prompt_enhance_type flux2 in its default mode (no
    DG_FLUX2_ENHANCER_MODE) rewriting every row with the bundle's own Mistral."""
    kind, repo = "flux2", "dg-test/FLUX.2-dev-tiny"
    components = ("text_encoder", "upsampler_vision", "transformer", "vae_encoder", "vae_decoder")
    extra_args = ("--text_encoder_out_layers", "1,2,3", "--with_upsampler")
    cases: ClassVar[dict] = {"text_encoder": 9}  # forward x3, prefill x3, decode x3

    def test_the_manifest_lists_the_upsampler(self):
        m = self.manifest()
        self.assertEqual(m["optional"], ["upsampler"])
        self.assertEqual(list(m["components"]["text_encoder"]["methods"]), ["forward", "prefill", "decode"])
        up = m["constants"]["upsampler"]
        self.assertEqual((up["patch_size"], up["spatial_merge_size"], up["max_new_tokens"], up["temperature"]),
                         (14, 2, 512, 0.15))
        self.assertTrue(up["system_i2i"].startswith("You are FLUX.2 by Black Forest Labs"))

    def test_default_mode_upsamples_every_row_seeded(self):
        self.assertEqual(self.export_run.returncode, 0, self.export_run.stderr)
        env = {"DG_FLUX2_UPSAMPLE_MAX_TOKENS": "24"}
        runs = []
        for name in ("a", "b"):
            run, rows = self.edit(self.tmp / f"up_{name}", "--prompt_enhance_type", "flux2", "--seed", "42",
                                  env_extra=env)
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertIn("prompt upsampling: FLUX.2's own Mistral", run.stdout + run.stderr)
            self.assertEqual(sorted(rows), ["0", "2"])
            runs.append(rows)
        with open(SOURCE / "examples" / "edit.csv") as f:
            given = {str(k): r["instruction"] for k, r in enumerate(csv.DictReader(f))}
        for index, r in runs[0].items():
            self.assertEqual(r["enhance_status"], "ok", r)
            self.assertNotEqual(r["instruction_enhanced"], given[index])
            self.assertGreater(float(r["time_enhance_s"]), 0.0)
            counters = json.loads(r["counters"])
            self.assertGreater(counters["upsample_new_tokens"], 0)
            self.assertLessEqual(counters["upsample_new_tokens"], 24)
            self.assertIn("upsample", json.loads(r["stage_times"]))
            # seeded per row: a second run rewrites each row the same way
            self.assertEqual(r["instruction_enhanced"], runs[1][index]["instruction_enhanced"])
        self.assertNotEqual(runs[0]["0"]["instruction_enhanced"], runs[0]["2"]["instruction_enhanced"])

    def test_a_bundle_without_the_upsampler_stops_at_start_up(self):
        self.assertEqual(self.export_run.returncode, 0, self.export_run.stderr)
        plain = self.tmp / "plain"
        shutil.copytree(self.bundle, plain)
        m = json.loads((plain / "torchscript" / "manifest.json").read_text())
        m["optional"] = []  # what an export without --with_upsampler lists
        (plain / "torchscript" / "manifest.json").write_text(json.dumps(m))
        run = subprocess.run([BIN, "edit", "--model_name", str(plain), "--device", "cpu", "--torch_dtype", "float32",
                              "--input", str(SOURCE / "examples" / "edit.csv"), "--output_dir",
                              str(self.tmp / "plain_out"), "--prompt_enhance_type", "flux2"],
                             capture_output=True, text=True)
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("export_bundle --with_upsampler", run.stderr)
        self.assertFalse((self.tmp / "plain_out" / "results.csv").exists())
        # --dry_run names the same stop, and for the bundle with the upsampler the enhancer it will run
        dry = [BIN, "edit", "--device", "cpu", "--torch_dtype", "float32", "--input",
               str(SOURCE / "examples" / "edit.csv"), "--output_dir", str(self.tmp / "dry"), "--prompt_enhance_type",
               "flux2", "--dry_run", "--model_name"]
        run = subprocess.run([*dry, str(plain)], capture_output=True, text=True)
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("export_bundle --with_upsampler", run.stdout)
        run = subprocess.run([*dry, str(self.bundle)], capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("flux2 with the bundle's own Mistral", run.stdout)


if __name__ == "__main__":
    unittest.main()
