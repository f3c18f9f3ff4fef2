"""model_table.py and the type dispatch it replaces: snapshot.py maps pipeline classes to types with
src/models/model_table.json (the runtime's table), refuses the types it marks planned, and no generic module
of the exporter names a model type. Pure Python (no torch, no diffusers)."""
import json
import os
import re
import shutil
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from diffgentor_export import model_table, snapshot

PACKAGE = Path(__file__).resolve().parents[1] / "diffgentor_export"
# The modules that must not know any model type: everything in the package but the recipes (one record per
# type) and the model wrappers (one module per family).
GENERIC = sorted(PACKAGE.glob("*.py"))


class ModelTableTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def snap(self, cls: str) -> Path:
        (self.tmp / "snap").mkdir(exist_ok=True)
        (self.tmp / "snap" / "model_index.json").write_text(json.dumps({"_class_name": cls}))
        return self.tmp / "snap"

    def test_the_default_path_is_the_runtimes_table(self):
        with mock.patch.dict(os.environ, {}, clear=False):
            os.environ.pop("DIFFGENTOR_MODEL_TABLE", None)
            path = model_table.table_path()
        self.assertEqual(path, Path(__file__).resolve().parents[3] / "src" / "models" / "model_table.json")
        self.assertTrue(path.is_file())

    def test_every_rows_pipeline_class_maps_to_its_type_and_planned_rows_are_refused(self):
        # Every type of the shipped table is implemented; a planned row is added to a copy of it.
        doc = json.loads(model_table.table_path().read_text())
        doc["types"].append(dict(doc["types"][0], type="later", pipeline_class="LaterPipeline", status="planned"))
        table = self.tmp / "planned.json"
        table.write_text(json.dumps(doc))
        with mock.patch.dict(os.environ, {"DIFFGENTOR_MODEL_TABLE": str(table)}):
            self.check_rows(model_table.rows())

    def check_rows(self, rows):
        self.assertTrue(any(r["status"] == "implemented" for r in rows))
        self.assertTrue(any(r["status"] == "planned" for r in rows), "the table has no planned row to refuse")
        for row in rows:
            snap = self.snap(row["pipeline_class"])
            if row["status"] == "implemented":
                self.assertEqual(snapshot.model_type(snap), row["type"])
                self.assertEqual(snapshot.model_type(snap, row["type"]), row["type"])
                continue
            for requested in (None, row["type"]):
                with self.assertRaises(snapshot.SnapshotError) as e:
                    snapshot.model_type(snap, requested)
                self.assertIn(f"model type {row['type']} cannot be exported yet", str(e.exception))
                self.assertIn("planned", str(e.exception))

    def test_the_environment_overrides_the_table(self):
        doc = json.loads(model_table.table_path().read_text())
        doc["types"] = [dict(doc["types"][0], type="newtype", pipeline_class="NewEditPipeline"),
                        dict(doc["types"][0], type="later", pipeline_class="LaterPipeline", status="planned")]
        table = self.tmp / "table.json"
        table.write_text(json.dumps(doc))
        with mock.patch.dict(os.environ, {"DIFFGENTOR_MODEL_TABLE": str(table)}):
            self.assertEqual(model_table.implemented_types(), ["newtype"])
            self.assertEqual(snapshot.model_type(self.snap("NewEditPipeline")), "newtype")
            with self.assertRaises(snapshot.SnapshotError) as e:
                snapshot.model_type(self.snap("LaterPipeline"))
            self.assertIn("later cannot be exported yet", str(e.exception))
            with self.assertRaises(snapshot.SnapshotError) as e:  # a type the table does not have
                snapshot.model_type(self.snap("QwenImageEditPlusPipeline"))
            self.assertIn("QwenImageEditPlusPipeline", str(e.exception))

    def test_a_malformed_table_is_refused(self):
        doc = json.loads(model_table.table_path().read_text())
        table = self.tmp / "table.json"
        with mock.patch.dict(os.environ, {"DIFFGENTOR_MODEL_TABLE": str(table)}):
            for rows, message in (([dict(doc["types"][0], status="done")], "status 'done'"),
                                  ([doc["types"][0], doc["types"][0]], "repeated type"),
                                  ([dict(doc["types"][0], pipeline_class=None)], "no pipeline_class")):
                table.write_text(json.dumps(dict(doc, types=rows)))
                with self.assertRaises(model_table.ModelTableError) as e:
                    model_table.rows()
                self.assertIn(message, str(e.exception))
            table.unlink()
            with self.assertRaises(model_table.ModelTableError):
                model_table.rows()

    def test_no_generic_module_names_a_model_type(self):
        names = [r["type"] for r in model_table.rows()] + [r["pipeline_class"] for r in model_table.rows()]
        quoted = re.compile("|".join(rf"([\"']){re.escape(n)}\1" for n in names))
        self.assertIn(PACKAGE / "cli.py", GENERIC)
        for path in GENERIC:
            found = [m.group(0) for m in quoted.finditer(path.read_text(encoding="utf-8"))]
            self.assertEqual(found, [], f"{path.name} names model types; that belongs in a recipe")


if __name__ == "__main__":
    unittest.main()
