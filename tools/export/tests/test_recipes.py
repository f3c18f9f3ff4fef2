"""The recipe registry against the model table: exactly one recipe per implemented type of
src/models/model_table.json and none for a planned one, each recipe's own runtime files, options and
constants, and the parity harness's per-type builders covering the same types."""
import argparse
import shutil
import sys
import tempfile
import unittest
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "parity"))
import parity
import tiny_pipelines
from diffgentor_export import model_table, recipes, snapshot


def cli_args(**kw):
    return argparse.Namespace(**{"text_encoder_out_layers": None, **kw})


class RecipeRegistryTest(unittest.TestCase):
    def test_one_recipe_per_implemented_type_and_none_for_planned(self):
        implemented = model_table.implemented_types()
        self.assertEqual(sorted(recipes.RECIPES), sorted(implemented))
        for row in model_table.rows():
            if row["status"] != "implemented":
                self.assertNotIn(row["type"], recipes.RECIPES)
                with self.assertRaises(ValueError) as e:
                    recipes.recipe(row["type"])
                self.assertIn("cannot be exported yet", str(e.exception))
        for kind, recipe in recipes.RECIPES.items():
            self.assertIsInstance(recipe, recipes.Recipe)
            self.assertEqual(recipe.model_type, kind)
            self.assertIs(recipes.recipe(kind), recipe)

    def test_a_second_recipe_for_a_type_is_refused(self):
        before = dict(recipes.RECIPES)
        with self.assertRaises(ValueError) as e:
            recipes.register(recipes.Recipe("qwen", lambda ctx, configs: []))
        self.assertIn("two exporter recipes", str(e.exception))
        self.assertEqual(recipes.RECIPES, before)

    def test_the_parity_harness_covers_the_same_types(self):
        implemented = model_table.implemented_types()
        self.assertEqual(sorted(tiny_pipelines.BUILDERS), sorted(implemented))
        self.assertEqual(tiny_pipelines.missing_builders([*implemented, "newtype"]), ["newtype"])
        self.assertEqual(sorted(parity.CASES), sorted(implemented))
        with self.assertRaises(KeyError) as e:
            tiny_pipelines.builder("newtype")
        self.assertIn("no tiny pipeline builder for model type newtype", str(e.exception))


