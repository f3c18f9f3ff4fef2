"""Writes tests/data/glm_image/goldens.json from the real upstream code (docs/models/glm_image.md, "Goldens").

Every value comes from diffusers' GlmImagePipeline / GlmImageRotaryPosEmbed / FlowMatchEulerDiscreteScheduler and
transformers' GLM-Image processor, ByT5Tokenizer, GlmImageModel.get_rope_index and sampling warpers, called as the
pipelines call them. The unshifted timesteps come from diffusers 0.39's scheduler, the last release before 0.40
changed them, installed beside the environment. Run it with the project's Python environment
(tools/requirements.txt pins the versions):

    pip install --no-deps --target /tmp/diffusers-0.39 diffusers==0.39.0
    python tools/goldens/glm_image_goldens.py --diffusers_0_39 /tmp/diffusers-0.39 tests/data/glm_image/goldens.json
"""
import argparse
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import diffusers
import numpy as np
import torch
import transformers
from diffusers.models.transformers.transformer_glm_image import GlmImageRotaryPosEmbed
from diffusers.pipelines.glm_image import pipeline_glm_image as glm_pipe
from PIL import Image
from transformers import ByT5Tokenizer
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.models.glm_image import image_processing_pil_glm_image as glm_proc
from transformers.models.glm_image.configuration_glm_image import GlmImageConfig
from transformers.models.glm_image.modeling_glm_image import GlmImageModel

PROMPTS = [
    "make it blue",
    "Write 'HELLO' on the sign",
    "don't touch it's edge",
    "a \u201cquoted\u201d and \"double\" and \u300cCJK\u300d and 'single'",
    "two: 'A' 'B'",
    "empty '' quotes and an open ' quote",
    "nested \u201cone \u201ctwo\u201d\u201d",
    "bytes: '\u00e9\u4e2d'",
    "specials: 'a  </s>  b' and 'x<extra_id_0>y<extra_id_124>' and 'p <pad>q<unk> ' and '<extra_id_125>'",
]


def glyph_cases():
    tok = ByT5Tokenizer()
    out = []
    for p in PROMPTS:
        texts = glm_pipe.GlmImagePipeline.get_glyph_texts(None, p)[0]
        captured = {}

        def encoder(input_ids, attention_mask, captured=captured):
            # Records what _get_glyph_embeds hands the T5 encoder: the batch it builds is the golden.
            captured["ids"], captured["mask"] = input_ids.tolist(), attention_mask.tolist()
            return SimpleNamespace(last_hidden_state=torch.zeros(*input_ids.shape, 4))

        fake = SimpleNamespace(tokenizer=tok, text_encoder=encoder, _execution_device=torch.device("cpu"),
                               get_glyph_texts=lambda q, texts=texts: [texts])
        glm_pipe.GlmImagePipeline._get_glyph_embeds(fake, p, device=torch.device("cpu"), dtype=torch.float32)
        out.append({"prompt": p, "texts": texts, "ids": captured["ids"], "mask": captured["mask"]})
    return out


def smart_resize_cases():
    out = []
    for limits in [(512 * 512, 2048 * 2048), (64 * 64, 256 * 256)]:
        for h, w in [(1024, 1024), (768, 1024), (100, 150), (64, 64), (3000, 1000), (511, 2047), (333, 777),
                     (40, 160), (2048, 512), (17, 23)]:
            try:
                rh, rw = glm_proc.smart_resize(h, w, 16, limits[0], limits[1])
                out.append({"height": h, "width": w, "min_pixels": limits[0], "max_pixels": limits[1],
                            "resized": [rh, rw]})
            except ValueError as e:
                out.append({"height": h, "width": w, "min_pixels": limits[0], "max_pixels": limits[1],
                            "error": str(e)})
    return out


