"""The runtime opens what the exporter writes: a make-tiny bundle whose components pass `check_module` and
whose manifest is rewritten by manifest.py runs through `diffgentor edit`; a producer torch newer than the
runtime's libtorch and a dtype mismatch are refused with the messages docs/exporting.md promises.
Needs DIFFGENTOR_BIN (set by CTest) and torch."""
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from diffgentor_export import contract, manifest

BIN = os.environ["DIFFGENTOR_BIN"]
SOURCE = Path(__file__).resolve().parents[3]


class RuntimeAcceptsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp())
        cls.bundle = cls.tmp / "bundle"
        run = subprocess.run([BIN, "make-tiny", "--model_type", "qwen", "--out", str(cls.bundle)],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        ts = cls.bundle / "torchscript"
        for name in contract.component_names("qwen"):  # the schema check on real TorchScript files
            contract.check_module(torch.jit.load(str(ts / f"{name}.pt")), "qwen", name)
        cls.constants = __import__("json").loads((ts / "manifest.json").read_text())["constants"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def rewrite(self, torch_version):
        m = manifest.build("qwen", "float32", source={"model_id": "tiny"}, versions={"torch": torch_version},
                           trace_device="cpu", attention="math", constants=self.constants)
        manifest.write(m, self.bundle)

    def edit(self, out, dtype):
        return subprocess.run([BIN, "edit", "--backend", "diffusers", "--model_name", str(self.bundle), "--model_type",
                               "qwen", "--input", str(SOURCE / "examples" / "edit.csv"), "--output_dir", str(out),
                               "--output_name_column", "output_name", "--num_inference_steps", "2", "--torch_dtype",
                               dtype, "--filter_rows", "0"], capture_output=True, text=True)

    def test_exported_manifest_runs(self):
        self.rewrite(torch.__version__)
        run = self.edit(self.tmp / "ok", "float32")
        self.assertEqual(run.returncode, 0, run.stderr)
        rows = list(csv.DictReader(open(self.tmp / "ok" / "results.csv")))
        self.assertEqual([(r["index"], r["effective_width"]) for r in rows], [("0", "1248")])
        self.assertTrue((self.tmp / "ok" / rows[0]["output_image"]).is_file())

    def test_dtype_mismatch_and_newer_torch_are_refused(self):
        self.rewrite(torch.__version__)
        run = self.edit(self.tmp / "bf16", "bfloat16")
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("exported in float32", run.stderr + run.stdout)
        self.rewrite("99.1.0")
        run = self.edit(self.tmp / "new", "float32")
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("written by torch 99.1.0", run.stderr + run.stdout)


if __name__ == "__main__":
    unittest.main()
