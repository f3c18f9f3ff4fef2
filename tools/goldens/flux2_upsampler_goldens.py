"""Writes the FLUX.2 prompt upsampler's golden data from the real upstream code (docs/enhancement.md, "Parity and
goldens").

- tests/data/tokenizers/tekken/: decode cases of Mistral's real Tekken vocabulary (mistral-common's
  tekken_240911.json, converted by transformers' own convert_tekken_tokenizer, the converter that writes the
  tokenizer.json of Mistral checkpoints), decoded by Hugging Face tokenizers with and without special tokens and with
  transformers' clean_up_tokenization; and that tokenizer.json cut down to the special tokens and the vocabulary
  entries the cases use (decoding is per token, so the cut file decodes them exactly as the whole one; it is not
  for encoding: the merges are left out).
- tests/data/flux2_upsampler/goldens.json: diffusers' Flux2ImageProcessor.concatenate_images and
  _resize_if_exceeds_area, transformers' Pixtral resize rule, PIL image processor output, PixtralProcessor token
  layout, PixtralRotaryEmbedding rows and Mistral3PatchMerger's unfold order.

Run it with the project's Python environment plus mistral-common beside it (the converter needs it):

    pip install --target /tmp/mistral-common mistral-common==1.13.1
    python tools/goldens/flux2_upsampler_goldens.py --mistral_common /tmp/mistral-common tests/data
"""
import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

TEXTS = [
    "Make the sky purple and write \"hello\" on the wall",
    "Hello , world ! Isn 't it nice ? Yes , it 's fine . We 're here , you 've seen ' quoted ' .",
    "生活的真谛是 — emoji 🐱‍👤, café, naïve",
    "line one\nline two\n\n    indented\ttab",
    "Replace the red car with a blue bicycle; keep the background (street, trees) unchanged.",
]