def pattern_image(w, h):
    """The image tests/unit/glm_image_test.cpp builds: RGB (x*7 + y*13 + c*50) % 256."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 7 + y * 13 + c * 50) % 256 for c in range(3)], -1).astype(np.uint8)


def processor_cases():
    proc = glm_proc.GlmImageImageProcessorPil(patch_size=16, temporal_patch_size=1, merge_size=1,
                                              image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                              min_pixels=64 * 64, max_pixels=256 * 256)
    out = []
    for w, h in [(96, 64), (150, 100)]:
        res = proc(images=[Image.fromarray(pattern_image(w, h))], return_tensors="pt")
        pv = res["pixel_values"]
        out.append({"width": w, "height": h, "grid_thw": res["image_grid_thw"][0].tolist(),
                    "shape": list(pv.shape), "first_row": pv[0].tolist(), "last_row": pv[-1].tolist(),
                    "sum": float(pv.double().sum()), "row_sums": pv.double().sum(1).tolist(),
                    "row_weighted": (pv.double() * torch.arange(pv.shape[1], dtype=torch.float64)).sum(1).tolist()})
    return out


def rope_index_cases():
    cfg = GlmImageConfig(text_config={"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                      "num_key_value_heads": 1, "intermediate_size": 16, "vocab_size": 400,
                                      "vision_vocab_size": 80, "pad_token_id": 399},
                         vision_config={"hidden_size": 16, "depth": 1, "num_heads": 2, "intermediate_size": 16},
                         vq_config={"embed_dim": 8, "num_embeddings": 64, "latent_channels": 16},
                         image_start_token_id=64, image_end_token_id=65, image_token_id=300)
    model = GlmImageModel(cfg).eval()
    start, end, img, text = 64, 65, 300, 200
    cases = []
    # (reference grids, target grid(s), text tokens): edits list [refs..., target]; t2i lists [target, preview].
    layouts = [
        ([(2, 3)], [(3, 5)], 4),
        ([(3, 2), (2, 2)], [(2, 4)], 3),
        ([], [(4, 2), (22, 11)], 5),
    ]
    for refs, targets, n_text in layouts:
        ids = []
        for h, w in refs:
            ids += [start] + [img] * (h * w) + [end]
        ids += [text + k for k in range(n_text)]
        ids += [301, 302, 303, 304, start]  # the grid string's tokens, then the BOS (= image start)
        grids = [[1, h, w] for h, w in refs + targets]
        pos, _ = model.get_rope_index(torch.tensor([ids]), image_grid_thw=torch.tensor(grids),
                                      images_per_sample=torch.tensor([len(grids)]))
        decode = model._cached_decode_position_ids[0]
        cases.append({"ids": ids, "grids": [[h, w] for h, w in refs + targets], "prefill": pos[:, 0].tolist(),
                      "decode": decode.tolist()})
    return cases


def dit_rope_cases():
    out = []
    for dim, h, w in [(16, 3, 5), (128, 4, 2)]:
        cos, sin = GlmImageRotaryPosEmbed(dim, 2)(torch.zeros(1, 16, 2 * h, 2 * w))
        out.append({"head_dim": dim, "h": h, "w": w, "cos": cos.tolist(), "sin": sin.tolist()})
    return out


SCHEDULE_CASES = [((1024, 1024), 4), ((768, 512), 50), ((160, 96), 4), ((256, 256), 1)]
SCHEDULE_CONFIG = {"num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": True, "base_shift": 0.25,
                   "max_shift": 0.75, "base_image_seq_len": 256, "time_shift_type": "linear"}


def schedules_of_this_diffusers():
    """GlmImagePipeline.__call__'s own lines (the integer timesteps, sigmas = t / 1000, the square-root mu) and
    the scheduler's timesteps and sigmas after retrieve_timesteps, with whichever diffusers is imported."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.pipelines.glm_image import pipeline_glm_image as pipe
    out = []
    for (w, h), n in SCHEDULE_CASES:
        sched = FlowMatchEulerDiscreteScheduler(**SCHEDULE_CONFIG)
        seq = ((h // 8) * (w // 8)) // 4
        ts = np.linspace(sched.config.num_train_timesteps, 1.0, n + 1)[:-1].astype(np.int64).astype(np.float32)
        timesteps, _ = pipe.retrieve_timesteps(sched, n, "cpu", ts, ts / 1000, mu=pipe.calculate_shift(seq, 256, 0.25,
                                                                                                      0.75))
        out.append({"timesteps": timesteps.tolist(), "sigmas": sched.sigmas.tolist()})
    return out


def schedule_cases(diffusers_0_39: str):
    """Shifted timesteps from the installed diffusers (0.40), unshifted ones from diffusers 0.39 in a process of its
    own (`--diffusers_0_39`); the sigmas must agree."""
    old = json.loads(subprocess.run(
        [sys.executable, __file__, "--schedules_only"], env={**os.environ, "PYTHONPATH": diffusers_0_39},
        capture_output=True, text=True, check=True).stdout)
    if not old["version"].startswith("0.39."):
        raise SystemExit(f"--diffusers_0_39 {diffusers_0_39} holds diffusers {old['version']}")
    out = []
    for ((w, h), n), new, prev in zip(SCHEDULE_CASES, schedules_of_this_diffusers(), old["cases"], strict=True):
        if new["sigmas"] != prev["sigmas"]:
            raise SystemExit(f"diffusers 0.39 and {diffusers.__version__} disagree on the sigmas "
                             f"for {w}x{h}, {n} steps")
        out.append({"width": w, "height": h, "steps": n, "unshifted_timesteps": prev["timesteps"],
                    "shifted_timesteps": new["timesteps"], "sigmas": new["sigmas"]})
    return out


def sampler_cases():
    out = []
    for seed, (temp, top_k, top_p) in [(7, (0.9, 50, 0.75)), (123456789, (1.0, 5, 1.0)), (3, (0.95, 50, 0.9))]:
        warpers = LogitsProcessorList()
        if temp != 1.0:
            warpers.append(TemperatureLogitsWarper(temp))
        warpers.append(TopKLogitsWarper(top_k))
        if top_p < 1.0:
            warpers.append(TopPLogitsWarper(top_p))
        gen = torch.Generator().manual_seed(seed + 1)
        logits = [torch.randn(1, 80, generator=gen) * 3 for _ in range(12)]
        torch.manual_seed(seed)  # what GlmImagePipeline.generate_prior_tokens does before generate()
        tokens, warped0 = [], None
        for step, lg in enumerate(logits):
            scores = warpers(None, lg.clone())
            if step == 0:
                warped0 = [None if v == float("-inf") else v for v in scores[0].tolist()]  # null = -inf
            tokens.append(int(torch.multinomial(torch.softmax(scores, -1), num_samples=1)))
        out.append({"seed": seed, "temperature": temp, "top_k": top_k, "top_p": top_p,
                    "logits": [lg[0].tolist() for lg in logits], "warped_0": warped0, "tokens": tokens})
    return out


def main():
    if sys.argv[1:] == ["--schedules_only"]:  # the child process of schedule_cases, under diffusers 0.39
        print(json.dumps({"version": diffusers.__version__, "cases": schedules_of_this_diffusers()}))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--diffusers_0_39", required=True, help="a folder holding diffusers 0.39 (pip install --target)")
    ap.add_argument("out")
    args = ap.parse_args()
    doc = {
        "_source": f"tools/goldens/glm_image_goldens.py with diffusers {diffusers.__version__} (unshifted timesteps: "
                   f"0.39), transformers {transformers.__version__}, torch {torch.__version__}",
        "glyphs": glyph_cases(),
        "smart_resize": smart_resize_cases(),
        "processor": processor_cases(),
        "rope_index": rope_index_cases(),
        "dit_rope": dit_rope_cases(),
        "schedules": schedule_cases(args.diffusers_0_39),
        "sampler": sampler_cases(),
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
