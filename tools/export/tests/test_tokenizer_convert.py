"""Tokenizer conversion against the published fast files in tests/data/tokenizers (DIFFGENTOR_TESTDATA)."""
import json
import os
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from diffgentor_export import tokenizer_convert as tc

TESTDATA = Path(os.environ.get("DIFFGENTOR_TESTDATA", Path(__file__).resolve().parents[3] / "tests/data"))
TOK = TESTDATA / "tokenizers"


class ConvertTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def reference(self, name):
        return json.loads((TOK / name / "tokenizer.json").read_text(encoding="utf-8"))

    def test_t5_from_spiece_model_equals_published_tokenizer_json(self):
        for f in ("spiece.model", "tokenizer_config.json"):
            shutil.copy(TOK / "t5" / f, self.tmp / f)
        self.assertEqual(tc.ensure_tokenizer_json(self.tmp), "converted by t5")
        got = json.loads((self.tmp / "tokenizer.json").read_text(encoding="utf-8"))
        self.assertEqual(got, self.reference("t5"))

    def test_spm_reader_fields(self):
        spm = tc.read_spm(TOK / "t5" / "spiece.model")
        self.assertEqual(len(spm["pieces"]), 32000)
        self.assertEqual((spm["trainer"]["unk_id"], spm["trainer"]["eos_id"], spm["trainer"]["pad_id"],
                          spm["trainer"]["bos_id"]), (2, 1, 0, -1))
        self.assertEqual([k for _, _, k in spm["pieces"][:3]], [3, 3, 2])  # <pad>, </s> CONTROL; <unk> UNKNOWN
        self.assertEqual(spm["pieces"][3][0], "\u2581")
        self.assertTrue(spm["normalizer"]["add_dummy_prefix"])

    def test_clip_from_vocab_and_merges_equals_published_tokenizer_json(self):
        for f in ("vocab.json", "merges.txt", "tokenizer_config.json"):
            shutil.copy(TOK / "clip" / f, self.tmp / f)
        self.assertEqual(tc.ensure_tokenizer_json(self.tmp), "converted by clip")
        got = json.loads((self.tmp / "tokenizer.json").read_text(encoding="utf-8"))
        self.assertEqual(got, self.reference("clip"))

    def test_qwen2_from_vocab_and_merges_round_trips(self):
        ref = self.reference("qwen2")
        (self.tmp / "vocab.json").write_text(json.dumps(ref["model"]["vocab"], ensure_ascii=False), encoding="utf-8")
        (self.tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(ref["model"]["merges"]) + "\n",
                                             encoding="utf-8")
        shutil.copy(TOK / "qwen2" / "tokenizer_config.json", self.tmp / "tokenizer_config.json")
        self.assertEqual(tc.ensure_tokenizer_json(self.tmp), "converted by qwen2")
        got = json.loads((self.tmp / "tokenizer.json").read_text(encoding="utf-8"))
        self.assertEqual(got, ref)

    def test_existing_tokenizer_json_is_kept(self):
        (self.tmp / "tokenizer.json").write_text("{}")
        self.assertEqual(tc.ensure_tokenizer_json(self.tmp), "kept")
        self.assertEqual((self.tmp / "tokenizer.json").read_text(), "{}")

    def test_unknown_class_is_refused_with_folder_and_class(self):
        (self.tmp / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
        with self.assertRaises(tc.ConversionError) as e:
            tc.ensure_tokenizer_json(self.tmp)
        self.assertIn("LlamaTokenizer", str(e.exception))
        self.assertIn(str(self.tmp), str(e.exception))

    def test_bad_merge_line_names_the_file(self):
        (self.tmp / "merges.txt").write_text("#version: 0.2\na b c\n")
        with self.assertRaises(tc.ConversionError) as e:
            tc.read_merges(self.tmp / "merges.txt")
        self.assertIn("merges.txt", str(e.exception))


if __name__ == "__main__":
    unittest.main()