def pattern(w: int, h: int, seed: int) -> Image.Image:
    """tests/unit/flux2_upsampler_test.cpp's pattern(): the same bytes."""
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(w - 1, 1)).astype(np.uint8)
    g = (((x // 4 + y // 4) % 2) * 200 + seed * 20).astype(np.uint8)
    b = ((x * 7 + y * 13 + seed * 31) % 256).astype(np.uint8)  # integers only: the C++ test makes the same image
    return Image.fromarray(np.stack([r, g, b], -1))


def tekken(mistral_common: Path, out: Path):
    sys.path.append(str(mistral_common))  # after the environment's own packages
    from transformers.integrations.mistral.tokenizer import convert_tekken_tokenizer
    source = mistral_common / "mistral_common" / "data" / "tekken_240911.json"
    tok = convert_tekken_tokenizer(str(source))
    fast = tok.backend_tokenizer
    rng = random.Random(0)
    cases = []

    def add(ids, note):
        for skip in (False, True):
            text = fast.decode(ids, skip_special_tokens=skip)
            cases.append({"note": note, "ids": ids, "skip_special_tokens": skip, "clean_up": False, "text": text})
            cases.append({"note": note, "ids": ids, "skip_special_tokens": skip, "clean_up": True,
                          "text": tok.clean_up_tokenization(text)})

    for t in TEXTS:
        ids = fast.encode(t, add_special_tokens=False).ids
        add(ids, f"encode({t!r})")
        add([1, 17, *ids[:5], 18, 3, *ids[5:], 4, 2], "with specials")
    # single byte tokens and pieces of multi-byte characters: invalid UTF-8 in the middle and at the end
    pieces = fast.encode("🐱‍👤生", add_special_tokens=False).ids
    add(pieces[:-1], "a character cut at the end")
    add(pieces[1:] + pieces[:1], "a character cut at the start")
    for n in (3, 20, 40):
        add([rng.randrange(1000, 131072) for _ in range(n)], f"{n} random ids")
    add([10, 12, 10, 13, 11, 0], "image, pad and unk specials only")
    (out / "decode_cases.jsonl").write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases),
                                            encoding="utf-8")
    used = {i for c in cases for i in c["ids"]}
    full = json.loads(fast.to_str())
    full["model"]["vocab"] = {k: v for k, v in full["model"]["vocab"].items() if v in used or v < 1000}
    full["model"]["merges"] = []
    (out / "tokenizer.json").write_text(json.dumps(full, ensure_ascii=False), encoding="utf-8")
    print(f"tekken: {len(cases)} decode cases, {len(full['model']['vocab'])} vocabulary entries kept")


def pixtral(out: Path):
    from diffusers.pipelines.flux2.image_processor import Flux2ImageProcessor
    from transformers import PixtralImageProcessorPil
    from transformers.models.mistral3.configuration_mistral3 import Mistral3Config
    from transformers.models.mistral3.modeling_mistral3 import Mistral3PatchMerger
    from transformers.models.pixtral.configuration_pixtral import PixtralVisionConfig
    from transformers.models.pixtral.image_processing_pil_pixtral import get_resize_output_image_size
    from transformers.models.pixtral.modeling_pixtral import PixtralRotaryEmbedding

    g = {"sources": "diffusers 0.40 pipelines/flux2/image_processor.py; transformers 5.16 models/pixtral, "
                    "models/mistral3"}
    # Flux2ImageProcessor.concatenate_images and _resize_if_exceeds_area (768^2, UPSAMPLING_MAX_IMAGE_SIZE)
    parts = [pattern(20, 10, 0), pattern(8, 16, 1), pattern(5, 3, 2)]
    cat = Flux2ImageProcessor.concatenate_images(parts)
    g["concatenate"] = {"sizes": [p.size for p in parts], "size": cat.size,
                        "rgb": np.asarray(cat).reshape(-1).tolist()}
    g["cap_area"] = []
    for w, h, area in ((1000, 800, 768 * 768), (640, 480, 768 * 768), (1152, 512, 768 * 768), (3000, 17, 1000),
                       (97, 89, 50 * 50)):
        capped = Flux2ImageProcessor._resize_if_exceeds_area(pattern(w, h, 3), area)
        g["cap_area"].append({"size": [w, h], "area": area, "out": list(capped.size),
                              "rgb_sum": int(np.asarray(capped, dtype=np.int64).sum())})
    # get_resize_output_image_size with longest_edge 1540 and patch 28 (14 x merge 2) -> (h, w)
    g["resize"] = []
    for w, h in ((640, 480), (1152, 512), (3000, 100), (100, 3000), (28, 28), (29, 57), (1540, 1541), (1, 1)):
        arr = np.zeros((3, h, w), np.uint8)
        g["resize"].append({"size": [w, h], "out": list(get_resize_output_image_size(
            arr, size=(1540, 1540), patch_size=(28, 28), input_data_format="channels_first"))})
    # the PIL image processor's pixels for a small image (resized 37x53 -> 56x56)
    ip = PixtralImageProcessorPil(size={"longest_edge": 1540}, patch_size={"height": 14, "width": 14})
    img = pattern(37, 53, 4)
    pv = ip(img, patch_size=28, return_tensors="np")["pixel_values"][0]
    g["pixels"] = {"size": [37, 53], "shape": list(pv.shape), "values": pv.reshape(-1)[::7].tolist(),
                   "stride": 7, "sum": float(pv.astype(np.float64).sum())}
    # PixtralRotaryEmbedding rows for a 3x5 patch grid, head_dim 64, theta 10000, 110 patches a side
    cfg = PixtralVisionConfig(hidden_size=1024, num_attention_heads=16, head_dim=64, image_size=1540, patch_size=14,
                              rope_theta=10000.0)
    rope = PixtralRotaryEmbedding(cfg)
    rows, cols = torch.meshgrid(torch.arange(3), torch.arange(5), indexing="ij")
    pos = (rows * 110 + cols).reshape(-1)
    cos, sin = rope(torch.zeros(1), pos)
    g["rope"] = {"grid": [3, 5], "head_dim": 64, "theta": 10000.0, "cos": cos.reshape(-1).tolist(),
                 "sin": sin.reshape(-1).tolist()}
    # Mistral3PatchMerger itself, with patch indices as 1-wide features and its merging layer made the identity:
    # each output row lists the patches it gathers, in its unfold order
    mcfg = Mistral3Config(vision_config={"model_type": "pixtral", "hidden_size": 1, "patch_size": 14},
                          spatial_merge_size=2)
    merger = Mistral3PatchMerger(mcfg)
    merger.merging_layer = torch.nn.Identity()
    gh, gw = 4, 6
    gathered = merger(torch.arange(gh * gw, dtype=torch.float64)[:, None], torch.tensor([[gh * 14, gw * 14]]))
    g["merge"] = {"grid": [gh, gw], "m": 2, "index": gathered.long().reshape(-1).tolist()}
    (out / "goldens.json").write_text(json.dumps(g, indent=1) + "\n")
    print("pixtral goldens written")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mistral_common", required=True, type=Path, help="where mistral-common is installed")
    p.add_argument("testdata", type=Path, help="tests/data")
    a = p.parse_args()
    (a.testdata / "tokenizers" / "tekken").mkdir(parents=True, exist_ok=True)
    (a.testdata / "flux2_upsampler").mkdir(parents=True, exist_ok=True)
    tekken(a.mistral_common, a.testdata / "tokenizers" / "tekken")
    pixtral(a.testdata / "flux2_upsampler")


if __name__ == "__main__":
    main()