class RecipeRecordTest(unittest.TestCase):
    def setUp(self):
        self.out = Path(tempfile.mkdtemp())
        for rel in ("model_index.json", "scheduler/scheduler_config.json", "transformer/config.json",
                    "vae/config.json", "text_encoder/config.json", "processor/preprocessor_config.json"):
            (self.out / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.out / rel).write_text("{}")

    def tearDown(self):
        shutil.rmtree(self.out)

    def missing(self, kind, subfolders):
        recipe = recipes.RECIPES[kind]
        return snapshot.check_runtime_files(self.out, subfolders, recipe.runtime_files, tokenizer=recipe.tokenizer)

    def test_runtime_files_per_type(self):
        self.assertEqual(self.missing("qwen", ["transformer", "vae", "text_encoder"]),
                         ["tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json"])
        self.assertEqual(self.missing("qwen_singleimg", ["transformer"]), self.missing("qwen", ["transformer"]))
        self.assertIn("text_processor/preprocessor_config.json", self.missing("longcat", ["transformer"]))
        self.assertIn("tokenizer_2/tokenizer_config.json", self.missing("flux1_kontext", ["transformer"]))
        self.assertIn("text_encoder_2/config.json", self.missing("flux1_kontext", ["text_encoder_2"]))
        for kind in ("flux2", "flux2_klein"):
            self.assertEqual(self.missing(kind, ["transformer", "vae", "text_encoder"]),
                             ["tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json"], kind)

    def test_glm_image_needs_its_processor_and_generation_config_but_no_tokenizer_json(self):
        self.assertEqual(self.missing("glm_image", ["transformer", "vae"]),
                         ["processor/tokenizer.json", "processor/tokenizer_config.json",
                          "vision_language_encoder/generation_config.json"])

    def test_glm_image_ar_prompt_pieces_come_from_the_chat_template(self):
        from transformers import GlmImageProcessor
        from transformers.models.glm_image.image_processing_pil_glm_image import GlmImageImageProcessorPil

        from diffgentor_export.recipes.glm_image import ar_prompt_constant
        tok, _ = tiny_pipelines._glm_tokenizer(Path(__file__).resolve().parents[3] / "tests" / "data")

        def processor(template):
            return GlmImageProcessor(image_processor=GlmImageImageProcessorPil(), tokenizer=tok, chat_template=template)
        self.assertEqual(ar_prompt_constant(processor(tiny_pipelines.GLM_TEMPLATE)),
                         {"prefix": "", "image_block": "<|dit_token_64|><|image|><|dit_token_65|>", "text_prefix": "",
                          "text_suffix": "", "add_special_tokens": False})
        # Role markers around the content (transformers renders with trim_blocks: the newline after a block tag
        # goes), and a template that opens with the BOS string.
        framed = ("<|user|>\n{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'image' %}"
                  "[<|image|>]{% else %}Q: {{ c['text'] }}{% endif %}{% endfor %}{% endfor %}\n<|assistant|>")
        self.assertEqual(ar_prompt_constant(processor(framed)),
                         {"prefix": "<|user|>\n", "image_block": "[<|image|>]", "text_prefix": "Q: ",
                          "text_suffix": "<|assistant|>", "add_special_tokens": True})
        with_bos = "<|dit_token_64|>" + framed
        self.assertFalse(ar_prompt_constant(processor(with_bos))["add_special_tokens"])
        # Images whose blocks differ (numbered) cannot be rebuilt from one piece.
        numbered = ("{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'image' %}"
                    "<{{ loop.index }}><|image|>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endfor %}")
        with self.assertRaises(ValueError):
            ar_prompt_constant(processor(numbered))

    def test_glm_image_refuses_untested_transformers_and_diffusers(self):
        from unittest import mock

        import diffusers
        import transformers
        glm = recipes.RECIPES["glm_image"]
        ctx = recipes.Ctx(torch.float32, torch.device("cpu"), False, {})
        self.assertEqual(len(glm.jobs(ctx, {})), 6)
        for lib, version in ((transformers, "5.3.0"), (diffusers, "0.39.1")):
            with mock.patch.object(lib, "__version__", version), self.assertRaises(ValueError) as e:
                glm.jobs(ctx, {})  # before any component is traced
            self.assertIn(f"{lib.__name__} {version} is not a version the GLM-Image wrappers were checked against",
                          str(e.exception))

    def test_options(self):
        for kind in ("flux2", "flux2_klein"):
            options = recipes.RECIPES[kind].options
            self.assertEqual(options(cli_args(text_encoder_out_layers="1,2,3")), {"text_encoder_out_layers": (1, 2, 3)})
            default = options(cli_args())["text_encoder_out_layers"]  # the pipeline's own default
            self.assertTrue(default and all(isinstance(k, int) for k in default), (kind, default))
        self.assertEqual(recipes.RECIPES["flux2"].options(cli_args())["text_encoder_out_layers"], (10, 20, 30))
        for kind in ("qwen", "qwen_singleimg", "longcat", "flux1_kontext"):  # the option means nothing there
            self.assertEqual(recipes.RECIPES[kind].options(cli_args(text_encoder_out_layers="1,2")), {}, kind)

    def test_constants(self):
        ctx = recipes.Ctx(torch.float32, torch.device("cpu"), False, {"text_encoder_out_layers": (1, 2, 3)})
        for kind in ("qwen", "qwen_singleimg"):
            self.assertEqual(recipes.RECIPES[kind].constants(ctx, "transformer", None),
                             {"prompt_template_encode_start_idx": 64})
            self.assertEqual(recipes.RECIPES[kind].constants(ctx, "vae", None), {})
        bn = SimpleNamespace(running_mean=torch.tensor([0.5, -1.0]), running_var=torch.tensor([2.0, 3.0]))
        for kind in ("flux2", "flux2_klein"):
            c = recipes.RECIPES[kind]
            self.assertEqual(c.constants(ctx, "vae", SimpleNamespace(bn=bn)),
                             {"vae_bn_running_mean": [0.5, -1.0], "vae_bn_running_var": [2.0, 3.0]})
            self.assertEqual(c.constants(ctx, "text_encoder", None), {"text_encoder_out_layers": [1, 2, 3]})
            self.assertEqual(c.constants(ctx, "transformer", None), {})
        for kind in ("longcat", "flux1_kontext"):
            for sub in ("transformer", "vae", "text_encoder"):
                self.assertEqual(recipes.RECIPES[kind].constants(ctx, sub, None), {}, (kind, sub))


if __name__ == "__main__":
    unittest.main()
